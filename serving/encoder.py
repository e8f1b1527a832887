"""BERT for inference in plain torch: runs a bundle's standard `BertModel` weights without transformers.

Why not `transformers.BertModel` when serving: importing transformers' modeling code costs resident memory
before any weight is loaded (benchmarks/memory.py), and its weights can only be fp32 or cast by autocast on
every call. This module reads `model.safetensors` straight into the parameters, in fp32 or in
bf16, can turn the matrix products into per-row int8 (Int8Linear), fuses query/key/value into one product,
and spends no compute on padding: only a batch's real tokens go through the layers. It computes the same
function: `tests/test_encoder.py` checks it against `transformers.BertModel` on the same weights, outputs
and gradients. `rasid train` trains on it too (`trainable_encoder`), with a cheaper dropout (see `dropout`),
and writes it back as a standard HF folder (`save_pretrained`), so bundles and exports do not change.
Only BERT-type encoders (e5, AraBERT, CAMeLBERT, MARBERT) run here; other architectures stay on transformers.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from serving.errors import BundleError

MODEL_TYPES = ("bert",)
_SAFETENSORS_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
_READ_CHUNK = 1 << 22  # elements converted at a time, so a dtype change never holds a whole fp32 tensor twice


@dataclass  # not frozen: the HF Trainer sets attributes on its model's config (use_cache)
class EncoderConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1  # only while training, as in transformers
    attention_probs_dropout_prob: float = 0.1

    @classmethod
    def supports(cls, config: dict) -> bool:
        """True for configs this module computes exactly; anything else is left to transformers."""
        return (
            config.get("model_type") in MODEL_TYPES
            and config.get("hidden_act", "gelu") == "gelu"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and not config.get("is_decoder", False)
        )

    @classmethod
    def from_dict(cls, config: dict) -> "EncoderConfig":
        return cls(**{f.name: config[f.name] for f in fields(cls) if f.name in config})


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """F.dropout with the keep mask drawn by numpy instead of torch's CPU generator.

    Why: torch draws CPU random numbers one at a time on one thread, which made dropout a large share of a
    training step on e5-small (benchmarks/train_speed.py); numpy's SFC64 fills the same mask far faster. Each element is kept with probability 1 - p to within 2^-16 (16 random bits
    per element), and kept values are scaled by 1 / (1 - p), as F.dropout does. The generator is seeded from
    torch's, so torch.manual_seed (and a resumed Trainer's restored RNG state) makes runs repeatable."""
    if not training or p == 0:
        return x
    if x.device.type != "cpu":  # accelerators draw random numbers fast on their own
        return F.dropout(x, p, True)
    seed = int(torch.randint(0, 2**62, (1,)))
    words = np.random.Generator(np.random.SFC64(seed)).bit_generator.random_raw((x.numel() + 3) // 4)
    bits = torch.from_numpy(words.view(np.uint16)[: x.numel()].view(np.int16)).view(x.shape)
    scale = torch.where(bits >= -32768 + round(p * 65536), 1 / (1 - p), 0.0).to(x.dtype)
    return x * scale


class Int8Linear(nn.Module):
    """y = x W^T + b in int8 arithmetic: W quantised once per output channel, x per row at run time (one
    scale per token), then one int8 x int8 -> int32 product (VNNI on x86). Because every row has its own
    scale, a text's result does not depend on the texts batched with it, unlike per-tensor dynamic int8."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(1).clamp(min=1e-12) / 127
        quantised = (weight / scale[:, None]).round_().clamp_(-127, 127).to(torch.int8)
        self.register_buffer("weight_t", quantised.t())  # [in, out] as _int_mm takes it; memory stays [out, in]
        self.register_buffer("weight_scale", scale)
        self.register_buffer("bias", linear.bias.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1]).float()
        scale = rows.abs().amax(1, keepdim=True).clamp_(min=1e-12) / 127
        quantised = (rows / scale).round_().clamp_(-127, 127).to(torch.int8)
        # torch._int_mm: torch's int8 x int8 -> int32 matrix product (the one torchao builds on).
        out = torch._int_mm(quantised, self.weight_t).float().mul_(scale).mul_(self.weight_scale).add_(self.bias)
        return out.reshape(*x.shape[:-1], out.shape[-1])


