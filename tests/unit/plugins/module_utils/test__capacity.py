# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Node capacity: the kubelet's reservations, defined once, and what is left for pods."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.edgeslm.pi5.plugins.module_utils import _capacity as C
from ansible_collections.edgeslm.pi5.plugins.module_utils import _catalog
from ansible_collections.edgeslm.pi5.plugins.module_utils import _targets as T
from ansible_collections.edgeslm.pi5.tests.unit.checkout import REPO

MIB = 1 << 20
GIB = 1 << 30


def _parse(arg: str) -> tuple[str, dict[str, str]]:
    name, _sep, value = arg.partition("=")
    pairs = {}
    for part in value.split(","):
        key, _sep, item = part.partition("=")
        pairs[key] = item
    return name, pairs


@pytest.mark.parametrize("role", C.ROLES)
def test_kubelet_args_reserve_what_allocatable_assumes(role: str) -> None:
    args = dict(_parse(a) for a in C.kubelet_args(role))
    assert set(args) == {"system-reserved", "kube-reserved", "eviction-hard"}
    reserved_mib = int(args["system-reserved"]["memory"].removesuffix("Mi")) + int(
        args["kube-reserved"]["memory"].removesuffix("Mi")
    )
    eviction = C.kubelet_args(role)[2]
    assert "memory.available<128Mi" in eviction
    # k3s's own disk thresholds stay: --eviction-hard replaces the whole map.
    assert "nodefs.available<5%" in eviction and "imagefs.available<5%" in eviction
    capacity = C.capacity(8 * GIB)
    free = C.allocatable(8 * GIB, role)
    assert capacity.memory_bytes - free.memory_bytes == (reserved_mib + 128) * MIB
    cpu_reserved = sum(int(args[key]["cpu"].removesuffix("m")) for key in ("system-reserved", "kube-reserved"))
    assert capacity.cpu_millis - free.cpu_millis == cpu_reserved


def test_server_keeps_more_than_agent() -> None:
    assert C.allocatable(8 * GIB, "server").memory_bytes < C.allocatable(8 * GIB, "agent").memory_bytes
    assert C.reserve_bytes("server") == 8 * GIB - C.allocatable(8 * GIB, "server").memory_bytes


def test_estimate_reserve_is_the_server_nodes_reserve() -> None:
    # "fits the board" (the estimate) and "fits the node" (the scheduler) mean the same.
    assert C.reserve_bytes("server") == T.DEFAULT_RESERVE
    target = T.TARGETS["pi5-8gb"]
    assert target.available_bytes == C.allocatable(target.memory_bytes, "server").memory_bytes


@pytest.mark.parametrize("bad", [0, -1, True, "8GiB", 512 * MIB])
def test_impossible_sizes_are_refused(bad: object) -> None:
    with pytest.raises(C.CapacityError, match="memory_bytes"):
        C.allocatable(bad, "server")  # type: ignore[arg-type]


def test_unknown_role_names_the_field() -> None:
    with pytest.raises(C.CapacityError, match="k3s_role: 'worker'"):
        C.kubelet_args("worker")


def test_every_catalog_node_carries_the_reservations_of_its_role() -> None:
    # The k3s role writes edgeslm_node.kubelet_args into the node's drop-in; the validator
    # schedules against allocatable() of the same role: one function for both.
    for site in ("lab", "store-berlin", "factory-line1"):
        doc = yaml.safe_load((REPO / "gitops" / "sites" / site / "site.yaml").read_text(encoding="utf-8"))
        catalog = _catalog.load_catalog(doc, source=f"{site}/site.yaml")
        for node in catalog.nodes():
            assert node.as_dict()["kubelet_args"] == C.kubelet_args(node.k3s_role), (site, node.host)
