# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Memory estimate: each part by hand-computed arithmetic, refusals one case each."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _gguf as G
from ansible_collections.edgeslm.pi5.plugins.module_utils import _memory as M
from ansible_collections.edgeslm.pi5.plugins.module_utils._serving import ServingConfig, ServingError
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
    est = M.estimate_from_description(QWEN15, context_length=512, cpu="none")
    assert est.weights == int(QWEN15["parameter_count"] * 4.85 / 8)


def test_without_tensor_groups_a_repacking_cpu_counts_the_embedding_twice() -> None:
    """No file read: the embedding is assumed tied, so it is kept for lookups and repacked as the output."""
    plain = M.estimate_from_description(QWEN15, context_length=512, cpu="none")
    pi5 = M.estimate_from_description(QWEN15, context_length=512)
    embedding = int(151936 * 1536 * 4.85 / 8)
    assert pi5.weights == plain.weights + embedding
    assert pi5.repacked == plain.weights and pi5.mapped == embedding


def test_exact_weights_bytes_win_over_bpw() -> None:
    est = M.estimate_from_description(_desc(weights_bytes=123_456_789), context_length=512, cpu="none")
    assert est.weights == 123_456_789


def test_total_is_the_sum_and_mapped_follows_mmap() -> None:
    est = M.estimate_from_description(QWEN15, context_length=4096, cpu="none")
    assert est.total == est.weights + est.kv_cache + est.compute + est.overhead
    assert est.overhead == est.output + est.process + est.prompt_cache + est.checkpoints
    assert est.process == est.base + est.tokenizer + est.slots + est.work
    assert est.mapped == est.weights and est.loaded == 0
    unmapped = M.estimate_from_description(QWEN15, context_length=4096, mmap=False, cpu="none")
    assert unmapped.mapped == 0 and unmapped.loaded == est.weights
    assert set(est.as_dict()) >= {"weights", "kv_cache", "compute", "overhead", "total", "repacked", "output"}


def test_compute_is_the_replayed_allocator() -> None:
    """_compute.py replays ggml-alloc on the model's graph (test__compute.py checks it against llama.cpp)."""
    fa = M.estimate_from_description(QWEN15, context_length=32768)
    no_fa = M.estimate_from_description(QWEN15, context_length=32768, flash_attention=False)
    assert no_fa.compute > 12 * 32768 * 512 * 4  # one layer's scores: heads x cells x tokens, f32
    assert fa.compute < no_fa.compute / 5
    assert no_fa.work > fa.work  # the f16 copy of the scores (ggml-cpu.c ggml_graph_plan)


def test_micro_batch_scales_compute() -> None:
    qwen = M.parse_description(QWEN15)
    sizes = [
        M.estimate(qwen, ServingConfig(context_per_slot=8192, batch=2048, ubatch=u, flash_attention=True)).compute
        for u in (256, 512, 1024, 2048)
    ]
    assert sizes == sorted(sizes) and sizes[-1] > 6 * sizes[0]


def test_small_legacy_batch_is_the_micro_batch() -> None:
    small = M.estimate_from_description(QWEN15, context_length=4096, batch_size=64)
    assert small.ubatch == 64
    assert small.compute < M.estimate_from_description(QWEN15, context_length=4096).compute


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


def test_moe_compute_follows_the_active_experts() -> None:
    base = _desc(vocab_size=1000, expert_feed_forward_length=1024)
    two = M.estimate_from_description(_desc(**base, expert_count=8, expert_used_count=2), context_length=512)
    four = M.estimate_from_description(_desc(**base, expert_count=8, expert_used_count=4), context_length=512)
    assert four.compute > two.compute


def test_runtime_base_overhead() -> None:
    cpp = M.estimate_from_description(_desc(vocab_size=32000), context_length=512)
    assert cpp.base == M.RUNTIMES["llama.cpp"]
    edge_desc = _desc(vocab_size=32000)
    edge = M.estimate(M.parse_description(edge_desc), ServingConfig(context_per_slot=512), runtime="llamaedge")
    assert edge.base == M.RUNTIMES["llamaedge"]


def test_estimate_of_a_real_file_uses_exact_tensor_bytes(tmp_path: Path) -> None:
    info = G.read_gguf(write_model(tmp_path / "m.gguf", PRESETS["gemma2-tiny"]))
    est = M.estimate_from_description(M.describe_gguf(info), context_length=1024, cpu="none")
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


