# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Does a node's hardware, as pi5_facts reads it, agree with the site catalog's declaration?

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

The site catalog (gitops/sites/<site>/site.yaml) declares each host's hardware once, and the
k3s role labels and taints the node from that declaration (_catalog.node_labels_and_taints).
A board that differs from it - less RAM, no NPU, a 16K-page kernel, another architecture -
would then be scheduled as the catalog says rather than as it is. `check_node` compares the
two before k3s is configured and names the catalog field to fix.

A fact pi5_facts reports with `source: absent` (a container node, a fixture tree without that
file) cannot contradict the catalog: it is recorded as unchecked, with the reason. Facts read
from a fixture tree (`source: fixture`, the virtual lab nodes) are checked like hardware.

It also refuses extra labels and taints (the role's k3s_node_labels / k3s_node_taints) whose
keys the catalog decides, so the catalog's scheduling labels have exactly one source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.edgeslm.pi5.plugins.module_utils._catalog import LABELS

__all__ = ["NodeCheck", "NodeCheckError", "check_node", "reserved_key_errors"]

# ansible_facts.architecture -> the catalog's arch.
ARCHITECTURES = {"aarch64": "arm64", "arm64": "arm64", "x86_64": "amd64", "amd64": "amd64"}
# The catalog's npu -> the Hailo driver family pi5_facts reports (one family serves the 8 and the 8L).
NPU_FAMILIES = {"none": "none", "hailo-10h": "hailo10h", "hailo-8": "hailo8", "hailo-8l": "hailo8"}
# The catalog's npu -> the model `hailortcli fw-control identify` reports.
NPU_MODELS = {"hailo-10h": "hailo10h", "hailo-8": "hailo8", "hailo-8l": "hailo8l"}
NODE_KEYS = ("host", "node_class", "k3s_role", "ram_gb", "target", "arch", "npu", "nvme", "page_size", "labels")


class NodeCheckError(ValueError):
    """The node spec itself is unusable (not a catalog node)."""


@dataclass
class NodeCheck:
    """Every disagreement (`errors`) and what each hardware field was checked against (`checks`)."""

    errors: list[str] = field(default_factory=list)
    checks: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"errors": list(self.errors), "checks": dict(self.checks)}


