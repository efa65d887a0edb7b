# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Memory estimate: each part by hand-computed arithmetic, refusals one case each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _gguf as G
from ansible_collections.edgeslm.pi5.plugins.module_utils import _memory as M
from ansible_collections.edgeslm.pi5.tests.unit.gguf_factory import PRESETS, write_model

MIB = 1 << 20

# Qwen2.5-1.5B shape: 28 layers, 2 KV heads x 128 (platform research 1.10: 28 KiB/token f16).
QWEN15: dict[str, Any] = {
    "name": "qwen2.5-1.5b",
    "format": "gguf",
    "architecture": "qwen2",
    "quantization": "Q4_K_M",
    "parameter_count": 1_543_714_304,
    "block_count": 28,
    "embedding_length": 1536,
    "feed_forward_length": 8960,
    "head_count": 12,
    "head_count_kv": 2,
    "key_length": 128,
    "value_length": 128,
    "context_length": 32768,
    "vocab_size": 151936,
}


def _desc(**changes: Any) -> dict[str, Any]:
    desc = dict(QWEN15)
    desc.update(changes)
    return {k: v for k, v in desc.items() if v is not None}


@pytest.mark.parametrize(
    ("ctx", "kv_type", "expected"),
    [
        (4096, "f16", 112 * MIB),  # 28 KiB/token
        (32768, "f16", 896 * MIB),
        (4096, "f32", 224 * MIB),
        (4096, "q8_0", 4096 * 28 * 2 * (256 // 32 * 34)),
        (4096, "q4_0", 4096 * 28 * 2 * (256 // 32 * 18)),
        (1000, "f16", 1024 * 28 * 2 * 256 * 2),  # padded to 256 cells
    ],
)
def test_kv_cache_respects_gqa_type_and_padding(ctx: int, kv_type: str, expected: int) -> None:
    est = M.estimate_from_description(QWEN15, context_length=ctx, kv_cache_type=kv_type)
    assert est.kv_cache == expected


def test_llama32_3b_at_trained_maximum_is_14_gib() -> None:
    """The reason the context must be explicit: 112 KiB/token x 131072."""
    desc = _desc(block_count=28, head_count=24, head_count_kv=8, embedding_length=3072, context_length=131072)
    est = M.estimate_from_description(desc, context_length=131072)
    assert est.kv_cache == 14 * (1 << 30)


def test_parallel_slots_multiply_the_cache() -> None:
    one = M.estimate_from_description(QWEN15, context_length=2048)
    four = M.estimate_from_description(QWEN15, context_length=2048, parallel=4)
    assert four.kv_cache == 4 * one.kv_cache
    assert four.kv_cells == 8192


def test_weights_from_bpw_when_bytes_unknown() -> None:
    est = M.estimate_from_description(QWEN15, context_length=512)
    assert est.weights == int(QWEN15["parameter_count"] * 4.85 / 8)


def test_exact_weights_bytes_win_over_bpw() -> None:
    est = M.estimate_from_description(_desc(weights_bytes=123_456_789), context_length=512)
    assert est.weights == 123_456_789


def test_total_is_the_sum_and_mapped_follows_mmap() -> None:
    est = M.estimate_from_description(QWEN15, context_length=4096)
    assert est.total == est.weights + est.kv_cache + est.compute + est.overhead
    assert est.mapped == est.weights
    assert M.estimate_from_description(QWEN15, context_length=4096, mmap=False).mapped == 0
    assert set(est.as_dict()) >= {"weights", "kv_cache", "compute", "overhead", "total"}


def test_compute_output_phase_dominates_for_large_vocab() -> None:
    est = M.estimate_from_description(QWEN15, context_length=4096)
    assert est.compute == 512 * (151936 + 2 * 1536) * 4


def test_attention_scores_dominate_without_flash_attention_at_long_context() -> None:
    fa = M.estimate_from_description(QWEN15, context_length=32768)
    no_fa = M.estimate_from_description(QWEN15, context_length=32768, flash_attention=False)
    assert no_fa.compute == 512 * 4 * (32768 * 13 + 3 * 1536 + 2 * 1536 + 2 * 256)
    assert fa.compute < no_fa.compute


def test_flash_attention_over_quantized_cache_adds_f16_k_rows() -> None:
    f16 = M.estimate_from_description(QWEN15, context_length=4096)
    q8 = M.estimate_from_description(QWEN15, context_length=4096, kv_cache_type="q8_0")
    assert q8.compute - f16.compute == 4096 * 128 * 2 * 2


def test_small_batch_shrinks_compute() -> None:
    small = M.estimate_from_description(QWEN15, context_length=4096, batch_size=64)
    assert small.compute == 64 * (151936 + 2 * 1536) * 4


@pytest.mark.parametrize(
    ("arch", "pattern", "swa_layers"),
    [("gemma2", None, 13), ("gemma3", None, 22), ("llama", None, 0), ("llama", 2, 13), ("gemma2", 0, 26)],
)
def test_sliding_window_layers(arch: str, pattern: int | None, swa_layers: int) -> None:
    desc = _desc(architecture=arch, block_count=26, sliding_window=1024, sliding_window_pattern=pattern)
    ctx = 8192
    est = M.estimate_from_description(desc, context_length=ctx)
    row = 2 * 256 * 2  # K+V, 2 KV heads x 128, f16
    swa_cells = 1024 + 512
    assert est.kv_cache == row * ((26 - swa_layers) * ctx + swa_layers * swa_cells)


def test_window_larger_than_context_caches_the_context() -> None:
    desc = _desc(architecture="gemma2", block_count=26, sliding_window=4096)
    est = M.estimate_from_description(desc, context_length=2048)
    assert est.kv_cache == 2 * 256 * 2 * 26 * 2048


def test_moe_scales_ffn_by_active_experts() -> None:
    dense = M.estimate_from_description(_desc(vocab_size=1000), context_length=512)
    moe = M.estimate_from_description(_desc(vocab_size=1000, expert_count=8, expert_used_count=2), context_length=512)
    assert moe.compute == 512 * 4 * (3 * 8960 * 2 + 1536)
    assert moe.compute > dense.compute


def test_overhead_grows_with_vocabulary_and_runtime() -> None:
    small = M.estimate_from_description(_desc(vocab_size=32000), context_length=512)
    large = M.estimate_from_description(_desc(vocab_size=152000), context_length=512)
    edge = M.estimate_from_description(_desc(vocab_size=32000), context_length=512, runtime="llamaedge")
    assert large.overhead > small.overhead
    assert edge.overhead - small.overhead == M.RUNTIMES["llamaedge"] - M.RUNTIMES["llama.cpp"]


def test_estimate_of_a_real_file_uses_exact_tensor_bytes(tmp_path: Path) -> None:
    info = G.read_gguf(write_model(tmp_path / "m.gguf", PRESETS["gemma2-tiny"]))
    est = M.estimate_from_description(info.description(), context_length=1024)
    assert est.weights == info.weights_bytes
    # 4 layers, pattern 2 -> 2 SWA layers of min(1024, pad(256 + 512)) cells, 2 full of 1024.
    row = (32 + 32) * 4 * 2
    assert est.kv_cache == row * (2 * 1024 + 2 * 768)


@pytest.mark.parametrize(
    ("name", "bpw"),
    [("Q8_0", 8.5), ("q8_0", 8.5), ("F16", 16.0), ("Q4_K", 4.5), ("Q6_K", 6.5625), ("Q4_K_M", 4.85), ("IQ4_XS", 4.25)],
)
def test_bits_per_weight(name: str, bpw: float) -> None:
    assert M.bits_per_weight(name) == pytest.approx(bpw)


@pytest.mark.parametrize("name", ["Q9_9", "", "   ", 4])
def test_bits_per_weight_refuses_unknown(name: Any) -> None:
    with pytest.raises(M.DescriptionError, match="quantization"):
        M.bits_per_weight(name)


DESCRIPTION_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("missing name", _desc(name=None), "'name'"),
    ("missing block_count", _desc(block_count=None), "missing 'block_count'"),
    ("missing embedding_length", _desc(embedding_length=None), "missing 'embedding_length'"),
    ("missing head_count", _desc(head_count=None), "missing 'head_count'"),
    ("missing vocab_size", _desc(vocab_size=None), "missing 'vocab_size'"),
    ("missing quantization", _desc(quantization=None), "'quantization'"),
    ("no size at all", _desc(parameter_count=None), "weights_bytes' or 'parameter_count'"),
    ("negative block_count", _desc(block_count=-1), "'block_count' must be >= 1"),
    ("string head_count", _desc(head_count="twelve"), "'head_count' must be an integer"),
    ("bool vocab", _desc(vocab_size=True), "'vocab_size' must be an integer"),
    ("kv heads above heads", _desc(head_count_kv=16), "head_count_kv"),
    ("unknown format", _desc(format="onnx"), "'format' must be 'gguf' or 'hef'"),
    ("unknown quantization", _desc(quantization="Q3_X"), "unknown quantization"),
]


@pytest.mark.parametrize(
    ("desc", "message"), [c[1:] for c in DESCRIPTION_ERRORS], ids=[c[0] for c in DESCRIPTION_ERRORS]
)
def test_invalid_descriptions_name_the_key(desc: dict[str, Any], message: str) -> None:
    with pytest.raises(M.DescriptionError, match=message):
        M.estimate_from_description(desc, context_length=512)


def test_description_must_be_a_mapping() -> None:
    with pytest.raises(M.DescriptionError, match="must be a mapping"):
        M.parse_description(["not", "a", "dict"])  # type: ignore[arg-type]


def test_numeric_strings_are_accepted() -> None:
    est = M.estimate_from_description(_desc(block_count="28"), context_length=512)
    assert est.kv_cache == M.estimate_from_description(QWEN15, context_length=512).kv_cache


ESTIMATE_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("zero context", {"context_length": 0}, "context_length must be a positive integer"),
    ("no context", {"context_length": None}, "context_length must be a positive integer"),
    ("bad cache type", {"context_length": 512, "kv_cache_type": "q2_k"}, "kv_cache_type must be one of"),
    ("zero batch", {"context_length": 512, "batch_size": 0}, "batch_size"),
    ("zero parallel", {"context_length": 512, "parallel": 0}, "parallel"),
    ("bad runtime", {"context_length": 512, "runtime": "vllm"}, "runtime must be one of"),
    (
        "quantized V without flash attention",
        {"context_length": 512, "kv_cache_type": "q8_0", "flash_attention": False},
        "needs flash attention",
    ),
]


@pytest.mark.parametrize(("kwargs", "message"), [c[1:] for c in ESTIMATE_ERRORS], ids=[c[0] for c in ESTIMATE_ERRORS])
def test_invalid_parameters_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(M.EstimateError, match=message):
        M.estimate_from_description(QWEN15, **kwargs)


def test_quantized_cache_needs_whole_blocks() -> None:
    desc = _desc(key_length=40, value_length=40, head_count_kv=1)
    with pytest.raises(M.EstimateError, match="not a multiple of the Q8_0 block size"):
        M.estimate_from_description(desc, context_length=512, kv_cache_type="q8_0")


def test_hef_models_have_no_llama_cpp_estimate() -> None:
    with pytest.raises(M.EstimateError, match="GGUF only"):
        M.estimate_from_description({"name": "q", "format": "hef", "parameter_count": 10}, context_length=512)
