"""Why `rasid serve` runs torch in one thread only: a lone paragraph's time when one thread has ever run the
model, against when a second thread has run it too (each such thread gets its own OpenMP thread team).

    python benchmarks/model_thread.py --model MODELS/BUNDLE --data VAL.jsonl [--paragraphs 100]

Each case runs in its own process. Prints milliseconds per paragraph (topic + stance where there is a target).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import read_rows, table  # noqa: E402

CASES = {"one thread loads and runs the model": False, "a second thread has run it too": True}


def measure(model: Path, data: Path, paragraphs: int, second_thread: bool) -> float:
    from serving.predictor import Item, Predictor

    calls = [
        ([Item(r["text"], r.get("target"))], ["topic", "stance"] if r.get("target") else ["topic"])
        for r in read_rows(data, paragraphs)
    ]

    def run_all(predictor) -> float:
        started = time.perf_counter()
        for items, tasks in calls:
            predictor.predict_items(items, tasks)
        return 1000 * (time.perf_counter() - started) / len(calls)

    model_thread = ThreadPoolExecutor(max_workers=1)
    predictor = model_thread.submit(Predictor.from_bundle, model).result()
    model_thread.submit(run_all, predictor).result()  # warm-up
    if second_thread:
        run_all(predictor)  # the main thread runs the model once
    return model_thread.submit(run_all, predictor).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--paragraphs", type=int, default=100)
    parser.add_argument("--second-thread", type=int, help=argparse.SUPPRESS)  # internal: one case, print JSON
    args = parser.parse_args()
    if args.second_thread is not None:
        print(json.dumps(measure(args.model, args.data, args.paragraphs, bool(args.second_thread))))
        return
    rows = []
    for name, second in CASES.items():
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--model",
                str(args.model),
                "--data",
                str(args.data),
                "--paragraphs",
                str(args.paragraphs),
                "--second-thread",
                str(int(second)),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        rows.append([name, json.loads(out.strip().splitlines()[-1])])
    print(
        f"\nms per lone paragraph in the model thread, {args.paragraphs} from {args.data}, {time.strftime('%Y-%m-%d')}"
    )
    print(table(["case", "ms per paragraph"], rows))


if __name__ == "__main__":
    main()
