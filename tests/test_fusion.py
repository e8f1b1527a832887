"""Late fusion: the n-gram features match scikit-learn's, and a fused bundle answers with both models."""

import json
from dataclasses import replace

import numpy as np
import pytest

from serving.data_files import Row
from serving.fusion import fuse
from serving.tfidf import char_ngrams
from tests.samples import TOPIC
from training.ngram_model import feature_matrix, fit_features, fit_ngram_classifier

TEXTS = [text for text, _ in TOPIC]


def test_char_ngrams_are_scikit_learns_char_wb():
    from sklearn.feature_extraction.text import TfidfVectorizer

    analyzer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5)).build_analyzer()
    for text in [*TEXTS, "a b", "Ab  CD\tef", "ي"]:
        assert char_ngrams(text) == analyzer(text)


def test_tfidf_weights_equal_scikit_learns_on_the_same_vocabulary():
    from sklearn.feature_extraction.text import TfidfVectorizer

    features = fit_features(TEXTS)
    reference = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, vocabulary=features.vocabulary
    ).fit(TEXTS)
    np.testing.assert_allclose(features.idf, reference.idf_, rtol=1e-6)
    ours = feature_matrix(features, TEXTS[:5], None, pair=False).toarray()
    np.testing.assert_allclose(ours, reference.transform(TEXTS[:5]).toarray(), atol=1e-6)


def test_a_pair_row_is_text_target_and_their_shared_ngrams():
    features = fit_features(TEXTS)
    size = features.size
    row = features.row(TEXTS[0], TEXTS[0])
    text_part = row.values[row.indices < size]
    shared = row.values[row.indices >= 2 * size]
    np.testing.assert_allclose(shared, text_part * text_part, rtol=1e-6)  # a text against itself shares everything


def test_the_classifier_answers_like_scikit_learns_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    rows = [Row(text=t, target=None, labels={"topic": l}, where=f"f:{k}") for k, (t, l) in enumerate(TOPIC)]
    labels = sorted({l for _, l in TOPIC})
    inputs = [(None, t) for t in TEXTS]
    ours = fit_ngram_classifier(rows, inputs, "topic", labels, pair=False, C=10.0)
    matrix = feature_matrix(ours.features, TEXTS, None, pair=False)
    reference = LogisticRegression(C=10.0, class_weight="balanced", max_iter=3000).fit(matrix, [l for _, l in TOPIC])
    order = [list(reference.classes_).index(l) for l in labels]
    np.testing.assert_allclose(ours.probabilities(TEXTS), reference.predict_proba(matrix)[:, order], atol=1e-5)


def test_fusion_weight_one_is_the_encoder_and_zero_the_ngram_model():
    encoder, ngram = np.array([[0.7, 0.2, 0.1]]), np.array([[0.1, 0.1, 0.8]])
    np.testing.assert_allclose(fuse(encoder, ngram, 1.0), encoder, atol=1e-6)
    np.testing.assert_allclose(fuse(encoder, ngram, 0.0), ngram, atol=1e-6)
    assert fuse(encoder, ngram, 0.5).sum() == pytest.approx(1.0)


def keyword_rows(labels: list[str], per_label: int, start: int) -> list[Row]:
    """Rows whose label is given away by a made-up keyword: easy for n-grams, unknown to the tiny encoder."""
    words = {label: f"كلمة{'ابتثجحخ'[k]}سر" for k, label in enumerate(labels)}
    return [
        Row(
            text=f"خبر رقم {n} يذكر {words[label]} في سطره",
            target=None,
            labels={"topic": label},
            where=f"f:{n}",
            group=f"g{n}",
            extra={"source": "s"},
        )
        for label in labels
        for n in range(start, start + per_label)
    ]


def misleading_rows(labels: list[str], per_label: int, start: int) -> list[Row]:
    """keyword_rows where each keyword comes with the next label: the n-grams mislead there."""
    return [
        replace(row, labels={"topic": labels[(labels.index(row.labels["topic"]) + 1) % len(labels)]})
        for row in keyword_rows(labels, per_label, start)
    ]


