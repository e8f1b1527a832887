"""Validation splits of rasid's data rows, and writing rows back as JSONL (reading is serving/data_files.py)."""

from __future__ import annotations

import json
import logging
import math
import random
from collections import Counter, defaultdict
from pathlib import Path

from serving.data_files import Row
from serving.errors import DataError
from serving.files import atomic_file

log = logging.getLogger(__name__)


def group_key(row: Row) -> str:
    """Rows with one key stay on one side of a split: the row's group, else its text (so duplicates do too)."""
    return row.group or "text:" + " ".join(row.text.split())


def split_rows(rows: list[Row], val_fraction: float, seed: int) -> tuple[list[Row], list[Row]]:
    """Split by group, stratified by label: whole groups go to validation while they bring every label they
    carry closer to `val_fraction` of its rows, and never take a label's last training rows.

    Groups are shuffled per dataset source so each source contributes its own share to validation. A label
    too rare to split (fewer than two groups carry it) stays in training, with a warning: the split must never
    produce a validation label that training has not seen.
    """
    if not 0 < val_fraction < 1:
        raise DataError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    by_source: dict[str, dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_source[str(row.extra.get("source", ""))][group_key(row)].append(row)
    train, val = [], []
    rng = random.Random(seed)
    for source in sorted(by_source):
        groups = by_source[source]
        keys = sorted(groups)
        rng.shuffle(keys)
        carried = {key: Counter((t, l) for row in groups[key] for t, l in row.labels.items()) for key in keys}
        total = sum(carried.values(), Counter())
        holders = Counter(label for key in keys for label in carried[key])
        rare = sorted(f"{task}={label}" for (task, label), count in holders.items() if count < 2)
        if rare:
            log.warning(
                "source %r: label(s) %s too rare to split (one group carries them): kept in training",
                source or "(none)",
                ", ".join(rare),
            )
        # at most this many rows of a label go to validation, and at least one group of it stays in training
        room = {label: max(0, math.ceil(val_fraction * count)) for label, count in total.items()}
        left_in_train = Counter(holders)
        wanted = val_fraction * sum(len(g) for g in groups.values())
        taken, taken_labels = 0, Counter()
        for key in keys:
            labels = carried[key]
            fits = taken < wanted and all(
                taken_labels[label] + count <= room[label] and left_in_train[label] > 1
                for label, count in labels.items()
            )
            if fits and (labels or len(groups) > 1):
                val.extend(groups[key])
                taken += len(groups[key])
                taken_labels.update(labels)
                left_in_train.subtract(labels.keys())
            else:
                train.extend(groups[key])
        if taken == 0:
            log.warning("source %r has too few groups for a validation share", source or "(none)")
    return train, val


def write_rows(rows: list[Row], path: Path) -> None:
    """Write rows back in rasid's JSONL format (used by `rasid split`), atomically."""
    with atomic_file(path) as handle:
        for row in rows:
            record = {"text": row.text, "target": row.target, **row.labels, "group": row.group, **row.extra}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
