# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The serving configuration of a model: every server setting that changes memory.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

One ServingConfig feeds both the memory estimate (_memory.estimate) and the server's command
line (llama_server_args, llamaedge_args), so the estimate and the running server describe the
same configuration. The site catalog's `serving:` keys are defined here, once (CATALOG_FIELDS);
the catalog's JSON schema is generated from that table.

Upstream facts are data with their source (LLAMA_SERVER_FLAGS, LLAMAEDGE_FLAGS,
LLAMAEDGE_FIXED): flag names and defaults of llama-server as vendored in llama-cpp-python 0.3.36
and of LlamaEdge's llama-api-server 0.28.1. docs/model-validation.md explains the settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only (_memory imports this module)
    from ansible_collections.edgeslm.pi5.plugins.module_utils._memory import ModelDescription

__all__ = [
    "CATALOG_FIELDS",
    "CATALOG_KEYS",
    "KV_CACHE_BLOCK_SIZES",
    "KV_CACHE_TYPES",
    "LLAMACPP_SOURCE",
    "LLAMAEDGE_FIXED",
    "LLAMAEDGE_FLAGS",
    "LLAMAEDGE_SOURCE",
    "LLAMA_SERVER_FLAGS",
    "RUNTIME_NAMES",
    "ServerFlag",
    "ServingConfig",
    "ServingError",
    "ServingField",
    "check_serving",
    "llama_server_args",
    "llamaedge_args",
    "serving_from_mapping",
]

LLAMACPP_SOURCE = "llama.cpp vendored in llama-cpp-python 0.3.36 (PyPI sdist), vendor/llama.cpp"
LLAMAEDGE_SOURCE = "LlamaEdge/LlamaEdge tag release/0.28.1 (commit c01fb4c9), llama-api-server/src/main.rs"

# Cache types llama-server accepts for -ctk/-ctv (common/arg.cpp, kv_cache_types) and their
# ggml block sizes (ggml/src/ggml.c, type_traits .blck_size): one head's width must be a multiple.
KV_CACHE_BLOCK_SIZES: dict[str, int] = {
    "f32": 1,
    "f16": 1,
    "bf16": 1,
    "q8_0": 32,
    "q4_0": 32,
    "q4_1": 32,
    "iq4_nl": 32,
    "q5_0": 32,
    "q5_1": 32,
}
KV_CACHE_TYPES: tuple[str, ...] = tuple(KV_CACHE_BLOCK_SIZES)
_UNQUANTIZED = ("f32", "f16", "bf16")

# Runtime spellings: the catalog's (llamacpp, llamaedge) and the estimate's (llama.cpp).
RUNTIME_NAMES: dict[str, str] = {"llamacpp": "llamacpp", "llama.cpp": "llamacpp", "llamaedge": "llamaedge"}


class ServingError(ValueError):
    """A serving setting that cannot work; the message starts with the field path and says the fix."""


@dataclass(frozen=True)
class ServingField:
    """One key of the catalog's `serving:` block (the JSON schema is generated from these)."""

    attribute: str
    kind: str  # "integer" | "boolean" | "string"
    doc: str
    default: Any
    enum: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None


