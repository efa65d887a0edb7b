# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""checkov on the rendered output of every site, in one run (its start-up dominates).

checkov lives in its own venv (.venv-checkov: it pins packaging<24, which the test venv
cannot share). It is always called with --skip-download so it never reaches for the
Prisma Cloud API. Findings come back per rendered file, i.e. per site.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from .core import REPO_ROOT
from .model import SiteResult

__all__ = ["CheckovMissing", "find_checkov", "run_checkov"]


class CheckovMissing(FileNotFoundError):
    """No checkov executable where we look."""


def find_checkov(explicit: str | None = None) -> Path:
    candidates = [explicit, os.environ.get("CHECKOV"), str(REPO_ROOT / ".venv-checkov" / "bin" / "checkov")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise CheckovMissing(
        "checkov not found: create .venv-checkov (make setup, requirements/checkov.txt), pass --checkov PATH, "
        "or skip this stage with --no-checkov"
    )


def _scannable(doc: dict[str, Any]) -> dict[str, Any]:
    """checkov only needs the object; drop SOPS metadata the cluster never sees."""
    if doc.get("kind") == "Secret" and "sops" in doc:
        return {k: v for k, v in doc.items() if k != "sops"}
    return doc


# checkov relates every resource of a run to every other one: its time grows with the square of
# the objects per run (benchmarks/README.md: 50 sites 69 s, 100 sites 730 s in one run). Runs of
# at most this many sites keep it linear.
SITES_PER_RUN = 20


def run_checkov(results: list[SiteResult], checkov: Path, jobs: int = 2) -> None:
    """Add one problem per failed checkov check to the site it came from."""
    chunks = [results[i : i + SITES_PER_RUN] for i in range(0, len(results), SITES_PER_RUN)]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(lambda chunk: _run_chunk(chunk, checkov), chunks))


def _run_chunk(results: list[SiteResult], checkov: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="validate-gitops-checkov-") as tmp:
        files: dict[str, SiteResult] = {}
        for index, result in enumerate(results):
            path = Path(tmp) / f"site-{index:04d}.yaml"
            path.write_text(
                yaml.safe_dump_all([_scannable(o.doc) for o in result.objects], sort_keys=False), encoding="utf-8"
            )
            files[path.name] = result
        proc = subprocess.run(
            [
                str(checkov),
                "-d",
                tmp,
                "--framework",
                "kubernetes",
                "--skip-download",
                "--output",
                "json",
                "--quiet",
                "--compact",
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
        )
    reports = _parse(proc.stdout)
    if reports is None:
        for result in results:
            result.add(
                "checkov",
                None,
                "",
                f"checkov did not produce a report (exit {proc.returncode}): {proc.stderr.strip()[-300:]}",
                file="checkov",
            )
        return
    for report in reports:
        for failed in (report.get("results") or {}).get("failed_checks") or []:
            owner = files.get(Path(str(failed.get("file_path", ""))).name)
            if owner is None:
                continue
            resource = str(failed.get("resource", ""))
            obj = _find(owner, resource)
            owner.add(
                "checkov", obj, "", f"{failed.get('check_id')} {failed.get('check_name')}", file="" if obj else resource
            )


def _parse(stdout: str) -> list[dict[str, Any]] | None:
    text = stdout.strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(data, dict):
        # A run without findings prints a summary dict without "results".
        return [data]
    return [item for item in data if isinstance(item, dict)]


def _find(result: SiteResult, resource: str) -> Any:
    """checkov names resources Kind.namespace.name."""
    parts = resource.split(".", 2)
    if len(parts) != 3:
        return None
    kind, namespace, name = parts
    return next((o for o in result.objects if o.kind == kind and o.name == name and o.namespace == namespace), None)
