# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for the validate-gitops tests: a fresh copy of the template per test."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

from ansible_collections.edgeslm.pi5.scripts.gitops_validate import K3S_KUBERNETES_MINOR  # noqa: E402
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.cli import DEFAULT_SCHEMAS, Target, Validators, validate  # noqa: E402
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.crd_schema import CrdValidator  # noqa: E402
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.k8s_schema import BuiltinValidator  # noqa: E402
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.model import SiteResult  # noqa: E402
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.render import Renderer  # noqa: E402

CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "checkov: runs checkov from .venv-checkov (slow, about 5 s)")


@pytest.fixture(scope="session")
def validators() -> Validators:
    if not (DEFAULT_SCHEMAS / "index.json").is_file():
        pytest.fail(f"CRD schemas missing at {DEFAULT_SCHEMAS}: run scripts/gen-crd-schemas")
    return Validators(BuiltinValidator(K3S_KUBERNETES_MINOR), CrdValidator(DEFAULT_SCHEMAS), frozenset())


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A private copy of gitops/ that a test may break."""
    root = tmp_path / "gitops"
    shutil.copytree(REPO / "gitops", root)
    return root


@pytest.fixture
def run_site(validators: Validators) -> Callable[[Path, str], SiteResult]:
    def run(root: Path, site: str) -> SiteResult:
        return validate([Target(site, root=root)], validators, Renderer(), 1)[0]

    return run


@pytest.fixture
def edit() -> Iterator[Callable[[Path, str, str], None]]:
    """Replace text in a file, failing loudly if the text is not there (so no defect is lost)."""

    def replace(path: Path, old: str, new: str) -> None:
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not found in {path}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    yield replace