# The catalog's `serving:` keys: the one place they are defined. Defaults are what the
# project's template runs, never "whatever upstream defaults to" (see LLAMA_SERVER_FLAGS for
# upstream's own defaults: --cache-ram 8192 MiB, 32 context checkpoints, batch 2048, ...).
CATALOG_FIELDS: dict[str, ServingField] = {
    "contextPerSlot": ServingField(
        "context_per_slot",
        "integer",
        "tokens one request can use (the context of one slot; --ctx-size is this times parallel)",
        4096,
        minimum=128,
        maximum=(1 << 31) - 1,  # llama.cpp's n_ctx is an int32 (common/common.h)
    ),
    "parallel": ServingField(
        "parallel", "integer", "server slots answering at once (--parallel)", 1, minimum=1, maximum=256
    ),
    "kvUnified": ServingField(
        "kv_unified",
        "boolean",
        "one KV stream shared by all slots (true) or one stream of contextPerSlot cells per slot (false)",
        False,
    ),
    "batch": ServingField(
        "batch", "integer", "logical batch: prompt tokens taken per decode call (-b)", 512, minimum=1
    ),
    "ubatch": ServingField(
        "ubatch",
        "integer",
        "micro-batch: tokens per graph evaluation, at most the batch (-ub); the compute buffer grows with it",
        512,
        minimum=1,
    ),
    "cacheTypeK": ServingField(
        "cache_type_k",
        "string",
        "K cache element type (-ctk); quantized needs head widths of its block",
        "f16",
        KV_CACHE_TYPES,
    ),
    "cacheTypeV": ServingField(
        "cache_type_v",
        "string",
        "V cache element type (-ctv); quantized needs flashAttention: true",
        "f16",
        KV_CACHE_TYPES,
    ),
    "flashAttention": ServingField(
        "flash_attention", "boolean", "flash attention (-fa on|off); off keeps attention scores per layer", False
    ),
    "promptCacheMiB": ServingField(
        "prompt_cache_mib",
        "integer",
        "host-RAM prompt cache bound in MiB (--cache-ram; 0 disables it; upstream's default is 8192)",
        0,
        minimum=0,
        maximum=1 << 20,
    ),
    "mmap": ServingField(
        "mmap", "boolean", "map the model file (--load-mode mmap) instead of reading it into RAM (none)", True
    ),
    "ctxCheckpoints": ServingField(
        "ctx_checkpoints",
        "integer",
        "context checkpoints kept per slot for sliding-window models (--ctx-checkpoints; upstream's default is 32)",
        2,
        minimum=0,
        maximum=1024,
    ),
    "swaFull": ServingField(
        "swa_full",
        "boolean",
        "full-size cache on sliding-window layers (--swa-full); false keeps only the window",
        False,
    ),
    "repack": ServingField(
        "repack",
        "boolean",
        "let the CPU backend repack weights into its interleaved layout (--repack | --no-repack)",
        True,
    ),
}
CATALOG_KEYS: dict[str, str] = {key: spec.attribute for key, spec in CATALOG_FIELDS.items()}
_KEY_OF = {spec.attribute: key for key, spec in CATALOG_FIELDS.items()}


@dataclass(frozen=True)
class ServingConfig:
    """How a server runs a model; the defaults are what the project's template runs."""

    context_per_slot: int = CATALOG_FIELDS["contextPerSlot"].default
    parallel: int = CATALOG_FIELDS["parallel"].default
    kv_unified: bool = CATALOG_FIELDS["kvUnified"].default
    batch: int = CATALOG_FIELDS["batch"].default
    ubatch: int = CATALOG_FIELDS["ubatch"].default
    cache_type_k: str = CATALOG_FIELDS["cacheTypeK"].default
    cache_type_v: str = CATALOG_FIELDS["cacheTypeV"].default
    flash_attention: bool = CATALOG_FIELDS["flashAttention"].default
    prompt_cache_mib: int = CATALOG_FIELDS["promptCacheMiB"].default
    mmap: bool = CATALOG_FIELDS["mmap"].default
    ctx_checkpoints: int = CATALOG_FIELDS["ctxCheckpoints"].default
    swa_full: bool = CATALOG_FIELDS["swaFull"].default
    repack: bool = CATALOG_FIELDS["repack"].default

    def __post_init__(self) -> None:
        for key, spec in CATALOG_FIELDS.items():
            _checked(spec, getattr(self, spec.attribute), key)

    @property
    def total_context(self) -> int:
        """llama-server's --ctx-size: it divides the context among the --parallel slots."""
        return self.context_per_slot * self.parallel

    @classmethod
    def from_catalog(cls, mapping: Mapping[str, Any], where: str = "serving") -> ServingConfig:
        """Same as serving_from_mapping."""
        return serving_from_mapping(mapping, where)

    def validate(self, model: ModelDescription, runtime: str = "llamacpp") -> None:
        """Same as check_serving."""
        check_serving(self, model, runtime=runtime)

    def as_catalog(self) -> dict[str, Any]:
        """The catalog's camelCase mapping of this configuration (every key)."""
        return {key: getattr(self, spec.attribute) for key, spec in CATALOG_FIELDS.items()}


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


def serving_from_mapping(mapping: Mapping[str, Any], where: str = "serving") -> ServingConfig:
    """A ServingConfig from the catalog's camelCase keys; ServingError names f"{where}.<key>" and the fix.

    Refuses what is impossible whatever the model (a micro-batch above the batch, a quantized V
    cache without flash attention); check_serving adds what depends on the model and runtime.
    """
    if not isinstance(mapping, Mapping):
        raise ServingError(f"{where}: must be a mapping of {', '.join(CATALOG_FIELDS)}")
    values: dict[str, Any] = {}
    for key, value in mapping.items():
        spec = CATALOG_FIELDS.get(str(key))
        if spec is None:
            raise ServingError(f"{where}.{key}: unknown serving setting; known: {', '.join(CATALOG_FIELDS)}")
        values[spec.attribute] = _checked(spec, value, f"{where}.{key}")
    config = ServingConfig(**values)
    _check_combinations(config, where)
    return config


