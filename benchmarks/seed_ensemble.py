"""What averaging several bundles' answers (a seed ensemble) would give on one validation set, and what it costs.

Each bundle scores the set alone, then their calibrated probabilities are averaged: the ensemble's answer is
the label with the highest mean. Serving such an ensemble costs one encoder pass per member for each
paragraph (N members: N times the inference time and memory), which is why rasid does not ship one.

    .venv/bin/python benchmarks/seed_ensemble.py --models models/quality/full-13 models/quality/full-14 \\
        --data data/mawqif.val.jsonl --task stance
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from serving.bundle import has_target  # noqa: E402
from serving.data_files import read_rows  # noqa: E402
from serving.normalize import normalize  # noqa: E402
from serving.predictor import Predictor  # noqa: E402
from training.metrics import classification_metrics, stanceeval_score  # noqa: E402


def score(task: str, labels: list[str], probabilities: torch.Tensor, rows) -> dict[str, float]:
    gold = [r.labels[task] for r in rows]
    predicted = [labels[k] for k in probabilities.argmax(1).tolist()]
    scores = {"macro_f1": 100 * classification_metrics(gold, predicted, labels)["macro_f1"]}
    if task == "stance":
        scores["stanceeval"] = 100 * stanceeval_score(gold, predicted, [r.target for r in rows])["score"]
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--no-fusion", dest="fusion", action="store_false", help="the encoders alone")
    args = parser.parse_args()
    task = args.task
    rows = [r for r in read_rows([args.data], tasks=[task]).rows if task in r.labels]
    members = []
    for path in args.models:
        predictor = Predictor.from_bundle(path, fusion=args.fusion, precision="fp32")
        spec = predictor.manifest.task(task)
        settings = predictor.manifest.normalization
        pair = spec.input == "pair"
        inputs = [
            (normalize(r.target, settings), normalize(r.text, settings))
            if pair and has_target(r.target)
            else (normalize(r.text, settings),)
            for r in rows
        ]
        probabilities = predictor.probabilities(inputs, [task])[task].float()
        members.append(probabilities)
        print(f"{path}: {score(task, list(spec.labels), probabilities, rows)}")
    mean = torch.stack(members).mean(0)
    print(f"mean of {len(members)}: {score(task, list(spec.labels), mean, rows)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