def test_quantized_cache_needs_whole_blocks_per_head() -> None:
    desc = _desc(key_length=40, value_length=40, head_count_kv=1)
    with pytest.raises(ServingError, match=r"one attention head of qwen2\.5-1\.5b is 40 values wide"):
        M.estimate_from_description(desc, context_length=512, kv_cache_type="q8_0")


def test_hef_models_have_no_llama_cpp_estimate() -> None:
    with pytest.raises(M.EstimateError, match="GGUF only"):
        M.estimate_from_description({"name": "q", "format": "hef", "parameter_count": 10}, context_length=512)


# --- serving configuration, CPU and overhead (issue 12) ----------------------------------------

QWEN3 = M.parse_description(
    {
        "name": "qwen3-0.6b",
        "architecture": "qwen3",
        "quantization": "Q8_0",
        "weights_bytes": 639_000_000,
        "block_count": 28,
        "embedding_length": 1024,
        "feed_forward_length": 3072,
        "head_count": 16,
        "head_count_kv": 8,
        "key_length": 128,
        "value_length": 128,
        "vocab_size": 151936,
        "tokenizer_model": "gpt2",
        "tokenizer_merges": 151387,
    }
)
GEMMA3 = M.parse_description(
    {
        "name": "gemma-3-1b",
        "architecture": "gemma3",
        "quantization": "Q8_0",
        "weights_bytes": 1_000_000_000,
        "block_count": 26,
        "embedding_length": 1152,
        "feed_forward_length": 6912,
        "head_count": 4,
        "head_count_kv": 1,
        "key_length": 256,
        "value_length": 256,
        "vocab_size": 262144,
        "sliding_window": 512,
        "tokenizer_model": "llama",
    }
)


@pytest.mark.parametrize(
    ("serving", "cells"),
    [
        # (serving, KV cells llama.cpp reports: "llama_kv_cache: size = ... (N cells, ..., S/S seqs)" x streams)
        (ServingConfig(context_per_slot=4096), 4096),
        (ServingConfig(context_per_slot=4096, parallel=2), 8192),  # 2 streams of 4096
        (ServingConfig(context_per_slot=1000, parallel=3), 3072),  # pad(3000) / 3 -> pad(1024) x 3
        (ServingConfig(context_per_slot=1000, parallel=3, kv_unified=True), 3072),  # one stream of pad(3000)
        (ServingConfig(context_per_slot=130, parallel=2), 512),  # pad(260)=512, /2=256 -> 256 x 2
    ],
)
def test_kv_cells_per_stream(serving: ServingConfig, cells: int) -> None:
    assert M.estimate(QWEN3, serving).kv_cells == cells


@pytest.mark.parametrize(
    ("serving", "swa_cells"),
    [
        # src/llama-kv-cache-iswa.cpp: pad(min(size, n_swa * (unified ? n_seq : 1) + n_ubatch), 256) per stream
        (ServingConfig(context_per_slot=4096, parallel=2), 2 * 1024),
        (ServingConfig(context_per_slot=4096, parallel=2, kv_unified=True), 1536),
        (ServingConfig(context_per_slot=4096, batch=1024, ubatch=1024), 1536),
        (ServingConfig(context_per_slot=4096, swa_full=True), 4096),
        (ServingConfig(context_per_slot=512), 512),
    ],
)
def test_sliding_window_cache_per_stream(serving: ServingConfig, swa_cells: int) -> None:
    est = M.estimate(GEMMA3, serving)
    assert est.kv_cells_swa == swa_cells
    row = 2 * 256 * 2  # K + V, one KV head of 256, f16
    assert est.kv_cache == row * (4 * est.kv_cells + 22 * swa_cells)  # 4 global layers, 22 window layers


def test_context_checkpoints_of_sliding_window_models() -> None:
    serving = ServingConfig(context_per_slot=4096, parallel=2, ctx_checkpoints=3)
    est = M.estimate(GEMMA3, serving)
    # 22 window layers x 512 cells (the window) x (K + V) row, as llama-server logs a checkpoint's size
    one = (22 * 2 * 256 * 2 + M.CHECKPOINT_BYTES_PER_CELL) * 512
    assert est.checkpoints == 3 * 2 * one
    assert M.estimate(GEMMA3, replace(serving, swa_full=True)).checkpoints == 0
    assert M.estimate(QWEN3, serving).checkpoints == 0  # no window: nothing to checkpoint


