# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Argo CD alternative renders the same overlays: check it would accept each site.

For every ApplicationSet, each source path (its template expressions standing for the site
name) must exist for every Flux site, and everything the Flux Kustomizations with those paths
render must be allowed by the Application's AppProject: cluster-scoped kinds by
clusterResourceWhitelist, namespaced objects by the destinations' namespaces.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

from .flux import FLUX_KUSTOMIZATION
from .model import Obj, SiteResult

__all__ = ["check_argocd"]

_TEMPLATE = re.compile(r"\{\{[^}]*\}\}")


def _normalise(path: str) -> str:
    return path.strip().removeprefix("./").strip("/")


def _sources(spec: dict[str, Any]) -> list[dict[str, Any]]:
    sources = spec.get("sources")
    if isinstance(sources, list):
        return [s for s in sources if isinstance(s, dict)]
    return [spec["source"]] if isinstance(spec.get("source"), dict) else []


def _allowed_kind(project: Obj, obj: Obj) -> bool:
    group = obj.api_version.split("/")[0] if "/" in obj.api_version else ""
    for entry in project.spec().get("clusterResourceWhitelist") or []:
        if fnmatch.fnmatch(group, str(entry.get("group", ""))) and fnmatch.fnmatch(obj.kind, str(entry.get("kind"))):
            return True
    return False


def _allowed_namespace(project: Obj, namespace: str) -> bool:
    return any(
        fnmatch.fnmatch(namespace, str(d.get("namespace", ""))) for d in project.spec().get("destinations") or []
    )


def _rendered_by_path(site: SiteResult) -> dict[str, list[Obj]]:
    paths = {
        o.ref: _normalise(str(o.spec().get("path", "")))
        for o in site.objects
        if o.api_version.startswith(FLUX_KUSTOMIZATION) and o.kind == "Kustomization"
    }
    out: dict[str, list[Obj]] = {}
    for obj in site.objects:
        if obj.applied_by in paths:
            out.setdefault(paths[obj.applied_by], []).append(obj)
    return out


def check_argocd(argocd: SiteResult, sites: list[SiteResult], root: Path) -> None:
    projects = {o.name: o for o in argocd.objects if o.kind == "AppProject"}
    for appset in (o for o in argocd.objects if o.kind == "ApplicationSet"):
        spec = (appset.spec().get("template") or {}).get("spec") or {}
        project = projects.get(str(spec.get("project")))
        if project is None:
            argocd.add("argocd", appset, "spec.template.spec.project", f"AppProject {spec.get('project')} not found")
            continue
        for index, source in enumerate(_sources(spec)):
            for site in sites:
                path = _normalise(_TEMPLATE.sub(site.name, str(source.get("path", ""))))
                where = f"spec.template.spec.sources[{index}].path"
                if not (root / path).is_dir():
                    argocd.add("argocd", appset, where, f"{path} does not exist for site {site.name}")
                    continue
                for obj in _rendered_by_path(site).get(path, []):
                    if not obj.namespace and not _allowed_kind(project, obj):
                        argocd.add(
                            "argocd",
                            appset,
                            where,
                            f"site {site.name}: {obj.ref} is not in {project.ref}'s clusterResourceWhitelist",
                        )
                    elif obj.namespace and not _allowed_namespace(project, obj.namespace):
                        argocd.add(
                            "argocd",
                            appset,
                            where,
                            f"site {site.name}: {obj.ref} is outside {project.ref}'s destinations",
                        )
