"""rasid's data format: read JSONL/CSV rows, report bad ones by file and line, split for validation."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import logging
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from serving.errors import DataError
from serving.normalize import NOTHING_TO_READ, nothing_to_read

log = logging.getLogger(__name__)

# Columns that are never task labels: what the text is, where it came from, how it is grouped.
RESERVED_COLUMNS = {"text", "target", "id", "group", "source", "fold", "split", "platform"}
MAX_REPORTED_ERRORS = 20


@dataclass
class Row:
    """One input paragraph with the labels it carries (task name -> label; unlabelled tasks are absent)."""

    text: str
    target: str | None
    labels: dict[str, str]
    where: str  # "file:line", for messages
    group: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class ReadResult:
    rows: list[Row]
    skipped: list[str]  # "file:line: reason" of the bad rows that --skip-bad-rows let through


def _raw_records(path: Path):
    """Yield (line number, record dict or error sentence) from a JSONL or CSV file."""
    suffix = path.suffix.lower()
    if suffix not in {".jsonl", ".csv"}:
        raise DataError(f"{path}: unsupported data file type '{suffix}'; rasid reads .jsonl and .csv")
    data = path.read_bytes()
    if suffix == ".jsonl":
        for number, raw in enumerate(data.split(b"\n"), start=1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                yield number, f"invalid UTF-8 at byte {error.start}"
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                yield number, f"invalid JSON ({error.msg} at column {error.colno})"
                continue
            yield number, record if isinstance(record, dict) else "a row must be a JSON object"
        return
    # CSV: decode line by line first so invalid UTF-8 is reported where it is, then parse.
    lines = []
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        try:
            lines.append(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
        except UnicodeDecodeError as error:
            yield number, f"invalid UTF-8 at byte {error.start}"
            lines.append("\n")  # keep physical line numbers aligned
    reader = csv.DictReader(lines)
    line_start = 2
    for record in reader:
        if None in record:
            yield line_start, f"{len(record[None]) + len(reader.fieldnames)} fields, header has {len(reader.fieldnames)}"
        else:
            yield line_start, {key: (value if value != "" else None) for key, value in record.items()}
        line_start = reader.line_num + 1


def _parse_row(record: dict, where: str, tasks: list[str] | None) -> Row | str:
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        return "no text (the 'text' field is missing or empty)"
    if nothing_to_read(text):
        return f"the text {NOTHING_TO_READ}"
    target = record.get("target")
    if target is not None and not isinstance(target, str):
        return f"'target' must be a string, not {type(target).__name__}"
    if target is not None and target.strip() and nothing_to_read(target):
        return f"the target {NOTHING_TO_READ}"
    labels = {}
    for key, value in record.items():
        if key in RESERVED_COLUMNS or value is None or value == "":
            continue
        if tasks is not None and key not in tasks:
            continue
        if not isinstance(value, str):
            return f"label of task '{key}' must be a string, not {json.dumps(value, ensure_ascii=False)}"
        labels[key] = value
    group = record.get("group")
    extra = {k: record[k] for k in ("id", "source", "fold", "split") if k in record}
    return Row(text=text, target=target or None, labels=labels, where=where, group=str(group) if group else None, extra=extra)


def read_rows(paths: list[Path], skip_bad_rows: bool = False, tasks: list[str] | None = None) -> ReadResult:
    """Read rasid data files. Bad rows raise DataError naming file:line, unless `skip_bad_rows`.

    `tasks` limits which columns count as labels (None: every non-reserved column).
    """
    rows, bad = [], []
    for path in map(Path, paths):
        if not path.is_file():
            raise DataError(f"{path}: no such data file")
        for number, record in _raw_records(path):
            where = f"{path}:{number}"
            parsed = record if isinstance(record, str) else _parse_row(record, where, tasks)
            if isinstance(parsed, str):
                bad.append(f"{where}: {parsed}")
            else:
                rows.append(parsed)
    if bad and not skip_bad_rows:
        shown = "\n  ".join(bad[:MAX_REPORTED_ERRORS])
        more = f"\n  ... and {len(bad) - MAX_REPORTED_ERRORS} more" if len(bad) > MAX_REPORTED_ERRORS else ""
        raise DataError(f"{len(bad)} bad row(s); fix them or pass --skip-bad-rows:\n  {shown}{more}")
    if bad:
        log.warning("skipped %d bad row(s), first: %s", len(bad), bad[0])
    return ReadResult(rows=rows, skipped=bad)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
            log.warning("source %r: label(s) %s too rare to split (one group carries them): kept in training",
                        source or "(none)", ", ".join(rare))
        # at most this many rows of a label go to validation, and at least one group of it stays in training
        room = {label: max(0, math.ceil(val_fraction * count)) for label, count in total.items()}
        left_in_train = Counter(holders)
        wanted = val_fraction * sum(len(g) for g in groups.values())
        taken, taken_labels = 0, Counter()
        for key in keys:
            labels = carried[key]
            fits = taken < wanted and all(
                taken_labels[label] + count <= room[label] and left_in_train[label] > 1 for label, count in labels.items())
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
    """Write rows back in rasid's JSONL format (used by `rasid split`)."""
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            record = {"text": row.text, "target": row.target, **row.labels, "group": row.group, **row.extra}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
