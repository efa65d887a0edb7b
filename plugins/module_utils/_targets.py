# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hardware targets and the rules that decide whether a model can be served on one.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

Rules that are easy to get wrong (docs/model-validation.md, "Targets"):
* GGUF runs on the Pi's CPU only (llama.cpp, LlamaEdge); no Hailo NPU executes GGUF.
* The Hailo-10H (AI HAT+ 2) serves LLMs only as Hailo-compiled HEF files, from its own
  8 GB on-module memory, at the context length the HEF was compiled for (2048 for the
  published models).
* The Hailo-8 and Hailo-8L (AI Kit, AI HAT+) run vision networks, never LLMs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ansible_collections.edgeslm.pi5.plugins.module_utils._capacity import reserve_bytes
from ansible_collections.edgeslm.pi5.plugins.module_utils._memory import (
    CPU_PROFILES,
    CpuProfile,
    DescriptionError,
    EstimateError,
    MemoryEstimate,
    ModelDescription,
    estimate,
    parse_description,
)
from ansible_collections.edgeslm.pi5.plugins.module_utils._serving import ServingConfig

__all__ = [
    "ARCH_CPUS",
    "DEFAULT_RESERVE",
    "TARGETS",
    "DescriptionError",
    "EstimateError",
    "FitResult",
    "Target",
    "TargetError",
    "check_fit",
    "cpu_profile",
    "format_bytes",
    "get_target",
]

GIB = 1 << 30
MIB = 1 << 20

# Default RAM kept back on a Pi 5 for everything that is not a pod: what a k3s server node's
# kubelet reserves (kernel carve-outs, system-reserved, kube-reserved and the hard eviction
# threshold, defined once in _capacity and rendered into the kubelet's arguments by the k3s
# role), so a model that fits the board fits the node's allocatable memory. Override per site
# with reserve_bytes.
DEFAULT_RESERVE = reserve_bytes("server")
# The published Hailo-10H GenAI models are compiled for this context.
HAILO10H_HEF_CONTEXT = 2048

KINDS = ("cpu", "hailo-llm", "hailo-vision")


class TargetError(ValueError):
    """Unknown target name or an invalid target definition; the message names the field."""


@dataclass(frozen=True)
class Target:
    """Where a model would run: a Pi 5's CPU (with its RAM) or a Hailo accelerator."""

    name: str
    kind: str  # "cpu" | "hailo-llm" | "hailo-vision"
    memory_bytes: int
    reserve_bytes: int
    description: str
    max_context: int | None = None
    cpu: str | None = None  # _memory.CPU_PROFILES name: what llama.cpp's CPU backend repacks there

    @property
    def available_bytes(self) -> int:
        return max(self.memory_bytes - self.reserve_bytes, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "memory_bytes": self.memory_bytes,
            "reserve_bytes": self.reserve_bytes,
            "available_bytes": self.available_bytes,
            "description": self.description,
            "max_context": self.max_context,
            "cpu": self.cpu,
        }


def _pi5(gib: int) -> Target:
    return Target(
        f"pi5-{gib}gb", "cpu", gib * GIB, DEFAULT_RESERVE, f"Raspberry Pi 5 {gib} GB, Cortex-A76 CPU", cpu="cortex-a76"
    )


# The CPU llama.cpp runs on by node architecture: a Pi 5 (arm64) or an amd64 lab node (the
# project's llama-server image is built with GGML_NATIVE=OFF: AVX2, no AVX-512).
ARCH_CPUS: dict[str, str] = {"arm64": "cortex-a76", "amd64": "x86-64-avx2"}


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        _pi5(2),
        _pi5(4),
        _pi5(8),
        _pi5(16),
        Target("hailo-8l", "hailo-vision", 0, 0, "Hailo-8L (AI Kit / AI HAT+ 13 TOPS): vision networks only"),
        Target("hailo-8", "hailo-vision", 0, 0, "Hailo-8 (AI HAT+ 26 TOPS): vision networks only"),
        Target(
            "hailo-10h",
            "hailo-llm",
            8 * GIB,
            0,
            "Hailo-10H (AI HAT+ 2) with 8 GB on-module RAM: Hailo-compiled HEF LLMs",
            HAILO10H_HEF_CONTEXT,
        ),
    )
}


