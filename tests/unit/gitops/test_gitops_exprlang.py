# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Argo Rollouts' condition language (expr) subset and its measurement phases."""

from __future__ import annotations

import math
from typing import Any

import pytest

from ansible_collections.edgeslm.pi5.scripts.gitops_validate import canary, exprlang


@pytest.mark.parametrize(
    ("source", "result", "expected"),
    [
        ("len(result) == 0", [], True),
        ("result[0] >= 2", [2.5], True),
        ("len(result) > 0 && result[0] <= 0.05", [], False),  # short-circuit: no index error
        ("len(result) > 0 and not isNaN(result[0])", [math.nan], False),
        ("result[0] * 2 + 1 == 5", [2.0], True),
        ("-result[0] < 0 || false", [1], True),
        ("asInt(result[0]) == 3", [3.7], True),
        ("isInf(result[0] / 0)", [1.0], True),
    ],
)
def test_evaluate(source: str, result: Any, expected: bool) -> None:
    assert exprlang.evaluate(source, {"result": result}) is expected


def test_index_out_of_range_is_a_run_time_error() -> None:
    with pytest.raises(exprlang.ExprError, match="index out of range"):
        exprlang.evaluate("result[0] <= 0.05", {"result": []})


@pytest.mark.parametrize("source", ["all(result, {# > 1})", "result matches 'x'", "result[0] <=", "a ? b : c"])
def test_outside_the_subset_is_refused(source: str) -> None:
    with pytest.raises((exprlang.ExprUnsupported, exprlang.ExprError)):
        exprlang.evaluate(source, {"result": [1.0], "a": True, "b": 1, "c": 2})


@pytest.mark.parametrize(
    ("metric", "result", "phase"),
    [
        ({"successCondition": "len(result) == 0 || result[0] <= 0.05"}, [], "Successful"),
        ({"successCondition": "result[0] <= 0.05"}, [], "Error"),
        ({"successCondition": "len(result) > 0 && result[0] <= 0.05"}, [], "Failed"),
        (
            {
                "successCondition": "len(result) > 0 && result[0] < 1",
                "failureCondition": "len(result) > 0 && result[0] >= 1",
            },
            [],
            "Inconclusive",
        ),
        ({"failureCondition": "result[0] > 1"}, [0.5], "Successful"),
        ({}, [], "Successful"),
        ({"successCondition": "result[0] >= {{args.min}}"}, [3.0], "Successful"),
    ],
)
def test_analysis_phase_follows_argo_rollouts(metric: dict[str, str], result: Any, phase: str) -> None:
    assert canary.analysis_phase(metric, result, {"min": "2"}) == phase


@pytest.mark.parametrize(
    ("query", "names"),
    [
        (
            'sum(rate(traefik_service_requests_total{service=~"{{args.s}}.*",code=~"5.."}[2m])) / '
            'sum(rate(traefik_service_requests_total{service=~"{{args.s}}.*"}[2m]))',
            {"traefik_service_requests_total"},
        ),
        (
            'histogram_quantile(0.95, sum by (le) (rate(traefik_service_request_duration_seconds_bucket{a="b"}[2m])))',
            {"traefik_service_request_duration_seconds_bucket"},
        ),
        ('sum(llamacpp:requests_deferred{app_kubernetes_io_name="x"}) or vector(0)', {"llamacpp:requests_deferred"}),
        ("max by (instance) (rpi_throttled_now) > 0", {"rpi_throttled_now"}),
    ],
)
def test_query_metrics(query: str, names: set[str]) -> None:
    assert canary.query_metrics(query) == names
