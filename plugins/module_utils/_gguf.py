# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""GGUF metadata reader: header, key/values and tensor infos, never tensor data.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

Standard library only, so the same file runs on the controller (filters, CI) and on a
Raspberry Pi (modules). The cost is proportional to the metadata (vocabulary, merges),
not to the file size: large arrays are skipped, never materialised.

Every file is treated as hostile (tests/unit/gguf_hostile.py lists the published GGUF parser
vulnerability classes with their sources, and crafted files for each): every length and count
is checked against the bytes left in the file before anything is allocated, the memory the
decoded metadata takes and the work a file can cause are bounded by the limits below, and the
structural faults llama.cpp refuses to load (tensor layout, key types, layer and vocabulary
counts) are refused here too, with the field and the problem named. Upstream facts are from
llama.cpp at the commit llama-cpp-python 0.3.36 vendors (0c1e57098bba43ac29e6e3b677cdceebdd22334f):
ggml/src/gguf.cpp (header, key/values, tensor infos, layout), ggml/include/ggml.h
(GGML_MAX_DIMS, GGML_MAX_NAME), src/llama-hparams.h (LLAMA_MAX_LAYERS),
src/llama-model-loader.cpp (key types, per-layer arrays, tensor shapes) and
src/llama-vocab.cpp (vocabulary arrays).
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeAlias

__all__ = [
    "FILE_TYPES",
    "GGML_TYPES",
    "GGUF_MAGIC",
    "ArraySummary",
    "GGMLType",
    "GGUFArrayError",
    "GGUFError",
    "GGUFInfo",
    "GGUFLimitError",
    "GGUFMagicError",
    "GGUFMetadataError",
    "GGUFTensorError",
    "GGUFTruncatedError",
    "GGUFTypeError",
    "GGUFVersionError",
    "TensorInfo",
    "describe_start",
    "detect_format",
    "read_gguf",
    "read_gguf_stream",
    "tensor_nbytes",
]

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
# --- upstream limits (llama.cpp, see the module docstring) ---------------------------------
# GGML_MAX_DIMS: a tensor with more dimensions cannot be loaded by any runtime.
MAX_DIMS = 4
# GGML_MAX_NAME: gguf.cpp refuses a tensor name of this many bytes or more.
GGML_MAX_NAME = 64
# LLAMA_MAX_LAYERS: llama-model.cpp asserts 0 < block_count <= 512.
MAX_LAYERS = 512
# --- limits of this reader: far above any published model, they bound memory and time -----
# Published models have fewer than 100 key/values and a few thousand tensors.
MAX_KV_COUNT = 1 << 16
MAX_TENSOR_COUNT = 1 << 16
# gguf-py and llama.cpp write 32; a larger alignment only pads. 1 MiB is the bound proposed
# upstream (ggml-org/ggml#1516, ggml-org/llama.cpp#24997).
MAX_ALIGNMENT = 1 << 20
# Strings in all string arrays together (walked, not decoded): the largest published
# tokenizers have about 0.3 M tokens and 0.5 M merges. Walking 8 M takes about 1 s.
MAX_STRING_ELEMENTS = 1 << 23
# Approximate bytes of Python objects the decoded keys and values may take (a real model's
# take well under 1 MiB: long arrays and strings are skipped, not decoded).
DECODE_BUDGET = 8 << 20
# Arrays up to this many elements are decoded (per-layer head counts and similar);
# longer ones (vocabularies, merges, scores) are only counted and skipped.
MAX_DECODED_ARRAY = 1024
# Longer strings (there are none among the keys we use) are skipped, not decoded.
MAX_DECODED_STRING = 1 << 16
READ_CHUNK = 1 << 20
# 1 PiB: no tensor of a model that could run anywhere is this large, so a bigger size is
# corrupt tensor info rather than a truncated download.
MAX_TENSOR_BYTES = 1 << 50
# What one decoded key, string or scalar costs against DECODE_BUDGET (object headers).
_OBJECT_COST = 64
_SCALAR_COST = 32


class GGUFError(ValueError):
    """Base class: the file is not a GGUF file this collection can use."""


class GGUFMagicError(GGUFError):
    """The file does not start with the GGUF magic."""


class GGUFVersionError(GGUFError):
    """The GGUF version is not 2 or 3 (or the file is big-endian)."""


class GGUFTruncatedError(GGUFError):
    """The file ends before the header, metadata, tensor infos or tensor data do."""


class GGUFLimitError(GGUFError):
    """A length or count is larger than the rest of the file could hold."""


class GGUFArrayError(GGUFError):
    """An array of arrays: llama.cpp refuses nested arrays."""


class GGUFTypeError(GGUFError):
    """An unknown metadata value type or GGML tensor type."""


class GGUFTensorError(GGUFError):
    """A tensor info is inconsistent: shape, offset, alignment, overlap or duplicate name."""


class GGUFMetadataError(GGUFError):
    """A metadata key is missing, empty, duplicated, of the wrong type or inconsistent with the tensors."""


@dataclass(frozen=True)
class GGMLType:
    """A GGML tensor type: elements per block and bytes per block."""

    type_id: int
    name: str
    block_size: int
    type_size: int

    @property
    def bits_per_weight(self) -> float:
        return self.type_size * 8 / self.block_size


