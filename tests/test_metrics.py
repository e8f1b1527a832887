"""rasid's metrics against scikit-learn on fixed tiny predictions, and the StanceEval score by hand."""

from __future__ import annotations

import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from training.metrics import classification_metrics, confusion, stanceeval_score

LABELS = ["agree", "disagree", "discuss", "unrelated"]
GOLD = ["agree", "agree", "disagree", "discuss", "discuss", "unrelated", "unrelated", "unrelated", "agree", "disagree"]
PRED = ["agree", "discuss", "disagree", "discuss", "unrelated", "unrelated", "unrelated", "agree", "agree", "unrelated"]


def test_classification_metrics_match_sklearn_exactly():
    m = classification_metrics(GOLD, PRED, LABELS)
    assert m["n"] == 10
    assert m["accuracy"] == accuracy_score(GOLD, PRED) == 0.6
    assert m["macro_f1"] == f1_score(GOLD, PRED, labels=LABELS, average="macro", zero_division=0)
    p, r, f, s = precision_recall_fscore_support(GOLD, PRED, labels=LABELS, zero_division=0)
    for k, label in enumerate(LABELS):
        assert m["per_class"][label] == {"precision": p[k], "recall": r[k], "f1": f[k], "support": s[k]}
    # By hand: agree P=2/3 R=2/3; disagree P=1 R=1/2; discuss P=1/2 R=1/2; unrelated P=2/4 R=2/3.
    assert m["per_class"]["agree"]["f1"] == pytest.approx(2 / 3)
    assert m["per_class"]["disagree"]["f1"] == pytest.approx(2 / 3)
    assert m["per_class"]["discuss"]["f1"] == pytest.approx(1 / 2)
    assert m["per_class"]["unrelated"]["f1"] == pytest.approx(4 / 7)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 2 + 4 / 7) / 4)


def test_a_label_neither_present_nor_predicted_is_listed_but_not_averaged():
    m = classification_metrics(["a", "a", "b"], ["a", "b", "b"], ["a", "b", "c"])
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["macro_f1"] == f1_score(["a", "a", "b"], ["a", "b", "b"], average="macro") == pytest.approx(2 / 3)


def test_a_label_predicted_but_absent_from_the_data_counts_zero():
    m = classification_metrics(["a", "a", "b"], ["a", "c", "b"], ["a", "b", "c"])
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_empty_input_gives_zeros():
    m = classification_metrics([], [], ["a", "b"])
    assert (m["n"], m["accuracy"], m["macro_f1"]) == (0, 0.0, 0.0)


def test_confusion_matches_sklearn_and_keeps_extra_predictions():
    c = confusion(GOLD, PRED, LABELS)
    assert c["counts"] == confusion_matrix(GOLD, PRED, labels=LABELS).tolist()
    with_extra = confusion(["a", "b", "b"], ["a", "uncertain", "b"], ["a", "b"])
    assert with_extra["columns"] == ["a", "b", "uncertain"]
    assert with_extra["counts"] == [[1, 0, 0], [0, 1, 1]]


def test_stanceeval_score_by_hand():
    # Target T1 (4 rows):  gold  Favor Favor Against None
    #                      pred  Favor None  Against Against
    #   Favor:   TP=1 FP=0 FN=1 -> P=1,   R=1/2 -> F1 = 2/3
    #   Against: TP=1 FP=1 FN=0 -> P=1/2, R=1   -> F1 = 2/3
    #   T1 = (2/3 + 2/3) / 2 = 2/3
    # Target T2 (3 rows):  gold  favor against against   (lower case: matched case-insensitively)
    #                      pred  Favor Favor   Against
    #   Favor:   TP=1 FP=1 FN=0 -> P=1/2, R=1   -> F1 = 2/3
    #   Against: TP=1 FP=0 FN=1 -> P=1,   R=1/2 -> F1 = 2/3
    #   T2 = 2/3
    # Target T3 (2 rows):  gold None None, pred Favor None
    #   Favor: TP=0 FP=1 -> F1 = 0; Against: no gold, no prediction -> F1 = 0 (zero_division=0)
    #   T3 = 0
    # Score = (2/3 + 2/3 + 0) / 3 = 4/9
    gold = ["Favor", "Favor", "Against", "None", "favor", "against", "against", "None", "None"]
    pred = ["Favor", "None", "Against", "Against", "Favor", "Favor", "Against", "Favor", "None"]
    targets = ["T1"] * 4 + ["T2"] * 3 + ["T3"] * 2
    result = stanceeval_score(gold, pred, targets)
    assert result["per_target"]["T1"] == pytest.approx({"n": 4, "f1_favor": 2 / 3, "f1_against": 2 / 3, "score": 2 / 3})
    assert result["per_target"]["T2"]["score"] == pytest.approx(2 / 3)
    assert result["per_target"]["T3"] == pytest.approx({"n": 2, "f1_favor": 0.0, "f1_against": 0.0, "score": 0.0})
    assert result["score"] == pytest.approx(4 / 9)


def test_stanceeval_needs_aligned_inputs():
    with pytest.raises(ValueError):
        stanceeval_score(["Favor"], ["Favor", "Against"], ["T"])
