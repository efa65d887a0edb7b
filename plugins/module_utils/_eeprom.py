# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Raspberry Pi 5 bootloader (EEPROM) configuration: parse, compare with a desired state, plan.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

The bootloader configuration is the INI-like text `rpi-eeprom-config` prints: `KEY=value`
lines, optional `[section]` filters (`[all]`, `[pi5]`, ...) and `#` comments. Settings
before any section header apply to every board, as do those under `[all]`.

BOOT_ORDER is a hexadecimal number whose nibbles are boot modes tried from the least
significant nibble up: `0xf416` is NVMe (6), then SD (1), then USB mass storage (4), then
restart the sequence (f). Firmware older than 2023-12-06 cannot boot a Pi 5 from NVMe.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "BOOT_MODES",
    "MIN_NVME_FIRMWARE_EPOCH",
    "BootOrderError",
    "EepromConfig",
    "EepromError",
    "EepromPlan",
    "FirmwareStatus",
    "decode_boot_order",
    "firmware_too_old",
    "normalize_boot_order",
    "parse_eeprom_config",
    "parse_update_status",
    "plan_eeprom_config",
]

# Boot mode nibbles (raspberrypi/documentation, raspberry-pi/eeprom.adoc, BOOT_ORDER).
BOOT_MODES: dict[int, str] = {
    0x0: "sd-card-detect",
    0x1: "sd",
    0x2: "network",
    0x3: "rpiboot",
    0x4: "usb",
    0x5: "bcm-usb",
    0x6: "nvme",
    0x7: "http",
    0xE: "stop",
    0xF: "restart",
}
# 2023-12-06 00:00:00 UTC: the first Pi 5 bootloader release that boots NVMe without workarounds.
MIN_NVME_FIRMWARE_EPOCH = 1701820800

_KEY_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_HEX_RE = re.compile(r"^0x[0-9a-fA-F]{1,8}$")
_SECTION_RE = re.compile(r"^\[([^\]]+)\]$")


class EepromError(ValueError):
    """The bootloader configuration or a desired setting is malformed."""


class BootOrderError(EepromError):
    """A BOOT_ORDER value is not a hex string of known boot modes."""


