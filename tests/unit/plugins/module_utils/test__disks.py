"""Block devices: naming, PARTUUID rewriting and the SD -> NVMe migration decision."""

from __future__ import annotations

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _disks

MOUNTS = """/dev/mmcblk0p2 / ext4 rw,noatime 0 0
/dev/mmcblk0p1 /boot/firmware vfat rw,relatime 0 0
/dev/nvme1n1p1 /srv/my\\040data ext4 rw 0 0
tmpfs /run tmpfs rw 0 0
"""
EMPTY = _disks.Disk("nvme0n1", 256 * 10**9, "Samsung SSD", ())
USED = _disks.Disk("nvme1n1", 512 * 10**9, "WD", ("nvme1n1p1",))
OLD = _disks.Disk("nvme2n1", 128 * 10**9, None, ("nvme2n1p1", "nvme2n1p2"))


def test_parse_mounts_unescapes() -> None:
    mounts = _disks.parse_mounts(MOUNTS)
    assert mounts[0] == _disks.Mount("/dev/mmcblk0p2", "/", "ext4")
    assert mounts[2].mountpoint == "/srv/my data"
    assert len(mounts) == 4


@pytest.mark.parametrize(
    ("device", "disk", "kind"),
    [
        ("/dev/nvme0n1p2", "nvme0n1", "nvme"),
        ("nvme0n1", "nvme0n1", "nvme"),
        ("/dev/mmcblk0p2", "mmcblk0", "sd"),
        ("/dev/sda2", "sda", "usb"),
        ("/dev/root", None, "unknown"),
        ("tmpfs", None, "unknown"),
    ],
)
def test_disk_of_and_classify(device: str, disk: str | None, kind: str) -> None:
    assert _disks.disk_of(device) == disk
    assert _disks.classify_device(device) == kind


@pytest.mark.parametrize(
    ("disk", "number", "name"), [("nvme0n1", 2, "nvme0n1p2"), ("/dev/mmcblk0", 1, "mmcblk0p1"), ("sdb", 2, "sdb2")]
)
def test_partition_name(disk: str, number: int, name: str) -> None:
    assert _disks.partition_name(disk, number) == name


def test_partition_name_refuses_partition() -> None:
    with pytest.raises(_disks.DiskError, match="not a whole disk"):
        _disks.partition_name("nvme0n1p1", 2)


@pytest.mark.parametrize(
    ("target", "root", "overwrite", "action", "reason"),
    [
        ("/dev/nvme0n1", "/dev/mmcblk0p2", False, "migrate", "is free"),
        ("nvme0n1", "/dev/mmcblk0p2", False, "migrate", "is free"),
        ("/dev/nvme0n1", "/dev/nvme0n1p2", False, "done", "already on /dev/nvme0n1p2"),
        ("/dev/nvme2n1", "/dev/mmcblk0p2", True, "migrate", "is free"),
        # Refusals, one case each.
        ("/dev/nvme0n1p1", "/dev/mmcblk0p2", False, "refuse", "not a whole disk"),
        ("/dev/nvme9n1", "/dev/mmcblk0p2", False, "refuse", "not present"),
        ("/dev/sda", "/dev/mmcblk0p2", False, "refuse", "not present"),
        ("/dev/nvme1n1", "/dev/mmcblk0p2", True, "refuse", "mounted partitions"),
        ("/dev/nvme2n1", "/dev/mmcblk0p2", False, "refuse", "ssd_boot_migration_overwrite"),
    ],
)
def test_plan_migration(target: str, root: str, overwrite: bool, action: str, reason: str) -> None:
    plan = _disks.plan_migration(target, [EMPTY, USED, OLD], _disks.parse_mounts(MOUNTS), root, overwrite)
    assert plan.action == action
    assert any(reason in r for r in plan.reasons), plan.reasons


def test_plan_migration_refuses_sd_target() -> None:
    sd = _disks.Disk("mmcblk1", 64 * 10**9, None, ())
    plan = _disks.plan_migration("/dev/mmcblk1", [sd], [], "/dev/mmcblk0p2")
    assert plan.action == "refuse"
    assert "not an NVMe disk" in plan.reasons[0]


def test_plan_migration_requires_target() -> None:
    with pytest.raises(_disks.DiskError, match="ssd_boot_migration_target is empty"):
        _disks.plan_migration("  ", [EMPTY], [], None)


def test_plan_migration_names_the_partitions() -> None:
    plan = _disks.plan_migration("/dev/nvme0n1", [EMPTY], [], "/dev/mmcblk0p2", root_partuuid="4E639091-02")
    assert (plan.boot_partition, plan.root_partition, plan.source_disk, plan.source_disk_id) == (
        "/dev/nvme0n1p1",
        "/dev/nvme0n1p2",
        "/dev/mmcblk0",
        "4e639091",
    )


@pytest.mark.parametrize(("value", "disk_id"), [("0x4E639091", "4e639091"), ("a1b2c3d4", "a1b2c3d4")])
def test_normalize_disk_id(value: str, disk_id: str) -> None:
    assert _disks.normalize_disk_id(value) == disk_id


@pytest.mark.parametrize("value", ["4e63909", "0x4e6390911", "zz", ""])
def test_normalize_disk_id_refuses(value: str) -> None:
    with pytest.raises(_disks.DiskError, match="8 hex digits"):
        _disks.normalize_disk_id(value)
