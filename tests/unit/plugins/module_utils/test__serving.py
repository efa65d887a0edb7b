# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The serving configuration: catalog keys, refusals naming the key, and the servers' command lines."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _serving
from ansible_collections.edgeslm.pi5.plugins.module_utils._memory import ModelDescription, parse_description
from ansible_collections.edgeslm.pi5.plugins.module_utils._serving import (
    CATALOG_FIELDS,
    CATALOG_KEYS,
    LLAMA_SERVER_FLAGS,
    LLAMAEDGE_FIXED,
    LLAMAEDGE_FLAGS,
    ServingConfig,
    ServingError,
    check_serving,
    llama_server_args,
    llamaedge_args,
    serving_from_mapping,
)


def _model(**changes: Any) -> ModelDescription:
    desc: dict[str, Any] = {
        "name": "m",
        "architecture": "llama",
        "quantization": "Q8_0",
        "weights_bytes": 1 << 20,
        "block_count": 2,
        "embedding_length": 256,
        "head_count": 8,
        "head_count_kv": 2,
        "vocab_size": 512,
    }
    desc.update(changes)
    return parse_description(desc)


def test_every_field_is_one_catalog_key_and_back() -> None:
    names = {f.name for f in dataclasses.fields(ServingConfig)}
    assert names == set(CATALOG_KEYS.values())
    assert len(CATALOG_KEYS) == len(set(CATALOG_KEYS.values()))
    for key, spec in CATALOG_FIELDS.items():
        assert getattr(ServingConfig(), spec.attribute) == spec.default, key
        assert spec.kind in ("integer", "boolean", "string")
        assert spec.doc and "\n" not in spec.doc
        assert (spec.kind == "string") == bool(spec.enum)


def test_template_defaults_bound_what_upstream_leaves_open() -> None:
    config = ServingConfig()
    assert config.prompt_cache_mib == 0  # upstream: 8192 MiB
    assert config.ctx_checkpoints < 32  # upstream: 32 per slot
    assert config.ubatch <= config.batch


def test_total_context_is_what_ctx_size_takes() -> None:
    assert ServingConfig(context_per_slot=2048, parallel=3).total_context == 6144


def test_round_trip_through_the_catalog_keys() -> None:
    config = ServingConfig(context_per_slot=1024, parallel=2, ubatch=256, flash_attention=True, cache_type_v="q8_0")
    assert serving_from_mapping(config.as_catalog()) == config
    assert ServingConfig.from_catalog({}) == ServingConfig()


BAD: list[tuple[dict[str, Any], str]] = [
    ({"ubatch": 1024}, "spec.models[x].serving.ubatch: 1024 is above the batch 512"),
    (
        {"cacheTypeV": "q8_0"},
        "spec.models[x].serving.cacheTypeV: a quantized V cache (q8_0) needs flashAttention: true",
    ),
    ({"cacheTypeK": "q3_k"}, "spec.models[x].serving.cacheTypeK: must be one of f32, f16"),
    ({"parallel": 0}, "spec.models[x].serving.parallel: must be >= 1"),
    ({"parallel": True}, "spec.models[x].serving.parallel: must be an integer"),
    ({"mmap": "yes"}, "spec.models[x].serving.mmap: must be true or false"),
    ({"promptCacheMiB": -1}, "spec.models[x].serving.promptCacheMiB: must be >= 0"),
    ({"ctxSize": 4096}, "spec.models[x].serving.ctxSize: unknown serving setting; known: contextPerSlot"),
]


@pytest.mark.parametrize(("mapping", "message"), BAD)
def test_refusals_name_the_key_and_the_fix(mapping: dict[str, Any], message: str) -> None:
    with pytest.raises(ServingError) as info:
        serving_from_mapping(mapping, "spec.models[x].serving")
    assert str(info.value).startswith(message)


def test_the_dataclass_refuses_bad_values_too() -> None:
    with pytest.raises(ServingError, match="contextPerSlot: must be >= 128"):
        ServingConfig(context_per_slot=16)


# Head widths as llama.cpp checks them: n_embd_head_k % blck_size per layer
# (src/llama-context.cpp, llama_init_from_model), not the row of all KV heads.
HEAD_CASES: list[tuple[int, int, str, str, bool]] = [
    (80, 8, "q8_0", "f16", False),  # phi-2 / stablelm heads: 8 x 80 = 640 is a multiple of 32, one head is not
    (80, 8, "f16", "q4_0", False),
    (96, 32, "q4_0", "q4_0", True),  # Phi-3-mini
    (64, 8, "q8_0", "q8_0", True),
    (80, 8, "f16", "f16", True),
    (256, 1, "iq4_nl", "q5_1", True),  # Gemma-3-1B
]


