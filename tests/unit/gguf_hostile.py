# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Crafted GGUF files for the published GGUF parser vulnerability classes, and a bounded runner.

Standard library only (the files are assembled with gguf_bytes), so the same corpus runs on
every Python the nodes have:

    python3.13 tests/unit/gguf_hostile.py            # one line per case, then a summary

Each case is refused by the collection's reader within CPU_LIMIT seconds of CPU time (a
per-case ITIMER_PROF timer: a hard bound that does not depend on other load) and MEMORY_LIMIT
bytes: Python allocations are measured per case with tracemalloc, and the runner sets
RLIMIT_AS to what it maps before the first case plus MEMORY_LIMIT, so a case that needs more
fails with MemoryError instead of passing unnoticed. test__gguf_hostile.py runs it as a
child process and checks every case's verdict.
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import struct
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

if __name__ == "__main__":  # run as a script: make the checkout importable as the collection
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))

from ansible_collections.edgeslm.pi5.tests.unit import gguf_bytes as gb

CPU_LIMIT = 1.0  # seconds of CPU per case
MEMORY_LIMIT = 64 << 20  # bytes per case

# The vulnerability classes published for GGUF parsers (llama.cpp/ggml, gguf-py and other
# readers), each with where it was reported or fixed. Every class has cases in CASES.
VULNERABILITY_CLASSES: dict[str, tuple[str, tuple[str, ...]]] = {
    "header-counts": (
        "tensor or key/value count far beyond what the file holds (allocation sized by the count)",
        (
            "ggml-org/ggml#709 (2024-01, reported by Databricks: input validation in gguf_init_from_file)",
            "ggml-org/llama.cpp#15711 (n_tensors * ggml_tensor_overhead overflow)",
            "ggml-org/llama.cpp#27188 (gguf-py: kv_count or tensor_count 2^63 hangs the reader)",
            "huggingface/huggingface.js#2020 (uncapped KV/tensor/array counts, CWE-770)",
        ),
    ),
    "string-length": (
        "string length huge or past the end of the file (key, value, tensor name)",
        (
            "ggml-org/ggml#709",
            "ggml-org/llama.cpp#19856 (string and array exhaustion limits)",
            "ml-explore/mlx#4256 (lengths not bounded by the file size: out-of-bounds read)",
            "ggml-org/llama.cpp gguf.cpp at the pinned commit: tensor name >= GGML_MAX_NAME refused",
        ),
    ),
    "array-length": (
        "array element count huge, past the end of the file, or wrapping count * element size",
        (
            "ggml-org/ggml#709",
            "ggml-org/llama.cpp#19856",
            "ggml-org/llama.cpp#27188 (gguf-py: array length 2^63, unbounded memory growth)",
        ),
    ),
    "value-types": (
        "unknown value type, unknown array element type, arrays of arrays (recursion)",
        (
            "ggml-org/ggml#709 review (invalid types reach type-indexed tables)",
            "huggingface/huggingface.js#2028 (nested-array recursion CWE-674, invalid element type CWE-20)",
            "ggml-org/llama.cpp gguf.cpp at the pinned commit: an array inside an array is an invalid type",
        ),
    ),
    "key-types": (
        "a key the runtime reads has another type than it expects (type confusion)",
        (
            "ggml-org/llama.cpp#26318 (general.alignment stored as int32 aborts the loader)",
            "llama.cpp src/llama-model-loader.cpp GKV::get_kv ('key ... has wrong type')",
            "llama.cpp src/llama-vocab.cpp ('invalid gguf type for tokenizer.ggml.tokens/scores/token_type')",
        ),
    ),
    "tensor-size-overflow": (
        "dimension product or byte size that wraps to a small allocation",
        (
            "GHSA-vgg9-87g3-85w8, ggml-org/llama.cpp#14595 (tensor size accumulation overflow)",
            "GHSA-96jg-mvhq-q7q7, CVE-2026-33298 (nelements * type_size overflow in GGUF tensor sizing)",
            "GHSA-3p4r-fq3f-q74v, CVE-2026-27940 (gguf_init_from_file_impl undersized allocation, bypass "
            "of CVE-2025-53630)",
            "ggml-org/llama.cpp#18674, #24759, #26978 (ggml_nbytes and GGML_PAD wrap)",
            "ggml-org/llama.cpp#25401 (gguf-py: np.prod wraps at 2^64)",
        ),
    ),
    "tensor-offsets": (
        "tensor data offset past the file, misaligned, overlapping or out of order",
        (
            "ggml-org/llama.cpp#18674 ('tensor ... has offset X, expected Y')",
            "paiml/aprender#1279 (offset + size beyond the file, CVE-2024-25631 class)",
            "llama.cpp gguf.cpp at the pinned commit: each offset must equal the end of the previous tensor",
        ),
    ),
    "alignment": (
        "general.alignment 0 (division by zero), not a power of two, huge, or not a uint32",
        (
            "antirez/gguf-tools#28 (alignment 0: SIGFPE)",
            "ggml-org/llama.cpp#24997 and ggml-org/ggml#1516 (no upper bound: GGML_PAD overflow)",
            "ggml-org/llama.cpp#26318 (alignment of another type)",
        ),
    ),
    "dimension-count": (
        "n_dims 0 or above GGML_MAX_DIMS (write past a fixed ne[] array), zero-sized dimension",
        (
            "ggml-org/ggml#709 review (n_dims > 4 buffer overflow)",
            "antirez/gguf-tools#25, #26 (n_dims > 8: out-of-bounds write, CWE-787)",
            "ggml-org/llama.cpp#25378, #25401 (gguf-py: n_dims unbounded)",
            "ggml-org/llama.cpp#24263 (zero dimension: SIGFPE)",
        ),
    ),
    "layer-count": (
        "block_count above LLAMA_MAX_LAYERS or disagreeing with per-layer arrays and blk.N tensors",
        (
            "ggml-org/llama.cpp#25513, #25821 (block_count > 512: out-of-bounds write in set_swa_pattern)",
            "ggml-org/llama.cpp#26892 (posnet/convnext block counts)",
            "ServeurpersoCom/acestep.cpp#98 (block_count indexes a fixed array)",
            "llama.cpp src/llama-model-loader.cpp get_key_or_arr ('wrong array length')",
        ),
    ),
    "vocabulary": (
        "scores or token types of another length than the tokens; embedding rows != vocabulary",
        (
            "ggml-org/llama.cpp#20735 (scores/toktypes shorter than tokens: out-of-bounds read)",
            "antonellof/ferrox#53 (a short tokenizer.ggml.scores array)",
            "llama.cpp src/llama-vocab.cpp ('Index out of array bounds for scores/toktypes')",
            "llama.cpp src/llama-model-loader.cpp ('tensor ... has wrong shape')",
        ),
    ),
    "names-and-duplicates": (
        "empty key, duplicate key, duplicate tensor name",
        (
            "ggml-org/llama.cpp#24263 (empty key reaches an assert compiled out in release builds)",
            "ggml-org/llama.cpp#19856 (gguf-py: duplicate keys)",
            "llama.cpp gguf.cpp at the pinned commit: duplicate key / tensor name refused",
        ),
    ),
    "truncation": (
        "file cut at a structural boundary (read past the end, loops on short reads)",
        (
            "huggingface/huggingface.js#2028 (CWE-835: endless refetch on truncated data)",
            "ggml-org/llama.cpp#25378 (gguf-py: IndexError on a short file)",
        ),
    ),
    "resource-exhaustion": (
        "small or moderate files that decode to a lot of memory or work",
        (
            "ggml-org/ggml#1516 (a 160-byte file makes the parser allocate GiBs)",
            "ollama/ollama#17042 (unbounded allocation in the GGUF metadata parser: remote DoS)",
            "huggingface/huggingface.js#2020",
        ),
    ),
    "version": (
        "unsupported version or a big-endian file read as little-endian",
        ("llama.cpp gguf.cpp at the pinned commit (GGUFv1 refused, byte-swapped version detected)",),
    ),
}

