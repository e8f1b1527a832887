"""Masked-LM adaptation of a base encoder (`rasid adapt`, training/adapt.py): the head, the text windows, the run."""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from serving.errors import RasidError

ADAPT_FILE = "rasid_adapt.json"  # in the written base folder: what it was adapted on, and the loss before/after
RUN_FILE = "run.json"  # in the run folder: the options and texts of the run, so --resume refuses a changed one
HELD_OUT_SHARE = 0.05  # of the text windows, never trained on: the masked-LM loss is measured there


@dataclass
class AdaptConfig:
    corpus: list[Path]
    out: Path
    base: str | None = None
    epochs: float = 3.0
    batch_size: int = 32
    lr: float = 5e-5
    head_lr: float = 1e-3  # the new head starts from nothing: it must learn faster than the encoder moves
    max_length: int = 128
    mask_probability: float = 0.15
    freeze_layers: int = 0
    max_texts: int = 0  # 0: all
    seed: int = 13
    save_steps: int = 200
    resume: bool = False

    def __post_init__(self):
        self.corpus = [Path(p) for p in self.corpus]
        self.out = Path(self.out)
        checks = [
            (self.epochs > 0, f"--epochs must be positive, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}"),
            (0 < self.lr < 1 and 0 < self.head_lr < 1, "--lr and --head-lr must be between 0 and 1"),
            (16 <= self.max_length <= 8192, f"--max-length must be between 16 and 8192, got {self.max_length}"),
            (0 < self.mask_probability < 1, f"--mask-probability must be in (0, 1), got {self.mask_probability}"),
            (self.max_texts >= 0, f"--max-texts must be 0 or more, got {self.max_texts}"),
            (bool(self.corpus), "--corpus needs at least one file or folder"),
        ]
        for ok, message in checks:
            if not ok:
                raise RasidError(message + ".")

    @property
    def run_dir(self) -> Path:
        return self.out.with_name(self.out.name + ".run")


