"""`rasid fuse`: add (or refit) a bundle's n-gram models and fusion weights (training/fusion.py).

`rasid train` does this as its last step; this command does it for a bundle trained without it, or again
after the training data grew.
"""

from __future__ import annotations

from pathlib import Path

from training.data import read_rows


def register(subparsers) -> None:
    p = subparsers.add_parser("fuse", help="fit a bundle's n-gram models and their fusion weights",
                              description="Fit one character n-gram model per task on the training files and "
                                          "its fusion weight on the validation files, and write them into the "
                                          "bundle. Example: rasid fuse --model models/my-bundle "
                                          "--data data/x.train.jsonl --val-data data/x.val.jsonl")
    p.add_argument("--model", type=Path, required=True, metavar="DIR", help="the bundle to add fusion to")
    p.add_argument("--data", nargs="+", type=Path, required=True, metavar="FILE", help="the bundle's training files")
    p.add_argument("--val-data", nargs="+", type=Path, required=True, metavar="FILE",
                   help="validation files: the weights are chosen on them (and scored cross-fitted)")
    p.add_argument("--tasks", help="comma-separated tasks to (re)fit, keeping the others' (default: all)")
    p.add_argument("--skip-bad-rows", action="store_true", help="warn about bad rows instead of stopping")
    p.set_defaults(func=run)


def run(args) -> int:
    from training.fusion import fit_fusion

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    train = read_rows(args.data, args.skip_bad_rows).rows
    val = read_rows(args.val_data, args.skip_bad_rows).rows
    for task, scores in fit_fusion(args.model, train, val, tasks=tasks).items():
        cross = scores.get("fused_cross_fitted")
        print(f"{task:12s} macro-F1 encoder {100 * scores['encoder']:.1f}  n-grams {100 * scores['ngram']:.1f}  "
              f"fused (cross-fitted) {'n/a' if cross is None else f'{100 * cross:.1f}'}  weight {scores['weight']:.1f}")
    return 0
