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

from pathlib import Path

from training.config import TrainConfig


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
