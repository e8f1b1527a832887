"""Character n-gram TF-IDF features and a linear classifier over them, with numpy only.

rasid's bundles carry one such classifier per task beside the encoder's heads and fuse the two answers:
character n-grams catch surface cues (names, hashtags, dialect spellings) that a small encoder misses, and
the two models' errors differ. Training fits them with scikit-learn (training/ngram_model.py); this module
is what both training and serving use to turn text into features, so the two can never disagree.

Features follow scikit-learn's `char_wb` analyzer: n-grams of 2-5 characters taken inside each word padded
with spaces, sublinear term frequency (1 + log tf), times idf, L2-normalised. A pair (target, text) is the
text's vector, the target's vector, and their element-wise product (the n-grams both share), side by side.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from serving.probabilities import softmax

NGRAM_RANGE = (2, 5)
WORDS_REMEMBERED = 200_000  # per vocabulary, their n-gram columns; forgotten all at once when full


def char_ngrams(text: str, low: int = NGRAM_RANGE[0], high: int = NGRAM_RANGE[1]) -> list[str]:
    """scikit-learn's char_wb n-grams of lower-cased text: within words, each padded with one space a side."""
    grams = []
    for word in text.lower().split():
        grams += word_ngrams(word, low, high)
    return grams


@lru_cache(maxsize=1 << 18)  # words recur (a long article repeats its own), and cutting one is most of the cost
def word_ngrams(word: str, low: int = NGRAM_RANGE[0], high: int = NGRAM_RANGE[1]) -> tuple[str, ...]:
    word = f" {word} "
    grams = []
    for n in range(low, high + 1):
        if len(word) <= n:
            grams.append(word)  # the whole padded word counts once, however many sizes reach it, as in scikit-learn
            break
        grams += [word[i : i + n] for i in range(len(word) - n + 1)]
    return tuple(grams)


@dataclass
class SparseRow:
    """One text's features: column indices and their weights (L2 norm 1 per part)."""

    indices: np.ndarray
    values: np.ndarray


class TfidfFeatures:
    """A fixed vocabulary (n-gram -> column) and its idf weights."""

    def __init__(self, vocabulary: dict[str, int], idf: np.ndarray):
        self.vocabulary = vocabulary
        self.idf = np.asarray(idf, dtype=np.float32)
        self._word_columns: dict[str, tuple[int, ...]] = {}

    @property
    def size(self) -> int:
        return len(self.vocabulary)

    def weights(self, text: str) -> dict[int, float]:
        """column -> tf-idf weight of one text, L2-normalised."""
        columns = []
        for word in text.lower().split():
            columns += self._columns_of(word)
        if not columns:
            return {}
        counts = Counter(columns)
        kept = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        weights = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * self.idf[kept]
        weights /= np.sqrt(np.dot(weights, weights)) or 1.0
        return dict(zip(kept.tolist(), weights.tolist()))

    def _columns_of(self, word: str) -> tuple[int, ...]:
        """The vocabulary columns of one word's n-grams, remembered: a text is mostly words seen before."""
        columns = self._word_columns.get(word)
        if columns is None:
            if len(self._word_columns) >= WORDS_REMEMBERED:
                self._word_columns.clear()
            vocabulary = self.vocabulary
            columns = tuple(vocabulary[g] for g in word_ngrams(word) if g in vocabulary)
            self._word_columns[word] = columns
        return columns

    def row(self, text: str, target: str | None = None) -> SparseRow:
        """The feature row of a text, or of a (target, text) pair: [text | target | text * target]."""
        text_weights = self.weights(text)
        if target is None:
            items = sorted(text_weights.items())
        else:
            target_weights = self.weights(target)
            shared = {c: w * target_weights[c] for c, w in text_weights.items() if c in target_weights}
            items = [
                *sorted(text_weights.items()),
                *((c + self.size, w) for c, w in sorted(target_weights.items())),
                *((c + 2 * self.size, w) for c, w in sorted(shared.items())),
            ]
        indices = np.fromiter((c for c, _ in items), dtype=np.int64, count=len(items))
        values = np.fromiter((w for _, w in items), dtype=np.float32, count=len(items))
        return SparseRow(indices, values)


class NgramClassifier:
    """Multinomial logistic regression over TfidfFeatures: coef [labels, columns], intercept [labels]."""

    def __init__(self, features: TfidfFeatures, coef: np.ndarray, intercept: np.ndarray, pair: bool):
        self.features = features
        self.coef = np.asarray(coef, dtype=np.float32)
        self.intercept = np.asarray(intercept, dtype=np.float32)
        self.pair = pair
        expected = features.size * (3 if pair else 1)
        if self.coef.shape[1] != expected:
            raise ValueError(f"n-gram classifier has {self.coef.shape[1]} columns, its features {expected}")

    def probabilities(self, texts: list[str], targets: list[str | None] | None = None) -> np.ndarray:
        """[len(texts), labels] probabilities; texts (and targets) already normalised as the bundle does."""
        targets = targets if targets is not None else [None] * len(texts)
        logits = np.empty((len(texts), len(self.intercept)), dtype=np.float32)
        for k, (text, target) in enumerate(zip(texts, targets)):
            row = self.features.row(text, target if self.pair else None)
            logits[k] = self.coef[:, row.indices] @ row.values + self.intercept
        return softmax(logits)
