"""`rasid baseline`: the classical floor every report shows beside the fine-tuned model.

Per task: TF-IDF of character 2-5-grams within word boundaries (sublinear tf) and a class-balanced
logistic regression with C chosen on held-out training rows (training/baseline_model.py). This module is only the command; it
imports torch and scikit-learn when the command runs, so `rasid serve` never loads them.
"""

from __future__ import annotations

from pathlib import Path

from serving.data_files import read_rows
from serving.errors import DataError
from serving.options import add_command, add_skip_bad_rows
from training.evaluation import evaluate_model, finish, new_report, parse_tasks, rows_by_task


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "baseline",
        "train and score the TF-IDF + logistic-regression baseline",
        "rasid baseline --train data/mawqif.train.jsonl --data data/mawqif.val.jsonl --report reports/base",
        description=__doc__,
    )
    p.add_argument("--train", nargs="+", type=Path, required=True, metavar="FILE", help="labelled training files")
    p.add_argument("--data", nargs="+", type=Path, required=True, metavar="FILE", help="labelled evaluation files")
    p.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="folder for report.json, report.md and the PNGs (default: print the report only)",
    )
    p.add_argument("--tasks", help="comma-separated tasks (default: those labelled in both --train and --data)")
    p.add_argument(
        "--pair-tasks",
        default="",
        help="extra task names that take (target, text); stance, claim and news_claim always do (default: none)",
    )
    p.add_argument("--documents", action="store_true", help="each --data text is a whole article")
    add_skip_bad_rows(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from training.baseline_model import describe, fit_baseline

    requested = parse_tasks(args.tasks)
    rows = read_rows(args.data, args.skip_bad_rows, tasks=requested).rows
    if requested is None:
        in_data = {task for row in rows for task in row.labels}
        train_rows = read_rows(args.train, args.skip_bad_rows, tasks=sorted(in_data)).rows
        requested = sorted(in_data & {task for row in train_rows for task in row.labels})
        if not requested:
            raise DataError("no task has labels in both --train and --data: nothing to compare.")
    pair_tasks = {t.strip() for t in args.pair_tasks.split(",") if t.strip()}
    baseline = fit_baseline(args.train, requested, pair_tasks, args.skip_bad_rows)
    report = new_report(args.data, args.documents)
    by_task = rows_by_task(rows, baseline.manifest.tasks, args.skip_bad_rows)
    report["models"]["baseline"] = {
        "description": describe(args.train),
        "tasks": evaluate_model(baseline, by_task, args.documents),
    }
    finish(report, args.report)
    return 0