class Layer(nn.Module):
    def __init__(self, c: EncoderConfig, dtype: torch.dtype):
        super().__init__()
        self.heads = c.num_attention_heads
        self.dtype = dtype  # of the matrix products
        self.hidden_dropout, self.attention_dropout = c.hidden_dropout_prob, c.attention_probs_dropout_prob
        self.qkv = nn.Linear(c.hidden_size, 3 * c.hidden_size, dtype=dtype)  # query, key, value: one product
        self.attention_out = nn.Linear(c.hidden_size, c.hidden_size, dtype=dtype)
        self.attention_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.ffn_in = nn.Linear(c.hidden_size, c.intermediate_size, dtype=dtype)
        self.ffn_out = nn.Linear(c.intermediate_size, c.hidden_size, dtype=dtype)
        self.ffn_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor, lengths: list[int], real: torch.Tensor) -> torch.Tensor:
        """x: the real tokens of all texts, packed [tokens, hidden]; lengths: tokens per text, in order;
        real: the batch's attention mask as booleans [batch, length]."""
        # As under bf16 autocast: matrix products in the weights' dtype, residual sums and layer norms in fp32.
        dtype = self.dtype
        tokens, hidden = x.shape
        qkv = self.qkv(x.to(dtype)).view(tokens, 3, self.heads, -1)
        if self.training and self.attention_dropout:
            attended = self._attend_padded(qkv, real)
        else:
            # Attention is the one step that mixes tokens, so it alone runs text by text; being unpadded, no
            # text needs a mask.
            attended = torch.cat([self._attend(text) for text in qkv.split(lengths)])
        x = self.attention_norm(x + self._dropout(self.attention_out(attended).float()))
        return self.ffn_norm(x + self._dropout(self.ffn_out(F.gelu(self.ffn_in(x.to(dtype)))).float()))

    def _dropout(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.hidden_dropout, self.training)

    def _attend_padded(self, qkv: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Training: dropout on the attention probabilities has no fused CPU kernel, so attention runs as
        batched products on the texts padded to the longest (rasid trains on length-grouped batches, so
        there is little padding), the padding masked out of the keys."""
        batch, length = real.shape
        where = _flat_positions(real)
        padded = qkv.new_zeros(batch * length, *qkv.shape[1:]).index_copy(0, where, qkv)
        q, k, v = padded.view(batch, length, *qkv.shape[1:]).permute(2, 0, 3, 1, 4)  # [batch, heads, length, size]
        masked_keys = q.new_zeros(real.shape).masked_fill_(~real, torch.finfo(q.dtype).min)
        scores = (q / math.sqrt(q.shape[-1])) @ k.transpose(-1, -2) + masked_keys[:, None, None, :]
        probabilities = dropout(scores.softmax(-1), self.attention_dropout, True)
        attended = (probabilities @ v).transpose(1, 2).reshape(batch * length, -1)
        return attended.index_select(0, where)

    @staticmethod
    def _attend(qkv: torch.Tensor) -> torch.Tensor:
        length = qkv.shape[0]
        q, k, v = qkv.permute(1, 2, 0, 3)[:, None]  # each [1, heads, length, head size]
        # 4-d inputs: torch's fused CPU attention kernel takes only those (3-d falls back to a slower path)
        return F.scaled_dot_product_attention(q, k, v)[0].transpose(0, 1).reshape(length, -1)


class BertEncoder(nn.Module):
    """The last hidden state [batch, length, hidden] (fp32; zeros at padding) of a BERT encoder; no pooler."""

    def __init__(self, config: EncoderConfig, dtype: torch.dtype = torch.float32, hf_config: dict | None = None):
        super().__init__()
        self.config = config
        self.hf_config = hf_config or {}  # the full config.json, written back by save_pretrained
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, dtype=dtype)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.embedding_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(Layer(config, dtype) for _ in range(config.num_hidden_layers))

    def forward(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        # Padding-free: only the real tokens go through the layers, packed into one [tokens, hidden] matrix,
        # so a batch costs its tokens whatever its longest text (same result as masking the padding).
        batch, length = input_ids.shape
        real = attention_mask.bool()
        lengths = real.sum(1).tolist()
        # absolute positions, as BERT counts them
        positions = torch.arange(length, device=input_ids.device).expand(batch, length)[real]
        x = self.word_embeddings(input_ids[real]).float() + self.position_embeddings(positions)
        x = x + (
            self.token_type_embeddings(token_type_ids[real])
            if token_type_ids is not None
            else self.token_type_embeddings.weight[0]
        )
        x = dropout(self.embedding_norm(x), self.config.hidden_dropout_prob, self.training)
        for layer in self.layers:
            x = layer(x, lengths, real)
        return x.new_zeros(batch * length, x.shape[-1]).index_copy(0, _flat_positions(real), x).view(batch, length, -1)

    def get_input_embeddings(self) -> nn.Embedding:  # the name transformers models give it
        return self.word_embeddings

    def hf_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights under transformers.BertModel's names (query/key/value split out again)."""
        return {name: tensor.detach().contiguous() for name, tensor in _destinations(self).items()}

    def save_pretrained(self, folder: Path, **_options) -> None:
        """Write a standard HF BERT folder (config.json + model.safetensors) that AutoModel loads."""
        from safetensors.torch import save_file

        folder = Path(folder)
        config = {**self.hf_config, "model_type": "bert", "architectures": ["BertModel"]}
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        save_file(self.hf_state_dict(), str(folder / "model.safetensors"), metadata={"format": "pt"})

    def quantize_int8(self) -> "BertEncoder":
        """Replace the matrix products by Int8Linear (in place); the rest keeps computing in fp32."""
        for layer in self.layers:
            layer.dtype = torch.float32
            for name in ("qkv", "attention_out", "ffn_in", "ffn_out"):
                setattr(layer, name, Int8Linear(getattr(layer, name)))
        return self


def _flat_positions(real: torch.Tensor) -> torch.Tensor:
    """Where a batch's real tokens sit in its flattened [batch * length] layout, in packing order: moving
    rows with index_copy/index_select is far cheaper than boolean-mask indexing, forward and backward."""
    return real.view(-1).nonzero().squeeze(1)


def load_encoder(folder: Path, dtype: torch.dtype = torch.float32) -> BertEncoder:
    """The encoder of a standard HF BERT folder (config.json + model.safetensors). `dtype` is that of the
    matrix-product weights and the word embeddings; layer norms, positions and biases of norms stay fp32."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if not EncoderConfig.supports(config):
        raise BundleError(f"{folder} holds a {config.get('model_type')!r} encoder; serving.encoder runs BERT only.")
    # Built directly in its final dtypes, then overwritten from the file. (Building on the "meta" device to
    # skip the random initialisation costs more memory: its first use loads torch's meta kernels.)
    try:
        shape = EncoderConfig.from_dict(config)
    except TypeError as error:  # a required field missing from config.json
        raise BundleError(f"{folder / 'config.json'} is not a complete BERT config ({error}).") from error
    encoder = BertEncoder(shape, dtype, config).eval().requires_grad_(False)
    missing = _read_into(folder / "model.safetensors", _destinations(encoder))
    if missing:
        raise BundleError(f"{folder / 'model.safetensors'} lacks {len(missing)} encoder tensors, e.g. {missing[:3]}.")
    return encoder


def trainable_encoder(model: nn.Module) -> BertEncoder | None:
    """A trainable fp32 copy of a transformers BERT model on this module's layers; None for a model this
    module does not compute (other architectures), which then trains on transformers as it is."""
    config = model.config.to_dict()
    if not EncoderConfig.supports(config):
        return None
    encoder = BertEncoder(EncoderConfig.from_dict(config), torch.float32, config)
    weights = {name.removeprefix("bert."): tensor for name, tensor in model.state_dict().items()}
    destinations = _destinations(encoder)
    missing = sorted(set(destinations) - set(weights))
    if missing:
        raise BundleError(f"the base encoder lacks {len(missing)} BERT tensors, e.g. {missing[:3]}.")
    with torch.no_grad():
        for name, target in destinations.items():
            target.copy_(weights[name])
    return encoder


def _destinations(encoder: BertEncoder) -> dict[str, torch.Tensor]:
    """HF BertModel tensor name -> where it goes here (query/key/value land in slices of the fused matrix)."""
    out = {
        "embeddings.word_embeddings.weight": encoder.word_embeddings.weight,
        "embeddings.position_embeddings.weight": encoder.position_embeddings.weight,
        "embeddings.token_type_embeddings.weight": encoder.token_type_embeddings.weight,
        "embeddings.LayerNorm.weight": encoder.embedding_norm.weight,
        "embeddings.LayerNorm.bias": encoder.embedding_norm.bias,
    }
    hidden = encoder.config.hidden_size
    for i, layer in enumerate(encoder.layers):
        prefix = f"encoder.layer.{i}."
        for part in ("weight", "bias"):
            fused = getattr(layer.qkv, part)
            for j, name in enumerate(("query", "key", "value")):
                out[f"{prefix}attention.self.{name}.{part}"] = fused[j * hidden : (j + 1) * hidden]
            out[f"{prefix}attention.output.dense.{part}"] = getattr(layer.attention_out, part)
            out[f"{prefix}attention.output.LayerNorm.{part}"] = getattr(layer.attention_norm, part)
            out[f"{prefix}intermediate.dense.{part}"] = getattr(layer.ffn_in, part)
            out[f"{prefix}output.dense.{part}"] = getattr(layer.ffn_out, part)
            out[f"{prefix}output.LayerNorm.{part}"] = getattr(layer.ffn_norm, part)
    return out


def _read_into(path: Path, destinations: dict[str, torch.Tensor]) -> list[str]:
    """Fill each destination from the safetensors file by plain reads (no memory map, so the file's pages
    never count as the process's memory), converting dtype chunk by chunk. Returns the names not found.
    Tolerates a `bert.` prefix (a folder saved from a BertFor... model) and ignores tensors it does not use."""
    try:
        with open(path, "rb") as handle:
            (header_size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(header_size))
            start = 8 + header_size
            found = set()
            for stored, info in header.items():
                name = stored.removeprefix("bert.")
                if name not in destinations or stored == "__metadata__":
                    continue
                target, source_dtype = destinations[name], _SAFETENSORS_DTYPES.get(info["dtype"])
                begin, end = info["data_offsets"]
                size = source_dtype.itemsize if source_dtype is not None else 0
                if not size or math.prod(info["shape"]) != target.numel() or end - begin != target.numel() * size:
                    raise BundleError(
                        f"{path}: tensor {stored} is {info['dtype']} {info['shape']}, expected {tuple(target.shape)}."
                    )
                handle.seek(start + begin)
                flat = target.view(-1)
                for offset in range(0, target.numel(), _READ_CHUNK):
                    count = min(_READ_CHUNK, target.numel() - offset)
                    data = bytearray(handle.read(count * size))
                    if len(data) != count * size:
                        raise BundleError(f"{path} is truncated inside tensor {stored}.")
                    flat[offset : offset + count].copy_(torch.frombuffer(data, dtype=source_dtype))
                found.add(name)
    except (OSError, ValueError, KeyError, struct.error) as error:
        raise BundleError(f"cannot read the encoder weights {path}: {error}.") from error
    return sorted(set(destinations) - found)
