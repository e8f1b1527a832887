"""Cheap changes on top of a trained bundle, measured on Mawqif's StanceEval score before anyone trains for them.

Reads the bundle's encoder answers (alone) and its stance n-gram model's on the validation rows, then prints
the StanceEval score of:
1. the encoder, the n-grams, and their fusion at the bundle's weight;
2. class offsets added to the fused log-probabilities (Against and None against Favor, from -1.5 to 1.5), one
   set for all targets or one per target, chosen on one half of the rows and scored on the other (and back);
3. other n-gram models for the fusion, at C=10 (scikit-learn, char_wb 2-5 unless named): one per target,
   text n-grams crossed with the target, with word 1-2-grams added;
4. the frozen base encoder's mean-pooled embeddings with logistic regression, alone and as a third member.

    .venv/bin/python benchmarks/stance_probes.py --model models/quality/no-aux-13 --base models/base/e5-small-ar
"""

from __future__ import annotations

import argparse
import itertools
import sys
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from serving.bundle import load_ngram_models  # noqa: E402
from serving.data_files import read_rows  # noqa: E402
from serving.errors import RasidError  # noqa: E402
from serving.fusion import fuse  # noqa: E402
from serving.normalize import normalize  # noqa: E402
from serving.predictor import Predictor  # noqa: E402
from training.metrics import stanceeval_score  # noqa: E402
from training.ngram_model import fit_ngram_classifier  # noqa: E402

OFFSETS = np.arange(-1.5, 1.51, 0.25)


def stanceeval(probabilities: np.ndarray, gold: list[str], targets: list[str], labels: list[str]) -> float:
    predicted = [labels[k] for k in np.asarray(probabilities).argmax(1)]
    return 100 * stanceeval_score(gold, predicted, targets)["score"]


def add_bundle_and_rows(parser: argparse.ArgumentParser) -> None:
    """The options every Mawqif stance probe takes: a bundle, its training rows and the rows to score."""
    parser.add_argument("--model", type=Path, required=True, help="a bundle with a stance head")
    parser.add_argument("--train", type=Path, default=Path("data/mawqif.train.jsonl"))
    parser.add_argument("--data", type=Path, default=Path("data/mawqif.val.jsonl"))


def stance_rows(path: Path) -> list:
    """The rows of a data file that carry a stance label."""
    return [r for r in read_rows([path], tasks=["stance"]).rows if "stance" in r.labels]


def stance_inputs(rows, settings) -> list[tuple[str, str]]:
    """(target, text) pairs, normalised as the bundle normalises them."""
    return [(normalize(r.target, settings), normalize(r.text, settings)) for r in rows]


def encoder_and_ngrams(bundle: Path, train, rows) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The bundle's encoder probabilities on rows, and those of an n-gram model fitted on train."""
    predictor = Predictor.from_bundle(bundle, fusion=False, precision="fp32")
    labels, settings = list(predictor.manifest.task("stance").labels), predictor.manifest.normalization
    inputs = stance_inputs(rows, settings)
    encoder = predictor.probabilities(inputs, ["stance"])["stance"].float().numpy()
    ngram_model = fit_ngram_classifier(train, stance_inputs(train, settings), "stance", labels, pair=True)
    ngram = ngram_model.probabilities([x for _, x in inputs], [t for t, _ in inputs])
    return encoder, ngram, labels


def run(main) -> int:
    """Run a probe's main; a missing bundle or a bad data file ends in one sentence, not a traceback."""
    try:
        return main()
    except RasidError as error:
        print(f"{Path(sys.argv[0]).name}: error: {error}", file=sys.stderr)
        return 2


def offset_vector(pair, labels) -> np.ndarray:
    """Class offsets for the log-probabilities: Favor stays at 0, the other two labels get `pair`, in order."""
    vector, favor = np.zeros(len(labels)), labels.index("Favor")
    vector[[k for k in range(len(labels)) if k != favor]] = pair
    return vector


def with_offsets(log_p: np.ndarray, gold, targets, labels, per_target: bool, seed: int = 0) -> float:
    """StanceEval of log_p plus class offsets, each half's offsets chosen on the other half."""
    rows = np.random.default_rng(seed).permutation(len(gold))
    halves, shifted, targets = [rows[::2], rows[1::2]], log_p.copy(), np.asarray(targets)
    gold = np.asarray(gold)
    offset = partial(offset_vector, labels=labels)

    for k, half in enumerate(halves):
        fit = halves[1 - k]
        groups = sorted(set(targets)) if per_target else [None]
        for group in groups:
            chosen = fit if group is None else fit[targets[fit] == group]
            scored = half if group is None else half[targets[half] == group]
            best = max(
                itertools.product(OFFSETS, OFFSETS),
                key=lambda pair: stanceeval(
                    log_p[chosen] + offset(pair), list(gold[chosen]), list(targets[chosen]), labels
                ),
            )
            shifted[scored] = log_p[scored] + offset(best)
    return stanceeval(shifted, list(gold), list(targets), labels)


