"""From rows to model inputs: one example per (row, task), normalised and tokenised, and their collator."""

from __future__ import annotations

import random
from collections import Counter

import torch

from serving.bundle import TaskSpec, has_target, no_target
from serving.data_files import Row
from serving.errors import DataError
from serving.normalize import NormalizationSettings, normalize

# What each known task compares. Unknown task names are single-input unless named with --pair-tasks.
KNOWN_TASK_INPUTS = {
    "topic": "single",
    "stance": "pair",
    "claim": "pair",
    "news_claim": "pair",
    "sentiment": "single",
    "sarcasm": "single",
}


def task_specs(rows: list[Row], tasks: list[str], pair_tasks: set[str]) -> list[TaskSpec]:
    """Each task's label list (sorted, so the head order never depends on row order)."""
    specs = []
    for name in tasks:
        labels = sorted({row.labels[name] for row in rows if name in row.labels})
        if len(labels) < 2:
            raise DataError(
                f"task '{name}' has {len(labels)} distinct label(s) in the training data; it needs two or more."
            )
        kind = "pair" if name in pair_tasks or KNOWN_TASK_INPUTS.get(name) == "pair" else "single"
        specs.append(TaskSpec(name=name, labels=tuple(labels), input=kind))
    return specs


def check_known_labels(rows: list[Row], specs: list[TaskSpec], what: str) -> None:
    """Validation or evaluation labels must all be labels the heads have."""
    problems = []
    for spec in specs:
        unknown = Counter(
            row.labels[spec.name]
            for row in rows
            if spec.name in row.labels and row.labels[spec.name] not in spec.label2id
        )
        for label, count in unknown.items():
            first = next(r.where for r in rows if r.labels.get(spec.name) == label)
            problems.append(f"task '{spec.name}': label '{label}' ({count} rows, first at {first})")
    if problems:
        raise DataError(f"{what} has labels never seen in training: " + "; ".join(problems) + ".")


def build_examples(rows: list[Row], specs: list[TaskSpec], settings: NormalizationSettings) -> dict[str, list]:
    """Columns text / target / task_ids / labels: one entry per labelled (row, task)."""
    columns = {"text": [], "target": [], "task_ids": [], "labels": []}
    for row in rows:
        for task_id, spec in enumerate(specs):
            label = row.labels.get(spec.name)
            if label is None:
                continue
            if spec.input == "pair" and not has_target(row.target):
                raise DataError(f"{row.where}: {no_target([spec.name])}.")
            columns["text"].append(normalize(row.text, settings))
            columns["target"].append(normalize(row.target, settings) if spec.input == "pair" else None)
            columns["task_ids"].append(task_id)
            columns["labels"].append(spec.label2id[label])
    return columns


def tokenize_examples(columns: dict[str, list], tokenizer, max_length: int):
    """A datasets.Dataset with input ids and a `length` column for length-grouped batches."""
    from datasets import Dataset

    def encode(batch):
        singles = [k for k, target in enumerate(batch["target"]) if target is None]
        pairs = [k for k, target in enumerate(batch["target"]) if target is not None]
        ids = [None] * len(batch["text"])
        types = [None] * len(batch["text"])
        for indices, args in (
            (singles, ([batch["text"][k] for k in singles],)),
            (pairs, ([batch["target"][k] for k in pairs], [batch["text"][k] for k in pairs])),
        ):
            if not indices:
                continue
            out = tokenizer(*args, truncation=True, max_length=max_length)
            # BERT tokenizers mark the second segment with token type 1; XLM-R ones give none (all 0).
            segments = out.get("token_type_ids") or [[0] * len(x) for x in out["input_ids"]]
            for k, row_ids, row_types in zip(indices, out["input_ids"], segments):
                ids[k], types[k] = row_ids, row_types
        return {"input_ids": ids, "token_type_ids": types, "length": [len(x) for x in ids]}

    dataset = Dataset.from_dict(columns)
    return dataset.map(encode, batched=True, batch_size=1000, remove_columns=["text", "target"])


