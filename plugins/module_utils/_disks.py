# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Block devices on a Raspberry Pi 5 and the SD -> NVMe migration decision.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

Raspberry Pi OS names partitions `root=PARTUUID=<disk id>-02` in cmdline.txt and fstab.
A block copy keeps the disk id, so with the SD card still inserted the PARTUUID would
name two partitions: a migration gives the new disk a fresh id and rewrites both files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "Disk",
    "DiskError",
    "MigrationPlan",
    "Mount",
    "classify_device",
    "disk_of",
    "normalize_disk_id",
    "parse_mounts",
    "partition_name",
    "plan_migration",
]

_WHOLE_DISK = re.compile(r"^(nvme\d+n\d+|mmcblk\d+|sd[a-z]+)$")
_PARTITION = re.compile(r"^(nvme\d+n\d+|mmcblk\d+)p(\d+)$|^(sd[a-z]+)(\d+)$")
_DISK_ID = re.compile(r"^(0x)?([0-9a-fA-F]{8})$")


class DiskError(ValueError):
    """A disk name, disk id or migration request is malformed."""


@dataclass(frozen=True)
class Mount:
    device: str
    mountpoint: str
    fstype: str


@dataclass(frozen=True)
class Disk:
    """A whole disk as sysfs describes it."""

    name: str
    size_bytes: int
    model: str | None
    partitions: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": f"/dev/{self.name}",
            "size_bytes": self.size_bytes,
            "model": self.model,
            "partitions": list(self.partitions),
        }


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mounts(text: str) -> list[Mount]:
    """Parse /proc/mounts (octal escapes such as \\040 decoded)."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append(Mount(_unescape(fields[0]), _unescape(fields[1]), fields[2]))
    return mounts


def disk_of(device: str) -> str | None:
    """`/dev/nvme0n1p2` -> `nvme0n1`, `/dev/sda1` -> `sda`, a whole disk -> itself; else None."""
    name = device.removeprefix("/dev/")
    if _WHOLE_DISK.match(name):
        return name
    match = _PARTITION.match(name)
    if not match:
        return None
    return match.group(1) or match.group(3)


def classify_device(device: str | None) -> str:
    """Boot medium of a device: nvme, sd, usb or unknown."""
    disk = disk_of(device) if device else None
    if disk is None:
        return "unknown"
    if disk.startswith("nvme"):
        return "nvme"
    if disk.startswith("mmcblk"):
        return "sd"
    return "usb"


def partition_name(disk: str, number: int) -> str:
    """nvme0n1 + 2 -> nvme0n1p2; sda + 2 -> sda2."""
    name = disk.removeprefix("/dev/")
    if not _WHOLE_DISK.match(name):
        raise DiskError(f"{disk!r} is not a whole disk name (nvme0n1, mmcblk0, sda)")
    return f"{name}p{number}" if name[-1].isdigit() else f"{name}{number}"


def normalize_disk_id(value: str) -> str:
    """`0xABCD1234` or `abcd1234` -> `abcd1234` (the PARTUUID prefix form)."""
    match = _DISK_ID.match(value.strip())
    if not match:
        raise DiskError(f"a DOS disk id is 8 hex digits (optionally 0x-prefixed), got {value!r}")
    return match.group(2).lower()


@dataclass(frozen=True)
class MigrationPlan:
    """The decision for `ssd_boot_migrate`: migrate, done (already booted from target) or refuse."""

    action: str
    target: str
    reasons: tuple[str, ...]
    boot_partition: str | None = None
    root_partition: str | None = None
    source_disk: str | None = None
    source_disk_id: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "action": self.action,
            "target": self.target,
            "reasons": list(self.reasons),
            "boot_partition": self.boot_partition,
            "root_partition": self.root_partition,
            "source_disk": self.source_disk,
            "source_disk_id": self.source_disk_id,
        }


def plan_migration(
    target: str,
    disks: Iterable[Disk],
    mounts: Iterable[Mount],
    root_device: str | None,
    overwrite: bool = False,
    root_partuuid: str | None = None,
) -> MigrationPlan:
    """Decide whether the running system may be copied onto `target` (a whole NVMe disk).

    Refuses a partition or a missing disk, a disk with a mounted partition (always), and a
    disk that already holds partitions unless `overwrite` is set. When `/` already lives
    on the target the migration is done. `root_partuuid` (cmdline.txt's root=PARTUUID=)
    gives the source disk id the copied cmdline.txt and fstab must stop naming.
    """
    name = target.strip().removeprefix("/dev/")
    if not name:
        raise DiskError("ssd_boot_migration_target is empty; set it to the NVMe disk, e.g. /dev/nvme0n1")
    if not _WHOLE_DISK.match(name):
        return MigrationPlan(
            "refuse", name, (f"ssd_boot_migration_target {target!r} is not a whole disk (use /dev/nvme0n1)",)
        )
    by_name = {disk.name: disk for disk in disks}
    if name not in by_name:
        present = ", ".join(sorted(by_name)) or "none"
        return MigrationPlan("refuse", name, (f"disk {name} is not present (disks found: {present})",))
    if root_device and disk_of(root_device) == name:
        return MigrationPlan("done", name, (f"/ is already on {root_device}",))
    if not name.startswith("nvme"):
        return MigrationPlan("refuse", name, (f"{name} is not an NVMe disk; ssd_boot migrates to NVMe only",))
    reasons = []
    mounted = sorted(f"{m.device} on {m.mountpoint}" for m in mounts if disk_of(m.device) == name)
    if mounted:
        reasons.append(f"{name} has mounted partitions ({'; '.join(mounted)}); unmount them first")
    disk = by_name[name]
    if disk.partitions and not overwrite:
        reasons.append(
            f"{name} already holds partitions ({', '.join(disk.partitions)}); set ssd_boot_migration_overwrite: true "
            "to erase them"
        )
    if reasons:
        return MigrationPlan("refuse", name, tuple(reasons))
    return MigrationPlan(
        "migrate",
        name,
        (f"{name} is free: copy / and /boot/firmware to it",),
        boot_partition=f"/dev/{partition_name(name, 1)}",
        root_partition=f"/dev/{partition_name(name, 2)}",
        source_disk=f"/dev/{disk_of(root_device)}" if root_device and disk_of(root_device) else None,
        source_disk_id=normalize_disk_id(root_partuuid.split("-", 1)[0]) if root_partuuid else None,
    )
