# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""checkov on the rendered output of every site, in one run (its start-up dominates).

checkov lives in its own venv (.venv-checkov: it pins packaging<24, which the test venv
cannot share). It is always called with --skip-download so it never reaches for the
Prisma Cloud API. Findings come back per rendered file, i.e. per site.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .core import REPO_ROOT
from .model import SiteResult

__all__ = ["CheckovMissing", "checkov_version", "default_cache_dir", "find_checkov", "run_checkov"]


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


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/edgeslm/validate-gitops (~/.cache/... by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgeslm" / "validate-gitops"


def checkov_version(checkov: Path) -> str:
    """The installed checkov's version, read from its package metadata (no slow start-up)."""
    venv = checkov.resolve().parent.parent
    for meta in sorted(venv.glob("lib/python*/site-packages/checkov-*.dist-info/METADATA")):
        for line in meta.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    stat = checkov.stat()
    return f"{checkov.resolve()}@{stat.st_mtime_ns}"


def _scan_text(result: SiteResult) -> str:
    text: str = yaml.safe_dump_all([_scannable(o.doc) for o in result.objects], sort_keys=False)
    return text


@dataclass
class _Cache:
    """checkov's findings by (checkov version, rendered site): identical input, identical findings."""

    directory: Path
    version: str

    def key(self, text: str) -> str:
        return hashlib.sha256(f"{self.version}\0{text}".encode()).hexdigest()

    def get(self, key: str) -> list[dict[str, str]] | None:
        path = self.directory / f"{key}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, list) else None

    def put(self, key: str, findings: list[dict[str, str]]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.directory / f".{key}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(findings), encoding="utf-8")
        temporary.replace(self.directory / f"{key}.json")


def run_checkov(results: list[SiteResult], checkov: Path, jobs: int = 2, cache_dir: Path | None = None) -> None:
    """Add one problem per failed checkov check to the site it came from.

    With a cache directory, a site whose rendered objects checkov has already scanned (same
    checkov version) gets the stored findings instead of a new scan.
    """
    cache = None
    if cache_dir is not None:
        version = checkov_version(checkov)
        cache = _Cache(cache_dir / f"checkov-{_safe(version)}", version)
    texts = {id(result): _scan_text(result) for result in results}
    pending = []
    for result in results:
        stored = cache.get(cache.key(texts[id(result)])) if cache else None
        if stored is None:
            pending.append(result)
        else:
            _apply(result, stored)
    chunks = [pending[i : i + SITES_PER_RUN] for i in range(0, len(pending), SITES_PER_RUN)]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(lambda chunk: _run_chunk(chunk, checkov, texts, cache), chunks))


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in text)[:80]


def _apply(result: SiteResult, findings: list[dict[str, str]]) -> None:
    for finding in findings:
        obj = _find(result, finding["resource"])
        result.add("checkov", obj, "", finding["check"], file="" if obj else finding["resource"])


def _run_chunk(results: list[SiteResult], checkov: Path, texts: dict[int, str], cache: _Cache | None) -> None:
    with tempfile.TemporaryDirectory(prefix="validate-gitops-checkov-") as tmp:
        files: dict[str, SiteResult] = {}
        for index, result in enumerate(results):
            path = Path(tmp) / f"site-{index:04d}.yaml"
            path.write_text(texts[id(result)], encoding="utf-8")
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
    findings: dict[str, list[dict[str, str]]] = {name: [] for name in files}
    for report in reports:
        for failed in (report.get("results") or {}).get("failed_checks") or []:
            name = Path(str(failed.get("file_path", ""))).name
            if name in findings:
                findings[name].append(
                    {
                        "resource": str(failed.get("resource", "")),
                        "check": f"{failed.get('check_id')} {failed.get('check_name')}",
                    }
                )
    for name, owner in files.items():
        _apply(owner, findings[name])
        if cache is not None:
            cache.put(cache.key(texts[id(owner)]), findings[name])


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
