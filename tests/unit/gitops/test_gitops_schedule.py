# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""The scheduling simulation's pieces: kube-scheduler's filter rules and Argo Rollouts' arithmetic."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.edgeslm.pi5.scripts.gitops_validate import schedule as S

TAINT = {"key": "edgeslm.io/page-size", "value": "16k", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        ({"key": "edgeslm.io/page-size", "operator": "Equal", "value": "16k", "effect": "NoSchedule"}, True),
        ({"key": "edgeslm.io/page-size", "value": "16k"}, True),  # Equal by default, any effect
        ({"key": "edgeslm.io/page-size", "operator": "Exists"}, True),
        ({"key": "edgeslm.io/page-size", "value": "4k"}, False),
        ({"key": "edgeslm.io/page-size", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"operator": "Exists"}, True),  # empty key with Exists tolerates everything
        ({"operator": "Exists", "effect": "NoSchedule"}, True),
        ({"key": "CriticalAddonsOnly", "operator": "Exists"}, False),
    ],
)
def test_tolerations(toleration: dict[str, Any], expected: bool) -> None:
    assert S.tolerates(toleration, TAINT) is expected


def test_requests_follow_the_scheduler() -> None:
    spec = {
        "initContainers": [
            {"name": "big-init", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}},
            {
                "name": "sidecar",
                "restartPolicy": "Always",
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
            },
        ],
        "containers": [
            {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}},
            # limits only: the API server defaults the request to the limit
            {"name": "b", "resources": {"limits": {"cpu": "250m", "memory": "128Mi", "squat.ai/hailo": "1"}}},
        ],
    }
    requests = S.pod_requests(spec, {"memory": "32Mi"})
    assert requests["cpu"] == 2000  # the init container's peak exceeds the app containers + sidecar
    assert requests["memory"] == (1024 + 32) * (1 << 20)
    assert requests["squat.ai/hailo"] == 1


def _rollout(steps: list[dict[str, Any]], dynamic: bool = False, routed: bool = True) -> dict[str, Any]:
    canary: dict[str, Any] = {"steps": steps}
    if routed:
        canary["trafficRouting"] = {"traefik": {"weightedTraefikServiceName": "x"}}
    if dynamic:
        canary["dynamicStableScale"] = True
    return {"spec": {"strategy": {"canary": canary}}}


@pytest.mark.parametrize(
    ("steps", "dynamic", "replicas", "peak"),
    [
        # stable stays at full scale; the canary reaches full scale before promotion
        ([{"setWeight": 10}, {"setWeight": 50}], False, 3, 6),
        # dynamic stable scale: stable follows the traffic it still has
        ([{"setWeight": 10}, {"setWeight": 50}], True, 3, 5),
        ([{"setWeight": 10}, {"setWeight": 50}], True, 2, 3),
        ([{"setCanaryScale": {"replicas": 1}}, {"setWeight": 50}], False, 4, 8),
        ([], True, 1, 2),
    ],
)
def test_canary_peak(steps: list[dict[str, Any]], dynamic: bool, replicas: int, peak: int) -> None:
    assert S.canary_peak(_rollout(steps, dynamic), replicas) == peak


def test_basic_canary_surges_by_max_surge() -> None:
    assert S.canary_peak(_rollout([{"setWeight": 20}], routed=False), 4) == 5
    assert S.canary_peak(_rollout([], routed=False), 0) == 0
