# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""OCI pull: the collection's client vs `oras pull`, and what a resumed pull re-downloads.

One docker-registry (Debian's CNCF Distribution) on 127.0.0.1 serves one artifact pushed by
`oras push`. Each round pulls it with both clients as whole processes, interleaved (ours,
oras, ours, ...), into fresh directories on the same file system: ours is interpreter start +
import + resolve + download + sha256 + fsync + rename (what the module does), oras is its own
pull with digest check. The ratio is taken per round; the median is reported.

Then the resume check: a loopback relay cuts the blob transfer at 50 %, and a second pull
continues the partial file. Re-downloaded bytes = relayed bytes of both attempts minus the
relayed bytes of one uncut pull (same headers and manifest); the goal is at most one chunk
(1 MiB, the client's read size).

usage: python benchmarks/oci_pull_speed.py [--size-mib 256] [--rounds 5]
needs: `make oci-tools` (docker-registry, .build/tools/oras)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from checkout import use_checkout  # benchmarks/ is sys.path[0] when a benchmark runs

use_checkout()
from ansible_collections.edgeslm.pi5.benchmarks._common import measure, median, report_peak_rss, spread  # noqa: E402
from ansible_collections.edgeslm.pi5.plugins.module_utils import _fetch, _http, _oci  # noqa: E402

if "--worker" not in sys.argv:  # the timed worker imports only what the module imports
    from ansible_collections.edgeslm.pi5.tests.unit.oci_registry import (
        ORAS,
        CutProxy,
        oras,
        running_registry,
    )

MIB = 1 << 20
MEDIA_TYPE = "application/vnd.cncf.model.weight.v1.raw"


def write_model(path: Path, size: int) -> str:
    block = os.urandom(16 * MIB)  # incompressible; repeated, since transfer cost does not depend on content
    digest = hashlib.sha256()
    with path.open("wb") as stream:
        written = 0
        while written < size:
            chunk = block[: min(len(block), size - written)]
            stream.write(chunk)
            digest.update(chunk)
            written += len(chunk)
    return digest.hexdigest()


def _no_fsync(fd: int | object) -> None:
    """Stand-in for os.fsync in the diagnostic worker."""


def worker(reference: str, dest: str, sha: str, no_fsync: bool = False) -> None:
    """The process timed as `ours` (and, as a diagnostic, ours with fsync skipped)."""
    if no_fsync:
        os.fsync = _no_fsync  # diagnostic only: how much of the gap is durability
    result = _fetch.fetch(_fetch.FetchRequest(dest=dest, source=f"oci://{reference}", sha256=sha))
    if result.sha256 != sha:
        raise SystemExit("worker: wrong digest")
    report_peak_rss()


def pull_through(proxy: CutProxy, registry_host: str, dest: Path, sha: str) -> _fetch.FetchResult:
    config = _oci.RegistriesConfig.from_mapping({"mirrors": {registry_host: {"endpoint": [f"http://{proxy.host}"]}}})
    return _fetch.fetch(
        _fetch.FetchRequest(
            dest=str(dest),
            source=f"oci://{registry_host}/bench/model:v1",
            sha256=sha,
            registries=config,
            disable_default_endpoint=True,
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", nargs=3, metavar=("REF", "DEST", "SHA"), help=argparse.SUPPRESS)
    parser.add_argument("--no-fsync", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        reference, dest, sha = args.worker
        worker(reference, dest, sha, no_fsync=args.no_fsync)
        return 0
    base = Path(os.environ.get("BENCH_DIR", tempfile.gettempdir()))
    with tempfile.TemporaryDirectory(prefix="edgeslm-oci-bench-", dir=base) as tmp:
        work = Path(tmp)
        src = work / "src"
        src.mkdir()
        size = args.size_mib * MIB
        model = src / "model.gguf"
        sha = write_model(model, size)
        with running_registry(work / "registry") as registry:
            reference = f"{registry.host}/bench/model:v1"
            oras("push", "--plain-http", reference, f"{model.name}:{MEDIA_TYPE}", cwd=src)
            ours_walls: list[float] = []
            nosync_walls: list[float] = []
            ours_cpu: list[float] = []
            oras_cpu: list[float] = []
            oras_walls: list[float] = []
            ratios: list[float] = []
            rss: list[int] = []
            for number in range(args.rounds):
                out_ours, out_oras = work / f"ours-{number}", work / f"oras-{number}"
                out_ours.mkdir()
                out_oras.mkdir()
                ours = measure([sys.executable, __file__, "--worker", reference, str(out_ours / model.name), sha])
                theirs = measure([str(ORAS), "pull", "--plain-http", reference, "-o", str(out_oras)])
                out_nosync = work / f"nosync-{number}"
                out_nosync.mkdir()
                nosync = measure(
                    [sys.executable, __file__, "--no-fsync", "--worker", reference, str(out_nosync / model.name), sha]
                )
                nosync_walls.append(nosync.wall)
                shutil.rmtree(out_nosync)
                if hashlib.sha256((out_oras / model.name).read_bytes()).hexdigest() != sha:
                    raise SystemExit("oras pulled different bytes")
                ours_walls.append(ours.wall)
                ours_cpu.append(ours.cpu)
                oras_cpu.append(theirs.cpu)
                oras_walls.append(theirs.wall)
                ratios.append(theirs.wall / ours.wall)
                rss.append(ours.max_rss)
                shutil.rmtree(out_ours)
                shutil.rmtree(out_oras)
            print(f"artifact: {args.size_mib} MiB, {args.rounds} interleaved rounds, loopback registry")
            print("| client | median wall s | MB/s | spread |")
            print("|---|---|---|---|")
            for name, walls in (
                ("ours (process: start + import + pull + verify + fsync)", ours_walls),
                ("ours with fsync skipped (diagnostic)", nosync_walls),
                ("oras pull 1.2.0", oras_walls),
            ):
                print(f"| {name} | {median(walls):.3f} | {size / median(walls) / 1e6:.0f} | {spread(walls)} |")
            print(f"CPU s (user+sys) per pull, median: ours {median(ours_cpu):.3f}, oras {median(oras_cpu):.3f}")
            print(f"peak RSS of our pull: {max(rss) / MIB:.1f} MiB")
            # the resume check
            clean = CutProxy(registry.port)
            (work / "uncut").mkdir()
            try:
                pull_through(clean, registry.host, work / "uncut" / model.name, sha)
                uncut_bytes = clean.downstream_bytes
            finally:
                clean.close()
            proxy = CutProxy(registry.port, cut_after=size // 2)
            dest = work / "cut" / model.name
            dest.parent.mkdir()
            try:
                try:
                    pull_through(proxy, registry.host, dest, sha)
                    raise SystemExit("the cut pull did not fail")
                except _fetch.FetchUnreachableError:
                    pass
                kept = next(dest.parent.glob(".*.partial")).stat().st_size
                first = proxy.downstream_bytes
                result = pull_through(proxy, registry.host, dest, sha)
                total = proxy.downstream_bytes
            finally:
                proxy.close()
            redownloaded = total - uncut_bytes
            print(
                f"resume: cut at {size // 2} relayed bytes, partial kept {kept} bytes, first attempt relayed {first}, "
                f"second downloaded {result.downloaded} (reused {result.reused})"
            )
            print(
                f"re-downloaded bytes after a cut at 50 %: {redownloaded} (goal <= one chunk, "
                f"{_http.CHUNK_SIZE}): {'met' if redownloaded <= _http.CHUNK_SIZE else 'NOT met'}"
            )
        diagnostic = [o / n for o, n in zip(oras_walls, nosync_walls, strict=True)]
        print(f"diagnostic: ours without fsync / oras throughput ratio: {median(diagnostic):.2f}")
        print(f"ours/oras throughput ratio: {median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
