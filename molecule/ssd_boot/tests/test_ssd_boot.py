"""ssd_boot on a node: PCIe settings, bootloader boot order, migration decision, local fact.

Shared with molecule/hw: the EEPROM and boot-device checks that need a real board skip
themselves on container nodes.
"""

from __future__ import annotations

from typing import Any

import pytest
from edgeslm_verify import is_container
from edgeslm_verify import local_fact as role_fact

BOOT_MODES = {"1": "sd", "2": "network", "4": "usb", "6": "nvme", "e": "stop", "f": "restart"}


def local_fact(host: Any) -> dict[str, Any]:
    return role_fact(host, "ssd_boot")


def settings(text: str) -> dict[str, str]:
    """Global settings of a bootloader configuration (before any conditional section)."""
    result: dict[str, str] = {}
    section = "all"
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]").lower()
        elif "=" in line and not line.startswith("#") and section == "all":
            key, _sep, value = line.partition("=")
            result[key.strip()] = value.strip()
    return result


def test_fact_is_consistent(host: Any) -> None:
    fact = local_fact(host)
    assert fact["role"] == "ssd_boot"
    assert fact["container"] is is_container(host)
    lane = fact["pcie_lane"]
    assert not (lane["nvme"] and lane["npu"] and not lane["switch"]), "single PCIe lane overbooked"


def test_lane_from_the_bus_agrees_with_the_declaration(host: Any) -> None:
    """What pi5_facts found on the PCI bus never contradicts a converged node's declaration."""
    lane = local_fact(host)["pcie_lane"]
    if lane["source"] == "absent":
        pytest.skip("the PCI bus was not read (a container node reading the host)")
    detected = lane["detected"]
    npu = lane["npu"] or bool(detected["npu"])
    nvme = lane["nvme"] or bool(detected["nvme"])
    assert not (npu and nvme and not lane["switch"]), f"the bus shows {detected} without a declared switch"
    if detected["switch"]:
        assert lane["switch"], f"a PCIe switch is on the bus ({detected['switch']}) but not declared"


def test_pcie_block_in_config_txt(host: Any) -> None:
    fact = local_fact(host)
    if not fact["pcie"]["managed"]:
        pytest.skip("PCIe settings not managed on this node")
    config = host.file(fact["pcie"]["config_txt"]).content_string
    start = config.index("# BEGIN edgeslm.pi5.ssd_boot pcie\n")
    block = config[start : config.index("# END edgeslm.pi5.ssd_boot pcie")].splitlines()[1:]
    expected = (
        ["[all]"]
        + (["dtparam=pciex1"] if fact["pcie"]["pciex1"] else [])
        + [f"dtparam=pciex1_gen={fact['pcie']['gen']}"]
    )
    assert block == expected
    assert config.count("# BEGIN edgeslm.pi5.ssd_boot pcie") == 1


def test_desired_bootloader_config(host: Any) -> None:
    fact = local_fact(host)
    eeprom = fact["eeprom"]
    if eeprom["source"] == "absent":
        pytest.skip(f"bootloader not readable here: {fact['skipped']}")
    desired = settings(host.file(eeprom["desired_file"]).content_string)
    order = desired["BOOT_ORDER"]
    assert order == eeprom["desired"]["BOOT_ORDER"]
    # NVMe must come before SD: nibbles are tried from the right.
    modes = [BOOT_MODES.get(nibble, nibble) for nibble in reversed(order[2:].lower())]
    assert modes.index("nvme") < modes.index("sd")
    assert (desired.get("PCIE_PROBE") == "1") is (fact["pcie_lane"]["adapter"] == "other")


def test_bootloader_on_container_is_not_applied(host: Any) -> None:
    fact = local_fact(host)
    if not is_container(host):
        pytest.skip("real board: see test_bootloader_applied")
    assert fact["eeprom"]["applied"] is False
    assert any(s["step"] == "eeprom_apply" and "container" in s["reason"] for s in fact["skipped"])


def test_bootloader_applied(host: Any) -> None:
    if is_container(host):
        pytest.skip("container node: the bootloader EEPROM belongs to the host")
    fact = local_fact(host)
    running = settings(host.check_output("rpi-eeprom-config"))
    pending = host.file("/boot/firmware/pieeprom.upd").exists
    for key, value in fact["eeprom"]["desired"].items():
        assert running.get(key) == value or pending, f"{key}={running.get(key)} and no update staged"


def test_migration_decision(host: Any) -> None:
    fact = local_fact(host)
    migration = fact["migration"]
    if not migration["requested"]:
        pytest.skip("no migration requested")
    assert migration["action"] in ("migrate", "done")
    if is_container(host):
        assert any(s["step"] == "migration" and "container" in s["reason"] for s in fact["skipped"])


def test_root_on_nvme_after_migration(host: Any) -> None:
    if is_container(host):
        pytest.skip("container node: the disks belong to the host")
    fact = local_fact(host)
    if not fact["migration"]["requested"]:
        pytest.skip("no migration requested")
    assert host.check_output("findmnt -no SOURCE /").startswith("/dev/nvme")
