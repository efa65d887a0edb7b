# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Raspberry Pi 5's single PCIe lane: who is on it, from the inventory and from the PCI bus.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

Facts (docs/host-roles.md has the sources): the Pi 5 exposes one PCIe x1 lane. An AI HAT+ (Hailo)
and an NVMe drive can share it only through a PCIe switch board, which runs the link at Gen 2
(raspberrypi/firmware#1833; hailo-ai/hailo-rpi5-examples#4). The plan combines what the inventory
declares with what pi5_facts read from the bus (module_utils/_hardware.pcie_lane): a device counts
when it is declared or detected, and a switch must be declared (ssd_boot_pcie_switch) because it
changes the link generation and how the node boots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["LanePlan", "plan_lane"]


@dataclass(frozen=True)
class LanePlan:
    """What shares the lane, why each device counts, and the refusals (empty: go ahead)."""

    nvme: bool
    npu: bool
    switch: bool
    evidence: dict[str, list[str]]
    reasons: tuple[str, ...]

    @property
    def action(self) -> str:
        return "refuse" if self.reasons else "ok"

    def as_dict(self) -> dict[str, object]:
        return {
            "action": self.action,
            "nvme": self.nvme,
            "npu": self.npu,
            "switch": self.switch,
            "evidence": self.evidence,
            "reasons": list(self.reasons),
        }


def _slots(lane: Mapping[str, Sequence[str]] | None, key: str) -> list[str]:
    return [str(slot) for slot in (lane or {}).get(key, [])]


def plan_lane(
    nvme_declared: bool,
    npu_declared: bool,
    switch_declared: bool,
    gen: int,
    detected: Mapping[str, Sequence[str]] | None = None,
    nvme_disks: Sequence[str] = (),
) -> LanePlan:
    """Decide whether the lane's configuration can be applied.

    detected: `pcie.lane` from pi5_facts ({"nvme": [slots], "npu": [slots], "switch": [slots]}),
    None when the bus was not read (a container node); nvme_disks: NVMe block devices found.
    """
    evidence: dict[str, list[str]] = {"nvme": [], "npu": [], "switch": []}
    if nvme_declared:
        evidence["nvme"].append("declared: ssd_boot_nvme_attached (the node class's nvme)")
    evidence["nvme"] += [f"detected: NVMe controller at {slot}" for slot in _slots(detected, "nvme")]
    evidence["nvme"] += [f"detected: disk {disk}" for disk in nvme_disks]
    if npu_declared:
        evidence["npu"].append("declared: ssd_boot_npu_attached (the node class's npu)")
    evidence["npu"] += [f"detected: Hailo NPU at {slot}" for slot in _slots(detected, "npu")]
    if switch_declared:
        evidence["switch"].append("declared: ssd_boot_pcie_switch (the node class's pcieSwitch)")
    switch_ports = _slots(detected, "switch")
    evidence["switch"] += [f"detected: PCIe switch port at {slot}" for slot in switch_ports]
    nvme = bool(evidence["nvme"])
    npu = bool(evidence["npu"])
    reasons: list[str] = []
    if nvme and npu and not switch_declared:
        found = (
            f" pi5_facts also sees a PCIe switch on the bus ({', '.join(switch_ports)}): declare it."
            if switch_ports
            else ""
        )
        reasons.append(
            "an AI HAT+ (NPU: "
            + "; ".join(evidence["npu"])
            + ") and an NVMe drive (NVMe: "
            + "; ".join(evidence["nvme"])
            + ") are on the Raspberry Pi 5's one PCIe lane, which only a PCIe switch board can share, at Gen 2. "
            "Set pcieSwitch: true on the node class in the site catalog (ssd_boot_pcie_switch: true) if the node "
            "has one, or remove one device (and set the class's nvme or npu to match)." + found
        )
    if gen not in (2, 3):
        reasons.append(f"ssd_boot_pcie_gen is {gen}: the Raspberry Pi 5 lane runs at Gen 2 or Gen 3; set 2 or 3.")
    elif gen == 3 and (switch_declared or switch_ports):
        why = "ssd_boot_pcie_switch is true" if switch_declared else f"a PCIe switch is on the bus ({switch_ports[0]})"
        reasons.append(
            f"{why} and ssd_boot_pcie_gen is 3: PCIe switch boards run the link at Gen 2. Set ssd_boot_pcie_gen: 2."
        )
    return LanePlan(nvme, npu, switch_declared, evidence, tuple(reasons))
