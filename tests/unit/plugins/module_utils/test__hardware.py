"""Hardware parsers and the collector, against literal text and a fixture tree under tmp_path."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _hardware


@pytest.mark.parametrize(
    ("text", "model", "revision", "is_pi5"),
    [
        ("Raspberry Pi 5 Model B Rev 1.0\0", "Raspberry Pi 5 Model B", "1.0", True),
        ("Raspberry Pi 5 Model B Rev 1.1", "Raspberry Pi 5 Model B", "1.1", True),
        ("Raspberry Pi 4 Model B Rev 1.5\0", "Raspberry Pi 4 Model B", "1.5", False),
        ("Raspberry Pi Compute Module 5 Rev 1.0\0", "Raspberry Pi Compute Module 5", "1.0", False),
        ("QEMU Virt Machine", "QEMU Virt Machine", None, False),
    ],
)
def test_parse_device_tree_model(text: str, model: str, revision: str | None, is_pi5: bool) -> None:
    assert _hardware.parse_device_tree_model(text) == _hardware.BoardModel(model, revision, is_pi5)


def test_parse_device_tree_model_refuses_empty() -> None:
    with pytest.raises(_hardware.HardwareError, match="empty"):
        _hardware.parse_device_tree_model("\0")


@pytest.mark.parametrize(
    ("code", "memory_mb", "processor", "board_type"),
    [
        ("d04170", 8192, "BCM2712", "5"),
        ("c04170", 4096, "BCM2712", "5"),
        ("b04170", 2048, "BCM2712", "5"),
        ("e04171", 16384, "BCM2712", "5"),
        ("d04180", 8192, "BCM2712", "CM5"),
        ("c03115", 4096, "BCM2711", "4B"),
        (0xD04170, 8192, "BCM2712", "5"),
    ],
)
def test_parse_revision_code(code: str | int, memory_mb: int, processor: str, board_type: str) -> None:
    rev = _hardware.parse_revision_code(code)
    assert (rev.memory_mb, rev.processor, rev.board_type) == (memory_mb, processor, board_type)


@pytest.mark.parametrize(("code", "message"), [("0002", "old-style"), ("zz", "hexadecimal")])
def test_parse_revision_code_refuses(code: str, message: str) -> None:
    with pytest.raises(_hardware.HardwareError, match=message):
        _hardware.parse_revision_code(code)


@pytest.mark.parametrize(
    ("total", "nominal"),
    [(8_245_424 * 1024, 8), (4_038_000 * 1024, 4), (16_611_000 * 1024, 16), (1_900_000 * 1024, 2), (900 * 2**20, 1)],
)
def test_nominal_ram_gb(total: int, nominal: int) -> None:
    assert _hardware.nominal_ram_gb(total) == nominal


def test_parse_meminfo_total() -> None:
    assert _hardware.parse_meminfo_total("MemTotal:        8245424 kB\nMemFree: 1 kB\n") == 8245424 * 1024
    assert _hardware.parse_meminfo_total("MemFree: 1 kB\n") is None
    with pytest.raises(_hardware.HardwareError, match="MemTotal"):
        _hardware.parse_meminfo_total("MemTotal: lots\n")


@pytest.mark.parametrize(("size", "label"), [(4096, "4k"), (16384, "16k"), (65536, "64k")])
def test_page_size_label(size: int, label: str) -> None:
    assert _hardware.page_size_label(size) == label


def test_page_size_label_refuses() -> None:
    with pytest.raises(_hardware.HardwareError, match="multiple of 1024"):
        _hardware.page_size_label(1000)


@pytest.mark.parametrize(
    ("text", "root"),
    [
        ("console=tty1 root=PARTUUID=4e639091-02 rootwait", "PARTUUID=4e639091-02"),
        ("root=/dev/mmcblk0p2 quiet root=/dev/nvme0n1p2", "/dev/nvme0n1p2"),
        ("quiet splash", None),
    ],
)
def test_parse_cmdline_root(text: str, root: str | None) -> None:
    assert _hardware.parse_cmdline_root(text) == root


@pytest.mark.parametrize(
    ("text", "flags", "now"),
    [
        ("throttled=0x0\n", [], []),
        ("throttled=0x50000\n", ["under_voltage_occurred", "throttled_occurred"], []),
        (
            "throttled=0x50005",
            ["under_voltage", "throttled", "under_voltage_occurred", "throttled_occurred"],
            ["under_voltage", "throttled"],
        ),
    ],
)
def test_parse_throttled(text: str, flags: list[str], now: list[str]) -> None:
    state = _hardware.parse_throttled(text)
    assert state["flags"] == flags
    assert state["now"] == now


def test_parse_throttled_refuses() -> None:
    with pytest.raises(_hardware.HardwareError, match="throttled=0x"):
        _hardware.parse_throttled('error=1 error_msg="Command not registered"')


# --- collector on a fixture tree ---------------------------------------------------------


def write(root: Path, rel: str, content: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def pi5_tree(root: Path, *, hailo: str | None = None, nvme_mounted: bool = False) -> Path:
    write(root, "proc/device-tree/model", "Raspberry Pi 5 Model B Rev 1.0\0")
    write(root, "proc/device-tree/system/linux,revision", struct.pack(">I", 0xD04170))
    write(root, "proc/meminfo", "MemTotal:        8245424 kB\n")
    write(root, "proc/self/smaps", "55d0-55e0 r--p 0 00:00 0\nKernelPageSize:       16 kB\n")
    write(root, "proc/cmdline", "console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 rootwait\n")
    mounts = "/dev/mmcblk0p2 / ext4 rw 0 0\n"
    if nvme_mounted:
        mounts += "/dev/nvme0n1p1 /mnt ext4 rw 0 0\n"
    write(root, "proc/mounts", mounts)
    (root / "dev/disk/by-partuuid").mkdir(parents=True)
    (root / "dev/disk/by-partuuid/4e639091-02").symlink_to("../../mmcblk0p2")
    write(root, "sys/block/nvme0n1/size", "500118192\n")
    write(root, "sys/block/nvme0n1/device/model", "Samsung SSD 980 500GB   \n")
    write(root, "sys/block/nvme0n1/nvme0n1p1/partition", "1\n")
    write(root, "sys/block/mmcblk0/size", "62333952\n")
    write(root, "sys/bus/pci/devices/0001:00:00.0/vendor", "0x14e4\n")
    write(root, "sys/bus/pci/devices/0001:00:00.0/device", "0x2712\n")
    if hailo:
        vendor, device = hailo.split(":")
        write(root, "sys/bus/pci/devices/0001:01:00.0/vendor", f"0x{vendor}\n")
        write(root, "sys/bus/pci/devices/0001:01:00.0/device", f"0x{device}\n")
        write(root, "dev/hailo0", "")
        write(root, "sys/module/hailo_pci/version", "4.20.0\n")
    return root


IDENTIFY = "Firmware Version: 4.20.0 (release,app)\nDevice Architecture: HAILO8L\n"
EEPROM = "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf41\n"


class FakeNode:
    """Tools as a node would have them: a dict of argv[0] basename -> (rc, stdout)."""

    def __init__(self, tools: dict[str, tuple[int, str]]) -> None:
        self.tools = tools
        self.calls: list[list[str]] = []

    def which(self, name: str) -> str | None:
        return f"/usr/bin/{name}" if name in self.tools else None

    def run(self, argv: Sequence[str]) -> tuple[int, str, str]:
        self.calls.append(list(argv))
        rc, out = self.tools[Path(argv[0]).name]
        return rc, out, "" if rc == 0 else "failed"


def test_collect_fixture_pi5_with_hailo8l(tmp_path: Path) -> None:
    node = FakeNode(
        {
            "dpkg-query": (
                1,
                "hailort\t4.20.0-1\thi \nhailo-dkms\t4.20.0-1\tii \nhailofw\t4.20.0\tun \nhailo-all\t4.20.0\trc \n",
            ),
            "hailortcli": (0, IDENTIFY),
            "rpi-eeprom-config": (0, EEPROM),
            "vcgencmd": (0, "throttled=0x50000\n"),
        }
    )
    facts = _hardware.collect(str(pi5_tree(tmp_path, hailo="1e60:2864")), node.run, node.which, probe_npu=True)
    assert facts["source"] == "fixture"
    assert facts["board"] == {
        "source": "fixture",
        "model": "Raspberry Pi 5 Model B",
        "revision": "1.0",
        "is_pi5": True,
        "revision_code": "d04170",
        "memory_mb": 8192,
        "processor": "BCM2712",
    }
    assert facts["memory"]["nominal_gb"] == 8
    assert facts["page_size"] == {"source": "fixture", "bytes": 16384, "label": "16k"}
    assert facts["boot"]["root_device"] == "/dev/mmcblk0p2"
    assert facts["boot"]["device_kind"] == "sd"
    assert facts["boot"]["root_partuuid"] == "4e639091-02"
    assert [d["name"] for d in facts["nvme"]["disks"]] == ["nvme0n1"]
    assert facts["nvme"]["disks"][0]["size_bytes"] == 500118192 * 512
    assert facts["nvme"]["disks"][0]["model"] == "Samsung SSD 980 500GB"
    npu = facts["npu"]
    assert (npu["family"], npu["model"], npu["pci_id"]) == ("hailo8", "hailo8l", "1e60:2864")
    assert npu["device_paths"] == ["/dev/hailo0"]
    assert npu["packages"] == {"hailort": "4.20.0-1", "hailo-dkms": "4.20.0-1"}
    assert (npu["library_version"], npu["driver_version"]) == ("4.20.0", "4.20.0")
    assert facts["bootloader"]["config"]["BOOT_ORDER"] == "0xf41"
    assert facts["bootloader"]["boot_order"] == ["sd", "usb", "restart"]
    assert facts["throttled"]["flags"] == ["under_voltage_occurred", "throttled_occurred"]
    assert [p["id"] for p in facts["problems"]] == ["page_size_16k"]
    assert ["/usr/bin/hailortcli", "fw-control", "identify"] in node.calls


def test_collect_reports_problems(tmp_path: Path) -> None:
    root = pi5_tree(tmp_path, hailo="1e60:2864")
    (root / "dev/hailo0").unlink()
    write(root, "sys/module/hailo_pci/version", "4.20.0\n")
    node = FakeNode(
        {
            "dpkg-query": (0, "hailort\t4.22.0-1\tii \nhailo-dkms\t4.22.0-1\tii \nh10-hailort\t5.1.1\tii \n"),
            "vcgencmd": (0, "throttled=0x5\n"),
            "rpi-eeprom-config": (0, EEPROM),
            "rpi-eeprom-update": (1, "BOOTLOADER: update available\n   CURRENT: x (1696593600)\n"),
        }
    )
    facts = _hardware.collect(str(root), node.run, node.which)
    ids = [p["id"] for p in facts["problems"]]
    assert ids == [
        "page_size_16k",
        "npu_both_stacks",
        "npu_version_mismatch",
        "npu_no_device_node",
        "bootloader_too_old",
        "throttled",
    ]
    assert facts["bootloader"]["firmware"]["nvme_capable"] is False


def test_collect_empty_root_is_absent(tmp_path: Path) -> None:
    facts = _hardware.collect(str(tmp_path))
    for group in ("board", "memory", "page_size", "boot", "pcie", "npu", "bootloader", "throttled", "nvme"):
        assert facts[group]["source"] == "absent", group
    assert facts["npu"]["family"] == "none"
    assert facts["problems"] == []


def test_collect_container_at_live_root_hides_host_hardware() -> None:
    facts = _hardware.collect("/", container=True)
    assert facts["source"] == "hardware"
    assert facts["container"] is True
    for group in ("board", "boot", "pcie", "bootloader"):
        assert facts[group]["source"] == "absent"
        assert "container" in facts[group]["reason"]
    assert facts["page_size"]["source"] == "hardware"


def test_collect_refuses_missing_root(tmp_path: Path) -> None:
    with pytest.raises(_hardware.HardwareError, match="not a directory"):
        _hardware.collect(str(tmp_path / "missing"))


def test_public_drops_internal_keys(tmp_path: Path) -> None:
    facts = _hardware.collect(str(pi5_tree(tmp_path)))
    assert "_mounts" in facts
    assert not [k for k in _hardware.public(facts) if k.startswith("_")]


# --- the PCIe lane and the OS release ----------------------------------------------------


def add_pci(root: Path, slot: str, pci_id: str, pci_class: str) -> None:
    vendor, device = pci_id.split(":")
    write(root, f"sys/bus/pci/devices/{slot}/vendor", f"0x{vendor}\n")
    write(root, f"sys/bus/pci/devices/{slot}/device", f"0x{device}\n")
    write(root, f"sys/bus/pci/devices/{slot}/class", f"0x{pci_class}\n")


def test_pcie_lane_finds_nvme_npu_and_switch_ports(tmp_path: Path) -> None:
    root = pi5_tree(tmp_path)
    write(root, "sys/bus/pci/devices/0001:00:00.0/class", "0x060400\n")  # root port: not a switch
    add_pci(root, "0001:01:00.0", "1b21:1182", "060400")  # switch upstream port
    add_pci(root, "0001:02:03.0", "1b21:1182", "060400")  # switch downstream port
    add_pci(root, "0001:03:00.0", "1e60:2864", "120000")  # Hailo-8 (processing accelerator)
    add_pci(root, "0001:04:00.0", "144d:a809", "010802")  # NVMe controller
    add_pci(root, "0002:01:00.0", "1de4:0001", "020000")  # RP1: none of the three
    facts = _hardware.collect(str(root))
    assert facts["pcie"]["lane"] == {
        "nvme": ["0001:04:00.0"],
        "npu": ["0001:03:00.0"],
        "switch": ["0001:01:00.0", "0001:02:03.0"],
    }
    nvme = next(d for d in facts["pcie"]["devices"] if d["slot"] == "0001:04:00.0")
    assert nvme["class"] == "010802"


def test_pcie_lane_is_empty_without_a_bus(tmp_path: Path) -> None:
    facts = _hardware.collect(str(tmp_path))
    assert facts["pcie"]["lane"] == {"nvme": [], "npu": [], "switch": []}


@pytest.mark.parametrize(
    ("text", "codename", "version"),
    [
        (
            'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\nVERSION_ID="13"\nVERSION_CODENAME=trixie\n',
            "trixie",
            "13",
        ),
        ("ID=debian\nVERSION_ID='12'\nVERSION_CODENAME=bookworm\n# comment\n", "bookworm", "12"),
    ],
)
def test_os_release_is_read_from_the_live_system(tmp_path: Path, text: str, codename: str, version: str) -> None:
    release = tmp_path / "os-release"
    release.write_text(text)
    facts = _hardware.collect(str(pi5_tree(tmp_path / "hw")), os_release=str(release))
    assert facts["os"]["source"] == "system"
    assert (facts["os"]["codename"], facts["os"]["version_id"], facts["os"]["id"]) == (codename, version, "debian")


def test_os_release_missing_is_absent(tmp_path: Path) -> None:
    facts = _hardware.collect(str(tmp_path), os_release=str(tmp_path / "none"))
    assert facts["os"]["source"] == "absent"
    assert facts["os"]["codename"] is None


def test_throttle_table_is_the_metrics_producers() -> None:
    from ansible_collections.edgeslm.pi5.plugins.module_utils import _pi_metrics

    assert _hardware.THROTTLE_FLAGS is _pi_metrics.THROTTLE_FLAGS
