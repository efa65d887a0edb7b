"""The virtual Pi 5 node images boot systemd and carry the Raspberry Pi OS fixture files."""

from __future__ import annotations

from typing import Any

# platform -> (machine, Debian release, python3 version, apt sources layout)
EXPECTED = {
    "node-image-amd64": ("x86_64", "12", "3.11", "one-line"),
    "node-image-arm64": ("aarch64", "12", "3.11", "one-line"),
    "node-image-trixie-amd64": ("x86_64", "13", "3.13", "deb822"),
    "node-image-trixie-arm64": ("aarch64", "13", "3.13", "deb822"),
}


def expected(host: Any) -> tuple[str, str, str, str]:
    return EXPECTED[host.check_output("hostname")]


def test_architecture_matches_platform(host: Any) -> None:
    assert host.check_output("uname -m") == expected(host)[0]


def test_debian_release(host: Any) -> None:
    assert host.system_info.distribution == "debian"
    assert host.system_info.release.split(".")[0] == expected(host)[1]


def test_python_of_the_raspberry_pi_os_release(host: Any) -> None:
    version = host.check_output("python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'")
    assert version == expected(host)[2]


def test_apt_sources_layout(host: Any) -> None:
    layout = expected(host)[3]
    sources = host.file("/etc/apt/sources.list.d/debian.sources")
    if layout == "deb822":
        assert sources.exists
        assert not host.file("/etc/apt/sources.list").exists
        assert "Types: deb" in sources.content_string
        assert "Signed-By:" in sources.content_string
    else:
        assert not sources.exists
        assert host.file("/etc/apt/sources.list").content_string.startswith("deb ")


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
    zone = "/opt/edgeslm-test-fixture/hw/sys/class/thermal/thermal_zone0"
    assert host.file(f"{zone}/type").content_string.strip() == "cpu-thermal"
    assert int(host.file(f"{zone}/temp").content_string) > 0
    # The real device tree is absent: nothing pretends this is a Pi.
    assert not host.file("/proc/device-tree/model").exists
