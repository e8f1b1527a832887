"""Temperature scaling lowers ECE on an over-confident model; ECE itself on a case worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from serving.probabilities import softmax
from training.calibration import expected_calibration_error, fit_temperature


def test_ece_by_hand():
    # Four rows, 10 bins. Confidences 0.9, 0.9 (bin 0.8-0.9], one right one wrong -> accuracy 0.5, gap 0.4)
    # and 0.6, 0.6 (bin (0.5-0.6], both right -> accuracy 1.0, gap 0.4). ECE = 2/4*0.4 + 2/4*0.4 = 0.4.
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 1])
    assert expected_calibration_error(probabilities, labels, bins=10) == pytest.approx(0.4)


def test_ece_is_zero_when_confidence_equals_accuracy():
    # Confidence 0.75 on 4 rows, 3 right.
    probabilities = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error(probabilities, np.array([0, 0, 0, 1])) == pytest.approx(0.0)
    assert expected_calibration_error(np.zeros((0, 2)), np.array([])) == 0.0


def test_temperature_lowers_ece_on_an_over_confident_model():
    rng = np.random.default_rng(0)
    n, classes = 2000, 3
    labels = rng.integers(0, classes, n)
    # Honest logits are right ~60% of the time; the model multiplies them by 5 (over-confident).
    honest = rng.normal(0, 1, (n, classes))
    honest[np.arange(n), labels] += 1.0
    logits = 5.0 * honest
    before = expected_calibration_error(softmax(logits), labels)
    temperature = fit_temperature(logits, labels)
    after = expected_calibration_error(softmax(logits / temperature), labels)
    assert temperature > 2.0  # it finds the over-confidence
    assert after < before / 3 and after < 0.05
    # Argmax is unchanged by a temperature: accuracy stays the same.
    assert (softmax(logits / temperature).argmax(1) == logits.argmax(1)).all()


def test_temperature_of_no_data_is_one():
    assert fit_temperature(np.zeros((0, 3)), np.array([], dtype=int)) == 1.0


def _over_confident(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    honest = rng.normal(0, 1, (n, 3))
    honest[np.arange(n), labels] += 1.0
    return 5.0 * honest, labels


def test_cross_fit_measures_ece_after_calibration_on_rows_the_temperature_was_not_fitted_on():
    from training.calibration import cross_fitted_calibration

    logits, labels = _over_confident(1000)
    result = cross_fitted_calibration(logits, labels, seed=1)
    # the bundle keeps the temperature fitted on all rows
    assert result["temperature"] == fit_temperature(logits, labels) and result["rows"] == 1000
    assert result["ece_before"] == pytest.approx(expected_calibration_error(softmax(logits), labels))
    # each half is calibrated with the temperature fitted on the other half, and ECE is taken over both halves
    order = np.random.default_rng(1).permutation(1000)
    halves = [order[0::2], order[1::2]]
    held_out = np.empty_like(logits)
    for test, train in (halves, halves[::-1]):
        held_out[test] = logits[test] / fit_temperature(logits[train], labels[train])
    assert result["ece_after"] == pytest.approx(expected_calibration_error(softmax(held_out), labels))
    assert [f["rows"] for f in result["folds"]] == [500, 500]
    assert result["ece_after"] < result["ece_before"] / 3  # a real improvement survives the held-out check


def test_on_few_rows_the_held_out_ece_shows_what_the_in_sample_one_hides():
    from training.calibration import cross_fitted_calibration

    logits, labels = _over_confident(12, seed=3)
    result = cross_fitted_calibration(logits, labels)
    assert result["ece_after_in_sample"] < result["ece_after"]  # fitting and measuring on the same rows flatters


def test_cross_fit_with_fewer_rows_than_folds_does_not_pretend_to_measure():
    from training.calibration import cross_fitted_calibration

    result = cross_fitted_calibration(np.array([[2.0, 0.0]]), np.array([0]))
    assert result["ece_after"] is None and result["folds"] == []


def test_training_records_both_calibration_numbers(trained_bundle):
    from serving.bundle import read_manifest

    validation = read_manifest(trained_bundle).metrics["validation"]
    for scores in validation.values():
        calibration = scores["calibration"]
        assert calibration["method"] == "2-fold cross-fit" and calibration["rows"] == scores["n"]
        assert scores["ece_before_calibration"] == calibration["ece_before"]
        assert scores["ece"] == calibration["ece_after"]  # held out, not in-sample
        assert scores["temperature"] == calibration["temperature"]
