"""The plain Hugging Face recipe that rasid must beat: one model per dataset, Trainer defaults.

AutoModelForSequenceClassification on the offline base, fp32, 2 epochs, lr 3e-5, batch 16, max length 128,
no class weights, the (target, text) pair for pair tasks; scored on the same validation files with the same
metric as benchmarks/quality.py (StanceEval for Mawqif, macro-F1 otherwise). --proxy: 1 epoch at length 96.

    .venv/bin/python benchmarks/plain_trainer.py --data data --seed 13 --out reports/quality/plain-13.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from serving.data_files import read_rows  # noqa: E402
from training.metrics import classification_metrics, stanceeval_score  # noqa: E402

SETS = {"mawqif": "stance", "asnd": "topic", "ans": "claim", "austr": "claim", "baly": "news_claim"}
PAIR = {"stance", "claim", "news_claim"}


def score_set(name: str, task: str, data: Path, base: str, seed: int, epochs: float, max_length: int) -> float:
    import numpy as np
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    train = [r for r in read_rows([data / f"{name}.train.jsonl"]).rows if task in r.labels]
    val = [r for r in read_rows([data / f"{name}.val.jsonl"]).rows if task in r.labels]
    labels = sorted({r.labels[task] for r in train})
    tokenizer = AutoTokenizer.from_pretrained(base)

    def dataset(rows):
        columns = {"text": [r.text for r in rows], "label": [labels.index(r.labels[task]) for r in rows]}
        if task in PAIR:
            columns["target"] = [r.target for r in rows]
        encode = (
            (lambda b: tokenizer(b["target"], b["text"], truncation=True, max_length=max_length))
            if task in PAIR
            else (lambda b: tokenizer(b["text"], truncation=True, max_length=max_length))
        )
        return Dataset.from_dict(columns).map(encode, batched=True)

    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(labels))
    with tempfile.TemporaryDirectory() as folder:
        args = TrainingArguments(
            output_dir=folder,
            num_train_epochs=epochs,
            learning_rate=3e-5,
            per_device_train_batch_size=16,
            per_device_eval_batch_size=64,
            seed=seed,
            report_to="none",
            save_strategy="no",
            use_cpu=True,
        )
        trainer = Trainer(model=model, args=args, train_dataset=dataset(train), processing_class=tokenizer)
        trainer.train()
        predicted = np.asarray(trainer.predict(dataset(val)).predictions).argmax(1)
    gold, guess = [r.labels[task] for r in val], [labels[p] for p in predicted]
    if name == "mawqif":
        return 100 * stanceeval_score(gold, guess, [r.target for r in val])["score"]
    return 100 * classification_metrics(gold, guess, labels)["macro_f1"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--base", default="models/base/e5-small-ar")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--proxy", action="store_true", help="1 epoch at max length 96, for screening")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    epochs, max_length = (1.0, 96) if args.proxy else (2.0, 128)
    scores = {
        name: score_set(name, SETS[name], args.data, args.base, args.seed, epochs, max_length) for name in args.sets
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(scores, indent=2))
    print(json.dumps(scores, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
