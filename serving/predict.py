"""`rasid predict`: label JSONL/CSV/Parquet files with a bundle, writing each chunk of rows as it is done.

Inputs (`--input`): files, globs and folders (a folder gives every .jsonl/.csv/.parquet file under it, in name
order), read in the order given. Each row needs `text` (and `target` for pair tasks); its other columns are
carried into the output (`text` too with --keep-text). The output format follows `--output`'s extension or
`--format`:

- `.jsonl`: one line per row: the carried columns, `predictions` {task: {label, score, scores}}, `truncated`,
  `skipped_tasks` (pair tasks not run because the row has no target). With --documents each text is a whole
  article: `predictions` holds the document verdicts and the line adds `paragraphs`, `skipped` and `empty`.
- `.csv` / `.parquet`: the same, flat: the carried columns, then per task `TASK.label`, `TASK.score`,
  `TASK.scores` (a struct of label -> probability in Parquet, JSON text in CSV), `TASK.target_seen` for pair
  tasks (documents add `TASK.rule`),
  `truncated`, `skipped_tasks`, and for documents `empty`, `paragraphs`, `skipped` (JSON text).

A long run survives interruption. Rows are written in input order, and beside the output a progress record
(`OUTPUT.rasid-progress.json`) keeps what the output depends on (each input's size and hash, the bundle's
identity, the options) and how many rows are safely written. SIGTERM or Ctrl-C finishes the chunk in hand and
stops with a valid prefix (exit status 128 + the signal); `--resume` continues after the last complete row,
and refuses with a sentence if an input, the bundle or an option changed. The record is removed when the run
completes. JSONL and CSV are appended in place, so even a kill -9 loses at most the chunk in hand. A Parquet
file is only readable once closed (its footer comes last), so Parquet rows go to `OUTPUT.rasid-partial`,
which replaces the output at every clean stop: a kill -9 there loses the rows since the last clean stop, and
the next run deletes the leftover partial file.

`--engine ray` runs the same per-row work in a Ray actor pool over one or several machines
(serving/predict_ray.py, imported only then).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from serving.errors import DataError, RasidError
# rasid's own row reader and row check, so predict reports bad rows exactly as train and evaluate do
from serving.data_files import MAX_REPORTED_ERRORS, file_sha256, parse_row, raw_records
from serving.options import add_arithmetic_options

log = logging.getLogger(__name__)

CHUNK_ROWS = 256  # rows per predictor call: big enough to fill batches, small enough to stop within seconds
CHUNK_DOCUMENTS = 32  # an article is many paragraphs: fewer per call, so a stop request is still answered soon
INPUT_SUFFIXES = (".jsonl", ".csv", ".parquet")
FORMATS = ("jsonl", "csv", "parquet")
PROGRESS_SUFFIX = ".rasid-progress.json"
PARTIAL_SUFFIX = ".rasid-partial"
PARQUET_ROW_GROUP = 4096  # rows buffered per Parquet row group: one group per 256-row chunk would bloat the file
RESULT_FIELDS = ("predictions", "truncated", "skipped_tasks")
DOCUMENT_FIELDS = ("paragraphs", "skipped", "empty")
# Options that change no output row: a --resume may differ in them (a bigger batch, more threads, a moved bundle
# whose contents are the same). Every other option is recorded and must match, including options added later.
NEUTRAL_OPTIONS = {"model", "input", "output", "resume", "threads", "batch_size", "verbose", "func", "command",
                   "engine", "address", "workers"}


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="label JSONL/CSV/Parquet files with a bundle (resumable; "
                                              "JSONL, CSV or Parquet out)")
    p.add_argument("--model", type=Path, required=True, help="bundle folder")
    p.add_argument("--input", nargs="+", required=True, metavar="PATH",
                   help="files, globs (quoted) or folders of .jsonl/.csv/.parquet rows with 'text' (and 'target'); "
                        "read in the order given, a folder's files in name order")
    # text, not a Path: a Path would fold --engine ray's s3://bucket/... into s3:/bucket/...
    p.add_argument("--output", required=True,
                   help="file to write, .jsonl, .csv or .parquet (--engine ray: a folder of shards, local or a URI)")
    p.add_argument("--format", choices=FORMATS, help="output format (default: from --output's extension)")
    p.add_argument("--tasks", help="comma-separated tasks (default: every task each row can take)")
    p.add_argument("--documents", action="store_true",
                   help="each text is a whole article: paragraphs, boilerplate dropped, document verdict")
    p.add_argument("--abstain-below", type=float, metavar="P",
                   help="answer 'uncertain' when the top score is below P")
    p.add_argument("--abstain-unseen-targets", action="store_true",
                   help="answer 'uncertain' (scores kept) when a stance target was not seen in training")
    p.add_argument("--batch-size", type=int, default=32)
    add_arithmetic_options(p)
    p.add_argument("--skip-bad-rows", action="store_true", help="warn about bad rows instead of stopping")
    p.add_argument("--keep-text", action="store_true", help="copy each row's text into the output too")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run after its last complete row (same inputs, bundle, options)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process (default); ray: a Ray actor pool, on this machine or a cluster")
    p.add_argument("--address", help="--engine ray: the cluster to join (e.g. HEAD:6379); default: a local Ray")
    p.add_argument("--workers", type=int, metavar="N",
                   help="--engine ray: actors, each loading the bundle once (default: one per CPU of the cluster "
                        "divided by --threads)")
    p.set_defaults(func=run)


def run(args) -> int:
    _check_options(args)
    fmt = output_format(args)
    if args.engine == "ray":
        from serving import predict_ray  # Ray is an optional extra: imported only when asked for

        return predict_ray.run(args, fmt)
    if args.address or args.workers is not None:
        raise RasidError("--address and --workers are for --engine ray.")
    from serving.bundle import read_manifest

    output = Path(args.output)
    files = expand_inputs(args.input, output)
    manifest = read_manifest(args.model)
    tasks = check_tasks(manifest, args.tasks)
    pair_tasks = [t for t in tasks or [] if manifest.task(t).input == "pair"]
    survey = survey_inputs(files, pair_tasks, args.keep_text, args.skip_bad_rows)
    task_names = tasks or [t.name for t in manifest.tasks]
    _refuse_clashing_columns(survey.columns, fmt, manifest, task_names, args.documents)
    progress = Progress(output, fmt, identity(files, args), survey.rows)
    start = progress.resume_point() if args.resume else progress.fresh()

    from tqdm import tqdm

    from serving.predictor import Predictor

    predictor = Predictor.from_bundle(args.model, batch_size=args.batch_size, fast=args.fast,
                                      precision=args.precision)
    sink = open_sink(fmt, output, start, survey.columns, manifest, task_names, args.documents)
    size = CHUNK_DOCUMENTS if args.documents else CHUNK_ROWS
    # Furniture that recurs across the input's documents (a site's menu and footer) is found over the whole
    # input, not per chunk, so every chunk, and a resumed run, skips the same lines.
    recurring = None
    if args.documents:
        from serving.documents import recurring_lines

        recurring = recurring_lines(row.text for _, row in accepted_rows(files, pair_tasks))
    written = start.rows
    stop = StopRequest()
    try:
        with stop, tqdm(total=survey.rows, initial=written, desc="predict", disable=None,
                        unit="document" if args.documents else "row") as bar:
            for chunk in chunks(accepted_rows(files, pair_tasks), size, skip=written):
                results = predict_chunk(predictor, [row for _, row in chunk], tasks, args.documents,
                                        args.abstain_below, args.abstain_unseen_targets, recurring)
                sink.write([output_line(record, result, args.keep_text) for (record, _), result in zip(chunk, results)])
                written += len(chunk)
                progress.save(*sink.committed())
                bar.update(len(chunk))
                if stop.signum is not None:
                    break
    finally:
        try:
            sink.close()
        finally:
            progress.save(*sink.committed())  # a Parquet file's rows are safe only once it is closed
    if stop.signum is not None and written < survey.rows:
        name = signal.Signals(stop.signum).name
        print(f"rasid predict: stopped by {name} after {written:,} of {survey.rows:,} row(s); {output} holds them "
              f"in input order. To continue, run the same command with --resume.", file=sys.stderr)
        return 128 + stop.signum
    progress.finish()
    log.info("wrote %d row(s) to %s", written, output)
    return 0


def _check_options(args) -> None:
    if args.abstain_below is not None and not 0 < args.abstain_below <= 1:
        raise RasidError(f"--abstain-below must be in (0, 1], got {args.abstain_below}.")
    if args.batch_size < 1:
        raise RasidError(f"--batch-size must be at least 1, got {args.batch_size}.")
    if args.workers is not None and args.workers < 1:
        raise RasidError(f"--workers must be at least 1, got {args.workers}.")


def output_format(args) -> str:
    if args.format:
        return args.format
    suffix = Path(args.output).suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    if args.engine == "ray":
        return "parquet"  # a folder of shards with no extension: Parquet keeps types and reads fastest
    raise RasidError(f"--output {args.output}: cannot tell the format from its extension; name it .jsonl, .csv or "
                     f".parquet, or pass --format.")


def check_tasks(manifest, requested: str | None) -> list[str] | None:
    """The tasks asked for by name (None: every task each row can take), checked against the bundle."""
    if not requested:
        return None
    tasks = [t.strip() for t in requested.split(",") if t.strip()]
    known = [t.name for t in manifest.tasks]
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise RasidError(f"unknown task(s) {unknown}; this model has {known}.")
    return tasks


# ---- inputs ------------------------------------------------------------------------------------------------


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
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
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
                raise DataError(f"{spec}: unsupported data file type '{path.suffix}'; rasid predict reads .jsonl, "
                                f".csv and .parquet")
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
            if not isinstance(row, str) and pair_tasks and not (row.target and row.target.strip()):
                row = f"no 'target' for task(s) {pair_tasks}"  # tasks asked for by name must all be answered
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
    if survey.bad and not skip_bad_rows:
        shown = "\n  ".join(survey.bad[:MAX_REPORTED_ERRORS])
        more = f"\n  ... and {len(survey.bad) - MAX_REPORTED_ERRORS} more" if len(survey.bad) > MAX_REPORTED_ERRORS else ""
        raise DataError(f"{len(survey.bad)} bad row(s); fix them or pass --skip-bad-rows:\n  {shown}{more}")
    if survey.bad:
        log.warning("skipped %d bad row(s), first: %s", len(survey.bad), survey.bad[0])
    return survey


def chunks(rows, size: int, skip: int = 0):
    """Lists of `size` items from an iterator, after dropping its first `skip` (rows a resumed run has)."""
    chunk = []
    for n, item in enumerate(rows):
        if n < skip:
            continue
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# ---- the work ----------------------------------------------------------------------------------------------


def predict_chunk(predictor, rows, tasks, documents: bool, abstain_below: float | None,
                  abstain_unseen_targets: bool = False, recurring: frozenset[str] | None = None) -> list[dict]:
    """The result of each row ({predictions, truncated, skipped_tasks}, plus the document fields), in order."""
    if documents:
        from serving.documents import analyze_documents

        return analyze_documents(predictor, [r.text for r in rows], [r.target for r in rows], tasks, abstain_below,
                                 abstain_unseen_targets=abstain_unseen_targets, recurring=recurring)
    from serving.predictor import Item

    return [{"predictions": r.predictions, "truncated": r.truncated, "skipped_tasks": r.skipped_tasks}
            for r in predictor.predict_items([Item(r.text, r.target) for r in rows], tasks, abstain_below,
                                             abstain_unseen_targets=abstain_unseen_targets)]


def output_line(record: dict, result: dict, keep_text: bool) -> dict:
    """The input row's own columns (not its text, unless asked), then its result."""
    line = {key: value for key, value in record.items() if key != "text" or keep_text}
    line.update(result)
    return line


