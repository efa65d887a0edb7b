# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers every testinfra verify file shares: the Molecule scenarios and molecule/hw (a real board).

Importable as `edgeslm_verify` because pyproject.toml puts molecule/resources/verify on pytest's
pythonpath (pytest finds that file from the repository root, where Molecule runs).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

FACTS_DIR = "/etc/ansible/facts.d"
CONTAINER_MARKERS = ("/run/.containerenv", "/.dockerenv")

__all__ = [
    "container_only",
    "fact_path",
    "is_container",
    "local_fact",
    "os_codename",
    "real_node_only",
]


def is_container(host: Any) -> bool:
    """True on a container node (the virtual Pi 5s), false on a real board."""
    return any(host.file(marker).exists for marker in CONTAINER_MARKERS)


def real_node_only(host: Any, reason: str = "the kernel, firmware and devices belong to the host") -> None:
    """Skip a test that needs a real board."""
    if is_container(host):
        pytest.skip(f"container node: {reason}")


def container_only(host: Any, reason: str = "it checks a TEST STAND-IN") -> None:
    """Skip a test that only makes sense on the virtual nodes."""
    if not is_container(host):
        pytest.skip(f"real board: {reason}")


def fact_path(role: str) -> str:
    return f"{FACTS_DIR}/edgeslm_{role}.fact"


def local_fact(host: Any, role: str, mode: int | None = 0o644) -> dict[str, Any]:
    """The role's local fact (JSON), checked to exist and, unless mode is None, to have that mode."""
    path = fact_path(role)
    fact_file = host.file(path)
    assert fact_file.exists, f"{path} missing: {role} did not run"
    if mode is not None:
        assert fact_file.mode == mode, f"{path} has mode {fact_file.mode:o}, expected {mode:o}"
    data: dict[str, Any] = json.loads(fact_file.content_string)
    return data


def os_codename(host: Any) -> str:
    """VERSION_CODENAME of the node's /etc/os-release (bookworm, trixie)."""
    text: str = host.file("/etc/os-release").content_string
    for line in text.splitlines():
        key, _sep, value = line.partition("=")
        if key == "VERSION_CODENAME":
            return value.strip().strip('"')
    return ""
