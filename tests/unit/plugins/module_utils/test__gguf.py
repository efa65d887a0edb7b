# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""GGUF reader: real files written by gguf.GGUFWriter, and one test per hostile input."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import gguf
import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _gguf as G
from ansible_collections.edgeslm.pi5.tests.unit import gguf_bytes as gb
from ansible_collections.edgeslm.pi5.tests.unit.gguf_factory import PRESETS, ModelSpec, tensor_plan, write_model

Q = gguf.GGMLQuantizationType


def _parse(data: bytes) -> G.GGUFInfo:
    return G.read_gguf_stream(io.BytesIO(data), len(data))


# --- real files -------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["llama-tiny", "qwen2-tiny", "gemma2-tiny"])
@pytest.mark.parametrize("sparse", [False, True])
def test_tensors_match_gguf_reader(tmp_path: Path, preset: str, sparse: bool) -> None:
    path = write_model(tmp_path / "m.gguf", PRESETS[preset], sparse=sparse)
    info = G.read_gguf(path)
    oracle = gguf.GGUFReader(path)
    ours = {t.name: (t.shape, t.ggml_type.name, info.data_offset + t.offset, t.nbytes) for t in info.tensors}
    theirs = {
        t.name: (tuple(int(d) for d in t.shape), t.tensor_type.name, int(t.data_offset), int(t.n_bytes))
        for t in oracle.tensors
    }
    assert ours == theirs
    assert info.file_size == path.stat().st_size


@pytest.mark.parametrize("preset", ["llama-tiny", "qwen2-tiny", "gemma2-tiny"])
def test_description_matches_spec(tmp_path: Path, preset: str) -> None:
    spec = PRESETS[preset]
    info = G.read_gguf(write_model(tmp_path / "m.gguf", spec))
    desc = info.description()
    plan = tensor_plan(spec)
    assert desc["architecture"] == spec.arch
    assert desc["name"] == spec.name
    assert desc["format"] == "gguf"
    assert desc["block_count"] == spec.block_count
    assert desc["embedding_length"] == spec.embedding_length
    assert desc["head_count"] == spec.head_count
    assert desc["head_count_kv"] == spec.head_count_kv
    assert desc["key_length"] == desc["value_length"] == spec.head_dim
    assert desc["context_length"] == spec.context_length
    assert desc["vocab_size"] == spec.vocab_size
    assert desc["feed_forward_length"] == spec.feed_forward_length
    assert desc["weights_bytes"] == sum(p[3] for p in plan)
    expected_params = 0
    for _name, shape, _t, _n in plan:
        count = 1
        for dim in shape:
            count *= dim
        expected_params += count
    assert desc["parameter_count"] == expected_params
    assert desc.get("sliding_window") == spec.sliding_window
    assert desc["quantization"] == G.FILE_TYPES[int(spec.file_type)]  # type: ignore[arg-type]


def test_tensor_types_counted_per_ggml_type(tmp_path: Path) -> None:
    info = G.read_gguf(write_model(tmp_path / "m.gguf", PRESETS["gemma2-tiny"]))
    types = info.tensor_types
    assert types["Q6_K"] == 1  # token_embd override
    assert types["F32"] == 1 + 4 * 4  # output_norm + 4 norms per layer
    assert types["Q4_K"] == 4 * 7
    assert set(info.tensor_type_bytes) == {"Q6_K", "F32", "Q4_K"}


@pytest.mark.parametrize(
    ("weight_type", "expected"),
    [(Q.Q4_0, "Q4_0"), (Q.Q8_0, "Q8_0"), (Q.Q4_K, "Q4_K"), (Q.F16, "F16")],
)
def test_quantization_known_without_file_type(tmp_path: Path, weight_type: Q, expected: str) -> None:
    spec = replace(PRESETS["llama-tiny"], weight_type=weight_type, file_type=None)
    info = G.read_gguf(write_model(tmp_path / "m.gguf", spec))
    assert info.file_type is None
    assert info.quantization == expected


