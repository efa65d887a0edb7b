# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hardware targets and fit rules: every problem reported, with model, target and numbers."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _memory as M
from ansible_collections.edgeslm.pi5.plugins.module_utils import _targets as T

GIB = 1 << 30
MIB = 1 << 20

QWEN3B: dict[str, Any] = {
    "name": "qwen2.5-3b",
    "format": "gguf",
    "architecture": "qwen2",
    "quantization": "Q4_K_M",
    "parameter_count": 3_085_938_688,
    "block_count": 36,
    "embedding_length": 2048,
    "feed_forward_length": 11008,
    "head_count": 16,
    "head_count_kv": 2,
    "key_length": 128,
    "value_length": 128,
    "context_length": 32768,
    "vocab_size": 151936,
}
HEF: dict[str, Any] = {"name": "qwen2.5-1.5b-hef", "format": "hef", "parameter_count": 1_540_000_000}


def test_catalog_has_the_contract_names() -> None:
    assert set(T.TARGETS) == {"pi5-2gb", "pi5-4gb", "pi5-8gb", "pi5-16gb", "hailo-8l", "hailo-8", "hailo-10h"}
    assert T.TARGETS["pi5-4gb"].memory_bytes == 4 * GIB
    assert T.TARGETS["pi5-4gb"].available_bytes == 4 * GIB - T.DEFAULT_RESERVE
    assert T.TARGETS["hailo-10h"].memory_bytes == 8 * GIB


@pytest.mark.parametrize(
    ("target", "ctx", "fits"),
    [("pi5-2gb", 4096, False), ("pi5-4gb", 4096, True), ("pi5-4gb", 32768, False), ("pi5-8gb", 32768, True)],
)
def test_pi_fit_depends_on_ram_and_context(target: str, ctx: int, fits: bool) -> None:
    result = T.check_fit(QWEN3B, target, context_length=ctx)
    assert result.fits is fits
    assert result.needed == M.estimate_from_description(QWEN3B, context_length=ctx).total
    assert result.available == T.TARGETS[target].available_bytes
    assert bool(result.problems) is not fits


def test_misfit_message_names_model_target_and_numbers() -> None:
    result = T.check_fit(QWEN3B, "pi5-2gb", context_length=8192)
    (problem,) = result.problems
    assert problem.startswith("qwen2.5-3b Q4_K_M at ctx 8192 needs ")
    assert "GiB" in problem
    assert problem.endswith("pi5-2gb has 896 MiB free after a 1.1 GiB reserve")


def test_reserve_override_changes_the_verdict() -> None:
    tight = T.check_fit(QWEN3B, "pi5-4gb", context_length=24576)
    loose = T.check_fit(QWEN3B, "pi5-4gb", context_length=24576, reserve_bytes=256 * MIB)
    assert not tight.fits
    assert loose.fits
    assert loose.available == 4 * GIB - 256 * MIB


def test_gguf_never_runs_on_a_hailo_10h() -> None:
    result = T.check_fit(QWEN3B, "hailo-10h", context_length=2048)
    assert not result.fits
    assert result.problems == [
        "qwen2.5-3b: GGUF runs on the CPU only; hailo-10h serves LLMs only as Hailo-compiled HEF files "
        "(use a pi5-* target for this GGUF, or the model's HEF build for the NPU)"
    ]


@pytest.mark.parametrize("target", ["hailo-8", "hailo-8l"])
@pytest.mark.parametrize("model", [QWEN3B, HEF])
def test_hailo_8_and_8l_run_no_llms(target: str, model: dict[str, Any]) -> None:
    result = T.check_fit(model, target, context_length=2048)
    assert not result.fits
    assert "vision networks only, no LLMs" in result.problems[0]


def test_hef_runs_on_hailo_10h_only() -> None:
    assert T.check_fit(HEF, "hailo-10h", context_length=2048).fits
    cpu = T.check_fit(HEF, "pi5-16gb", context_length=2048)
    assert not cpu.fits
    assert "HEF files run only on a Hailo-10H" in cpu.problems[0]


