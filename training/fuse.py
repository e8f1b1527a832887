"""`rasid fuse`: add (or refit) a bundle's n-gram models and fusion weights (training/fusion.py), or with
--documents its learned article verdicts (training/verdict_model.py).

`rasid train` fits the paragraph fusion as its last step; this command does it for a bundle trained without
it, or again after the data grew. Article verdicts need labelled whole articles, so they have their own call.
"""

from __future__ import annotations

from pathlib import Path

from serving.data_files import read_rows
from serving.options import add_command, add_skip_bad_rows


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "fuse",
        "fit a bundle's n-gram models and their fusion weights",
        "rasid fuse --model models/my-bundle --data data/x.train.jsonl --val-data data/x.val.jsonl",
        description="Fit one character n-gram model per task on the training files and its fusion "
        "weight on the validation files, and write them into the bundle (rasid train does "
        "this as its last step). With --documents: fit the learned article verdict of each "
        "pair task on labelled whole articles.",
    )
    p.add_argument("--model", type=Path, required=True, metavar="DIR", help="the bundle to add fusion to")
    p.add_argument("--data", nargs="+", type=Path, required=True, metavar="FILE", help="the bundle's training files")
    p.add_argument(
        "--val-data",
        nargs="+",
        type=Path,
        required=True,
        metavar="FILE",
        help="validation files: the weights are chosen on them (and scored cross-fitted)",
    )
    p.add_argument(
        "--tasks",
        help="comma-separated tasks to (re)fit, keeping the others' (default: all; "
        "with --documents: the pair tasks labelled in the data)",
    )
    p.add_argument(
        "--documents",
        action="store_true",
        help="the files hold whole labelled articles: fit the learned document verdict per pair task",
    )
    add_skip_bad_rows(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from training.fusion import fit_fusion

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    train = read_rows(args.data, args.skip_bad_rows).rows
    val = read_rows(args.val_data, args.skip_bad_rows).rows
    if args.documents:
        return fit_articles(args.model, train, val, tasks)
    for task, scores in fit_fusion(args.model, train, val, tasks=tasks).items():
        cross = scores.get("fused_cross_fitted")
        print(
            f"{task:12s} macro-F1 encoder {100 * scores['encoder']:.1f}  n-grams {100 * scores['ngram']:.1f}  "
            f"fused (cross-fitted) {'n/a' if cross is None else f'{100 * cross:.1f}'}  weight {scores['weight']:.1f}"
        )
    return 0


def fit_articles(model: Path, train, val, tasks: list[str] | None) -> int:
    from serving.bundle import read_manifest
    from serving.errors import DataError
    from training.verdict_model import fit_document_verdict

    pair_tasks = [t.name for t in read_manifest(model).tasks if t.input == "pair"]
    labelled = sorted({task for row in val for task in row.labels} & set(pair_tasks))
    tasks = tasks or labelled
    if not tasks or any(t not in labelled for t in tasks):
        raise DataError(
            f"--documents needs pair tasks labelled in --val-data; the bundle's pair tasks are "
            f"{pair_tasks}, the data labels {labelled}."
        )
    for task in tasks:
        scores = fit_document_verdict(model, train, val, task)
        print(
            f"{task:12s} article verdict macro-F1 (cross-fitted) {100 * scores['cross_fitted_macro_f1']:.1f}  "
            f"article n-grams alone {100 * scores['article_ngrams_macro_f1']:.1f}"
        )
    return 0