def test_expert_counts_and_per_layer_heads() -> None:
    kvs = [
        *gb.LLAMA_KVS,
        gb.kv_u32("llama.expert_count", 8),
        gb.kv_u32("llama.expert_used_count", 2),
        gb.kv_u32s("llama.attention.head_count_kv", [1, 2, 2]),
    ]
    # LLAMA_KVS already has head_count_kv and one layer: three per-layer values need three layers.
    kvs = [
        kv for kv in kvs if kv not in (gb.kv_u32("llama.attention.head_count_kv", 2), gb.kv_u32("llama.block_count", 1))
    ]
    kvs.append(gb.kv_u32("llama.block_count", 3))
    info = _parse(gb.build(kvs))
    assert info.expert_count == 8
    assert info.expert_used_count == 2
    assert info.head_count_kv == 2  # the largest per-layer value sizes the cache
    assert info.vocab_size == 3  # from tokenizer.ggml.tokens when <arch>.vocab_size is absent
    assert info.key_length == 16  # embedding_length / head_count when key_length is absent


def test_large_arrays_are_summarised_not_decoded() -> None:
    tokens = [f"tok{i}" for i in range(G.MAX_DECODED_ARRAY + 5)]
    kvs = [kv for kv in gb.LLAMA_KVS if b"tokenizer.ggml.tokens" not in kv]
    kvs.append(gb.kv_strings("tokenizer.ggml.tokens", tokens))
    info = _parse(gb.build(kvs))
    value = info.metadata["tokenizer.ggml.tokens"]
    assert value == G.ArraySummary("string", len(tokens))
    assert info.vocab_size == len(tokens)


def test_data_region_alignment_is_respected() -> None:
    kvs = [*gb.LLAMA_KVS, gb.kv_u32("general.alignment", 64)]
    info = _parse(gb.build(kvs, (("w", (64, 2), 0, 0), ("v", (64, 2), 0, 512)), alignment=64))
    assert info.alignment == 64
    assert info.data_offset % 64 == 0


def test_metadata_parse_cost_does_not_depend_on_file_size(tmp_path: Path) -> None:
    """A sparse multi-GB file is parsed by reading only its metadata (bytes read are bounded)."""
    spec = replace(PRESETS["tinyllama-1.1b"], vocab_size=4096, block_count=4)
    path = write_model(tmp_path / "big.gguf", spec, sparse=True)

    class CountingFile(io.FileIO):
        read_bytes = 0

        def read(self, size: int | None = -1, /) -> bytes:
            data = super().read(size)
            CountingFile.read_bytes += len(data)
            return data

    with CountingFile(path, "rb") as stream:
        info = G.read_gguf_stream(stream, path.stat().st_size)
    assert info.weights_bytes > 100 * 1024 * 1024
    assert CountingFile.read_bytes <= info.data_offset + G.READ_CHUNK


# --- hostile input: each refusal has its own case ---------------------------------------

Build = Callable[[], bytes]


def _string_length_too_large() -> bytes:
    raw = gb.header(0, 1) + gb.u64(1 << 62) + b"general.architecture"
    return raw + b"\0" * 64


def _array_count_too_large() -> bytes:
    kv = gb.string("tokenizer.ggml.tokens") + gb.u32(gb.ARRAY) + gb.u32(gb.STRING) + gb.u64(1 << 40)
    return gb.header(0, 1) + kv + b"\0" * 64


def _numeric_array_count_too_large() -> bytes:
    kv = gb.string("tokenizer.ggml.scores") + gb.u32(gb.ARRAY) + gb.u32(gb.F32) + gb.u64(1 << 61)
    return gb.header(0, 1) + kv + b"\0" * 64


def _string_in_array_too_long() -> bytes:
    kv = gb.string("x") + gb.u32(gb.ARRAY) + gb.u32(gb.STRING) + gb.u64(2000) + gb.u64(1 << 50)
    return gb.header(0, 1) + kv + b"\0" * 20000


def _nested_arrays() -> bytes:
    nested = gb.u32(gb.ARRAY) + gb.u64(1)
    deep = gb.string("deep") + gb.u32(gb.ARRAY) + nested * 40 + gb.u32(gb.U8) + gb.u64(0)
    return gb.header(0, 1) + deep


