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
from training.e5.base_folder import DEFAULT_BASE_DIR, ensure_base  # noqa: E402

THREADS = 2  # this machine's cores
BATCH, LENGTH = 16, 128
WARMUP, STEPS = 2, 6  # timed steps after warm-up; report the median
NUM_LABELS = 3


class Trainee:
    """One model, its optimiser and a fixed full-length batch (several test sentences cut at 128 tokens)."""

    def __init__(self, folder: Path):
        tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=NUM_LABELS).train()
        texts = [" ".join(ARABIC_SENTENCES[i : i + 8]) for i in range(BATCH)]
        self.batch = tokenizer(texts, padding="max_length", truncation=True, max_length=LENGTH, return_tensors="pt")
        assert int(self.batch["attention_mask"].sum()) == BATCH * LENGTH  # no padding savings
        self.labels = torch.arange(BATCH) % NUM_LABELS
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=3e-5)
        self.times: list[float] = []
        self.cpu: list[float] = []  # process CPU seconds per step: less sensitive to other jobs on the machine

    def step(self, timed: bool) -> None:
        start, cpu = time.perf_counter(), time.process_time()
        self.model(**self.batch, labels=self.labels).loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        if timed:
            self.times.append(time.perf_counter() - start)
            self.cpu.append(time.process_time() - cpu)


def main() -> None:
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    trimmed = ensure_base(DEFAULT_BASE_DIR)
    with tempfile.TemporaryDirectory(dir=DEFAULT_BASE_DIR.parent) as scratch:
        untrimmed = ensure_base(Path(scratch) / "e5-small-full", trim=False)
        trainees = {"untrimmed": Trainee(untrimmed), "trimmed": Trainee(trimmed)}
    # Alternate the two models step by step, so load from other processes on this machine hits both alike.
    for step in range(WARMUP + STEPS):
        for trainee in trainees.values():
            trainee.step(timed=step >= WARMUP)
    print(
        f"\nfine-tuning, AdamW fp32, batch {BATCH}, length {LENGTH}, {THREADS} threads, median of {STEPS} "
        "interleaved steps:"
    )
    speed = {name: BATCH / statistics.median(t.times) for name, t in trainees.items()}
    # CPU time / threads: what a step would take with the cores to itself (an estimate when others load them).
    cpu_speed = {name: BATCH * THREADS / statistics.median(t.cpu) for name, t in trainees.items()}
    for name, trainee in trainees.items():
        print(
            f"  {name:9s} {trainee.model.num_parameters() / 1e6:6.1f}M parameters  {speed[name]:6.2f} sequences/s "
            f"wall, {cpu_speed[name]:6.2f} by CPU time (steps {', '.join(f'{x:.1f}s' for x in trainee.times)})"
        )
    print(
        f"  trimmed / untrimmed: {speed['trimmed'] / speed['untrimmed']:.2f}x wall, "
        f"{cpu_speed['trimmed'] / cpu_speed['untrimmed']:.2f}x by CPU time"
    )


if __name__ == "__main__":
    main()
