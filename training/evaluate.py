"""`rasid evaluate`: score a bundle (and optionally the TF-IDF baseline beside it) on labelled data.

Per task: n, accuracy, macro-F1, per-class precision/recall/F1/support, expected calibration error, a
confusion matrix, for target stance the StanceEval 2024 score, and a risk-coverage table (what each
`abstain_below` threshold keeps, and how good the kept answers are). With --documents each row's text is a
whole article, classified paragraph by paragraph and scored by its document verdict (serving.documents).
With --abstain-below P, answers scoring below P are "uncertain": counted as wrong in the scores, and the
report says how many answers were kept and how good those were.
"""

from __future__ import annotations

from pathlib import Path

from serving.abstention import check_threshold
from serving.data_files import read_rows
from serving.errors import RasidError
from serving.options import add_command, add_precision_option, add_skip_bad_rows
from training.evaluation import evaluate_model, finish, new_report, parse_tasks, rows_by_task


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "evaluate",
        "score a bundle on labelled data; write report.json/.md and PNGs",
        "rasid evaluate --model models/my-bundle --data data/mawqif.val.jsonl --report reports/mawqif "
        "--baseline --train data/mawqif.train.jsonl",
        description=__doc__,
    )
    p.add_argument("--model", type=Path, required=True, metavar="DIR", help="bundle folder")
    p.add_argument("--data", nargs="+", type=Path, required=True, metavar="FILE", help="labelled JSONL/CSV files")
    p.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="folder for report.json, report.md and the PNGs (default: print the report only)",
    )
    p.add_argument(
        "--documents",
        action="store_true",
        help="each text is a whole article: split, drop boilerplate, score the document verdict",
    )
    p.add_argument("--baseline", action="store_true", help="also train the TF-IDF baseline on --train and compare")
    p.add_argument(
        "--train",
        nargs="+",
        type=Path,
        default=[],
        metavar="FILE",
        help="training files for --baseline (default: none)",
    )
    p.add_argument("--tasks", help="comma-separated tasks (default: every task of the bundle found in the data)")
    p.add_argument(
        "--abstain-below",
        type=float,
        metavar="P",
        help="answer 'uncertain' when the top score is below P, as serving would (see the report's "
        "risk-coverage table to choose P) (default: never)",
    )
    p.add_argument("--batch-size", type=int, default=32, metavar="N", help="texts per model call")
    add_precision_option(p)
    p.add_argument(
        "--no-fusion",
        dest="fusion",
        action="store_false",
        help="the encoder alone, without the bundle's n-gram models (to measure what fusion adds)",
    )
    add_skip_bad_rows(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from serving.predictor import Predictor

    if args.baseline and not args.train:
        raise RasidError("--baseline trains the TF-IDF baseline: give its training files with --train FILE ...")
    if args.batch_size < 1:
        raise RasidError(f"--batch-size must be at least 1, got {args.batch_size}.")
    check_threshold(args.abstain_below)
    predictor = Predictor.from_bundle(
        args.model, batch_size=args.batch_size, precision=args.precision, fusion=args.fusion
    )
    tasks = predictor.check_tasks(parse_tasks(args.tasks))
    rows = read_rows(args.data, args.skip_bad_rows, tasks=tasks).rows
    specs = [predictor.manifest.task(t) for t in tasks]
    report = new_report(args.data, args.documents)
    report["abstain_below"] = args.abstain_below
    by_task = rows_by_task(rows, specs, args.skip_bad_rows)
    report["models"]["rasid"] = {
        "description": f"fine-tuned bundle {args.model} (base {predictor.manifest.base_model}), "
        f"run on {predictor.backend}",
        "tasks": evaluate_model(predictor, by_task, args.documents, args.abstain_below),
    }
    if args.baseline:
        from training.baseline_model import describe, fit_baseline

        baseline = fit_baseline(
            args.train, list(by_task), {s.name for s in specs if s.input == "pair"}, args.skip_bad_rows
        )
        report["models"]["baseline"] = {
            "description": describe(args.train),
            "tasks": evaluate_model(
                baseline,
                rows_by_task(rows, baseline.manifest.tasks, args.skip_bad_rows),
                args.documents,
                args.abstain_below,
            ),
        }
    finish(report, args.report)
    return 0