def test_hef_reports_every_problem() -> None:
    huge = {**HEF, "weights_bytes": 9 * GIB, "context_length": 2048}
    result = T.check_fit(huge, "hailo-10h", context_length=4096)
    assert len(result.problems) == 2
    assert "compiled for ctx 2048; ctx 4096" in result.problems[0]
    assert "needs 9.0 GiB, hailo-10h has 8.0 GiB" in result.problems[1]


def test_context_beyond_training_is_a_warning_not_a_problem() -> None:
    small = {**QWEN3B, "context_length": 4096}
    result = T.check_fit(small, "pi5-16gb", context_length=8192)
    assert result.fits
    assert "exceeds the trained context 4096" in result.warnings[0]


def test_custom_target_from_mapping() -> None:
    board = {"name": "edge-01", "kind": "cpu", "memory_bytes": 6 * GIB, "reserve_bytes": GIB}
    result = T.check_fit(QWEN3B, board, context_length=4096)
    assert result.available == 5 * GIB
    assert result.target is not None and result.target.name == "edge-01"


def test_custom_target_based_on_catalog_entry() -> None:
    target = T.get_target({"base": "pi5-8gb", "name": "edge-02", "reserve_bytes": 512 * MIB})
    assert target.memory_bytes == 8 * GIB
    assert target.kind == "cpu"
    assert target.available_bytes == 8 * GIB - 512 * MIB


TARGET_ERRORS: list[tuple[str, Any, str]] = [
    ("unknown name", "pi4-8gb", "unknown target 'pi4-8gb'"),
    ("no name", {"kind": "cpu", "memory_bytes": 1}, "needs 'name'"),
    ("bad kind", {"name": "x", "kind": "gpu", "memory_bytes": 1}, "'kind' must be one of"),
    ("negative memory", {"name": "x", "memory_bytes": -1}, "'memory_bytes' must be a non-negative integer"),
    ("missing memory", {"name": "x"}, "'memory_bytes'"),
    ("bad max_context", {"name": "x", "memory_bytes": 1, "max_context": 0}, "'max_context'"),
    ("unknown base", {"base": "pi9"}, "unknown target 'pi9'"),
    ("not a target", 42, "unknown target 42"),
]


@pytest.mark.parametrize(("target", "message"), [c[1:] for c in TARGET_ERRORS], ids=[c[0] for c in TARGET_ERRORS])
def test_invalid_targets_are_refused(target: Any, message: str) -> None:
    with pytest.raises(T.TargetError, match=message):
        T.check_fit(QWEN3B, target, context_length=2048)


@pytest.mark.parametrize("reserve", [-1, "1G", True])
def test_invalid_reserve_is_refused(reserve: Any) -> None:
    with pytest.raises(T.TargetError, match="reserve_bytes"):
        T.check_fit(QWEN3B, "pi5-8gb", context_length=2048, reserve_bytes=reserve)


@pytest.mark.parametrize("ctx", [0, -5, None, "4096"])
def test_context_is_required_even_for_format_mismatches(ctx: Any) -> None:
    with pytest.raises(T.EstimateError, match="context_length"):
        T.check_fit(QWEN3B, "hailo-8", context_length=ctx)


def test_invalid_description_raises_value_error_naming_key() -> None:
    with pytest.raises(ValueError, match="'vocab_size'"):
        T.check_fit({**QWEN3B, "vocab_size": None}, "pi5-8gb", context_length=2048)


def test_as_dict_is_plain_data() -> None:
    data = T.check_fit(QWEN3B, "pi5-8gb", context_length=4096).as_dict()
    assert data["fits"] is True
    assert data["memory"]["total"] == data["needed"]
    assert data["target"]["name"] == "pi5-8gb"


@pytest.mark.parametrize(("value", "text"), [(GIB + GIB // 10, "1.1 GiB"), (300 * MIB, "300 MiB"), (0, "0 MiB")])
def test_format_bytes(value: int, text: str) -> None:
    assert T.format_bytes(value) == text
