"""The virtual Pi 5 node images boot systemd and carry the Raspberry Pi OS fixture files."""

from __future__ import annotations

from typing import Any

EXPECTED_MACHINE = {"node-image-amd64": "x86_64", "node-image-arm64": "aarch64"}


def test_architecture_matches_platform(host: Any) -> None:
    name = host.check_output("hostname")
    assert host.check_output("uname -m") == EXPECTED_MACHINE[name]


def test_debian_12(host: Any) -> None:
    assert host.system_info.distribution == "debian"
    assert host.system_info.release.startswith("12")


def test_systemd_is_pid_1(host: Any) -> None:
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded"), state


def test_binfmt_units_masked(host: Any) -> None:
    # A privileged node must never rewrite the host's binfmt_misc table.
    link = host.file("/etc/systemd/system/systemd-binfmt.service")
    assert link.is_symlink and link.linked_to == "/dev/null"


def test_boot_firmware_files_present(host: Any) -> None:
    cmdline = host.file("/boot/firmware/cmdline.txt").content_string
    assert len(cmdline.splitlines()) == 1
    assert "root=PARTUUID=" in cmdline
    assert "arm_64bit=1" in host.file("/boot/firmware/config.txt").content_string


def test_hardware_fixture_says_it_is_a_fixture(host: Any) -> None:
    model = host.file("/opt/edgeslm-test-fixture/hw/proc/device-tree/model").content_string
    assert model.rstrip("\0") == "Raspberry Pi 5 Model B Rev 1.0"
    assert "TEST FIXTURE" in host.file("/opt/edgeslm-test-fixture/README.fixture").content_string
    # The real device tree is absent: nothing pretends this is a Pi.
    assert not host.file("/proc/device-tree/model").exists
