# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Upstream facts the validator models the cluster with, loaded from scripts/gitops_validate/data.

Each data file says where every fact was read (repository, tag or commit, file); no upstream
prose or code is in them. This module only loads and indexes them:

- k3s.yaml: what the pinned k3s release runs by itself (add-ons, ServiceLB), its Traefik API group;
- charts.yaml: the pods of each pinned Helm chart, with the values that decide their scheduling;
- bootstrap.yaml: the Flux controllers the GitOps hand-off installs;
- kstatus.yaml, rollouts.yaml, metrics.yaml, images.yaml: health, controller flags, exported
  metric names and image provenance (read by the checks that use them).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DATA_DIR", "DataError", "chart", "load"]

DATA_DIR = Path(__file__).resolve().parent / "data"


class DataError(ValueError):
    """A data file is missing or malformed; the message names the file and the field."""


@cache
def load(name: str) -> dict[str, Any]:
    """One data file (`k3s`, `charts`, ...) as parsed YAML."""
    path = DATA_DIR / f"{name}.yaml"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise DataError(f"{path}: must be a mapping")
    return doc


def chart(name: str, version: str) -> dict[str, Any] | None:
    """The facts kept for one chart at one version, or None."""
    for entry in load("charts").get("charts") or []:
        if entry.get("chart") == name and str(entry.get("version")) == str(version):
            return dict(entry)
    return None