def _types(*rows: tuple[int, str, int, int]) -> dict[int, GGMLType]:
    return {row[0]: GGMLType(*row) for row in rows}


# GGML type ids with (block size, bytes per block), as ggml defines them. Ids 4, 5 and
# 31-33, 36-38 were removed from ggml (old Q4_2/Q4_3 and the repacked Q4_0_x_y types):
# no current runtime loads them, so they are reported as unknown.
GGML_TYPES: dict[int, GGMLType] = _types(
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 40),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
)
GGML_TYPES_BY_NAME: dict[str, GGMLType] = {t.name: t for t in GGML_TYPES.values()}

# general.file_type values (llama.cpp's llama_ftype) and the quantization mix names users know.
FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
}

# Metadata value types: id -> (struct format, size) for scalars; 8 = string, 9 = array.
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1),
    1: ("<b", 1),
    2: ("<H", 2),
    3: ("<h", 2),
    4: ("<I", 4),
    5: ("<i", 4),
    6: ("<f", 4),
    7: ("<?", 1),
    10: ("<Q", 8),
    11: ("<q", 8),
    12: ("<d", 8),
}
_STRING = 8
_ARRAY = 9
_VALUE_TYPE_NAMES = {
    0: "uint8",
    1: "int8",
    2: "uint16",
    3: "int16",
    4: "uint32",
    5: "int32",
    6: "float32",
    7: "bool",
    8: "string",
    9: "array",
    10: "uint64",
    11: "int64",
    12: "float64",
}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class ArraySummary:
    """A metadata array too long to decode: its element type and length."""

    element_type: str
    count: int


# Quoted aliases: module_utils must not evaluate `X | Y` at import time on older targets.
Scalar: TypeAlias = "int | float | bool | str"
Value: TypeAlias = "Scalar | ArraySummary | list[Any]"


