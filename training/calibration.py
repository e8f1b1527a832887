"""Temperature scaling and expected calibration error: so that a score of 0.9 is right 90% of the time."""

from __future__ import annotations

import numpy as np

from serving.probabilities import log_softmax, softmax


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T > 0 minimising the negative log-likelihood of softmax(logits / T).

    A dense search over log T is enough for one scalar, and unlike gradient steps it cannot diverge.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if len(labels) == 0:
        return 1.0
    candidates = np.exp(np.linspace(np.log(0.05), np.log(20.0), 400))
    losses = [-log_softmax(logits / t)[np.arange(len(labels)), labels].mean() for t in candidates]
    return float(candidates[int(np.argmin(losses))])


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    if len(labels) == 0:
        return 0.0
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            error += in_bin.mean() * abs(confidence[in_bin].mean() - correct[in_bin].mean())
    return float(error)


CROSS_FIT_FOLDS = 2


def cross_fitted_calibration(
    logits: np.ndarray, labels: np.ndarray, folds: int = CROSS_FIT_FOLDS, seed: int = 0
) -> dict:
    """The temperature the bundle keeps (fitted on all rows) and ECE numbers that are not measured on the rows
    a temperature was fitted on: the rows are dealt into `folds` parts at random (seeded), each part is
    calibrated with a temperature fitted on the other parts, and ECE is measured on the pooled held-out rows.

    Returns {"method", "rows", "temperature", "ece_before", "ece_after" (held-out; None with fewer rows than
    folds), "ece_after_in_sample" (fitted and measured on all rows: optimistic, shown for comparison),
    "folds": [{"rows", "temperature"}]}. ECE before calibration needs no fit, so it is measured on all rows.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    temperature = fit_temperature(logits, labels)
    result = {
        "method": f"{folds}-fold cross-fit",
        "rows": int(len(labels)),
        "temperature": temperature,
        "ece_before": expected_calibration_error(softmax(logits), labels),
        "ece_after": None,
        "ece_after_in_sample": expected_calibration_error(softmax(logits / temperature), labels),
        "folds": [],
    }
    if len(labels) < folds:
        return result
    order = np.random.default_rng(seed).permutation(len(labels))
    held_out = np.empty_like(logits)
    for k in range(folds):
        test = order[k::folds]
        train = np.setdiff1d(order, test)
        fold_temperature = fit_temperature(logits[train], labels[train])
        held_out[test] = logits[test] / fold_temperature
        result["folds"].append({"rows": int(len(test)), "temperature": fold_temperature})
    result["ece_after"] = expected_calibration_error(softmax(held_out), labels)
    return result
