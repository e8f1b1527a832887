"""The network: one shared encoder, mean- or CLS-pooled, and one linear head per task."""

from __future__ import annotations

import torch
from torch import nn

# Logit given to the label slots a task does not have, so tasks with fewer labels can share one
# [batch, max_labels] tensor; exp(-1e4) is 0 in float32, so these slots never take probability.
ABSENT_LABEL_LOGIT = -1e4


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    if pooling == "cls":
        return hidden[:, 0]
    # Mean over real tokens: how e5 was trained, and robust for BERTs trained with a CLS objective too.
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class MultiTaskModel(nn.Module):
    """Encoder + heads. `task_ids[i]` says which head answers row i; rows of one batch may mix tasks."""

    def __init__(self, encoder: nn.Module, label_counts: dict[str, int], pooling: str = "mean"):
        super().__init__()
        if pooling not in {"mean", "cls"}:
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.encoder = encoder
        self.pooling = pooling
        self.task_names = list(label_counts)
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(getattr(encoder.config, "hidden_dropout_prob", 0.1))
        self.heads = nn.ModuleDict({name: nn.Linear(hidden, count) for name, count in label_counts.items()})
        self.max_labels = max(label_counts.values())

    @property
    def config(self):  # the HF Trainer reads a few fields of the model's config
        return self.encoder.config

    def encode(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**inputs)
        if not isinstance(hidden, torch.Tensor):  # a transformers model; serving.encoder returns the tensor
            hidden = hidden.last_hidden_state
        return pool(hidden, attention_mask, self.pooling)

    def head_logits(self, pooled: torch.Tensor, task: str) -> torch.Tensor:
        return self.heads[task](self.dropout(pooled)).float()

    def forward(self, input_ids, attention_mask, task_ids, token_type_ids=None, **_unused) -> dict:
        pooled = self.encode(input_ids, attention_mask, token_type_ids)
        logits = torch.full((len(task_ids), self.max_labels), ABSENT_LABEL_LOGIT, device=pooled.device)
        for index, name in enumerate(self.task_names):
            rows = task_ids == index
            if rows.any():
                task_logits = self.head_logits(pooled[rows], name)
                logits[rows, : task_logits.shape[1]] = task_logits
        return {"logits": logits}
