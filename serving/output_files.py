"""`rasid predict`'s output files: JSONL and CSV appended in place, Parquet through a partial file; each
knows how many rows are safely written, for the progress record (serving/progress.py)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from serving.batch import flat_line, result_columns, result_schema
from serving.errors import RasidError
from serving.files import publish

FORMATS = ("jsonl", "csv", "parquet")
PARTIAL_SUFFIX = ".rasid-partial"
PARQUET_ROW_GROUP = 4096  # rows buffered per Parquet row group: one group per 256-row chunk would bloat the file


@dataclass
class Start:
    rows: int = 0  # rows already in the output
    bytes: int | None = None  # its committed size (JSONL, CSV); None: a fresh output


def open_sink(fmt: str, output: Path, start: Start, columns: dict, manifest, tasks: list[str], documents: bool):
    if fmt == "jsonl":
        return JsonlSink(output, start)
    if fmt == "csv":
        return CsvSink(output, start, list(columns) + result_columns(manifest, tasks, documents), tasks, documents)
    return ParquetSink(output, start, columns, manifest, tasks, documents)


class AppendSink:
    """A text output appended in place: each chunk is one write, flushed, and the committed size goes into
    the progress record; a resumed run cuts the file back to that size (dropping a chunk a kill interrupted)."""

    def __init__(self, output: Path, start: Start):
        self.output = Path(output)
        if start.bytes is None:
            self.stream = open(self.output, "wb")
            self.stream.write(self.header())
        else:
            if not self.output.is_file() or self.output.stat().st_size < start.bytes:
                raise RasidError(
                    f"cannot resume {self.output}: it is missing or shorter than the {start.rows:,} "
                    f"row(s) its progress record counts, so it was changed. Run without --resume to "
                    f"start over."
                )
            self.stream = open(self.output, "r+b")
            self.stream.truncate(start.bytes)
            self.stream.seek(start.bytes)
        self.stream.flush()
        self._rows, self._bytes = start.rows, self.stream.tell()

    def header(self) -> bytes:
        return b""

    def encode(self, lines: list[dict]) -> bytes:
        raise NotImplementedError

    def write(self, lines: list[dict]) -> None:
        self.stream.write(self.encode(lines))
        self.stream.flush()
        self._rows, self._bytes = self._rows + len(lines), self.stream.tell()

    def committed(self) -> tuple[int, int]:
        """(rows, bytes) fully written: what a resumed run may keep."""
        return self._rows, self._bytes

    def close(self) -> None:
        self.stream.close()


class JsonlSink(AppendSink):
    def encode(self, lines):
        return "".join(json.dumps(line, ensure_ascii=False, default=str) + "\n" for line in lines).encode("utf-8")


class CsvSink(AppendSink):
    def __init__(self, output, start, fieldnames, tasks, documents):
        self.fieldnames, self.tasks, self.documents = fieldnames, tasks, documents
        super().__init__(output, start)

    def _csv(self, rows: list[list]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        return buffer.getvalue().encode("utf-8")

    def header(self):
        return self._csv([self.fieldnames])

    def encode(self, lines):
        flats = [flat_line(line, self.tasks, self.documents) for line in lines]
        return self._csv([[_csv_cell(flat.get(name)) for name in self.fieldnames] for flat in flats])


def _csv_cell(value) -> str:
    """Text as it is, nothing as an empty cell, anything else as JSON (true, 0.93, ["stance"], {...})."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _carried_type(types: set):
    """An Arrow type that holds every value a carried column had; mixed or nested values become JSON text."""
    import pyarrow as pa

    for python, arrow in ((str, pa.string()), (bool, pa.bool_()), (int, pa.int64()), (float, pa.float64())):
        if types <= {python}:
            return arrow, False
    if types <= {int, float}:
        return pa.float64(), False
    return pa.string(), True


class ParquetSink:
    """Parquet rows go to OUTPUT.rasid-partial (a resumed run first copies the output's rows there), which
    replaces OUTPUT when closed: the output is always a complete Parquet file."""

    def __init__(self, output: Path, start: Start, columns: dict, manifest, tasks: list[str], documents: bool):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.output, self.tasks, self.documents = Path(output), tasks, documents
        self.partial = self.output.with_name(self.output.name + PARTIAL_SUFFIX)
        self.partial.unlink(missing_ok=True)  # left by a kill -9: its rows were never confirmed
        carried = {name: _carried_type(types) for name, types in columns.items()}
        self.as_json = {name for name, (_, as_json) in carried.items() if as_json}
        self.schema = pa.schema(
            [pa.field(name, arrow) for name, (arrow, _) in carried.items()]
            + list(result_schema(manifest, tasks, documents))
        )
        existing = None
        if start.rows:
            try:
                existing = pq.ParquetFile(self.output)
            except (OSError, pa.ArrowException) as error:
                raise RasidError(
                    f"cannot resume {self.output}: it is not a readable Parquet file ({error}). Run "
                    f"without --resume to start over."
                ) from error
            if existing.metadata.num_rows != start.rows or not existing.schema_arrow.equals(self.schema):
                raise RasidError(
                    f"cannot resume {self.output}: it holds {existing.metadata.num_rows:,} row(s) where "
                    f"its progress record counts {start.rows:,}, or other columns, so it was changed. "
                    f"Run without --resume to start over."
                )
        self.writer = pq.ParquetWriter(self.partial, self.schema)
        if existing is not None:
            for group in range(existing.num_row_groups):
                self.writer.write_table(existing.read_row_group(group))
        self.buffer: list[dict] = []
        self._rows, self._pending, self._bytes = start.rows, 0, start.bytes

    def write(self, lines: list[dict]) -> None:
        self.buffer += [flat_line(line, self.tasks, self.documents) for line in lines]
        self._pending += len(lines)
        if len(self.buffer) >= PARQUET_ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if not self.buffer:
            return
        for flat in self.buffer:
            for name in self.as_json:
                if flat.get(name) is not None:
                    flat[name] = json.dumps(flat[name], ensure_ascii=False, default=str)
        self.writer.write_table(pa.Table.from_pylist(self.buffer, schema=self.schema))
        self.buffer = []

    def committed(self) -> tuple[int, int | None]:
        """(rows, bytes) of the output file as last closed: rows still in the partial file are not safe yet."""
        return self._rows, self._bytes

    def close(self) -> None:
        try:
            self._flush()
            self.writer.close()
        except BaseException:
            # the output keeps the rows of the last clean close, and the progress record says so
            self.writer.close()
            self.partial.unlink(missing_ok=True)
            raise
        publish(self.partial, self.output)
        self._rows, self._pending, self._bytes = self._rows + self._pending, 0, self.output.stat().st_size
