#!/usr/bin/env python
# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: a fleet of N sites made by scripts/new-site, rendered and validated.

    python benchmarks/fleet.py --sites 10 100 1000 [--baseline-ref bdef83d] [--json results/<name>.json]

1. Makes a fleet with scripts/new-site: sites like each template site, and sites with their own
   node classes and models added from GGUF files the project generates (tests/unit/gguf_factory.py).
2. Times `scripts/validate-gitops --no-checkov` over the first N sites of the fleet, as a whole
   process, for every N; prints seconds per site, so linear growth shows as a flat column.
3. Runs the largest fleet twice with --output and checks the rendered files are byte-identical.
4. Incremental mode, what a fleet repository's CI runs on a pull request: the fleet is committed
   to git, one site's catalog changes, and `scripts/validate-gitops --changed-since HEAD` runs
   with checkov and no checkov cache.
5. With --baseline-ref, the same fleet measurement for the validator and template of that
   commit (a git worktree; its layout had clusters/<site>, so its fleet is N copies of the lab
   site as its own benchmark made them), side by side, and the ratio per site.

Not part of `make test`. Whole-process figures; the machine's load is printed with them.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Run, measure

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TEMPLATE_SITES = ("lab", "store-berlin", "factory-line1")
# GGUF presets of tests/unit/gguf_factory.py the generated sites serve, with a context per slot.
MODEL_PRESETS = (("llama-tiny", 512), ("qwen2-tiny", 1024), ("gemma2-tiny", 512))


def _newsite(argv: list[str]) -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    newsite = importlib.import_module("gitops_validate.newsite")
    with contextlib.redirect_stdout(io.StringIO()):
        status = newsite.main(argv)
    if status != 0:
        raise SystemExit(f"new-site {' '.join(argv)} failed ({status})")


def make_models(directory: Path) -> list[tuple[Path, int]]:
    """Real GGUF files of a few architectures (gguf_factory presets)."""
    models = []
    for preset, context in MODEL_PRESETS:
        path = directory / f"{preset}-q8_0.gguf"
        subprocess.run(
            [PYTHON, str(REPO / "tests" / "unit" / "gguf_factory.py"), str(path), "--preset", preset],
            check=True,
            capture_output=True,
        )
        models.append((path, context))
    return models


def make_fleet(root: Path, count: int, models: list[tuple[Path, int]]) -> list[str]:
    """`count` new sites under root/sites, varied: like each template site, or own classes and models."""
    names = []
    for index in range(count):
        name = f"site-{index:04d}"
        kind = index % 4
        if kind < 3:
            _newsite(["--root", str(root), name, "--like", TEMPLATE_SITES[kind]])
        else:
            model, context = models[(index // 4) % len(models)]
            _newsite(
                [
                    "--root",
                    str(root),
                    name,
                    "--like",
                    "lab",
                    "--node-class",
                    # Lab-like virtual amd64 nodes: the lab's patches serve its amd64-only image.
                    "small=pi5-4gb,arch=amd64,virtual,nvme",
                    "--node-class",
                    "big=pi5-16gb,arch=amd64,virtual,nvme",
                    "--hosts",
                    f"small={name}-a,{name}-b,{name}-c",
                    "--hosts",
                    f"big={name}-d",
                    "--servers",
                    f"{name}-a",
                    "--model",
                    f"{model},source=https://models.{name}.example/{model.name},target=pi5-4gb,"
                    f"context={context},parallel=2",
                ]
            )
        names.append(name)
    return names


def validate(root: Path, sites: list[str], extra: list[str], script: Path | None = None) -> Run:
    argv = [PYTHON, str(script or REPO / "scripts" / "validate-gitops"), "--root", str(root), "-q", *extra]
    for site in sites:
        argv += ["--site", site]
    return measure(argv)


def byte_identical(root: Path, sites: list[str], work: Path) -> bool:
    first, second = work / "out-1", work / "out-2"
    for out in (first, second):
        validate(root, sites, ["--no-checkov", "--output", str(out)])
    names = sorted(p.name for p in first.iterdir())
    return names == sorted(p.name for p in second.iterdir()) and all(
        (first / n).read_bytes() == (second / n).read_bytes() for n in names
    )


def incremental(root: Path, work: Path) -> Run:
    """One site of a committed fleet changes; CI validates what changed, checkov included."""
    git = ["git", "-C", str(root), "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "fleet"], check=True)
    catalog = root / "sites" / "site-0001" / "site.yaml"
    catalog.write_text(catalog.read_text(encoding="utf-8").replace("maxReplicas: 3", "maxReplicas: 2"), "utf-8")
    _newsite(["--root", str(root), "--sync", "site-0001"])
    argv = [PYTHON, str(REPO / "scripts" / "validate-gitops"), "--root", str(root), "-q"]
    return measure([*argv, "--changed-since", "HEAD", "--no-cache"])


def baseline_fleet(ref: str, counts: list[int], work: Path, schemas: Path) -> dict[int, Run]:
    """The old validator over N copies of its lab site (its own benchmark's fleet)."""
    tree = work / "baseline"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(tree), ref], check=True)
    try:
        root = work / "baseline-gitops"
        shutil.copytree(tree / "gitops", root)
        old_dirs = ("clusters/{}", "apps/{}", "infrastructure/controllers/{}", "infrastructure/configs/{}", "sites/{}")
        names = []
        for index in range(max(counts)):
            name = f"lab{index:04d}"
            for pattern in old_dirs:
                source, target = root / pattern.format("lab"), root / pattern.format(name)
                shutil.copytree(source, target)
                for path in target.rglob("*.yaml"):
                    text = path.read_text(encoding="utf-8")
                    path.write_text(text.replace("/lab", f"/{name}").replace(": lab\n", f": {name}\n"), "utf-8")
            names.append(name)
        script = tree / "scripts" / "validate-gitops"
        return {n: validate(root, names[:n], ["--no-checkov", "--schemas", str(schemas)], script) for n in counts}
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)


