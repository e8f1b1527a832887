"""The Hugging Face Trainer, taught three things: a weighted loss, per-task metrics, best-epoch keeping."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from transformers import Trainer, TrainerCallback

from serving.bundle import TaskSpec
from training.metrics import classification_metrics

log = logging.getLogger(__name__)
BEST_DIR = "best"  # inside the run folder: the weights of the best epoch so far, kept across resumes
ANSWERS_FILE = "answers.npz"  # beside them: that epoch's validation logits, so calibration need not predict again


class MultiTaskTrainer(Trainer):
    def __init__(
        self,
        *args,
        rate_scales: dict[int, float] | None = None,
        rdrop: float = 0.0,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.rate_scales = rate_scales  # id(parameter) -> factor on the peak rate (layer-wise decay)
        self.rdrop = rdrop

    def create_optimizer(self, model=None):
        if not self.rate_scales or self.optimizer is not None:
            return super().create_optimizer(model)
        model = self.model if model is None else model
        decayed = set(self.get_decay_parameter_names(model))
        groups: dict[tuple[float, float], list] = {}
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                key = (self.rate_scales.get(id(parameter), 1.0), self.args.weight_decay if name in decayed else 0.0)
                groups.setdefault(key, []).append(parameter)
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        # each group's "lr" is its peak; the Trainer's schedule scales every group by the same factor
        self.optimizer = optimizer_cls(
            [
                {"params": params, "lr": self.args.learning_rate * scale, "weight_decay": decay}
                for (scale, decay), params in groups.items()
            ],
            **optimizer_kwargs,
        )
        return self.optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels, weights = inputs["labels"], inputs["weights"]  # each example's weight: training/features.py
        # The v5 Trainer leaves autocast to accelerate, which does not apply it to a plain nn.Module on the
        # CPU, so --bf16 turns it on here (without AMX it trains slower than fp32: see --bf16's help).
        features = {k: v for k, v in inputs.items() if k not in ("labels", "weights")}
        with torch.autocast(device_type=self.args.device.type, dtype=torch.bfloat16, enabled=self.args.bf16):
            outputs = model(**features)
            # R-Drop (Liang et al., 2021): a second pass draws other dropout masks; the two answers must agree
            second = model(**features)["logits"] if self.rdrop and model.training else None
        logits = outputs["logits"]
        losses = F.cross_entropy(logits, labels, reduction="none")
        if second is not None:
            losses = (losses + F.cross_entropy(second, labels, reduction="none")) / 2
            losses = losses + self.rdrop * symmetric_kl(logits, second)
        loss = (losses * weights).sum() / weights.sum()
        return (loss, outputs) if return_outputs else loss

    def evaluation_loop(self, *args, **kwargs):
        output = super().evaluation_loop(*args, **kwargs)
        self.last_answers = output  # KeepBestEpoch keeps the answers of the epoch it keeps
        return output


def symmetric_kl(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Per row, the mean of KL(p||q) and KL(q||p) between two answers' label distributions. A task's absent
    labels carry a very low logit in both, so they add nothing."""
    log_p, log_q = F.log_softmax(first.float(), -1), F.log_softmax(second.float(), -1)
    return ((log_p.exp() * (log_p - log_q)).sum(-1) + (log_q.exp() * (log_q - log_p)).sum(-1)) / 2


def split_by_task(logits: np.ndarray, labels: np.ndarray, task_ids: np.ndarray, specs: list[TaskSpec]):
    """Yield (spec, logits [n, labels of this task], gold ids) for each task present."""
    for task_id, spec in enumerate(specs):
        rows = task_ids == task_id
        if rows.any():
            yield spec, logits[rows, : len(spec.labels)], labels[rows]


def metrics_function(specs: list[TaskSpec]):
    """compute_metrics for the Trainer: per-task accuracy and macro-F1, and their mean (the model-selection score)."""

    def compute(prediction) -> dict[str, float]:
        labels, task_ids = prediction.label_ids
        results = {}
        for spec, logits, gold in split_by_task(prediction.predictions, labels, task_ids, specs):
            names = list(spec.labels)
            scores = classification_metrics([names[g] for g in gold], [names[p] for p in logits.argmax(1)], names)
            results[f"{spec.name}_accuracy"] = scores["accuracy"]
            results[f"{spec.name}_macro_f1"] = scores["macro_f1"]
        f1s = [v for k, v in results.items() if k.endswith("_macro_f1")]
        results["mean_macro_f1"] = float(np.mean(f1s)) if f1s else 0.0
        return results

    return compute


