"""Shared fixtures: a tiny BERT and tokenizer built from the project's own sample sentences, sample data
files, and one tiny trained bundle (built once per session; tests get copies where they modify it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from unittest import mock

import pytest

from tests.samples import CLAIM, STANCE, TOPIC


def _all_sample_texts() -> list[str]:
    texts = [t for t, _ in TOPIC]
    for target, text, _ in STANCE + CLAIM:
        texts += [target, text]
    return texts


def build_tiny_base(folder: Path) -> Path:
    """A 2-layer, 32-wide BERT with a WordPiece tokenizer trained on the sample sentences."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(
        _all_sample_texts(), trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials)
    )
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=fast.pad_token_id,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def sample_rows() -> list[dict]:
    rows = [{"text": t, "topic": label, "source": "topics"} for t, label in TOPIC]
    rows += [{"text": t, "target": g, "stance": s, "source": "stances"} for g, t, s in STANCE]
    rows += [{"text": t, "target": g, "claim": s, "group": g, "source": "claims"} for g, t, s in CLAIM]
    return rows


def tiny_config(data: Path, out: Path, base: Path, **overrides):
    """The suite's tiny training run: two short epochs on the samples, a quarter held out for validation."""
    from training.train import TrainConfig

    options = dict(
        data=[data], out=out, base=str(base), epochs=2, batch_size=8, val_fraction=0.25, lr=1e-3, max_length=64
    )
    return TrainConfig(**{**options, **overrides})


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    return build_tiny_base(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "samples.jsonl", sample_rows())


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory, tiny_base, sample_data) -> Path:
    """A bundle with topic (single), stance and claim (pair) heads, trained for a few steps on the samples."""
    from training.train import train

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    with mock.patch("serving.precision.int8_is_fast", return_value=True):  # record the int8 cost on any CPU
        train(tiny_config(sample_data, out, tiny_base))
    return out


@pytest.fixture
def bundle_copy(trained_bundle, tmp_path) -> Path:
    """A private copy of the trained bundle, for tests that change or break it."""
    return Path(shutil.copytree(trained_bundle, tmp_path / "bundle"))