def _check_combinations(config: ServingConfig, where: str) -> None:
    if config.ubatch > config.batch:
        raise ServingError(
            f"{where}.ubatch: {config.ubatch} is above the batch {config.batch}; llama.cpp would silently lower "
            f"it to {config.batch}, so set ubatch <= batch"
        )
    if config.cache_type_v not in _UNQUANTIZED and not config.flash_attention:
        raise ServingError(
            f"{where}.cacheTypeV: a quantized V cache ({config.cache_type_v}) needs flashAttention: true "
            "(llama.cpp refuses it without: src/llama-context.cpp, llama_init_from_model); "
            "set flashAttention: true or cacheTypeV: f16"
        )


# --- upstream facts: llama-server -----------------------------------------------------------


@dataclass(frozen=True)
class ServerFlag:
    """One command-line flag of a server, as its source declares it."""

    names: tuple[str, ...]  # every spelling the source accepts, in its order
    value: str  # what it takes ("" for a switch)
    upstream_default: str
    source: str

    @property
    def emit(self) -> str:
        """The spelling we write: the first long one."""
        return next(name for name in self.names if name.startswith("--"))


_ARG = "common/arg.cpp"
_PARAMS = "common/common.h (struct common_params)"

# Every flag llama_server_args emits (names, value, upstream default and where each is declared).
LLAMA_SERVER_FLAGS: dict[str, ServerFlag] = {
    "model": ServerFlag(("-m", "--model"), "FNAME", "", _ARG),
    "alias": ServerFlag(("-a", "--alias"), "STRING", "the model file name", _ARG),
    "host": ServerFlag(("--host",), "HOST", "127.0.0.1", f"{_ARG}; common/common.h hostname"),
    "port": ServerFlag(("--port",), "PORT", "8080", f"{_ARG}; common/common.h port"),
    "ctx_size": ServerFlag(
        ("-c", "--ctx-size"),
        "N",
        "0 (the model's trained context); divided among --parallel slots (src/llama-context.cpp n_ctx_seq)",
        f"{_ARG}; {_PARAMS} n_ctx",
    ),
    "parallel": ServerFlag(
        ("-np", "--parallel"),
        "N",
        "-1 = auto: 4 slots with a unified KV cache (tools/server/server.cpp)",
        f"{_ARG} (LLAMA_EXAMPLE_SERVER sets n_parallel = -1); tools/server/server.cpp",
    ),
    "kv_unified": ServerFlag(
        ("-kvu", "--kv-unified"), "", "on only when --parallel is auto", f"{_ARG}; {_PARAMS} kv_unified"
    ),
    "no_kv_unified": ServerFlag(("-no-kvu", "--no-kv-unified"), "", "", _ARG),
    "batch": ServerFlag(("-b", "--batch-size"), "N", "2048", f"{_ARG}; {_PARAMS} n_batch"),
    "ubatch": ServerFlag(
        ("-ub", "--ubatch-size"),
        "N",
        "512; llama.cpp lowers it to the batch (src/llama-context.cpp)",
        f"{_ARG}; {_PARAMS} n_ubatch",
    ),
    "cache_type_k": ServerFlag(("-ctk", "--cache-type-k"), "TYPE", "f16", f"{_ARG} kv_cache_types; {_PARAMS}"),
    "cache_type_v": ServerFlag(("-ctv", "--cache-type-v"), "TYPE", "f16", f"{_ARG} kv_cache_types; {_PARAMS}"),
    "flash_attention": ServerFlag(("-fa", "--flash-attn"), "on|off|auto", "auto", f"{_ARG}; {_PARAMS} flash_attn_type"),
    "cache_ram": ServerFlag(
        ("-cram", "--cache-ram"), "N (MiB; -1 no limit, 0 disables)", "8192", f"{_ARG}; common/common.h cache_ram_mib"
    ),
    "ctx_checkpoints": ServerFlag(
        ("-ctxcp", "--ctx-checkpoints", "--swa-checkpoints"),
        "N",
        "32 per slot",
        f"{_ARG}; common/common.h n_ctx_checkpoints; tools/server/server-context.cpp create_checkpoint",
    ),
    "swa_full": ServerFlag(("--swa-full",), "", "false", f"{_ARG}; {_PARAMS} swa_full"),
    "repack": ServerFlag(("--repack",), "", "enabled", f"{_ARG}; {_PARAMS} no_extra_bufts"),
    "no_repack": ServerFlag(("-nr", "--no-repack"), "", "", _ARG),
    "load_mode": ServerFlag(
        ("-lm", "--load-mode"),
        "auto|none|mmap|mlock|mmap+mlock|dio",
        "auto (mmap); there is no --no-mmap at this version",
        f"{_ARG}; src/llama-model-loader.cpp use_mmap",
    ),
    "fit": ServerFlag(
        ("-fit", "--fit"),
        "on|off",
        "on: adjusts unset settings to the free device memory",
        f"{_ARG}; {_PARAMS} fit_params",
    ),
    "metrics": ServerFlag(("--metrics",), "", "off", f"{_ARG}; common/common.h endpoint_metrics"),
    "no_webui": ServerFlag(("--no-ui", "--no-webui"), "", "web UI on", _ARG),
    "api_key_file": ServerFlag(
        ("--api-key-file",),
        "FNAME",
        "none: every endpoint but /health and /v1/health open (tools/server/server-http.cpp, public endpoints)",
        f"{_ARG}; common/common.h api_keys",
    ),
    "cors_origins": ServerFlag(
        ("--cors-origins",),
        "ORIGINS (comma-separated)",
        "* (every origin; the server warns when there is no API key either: tools/server/server.cpp)",
        f"{_ARG}; common/common.h cors_origins; tools/server/server-http.cpp pre-routing handler",
    ),
}