U64_MAX = (1 << 64) - 1
U32_MAX = (1 << 32) - 1


@dataclass(frozen=True)
class Case:
    name: str
    vuln_class: str
    build: Callable[[], bytes]
    error: str  # the GGUFError subclass expected
    pattern: str  # a regular expression the message must match


def _kvs(*extra: bytes, drop: tuple[bytes, ...] = ()) -> list[bytes]:
    """LLAMA_KVS without the keys named in `drop`, plus `extra`."""
    return [kv for kv in gb.LLAMA_KVS if not any(name in kv for name in drop)] + list(extra)


def _raw_kv(key: str, vtype: int, payload: bytes) -> bytes:
    return gb.string(key) + gb.u32(vtype) + payload


def _array(key: str, etype: int, count: int, items: bytes = b"") -> bytes:
    return _raw_kv(key, gb.ARRAY, gb.u32(etype) + gb.u64(count) + items)


def _one(kv: bytes, pad: int = 64) -> bytes:
    """A file with no tensors and this one key/value, plus `pad` zero bytes."""
    return gb.header(0, 1) + kv + b"\0" * pad


def _tensors(*tensors: tuple[str, tuple[int, ...], int, int], data: int = 1024) -> bytes:
    """LLAMA_KVS, these tensor infos and `data` zero bytes of tensor data (not what they claim)."""
    return gb.build(gb.LLAMA_KVS, tensors, data)


