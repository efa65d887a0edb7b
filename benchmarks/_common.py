# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared helpers for the benchmarks: run and measure a process, summarise rounds."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Run:
    wall: float  # seconds
    cpu: float  # user + system seconds of the child
    max_rss: int  # bytes: the child's own VmHWM when it reports one, else wait4's figure


def report_peak_rss() -> None:
    """Workers call this last: wait4's ru_maxrss can include the parent's pages from fork."""
    status = Path("/proc/self/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    if match:
        print(f"peak_rss_bytes={int(match.group(1)) * 1024}", file=sys.stderr)


def measure(argv: list[str]) -> Run:
    """Run a command to completion; wall time, CPU time and peak RSS of the child."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {err[-500:]}")
    reported = re.search(r"peak_rss_bytes=(\d+)", err)
    rss = int(reported.group(1)) if reported else usage.ru_maxrss * 1024
    return Run(wall, usage.ru_utime + usage.ru_stime, rss)


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    return f"[{min(values):.3f}-{max(values):.3f}]"
