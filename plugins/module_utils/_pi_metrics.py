# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Raspberry Pi health metrics for node-exporter's textfile collector: throttling and SoC temperature.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

This file is also the producer itself: edgeslm.pi5.pi5_common copies it to the node
(/usr/local/lib/edgeslm/edgeslm_pi_metrics.py) and a systemd timer runs it with the node's
python3, so it imports nothing but the standard library and nothing from the collection.

Facts (with their sources):

- `vcgencmd get_throttled` prints `throttled=0x<hex>`, a bit field: bit 0 under-voltage detected,
  1 Arm frequency capped, 2 currently throttled, 3 soft temperature limit active; bits 16-19 say
  the same four conditions have occurred since boot (Raspberry Pi documentation, "vcgencmd",
  get_throttled: https://www.raspberrypi.com/documentation/computers/os.html#get_throttled).
- A thermal zone's `temp` file holds the temperature in millidegrees Celsius and `type` names the
  zone (Linux Documentation/driver-api/thermal/sysfs-api.rst, /sys/class/thermal/thermal_zone[0-*]).
  Raspberry Pi kernels name the SoC zone `cpu-thermal` (the device-tree node `cpu_thermal:
  cpu-thermal`); the producer picks that zone and falls back to thermal_zone0 when no zone says so.
- node-exporter's textfile collector reads `*.prom` files in the text exposition format from the
  directory given by --collector.textfile.directory; a file must be written to a temporary name and
  renamed so the collector never reads half of it (prometheus/node_exporter README, "Textfile
  Collector").

The metric names below are the contract with the GitOps alert rules (gitops/platform/controllers).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "METRICS",
    "SOC_THERMAL_ZONE_TYPE",
    "TEXTFILE_NAME",
    "THROTTLE_BITS",
    "THROTTLE_FLAGS",
    "Metric",
    "MetricsError",
    "ThrottleBit",
    "collect",
    "decode_throttled",
    "find_soc_zone",
    "main",
    "parse_throttled_output",
    "render",
    "write_textfile",
]


class MetricsError(ValueError):
    """Tool output or a sysfs file cannot be read as the producer expects."""


@dataclass(frozen=True)
class ThrottleBit:
    """One bit of `vcgencmd get_throttled`."""

    bit: int
    flag: str  # the condition, shared by the "now" bit and its "since boot" twin
    since_boot: bool


THROTTLE_BITS: tuple[ThrottleBit, ...] = (
    ThrottleBit(0, "under_voltage", False),
    ThrottleBit(1, "arm_frequency_capped", False),
    ThrottleBit(2, "throttled", False),
    ThrottleBit(3, "soft_temperature_limit", False),
    ThrottleBit(16, "under_voltage", True),
    ThrottleBit(17, "arm_frequency_capped", True),
    ThrottleBit(18, "throttled", True),
    ThrottleBit(19, "soft_temperature_limit", True),
)
# bit -> fact name as pi5_facts reports it ("<flag>" now, "<flag>_occurred" since boot).
THROTTLE_FLAGS: dict[int, str] = {b.bit: f"{b.flag}_occurred" if b.since_boot else b.flag for b in THROTTLE_BITS}
SOC_THERMAL_ZONE_TYPE = "cpu-thermal"
TEXTFILE_NAME = "edgeslm_pi.prom"


@dataclass(frozen=True)
class Metric:
    name: str
    type: str
    help: str
    labels: tuple[str, ...] = ()


# The contract with the alert rules: names, types and labels. `flag` takes the values of
# ThrottleBit.flag; `source` is "throttled" or "soc_temperature".
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "edgeslm_pi_throttled",
            "gauge",
            "1 while the condition holds now (vcgencmd get_throttled bits 0-3), else 0.",
            ("flag",),
        ),
        Metric(
            "edgeslm_pi_throttled_since_boot",
            "gauge",
            "1 if the condition occurred since boot (vcgencmd get_throttled bits 16-19), else 0.",
            ("flag",),
        ),
        Metric("edgeslm_pi_throttled_raw", "gauge", "The raw vcgencmd get_throttled bit field."),
        Metric(
            "edgeslm_pi_soc_temperature_celsius",
            "gauge",
            "SoC temperature from the cpu-thermal thermal zone, in degrees Celsius.",
        ),
        Metric(
            "edgeslm_pi_metrics_read_ok",
            "gauge",
            "1 if the producer read the source this run, 0 if it could not (the other series are absent).",
            ("source",),
        ),
    )
}


def parse_throttled_output(text: str) -> int:
    """`throttled=0x50005` -> 0x50005."""
    value = text.strip().partition("=")[2] or text.strip()
    try:
        return int(value, 16)
    except ValueError as exc:
        raise MetricsError(f"vcgencmd get_throttled printed {text.strip()!r}, expected throttled=0x...") from exc


