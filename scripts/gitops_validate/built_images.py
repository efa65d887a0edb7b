# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Images the project builds, referenced by the tag their recipe builds (check `images`).

A project-built image (an ImageSources entry with `recipe:`, see images.py) is referenced either
by digest (a site that pushed it records the digest it built) or by the tag its build script
prints: `<upstream version>-<recipe hash>-<arch>`, where the hash covers every input of the build
(scripts/llama-server-image). A tag-only reference is accepted only when

- the recipe is in this checkout and its build script prints exactly that tag for that arch (a
  changed recipe is a new image: the reference must change with it, and so goes through the canary);
- every node class the workload can be placed on (its required `edgeslm.io/node-class` affinity)
  has the tag's arch: a single-arch image must not land on another architecture.

Outside a checkout with the recipe (the installed collection validating a fleet repository) a
tag-only reference cannot be checked and is refused: pin the image by digest there.
"""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .model import Obj, SiteResult

__all__ = ["BUILD_SCRIPTS", "recipe_entry", "recipe_tag", "tag_reference_problems"]

# Recipe directory -> the script that builds it and prints its tag (`--print-tag --arch ARCH`).
BUILD_SCRIPTS = {"images/llama-server": "scripts/llama-server-image"}
NODE_CLASS_LABEL = "edgeslm.io/node-class"
ARCHES = ("amd64", "arm64")


def _records(path: Path) -> list[dict[str, Any]]:
    try:
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8"))) if path.is_file() else []
    except (OSError, yaml.YAMLError):
        return []  # images.py reports an unreadable record
    return [
        entry
        for doc in docs
        if isinstance(doc, dict) and doc.get("kind") == "ImageSources"
        for entry in (doc.get("spec") or {}).get("images") or []
        if isinstance(entry, dict)
    ]


def recipe_entry(result: SiteResult, name: str) -> dict[str, Any] | None:
    """The ImageSources entry (site's first, then the platform's) saying the project builds `name`."""
    if result.root is None:
        return None
    root = Path(result.root)
    for path in (root / "sites" / result.name / "images.yaml", root / "platform" / "images.yaml"):
        for entry in _records(path):
            if entry.get("name") == name:
                return entry if entry.get("recipe") else None
    return None


@cache
def recipe_tag(repo: Path, recipe: str, arch: str) -> str:
    """The full image reference the recipe in `repo` builds for arch (raises ValueError if it cannot tell)."""
    script = BUILD_SCRIPTS.get(recipe)
    if script is None:
        raise ValueError(f"no build script is known for recipe {recipe} (known: {', '.join(sorted(BUILD_SCRIPTS))})")
    path = repo / script
    if not (repo / recipe).is_dir() or not path.is_file():
        raise ValueError(f"the recipe {recipe} is not in this checkout ({repo})")
    result = subprocess.run(
        [sys.executable, str(path), "--print-tag", "--arch", arch],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise ValueError(f"{script} --print-tag failed: {(result.stderr or result.stdout).strip()[-300:]}")
    return result.stdout.strip()


# The checkout this validator runs from (scripts/gitops_validate/ in it); the installed collection
# ships no image recipes, so there it holds none.
VALIDATOR_CHECKOUT = Path(__file__).resolve().parents[2]


def _repo_for(root: Path, recipe: str) -> Path:
    """The checkout holding `recipe`: the GitOps root's parent (gitops/ in a repository like this one), the
    root itself, or the checkout the validator runs from (a copy of the GitOps tree validated elsewhere)."""
    for candidate in (root.parent, root, VALIDATOR_CHECKOUT):
        if (candidate / recipe).is_dir():
            return candidate
    return root.parent


def _placement_arches(obj: Obj, result: SiteResult) -> set[str] | None:
    """Arches of the node classes a workload's required node-class affinity admits (None: unknown)."""
    catalog = result.site_catalog
    if catalog is None:
        return None
    template = (obj.spec().get("template") or {}).get("spec") or {}
    terms = (
        (
            ((template.get("affinity") or {}).get("nodeAffinity") or {}).get(
                "requiredDuringSchedulingIgnoredDuringExecution"
            )
        )
        or {}
    ).get("nodeSelectorTerms") or []
    classes: set[str] = set()
    for term in terms:
        for expr in term.get("matchExpressions") or []:
            if expr.get("key") == NODE_CLASS_LABEL and expr.get("operator") == "In":
                classes.update(str(v) for v in expr.get("values") or [])
    if not classes:
        return {c.arch for c in catalog.node_classes}
    return {c.arch for c in catalog.node_classes if c.name in classes}


def tag_reference_problems(
    result: SiteResult, obj: Obj, image: str, name: str, tag: str | None, entry: dict[str, Any]
) -> list[str]:
    """Problems of a tag-only reference to the project-built image `entry` describes (empty: accepted)."""
    recipe = str(entry.get("recipe"))
    if result.root is None:
        return [f"{image}: a project-built image without a digest needs the GitOps root to check its recipe"]
    if not tag:
        return [f"{image}: a project-built image is referenced by its recipe's tag or by digest; it has neither"]
    arch = tag.rsplit("-", 1)[-1]
    if arch not in ARCHES:
        return [f"{image}: the tag must end in the image's arch ({' or '.join(ARCHES)}), as {recipe}'s tags do"]
    repo = _repo_for(Path(result.root), recipe)
    try:
        wanted = recipe_tag(repo, recipe, arch)
    except ValueError as exc:
        return [f"{image}: cannot check the tag against its recipe ({exc}); pin the image by digest instead"]
    problems = []
    wanted_tag = wanted.rsplit(":", 1)[-1]
    if tag != wanted_tag:
        problems.append(
            f"{image}: {recipe} now builds tag {wanted_tag} for {arch} (`{BUILD_SCRIPTS[recipe]} --print-tag`); "
            "a changed recipe is a new image: build it and reference the new tag"
        )
    arches = _placement_arches(obj, result)
    if arches is not None and arches - {arch}:
        problems.append(
            f"{image}: a single-arch {arch} image, but the workload can run on node classes of arch "
            f"{', '.join(sorted(arches - {arch}))}: restrict the model's nodeClasses or build that arch too"
        )
    return problems
