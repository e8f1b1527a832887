"""`rasid check-int8`: what per-row int8 costs a bundle on labelled data, recorded in its manifest.

The fast path of `rasid serve`, `predict` and `evaluate` runs int8 only for a bundle whose recorded cost is
at most serving.precision.MAX_INT8_COST macro-F1 points on every task. `rasid train` records it on its own
validation rows; this command does it for a bundle trained before, or on other data.
"""

from __future__ import annotations

from pathlib import Path

from serving.data_files import read_rows
from serving.options import add_command, add_skip_bad_rows
from training.int8_cost import record_int8_cost


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "check-int8",
        "measure what int8 costs a bundle on labelled data and record it (it decides the fast path)",
        "rasid check-int8 --model models/my-bundle --data data/mawqif.val.jsonl",
        description=__doc__,
    )
    p.add_argument("--model", type=Path, required=True, metavar="DIR", help="bundle folder")
    p.add_argument(
        "--data",
        nargs="+",
        type=Path,
        required=True,
        metavar="FILE",
        help="labelled validation files, never training data",
    )
    add_skip_bad_rows(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from serving.precision import MAX_INT8_COST, fast_precision

    rows = read_rows(args.data, args.skip_bad_rows).rows
    manifest = record_int8_cost(args.model, rows, [str(p) for p in args.data], args.skip_bad_rows)
    costs = manifest.metrics["int8_cost"]["macro_f1_points"]
    for task, cost in costs.items():
        print(f"{task}: int8 costs {cost:.2f} macro-F1 points")
    unmeasured = [t.name for t in manifest.tasks if t.name not in costs]
    if unmeasured:
        print(f"not measured, no labelled rows in the data: {', '.join(unmeasured)} (the fast path needs every task)")
    print(
        f"fast path of {args.model}: {fast_precision(manifest)} (int8 only if it costs at most {MAX_INT8_COST} "
        "on every task)"
    )
    return 0
