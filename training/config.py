"""What one training run is asked to do: TrainConfig, every option of `rasid train` with its default and check."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from serving.errors import RasidError


@dataclass
class TrainConfig:
    data: list[Path]
    out: Path
    base: str | None = None  # HF id or folder; None: the offline default base
    init_from: Path | None = None  # a bundle to continue training (training/continued.py) instead of a base
    tasks: list[str] | None = None  # None: every task that has labels in the data
    pair_tasks: list[str] = field(default_factory=list)  # extra task names that take (target, text)
    val_data: list[Path] = field(default_factory=list)  # given: used as is instead of carving a split
    epochs: float = 3.0
    batch_size: int = 16
    lr: float = 5e-5  # small encoders (e5-small, 384 wide) like a higher rate than BERT-base's 2e-5
    max_length: int = 128  # tokens; news paragraphs and tweets mostly fit, longer ones are truncated
    seed: int = 13
    val_fraction: float = 0.1
    class_weight_power: float = 0.5  # 0 none, 0.5 square root, 1 balanced: minority topics must not collapse
    task_class_weight_power: dict[str, float] = field(default_factory=dict)  # per task, instead of the above
    task_repeat: dict[str, float] = field(default_factory=dict)  # sampling by task: its examples this many times
    balance_by_target: bool = False  # rare labels weighted within each target of a pair task, not the whole task
    freeze_embeddings: bool = False
    keep_layers: int = 0  # 0: all; else only this many lowest layers of the base (the rest dropped: smaller, faster)
    freeze_layers: int = 0  # the embeddings and this many lowest layers stay as pretrained: no backward pass there
    layer_lr_decay: float = 1.0  # each layer's rate is this times the one above (1: one rate everywhere)
    reinit_layers: int = 0  # this many highest layers start from random weights instead of pretrained ones
    rdrop: float = 0.0  # weight of R-Drop's agreement loss between two dropout passes (0: off, one pass)
    average_last: float = 0.0  # the weights become their mean over this last share of the steps (0: off)
    bf16: bool = False  # autocast; for CPUs with AMX and recent GPUs (without AMX fp32 trains faster)
    pooling: str = "mean"
    save_steps: int = 200  # a resume point every this many optimiser steps
    max_steps: int = -1
    skip_bad_rows: bool = False
    int8_check: bool = True  # after training: what per-row int8 costs on the validation rows (decides the fast path)
    fusion: bool = (
        True  # after training: an n-gram model per task, fused where it helps on validation (serving/fusion.py)
    )
    resume: bool = False
    run_dir: Path | None = None  # checkpoints; default: <out>.run beside the bundle

    def __post_init__(self):
        self.data = [Path(p) for p in self.data]
        self.val_data = [Path(p) for p in self.val_data]
        self.out = Path(self.out)
        self.init_from = Path(self.init_from) if self.init_from else None
        self.run_dir = Path(self.run_dir) if self.run_dir else self.out.with_name(self.out.name + ".run")
        checks = [
            (self.epochs > 0, f"--epochs must be positive, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}"),
            (0 < self.lr < 1, f"--lr must be between 0 and 1, got {self.lr}"),
            (8 <= self.max_length <= 8192, f"--max-length must be between 8 and 8192, got {self.max_length}"),
            (0 < self.val_fraction < 1, f"--val-fraction must be between 0 and 1, got {self.val_fraction}"),
            (
                0 <= self.class_weight_power <= 1,
                f"--class-weight-power must be in [0, 1], got {self.class_weight_power}",
            ),
            *(
                (0 <= power <= 1, f"--task-class-weight-power {task}={power}: the power must be in [0, 1]")
                for task, power in self.task_class_weight_power.items()
            ),
            *(
                (0 < times <= 100, f"--task-repeat {task}={times}: the number of times must be in (0, 100]")
                for task, times in self.task_repeat.items()
            ),
            (self.save_steps >= 1, f"--save-steps must be at least 1, got {self.save_steps}"),
            (self.keep_layers >= 0, f"--keep-layers must be 0 or more, got {self.keep_layers}"),
            (self.freeze_layers >= 0, f"--freeze-layers must be 0 or more, got {self.freeze_layers}"),
            (0 < self.layer_lr_decay <= 1, f"--layer-lr-decay must be in (0, 1], got {self.layer_lr_decay}"),
            (self.reinit_layers >= 0, f"--reinit-layers must be 0 or more, got {self.reinit_layers}"),
            (self.rdrop >= 0, f"--rdrop must be 0 or more, got {self.rdrop}"),
            (0 <= self.average_last < 1, f"--average-last must be in [0, 1), got {self.average_last}"),
            (bool(self.data), "--data needs at least one file"),
        ]
        for ok, message in checks:
            if not ok:
                raise RasidError(message + ".")

    def to_dict(self) -> dict:
        return {
            k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if k in {"data", "val_data"} else v)
            for k, v in asdict(self).items()
        }
