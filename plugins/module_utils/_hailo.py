# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hailo NPUs on the Raspberry Pi 5: identify the board, pick the one software stack, check versions.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

Facts (docs/host-roles.md has the sources): Hailo-8 and Hailo-8L share PCI id 1e60:2864 and
the 4.x stack (`hailo-all`: hailort, hailo-dkms, hailofw, ...; kernel module `hailo_pci`);
Hailo-10H is 1e60:45c4 with the 5.x stack (`hailo-h10-all`: h10-hailort,
h10-hailort-pcie-driver; module `hailo1x_pci`). The two stacks cannot be installed together,
and HailoRT refuses to run when the library and the kernel driver versions differ.

Where each stack is published (Debian codenames of Raspberry Pi OS): `hailo-all` for Bookworm and
Trixie (raspberrypi/documentation computers/ai/getting-started.adoc pins 4.17-4.19 on Bookworm and
names Trixie as the current OS); `hailo-h10-all` for Trixie only (the AI HAT+ 2 documentation,
accessories/ai-hat-plus/about.adoc at 29feea0 and computers/ai/getting-started.adoc at 09e37ae,
requires Raspberry Pi OS Trixie; Raspberry Pi's Bookworm repository carries no hailo-h10-all).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "HAILO_PCI_IDS",
    "MODELS",
    "STACKS",
    "HailoError",
    "HailoOsError",
    "HailoStack",
    "NpuMismatchError",
    "NpuPlan",
    "VersionMismatchError",
    "check_release",
    "check_versions_match",
    "detect_family",
    "model_from_architecture",
    "parse_identify",
    "plan_stack",
    "resolve_model",
    "upstream_version",
]

HAILO_VENDOR = "1e60"
# PCI id -> stack family. Hailo-8 and Hailo-8L cannot be told apart by PCI id.
HAILO_PCI_IDS: dict[str, str] = {"1e60:2864": "hailo8", "1e60:45c4": "hailo10h"}
# Declared model -> stack family.
MODELS: dict[str, str] = {"hailo8": "hailo8", "hailo8l": "hailo8", "hailo10h": "hailo10h"}


class HailoError(ValueError):
    """Hailo input (model, versions, tool output) is malformed or inconsistent."""


class NpuMismatchError(HailoError):
    """The declared NPU model contradicts the device found on the PCIe bus."""


class VersionMismatchError(HailoError):
    """HailoRT library and kernel driver versions differ."""


class HailoOsError(HailoError):
    """The stack the NPU needs is not published for the node's Raspberry Pi OS release."""


@dataclass(frozen=True)
class HailoStack:
    """One of the two mutually exclusive Hailo software stacks."""

    family: str
    meta_package: str
    library_package: str
    driver_package: str
    kernel_module: str
    packages: tuple[str, ...]
    # Debian codenames of the Raspberry Pi OS releases Raspberry Pi publishes the stack for.
    releases: tuple[str, ...] = ("bookworm", "trixie")

    def as_dict(self) -> dict[str, object]:
        return {
            "family": self.family,
            "meta_package": self.meta_package,
            "library_package": self.library_package,
            "driver_package": self.driver_package,
            "kernel_module": self.kernel_module,
            "packages": list(self.packages),
            "releases": list(self.releases),
        }


STACKS: dict[str, HailoStack] = {
    "hailo8": HailoStack(
        family="hailo8",
        meta_package="hailo-all",
        library_package="hailort",
        driver_package="hailo-dkms",
        kernel_module="hailo_pci",
        packages=("hailo-all", "hailort", "hailo-dkms", "hailofw", "python3-hailort", "hailo-tappas-core"),
    ),
    "hailo10h": HailoStack(
        family="hailo10h",
        meta_package="hailo-h10-all",
        library_package="h10-hailort",
        driver_package="h10-hailort-pcie-driver",
        kernel_module="hailo1x_pci",
        packages=("hailo-h10-all", "h10-hailort", "h10-hailort-pcie-driver"),
        releases=("trixie",),
    ),
}


def upstream_version(version: str) -> str:
    """`1:4.19.0-3` -> `4.19.0`: drop the Debian epoch and revision."""
    text = version.strip()
    if not text:
        raise HailoError("empty package version")
    text = text.split(":", 1)[1] if ":" in text else text
    return text.rsplit("-", 1)[0] if "-" in text else text


def detect_family(pci_ids: Iterable[str]) -> tuple[str, str | None]:
    """(family, pci_id) of the Hailo device on the bus; ("none", None) without one.

    Two different Hailo families on one node is refused: the stacks cannot coexist.
    """
    found = sorted({pid.lower() for pid in pci_ids if pid.lower() in HAILO_PCI_IDS})
    families = {HAILO_PCI_IDS[pid] for pid in found}
    if len(families) > 1:
        raise NpuMismatchError(
            f"PCIe bus holds both Hailo-8/8L and Hailo-10H devices ({', '.join(found)}); their software stacks "
            "cannot be installed together: remove one board"
        )
    if not found:
        return "none", None
    return HAILO_PCI_IDS[found[0]], found[0]


_IDENTIFY_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z ]*?)\s*:\s*(.*?)\s*$")


def parse_identify(text: str) -> dict[str, str]:
    """Parse `hailortcli fw-control identify`: firmware_version, architecture, serial, part, product."""
    names = {
        "firmware version": "firmware_version",
        "device architecture": "architecture",
        "serial number": "serial",
        "part number": "part",
        "product name": "product",
        "logger version": "logger_version",
        "board name": "board",
    }
    result: dict[str, str] = {}
    for line in text.splitlines():
        match = _IDENTIFY_LINE.match(line)
        if not match:
            continue
        key = names.get(match.group(1).strip().lower())
        if key:
            result[key] = match.group(2)
    if "architecture" not in result:
        raise HailoError("hailortcli fw-control identify printed no 'Device Architecture:' line")
    if "firmware_version" in result:
        # "4.20.0 (release,app,extended context switch buffer)" -> "4.20.0"
        result["firmware_version"] = result["firmware_version"].split()[0]
    return result


