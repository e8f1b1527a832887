"""`rasid predict`'s inputs: files, globs and folders of JSONL/CSV/Parquet rows, read in order and checked."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from serving.bundle import has_target, no_target
from serving.data_files import parse_row, raw_records, report_bad_rows
from serving.errors import DataError, RasidError
from serving.output_files import PARTIAL_SUFFIX

log = logging.getLogger(__name__)

INPUT_SUFFIXES = (".jsonl", ".csv", ".parquet")


def expand_inputs(specs: list[str], output: Path | None = None) -> list[Path]:
    """The input files in the order given: a folder gives its data files (recursively, by name, hidden ones
    skipped), a glob its matches by name. The output and its progress files are never inputs, so an output
    written inside an input folder is not read back on the next run."""
    own = set()
    if output is not None:
        output = Path(output).resolve()
        own = {output, output.with_name(output.name + PARTIAL_SUFFIX)}
    files, seen = [], set()
    for spec in map(str, specs):
        path = Path(spec)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in INPUT_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not [p for p in found if p.resolve() not in own]:
                raise DataError(f"{spec}: a folder with no .jsonl, .csv or .parquet file in it.")
        elif any(c in spec for c in "*?["):
            import glob

            found = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
            found = [p for p in found if p.suffix.lower() in INPUT_SUFFIXES]
            if not found:
                raise DataError(f"{spec}: no .jsonl, .csv or .parquet file matches this pattern.")
        else:
            if not path.is_file():
                raise DataError(f"{spec}: no such data file")
            if path.suffix.lower() not in INPUT_SUFFIXES:
                raise DataError(
                    f"{spec}: unsupported data file type '{path.suffix}'; rasid predict reads .jsonl, .csv and .parquet"
                )
            if path.resolve() in own:
                raise RasidError("--output must not be one of the --input files.")
            found = [path]
        for p in found:
            key = p.resolve()
            if key not in own and key not in seen:
                seen.add(key)
                files.append(p)
    return files


def _records(path: Path):
    """(where, record dict or the sentence saying why the row is unreadable) for each row of one file."""
    if path.suffix.lower() != ".parquet":
        for number, record in raw_records(path):
            yield f"{path}:{number}", record
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        number = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            for record in batch.to_pylist():
                number += 1
                yield f"{path}:row {number}", record
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"{path}: not a readable Parquet file ({error}).") from error


def _scan(files: list[Path], pair_tasks: list[str]):
    """Every input row in order: (where, record or None, the parsed Row or the reason the row is bad)."""
    for path in files:
        for where, record in _records(path):
            if isinstance(record, str):
                yield where, None, record
                continue
            row = parse_row(record, where, [])  # inputs need no labels: no column is read as one
            if not isinstance(row, str) and pair_tasks and not has_target(row.target):
                row = no_target(pair_tasks)  # tasks asked for by name must all be answered
            yield where, record, row


def accepted_rows(files: list[Path], pair_tasks: list[str]):
    """(record, Row) of each good row, in input order (bad ones were refused or counted by survey_inputs)."""
    for _, record, row in _scan(files, pair_tasks):
        if not isinstance(row, str):
            yield record, row


@dataclass
class Survey:
    rows: int = 0  # good rows
    columns: dict[str, set] = field(default_factory=dict)  # carried column -> the Python types of its values
    bad: list[str] = field(default_factory=list)


def survey_inputs(files: list[Path], pair_tasks: list[str], keep_text: bool, skip_bad_rows: bool) -> Survey:
    """One pass over the inputs before any work: bad rows stop the run here (or are counted), and the output's
    columns and row count are known before its first row is written."""
    survey = Survey()
    for where, record, row in _scan(files, pair_tasks):
        if isinstance(row, str):
            survey.bad.append(f"{where}: {row}")
            continue
        survey.rows += 1
        for key, value in record.items():
            if key != "text" or keep_text:
                types = survey.columns.setdefault(key, set())
                if value is not None:
                    types.add(type(value))
    report_bad_rows(survey.bad, skip_bad_rows)
    return survey
