# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""SHA-256 throughput: the collection's digest vs `openssl dgst -sha256` vs `sha256sum`.

Whole processes on the same file (>= 1 GiB), interleaved round by round (ours, openssl,
sha256sum, ours, ...), so machine noise hits every candidate alike. The ratio is taken per
round, then the median is reported. Also measures the peak RSS of our process (must not
grow with the file) and the in-process cost of a cached re-verify.

usage: python benchmarks/digest_speed.py [--size-mib 1024] [--rounds 5] [--file PATH]
The last line is `verify/openssl throughput ratio: R` (R >= 0.9 is the goal).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from checkout import use_checkout  # benchmarks/ is sys.path[0] when a benchmark runs

use_checkout()
from ansible_collections.edgeslm.pi5.benchmarks._common import measure, median, report_peak_rss, spread  # noqa: E402
from ansible_collections.edgeslm.pi5.plugins.module_utils import _digest  # noqa: E402

MIB = 1 << 20


def write_random(path: Path, size: int) -> None:
    chunk = os.urandom(16 * MIB)  # one random block repeated: SHA-256 cost does not depend on content
    with path.open("wb") as stream:
        written = 0
        while written < size:
            n = min(len(chunk), size - written)
            stream.write(chunk[:n])
            written += n


def worker(path: str) -> None:
    """The process timed as `ours`: interpreter start + core import + hash, like the module."""
    sha, _st = _digest.sha256_file(path)
    print(sha)
    report_peak_rss()


def cached_reverify_seconds(path: Path, iterations: int = 2000) -> float:
    """Median in-process cost of verify_sha256 on a cache hit (stat + getxattr + compare)."""
    _digest.verify_sha256(str(path))  # make sure a record exists
    samples = []
    for _sample in range(5):
        start = time.perf_counter()
        for _iteration in range(iterations):
            result = _digest.verify_sha256(str(path))
        samples.append((time.perf_counter() - start) / iterations)
        assert result.cached
    return median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--file", help="hash this file instead of writing a random one")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    with tempfile.TemporaryDirectory(prefix="digest-bench-", dir=os.environ.get("BENCH_DIR")) as tmp:
        path = Path(args.file) if args.file else Path(tmp) / "random.bin"
        if not args.file:
            write_random(path, args.size_mib * MIB)
        size = path.stat().st_size
        candidates = {
            "ours": [sys.executable, "-E", "-s", __file__, "--worker", str(path)],
            "openssl": ["openssl", "dgst", "-sha256", str(path)],
            "sha256sum": ["sha256sum", str(path)],
        }
        for argv in candidates.values():  # warm the page cache and every binary once
            measure(argv)
        runs: dict[str, list[float]] = {name: [] for name in candidates}
        rss: list[int] = []
        ratios, ratios_sum = [], []
        for _round in range(args.rounds):
            round_walls = {}
            for name, argv in candidates.items():
                run = measure(argv)
                round_walls[name] = run.wall
                runs[name].append(run.wall)
                if name == "ours":
                    rss.append(run.max_rss)
            ratios.append(round_walls["openssl"] / round_walls["ours"])
            ratios_sum.append(round_walls["sha256sum"] / round_walls["ours"])
        print(f"file: {size / MIB:.0f} MiB, {args.rounds} interleaved rounds, page cache warm")
        print(f"{'method':<12} {'median wall s':>14} {'GB/s':>6}  spread")
        for name, walls in runs.items():
            print(f"{name:<12} {median(walls):>14.3f} {size / median(walls) / 1e9:>6.2f}  {spread(walls)}")
        print(f"ours peak RSS: {max(rss) / MIB:.1f} MiB (file {size / MIB:.0f} MiB)")
        print(f"verify/sha256sum throughput ratio: {median(ratios_sum):.2f} {spread(ratios_sum)}")
        print(f"cached re-verify in-process: {cached_reverify_seconds(path) * 1e6:.1f} us")
        print(f"verify/openssl throughput ratio: {median(ratios):.2f}")


if __name__ == "__main__":
    main()
