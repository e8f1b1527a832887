"""`rasid split`: carve a validation file from a data file, by group, reproducibly."""

from __future__ import annotations

from pathlib import Path

from serving.data_files import read_rows
from serving.options import add_command, add_skip_bad_rows
from training.data import split_rows, write_rows


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "split",
        "split data files into a training and a validation file, by group",
        "rasid split --data data/mawqif.jsonl --train-out data/mawqif.train.jsonl --val-out data/mawqif.val.jsonl",
        description="Split data files into a training and a validation file. Rows sharing a group (their 'group' "
        "column, else their text) stay on one side, each source gives its own share, and a label too "
        "rare to split stays in training. The same seed gives the same split.",
    )
    parser.add_argument(
        "--data", nargs="+", type=Path, required=True, metavar="FILE", help="rasid JSONL/CSV files to split"
    )
    parser.add_argument("--train-out", type=Path, required=True, metavar="FILE", help="training rows go here (JSONL)")
    parser.add_argument("--val-out", type=Path, required=True, metavar="FILE", help="validation rows go here (JSONL)")
    parser.add_argument(
        "--val-fraction", type=float, default=0.1, metavar="X", help="share of the rows for validation, between 0 and 1"
    )
    parser.add_argument("--seed", type=int, default=13, metavar="N", help="seed of the shuffle of the groups")
    add_skip_bad_rows(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    rows = read_rows(args.data, skip_bad_rows=args.skip_bad_rows).rows
    train, val = split_rows(rows, args.val_fraction, args.seed)
    for rows_out, path in ((train, args.train_out), (val, args.val_out)):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_rows(rows_out, path)
    print(f"{len(train)} training rows -> {args.train_out}; {len(val)} validation rows -> {args.val_out}")
    return 0
