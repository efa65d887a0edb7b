# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The catalog's node against pi5_facts: each field refused with the catalog field to fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.edgeslm.pi5.plugins.module_utils._catalog import load_catalog
from ansible_collections.edgeslm.pi5.plugins.module_utils._node_check import (
    NodeCheckError,
    check_node,
    reserved_key_errors,
)

REPO = Path(__file__).resolve().parents[4]


def _node(host: str = "line1-npu-1") -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "gitops" / "sites" / "factory-line1" / "site.yaml").read_text(encoding="utf-8"))
    node: dict[str, Any] = load_catalog(doc).node(host).as_dict()
    return node


def _facts(
    gb: int = 16, pages: str = "4k", nvme: bool = True, family: str = "hailo10h", source: str = "hardware"
) -> dict[str, Any]:
    """The shape edgeslm.pi5.pi5_facts publishes (plugins/module_utils/_hardware.py)."""
    return {
        "source": source,
        "memory": {"source": source, "total_bytes": gb * 1000**3, "nominal_gb": gb},
        "page_size": {"source": source, "bytes": 4096 if pages == "4k" else 16384, "label": pages},
        "nvme": {"source": source, "present": nvme, "disks": []},
        "npu": {"source": source, "family": family, "model": family, "pci_id": "1e60:45c4", "identify": None},
    }


def test_a_board_as_declared_passes() -> None:
    result = check_node(_node(), _facts(), "aarch64", "gitops/sites/factory-line1/site.yaml")
    assert result.errors == []
    assert result.checks["ram_gb"] == "16 GB (hardware)"
    assert result.checks["npu"] == "hailo10h (hardware)"
    assert result.checks["pcie_switch"].startswith("unchecked")


@pytest.mark.parametrize(
    ("facts", "architecture", "field", "fix"),
    [
        (_facts(gb=8), "aarch64", "spec.nodeClasses[pi5-16gb-npu].target pi5-16gb (16 GB)", "set target to pi5-8gb"),
        (_facts(pages="16k"), "aarch64", "spec.nodeClasses[pi5-16gb-npu].pageSize 4k", "or set pageSize: 16k"),
        (_facts(nvme=False), "aarch64", "spec.nodeClasses[pi5-16gb-npu].nvme true", "set nvme: false"),
        (_facts(family="none"), "aarch64", "spec.nodeClasses[pi5-16gb-npu].npu hailo-10h", "no NPU on the PCIe bus"),
        (_facts(family="hailo8"), "aarch64", "spec.nodeClasses[pi5-16gb-npu].npu hailo-10h", "a hailo8 NPU"),
        (_facts(), "x86_64", "spec.nodeClasses[pi5-16gb-npu].arch arm64", "a x86_64 CPU"),
    ],
)
def test_each_disagreement_names_the_catalog_field(
    facts: dict[str, Any], architecture: str, field: str, fix: str
) -> None:
    result = check_node(_node(), facts, architecture, "gitops/sites/factory-line1/site.yaml")
    assert len(result.errors) == 1, result.errors
    message = result.errors[0]
    assert message.startswith("line1-npu-1: gitops/sites/factory-line1/site.yaml declares ")
    assert field in message and fix in message


def test_fixture_facts_are_checked_like_hardware() -> None:
    result = check_node(_node("line1-cpu-1"), _facts(gb=8, family="none", source="fixture"), "aarch64")
    assert [e.split(" declares ")[1].split(" ")[0] for e in result.errors] == ["spec.nodeClasses[pi5-16gb-cpu].target"]


def test_an_identified_hailo8l_is_not_a_hailo8() -> None:
    node = _node()
    node["npu"] = "hailo-8"
    facts = _facts(family="hailo8")
    facts["npu"].update(model="hailo8l", identify={"architecture": "HAILO8L"})
    (message,) = check_node(node, facts, "aarch64").errors
    assert "hailortcli fw-control identify" in message and "set npu: hailo-8l" in message


def test_absent_facts_are_unchecked_not_refused() -> None:
    """A container node: pi5_facts reports the board's hardware as absent."""
    facts = {
        "source": "hardware",
        "memory": {"source": "absent", "reason": "no proc/meminfo below the hardware root"},
        "nvme": {"source": "absent", "present": False},
        "npu": {"source": "absent", "family": "none", "reason": "container"},
    }
    result = check_node(_node(), facts, "aarch64")
    assert result.errors == []
    assert result.checks["ram_gb"] == (
        "unchecked: pi5_facts has no memory fact (no proc/meminfo below the hardware root)"
    )
    assert result.checks["page_size"].startswith("unchecked")
    assert result.checks["npu"] == "unchecked: pi5_facts has no npu fact (container)"
    assert check_node(_node(), None).checks["arch"].startswith("unchecked")


def test_a_hand_written_node_is_refused() -> None:
    with pytest.raises(NodeCheckError, match="lacks node_class"):
        check_node({"host": "x", "ram_gb": 8}, _facts())
    with pytest.raises(NodeCheckError, match="edgeslm_node must be the node the site catalog defines"):
        check_node("pi5-8gb", _facts())  # type: ignore[arg-type]


def test_extra_labels_and_taints_cannot_override_the_catalog() -> None:
    node = _node()
    errors = reserved_key_errors(
        node,
        ["edgeslm.io/npu=hailo8", "edgeslm.io/wasm=wasmedge", "edgeslm.io/zone=rack-1"],
        ["edgeslm.io/npu=hailo10h:NoSchedule", "edgeslm.io/page-size=16k:NoSchedule", "dedicated=x:NoSchedule"],
    )
    assert len(errors) == 4, errors
    assert errors[0].startswith("k3s_node_labels: edgeslm.io/npu is decided by the site catalog")
    assert "edgeslm.io/npu=hailo10h" in errors[0]
    assert "(not set for this class)" in errors[1]
    assert errors[2].startswith("k3s_node_taints: edgeslm.io/npu is decided by the site catalog")
    assert errors[3].startswith("k3s_node_taints: edgeslm.io/page-size")
