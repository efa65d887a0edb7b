# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every image has a known origin (check `images`).

An image is either an upstream image pinned by a digest whose source is recorded, or one the
project builds from a recipe in the repository. The records are `ImageSources` documents
(local configuration, never applied): gitops/platform/images.yaml for the platform's bases and,
optionally, sites/<site>/images.yaml for what a site adds or builds itself. For each container
of every rendered object (pod templates, and the Jobs an AnalysisTemplate runs):

- an image nobody recorded is refused;
- an upstream image must carry exactly the recorded digest;
- a project-built image still at its placeholder digest is refused unless the site's own
  images.yaml records that image: the digest it built (`digest` and `readFrom`), or, in an
  example site that cannot have built it, an `example:` saying so (printed as a note).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from .model import Obj, SiteResult

__all__ = ["IMAGE_SOURCES", "check_image_sources", "containers", "split_image"]

CHECK = "images"
IMAGE_SOURCES = "ImageSources"
PLATFORM_FILE = Path("platform") / "images.yaml"


def containers(value: Any, path: str = "") -> Iterator[tuple[dict[str, Any], str]]:
    """Every container (and init container) anywhere in an object, with its field path."""
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if key in ("containers", "initContainers", "ephemeralContainers") and isinstance(item, list):
                for index, container in enumerate(item):
                    if isinstance(container, dict) and "image" in container:
                        yield container, f"{where}[{container.get('name', index)}]"
            else:
                yield from containers(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from containers(item, f"{path}[{index}]")


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """(name, tag, digest) of an image reference."""
    name, _sep, digest = image.partition("@")
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, _sep, tag = name.rpartition(":")
    return name, tag, digest or None


def _load(path: Path, result: SiteResult) -> list[dict[str, Any]]:
    """The entries of the ImageSources documents in `path` (each knows its file, named as problems name files)."""
    shown = path.resolve().relative_to(Path(result.root).resolve().parent).as_posix() if result.root else str(path)
    if not path.is_file():
        return []
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]
    except yaml.YAMLError as exc:
        result.add(CHECK, None, "", f"cannot read: {exc}", file=shown)
        return []
    entries = []
    for doc in docs:
        if doc.get("kind") != IMAGE_SOURCES:
            continue
        for entry in (doc.get("spec") or {}).get("images") or []:
            if isinstance(entry, dict) and entry.get("name"):
                entries.append({**entry, "_file": shown})
    return entries


def _entry_problems(entry: dict[str, Any]) -> str | None:
    if entry.get("recipe"):
        return None
    if not entry.get("digest") or not str(entry.get("readFrom", "")).strip():
        if entry.get("example"):
            return None
        return "needs `digest` and `readFrom` (where that digest was read), or `recipe` for an image the project builds"
    return None


def check_image_sources(result: SiteResult) -> None:
    if result.root is None:
        return  # manifests given on the command line: no GitOps root with image records
    root = Path(result.root)
    platform = _load(root / PLATFORM_FILE, result)
    site = _load(root / "sites" / result.name / "images.yaml", result)
    if not platform and not site:
        result.add(
            CHECK,
            None,
            "",
            "no ImageSources record (platform/images.yaml): every image's origin must be written down",
            file=(Path(root.name) / PLATFORM_FILE).as_posix(),
        )
        return
    for entry in platform + site:
        problem = _entry_problems(entry)
        if problem:
            result.add(CHECK, None, f"spec.images[{entry['name']}]", problem, file=entry["_file"])
    by_name_platform = {e["name"]: e for e in platform}
    by_name_site = {e["name"]: e for e in site}
    for obj in result.objects:
        for container, where in containers(obj.doc.get("spec")):
            image = str(container.get("image"))
            _check_image(result, obj, f"spec.{where}.image", image, by_name_platform, by_name_site)


def _check_image(
    result: SiteResult,
    obj: Obj,
    where: str,
    image: str,
    platform: dict[str, dict[str, Any]],
    site: dict[str, dict[str, Any]],
) -> None:
    name, _tag, digest = split_image(image)
    own = site.get(name)
    base = platform.get(name)
    entry = own or base
    if entry is None:
        result.add(
            CHECK,
            obj,
            where,
            f"{image}: no recorded origin: add it to platform/images.yaml or sites/{result.name}/images.yaml "
            "(digest and where it was read, or the recipe that builds it)",
        )
        return
    if base is not None and base.get("recipe") and digest == base.get("placeholder"):
        if own is None:
            result.add(
                CHECK,
                obj,
                where,
                f"{image}: still the placeholder of an image the project builds ({base['recipe']}): build it, push it "
                f"and set its digest in the site (kustomize images), recording it in sites/{result.name}/images.yaml",
            )
        elif own.get("example"):
            result.notes.append(f"{own['_file']}: {name}: example value - {own['example']}")
        else:
            result.add(
                CHECK,
                obj,
                where,
                f"{image}: sites/{result.name}/images.yaml records {name} but the site still runs the placeholder "
                "digest: override it in the site's kustomization (images)",
            )
        return
    recorded = entry.get("digest")
    if recorded and digest != recorded:
        result.add(
            CHECK,
            obj,
            where,
            f"{image}: digest differs from the one whose origin is recorded ({recorded}, {entry['_file']}): record "
            "where the new digest was read",
        )