def _unknown_value_type() -> bytes:
    return gb.header(0, 1) + gb.string("k") + gb.u32(13) + b"\0" * 16


def _unknown_array_element_type() -> bytes:
    return gb.header(0, 1) + gb.string("k") + gb.u32(gb.ARRAY) + gb.u32(99) + gb.u64(1) + b"\0" * 16


def _tensor(shape: tuple[int, ...], type_id: int, offset: int, data_size: int | None = None) -> bytes:
    return gb.build(gb.LLAMA_KVS, (("w", shape, type_id, offset),), data_size)


def _duplicate_key() -> bytes:
    return gb.build([*gb.LLAMA_KVS, gb.kv_u32("llama.block_count", 2)])


def _duplicate_tensor() -> bytes:
    return gb.build(gb.LLAMA_KVS, (("w", (64, 2), 0, 0), ("w", (64, 2), 0, 512)))


def _overlapping_tensors() -> bytes:
    return gb.build(gb.LLAMA_KVS, (("a", (64, 2), 0, 0), ("b", (64, 2), 0, 256)))


def _bad_alignment() -> bytes:
    return gb.build([*gb.LLAMA_KVS, gb.kv_u32("general.alignment", 48)])


def _truncated_data() -> bytes:
    return gb.build()[:-1]


def _missing_architecture() -> bytes:
    return gb.build([kv for kv in gb.LLAMA_KVS if b"general.architecture" not in kv])


HOSTILE: list[tuple[str, Build, type[G.GGUFError], str]] = [
    ("bad magic", lambda: b"GGML" + gb.build()[4:], G.GGUFMagicError, "not a GGUF file"),
    ("empty file", lambda: b"", G.GGUFTruncatedError, "truncated"),
    ("version 1", lambda: gb.build(version=1), G.GGUFVersionError, "version 1 is not supported"),
    ("version 4", lambda: gb.build(version=4), G.GGUFVersionError, "version 4"),
    ("big-endian", lambda: gb.build(version=3 << 24), G.GGUFVersionError, "big-endian"),
    ("kv count larger than file", lambda: gb.header(0, 1 << 40) + b"\0" * 64, G.GGUFLimitError, "key/value count"),
    ("tensor count larger than file", lambda: gb.header(1 << 40, 0) + b"\0" * 64, G.GGUFLimitError, "tensor info"),
    ("string length larger than file", _string_length_too_large, G.GGUFLimitError, "string length"),
    ("string array count larger than file", _array_count_too_large, G.GGUFLimitError, "element count"),
    ("numeric array count larger than file", _numeric_array_count_too_large, G.GGUFLimitError, "element count"),
    ("string in array larger than file", _string_in_array_too_long, G.GGUFLimitError, "string length"),
    ("nested arrays", _nested_arrays, G.GGUFArrayError, "array of arrays"),
    ("unknown value type", _unknown_value_type, G.GGUFTypeError, "unknown value type 13"),
    ("unknown array element type", _unknown_array_element_type, G.GGUFTypeError, "unknown element type 99"),
    ("unknown ggml type", lambda: _tensor((64, 2), 4, 0, 512), G.GGUFTypeError, "unknown GGML type 4"),
    ("removed ggml type 31", lambda: _tensor((64, 2), 31, 0, 512), G.GGUFTypeError, "unknown GGML type 31"),
    ("zero dimensions", lambda: _tensor((), 0, 0, 64), G.GGUFTensorError, "0 dimensions"),
    ("five dimensions", lambda: _tensor((1, 1, 1, 1, 1), 0, 0, 64), G.GGUFTensorError, "5 dimensions"),
    ("empty dimension", lambda: _tensor((64, 0), 0, 0, 64), G.GGUFTensorError, "empty dimension"),
    ("row not whole blocks", lambda: _tensor((40, 2), 8, 0, 512), G.GGUFTensorError, "not a multiple"),
    ("misaligned offset", lambda: _tensor((64, 2), 0, 8, 1024), G.GGUFTensorError, "not aligned"),
    ("offset outside file", lambda: _tensor((64, 2), 0, 1 << 40, 512), G.GGUFTensorError, "outside .* corrupt"),
    ("absurd tensor size", lambda: _tensor((1 << 30, 1 << 30), 0, 0, 512), G.GGUFTensorError, "PiB .* corrupt"),
    ("tensor data past end", _truncated_data, G.GGUFTruncatedError, "missing"),
    ("duplicate key", _duplicate_key, G.GGUFMetadataError, "appears twice"),
    ("duplicate tensor", _duplicate_tensor, G.GGUFTensorError, "appears twice"),
    ("overlapping tensors", _overlapping_tensors, G.GGUFTensorError, "overlap"),
    ("alignment not a power of two", _bad_alignment, G.GGUFMetadataError, "power of two"),
]


