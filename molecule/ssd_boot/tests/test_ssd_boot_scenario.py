"""What this scenario's node must end up with (not reused by molecule/hw)."""

from __future__ import annotations

import json
from typing import Any


def test_plan_from_the_fixture(host: Any) -> None:
    fact = json.loads(host.file("/etc/ansible/facts.d/edgeslm_ssd_boot.fact").content_string)
    assert fact["hardware_source"] == "fixture"
    assert fact["boot_device"] == "sd"
    assert fact["eeprom"]["source"] == "fixture"
    assert fact["eeprom"]["boot_order_modes"] == ["sd", "usb", "restart"]
    assert fact["eeprom"]["in_sync"] is False
    assert fact["eeprom"]["changes"] == {
        "BOOT_ORDER": {"current": "0xf41", "desired": "0xf416"},
        "PCIE_PROBE": {"current": None, "desired": "1"},
    }
    assert fact["migration"]["action"] == "migrate"
    assert fact["migration"]["target"] == "/dev/nvme0n1"


def test_desired_file_keeps_the_other_settings(host: Any) -> None:
    text = host.file("/var/lib/edgeslm/ssd_boot/bootconf.txt").content_string
    assert text == "[all]\nBOOT_UART=1\nPOWER_OFF_ON_HALT=0\nBOOT_ORDER=0xf416\nPCIE_PROBE=1\n"


def test_nothing_copied_to_the_fixture_disk(host: Any) -> None:
    assert not host.file("/mnt/edgeslm-nvme").exists
