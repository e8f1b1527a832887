"""`rasid predict --engine ray`: the per-row work of `rasid predict`, in a Ray actor pool on one or many machines.

Ray Data reads the inputs (JSONL, CSV, Parquet: local paths, or any URI Arrow's file systems read, such as
s3://bucket/prefix/) as one Dataset; `map_batches` hands chunks of rows to a pool of actors that each load the
bundle once; the results go to a folder of shards, Parquet (default) or JSONL (`--format jsonl` or a folder
named *.jsonl), in the flat layout of `rasid predict`'s .csv/.parquet output: the input's columns, then
`TASK.label`, `TASK.score`, `TASK.scores`, `truncated`, `skipped_tasks`. Rows keep their input order within
and across shards when the shards are read in name order (Ray's preserve_order is on).

Each actor asks Ray for its share of the CPUs and runs torch with that many threads (serving/threads.py), so the
actors on a machine never start more threads than it has cores (see docs/scale.md for why that matters).
With no --address a Ray is started in this process with this machine's CPUs, and stopped at the end.

Differences from the local engine, by design: no --resume (a failed job is rerun into a new folder), and the
inputs are parsed by Arrow's readers, so a malformed file stops the job (--skip-bad-rows still drops rows
without a text, or without a target for a pair task asked for by name).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from serving import threads
from serving.batch import CHUNK_DOCUMENTS, CHUNK_ROWS, check_tasks, flat_line, predict_chunk, result_schema
from serving.bundle import has_target, no_target
from serving.data_files import parse_row, report_bad_rows
from serving.errors import DataError, RasidError
from serving.input_files import expand_inputs

log = logging.getLogger(__name__)

SHARD_FORMATS = ("parquet", "jsonl")
# Reading and writing files asks Ray for no CPU: the actors take every CPU (their threads are the work), and a
# read task waiting for a free CPU that the actors hold would deadlock the job.
IO_CPUS = 0


def run(args, fmt: str) -> int:
    try:
        import ray
        import ray.data
    except ModuleNotFoundError as error:
        raise RasidError("--engine ray needs Ray: pip install -e '.[ray]' (or pip install 'ray[data]').") from error
    if fmt not in SHARD_FORMATS:
        raise RasidError(
            f"--engine ray writes a folder of Parquet or JSONL shards, not {fmt}; pass --format parquet "
            f"or --format jsonl."
        )
    if args.resume:
        raise RasidError("--resume is for the local engine; rerun an interrupted --engine ray job into a new folder.")
    output = str(args.output)
    if "://" not in output and Path(output).exists() and (not Path(output).is_dir() or any(Path(output).iterdir())):
        raise RasidError(
            f"--output {output} already exists; --engine ray writes its shards into a new (or empty) folder."
        )
    model = Path(args.model).resolve()
    from serving.bundle import read_manifest

    manifest = read_manifest(model)  # here, so a wrong path is one sentence, not an error from every actor
    tasks = check_tasks(manifest, args.tasks)
    inputs = _inputs(args.input, Path(output) if "://" not in output else None)

    started_here = not ray.is_initialized()
    if started_here:
        if args.address:
            ray.init(address=args.address, logging_level=logging.WARNING)
        else:  # Ray's workers inherit this environment: torch's thread settings are made per actor below
            cpus = threads.choose(environ={}).threads  # the CPUs this process may use (affinity, cgroup quota)
            ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING)
    try:
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        per_actor, workers = actor_shares(cpus, args.workers, args.threads)
        if per_actor * workers > cpus:  # Ray would wait forever for actors it has no CPUs for
            raise RasidError(
                f"{workers} worker(s) x {per_actor} thread(s) need {workers * per_actor} CPUs; the Ray "
                f"cluster has {cpus}. Pass fewer --workers or --threads."
            )
        log.info("Ray: %d actor(s) x %d thread(s) on a cluster of %d CPU(s)", workers, per_actor, cpus)
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # shards in name order = the input order
        pair_tasks = [t for t in tasks or [] if manifest.task(t).input == "pair"]
        runs = format_runs(inputs)
        options = {
            "model": str(model),
            "threads": per_actor,
            "tasks": tasks,
            "documents": args.documents,
            "abstain_below": args.abstain_below,
            "abstain_unseen_targets": args.abstain_unseen_targets,
            "precision": args.precision,
            "batch_size": args.batch_size,
            "keep_text": args.keep_text,
            "skip_bad_rows": args.skip_bad_rows,
            "recurring": _recurring(ray, runs, pair_tasks) if args.documents else None,
        }
        # Ray's union interleaves its inputs' blocks, so inputs of different formats (one reader each) run as
        # consecutive jobs, each writing shards named part-JOB-TASK-...: the name order is the input order.
        for part, (kind, paths) in enumerate(runs):
            labelled = _read(ray, kind, paths).map_batches(
                BundleActor,
                batch_size=CHUNK_DOCUMENTS if args.documents else CHUNK_ROWS,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=workers),
                num_cpus=per_actor,
                fn_constructor_kwargs=options,
            )
            names = shard_names(part, fmt)
            io = {"num_cpus": IO_CPUS}
            if fmt == "parquet":
                labelled.write_parquet(output, filename_provider=names, ray_remote_args=io)
            else:  # pandas writes the JSON: full float precision and Arabic as it is
                labelled.write_json(
                    output, filename_provider=names, ray_remote_args=io, force_ascii=False, double_precision=15
                )
    except Exception as error:
        message = _rasid_message(error)
        if message:  # a bad row or bundle seen by an actor: one sentence, as from the local engine
            raise RasidError(message) from error
        raise
    finally:
        if started_here:
            ray.shutdown()
    log.info("wrote the %s shards to %s", fmt, output)
    return 0


def _rasid_message(error: BaseException) -> str | None:
    """The sentence of a RasidError raised in an actor, found in the chain of errors Ray wraps it in (or, once
    Ray has flattened the chain into text, in that text)."""
    seen, pending = set(), [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, RasidError):
            return str(current)
        pending += [current.__cause__, current.__context__, getattr(current, "cause", None)]
    found = re.findall(r"serving\.errors\.\w+: (.+)", str(error))
    return found[-1].strip() if found else None


def actor_shares(cpus: int, workers: int | None, requested_threads: int | None) -> tuple[int, int]:
    """(threads per actor, actors). --threads or RASID_THREADS fix an actor's threads; otherwise the cluster's
    CPUs are split evenly between --workers actors, or one actor per CPU (one-thread actors waste nothing on
    OpenMP synchronisation, and memory is rarely short for a model this size)."""
    choice = threads.choose(requested_threads)
    if choice.source in ("--threads", threads.ENV_VARIABLE):
        per_actor = choice.threads
    else:
        per_actor = max(1, cpus // workers) if workers else 1
    return per_actor, workers or max(1, cpus // per_actor)


def _inputs(specs: list[str], output: Path | None) -> list[str]:
    """Local specs expanded as by the local engine (files, globs, folders); URIs go to Arrow as they are."""
    out, seen = [], set()
    for spec in map(str, specs):
        for path in [spec] if "://" in spec else [str(p.resolve()) for p in expand_inputs([spec], output)]:
            if path not in seen:
                seen.add(path)
                out.append(path)
    return out


def _suffix(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    for suffix in ("jsonl", "csv", "parquet"):
        if name.endswith("." + suffix):
            return suffix
    raise DataError(f"{path}: cannot tell its format; rasid predict reads .jsonl, .csv and .parquet")


def _recurring(ray, runs, pair_tasks: list[str]) -> frozenset[str]:
    """Page furniture that recurs across the input's documents, found over the whole input as the local engine
    does (serving.documents.recurring_lines), so both skip the same lines: one pass over the texts, read by Ray,
    gathered here."""
    from serving.documents import recurring_lines

    def texts():
        for kind, paths in runs:
            for batch in _read(ray, kind, paths).iter_batches(batch_format="pyarrow"):
                for record in batch.to_pylist():
                    row = parse_row(record, "", [])
                    if not isinstance(row, str) and not (pair_tasks and not has_target(row.target)):
                        yield row.text

    return recurring_lines(texts())


def format_runs(inputs: list[str]) -> list[tuple[str, list[str]]]:
    """Consecutive inputs of one format, grouped: [(format, paths), ...] in input order."""
    runs: list[tuple[str, list[str]]] = []
    for path in inputs:
        kind = _suffix(path)
        if runs and runs[-1][0] == kind:
            runs[-1][1].append(path)
        else:
            runs.append((kind, [path]))
    return runs


def _read(ray, kind: str, paths: list[str]):
    if kind == "jsonl":
        # Arrow's reader (lines=False) reads newline-delimited JSON into Arrow blocks like the CSV and Parquet
        # readers; Ray's lines=True reads with pandas, whose blocks could not be batched with Arrow ones
        return ray.data.read_json(paths, num_cpus=IO_CPUS)
    if kind == "csv":
        return ray.data.read_csv(paths, convert_options=_csv_as_text(paths), num_cpus=IO_CPUS)
    return ray.data.read_parquet(paths, num_cpus=IO_CPUS)


def shard_names(part: int, fmt: str):
    """A Ray FilenameProvider naming shards part-JOB-TASK-WRITEID.FORMAT, which sort in input order (Ray's own
    names start with a random id; its Parquet writer insists on the write id somewhere in the name). Defined
    here because Ray is imported only when --engine ray runs."""
    from ray.data.datasource import FilenameProvider

    class ShardNames(FilenameProvider):
        def get_filename_for_task(self, write_uuid, task_index):
            return f"part-{part:05d}-{task_index:06d}-{write_uuid}.{fmt}"

    return ShardNames(file_format=fmt)


def _csv_as_text(paths: list[str]):
    """CSV cells stay text, as the local engine reads them (Arrow would turn an id column of digits into
    numbers); empty cells are missing. Headers are read from local files; remote ones keep Arrow's types."""
    import csv

    import pyarrow as pa
    import pyarrow.csv as pacsv

    columns = {}
    for path in paths:
        if "://" not in path:
            with open(path, encoding="utf-8-sig", newline="") as handle:
                columns.update({name: pa.string() for name in next(csv.reader(handle), [])})
    return pacsv.ConvertOptions(column_types=columns, strings_can_be_null=True)


