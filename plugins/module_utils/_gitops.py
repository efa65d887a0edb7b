# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The GitOps hand-off: the objects that point a site's cluster at its folder in Git.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

Ansible (the gitops_bootstrap role) places these objects in k3s's auto-deploy directory, and
scripts/validate-gitops starts every site's build from the very same objects, so the Git
repository holds no copy of them: the repository URL, the branch and the site's entry path
are written once, in the inventory.

Layout of the repository (relative to `gitops_root`, "." when the template is the
repository's root):
* platform/flux          the site's Flux Kustomizations (infrastructure, configs, apps), shared;
                         the hand-off substitutes ${SITE} and ${GITOPS_ROOT} in them;
* platform/...           every other shared base;
* sites/<site>/          the catalog (site.yaml), the site's infrastructure/ and apps/ folders.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ARGOCD_NAMESPACE",
    "BOOTSTRAP_SECRETS",
    "FLUX_ENTRY",
    "FLUX_NAMESPACE",
    "HandoffError",
    "argocd_handoff",
    "flux_handoff",
    "handoff",
    "handoff_variables",
    "site_path",
]

FLUX_NAMESPACE = "flux-system"
ARGOCD_NAMESPACE = "argocd"
# The shared Flux entry, relative to the GitOps root.
FLUX_ENTRY = "platform/flux"
# Paths of a site's folders, relative to the GitOps root.
SITES_DIR = "sites"
# What Argo CD syncs for a site (it runs no Flux HelmReleases: the add-ons must already run).
ARGOCD_SOURCES = ("platform/configs", "sites/{site}/apps")

# Secrets the hand-off creates next to the controller (never in Git), by purpose. Objects in
# Git refer to them by these names; flux bootstrap uses the same ones.
BOOTSTRAP_SECRETS: dict[str, str] = {
    "git": "flux-system",
    "sops": "sops-age",
    "signers": "flux-git-signers",
}
ARGOCD_REPO_SECRET = "edgeslm-gitops-repository"
MANAGED_BY = "edgeslm.pi5.gitops_bootstrap"

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_REF = re.compile(r"[A-Za-z0-9._/-]+")
_INTERVAL = re.compile(r"([0-9]+(ms|s|m|h))+")
_ROOT = re.compile(r"\.(/[A-Za-z0-9._-]+)*")


class HandoffError(ValueError):
    """A hand-off setting that cannot work; the message names the variable and the fix."""


def site_path(site: str, gitops_root: str = ".") -> str:
    """The site's folder as a repository path (./sites/<site>, ./gitops/sites/<site>)."""
    return f"{gitops_root.rstrip('/')}/{SITES_DIR}/{site}"


def handoff_variables(site: str, gitops_root: str = ".") -> dict[str, str]:
    """Flux post-build variables of the hand-off Kustomization (substituted in platform/flux)."""
    return {"SITE": site, "GITOPS_ROOT": gitops_root.rstrip("/") or "."}


def _check(site: str, repo_url: str, branch: str, gitops_root: str, intervals: Mapping[str, str]) -> None:
    if not _DNS_LABEL.fullmatch(site or ""):
        raise HandoffError(f"gitops_bootstrap_site: {site!r} is not a site name (a DNS label, gitops/sites/<site>)")
    if not repo_url or any(c.isspace() for c in repo_url):
        raise HandoffError("gitops_bootstrap_repo_url: set the Git URL of the fleet repository (https:// or ssh://)")
    if not _REF.fullmatch(branch or ""):
        raise HandoffError(f"gitops_bootstrap_repo_branch: {branch!r} is not a branch name")
    if not _ROOT.fullmatch(gitops_root or ""):
        raise HandoffError(
            f"gitops_bootstrap_root: {gitops_root!r} must be '.' or './<dir>' (where platform/ and sites/ live)"
        )
    for name, value in intervals.items():
        if not _INTERVAL.fullmatch(value or ""):
            raise HandoffError(f"{name}: {value!r} is not a duration such as 5m or 1h30m")


def _labels(site: str) -> dict[str, str]:
    return {"app.kubernetes.io/managed-by": MANAGED_BY, "edgeslm.io/site": site}


def flux_handoff(
    *,
    site: str,
    repo_url: str,
    branch: str = "main",
    gitops_root: str = ".",
    source_interval: str = "5m",
    reconcile_interval: str = "10m",
    git_credentials: bool = False,
    verify_commits: bool = False,
    verify_mode: str = "HEAD",
) -> list[dict[str, Any]]:
    """GitRepository + Kustomization `flux-system`, named as flux bootstrap names them."""
    _check(
        site,
        repo_url,
        branch,
        gitops_root,
        {
            "gitops_bootstrap_source_interval": source_interval,
            "gitops_bootstrap_reconcile_interval": reconcile_interval,
        },
    )
    if verify_mode not in ("HEAD", "Tag", "TagAndHEAD"):
        raise HandoffError(f"gitops_bootstrap_git_verify_mode: {verify_mode!r} must be HEAD, Tag or TagAndHEAD")
    source_spec: dict[str, Any] = {"interval": source_interval, "url": repo_url, "ref": {"branch": branch}}
    if git_credentials:
        source_spec["secretRef"] = {"name": BOOTSTRAP_SECRETS["git"]}
    if verify_commits:
        source_spec["verify"] = {"mode": verify_mode, "secretRef": {"name": BOOTSTRAP_SECRETS["signers"]}}
    labels = _labels(site)
    source = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "flux-system", "namespace": FLUX_NAMESPACE, "labels": labels},
        "spec": source_spec,
    }
    sync = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "flux-system", "namespace": FLUX_NAMESPACE, "labels": dict(labels)},
        "spec": {
            "interval": reconcile_interval,
            "path": f"{gitops_root.rstrip('/')}/{FLUX_ENTRY}",
            "prune": True,
            "wait": True,
            "timeout": "5m",
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
            "postBuild": {"substitute": handoff_variables(site, gitops_root)},
        },
    }
    return [source, sync]


def argocd_handoff(
    *,
    site: str,
    repo_url: str,
    branch: str = "main",
    gitops_root: str = ".",
) -> list[dict[str, Any]]:
    """One Argo CD Application syncing the site's configs and apps from the fleet repository."""
    _check(site, repo_url, branch, gitops_root, {})
    root = gitops_root.rstrip("/")
    sources = [
        {"repoURL": repo_url, "targetRevision": branch, "path": f"{root}/{path.format(site=site)}"}
        for path in ARGOCD_SOURCES
    ]
    return [
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": f"edgeslm-{site}", "namespace": ARGOCD_NAMESPACE, "labels": _labels(site)},
            "spec": {
                "project": "default",
                "sources": sources,
                "destination": {"server": "https://kubernetes.default.svc"},
                "syncPolicy": {
                    "automated": {"prune": True, "selfHeal": True},
                    "syncOptions": ["ServerSideApply=true"],
                    "retry": {
                        "limit": 5,
                        "backoff": {"duration": "30s", "factor": 2, "maxDuration": "5m"},
                    },
                },
            },
        }
    ]


def handoff(controller: str, **settings: Any) -> list[dict[str, Any]]:
    """The hand-off objects of `controller` (flux or argocd)."""
    if controller == "flux":
        return flux_handoff(**settings)
    if controller == "argocd":
        allowed = {"site", "repo_url", "branch", "gitops_root"}
        return argocd_handoff(**{k: v for k, v in settings.items() if k in allowed})
    raise HandoffError(f"gitops_bootstrap_controller: {controller!r} must be flux or argocd")