def decode_throttled(raw: int) -> dict[str, dict[str, bool]]:
    """{"now": {flag: set}, "since_boot": {flag: set}} for every known flag."""
    result: dict[str, dict[str, bool]] = {"now": {}, "since_boot": {}}
    for bit in THROTTLE_BITS:
        result["since_boot" if bit.since_boot else "now"][bit.flag] = bool(raw & (1 << bit.bit))
    return result


def find_soc_zone(root: Path) -> Path | None:
    """The thermal zone directory whose type is cpu-thermal (thermal_zone0 when none says so)."""
    base = root / "sys" / "class" / "thermal"
    zones = sorted(base.glob("thermal_zone*")) if base.is_dir() else []
    for zone in zones:
        try:
            if (zone / "type").read_text().strip() == SOC_THERMAL_ZONE_TYPE:
                return zone
        except OSError:
            continue
    fallback = base / "thermal_zone0"
    return fallback if (fallback / "temp").is_file() else None


def read_soc_temperature(root: Path) -> float:
    zone = find_soc_zone(root)
    if zone is None:
        raise MetricsError(f"no thermal zone below {root / 'sys/class/thermal'}")
    text = (zone / "temp").read_text().strip()
    try:
        return int(text) / 1000.0
    except ValueError as exc:
        raise MetricsError(f"{zone / 'temp'} holds {text!r}, expected millidegrees Celsius") from exc


Runner = Callable[[Sequence[str]], tuple[int, str, str]]


def _run(argv: Sequence[str]) -> tuple[int, str, str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=30)
    return proc.returncode, proc.stdout, proc.stderr


def read_throttled(vcgencmd: str | None, run: Runner = _run) -> int:
    if vcgencmd is None:
        raise MetricsError("vcgencmd is not installed")
    rc, out, err = run([vcgencmd, "get_throttled"])
    if rc != 0:
        raise MetricsError(f"vcgencmd get_throttled exited {rc}: {err.strip()}")
    return parse_throttled_output(out)


@dataclass(frozen=True)
class Reading:
    throttled: int | None
    temperature_celsius: float | None
    errors: Mapping[str, str]


def collect(root: Path, vcgencmd: str | None, run: Runner = _run) -> Reading:
    """Read both sources; a source that fails is recorded, never fatal."""
    errors: dict[str, str] = {}
    throttled: int | None = None
    temperature: float | None = None
    try:
        throttled = read_throttled(vcgencmd, run)
    except (MetricsError, OSError, subprocess.SubprocessError) as exc:
        errors["throttled"] = str(exc)
    try:
        temperature = read_soc_temperature(root)
    except (MetricsError, OSError) as exc:
        errors["soc_temperature"] = str(exc)
    return Reading(throttled, temperature, errors)


def _header(metric: Metric) -> list[str]:
    return [f"# HELP {metric.name} {metric.help}", f"# TYPE {metric.name} {metric.type}"]


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def render(reading: Reading) -> str:
    """The textfile in the Prometheus text exposition format, one HELP/TYPE per metric."""
    lines: list[str] = []
    if reading.throttled is not None:
        decoded = decode_throttled(reading.throttled)
        for name, scope in (("edgeslm_pi_throttled", "now"), ("edgeslm_pi_throttled_since_boot", "since_boot")):
            lines += _header(METRICS[name])
            for flag, is_set in decoded[scope].items():
                lines.append(f'{name}{{flag="{flag}"}} {int(is_set)}')
        lines += _header(METRICS["edgeslm_pi_throttled_raw"])
        lines.append(f"edgeslm_pi_throttled_raw {reading.throttled}")
    if reading.temperature_celsius is not None:
        lines += _header(METRICS["edgeslm_pi_soc_temperature_celsius"])
        lines.append(f"edgeslm_pi_soc_temperature_celsius {_number(reading.temperature_celsius)}")
    lines += _header(METRICS["edgeslm_pi_metrics_read_ok"])
    for source in ("throttled", "soc_temperature"):
        lines.append(f'edgeslm_pi_metrics_read_ok{{source="{source}"}} {int(source not in reading.errors)}')
    return "\n".join(lines) + "\n"


def write_textfile(directory: Path, text: str, name: str = TEXTFILE_NAME) -> Path:
    """Write atomically (temporary file in the same directory, then rename), mode 0644."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(tmp).chmod(0o644)
        target = directory / name
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the Pi's throttling and SoC temperature metrics.")
    parser.add_argument("--root", default="/", help="hardware root the thermal zones are read below")
    parser.add_argument("--output-dir", required=True, help="node-exporter textfile collector directory")
    parser.add_argument("--vcgencmd", default=None, help="vcgencmd path (default: found on PATH)")
    args = parser.parse_args(argv)
    vcgencmd = args.vcgencmd or shutil.which("vcgencmd", path=os.environ.get("PATH", "") + ":/usr/bin:/usr/sbin")
    reading = collect(Path(args.root), vcgencmd)
    write_textfile(Path(args.output_dir), render(reading))
    for source, error in sorted(reading.errors.items()):
        sys.stderr.write(f"edgeslm-pi-metrics: {source}: {error}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
