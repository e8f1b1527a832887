"""Training benchmark: `rasid train` vs a plain HF Trainer fp32 recipe, fixed steps, same data and validation.

    python benchmarks/train_speed.py --base BASE_DIR --data TRAIN.jsonl --val-data VAL.jsonl --steps 200 \
        [--rasid-args "--freeze-embeddings" --rasid-args "--freeze-embeddings --freeze-layers 3" ...]

rasid: one multi-task model, --steps optimiser steps (its own recipe: length-grouped batches, dynamic padding,
plus --rasid-args; one rasid run per --rasid-args given). Anchor: what a user writes without rasid — one AutoModelForSequenceClassification per task,
Trainer defaults, fp32, --steps steps each, batch 16, max length 128. Sequences/s counts only the training
loop (callback-timed to the last step for rasid, train_runtime for the anchor); macro-F1 is on --val-data for
both.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import read_rows, table  # noqa: E402

BATCH, MAX_LENGTH = 16, 128


def rasid_train(args, flags: str, out: Path) -> tuple[float, dict]:
    import json

    from transformers import TrainerCallback

    from training.cli import build_parser
    from training.train import TrainConfig, train

    class Clock(TrainerCallback):
        """From train begin to the end of the last optimiser step: rasid's end-of-epoch validation is left
        out, as it is from the anchor's train_runtime."""

        def on_train_begin(self, *_, **__):
            self.started = time.perf_counter()

        def on_step_end(self, *_, **__):
            self.seconds = time.perf_counter() - self.started

    argv = [
        "train",
        "--data",
        str(args.data),
        "--val-data",
        str(args.val_data),
        "--out",
        str(out),
        "--base",
        str(args.base),
        "--max-steps",
        str(args.steps),
        "--batch-size",
        str(BATCH),
        "--max-length",
        str(MAX_LENGTH),
        *shlex.split(flags),
    ]
    parsed = build_parser().parse_args(argv)
    names = set(TrainConfig.__dataclass_fields__)
    values = {k: v for k, v in vars(parsed).items() if k in names}
    values["tasks"] = parsed.tasks.split(",") if parsed.tasks else None
    values["pair_tasks"] = [t for t in parsed.pair_tasks.split(",") if t]
    clock = Clock()
    train(TrainConfig(**values), callbacks=[clock])
    metrics = json.loads((out / "rasid.json").read_text(encoding="utf-8"))["metrics"]["validation"]
    return args.steps * BATCH / clock.seconds, {t: 100 * m["macro_f1"] for t, m in metrics.items()}


def anchor_train(args, task: str, out: Path) -> tuple[float, float]:
    import numpy as np
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    from training.metrics import classification_metrics

    def rows(path):
        return [r for r in read_rows(path) if r.get(task) is not None]

    train_rows, val_rows = rows(args.data), rows(args.val_data)
    labels = sorted({r[task] for r in train_rows})
    pair = any(r.get("target") for r in train_rows) and task != "topic"
    tokenizer = AutoTokenizer.from_pretrained(args.base)

    def encode(batch):
        texts = (batch["target"], batch["text"]) if pair else (batch["text"],)
        return tokenizer(*texts, truncation=True, max_length=MAX_LENGTH)

    def dataset(items):
        return Dataset.from_dict(
            {
                "text": [r["text"] for r in items],
                "target": [r.get("target") or "" for r in items],
                "label": [labels.index(r[task]) if r[task] in labels else 0 for r in items],
            }
        ).map(encode, batched=True)

    model = AutoModelForSequenceClassification.from_pretrained(args.base, num_labels=len(labels))
    trainer = Trainer(
        model=model,
        processing_class=tokenizer,
        train_dataset=dataset(train_rows),
        args=TrainingArguments(
            output_dir=str(out),
            max_steps=args.steps,
            per_device_train_batch_size=BATCH,
            learning_rate=3e-5,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
        ),
    )
    runtime = trainer.train().metrics["train_runtime"]
    predicted = np.asarray(trainer.predict(dataset(val_rows)).predictions).argmax(1)
    f1 = classification_metrics([r[task] for r in val_rows], [labels[p] for p in predicted], labels)["macro_f1"]
    return args.steps * BATCH / runtime, 100 * f1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="base encoder folder, the same for both")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--val-data", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument(
        "--rasid-args",
        action="append",
        help="extra `rasid train` flags, e.g. '--bf16 --freeze-embeddings'; repeat to compare recipes in one run",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rasid-bench-train-"))
    recipes = args.rasid_args or [""]
    rasid = {flags: rasid_train(args, flags, work / f"bundle-{k}") for k, flags in enumerate(recipes)}
    tasks = list(next(iter(rasid.values()))[1])
    anchor = {task: anchor_train(args, task, work / f"anchor-{task}") for task in tasks}
    anchor_speed = sum(args.steps * BATCH for _ in anchor) / sum(args.steps * BATCH / s for s, _ in anchor.values())
    print(f"\ntraining, {args.steps} steps of {BATCH}, base {args.base}, {time.strftime('%Y-%m-%d')}")
    rows = [
        [f"rasid train '{flags}'", speed, speed / anchor_speed, *(f1.get(t) for t in tasks)]
        for flags, (speed, f1) in rasid.items()
    ]
    rows.append(["anchor: Trainer fp32, one model per task", anchor_speed, 1.0, *(f for _, f in anchor.values())])
    print(table(["run", "sequences/s", "ratio to anchor", *(f"{t} macro-F1" for t in tasks)], rows))


if __name__ == "__main__":
    main()
