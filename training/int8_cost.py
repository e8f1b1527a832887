"""What per-row int8 costs a bundle against exact fp32 on labelled rows, measured and recorded in its manifest
(the measurement decides the bundle's fast path: serving.precision.fast_precision)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

from serving.data_files import Row

log = logging.getLogger(__name__)


def measure_int8_cost(bundle: Path, rows: list[Row], skip_bad_rows: bool = False) -> tuple[dict[str, float], int]:
    """Macro-F1 points per task that per-row int8 loses against exact fp32 on `rows` (negative: it gained),
    and how many rows were scored."""
    from serving.predictor import Predictor
    from training.evaluation import evaluate_model, rows_by_task

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
        "macro_f1_points": costs,
        "rows": scored,
        "data": data,
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_manifest(bundle, manifest)
    log.info(
        "int8 against fp32 on %d rows, macro-F1 points lost: %s",
        scored,
        ", ".join(f"{t} {c:.2f}" for t, c in costs.items()),
    )
    return manifest
