# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Byte-level GGUF builder for hostile-input tests.

gguf.GGUFWriter refuses to write broken files, so the refusal tests assemble headers,
key/values and tensor infos from these primitives and then break exactly one thing.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)


def u32(value: int) -> bytes:
    return struct.pack("<I", value)


def u64(value: int) -> bytes:
    return struct.pack("<Q", value)


def string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return u64(len(raw)) + raw


def header(tensor_count: int, kv_count: int, *, version: int = 3, magic: bytes = b"GGUF") -> bytes:
    return magic + u32(version) + u64(tensor_count) + u64(kv_count)


def kv_str(key: str, value: str) -> bytes:
    return string(key) + u32(STRING) + string(value)


def kv_u32(key: str, value: int) -> bytes:
    return string(key) + u32(U32) + u32(value)


def kv_strings(key: str, values: Sequence[str]) -> bytes:
    return string(key) + u32(ARRAY) + u32(STRING) + u64(len(values)) + b"".join(string(v) for v in values)


def kv_u32s(key: str, values: Sequence[int]) -> bytes:
    return string(key) + u32(ARRAY) + u32(U32) + u64(len(values)) + b"".join(u32(v) for v in values)


def tensor_info(name: str, shape: Sequence[int], type_id: int, offset: int) -> bytes:
    return string(name) + u32(len(shape)) + b"".join(u64(d) for d in shape) + u32(type_id) + u64(offset)


LLAMA_KVS = (
    kv_str("general.architecture", "llama"),
    kv_str("general.name", "bytes-llama"),
    kv_u32("llama.block_count", 1),
    kv_u32("llama.context_length", 512),
    kv_u32("llama.embedding_length", 64),
    kv_u32("llama.attention.head_count", 4),
    kv_u32("llama.attention.head_count_kv", 2),
    kv_strings("tokenizer.ggml.tokens", ["a", "b", "c"]),
)


def build(
    kvs: Iterable[bytes] = LLAMA_KVS,
    tensors: Sequence[tuple[str, Sequence[int], int, int]] = (("w", (64, 2), 0, 0),),
    data_size: int | None = None,
    *,
    version: int = 3,
    alignment: int = 32,
) -> bytes:
    """A GGUF file; tensors are (name, shape, ggml type id, offset); data is zero-filled."""
    kv_list = list(kvs)
    body = header(len(tensors), len(kv_list), version=version) + b"".join(kv_list)
    body += b"".join(tensor_info(*t) for t in tensors)
    body += b"\0" * (-len(body) % alignment)
    if data_size is None:
        data_size = max((off + _nbytes(shape, tid) for _n, shape, tid, off in tensors), default=0)
    return body + b"\0" * data_size


def _nbytes(shape: Sequence[int], type_id: int) -> int:
    sizes = {0: (1, 4), 1: (1, 2), 2: (32, 18), 8: (32, 34), 12: (256, 144), 14: (256, 210)}
    block, size = sizes[type_id]
    rows = 1
    for dim in shape[1:]:
        rows *= dim
    return rows * shape[0] // block * size
