# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""GGUF metadata parse: the collection's reader vs gguf.GGUFReader, on the same files.

Files (sparse, written with the gguf package's writer by tests/unit/gguf_factory.py):
* Llama-2-7B shapes, 32k vocabulary (SPM), ~6.7 GiB;
* Llama-3-8B shapes, 128k vocabulary + 280k merges (BPE), ~8 GiB;
* TinyLlama-1.1B shapes, 32k vocabulary, ~1.1 GiB: same metadata as Llama-2-7B, so the pair
  shows whether the parse cost depends on the file size.

In-process, interleaved per round (ours, GGUFReader, ...); the speedup is the per-round
ratio GGUFReader/ours, median over rounds and files. Needs `gguf` (benchmarks/requirements.txt).

usage: python benchmarks/gguf_parse_speed.py [--rounds 5] [--dir DIR]
The last line is `gguf parse speedup vs GGUFReader: N` (N >= 50 is the goal).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from checkout import use_checkout  # benchmarks/ is sys.path[0] when a benchmark runs

use_checkout()
from ansible_collections.edgeslm.pi5.benchmarks._common import measure, median, report_peak_rss, spread  # noqa: E402
from ansible_collections.edgeslm.pi5.plugins.module_utils._gguf import read_gguf  # noqa: E402

FILES = {"tinyllama-1.1b": "TinyLlama-1.1B 32k", "llama2-7b": "Llama-2-7B 32k", "llama3-8b": "Llama-3-8B 128k+280k"}


def time_ours(path: Path, repeat: int) -> float:
    best = []
    for _repeat in range(repeat):
        start = time.perf_counter()
        info = read_gguf(path)
        best.append(time.perf_counter() - start)
    assert info.tensors
    return float(median(best))


def time_reader(path: Path) -> float:
    import gguf  # only the comparison needs numpy; the worker process must not pay for it

    start = time.perf_counter()
    reader = gguf.GGUFReader(path)
    elapsed = time.perf_counter() - start
    assert reader.tensors
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", help="keep the sparse files here (default: a temporary directory)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(read_gguf(args.worker).description())
        report_peak_rss()
        return
    from ansible_collections.edgeslm.pi5.tests.unit.gguf_factory import PRESETS, write_model

    with tempfile.TemporaryDirectory(prefix="gguf-bench-", dir=os.environ.get("BENCH_DIR")) as tmp:
        work = Path(args.dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        paths = {}
        for preset in FILES:
            path = work / f"{preset}.gguf"
            if not path.exists():
                write_model(path, PRESETS[preset], sparse=True)
            paths[preset] = path
        ours: dict[str, list[float]] = {p: [] for p in paths}
        theirs: dict[str, list[float]] = {p: [] for p in paths}
        ratios: list[float] = []
        for _round in range(args.rounds):
            for preset, path in paths.items():
                mine = time_ours(path, 3)
                other = time_reader(path)
                ours[preset].append(mine)
                theirs[preset].append(other)
                ratios.append(other / mine)
        print(f"{args.rounds} interleaved rounds, in-process, page cache warm")
        print(f"{'file':<22} {'size GiB':>8} {'ours ms':>9} {'GGUFReader ms':>14} {'speedup':>8}")
        for preset, path in paths.items():
            a, b = median(ours[preset]), median(theirs[preset])
            size = path.stat().st_size / (1 << 30)
            print(f"{FILES[preset]:<22} {size:>8.2f} {a * 1e3:>9.1f} {b * 1e3:>14.1f} {b / a:>8.0f}")
        small, large = median(ours["tinyllama-1.1b"]), median(ours["llama2-7b"])
        print(f"same metadata, 1.1 vs 6.7 GiB file: ours {small * 1e3:.1f} vs {large * 1e3:.1f} ms")
        print(f"ours per-round ms spread (llama3-8b): {spread([t * 1e3 for t in ours['llama3-8b']])}")
        for preset in ("llama2-7b", "llama3-8b"):
            run = measure([sys.executable, "-I", __file__, "--worker", str(paths[preset])])
            rss = run.max_rss / (1 << 20)
            print(f"ours as its own process on {FILES[preset]}: {run.wall * 1e3:.0f} ms, peak RSS {rss:.1f} MiB")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"this process's peak RSS (GGUFReader's numpy objects): {peak:.0f} MiB")
        print(f"gguf parse speedup vs GGUFReader: {median(ratios):.0f}")


if __name__ == "__main__":
    main()