def model_from_architecture(architecture: str) -> str:
    """HAILO8 -> hailo8, HAILO8L -> hailo8l, HAILO10H -> hailo10h."""
    key = architecture.strip().lower().replace("-", "").replace("_", "")
    if key not in MODELS:
        raise HailoError(f"unknown Hailo device architecture {architecture!r}")
    return key


def resolve_model(declared: str, detected_family: str, architecture: str | None = None) -> str:
    """Pick the NPU model the node gets software and labels for.

    declared: "auto", "none" or a model name from the inventory (npu_hailo_model).
    detected_family: from detect_family(); architecture: from parse_identify(), when known.
    """
    if declared not in ("auto", "none", *MODELS):
        raise HailoError(f"npu_hailo_model must be one of auto, none, {', '.join(MODELS)}; got {declared!r}")
    if declared == "none":
        return "none"
    if declared == "auto":
        if detected_family == "none":
            return "none"
        if architecture:
            return model_from_architecture(architecture)
        return detected_family
    if detected_family not in ("none", MODELS[declared]):
        raise NpuMismatchError(
            f"npu_hailo_model is {declared!r} but the PCIe bus holds a {detected_family} device; "
            "fix the inventory or set npu_hailo_model: auto"
        )
    if detected_family == "none":
        raise NpuMismatchError(
            f"npu_hailo_model is {declared!r} but no Hailo device (1e60:2864 or 1e60:45c4) is on the PCIe bus; "
            "check the board is seated (and dtparam=pciex1 for non-HAT+ adapters) or set npu_hailo_model: none"
        )
    if architecture and model_from_architecture(architecture) != declared:
        raise NpuMismatchError(f"npu_hailo_model is {declared!r} but the device identifies as {architecture}")
    return declared


def check_versions_match(versions: Mapping[str, str], family: str) -> str:
    """The HailoRT version shared by library and driver; VersionMismatchError when they differ."""
    stack = STACKS[family]
    library, driver = versions.get(stack.library_package), versions.get(stack.driver_package)
    if not library or not driver:
        missing = [name for name, ver in ((stack.library_package, library), (stack.driver_package, driver)) if not ver]
        raise HailoError(f"HailoRT version check needs {' and '.join(missing)}")
    if upstream_version(library) != upstream_version(driver):
        raise VersionMismatchError(
            f"{stack.library_package} {library} and {stack.driver_package} {driver} differ; HailoRT refuses to "
            "run (HAILO_INVALID_DRIVER_VERSION): pin both to the same upstream version in npu_hailo_version_pins"
        )
    return upstream_version(library)


@dataclass(frozen=True)
class NpuPlan:
    """Which packages to install, remove and hold for a model."""

    model: str
    family: str
    install: tuple[str, ...]
    remove: tuple[str, ...]
    hold: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "family": self.family,
            "install": list(self.install),
            "remove": list(self.remove),
            "hold": list(self.hold),
        }


_OS_NAMES = {"bookworm": "Raspberry Pi OS Bookworm (Debian 12)", "trixie": "Raspberry Pi OS Trixie (Debian 13)"}


def check_release(model: str, codename: str | None) -> None:
    """Refuse a model whose stack Raspberry Pi does not publish for the node's OS release.

    codename: VERSION_CODENAME of /etc/os-release; None (unknown) is not refused.
    """
    if model not in MODELS or not codename:
        return
    stack = STACKS[MODELS[model]]
    if codename in stack.releases:
        return
    wanted = " or ".join(_OS_NAMES.get(r, r) for r in stack.releases)
    raise HailoOsError(
        f"npu_hailo_model resolves to {model}, whose stack {stack.meta_package} is published for {wanted} only; "
        f"this node runs {_OS_NAMES.get(codename, codename)}. Install Raspberry Pi OS Trixie (64-bit) on the node, "
        "or leave npu out of the node class in the site catalog (npu_hailo_model: none) to leave the NPU "
        "without software"
    )


def plan_stack(
    model: str, installed: Mapping[str, str], pins: Mapping[str, str], codename: str | None = None
) -> NpuPlan:
    """Packages for `model`: install the stack (pinned where `pins` says), remove the other stack.

    installed: package -> version currently installed (any package; others are ignored).
    pins: package -> exact Debian version; library and driver pins must agree.
    codename: the node's OS release (os-release VERSION_CODENAME); a stack not published for it is refused.
    """
    if model == "none":
        return NpuPlan("none", "none", (), (), ())
    if model not in MODELS:
        raise HailoError(f"unknown NPU model {model!r}; expected one of {', '.join(MODELS)}")
    family = MODELS[model]
    stack = STACKS[family]
    other = next(s for f, s in STACKS.items() if f != family)
    unknown = sorted(set(pins) - set(stack.packages))
    if unknown:
        raise HailoError(
            f"npu_hailo_version_pins names {', '.join(unknown)}, which are not part of the {family} stack "
            f"({', '.join(stack.packages)})"
        )
    if stack.library_package in pins or stack.driver_package in pins:
        check_versions_match(pins, family)
    check_release(model, codename)
    names = [stack.meta_package, *sorted(name for name in pins if name != stack.meta_package)]
    install = tuple(f"{name}={pins[name]}" if name in pins else name for name in names)
    remove = tuple(name for name in other.packages if name in installed)
    hold = tuple(sorted({stack.meta_package, stack.library_package, stack.driver_package, *pins}))
    return NpuPlan(model, family, install, remove, hold)
