# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Byte-level GGUF builder for hostile-input tests.

gguf.GGUFWriter refuses to write broken files, so the refusal tests assemble headers,
key/values and tensor infos from these primitives and then break exactly one thing.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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


# --- structure walker: where each field of a well-formed file lies -----------------------
# An oracle independent of the collection's reader, for truncation at every structural
# boundary and for the mutation fuzz (benchmarks/gguf_fuzz.py), which overwrites exactly
# the length, count, type and offset fields.

_SCALAR_SIZES = {U8: 1, I8: 1, U16: 2, I16: 2, U32: 4, I32: 4, F32: 4, BOOL: 1, U64: 8, I64: 8, F64: 8}


@dataclass(frozen=True)
class Field:
    """One field of a GGUF file: byte offset, size, what it is (`kind`) and where (`label`)."""

    offset: int
    size: int
    kind: str  # magic, version, count, length, bytes, type, elements, ndims, dim, ggml_type, offset, padding
    label: str


@dataclass(frozen=True)
class Layout:
    fields: tuple[Field, ...]
    data_offset: int  # start of the tensor data region
    alignment: int

    def boundaries(self) -> list[int]:
        """Every offset where one field ends and the next begins, plus the data region start."""
        cuts = {f.offset for f in self.fields} | {f.offset + f.size for f in self.fields}
        return sorted(cuts | {self.data_offset})


def layout(data: bytes) -> Layout:
    """Walk a well-formed GGUF file; raises ValueError if it is not one."""
    fields: list[Field] = []
    pos = 0

    def take(size: int, kind: str, label: str) -> bytes:
        nonlocal pos
        if pos + size > len(data):
            raise ValueError(f"{label}: needs {size} bytes at {pos}, file has {len(data)}")
        fields.append(Field(pos, size, kind, label))
        pos += size
        return data[pos - size : pos]

    def num(size: int, kind: str, label: str) -> int:
        return int.from_bytes(take(size, kind, label), "little")

    def text(label: str) -> bytes:
        length = num(8, "length", f"length of {label}")
        return take(length, "bytes", label)

    take(4, "magic", "magic")
    num(4, "version", "version")
    n_tensors = num(8, "count", "tensor count")
    n_kv = num(8, "count", "key/value count")
    alignment = 32
    for index in range(n_kv):
        key = text(f"key #{index}").decode(errors="replace")
        vtype = num(4, "type", f"value type of {key}")
        if vtype == ARRAY:
            etype = num(4, "type", f"element type of {key}")
            count = num(8, "count", f"element count of {key}")
            if etype == STRING:
                for item in range(count):
                    text(f"{key}[{item}]")
            else:
                take(count * _SCALAR_SIZES[etype], "elements", f"elements of {key}")
        elif vtype == STRING:
            text(f"value of {key}")
        else:
            raw = take(_SCALAR_SIZES[vtype], "value", f"value of {key}")
            if key == "general.alignment":
                alignment = int.from_bytes(raw, "little")
    for index in range(n_tensors):
        name = text(f"name of tensor #{index}").decode(errors="replace")
        n_dims = num(4, "ndims", f"dimension count of {name}")
        for dim in range(n_dims):
            num(8, "dim", f"dimension {dim} of {name}")
        num(4, "ggml_type", f"type of {name}")
        num(8, "offset", f"data offset of {name}")
    data_offset = -(-pos // alignment) * alignment if n_tensors else pos
    if data_offset > pos:
        fields.append(Field(pos, data_offset - pos, "padding", "padding before tensor data"))
    return Layout(tuple(fields), data_offset, alignment)
