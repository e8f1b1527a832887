"""Cost of the fast paths: macro-F1 per task of every inference path against exact fp32, in one run.

    python benchmarks/fast_path_accuracy.py --model MODELS/BUNDLE --data VAL.jsonl [--limit N] [--no-onnx] [--paths 'fp32,int8 per row']

Paths: rasid's own BERT (serving.encoder) in fp32 (the reference), per-row int8 and bf16; the transformers
model under torch's dynamic int8 (per-tensor activation scales); ONNX Runtime fp32 and int8.

A path may be a default only if it costs at most 0.5 macro-F1 points on every task (issue 6). Which paths
are candidates is decided here; whether a given bundle runs int8 is decided by its own recorded cost
(`rasid check-int8`, serving.precision.fast_precision), since the cost differs between bundles. Also prints paragraphs/s of each path on the same rows, and whether a text's
answer depends on the texts batched with it (max score change, alone vs in a batch of 32).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RASID, REPO, read_rows, table  # noqa: E402

MAX_COST = 0.5  # macro-F1 points


def score(predictor, rows: list[dict]) -> tuple[dict[str, float], float]:
    from serving.predictor import Item
    from training.metrics import classification_metrics

    predictor.predict_items([Item(r["text"], r.get("target")) for r in rows[:32]])  # warm-up
    started = time.perf_counter()
    results = predictor.predict_items([Item(r["text"], r.get("target")) for r in rows])
    speed = len(rows) / (time.perf_counter() - started)
    f1 = {}
    for spec in predictor.manifest.tasks:
        pairs = [
            (r[spec.name], res.predictions[spec.name]["label"])
            for r, res in zip(rows, results)
            if r.get(spec.name) is not None and spec.name in res.predictions
        ]
        if pairs:
            gold, predicted = zip(*pairs)
            f1[spec.name] = 100 * classification_metrics(list(gold), list(predicted), list(spec.labels))["macro_f1"]
    return f1, speed


def batch_dependence(predictor, rows: list[dict]) -> tuple[float, int]:
    """Max |score change| and label flips between predicting each of 32 texts alone and all 32 together."""
    from serving.predictor import Item

    items = [Item(r["text"], r.get("target")) for r in rows[:32]]
    together = predictor.predict_items(items)
    worst, flips = 0.0, 0
    for item, batched in zip(items, together):
        alone = predictor.predict_items([item])[0]
        for task, answer in batched.predictions.items():
            flips += answer["label"] != alone.predictions[task]["label"]
            worst = max(worst, *(abs(p - alone.predictions[task]["scores"][l]) for l, p in answer["scores"].items()))
    return worst, flips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="labelled rasid JSONL (validation split)")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--no-onnx", dest="onnx", action="store_false", help="skip the two ONNX Runtime paths")
    parser.add_argument(
        "--paths",
        help="comma-separated subset of the torch paths, e.g. 'fp32,int8 per row' "
        "(fp32 is always run: it is the reference)",
    )
    args = parser.parse_args()

    from serving.bundle import load_bundle
    from serving.predictor import Predictor

    paths = {
        "fp32": lambda: Predictor.from_bundle(args.model, precision="fp32"),
        "int8 per row": lambda: Predictor.from_bundle(args.model, precision="int8"),
        "bf16": lambda: Predictor.from_bundle(args.model, precision="bf16"),
        "transformers + torch dynamic int8": lambda: Predictor(*load_bundle(args.model), precision="int8"),
    }
    if args.paths:
        wanted = {"fp32", *args.paths.split(",")}
        if wanted - set(paths):
            parser.error(f"unknown --paths {sorted(wanted - set(paths))}; choose from {sorted(paths)}")
        paths = {name: build for name, build in paths.items() if name in wanted}
    rows = read_rows(args.data, args.limit)
    if args.onnx:
        folder = Path(tempfile.mkdtemp(prefix="rasid-bench-onnx-"))
        for name, extra in (("fp32", []), ("int8", ["--int8"])):
            subprocess.run(
                [*RASID, "export", "--model", str(args.model), "--format", "onnx", "--out", str(folder / name), *extra],
                check=True,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            paths[f"onnx {name}"] = lambda name=name: Predictor.from_bundle(args.model, onnx=folder / name)
    scores, dependence = {}, {}
    for name, build in paths.items():
        predictor = build()
        scores[name] = score(predictor, rows)
        dependence[name] = batch_dependence(predictor, rows)
    reference = scores["fp32"][0]
    tasks = list(reference)
    print(f"\nmacro-F1 (points) on {len(rows)} rows of {args.data}, {time.strftime('%Y-%m-%d')}")
    print(
        table(
            ["path", *tasks, "worst cost", "paragraphs/s", "batch effect", "flips"],
            [
                [name, *(f1[t] for t in tasks), max(reference[t] - f1[t] for t in tasks), speed, *dependence[name]]
                for name, (f1, speed) in scores.items()
            ],
        )
    )
    for name in [n for n in ("int8 per row", "bf16") if n in scores]:
        cost = max(reference[t] - scores[name][0][t] for t in tasks)
        verdict = "may be the fast path" if cost <= MAX_COST else "must not be the default"
        print(f"{name} costs at most {cost:.2f} macro-F1 points (limit {MAX_COST}): {verdict}")


if __name__ == "__main__":
    main()