def flat_line(line: dict, tasks: list[str], documents: bool) -> dict:
    """A nested output line as flat columns (CSV, Parquet, Ray shards): see the module's docstring."""
    flat = {key: value for key, value in line.items() if key not in RESULT_FIELDS + DOCUMENT_FIELDS}
    for task in tasks:
        answer = line["predictions"].get(task) or {}
        flat[f"{task}.label"] = answer.get("label")
        flat[f"{task}.score"] = answer.get("score")
        flat[f"{task}.scores"] = answer.get("scores")
        flat[f"{task}.target_seen"] = answer.get("target_seen")  # a column for pair tasks only (result_schema)
        if documents:
            flat[f"{task}.rule"] = answer.get("rule")
    flat["truncated"] = bool(line["truncated"])
    flat["skipped_tasks"] = list(line["skipped_tasks"])
    if documents:
        flat["empty"] = bool(line["empty"])
        flat["paragraphs"] = json.dumps(line["paragraphs"], ensure_ascii=False)
        flat["skipped"] = json.dumps(line["skipped"], ensure_ascii=False)
    return flat


def result_columns(manifest, tasks: list[str], documents: bool) -> list[str]:
    return result_schema(manifest, tasks, documents).names


def result_schema(manifest, tasks: list[str], documents: bool):
    """The result columns of the flat layout and their Arrow types: fixed by the bundle, so every Parquet chunk
    and Ray shard agrees. `TASK.target_seen` (whether training saw the row's target) is for pair tasks, null
    where the bundle keeps no list of targets for the task."""
    import pyarrow as pa

    fields = []
    for task in tasks:
        spec = manifest.task(task)
        fields += [pa.field(f"{task}.label", pa.string()), pa.field(f"{task}.score", pa.float64()),
                   pa.field(f"{task}.scores", pa.struct([pa.field(label, pa.float64()) for label in spec.labels]))]
        if spec.input == "pair":
            fields.append(pa.field(f"{task}.target_seen", pa.bool_()))
        if documents:
            fields.append(pa.field(f"{task}.rule", pa.string()))
    fields += [pa.field("truncated", pa.bool_()), pa.field("skipped_tasks", pa.list_(pa.string()))]
    if documents:
        fields += [pa.field("empty", pa.bool_()), pa.field("paragraphs", pa.string()), pa.field("skipped", pa.string())]
    return pa.schema(fields)


