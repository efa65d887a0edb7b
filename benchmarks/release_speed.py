# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Model release: `scripts/model-release` against `sha256sum` + `oras push` of the same GGUF, side by side.

One docker-registry (Debian's CNCF Distribution) on 127.0.0.1 per round. The model is a GGUF with
a real published shape (default TinyLlama-1.1B at Q8_0, 1.09 GiB) written by tests/unit/gguf_factory.py
as a sparse file: its tensor data is a hole, read back as zeros, so both sides read the same bytes
and the disk holds only the metadata. Each round runs, in alternating order:

* ours: the whole release as CI runs it, one process: GGUF checks, fit against the lab site, key
  trust, sha256, model-signing signature (the release venv), ModelPack manifest, worktree with the
  catalog bump, new-site --sync and validate-gitops (without checkov unless --checkov), push of
  config, model and signature, the commit on a branch;
* baseline: `sha256sum FILE` then `oras push --plain-http REG/REPO:TAG FILE:<ModelPack weight type>`.

Each side pushes to its own repository, so neither finds the other's blob already there. Wall time
is the figure the goal is about (ratio per round, median reported); CPU time is the client's plus
the registry's (read from /proc), which the load of a shared machine disturbs less.

usage: python benchmarks/release_speed.py [--preset tinyllama-1.1b] [--rounds 3] [--checkov]
needs: `make oci-tools` (docker-registry, .build/tools/oras, .venv-release)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from checkout import use_checkout  # benchmarks/ is sys.path[0] when a benchmark runs

use_checkout()
from ansible_collections.edgeslm.pi5.benchmarks._common import median, spread  # noqa: E402
from ansible_collections.edgeslm.pi5.tests.unit.fleet_repo import make_fleet  # noqa: E402
from ansible_collections.edgeslm.pi5.tests.unit.gguf_factory import preset, write_model  # noqa: E402
from ansible_collections.edgeslm.pi5.tests.unit.oci_registry import ORAS, REPO, Registry  # noqa: E402

WEIGHT = "application/vnd.cncf.model.weight.v1.raw"
RELEASE = REPO / "scripts" / "model-release"
SITE = "lab"
MODEL = "edgeslm-tiny"
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Timed:
    wall: float
    cpu: float  # the child's user + system seconds, plus the registry's
    stdout: str


def _registry_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


_last_children = 0.0


def _children_cpu() -> float:
    """CPU seconds of the children reaped since the previous call (os.times counts every waited child)."""
    global _last_children
    times = os.times()
    total = times.children_user + times.children_system
    delta, _last_children = total - _last_children, total
    return delta


def timed(argv: list[str], registry_pid: int, cwd: Path | None = None) -> Timed:
    """Run one command to completion: wall time, its CPU time plus the registry's, and its stdout."""
    before = _registry_cpu(registry_pid)
    _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-1500:]}")
    return Timed(wall, _children_cpu() + _registry_cpu(registry_pid) - before, proc.stdout.decode())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tinyllama-1.1b", help="gguf_factory preset (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--checkov", action="store_true", help="let validate-gitops run checkov too")
    args = parser.parse_args()
    if not ORAS.exists():
        raise SystemExit(f"{ORAS} is missing: run `make oci-tools`")
    with tempfile.TemporaryDirectory(prefix="release-bench-") as scratch:
        tmp = Path(scratch)
        model_dir = tmp / "model"
        model_dir.mkdir()
        model = write_model(model_dir / f"{args.preset}-q8_0.gguf", preset(args.preset), sparse=True)
        key = tmp / "signing.pem"
        subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)], check=True)
        public = subprocess.run(
            ["openssl", "pkey", "-in", str(key), "-pubout"], check=True, capture_output=True, text=True
        ).stdout
        make_fleet(tmp / "fleet", {SITE: ("bench", public)})
        root = tmp / "fleet" / "gitops"
        size = model.stat().st_size
        print(f"model {model.name}: {size} bytes ({size / (1 << 30):.2f} GiB, sparse), {args.rounds} round(s)")
        print(f"ours: scripts/model-release --site {SITE} --replace {MODEL}{'' if args.checkov else ' --no-checkov'}")
        print("baseline: sha256sum FILE; oras push --plain-http REG/REPO:TAG FILE:" + WEIGHT)
        print()
        print("round  ours s  (cpu)    baseline s  (cpu)    ratio  | ours: steps (s)")
        ratios, cpu_ratios, ours_walls, base_walls = [], [], [], []
        for index in range(1, args.rounds + 1):
            registry = Registry(tmp / f"registry-{index}").start()
            assert registry.process is not None
            pid = registry.process.pid
            try:

                def ours(index: int = index, host: str = registry.host, pid: int = pid) -> Timed:
                    argv = [sys.executable, str(RELEASE), str(model), "--registry", host]
                    argv += ["--repository", f"bench/ours-{index}", "--tag", f"r{index}", "--key", str(key)]
                    argv += ["--site", SITE, "--root", str(root), "--replace", MODEL, "--branch", f"bench/r{index}"]
                    argv += ["--json"] + ([] if args.checkov else ["--no-checkov"])
                    return timed(argv, pid)

                def baseline(index: int = index, host: str = registry.host, pid: int = pid) -> Timed:
                    digest = timed(["sha256sum", model.name], pid, cwd=model_dir)
                    ref = f"{host}/bench/oras-{index}:r{index}"
                    push = timed([str(ORAS), "push", "--plain-http", ref, f"{model.name}:{WEIGHT}"], pid, model_dir)
                    return Timed(digest.wall + push.wall, digest.cpu + push.cpu, push.stdout)

                if index % 2:
                    mine, base = ours(), baseline()
                else:
                    base, mine = baseline(), ours()
            finally:
                registry.stop()
                shutil.rmtree(registry.root, ignore_errors=True)
            steps = json.loads(mine.stdout)["steps"]
            ratio, cpu_ratio = mine.wall / base.wall, mine.cpu / base.cpu
            ratios.append(ratio)
            cpu_ratios.append(cpu_ratio)
            ours_walls.append(mine.wall)
            base_walls.append(base.wall)
            detail = ", ".join(f"{k} {v:.2f}" for k, v in steps.items())
            print(
                f"{index:>5}  {mine.wall:6.2f}  ({mine.cpu:5.2f})  {base.wall:10.2f}  ({base.cpu:5.2f})  "
                f"{ratio:5.2f}x | {detail}"
            )
        print()
        print(
            f"median: ours {median(ours_walls):.2f} s {spread(ours_walls)}, baseline {median(base_walls):.2f} s "
            f"{spread(base_walls)}; wall ratio {median(ratios):.2f}x {spread(ratios)} (goal <= 1.3x), "
            f"CPU ratio {median(cpu_ratios):.2f}x {spread(cpu_ratios)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
