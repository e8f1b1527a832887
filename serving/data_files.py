"""rasid's data files: read JSONL/CSV rows into Rows, and report bad ones by file and line."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from serving.errors import DataError
from serving.normalize import NOTHING_TO_READ, nothing_to_read

log = logging.getLogger(__name__)

# Columns that are never task labels: what the text is, where it came from, how it is grouped.
RESERVED_COLUMNS = {"text", "target", "id", "group", "source", "fold", "split", "platform"}
MAX_LISTED = 20  # bad rows named in an error; the rest are counted
MAX_WARNED = 5  # bad rows named in the warning when --skip-bad-rows skips them


@dataclass
class Row:
    """One input paragraph with the labels it carries (task name -> label; unlabelled tasks are absent)."""

    text: str
    target: str | None
    labels: dict[str, str]
    where: str  # "file:line", for messages
    group: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def file(self) -> str:
        """The file the row was read from: `where` without its line."""
        return self.where.rsplit(":", 1)[0]


@dataclass
class ReadResult:
    rows: list[Row]
    skipped: list[str]  # "file:line: reason" of the bad rows that --skip-bad-rows let through


def raw_records(path: Path):
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
            yield (
                line_start,
                f"{len(record[None]) + len(reader.fieldnames)} fields, header has {len(reader.fieldnames)}",
            )
        else:
            yield line_start, {key: (value if value != "" else None) for key, value in record.items()}
        line_start = reader.line_num + 1


def parse_row(record: dict, where: str, tasks: list[str] | None) -> Row | str:
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
    return Row(
        text=text, target=target or None, labels=labels, where=where, group=str(group) if group else None, extra=extra
    )


def read_rows(paths: list[Path], skip_bad_rows: bool = False, tasks: list[str] | None = None) -> ReadResult:
    """Read rasid data files. Bad rows raise DataError naming file:line, unless `skip_bad_rows`.

    `tasks` limits which columns count as labels (None: every non-reserved column).
    """
    rows, bad = [], []
    for path in map(Path, paths):
        if not path.is_file():
            raise DataError(f"{path}: no such data file")
        for number, record in raw_records(path):
            where = f"{path}:{number}"
            parsed = record if isinstance(record, str) else parse_row(record, where, tasks)
            if isinstance(parsed, str):
                bad.append(f"{where}: {parsed}")
            else:
                rows.append(parsed)
    report_bad_rows(bad, skip_bad_rows)
    return ReadResult(rows=rows, skipped=bad)


def report_bad_rows(bad: list[str], skip_bad_rows: bool, where: str = "") -> None:
    """The one report of bad rows, each "file:line: reason", for every command that reads data: an error
    naming the first MAX_LISTED, or with --skip-bad-rows a warning naming the first MAX_WARNED."""
    if not bad:
        return
    if not skip_bad_rows:
        raise DataError(f"{len(bad)} bad row(s){where}; fix them or pass --skip-bad-rows:{_listed(bad, MAX_LISTED)}")
    log.warning("skipped %d bad row(s)%s:%s", len(bad), where, _listed(bad, MAX_WARNED))


def _listed(bad: list[str], limit: int) -> str:
    more = f"\n  ... and {len(bad) - limit} more" if len(bad) > limit else ""
    return "".join(f"\n  {row}" for row in bad[:limit]) + more
