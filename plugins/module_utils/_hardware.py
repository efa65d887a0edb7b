# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Raspberry Pi 5 hardware facts: parsers for kernel and tool output, and one collector.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

Every hardware file is read below a `root` directory, so tests point the collector at a
fixture tree. Each fact group carries `source`:

- "hardware": read from the live system (root "/");
- "fixture": read below another root (a test tree that mirrors /proc, /sys and /dev);
- "absent": not found; `reason` says why (a container at root "/" has no board of its own).

Installed packages are software, read from the node's dpkg database whatever the root,
and their group says "system". Tools (rpi-eeprom-config, vcgencmd, hailortcli) run on the
node when they are on its PATH, and take the root's provenance.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible_collections.edgeslm.pi5.plugins.module_utils import _disks, _eeprom, _hailo, _pi_metrics

__all__ = [
    "THROTTLE_FLAGS",
    "BoardModel",
    "HardwareError",
    "RevisionCode",
    "Runner",
    "collect",
    "is_container",
    "nominal_ram_gb",
    "page_size_label",
    "parse_cmdline_root",
    "parse_cpuinfo_revision",
    "parse_device_tree_model",
    "parse_meminfo_total",
    "parse_os_release",
    "parse_revision_code",
    "parse_smaps_page_size",
    "parse_throttled",
    "pcie_lane",
    "public",
]

# (argv) -> (rc, stdout, stderr)
Runner = Callable[[Sequence[str]], tuple[int, str, str]]
Which = Callable[[str], "str | None"]

# One table, kept with the metrics producer that runs on the node (module_utils/_pi_metrics.py).
THROTTLE_FLAGS: dict[int, str] = _pi_metrics.THROTTLE_FLAGS
# PCI class codes (PCI-SIG PCI Code and ID Assignment Specification): 01 08 02 is a mass storage
# non-volatile memory controller with the NVM Express interface; 06 04 is a PCI-to-PCI bridge
# (the root port of each PCIe domain, and the ports of a PCIe switch board).
PCI_CLASS_NVME = "010802"
PCI_CLASS_BRIDGE = "0604"
_MEMORY_MB = {0: 256, 1: 512, 2: 1024, 3: 2048, 4: 4096, 5: 8192, 6: 16384}
_PROCESSORS = {0: "BCM2835", 1: "BCM2836", 2: "BCM2837", 3: "BCM2711", 4: "BCM2712"}
_BOARD_TYPES = {0x11: "4B", 0x13: "400", 0x14: "CM4", 0x17: "5", 0x18: "CM5", 0x19: "500"}
_MODEL_RE = re.compile(r"^(?P<model>.*?)(?:\s+Rev\s+(?P<rev>[0-9A-Za-z.]+))?$")
_CONTAINER_MARKERS = ("/run/.containerenv", "/.dockerenv")


class HardwareError(ValueError):
    """A hardware file or tool output cannot be parsed."""


@dataclass(frozen=True)
class BoardModel:
    model: str
    revision: str | None
    is_pi5: bool


def parse_device_tree_model(text: str) -> BoardModel:
    """`Raspberry Pi 5 Model B Rev 1.0\\0` -> BoardModel("Raspberry Pi 5 Model B", "1.0", True)."""
    cleaned = text.replace("\0", "").strip()
    if not cleaned:
        raise HardwareError("device-tree model is empty")
    match = _MODEL_RE.match(cleaned)
    model = match.group("model") if match else cleaned
    revision = match.group("rev") if match else None
    return BoardModel(model=model, revision=revision, is_pi5=model.startswith("Raspberry Pi 5"))


@dataclass(frozen=True)
class RevisionCode:
    code: str
    memory_mb: int | None
    processor: str | None
    board_type: str | None
    pcb_revision: int


def parse_revision_code(value: str | int) -> RevisionCode:
    """Decode a new-style revision code (bit 23 set): RAM bits 20-22, processor 12-15, type 4-11."""
    try:
        code = value if isinstance(value, int) else int(str(value).strip(), 16)
    except ValueError as exc:
        raise HardwareError(f"revision code must be hexadecimal, got {value!r}") from exc
    if not code & (1 << 23):
        raise HardwareError(f"revision code {code:x} is old-style (pre Raspberry Pi 2); no memory field")
    return RevisionCode(
        code=f"{code & 0xFFFFFF:06x}",
        memory_mb=_MEMORY_MB.get((code >> 20) & 0x7),
        processor=_PROCESSORS.get((code >> 12) & 0xF),
        board_type=_BOARD_TYPES.get((code >> 4) & 0xFF),
        pcb_revision=code & 0xF,
    )


