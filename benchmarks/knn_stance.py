"""Nearest neighbours as one more voice on Mawqif stance, measured before anyone builds it into a bundle.

The fine-tuned encoder's pooled vectors of the training rows are a memory; each validation row's answer is
mixed with the labels of its k nearest training rows of the same target (cosine similarity, weighted by
exp(similarity / temperature)):  p = (1 - share) * p_bundle + share * p_neighbours.  k, the temperature and
the share are chosen on one half of the validation rows and scored on the other (and back), so that score is
not tuned on the rows it is measured on; a grid of every setting scored on all rows follows, as an upper bound.

    .venv/bin/python benchmarks/knn_stance.py --model models/screen/base-13
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stance_probes import add_bundle_and_rows, run, stance_inputs, stance_rows, stanceeval  # noqa: E402
from serving.predictor import Predictor  # noqa: E402

NEIGHBOURS, TEMPERATURES, SHARES = (8, 16, 32, 64), (0.02, 0.05, 0.1), (0.1, 0.2, 0.3, 0.5, 0.7)


def pooled_vectors(predictor: Predictor, inputs: list[tuple[str, str]]) -> np.ndarray:
    """Unit-length pooled vectors of (target, text) pairs, as the stance head sees them."""
    vectors = []
    with torch.inference_mode():
        for start in range(0, len(inputs), 64):
            targets, texts = zip(*inputs[start : start + 64])
            batch = predictor.tokenizer(
                list(targets),
                list(texts),
                truncation=True,
                max_length=predictor.manifest.max_length,
                padding=True,
                return_tensors="pt",
            )
            vectors.append(torch.nn.functional.normalize(predictor.model.encode(**batch).float(), dim=-1).numpy())
    return np.concatenate(vectors)


def neighbour_votes(
    similarity: np.ndarray, same_target: np.ndarray, train_labels: np.ndarray, k: int, temperature: float, n_labels: int
) -> np.ndarray:
    """Label distribution of each row's k most similar training rows of its own target."""
    masked = np.where(same_target, similarity, -np.inf)
    nearest = np.argsort(-masked, axis=1)[:, :k]
    weights = np.exp((np.take_along_axis(masked, nearest, 1) - 1.0) / temperature)
    votes = np.zeros((len(similarity), n_labels))
    for label in range(n_labels):
        votes[:, label] = (weights * (train_labels[nearest] == label)).sum(1)
    return votes / votes.sum(1, keepdims=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bundle_and_rows(parser)
    args = parser.parse_args()
    train, val = stance_rows(args.train), stance_rows(args.data)
    served = Predictor.from_bundle(args.model, precision="fp32")
    labels, settings = list(served.manifest.task("stance").labels), served.manifest.normalization
    pairs = [stance_inputs(rows, settings) for rows in (train, val)]
    similarity = pooled_vectors(served, pairs[1]) @ pooled_vectors(served, pairs[0]).T
    same_target = np.array([[v.target == t.target for t in train] for v in val])
    train_labels = np.array([labels.index(r.labels["stance"]) for r in train])
    gold, targets = np.array([r.labels["stance"] for r in val]), np.array([r.target for r in val])
    answers = {
        "served (fused where the bundle fuses)": served.probabilities(pairs[1], ["stance"])["stance"].numpy(),
        "encoder alone": Predictor.from_bundle(args.model, fusion=False, precision="fp32")
        .probabilities(pairs[1], ["stance"])["stance"]
        .numpy(),
    }
    votes = {
        (k, t): neighbour_votes(similarity, same_target, train_labels, k, t, len(labels))
        for k, t in itertools.product(NEIGHBOURS, TEMPERATURES)
    }
    halves = np.array_split(np.random.default_rng(0).permutation(len(val)), 2)

    def score(probabilities, rows):
        return stanceeval(probabilities[rows], list(gold[rows]), list(targets[rows]), labels)

    for name, probabilities in answers.items():
        mixed, chosen = probabilities.copy(), []
        for k, half in enumerate(halves):
            fit = halves[1 - k]
            best = max(
                itertools.product(votes, SHARES),
                key=lambda option: score((1 - option[1]) * probabilities + option[1] * votes[option[0]], fit),
            )
            (neighbours, temperature), share = best
            mixed[half] = (1 - share) * probabilities[half] + share * votes[best[0]][half]
            chosen.append(f"k={neighbours} T={temperature} share={share}")
        everything = np.arange(len(val))
        print(
            f"{name:<40} {score(probabilities, everything):5.1f} -> with neighbours {score(mixed, everything):5.1f}"
            f"  ({'; '.join(chosen)})"
        )
    print("\nEvery setting scored on all rows (tuned on the rows it is scored on: an upper bound), encoder alone:")
    print("k    T      " + " ".join(f"{share:>5}" for share in (0.0, *SHARES, 1.0)))
    for (neighbours, temperature), vote in votes.items():
        mixed = [(1 - share) * answers["encoder alone"] + share * vote for share in (0.0, *SHARES, 1.0)]
        row = " ".join(f"{score(m, np.arange(len(val))):5.1f}" for m in mixed)
        print(f"{neighbours:<4} {temperature:<6} {row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
