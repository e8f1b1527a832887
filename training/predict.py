"""`rasid predict`: label a JSONL/CSV file with a bundle, one JSONL line out per input row.

Each line: `id` (when the input has one), `predictions` {task: {label, score, scores}}, `truncated`,
`skipped_tasks` (pair tasks not run because the row has no target). With --documents each text is a whole
article: `predictions` holds the document verdicts and the line adds `paragraphs`, `skipped` and `empty`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from serving.errors import DataError, RasidError
from training.cli import add_arithmetic_options
from training.data import read_rows

log = logging.getLogger(__name__)

CHUNK_ROWS = 256  # rows per predictor call: big enough to fill batches, small enough to show progress


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="label a JSONL/CSV file with a bundle; JSONL out")
    p.add_argument("--model", type=Path, required=True, help="bundle folder")
    p.add_argument("--input", type=Path, required=True, help="JSONL or CSV with 'text' (and 'target', 'id')")
    p.add_argument("--output", type=Path, required=True, help="JSONL file to write")
    p.add_argument("--tasks", help="comma-separated tasks (default: every task each row can take)")
    p.add_argument("--documents", action="store_true",
                   help="each text is a whole article: paragraphs, boilerplate dropped, document verdict")
    p.add_argument("--abstain-below", type=float, metavar="P",
                   help="answer 'uncertain' when the top score is below P")
    p.add_argument("--batch-size", type=int, default=32)
    add_arithmetic_options(p)
    p.add_argument("--skip-bad-rows", action="store_true", help="warn about bad rows instead of stopping")
    p.set_defaults(func=run)


def run(args) -> int:
    from tqdm import tqdm

    from serving.documents import analyze_documents
    from serving.predictor import Item, Predictor

    if args.abstain_below is not None and not 0 < args.abstain_below <= 1:
        raise RasidError(f"--abstain-below must be in (0, 1], got {args.abstain_below}.")
    if args.batch_size < 1:
        raise RasidError(f"--batch-size must be at least 1, got {args.batch_size}.")
    if args.output.resolve() == args.input.resolve():
        raise RasidError("--output must not be the --input file.")
    predictor = Predictor.from_bundle(args.model, batch_size=args.batch_size, fast=args.fast,
                                      precision=args.precision)
    tasks = predictor.check_tasks([t.strip() for t in args.tasks.split(",") if t.strip()]) if args.tasks else None
    rows = read_rows([args.input], args.skip_bad_rows, tasks=[]).rows  # inputs need no labels
    rows = _rows_with_targets(rows, predictor, tasks, args.skip_bad_rows)
    with atomic_jsonl(args.output) as write, \
            tqdm(total=len(rows), desc="predict", unit="document" if args.documents else "row", disable=None) as bar:
        for start in range(0, len(rows), CHUNK_ROWS):
            chunk = rows[start:start + CHUNK_ROWS]
            if args.documents:
                results = analyze_documents(predictor, [r.text for r in chunk], [r.target for r in chunk], tasks,
                                            args.abstain_below)
            else:
                results = [{"predictions": r.predictions, "truncated": r.truncated, "skipped_tasks": r.skipped_tasks}
                           for r in predictor.predict_items([Item(r.text, r.target) for r in chunk], tasks,
                                                            args.abstain_below)]
            for row, result in zip(chunk, results):
                write(_line(row, result))
            bar.update(len(chunk))
    log.info("wrote %d line(s) to %s", len(rows), args.output)
    return 0


def _rows_with_targets(rows, predictor, tasks, skip_bad_rows):
    """Tasks asked for by name must all be answered: a pair task needs each row's target (file:line)."""
    if tasks is None:
        return rows
    pair = [t for t in tasks if predictor.manifest.task(t).input == "pair"]
    if not pair:
        return rows
    bad = [r for r in rows if not (r.target and r.target.strip())]
    if bad and not skip_bad_rows:
        shown = "\n  ".join(f"{r.where}: no 'target' for task(s) {pair}" for r in bad[:20])
        raise DataError(f"{len(bad)} bad row(s); fix them or pass --skip-bad-rows:\n  {shown}")
    if bad:
        log.warning("skipped %d row(s) without a target, first: %s", len(bad), bad[0].where)
    return [r for r in rows if r.target and r.target.strip()]


def _line(row, result: dict) -> dict:
    line = {"id": row.extra["id"]} if "id" in row.extra else {}
    line.update(result)
    return line


@contextmanager
def atomic_jsonl(path: Path):
    """Yield a function writing one record per line into a temporary sibling of `path`, renamed over `path`
    only when the block ends without error: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            yield lambda record: stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
