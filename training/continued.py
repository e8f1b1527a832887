"""`rasid train --init-from BUNDLE`: continue training a bundle instead of starting from a base encoder.

The run starts from the bundle's encoder, tokenizer and heads. Tasks the new data labels are trained (their
labels must be the bundle's: a head cannot grow a class); new task names get new heads; every other task keeps
its head, labels, temperature and n-gram model as they were. The encoder moves for all of them, so give their
validation rows too (--val-data): the run then measures them, and keeps the epoch that does best on all.
Its uses: a short stance-only phase at the end of the multi-task recipe (docs/accuracy.md), or a user's own
labelled paragraphs on top of a published bundle.
"""

from __future__ import annotations

import logging
from pathlib import Path

from serving.bundle import DOCUMENTS_DIR, Manifest, TaskSpec, load_ngram_models, save_ngram_models
from serving.errors import DataError, RasidError

log = logging.getLogger(__name__)


def continued_specs(earlier: Manifest, trained: list[TaskSpec]) -> list[TaskSpec]:
    """The bundle's tasks in their order (head order and label order unchanged), then the new ones."""
    known = {spec.name: spec for spec in earlier.tasks}
    for spec in trained:
        before = known.get(spec.name)
        if before is None:
            continue
        unknown = sorted(set(spec.labels) - set(before.labels))
        if unknown:
            raise DataError(
                f"task '{spec.name}': label(s) {unknown} are not among the bundle's {list(before.labels)}; "
                "a head cannot learn a new class: train from the base encoder instead (without --init-from)."
            )
    new = [spec for spec in trained if spec.name not in known]
    return [*earlier.tasks, *new]


def merged_targets(earlier: dict, new: dict) -> dict:
    """The target inventory of both trainings: counts add up; a task open in either stays open."""
    merged = dict(earlier)
    for task, record in new.items():
        before = earlier.get(task)
        if before is None:
            merged[task] = record
            continue
        counts = dict(before.get("counts", {}))
        for target, n in record.get("counts", {}).items():
            counts[target] = counts.get(target, 0) + n
        is_open = before.get("open", False) or record.get("open", False)
        merged[task] = {"open": is_open, "rows": before["rows"] + record["rows"], "distinct": len(counts)}
        if not is_open:
            merged[task]["counts"] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return merged


def carry_over(bundle: Path, out: Path, trained: set[str]) -> None:
    """Copy the n-gram models of the tasks this run did not train into the new bundle. The learned article
    verdicts read the encoder's paragraph answers, which have moved: they are not copied (refit them with
    `rasid fuse --documents`)."""
    kept = {task: fused for task, fused in load_ngram_models(bundle).items() if task not in trained}
    if kept:
        save_ngram_models(out, kept)
    if (Path(bundle) / DOCUMENTS_DIR).is_dir():
        log.warning(
            "the learned article verdicts of %s are not carried over (the encoder moved): refit them with "
            "`rasid fuse --documents --model %s ...`",
            bundle,
            out,
        )


def check_paths(init_from: Path, out: Path, base: str | None) -> None:
    if base is not None:
        raise RasidError("--init-from and --base exclude each other: the bundle brings its own encoder.")
    if Path(init_from).resolve() == Path(out).resolve():
        raise RasidError("--init-from and --out are the same folder: write the continued bundle elsewhere.")