@dataclass
class FitResult:
    """Whether a model fits a target; `problems` lists every reason it does not."""

    fits: bool
    problems: list[str]
    needed: int
    available: int
    warnings: list[str] = field(default_factory=list)
    estimate: MemoryEstimate | None = None
    target: Target | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "fits": self.fits,
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "needed": self.needed,
            "available": self.available,
            "memory": self.estimate.as_dict() if self.estimate else None,
            "target": self.target.as_dict() if self.target else None,
        }


def format_bytes(value: int) -> str:
    """Human figure for messages: GiB with one decimal, MiB below 1 GiB."""
    if abs(value) >= GIB:
        return f"{value / GIB:.1f} GiB"
    return f"{value / MIB:.0f} MiB"


def _int_field(spec: Mapping[str, Any], key: str, default: int | None) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TargetError(f"target field {key!r} must be a non-negative integer (bytes), got {value!r}")
    return value


def _target_from_mapping(spec: Mapping[str, Any]) -> Target:
    """A custom target; `base` names a catalog target whose fields the others override."""
    base_name = spec.get("base")
    base = get_target(base_name) if base_name is not None else None
    name = spec.get("name", base.name if base else None)
    if not isinstance(name, str) or not name:
        raise TargetError("a target mapping needs 'name' (a string) or 'base' (a catalog target name)")
    kind = spec.get("kind", base.kind if base else "cpu")
    if kind not in KINDS:
        raise TargetError(f"target field 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    memory = _int_field(spec, "memory_bytes", base.memory_bytes if base else None)
    default_reserve = base.reserve_bytes if base else (DEFAULT_RESERVE if kind == "cpu" else 0)
    reserve = _int_field(spec, "reserve_bytes", default_reserve)
    max_ctx = spec.get("max_context", base.max_context if base else None)
    if max_ctx is not None and (isinstance(max_ctx, bool) or not isinstance(max_ctx, int) or max_ctx < 1):
        raise TargetError(f"target field 'max_context' must be a positive integer, got {max_ctx!r}")
    text = spec.get("description", base.description if base else f"custom {kind} target")
    cpu = spec.get("cpu", base.cpu if base else ("cortex-a76" if kind == "cpu" else None))
    if cpu is not None and cpu not in CPU_PROFILES:
        raise TargetError(f"target field 'cpu' must be one of {', '.join(CPU_PROFILES)}, got {cpu!r}")
    return Target(name, kind, memory, reserve, str(text), max_ctx, cpu)


def cpu_profile(target: Target, arch: str | None = None) -> CpuProfile:
    """The CPU profile the estimate uses on `target`; `arch` (arm64 | amd64) overrides it for lab nodes."""
    if arch is not None:
        if arch not in ARCH_CPUS:
            raise TargetError(f"arch must be one of {', '.join(ARCH_CPUS)}, got {arch!r}")
        return CPU_PROFILES[ARCH_CPUS[arch]]
    return CPU_PROFILES[target.cpu or "cortex-a76"]


def get_target(target: str | Mapping[str, Any]) -> Target:
    """A catalog target by name (pi5-2gb ... hailo-10h) or a custom one from a mapping."""
    if isinstance(target, Mapping):
        return _target_from_mapping(target)
    if isinstance(target, str) and target.strip().lower() in TARGETS:
        return TARGETS[target.strip().lower()]
    raise TargetError(f"unknown target {target!r}; use one of {', '.join(TARGETS)} or a mapping with 'name'")


def _label(model: ModelDescription, context_length: int) -> str:
    return f"{model.name} {model.quantization} at ctx {context_length}"


def _check_format(model: ModelDescription, target: Target) -> list[str]:
    """The accelerator rules, one message per violated rule."""
    if target.kind == "hailo-vision":
        return [
            f"{model.name}: {target.name} runs vision networks only, no LLMs; serve "
            f"{model.format.upper()} models on the Pi's CPU (pi5-*) or HEF LLMs on a hailo-10h"
        ]
    if target.kind == "hailo-llm" and model.format == "gguf":
        return [
            f"{model.name}: GGUF runs on the CPU only; {target.name} serves LLMs only as Hailo-compiled "
            "HEF files (use a pi5-* target for this GGUF, or the model's HEF build for the NPU)"
        ]
    if target.kind == "cpu" and model.format == "hef":
        return [f"{model.name}: HEF files run only on a Hailo-10H NPU, not on {target.name}'s CPU; use hailo-10h"]
    return []


def _check_hef(model: ModelDescription, target: Target, context_length: int) -> tuple[list[str], int]:
    problems: list[str] = []
    needed = model.weights
    compiled = model.context_length or target.max_context
    if compiled is not None and context_length > compiled:
        problems.append(
            f"{model.name} HEF is compiled for ctx {compiled}; ctx {context_length} is not possible on "
            f"{target.name} (HEF context is fixed at compile time)"
        )
    if needed > target.available_bytes:
        problems.append(
            f"{model.name} HEF needs {format_bytes(needed)}, {target.name} has "
            f"{format_bytes(target.available_bytes)} of on-module memory"
        )
    return problems, needed


def check_fit(
    description: Mapping[str, Any],
    target: str | Mapping[str, Any],
    *,
    context_length: int,
    kv_cache_type: str = "f16",
    parallel: int = 1,
    reserve_bytes: int | None = None,
    batch_size: int = 512,
    mmap: bool = True,
    flash_attention: bool = True,
    runtime: str = "llama.cpp",
    serving: ServingConfig | None = None,
    arch: str | None = None,
) -> FitResult:
    """Every reason the described model cannot be served on `target` at `context_length`.

    With `serving` (a _serving.ServingConfig) the estimate uses it and `context_length` may be
    its context_per_slot; otherwise the keyword arguments describe the server. The target's
    CPU profile (or `arch`'s: arm64 | amd64) decides which weights are repacked.
    Raises DescriptionError/TargetError/EstimateError (ValueError) for invalid input;
    a model that is valid but does not fit is a FitResult with fits=False.
    """
    tgt = get_target(target)
    model = parse_description(description)
    if reserve_bytes is not None:
        if isinstance(reserve_bytes, bool) or not isinstance(reserve_bytes, int) or reserve_bytes < 0:
            raise TargetError(f"reserve_bytes must be a non-negative integer, got {reserve_bytes!r}")
        tgt = replace(tgt, reserve_bytes=reserve_bytes)
    if isinstance(context_length, bool) or not isinstance(context_length, int) or context_length < 1:
        raise EstimateError(f"context_length must be a positive integer, got {context_length!r}")
    problems = _check_format(model, tgt)
    warnings: list[str] = []
    available = tgt.available_bytes
    if problems:
        return FitResult(False, problems, 0, available, warnings, None, tgt)
    if model.format == "hef":
        hef_problems, needed = _check_hef(model, tgt, context_length)
        return FitResult(not hef_problems, hef_problems, needed, available, warnings, None, tgt)
    est = estimate(
        model,
        serving,
        runtime=runtime,
        cpu=cpu_profile(tgt, arch),
        context_length=context_length,
        kv_cache_type=kv_cache_type,
        batch_size=batch_size,
        parallel=parallel,
        mmap=mmap,
        flash_attention=flash_attention,
    )
    if est.total > available:
        problems.append(
            f"{_label(model, context_length)} needs {format_bytes(est.total)} "
            f"(weights {format_bytes(est.weights)}, KV cache {format_bytes(est.kv_cache)}, "
            f"compute {format_bytes(est.compute)}, overhead {format_bytes(est.overhead)}), "
            f"{tgt.name} has {format_bytes(available)} free after a {format_bytes(tgt.reserve_bytes)} reserve"
        )
    if model.context_length is not None and context_length > model.context_length:
        warnings.append(
            f"{model.name}: ctx {context_length} exceeds the trained context {model.context_length}; "
            "quality degrades unless the model uses RoPE scaling"
        )
    return FitResult(not problems, problems, est.total, available, warnings, est, tgt)