def normalize_boot_order(value: object, field_name: str = "ssd_boot_boot_order") -> str:
    """Return BOOT_ORDER as lower-case `0x...` text; refuse anything the bootloader would misread."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise BootOrderError(
            f"{field_name} must be a quoted hex string such as '0xf416', got {value!r} "
            f"({type(value).__name__}); quote it in YAML so it is not read as a number"
        )
    text = value.strip()
    if not _HEX_RE.match(text):
        raise BootOrderError(f"{field_name} must look like '0xf416' (0x and 1-8 hex digits), got {value!r}")
    text = "0x" + text[2:].lower()
    decode_boot_order(text, field_name)
    return text


def decode_boot_order(value: str, field_name: str = "ssd_boot_boot_order") -> list[str]:
    """Boot modes in the order the bootloader tries them (least significant nibble first)."""
    if not _HEX_RE.match(value.strip()):
        raise BootOrderError(f"{field_name} must look like '0xf416', got {value!r}")
    digits = value.strip()[2:].lower()
    modes: list[str] = []
    for digit in reversed(digits):
        nibble = int(digit, 16)
        if nibble not in BOOT_MODES:
            raise BootOrderError(f"{field_name} {value!r} contains unknown boot mode {digit!r}; known: 0-7, e, f")
        modes.append(BOOT_MODES[nibble])
        if nibble in (0xE, 0xF):
            break
    return modes


@dataclass(frozen=True)
class EepromConfig:
    """A parsed bootloader configuration: the effective global settings plus the raw lines."""

    settings: dict[str, str]
    lines: tuple[str, ...]
    sections: tuple[str, ...] = field(default=())


def parse_eeprom_config(text: str) -> EepromConfig:
    """Parse `rpi-eeprom-config` output. Only unconditional settings ([all] or no section) count."""
    settings: dict[str, str] = {}
    sections: list[str] = []
    current = "all"
    lines = tuple(text.splitlines())
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        section = _SECTION_RE.match(line)
        if section:
            current = section.group(1).strip().lower()
            sections.append(current)
            continue
        if "=" not in line:
            raise EepromError(f"bootloader config line {number} is neither KEY=value nor [section]: {raw!r}")
        key, value = (part.strip() for part in line.split("=", 1))
        if not _KEY_RE.match(key):
            raise EepromError(f"bootloader config line {number} has an invalid key {key!r}")
        if current == "all":
            settings[key] = value
    return EepromConfig(settings=settings, lines=lines, sections=tuple(sections))


@dataclass(frozen=True)
class EepromPlan:
    """What must change so the bootloader carries the desired settings."""

    in_sync: bool
    changes: dict[str, dict[str, str | None]]
    config_text: str

    def as_dict(self) -> dict[str, object]:
        return {"in_sync": self.in_sync, "changes": self.changes, "config_text": self.config_text}


def _normalize_desired(desired: Mapping[str, object]) -> dict[str, str]:
    normalized: dict[str, str] = {}
    for key, value in desired.items():
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise EepromError(f"bootloader setting names are upper-case like BOOT_ORDER, got {key!r}")
        if value is None or isinstance(value, (dict, list)):
            raise EepromError(f"bootloader setting {key} needs a scalar value, got {value!r}")
        text = ("1" if value else "0") if isinstance(value, bool) else str(value).strip()
        if "\n" in text or not text:
            raise EepromError(f"bootloader setting {key} must be one non-empty line, got {value!r}")
        if key == "BOOT_ORDER":
            text = normalize_boot_order(text, "BOOT_ORDER")
        normalized[key] = text
    return normalized


def _same(key: str, current: str | None, desired: str) -> bool:
    if current is None:
        return False
    if key == "BOOT_ORDER" and _HEX_RE.match(current):
        return int(current, 16) == int(desired, 16)
    return current == desired


def plan_eeprom_config(current_text: str, desired: Mapping[str, object]) -> EepromPlan:
    """Compare the current configuration with the desired settings and build the new text.

    Unconditional settings are edited in place (the last global occurrence wins, earlier
    duplicates are dropped); missing ones are appended before the first conditional
    section. Conditional sections and comments are kept as they are.
    """
    config = parse_eeprom_config(current_text)
    wanted = _normalize_desired(desired)
    changes = {
        key: {"current": config.settings.get(key), "desired": value}
        for key, value in wanted.items()
        if not _same(key, config.settings.get(key), value)
    }
    if not changes:
        text = current_text if current_text.endswith("\n") or not current_text else current_text + "\n"
        return EepromPlan(in_sync=True, changes={}, config_text=text)

    # Index of the last global occurrence of each key we manage.
    last_global: dict[str, int] = {}
    first_conditional: int | None = None
    current = "all"
    for index, raw in enumerate(config.lines):
        line = raw.strip()
        section = _SECTION_RE.match(line)
        if section:
            current = section.group(1).strip().lower()
            if current != "all" and first_conditional is None:
                first_conditional = index
            continue
        if current == "all" and "=" in line and not line.startswith("#"):
            key = line.split("=", 1)[0].strip()
            if key in changes:
                last_global[key] = index

    out: list[str] = []
    current = "all"
    for index, raw in enumerate(config.lines):
        line = raw.strip()
        section = _SECTION_RE.match(line)
        if index == first_conditional:
            out.extend(f"{key}={wanted[key]}" for key in changes if key not in last_global)
        if section:
            current = section.group(1).strip().lower()
            out.append(raw)
            continue
        if current == "all" and "=" in line and not line.startswith("#"):
            key = line.split("=", 1)[0].strip()
            if key in changes:
                if last_global[key] == index:
                    out.append(f"{key}={wanted[key]}")
                continue
        out.append(raw)
    if first_conditional is None:
        out.extend(f"{key}={wanted[key]}" for key in changes if key not in last_global)
    if not config.lines:
        out.insert(0, "[all]")
    return EepromPlan(in_sync=False, changes=changes, config_text="\n".join(out) + "\n")


@dataclass(frozen=True)
class FirmwareStatus:
    """What `rpi-eeprom-update` (no arguments) reports."""

    current_epoch: int | None
    latest_epoch: int | None
    update_available: bool
    release: str | None


_STATUS_EPOCH = re.compile(r"^\s*(CURRENT|LATEST):.*\((\d+)\)\s*$")
_STATUS_RELEASE = re.compile(r"^\s*RELEASE:\s*(\S+)")


def parse_update_status(text: str) -> FirmwareStatus:
    """Parse the CURRENT/LATEST lines (each ends with the build time as a Unix epoch in brackets)."""
    epochs: dict[str, int] = {}
    release: str | None = None
    update_available = False
    for line in text.splitlines():
        match = _STATUS_EPOCH.match(line)
        if match:
            epochs[match.group(1)] = int(match.group(2))
            continue
        rel = _STATUS_RELEASE.match(line)
        if rel:
            release = rel.group(1)
        if line.strip().startswith("BOOTLOADER:") and "update available" in line:
            update_available = True
    if "CURRENT" not in epochs:
        raise EepromError("rpi-eeprom-update output has no 'CURRENT: ... (<epoch>)' line; is this a Pi 4/5?")
    current, latest = epochs["CURRENT"], epochs.get("LATEST")
    if latest is not None and latest > current:
        update_available = True
    return FirmwareStatus(current, latest, update_available, release)


def firmware_too_old(status: FirmwareStatus, minimum_epoch: int = MIN_NVME_FIRMWARE_EPOCH) -> bool:
    """True when the running bootloader predates `minimum_epoch` (NVMe boot needs 2023-12-06+)."""
    return status.current_epoch is not None and status.current_epoch < minimum_epoch
