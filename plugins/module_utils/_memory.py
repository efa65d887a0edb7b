# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Memory needed to serve a GGUF model with llama.cpp-based runtimes on a CPU.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

The estimate has four parts, each modelled on what llama.cpp allocates on its CPU
backend (llama.cpp server, and LlamaEdge / WASI-NN GGML, which embeds llama.cpp):

* weights: the tensor bytes (exact when the GGUF was read; from bits-per-weight otherwise);
* kv_cache: K and V rows per layer for every cached token, GQA- and sliding-window-aware;
* compute: the graph allocator's peak for one micro-batch (logits, attention, FFN);
* overhead: the runtime's own RSS, the tokenizer tables and the logits output buffer.

The context length is always explicit: defaulting to the model's trained maximum is how
a 3B model "needs" 14 GiB of KV cache. docs/model-validation.md has the formulas and the
measured accuracy (benchmarks/README.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ansible_collections.edgeslm.pi5.plugins.module_utils._gguf import FILE_TYPES, GGML_TYPES_BY_NAME, GGMLType

__all__ = [
    "KV_CACHE_TYPES",
    "QUANT_MIX_BPW",
    "RUNTIMES",
    "DescriptionError",
    "EstimateError",
    "MemoryEstimate",
    "ModelDescription",
    "bits_per_weight",
    "estimate_from_description",
    "parse_description",
]

MIB = 1 << 20

# Effective bits per weight of llama.cpp's quantization mixes (tensors of one model are
# quantized to several types). From llama.cpp's published mix sizes for a 7B Llama; used
# only when a description has no exact `weights_bytes`. A name that is also a GGML type
# (Q8_0, Q6_K, Q4_0) uses the exact block arithmetic, except Q2_K whose mix keeps many
# tensors at Q3_K/Q4_K and so averages well above the 2.625 bits of its base type.
QUANT_MIX_BPW: dict[str, float] = {
    "Q2_K": 3.35,
    "Q2_K_S": 3.2,
    "Q3_K_S": 3.5,
    "Q3_K_M": 3.9,
    "Q3_K_L": 4.25,
    "Q4_K_S": 4.55,
    "Q4_K_M": 4.85,
    "Q5_K_S": 5.5,
    "Q5_K_M": 5.65,
    "IQ2_M": 2.7,
    "IQ3_XS": 3.3,
    "IQ3_M": 3.7,
    "MXFP4_MOE": 4.25,
    # Hailo-10H HEF models: 4-bit weights, 8-bit activations.
    "A8W4": 4.0,
}

KV_CACHE_TYPES: tuple[str, ...] = ("f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "iq4_nl")

# Fixed RSS of the serving process before any model buffer: shared libraries, the HTTP
# server, thread stacks. A llama-cpp-python process with libllama loaded measures 40 MiB
# (benchmarks/README.md); llama-server trades the interpreter for HTTP threads, so 48 MiB.
# LlamaEdge adds the WasmEdge runtime and the compiled API server (an estimate, not
# measured here: see docs/model-validation.md).
RUNTIMES: dict[str, int] = {
    "llama.cpp": 48 * MIB,
    "llamaedge": 112 * MIB,
}

# llama.cpp pads the KV cache length to a multiple of 256 cells.
KV_PAD = 256
# The largest micro-batch llama.cpp uses by default (n_ubatch); n_batch above it is split.
DEFAULT_UBATCH = 512
# Bytes of RAM per vocabulary entry beyond its text: id/score/type tables, the token-to-id
# and merge-rank hash maps and the piece cache llama.cpp builds (calibrated on 32k, 152k
# and 256k vocabularies: 320 bytes is within -11/+7 %, benchmarks/README.md).
TOKENIZER_BYTES_PER_TOKEN = 320


class EstimateError(ValueError):
    """The estimate's parameters are invalid (context length, cache type, batch sizes)."""


class DescriptionError(ValueError):
    """A model description lacks a key or has a wrong value; the message names the key."""


def bits_per_weight(quantization: str) -> float:
    """Effective bits per weight of a quantization mix (Q4_K_M) or GGML type (Q8_0, F16)."""
    if not isinstance(quantization, str) or not quantization.strip():
        raise DescriptionError(f"quantization must be a name such as Q4_K_M, got {quantization!r}")
    name = quantization.strip().upper()
    if name in QUANT_MIX_BPW:
        return QUANT_MIX_BPW[name]
    if name in GGML_TYPES_BY_NAME:
        return GGML_TYPES_BY_NAME[name].bits_per_weight
    known = sorted(set(QUANT_MIX_BPW) | set(GGML_TYPES_BY_NAME) | set(FILE_TYPES.values()))
    raise DescriptionError(f"unknown quantization {quantization!r}; known: {', '.join(known)}")


def _kv_type(name: str) -> GGMLType:
    if not isinstance(name, str) or name.lower() not in KV_CACHE_TYPES:
        raise EstimateError(f"kv_cache_type must be one of {', '.join(KV_CACHE_TYPES)}, got {name!r}")
    return GGML_TYPES_BY_NAME[name.upper()]


@dataclass(frozen=True)
class ModelDescription:
    """A validated model description (see parse_description for the keys)."""

    name: str
    format: str
    architecture: str
    quantization: str
    parameter_count: int | None
    block_count: int
    embedding_length: int
    head_count: int
    head_count_kv: int
    key_length: int
    value_length: int
    vocab_size: int
    context_length: int | None
    feed_forward_length: int | None
    sliding_window: int | None
    sliding_window_pattern: int | None
    expert_count: int | None
    expert_used_count: int | None
    weights_bytes: int | None
    metadata_bytes: int | None

    @property
    def weights(self) -> int:
        """Exact tensor bytes when known, else parameters x effective bits per weight."""
        if self.weights_bytes is not None:
            return self.weights_bytes
        if self.parameter_count is None:
            raise DescriptionError(f"model {self.name!r}: needs weights_bytes or parameter_count")
        return int(self.parameter_count * bits_per_weight(self.quantization) / 8)


def _get_int(desc: Mapping[str, Any], key: str, *, required: bool, minimum: int = 1) -> int | None:
    value = desc.get(key)
    if value is None:
        if required:
            raise DescriptionError(f"model description is missing {key!r} (an integer >= {minimum})")
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise DescriptionError(f"model description key {key!r} must be an integer, got {value!r}")
    if value < minimum:
        raise DescriptionError(f"model description key {key!r} must be >= {minimum}, got {value}")
    return value


def _get_str(desc: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = desc.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise DescriptionError(f"model description key {key!r} must be a non-empty string, got {value!r}")
    return value.strip()


def parse_description(desc: Mapping[str, Any]) -> ModelDescription:
    """Validate a model description dict (as GGUFInfo.description() writes it).

    Required: name, architecture, quantization, block_count, embedding_length,
    head_count, vocab_size, and weights_bytes or parameter_count. head_count_kv
    defaults to head_count (no GQA), key/value_length to embedding_length/head_count.
    """
    if not isinstance(desc, Mapping):
        raise DescriptionError(f"a model description must be a mapping, got {type(desc).__name__}")
    fmt = _get_str(desc, "format", "gguf").lower()
    if fmt not in ("gguf", "hef"):
        raise DescriptionError(f"model description key 'format' must be 'gguf' or 'hef', got {fmt!r}")
    name = _get_str(desc, "name")
    if fmt == "hef":
        return _parse_hef(desc, name)
    quantization = _get_str(desc, "quantization")
    bits_per_weight(quantization)  # fail early on an unknown name
    embd = _get_int(desc, "embedding_length", required=True) or 0
    heads = _get_int(desc, "head_count", required=True) or 0
    heads_kv = _get_int(desc, "head_count_kv", required=False) or heads
    if heads_kv > heads:
        raise DescriptionError(f"head_count_kv ({heads_kv}) cannot exceed head_count ({heads})")
    key_length = _get_int(desc, "key_length", required=False) or embd // heads
    if key_length < 1:
        raise DescriptionError("key_length is required when embedding_length < head_count")
    params = _get_int(desc, "parameter_count", required=False)
    weights = _get_int(desc, "weights_bytes", required=False)
    if params is None and weights is None:
        raise DescriptionError(f"model {name!r}: the description needs 'weights_bytes' or 'parameter_count'")
    return ModelDescription(
        name=name,
        format=fmt,
        architecture=_get_str(desc, "architecture"),
        quantization=quantization,
        parameter_count=params,
        block_count=_get_int(desc, "block_count", required=True) or 0,
        embedding_length=embd,
        head_count=heads,
        head_count_kv=heads_kv,
        key_length=key_length,
        value_length=_get_int(desc, "value_length", required=False) or key_length,
        vocab_size=_get_int(desc, "vocab_size", required=True) or 0,
        context_length=_get_int(desc, "context_length", required=False),
        feed_forward_length=_get_int(desc, "feed_forward_length", required=False),
        sliding_window=_get_int(desc, "sliding_window", required=False),
        sliding_window_pattern=_get_int(desc, "sliding_window_pattern", required=False, minimum=0),
        expert_count=_get_int(desc, "expert_count", required=False, minimum=0),
        expert_used_count=_get_int(desc, "expert_used_count", required=False, minimum=0),
        weights_bytes=weights,
        metadata_bytes=_get_int(desc, "metadata_bytes", required=False, minimum=0),
    )


def _parse_hef(desc: Mapping[str, Any], name: str) -> ModelDescription:
    """HEF models only need what a Hailo-10H fit check uses: size and compiled context."""
    params = _get_int(desc, "parameter_count", required=False)
    weights = _get_int(desc, "weights_bytes", required=False)
    if params is None and weights is None:
        raise DescriptionError(f"model {name!r}: the description needs 'weights_bytes' or 'parameter_count'")
    return ModelDescription(
        name=name,
        format="hef",
        architecture=str(desc.get("architecture") or "hef"),
        quantization=str(desc.get("quantization") or "A8W4"),
        parameter_count=params,
        block_count=0,
        embedding_length=0,
        head_count=0,
        head_count_kv=0,
        key_length=0,
        value_length=0,
        vocab_size=0,
        context_length=_get_int(desc, "context_length", required=False),
        feed_forward_length=None,
        sliding_window=None,
        sliding_window_pattern=None,
        expert_count=None,
        expert_used_count=None,
        weights_bytes=weights,
        metadata_bytes=None,
    )


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes needed to serve a model; `total` is what must fit in the node's free RAM.

    `mapped` is the part of `weights` served from the page cache through mmap: it is
    shared by every process serving the same file on a node and reclaimable by the
    kernel, but evicting it means re-reading the model from storage for every token.
    """

    weights: int
    kv_cache: int
    compute: int
    overhead: int
    total: int
    mapped: int = 0
    context_length: int = 0
    kv_cells: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "weights": self.weights,
            "kv_cache": self.kv_cache,
            "compute": self.compute,
            "overhead": self.overhead,
            "total": self.total,
            "mapped": self.mapped,
            "context_length": self.context_length,
            "kv_cells": self.kv_cells,
        }


def _pad(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _row_bytes(n_elements: int, ggml_type: GGMLType, what: str) -> int:
    if n_elements % ggml_type.block_size:
        raise EstimateError(
            f"{what}: a row of {n_elements} values is not a multiple of the {ggml_type.name} block "
            f"size {ggml_type.block_size}; use kv_cache_type f16"
        )
    return n_elements // ggml_type.block_size * ggml_type.type_size


# Sliding-window layer patterns llama.cpp applies per architecture when the GGUF has no
# explicit pattern: of every N layers, the first N-1 use the window and the last is global.
_SWA_PATTERNS = {"gemma2": 2, "gemma3": 6, "cohere2": 4}


def _swa_layers(model: ModelDescription) -> int:
    """How many layers keep only a sliding window of the KV cache."""
    if not model.sliding_window:
        return 0
    pattern = model.sliding_window_pattern
    if pattern is None:
        pattern = _SWA_PATTERNS.get(model.architecture)
    if pattern is None:
        # Architectures whose llama.cpp graph ignores the window (e.g. mistral/qwen2
        # configs that carry one): every layer caches the full context.
        return 0
    if pattern == 0:
        return model.block_count
    return sum(1 for layer in range(model.block_count) if layer % pattern < pattern - 1)


def _kv_cache_bytes(model: ModelDescription, cells: int, swa_cells: int, kv: GGMLType) -> int:
    k_row = _row_bytes(model.key_length * model.head_count_kv, kv, f"model {model.name!r} K cache row")
    v_row = _row_bytes(model.value_length * model.head_count_kv, kv, f"model {model.name!r} V cache row")
    swa = _swa_layers(model)
    full = model.block_count - swa
    return (k_row + v_row) * (full * cells + swa * swa_cells)


def _compute_bytes(model: ModelDescription, cells: int, ubatch: int, flash_attention: bool, kv: GGMLType) -> int:
    """Peak of llama.cpp's CPU graph allocator for one worst-case micro-batch.

    The allocator reuses intermediate tensors, so the buffer is the largest of three
    phases (calibrated against llama.cpp's own report, benchmarks/README.md):
    * output: logits for every token of the micro-batch (vocab x ubatch f32), which
      dominates for small models with large vocabularies;
    * attention: the activations of one layer, plus, without flash attention, the f32
      scores and mask (cells x ubatch per head + 1), which dominate at long contexts;
    * FFN: gate, up and down activations (times the active experts of an MoE).
    Flash attention over a quantized cache also keeps an f16 copy of one layer's K rows.
    """
    f32 = 4
    embd = model.embedding_length
    q_width = model.key_length * model.head_count
    kv_width = (model.key_length + model.value_length) * model.head_count_kv
    output = ubatch * (model.vocab_size + 2 * embd) * f32
    attention = ubatch * (3 * embd + 2 * q_width + kv_width) * f32
    if not flash_attention:
        attention += cells * ubatch * (model.head_count + 1) * f32
    ff = model.feed_forward_length or 4 * embd
    ffn = ubatch * (3 * ff * max(model.expert_used_count or 1, 1) + embd) * f32
    dequantized = 0
    if flash_attention and kv.block_size > 1:
        dequantized = cells * model.key_length * model.head_count_kv * 2
    return max(output, attention, ffn) + dequantized


def _overhead_bytes(model: ModelDescription, runtime: str, parallel: int) -> int:
    """Runtime RSS + tokenizer tables + logits output buffer (one row per parallel slot)."""
    base = RUNTIMES[runtime]
    if model.metadata_bytes is not None:
        # The token texts and merges are the metadata; the tables built from them add
        # a roughly fixed amount per token.
        tokenizer = model.metadata_bytes + model.vocab_size * TOKENIZER_BYTES_PER_TOKEN
    else:
        # No file read: budget the metadata itself at a typical 32 bytes per token.
        tokenizer = model.vocab_size * (TOKENIZER_BYTES_PER_TOKEN + 32)
    output = model.vocab_size * 4 * parallel
    return base + tokenizer + output


def _check_positive(name: str, value: object, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EstimateError(f"{name} must be a positive integer, got {value!r}: {fix}")
    return value


def estimate(
    model: ModelDescription,
    *,
    context_length: int,
    kv_cache_type: str = "f16",
    batch_size: int = 512,
    parallel: int = 1,
    mmap: bool = True,
    flash_attention: bool = True,
    runtime: str = "llama.cpp",
) -> MemoryEstimate:
    """Estimate for a validated description; see estimate_from_description."""
    ctx = _check_positive("context_length", context_length, "pass the context the server will use (--ctx-size)")
    batch = _check_positive("batch_size", batch_size, "llama.cpp's default is 512")
    slots = _check_positive("parallel", parallel, "the number of parallel slots (--parallel)")
    if runtime not in RUNTIMES:
        raise EstimateError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if model.format != "gguf":
        raise EstimateError(f"model {model.name!r} is {model.format}: the llama.cpp estimate applies to GGUF only")
    kv = _kv_type(kv_cache_type)
    if kv.name not in ("F16", "F32", "BF16") and not flash_attention:
        raise EstimateError(
            f"kv_cache_type {kv_cache_type} needs flash attention in llama.cpp (a quantized V cache "
            "is refused without it): enable flash attention or use f16"
        )
    ubatch = min(batch, DEFAULT_UBATCH)
    cells = _pad(ctx * slots, KV_PAD)
    swa_cells = min(cells, _pad((model.sliding_window or 0) * slots + ubatch, KV_PAD))
    weights = model.weights
    kv_bytes = _kv_cache_bytes(model, cells, swa_cells, kv)
    compute = _compute_bytes(model, cells, ubatch, flash_attention, kv)
    overhead = _overhead_bytes(model, runtime, slots)
    total = weights + kv_bytes + compute + overhead
    return MemoryEstimate(
        weights=weights,
        kv_cache=kv_bytes,
        compute=compute,
        overhead=overhead,
        total=total,
        mapped=weights if mmap else 0,
        context_length=ctx,
        kv_cells=cells,
    )


def estimate_from_description(
    description: Mapping[str, Any],
    *,
    context_length: int,
    kv_cache_type: str = "f16",
    batch_size: int = 512,
    parallel: int = 1,
    mmap: bool = True,
    flash_attention: bool = True,
    runtime: str = "llama.cpp",
) -> MemoryEstimate:
    """Bytes needed to serve the described GGUF model at an explicit context length.

    `context_length` is the context of one slot; `parallel` slots share one KV cache of
    context_length x parallel cells (llama-server: --ctx-size = context_length x --parallel).
    """
    return estimate(
        parse_description(description),
        context_length=context_length,
        kv_cache_type=kv_cache_type,
        batch_size=batch_size,
        parallel=parallel,
        mmap=mmap,
        flash_attention=flash_attention,
        runtime=runtime,
    )
