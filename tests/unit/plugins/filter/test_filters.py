# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters and the sha256 test plugin: thin adapters raising AnsibleFilterError."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.edgeslm.pi5.plugins.filter import model_fit, model_memory, quant_bpw
from ansible_collections.edgeslm.pi5.plugins.module_utils._memory import estimate_from_description
from ansible_collections.edgeslm.pi5.plugins.test import sha256 as sha256_test

DESC: dict[str, Any] = {
    "name": "llama-3.2-1b",
    "architecture": "llama",
    "quantization": "Q8_0",
    "parameter_count": 1_235_814_400,
    "block_count": 16,
    "embedding_length": 2048,
    "head_count": 32,
    "head_count_kv": 8,
    "vocab_size": 128256,
}


def test_filter_modules_register_their_names() -> None:
    assert set(model_memory.FilterModule().filters()) == {"model_memory"}
    assert set(model_fit.FilterModule().filters()) == {"model_fit"}
    assert set(quant_bpw.FilterModule().filters()) == {"quant_bpw"}
    assert set(sha256_test.TestModule().tests()) == {"sha256"}


def test_model_memory_equals_core() -> None:
    got = model_memory.model_memory(DESC, 4096, kv_cache_type="q8_0")
    assert got == estimate_from_description(DESC, context_length=4096, kv_cache_type="q8_0").as_dict()


def test_model_fit_returns_plain_dict() -> None:
    result = model_fit.model_fit(DESC, "pi5-4gb", 4096)
    assert result["fits"] is True
    assert result["target"]["name"] == "pi5-4gb"
    bad = model_fit.model_fit(DESC, "hailo-8l", 4096)
    assert bad["fits"] is False
    assert "vision networks only" in bad["problems"][0]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: model_memory.model_memory(DESC), "context_length is required"),
        (lambda: model_memory.model_memory({**DESC, "vocab_size": 0}, 512), "'vocab_size' must be >= 1"),
        (lambda: model_memory.model_memory(DESC, 512, kv_cache_type="fp8"), "kv_cache_type must be one of"),
        (lambda: model_fit.model_fit(DESC), "target is required"),
        (lambda: model_fit.model_fit(DESC, "pi5-8gb"), "context_length is required"),
        (lambda: model_fit.model_fit(DESC, "pi3", 512), "unknown target 'pi3'"),
        (lambda: quant_bpw.quant_bpw("Q0"), "unknown quantization 'Q0'"),
    ],
)
def test_errors_become_filter_errors(call: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        call()


@pytest.mark.parametrize(("name", "bpw"), [("Q4_K_M", 4.85), ("q8_0", 8.5), ("BF16", 16.0)])
def test_quant_bpw(name: str, bpw: float) -> None:
    assert quant_bpw.quant_bpw(name) == pytest.approx(bpw)


@pytest.mark.parametrize(
    ("value", "expected"), [("a" * 64, True), ("sha256:" + "F" * 64, True), ("a" * 63, False), (None, False)]
)
def test_sha256_test_plugin(value: Any, expected: bool) -> None:
    assert sha256_test.sha256(value) is expected
