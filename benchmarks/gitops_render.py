#!/usr/bin/env python
# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: render and validate GitOps sites the way scripts/validate-gitops does.

Measures, on this machine:
1. each example site of gitops/ alone (Flux graph, kustomize builds, schemas, CEL,
   catalog fit through the core, invariants), without checkov;
2. all example sites in one run, with and without checkov (one checkov process per run);
3. a generated fleet of N sites (copies of the `lab` site under new names) for each N in
   --fleet, to show how the time grows with the fleet.

Not part of `make test`. Results print as a table; --json writes them, --compare PATH
prints a saved run side by side (named baselines: `--json results/<name>.json`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _use_checkout() -> None:
    """Make `ansible_collections.edgeslm.pi5` this checkout, so no Ansible install is needed."""
    for name, path in (
        ("ansible_collections", None),
        ("ansible_collections.edgeslm", None),
        ("ansible_collections.edgeslm.pi5", REPO),
    ):
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [str(path)] if path else []
            sys.modules[name] = module


_use_checkout()

from ansible_collections.edgeslm.pi5.scripts.gitops_validate import (  # noqa: E402
    K3S_KUBERNETES_MINOR,
    catalog,
    checkov_scan,
    cli,
    crd_schema,
    k8s_schema,
    model,
    render,
)

CheckovMissing = checkov_scan.CheckovMissing
SiteResult = model.SiteResult
Target = cli.Target
Validators = cli.Validators

TEMPLATE_SITE = "lab"
SITE_DIRS = ("clusters/{}", "apps/{}", "infrastructure/controllers/{}", "infrastructure/configs/{}", "sites/{}")


def timed(function: Callable[[], Any], rounds: int) -> tuple[list[float], Any]:
    times: list[float] = []
    value: Any = None
    for _round in range(rounds):
        started = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - started)
    return times, value


def _validate(validators: Validators, root: Path, sites: list[str], jobs: int) -> list[SiteResult]:
    """One validate-gitops run (fresh kustomize cache, as in a new process) over some sites."""
    return cli.validate([Target(site, root=root) for site in sites], validators, render.Renderer(), jobs)


def make_fleet(source: Path, destination: Path, count: int) -> list[str]:
    """Copy gitops/ and add `count` sites cloned from the lab site."""
    shutil.copytree(source, destination)
    word = re.compile(rf"\b{TEMPLATE_SITE}\b")
    names = [f"site-{index:04d}" for index in range(count)]
    for name in names:
        for pattern in SITE_DIRS:
            src = destination / pattern.format(TEMPLATE_SITE)
            dst = destination / pattern.format(name)
            shutil.copytree(src, dst)
            for path in dst.rglob("*.yaml"):
                path.write_text(word.sub(name, path.read_text(encoding="utf-8")), encoding="utf-8")
    return names


def check_clean(results: list[SiteResult]) -> None:
    dirty = [r for r in results if r.problems]
    if dirty:
        raise SystemExit(f"benchmark input is not clean: {dirty[0].name}: {dirty[0].problems[0].render()}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    validators = Validators(
        k8s_schema.BuiltinValidator(K3S_KUBERNETES_MINOR),
        crd_schema.CrdValidator(args.schemas),
        catalog.DEFAULT_CATALOG_SCHEMA,
        frozenset(),
    )
    root = REPO / "gitops"
    sites = sorted(p.name for p in (root / "clusters").iterdir() if p.is_dir())
    out: dict[str, Any] = {"rounds": args.rounds, "single": {}, "fleet": [], "loadavg_start": os.getloadavg()}
    # Warm the OS caches and the per-kind schema validators once, as a CI run would after import.
    cli.validate([Target(sites[0], root=root)], validators, render.Renderer(), 1)
    for site in sites:
        times, results = timed(partial(_validate, validators, root, [site], 1), args.rounds)
        check_clean(results)
        out["single"][site] = {"objects": len(results[0].objects), "seconds": times}
    times, results = timed(partial(_validate, validators, root, sites, 2), args.rounds)
    check_clean(results)
    out["all_sites"] = {"sites": len(sites), "seconds": times}
    try:
        checkov = checkov_scan.find_checkov(None)
    except CheckovMissing:
        checkov = None
    if checkov is not None:
        times = timed(partial(checkov_scan.run_checkov, results, checkov), 1)[0]
        out["all_sites"]["checkov_seconds"] = times
    for count in args.fleet:
        with tempfile.TemporaryDirectory(prefix="gitops-fleet-") as tmp:
            fleet_root = Path(tmp) / "gitops"
            names = make_fleet(root, fleet_root, count)
            times, results = timed(
                partial(_validate, validators, fleet_root, names, 2),
                1 if count >= 50 else args.rounds,
            )
            check_clean(results)
            entry: dict[str, Any] = {
                "sites": count,
                "objects": sum(len(r.objects) for r in results),
                "seconds": times,
            }
            if checkov is not None and args.fleet_checkov:
                entry["checkov_seconds"] = timed(partial(checkov_scan.run_checkov, results, checkov), 1)[0]
            out["fleet"].append(entry)
    out["loadavg_end"] = os.getloadavg()
    return out