def run(args: argparse.Namespace) -> dict[str, Any]:
    counts = sorted(args.sites)
    with tempfile.TemporaryDirectory(prefix="fleet-bench-", dir=os.environ.get("BENCH_DIR")) as tmp:
        work = Path(tmp)
        root = work / "gitops"
        shutil.copytree(REPO / "gitops", root)
        started = time.perf_counter()
        models = make_models(work)
        names = make_fleet(root, max(counts), models)
        generated = time.perf_counter() - started
        rows = []
        for count in counts:
            result = validate(root, names[:count], ["--no-checkov"])
            rows.append({"sites": count, "wall": result.wall, "cpu": result.cpu, "per_site": result.wall / count})
        data: dict[str, Any] = {
            "load_average": os.getloadavg(),
            "generate_seconds": generated,
            "fleet": rows,
            "byte_identical": byte_identical(root, names[: max(counts)], work),
            "incremental_wall": incremental(root, work).wall,
        }
        schemas = Path(args.baseline_schemas)
        if args.baseline_ref and schemas.is_dir():
            baseline = baseline_fleet(args.baseline_ref, counts, work, schemas)
            data["baseline"] = {"ref": args.baseline_ref, "fleet": {n: r.wall for n, r in baseline.items()}}
        data["load_average_end"] = os.getloadavg()
    return data


def table(data: dict[str, Any]) -> list[str]:
    baseline = (data.get("baseline") or {}).get("fleet") or {}
    lines = [
        f"load average at start {data['load_average'][0]:.1f}, at end {data['load_average_end'][0]:.1f}; "
        f"fleet generated by new-site in {data['generate_seconds']:.1f} s",
        "",
        "| sites | wall s | CPU s | s per site | baseline s per site | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for row in data["fleet"]:
        old = baseline.get(row["sites"])
        old_per = f"{old / row['sites']:.3f}" if old else "-"
        ratio = f"{row['wall'] / old:.2f}" if old else "-"
        lines.append(
            f"| {row['sites']} | {row['wall']:.1f} | {row['cpu']:.1f} | {row['per_site']:.3f} | {old_per} | {ratio} |"
        )
    lines += [
        "",
        f"two runs byte-identical: {data['byte_identical']}",
        f"one changed site of {data['fleet'][-1]['sites']}, --changed-since with checkov: "
        f"{data['incremental_wall']:.2f} s",
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, nargs="+", default=[10, 100, 1000], help="fleet sizes to time")
    parser.add_argument("--baseline-ref", help="git ref of a baseline validator to time beside (e.g. bdef83d)")
    parser.add_argument(
        "--baseline-schemas",
        default=str(REPO.parent / "shared" / "schemas" / "crds"),
        help="CRD schemas the baseline validator reads (it predates the project's own copy)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    data = run(args)
    print("\n".join(table(data)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