@pytest.mark.parametrize(("head", "heads_kv", "k", "v", "ok"), HEAD_CASES)
def test_block_size_is_checked_per_head(head: int, heads_kv: int, k: str, v: str, ok: bool) -> None:
    model = _model(head_count=heads_kv * 2, head_count_kv=heads_kv, key_length=head, value_length=head)
    config = ServingConfig(cache_type_k=k, cache_type_v=v, flash_attention=True)
    if ok:
        check_serving(config, model)
        return
    with pytest.raises(ServingError, match=rf"one attention head of m is {head} values wide"):
        check_serving(config, model)


def test_check_serving_refuses_a_micro_batch_above_the_batch() -> None:
    config = dataclasses.replace(ServingConfig(), batch=256)  # built without the catalog's check
    with pytest.raises(ServingError, match=r"serving\.ubatch: 512 is above the batch 256"):
        check_serving(config, _model())


def test_llama_server_args_are_explicit_and_known() -> None:
    config = ServingConfig(context_per_slot=2048, parallel=2, ubatch=256, flash_attention=True, cache_type_k="q8_0")
    args = llama_server_args(config, model_path="/m/x.gguf", alias="x", host="127.0.0.1", port=8080)
    known = {name for flag in LLAMA_SERVER_FLAGS.values() for name in flag.names}
    assert [a for a in args if a.startswith("-")] and all(a in known for a in args if a.startswith("-"))
    pairs = dict(itertools.pairwise(args))
    assert pairs["--ctx-size"] == "4096"
    assert pairs["--parallel"] == "2"
    assert pairs["--ubatch-size"] == "256"
    assert pairs["--cache-type-k"] == "q8_0"
    assert pairs["--flash-attn"] == "on"
    assert pairs["--cache-ram"] == "0"
    assert pairs["--ctx-checkpoints"] == "2"
    assert pairs["--load-mode"] == "mmap"
    assert pairs["--fit"] == "off"
    assert "--no-kv-unified" in args and "--repack" in args and "--metrics" in args
    assert "--no-mmap" not in args  # not a flag of llama-server at 0.3.36 (--load-mode is)


def test_llama_server_args_follow_every_setting() -> None:
    config = ServingConfig(kv_unified=True, mmap=False, swa_full=True, repack=False)
    args = llama_server_args(config, model_path="m", alias="a", host="0.0.0.0", port=1, api_key_file="/k")
    assert "--kv-unified" in args and "--swa-full" in args and "--no-repack" in args
    assert args[args.index("--load-mode") + 1] == "none"
    assert args[-2:] == ["--api-key-file", "/k"]


def test_llamaedge_args() -> None:
    config = ServingConfig(context_per_slot=2048, batch=256, ubatch=128, mmap=False)
    args = llamaedge_args(config, model_name="q", prompt_template="chatml", port=8080)
    known = {name for flag in LLAMAEDGE_FLAGS.values() for name in flag.names}
    assert all(a in known for a in args if a.startswith("-"))
    assert args == [
        "--model-name", "q",
        "--prompt-template", "chatml",
        "--ctx-size", "2048",
        "--batch-size", "256",
        "--ubatch-size", "128",
        "--port", "8080",
        "--no-mmap", "true",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"parallel": 2}, "parallel"),
        ({"kv_unified": True}, "kvUnified"),
        ({"flash_attention": True}, "flashAttention"),
        ({"flash_attention": True, "cache_type_v": "q8_0"}, "cacheTypeV"),
        ({"cache_type_k": "q8_0"}, "cacheTypeK"),
        ({"prompt_cache_mib": 64}, "promptCacheMiB"),
    ],
)
def test_llamaedge_refuses_what_it_cannot_express(change: dict[str, Any], key: str) -> None:
    config = ServingConfig(**change)
    with pytest.raises(ServingError, match=rf"^serving\.{key}: LlamaEdge .* cannot set it"):
        check_serving(config, _model(), runtime="llamaedge")
    with pytest.raises(ServingError):
        llamaedge_args(config, model_name="q", prompt_template="chatml", port=8080)
    check_serving(config, _model(), runtime="llamacpp")


def test_llamaedge_fixed_values_are_its_defaults() -> None:
    defaults = ServingConfig()
    for attribute, value in LLAMAEDGE_FIXED.items():
        if value is not None:
            assert getattr(defaults, attribute) == value, attribute
    check_serving(defaults, _model(), runtime="llamaedge")


def test_unknown_runtime() -> None:
    with pytest.raises(ServingError, match="runtime: must be one of"):
        check_serving(ServingConfig(), _model(), runtime="vllm")


def test_module_exports() -> None:
    assert set(_serving.__all__) <= set(dir(_serving))
