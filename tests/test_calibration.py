"""Temperature scaling lowers ECE on an over-confident model; ECE itself on a case worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from training.calibration import _log_softmax, expected_calibration_error, fit_temperature


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
    softmax = lambda z: np.exp(_log_softmax(z))
    before = expected_calibration_error(softmax(logits), labels)
    temperature = fit_temperature(logits, labels)
    after = expected_calibration_error(softmax(logits / temperature), labels)
    assert temperature > 2.0  # it finds the over-confidence
    assert after < before / 3 and after < 0.05
    # Argmax is unchanged by a temperature: accuracy stays the same.
    assert (softmax(logits / temperature).argmax(1) == logits.argmax(1)).all()


def test_temperature_of_no_data_is_one():
    assert fit_temperature(np.zeros((0, 3)), np.array([], dtype=int)) == 1.0
