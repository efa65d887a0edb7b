"""Hailo NPU: detection by PCI id, model resolution, stack planning, version matching."""

from __future__ import annotations

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _hailo


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ([], ("none", None)),
        (["14e4:2712", "1de4:0001"], ("none", None)),
        (["1e60:2864"], ("hailo8", "1e60:2864")),
        (["1E60:45C4", "14e4:2712"], ("hailo10h", "1e60:45c4")),
        (["1e60:2864", "1e60:2864"], ("hailo8", "1e60:2864")),
    ],
)
def test_detect_family(ids: list[str], expected: tuple[str, str | None]) -> None:
    assert _hailo.detect_family(ids) == expected


def test_detect_family_refuses_both_stacks() -> None:
    with pytest.raises(_hailo.NpuMismatchError, match="cannot be installed together"):
        _hailo.detect_family(["1e60:2864", "1e60:45c4"])


@pytest.mark.parametrize(
    ("declared", "family", "architecture", "model"),
    [
        ("auto", "none", None, "none"),
        ("auto", "hailo8", None, "hailo8"),
        ("auto", "hailo8", "HAILO8L", "hailo8l"),
        ("auto", "hailo10h", "HAILO10H", "hailo10h"),
        ("none", "hailo10h", None, "none"),
        ("hailo8l", "hailo8", None, "hailo8l"),
        ("hailo8l", "hailo8", "HAILO8L", "hailo8l"),
        ("hailo10h", "hailo10h", None, "hailo10h"),
    ],
)
def test_resolve_model(declared: str, family: str, architecture: str | None, model: str) -> None:
    assert _hailo.resolve_model(declared, family, architecture) == model


