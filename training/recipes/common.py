"""What every recipe shares: bad-row records, CSV/TSV reading with line numbers, label checks, group keys."""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from serving.errors import DataError
from serving.normalize import NormalizationSettings, normalize

# Groups only decide which rows travel together across a validation split, so they merge more than the model
# ever sees: letter variants, diacritics, links and mentions differ between retweets of one post.
_GROUP_SETTINGS = NormalizationSettings(unify_alef=True, unify_yaa=True, unify_taa_marbuta=True)
# What a spreadsheet leaves in a cell whose text began with "=", "+" or "-": the original text is gone.
_SPREADSHEET_ERROR = re.compile(r"#(NAME\?|VALUE!|REF!|DIV/0!|N/A|NUM!|NULL!)")


@dataclass(frozen=True)
class BadRow:
    """A source row a recipe cannot use; `line` is a physical line number or e.g. "article 3" for JSON."""

    file: str
    line: int | str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class Extract:
    """What a recipe read: good rows with their origin (file, line), bad rows, and notes for the summary."""

    rows: list[tuple[tuple[str, int | str], dict]] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)
    info: list[str] = field(default_factory=list)

    def keep(self, file: Path | str, line: int | str, row: dict) -> None:
        self.rows.append(((str(file), line), row))

    def reject(self, file: Path | str, line: int | str, reason: str) -> None:
        self.bad.append(BadRow(str(file), line, reason))


def text_group(text: str) -> str:
    """A short hash of the normalised text, so duplicates and retweets share a group."""
    return hashlib.sha1(normalize(text, _GROUP_SETTINGS).encode("utf-8")).hexdigest()[:12]


def text_problem(text: str) -> str | None:
    """Why `text` cannot be an example, or None when it can."""
    if not text.strip():
        return "empty text"
    if _SPREADSHEET_ERROR.fullmatch(text.strip()):
        return f"text is a spreadsheet error value ({text.strip()}), the original was lost"
    return None


def label_problem(column: str, value: str, allowed: set[str]) -> str | None:
    """Why `value` is not one of the labels `column` may hold, or None when it is."""
    if value in allowed:
        return None
    return f"unknown {column} label {value!r} (expected one of {', '.join(sorted(allowed))})"


def _decoded_lines(path: Path, broken: set[int]) -> Iterator[str]:
    """The file's physical lines as text; the numbers of lines that are not valid UTF-8 go into `broken`."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (Mawqif) is not part of the first header name
        data = data[3:]
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            broken.add(number)
            yield raw.decode("utf-8", errors="replace")


def read_table(
    path: Path, required: list[str], extract: Extract, *, delimiter: str = ",", quoting: int = csv.QUOTE_MINIMAL
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line where the record starts, {header: value}) for each well-formed record of a CSV/TSV file.

    Columns are found by header name, never by position. Records with the wrong number of fields or invalid
    UTF-8 go to `extract.bad`; a missing file or required column fails the whole file.
    """
    if not path.is_file():
        raise DataError(f"{path} does not exist; is --source the dataset's folder?")
    broken: set[int] = set()
    reader = csv.reader(_decoded_lines(path, broken), delimiter=delimiter, quoting=quoting)
    header = [name.strip() for name in next(reader, [])]
    missing = [name for name in required if name not in header]
    if missing:
        raise DataError(f"{path} has no column {', '.join(missing)}; its header is {', '.join(header) or 'empty'}")
    end = reader.line_num
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:  # e.g. a field over the csv module's size limit: the rest cannot be trusted
            extract.reject(path, end + 1, f"unreadable record ({error}); stopped reading the file")
            return
        start, end = end + 1, reader.line_num
        if not fields:  # a blank line between records
            continue
        if any(start <= number <= end for number in broken):
            extract.reject(path, start, "invalid UTF-8")
        elif len(fields) != len(header):
            extract.reject(path, start, f"expected {len(header)} fields, found {len(fields)}")
        else:
            yield start, dict(zip(header, fields))