def _median(values: list[float]) -> float:
    return statistics.median(values)


def table(data: dict[str, Any]) -> list[str]:
    lines = ["| measurement | sites | objects | wall s (median) | per site s |", "|---|---|---|---|---|"]
    for site, entry in data["single"].items():
        median = _median(entry["seconds"])
        lines.append(f"| one site: {site} | 1 | {entry['objects']} | {median:.3f} | {median:.3f} |")
    all_sites = data["all_sites"]
    median = _median(all_sites["seconds"])
    count = all_sites["sites"]
    lines.append(f"| all example sites, no checkov | {count} | - | {median:.3f} | {median / count:.3f} |")
    if "checkov_seconds" in all_sites:
        ck = _median(all_sites["checkov_seconds"])
        lines.append(f"| all example sites, checkov only | {count} | - | {ck:.3f} | {ck / count:.3f} |")
    for entry in data["fleet"]:
        median = _median(entry["seconds"])
        lines.append(
            f"| generated fleet, no checkov | {entry['sites']} | {entry['objects']} | {median:.3f} | "
            f"{median / entry['sites']:.3f} |"
        )
        if "checkov_seconds" in entry:
            ck = _median(entry["checkov_seconds"])
            lines.append(
                f"| generated fleet, checkov only | {entry['sites']} | - | {ck:.3f} | {ck / entry['sites']:.3f} |"
            )
    return lines


def compare(current: dict[str, Any], baseline: dict[str, Any], name: str) -> list[str]:
    lines = [f"| measurement | {name} s | this run s | ratio |", "|---|---|---|---|"]
    pairs = [
        (f"one site: {s}", baseline["single"].get(s, {}).get("seconds"), e["seconds"])
        for s, e in current["single"].items()
    ]
    pairs.append(("all example sites", baseline["all_sites"]["seconds"], current["all_sites"]["seconds"]))
    old_fleet = {e["sites"]: e for e in baseline.get("fleet", [])}
    pairs += [
        (f"fleet {e['sites']}", old_fleet.get(e["sites"], {}).get("seconds"), e["seconds"]) for e in current["fleet"]
    ]
    for label, old, new in pairs:
        if old:
            lines.append(f"| {label} | {_median(old):.3f} | {_median(new):.3f} | {_median(new) / _median(old):.2f} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fleet", type=int, nargs="*", default=[10, 50, 100], help="fleet sizes to generate")
    parser.add_argument("--fleet-checkov", action="store_true", help="also time checkov on each generated fleet")
    parser.add_argument("--schemas", type=Path, default=cli.DEFAULT_SCHEMAS)
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--compare", type=Path, help="a saved --json run to print side by side")
    args = parser.parse_args()
    data = run(args)
    print("\n".join(table(data)))
    print(f"load average (1/5/15 min) at start {data['loadavg_start']}, at end {data['loadavg_end']}")
    if args.compare:
        print()
        print("\n".join(compare(data, json.loads(args.compare.read_text(encoding="utf-8")), args.compare.stem)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