@pytest.mark.parametrize(
    ("declared", "family", "architecture", "error", "message"),
    [
        ("hailo10h", "hailo8", None, _hailo.NpuMismatchError, "holds a hailo8 device"),
        ("hailo8", "hailo10h", None, _hailo.NpuMismatchError, "holds a hailo10h device"),
        ("hailo8", "none", None, _hailo.NpuMismatchError, "no Hailo device"),
        ("hailo8", "hailo8", "HAILO8L", _hailo.NpuMismatchError, "identifies as HAILO8L"),
        ("hailo9", "hailo8", None, _hailo.HailoError, "npu_hailo_model must be one of"),
        ("auto", "hailo8", "HAILO15", _hailo.HailoError, "unknown Hailo device architecture"),
    ],
)
def test_resolve_model_refuses(
    declared: str, family: str, architecture: str | None, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        _hailo.resolve_model(declared, family, architecture)


@pytest.mark.parametrize(
    ("version", "upstream"),
    [("4.19.0-3", "4.19.0"), ("1:4.20.0-1+rpt1", "4.20.0"), ("5.1.1", "5.1.1"), ("4.20.0-1-2", "4.20.0-1")],
)
def test_upstream_version(version: str, upstream: str) -> None:
    assert _hailo.upstream_version(version) == upstream


def test_check_versions_match() -> None:
    assert _hailo.check_versions_match({"hailort": "4.20.0-1", "hailo-dkms": "4.20.0-2"}, "hailo8") == "4.20.0"


@pytest.mark.parametrize(
    ("versions", "family", "error", "message"),
    [
        ({"hailort": "4.22.0-1", "hailo-dkms": "4.20.0-1"}, "hailo8", _hailo.VersionMismatchError, "differ"),
        (
            {"h10-hailort": "5.1.1-1", "h10-hailort-pcie-driver": "5.0.0-1"},
            "hailo10h",
            _hailo.VersionMismatchError,
            "differ",
        ),
        ({"hailort": "4.20.0-1"}, "hailo8", _hailo.HailoError, "needs hailo-dkms"),
    ],
)
def test_check_versions_match_refuses(
    versions: dict[str, str], family: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        _hailo.check_versions_match(versions, family)


@pytest.mark.parametrize(
    ("model", "installed", "pins", "install", "remove", "hold"),
    [
        ("none", {"hailort": "4.20.0-1"}, {}, [], [], []),
        ("hailo8l", {}, {}, ["hailo-all"], [], ["hailo-all", "hailo-dkms", "hailort"]),
        (
            "hailo8",
            {"hailort": "4.20.0-1"},
            {"hailort": "4.20.0-1", "hailo-dkms": "4.20.0-1"},
            ["hailo-all", "hailo-dkms=4.20.0-1", "hailort=4.20.0-1"],
            [],
            ["hailo-all", "hailo-dkms", "hailort"],
        ),
        # The Hailo-10H stack replaces the 4.x stack: only installed packages are removed.
        (
            "hailo10h",
            {"hailo-all": "4.20.0", "hailort": "4.20.0-1", "hailo-dkms": "4.20.0-1", "rpicam-apps": "1.5"},
            {"hailo-h10-all": "5.1.1"},
            ["hailo-h10-all=5.1.1"],
            ["hailo-all", "hailort", "hailo-dkms"],
            ["h10-hailort", "h10-hailort-pcie-driver", "hailo-h10-all"],
        ),
    ],
)
def test_plan_stack(
    model: str,
    installed: dict[str, str],
    pins: dict[str, str],
    install: list[str],
    remove: list[str],
    hold: list[str],
) -> None:
    plan = _hailo.plan_stack(model, installed, pins)
    assert list(plan.install) == install
    assert list(plan.remove) == remove
    assert list(plan.hold) == hold
    assert not set(plan.install) & set(plan.remove)


@pytest.mark.parametrize(
    ("model", "pins", "error", "message"),
    [
        ("hailo8", {"hailort": "4.22.0-1", "hailo-dkms": "4.20.0-1"}, _hailo.VersionMismatchError, "differ"),
        ("hailo8", {"hailort": "4.20.0-1"}, _hailo.HailoError, "needs hailo-dkms"),
        ("hailo10h", {"hailort": "4.20.0-1"}, _hailo.HailoError, "not part of the hailo10h stack"),
        ("hailo12", {}, _hailo.HailoError, "unknown NPU model"),
    ],
)
def test_plan_stack_refuses(model: str, pins: dict[str, str], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        _hailo.plan_stack(model, {}, pins)


IDENTIFY_8L = """Executing on device: 0000:01:00.0
Identifying board
Control Protocol Version: 2
Firmware Version: 4.20.0 (release,app,extended context switch buffer)
Logger Version: 0
Board Name: Hailo-8
Device Architecture: HAILO8L
Serial Number: <N/A>
Part Number: <N/A>
Product Name: <N/A>
"""


def test_parse_identify() -> None:
    parsed = _hailo.parse_identify(IDENTIFY_8L)
    assert parsed["architecture"] == "HAILO8L"
    assert parsed["firmware_version"] == "4.20.0"
    assert parsed["serial"] == "<N/A>"
    assert _hailo.model_from_architecture(parsed["architecture"]) == "hailo8l"


def test_parse_identify_refuses_error_text() -> None:
    with pytest.raises(_hailo.HailoError, match="Device Architecture"):
        _hailo.parse_identify("[HailoRT] [error] CHECK failed - Failed to open device file /dev/hailo0\n")


@pytest.mark.parametrize(
    ("model", "codename"),
    [
        ("hailo8", "bookworm"),
        ("hailo8l", "trixie"),
        ("hailo10h", "trixie"),
        ("hailo10h", None),  # release unknown (no os-release): not refused
        ("none", "bookworm"),
    ],
)
def test_plan_stack_on_a_release_that_has_the_stack(model: str, codename: str | None) -> None:
    plan = _hailo.plan_stack(model, {}, {}, codename=codename)
    assert plan.model == model


def test_hailo10h_on_bookworm_is_refused_naming_the_os_and_the_fix() -> None:
    with pytest.raises(_hailo.HailoOsError) as caught:
        _hailo.plan_stack("hailo10h", {"hailo-all": "4.20.0"}, {}, codename="bookworm")
    message = str(caught.value)
    assert "hailo-h10-all" in message
    assert "Raspberry Pi OS Bookworm (Debian 12)" in message
    assert "Raspberry Pi OS Trixie" in message
    assert "npu_hailo_model" in message


def test_release_data_names_where_each_stack_is_published() -> None:
    assert _hailo.STACKS["hailo10h"].releases == ("trixie",)
    assert set(_hailo.STACKS["hailo8"].releases) == {"bookworm", "trixie"}
