"""Fitting serving.tfidf's n-gram classifiers: the TF-IDF baseline, and the n-gram half of a fused bundle.

Per task: char_wb 2-5-gram TF-IDF (serving/tfidf.py) and a class-balanced logistic regression whose C is
chosen on a split of the training rows (by group and label, as `rasid split` does), never on the data the
result is reported on. Pair tasks see the text, the target and the n-grams they share as separate blocks,
so "this text repeats the claim's words" is a feature the model can weigh, unlike one bag of both.
"""

from __future__ import annotations

import logging
import math
from collections import Counter

import numpy as np

from serving.data_files import Row
from serving.tfidf import NgramClassifier, TfidfFeatures, char_ngrams
from training.data import split_rows
from training.metrics import classification_metrics

log = logging.getLogger(__name__)

C_GRID = (1.0, 3.0, 10.0, 30.0)
MAX_FEATURES = 150_000  # the most frequent n-grams; the rest add size more than accuracy


def fit_features(texts: list[str], max_features: int = MAX_FEATURES) -> TfidfFeatures:
    """Vocabulary (n-grams in at least two texts, when there are enough texts) and smooth idf, as scikit-learn."""
    frequency = Counter()
    for text in texts:
        frequency.update(set(char_ngrams(text)))
    min_df = 2 if len(texts) >= 1000 else 1  # one-off n-grams are noise on real data, all there is on tiny sets
    kept = sorted((g for g, count in frequency.items() if count >= min_df), key=lambda g: (-frequency[g], g))
    kept = sorted(kept[:max_features])
    vocabulary = {gram: column for column, gram in enumerate(kept)}
    idf = np.array([math.log((1 + len(texts)) / (1 + frequency[g])) + 1 for g in kept], dtype=np.float32)
    return TfidfFeatures(vocabulary, idf)


def feature_matrix(features: TfidfFeatures, texts: list[str], targets: list[str | None] | None, pair: bool):
    from scipy.sparse import csr_matrix

    targets = targets if pair else [None] * len(texts)
    rows = [features.row(text, target) for text, target in zip(texts, targets)]
    indptr = np.cumsum([0] + [len(r.indices) for r in rows])
    indices = np.concatenate([r.indices for r in rows]) if rows else np.zeros(0, np.int64)
    values = np.concatenate([r.values for r in rows]) if rows else np.zeros(0, np.float32)
    return csr_matrix((values, indices, indptr), shape=(len(rows), features.size * (3 if pair else 1)))


def fit_logistic(matrix, gold: list[str], labels: list[str], C: float):
    """Class-balanced logistic regression as (coef [labels, features], intercept) in `labels`' order."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, class_weight="balanced", max_iter=3000)
    model.fit(matrix, gold)
    order = [list(model.classes_).index(label) for label in labels if label in model.classes_]
    coef = np.zeros((len(labels), matrix.shape[1]), dtype=np.float32)
    intercept = np.full(len(labels), -30.0, dtype=np.float32)  # a label absent from training is never chosen
    present = [k for k, label in enumerate(labels) if label in model.classes_]
    if len(model.classes_) == 2:  # scikit-learn keeps one row for two classes: logit(classes_[1]) = w.x + b
        negative, positive = (labels.index(c) for c in model.classes_)
        coef[positive], intercept[positive] = model.coef_[0], model.intercept_[0]
        intercept[negative] = 0.0
    else:
        coef[present], intercept[present] = model.coef_[order], model.intercept_[order]
    return coef, intercept


def choose_c(
    rows: list[Row], inputs: list[tuple[str | None, str]], task: str, labels: list[str], pair: bool, seed: int = 13
) -> float:
    """The C of the best macro-F1 on a group- and label-stratified fifth of the training rows."""
    by_id = {id(row): k for k, row in enumerate(rows)}
    fit_rows, held_rows = split_rows(rows, 0.2, seed)
    if not held_rows or not fit_rows:
        return 10.0
    fit_idx, held_idx = [by_id[id(r)] for r in fit_rows], [by_id[id(r)] for r in held_rows]
    features = fit_features([t for k in fit_idx for t in _texts_of(inputs[k], pair)])
    fit_matrix = feature_matrix(features, [inputs[k][1] for k in fit_idx], [inputs[k][0] for k in fit_idx], pair)
    held_matrix = feature_matrix(features, [inputs[k][1] for k in held_idx], [inputs[k][0] for k in held_idx], pair)
    scores = {}
    for C in C_GRID:
        coef, intercept = fit_logistic(fit_matrix, [rows[k].labels[task] for k in fit_idx], labels, C)
        predicted = np.asarray(held_matrix @ coef.T + intercept).argmax(1)
        scores[C] = classification_metrics(
            [rows[k].labels[task] for k in held_idx], [labels[p] for p in predicted], labels
        )["macro_f1"]
    best = max(C_GRID, key=lambda c: (scores[c], -c))
    log.info(
        "n-gram model, task '%s': C=%g chosen on %d held-out training rows (macro-F1 %s)",
        task,
        best,
        len(held_idx),
        ", ".join(f"C={c:g}: {s:.3f}" for c, s in scores.items()),
    )
    return best


def _texts_of(pair_input: tuple[str | None, str], pair: bool) -> list[str]:
    target, text = pair_input
    return [text, target] if pair and target is not None else [text]


def fit_ngram_classifier(
    rows: list[Row],
    inputs: list[tuple[str | None, str]],
    task: str,
    labels: list[str],
    pair: bool,
    C: float | None = None,
) -> NgramClassifier:
    """Fit one task's classifier on normalised (target, text) inputs; C chosen on held-out rows unless given."""
    C = C if C is not None else choose_c(rows, inputs, task, labels, pair)
    features = fit_features([t for item in inputs for t in _texts_of(item, pair)])
    matrix = feature_matrix(features, [i[1] for i in inputs], [i[0] for i in inputs], pair)
    coef, intercept = fit_logistic(matrix, [row.labels[task] for row in rows], labels, C)
    return NgramClassifier(features, coef, intercept, pair)