def test_prompt_cache_is_counted_at_its_bound() -> None:
    base = M.estimate(QWEN3, ServingConfig())
    cached = M.estimate(QWEN3, ServingConfig(prompt_cache_mib=256))
    assert cached.total - base.total == 256 * MIB == cached.prompt_cache


def test_output_buffer_is_one_logits_row_per_slot() -> None:
    # src/llama-context.cpp output_reserve with llama-server's n_outputs_max = n_parallel
    assert M.estimate(QWEN3, ServingConfig(parallel=3)).output == 3 * 151936 * 4


# Which types the CPU backend repacks (ggml/src/ggml-cpu/repack.cpp at 0.3.36): (profile, type, rows).
REPACK_CASES: list[tuple[str, str, int | None]] = [
    ("cortex-a76", "Q4_0", 4),
    ("cortex-a76", "Q4_K", 8),
    ("cortex-a76", "Q5_K", 8),
    ("cortex-a76", "Q6_K", 8),
    ("cortex-a76", "Q8_0", 4),
    ("cortex-a76", "IQ4_NL", 4),
    ("cortex-a76", "Q5_0", None),
    ("cortex-a76", "F16", None),
    ("x86-64-avx2", "Q4_0", 8),
    ("x86-64-avx2", "Q4_K", 8),
    ("x86-64-avx2", "Q8_0", None),
    ("x86-64-avx2", "Q6_K", None),
    ("x86-64-avx2", "Q2_K", None),  # needs AVX-512
    ("none", "Q4_0", None),
]


@pytest.mark.parametrize(("profile", "type_name", "rows"), REPACK_CASES)
def test_repack_rules(profile: str, type_name: str, rows: int | None) -> None:
    assert M.CPU_PROFILES[profile].repack_rows(type_name) == rows


# Weights llama.cpp repacks, as llama-server reported them on this x86-64 AVX2 build
# ("CPU_REPACK model buffer size" and, with --load-mode none, "CPU model buffer size"), MiB.
SPLIT_CASES: list[tuple[str, dict[str, Any], float, float]] = [
    ("llama-ffn8x", {"block_count": 2, "weight_type": "Q4_0"}, 47.39, 17.60),  # untied: the embedding stays
    ("llama-ffn8x", {"block_count": 2, "weight_type": "Q4_K"}, 47.39, 17.60),
    ("llama-ffn8x", {"block_count": 2, "weight_type": "Q8_0"}, 0.0, 122.74),  # Q8_0: Arm only
    ("qwen3-0.6b", {"block_count": 3, "vocab_size": 2000, "merges": 500, "weight_type": "Q4_0"}, 26.41, 1.13),  # tied
]


@pytest.mark.parametrize(("preset", "changes", "repacked_mib", "plain_mib"), SPLIT_CASES)
def test_weight_split_matches_llama_cpp(
    tmp_path: Path, preset: str, changes: dict[str, Any], repacked_mib: float, plain_mib: float
) -> None:
    from gguf import GGMLQuantizationType

    spec = replace(PRESETS[preset], **{**changes, "weight_type": GGMLQuantizationType[changes["weight_type"]]})
    spec = replace(spec, file_type=None, type_overrides={})
    info = G.read_gguf(write_model(tmp_path / "m.gguf", spec, sparse=True))
    est = M.estimate_from_description(M.describe_gguf(info), context_length=512, cpu="x86-64-avx2")
    assert round(est.repacked / MIB, 2) == pytest.approx(repacked_mib, abs=0.005)
    assert round(est.mapped / MIB, 2) == pytest.approx(plain_mib, abs=0.02)


def test_repacking_off_keeps_every_weight_mapped() -> None:
    est = M.estimate(QWEN3, ServingConfig(repack=False))
    assert est.repacked == 0 and est.mapped == est.weights


# Idle RSS of llama-server beyond its buffers, measured (benchmarks/README.md "Overhead"): a
# 2-layer model per tokenizer model and vocabulary, minus the KV cache and the model file's pages.
# (tokenizer.ggml.model, vocabulary, merges, measured MiB)
OVERHEAD_CASES: list[tuple[str, int, int, float]] = [
    ("llama", 512, 0, 12.96),
    ("llama", 32000, 0, 17.70),
    ("llama", 262144, 0, 52.56),
    ("gpt2", 49152, 48900, 27.82),
    ("gpt2", 151936, 151387, 54.24),
    ("gpt2", 128256, 280147, 62.86),
    ("bert", 30522, 0, 17.50),
    ("t5", 32128, 0, 21.21),
    ("t5", 128000, 0, 46.02),
]