class Collator:
    """Pads each batch to its own longest sequence (dynamic padding)."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(f["input_ids"]) for f in features)
        input_ids = torch.full((len(features), longest), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(features), longest), dtype=torch.long)
        token_type_ids = torch.zeros((len(features), longest), dtype=torch.long)
        for row, feature in enumerate(features):
            size = len(feature["input_ids"])
            input_ids[row, :size] = torch.tensor(feature["input_ids"])
            token_type_ids[row, :size] = torch.tensor(feature["token_type_ids"])
            attention_mask[row, :size] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
            "task_ids": torch.tensor([f["task_ids"] for f in features]),
            "labels": torch.tensor([f["labels"] for f in features]),
            "weights": torch.tensor([f.get("weight", 1.0) for f in features], dtype=torch.float),
        }


MIN_TARGET_ROWS = 100  # fewer training examples of a target: its rare labels are weighted by the task's counts


def loss_weights(
    train: dict[str, list],
    specs: list[TaskSpec],
    power: float,
    by_target: bool = False,
    task_powers: dict[str, float] | None = None,
):
    """The weight of each example in the loss, so rare labels are not drowned by common ones: (n / (K × count of
    its label))^power, counted within its task, or with `by_target` within its target (for the targets of pair
    tasks with at least MIN_TARGET_ROWS training examples: a label can be rare for one target and common
    overall), then scaled so that each group's mean weight is 1 (the same loss scale). `task_powers` gives a
    task its own power instead of `power`.

    power 0: no weighting; 0.5: the square root, a middle way; 1: fully balanced. Returns a function giving the
    weights of any columns: validation examples are weighted like training ones.
    """
    sizes = Counter(zip(train["task_ids"], train["target"]))

    def group(task_id: int, target: str | None) -> tuple:
        own = by_target and target is not None and sizes[(task_id, target)] >= MIN_TARGET_ROWS
        return (task_id, target if own else None)

    counts = Counter()  # (group, label): the task's examples, all of them, and each large target's
    for t, target, label in zip(*_keys(train)):
        counts[((t, None), label)] += 1
        if group(t, target)[1] is not None:
            counts[(group(t, target), label)] += 1
    totals = Counter()
    for (g, _), count in counts.items():
        totals[g] += count
    powers = [(task_powers or {}).get(spec.name, power) for spec in specs]
    raw = {
        (g, label): (totals[g] / (len(specs[g[0]].labels) * count)) ** powers[g[0]]
        for (g, label), count in counts.items()
    }
    means = Counter()
    for (g, label), weight in raw.items():
        means[g] += weight * counts[(g, label)] / totals[g]
    table = {(g, label): weight / means[g] for (g, label), weight in raw.items()}

    def weigh(columns: dict[str, list]) -> list[float]:
        return [table.get((group(t, target), label), 1.0) for t, target, label in zip(*_keys(columns))]

    return weigh


def _keys(columns: dict[str, list]):
    return columns["task_ids"], columns["target"], columns["labels"]


def repeat_examples(columns: dict[str, list], specs: list[TaskSpec], repeats: dict[str, float], seed: int) -> dict:
    """Sampling by task: every example of a task named in `repeats` appears that many times in the training
    columns (2: twice; 1.5: once, and a seeded half of them again; 0.5: a seeded half, at least one), the
    others once. Loss weights are computed before, so they stay those of the data as given."""
    chosen = random.Random(seed)
    keep = []
    for spec_id, spec in enumerate(specs):
        indices = [k for k, t in enumerate(columns["task_ids"]) if t == spec_id]
        times = repeats.get(spec.name, 1.0)
        whole, share = int(times), times - int(times)
        extra = round(share * len(indices)) if whole else max(1, round(share * len(indices)))
        keep += indices * whole + sorted(chosen.sample(indices, min(extra, len(indices))))
    keep.sort()  # the data's own order, repeats beside their original; the trainer shuffles anyway
    return {name: [values[k] for k in keep] for name, values in columns.items()}
