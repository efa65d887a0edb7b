"""Bootloader configuration: BOOT_ORDER decoding, parsing, planning, firmware status."""

from __future__ import annotations

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _eeprom

STOCK = "[all]\nBOOT_UART=1\nPOWER_OFF_ON_HALT=0\nBOOT_ORDER=0xf41\n"


@pytest.mark.parametrize(
    ("value", "modes"),
    [
        ("0xf416", ["nvme", "sd", "usb", "restart"]),
        ("0xf41", ["sd", "usb", "restart"]),
        ("0xF461", ["sd", "nvme", "usb", "restart"]),
        ("0x1", ["sd"]),
        ("0x6e1", ["sd", "stop"]),  # nothing after stop is tried
    ],
)
def test_decode_boot_order(value: str, modes: list[str]) -> None:
    assert _eeprom.decode_boot_order(value) == modes


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0xF416, "quoted hex string"),
        (True, "quoted hex string"),
        ("f416", "0x and 1-8 hex digits"),
        ("0xg416", "0x and 1-8 hex digits"),
        ("0x123456789", "0x and 1-8 hex digits"),
        ("0xf496", "unknown boot mode '9'"),
        ("", "0x and 1-8 hex digits"),
    ],
)
def test_normalize_boot_order_refuses(value: object, message: str) -> None:
    with pytest.raises(_eeprom.BootOrderError, match="ssd_boot_boot_order") as info:
        _eeprom.normalize_boot_order(value)
    assert message in str(info.value)


def test_normalize_boot_order_lowercases() -> None:
    assert _eeprom.normalize_boot_order(" 0xF416 ") == "0xf416"


@pytest.mark.parametrize(
    ("text", "settings"),
    [
        (STOCK, {"BOOT_UART": "1", "POWER_OFF_ON_HALT": "0", "BOOT_ORDER": "0xf41"}),
        ("BOOT_ORDER=0xf41\n[pi4]\nBOOT_ORDER=0x1\n", {"BOOT_ORDER": "0xf41"}),
        ("# comment\n\n[all]\nA=1\n[all]\nA=2\n", {"A": "2"}),
        ("", {}),
    ],
)
def test_parse_eeprom_config(text: str, settings: dict[str, str]) -> None:
    assert _eeprom.parse_eeprom_config(text).settings == settings


@pytest.mark.parametrize(
    ("text", "message"),
    [("[all]\nnot a setting\n", "line 2 is neither"), ("[all]\nboot_order=1\n", "invalid key")],
)
def test_parse_eeprom_config_refuses(text: str, message: str) -> None:
    with pytest.raises(_eeprom.EepromError, match=message):
        _eeprom.parse_eeprom_config(text)


@pytest.mark.parametrize(
    ("current", "desired", "in_sync", "changes", "expected_text"),
    [
        # Stock SD-first order -> NVMe first; edited in place.
        (
            STOCK,
            {"BOOT_ORDER": "0xf416"},
            False,
            {"BOOT_ORDER": {"current": "0xf41", "desired": "0xf416"}},
            "[all]\nBOOT_UART=1\nPOWER_OFF_ON_HALT=0\nBOOT_ORDER=0xf416\n",
        ),
        # Already there (case and leading zeros do not matter).
        ("[all]\nBOOT_ORDER=0x0F416\n", {"BOOT_ORDER": "0xf416"}, True, {}, "[all]\nBOOT_ORDER=0x0F416\n"),
        # Missing key appended before the first conditional section; conditional copy untouched.
        (
            "[all]\nBOOT_UART=1\n[pi4]\nPCIE_PROBE=0\n",
            {"PCIE_PROBE": 1},
            False,
            {"PCIE_PROBE": {"current": None, "desired": "1"}},
            "[all]\nBOOT_UART=1\nPCIE_PROBE=1\n[pi4]\nPCIE_PROBE=0\n",
        ),
        # Duplicated global key: the earlier copy is dropped, the last one edited.
        (
            "BOOT_ORDER=0x1\n[all]\nBOOT_ORDER=0xf41\n",
            {"BOOT_ORDER": "0xf416"},
            False,
            {"BOOT_ORDER": {"current": "0xf41", "desired": "0xf416"}},
            "[all]\nBOOT_ORDER=0xf416\n",
        ),
        # Empty configuration gets an [all] section.
        (
            "",
            {"BOOT_ORDER": "0xf416", "PCIE_PROBE": True},
            False,
            {
                "BOOT_ORDER": {"current": None, "desired": "0xf416"},
                "PCIE_PROBE": {"current": None, "desired": "1"},
            },
            "[all]\nBOOT_ORDER=0xf416\nPCIE_PROBE=1\n",
        ),
    ],
)
def test_plan_eeprom_config(
    current: str, desired: dict[str, object], in_sync: bool, changes: dict[str, object], expected_text: str
) -> None:
    plan = _eeprom.plan_eeprom_config(current, desired)
    assert plan.in_sync is in_sync
    assert plan.changes == changes
    assert plan.config_text == expected_text
    # Applying the plan's text converges: planning again finds nothing to do.
    assert _eeprom.plan_eeprom_config(plan.config_text, desired).in_sync


@pytest.mark.parametrize(
    ("desired", "message"),
    [
        ({"boot_order": "0xf416"}, "upper-case"),
        ({"BOOT_ORDER": "f416"}, "BOOT_ORDER must look like"),
        ({"PCIE_PROBE": None}, "needs a scalar"),
        ({"PCIE_PROBE": [1]}, "needs a scalar"),
        ({"PCIE_PROBE": "1\nBOOT_ORDER=0x1"}, "one non-empty line"),
    ],
)
def test_plan_eeprom_config_refuses(desired: dict[str, object], message: str) -> None:
    with pytest.raises(_eeprom.EepromError, match=message):
        _eeprom.plan_eeprom_config(STOCK, desired)


UPDATE_UP_TO_DATE = """BOOTLOADER: up to date
   CURRENT: Wed  6 Dec 12:00:00 UTC 2023 (1701864000)
    LATEST: Wed  6 Dec 12:00:00 UTC 2023 (1701864000)
   RELEASE: default (/lib/firmware/raspberrypi/bootloader-2712/default)
            Use raspi-config to change the release.
"""
UPDATE_OLD = """BOOTLOADER: update available
   CURRENT: Fri  6 Oct 12:00:00 UTC 2023 (1696593600)
    LATEST: Wed  6 Dec 12:00:00 UTC 2023 (1701864000)
   RELEASE: default (/lib/firmware/raspberrypi/bootloader-2712/default)
"""


@pytest.mark.parametrize(
    ("text", "current", "update", "too_old"),
    [(UPDATE_UP_TO_DATE, 1701864000, False, False), (UPDATE_OLD, 1696593600, True, True)],
)
def test_parse_update_status(text: str, current: int, update: bool, too_old: bool) -> None:
    status = _eeprom.parse_update_status(text)
    assert status.current_epoch == current
    assert status.update_available is update
    assert status.release == "default"
    assert _eeprom.firmware_too_old(status) is too_old


def test_parse_update_status_refuses_unrelated_text() -> None:
    with pytest.raises(_eeprom.EepromError, match="CURRENT"):
        _eeprom.parse_update_status("rpi-eeprom-update: command not supported on this board\n")