@pytest.mark.parametrize(("build", "error", "message"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_input_is_refused(build: Build, error: type[G.GGUFError], message: str) -> None:
    with pytest.raises(error, match=message):
        _parse(build())


def test_missing_architecture_is_refused_on_use() -> None:
    info = _parse(_missing_architecture())
    with pytest.raises(G.GGUFMetadataError, match=r"general\.architecture is missing"):
        info.description()


@pytest.mark.parametrize("build", [_string_length_too_large, _array_count_too_large, _numeric_array_count_too_large])
def test_hostile_lengths_allocate_nothing_large(build: Build) -> None:
    data = build()
    tracemalloc.start()
    try:
        with pytest.raises(G.GGUFLimitError):
            _parse(data)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * G.READ_CHUNK


def test_truncation_at_every_byte_is_refused() -> None:
    data = gb.build()
    for cut in range(len(data)):
        with pytest.raises((G.GGUFTruncatedError, G.GGUFLimitError)):
            _parse(data[:cut])


@pytest.mark.parametrize("fraction", [0.001, 0.01, 0.5, 0.999])
def test_truncated_real_file_is_refused(tmp_path: Path, fraction: float) -> None:
    path = write_model(tmp_path / "m.gguf", PRESETS["qwen2-tiny"])
    data = path.read_bytes()
    with pytest.raises((G.GGUFTruncatedError, G.GGUFLimitError), match=r"truncated|left in the file"):
        _parse(data[: int(len(data) * fraction)])


def test_file_that_shrinks_while_read_is_refused() -> None:
    data = gb.build()
    # Claim a larger size than the stream has: the reader must notice instead of looping.
    with pytest.raises(G.GGUFTruncatedError):
        G.read_gguf_stream(io.BytesIO(data[:40]), len(data))


def test_ggml_type_table_matches_gguf_package() -> None:
    for type_id, ggml_type in G.GGML_TYPES.items():
        assert gguf.GGML_QUANT_SIZES[Q(type_id)] == (ggml_type.block_size, ggml_type.type_size)
        assert Q(type_id).name == ggml_type.name


def test_file_type_names_match_gguf_package() -> None:
    for value, name in G.FILE_TYPES.items():
        assert gguf.LlamaFileType(value).name.removeprefix("MOSTLY_").removeprefix("ALL_") == name


def test_spec_helpers_cover_several_ggml_types() -> None:
    """The fixtures really exercise several block sizes (guards the tests above)."""
    types = {
        t for preset in ("llama-tiny", "qwen2-tiny", "gemma2-tiny") for _n, _s, t, _b in tensor_plan(PRESETS[preset])
    }
    assert {Q.F32, Q.Q8_0, Q.Q4_0, Q.Q4_K, Q.Q6_K} <= types
    assert isinstance(PRESETS["llama-tiny"], ModelSpec)


# --- what else lands under a model's name ------------------------------------------------

LFS_POINTER = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"4d" * 32 + b"\nsize 12345\n"
SAFETENSORS = (18).to_bytes(8, "little") + b'{"__metadata__":{}}' + b"\0" * 64


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (LFS_POINTER, "Git LFS pointer file"),
        (b"<!DOCTYPE html>\n<html><body>404 Not Found</body></html>", "HTML page"),
        (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code></Error>', "XML document"),
        (b'{"error":"Repository not found"}', "JSON text"),
        (b"tjgg\x03\x00\x00\x00" + b"\0" * 40, "legacy GGJT file"),
        (SAFETENSORS, "safetensors file"),
        (b"\x1f\x8b\x08\x00" + b"\0" * 40, "gzip-compressed"),
        (b"PK\x03\x04" + b"\0" * 40, "zip-compressed"),
        (b"Not Found\n", "text"),
        (bytes(range(200, 248)), "binary data"),
    ],
)
def test_describe_start_names_what_the_file_is(head: bytes, expected: str) -> None:
    description = G.describe_start(head[:64], len(head))
    assert description.startswith(("a", "an", "JSON", "text", "binary")), description
    assert expected in description
    assert f"{len(head)} bytes, starting {head[:16].hex(' ')}" in description


def test_describe_start_of_an_empty_file() -> None:
    assert G.describe_start(b"", 0) == "the file is empty (0 bytes)"


@pytest.mark.parametrize(
    ("name", "content", "declared", "error", "message"),
    [
        (
            "m.gguf",
            b"",
            "auto",
            G.GGUFTruncatedError,
            r"m\.gguf: not a GGUF model although its name ends in \.gguf: "
            r"the file is empty \(0 bytes\)",
        ),
        ("m.gguf", b"GG", "auto", G.GGUFTruncatedError, r"only 2 bytes \(b'GG'\), the start of a GGUF magic"),
        ("M.GGUF", b"Not Found\n", "auto", G.GGUFMagicError, r"not a GGUF file although its name ends in \.gguf: text"),
        ("m.gguf", LFS_POINTER, "auto", G.GGUFMagicError, "Git LFS pointer file"),
        (
            "weights.bin",
            b"<html>denied</html>",
            "gguf",
            G.GGUFMagicError,
            r"weights\.bin: not a GGUF file although format gguf was requested: an HTML page",
        ),
        ("weights.bin", b"GGML" + gb.build()[4:], "gguf", G.GGUFMagicError, "starting 47 47 4d 4c"),
    ],
)
def test_detect_format_refuses_what_promises_gguf_and_is_not(
    tmp_path: Path, name: str, content: bytes, declared: str, error: type[G.GGUFError], message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(error, match=message):
        G.detect_format(path, declared)


def test_detect_format_of_other_files(tmp_path: Path) -> None:
    gguf_file = tmp_path / "named-anything.bin"
    gguf_file.write_bytes(gb.build())
    opaque = tmp_path / "weights.bin"
    opaque.write_bytes(b"Not Found\n")
    hef = tmp_path / "model.gguf"
    hef.write_bytes(b"not checked: the caller declared hef")
    assert G.detect_format(gguf_file) == "gguf"
    assert G.detect_format(gguf_file, "gguf") == "gguf"
    assert G.detect_format(opaque) == "unknown"
    assert G.detect_format(hef, "hef") == "hef"


def test_value_types_are_recorded_and_token_list_sets_the_vocabulary() -> None:
    kvs = [*gb.LLAMA_KVS, gb.kv_u32("llama.vocab_size", 99)]
    info = _parse(gb.build(kvs))
    assert info.metadata_types["general.architecture"] == "string"
    assert info.metadata_types["llama.block_count"] == "uint32"
    assert info.metadata_types["tokenizer.ggml.tokens"] == "array[string]"
    # llama.cpp's n_vocab is the token list's length; <arch>.vocab_size only counts without one.
    assert info.vocab_size == 3


def test_nested_arrays_refused_before_their_elements_are_read() -> None:
    """An array of arrays is refused at its header: a million elements cost nothing."""
    inner = gb.u32(gb.U8) + gb.u64(0)
    data = gb.header(0, 1) + gb.string("x") + gb.u32(gb.ARRAY) + gb.u32(gb.ARRAY) + gb.u64(1 << 20) + inner * (1 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(G.GGUFArrayError, match="array of arrays"):
            _parse(data)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * G.READ_CHUNK