def ngram_variants(train, val, labels) -> dict[str, np.ndarray]:
    """Validation probabilities of other n-gram models, each fitted on the training rows."""
    import scipy.sparse as sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    targets = sorted({r.target for r in train})

    def crossed(matrix, rows):
        blocks = [matrix] + [sparse.diags([float(r.target == t) for r in rows]) @ matrix for t in targets]
        return sparse.hstack(blocks).tocsr()

    def fitted(x_train, x_val, y):
        model = LogisticRegression(C=10.0, class_weight="balanced", max_iter=3000).fit(x_train, y)
        return model.predict_proba(x_val)[:, [list(model.classes_).index(label) for label in labels]]

    y = np.array([r.labels["stance"] for r in train])
    results = {}
    for name, analyzers in {
        "char_wb": [("char_wb", (2, 5))],
        "+word 1-2": [("char_wb", (2, 5)), ("word", (1, 2))],
    }.items():
        vectorizers = [TfidfVectorizer(analyzer=a, ngram_range=n, sublinear_tf=True, min_df=2) for a, n in analyzers]
        x_train = sparse.hstack([v.fit_transform([r.text for r in train]) for v in vectorizers]).tocsr()
        x_val = sparse.hstack([v.transform([r.text for r in val]) for v in vectorizers]).tocsr()
        results[f"{name}, crossed with the target"] = fitted(crossed(x_train, train), crossed(x_val, val), y)
        per_target = np.zeros((len(val), len(labels)))
        for t in targets:
            fit_rows = np.array([r.target == t for r in train])
            val_rows = np.array([r.target == t for r in val])
            per_target[val_rows] = fitted(x_train[fit_rows], x_val[val_rows], y[fit_rows])
        results[f"{name}, one model per target"] = per_target
    return results


def frozen_base(base: Path, train, val, labels) -> np.ndarray:
    """Logistic regression on the base encoder's mean-pooled 'query: ' embeddings plus the target, one-hot."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoModel, AutoTokenizer

    tokenizer, encoder = AutoTokenizer.from_pretrained(base), AutoModel.from_pretrained(base).eval()
    targets = sorted({r.target for r in train})

    def features(rows):
        vectors = []
        with torch.no_grad():
            for start in range(0, len(rows), 64):
                texts = [f"query: {r.text}" for r in rows[start : start + 64]]
                batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
                mask = batch["attention_mask"].unsqueeze(-1)
                pooled = (encoder(**batch).last_hidden_state * mask).sum(1) / mask.sum(1)
                vectors.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        one_hot = np.array([[r.target == t for t in targets] for r in rows], dtype=np.float32)
        return np.hstack([np.concatenate(vectors), one_hot])

    model = LogisticRegression(C=10.0, class_weight="balanced", max_iter=5000)
    model.fit(features(train), [r.labels["stance"] for r in train])
    return model.predict_proba(features(val))[:, [list(model.classes_).index(label) for label in labels]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bundle_and_rows(parser)
    parser.add_argument("--base", type=Path, required=True, help="the base encoder folder, for probe 4")
    args = parser.parse_args()
    train, val = stance_rows(args.train), stance_rows(args.data)
    predictor = Predictor.from_bundle(args.model, fusion=False, precision="fp32")
    labels, settings = list(predictor.manifest.task("stance").labels), predictor.manifest.normalization
    inputs = stance_inputs(val, settings)
    encoder = predictor.probabilities(inputs, ["stance"])["stance"].float().numpy()
    gold, targets = [r.labels["stance"] for r in val], [r.target for r in val]

    def show(name, probabilities):
        print(f"{name:<58} {stanceeval(probabilities, gold, targets, labels):5.1f}")

    show("encoder alone", encoder)
    fused_task = load_ngram_models(args.model).get("stance")
    if fused_task is not None:
        ngram = fused_task.classifier.probabilities([x for _, x in inputs], [t for t, _ in inputs])
        fused = fuse(encoder, ngram, fused_task.weight)
        show("the bundle's n-grams", ngram)
        show(f"fused at the bundle's weight {fused_task.weight}", fused)
        for per_target in (False, True):
            score = with_offsets(np.log(np.maximum(fused, 1e-6)), gold, targets, labels, per_target)
            print(
                f"{'fused + class offsets' + (' per target' if per_target else '') + ' (cross-fitted)':<58} {score:5.1f}"
            )
    for name, probabilities in ngram_variants(train, val, labels).items():
        show(f"n-grams: {name}", probabilities)
        show("  fused with the encoder at 0.5", fuse(encoder, probabilities, 0.5))
    base = frozen_base(args.base, train, val, labels)
    show("frozen base + logistic regression", base)
    if fused_task is not None:
        show(
            "  geometric mean of encoder, n-grams and frozen base",
            np.exp(np.log(np.maximum(np.stack([encoder, ngram, base]), 1e-6)).mean(0)),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
