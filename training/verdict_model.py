"""Fitting a bundle's learned document verdict (serving/verdict.py) for one pair task.

1. the article-level n-gram classifier on the training articles (claim against each article's kept text);
2. the bundle's paragraph answers for the paragraphs closest to the claim, on the validation articles;
3. the aggregator (class-balanced logistic regression) on the validation articles' features. Its score is
   cross-fitted: fitted on one half of the claims, scored on the other, and the reverse; the aggregator
   written into the bundle is then fitted on all of them. Paragraphs are cut and filtered exactly as
   `rasid predict --documents` and /v1/analyze cut and filter them (serving/documents.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from serving.bundle import read_manifest, save_document_models, write_manifest
from serving.data_files import Row
from serving.documents import recurring_lines, sift_paragraphs
from serving.normalize import normalize
from serving.verdict import DocumentModel
from training.data import split_rows
from training.metrics import classification_metrics
from training.ngram_model import fit_logistic, fit_ngram_classifier

log = logging.getLogger(__name__)


def kept_paragraphs(rows: list[Row], max_length: int) -> list[list[str]]:
    """Each article's paragraphs after the furniture filter, in reading order (raw text)."""
    recurring = recurring_lines([row.text for row in rows])
    return [[p.text for p in sift_paragraphs(row.text, row.target, max_length, recurring)[0]] for row in rows]


def fit_document_verdict(bundle: Path, train_rows: list[Row], val_rows: list[Row], task: str, seed: int = 13) -> dict:
    from serving.predictor import Item, Predictor

    manifest = read_manifest(bundle)
    spec = manifest.task(task)
    labels, settings = list(spec.labels), manifest.normalization
    train = [r for r in train_rows if r.labels.get(task) in labels and r.target]
    val = [r for r in val_rows if r.labels.get(task) in labels and r.target]

    def article_inputs(rows, paragraphs):
        return [
            (normalize(r.target, settings), "\n".join(normalize(p, settings) for p in kept))
            for r, kept in zip(rows, paragraphs)
        ]

    train_paragraphs = kept_paragraphs(train, manifest.max_length)
    usable = [k for k, kept in enumerate(train_paragraphs) if kept]
    train = [train[k] for k in usable]
    article = fit_ngram_classifier(
        train, article_inputs(train, [train_paragraphs[k] for k in usable]), task, labels, pair=True
    )
    model = DocumentModel(article, np.zeros((len(labels), 4 * len(labels)), np.float32), np.zeros(len(labels)))
    val_paragraphs = kept_paragraphs(val, manifest.max_length)
    keep = [k for k, kept in enumerate(val_paragraphs) if kept]
    val, val_paragraphs = [val[k] for k in keep], [val_paragraphs[k] for k in keep]
    normalised = [[normalize(p, settings) for p in kept] for kept in val_paragraphs]
    targets = [normalize(r.target, settings) for r in val]
    chosen = [model.closest(paragraphs, target) for paragraphs, target in zip(normalised, targets)]
    items = [Item(val_paragraphs[a][k], val[a].target) for a in range(len(val)) for k in chosen[a]]
    log.info(
        "document verdict '%s': paragraph answers for %d paragraphs of %d validation articles",
        task,
        len(items),
        len(val),
    )
    answers = [a.predictions[task]["scores"] for a in Predictor.from_bundle(bundle).predict_items(items, [task])]
    ends = np.cumsum([len(picks) for picks in chosen])
    features = np.stack(
        [
            model.features(
                paragraphs,
                target,
                np.array([[scores[l] for l in labels] for scores in answers[end - len(picks) : end]]),
            )
            for paragraphs, target, picks, end in zip(normalised, targets, chosen, ends)
        ]
    )
    gold = np.array([labels.index(r.labels[task]) for r in val])
    first = {id(r) for r in split_rows(val, 0.5, seed)[0]}
    in_first = np.array([id(r) in first for r in val])
    predicted = np.zeros(len(val), dtype=int)
    for half in (in_first, ~in_first):
        coef, intercept = fit_logistic(features[~half], [labels[g] for g in gold[~half]], labels, C=1.0)
        predicted[half] = (features[half] @ coef.T + intercept).argmax(1)

    def macro_f1(predicted_ids) -> float:
        return classification_metrics([labels[g] for g in gold], [labels[p] for p in predicted_ids], labels)["macro_f1"]

    article_alone = features[:, : len(labels)].argmax(1)
    report = {
        "cross_fitted_macro_f1": round(macro_f1(predicted), 4),
        "article_ngrams_macro_f1": round(macro_f1(article_alone), 4),
        "val_articles": len(val),
        "train_articles": len(train),
    }
    model.coef, model.intercept = fit_logistic(features, [labels[g] for g in gold], labels, C=1.0)
    save_document_models(bundle, {task: model})
    manifest.metrics.setdefault("documents", {})[task] = report
    write_manifest(bundle, manifest)
    log.info(
        "document verdict '%s': macro-F1 cross-fitted %.4f (article n-grams alone %.4f)",
        task,
        report["cross_fitted_macro_f1"],
        report["article_ngrams_macro_f1"],
    )
    return report
