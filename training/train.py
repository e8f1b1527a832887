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

from serving.errors import RasidError
from serving.options import add_command, add_numeric_options, add_skip_bad_rows
from training.config import TrainConfig

# What each numeric option of TrainConfig does; its default is TrainConfig's.
NUMERIC_OPTIONS = {
    "epochs": "passes over the training data (fractions allowed); the best epoch on validation is kept",
    "batch_size": "training examples per optimiser step",
    "lr": "peak learning rate (linear warm-up over the first 6%% of steps, then linear decay)",
    "max_length": "tokens per input (target and text together for pair tasks); longer inputs are truncated",
    "seed": "seed of the validation split, the heads' initial weights and the order of the data",
    "val_fraction": "share of the data carved out for validation, by group, when --val-data is not given",
    "class_weight_power": "weight of rare labels in the loss: 0 none, 0.5 square root, 1 fully balanced",
    "save_steps": "a checkpoint to resume from every this many optimiser steps",
    "max_steps": "stop after this many optimiser steps (-1: the epochs decide)",
    "layer_lr_decay": "layer-wise learning-rate decay: each encoder layer trains at this times the rate of the "
    "one above, the heads and top layer at --lr (1: one rate everywhere)",
    "reinit_layers": "start this many highest encoder layers from random weights instead of pretrained ones",
    "rdrop": "R-Drop: weight of the agreement loss between two dropout passes of each batch (0: off; on, a step "
    "costs two forward passes)",
    "average_last": "the trained weights are the mean of those after each of this last share of the steps "
    "(0: off; e.g. 0.3)",
}


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "train",
        "fine-tune an encoder on labelled paragraphs and write a bundle",
        "rasid train --data data/mawqif.train.jsonl --val-data data/mawqif.val.jsonl --out models/my-bundle",
        description=__doc__.split("\n\n", 1)[1].strip(),
    )
    p.add_argument("--data", nargs="+", type=Path, required=True, metavar="FILE", help="rasid JSONL/CSV training files")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="bundle folder to write, e.g. models/NAME")
    p.add_argument(
        "--base",
        metavar="DIR",
        help="HF encoder id or local folder (default: the offline e5 base, built "
        "in the user's cache on first use; see rasid base)",
    )
    p.add_argument(
        "--init-from",
        type=Path,
        metavar="DIR",
        help="continue training this bundle (its encoder and heads); tasks the data does not label keep their "
        "heads (training/continued.py) (default: start from --base)",
    )
    p.add_argument("--tasks", help="comma-separated tasks (default: those with labels in the data)")
    p.add_argument(
        "--pair-tasks",
        default="",
        help="comma-separated extra task names that take (target, text); "
        "stance, claim and news_claim always do (default: none)",
    )
    p.add_argument(
        "--val-data",
        nargs="+",
        type=Path,
        default=[],
        metavar="FILE",
        help="validation files (default: carve a split from --data, see --val-fraction)",
    )
    add_numeric_options(p, TrainConfig(data=[Path("x")], out=Path("x")), NUMERIC_OPTIONS)
    p.add_argument(
        "--pooling",
        choices=["mean", "cls"],
        default="mean",
        help="how the encoder's token vectors become one: their mean, or the first ([CLS]) token's; "
        "cls exports as a standard transformers classifier",
    )
    p.add_argument(
        "--task-class-weight-power",
        default="",
        metavar="TASK=P,...",
        help="a task's own --class-weight-power, e.g. stance=0: StanceEval scores only Favor and Against, so "
        "weighting the rare None class up costs target stance (default: none)",
    )
    p.add_argument(
        "--task-repeat",
        default="",
        metavar="TASK=X,...",
        help="sampling by task: each training example of TASK is seen X times per epoch (2: twice; 0.5: a seeded "
        "half), e.g. stance=2 to give a small task more steps beside large ones (default: each once)",
    )
    p.add_argument(
        "--balance-by-target",
        action="store_true",
        help="weigh rare labels within each target of a pair task (targets with at least 100 training examples), "
        "not over the whole task: a stance can be rare toward one target and common overall",
    )
    p.add_argument("--freeze-embeddings", action="store_true", help="do not update the word-embedding matrix")
    p.add_argument(
        "--keep-layers",
        type=int,
        default=0,
        metavar="N",
        help="fine-tune only this many lowest layers of the base and drop the rest: a smaller model, "
        "faster to train and serve (0: all)",
    )
    p.add_argument(
        "--freeze-layers",
        type=int,
        default=0,
        metavar="N",
        help="keep all embeddings and this many lowest layers as pretrained (no backward pass there: faster steps)",
    )
    p.add_argument(
        "--bf16",
        action="store_true",
        help="bf16 autocast: for CPUs with AMX and recent GPUs; on a CPU "
        "without AMX it trains slower than fp32 (benchmarks/train_speed.py)",
    )
    add_skip_bad_rows(p)
    p.add_argument(
        "--no-int8-check",
        dest="int8_check",
        action="store_false",
        help="skip measuring int8 on the validation rows after training (two inference passes); "
        "the bundle's fast path is then fp32 until `rasid check-int8`",
    )
    p.add_argument(
        "--no-fusion",
        dest="fusion",
        action="store_false",
        help="skip fitting the n-gram models fused with the encoder's answers (training/fusion.py)",
    )
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint of an interrupted run")
    p.add_argument("--run-dir", type=Path, metavar="DIR", help="checkpoint folder (default: <out>.run)")
    p.set_defaults(func=run)


def run(args) -> int:
    names = {f for f in TrainConfig.__dataclass_fields__}
    values = {k: v for k, v in vars(args).items() if k in names}
    values["tasks"] = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    values["pair_tasks"] = [t.strip() for t in args.pair_tasks.split(",") if t.strip()]
    values["task_class_weight_power"] = task_values(
        args.task_class_weight_power, "--task-class-weight-power", "stance=0"
    )
    values["task_repeat"] = task_values(args.task_repeat, "--task-repeat", "stance=2")
    train(TrainConfig(**values))
    return 0


def task_values(option: str, flag: str, example: str) -> dict[str, float]:
    """'stance=0,topic=1' -> {"stance": 0.0, "topic": 1.0}; a malformed pair is a clear error naming `flag`."""
    values = {}
    for pair in (p.strip() for p in option.split(",") if p.strip()):
        task, _, value = pair.partition("=")
        if task.strip() in values:
            raise RasidError(f"{flag} names '{task.strip()}' twice.")
        try:
            values[task.strip()] = float(value)
        except ValueError:
            raise RasidError(f"{flag}: '{pair}' is not TASK=NUMBER (e.g. {example}).") from None
        if not task.strip():
            raise RasidError(f"{flag}: '{pair}' names no task (e.g. {example}).")
    return values


def train(config: TrainConfig, callbacks: list | None = None) -> Path:
    """Run the whole recipe; return the bundle path. `callbacks` are extra HF TrainerCallbacks."""
    from training.training_run import TrainingRun

    return TrainingRun(config, callbacks or []).execute()
