"""What this scenario's three nodes must end up with (not reused by molecule/hw)."""

from __future__ import annotations

import json
from typing import Any

import pytest

EXPECTED: dict[str, dict[str, str | None]] = {
    "npu-hailo8": {"model": "hailo8l", "family": "hailo8", "driver_version": "4.19.0", "pci_id": "1e60:2864"},
    "npu-hailo10h": {"model": "hailo10h", "family": "hailo10h", "driver_version": "5.1.1", "pci_id": "1e60:45c4"},
    "npu-none": {"model": "none", "family": "none", "driver_version": None, "pci_id": None},
}


@pytest.fixture
def name(host: Any) -> str:
    hostname: str = host.check_output("hostname")
    return hostname


def test_node_outcome(host: Any, name: str) -> None:
    fact = json.loads(host.file("/etc/ansible/facts.d/edgeslm_npu.fact").content_string)
    for key, value in EXPECTED[name].items():
        assert fact[key] == value, key
    assert fact["hardware_source"] == "fixture"


def test_hailo8_node_lost_the_held_hailo10h_stack(host: Any, name: str) -> None:
    if name != "npu-hailo8":
        pytest.skip("only the Hailo-8 node had the Hailo-10H stack")
    assert not host.package("h10-hailort").is_installed
    assert not host.package("hailo-h10-all").is_installed
    assert host.package("hailort").version == "4.19.0-1"
    prefs = host.file("/etc/apt/preferences.d/edgeslm-hailo").content_string
    assert "Package: hailort\nPin: version 4.19.0-1\nPin-Priority: 1001" in prefs


def test_node_without_npu_installed_nothing(host: Any, name: str) -> None:
    if name != "npu-none":
        pytest.skip("only npu-none has no NPU")
    out = host.run("dpkg-query -W -f '${Package}\\n' 'hailo*' 'h10-*'")
    assert out.stdout.strip() == ""
