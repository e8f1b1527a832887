"""Late fusion of the encoder's answer with a character n-gram model's, per task.

The two models err differently (the encoder generalises over words it has seen in pretraining; n-grams
catch names, hashtags and spellings the small encoder splits into pieces), so a weighted geometric mean of
their probabilities beats either alone where both are fair. The weight is fitted per task on validation
data (training/fusion.py) and 1.0 means "the encoder alone": a task where n-grams do not help keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from serving.probabilities import softmax
from serving.tfidf import NgramClassifier

FLOOR = 1e-6  # probabilities are floored before the log: one model's certainty must not veto the other


@dataclass
class FusedTask:
    classifier: NgramClassifier
    weight: float  # of the encoder's log-probabilities; the n-gram model gets 1 - weight
    temperature: float = 1.0  # of the fused log-probabilities, fitted after the weight


def fuse(
    encoder_probabilities: np.ndarray, ngram_probabilities: np.ndarray, weight: float, temperature: float = 1.0
) -> np.ndarray:
    """softmax((w log p_encoder + (1 - w) log p_ngram) / T), row by row."""
    logits = weight * np.log(np.maximum(encoder_probabilities, FLOOR)) + (1 - weight) * np.log(
        np.maximum(ngram_probabilities, FLOOR)
    )
    return softmax(logits / temperature)
