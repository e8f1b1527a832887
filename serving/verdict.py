"""A learned document verdict: how a whole article stands toward a claim, from its paragraphs and its words.

The rule "the most confident non-neutral paragraph decides" lets one paragraph speak for an article and
says "unrelated" whenever no paragraph is sure; a bag of n-grams over the whole article beats it on Baly's
articles. This model combines both kinds of evidence with a small logistic regression fitted on labelled
articles (training/verdict_model.py):
  - the article-level n-gram classifier's probabilities (claim against the whole kept text);
  - over the TOP_PARAGRAPHS paragraphs closest to the claim (cosine of their n-gram TF-IDF vectors), per
    label, the highest and the mean paragraph probability, and the closest paragraph's probabilities:
    the paragraph answers matter where the article talks about the claim, not in its other news.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from serving.probabilities import softmax
from serving.tfidf import NgramClassifier

RULE_LEARNED = "learned: paragraph answers and article n-grams"
TOP_PARAGRAPHS = 5


@dataclass
class DocumentModel:
    article: NgramClassifier  # pair: (claim, whole article)
    coef: np.ndarray  # [labels, 4 * labels]
    intercept: np.ndarray  # [labels]

    def closest(self, paragraphs: list[str], target: str, count: int = TOP_PARAGRAPHS) -> list[int]:
        """Indices of the `count` paragraphs closest to the target, closest first (ties: earlier first)."""
        claim = self.article.features.weights(target)
        closeness = [
            sum(w * claim.get(c, 0.0) for c, w in self.article.features.weights(p).items()) for p in paragraphs
        ]
        return sorted(range(len(paragraphs)), key=lambda k: (-closeness[k], k))[:count]

    def features(self, paragraphs: list[str], target: str, closest_scores: np.ndarray) -> np.ndarray:
        """The aggregator's input for one article: its normalised paragraphs and target, and the probabilities
        [closest paragraphs, labels] of the paragraphs `closest` chose, closest first."""
        article = self.article.probabilities(["\n".join(paragraphs)], [target])[0]
        return np.concatenate([article, closest_scores.max(0), closest_scores.mean(0), closest_scores[0]]).astype(
            np.float32
        )

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return softmax(features @ self.coef.T + self.intercept)

    def verdict(self, labels: list[str], paragraphs: list[str], target: str, paragraph_answers: list[dict]) -> dict:
        chosen = self.closest(paragraphs, target)
        scores = np.array([[paragraph_answers[k]["scores"][label] for label in labels] for k in chosen])
        probabilities = self.probabilities(self.features(paragraphs, target, scores))
        best = int(probabilities.argmax())
        return {
            "label": labels[best],
            "score": float(probabilities[best]),
            "scores": {label: float(p) for label, p in zip(labels, probabilities)},
            "rule": RULE_LEARNED,
        }
