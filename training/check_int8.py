"""`rasid check-int8`: what per-row int8 costs a bundle on labelled data, recorded in its manifest.

The fast path of `rasid serve`, `predict` and `evaluate` runs int8 only for a bundle whose recorded cost is
at most serving.predictor.MAX_INT8_COST macro-F1 points on every task. `rasid train` records it on its own
validation rows; this command does it for a bundle trained before, or on other data.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

from serving.data_files import Row, read_rows

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser("check-int8", help="measure what int8 costs a bundle on labelled data and record it "
                              "(it decides the fast path)")
    p.add_argument("--model", type=Path, required=True, help="bundle folder")
    p.add_argument("--data", nargs="+", type=Path, required=True, help="labelled validation files, never training data")
    p.add_argument("--skip-bad-rows", action="store_true", help="warn about bad rows instead of stopping")
    p.set_defaults(func=run)


def run(args) -> int:
    from serving.predictor import MAX_INT8_COST, fast_precision

    rows = read_rows(args.data, args.skip_bad_rows).rows
    manifest = record_int8_cost(args.model, rows, [str(p) for p in args.data], args.skip_bad_rows)
    costs = manifest.metrics["int8_cost"]["macro_f1_points"]
    for task, cost in costs.items():
        print(f"{task}: int8 costs {cost:.2f} macro-F1 points")
    unmeasured = [t.name for t in manifest.tasks if t.name not in costs]
    if unmeasured:
        print(f"not measured, no labelled rows in the data: {', '.join(unmeasured)} (the fast path needs every task)")
    print(f"fast path of {args.model}: {fast_precision(manifest)} (int8 only if it costs at most {MAX_INT8_COST} "
          "on every task)")
    return 0


def measure_int8_cost(bundle: Path, rows: list[Row], skip_bad_rows: bool = False) -> tuple[dict[str, float], int]:
    """Macro-F1 points per task that per-row int8 loses against exact fp32 on `rows` (negative: it gained),
    and how many rows were scored."""
    from serving.predictor import Predictor
    from training.evaluate import evaluate_model, rows_by_task

    scores = {}
    for precision in ("fp32", "int8"):
        predictor = Predictor.from_bundle(bundle, precision=precision)
        by_task = rows_by_task(rows, predictor.manifest.tasks, skip_bad_rows)
        scores[precision] = {t: s["macro_f1"] for t, s in evaluate_model(predictor, by_task).items()}
    scored = {id(row) for task_rows in by_task.values() for row in task_rows}
    return {t: round(100 * (scores["fp32"][t] - scores["int8"][t]), 4) for t in scores["fp32"]}, len(scored)


def record_int8_cost(bundle: Path, rows: list[Row], data: list[str], skip_bad_rows: bool = False):
    """Measure, write into the bundle's manifest, and return the updated manifest."""
    from serving.bundle import read_manifest, write_manifest

    costs, scored = measure_int8_cost(bundle, rows, skip_bad_rows)
    manifest = read_manifest(bundle)
    manifest.metrics["int8_cost"] = {
        "macro_f1_points": costs, "rows": scored, "data": data,
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_manifest(bundle, manifest)
    log.info("int8 against fp32 on %d rows, macro-F1 points lost: %s", scored,
             ", ".join(f"{t} {c:.2f}" for t, c in costs.items()))
    return manifest
