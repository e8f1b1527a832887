"""`rasid split`: carve a validation file from a data file, by group, reproducibly."""

from __future__ import annotations

from pathlib import Path

from serving.data_files import read_rows
from training.data import split_rows, write_rows


def register(subparsers) -> None:
    parser = subparsers.add_parser("split", help="split data files into train and validation files, by group")
    parser.add_argument("--data", nargs="+", type=Path, required=True, help="rasid JSONL/CSV files")
    parser.add_argument("--train-out", type=Path, required=True)
    parser.add_argument("--val-out", type=Path, required=True)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--skip-bad-rows", action="store_true")
    parser.set_defaults(func=run)


def run(args) -> int:
    rows = read_rows(args.data, skip_bad_rows=args.skip_bad_rows).rows
    train, val = split_rows(rows, args.val_fraction, args.seed)
    for rows_out, path in ((train, args.train_out), (val, args.val_out)):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_rows(rows_out, path)
    print(f"{len(train)} training rows -> {args.train_out}; {len(val)} validation rows -> {args.val_out}")
    return 0