def masked_lm_model(encoder, layer_norm_eps: float = 1e-12):
    """The encoder with a masked-LM head tied to its (frozen) word embeddings; forward returns {"loss"}."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class TiedMaskedLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder
            hidden = encoder.config.hidden_size
            self.transform = nn.Sequential(
                nn.Linear(hidden, hidden), nn.GELU(), nn.LayerNorm(hidden, eps=layer_norm_eps)
            )
            self.bias = nn.Parameter(torch.zeros(encoder.get_input_embeddings().weight.shape[0]))

        @property
        def config(self):  # the HF Trainer reads a few fields of the model's config
            return self.encoder.config

        def forward(self, input_ids, attention_mask, labels, **_unused) -> dict:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
            if not isinstance(hidden, torch.Tensor):  # a transformers model; serving.encoder returns the tensor
                hidden = hidden.last_hidden_state
            masked = labels != -100  # only the masked positions are scored: the vocabulary product is the cost
            vectors = self.transform(hidden[masked])
            logits = vectors @ self.encoder.get_input_embeddings().weight.T + self.bias
            return {"loss": F.cross_entropy(logits.float(), labels[masked])}

    return TiedMaskedLM()


def adapt(config: AdaptConfig, callbacks: list | None = None) -> Path:
    """Run masked-LM adaptation; write the adapted base folder and return its path. `callbacks`: extra HF
    TrainerCallbacks."""
    import shutil

    import torch
    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling, Trainer

    from training.adapt_corpus import read_texts, windows
    from training.hf_trainer import training_arguments
    from training.layers import embeddings_and_layers, freeze_lowest_layers
    from training.training_run import load_encoder, quiet_libraries

    c = config
    quiet_libraries()
    if c.base is None:
        from training.e5.base_folder import ensure_base

        base = str(ensure_base(corpus_fallback=c.corpus))
    else:
        base = c.base
    encoder, tokenizer = load_encoder(base)
    if tokenizer.mask_token_id is None:
        raise RasidError(f"the base '{base}' has no mask token, so it cannot be trained as a masked LM.")
    frozen, _ = embeddings_and_layers(encoder, "rasid adapt")
    for module in frozen:  # the head scores against the word embeddings: they stay fixed, and so does the vocabulary
        module.requires_grad_(False)
    if c.freeze_layers:
        freeze_lowest_layers(encoder, c.freeze_layers)
    texts = read_texts(c.corpus, c.max_texts, c.seed)
    ids = windows(texts, tokenizer, c.max_length)
    random.Random(c.seed).shuffle(ids)
    held = max(1, math.ceil(len(ids) * HELD_OUT_SHARE)) if len(ids) > 1 else 0
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=c.mask_probability, seed=c.seed)
    held_out = masked_once(ids[:held], collator)
    train_set = Dataset.from_dict({"input_ids": ids[held:] or ids})
    torch.manual_seed(c.seed)
    model = masked_lm_model(encoder, getattr(encoder.config, "layer_norm_eps", 1e-12))
    head = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    body = [p for p in encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": body, "lr": c.lr}, {"params": head, "lr": c.head_lr}], weight_decay=0.01)
    args = training_arguments(c.run_dir, c.epochs, c.batch_size, c.lr, c.save_steps, c.seed, eval_strategy="no")
    _prepare_run_dir(c, texts)
    trainer = Trainer(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=train_set,
        optimizers=(optimizer, None),
        callbacks=callbacks,
    )
    before = held_out_loss(model, held_out)
    last = _last_checkpoint(c.run_dir) if c.resume else None
    result = trainer.train(resume_from_checkpoint=str(last) if last else None)
    after = held_out_loss(model, held_out)
    written = _write_base(c, encoder, tokenizer, base, texts, ids, held, before, after, result.metrics)
    shutil.rmtree(c.run_dir, ignore_errors=True)
    return written


def masked_once(ids: list[list[int]], collator) -> list[dict]:
    """The held-out windows, masked once, so the loss before and after training is measured on the same
    masked positions: batches of padded input_ids, attention_mask and labels."""
    return [collator([{"input_ids": row} for row in ids[start : start + 64]]) for start in range(0, len(ids), 64)]


def held_out_loss(model, batches: list[dict]) -> float | None:
    """Mean masked-LM loss per masked token over the held-out batches (None when there are none)."""
    import torch

    total, count = 0.0, 0
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in batches:
            masked = int((batch["labels"] != -100).sum())
            if masked:
                total += float(model(**{k: v.to(device) for k, v in batch.items()})["loss"]) * masked
                count += masked
    model.train(was_training)
    return total / count if count else None


def _prepare_run_dir(c: AdaptConfig, texts: list[str]) -> None:
    """A fresh start clears the run folder and records what the run reads; --resume refuses a changed run."""
    import hashlib
    import shutil

    options = {k: v for k, v in asdict(c).items() if k not in {"resume", "out", "save_steps"}}
    identity = {
        "options": json.loads(json.dumps(options, default=str)),
        "texts_sha256": hashlib.sha256("\0".join(texts).encode()).hexdigest(),
    }
    run_file = c.run_dir / RUN_FILE
    if not c.resume:
        shutil.rmtree(c.run_dir, ignore_errors=True)
        c.run_dir.mkdir(parents=True)
        run_file.write_text(json.dumps(identity, indent=2) + "\n", encoding="utf-8")
    elif run_file.is_file() and json.loads(run_file.read_text(encoding="utf-8")) != identity:
        raise RasidError(
            "--resume: the corpus or the options changed since the interrupted run; rerun without --resume."
        )


def _last_checkpoint(run_dir: Path) -> Path | None:
    checkpoints = sorted(run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    if not checkpoints:
        raise RasidError(f"--resume: no checkpoint in {run_dir} to continue from.")
    return checkpoints[-1]


def _write_base(c: AdaptConfig, encoder, tokenizer, base, texts, ids, held, before, after, metrics) -> Path:
    import shutil

    partial = c.out.with_name(c.out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    encoder.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    record = {
        "adapted_from": base,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(c).items()}
        | {"corpus": [str(p) for p in c.corpus]},
        "texts": len(texts),
        "windows": len(ids),
        "held_out_windows": held,
        "held_out_masked_lm_loss": {"before": before, "after": after},
        "train_runtime_s": metrics.get("train_runtime"),
    }
    (partial / ADAPT_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(c.out, ignore_errors=True)
    partial.rename(c.out)  # the folder appears whole or not at all
    return c.out
