"""Training files for two Mawqif screens that use annotation columns rasid's recipe does not carry.

Mawqif's CSV also records how much the annotators agreed on each stance (`stance:confidence`) and why they
chose it (`favor_reason`, `against_reason`, `none_reason`: explicit or implicit, not clear or not related).
From `make data`'s Mawqif training file (its rows, by id), this writes:
- `--agreed-out`: the rows whose stance confidence is at least `--min-confidence`;
- `--reason-out`: every row, with a `reason` label beside its stance (`<stance>_?` where none was given).
It also prints, per target and stance, how many training and validation rows fall below the threshold.
Neither is a validation file: the screens score on `data/mawqif.val.jsonl` as it is (docs/accuracy.md).

    .venv/bin/python benchmarks/mawqif_annotations.py --agreed-out models/screen/mawqif.agreed.jsonl \\
        --reason-out models/screen/mawqif.reason.jsonl
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter
from pathlib import Path

REASON_COLUMNS = {"Favor": "favor_reason", "Against": "against_reason", "None": "none_reason"}


def annotations(csv_path: Path) -> dict[str, dict]:
    with open(csv_path, encoding="utf-8-sig", newline="") as handle:
        return {f"mawqif:{record['ID'].strip()}": record for record in csv.DictReader(handle)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, default=Path("data/mawqif.train.jsonl"))
    parser.add_argument("--val", type=Path, default=Path("data/mawqif.val.jsonl"), help="only counted, not written")
    parser.add_argument("--csv", type=Path, default=Path("../shared/data/mawqif/Mawqif_AllTargets_Train.csv"))
    parser.add_argument("--min-confidence", type=float, default=0.6)
    parser.add_argument("--agreed-out", type=Path, required=True)
    parser.add_argument("--reason-out", type=Path, required=True)
    args = parser.parse_args()
    records = annotations(args.csv)
    rows, val = (
        [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        for path in (args.train, args.val)
    )
    for name, kept_rows in (("training", rows), ("validation", val)):
        below = Counter(
            (row["target"], row["stance"])
            for row in kept_rows
            if float(records[row["id"]]["stance:confidence"]) < args.min_confidence
        )
        every = Counter((row["target"], row["stance"]) for row in kept_rows)
        print(f"{name} rows below {args.min_confidence}, per target and stance:")
        for key in sorted(every):
            print(f"  {key[0]:<24} {key[1]:<8} {below[key]:>4} of {every[key]}")
    agreed = [row for row in rows if float(records[row["id"]]["stance:confidence"]) >= args.min_confidence]
    with_reason = [
        {**row, "reason": records[row["id"]][REASON_COLUMNS[row["stance"]]].strip() or f"{row['stance']}_?"}
        for row in rows
    ]
    for path, kept in ((args.agreed_out, agreed), (args.reason_out, with_reason)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in kept), encoding="utf-8")
        print(f"{path}: {len(kept)} of {len(rows)} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