@pytest.mark.parametrize(("tokenizer", "vocab", "merges", "measured"), OVERHEAD_CASES)
def test_process_overhead_covers_the_measured_rss(tokenizer: str, vocab: int, merges: int, measured: float) -> None:
    desc = {
        "name": "m", "architecture": "llama", "quantization": "Q8_0", "weights_bytes": 1 << 20, "block_count": 2,
        "embedding_length": 256, "head_count": 8, "head_count_kv": 2, "feed_forward_length": 512,
        "vocab_size": vocab, "tokenizer_model": tokenizer, "tokenizer_merges": merges,
    }  # fmt: skip
    est = M.estimate(M.parse_description(desc), ServingConfig(context_per_slot=1024))
    ours = (est.base + est.tokenizer) / MIB  # the slots' state is allocated by the first request
    assert measured <= ours <= measured * 1.1


def test_llamaedge_runs_without_repacking_windows_or_checkpoints() -> None:
    serving = ServingConfig(context_per_slot=4096)
    edge = M.estimate(GEMMA3, serving, runtime="llamaedge")
    cpp = M.estimate(GEMMA3, serving, runtime="llamacpp")
    assert edge.repacked == 0 and edge.kv_cells_swa == 0 and edge.checkpoints == 0
    assert edge.kv_cache > cpp.kv_cache  # llama.cpp b3651 caches every layer in full
    with pytest.raises(ServingError, match=r"serving\.parallel: LlamaEdge"):
        M.estimate(GEMMA3, ServingConfig(parallel=2), runtime="llamaedge")


def test_legacy_keywords_describe_the_same_configuration() -> None:
    legacy = M.estimate(QWEN3, context_length=2048, kv_cache_type="q8_0", batch_size=1024, parallel=2)
    serving = ServingConfig(
        context_per_slot=2048,
        parallel=2,
        batch=1024,
        ubatch=512,
        cache_type_k="q8_0",
        cache_type_v="q8_0",
        flash_attention=True,
    )
    assert legacy == M.estimate(QWEN3, serving)


def test_tensor_groups_from_a_file(tmp_path: Path) -> None:
    info = G.read_gguf(write_model(tmp_path / "m.gguf", PRESETS["gemma2-tiny"]))
    desc = M.describe_gguf(info)
    groups = {(t, role): size for t, role, _m, size in desc["tensor_groups"]}
    assert ("Q6_K", "tied") in groups and ("Q4_K", "matmul") in groups
    assert sum(groups.values()) == info.weights_bytes
    assert desc["tokenizer_model"] == "llama"
    assert M.parse_description(desc).tensor_groups is not None


def test_bad_tensor_groups_are_refused() -> None:
    with pytest.raises(M.DescriptionError, match="tensor_groups"):
        M.parse_description(_desc(tensor_groups=[["Q4_0", "weights", 8, 10]]))


def test_checkpoint_size_matches_llama_server_log() -> None:
    """llama-server logged "created context checkpoint ... size = 1.503 MiB" for gemma3-1b shapes with 7 layers
    (6 window layers of 256 cells, one KV head of 256), ctx 2048."""
    desc = {**GEMMA3.__dict__, "block_count": 7, "vocab_size": 2000, "sliding_window": 256, "tensor_groups": None}
    model = M.parse_description({k: v for k, v in desc.items() if v is not None})
    est = M.estimate(model, ServingConfig(context_per_slot=2048, ctx_checkpoints=1))
    assert est.checkpoints / MIB == pytest.approx(1.503, rel=0.005)


def test_describe_gguf_counts_long_merge_lists(tmp_path: Path) -> None:
    """The reader counts arrays above 1024 elements without decoding them; the merges still count."""
    spec = replace(PRESETS["qwen2-tiny"], vocab_size=2048, merges=3000)
    desc = M.describe_gguf(G.read_gguf(write_model(tmp_path / "m.gguf", spec, sparse=True)))
    assert desc["tokenizer_model"] == "gpt2" and desc["tokenizer_merges"] == 3000
