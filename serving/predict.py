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

import logging
import signal
import sys
from pathlib import Path

from serving import batch
from serving.batch import check_tasks, chunks, output_line, predict_chunk, refuse_clashing_columns
from serving.errors import RasidError
from serving.input_files import accepted_rows, expand_inputs, survey_inputs
from serving.options import add_command, add_precision_option, add_skip_bad_rows
from serving.output_files import FORMATS, open_sink
from serving.progress import Progress, StopRequest, identity

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "predict",
        "label JSONL/CSV/Parquet files with a bundle (resumable; JSONL, CSV or Parquet out)",
        "rasid predict --model models/my-bundle --input news.jsonl --output labelled.parquet",
        description=__doc__,
    )
    p.add_argument("--model", type=Path, required=True, metavar="DIR", help="bundle folder")
    p.add_argument(
        "--input",
        nargs="+",
        required=True,
        metavar="PATH",
        help="files, globs (quoted) or folders of .jsonl/.csv/.parquet rows with 'text' (and 'target'); "
        "read in the order given, a folder's files in name order",
    )
    # text, not a Path: a Path would fold --engine ray's s3://bucket/... into s3:/bucket/...
    p.add_argument(
        "--output",
        required=True,
        metavar="FILE",
        help="file to write, .jsonl, .csv or .parquet (--engine ray: a folder of shards, local or a URI)",
    )
    p.add_argument("--format", choices=FORMATS, help="output format (default: from --output's extension)")
    p.add_argument("--tasks", help="comma-separated tasks (default: every task each row can take)")
    p.add_argument(
        "--documents",
        action="store_true",
        help="each text is a whole article: paragraphs, boilerplate dropped, document verdict",
    )
    p.add_argument(
        "--abstain-below",
        type=float,
        metavar="P",
        help="answer 'uncertain' when the top score is below P (default: never)",
    )
    p.add_argument(
        "--abstain-unseen-targets",
        action="store_true",
        help="answer 'uncertain' (scores kept) when a stance target was not seen in training",
    )
    p.add_argument("--batch-size", type=int, default=32, metavar="N", help="texts per model call")
    add_precision_option(p)
    add_skip_bad_rows(p)
    p.add_argument("--keep-text", action="store_true", help="copy each row's text into the output too")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run after its last complete row (same inputs, bundle, options)",
    )
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process; ray: a Ray actor pool, on this machine or a cluster",
    )
    p.add_argument("--address", help="--engine ray: the cluster to join (e.g. HEAD:6379) (default: a local Ray)")
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="--engine ray: actors, each loading the bundle once (default: one per CPU of the cluster "
        "divided by --threads)",
    )
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
    refuse_clashing_columns(survey.columns, fmt, manifest, task_names, args.documents)
    progress = Progress(output, fmt, identity(files, args), survey.rows)
    start = progress.resume_point() if args.resume else progress.fresh()

    from tqdm import tqdm

    from serving.predictor import Predictor

    predictor = Predictor.from_bundle(args.model, batch_size=args.batch_size, precision=args.precision)
    sink = open_sink(fmt, output, start, survey.columns, manifest, task_names, args.documents)
    size = batch.CHUNK_DOCUMENTS if args.documents else batch.CHUNK_ROWS
    # Furniture that recurs across the input's documents (a site's menu and footer) is found over the whole
    # input, not per chunk, so every chunk, and a resumed run, skips the same lines.
    recurring = None
    if args.documents:
        from serving.documents import recurring_lines

        recurring = recurring_lines(row.text for _, row in accepted_rows(files, pair_tasks))
    written = start.rows
    stop = StopRequest()
    try:
        with (
            stop,
            tqdm(
                total=survey.rows,
                initial=written,
                desc="predict",
                disable=None,
                unit="document" if args.documents else "row",
            ) as bar,
        ):
            for chunk in chunks(accepted_rows(files, pair_tasks), size, skip=written):
                results = predict_chunk(
                    predictor,
                    [row for _, row in chunk],
                    tasks,
                    args.documents,
                    args.abstain_below,
                    args.abstain_unseen_targets,
                    recurring,
                )
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
        print(
            f"rasid predict: stopped by {name} after {written:,} of {survey.rows:,} row(s); {output} holds them "
            f"in input order. To continue, run the same command with --resume.",
            file=sys.stderr,
        )
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
    raise RasidError(
        f"--output {args.output}: cannot tell the format from its extension; name it .jsonl, .csv or "
        f".parquet, or pass --format."
    )
