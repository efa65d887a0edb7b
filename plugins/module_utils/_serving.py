# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The serving configuration of a model: every server setting that changes memory.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

One ServingConfig feeds both the memory estimate (_memory) and the server's command line
(llama_server_args, llamaedge_args), so the estimate and the running server describe the same
configuration. The site catalog's `serving:` keys are defined here (CATALOG_FIELDS).

llama-server flag facts: llama.cpp as vendored in llama-cpp-python 0.3.36,
common/arg.cpp (--ctx-size, --parallel, --kv-unified, -b, -ub, -ctk, -ctv, -fa, --cache-ram,
--no-mmap) and tools/server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CATALOG_FIELDS",
    "CATALOG_KEYS",
    "KV_CACHE_TYPES",
    "ServingConfig",
    "ServingError",
    "ServingField",
    "check_serving",
    "llama_server_args",
    "llamaedge_args",
    "serving_from_mapping",
]

# Cache types llama-server accepts for -ctk/-ctv (common/arg.cpp kv_cache_types at 0.3.36).
KV_CACHE_TYPES: tuple[str, ...] = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
# Block sizes of the cache types (ggml's type traits): a head's width must be a multiple.
_BLOCK_SIZES = {"f32": 1, "f16": 1, "bf16": 1, "q8_0": 32, "q4_0": 32, "q4_1": 32, "iq4_nl": 32, "q5_0": 32, "q5_1": 32}
_UNQUANTIZED = ("f32", "f16", "bf16")


class ServingError(ValueError):
    """A serving setting that cannot work; the message starts with the field path."""


@dataclass(frozen=True)
class ServingField:
    """One key of the catalog's `serving:` block."""

    attribute: str
    kind: str  # "integer" | "boolean" | "string"
    doc: str
    default: Any
    enum: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None


CATALOG_FIELDS: dict[str, ServingField] = {
    "contextPerSlot": ServingField(
        "context_per_slot", "integer", "tokens one request can use (context of one slot)", 4096, minimum=128
    ),
    "parallel": ServingField(
        "parallel", "integer", "server slots answering at once (--parallel)", 1, minimum=1, maximum=64
    ),
    "kvUnified": ServingField(
        "kv_unified", "boolean", "one KV stream shared by all slots (true) or one stream per slot (false)", False
    ),
    "batch": ServingField("batch", "integer", "logical batch (-b)", 512, minimum=1),
    "ubatch": ServingField("ubatch", "integer", "micro-batch, at most the batch (-ub)", 512, minimum=1),
    "cacheTypeK": ServingField("cache_type_k", "string", "K cache element type (-ctk)", "f16", KV_CACHE_TYPES),
    "cacheTypeV": ServingField(
        "cache_type_v", "string", "V cache element type (-ctv); quantized needs flash attention", "f16", KV_CACHE_TYPES
    ),
    "flashAttention": ServingField("flash_attention", "boolean", "flash attention (-fa on|off)", False),
    "promptCacheMiB": ServingField(
        "prompt_cache_mib", "integer", "host-RAM prompt cache bound in MiB (--cache-ram; 0 disables it)", 0, minimum=0
    ),
    "mmap": ServingField("mmap", "boolean", "map the model file instead of reading it into RAM", True),
}
CATALOG_KEYS: dict[str, str] = {key: spec.attribute for key, spec in CATALOG_FIELDS.items()}


@dataclass(frozen=True)
class ServingConfig:
    """How a server runs a model; defaults are what the project's template runs."""

    context_per_slot: int = 4096
    parallel: int = 1
    kv_unified: bool = False
    batch: int = 512
    ubatch: int = 512
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    flash_attention: bool = False
    prompt_cache_mib: int = 0
    mmap: bool = True

    @property
    def total_context(self) -> int:
        """llama-server's --ctx-size: it divides the context among the --parallel slots."""
        return self.context_per_slot * self.parallel