class KeepBestEpoch(TrainerCallback):
    """After each evaluation, save the weights if the mean macro-F1 is the best yet (rank 0 only).

    The best score lives on disk beside the weights, so a resumed run still knows what it has to beat.
    """

    def __init__(self, run_dir: Path, trainer_ref: list):
        self.best_dir = Path(run_dir) / BEST_DIR
        self.trainer_ref = trainer_ref  # filled in once the trainer exists

    def best_score(self) -> float:
        path = self.best_dir / "score.json"
        return json.loads(path.read_text())["mean_macro_f1"] if path.is_file() else float("-inf")

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not state.is_world_process_zero or not metrics:
            return
        score = metrics.get("eval_mean_macro_f1", float("-inf"))
        if score > self.best_score():
            from safetensors.torch import save_file

            self.best_dir.mkdir(parents=True, exist_ok=True)
            model = self.trainer_ref[0].model
            state_dict = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
            save_file(state_dict, str(self.best_dir / "model.safetensors"))
            answers = self.trainer_ref[0].last_answers
            labels, task_ids = answers.label_ids
            np.savez(self.best_dir / ANSWERS_FILE, logits=answers.predictions, labels=labels, task_ids=task_ids)
            (self.best_dir / "score.json").write_text(
                json.dumps(
                    {"mean_macro_f1": score, "epoch": state.epoch, "step": state.global_step, "metrics": metrics}
                )
            )
            log.info("epoch %.2f: mean macro-F1 %.4f, the best so far: kept", state.epoch or 0, score)
        else:
            log.info("epoch %.2f: mean macro-F1 %.4f, not better than %.4f", state.epoch or 0, score, self.best_score())


def load_best(model, run_dir: Path) -> dict:
    """Load the best epoch's weights into `model`; return its score record."""
    from safetensors.torch import load_file

    best_dir = Path(run_dir) / BEST_DIR
    model.load_state_dict(load_file(str(best_dir / "model.safetensors")))
    return json.loads((best_dir / "score.json").read_text())


def best_answers(run_dir: Path, labels, task_ids) -> tuple[np.ndarray, ...] | None:
    """The best epoch's validation (logits, labels, task ids), if kept for exactly these validation examples."""
    path = Path(run_dir) / BEST_DIR / ANSWERS_FILE
    if not path.is_file():  # a run folder from before answers were kept
        return None
    with np.load(path) as kept:
        answers = kept["logits"], kept["labels"], kept["task_ids"]
    # the evaluation loop may read the examples in another order (length-grouped), so compare as multisets
    if sorted(zip(answers[2].tolist(), answers[1].tolist())) != sorted(zip(task_ids, labels)):
        return None  # the validation data changed since (a resumed run given other --val-data)
    return answers


def training_arguments(run_dir: Path, epochs: float, batch_size: int, lr: float, save_steps: int, seed: int, **extra):
    """The HF TrainingArguments every rasid run shares (linear schedule with a 6% warm-up, one resumable
    checkpoint every save_steps, length-grouped batches, no reporting services); `extra` adds or overrides."""
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        **{
            "output_dir": str(run_dir),
            "num_train_epochs": epochs,
            "per_device_train_batch_size": batch_size,
            "learning_rate": lr,
            "weight_decay": 0.01,
            "warmup_steps": 0.06,
            "lr_scheduler_type": "linear",
            "save_strategy": "steps",
            "save_steps": save_steps,
            "save_total_limit": 1,
            "logging_steps": 50,
            "report_to": "none",
            "seed": seed,
            "use_cpu": not torch.cuda.is_available(),
            "train_sampling_strategy": "group_by_length",
            "remove_unused_columns": False,
            "dataloader_num_workers": 0,
            **extra,
        }
    )
