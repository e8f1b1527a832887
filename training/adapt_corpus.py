"""The unlabelled text `rasid adapt` reads: rasid data files and raw corpora, cut into token windows."""

from __future__ import annotations

import json
import random
from pathlib import Path

from serving.errors import RasidError


def read_texts(paths: list[Path], max_texts: int, seed: int) -> list[str]:
    """The texts of rasid data files (their `text` field) and of raw corpora (CSV/TSV cells, JSON text values,
    lines of plain text files), folders read recursively, normalised as training normalises them."""
    from serving.data_files import read_rows
    from serving.normalize import normalize
    from training.e5.base_folder import corpus_files
    from training.e5.trim import CorpusError, iter_texts

    texts: list[str] = []
    for file in corpus_files(paths, name="--corpus"):
        if _is_rasid_data(file):
            texts.extend(row.text for row in read_rows([file]).rows)
        else:  # every cell of a CSV comes back: ids, dates and labels are the short ones
            try:
                texts.extend(text for text in iter_texts(file) if len(text.split()) >= 3)
            except CorpusError as error:  # it speaks of the trimming corpus, its first reader
                raise RasidError(f"cannot read the --corpus file {file}: {error.__cause__}.") from None
    texts = list(dict.fromkeys(normalize(t).strip() for t in texts if t.strip()))  # no text twice
    if not texts:
        raise RasidError(f"no text found in --corpus {' '.join(map(str, paths))}.")
    if max_texts and len(texts) > max_texts:
        texts = random.Random(seed).sample(texts, max_texts)
    return texts


def _is_rasid_data(file: Path) -> bool:
    """A rasid JSONL file: its first record has a `text` field (raw JSON corpora are read by iter_texts)."""
    if file.suffix.lower() != ".jsonl":
        return False
    with open(file, encoding="utf-8") as handle:
        first = next((line for line in handle if line.strip()), "")
    try:
        record = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(record, dict) and "text" in record


def windows(texts: list[str], tokenizer, max_length: int) -> list[list[int]]:
    """Token ids in windows of at most max_length (special tokens included): a long article becomes several."""
    body = max_length - 2
    first = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    last = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    out = []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        for start in range(0, max(len(ids), 1), body):
            piece = ids[start : start + body]
            if len(piece) >= 4:  # a shorter tail (of a long text) would rarely have one token masked
                out.append([first, *piece, last])
    return out