class BundleActor:
    """Loads the bundle once, then labels each batch of rows it is handed (a pyarrow Table) and returns the
    batch's own columns (less `text`, unless --keep-text) followed by the result columns."""

    def __init__(
        self,
        model: str,
        threads: int,
        tasks,
        documents: bool,
        abstain_below,
        abstain_unseen_targets: bool,
        precision,
        batch_size: int,
        keep_text: bool,
        skip_bad_rows: bool,
        recurring,
    ):
        from serving import threads as thread_rule

        thread_rule.configure(threads)  # before torch starts its OpenMP pool in this worker
        from serving.predictor import Predictor

        self.predictor = Predictor.from_bundle(Path(model), batch_size=batch_size, precision=precision)
        manifest = self.predictor.manifest
        self.tasks, self.documents, self.abstain_below = tasks, documents, abstain_below
        self.abstain_unseen_targets, self.recurring = abstain_unseen_targets, recurring
        self.keep_text, self.skip_bad_rows = keep_text, skip_bad_rows
        self.names = tasks or [t.name for t in manifest.tasks]
        self.pair_tasks = [t for t in tasks or [] if manifest.task(t).input == "pair"]
        self.schema = result_schema(manifest, self.names, documents)
        self.host = os.uname().nodename

    def __call__(self, batch):
        import pyarrow as pa

        keep, rows, bad = [], [], []
        for n, record in enumerate(batch.to_pylist()):
            where = f"row with id {record['id']!r}" if record.get("id") is not None else "a row"
            row = parse_row(record, where, [])
            if not isinstance(row, str) and self.pair_tasks and not has_target(row.target):
                row = no_target(self.pair_tasks)
            if isinstance(row, str):
                bad.append(f"{where}: {row}")
            else:
                keep.append(n)
                rows.append(row)
        report_bad_rows(bad, self.skip_bad_rows, where=f" in one batch on {self.host}")
        carried = batch.take(pa.array(keep, type=pa.int64()))
        if "text" in carried.column_names and not self.keep_text:
            carried = carried.drop_columns(["text"])
        clashes = sorted(set(carried.column_names) & set(self.schema.names))
        if clashes:
            raise DataError(f"input column(s) {clashes} have the names of rasid's output columns; rename them.")
        results = (
            predict_chunk(
                self.predictor,
                rows,
                self.tasks,
                self.documents,
                self.abstain_below,
                self.abstain_unseen_targets,
                self.recurring,
            )
            if rows
            else []
        )
        table = pa.Table.from_pylist(
            [flat_line(result, self.names, self.documents) for result in results], schema=self.schema
        )
        for position, name in enumerate(carried.column_names):
            table = table.add_column(position, carried.schema.field(name), carried.column(name))
        return table
