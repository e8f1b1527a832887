"""Vocabulary trimming: keep the pieces an Arabic corpus can produce, plus what unknown text needs to tokenise.

The tokenizer splits on whitespace and prepends "▁" to every word, so a word's pieces never depend on its
neighbours: tokenising each distinct word once (raw and as `serving.normalize.normalize` leaves it) finds
every piece the trainer will meet, in seconds instead of tokenising the corpus text by text.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from serving.errors import RasidError
from serving.files import hash_into
from serving.normalize import DEFAULT_SETTINGS, normalize
from training.e5.convert import MASK_PIECE

# Bump when the kept set would change for the same corpus (a new rule here), so old folders get rebuilt.
TRIM_VERSION = 2
SHARED_DATA_ENV = "RASID_SHARED_DATA"
# The labelled sets and SaudiNewsNet in ../shared/data; each is read as raw text fields (no recipes).
DEFAULT_CORPUS_GLOBS = (
    "mawqif/*.csv",
    "asnd/*.csv",
    "ans_khouja2020/*/*.csv",
    "austr/*.tsv",
    "fignews2024/*.tsv",
    "unifiedfc_baly2018/dataset/*.json",
    "saudinewsnet/*.json",
)
JSON_TEXT_KEYS = ("title", "content", "claim", "article", "text")  # SaudiNewsNet, Baly; others are metadata


class CorpusError(RasidError):
    """The trimming corpus is missing or unreadable."""


def shared_data_dir() -> Path:
    return Path(os.environ.get(SHARED_DATA_ENV) or Path("..") / "shared" / "data")


def default_corpus(fallback: list[Path] | None = None, say=print) -> list[Path]:
    """The files of ../shared/data (or $RASID_SHARED_DATA) that trimming reads when the user names none; where
    that holds none of the shared data sets, the `fallback` files (e.g. the user's training files)."""
    root = shared_data_dir()
    files = sorted(p for pattern in DEFAULT_CORPUS_GLOBS for p in root.glob(pattern))
    if not files and fallback:
        say(f"base: no shared data sets in {root} ({SHARED_DATA_ENV}); trimming the vocabulary to the training files")
        return [Path(p) for p in fallback]
    if not files:
        raise CorpusError(
            f"no trimming corpus: {root} holds none of the shared data sets (looked for "
            f"{', '.join(DEFAULT_CORPUS_GLOBS)})."
        )
    return files


def corpus_fingerprint(files: list[Path]) -> str:
    """sha256 over the rule version, the normalisation settings and every file's name and content."""
    digest = hashlib.sha256(f"trim v{TRIM_VERSION} {json.dumps(DEFAULT_SETTINGS.to_dict(), sort_keys=True)}".encode())
    for path in files:
        digest.update(f"\0{path.name}\0".encode())
        hash_into(digest, path)
    return digest.hexdigest()


def _json_strings(value, keep_all: bool) -> Iterator[str]:
    if isinstance(value, str):
        if keep_all:
            yield value
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item, keep_all)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _json_strings(item, keep_all or key in JSON_TEXT_KEYS)


def iter_texts(path: Path) -> Iterator[str]:
    """Raw text fields of one corpus file: CSV/TSV cells, JSON text values, or lines of any other file."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            with open(path, encoding="utf-8-sig", newline="") as handle:
                dialect = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if suffix == ".tsv" else {}
                csv.field_size_limit(sys.maxsize)
                for row in csv.reader(handle, **dialect):
                    yield from row
        elif suffix == ".json":
            yield from _json_strings(json.loads(path.read_text(encoding="utf-8")), keep_all=False)
        elif suffix == ".jsonl":
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        yield from _json_strings(json.loads(line), keep_all=True)
        else:
            with open(path, encoding="utf-8") as handle:
                yield from handle
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as error:
        raise CorpusError(f"cannot read the trimming corpus file {path}: {error}.") from error


def word_splitter(norm_table: dict[int, list[int]]) -> re.Pattern:
    """Split only where the tokenizer will split too: whitespace that its normaliser keeps as whitespace."""
    chars = []
    for cp in range(0x3000 + 1):
        c = chr(cp)
        if not c.isspace():
            continue
        out = "".join(map(chr, norm_table.get(cp, [cp])))
        if out and all(ch.isspace() and ch not in "\x1c\x1d\x1e\x1f" for ch in out):
            chars.append(c)
    return re.compile("[" + re.escape("".join(chars)) + "]+")


def collect_words(texts: Iterable[str], splitter: re.Pattern) -> set[str]:
    """Distinct words of the texts, raw and normalised (normalising word by word equals doing it per text)."""
    raw: set[str] = set()
    for text in texts:
        raw.update(splitter.split(text))
    words = set(raw)
    for word in raw:
        words.update(splitter.split(normalize(word)))
    words.discard("")
    return words


def always_kept(pieces: list[str], scores: np.ndarray) -> set[int]:
    """Specials, single characters (± "▁") and the lowest-scored piece (which fixes the <unk> score).

    Multi-character pieces the corpus never produced are dropped, English ones included (keeping every ASCII
    piece more than doubled the vocabulary for text rasid does not read). Any text still tokenises, because every character
    has a piece; a word the corpus never showed splits into smaller pieces instead."""
    keep = {0, 1, 2, 3, pieces.index(MASK_PIECE), int(np.argmin(scores))}
    for i, piece in enumerate(pieces):
        if len(piece.removeprefix("▁")) <= 1:
            keep.add(i)
    return keep


def pieces_of_words(tok, words: Iterable[str], batch: int = 20_000) -> set[int]:
    """Every piece id the tokenizer emits for any of the words."""
    words = sorted(words)
    ids: set[int] = set()
    for start in range(0, len(words), batch):
        for encoding in tok.encode_batch(words[start : start + batch], add_special_tokens=False):
            ids.update(encoding.ids)
    return ids


def new_order(keep: set[int], n_pieces: int, mask_id: int) -> np.ndarray:
    """Old ids in their new order: 0-3 in place, other kept pieces by old id, <mask> last."""
    middle = sorted(i for i in keep if 3 < i < n_pieces and i != mask_id)
    return np.array([0, 1, 2, 3, *middle, mask_id], dtype=np.int64)
