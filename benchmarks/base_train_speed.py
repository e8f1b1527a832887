"""Fine-tuning speed of the offline base, trimmed vs untrimmed: sequences/s of full AdamW steps at S128, B16.

Run from the repository root: `python benchmarks/base_train_speed.py` (builds the bases if missing; the
untrimmed one goes to a temporary folder). Both models run in the same process so the numbers compare.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

from tests.e5_sentences import ARABIC_SENTENCES  # noqa: E402
from training.base_encoder import DEFAULT_BASE_DIR, ensure_base  # noqa: E402

THREADS = 2  # this machine's cores
BATCH, LENGTH = 16, 128
WARMUP, STEPS = 2, 6  # timed steps after warm-up; report the median
NUM_LABELS = 3


def seqs_per_second(folder: Path) -> tuple[float, int]:
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=NUM_LABELS)
    model.train()
    # Full-length inputs (no padding savings): each row is several test sentences cut at 128 tokens.
    texts = [" ".join(ARABIC_SENTENCES[i : i + 8]) for i in range(BATCH)]
    batch = tokenizer(texts, padding="max_length", truncation=True, max_length=LENGTH, return_tensors="pt")
    assert int(batch["attention_mask"].sum()) == BATCH * LENGTH
    labels = torch.arange(BATCH) % NUM_LABELS
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-5)
    times = []
    for step in range(WARMUP + STEPS):
        start = time.perf_counter()
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step >= WARMUP:
            times.append(time.perf_counter() - start)
    return BATCH / statistics.median(times), model.num_parameters()


def main() -> None:
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    trimmed = ensure_base(DEFAULT_BASE_DIR)
    with tempfile.TemporaryDirectory(dir=DEFAULT_BASE_DIR.parent) as scratch:
        untrimmed = ensure_base(Path(scratch) / "e5-small-full", trim=False)
        results = {name: seqs_per_second(folder) for name, folder in (("untrimmed", untrimmed), ("trimmed", trimmed))}
    print(f"\nfine-tuning, AdamW fp32, batch {BATCH}, length {LENGTH}, {THREADS} threads, median of {STEPS} steps:")
    for name, (speed, params) in results.items():
        print(f"  {name:9s} {params / 1e6:6.1f}M parameters  {speed:6.2f} sequences/s")
    print(f"  trimmed / untrimmed: {results['trimmed'][0] / results['untrimmed'][0]:.2f}x")


if __name__ == "__main__":
    main()