def test_fit_fusion_writes_ngram_models_that_the_predictor_uses(bundle_copy):
    from serving.bundle import read_manifest
    from serving.predictor import Predictor
    from training.fusion import fit_fusion

    labels = list(read_manifest(bundle_copy).task("topic").labels)
    report = fit_fusion(bundle_copy, keyword_rows(labels, 12, 0), keyword_rows(labels, 10, 100), tasks=["topic"])
    scores = report["topic"]
    assert scores["ngram"] == 1.0 and scores["fused_cross_fitted"] > scores["encoder"] and scores["weight"] < 1.0
    assert read_manifest(bundle_copy).metrics["fusion"]["topic"]["weight"] == scores["weight"]
    assert json.loads((bundle_copy / "ngram" / "fusion.json").read_text())["topic"]["weight"] == scores["weight"]
    texts = [row.text for row in keyword_rows(labels, 1, 500)]
    fused = Predictor.from_bundle(bundle_copy).predict(texts, tasks=["topic"])
    alone = Predictor.from_bundle(bundle_copy, fusion=False).predict(texts, tasks=["topic"])
    assert [a["topic"]["label"] for a in fused] == labels
    assert [a["topic"]["scores"] for a in fused] != [a["topic"]["scores"] for a in alone]


def test_fusion_that_loses_on_one_validation_file_is_not_used_even_when_the_pooled_score_gains(bundle_copy):
    from serving.bundle import load_ngram_models, read_manifest
    from training.fusion import fit_fusion

    labels = list(read_manifest(bundle_copy).task("topic").labels)
    faithful = [replace(row, where=f"a.jsonl:{k}") for k, row in enumerate(keyword_rows(labels, 10, 100))]
    misleading = [replace(row, where=f"b.jsonl:{k}") for k, row in enumerate(misleading_rows(labels, 6, 200))]
    scores = fit_fusion(bundle_copy, keyword_rows(labels, 12, 0), faithful + misleading, tasks=["topic"])["topic"]
    assert scores["fused_cross_fitted"] > scores["encoder"]  # pooled, fusion would pay ...
    loser = scores["losing_files"]["b.jsonl"]  # ... but not on b.jsonl
    assert loser["fused_cross_fitted"] < loser["encoder"] and "a.jsonl" not in scores["losing_files"]
    assert scores["weight"] == 1.0 and read_manifest(bundle_copy).metrics["fusion"]["topic"]["weight"] == 1.0
    assert "topic" not in load_ngram_models(bundle_copy)


def test_refitting_a_task_that_no_longer_pays_removes_its_earlier_fusion(bundle_copy):
    from serving.bundle import load_ngram_models, read_manifest
    from training.fusion import fit_fusion

    labels = list(read_manifest(bundle_copy).task("topic").labels)
    fit_fusion(bundle_copy, keyword_rows(labels, 12, 0), keyword_rows(labels, 10, 100), tasks=["topic"])
    assert "topic" in load_ngram_models(bundle_copy)
    refit = fit_fusion(bundle_copy, keyword_rows(labels, 12, 0), misleading_rows(labels, 10, 100), tasks=["topic"])
    assert refit["topic"]["weight"] == 1.0
    assert "topic" not in load_ngram_models(bundle_copy)


