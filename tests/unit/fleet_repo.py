# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""A fleet repository for the release tests and benchmark: a git repository holding this project's files.

A user's fleet repository is a clone of the template: gitops/ and, beside it, what validate-gitops
checks the sites against (the image recipes and their build scripts). `make_fleet` copies the
checkout's files as a clone holds them (tracked and new, not ignored; symlinks kept), lets the
given sites trust a model-signing key (spec.modelSigning.trustedKeys, as a site owner writes it by
hand), and commits everything on `main` with a local identity.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ansible_collections.edgeslm.pi5.tests.unit.checkout import project_files

REPO = Path(__file__).resolve().parents[2]

__all__ = ["copy_checkout", "make_fleet", "trust_key"]


def copy_checkout(dest: Path) -> None:
    for rel in project_files():
        source, target = REPO / rel, dest / rel
        if not source.is_symlink() and not source.is_file():
            continue  # deleted in the work tree
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(source.readlink())
        else:
            shutil.copy2(source, target)


def trust_key(site_yaml: Path, name: str, public_pem: str) -> None:
    """Add spec.modelSigning.trustedKeys (one key) to a site catalog, before spec.nodeClasses."""
    text = site_yaml.read_text(encoding="utf-8")
    block = "  modelSigning:\n    trustedKeys:\n"
    block += f"      - name: {name}\n        publicKey: |\n"
    block += "".join(f"          {line}\n" for line in public_pem.strip().splitlines())
    if "\n  nodeClasses:\n" not in text:
        raise ValueError(f"{site_yaml}: no spec.nodeClasses to put the trusted keys before")
    site_yaml.write_text(text.replace("\n  nodeClasses:\n", "\n" + block + "  nodeClasses:\n", 1), encoding="utf-8")


def make_fleet(repo: Path, sites: dict[str, tuple[str, str]]) -> str:
    """Build the fleet repository at `repo`; `sites` maps site -> (key name, public PEM). Returns HEAD."""
    copy_checkout(repo)
    for site, (name, pem) in sites.items():
        trust_key(repo / "gitops" / "sites" / site / "site.yaml", name, pem)
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    for command in (
        ["init", "--quiet", "--initial-branch", "main"],
        ["config", "user.name", "Release Test"],
        ["config", "user.email", "release-test@example.invalid"],
        ["add", "-A"],
        ["commit", "--quiet", "-m", "fleet"],
    ):
        subprocess.run(["git", *command], cwd=repo, check=True, capture_output=True, env=env)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()
