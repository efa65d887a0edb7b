# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Site catalogs (`kind: SiteCatalog`): loaded and checked by the collection's core.

What a catalog means lives in plugins/module_utils/_catalog.py; this module reports its
problems per field, checks that the site folder's generated files are the ones the catalog
gives, and sizes each model's resources against the core's memory estimate.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from .core import load_module
from .model import Obj, SiteResult
from .quantity import QuantityError, parse_quantity
from .sitegen import stale_files

__all__ = ["CATALOG_KIND", "check_catalog", "load_site_catalog", "memory_needed"]

CATALOG_KIND = "SiteCatalog"
MIB = 1 << 20
# Requests above 2 x estimate + 256 MiB reserve memory the node cannot give to anything else.
MAX_REQUEST_FACTOR = 2
MAX_REQUEST_SLACK = 256 * MIB
PI5_CORES = 4


def load_site_catalog(obj: Obj, result: SiteResult) -> Any | None:
    """The core's SiteCatalog for a catalog object, or None with every problem reported."""
    catalog_core = load_module("_catalog")
    try:
        return catalog_core.load_catalog(obj.doc, source=obj.file)
    except catalog_core.CatalogError as exc:
        for problem in exc.problems:
            field, _sep, message = problem.partition(": ")
            result.add("catalog", obj, field, message or problem)
        return None


def memory_needed(model: Any) -> int | None:
    """Bytes the model's server needs by the core's estimate; None for NPU models."""
    if model.runtime.memory_runtime is None:
        return None
    fit = load_module("_catalog").model_fit(model)
    return int(fit.needed)


class _CatalogChecker:
    def __init__(self, obj: Obj, catalog: Any, site_dir: Path | None, result: SiteResult) -> None:
        self.obj = obj
        self.catalog = catalog
        self.site_dir = site_dir
        self.result = result
        self.targets = load_module("_targets")
        self.catalog_core = load_module("_catalog")

    def add(self, field: str, message: str) -> None:
        self.result.add("catalog", self.obj, field, message)

    def run(self) -> None:
        if self.site_dir is not None and self.site_dir.name != self.catalog.name:
            self.add("metadata.name", f"is {self.catalog.name!r} but the folder is sites/{self.site_dir.name}")
        if self.site_dir is not None:
            self._check_generated()
        for model in self.catalog.models:
            where = f"spec.models[{model.name}]"
            if model.example:
                self.result.notes.append(f"{self.obj.file}: {where}: example value - {model.example}")
            self._check_model(model, where)

    def _check_generated(self) -> None:
        assert self.site_dir is not None
        for rel in stale_files(self.catalog, self.site_dir):
            what = "is missing" if not (self.site_dir / rel).is_file() else "differs from what the site folder gives"
            self.add(
                "",
                f"sites/{self.catalog.name}/{rel} {what} (generated: never edit it by hand): "
                f"run scripts/new-site --sync {self.catalog.name}",
            )

    def _check_model(self, model: Any, where: str) -> None:
        try:
            fit = self.catalog_core.model_fit(model)
        except ValueError as exc:
            self.add(f"{where}.description", str(exc))
            return
        for problem in fit.problems:
            self.add(f"{where}.target", problem)
        for warning in fit.warnings:
            self.result.notes.append(f"{self.obj.file}: {where}: {warning}")
        classes = self.catalog.classes_for(model)
        if not classes:
            return
        host_available = min(int(self.targets.get_target(c.target).available_bytes) for c in classes)
        needed = int(fit.needed) if model.runtime.memory_runtime is not None else None
        self._check_resources(model, where, needed, host_available)

    def _check_resources(self, model: Any, where: str, needed: int | None, available: int) -> None:
        resources = model.resources
        try:
            req_mem = parse_quantity(resources["requests"]["memory"])
            lim_mem = parse_quantity(resources["limits"]["memory"])
            req_cpu = parse_quantity(resources["requests"]["cpu"])
            lim_cpu = parse_quantity(resources["limits"]["cpu"])
        except (KeyError, TypeError, QuantityError) as exc:
            self.add(f"{where}.resources", f"invalid resources: {exc}")
            return
        field = f"{where}.resources"
        if needed is not None:
            if req_mem < needed:
                self.add(
                    f"{field}.requests.memory",
                    f"{_mib(req_mem)} is below the estimate {_mib(Decimal(needed))} for the serving configuration",
                )
            ceiling = Decimal(needed * MAX_REQUEST_FACTOR + MAX_REQUEST_SLACK)
            if req_mem > ceiling:
                self.add(
                    f"{field}.requests.memory",
                    f"{_mib(req_mem)} is more than {_mib(ceiling)} "
                    f"(2 x the estimate {_mib(Decimal(needed))} + 256 MiB); lower it or raise the context",
                )
        if lim_mem < req_mem:
            self.add(f"{field}.limits.memory", f"limit {_mib(lim_mem)} is below the request {_mib(req_mem)}")
        if lim_mem > available:
            self.add(
                f"{field}.limits.memory",
                f"limit {_mib(lim_mem)} exceeds the {_mib(Decimal(available))} "
                f"a {model.target} node has free for workloads",
            )
        if lim_cpu < req_cpu:
            self.add(f"{field}.limits.cpu", f"limit {lim_cpu} is below the request {req_cpu}")
        if lim_cpu > PI5_CORES:
            self.add(f"{field}.limits.cpu", f"limit {lim_cpu} exceeds the Pi 5's {PI5_CORES} cores")


def _mib(value: Decimal) -> str:
    return f"{int(value) // MIB} MiB"


def check_catalog(obj: Obj, site_dir: Path | None, result: SiteResult) -> Any | None:
    """Load and check one catalog; the loaded SiteCatalog (None when it is invalid)."""
    catalog = load_site_catalog(obj, result)
    if catalog is not None:
        _CatalogChecker(obj, catalog, site_dir, result).run()
    return catalog