def _group(facts: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """A fact group that is present (not `source: absent`), else None."""
    group = facts.get(name)
    if not isinstance(group, Mapping) or group.get("source", "absent") == "absent":
        return None
    return group


def _absent(facts: Mapping[str, Any], name: str) -> str:
    group = facts.get(name)
    reason = group.get("reason") if isinstance(group, Mapping) else None
    return f"unchecked: pi5_facts has no {name} fact ({reason or 'not collected'})"


def _node(node: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(node, Mapping):
        raise NodeCheckError(
            "edgeslm_node must be the node the site catalog defines (set by the edgeslm.pi5.site_catalog inventory "
            f"plugin or the edgeslm.pi5.site_node filter), got {type(node).__name__}"
        )
    missing = [key for key in NODE_KEYS if key not in node]
    if missing:
        raise NodeCheckError(
            f"edgeslm_node lacks {', '.join(missing)}: it must come from the site catalog (the "
            "edgeslm.pi5.site_catalog inventory plugin or the edgeslm.pi5.site_node filter), not be written by hand"
        )
    return node


def check_node(
    node: Mapping[str, Any],
    facts: Mapping[str, Any] | None,
    architecture: str | None = None,
    catalog_file: str = "the site catalog",
) -> NodeCheck:
    """Compare the catalog's node with pi5_facts (and Ansible's architecture fact)."""
    node = _node(node)
    facts = facts if isinstance(facts, Mapping) else {}
    result = NodeCheck()
    where = f"spec.nodeClasses[{node['node_class']}]"
    host = node["host"]
    source = str(facts.get("source") or "absent")

    def refuse(field_name: str, declared: str, found: str, fix: str) -> None:
        result.errors.append(
            f"{host}: {catalog_file} declares {where}.{field_name} {declared}, but the node has {found}: {fix}"
        )

    memory = _group(facts, "memory")
    if memory is None:
        result.checks["ram_gb"] = _absent(facts, "memory")
    else:
        found_gb = int(memory.get("nominal_gb") or 0)
        result.checks["ram_gb"] = f"{found_gb} GB ({memory['source']})"
        if found_gb != int(node["ram_gb"]):
            refuse(
                "target",
                f"{node['target']} ({node['ram_gb']} GB)",
                f"{found_gb} GB of RAM (memory.nominal_gb, {memory['source']})",
                f"set target to pi5-{found_gb}gb, or move the host to a node class of its board",
            )

    pages = _group(facts, "page_size")
    if pages is None:
        result.checks["page_size"] = _absent(facts, "page_size")
    else:
        label = str(pages.get("label") or "")
        result.checks["page_size"] = f"{label} ({pages['source']})"
        if label != node["page_size"]:
            refuse(
                "pageSize",
                str(node["page_size"]),
                f"a kernel with {label} pages (page_size.label, {pages['source']})",
                "let edgeslm.pi5.pi5_common boot the 4K-page kernel (pi5_common_kernel_4k_pages, which follows "
                f"pageSize, and pi5_common_reboot_allowed: true), or set pageSize: {label}",
            )

    nvme = _group(facts, "nvme")
    if nvme is None:
        result.checks["nvme"] = _absent(facts, "nvme")
    else:
        present = bool(nvme.get("present"))
        result.checks["nvme"] = f"{'present' if present else 'none'} ({nvme['source']})"
        if present != bool(node["nvme"]):
            refuse(
                "nvme",
                "true" if node["nvme"] else "false",
                "an NVMe drive" if present else "no NVMe drive (nvme.present false)",
                f"set nvme: {'true' if present else 'false'}, or move the host to a node class of its board",
            )

    npu = _group(facts, "npu")
    declared_npu = str(node["npu"] or "none")
    if npu is None:
        result.checks["npu"] = _absent(facts, "npu")
    else:
        family = str(npu.get("family") or "none")
        model = str(npu.get("model") or family)
        identified = npu.get("identify") is not None
        result.checks["npu"] = f"{model if identified else family} ({npu['source']})"
        found = "no NPU on the PCIe bus" if family == "none" else f"a {family} NPU (npu.pci_id {npu.get('pci_id')})"
        if family != NPU_FAMILIES.get(declared_npu, declared_npu):
            refuse(
                "npu",
                declared_npu,
                found,
                "set npu to what the board carries (hailo-10h, hailo-8, hailo-8l, or leave it out), or seat the "
                "AI HAT+",
            )
        elif identified and declared_npu != "none" and model != NPU_MODELS[declared_npu]:
            refuse(
                "npu",
                declared_npu,
                f"a {model} (hailortcli fw-control identify)",
                f"set npu: {'hailo-8l' if model == 'hailo8l' else 'hailo-8'}",
            )

    if not architecture:
        result.checks["arch"] = "unchecked: no architecture fact (gather facts first)"
    else:
        arch = ARCHITECTURES.get(str(architecture))
        result.checks["arch"] = f"{architecture} ({source if source != 'absent' else 'ansible facts'})"
        if arch != node["arch"]:
            refuse(
                "arch",
                str(node["arch"]),
                f"a {architecture} CPU",
                "a Raspberry Pi 5 runs the 64-bit (arm64) OS; amd64 is for virtual lab nodes only",
            )
    result.checks["pcie_switch"] = "unchecked: a PCIe switch board is not visible to pi5_facts"
    return result


def reserved_key_errors(
    node: Mapping[str, Any],
    labels: Sequence[str],
    taints: Sequence[str],
    labels_variable: str = "k3s_node_labels",
    taints_variable: str = "k3s_node_taints",
) -> list[str]:
    """Extra labels/taints whose keys the site catalog decides (one source per scheduling label)."""
    node = _node(node)
    reserved = set(LABELS.values()) | set(node["labels"])
    catalog_taints = {str(t).partition(":")[0].partition("=")[0] for t in node.get("taints") or ()}
    catalog_taints.add(LABELS["page_size"])  # the core taints a 16K-page class with this key
    errors = []
    for label in labels:
        key = str(label).partition("=")[0]
        if key in reserved:
            errors.append(
                f"{labels_variable}: {key} is decided by the site catalog (node class {node['node_class']}: "
                f"{key}={node['labels'].get(key, '(not set for this class)')}); change it there, not here"
            )
    for taint in taints:
        key = str(taint).partition(":")[0].partition("=")[0]
        if key in catalog_taints:
            errors.append(
                f"{taints_variable}: {key} is decided by the site catalog (spec.nodeClasses[{node['node_class']}]"
                ".taints or pageSize); change it there, not here"
            )
    return errors