def _flag(name: str) -> str:
    return LLAMA_SERVER_FLAGS[name].emit


def llama_server_args(
    config: ServingConfig,
    *,
    model_path: str,
    alias: str,
    host: str,
    port: int,
    api_key_file: str | None = None,
    cors_origins: str | None = None,
    metrics: bool = True,
    webui: bool = False,
) -> list[str]:
    """llama-server's command line for `config`: every memory setting explicit, none left to upstream."""
    args = [
        _flag("model"), model_path,
        _flag("alias"), alias,
        _flag("host"), host,
        _flag("port"), str(port),
        _flag("ctx_size"), str(config.total_context),
        _flag("parallel"), str(config.parallel),
        _flag("kv_unified") if config.kv_unified else _flag("no_kv_unified"),
        _flag("batch"), str(config.batch),
        _flag("ubatch"), str(config.ubatch),
        _flag("cache_type_k"), config.cache_type_k,
        _flag("cache_type_v"), config.cache_type_v,
        _flag("flash_attention"), "on" if config.flash_attention else "off",
        _flag("cache_ram"), str(config.prompt_cache_mib),
        _flag("ctx_checkpoints"), str(config.ctx_checkpoints),
        _flag("load_mode"), "mmap" if config.mmap else "none",
        _flag("repack") if config.repack else _flag("no_repack"),
        _flag("fit"), "off",
    ]  # fmt: skip
    if config.swa_full:
        args.append(_flag("swa_full"))
    if metrics:
        args.append(_flag("metrics"))
    if not webui:
        args.append(_flag("no_webui"))
    if api_key_file:
        args += [_flag("api_key_file"), api_key_file]
    if cors_origins:
        args += [_flag("cors_origins"), cors_origins]
    return args


# --- upstream facts: LlamaEdge ---------------------------------------------------------------

_EDGE = "llama-api-server/src/main.rs (struct ServerArgs)"

LLAMAEDGE_FLAGS: dict[str, ServerFlag] = {
    "model_name": ServerFlag(("-m", "--model-name"), "NAME[,NAME]", "default", _EDGE),
    "prompt_template": ServerFlag(("-p", "--prompt-template"), "TEMPLATE[,TEMPLATE]", "", _EDGE),
    "ctx_size": ServerFlag(("-c", "--ctx-size"), "N[,N]", "4096,384", _EDGE),
    "batch": ServerFlag(("-b", "--batch-size"), "N[,N]", "512,512", _EDGE),
    "ubatch": ServerFlag(("-u", "--ubatch-size"), "N[,N]", "512,512", _EDGE),
    "no_mmap": ServerFlag(("--no-mmap",), "true|false", "unset (mmap)", _EDGE),
    "port": ServerFlag(("--port",), "PORT", "8080 on 0.0.0.0", f"{_EDGE}; main() binds 0.0.0.0:<port>"),
}

