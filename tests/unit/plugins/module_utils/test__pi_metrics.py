"""The Pi metrics producer: bit meanings, the thermal zone, the textfile, the atomic write."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _pi_metrics

MODULE = Path(_pi_metrics.__file__)


@pytest.mark.parametrize(
    ("raw", "now", "since_boot"),
    [
        (0x0, set(), set()),
        (0x50005, {"under_voltage", "throttled"}, {"under_voltage", "throttled"}),
        (0x80008, {"soft_temperature_limit"}, {"soft_temperature_limit"}),
        (0xA0002, {"arm_frequency_capped"}, {"arm_frequency_capped", "soft_temperature_limit"}),
        (0xF000F, {"under_voltage", "arm_frequency_capped", "throttled", "soft_temperature_limit"}, None),
    ],
)
def test_decode_throttled(raw: int, now: set[str], since_boot: set[str] | None) -> None:
    decoded = _pi_metrics.decode_throttled(raw)
    assert {flag for flag, is_set in decoded["now"].items() if is_set} == now
    if since_boot is not None:
        assert {flag for flag, is_set in decoded["since_boot"].items() if is_set} == since_boot
    assert (
        set(decoded["now"])
        == set(decoded["since_boot"])
        == {
            "under_voltage",
            "arm_frequency_capped",
            "throttled",
            "soft_temperature_limit",
        }
    )


def test_bits_are_the_documented_ones() -> None:
    assert {b.bit for b in _pi_metrics.THROTTLE_BITS if not b.since_boot} == {0, 1, 2, 3}
    assert {b.bit for b in _pi_metrics.THROTTLE_BITS if b.since_boot} == {16, 17, 18, 19}
    assert _pi_metrics.THROTTLE_FLAGS[18] == "throttled_occurred"


@pytest.mark.parametrize("text", ["throttled=0x50005\n", "0x50005", "throttled=50005"])
def test_parse_throttled_output(text: str) -> None:
    assert _pi_metrics.parse_throttled_output(text) == 0x50005


def test_parse_throttled_output_refuses() -> None:
    with pytest.raises(_pi_metrics.MetricsError, match="expected throttled=0x"):
        _pi_metrics.parse_throttled_output("error=1 error_msg=no")


def thermal(root: Path, zone: int, zone_type: str, millidegrees: str) -> None:
    base = root / "sys/class/thermal" / f"thermal_zone{zone}"
    base.mkdir(parents=True)
    (base / "type").write_text(zone_type + "\n")
    (base / "temp").write_text(millidegrees + "\n")


def test_soc_zone_is_found_by_type(tmp_path: Path) -> None:
    thermal(tmp_path, 0, "rp1_adc", "30000")
    thermal(tmp_path, 1, "cpu-thermal", "61250")
    assert _pi_metrics.read_soc_temperature(tmp_path) == 61.25


def test_soc_zone_falls_back_to_zone0(tmp_path: Path) -> None:
    thermal(tmp_path, 0, "soc", "45000")
    assert _pi_metrics.read_soc_temperature(tmp_path) == 45.0


def test_soc_temperature_refuses_garbage(tmp_path: Path) -> None:
    thermal(tmp_path, 0, "cpu-thermal", "hot")
    with pytest.raises(_pi_metrics.MetricsError, match="millidegrees"):
        _pi_metrics.read_soc_temperature(tmp_path)


def fake_vcgencmd(out: str, rc: int = 0) -> _pi_metrics.Runner:
    def run(argv: Sequence[str]) -> tuple[int, str, str]:
        assert list(argv[1:]) == ["get_throttled"]
        return rc, out, "" if rc == 0 else "VCHI initialization failed"

    return run


def test_render_a_throttled_hot_pi(tmp_path: Path) -> None:
    thermal(tmp_path, 0, "cpu-thermal", "82150")
    reading = _pi_metrics.collect(tmp_path, "/usr/bin/vcgencmd", fake_vcgencmd("throttled=0x50005\n"))
    text = _pi_metrics.render(reading)
    lines = text.splitlines()
    assert 'edgeslm_pi_throttled{flag="under_voltage"} 1' in lines
    assert 'edgeslm_pi_throttled{flag="throttled"} 1' in lines
    assert 'edgeslm_pi_throttled{flag="soft_temperature_limit"} 0' in lines
    assert 'edgeslm_pi_throttled_since_boot{flag="under_voltage"} 1' in lines
    assert 'edgeslm_pi_throttled_since_boot{flag="arm_frequency_capped"} 0' in lines
    assert "edgeslm_pi_throttled_raw 327685" in lines
    assert "edgeslm_pi_soc_temperature_celsius 82.15" in lines
    assert 'edgeslm_pi_metrics_read_ok{source="throttled"} 1' in lines
    assert 'edgeslm_pi_metrics_read_ok{source="soc_temperature"} 1' in lines
    # Every sample belongs to a metric declared once with HELP and TYPE, and only declared metrics appear.
    declared = [line.split()[2] for line in lines if line.startswith("# TYPE ")]
    assert sorted(declared) == sorted(_pi_metrics.METRICS)
    samples = {line.split("{")[0].split()[0] for line in lines if not line.startswith("#")}
    assert samples == set(_pi_metrics.METRICS)


def test_a_source_that_fails_is_reported_not_fatal(tmp_path: Path) -> None:
    reading = _pi_metrics.collect(tmp_path, "/usr/bin/vcgencmd", fake_vcgencmd("", rc=255))
    text = _pi_metrics.render(reading)
    assert 'edgeslm_pi_metrics_read_ok{source="throttled"} 0' in text
    assert 'edgeslm_pi_metrics_read_ok{source="soc_temperature"} 0' in text
    assert "edgeslm_pi_throttled{" not in text
    assert "edgeslm_pi_soc_temperature_celsius " not in text
    assert "exited 255" in reading.errors["throttled"]
    none = _pi_metrics.collect(tmp_path, None)
    assert none.errors["throttled"] == "vcgencmd is not installed"


def test_write_textfile_is_atomic_and_world_readable(tmp_path: Path) -> None:
    target = _pi_metrics.write_textfile(tmp_path / "collector", "a 1\n")
    assert target.name == "edgeslm_pi.prom"
    assert target.read_text() == "a 1\n"
    assert target.stat().st_mode & 0o777 == 0o644
    _pi_metrics.write_textfile(tmp_path / "collector", "a 2\n")
    assert [p.name for p in (tmp_path / "collector").iterdir()] == ["edgeslm_pi.prom"]


def test_the_module_runs_as_a_standalone_script(tmp_path: Path) -> None:
    """The node runs this file with python3 alone: no collection on its path."""
    thermal(tmp_path / "hw", 0, "cpu-thermal", "50000")
    tool = tmp_path / "vcgencmd"
    tool.write_text("#!/bin/sh\necho throttled=0x80000\n")
    tool.chmod(0o755)
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-I",
            str(MODULE),
            "--root",
            str(tmp_path / "hw"),
            "--output-dir",
            str(out),
            "--vcgencmd",
            str(tool),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    text = (out / "edgeslm_pi.prom").read_text()
    assert 'edgeslm_pi_throttled_since_boot{flag="soft_temperature_limit"} 1' in text
    assert "edgeslm_pi_soc_temperature_celsius 50" in text
