"""Classification metrics, computed once here so training, evaluation and the baseline agree."""

from __future__ import annotations

from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support


def classification_metrics(gold: list[str], predicted: list[str], labels: list[str]) -> dict:
    """n, accuracy, macro-F1, and precision/recall/F1/support for each of `labels` (all zero for no rows).

    Macro-F1 averages over the labels that occur in `gold` or `predicted` (scikit-learn's own default):
    a head shared by datasets with different label sets (claim stance: ANS has no "unrelated") is not
    scored zero on labels that the evaluated data lacks and the model never predicted.
    """
    if not gold:
        zero = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
        return {"n": 0, "accuracy": 0.0, "macro_f1": 0.0, "per_class": {label: dict(zero) for label in labels}}
    precision, recall, f1, support = precision_recall_fscore_support(gold, predicted, labels=labels, zero_division=0)
    return {
        "n": len(gold),
        "accuracy": float(accuracy_score(gold, predicted)),
        "macro_f1": float(
            f1_score(
                gold,
                predicted,
                labels=[l for l in labels if l in set(gold) | set(predicted)],
                average="macro",
                zero_division=0,
            )
        ),
        "per_class": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support)
        },
    }


STANCEEVAL_CLASSES = ("favor", "against")  # the two classes StanceEval 2024 scores; "None" only counts as an error


def is_target_stance(task: str, labels) -> bool:
    """Target stance is scored with StanceEval too: the task `stance`, or any task labelled Favor/Against."""
    return task == "stance" or {"favor", "against"} <= {label.lower() for label in labels}


def stanceeval_score(gold: list[str], predicted: list[str], targets: list[str]) -> dict:
    """StanceEval 2024 (Mawqif shared task): per target, the mean of F1(Favor) and F1(Against) over that
    target's rows; the score is the mean over targets. Labels match case-insensitively."""
    from sklearn.metrics import f1_score

    if not (len(gold) == len(predicted) == len(targets)):
        raise ValueError("gold, predicted and targets must have one entry per row")
    per_target = {}
    for target in sorted(set(targets)):
        rows = [k for k, t in enumerate(targets) if t == target]
        g = [str(gold[k]).lower() for k in rows]
        p = [str(predicted[k]).lower() for k in rows]
        f1s = f1_score(g, p, labels=list(STANCEEVAL_CLASSES), average=None, zero_division=0)
        per_target[target] = {
            "n": len(rows),
            "f1_favor": float(f1s[0]),
            "f1_against": float(f1s[1]),
            "score": float(f1s.mean()),
        }
    score = sum(v["score"] for v in per_target.values()) / len(per_target) if per_target else 0.0
    return {"score": score, "per_target": per_target}


def confusion(gold: list[str], predicted: list[str], labels: list[str]) -> dict:
    """Counts[gold row][predicted column]. Rows are `labels`; columns are `labels` plus any other predicted
    value (such as "uncertain" or a missing verdict), so every row sums to that label's support."""
    extra = sorted({p for p in predicted if p not in labels})
    columns = list(labels) + extra
    index = {label: k for k, label in enumerate(columns)}
    rows = {label: k for k, label in enumerate(labels)}
    counts = [[0] * len(columns) for _ in labels]
    for g, p in zip(gold, predicted):
        if g in rows:
            counts[rows[g]][index[p]] += 1
    return {"labels": list(labels), "columns": columns, "counts": counts}
