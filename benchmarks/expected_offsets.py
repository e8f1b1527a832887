"""Class offsets chosen without labels, for the StanceEval score a model expects of itself (Mawqif stance).

StanceEval averages F1(Favor) and F1(Against) per target, so the answer that maximises it is not always the most
probable one: a rare class is worth more than its probability says. With calibrated probabilities p, the
expected true positives of class c among the rows answered c are the sum of their p_c, the false positives the
sum of 1 - p_c, the missed ones the sum of p_c over the other rows; the probe picks the offsets (Against and
None against Favor, added to the log-probabilities) that maximise the F1 those counts give. It reads only the
probabilities of the rows it answers, never their labels, so nothing is tuned on the scored rows. Printed:
the StanceEval score of the encoder, of its fusion with an n-gram model fitted on the training rows (at 0.5
and at the bundle's weight), each as is, with one set of offsets, and with one set per target.

    .venv/bin/python benchmarks/expected_offsets.py --model models/screen/base-13
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stance_probes import (  # noqa: E402
    OFFSETS,
    add_bundle_and_rows,
    encoder_and_ngrams,
    offset_vector,
    run,
    stance_rows,
    stanceeval,
)
from serving.bundle import load_ngram_models  # noqa: E402
from serving.fusion import FLOOR, fuse  # noqa: E402


def expected_stanceeval(p: np.ndarray, answered: np.ndarray, targets: np.ndarray, labels: list[str]) -> float:
    """The StanceEval score of `answered` if the labels were drawn from p (expected counts, not sampled)."""
    per_target = []
    for target in sorted(set(targets)):
        rows, f1 = targets == target, []
        for label in ("Favor", "Against"):
            c = labels.index(label)
            q, chosen = p[rows][:, c], answered[rows] == c
            tp, fp, fn = q[chosen].sum(), (1 - q[chosen]).sum(), q[~chosen].sum()
            f1.append(2 * tp / max(2 * tp + fp + fn, 1e-9))
        per_target.append(np.mean(f1))
    return 100 * float(np.mean(per_target))


def with_expected_offsets(p: np.ndarray, targets: np.ndarray, labels: list[str], per_target: bool) -> np.ndarray:
    log_p = np.log(np.maximum(p, FLOOR))
    shifted = log_p.copy()
    for group in sorted(set(targets)) if per_target else [None]:
        rows = np.ones(len(p), dtype=bool) if group is None else targets == group
        best = max(
            itertools.product(OFFSETS, OFFSETS),
            key=lambda pair: expected_stanceeval(
                p[rows], (log_p[rows] + offset_vector(pair, labels)).argmax(1), targets[rows], labels
            ),
        )
        shifted[rows] += offset_vector(best, labels)
    return shifted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bundle_and_rows(parser)
    args = parser.parse_args()
    train, val = stance_rows(args.train), stance_rows(args.data)
    encoder, ngram, labels = encoder_and_ngrams(args.model, train, val)
    gold, targets = [r.labels["stance"] for r in val], np.array([r.target for r in val])
    candidates = {"encoder alone": encoder, "fused at 0.5": fuse(encoder, ngram, 0.5)}
    bundle_fusion = load_ngram_models(args.model).get("stance")
    if bundle_fusion is not None:
        weight, temperature = bundle_fusion.weight, bundle_fusion.temperature
        candidates[f"fused at the bundle's weight {weight}"] = fuse(encoder, ngram, weight, temperature)
    print(f"{'StanceEval':<40} {'as is':>6} {'offsets':>8} {'per target':>11}")
    for name, p in candidates.items():
        scores = [stanceeval(p, gold, list(targets), labels)] + [
            stanceeval(with_expected_offsets(p, targets, labels, per_target), gold, list(targets), labels)
            for per_target in (False, True)
        ]
        print(f"{name:<40} {scores[0]:6.1f} {scores[1]:8.1f} {scores[2]:11.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