def _raw_tensor(name_len: int, name: bytes, tail: bytes) -> bytes:
    """Header + LLAMA_KVS + one tensor info whose name length is given explicitly."""
    kvs = list(gb.LLAMA_KVS)
    return gb.header(1, len(kvs)) + b"".join(kvs) + gb.u64(name_len) + name + tail


def _layers(block_count: int, tensor_layers: int, *extra: bytes) -> bytes:
    kvs = _kvs(gb.kv_u32("llama.block_count", block_count), *extra, drop=(b"block_count",))
    tensors = tuple((f"blk.{i}.attn_norm.weight", (64,), 0, 256 * i) for i in range(tensor_layers))
    return gb.build(kvs, tensors)


def _vocab(*extra: bytes, drop: tuple[bytes, ...] = (), embd_rows: int | None = None) -> bytes:
    kvs = _kvs(*extra, drop=drop)
    tensors: tuple[tuple[str, tuple[int, ...], int, int], ...] = ()
    if embd_rows is not None:
        tensors = (("token_embd.weight", (64, embd_rows), 0, 0),)
    return gb.build(kvs, tensors)


_TOKENS = gb.kv_strings("tokenizer.ggml.tokens", ["a", "b", "c"])
_NO_TOKENS = (b"tokenizer.ggml.tokens",)


def _scores(values: list[float]) -> bytes:
    return _array("tokenizer.ggml.scores", gb.F32, len(values), b"".join(struct.pack("<f", v) for v in values))


def _nested(depth: int) -> bytes:
    nested = gb.u32(gb.ARRAY) + gb.u64(1)
    return gb.header(0, 1) + gb.string("deep") + gb.u32(gb.ARRAY) + nested * depth + gb.u32(gb.U8) + gb.u64(0)


