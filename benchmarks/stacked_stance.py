"""Fusion of encoder and n-grams learnt on out-of-fold training answers, measured on Mawqif's StanceEval score.

`rasid train` chooses the fusion weight on the validation rows (526 for Mawqif), and class offsets chosen on
half of them were noise (stance_probes.py). Here the choices are made on the training rows instead: the
training file is cut in two halves, a stance bundle is trained on each half (screen options) and answers the
other half, an n-gram model fitted on each half does the same, so every training row has an answer from
models that never saw it. On those ~3,000 answers the probe chooses, then scores the full bundle (trained on
every training row) and an n-gram model fitted on every training row on the validation rows:
1. one fusion weight, or one per target, chosen for StanceEval;
2. class offsets added to the fused log-probabilities, one set or one per target;
3. a logistic-regression stacker over both models' log-probabilities, crossed with the target.

    rasid split --data data/mawqif.train.jsonl --train-out models/screen/oof/a.jsonl \
        --val-out models/screen/oof/b.jsonl --val-fraction 0.5
    rasid train --data models/screen/oof/a.jsonl --val-data models/screen/oof/b.jsonl --tasks stance \
        <screen options> --seed 13 --out models/screen/oof/on-a-13          # and on b, answering a
    .venv/bin/python benchmarks/stacked_stance.py --model models/screen/base-13 \
        --halves models/screen/oof/a.jsonl models/screen/oof/b.jsonl \
        --half-models models/screen/oof/on-a-13 models/screen/oof/on-b-13

The half bundles chose their best epoch and temperature on the other half, so their answers there are not
quite out-of-sample; the probe reports the score on those answers too, as a check.
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
from serving.fusion import FLOOR, fuse  # noqa: E402

WEIGHTS = np.round(np.arange(0.0, 1.01, 0.1), 2)


class Choices:
    """Every rule the probe compares, fitted on out-of-fold answers (enc, ng) and applied to others."""

    def __init__(self, enc, ng, gold, targets, labels):
        self.labels, self.names = labels, sorted(set(targets))
        self.gold, self.targets = np.asarray(gold), np.asarray(targets)
        self.enc, self.ng = enc, ng

    def score(self, probabilities, rows=None):
        rows = np.arange(len(self.gold)) if rows is None else rows
        return stanceeval(probabilities[rows], list(self.gold[rows]), list(self.targets[rows]), self.labels)

    def weight(self, rows=None) -> float:
        return max(WEIGHTS, key=lambda w: self.score(fuse(self.enc, self.ng, w), rows))

    def weights_per_target(self) -> dict[str, float]:
        return {t: float(self.weight(np.flatnonzero(self.targets == t))) for t in self.names}

    def offsets(self, log_p, rows=None):
        return max(
            itertools.product(OFFSETS, OFFSETS),
            key=lambda pair: self.score(log_p + offset_vector(pair, self.labels), rows),
        )

    def stacker(self, C: float):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=C, max_iter=5000).fit(
            stack_features(self.enc, self.ng, self.targets, self.names), self.gold
        )


def stack_features(enc, ng, targets, names) -> np.ndarray:
    logs = np.hstack([np.log(np.maximum(enc, FLOOR)), np.log(np.maximum(ng, FLOOR))])
    blocks = [logs] + [logs * (np.asarray(targets) == t)[:, None] for t in names]
    blocks.append(np.array([[t == name for name in names] for t in targets], dtype=float))
    return np.hstack(blocks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bundle_and_rows(parser)
    parser.add_argument("--halves", type=Path, nargs=2, required=True, help="the two halves of the training file")
    parser.add_argument("--half-models", type=Path, nargs=2, required=True, help="bundles trained on each half")
    args = parser.parse_args()

    halves = [stance_rows(p) for p in args.halves]
    parts = [encoder_and_ngrams(args.half_models[k], halves[k], halves[1 - k]) for k in (0, 1)]
    labels = parts[0][2]
    oof_rows = halves[1] + halves[0]
    oof = Choices(
        np.vstack([parts[0][0], parts[1][0]]),
        np.vstack([parts[0][1], parts[1][1]]),
        [r.labels["stance"] for r in oof_rows],
        [r.target for r in oof_rows],
        labels,
    )
    train, val = stance_rows(args.train), stance_rows(args.data)
    enc, ng, _ = encoder_and_ngrams(args.model, train, val)
    test = Choices(enc, ng, [r.labels["stance"] for r in val], [r.target for r in val], labels)

    def show(name, oof_score, val_score):
        print(f"{name:<62} {oof_score:5.1f} {val_score:5.1f}")

    print(f"{'StanceEval':<62} {'oof':>5} {'val':>5}")
    show("encoder alone", oof.score(oof.enc), test.score(enc))
    show("n-grams alone", oof.score(oof.ng), test.score(ng))
    show("fused at 0.5", oof.score(fuse(oof.enc, oof.ng, 0.5)), test.score(fuse(enc, ng, 0.5)))
    w = oof.weight()
    show(
        f"fused at the weight chosen out of fold ({w})",
        oof.score(fuse(oof.enc, oof.ng, w)),
        test.score(fuse(enc, ng, w)),
    )

    def with_offsets(oof_p, val_p):
        oof_log, val_log = np.log(np.maximum(oof_p, FLOOR)), np.log(np.maximum(val_p, FLOOR))
        shift = offset_vector(oof.offsets(oof_log), labels)
        show(
            "  + class offsets " + ", ".join(f"{label} {x:+g}" for label, x in zip(labels, shift) if x),
            oof.score(oof_log + shift),
            test.score(val_log + shift),
        )
        return oof_log, val_log

    oof_log, val_log = with_offsets(fuse(oof.enc, oof.ng, w), fuse(enc, ng, w))
    oof_shifted, val_shifted = oof_log.copy(), val_log.copy()
    for t in oof.names:
        chosen = offset_vector(oof.offsets(oof_log, np.flatnonzero(oof.targets == t)), labels)
        oof_shifted[oof.targets == t] += chosen
        val_shifted[test.targets == t] += chosen
    show("  + class offsets per target", oof.score(oof_shifted), test.score(val_shifted))

    per_target = oof.weights_per_target()

    def weights_of(choices):  # a column: fuse() broadcasts it over the classes
        return np.array([per_target[t] for t in choices.targets])[:, None]

    show(
        "one weight per target (" + ", ".join(f"{x:g}" for x in per_target.values()) + ")",
        oof.score(fuse(oof.enc, oof.ng, weights_of(oof))),
        test.score(fuse(enc, ng, weights_of(test))),
    )

    for C in (0.1, 1.0, 10.0):
        model = oof.stacker(C)
        columns = [list(model.classes_).index(label) for label in labels]
        val_p = model.predict_proba(stack_features(enc, ng, test.targets, oof.names))[:, columns]
        oof_p = model.predict_proba(stack_features(oof.enc, oof.ng, oof.targets, oof.names))[:, columns]
        show(f"stacker, logistic regression C={C}", oof.score(oof_p), test.score(val_p))
        with_offsets(oof_p, val_p)
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