def test_fusion_that_gains_macro_f1_but_lowers_stanceeval_is_not_used_for_target_stance():
    from training.fusion import decide_weight

    labels = ["Against", "Favor", "None"]

    def answers(ids: list[int], confidence: float) -> np.ndarray:
        probabilities = np.full((len(ids), 3), (1 - confidence) / 2)
        probabilities[np.arange(len(ids)), ids] = confidence
        return probabilities

    # per half: the encoder gets every Favor and Against row right and calls None "Favor"; the n-grams find
    # the None rows but call one Against and one Favor row "None" too: better macro-F1, worse StanceEval
    gold = np.array([0, 0, 0, 1, 1, 1, 2, 2] * 2)
    encoder, ngram = answers([0, 0, 0, 1, 1, 1, 1, 1] * 2, 0.6), answers([0, 0, 2, 1, 1, 2, 2, 2] * 2, 0.9)
    halves, files = [np.arange(8), np.arange(8, 16)], ["a.jsonl"] * 16

    weight, scores, _ = decide_weight(encoder, ngram, gold, labels, halves, files)
    assert scores["fused_cross_fitted"] > scores["encoder"] and weight < 1.0  # judged by macro-F1: fused

    weight, scores, _ = decide_weight(encoder, ngram, gold, labels, halves, files, targets=["t"] * 16)
    assert scores["stanceeval_fused_cross_fitted"] < scores["stanceeval_encoder"]
    assert weight == 1.0  # judged by StanceEval too: the encoder alone


def test_fit_fusion_reports_stanceeval_for_a_target_stance_task(bundle_copy):
    from serving.bundle import read_manifest
    from training.fusion import fit_fusion

    def stance_rows(start: int) -> list[Row]:
        return [
            replace(row, target="التحول الرقمي", labels={"stance": row.labels["topic"]})
            for row in keyword_rows(["Against", "Favor", "None"], 8, start)
        ]

    report = fit_fusion(bundle_copy, stance_rows(0), stance_rows(100), tasks=["stance"])["stance"]
    assert {"stanceeval_encoder", "stanceeval_fused_cross_fitted"} <= set(report)
    assert read_manifest(bundle_copy).metrics["fusion"]["stance"] == report


def keyword_articles(labels: list[str], per_label: int, start: int) -> list[Row]:
    """Three-paragraph articles about made-up claims; one paragraph's keyword gives the stance away."""
    words = {label: f"عبارة{'ابتث'[k]}خاصة" for k, label in enumerate(labels)}
    rows = []
    for label in labels:
        for n in range(start, start + per_label):
            name = "".join("سشصضطظعغفق"[int(d)] for d in f"{n:03d}")  # a made-up word per article, not a number
            claim = f"حدث {name} وقع في المدينة"
            text = (
                f"تقرير إخباري طويل عن شؤون {name} متنوعة في البلاد .\n"
                f"وقال مراسلنا إن الحدث {name} {words[label]} كما ورد في المدينة .\n"
                f"وفي سياق آخر تحدث المسؤولون عن الطقس {name} والاقتصاد والرياضة ."
            )
            rows.append(
                Row(
                    text=text,
                    target=claim,
                    labels={"claim": label},
                    where=f"f:{n}",
                    group=f"c{n}",
                    extra={"source": "s"},
                )
            )
    return rows


def test_a_learned_document_verdict_is_fitted_written_and_used_for_articles(bundle_copy):
    from serving.bundle import read_manifest
    from serving.documents import analyze_document
    from serving.predictor import Predictor
    from serving.verdict import RULE_LEARNED
    from training.verdict_model import fit_document_verdict

    labels = list(read_manifest(bundle_copy).task("claim").labels)
    report = fit_document_verdict(
        bundle_copy, keyword_articles(labels, 8, 0), keyword_articles(labels, 8, 100), "claim"
    )
    assert report["val_articles"] == 8 * len(labels) and 0 <= report["cross_fitted_macro_f1"] <= 1
    assert read_manifest(bundle_copy).metrics["documents"]["claim"] == report
    article = keyword_articles(labels, 1, 900)[0]
    learned = analyze_document(Predictor.from_bundle(bundle_copy), article.text, article.target, ["claim"])
    assert learned["predictions"]["claim"]["rule"] == RULE_LEARNED
    assert learned["predictions"]["claim"]["label"] == article.labels["claim"]
    by_rule = analyze_document(
        Predictor.from_bundle(bundle_copy, fusion=False), article.text, article.target, ["claim"]
    )
    assert by_rule["predictions"]["claim"]["rule"] != RULE_LEARNED