def parse_cpuinfo_revision(text: str) -> str | None:
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "Revision" and value.strip():
            return value.strip()
    return None


def parse_meminfo_total(text: str) -> int | None:
    """MemTotal in bytes."""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            fields = line.split()
            unit = fields[2].lower() if len(fields) > 2 else "kb"
            factor = {"kb": 1024, "mb": 1024**2, "b": 1}.get(unit)
            if factor is None or not fields[1].isdigit():
                raise HardwareError(f"cannot read MemTotal from {line!r}")
            return int(fields[1]) * factor
    return None


def nominal_ram_gb(total_bytes: int) -> int:
    """Board RAM as sold (1, 2, 4, 8, 16 GB): the kernel sees a little less than the chips hold."""
    gib = total_bytes / 1024**3
    for size in (1, 2, 4, 8, 16, 32, 64):
        if gib <= size:
            return size
    return round(gib)


def page_size_label(size: int) -> str:
    if size <= 0 or size % 1024:
        raise HardwareError(f"page size {size} is not a positive multiple of 1024")
    return f"{size // 1024}k"


def parse_smaps_page_size(text: str) -> int | None:
    for line in text.splitlines():
        if line.startswith("KernelPageSize:"):
            fields = line.split()
            return int(fields[1]) * 1024
    return None


def parse_cmdline_root(text: str) -> str | None:
    """The root= token of a kernel command line (the last one wins, as in the kernel)."""
    root = None
    for token in text.split():
        if token.startswith("root="):
            root = token[len("root=") :]
    return root


def parse_throttled(text: str) -> dict[str, Any]:
    """`throttled=0x50005` -> raw value and the names of the set flags."""
    try:
        raw = _pi_metrics.parse_throttled_output(text)
    except _pi_metrics.MetricsError as exc:
        raise HardwareError(str(exc)) from exc
    flags = [name for bit, name in sorted(THROTTLE_FLAGS.items()) if raw & (1 << bit)]
    return {"raw": f"0x{raw:x}", "flags": flags, "now": [f for f in flags if not f.endswith("_occurred")]}


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines of os-release(5), quotes removed."""
    result: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or key.startswith("#"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        result[key.strip()] = value
    return result


# --- collector ----------------------------------------------------------------


class _Tree:
    """Reads below a root directory; remembers whether that root is the live system."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self.live = self.root.resolve() == Path("/")
        self.source = "hardware" if self.live else "fixture"

    def path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")

    def read(self, rel: str, binary: bool = False) -> str | bytes | None:
        try:
            data = self.path(rel).read_bytes()
        except (FileNotFoundError, NotADirectoryError, PermissionError, IsADirectoryError):
            return None
        return data if binary else data.decode("utf-8", "replace")

    def text(self, rel: str) -> str | None:
        value = self.read(rel)
        return value if isinstance(value, str) else None


def _absent(reason: str, **extra: Any) -> dict[str, Any]:
    return {"source": "absent", "reason": reason, **extra}


def _board(tree: _Tree, problems: list[dict[str, str]]) -> dict[str, Any]:
    text = tree.text("proc/device-tree/model")
    if text is None:
        return _absent("no proc/device-tree/model below the hardware root", is_pi5=False)
    board = parse_device_tree_model(text)
    result: dict[str, Any] = {
        "source": tree.source,
        "model": board.model,
        "revision": board.revision,
        "is_pi5": board.is_pi5,
    }
    code: str | None = None
    raw = tree.read("proc/device-tree/system/linux,revision", binary=True)
    if isinstance(raw, bytes) and len(raw) == 4:
        code = f"{struct.unpack('>I', raw)[0]:x}"
    else:
        cpuinfo = tree.text("proc/cpuinfo")
        code = parse_cpuinfo_revision(cpuinfo) if cpuinfo else None
    if code:
        try:
            rev = parse_revision_code(code)
            result.update(revision_code=rev.code, memory_mb=rev.memory_mb, processor=rev.processor)
        except HardwareError as exc:
            result["revision_code_error"] = str(exc)
    if not board.is_pi5:
        problems.append({"id": "not_pi5", "message": f"the hardware root describes {board.model!r}, not a Pi 5"})
    return result


