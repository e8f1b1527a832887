"""How fast serving/tfidf.py turns texts into n-gram features, beside the straightforward per-n-gram version.

The n-gram models of a bundle (late fusion, the article verdict) spend most of their fitting time, and part of
their serving time, cutting texts into character n-grams and looking them up. rasid remembers each word's
n-gram columns; this prints seconds for both ways over the same texts, twice each, alternating (the first
pass of the remembering way also fills its memory), and checks that both give the same weights.

    .venv/bin/python benchmarks/ngram_speed.py --data data/baly_articles.train.jsonl --limit 400
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import read_rows  # noqa: E402

from training.ngram_model import fit_features  # noqa: E402


def per_ngram_weights(features, text: str, low: int = 2, high: int = 5) -> dict[int, float]:
    """The straightforward way: every n-gram of every word cut and looked up, each time."""
    grams = []
    for word in text.lower().split():
        word = f" {word} "
        for n in range(low, high + 1):
            if len(word) <= n:
                grams.append(word)
                break
            grams.extend(word[i : i + n] for i in range(len(word) - n + 1))
    counts = Counter(features.vocabulary[g] for g in grams if g in features.vocabulary)
    weights = {c: (1.0 + math.log(count)) * float(features.idf[c]) for c, count in counts.items()}
    norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
    return {c: w / norm for c, w in weights.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/baly_articles.train.jsonl"))
    parser.add_argument("--limit", type=int, default=400, help="texts to read")
    args = parser.parse_args()
    texts = [row["text"] for row in read_rows(args.data, args.limit)]
    features = fit_features(texts)
    ways = {"per n-gram": lambda text: per_ngram_weights(features, text), "rasid": features.weights}
    print(f"{len(texts)} texts, {sum(len(t.split()) for t in texts):,} words, {features.size:,} n-grams kept")
    for attempt in (1, 2):
        for name, weights in ways.items():
            start = time.perf_counter()
            for text in texts:
                weights(text)
            print(f"pass {attempt}, {name:<10} {time.perf_counter() - start:6.2f} s")
    same = all(
        a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-9 for k in a)
        for a, b in ((ways["per n-gram"](t), ways["rasid"](t)) for t in texts)
    )
    print(f"same weights: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
