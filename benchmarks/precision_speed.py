"""Speed of each inference precision at small and large calls, in one run: what a lone request and a busy
server see. Each call asks topic + stance for its paragraphs (one single and one pair input each).

    python benchmarks/precision_speed.py --model MODELS/BUNDLE --data VAL.jsonl [--precisions fp32,bf16,int8]

Each precision runs in its own process (a fresh oneDNN cache, as a server starts), one after the other.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import read_rows, table  # noqa: E402

CALLS = {1: 120, 16: 16}  # paragraphs per call -> calls timed


def measure(model: Path, data: Path, precision: str) -> dict[int, float]:
    from serving.predictor import Item, Predictor

    predictor = Predictor.from_bundle(model, precision=precision)
    items = [Item(r["text"], r.get("target")) for r in read_rows(data) if r.get("target")]
    speeds = {}
    for size, calls in CALLS.items():
        chunks = [items[k * size : (k + 1) * size] for k in range(calls)]
        for chunk in chunks[:3]:  # warm-up
            predictor.predict_items(chunk, ["topic", "stance"])
        started = time.perf_counter()
        for chunk in chunks:
            predictor.predict_items(chunk, ["topic", "stance"])
        speeds[size] = size * calls / (time.perf_counter() - started)
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="rasid JSONL with text and target")
    parser.add_argument("--precisions", default="fp32,bf16,int8")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure this precision, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.model, args.data, args.one)))
        return
    rows = []
    for precision in args.precisions.split(","):
        out = subprocess.run(
            [sys.executable, __file__, "--model", str(args.model), "--data", str(args.data), "--one", precision],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        speeds = json.loads(out.strip().splitlines()[-1])
        rows.append([precision, *(speeds[str(size)] for size in CALLS)])
    print(f"\nparagraphs/s, topic + stance, {args.data}, {time.strftime('%Y-%m-%d')}")
    print(table(["precision", *(f"{size} per call" for size in CALLS)], rows))


if __name__ == "__main__":
    main()