def _memory(tree: _Tree, board: Mapping[str, Any]) -> dict[str, Any]:
    text = tree.text("proc/meminfo")
    total = parse_meminfo_total(text) if text else None
    if total is None:
        return _absent("no proc/meminfo below the hardware root")
    nominal = nominal_ram_gb(total)
    board_mb = board.get("memory_mb")
    if isinstance(board_mb, int):
        nominal = board_mb // 1024 or nominal
    return {"source": tree.source, "total_bytes": total, "total_mb": total // 1024**2, "nominal_gb": nominal}


def _page_size(tree: _Tree, problems: list[dict[str, str]]) -> dict[str, Any]:
    if tree.live:
        size: int | None = os.sysconf("SC_PAGE_SIZE")
    else:
        text = tree.text("proc/self/smaps")
        size = parse_smaps_page_size(text) if text else None
    if not size:
        return _absent("no proc/self/smaps below the hardware root")
    label = page_size_label(size)
    if size == 16384:
        problems.append(
            {
                "id": "page_size_16k",
                "message": "the kernel uses 16K pages; many arm64 images abort (jemalloc). "
                "Set pi5_common_kernel_4k_pages: true to boot kernel8.img",
            }
        )
    return {"source": tree.source, "bytes": size, "label": label}


def _boot(tree: _Tree, mounts: list[_disks.Mount], container: bool) -> dict[str, Any]:
    if container:
        return _absent("container: /proc/cmdline and the boot disk belong to the host")
    cmdline = tree.text("proc/cmdline")
    root_arg = parse_cmdline_root(cmdline) if cmdline else None
    partuuid = root_arg[len("PARTUUID=") :] if root_arg and root_arg.startswith("PARTUUID=") else None
    device: str | None = None
    if partuuid:
        link = tree.path(f"dev/disk/by-partuuid/{partuuid}")
        if link.is_symlink():
            device = "/dev/" + link.readlink().name
    elif root_arg and root_arg.startswith("/dev/"):
        device = root_arg
    if device is None:
        device = next((m.device for m in mounts if m.mountpoint == "/" and m.device.startswith("/dev/")), None)
    if root_arg is None and device is None:
        return _absent("neither proc/cmdline nor proc/mounts name the root device")
    return {
        "source": tree.source,
        "root_arg": root_arg,
        "root_partuuid": partuuid,
        "root_device": device,
        "device_kind": _disks.classify_device(device),
    }


def _block_disks(tree: _Tree, prefix: str) -> list[_disks.Disk]:
    base = tree.path("sys/block")
    if not base.is_dir():
        return []
    disks = []
    for entry in sorted(base.iterdir()):
        if not entry.name.startswith(prefix):
            continue
        size_text = tree.text(f"sys/block/{entry.name}/size")
        size = int(size_text.strip()) * 512 if size_text and size_text.strip().isdigit() else 0
        model = tree.text(f"sys/block/{entry.name}/device/model")
        parts = tuple(
            sorted(p.name for p in entry.iterdir() if p.name.startswith(entry.name) and (p / "partition").exists())
        )
        disks.append(_disks.Disk(entry.name, size, model.strip() if model else None, parts))
    return disks


def _pcie(tree: _Tree, container: bool) -> dict[str, Any]:
    if container:
        return _absent("container: the PCIe bus belongs to the host", devices=[], lane=pcie_lane([]))
    base = tree.path("sys/bus/pci/devices")
    if not base.is_dir():
        return _absent("no sys/bus/pci/devices below the hardware root", devices=[], lane=pcie_lane([]))
    devices = []
    for entry in sorted(base.iterdir()):
        vendor = tree.text(f"sys/bus/pci/devices/{entry.name}/vendor")
        device = tree.text(f"sys/bus/pci/devices/{entry.name}/device")
        if not vendor or not device:
            continue
        pci_id = f"{vendor.strip().lower().removeprefix('0x')}:{device.strip().lower().removeprefix('0x')}"
        class_text = tree.text(f"sys/bus/pci/devices/{entry.name}/class")
        pci_class = class_text.strip().lower().removeprefix("0x") if class_text else None
        driver_link = entry / "driver"
        driver = driver_link.readlink().name if driver_link.is_symlink() else None
        devices.append({"slot": entry.name, "id": pci_id, "class": pci_class, "driver": driver})
    return {"source": tree.source, "devices": devices, "lane": pcie_lane(devices)}


def _bus_number(slot: str) -> str:
    """`0001:01:00.0` -> `01` (domain:bus:device.function)."""
    parts = slot.split(":")
    return parts[-2] if len(parts) >= 2 else ""


def pcie_lane(devices: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """What occupies the PCIe lane: NVMe controllers, Hailo NPUs, and switch ports (bridges below a root port)."""
    nvme = [d["slot"] for d in devices if (d.get("class") or "").startswith(PCI_CLASS_NVME)]
    npu = [d["slot"] for d in devices if str(d.get("id", "")).lower() in _hailo.HAILO_PCI_IDS]
    switch = [
        d["slot"]
        for d in devices
        if (d.get("class") or "").startswith(PCI_CLASS_BRIDGE) and _bus_number(str(d["slot"])) not in ("", "00")
    ]
    return {"nvme": nvme, "npu": npu, "switch": switch}


def _packages(run: Runner | None, which: Which) -> dict[str, str]:
    names = sorted({p for stack in _hailo.STACKS.values() for p in stack.packages})
    if run is None or not which("dpkg-query"):
        return {}
    out = run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n", *names])[1]
    installed = {}
    for line in out.splitlines():
        fields = line.split("\t")
        # db:Status-Abbrev: desired action, current state, error; "ii" and "hi" (held) are installed.
        if len(fields) == 3 and fields[2][1:2] == "i" and fields[1]:
            installed[fields[0]] = fields[1]
    return installed


def _npu(
    tree: _Tree,
    pcie: Mapping[str, Any],
    run: Runner | None,
    which: Which,
    probe: bool,
    problems: list[dict[str, str]],
) -> dict[str, Any]:
    family, pci_id = _hailo.detect_family(d["id"] for d in pcie.get("devices", []))
    dev_dir = tree.path("dev")
    device_paths = sorted(f"/dev/{p.name}" for p in dev_dir.glob("hailo*")) if dev_dir.is_dir() else []
    packages = _packages(run, which)
    result: dict[str, Any] = {
        "source": pcie["source"] if pcie["source"] != "absent" else "absent",
        "family": family,
        "model": family,
        "pci_id": pci_id,
        "device_paths": device_paths,
        "packages": packages,
        "packages_source": "system" if packages else "absent",
        "kernel_module": None,
        "driver_version": None,
        "library_version": None,
        "identify": None,
    }
    if pcie["source"] == "absent":
        result["reason"] = pcie.get("reason")
    families_installed = [f for f, s in _hailo.STACKS.items() if any(p in packages for p in s.packages)]
    if len(families_installed) > 1:
        problems.append(
            {"id": "npu_both_stacks", "message": "packages of both Hailo stacks are installed; they cannot coexist"}
        )
    stack_family = family if family != "none" else (families_installed[0] if len(families_installed) == 1 else None)
    if stack_family:
        stack = _hailo.STACKS[stack_family]
        result["kernel_module"] = stack.kernel_module
        runtime = tree.text(f"sys/module/{stack.kernel_module}/version")
        result["driver_version"] = runtime.strip() if runtime else None
        if stack.library_package in packages:
            result["library_version"] = _hailo.upstream_version(packages[stack.library_package])
        if stack.driver_package in packages and result["driver_version"] is None:
            result["driver_version"] = _hailo.upstream_version(packages[stack.driver_package])
        library, driver = result["library_version"], result["driver_version"]
        if library and driver and library != driver:
            problems.append(
                {
                    "id": "npu_version_mismatch",
                    "message": f"HailoRT library {library} and driver {driver} differ (HAILO_INVALID_DRIVER_VERSION)",
                }
            )
    if family != "none" and not device_paths and packages:
        problems.append(
            {
                "id": "npu_no_device_node",
                "message": f"{pci_id} is on the bus but no /dev/hailo* exists: driver not bound",
            }
        )
    tool = which("hailortcli")
    if probe and family != "none" and device_paths and tool and run is not None:
        rc, out, err = run([tool, "fw-control", "identify"])
        if rc == 0:
            try:
                result["identify"] = _hailo.parse_identify(out)
                result["model"] = _hailo.model_from_architecture(result["identify"]["architecture"])
            except _hailo.HailoError as exc:
                problems.append({"id": "npu_identify_unreadable", "message": str(exc)})
        else:
            problems.append(
                {"id": "npu_identify_failed", "message": f"hailortcli fw-control identify exited {rc}: {err.strip()}"}
            )
    return result


def _bootloader(
    tree: _Tree, run: Runner | None, which: Which, container: bool, problems: list[dict[str, str]]
) -> dict[str, Any]:
    if container:
        return _absent("container: the bootloader EEPROM belongs to the host")
    tool = which("rpi-eeprom-config")
    if tool is None or run is None:
        return _absent("rpi-eeprom-config is not installed")
    rc, out, err = run([tool])
    if rc != 0:
        return _absent(f"rpi-eeprom-config exited {rc}: {err.strip()}")
    config = _eeprom.parse_eeprom_config(out)
    result: dict[str, Any] = {"source": tree.source, "config": config.settings, "text": out, "firmware": None}
    if "BOOT_ORDER" in config.settings:
        try:
            result["boot_order"] = _eeprom.decode_boot_order(config.settings["BOOT_ORDER"], "BOOT_ORDER")
        except _eeprom.BootOrderError as exc:
            problems.append({"id": "boot_order_unreadable", "message": str(exc)})
    update = which("rpi-eeprom-update")
    if update:
        rc, out, err = run([update])
        # rpi-eeprom-update exits non-zero when an update is available; the text is what matters.
        try:
            status = _eeprom.parse_update_status(out)
            result["firmware"] = {
                "current_epoch": status.current_epoch,
                "latest_epoch": status.latest_epoch,
                "update_available": status.update_available,
                "release": status.release,
                "nvme_capable": not _eeprom.firmware_too_old(status),
            }
            if _eeprom.firmware_too_old(status):
                problems.append(
                    {
                        "id": "bootloader_too_old",
                        "message": "the bootloader predates 2023-12-06 and cannot boot from NVMe; "
                        "run rpi-eeprom-update -a (ssd_boot_eeprom_firmware_update: true)",
                    }
                )
        except _eeprom.EepromError as exc:
            result["firmware_error"] = str(exc)
    return result


def _throttled(tree: _Tree, run: Runner | None, which: Which, problems: list[dict[str, str]]) -> dict[str, Any]:
    tool = which("vcgencmd")
    if tool is None or run is None:
        return _absent("vcgencmd is not installed")
    rc, out, err = run([tool, "get_throttled"])
    if rc != 0:
        return _absent(f"vcgencmd get_throttled exited {rc}: {err.strip()}")
    state = parse_throttled(out)
    if state["now"]:
        problems.append({"id": "throttled", "message": f"the board reports {', '.join(state['now'])} now"})
    return {"source": tree.source, **state}


def _os_release(path: str) -> dict[str, Any]:
    """The node's operating system: software, read from the live system whatever the hardware root."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return _absent(f"cannot read {path}: {exc.strerror}", id=None, version_id=None, codename=None)
    fields = parse_os_release(text)
    return {
        "source": "system",
        "id": fields.get("ID"),
        "version_id": fields.get("VERSION_ID"),
        "codename": fields.get("VERSION_CODENAME"),
        "pretty_name": fields.get("PRETTY_NAME"),
    }


def is_container(root: str = "/") -> bool:
    """True when this process runs in a container (podman/docker marker files)."""
    return any(Path(root, marker.lstrip("/")).exists() for marker in _CONTAINER_MARKERS)


def collect(
    root: str = "/",
    run: Runner | None = None,
    which: Which = lambda name: None,
    probe_npu: bool = False,
    container: bool | None = None,
    os_release: str = "/etc/os-release",
) -> dict[str, Any]:
    """Collect every fact group below `root`. `run` executes a read-only tool; `which` finds one."""
    tree = _Tree(root)
    if not tree.root.is_dir():
        raise HardwareError(f"hardware root {root!r} is not a directory")
    in_container = (is_container("/") if container is None else container) and tree.live
    problems: list[dict[str, str]] = []
    if in_container:
        board: dict[str, Any] = _absent("container: the board belongs to the host", is_pi5=False)
    else:
        board = _board(tree, problems)
    mounts_text = tree.text("proc/mounts") or tree.text("proc/self/mounts") or ""
    mounts = _disks.parse_mounts(mounts_text)
    nvme_disks = [] if in_container else _block_disks(tree, "nvme")
    pcie = _pcie(tree, in_container)
    facts: dict[str, Any] = {
        "root": str(tree.root),
        "source": tree.source,
        "container": in_container,
        "os": _os_release(os_release),
        "board": board,
        "memory": _memory(tree, board),
        "page_size": _page_size(tree, problems),
        "boot": _boot(tree, mounts, in_container),
        "nvme": {
            "source": tree.source if tree.path("sys/block").is_dir() and not in_container else "absent",
            "present": bool(nvme_disks),
            "disks": [d.as_dict() for d in nvme_disks],
        },
        "pcie": pcie,
        "npu": _npu(tree, pcie, run, which, probe_npu, problems),
        "bootloader": _bootloader(tree, run, which, in_container, problems),
        "throttled": _throttled(tree, run, which, problems) if not in_container else _absent("container"),
        "problems": problems,
    }
    # Internal: what plan_* helpers need; dropped before facts are returned.
    facts["_mounts"] = mounts
    facts["_disks"] = nvme_disks
    return facts


def public(facts: Mapping[str, Any]) -> dict[str, Any]:
    """Facts without the internal keys, JSON-clean."""
    cleaned = {k: v for k, v in facts.items() if not k.startswith("_")}
    result: dict[str, Any] = json.loads(json.dumps(cleaned))
    return result
