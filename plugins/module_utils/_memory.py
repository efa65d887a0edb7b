# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Memory needed to serve a GGUF model with llama.cpp-based runtimes on a CPU.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

The estimate follows what llama.cpp (as vendored in llama-cpp-python 0.3.36) allocates on its
CPU backend for one serving configuration (_serving.ServingConfig) on one CPU (CpuProfile):

* weights: the tensor bytes, split into what stays in the file's pages (`mapped`, or `loaded`
  into anonymous memory without mmap) and what the CPU backend repacks into its interleaved
  layout (`repacked`, anonymous; which types depends on the CPU: REPACK_RULES);
* kv_cache: K and V rows per layer and cell, per-slot streams or one unified stream, the
  sliding-window cache sized as llama.cpp sizes it;
* compute: the graph allocator's buffer, found by replaying the allocator on the model's graph
  (_compute.py);
* overhead: everything else the process holds: the logits output buffer, the process itself
  (base RSS, tokenizer tables by tokenizer model, per-slot state, the CPU backend's work
  buffer), the prompt cache bound and the context checkpoints.

The context length is always explicit: defaulting to the model's trained maximum is how
a 3B model "needs" 14 GiB of KV cache. docs/model-validation.md has the model and
benchmarks/README.md the measured accuracy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.edgeslm.pi5.plugins.module_utils._compute import ARCH_GRAPHS, ComputeShape, compute_sizes
from ansible_collections.edgeslm.pi5.plugins.module_utils._gguf import (
    FILE_TYPES,
    GGML_TYPES_BY_NAME,
    ArraySummary,
    GGMLType,
)
from ansible_collections.edgeslm.pi5.plugins.module_utils._serving import (
    KV_CACHE_BLOCK_SIZES,
    RUNTIME_NAMES,
    ServingConfig,
    ServingError,
    check_serving,
)

