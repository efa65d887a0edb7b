# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Argo CD alternative: the hand-off Application must be able to sync the site.

gitops_bootstrap with controller argocd places one Application (built by the collection's
core, _gitops.argocd_handoff) whose sources are folders Flux builds too. Argo CD runs no Flux
HelmReleases and decrypts no SOPS files by itself, so the check is that every source folder
exists and builds, and a note names what Argo CD needs besides (the add-ons already running,
a SOPS plugin for encrypted Secrets).
"""

from __future__ import annotations

from pathlib import Path

from .core import load_module
from .model import SiteResult
from .render import is_kustomization_dir

__all__ = ["check_argocd"]

HANDOFF_FILE = "hand-off (edgeslm.pi5.gitops_bootstrap, controller argocd)"


def check_argocd(result: SiteResult, root: Path) -> None:
    gitops = load_module("_gitops")
    application = gitops.argocd_handoff(site=result.name, repo_url="ssh://git@git.invalid/fleet.git")[0]
    for index, source in enumerate(application["spec"]["sources"]):
        rel = str(source["path"]).removeprefix("./")
        if not is_kustomization_dir(root / rel):
            result.add(
                "argocd",
                None,
                f"spec.sources[{index}].path",
                f"{rel} is not a kustomization directory Argo CD can sync",
                file=HANDOFF_FILE,
            )
    encrypted = sorted({o.file for o in result.objects if o.kind == "Secret" and "sops" in o.doc})
    if encrypted:
        result.notes.append(
            "Argo CD: SOPS-encrypted Secrets need a decryption plugin (KSOPS) in Argo CD: " + ", ".join(encrypted)
        )
