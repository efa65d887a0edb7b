# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""The compute buffer: llama.cpp's graph allocator replayed on each architecture's graph.

Every case below is a configuration llama-server (llama.cpp vendored in llama-cpp-python
0.3.36, static x86-64 AVX2 build) was started with; the expected figure is the line it
printed, `sched_reserve: CPU compute buffer size = N MiB` (two decimals). The model files came
from tests/unit/gguf_factory.py (the preset, with the changes shown).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _compute as C

MIB = 1 << 20


def _pad(value: int, multiple: int = 256) -> int:
    return -(-value // multiple) * multiple


def shape(
    arch: str,
    layers: int,
    embd: int,
    heads: int,
    heads_kv: int,
    head: int,
    vocab: int,
    ff: int,
    *,
    ctx: int = 512,
    slots: int = 1,
    unified: bool = False,
    ubatch: int = 512,
    batch: int = 512,
    fa: bool = False,
    cache: str = "f16",
    window: int = 0,
    pattern: int = 0,
    experts: tuple[int, int, int] = (0, 0, 0),
) -> C.ComputeShape:
    """The ComputeShape llama.cpp builds for llama-server -c ctx*slots -np slots (src/llama-context.cpp)."""
    n_ctx = _pad(ctx * slots)
    if unified or slots == 1:
        kv, streams = n_ctx, 1
    else:
        kv, streams = _pad(n_ctx // slots), slots
        n_ctx = kv * slots
    n_ub = min(n_ctx, batch, ubatch)
    swa: tuple[bool, ...] = ()
    kv_swa = kv
    if window:
        swa = tuple(il % pattern < pattern - 1 for il in range(layers))
        kv_swa = _pad(min(kv, window * (slots if unified else 1) + n_ub))
    return C.ComputeShape(
        arch, layers, embd, heads, heads_kv, head, head, vocab, ff, experts[0], experts[1], experts[2],
        swa_layers=swa, kv_size=kv, kv_size_swa=kv_swa, n_stream=streams, n_seq=slots, n_outputs_max=slots,
        n_ubatch=n_ub, n_ctx=n_ctx, flash_attention=fa, cache_type_k=cache, cache_type_v=cache,
    )  # fmt: skip


LLAMA_TINY = ("llama", 2, 256, 8, 2, 32, 512, 512)  # preset llama-tiny
QWEN3_S = ("qwen3", 3, 1024, 16, 8, 128, 2000, 3072)  # qwen3-0.6b, 3 layers, vocab 2000
PHI3_S = ("phi3", 3, 3072, 32, 32, 96, 2000, 8192)  # phi3-mini, 3 layers, vocab 2000
GEMMA3_S = ("gemma3", 7, 1152, 4, 1, 256, 2000, 6912)  # gemma3-1b, 7 layers, vocab 2000, window 256
GEMMA2_TINY = ("gemma2", 4, 256, 8, 4, 32, 512, 512)  # preset gemma2-tiny (window 256)
MOE_S = ("qwen3moe", 3, 1024, 16, 4, 128, 2000, 3072)  # qwen3moe-mini, 3 layers, vocab 2000
NOGQA_S = ("qwen2", 3, 1024, 16, 16, 64, 2000, 2816)  # qwen2-nogqa, 3 layers, vocab 2000
MOE = {"experts": (16, 4, 512)}
G3 = {"window": 256, "pattern": 6}
G2 = {"window": 256, "pattern": 2}

# (model, serving, llama.cpp's CPU compute buffer size in MiB)
CASES: list[tuple[tuple[Any, ...], dict[str, Any], float]] = [
    (LLAMA_TINY, {}, 11.76),
    (LLAMA_TINY, {"slots": 2}, 11.76),  # per-slot streams: scores over one stream's cells
    (LLAMA_TINY, {"fa": True}, 4.51),
    (LLAMA_TINY, {"slots": 3, "ubatch": 256}, 5.92),
    (LLAMA_TINY, {"slots": 2, "unified": True}, 20.76),  # one stream of 1024 cells
    (LLAMA_TINY, {"fa": True, "cache": "q8_0"}, 4.51),  # head 32: no Hadamard rotation
    (LLAMA_TINY, {"ctx": 2048, "ubatch": 1024, "batch": 2048}, 77.52),
    (QWEN3_S, {}, 35.01),
    (QWEN3_S, {"slots": 2}, 35.01),
    (QWEN3_S, {"fa": True}, 26.51),
    (QWEN3_S, {"fa": True, "cache": "q8_0", "slots": 2}, 26.59),  # head 128: rotated q8_0 cache
    (QWEN3_S, {"ctx": 2048, "ubatch": 1024, "batch": 1024}, 172.02),
    (PHI3_S, {}, 79.01),  # fused QKV
    (PHI3_S, {"slots": 2}, 79.01),
    (PHI3_S, {"fa": True}, 66.51),
    (PHI3_S, {"fa": True, "cache": "q8_0", "slots": 2}, 66.51),
    (PHI3_S, {"ctx": 2048, "ubatch": 1024, "batch": 1024}, 324.02),
    (GEMMA3_S, G3, 53.26),
    (GEMMA3_S, {**G3, "slots": 2}, 53.26),
    (GEMMA3_S, {**G3, "fa": True}, 50.27),
    (GEMMA3_S, {**G3, "fa": True, "cache": "q8_0", "slots": 2}, 52.80),
    (GEMMA3_S, {**G3, "ctx": 2048, "ubatch": 1024, "batch": 1024}, 119.52),
    (GEMMA2_TINY, G2, 13.51),  # soft-capped scores
    (GEMMA2_TINY, {**G2, "fa": True}, 5.52),
    (GEMMA2_TINY, {**G2, "ctx": 2048, "ubatch": 1024, "batch": 1024}, 84.02),
    (MOE_S, MOE, 33.01),
    (MOE_S, {**MOE, "fa": True}, 22.51),
    (MOE_S, {**MOE, "fa": True, "cache": "q8_0", "slots": 2}, 22.59),
    (MOE_S, {**MOE, "ctx": 2048, "ubatch": 1024, "batch": 1024}, 168.02),
    (NOGQA_S, {}, 31.01),
    (NOGQA_S, {"fa": True}, 25.01),
    (NOGQA_S, {"fa": True, "cache": "q8_0", "slots": 2}, 23.04),
    (NOGQA_S, {"ctx": 2048, "ubatch": 1024, "batch": 1024}, 164.02),
]


@pytest.mark.parametrize(("model", "serving", "mib"), CASES, ids=[f"{c[0][0]}-{i}" for i, c in enumerate(CASES)])
def test_compute_buffer_equals_llama_cpp_report(model: tuple[Any, ...], serving: dict[str, Any], mib: float) -> None:
    got = C.compute_buffer_bytes(shape(*model, **serving))
    assert round(got / MIB, 2) == pytest.approx(mib, abs=0.005)


def test_prompt_graph_dominates_and_generation_is_smaller() -> None:
    s = shape(*QWEN3_S)
    arch = C.ARCH_GRAPHS["qwen3"]
    prompt = C._build(s, arch, 512, 1, 1)
    generation = C._build(s, arch, 1, 1, 1)
    assert C.graph_peak(generation.nodes, generation.leafs) < C.graph_peak(prompt.nodes, prompt.leafs)


def test_buffer_grows_linearly_with_the_micro_batch() -> None:
    # SmolLM2-360M shapes: the 100, 200, 399 MiB at micro-batches 512, 1024, 2048
    smol = ("llama", 32, 960, 15, 5, 64, 49152, 2560)
    sizes = [C.compute_buffer_bytes(shape(*smol, ctx=8192, ubatch=u, batch=2048)) for u in (512, 1024, 2048)]
    assert sizes[0] < sizes[1] < sizes[2]
    assert sizes[2] / sizes[0] == pytest.approx(4, rel=0.15)


def test_unknown_architecture_uses_the_llama_graph() -> None:
    s = shape(*LLAMA_TINY)
    assert C.compute_buffer_bytes(replace(s, architecture="mistral")) == C.compute_buffer_bytes(s)


def test_work_buffer_holds_the_f16_copy_of_the_scores_without_flash_attention() -> None:
    # ggml-cpu.c ggml_graph_plan: MUL_MAT(V f16, kq f32) converts kq to f16 in the work buffer
    s = shape(*LLAMA_TINY, ctx=4096, ubatch=512)
    _buffer, work = C.compute_sizes(s)
    scores = 4096 * 512 * 8  # cells x tokens x heads
    assert work >= 2 * scores
    _buffer, work_fa = C.compute_sizes(replace(s, flash_attention=True))
    assert work_fa < work


def test_allocator_reuses_freed_blocks_best_fit() -> None:
    alloc = C._DynAllocator()
    a = alloc.alloc(100)
    b = alloc.alloc(64)
    alloc.release(a, 100)
    assert alloc.alloc(96) == a  # the freed block, not the tail
    assert alloc.alloc(200) == b + 64
    assert alloc.max_size == 128 + 64 + 224  # sizes rounded up to 32 bytes