__all__ = [
    "CPU_PROFILES",
    "KV_CACHE_TYPES",
    "QUANT_MIX_BPW",
    "REPACK_RULES",
    "RUNTIMES",
    "TOKENIZER_COSTS",
    "CpuProfile",
    "DescriptionError",
    "EstimateError",
    "MemoryEstimate",
    "ModelDescription",
    "bits_per_weight",
    "compute_shape",
    "describe_gguf",
    "estimate",
    "estimate_from_description",
    "parse_description",
    "repacked_types",
    "tensor_groups",
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
# GGML types the tensors of a mix are quantized to (llama.cpp src/llama-quant.cpp picks them per
# tensor); used for the repacking split when the description has no tensor groups.
_MIX_TYPES: dict[str, tuple[str, ...]] = {
    "Q2_K": ("Q2_K", "Q3_K", "Q4_K"),
    "Q2_K_S": ("Q2_K", "Q4_K"),
    "Q3_K_S": ("Q3_K",),
    "Q3_K_M": ("Q3_K", "Q4_K", "Q5_K"),
    "Q3_K_L": ("Q3_K", "Q5_K"),
    "Q4_K_S": ("Q4_K", "Q5_K"),
    "Q4_K_M": ("Q4_K", "Q6_K"),
    "Q5_K_S": ("Q5_K",),
    "Q5_K_M": ("Q5_K", "Q6_K"),
    "MXFP4_MOE": ("MXFP4", "Q8_0"),
}

KV_CACHE_TYPES: tuple[str, ...] = tuple(KV_CACHE_BLOCK_SIZES)

# The process itself before any buffer of the model: llama-server's code, HTTP and compute
# threads, ggml contexts (measured: benchmarks/README.md "Overhead"). LlamaEdge adds the
# WasmEdge runtime and the compiled API server: an estimate, not measured here (no WasmEdge).
RUNTIMES: dict[str, int] = {
    "llama.cpp": 14 * MIB,
    "llamaedge": 112 * MIB,
}

# Tokenizer tables llama.cpp builds (src/llama-vocab.cpp: id_to_token, token_to_id, the piece
# cache, BPE merge ranks), by tokenizer.ggml.model, measured on 30k-262k vocabularies and rounded
# up (benchmarks/README.md "Overhead"): (fixed bytes, bytes per token, bytes per BPE merge).
TOKENIZER_COSTS: dict[str, tuple[int, int, int]] = {
    "llama": (0, 170, 0),  # SentencePiece (SPM)
    "gpt2": (3 * MIB, 175, 110),  # byte-level BPE
    "bert": (0, 175, 0),  # WordPiece (WPM)
    "t5": (0, 290, 0),  # Unigram (UGM)
}
_TOKENIZER_UNKNOWN = (3 * MIB, 290, 0)  # the largest per-token cost (merges counted as BPE's)
# Per slot: the sampler's candidate arrays (vocab x llama_token_data, 12 bytes, common/sampling.cpp)
# and the slot's token lists (tools/server/server-context.cpp); calibrated on what a 256k-vocabulary
# server adds by its peak beyond the work buffer (22 MiB, benchmarks/README.md), rounded up.
SLOT_BYTES_PER_TOKEN = 48
SLOT_BYTES_PER_CELL = 8
SLOT_FIXED = 64 * 1024

# llama.cpp pads the context (and each stream) to 256 cells (src/llama-context.cpp).
KV_PAD = 256
# A context checkpoint's cell metadata (position and sequences), per cell, beyond the K/V rows
# (measured: 1.503 MiB for 6 window layers x 256 cells x 1 KiB, llama-server's "created context
# checkpoint" line: 3 KiB over the rows).
CHECKPOINT_BYTES_PER_CELL = 16


class EstimateError(ValueError):
    """The estimate's parameters are invalid (context length, cache type, batch sizes)."""


class DescriptionError(ValueError):
    """A model description lacks a key or has a wrong value; the message names the key."""


# --- the CPU ---------------------------------------------------------------------------------

# Which weight types the CPU backend repacks into CPU_REPACK buffers, and on which CPU features,
# in the order it tries them: (type, required features, rows multiple). ggml/src/ggml-cpu/repack.cpp
# ggml_repack_get_optimal_repack_type at llama.cpp vendored in llama-cpp-python 0.3.36: a 2-D (3-D
# for MoE experts) weight used by a matmul is repacked when a rule's features are present and its
# row count (ne[1]) is a multiple of the rule's; the first matching rule wins.
REPACK_RULES: tuple[tuple[str, frozenset[str], int], ...] = (
    ("Q4_0", frozenset({"avx2"}), 8),
    ("Q4_0", frozenset({"sve", "i8mm", "sve256"}), 8),
    ("Q4_0", frozenset({"neon", "i8mm"}), 4),
    ("Q4_0", frozenset({"neon", "dotprod"}), 4),
    ("Q4_K", frozenset({"avx2"}), 8),
    ("Q4_K", frozenset({"neon", "i8mm"}), 8),
    ("Q4_K", frozenset({"neon", "dotprod"}), 8),
    ("Q2_K", frozenset({"avx512"}), 8),
    ("Q5_K", frozenset({"neon", "i8mm"}), 8),
    ("Q5_K", frozenset({"neon", "dotprod"}), 8),
    ("Q6_K", frozenset({"neon", "i8mm"}), 8),
    ("Q6_K", frozenset({"neon", "dotprod"}), 8),
    ("IQ4_NL", frozenset({"avx2"}), 8),
    ("IQ4_NL", frozenset({"neon", "dotprod"}), 4),
    ("MXFP4", frozenset({"avx2"}), 8),
    ("MXFP4", frozenset({"neon", "dotprod"}), 4),
    ("Q8_0", frozenset({"neon", "i8mm"}), 4),
    ("Q8_0", frozenset({"neon", "dotprod"}), 4),
)
REPACK_SOURCE = (
    "ggml/src/ggml-cpu/repack.cpp ggml_repack_get_optimal_repack_type (llama.cpp in llama-cpp-python 0.3.36)"
)

# Bytes per element an activation takes once converted to a weight type's vec_dot type
# (ggml/src/ggml-cpu/ggml-cpu.c type_traits_cpu): Q8_0 34/32, Q8_1 36/32, Q8_K 292/256.
_VEC_DOT = {"F32": 0.0, "F16": 2.0, "BF16": 2.0, "Q4_1": 36 / 32, "Q5_1": 36 / 32}
_Q8K = 292 / 256
_K_QUANTS = frozenset(
    {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ4_XS"}
)


@dataclass(frozen=True)
class CpuProfile:
    """The CPU a target runs llama.cpp on: the features ggml-cpu checks, and its core count."""

    name: str
    arch: str
    features: frozenset[str]
    cores: int
    description: str
    # x86 builds give K-quant matmuls that are not repacked a 512 KiB scratch per thread
    # (ggml/src/ggml-cpu/tiled/tiled.cpp, not built for Arm)
    tiled_scratch: bool = False

    def repack_rows(self, ggml_type: str) -> int | None:
        """The rows multiple under which `ggml_type` is repacked on this CPU, None if never."""
        for type_name, needs, rows in REPACK_RULES:
            if type_name == ggml_type and needs <= self.features:
                return rows
        return None


CPU_PROFILES: dict[str, CpuProfile] = {
    # Raspberry Pi 5: BCM2712, 4x Cortex-A76 (Armv8.2-A with DotProd and FP16, no I8MM, no SVE);
    # the project's llama-server image is built for armv8.2-a+dotprod+fp16 (images/llama-server).
    "cortex-a76": CpuProfile(
        "cortex-a76", "aarch64", frozenset({"neon", "dotprod", "fp16"}), 4, "Raspberry Pi 5 (BCM2712, 4x Cortex-A76)"
    ),
    # The amd64 lab nodes and this project's benchmark machine: llama.cpp built with
    # GGML_NATIVE=OFF turns on SSE4.2/AVX/AVX2/BMI2/FMA/F16C, not AVX-512 (ggml/CMakeLists.txt).
    "x86-64-avx2": CpuProfile(
        "x86-64-avx2",
        "x86_64",
        frozenset({"avx", "avx2", "fma", "f16c"}),
        4,
        "x86-64 build without AVX-512",
        tiled_scratch=True,
    ),
    # No repacking at all (--no-repack, or a runtime whose llama.cpp predates it).
    "none": CpuProfile("none", "any", frozenset(), 4, "no weight repacking"),
}
DEFAULT_CPU = "cortex-a76"


def repacked_types(cpu: CpuProfile) -> tuple[str, ...]:
    """The weight types `cpu` repacks (for messages and docs)."""
    return tuple(dict.fromkeys(t for t, needs, _rows in REPACK_RULES if needs <= cpu.features))


def _vec_dot_bytes(ggml_type: str) -> float:
    name = ggml_type.upper()
    if name in _VEC_DOT:
        return _VEC_DOT[name]
    if name in _K_QUANTS:
        return _Q8K
    return 34 / 32


# --- descriptions ----------------------------------------------------------------------------


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


# A tensor group: (GGML type, role, rows multiple, bytes). Role "matmul" (a weight a matmul
# reads), "embedding" (token_embd: read by row), "tied" (token_embd that is also the output
# matmul: llama.cpp loads it for both), "other" (norms, biases, 1-D tensors).
TensorGroup = tuple[str, str, int, int]
_EMBEDDINGS = frozenset({"token_embd.weight", "position_embd.weight", "token_types.weight"})


def tensor_groups(tensors: Iterable[Any]) -> tuple[TensorGroup, ...]:
    """Group a GGUF's tensor infos (_gguf.TensorInfo) by type, role and rows multiple (8, 4 or 1)."""
    items = list(tensors)
    names = {item.name for item in items}
    tied = "output.weight" not in names
    totals: dict[tuple[str, str, int], int] = {}
    for item in items:
        shape = tuple(item.shape)
        type_name = item.ggml_type.name
        if item.name in _EMBEDDINGS:
            role = "tied" if item.name == "token_embd.weight" and tied else "embedding"
        elif len(shape) >= 2:
            role = "matmul"
        else:
            role = "other"
        rows = shape[1] if len(shape) >= 2 else 1
        multiple = 8 if rows % 8 == 0 else 4 if rows % 4 == 0 else 1
        key = (type_name, role, multiple)
        totals[key] = totals.get(key, 0) + int(item.nbytes)
    return tuple((t, role, multiple, size) for (t, role, multiple), size in sorted(totals.items()))


def describe_gguf(info: Any) -> dict[str, Any]:
    """A GGUF's description (_gguf.GGUFInfo.description()) plus what the estimate reads from the file.

    Adds the tokenizer model and merge count, the MoE expert FFN width, and the tensor groups
    that split the weights into mapped and repacked bytes exactly.
    """
    desc: dict[str, Any] = dict(info.description())
    metadata = info.metadata
    model = metadata.get("tokenizer.ggml.model")
    if isinstance(model, str):
        desc["tokenizer_model"] = model
    merges = metadata.get("tokenizer.ggml.merges")
    if isinstance(merges, list):
        desc["tokenizer_merges"] = len(merges)
    elif isinstance(merges, ArraySummary):  # long arrays are counted, not decoded
        desc["tokenizer_merges"] = merges.count
    arch = desc.get("architecture")
    exp_ff = metadata.get(f"{arch}.expert_feed_forward_length")
    if isinstance(exp_ff, int) and not isinstance(exp_ff, bool):
        desc["expert_feed_forward_length"] = exp_ff
    desc["tensor_groups"] = [list(group) for group in tensor_groups(info.tensors)]
    return desc


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
    tokenizer_model: str | None = None
    tokenizer_merges: int | None = None
    expert_feed_forward_length: int | None = None
    tensor_groups: tuple[TensorGroup, ...] | None = field(default=None)

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


def _get_groups(desc: Mapping[str, Any]) -> tuple[TensorGroup, ...] | None:
    value = desc.get("tensor_groups")
    if value is None:
        return None
    fix = "a list of [GGML type, role, rows multiple, bytes] as describe_gguf writes it"
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise DescriptionError(f"model description key 'tensor_groups' must be {fix}")
    groups = []
    for item in value:
        if (
            not isinstance(item, Sequence)
            or isinstance(item, str)
            or len(item) != 4
            or item[0] not in GGML_TYPES_BY_NAME
            or item[1] not in ("matmul", "embedding", "tied", "other")
            or item[2] not in (1, 4, 8)
            or isinstance(item[3], bool)
            or not isinstance(item[3], int)
            or item[3] < 0
        ):
            raise DescriptionError(f"model description key 'tensor_groups' has {item!r}; it must be {fix}")
        groups.append((str(item[0]), str(item[1]), int(item[2]), int(item[3])))
    return tuple(groups)


def parse_description(desc: Mapping[str, Any]) -> ModelDescription:
    """Validate a model description dict (as GGUFInfo.description() or describe_gguf write it).

    Required: name, architecture, quantization, block_count, embedding_length,
    head_count, vocab_size, and weights_bytes or parameter_count. head_count_kv
    defaults to head_count (no GQA), key/value_length to embedding_length/head_count.
    Optional, read from the file by describe_gguf: tokenizer_model, tokenizer_merges,
    expert_feed_forward_length, tensor_groups.
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
    tokenizer = desc.get("tokenizer_model")
    if tokenizer is not None and not isinstance(tokenizer, str):
        raise DescriptionError(f"model description key 'tokenizer_model' must be a string, got {tokenizer!r}")
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
        tokenizer_model=tokenizer,
        tokenizer_merges=_get_int(desc, "tokenizer_merges", required=False, minimum=0),
        expert_feed_forward_length=_get_int(desc, "expert_feed_forward_length", required=False),
        tensor_groups=_get_groups(desc),
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


# --- the estimate ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes needed to serve a model; `total` is what must fit in the node's free RAM.

    total = weights + kv_cache + compute + overhead. `weights` = mapped + loaded + repacked:
    `mapped` weights are served from the page cache through mmap (shared by every process
    serving the file on a node, reclaimable, but evicting them means re-reading the model for
    every token, so they must fit), `loaded` ones were read into anonymous memory (mmap off),
    `repacked` ones are the CPU backend's interleaved copies in anonymous memory (their file
    pages are read once and then reclaimable, so they are not counted again).
    `overhead` = output + process + prompt_cache + checkpoints, and process = base + tokenizer
    + slots + work (the CPU backend's scratch buffer).
    """

    weights: int
    kv_cache: int
    compute: int
    overhead: int
    total: int
    mapped: int = 0
    context_length: int = 0
    kv_cells: int = 0
    loaded: int = 0
    repacked: int = 0
    output: int = 0
    process: int = 0
    prompt_cache: int = 0
    checkpoints: int = 0
    base: int = 0
    tokenizer: int = 0
    slots: int = 0
    work: int = 0
    kv_cells_swa: int = 0
    ubatch: int = 0

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
            "loaded": self.loaded,
            "repacked": self.repacked,
            "output": self.output,
            "process": self.process,
            "prompt_cache": self.prompt_cache,
            "checkpoints": self.checkpoints,
            "base": self.base,
            "tokenizer": self.tokenizer,
            "slots": self.slots,
            "work": self.work,
            "kv_cells_swa": self.kv_cells_swa,
            "ubatch": self.ubatch,
        }


def _pad(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _row_bytes(n_elements: int, type_name: str) -> int:
    ggml_type = GGML_TYPES_BY_NAME[type_name.upper()]
    return n_elements // ggml_type.block_size * ggml_type.type_size


# Sliding-window layer patterns llama.cpp applies per architecture when the GGUF has no
# explicit pattern: of every N layers, the first N-1 use the window and the last is global
# (src/models/gemma2.cpp, gemma3.cpp, cohere2.cpp: load_swa_pattern defaults).
_SWA_PATTERNS = {"gemma2": 2, "gemma3": 6, "cohere2": 4}


def _swa_flags(model: ModelDescription) -> tuple[bool, ...]:
    """Per layer: does it keep only a sliding window (src/llama-hparams.cpp set_swa_pattern)."""
    if not model.sliding_window:
        return ()
    pattern = model.sliding_window_pattern
    if pattern is None:
        pattern = _SWA_PATTERNS.get(model.architecture)
    if pattern is None:
        # Architectures whose llama.cpp graph ignores the window (e.g. mistral/qwen2
        # configs that carry one): every layer caches the full context.
        return ()
    return tuple(pattern == 0 or layer % pattern < pattern - 1 for layer in range(model.block_count))


@dataclass(frozen=True)
class _Layout:
    """The context llama.cpp builds for a serving configuration (src/llama-context.cpp)."""

    n_ctx: int
    kv_size: int  # cells per stream, full-attention layers
    kv_size_swa: int  # cells per stream, sliding-window layers
    n_stream: int
    n_seq: int
    n_batch: int
    n_ubatch: int
    swa: tuple[bool, ...]


def _layout(model: ModelDescription, serving: ServingConfig, runtime: str) -> _Layout:
    n_seq = serving.parallel
    n_ctx = _pad(serving.total_context, KV_PAD)
    if serving.kv_unified or n_seq == 1:
        kv_size, n_stream = n_ctx, 1
    else:
        kv_size = _pad(n_ctx // n_seq, KV_PAD)
        n_stream = n_seq
        n_ctx = kv_size * n_seq
    n_batch = min(n_ctx, serving.batch)
    n_ubatch = min(n_batch, serving.ubatch)
    swa = _swa_flags(model) if runtime == "llamacpp" else ()
    kv_size_swa = kv_size
    if any(swa) and not serving.swa_full:
        window = model.sliding_window or 0
        # src/llama-kv-cache-iswa.cpp: pad(min(size, n_swa * (unified ? n_seq : 1) + n_ubatch), 256)
        kv_size_swa = _pad(min(kv_size, window * (n_seq if serving.kv_unified else 1) + n_ubatch), KV_PAD)
    return _Layout(n_ctx, kv_size, kv_size_swa, n_stream, n_seq, n_batch, n_ubatch, swa)


def _kv_bytes(model: ModelDescription, serving: ServingConfig, layout: _Layout) -> tuple[int, int]:
    """(KV cache bytes, bytes of one stream's sliding-window layers: a checkpoint's size)."""
    k_row = _row_bytes(model.key_length * model.head_count_kv, serving.cache_type_k)
    v_row = _row_bytes(model.value_length * model.head_count_kv, serving.cache_type_v)
    swa_layers = sum(layout.swa)
    full_layers = model.block_count - swa_layers
    cells = full_layers * layout.kv_size + swa_layers * layout.kv_size_swa
    total = (k_row + v_row) * cells * layout.n_stream
    # a context checkpoint is the sequence's state of the window layers (tools/server/server-context.cpp
    # create_checkpoint, LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY): the cells still in the window
    window = min(layout.kv_size_swa, model.sliding_window or 0)
    checkpoint = ((k_row + v_row) * swa_layers + CHECKPOINT_BYTES_PER_CELL) * window if swa_layers else 0
    return total, checkpoint


def _weight_split(model: ModelDescription, serving: ServingConfig, cpu: CpuProfile) -> tuple[int, int]:
    """(non-repacked bytes, repacked bytes) of the weights on `cpu`."""
    groups = model.tensor_groups
    if groups is None:
        groups = _assumed_groups(model)
    plain = repacked = 0
    for type_name, role, multiple, size in groups:
        rows = cpu.repack_rows(type_name) if serving.repack else None
        packs = rows is not None and multiple % rows == 0
        if role == "tied":
            plain += size  # read by row for the input embeddings
            if packs:
                repacked += size  # and repacked once more as the output matmul
        elif role == "matmul" and packs:
            repacked += size
        else:
            plain += size
    return plain, repacked


def _assumed_groups(model: ModelDescription) -> tuple[TensorGroup, ...]:
    """Tensor groups for a description without them: the embedding tied (the larger case), the rest matmuls.

    The embedding is sized at the quantization's bits per weight; every other weight is taken
    as the mix's most repackable type, so the split can only overstate the repacked part.
    """
    weights = model.weights
    name = model.quantization.upper()
    types = _MIX_TYPES.get(name, (name,)) if name in _MIX_TYPES or name in GGML_TYPES_BY_NAME else ("Q8_0",)
    main = types[0]
    embedding = min(weights, int(model.vocab_size * model.embedding_length * bits_per_weight(name) / 8))
    return ((main, "tied", 8, embedding), (main, "matmul", 8, weights - embedding))


def _tokenizer_bytes(model: ModelDescription) -> int:
    fixed, per_token, per_merge = TOKENIZER_COSTS.get(model.tokenizer_model or "", _TOKENIZER_UNKNOWN)
    merges = model.tokenizer_merges
    if merges is None:
        merges = model.vocab_size if model.tokenizer_model == "gpt2" else 0
    return fixed + per_token * model.vocab_size + per_merge * merges


def _weight_vec_dot(model: ModelDescription) -> float:
    if model.tensor_groups:
        return max(
            (_vec_dot_bytes(t) for t, role, _m, _s in model.tensor_groups if role in ("matmul", "tied")), default=0
        )
    name = model.quantization.upper()
    return max(_vec_dot_bytes(t) for t in _MIX_TYPES.get(name, (name,)))


def _tiled(model: ModelDescription, cpu: CpuProfile, serving: ServingConfig) -> bool:
    if not cpu.tiled_scratch:
        return False
    types = (
        {t for t, role, _m, _s in model.tensor_groups if role in ("matmul", "tied")}
        if model.tensor_groups
        else set(_MIX_TYPES.get(model.quantization.upper(), (model.quantization.upper(),)))
    )
    return any(t in _K_QUANTS and (not serving.repack or cpu.repack_rows(t) is None) for t in types)


def _runtime_kind(runtime: str) -> str:
    kind = RUNTIME_NAMES.get(runtime)
    if kind is None:
        raise EstimateError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    return kind


def _legacy_serving(
    context_length: Any,
    kv_cache_type: Any,
    batch_size: Any,
    parallel: Any,
    mmap: bool,
    flash_attention: bool,
) -> ServingConfig:
    """The ServingConfig the keyword interface of earlier releases describes."""
    ctx = _check_positive("context_length", context_length, "pass the context the server will use (--ctx-size)")
    batch = _check_positive("batch_size", batch_size, "llama.cpp's default is 512")
    slots = _check_positive("parallel", parallel, "the number of parallel slots (--parallel)")
    kv = _kv_type(kv_cache_type).name.lower()
    if kv not in ("f16", "f32", "bf16") and not flash_attention:
        raise EstimateError(
            f"kv_cache_type {kv_cache_type} needs flash attention in llama.cpp (a quantized V cache "
            "is refused without it): enable flash attention or use f16"
        )
    try:
        return ServingConfig(
            context_per_slot=max(ctx, 128),
            parallel=slots,
            batch=batch,
            ubatch=min(batch, 512),
            cache_type_k=kv,
            cache_type_v=kv,
            flash_attention=bool(flash_attention),
            mmap=bool(mmap),
        )
    except ServingError as exc:
        raise EstimateError(str(exc)) from exc


def _check_positive(name: str, value: object, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EstimateError(f"{name} must be a positive integer, got {value!r}: {fix}")
    return value


def compute_shape(
    model: ModelDescription,
    serving: ServingConfig,
    layout: _Layout | None = None,
    cpu: CpuProfile | None = None,
    *,
    outputs: int | None = None,
) -> ComputeShape:
    """The graph shape llama.cpp reserves its compute buffer for (_compute.ComputeShape).

    `outputs` is the context's n_outputs_max: llama-server reserves one per slot; None means
    every token of the micro-batch (llama.cpp's tools other than the server, and LlamaEdge).
    """
    layout = layout or _layout(model, serving, "llamacpp")
    profile = cpu or CPU_PROFILES[DEFAULT_CPU]
    arch = ARCH_GRAPHS.get(model.architecture)
    return ComputeShape(
        architecture=model.architecture if arch else "llama",
        n_layer=model.block_count,
        n_embd=model.embedding_length,
        n_head=model.head_count,
        n_head_kv=model.head_count_kv,
        head_k=model.key_length,
        head_v=model.value_length,
        n_vocab=model.vocab_size,
        n_ff=model.feed_forward_length or 4 * model.embedding_length,
        n_expert=model.expert_count or 0,
        n_expert_used=model.expert_used_count or 0,
        n_ff_exp=model.expert_feed_forward_length or 0,
        swa_layers=layout.swa,
        kv_size=layout.kv_size,
        kv_size_swa=layout.kv_size_swa,
        n_stream=layout.n_stream,
        n_seq=layout.n_seq,
        n_outputs_max=outputs if outputs is not None else layout.n_ubatch,
        n_ubatch=layout.n_ubatch,
        n_ctx=layout.n_ctx,
        flash_attention=serving.flash_attention,
        cache_type_k=serving.cache_type_k,
        cache_type_v=serving.cache_type_v,
        weight_vec_dot=_weight_vec_dot(model),
        n_threads=profile.cores,
        tiled_scratch=_tiled(model, profile, serving),
    )


def estimate(
    model: ModelDescription,
    serving: ServingConfig | None = None,
    *,
    runtime: str = "llama.cpp",
    cpu: CpuProfile | str | None = None,
    context_length: int | None = None,
    kv_cache_type: str = "f16",
    batch_size: int = 512,
    parallel: int = 1,
    mmap: bool = True,
    flash_attention: bool = True,
) -> MemoryEstimate:
    """Bytes needed to serve `model` with `serving` on `cpu` (a CpuProfile or CPU_PROFILES name).

    `runtime` is llamacpp (llama-server; "llama.cpp" is the same) or llamaedge. `cpu` defaults
    to a Raspberry Pi 5's Cortex-A76. Without `serving`, the keyword arguments of earlier
    releases describe it (context_length is then required). Raises EstimateError (or
    _serving.ServingError) for settings llama.cpp refuses for this model.
    """
    kind = _runtime_kind(runtime)
    if serving is None:
        serving = _legacy_serving(context_length, kv_cache_type, batch_size, parallel, mmap, flash_attention)
    if model.format != "gguf":
        raise EstimateError(f"model {model.name!r} is {model.format}: the llama.cpp estimate applies to GGUF only")
    profile = CPU_PROFILES[cpu] if isinstance(cpu, str) else (cpu or CPU_PROFILES[DEFAULT_CPU])
    check_serving(serving, model, runtime=kind)
    if kind == "llamaedge":
        # WasmEdge 0.14.1's GGML plugin builds llama.cpp b3651: no sliding-window cache, no
        # repacking, no checkpoints, logits reserved for the whole micro-batch (_serving.LLAMAEDGE_FIXED).
        profile = CPU_PROFILES["none"]
    layout = _layout(model, serving, kind)
    kv_bytes, checkpoint_bytes = _kv_bytes(model, serving, layout)
    plain, repacked = _weight_split(model, serving, profile)
    mapped = plain if serving.mmap else 0
    loaded = 0 if serving.mmap else plain
    weights = plain + repacked
    shape = compute_shape(model, serving, layout, profile, outputs=layout.n_seq if kind == "llamacpp" else None)
    compute, work = compute_sizes(shape)
    # src/llama-context.cpp output_reserve: logits rows for max(outputs, n_seq_max): one per slot
    # (llama-server asks for the last token's logits only; so does LlamaEdge)
    output = model.vocab_size * 4 * layout.n_seq
    base = RUNTIMES["llamaedge" if kind == "llamaedge" else "llama.cpp"]
    tokenizer = _tokenizer_bytes(model)
    slots = serving.parallel * (
        SLOT_FIXED + SLOT_BYTES_PER_TOKEN * model.vocab_size + SLOT_BYTES_PER_CELL * serving.context_per_slot
    )
    process = base + tokenizer + slots + work
    prompt_cache = serving.prompt_cache_mib * MIB if kind == "llamacpp" else 0
    checkpoints = 0
    if kind == "llamacpp" and any(layout.swa) and not serving.swa_full:
        checkpoints = serving.ctx_checkpoints * serving.parallel * checkpoint_bytes
    overhead = output + process + prompt_cache + checkpoints
    total = weights + kv_bytes + compute + overhead
    return MemoryEstimate(
        weights=weights,
        kv_cache=kv_bytes,
        compute=compute,
        overhead=overhead,
        total=total,
        mapped=mapped,
        context_length=serving.context_per_slot,
        kv_cells=layout.kv_size * layout.n_stream,
        loaded=loaded,
        repacked=repacked,
        output=output,
        process=process,
        prompt_cache=prompt_cache,
        checkpoints=checkpoints,
        base=base,
        tokenizer=tokenizer,
        slots=slots,
        work=work,
        kv_cells_swa=layout.kv_size_swa * layout.n_stream if any(layout.swa) else 0,
        ubatch=layout.n_ubatch,
    )


def estimate_from_description(
    description: Mapping[str, Any],
    serving: ServingConfig | None = None,
    *,
    context_length: int | None = None,
    kv_cache_type: str = "f16",
    batch_size: int = 512,
    parallel: int = 1,
    mmap: bool = True,
    flash_attention: bool = True,
    runtime: str = "llama.cpp",
    cpu: CpuProfile | str | None = None,
) -> MemoryEstimate:
    """Bytes needed to serve the described GGUF model (see estimate).

    Without `serving`: `context_length` is the context of one slot, `parallel` slots each get
    a stream of context_length cells (llama-server: --ctx-size = context_length x --parallel),
    the micro-batch is min(batch_size, 512) and kv_cache_type is used for K and V.
    """
    return estimate(
        parse_description(description),
        serving,
        runtime=runtime,
        cpu=cpu,
        context_length=context_length,
        kv_cache_type=kv_cache_type,
        batch_size=batch_size,
        parallel=parallel,
        mmap=mmap,
        flash_attention=flash_attention,
    )
