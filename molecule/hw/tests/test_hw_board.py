"""Checks only a real Raspberry Pi 5 with an NVMe drive and a Hailo NPU can pass (molecule/hw)."""

from __future__ import annotations

from typing import Any

import pytest
from edgeslm_verify import real_node_only

HAILO_IDS = ("1e60:2864", "1e60:45c4")


@pytest.fixture(autouse=True)
def real_board_only(host: Any) -> None:
    real_node_only(host, "molecule/hw runs on real boards only")


def test_board_is_a_pi5(host: Any) -> None:
    model = host.file("/proc/device-tree/model").content_string.rstrip("\0")
    assert model.startswith("Raspberry Pi 5"), model


def test_nvme_drive_present(host: Any) -> None:
    assert host.run("ls /sys/block | grep -q '^nvme'").rc == 0, "no NVMe disk: check the adapter and dtparam=pciex1"


def test_hailo_on_the_pcie_bus(host: Any) -> None:
    ids = host.check_output("lspci -n | awk '{print $3}'").split()
    assert any(pci_id in ids for pci_id in HAILO_IDS), f"no Hailo device among {ids}"


def test_not_throttled(host: Any) -> None:
    state = host.check_output("vcgencmd get_throttled")
    value = int(state.partition("=")[2], 16)
    assert value & 0xF == 0, f"{state}: under-voltage or throttling now (NVMe and NPU need a 5 A supply)"
