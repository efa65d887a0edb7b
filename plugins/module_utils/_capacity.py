# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a Raspberry Pi 5 node keeps back from pods, and what is left for them.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

One definition for three readers:

* the k3s role renders `kubelet_args(role)` into k3s's `kubelet-arg` list, so the kubelet
  reserves exactly this much (system-reserved, kube-reserved, the hard eviction threshold);
* scripts/validate-gitops schedules a site's pods against `allocatable(memory, role)`, what the
  kubelet reports as Node.status.allocatable with those arguments;
* the memory estimate's default reserve (_targets.DEFAULT_RESERVE) is `reserve_bytes("server")`,
  so "fits the board" and "fits the node" mean the same thing.

Kubernetes computes allocatable as capacity - kube-reserved - system-reserved - the hard
eviction threshold (kubelet docs "Reserve Compute Resources for System Daemons", node
allocatable). Capacity is what the kernel reports (MemTotal), which is below the board's RAM:
the firmware and kernel keep some for themselves (KERNEL_RESERVED_BYTES, the project's
estimate, not an upstream figure).

The reservations are the project's sizing for Raspberry Pi OS Lite (system) and a k3s server
or agent (kube: the k3s process with its embedded apiserver, etcd, controllers, kubelet and
containerd, which all run outside pods), not upstream defaults: k3s sets no reservations.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CPU_CORES",
    "EVICTION_HARD_KEPT",
    "EVICTION_HARD_MEMORY_BYTES",
    "K3S_EVICTION_SOURCE",
    "KERNEL_RESERVED_BYTES",
    "KUBE_RESERVED",
    "ROLES",
    "SYSTEM_RESERVED",
    "CapacityError",
    "Resources",
    "allocatable",
    "capacity",
    "kubelet_args",
    "reserve_bytes",
]

MIB = 1 << 20

ROLES = ("server", "agent")
# BCM2712: four Cortex-A76 cores (Raspberry Pi 5 product brief).
CPU_CORES = 4
# Not visible to the kubelet (below MemTotal): kernel image and reserved regions, firmware
# carve-outs. The project's estimate for Raspberry Pi OS on a Pi 5.
KERNEL_RESERVED_BYTES = 128 * MIB
# The hard memory eviction threshold the kubelet enforces (--eviction-hard memory.available).
EVICTION_HARD_MEMORY_BYTES = 128 * MIB
# k3s passes --eviction-hard itself, with only these two signals; a kubelet given
# --eviction-hard keeps no default for a signal left out, so the project's value repeats
# them next to memory.available instead of dropping them.
EVICTION_HARD_KEPT = ("nodefs.available<5%", "imagefs.available<5%")
K3S_EVICTION_SOURCE = (
    "k3s-io/k3s pkg/daemons/agent/agent_linux.go kubeletArgs: eviction-hard "
    "imagefs.available<5%,nodefs.available<5% (read at commit 82394d7d3642; the v1.33.7+k3s1 tag "
    "itself could not be read here)"
)


class CapacityError(ValueError):
    """An unknown k3s role or an impossible node size; the message names the field."""


@dataclass(frozen=True)
class Resources:
    """CPU in millicores and memory in bytes."""

    cpu_millis: int
    memory_bytes: int

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu_millis - other.cpu_millis, self.memory_bytes - other.memory_bytes)

    def as_kubelet(self) -> str:
        """The kubelet's `cpu=...,memory=...` form."""
        return f"cpu={self.cpu_millis}m,memory={self.memory_bytes // MIB}Mi"


# Raspberry Pi OS Lite: systemd, journald, sshd, udev, chrony, the Ansible-managed services.
SYSTEM_RESERVED = Resources(250, 256 * MIB)
# The k3s process: a server runs the apiserver, embedded etcd, scheduler and controllers as well.
KUBE_RESERVED: dict[str, Resources] = {
    "server": Resources(500, 640 * MIB),
    "agent": Resources(250, 256 * MIB),
}


def _role(role: str) -> str:
    if role not in KUBE_RESERVED:
        raise CapacityError(f"k3s_role: {role!r} must be one of {', '.join(ROLES)}")
    return role


def kubelet_args(role: str) -> list[str]:
    """k3s `kubelet-arg` entries that make the kubelet reserve what allocatable() assumes."""
    kube = KUBE_RESERVED[_role(role)]
    eviction = ",".join((f"memory.available<{EVICTION_HARD_MEMORY_BYTES // MIB}Mi", *EVICTION_HARD_KEPT))
    return [
        f"system-reserved={SYSTEM_RESERVED.as_kubelet()}",
        f"kube-reserved={kube.as_kubelet()}",
        f"eviction-hard={eviction}",
    ]


def capacity(board_memory_bytes: int) -> Resources:
    """Node.status.capacity of a Pi 5 with `board_memory_bytes` of RAM (cpu, memory)."""
    if isinstance(board_memory_bytes, bool) or not isinstance(board_memory_bytes, int) or board_memory_bytes <= 0:
        raise CapacityError(f"memory_bytes: must be a positive integer, got {board_memory_bytes!r}")
    return Resources(CPU_CORES * 1000, board_memory_bytes - KERNEL_RESERVED_BYTES)


def reserve_bytes(role: str) -> int:
    """Board RAM a node of `role` keeps from pods: kernel, system, kube and the eviction threshold."""
    kube = KUBE_RESERVED[_role(role)]
    return KERNEL_RESERVED_BYTES + SYSTEM_RESERVED.memory_bytes + kube.memory_bytes + EVICTION_HARD_MEMORY_BYTES


def allocatable(board_memory_bytes: int, role: str) -> Resources:
    """Node.status.allocatable: capacity minus system-reserved, kube-reserved and hard eviction."""
    kube = KUBE_RESERVED[_role(role)]
    left = capacity(board_memory_bytes) - SYSTEM_RESERVED - kube - Resources(0, EVICTION_HARD_MEMORY_BYTES)
    if left.memory_bytes <= 0 or left.cpu_millis <= 0:
        raise CapacityError(
            f"memory_bytes: a {board_memory_bytes // MIB} MiB node keeps nothing for pods after the reservations"
        )
    return left
