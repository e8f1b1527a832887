"""Classification metrics, computed once here so training, evaluation and the baseline agree."""

from __future__ import annotations

from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support


def classification_metrics(gold: list[str], predicted: list[str], labels: list[str]) -> dict:
    """n, accuracy, macro-F1 over `labels`, and precision/recall/F1/support per label."""
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=labels, zero_division=0)
    return {
        "n": len(gold),
        "accuracy": float(accuracy_score(gold, predicted)) if gold else 0.0,
        "macro_f1": float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0)) if gold else 0.0,
        "per_class": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support)
        },
    }