def serving_from_mapping(mapping: Mapping[str, Any], where: str = "serving") -> ServingConfig:
    """A ServingConfig from the catalog's camelCase keys; ServingError names the key and the fix."""
    if not isinstance(mapping, Mapping):
        raise ServingError(f"{where}: must be a mapping of {', '.join(CATALOG_FIELDS)}")
    values: dict[str, Any] = {}
    for key, value in mapping.items():
        spec = CATALOG_FIELDS.get(str(key))
        if spec is None:
            raise ServingError(f"{where}.{key}: unknown serving setting; known: {', '.join(CATALOG_FIELDS)}")
        values[spec.attribute] = _checked(spec, value, f"{where}.{key}")
    config = ServingConfig(**values)
    if config.ubatch > config.batch:
        raise ServingError(
            f"{where}.ubatch: {config.ubatch} is above the batch {config.batch}; "
            "llama.cpp caps it, so set ubatch <= batch"
        )
    if config.cache_type_v not in _UNQUANTIZED and not config.flash_attention:
        raise ServingError(
            f"{where}.cacheTypeV: a quantized V cache ({config.cache_type_v}) needs flashAttention: true "
            "(llama.cpp refuses it without)"
        )
    return config


def _checked(spec: ServingField, value: Any, path: str) -> Any:
    if spec.kind == "boolean":
        if not isinstance(value, bool):
            raise ServingError(f"{path}: must be true or false, got {value!r}")
        return value
    if spec.kind == "string":
        if value not in spec.enum:
            raise ServingError(f"{path}: must be one of {', '.join(spec.enum)}, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ServingError(f"{path}: must be an integer, got {value!r}")
    if spec.minimum is not None and value < spec.minimum:
        raise ServingError(f"{path}: must be >= {spec.minimum}, got {value}")
    if spec.maximum is not None and value > spec.maximum:
        raise ServingError(f"{path}: must be <= {spec.maximum}, got {value}")
    return value


def check_serving(config: ServingConfig, model: Any) -> None:
    """Combinations llama.cpp refuses for this model (model: _memory.ModelDescription)."""
    for name, cache_type, width in (
        ("cacheTypeK", config.cache_type_k, model.key_length),
        ("cacheTypeV", config.cache_type_v, model.value_length),
    ):
        block = _BLOCK_SIZES[cache_type]
        if width % block:
            raise ServingError(
                f"{name}: one head of {model.name} is {width} wide, not a multiple of {cache_type}'s block of "
                f"{block}: llama.cpp refuses this cache type for the model; use f16 or q8_0 on a 32-multiple head"
            )


def llama_server_args(
    config: ServingConfig,
    *,
    model_path: str,
    alias: str,
    host: str,
    port: int,
    api_key_file: str | None = None,
) -> list[str]:
    """llama-server's command line for `config` (every flag set explicitly, none left to defaults)."""
    args = [
        "--model",
        model_path,
        "--alias",
        alias,
        "--host",
        host,
        "--port",
        str(port),
        "--ctx-size",
        str(config.total_context),
        "--parallel",
        str(config.parallel),
        "--kv-unified" if config.kv_unified else "--no-kv-unified",
        "--batch-size",
        str(config.batch),
        "--ubatch-size",
        str(config.ubatch),
        "--cache-type-k",
        config.cache_type_k,
        "--cache-type-v",
        config.cache_type_v,
        "--flash-attn",
        "on" if config.flash_attention else "off",
        "--cache-ram",
        str(config.prompt_cache_mib),
        "--metrics",
        "--no-webui",
    ]
    if not config.mmap:
        args.append("--no-mmap")
    if api_key_file:
        args += ["--api-key-file", api_key_file]
    return args


def llamaedge_args(config: ServingConfig, *, model_name: str, prompt_template: str, port: int) -> list[str]:
    """LlamaEdge llama-api-server's command line for `config`."""
    return [
        "--model-name",
        model_name,
        "--prompt-template",
        prompt_template,
        "--ctx-size",
        str(config.total_context),
        "--batch-size",
        str(config.batch),
        "--socket-addr",
        f"0.0.0.0:{port}",
    ]
