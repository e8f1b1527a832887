"""`rasid train`: fine-tune one encoder with one head per task, keep the best epoch, write a bundle.

The recipe, top to bottom:
  1. read the data (bad rows are errors naming file:line) and choose the tasks
  2. carve a validation split by group (or read --val-data)
  3. load the base encoder and tokenizer (default: the offline e5 base, built on first use)
  4. turn rows into one example per (row, task), normalised and tokenised
  5. train with the HF Trainer (progress with ETA, checkpoints to resume from, data-parallel under torchrun)
  6. reload the best epoch, fit a temperature per task on validation
  7. write the bundle atomically, with its manifest
  8. fit an n-gram model per task and fuse it with the encoder where that pays on validation
What it does NOT do: tune hyper-parameters, or look at any test split.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from serving.errors import DataError, RasidError

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    data: list[Path]
    out: Path
    base: str | None = None  # HF id or folder; None: the offline default base
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
    freeze_embeddings: bool = False
    keep_layers: int = 0  # 0: all; else only this many lowest layers of the base (the rest dropped: smaller, faster)
    freeze_layers: int = 0  # the embeddings and this many lowest layers stay as pretrained: no backward pass there
    bf16: bool = False  # autocast; for CPUs with AMX (without it, fp32 trained faster here) and recent GPUs
    pooling: str = "mean"
    save_steps: int = 200  # a resume point every this many optimiser steps
    max_steps: int = -1
    skip_bad_rows: bool = False
    int8_check: bool = True  # after training: what per-row int8 costs on the validation rows (decides the fast path)
    fusion: bool = True  # after training: an n-gram model per task, fused where it helps on validation (serving/fusion.py)
    resume: bool = False
    run_dir: Path | None = None  # checkpoints; default: <out>.run beside the bundle

    def __post_init__(self):
        self.data = [Path(p) for p in self.data]
        self.val_data = [Path(p) for p in self.val_data]
        self.out = Path(self.out)
        self.run_dir = Path(self.run_dir) if self.run_dir else self.out.with_name(self.out.name + ".run")
        checks = [
            (self.epochs > 0, f"--epochs must be positive, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}"),
            (0 < self.lr < 1, f"--lr must be between 0 and 1, got {self.lr}"),
            (8 <= self.max_length <= 8192, f"--max-length must be between 8 and 8192, got {self.max_length}"),
            (0 < self.val_fraction < 1, f"--val-fraction must be between 0 and 1, got {self.val_fraction}"),
            (0 <= self.class_weight_power <= 1, f"--class-weight-power must be in [0, 1], got {self.class_weight_power}"),
            (self.save_steps >= 1, f"--save-steps must be at least 1, got {self.save_steps}"),
            (self.keep_layers >= 0, f"--keep-layers must be 0 or more, got {self.keep_layers}"),
            (self.freeze_layers >= 0, f"--freeze-layers must be 0 or more, got {self.freeze_layers}"),
            (bool(self.data), "--data needs at least one file"),
        ]
        for ok, message in checks:
            if not ok:
                raise RasidError(message + ".")

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if k in {"data", "val_data"} else v)
                for k, v in asdict(self).items()}


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="fine-tune an encoder on labelled paragraphs and write a bundle")
    p.add_argument("--data", nargs="+", type=Path, required=True, help="rasid JSONL/CSV training files")
    p.add_argument("--out", type=Path, required=True, help="bundle folder to write, e.g. models/NAME")
    p.add_argument("--base", help="HF encoder id or local folder (default: the offline e5 base, built if missing)")
    p.add_argument("--tasks", help="comma-separated tasks (default: those with labels in the data)")
    p.add_argument("--pair-tasks", default="", help="comma-separated extra task names that take (target, text)")
    p.add_argument("--val-data", nargs="+", type=Path, default=[], help="validation files (default: carve a split)")
    defaults = TrainConfig(data=[Path("x")], out=Path("x"))
    for name in ("epochs", "batch_size", "lr", "max_length", "seed", "val_fraction", "class_weight_power",
                 "save_steps", "max_steps"):
        value = getattr(defaults, name)
        p.add_argument("--" + name.replace("_", "-"), type=type(value), default=value, help=f"default {value}")
    p.add_argument("--pooling", choices=["mean", "cls"], default="mean")
    p.add_argument("--freeze-embeddings", action="store_true", help="do not update the word-embedding matrix")
    p.add_argument("--keep-layers", type=int, default=0, help="fine-tune only this many lowest layers of the base "
                   "and drop the rest: a smaller model, faster to train and serve; default 0 (all)")
    p.add_argument("--freeze-layers", type=int, default=0, help="keep all embeddings and this many lowest layers "
                   "as pretrained (no backward pass there: faster steps); default 0")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast: for CPUs with AMX and recent GPUs; "
                   "on a CPU without AMX it trained slower than fp32 (README, Performance)")
    p.add_argument("--skip-bad-rows", action="store_true", help="warn about bad rows instead of stopping")
    p.add_argument("--no-int8-check", dest="int8_check", action="store_false",
                   help="skip measuring int8 on the validation rows after training (two inference passes); "
                        "the bundle's fast path is then fp32 until `rasid check-int8`")
    p.add_argument("--no-fusion", dest="fusion", action="store_false",
                   help="skip fitting the n-gram models fused with the encoder's answers (training/fusion.py)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint of an interrupted run")
    p.add_argument("--run-dir", type=Path, help="checkpoint folder (default: <out>.run)")
    p.set_defaults(func=run)


def run(args) -> int:
    names = {f for f in TrainConfig.__dataclass_fields__}
    values = {k: v for k, v in vars(args).items() if k in names}
    values["tasks"] = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    values["pair_tasks"] = [t.strip() for t in args.pair_tasks.split(",") if t.strip()]
    train(TrainConfig(**values))
    return 0


def train(config: TrainConfig, callbacks: list | None = None) -> Path:
    """Run the whole recipe; return the bundle path. `callbacks` are extra HF TrainerCallbacks."""
    from training.training_run import TrainingRun

    return TrainingRun(config, callbacks or []).execute()


def describe_data(paths: list[Path], rows_per_file: dict[str, int]) -> list[dict]:
    from serving.data_files import file_sha256

    return [{"path": str(p), "sha256": file_sha256(p), "rows": rows_per_file.get(str(p), 0)} for p in paths]


def tasks_in(rows, requested: list[str] | None) -> list[str]:
    present = sorted({task for row in rows for task in row.labels})
    if requested is None:
        if not present:
            raise DataError("no row carries a label: nothing to train.")
        return present
    missing = [t for t in requested if t not in present]
    if missing:
        raise DataError(f"task(s) {missing} have no labels in the data; the data has {present}.")
    return requested


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def clear_run_dir(run_dir: Path) -> None:
    if run_dir.exists():
        log.info("starting over: removing the earlier run in %s (use --resume to continue it)", run_dir)
        shutil.rmtree(run_dir)