CASES: list[Case] = [
    # header counts: refused from the header, before any allocation
    Case(
        "kv count 2^64-1",
        "header-counts",
        lambda: gb.header(0, U64_MAX) + b"\0" * 64,
        "GGUFLimitError",
        "key/value count",
    ),
    Case(
        "kv count one past what fits",
        "header-counts",
        lambda: gb.header(0, 5) + b"\0" * 69,
        "GGUFLimitError",
        "key/value count 5 needs at least 70 bytes",
    ),
    Case(
        "tensor count 2^64-1",
        "header-counts",
        lambda: gb.header(U64_MAX, 0) + b"\0" * 64,
        "GGUFLimitError",
        "tensor info count",
    ),
    Case(
        "tensor count 2^63",
        "header-counts",
        lambda: gb.header(1 << 63, 0) + b"\0" * 64,
        "GGUFLimitError",
        "tensor info count",
    ),
    Case(
        "kv count above the reader's limit",
        "header-counts",
        lambda: gb.header(0, (1 << 16) + 1) + b"\0" * (((1 << 16) + 1) * 14),
        "GGUFLimitError",
        "key/value count 65537 is above this reader's limit",
    ),
    Case(
        "tensor count above the reader's limit",
        "header-counts",
        lambda: gb.header((1 << 16) + 1, 0) + b"\0" * (((1 << 16) + 1) * 33),
        "GGUFLimitError",
        "tensor count 65537 is above this reader's limit",
    ),
    # string lengths
    Case(
        "key length 2^64-1",
        "string-length",
        lambda: gb.header(0, 1) + gb.u64(U64_MAX) + b"\0" * 64,
        "GGUFLimitError",
        "string length 18446744073709551615 is larger than the",
    ),
    Case(
        "key length one past the end",
        "string-length",
        lambda: gb.header(0, 1) + gb.u64(65) + b"k" * 64,
        "GGUFLimitError",
        "string length 65 is larger than the 64 bytes left",
    ),
    Case(
        "string value length 2^63",
        "string-length",
        lambda: _one(_raw_kv("general.name", gb.STRING, gb.u64(1 << 63))),
        "GGUFLimitError",
        "value of 'general.name': string length",
    ),
    Case(
        "key longer than any key",
        "string-length",
        lambda: gb.header(0, 1) + gb.string(b"k" * 70000) + gb.u32(gb.U8) + b"\0",
        "GGUFLimitError",
        "longer than 65536 bytes",
    ),
    Case(
        "tensor name length 2^64-1",
        "string-length",
        lambda: _raw_tensor(U64_MAX, b"", b"\0" * 64),
        "GGUFLimitError",
        "name of tensor #0: string length",
    ),
    Case(
        "tensor name of GGML_MAX_NAME bytes",
        "string-length",
        lambda: _raw_tensor(64, b"t" * 64, gb.u32(1) + gb.u64(64) + gb.u32(0) + gb.u64(0) + b"\0" * 512),
        "GGUFTensorError",
        "64-byte name; ggml allows at most 63 bytes",
    ),
    Case(
        "string in an array past the end",
        "string-length",
        lambda: _one(_array("tokenizer.ggml.tokens", gb.STRING, 2000, gb.u64(1 << 50)), 20000),
        "GGUFLimitError",
        "string length 1125899906842624",
    ),
    Case(
        "short string array element past the end",
        "string-length",
        lambda: _one(_array("tokenizer.ggml.merges", gb.STRING, 2, gb.string("a b") + gb.u64(40)), 16),
        "GGUFLimitError",
        "string length 40 is larger than the",
    ),
    # array lengths
    Case(
        "string array count 2^64-1",
        "array-length",
        lambda: _one(_array("tokenizer.ggml.tokens", gb.STRING, U64_MAX)),
        "GGUFLimitError",
        "element count",
    ),
    Case(
        "uint8 array count one past the end",
        "array-length",
        lambda: _one(_array("tokenizer.ggml.precompiled_charsmap", gb.U8, 65), 64),
        "GGUFLimitError",
        "element count 65 needs at least 65 bytes but only 64",
    ),
    Case(
        "float32 array count 2^62 (count * 4 wraps to 0)",
        "array-length",
        lambda: _one(_array("tokenizer.ggml.scores", gb.F32, 1 << 62)),
        "GGUFLimitError",
        "element count",
    ),
    Case(
        "uint64 array count 2^61 (count * 8 wraps to 0)",
        "array-length",
        lambda: _one(_array("x.values", gb.U64, 1 << 61)),
        "GGUFLimitError",
        "element count",
    ),
    Case(
        "string array count 2^61 (count * 8 wraps to 0)",
        "array-length",
        lambda: _one(_array("tokenizer.ggml.tokens", gb.STRING, 1 << 61)),
        "GGUFLimitError",
        "element count",
    ),
    # value types
    Case("value type 13", "value-types", lambda: _one(_raw_kv("k", 13, b"")), "GGUFTypeError", "unknown value type 13"),
    Case(
        "value type 2^32-1",
        "value-types",
        lambda: _one(_raw_kv("k", U32_MAX, b"")),
        "GGUFTypeError",
        "unknown value type 4294967295",
    ),
    Case(
        "array element type 13",
        "value-types",
        lambda: _one(_array("k", 13, 1)),
        "GGUFTypeError",
        "unknown element type 13",
    ),
    Case(
        "array of arrays",
        "value-types",
        lambda: _one(_array("k", gb.ARRAY, 1, gb.u32(gb.U8) + gb.u64(0))),
        "GGUFArrayError",
        "array of arrays",
    ),
    Case("arrays nested 1000 deep", "value-types", lambda: _nested(1000), "GGUFArrayError", "array of arrays"),
    Case(
        "array of arrays with 2^40 elements",
        "value-types",
        lambda: _one(_array("k", gb.ARRAY, 1 << 40)),
        "GGUFArrayError",
        "array of arrays",
    ),
    # key types (type confusion)
    Case(
        "general.alignment as int32",
        "key-types",
        lambda: gb.build(_kvs(_raw_kv("general.alignment", gb.I32, gb.u32(32)))),
        "GGUFMetadataError",
        "general.alignment is an int32 but must be a uint32",
    ),
    Case(
        "general.architecture as uint32",
        "key-types",
        lambda: gb.build(_kvs(gb.kv_u32("general.architecture", 1), drop=(b"general.architecture",))),
        "GGUFMetadataError",
        "'general.architecture' is a uint32 but must be a string",
    ),
    Case(
        "block_count as string",
        "key-types",
        lambda: gb.build(_kvs(gb.kv_str("llama.block_count", "2"), drop=(b"block_count",))),
        "GGUFMetadataError",
        "'llama.block_count' is a string but must be a uint32",
    ),
    Case(
        "block_count as float32",
        "key-types",
        lambda: gb.build(_kvs(_raw_kv("llama.block_count", gb.F32, gb.u32(0x40000000)), drop=(b"block_count",))),
        "GGUFMetadataError",
        "'llama.block_count' is a float32",
    ),
    Case(
        "context_length as uint64",
        "key-types",
        lambda: gb.build(_kvs(_raw_kv("llama.context_length", gb.U64, gb.u64(512)), drop=(b"context_length",))),
        "GGUFMetadataError",
        "'llama.context_length' is a uint64 but must be a uint32",
    ),
    Case(
        "tokens as an array of uint32",
        "key-types",
        lambda: gb.build(_kvs(gb.kv_u32s("tokenizer.ggml.tokens", [1, 2, 3]), drop=_NO_TOKENS)),
        "GGUFMetadataError",
        r"'tokenizer.ggml.tokens' is an array\[uint32\] but must be an array\[string\]",
    ),
    Case(
        "tokens as a string",
        "key-types",
        lambda: gb.build(_kvs(gb.kv_str("tokenizer.ggml.tokens", "abc"), drop=_NO_TOKENS)),
        "GGUFMetadataError",
        "'tokenizer.ggml.tokens' is a string",
    ),
    Case(
        "scores as an array of strings",
        "key-types",
        lambda: gb.build(_kvs(gb.kv_strings("tokenizer.ggml.scores", ["1", "2", "3"]))),
        "GGUFMetadataError",
        r"'tokenizer.ggml.scores' is an array\[string\] but must be an array\[float32\] or array\[int32\]",
    ),
    Case(
        "token types as an array of float32",
        "key-types",
        lambda: gb.build(_kvs(_array("tokenizer.ggml.token_type", gb.F32, 3, b"\0" * 12))),
        "GGUFMetadataError",
        r"'tokenizer.ggml.token_type' is an array\[float32\]",
    ),
    Case(
        "head_count as an array of strings",
        "key-types",
        lambda: gb.build(_kvs(gb.kv_strings("llama.attention.head_count", ["4"]), drop=(b"attention.head_count\x04",))),
        "GGUFMetadataError",
        r"'llama.attention.head_count' is an array\[string\]",
    ),
    # tensor size overflows
    Case(
        "dimensions 2^32 x 2^32 (product 2^64)",
        "tensor-size-overflow",
        lambda: _tensors(("w", (1 << 32, 1 << 32), 0, 0)),
        "GGUFTensorError",
        "PiB any model could have",
    ),
    Case(
        "F32 [4, 2^30-1, 2^30+1]: 2^64-16 bytes, 0 after padding",
        "tensor-size-overflow",
        lambda: _tensors(("w", (4, (1 << 30) - 1, (1 << 30) + 1), 0, 0)),
        "GGUFTensorError",
        "PiB any model",
    ),
    Case(
        "dimension 2^63 (negative as int64)",
        "tensor-size-overflow",
        lambda: _tensors(("w", (1 << 63,), 0, 0)),
        "GGUFTensorError",
        "PiB any model",
    ),
    Case(
        "dimension 2^64-1 in four dimensions",
        "tensor-size-overflow",
        lambda: _tensors(("w", (U64_MAX - 31, U64_MAX, U64_MAX, U64_MAX), 8, 0)),
        "GGUFTensorError|GGUFTypeError",
        "PiB|not a multiple",
    ),
    Case(
        "gguf-py np.prod wrap [4194305, 4194305, 211106198978564]",
        "tensor-size-overflow",
        lambda: _tensors(("w", (4194305, 4194305, 211106198978564), 0, 0)),
        "GGUFTensorError",
        "PiB any model",
    ),
    Case(
        "2 PiB F32 tensor",
        "tensor-size-overflow",
        lambda: _tensors(("w", (1 << 49, 1), 0, 0)),
        "GGUFTensorError",
        "PiB any model",
    ),
    Case(
        "row not whole blocks (Q8_0, 40 per row)",
        "tensor-size-overflow",
        lambda: _tensors(("w", (40, 2), 8, 0)),
        "GGUFTensorError",
        "not a multiple of the Q8_0 block size 32",
    ),
    Case(
        "unknown GGML type 2^32-1",
        "tensor-size-overflow",
        lambda: _tensors(("w", (64, 2), U32_MAX, 0)),
        "GGUFTypeError",
        "unknown GGML type 4294967295",
    ),
    Case(
        "removed GGML type 4 (Q4_2, no block size)",
        "tensor-size-overflow",
        lambda: _tensors(("w", (64, 2), 4, 0)),
        "GGUFTypeError",
        "unknown GGML type 4",
    ),
    # tensor offsets
    Case(
        "offset 2^40 past the file",
        "tensor-offsets",
        lambda: _tensors(("w", (64, 2), 0, 1 << 40)),
        "GGUFTensorError",
        "leaves a gap before it and lies outside the",
    ),
    Case(
        "offset 2^64-256: offset + size wraps",
        "tensor-offsets",
        lambda: _tensors(("w", (64, 2), 0, (1 << 64) - 256)),
        "GGUFTensorError",
        "lies outside the",
    ),
    Case(
        "offset not aligned",
        "tensor-offsets",
        lambda: _tensors(("w", (64, 2), 0, 8)),
        "GGUFTensorError",
        "offset 8 is not aligned to 32 bytes",
    ),
    Case(
        "overlapping tensors",
        "tensor-offsets",
        lambda: _tensors(("a", (64, 2), 0, 0), ("b", (64, 2), 0, 256)),
        "GGUFTensorError",
        "'b' starts at data offset 256 but the tensors before it end at 512: it overlaps",
    ),
    Case(
        "gap between tensors",
        "tensor-offsets",
        lambda: _tensors(("a", (64, 2), 0, 0), ("b", (64, 2), 0, 1024)),
        "GGUFTensorError",
        "leaves a gap before it",
    ),
    Case(
        "tensors out of order",
        "tensor-offsets",
        lambda: _tensors(("a", (64, 2), 0, 512), ("b", (64, 2), 0, 0)),
        "GGUFTensorError",
        "'a' starts at data offset 512 but the tensors before it end at 0",
    ),
    Case(
        "data shorter than the tensors",
        "tensor-offsets",
        lambda: _tensors(("w", (64, 2), 0, 0), data=511),
        "GGUFTruncatedError",
        "1 missing",
    ),
    Case(
        "1 TiB tensor in a small file",
        "tensor-offsets",
        lambda: _tensors(("w", (1 << 38, 1), 0, 0)),
        "GGUFTruncatedError",
        "the file is truncated",
    ),
    # alignment
    Case(
        "alignment 0",
        "alignment",
        lambda: gb.build(_kvs(gb.kv_u32("general.alignment", 0))),
        "GGUFMetadataError",
        "power of two from 1 to 1048576.*got 0",
    ),
    Case(
        "alignment 48",
        "alignment",
        lambda: gb.build(_kvs(gb.kv_u32("general.alignment", 48))),
        "GGUFMetadataError",
        "got 48",
    ),
    Case(
        "alignment 2^31",
        "alignment",
        lambda: gb.build(_kvs(gb.kv_u32("general.alignment", 1 << 31))),
        "GGUFMetadataError",
        "got 2147483648",
    ),
    Case(
        "alignment 2^32-1",
        "alignment",
        lambda: gb.build(_kvs(gb.kv_u32("general.alignment", U32_MAX))),
        "GGUFMetadataError",
        "got 4294967295",
    ),
    Case(
        "alignment as a string",
        "alignment",
        lambda: gb.build(_kvs(gb.kv_str("general.alignment", "32"))),
        "GGUFMetadataError",
        "general.alignment is a string but must be a uint32",
    ),
    Case(
        "alignment as uint64 2^63",
        "alignment",
        lambda: gb.build(_kvs(_raw_kv("general.alignment", gb.U64, gb.u64(1 << 63)))),
        "GGUFMetadataError",
        "general.alignment is a uint64",
    ),
    # dimension counts
    Case("n_dims 0", "dimension-count", lambda: _tensors(("w", (), 0, 0)), "GGUFTensorError", "0 dimensions"),
    Case(
        "n_dims 5",
        "dimension-count",
        lambda: _tensors(("w", (1, 1, 1, 1, 1), 0, 0)),
        "GGUFTensorError",
        "5 dimensions; ggml supports 1 to 4",
    ),
    Case(
        "n_dims 2^32-1",
        "dimension-count",
        lambda: _raw_tensor(1, b"w", gb.u32(U32_MAX) + gb.u64(1) * 8 + b"\0" * 64),
        "GGUFTensorError",
        "4294967295 dimensions",
    ),
    Case(
        "zero-sized dimension",
        "dimension-count",
        lambda: _tensors(("w", (64, 0), 0, 0)),
        "GGUFTensorError",
        "empty dimension",
    ),
    # layer counts
    Case("block_count 0", "layer-count", lambda: _layers(0, 0), "GGUFMetadataError", "block_count is 0"),
    Case(
        "block_count 513",
        "layer-count",
        lambda: _layers(513, 1),
        "GGUFMetadataError",
        "block_count is 513; llama.cpp loads 1 to 512 layers",
    ),
    Case(
        "block_count 2^32-1",
        "layer-count",
        lambda: _layers(U32_MAX, 1),
        "GGUFMetadataError",
        "block_count is 4294967295",
    ),
    Case(
        "block_count 100, tensors for 2 layers",
        "layer-count",
        lambda: _layers(100, 2),
        "GGUFMetadataError",
        "block_count is 100 but the file has tensors for layers 0 to 1 only",
    ),
    Case(
        "tensor of layer 5 with 2 layers",
        "layer-count",
        lambda: _layers(2, 6),
        "GGUFTensorError",
        "'blk.5.attn_norm.weight' belongs to layer 5 but llama.block_count is 2",
    ),
    Case(
        "per-layer array longer than block_count",
        "layer-count",
        lambda: _layers(2, 2, gb.kv_u32s("llama.feed_forward_length", [128, 128, 128])),
        "GGUFMetadataError",
        "llama.feed_forward_length has 3 per-layer values but llama.block_count is 2",
    ),
    Case(
        "per-layer array of 5000 values",
        "layer-count",
        lambda: _layers(2, 2, gb.kv_u32s("llama.feed_forward_length", [1] * 5000)),
        "GGUFMetadataError",
        "has 5000 per-layer values",
    ),
    # vocabulary
    Case(
        "scores shorter than tokens",
        "vocabulary",
        lambda: _vocab(_scores([0.0, -1.0])),
        "GGUFMetadataError",
        "tokenizer.ggml.scores has 2 entries but tokenizer.ggml.tokens has 3",
    ),
    Case(
        "token types longer than tokens",
        "vocabulary",
        lambda: _vocab(_array("tokenizer.ggml.token_type", gb.I32, 5, b"\1\0\0\0" * 5)),
        "GGUFMetadataError",
        "tokenizer.ggml.token_type has 5 entries but tokenizer.ggml.tokens has 3",
    ),
    Case(
        "embedding rows != vocabulary",
        "vocabulary",
        lambda: _vocab(embd_rows=4),
        "GGUFTensorError",
        r"'token_embd.weight' has shape \[64, 4\] but the vocabulary has 3 tokens",
    ),
    Case(
        "vocab_size (no token list) != embedding rows",
        "vocabulary",
        lambda: _vocab(gb.kv_u32("llama.vocab_size", 10), drop=_NO_TOKENS, embd_rows=8),
        "GGUFTensorError",
        "vocabulary has 10 tokens",
    ),
    Case(
        "huge token list, 3-row embedding",
        "vocabulary",
        lambda: _vocab(gb.kv_strings("tokenizer.ggml.tokens", ["t"] * 3000), drop=_NO_TOKENS, embd_rows=3),
        "GGUFTensorError",
        "vocabulary has 3000 tokens",
    ),
    # names and duplicates
    Case(
        "empty key",
        "names-and-duplicates",
        lambda: _one(gb.string("") + gb.u32(gb.U8) + b"\0"),
        "GGUFMetadataError",
        "key #0 is empty",
    ),
    Case(
        "duplicate key",
        "names-and-duplicates",
        lambda: gb.build(_kvs(gb.kv_u32("llama.block_count", 2))),
        "GGUFMetadataError",
        "'llama.block_count' appears twice",
    ),
    Case(
        "duplicate tensor name",
        "names-and-duplicates",
        lambda: _tensors(("w", (64, 2), 0, 0), ("w", (64, 2), 0, 512)),
        "GGUFTensorError",
        "'w' appears twice",
    ),
    # truncation (every structural boundary of real files: test__gguf_hostile.py)
    Case("empty file", "truncation", lambda: b"", "GGUFTruncatedError", r"empty \(0 bytes\)"),
    Case("magic cut after 3 bytes", "truncation", lambda: b"GGU", "GGUFTruncatedError", "truncated"),
    Case(
        "cut inside the header",
        "truncation",
        lambda: gb.build()[:20],
        "GGUFTruncatedError",
        "while reading metadata key/value count",
    ),
    Case(
        "cut inside a key",
        "truncation",
        lambda: gb.build()[:40],
        "GGUFTruncatedError|GGUFLimitError",
        "truncated|left in the file",
    ),
    Case(
        "cut inside a tensor info",
        "truncation",
        lambda: gb.build()[: len(gb.build()) - 512 - 40],
        "GGUFTruncatedError|GGUFLimitError",
        "truncated|left in the file",
    ),
    Case(
        "cut before the data region",
        "truncation",
        lambda: gb.build()[:-512],
        "GGUFTruncatedError",
        "truncated|before the tensor data region",
    ),
    # resource exhaustion: bounded by the reader's limits, not by the file size
    Case(
        "140 strings of 64 KiB (9 MiB decoded)",
        "resource-exhaustion",
        lambda: _one(_array("x.strings", gb.STRING, 140, gb.string(b"s" * 65536) * 140), 0),
        "GGUFLimitError",
        "decoded metadata would take more than 8 MiB",
    ),
    Case(
        "300 arrays of 1024 uint32",
        "resource-exhaustion",
        lambda: gb.header(0, 300) + b"".join(gb.kv_u32s(f"x.a{i}", range(i << 10, (i + 1) << 10)) for i in range(300)),
        "GGUFLimitError",
        "decoded metadata would take more than 8 MiB",
    ),
    Case(
        "a quarter million nested empty arrays",
        "resource-exhaustion",
        lambda: _one(_array("x.nested", gb.ARRAY, 1 << 18, (gb.u32(gb.U8) + gb.u64(0)) * (1 << 18)), 0),
        "GGUFArrayError",
        "array of arrays",
    ),
    # versions
    Case("version 1", "version", lambda: gb.build(version=1), "GGUFVersionError", "version 1 is not supported"),
    Case("version 2^32-1", "version", lambda: gb.build(version=U32_MAX), "GGUFVersionError", "4294967295"),
    Case("big-endian v3", "version", lambda: gb.build(version=3 << 24), "GGUFVersionError", "big-endian GGUF v3"),
]


