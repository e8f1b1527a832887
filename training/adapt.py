"""`rasid adapt`: continue a base encoder's pre-training with masked-language modelling on your own texts.

Domain- and task-adaptive pre-training (Gururangan et al., "Don't stop pretraining", 2020): a few passes of
masked-LM over unlabelled text from the domain (news) or the task's own training texts move the encoder
toward its vocabulary and style before fine-tuning. The result is a base folder for `rasid train --base`.

The offline base ships no masked-LM head (multilingual-e5 was trained for retrieval), so one is built: a
transform (dense, GELU, LayerNorm, as in BERT's) whose output is scored against the word-embedding matrix
itself (tied, frozen): the encoder learns to point back into the vocabulary it already has, and the folder
written keeps the base's tokenizer and embeddings unchanged. The head is thrown away afterwards.
What it does NOT do: change the vocabulary, or read any labels.
"""

from __future__ import annotations

from pathlib import Path

from serving.options import add_command, add_numeric_options
from training.masked_lm import AdaptConfig

OPTIONS = {  # what each option of AdaptConfig does; its default is AdaptConfig's
    "epochs": "passes over the text windows",
    "batch_size": "text windows per optimiser step",
    "lr": "peak learning rate of the encoder (linear warm-up over 6%% of steps, then linear decay)",
    "head_lr": "peak learning rate of the new masked-LM head",
    "max_length": "tokens per window; a longer text is cut into several windows",
    "mask_probability": "share of tokens masked (of those, 80%% become the mask token, 10%% a random piece)",
    "freeze_layers": "keep this many lowest layers as pretrained (the embeddings always are)",
    "max_texts": "read at most this many texts, sampled with --seed (0: all)",
    "seed": "seed of the sample, the masking and the order of the windows",
    "save_steps": "a checkpoint to resume from every this many optimiser steps",
}


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "adapt",
        "continue the base encoder's pre-training (masked LM) on unlabelled text of your domain",
        "rasid adapt --corpus data/mawqif.train.jsonl --out models/base/e5-adapted && "
        "rasid train --base models/base/e5-adapted ...",
        description=__doc__.split("\n\n", 1)[1].strip(),
    )
    p.add_argument(
        "--corpus",
        nargs="+",
        type=Path,
        required=True,
        metavar="FILE",
        help="rasid data files (their text field) or raw text (CSV/TSV/JSON/JSONL/TXT files, folders of them)",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="the adapted base folder to write")
    p.add_argument("--base", metavar="DIR", help="HF encoder id or folder (default: the offline e5 base)")
    add_numeric_options(p, AdaptConfig(corpus=[Path("x")], out=Path("x")), OPTIONS)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint of an interrupted run")
    p.set_defaults(func=run)


def run(args) -> int:
    from training.masked_lm import adapt

    values = {k: v for k, v in vars(args).items() if k in AdaptConfig.__dataclass_fields__}
    print(adapt(AdaptConfig(**values)))
    return 0
