"""Scoring predictors on labelled rows, shared by `rasid evaluate`, `rasid baseline` and `rasid check-int8`:
the rows each task is scored on, the scores per task, and the report around them."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from serving import __version__
from serving.bundle import has_target, no_target
from serving.data_files import Row, report_bad_rows
from serving.errors import DataError

log = logging.getLogger(__name__)


def parse_tasks(value: str | None) -> list[str] | None:
    return [t.strip() for t in value.split(",") if t.strip()] if value else None


def new_report(data: list[Path], documents: bool) -> dict:
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rasid_version": __version__,
        "data": [str(p) for p in data],
        "documents": bool(documents),
        "models": {},
    }


def finish(report: dict, folder: Path | None) -> None:
    from training.report import format_report, write_report  # scikit-learn and matplotlib: only when used

    print(format_report(report))
    if folder:
        written = write_report(report, folder)
        print(f"\nreport written to {folder}: {', '.join(p.name for p in written)}")


def rows_by_task(rows: list[Row], specs, skip_bad_rows: bool = False) -> dict[str, list[Row]]:
    """The rows each task is scored on, labels matched to the model's (case-insensitively when that is
    unambiguous). Labels the model does not know are a DataError naming them; a pair-task row without
    a target is a bad row (file:line)."""
    by_task, unknown, bad = {}, [], []
    for spec in specs:
        exact = set(spec.labels)
        folded = (
            {l.lower(): l for l in spec.labels} if len({l.lower() for l in spec.labels}) == len(spec.labels) else {}
        )
        counts, first = Counter(), {}
        selected = []
        for row in rows:
            label = row.labels.get(spec.name)
            if label is None:
                continue
            canonical = label if label in exact else folded.get(label.lower())
            if canonical is None:
                counts[label] += 1
                first.setdefault(label, row.where)
                continue
            if spec.input == "pair" and not has_target(row.target):
                bad.append(f"{row.where}: {no_target([spec.name])}")
                continue
            if canonical != label:
                row = Row(row.text, row.target, {**row.labels, spec.name: canonical}, row.where, row.group, row.extra)
            selected.append(row)
        unknown += [f"task '{spec.name}': label '{l}' ({n} rows, first at {first[l]})" for l, n in counts.items()]
        if selected:
            by_task[spec.name] = selected
    if unknown:
        known = "; ".join(f"{s.name}: {', '.join(s.labels)}" for s in specs)
        raise DataError(
            "the data has labels this model does not know: " + "; ".join(unknown) + f". The model knows {known}."
        )
    report_bad_rows(bad, skip_bad_rows)
    if not by_task:
        raise DataError(
            f"no row of the data carries a label for the task(s) {[s.name for s in specs]}: nothing to evaluate."
        )
    return by_task


def evaluate_model(
    predictor, by_task: dict[str, list[Row]], documents: bool = False, abstain_below: float | None = None
) -> dict[str, dict]:
    """Scores per task for a predictor (a rasid Predictor or the baseline). Each input kind is predicted in
    one batched pass over the rows that need it. Abstention is applied in scoring (training.report), so the
    same answers also give the risk-coverage table."""
    from tqdm import tqdm

    from serving.documents import analyze_documents
    from serving.predictor import Item
    from training.report import NO_VERDICT, score_task

    specs = {name: predictor.manifest.task(name) for name in by_task}
    out = {}
    for kind in ("single", "pair"):
        tasks = [name for name in by_task if specs[name].input == kind]
        if not tasks:
            continue
        unique = {id(row): row for name in tasks for row in by_task[name]}
        rows = list(unique.values())
        position = {key: k for k, key in enumerate(unique)}
        targets = [row.target if kind == "pair" else None for row in rows]
        with tqdm(
            total=None if documents else len(rows), desc=f"{kind} tasks", unit="paragraph", disable=None, leave=False
        ) as bar:
            if documents:
                answers = [
                    r["predictions"]
                    for r in analyze_documents(predictor, [r.text for r in rows], targets, tasks, progress=bar.update)
                ]
            else:
                answers = [
                    r.predictions
                    for r in predictor.predict_items(
                        [Item(r.text, t) for r, t in zip(rows, targets)], tasks, progress=bar.update
                    )
                ]
        for name in tasks:
            labels = list(specs[name].labels)
            found = [answers[position[id(row)]].get(name) for row in by_task[name]]
            out[name] = score_task(
                name,
                labels,
                gold=[row.labels[name] for row in by_task[name]],
                predicted=[a["label"] if a else NO_VERDICT for a in found],
                probabilities=[[a["scores"][l] for l in labels] if a else None for a in found],
                targets=[row.target for row in by_task[name]],
                confidences=[a["score"] if a else None for a in found],
                abstain_below=abstain_below,
            )
    return out