@dataclass(frozen=True)
class TensorInfo:
    """One tensor info record; `offset` is relative to the start of the data region."""

    name: str
    shape: tuple[int, ...]
    ggml_type: GGMLType
    offset: int
    nbytes: int

    @property
    def n_elements(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count


def tensor_nbytes(shape: tuple[int, ...], ggml_type: GGMLType, name: str = "?") -> int:
    """Bytes a tensor of `shape` occupies; rows must be whole blocks (as ggml requires)."""
    if not shape:
        raise GGUFTensorError(f"tensor {name!r} has no dimensions")
    if shape[0] % ggml_type.block_size:
        raise GGUFTensorError(
            f"tensor {name!r}: first dimension {shape[0]} is not a multiple of the "
            f"{ggml_type.name} block size {ggml_type.block_size}"
        )
    rows = 1
    for dim in shape[1:]:
        rows *= dim
    return rows * (shape[0] // ggml_type.block_size) * ggml_type.type_size


class _Reader:
    """Sequential reader over an unbuffered file with a refilling 1 MiB window.

    Every length is checked against the bytes left in the file *before* anything is
    allocated, so a hostile length can cost neither memory nor time.
    """

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._f = stream
        self.size = size
        self._buf = b""
        self._i = 0  # index of the next unread byte in _buf
        self._base = 0  # file offset of _buf[0]
        self.budget = DECODE_BUDGET  # what decoded keys and values may still cost
        self.strings_left = MAX_STRING_ELEMENTS  # array strings the file may still make us walk

    @property
    def tell(self) -> int:
        return self._base + self._i

    def remaining(self) -> int:
        return self.size - self.tell

    def _need(self, n: int, what: str) -> None:
        if n > self.remaining():
            raise GGUFTruncatedError(
                f"file ends at byte {self.size} while reading {what} at byte {self.tell} "
                f"({n} bytes needed): the file is truncated, download it again"
            )

    def _fill(self, n: int) -> None:
        """Make sure `n` unread bytes are in the window (caller has checked the file has them)."""
        if len(self._buf) - self._i >= n:
            return
        tail = self._buf[self._i :]
        self._base += self._i
        self._f.seek(self._base + len(tail))
        chunk = self._f.read(max(READ_CHUNK, n - len(tail)))
        self._buf = tail + (chunk or b"")
        self._i = 0
        if len(self._buf) < n:
            # The file shrank between stat() and read(): treat as truncated.
            raise GGUFTruncatedError(f"file shrank while being read at byte {self.tell}")

    def read(self, n: int, what: str) -> bytes:
        self._need(n, what)
        self._fill(n)
        data = self._buf[self._i : self._i + n]
        self._i += n
        return data

    def u32(self, what: str) -> int:
        self._need(4, what)
        self._fill(4)
        (value,) = _U32.unpack_from(self._buf, self._i)
        self._i += 4
        return int(value)

    def u64(self, what: str) -> int:
        self._need(8, what)
        self._fill(8)
        (value,) = _U64.unpack_from(self._buf, self._i)
        self._i += 8
        return int(value)

    def scalar(self, type_id: int, what: str) -> int | float | bool:
        fmt, size = _SCALARS[type_id]
        self._need(size, what)
        self._fill(size)
        (value,) = struct.unpack_from(fmt, self._buf, self._i)
        self._i += size
        return value  # type: ignore[no-any-return]

    def skip(self, n: int, what: str) -> None:
        self._need(n, what)
        if len(self._buf) - self._i >= n:
            self._i += n
        else:
            self._base = self.tell + n
            self._buf = b""
            self._i = 0

    def spend(self, cost: int, what: str) -> None:
        """Charge decoded objects against DECODE_BUDGET: a file cannot make the reader hoard memory."""
        self.budget -= cost
        if self.budget < 0:
            raise GGUFLimitError(
                f"{what} (at byte {self.tell}): the decoded metadata would take more than "
                f"{DECODE_BUDGET >> 20} MiB of memory; a real model's takes well under 1 MiB: the file is corrupt"
            )

    def string_length(self, what: str) -> int:
        """A string's length prefix, checked against the bytes left in the file."""
        length = self.u64(f"length of {what}")
        if length > self.remaining():
            raise GGUFLimitError(
                f"{what}: string length {length} is larger than the {self.remaining()} bytes left in the file"
            )
        return length

    def string(self, what: str) -> str | None:
        """Decode a string, or skip it and return None when it is longer than we keep."""
        length = self.string_length(what)
        if length > MAX_DECODED_STRING:
            self.skip(length, what)
            return None
        self.spend(length + _OBJECT_COST, what)
        return self.read(length, what).decode("utf-8", errors="replace")

    def skip_strings(self, count: int, what: str) -> None:
        """Walk `count` length-prefixed strings without decoding them (the vocabulary hot path).

        The window and position live in locals inside the loop: this runs once per token
        and merge (400k times for a Llama-3 tokenizer), where attribute access dominates.
        """
        unpack = _U64.unpack_from
        buf, pos, end = self._buf, self._i, len(self._buf)
        for _index in range(count):
            if end - pos < 8:
                self._i = pos
                self._need(8, what)
                self._fill(8)
                buf, pos, end = self._buf, self._i, len(self._buf)
            (length,) = unpack(buf, pos)
            pos += 8
            if end - pos >= length:
                pos += length
                continue
            self._i = pos
            if length > self.remaining():
                raise GGUFLimitError(
                    f"{what}: string length {length} is larger than the {self.remaining()} bytes left in the file"
                )
            self.skip(length, what)
            buf, pos, end = self._buf, self._i, len(self._buf)
        self._i = pos


def _check_count(reader: _Reader, count: int, min_item_size: int, what: str) -> None:
    """Refuse counts that could not fit in the rest of the file even at minimum item size."""
    if count * min_item_size > reader.remaining():
        raise GGUFLimitError(
            f"{what} count {count} needs at least {count * min_item_size} bytes but only "
            f"{reader.remaining()} are left in the file: the file is corrupt or truncated"
        )


def _type_name(type_id: int, elem_type: int | None = None) -> str:
    name = _VALUE_TYPE_NAMES.get(type_id, str(type_id))
    return f"array[{_VALUE_TYPE_NAMES.get(elem_type, str(elem_type))}]" if elem_type is not None else name


def _read_value(reader: _Reader, type_id: int, key: str) -> tuple[Value | None, str]:
    """A metadata value and its GGUF type name (`uint32`, `string`, `array[float32]`, ...)."""
    if type_id in _SCALARS:
        reader.spend(_SCALAR_COST, f"value of {key!r}")
        return reader.scalar(type_id, f"value of {key!r}"), _type_name(type_id)
    if type_id == _STRING:
        return reader.string(f"value of {key!r}"), _type_name(type_id)
    if type_id == _ARRAY:
        return _read_array(reader, key)
    raise GGUFTypeError(f"metadata key {key!r} has unknown value type {type_id} (expected 0-12)")


def _read_array(reader: _Reader, key: str) -> tuple[ArraySummary | list[Any], str]:
    elem_type = reader.u32(f"array element type of {key!r}")
    count = reader.u64(f"array length of {key!r}")
    type_name = _type_name(_ARRAY, elem_type)
    if elem_type in _SCALARS:
        size = _SCALARS[elem_type][1]
        _check_count(reader, count, size, f"array {key!r} element")
        if count > MAX_DECODED_ARRAY:
            reader.skip(count * size, f"array {key!r}")
            return ArraySummary(_VALUE_TYPE_NAMES[elem_type], count), type_name
        reader.spend(_OBJECT_COST + count * _SCALAR_COST, f"array {key!r}")
        raw = reader.read(count * size, f"array {key!r}")
        return list(struct.unpack(f"<{count}{_SCALARS[elem_type][0][1:]}", raw)), type_name
    if elem_type == _STRING:
        _check_count(reader, count, 8, f"array {key!r} element")
        reader.strings_left -= count
        if reader.strings_left < 0:
            raise GGUFLimitError(
                f"array {key!r}: the string arrays hold more than {MAX_STRING_ELEMENTS} strings in all; "
                "the largest published tokenizers hold under 1 million: the file is corrupt"
            )
        if count > MAX_DECODED_ARRAY:
            reader.skip_strings(count, f"array {key!r}")
            return ArraySummary("string", count), type_name
        reader.spend(_OBJECT_COST, f"array {key!r}")
        return [reader.string(f"element of {key!r}") for _index in range(count)], type_name
    if elem_type == _ARRAY:
        raise GGUFArrayError(
            f"metadata key {key!r} is an array of arrays: llama.cpp refuses nested arrays, "
            "so no runtime can load this file"
        )
    raise GGUFTypeError(f"metadata key {key!r}: array has unknown element type {elem_type} (expected 0-12)")


def _read_header(reader: _Reader) -> tuple[int, int, int]:
    if reader.size < len(GGUF_MAGIC):
        head = reader.read(reader.size, "GGUF magic")
        if GGUF_MAGIC.startswith(head):
            raise GGUFTruncatedError(_short_file(head))
        raise GGUFMagicError(f"not a GGUF file: {describe_start(head, reader.size)}")
    magic = reader.read(4, "GGUF magic")
    if magic != GGUF_MAGIC:
        head = magic + reader.read(min(reader.remaining(), _SNIFF_BYTES - 4), "start of the file")
        raise GGUFMagicError(f"not a GGUF file: {describe_start(head, reader.size)}")
    version = reader.u32("GGUF version")
    if version not in SUPPORTED_VERSIONS:
        swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
        if swapped in SUPPORTED_VERSIONS:
            raise GGUFVersionError(
                f"big-endian GGUF v{swapped}: a Raspberry Pi is little-endian, convert the model without --bigendian"
            )
        raise GGUFVersionError(f"GGUF version {version} is not supported (2 or 3): re-convert with a current llama.cpp")
    tensor_count = reader.u64("tensor count")
    kv_count = reader.u64("metadata key/value count")
    # key length (8) + 1 byte key + value type (4) + 1 byte value
    _check_count(reader, kv_count, 14, "metadata key/value")
    # name length (8) + 1 byte name + n_dims (4) + 1 dim (8) + type (4) + offset (8)
    _check_count(reader, tensor_count, 33, "tensor info")
    for count, limit, what in (
        (kv_count, MAX_KV_COUNT, "metadata key/value count"),
        (tensor_count, MAX_TENSOR_COUNT, "tensor count"),
    ):
        if count > limit:
            raise GGUFLimitError(
                f"{what} {count} is above this reader's limit of {limit} (published models have at most a "
                "few thousand): the file is corrupt"
            )
    return version, tensor_count, kv_count


def _read_metadata(reader: _Reader, kv_count: int) -> tuple[dict[str, Value | None], dict[str, str]]:
    metadata: dict[str, Value | None] = {}
    types: dict[str, str] = {}
    for index in range(kv_count):
        key = reader.string(f"key #{index}")
        if key is None:
            raise GGUFLimitError(f"metadata key #{index} is longer than {MAX_DECODED_STRING} bytes")
        if not key:
            raise GGUFMetadataError(
                f"metadata key #{index} is empty (llama.cpp refuses empty keys): the file is corrupt"
            )
        if key in metadata:
            raise GGUFMetadataError(f"metadata key {key!r} appears twice: the file is corrupt")
        value_type = reader.u32(f"value type of {key!r}")
        reader.spend(_OBJECT_COST, f"metadata key {key!r}")
        metadata[key], types[key] = _read_value(reader, value_type, key)
    return metadata, types


def _read_tensor_info(reader: _Reader, index: int) -> TensorInfo:
    length = reader.string_length(f"name of tensor #{index}")
    if length >= GGML_MAX_NAME:
        raise GGUFTensorError(
            f"tensor #{index} has a {length}-byte name; ggml allows at most {GGML_MAX_NAME - 1} bytes "
            "(GGML_MAX_NAME), so llama.cpp refuses the file"
        )
    name = reader.read(length, f"name of tensor #{index}").decode("utf-8", errors="replace")
    n_dims = reader.u32(f"dimension count of tensor {name!r}")
    if not 1 <= n_dims <= MAX_DIMS:
        raise GGUFTensorError(f"tensor {name!r} has {n_dims} dimensions; ggml supports 1 to {MAX_DIMS}")
    shape = tuple(reader.u64(f"shape of tensor {name!r}") for _dim in range(n_dims))
    if any(dim == 0 for dim in shape):
        raise GGUFTensorError(f"tensor {name!r} has an empty dimension: shape {list(shape)}")
    type_id = reader.u32(f"type of tensor {name!r}")
    ggml_type = GGML_TYPES.get(type_id)
    if ggml_type is None:
        raise GGUFTypeError(
            f"tensor {name!r} has unknown GGML type {type_id}: update the collection or re-quantize the model"
        )
    offset = reader.u64(f"data offset of tensor {name!r}")
    nbytes = tensor_nbytes(shape, ggml_type, name)
    if nbytes > MAX_TENSOR_BYTES:
        raise GGUFTensorError(
            f"tensor {name!r}: shape {list(shape)} of {ggml_type.name} is {nbytes} bytes, more than the "
            f"{MAX_TENSOR_BYTES >> 50} PiB any model could have: the tensor info is corrupt"
        )
    return TensorInfo(name, shape, ggml_type, offset, nbytes)


def _alignment(metadata: Mapping[str, Value | None], types: Mapping[str, str]) -> int:
    if "general.alignment" not in metadata:
        return DEFAULT_ALIGNMENT
    value = metadata["general.alignment"]
    found = types.get("general.alignment", "?")
    if found != "uint32":
        raise GGUFMetadataError(
            f"general.alignment is {_a(found)} but must be a uint32 (llama.cpp refuses any other type): "
            "the file is corrupt"
        )
    if not isinstance(value, int) or value <= 0 or value & (value - 1) or value > MAX_ALIGNMENT:
        raise GGUFMetadataError(
            f"general.alignment must be a power of two from 1 to {MAX_ALIGNMENT} (writers use 32), got {value!r}"
        )
    return value


def _check_tensors(tensors: list[TensorInfo], data_offset: int, alignment: int, file_size: int) -> None:
    """Tensors must be unique and laid out as llama.cpp requires: in order, each one aligned
    and starting where the one before it ends (ggml/src/gguf.cpp refuses any other offset).

    So no two tensors overlap and none lies outside the data region the infos describe. A
    consistent layout whose end lies past the end of the file is a truncated download,
    reported as such without hashing anything.
    """
    names: set[str] = set()
    expected = 0
    for tensor in tensors:
        if tensor.name in names:
            raise GGUFTensorError(f"tensor name {tensor.name!r} appears twice: the file is corrupt")
        names.add(tensor.name)
        if tensor.offset % alignment:
            raise GGUFTensorError(f"tensor {tensor.name!r} offset {tensor.offset} is not aligned to {alignment} bytes")
        if tensor.offset != expected:
            relation = "overlaps the tensor before it" if tensor.offset < expected else "leaves a gap before it"
            outside = f" and lies outside the {file_size}-byte file" if data_offset + tensor.offset >= file_size else ""
            raise GGUFTensorError(
                f"tensor {tensor.name!r} starts at data offset {tensor.offset} but the tensors before it end at "
                f"{expected}: it {relation}{outside}; llama.cpp requires each tensor to start where the previous "
                f"one ends (padded to {alignment} bytes): the file is corrupt"
            )
        expected += -(-tensor.nbytes // alignment) * alignment
    if tensors:
        last = tensors[-1]
        end = data_offset + last.offset + last.nbytes
        if end > file_size:
            raise GGUFTruncatedError(
                f"tensor data ends at byte {end} but the file has {file_size} bytes "
                f"({end - file_size} missing): the file is truncated, download it again"
            )


# Keys llama.cpp reads with an exact type check (src/llama-model-loader.cpp, GKV::get_kv throws
# "key ... has wrong type"): <arch>.<suffix> values it reads as one uint32 ...
_U32_KEYS = (
    "block_count",
    "context_length",
    "embedding_length",
    "vocab_size",
    "attention.key_length",
    "attention.value_length",
    "attention.sliding_window",
    "expert_count",
)
# ... per-layer values: one uint32 or an array of uint32, int32 or bool with one element per
# layer (get_key_or_arr: "wrong array length") ...
_PER_LAYER_KEYS = ("feed_forward_length", "attention.head_count", "attention.head_count_kv", "expert_used_count")
_PER_LAYER_TYPES = ("uint32", "array[uint32]", "array[int32]", "array[bool]")
# ... and file-level keys (general.alignment is checked by _alignment); the tokenizer arrays
# are checked in src/llama-vocab.cpp ("invalid gguf type for ...").
_KEY_TYPES: dict[str, tuple[str, ...]] = {
    "general.architecture": ("string",),
    "general.name": ("string",),
    "general.file_type": ("uint32",),
    "tokenizer.ggml.tokens": ("array[string]",),
    "tokenizer.ggml.scores": ("array[float32]", "array[int32]"),
    "tokenizer.ggml.token_type": ("array[int32]",),
    "tokenizer.ggml.merges": ("array[string]",),
}
_LAYER_TENSOR = re.compile(r"blk\.(\d+)\.", re.ASCII)


def _a(type_name: str) -> str:
    return f"an {type_name}" if type_name.startswith(("int", "array")) else f"a {type_name}"


def _expect_type(types: Mapping[str, str], key: str, allowed: tuple[str, ...]) -> None:
    found = types.get(key)
    if found is not None and found not in allowed:
        raise GGUFMetadataError(
            f"metadata key {key!r} is {_a(found)} but must be {_a(' or '.join(allowed))} (llama.cpp refuses any "
            "other type): the file is corrupt"
        )


def _length(value: Value | None) -> int | None:
    if isinstance(value, ArraySummary):
        return value.count
    if isinstance(value, list):
        return len(value)
    return None


def _check_layers(arch: str, metadata: Mapping[str, Value | None], tensors: list[TensorInfo]) -> None:
    """block_count within llama.cpp's range, per-layer arrays and blk.N tensors consistent with it."""
    key = f"{arch}.block_count"
    block_count = metadata.get(key)
    if not isinstance(block_count, int) or isinstance(block_count, bool):
        return  # absent (a vocabulary-only file); its type was checked already
    if not 1 <= block_count <= MAX_LAYERS:
        raise GGUFMetadataError(
            f"{key} is {block_count}; llama.cpp loads 1 to {MAX_LAYERS} layers (LLAMA_MAX_LAYERS): "
            "the layer count is corrupt"
        )
    for suffix in _PER_LAYER_KEYS:
        count = _length(metadata.get(f"{arch}.{suffix}"))
        if count is not None and count != block_count:
            raise GGUFMetadataError(
                f"{arch}.{suffix} has {count} per-layer values but {key} is {block_count}: "
                "llama.cpp needs one per layer: the file is corrupt"
            )
    pattern = _length(metadata.get(f"{arch}.attention.sliding_window_pattern"))
    if pattern is not None and pattern > MAX_LAYERS:
        raise GGUFMetadataError(
            f"{arch}.attention.sliding_window_pattern has {pattern} values; llama.cpp takes at most {MAX_LAYERS}"
        )
    layers: dict[int, str] = {}
    for tensor in tensors:
        match = _LAYER_TENSOR.match(tensor.name)
        if match:
            layers.setdefault(int(match.group(1)), tensor.name)
    if not layers:
        return
    top = max(layers)
    if top >= block_count:
        raise GGUFTensorError(
            f"tensor {layers[top]!r} belongs to layer {top} but {key} is {block_count} (layers 0 to "
            f"{block_count - 1}): the file is corrupt"
        )
    nextn = metadata.get(f"{arch}.nextn_predict_layers")
    spare = nextn if isinstance(nextn, int) and not isinstance(nextn, bool) and nextn > 0 else 0
    if block_count > top + 1 + spare:
        raise GGUFMetadataError(
            f"{key} is {block_count} but the file has tensors for layers 0 to {top} only: the layer count is corrupt"
        )


def _check_vocabulary(arch: object, metadata: Mapping[str, Value | None], tensors: list[TensorInfo]) -> None:
    """One score and one token type per token, and an embedding row per token (as llama.cpp loads them)."""
    n_tokens = _length(metadata.get("tokenizer.ggml.tokens"))
    if n_tokens is not None:
        for key in ("tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
            count = _length(metadata.get(key))
            if count is not None and count != n_tokens:
                raise GGUFMetadataError(
                    f"{key} has {count} entries but tokenizer.ggml.tokens has {n_tokens}: the vocabulary "
                    "arrays must have one entry per token: the file is corrupt"
                )
    n_vocab = n_tokens
    if n_vocab is None and isinstance(arch, str):
        declared = metadata.get(f"{arch}.vocab_size")
        n_vocab = declared if isinstance(declared, int) and not isinstance(declared, bool) else None
    embd = next((t for t in tensors if t.name == "token_embd.weight"), None)
    if n_vocab is None or embd is None:
        return
    if len(embd.shape) < 2 or embd.shape[1] != n_vocab or any(dim != 1 for dim in embd.shape[2:]):
        raise GGUFTensorError(
            f"tensor 'token_embd.weight' has shape {list(embd.shape)} but the vocabulary has {n_vocab} tokens: "
            f"llama.cpp expects [embedding_length, {n_vocab}]: the file is corrupt"
        )


def _check_model(metadata: Mapping[str, Value | None], types: Mapping[str, str], tensors: list[TensorInfo]) -> None:
    """The keys llama.cpp reads have the types it requires; layers and vocabulary agree with the tensors."""
    for key, allowed in _KEY_TYPES.items():
        _expect_type(types, key, allowed)
    arch = metadata.get("general.architecture")
    if isinstance(arch, str) and arch:
        for suffix in _U32_KEYS:
            _expect_type(types, f"{arch}.{suffix}", ("uint32",))
        for suffix in (*_PER_LAYER_KEYS, "attention.sliding_window_pattern"):
            _expect_type(types, f"{arch}.{suffix}", _PER_LAYER_TYPES)
        _check_layers(arch, metadata, tensors)
    _check_vocabulary(arch, metadata, tensors)


def read_gguf_stream(stream: BinaryIO, size: int) -> GGUFInfo:
    """Parse GGUF metadata from an open binary stream of `size` bytes."""
    reader = _Reader(stream, size)
    version, tensor_count, kv_count = _read_header(reader)
    metadata, types = _read_metadata(reader, kv_count)
    alignment = _alignment(metadata, types)
    tensors = [_read_tensor_info(reader, index) for index in range(tensor_count)]
    data_offset = -(-reader.tell // alignment) * alignment
    if data_offset > size and tensors:
        raise GGUFTruncatedError(f"file ends at byte {size} before the tensor data region at byte {data_offset}")
    _check_tensors(tensors, data_offset, alignment, size)
    _check_model(metadata, types, tensors)
    return GGUFInfo(
        version=version,
        file_size=size,
        alignment=alignment,
        data_offset=data_offset,
        metadata=metadata,
        tensors=tuple(tensors),
        metadata_types=types,
    )


# --- telling a GGUF file from what else lands under a model's name -------------------------

_SNIFF_BYTES = 64
# Pre-GGUF llama.cpp files, as convert_llama_ggml_to_gguf.py reads their magic.
_LEGACY_MAGICS = {b"lmgg": "GGML", b"fmgg": "GGMF", b"tjgg": "GGJT"}
_ARCHIVES = (
    (b"\x1f\x8b", "gzip"),
    (b"PK\x03\x04", "zip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
)


def _looks_like_text(head: bytes) -> bool:
    sample = head.decode("utf-8", errors="ignore")
    return len(sample.encode()) >= len(head) - 3 and all(ch.isprintable() or ch in "\t\r\n" for ch in sample)


def _kind(head: bytes, size: int) -> str:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    low = text[:32].lower()
    if text.startswith(b"version https://git-lfs.github.com/spec/"):
        return "a Git LFS pointer file, not the model it points to (fetch the object itself, e.g. git lfs pull)"
    if low.startswith((b"<!doctype html", b"<html")):
        return "an HTML page (a download server's error or login page saved under the model's name?)"
    if low.startswith((b"<?xml", b"<error")):
        return "an XML document (an S3 or MinIO error response such as NoSuchKey or AccessDenied?)"
    if text.startswith((b"{", b"[")):
        return "JSON text (an error response from the download server?)"
    if head[:4] in _LEGACY_MAGICS:
        return (
            f"a legacy {_LEGACY_MAGICS[head[:4]]} file from before GGUF: convert it with llama.cpp's "
            "convert_llama_ggml_to_gguf.py"
        )
    if len(head) > 8 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= size - 8:
        return "a safetensors file: convert it to GGUF with llama.cpp's convert_hf_to_gguf.py"
    for magic, name in _ARCHIVES:
        if head.startswith(magic):
            return f"a {name}-compressed file: unpack it first"
    return "text" if _looks_like_text(head) else "binary data"


def _short_file(head: bytes) -> str:
    if not head:
        return "the file is empty (0 bytes): the download failed or the file was truncated, download it again"
    return (
        f"the file has only {len(head)} bytes ({head!r}), the start of a GGUF magic: the file is truncated, "
        "download it again"
    )


def describe_start(head: bytes, size: int) -> str:
    """What a file that is not a GGUF model holds, from its first bytes: for error messages."""
    if size == 0:
        return "the file is empty (0 bytes)"
    shown = head[:16]
    printable = "".join(chr(b) if 32 <= b < 127 else "." for b in shown)
    return f"{_kind(head, size)}; {size} bytes, starting {shown.hex(' ')} ({printable!r})"


def detect_format(path: str | os.PathLike[str], declared: str = "auto") -> str:
    """The model format of `path`: `gguf` when it starts with the GGUF magic.

    `declared` other than auto/gguf (e.g. `hef`) is returned as is. With `gguf`, or with `auto`
    for a file named *.gguf, a file that is not GGUF raises GGUFMagicError (GGUFTruncatedError
    when it is empty or a cut-off magic) naming the file and what it holds instead; any other
    file is `unknown` (opaque: checksum only).
    """
    if declared not in ("auto", "gguf"):
        return declared
    with Path(path).open("rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        head = stream.read(_SNIFF_BYTES)
    if head[:4] == GGUF_MAGIC:
        return "gguf"
    if declared == "gguf":
        reason = "format gguf was requested"
    elif Path(path).name.lower().endswith(".gguf"):
        reason = "its name ends in .gguf"
    else:
        return "unknown"
    if size < len(GGUF_MAGIC) and GGUF_MAGIC.startswith(head):
        raise GGUFTruncatedError(f"{os.fspath(path)}: not a GGUF model although {reason}: {_short_file(head)}")
    raise GGUFMagicError(f"{os.fspath(path)}: not a GGUF file although {reason}: {describe_start(head, size)}")


def read_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """Parse the GGUF file at `path`; raises a GGUFError subclass on anything unusable."""
    with Path(path).open("rb", buffering=0) as stream:
        size = os.fstat(stream.fileno()).st_size
        return read_gguf_stream(stream, size)


@dataclass(frozen=True)
class GGUFInfo:
    """What the collection knows about a GGUF file after reading its metadata."""

    version: int
    file_size: int
    alignment: int
    data_offset: int
    metadata: Mapping[str, Value | None] = field(repr=False)
    tensors: tuple[TensorInfo, ...] = field(repr=False)
    # GGUF type of each key's value: uint32, string, array[float32], ...
    metadata_types: Mapping[str, str] = field(default_factory=dict, repr=False)

    # -- typed access ---------------------------------------------------------
    def _int(self, key: str) -> int | None:
        value = self.metadata.get(key)
        if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            # Per-layer values (e.g. head counts of some architectures): the largest one
            # sizes buffers, so it is the safe single figure.
            return int(max(value))
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        return int(value)

    def _arch_int(self, suffix: str) -> int | None:
        return self._int(f"{self.architecture}.{suffix}")

    @property
    def architecture(self) -> str:
        value = self.metadata.get("general.architecture")
        if not isinstance(value, str) or not value:
            raise GGUFMetadataError("general.architecture is missing: the file is not a model GGUF")
        return value

    @property
    def name(self) -> str | None:
        value = self.metadata.get("general.name")
        return value if isinstance(value, str) and value else None

    @property
    def file_type(self) -> int | None:
        return self._int("general.file_type")

    @property
    def tensor_types(self) -> dict[str, int]:
        """Number of tensors per GGML type."""
        counts: dict[str, int] = {}
        for tensor in self.tensors:
            counts[tensor.ggml_type.name] = counts.get(tensor.ggml_type.name, 0) + 1
        return counts

    @property
    def tensor_type_bytes(self) -> dict[str, int]:
        """Bytes of tensor data per GGML type."""
        sizes: dict[str, int] = {}
        for tensor in self.tensors:
            sizes[tensor.ggml_type.name] = sizes.get(tensor.ggml_type.name, 0) + tensor.nbytes
        return sizes

    @property
    def quantization(self) -> str:
        """The mix name from general.file_type, else the type holding most 2-D weight bytes."""
        if self.file_type is not None and self.file_type in FILE_TYPES:
            return FILE_TYPES[self.file_type]
        sizes: dict[str, int] = {}
        for tensor in self.tensors:
            if len(tensor.shape) >= 2:
                sizes[tensor.ggml_type.name] = sizes.get(tensor.ggml_type.name, 0) + tensor.nbytes
        if not sizes:
            sizes = self.tensor_type_bytes
        return max(sizes, key=lambda name: sizes[name]) if sizes else "unknown"

    @property
    def parameter_count(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def weights_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    @property
    def metadata_bytes(self) -> int:
        """Header + metadata + tensor infos: llama.cpp keeps the tokenizer part in RAM."""
        return self.data_offset

    @property
    def bits_per_weight(self) -> float:
        params = self.parameter_count
        return self.weights_bytes * 8 / params if params else 0.0

    def _tensor(self, name: str) -> TensorInfo | None:
        for tensor in self.tensors:
            if tensor.name == name:
                return tensor
        return None

    @property
    def block_count(self) -> int | None:
        return self._arch_int("block_count")

    @property
    def context_length(self) -> int | None:
        return self._arch_int("context_length")

    @property
    def embedding_length(self) -> int | None:
        return self._arch_int("embedding_length")

    @property
    def feed_forward_length(self) -> int | None:
        return self._arch_int("feed_forward_length")

    @property
    def head_count(self) -> int | None:
        return self._arch_int("attention.head_count")

    @property
    def head_count_kv(self) -> int | None:
        # GGUF omits head_count_kv when it equals head_count (no GQA).
        value = self._arch_int("attention.head_count_kv")
        return value if value is not None else self.head_count

    @property
    def key_length(self) -> int | None:
        value = self._arch_int("attention.key_length")
        if value is None and self.embedding_length and self.head_count:
            return self.embedding_length // self.head_count
        return value

    @property
    def value_length(self) -> int | None:
        value = self._arch_int("attention.value_length")
        return value if value is not None else self.key_length

    @property
    def vocab_size(self) -> int | None:
        # llama.cpp's n_vocab is the token list's length; <arch>.vocab_size only counts
        # without one (tokenizer "none", src/llama-vocab.cpp).
        tokens = _length(self.metadata.get("tokenizer.ggml.tokens"))
        if tokens is not None:
            return tokens
        value = self._arch_int("vocab_size")
        if value is not None:
            return value
        embd = self._tensor("token_embd.weight")
        return embd.shape[1] if embd is not None and len(embd.shape) == 2 else None

    @property
    def sliding_window(self) -> int | None:
        return self._arch_int("attention.sliding_window")

    @property
    def sliding_window_pattern(self) -> int | None:
        return self._arch_int("attention.sliding_window_pattern")

    @property
    def expert_count(self) -> int | None:
        return self._arch_int("expert_count")

    @property
    def expert_used_count(self) -> int | None:
        return self._arch_int("expert_used_count")

    def description(self) -> dict[str, Any]:
        """The model description the memory estimate and fit check consume (no None values)."""
        desc: dict[str, Any] = {
            "name": self.name or self.architecture,
            "format": "gguf",
            "architecture": self.architecture,
            "quantization": self.quantization,
            "parameter_count": self.parameter_count,
            "block_count": self.block_count,
            "embedding_length": self.embedding_length,
            "head_count": self.head_count,
            "head_count_kv": self.head_count_kv,
            "key_length": self.key_length,
            "value_length": self.value_length,
            "context_length": self.context_length,
            "vocab_size": self.vocab_size,
            "feed_forward_length": self.feed_forward_length,
            "sliding_window": self.sliding_window,
            "sliding_window_pattern": self.sliding_window_pattern,
            "expert_count": self.expert_count,
            "expert_used_count": self.expert_used_count,
            "weights_bytes": self.weights_bytes,
            "metadata_bytes": self.metadata_bytes,
        }
        return {key: value for key, value in desc.items() if value is not None}

    def as_dict(self) -> dict[str, Any]:
        """Everything a module or CLI reports: the description plus file-level facts."""
        result = self.description()
        result.update(
            {
                "version": self.version,
                "file_size": self.file_size,
                "file_type": self.file_type,
                "alignment": self.alignment,
                "data_offset": self.data_offset,
                "tensor_count": len(self.tensors),
                "tensor_types": self.tensor_types,
                "tensor_type_bytes": self.tensor_type_bytes,
                "bits_per_weight": round(self.bits_per_weight, 4),
                "metadata_count": len(self.metadata),
            }
        )
        return result
