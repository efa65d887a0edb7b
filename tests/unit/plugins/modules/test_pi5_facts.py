"""pi5_facts as Ansible runs it: arguments in, ansible_facts.edgeslm_pi5 out, core errors as failures."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.edgeslm.pi5.plugins.module_utils import _hardware
from ansible_collections.edgeslm.pi5.plugins.modules import pi5_facts


def write(root: Path, rel: str, content: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())


@pytest.fixture
def fixture_root(tmp_path: Path) -> Path:
    root = tmp_path / "hw"
    write(root, "proc/device-tree/model", "Raspberry Pi 5 Model B Rev 1.0\0")
    write(root, "proc/device-tree/system/linux,revision", struct.pack(">I", 0xC04170))
    write(root, "proc/mounts", "/dev/mmcblk0p2 / ext4 rw 0 0\n/dev/nvme0n1p1 /data ext4 rw 0 0\n")
    write(root, "sys/block/nvme0n1/size", "1000\n")
    write(root, "sys/block/nvme0n1/nvme0n1p1/partition", "1\n")
    write(root, "sys/bus/pci/devices/0001:01:00.0/vendor", "0x1e60\n")
    write(root, "sys/bus/pci/devices/0001:01:00.0/device", "0x45c4\n")
    return root


def os_release(path: Path, codename: str) -> Path:
    version = {"bookworm": "12", "trixie": "13"}[codename]
    path.write_text(f"ID=debian\nVERSION_ID={version}\nVERSION_CODENAME={codename}\n")
    return path


@pytest.fixture(autouse=True)
def node_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The node's /etc/os-release: Trixie unless a test rewrites it (the host running the tests is not the node)."""
    path = os_release(tmp_path / "os-release", "trixie")
    collect = _hardware.collect

    def collect_on_node(*args: Any, **kwargs: Any) -> dict[str, Any]:
        facts: dict[str, Any] = collect(*args, **{**kwargs, "os_release": str(path)})
        return facts

    monkeypatch.setattr(_hardware, "collect", collect_on_node)
    return path


def test_hailo10h_on_bookworm_fails_naming_the_os(
    fixture_root: Path, node_release: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os_release(node_release, "bookworm")
    result = run_module({"root": str(fixture_root), "npu_model": "auto"}, capsys)
    assert result["failed"] is True
    assert "Raspberry Pi OS Bookworm (Debian 12)" in result["msg"]
    assert "hailo-h10-all" in result["msg"]


def test_pcie_lane_plan_from_the_bus(fixture_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The fixture bus holds a Hailo-10H and the block layer an NVMe disk: both on one lane.
    result = run_module(
        {"root": str(fixture_root), "pcie_lane": {"nvme": False, "npu": False, "switch": False}}, capsys
    )
    plan = result["ansible_facts"]["edgeslm_pi5"]["pcie"]["plan"]
    assert plan["action"] == "refuse"
    assert "ssd_boot_pcie_switch" in plan["reasons"][0]
    assert plan["evidence"]["npu"] == ["detected: Hailo NPU at 0001:01:00.0"]
    assert plan["evidence"]["nvme"] == ["detected: disk nvme0n1"]


def run_module(args: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        pi5_facts.main()
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def test_returns_fixture_facts_and_plans(fixture_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_module(
        {
            "root": str(fixture_root),
            "npu_model": "auto",
            "migration_target": "/dev/nvme0n1",
            "_ansible_check_mode": True,
        },
        capsys,
    )
    assert result["changed"] is False
    facts = result["ansible_facts"]["edgeslm_pi5"]
    assert facts["source"] == "fixture"
    assert facts["board"]["memory_mb"] == 4096
    assert facts["npu"]["family"] == "hailo10h"
    assert facts["npu"]["plan"]["install"] == ["hailo-h10-all"]
    assert facts["migration"]["action"] == "refuse"
    assert "mounted partitions" in facts["migration"]["reasons"][0]
    assert "_mounts" not in facts


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"npu_model": "hailo8"}, "holds a hailo10h device"),
        ({"npu_model": "hailo10h", "npu_version_pins": {"hailort": "4.20.0-1"}}, "not part of the hailo10h stack"),
        ({"migration_target": ""}, "ssd_boot_migration_target is empty"),
    ],
)
def test_core_errors_fail_the_task(
    fixture_root: Path, args: dict[str, Any], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_module({"root": str(fixture_root), **args}, capsys)
    assert result["failed"] is True
    assert message in result["msg"]


def test_bootloader_plan_is_null_without_the_tool(fixture_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_module({"root": str(fixture_root), "bootloader_desired": {"BOOT_ORDER": "0xf416"}}, capsys)
    loader = result["ansible_facts"]["edgeslm_pi5"]["bootloader"]
    assert loader["source"] == "absent"
    assert loader["plan"] is None


def test_missing_root_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_module({"root": str(tmp_path / "nope")}, capsys)
    assert result["failed"] is True
    assert "not a directory" in result["msg"]
