# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write each site's rendered objects: what Flux would apply, in a stable order and form.

Objects are sorted by apiVersion, kind, namespace and name and written with sorted keys, so
two runs over the same repository give byte-identical files (and a diff between two commits'
outputs shows exactly what a change does to a site).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .model import Obj, SiteResult

__all__ = ["render_site", "write_rendered"]

_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _order(obj: Obj) -> tuple[str, str, str, str]:
    return (obj.api_version, obj.kind, obj.namespace, obj.name)


def render_site(result: SiteResult) -> str:
    """The site's objects as one multi-document YAML text (encrypted Secrets as committed)."""
    docs = [obj.doc for obj in sorted(result.objects, key=_order)]
    text: str = yaml.dump_all(docs, Dumper=_DUMPER, sort_keys=True, explicit_start=True, width=1000)
    return text


def write_rendered(results: list[SiteResult], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for result in results:
        name = result.name.replace("/", "_").replace(" ", "_")
        target = directory / f"{name}.yaml"
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_text(render_site(result), encoding="utf-8")
        temporary.replace(target)