# --- the bounded runner ----------------------------------------------------------------------


class _CaseTimeout(BaseException):
    """From the SIGPROF handler; a BaseException so no `except Exception` can swallow it."""


def _on_sigprof(_signum: int, _frame: FrameType | None) -> None:
    raise _CaseTimeout


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def run_bounded(paths: list[Path]) -> list[dict[str, object]]:
    """Parse each file under the per-case CPU and memory bounds; one verdict per file.

    Call in a process of its own: it sets RLIMIT_AS and a SIGPROF handler.
    """
    from ansible_collections.edgeslm.pi5.plugins.module_utils._gguf import GGUFError, read_gguf

    signal.signal(signal.SIGPROF, _on_sigprof)
    tracemalloc.start()
    resource.setrlimit(resource.RLIMIT_AS, (_vm_size() + MEMORY_LIMIT, resource.getrlimit(resource.RLIMIT_AS)[1]))
    results: list[dict[str, object]] = []
    for path in paths:
        tracemalloc.reset_peak()
        cpu0 = time.process_time()
        signal.setitimer(signal.ITIMER_PROF, CPU_LIMIT)
        try:
            read_gguf(path)
            error, message = "accepted", ""
        except GGUFError as exc:
            error, message = type(exc).__name__, str(exc)
        except _CaseTimeout:
            error, message = "timeout", f"more than {CPU_LIMIT} s of CPU"
        except BaseException as exc:  # any other exception is the finding to report
            error, message = f"crash:{type(exc).__name__}", str(exc)[:200]
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
        cpu = time.process_time() - cpu0
        _current, peak = tracemalloc.get_traced_memory()
        results.append({"file": path.name, "error": error, "message": message, "cpu": cpu, "peak": peak})
    return results


def write_corpus(directory: Path) -> list[Path]:
    paths = []
    for index, case in enumerate(CASES):
        path = directory / f"{index:03d}.gguf"
        path.write_bytes(case.build())
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object per case")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_corpus(Path(tmp))
        results = run_bounded(paths)
    worst_cpu = max(float(str(r["cpu"])) for r in results)
    worst_peak = max(int(str(r["peak"])) for r in results)
    for case, result in zip(CASES, results, strict=True):
        if args.json:
            print(json.dumps({"case": case.name, **result}))
        else:
            print(
                f"{result['error']:<22} {float(str(result['cpu'])) * 1000:7.1f} ms "
                f"{int(str(result['peak'])) / 1024:8.0f} KiB  {case.vuln_class}: {case.name}"
            )
    print(
        f"python {sys.version.split()[0]}: {len(CASES)} cases, max CPU {worst_cpu * 1000:.1f} ms, "
        f"max traced memory {worst_peak / (1 << 20):.2f} MiB",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