def _refuse_clashing_columns(columns: dict, fmt: str, manifest, tasks: list[str], documents: bool) -> None:
    """An input column named like an output field would be silently overwritten: refuse instead."""
    ours = set(RESULT_FIELDS + (DOCUMENT_FIELDS if documents else ())) if fmt == "jsonl" \
        else set(result_columns(manifest, tasks, documents))
    clashes = sorted(set(columns) & ours)
    if clashes:
        raise DataError(f"input column(s) {clashes} have the names of rasid's output fields and would be "
                        f"overwritten; rename them.")


# ---- stopping cleanly --------------------------------------------------------------------------------------


class StopRequest:
    """SIGTERM and SIGINT ask the run to stop after the chunk in hand; a second one stops at once (the rows
    written so far stay a valid, resumable prefix either way). Handlers are installed only in the main thread,
    where Python delivers signals, and the previous ones come back on exit."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        log.warning("%s: finishing the rows in hand, then stopping (send it again to stop at once)",
                    signal.Signals(signum).name)

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


# ---- the progress record and --resume ----------------------------------------------------------------------


@dataclass
class Start:
    rows: int = 0  # rows already in the output
    bytes: int | None = None  # its committed size (JSONL, CSV); None: a fresh output


def identity(files: list[Path], args) -> dict:
    """What the output depends on: each input's size and hash, the bundle's identity, the options."""
    return {"inputs": [{"path": str(p.resolve()), "bytes": p.stat().st_size, "sha256": file_sha256(p)} for p in files],
            "bundle": {"path": str(Path(args.model).resolve()), "sha256": bundle_hash(args.model)},
            "options": _options(args)}


def bundle_hash(folder: Path) -> str:
    """The manifest (tasks, labels, normalisation, calibration, the fast path's measurements) and the heads:
    a retrained or re-checked bundle differs in them, and both are small enough to hash every time."""
    from serving.bundle import HEADS_FILE, MANIFEST_FILE

    digest = hashlib.sha256()
    for name in (MANIFEST_FILE, HEADS_FILE):
        digest.update(file_sha256(Path(folder) / name).encode())
    return digest.hexdigest()


def _options(args) -> dict:
    options = {}
    for key, value in sorted(vars(args).items()):
        if key in NEUTRAL_OPTIONS or callable(value):
            continue
        options[key] = value if value is None or isinstance(value, (bool, int, float, str, list)) else str(value)
    return options


class Progress:
    """The progress record beside the output, written atomically after every chunk."""

    def __init__(self, output: Path, fmt: str, identity: dict, total: int):
        self.output, self.fmt, self.identity, self.total = Path(output), fmt, identity, total
        self.path = self.output.with_name(self.output.name + PROGRESS_SUFFIX)
        self._temporary = self.path.with_name(self.path.name + ".writing")
        self._temporary.unlink(missing_ok=True)  # left only if a kill came between writing and renaming

    def fresh(self) -> Start:
        if self.path.exists():
            log.info("starting over: %s held an interrupted run (pass --resume to continue it instead)", self.output)
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.save(0, None)
        return Start()

    def resume_point(self) -> Start:
        if not self.path.is_file():
            if self.output.exists():
                raise RasidError(f"cannot resume {self.output}: it has no progress record ({self.path.name}), so it is "
                                 f"complete or was not written by rasid predict. Run without --resume to write it again.")
            log.info("nothing to resume at %s: starting", self.output)
            return self.fresh()
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
            rows, size, fmt = int(record["rows"]), record["bytes"], record["format"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise RasidError(f"cannot resume {self.output}: its progress record {self.path} is unreadable ({error}). "
                             f"Run without --resume to start over.") from error
        self._check_same(record, fmt)
        log.info("resuming %s after row %d of %d", self.output, rows, self.total)
        return Start(rows, size)

    def _check_same(self, record: dict, fmt: str) -> None:
        start_over = "Run without --resume to start over."
        where = f"cannot resume {self.output}"
        if fmt != self.fmt:
            raise RasidError(f"{where}: it was being written as {fmt}, not {self.fmt}. {start_over}")
        old, new = record.get("inputs", []), self.identity["inputs"]
        if len(old) != len(new):
            raise RasidError(f"{where}: the run read {len(old)} input file(s) ({', '.join(i['path'] for i in old)}); "
                             f"these inputs are {len(new)} ({', '.join(i['path'] for i in new)}). {start_over}")
        for was, now in zip(old, new):
            if (was["bytes"], was["sha256"]) != (now["bytes"], now["sha256"]):
                raise RasidError(f"{where}: input {now['path']} is not the file the run started with ({was['path']}, "
                                 f"{was['bytes']:,} bytes): its contents changed. {start_over}")
        if record.get("bundle", {}).get("sha256") != self.identity["bundle"]["sha256"]:
            raise RasidError(f"{where}: the bundle {self.identity['bundle']['path']} is not the one the run started "
                             f"with ({record.get('bundle', {}).get('path')}): its manifest or heads differ. {start_over}")
        was, now = record.get("options", {}), self.identity["options"]
        for key in sorted(set(was) | set(now)):
            # an option added to rasid since the run started counts as unset there
            if was.get(key) != now.get(key) and (was.get(key) or now.get(key)):
                raise RasidError(f"{where}: --{key.replace('_', '-')} was {was.get(key)!r} when the run started and is "
                                 f"{now.get(key)!r} now. {start_over}")

    def save(self, rows: int, size: int | None) -> None:
        record = {"rows": rows, "bytes": size, "total": self.total, "format": self.fmt, **self.identity}
        self._temporary.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        os.replace(self._temporary, self.path)

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)


# ---- output files ------------------------------------------------------------------------------------------


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
                raise RasidError(f"cannot resume {self.output}: it is missing or shorter than the {start.rows:,} "
                                 f"row(s) its progress record counts, so it was changed. Run without --resume to "
                                 f"start over.")
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
        self.schema = pa.schema([pa.field(name, arrow) for name, (arrow, _) in carried.items()]
                                + list(result_schema(manifest, tasks, documents)))
        existing = None
        if start.rows:
            try:
                existing = pq.ParquetFile(self.output)
            except (OSError, pa.ArrowException) as error:
                raise RasidError(f"cannot resume {self.output}: it is not a readable Parquet file ({error}). Run "
                                 f"without --resume to start over.") from error
            if existing.metadata.num_rows != start.rows or not existing.schema_arrow.equals(self.schema):
                raise RasidError(f"cannot resume {self.output}: it holds {existing.metadata.num_rows:,} row(s) where "
                                 f"its progress record counts {start.rows:,}, or other columns, so it was changed. "
                                 f"Run without --resume to start over.")
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
        os.replace(self.partial, self.output)
        self._rows, self._pending, self._bytes = self._rows + self._pending, 0, self.output.stat().st_size
