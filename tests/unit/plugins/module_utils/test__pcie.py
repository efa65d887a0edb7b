"""The single-PCIe-lane plan: declarations and the bus combined, every refusal with its variable."""

from __future__ import annotations

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _pcie

BOTH_ON_BUS = {"nvme": ["0001:04:00.0"], "npu": ["0001:03:00.0"], "switch": []}
BEHIND_SWITCH = {"nvme": ["0001:04:00.0"], "npu": ["0001:03:00.0"], "switch": ["0001:01:00.0", "0001:02:03.0"]}


@pytest.mark.parametrize(
    ("nvme", "npu", "switch", "detected", "disks", "expect"),
    [
        (True, False, False, None, (), "ok"),
        (False, True, False, None, (), "ok"),
        (True, True, True, None, (), "ok"),
        (True, True, False, None, (), "refuse"),  # declared both, no switch
        (False, False, False, BOTH_ON_BUS, (), "refuse"),  # detected both, nothing declared
        (True, False, False, {"nvme": [], "npu": ["0001:01:00.0"], "switch": []}, (), "refuse"),  # mixed
        (False, True, False, None, ("nvme0n1",), "refuse"),  # NPU declared, NVMe disk found
        (False, False, True, BEHIND_SWITCH, (), "ok"),
        (False, False, False, {"nvme": ["0001:01:00.0"], "npu": [], "switch": []}, (), "ok"),
    ],
)
def test_plan_lane(
    nvme: bool,
    npu: bool,
    switch: bool,
    detected: dict[str, list[str]] | None,
    disks: tuple[str, ...],
    expect: str,
) -> None:
    plan = _pcie.plan_lane(nvme, npu, switch, 2, detected, disks)
    assert plan.action == expect
    assert plan.as_dict()["action"] == expect


def test_refusal_from_the_bus_names_the_devices_and_the_variable() -> None:
    plan = _pcie.plan_lane(False, False, False, 2, BOTH_ON_BUS)
    (reason,) = plan.reasons
    assert "one PCIe lane" in reason
    assert "ssd_boot_pcie_switch: true" in reason
    assert "Set pcieSwitch: true on the node class in the site catalog" in reason
    assert "Hailo NPU at 0001:03:00.0" in reason
    assert "NVMe controller at 0001:04:00.0" in reason


def test_refusal_points_at_an_undeclared_switch_on_the_bus() -> None:
    (reason,) = _pcie.plan_lane(False, False, False, 2, BEHIND_SWITCH).reasons
    assert "PCIe switch on the bus (0001:01:00.0, 0001:02:03.0): declare it" in reason


def test_refusal_from_the_declaration_names_both_variables() -> None:
    (reason,) = _pcie.plan_lane(True, True, False, 2).reasons
    assert "ssd_boot_npu_attached (the node class's npu)" in reason
    assert "ssd_boot_nvme_attached (the node class's nvme)" in reason


@pytest.mark.parametrize(
    ("switch", "detected", "message"),
    [
        (True, None, "ssd_boot_pcie_switch is true and ssd_boot_pcie_gen is 3"),
        (False, {"nvme": ["0001:04:00.0"], "npu": [], "switch": ["0001:01:00.0"]}, "a PCIe switch is on the bus"),
    ],
)
def test_gen3_behind_a_switch_is_refused(switch: bool, detected: dict[str, list[str]] | None, message: str) -> None:
    (reason,) = _pcie.plan_lane(True, False, switch, 3, detected).reasons
    assert message in reason
    assert "ssd_boot_pcie_gen: 2" in reason


def test_gen3_without_a_switch_is_allowed() -> None:
    assert _pcie.plan_lane(True, False, False, 3).action == "ok"


def test_unknown_generation_is_refused() -> None:
    (reason,) = _pcie.plan_lane(True, False, False, 4).reasons
    assert "ssd_boot_pcie_gen is 4" in reason
