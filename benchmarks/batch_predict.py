"""Batch benchmark: rasid's Predictor over a file vs `pipeline(batch_size=32)` per task, same paragraphs.

    python benchmarks/batch_predict.py --model MODELS/BUNDLE --data VAL.jsonl [--hf-dir EXPORTED | --anchor-model BUNDLE] [--limit 2000]

rasid: Predictor.from_bundle (what `rasid predict` runs), fast path on, all asked tasks in one call. Anchor:
one pipeline per exported task, batch_size 32, truncation on, the text normalised as the export README says.
Prints paragraphs/s for both and the ratio; the fp32 rasid path (--no-fast) is printed too.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import add_anchor_options, anchor_checkpoints, read_rows, table  # noqa: E402


def run_rasid(model: Path, rows: list[dict], tasks: list[str], **options) -> float:
    from serving.predictor import Item, Predictor

    predictor = Predictor.from_bundle(model, batch_size=32, **options)
    kinds = {t.name: t.input for t in predictor.manifest.tasks}
    items = [Item(r["text"], r.get("target")) for r in rows]
    predictor.predict_items(items[:32])  # warm-up
    started = time.perf_counter()
    predictor.predict_items(items, [t for t in tasks if kinds.get(t) == "single"])
    predictor.predict_items([i for i in items if i.target], [t for t in tasks if kinds.get(t) == "pair"])
    return len(rows) / (time.perf_counter() - started)


def run_anchor(hf_dir: Path, rows: list[dict], tasks: list[str]) -> float:
    from transformers import pipeline

    from serving.normalize import normalize

    pipes = {
        t: pipeline("text-classification", model=str(hf_dir / t), device="cpu", trust_remote_code=True) for t in tasks
    }
    for classify in pipes.values():  # warm-up
        classify(normalize(rows[0]["text"]))
    started = time.perf_counter()
    for task, classify in pipes.items():
        if task in {"stance", "claim"}:
            inputs = [
                {"text": normalize(r["target"]), "text_pair": normalize(r["text"])} for r in rows if r.get("target")
            ]
        else:
            inputs = [normalize(r["text"]) for r in rows]
        classify(inputs, batch_size=32, truncation=True)
    return len(rows) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    add_anchor_options(parser)
    parser.add_argument("--tasks", default="topic,stance")
    parser.add_argument("--limit", type=int, default=2000, help="paragraphs read from --data")
    args = parser.parse_args()

    rows, tasks = read_rows(args.data, args.limit), args.tasks.split(",")
    hf_dir = anchor_checkpoints(args)
    anchor = run_anchor(hf_dir, rows, tasks)
    fp32 = run_rasid(args.model, rows, tasks, precision="fp32")
    fast = run_rasid(args.model, rows, tasks)
    print(f"\nbatch prediction, tasks {tasks}, {len(rows)} paragraphs from {args.data}, {time.strftime('%Y-%m-%d')}")
    print(
        table(
            ["run", "paragraphs/s", "ratio to anchor"],
            [
                ["anchor: pipeline per task, batch 32", anchor, 1.0],
                ["rasid fp32 (precision=fp32)", fp32, fp32 / anchor],
                ["rasid default (fast)", fast, fast / anchor],
            ],
        )
    )


if __name__ == "__main__":
    main()
