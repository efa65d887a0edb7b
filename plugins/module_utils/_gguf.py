# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""GGUF metadata reader: header, key/values and tensor infos, never tensor data.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

Standard library only, so the same file runs on the controller (filters, CI) and on a
Raspberry Pi (modules). The cost is proportional to the metadata (vocabulary, merges),
not to the file size: large arrays are skipped, never materialised.
"""

from __future__ import annotations

import itertools
import os
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
    "read_gguf",
    "read_gguf_stream",
    "tensor_nbytes",
]

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
# ggml's GGML_MAX_DIMS: a tensor with more dimensions cannot be loaded by any runtime.
MAX_DIMS = 4
# llama.cpp itself rejects nested arrays; we accept a little nesting but bound recursion.
MAX_ARRAY_DEPTH = 3
# Arrays up to this many elements are decoded (per-layer head counts and similar);
# longer ones (vocabularies, merges, scores) are only counted and skipped.
MAX_DECODED_ARRAY = 1024
# Longer strings (there are none among the keys we use) are skipped, not decoded.
MAX_DECODED_STRING = 1 << 16
READ_CHUNK = 1 << 20
# 1 PiB: no tensor of a model that could run anywhere is this large, so a bigger size is
# corrupt tensor info rather than a truncated download.
MAX_TENSOR_BYTES = 1 << 50


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
    """An array is nested deeper than any runtime accepts."""


class GGUFTypeError(GGUFError):
    """An unknown metadata value type or GGML tensor type."""


class GGUFTensorError(GGUFError):
    """A tensor info is inconsistent: shape, offset, alignment, overlap or duplicate name."""


class GGUFMetadataError(GGUFError):
    """A metadata key the collection needs is missing, duplicated or has the wrong type."""


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

    def string(self, what: str) -> str | None:
        """Decode a string, or skip it and return None when it is longer than we keep."""
        length = self.u64(f"length of {what}")
        if length > self.remaining():
            raise GGUFLimitError(
                f"{what}: string length {length} is larger than the {self.remaining()} bytes left in the file"
            )
        if length > MAX_DECODED_STRING:
            self.skip(length, what)
            return None
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


def _read_value(reader: _Reader, type_id: int, key: str, depth: int) -> Value | None:
    if type_id in _SCALARS:
        return reader.scalar(type_id, f"value of {key!r}")
    if type_id == _STRING:
        return reader.string(f"value of {key!r}")
    if type_id == _ARRAY:
        return _read_array(reader, key, depth + 1)
    raise GGUFTypeError(f"metadata key {key!r} has unknown value type {type_id} (expected 0-12)")


def _read_array(reader: _Reader, key: str, depth: int) -> ArraySummary | list[Any]:
    if depth > MAX_ARRAY_DEPTH:
        raise GGUFArrayError(f"metadata key {key!r}: arrays nested deeper than {MAX_ARRAY_DEPTH} levels")
    elem_type = reader.u32(f"array element type of {key!r}")
    count = reader.u64(f"array length of {key!r}")
    if elem_type in _SCALARS:
        size = _SCALARS[elem_type][1]
        _check_count(reader, count, size, f"array {key!r} element")
        if count > MAX_DECODED_ARRAY:
            reader.skip(count * size, f"array {key!r}")
            return ArraySummary(_VALUE_TYPE_NAMES[elem_type], count)
        return [reader.scalar(elem_type, f"element of {key!r}") for _index in range(count)]
    if elem_type == _STRING:
        _check_count(reader, count, 8, f"array {key!r} element")
        if count > MAX_DECODED_ARRAY:
            reader.skip_strings(count, f"array {key!r}")
            return ArraySummary("string", count)
        return [reader.string(f"element of {key!r}") for _index in range(count)]
    if elem_type == _ARRAY:
        # A nested array is at least its 12-byte header.
        _check_count(reader, count, 12, f"array {key!r} element")
        items = [_read_array(reader, key, depth + 1) for _index in range(count)]
        return ArraySummary("array", count) if count > MAX_DECODED_ARRAY else items
    raise GGUFTypeError(f"metadata key {key!r}: array has unknown element type {elem_type} (expected 0-12)")


def _read_header(reader: _Reader) -> tuple[int, int, int]:
    magic = reader.read(4, "GGUF magic")
    if magic != GGUF_MAGIC:
        raise GGUFMagicError(f"not a GGUF file: starts with {magic!r}, expected {GGUF_MAGIC!r}")
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
    return version, tensor_count, kv_count


def _read_metadata(reader: _Reader, kv_count: int) -> dict[str, Value | None]:
    metadata: dict[str, Value | None] = {}
    for index in range(kv_count):
        key = reader.string(f"key #{index}")
        if key is None:
            raise GGUFLimitError(f"metadata key #{index} is longer than {MAX_DECODED_STRING} bytes")
        if key in metadata:
            raise GGUFMetadataError(f"metadata key {key!r} appears twice: the file is corrupt")
        value_type = reader.u32(f"value type of {key!r}")
        metadata[key] = _read_value(reader, value_type, key, 0)
    return metadata


def _read_tensor_info(reader: _Reader, index: int) -> TensorInfo:
    name = reader.string(f"name of tensor #{index}")
    if name is None:
        raise GGUFLimitError(f"tensor #{index} has a name longer than {MAX_DECODED_STRING} bytes")
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
    return TensorInfo(name, shape, ggml_type, offset, nbytes)


def _alignment(metadata: Mapping[str, Value | None]) -> int:
    value = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value & (value - 1):
        raise GGUFMetadataError(f"general.alignment must be a positive power of two, got {value!r}")
    return value


def _check_tensors(tensors: list[TensorInfo], data_offset: int, alignment: int, file_size: int) -> None:
    """Tensors must be unique, aligned, inside the region their infos describe, and disjoint.

    Corrupt infos (absurd sizes, offsets past every tensor) and a short file are told
    apart: a consistent layout whose end lies past the end of the file is a truncated
    download, reported as such without hashing anything.
    """
    names: set[str] = set()
    described = sum(-(-t.nbytes // alignment) * alignment for t in tensors)
    for tensor in tensors:
        if tensor.name in names:
            raise GGUFTensorError(f"tensor name {tensor.name!r} appears twice: the file is corrupt")
        names.add(tensor.name)
        if tensor.offset % alignment:
            raise GGUFTensorError(f"tensor {tensor.name!r} offset {tensor.offset} is not aligned to {alignment} bytes")
        if tensor.nbytes > MAX_TENSOR_BYTES or tensor.offset + tensor.nbytes > described:
            raise GGUFTensorError(
                f"tensor {tensor.name!r} ({tensor.nbytes} bytes at data offset {tensor.offset}) lies outside "
                f"the {described}-byte data region the tensor infos describe: the file is corrupt"
            )
    ordered = sorted(tensors, key=lambda t: t.offset)
    for before, after in itertools.pairwise(ordered):
        if before.offset + before.nbytes > after.offset:
            raise GGUFTensorError(f"tensors {before.name!r} and {after.name!r} overlap in the data region")
    if ordered:
        last = ordered[-1]
        end = data_offset + last.offset + last.nbytes
        if end > file_size:
            raise GGUFTruncatedError(
                f"tensor data ends at byte {end} but the file has {file_size} bytes "
                f"({end - file_size} missing): the file is truncated, download it again"
            )


def read_gguf_stream(stream: BinaryIO, size: int) -> GGUFInfo:
    """Parse GGUF metadata from an open binary stream of `size` bytes."""
    reader = _Reader(stream, size)
    version, tensor_count, kv_count = _read_header(reader)
    metadata = _read_metadata(reader, kv_count)
    tensors = [_read_tensor_info(reader, index) for index in range(tensor_count)]
    alignment = _alignment(metadata)
    data_offset = -(-reader.tell // alignment) * alignment
    if data_offset > size and tensors:
        raise GGUFTruncatedError(f"file ends at byte {size} before the tensor data region at byte {data_offset}")
    _check_tensors(tensors, data_offset, alignment, size)
    return GGUFInfo(
        version=version,
        file_size=size,
        alignment=alignment,
        data_offset=data_offset,
        metadata=metadata,
        tensors=tuple(tensors),
    )


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
        value = self._arch_int("vocab_size")
        if value is not None:
            return value
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, ArraySummary):
            return tokens.count
        if isinstance(tokens, list):
            return len(tokens)
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