# What LlamaEdge 0.28.1 on WasmEdge 0.14.1's WASI-NN GGML plugin does for the settings it cannot
# express: the value it always runs with, or None where the setting has no counterpart.
# Sources: LLAMAEDGE_SOURCE (no such flag in ServerArgs, nothing in GgmlMetadata) and
# WasmEdge/WasmEdge tag 0.14.1, plugins/wasi_nn/ggml.cpp (llama_context_default_params of the
# llama.cpp it builds: plugins/wasi_nn/CMakeLists.txt GIT_TAG b3651: one sequence, f16 K and V,
# flash attention off, no sliding-window cache and no CPU repacking at that llama.cpp).
LLAMAEDGE_FIXED: dict[str, Any] = {
    "parallel": 1,
    "kv_unified": False,
    "cache_type_k": "f16",
    "cache_type_v": "f16",
    "flash_attention": False,
    "prompt_cache_mib": 0,
    "swa_full": None,  # caches every layer in full: the estimate counts it so
    "ctx_checkpoints": None,  # no checkpoints: the estimate counts none
    "repack": None,  # no online repacking in llama.cpp b3651: the estimate counts none
}


def llamaedge_args(
    config: ServingConfig,
    *,
    model_name: str,
    prompt_template: str,
    port: int,
) -> list[str]:
    """LlamaEdge llama-api-server's command line for `config` (check_serving(runtime="llamaedge") first)."""
    refused = _llamaedge_refusals(config)
    if refused:
        raise ServingError(refused[0])
    flags = LLAMAEDGE_FLAGS
    args = [
        flags["model_name"].emit, model_name,
        flags["prompt_template"].emit, prompt_template,
        flags["ctx_size"].emit, str(config.total_context),
        flags["batch"].emit, str(config.batch),
        flags["ubatch"].emit, str(config.ubatch),
        flags["port"].emit, str(port),
    ]  # fmt: skip
    if not config.mmap:
        args += [flags["no_mmap"].emit, "true"]
    return args


def _llamaedge_refusals(config: ServingConfig, where: str = "serving") -> list[str]:
    problems = []
    for attribute, fixed in LLAMAEDGE_FIXED.items():
        if fixed is None:
            continue
        value = getattr(config, attribute)
        if value != fixed:
            shown = str(fixed).lower() if isinstance(fixed, bool) else fixed
            problems.append(
                f"{where}.{_KEY_OF[attribute]}: LlamaEdge (llama-api-server 0.28.1) cannot set it and always runs "
                f"with {shown}; set {_KEY_OF[attribute]}: {shown} or use runtime llamacpp"
            )
    return problems


# --- checks that depend on the model ---------------------------------------------------------


def check_serving(config: ServingConfig, model: ModelDescription, *, runtime: str = "llamacpp") -> None:
    """Raise ServingError for a combination llama.cpp (or LlamaEdge) refuses for this model.

    * a micro-batch above the batch, a quantized V cache without flash attention;
    * a quantized K or V cache whose block does not divide ONE HEAD's width: llama.cpp checks
      n_embd_head_k/n_embd_head_v per layer (src/llama-context.cpp, llama_init_from_model),
      not the row of all heads, so head width 80 refuses q8_0 even with 8 KV heads (640 wide);
    * for runtime llamaedge, a setting LlamaEdge cannot express (LLAMAEDGE_FIXED).
    """
    kind = RUNTIME_NAMES.get(runtime)
    if kind is None:
        raise ServingError(f"runtime: must be one of {', '.join(RUNTIME_NAMES)}, got {runtime!r}")
    _check_combinations(config, "serving")
    for key, cache_type, width in (
        ("cacheTypeK", config.cache_type_k, model.key_length),
        ("cacheTypeV", config.cache_type_v, model.value_length),
    ):
        block = KV_CACHE_BLOCK_SIZES[cache_type]
        if width % block:
            raise ServingError(
                f"serving.{key}: one attention head of {model.name} is {width} values wide, not a multiple of "
                f"{cache_type}'s block of {block}: llama.cpp refuses this cache type for the model; use f16 "
                "(or a quantized type only for models whose head width is a multiple of 32)"
            )
    if kind == "llamaedge":
        refused = _llamaedge_refusals(config)
        if refused:
            raise ServingError(refused[0])
