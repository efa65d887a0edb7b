# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Site catalogs (`kind: SiteCatalog`): schema, hardware fit and resource sizing.

A catalog is the one place where a site's node hardware and models are declared. The
fit and memory figures come from the collection's core (`_targets.check_fit`, which uses
`_memory`'s estimate), never from numbers written next to the model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema

from .core import REPO_ROOT, load_core
from .k8s_schema import _path
from .model import Obj, SiteResult
from .quantity import QuantityError, parse_quantity

__all__ = [
    "CATALOG_KIND",
    "DEFAULT_CATALOG_SCHEMA",
    "RUNTIME_NAMES",
    "check_catalog",
    "core_description",
    "find_catalogs",
    "memory_bounds",
]

CATALOG_KIND = "SiteCatalog"
DEFAULT_CATALOG_SCHEMA = REPO_ROOT / "gitops" / "schemas" / "site-catalog.schema.json"
# Catalog runtime -> the core's runtime name for the memory estimate (None: not a CPU runtime).
RUNTIME_NAMES: dict[str, str | None] = {"llamacpp": "llama.cpp", "llamaedge": "llamaedge", "hailo": None}
MIB = 1 << 20
# Requests above 2 x estimate + 256 MiB reserve memory the node cannot give to anything else.
MAX_REQUEST_FACTOR = 2
MAX_REQUEST_SLACK = 256 * MIB
PI5_CORES = 4


def find_catalogs(objects: Iterable[tuple[dict[str, Any], str]]) -> list[tuple[dict[str, Any], str]]:
    return [(doc, file) for doc, file in objects if doc.get("kind") == CATALOG_KIND]


def core_description(model: dict[str, Any]) -> dict[str, Any]:
    """The core's model description for one catalog entry."""
    desc = model.get("description") or {}
    out: dict[str, Any] = {
        "name": model.get("name"),
        "format": "hef" if str(model.get("file", "")).endswith(".hef") else "gguf",
        "architecture": desc.get("architecture"),
        "quantization": model.get("quantization"),
        "parameter_count": desc.get("parameterCount"),
        "block_count": desc.get("blockCount"),
        "embedding_length": desc.get("embeddingLength"),
        "head_count": desc.get("headCount"),
        "head_count_kv": desc.get("headCountKv"),
        "key_length": desc.get("keyLength"),
        "value_length": desc.get("valueLength"),
        "context_length": desc.get("trainedContextLength"),
        "vocab_size": desc.get("vocabSize"),
        # The file size bounds the tensor bytes from above (it adds only the metadata).
        "weights_bytes": desc.get("weightsBytes", model.get("sizeBytes")),
    }
    for source, key in (("slidingWindow", "sliding_window"), ("expertCount", "expert_count")):
        if source in desc:
            out[key] = desc[source]
    return out


def memory_bounds(model: dict[str, Any]) -> tuple[int, Any] | None:
    """(estimated bytes, FitResult) for a CPU model, from the core; None for NPU models."""
    runtime = RUNTIME_NAMES.get(str(model.get("runtime")))
    if runtime is None:
        return None
    targets = load_core()[1]
    fit = targets.check_fit(
        core_description(model),
        model["target"],
        context_length=int(model["contextLength"]),
        kv_cache_type=str(model.get("kvCacheType", "f16")),
        parallel=int(model.get("parallel", 1)),
        runtime=runtime,
    )
    return int(fit.needed), fit


class _CatalogChecker:
    def __init__(self, catalog: Obj, site: str, result: SiteResult) -> None:
        self.obj = catalog
        self.site = site
        self.result = result
        self.spec = catalog.spec()
        self.targets = load_core()[1]

    def add(self, field: str, message: str) -> None:
        self.result.add("catalog", self.obj, field, message)

    def run(self) -> None:
        if self.site and self.spec.get("site") != self.site:
            self.add("spec.site", f"catalog is for site {self.spec.get('site')!r}, expected {self.site!r}")
        self._check_hosts()
        seen_names: set[str] = set()
        seen_runtimes: dict[str, str] = {}
        for index, model in enumerate(self.spec.get("models") or []):
            where = f"spec.models[{model.get('name', index)}]"
            if model["name"] in seen_names:
                self.add(f"{where}.name", "duplicate model name")
            seen_names.add(model["name"])
            if model["runtime"] in seen_runtimes:
                self.add(
                    f"{where}.runtime",
                    f"runtime {model['runtime']} already serves {seen_runtimes[model['runtime']]}; "
                    "one model per runtime",
                )
            seen_runtimes[model["runtime"]] = model["name"]
            if "example" in model:
                self.result.notes.append(f"{self.obj.file}: {where}: example value - {model['example']}")
            self._check_model(model, where)

    def _check_hosts(self) -> None:
        seen: set[str] = set()
        for index, node_class in enumerate(self.spec.get("nodeClasses") or []):
            for host in node_class.get("hosts") or []:
                if host in seen:
                    self.add(f"spec.nodeClasses[{index}].hosts", f"host {host} is listed in two node classes")
                seen.add(host)

    def _node_classes(self, model: dict[str, Any]) -> list[dict[str, Any]]:
        classes = self.spec.get("nodeClasses") or []
        if model["runtime"] == "hailo":
            return [c for c in classes if c.get("npu") == model["target"]]
        matching = [c for c in classes if c.get("target") == model["target"]]
        if model["runtime"] == "llamaedge":
            matching = [c for c in matching if c.get("wasm")]
        return matching

    def _check_model(self, model: dict[str, Any], where: str) -> None:
        classes = self._node_classes(model)
        if not classes:
            need = (
                "an NPU"
                if model["runtime"] == "hailo"
                else "a Wasm-enabled"
                if model["runtime"] == "llamaedge"
                else "a"
            )
            self.add(
                f"{where}.target", f"no node class provides {need} {model['target']} for runtime {model['runtime']}"
            )
            return
        try:
            fit = self.targets.check_fit(
                core_description(model),
                model["target"],
                context_length=int(model["contextLength"]),
                kv_cache_type=str(model.get("kvCacheType", "f16")),
                parallel=int(model.get("parallel", 1)),
                runtime=RUNTIME_NAMES.get(model["runtime"]) or "llama.cpp",
            )
        except ValueError as exc:
            self.add(f"{where}.description", str(exc))
            return
        for problem in fit.problems:
            self.add(f"{where}.target", problem)
        for warning in fit.warnings:
            self.result.notes.append(f"{self.obj.file}: {where}: {warning}")
        host_available = min(int(self.targets.get_target(c["target"]).available_bytes) for c in classes)
        self._check_resources(
            model, where, int(fit.needed) if RUNTIME_NAMES.get(model["runtime"]) else None, host_available
        )

    def _check_resources(self, model: dict[str, Any], where: str, needed: int | None, available: int) -> None:
        resources = model.get("resources") or {}
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
                    f"{_mib(req_mem)} is below the estimate {_mib(Decimal(needed))} "
                    f"(ctx {model['contextLength']}, parallel {model.get('parallel', 1)})",
                )
            ceiling = Decimal(needed * MAX_REQUEST_FACTOR + MAX_REQUEST_SLACK)
            if req_mem > ceiling:
                self.add(
                    f"{field}.requests.memory",
                    f"{_mib(req_mem)} is more than {_mib(ceiling)} "
                    f"(2 x the estimate {_mib(Decimal(needed))} + 256 MiB); lower it or raise contextLength",
                )
        if lim_mem < req_mem:
            self.add(f"{field}.limits.memory", f"limit {_mib(lim_mem)} is below the request {_mib(req_mem)}")
        if lim_mem > available:
            self.add(
                f"{field}.limits.memory",
                f"limit {_mib(lim_mem)} exceeds the {_mib(Decimal(available))} "
                f"a {model['target']} node has free for workloads",
            )
        if lim_cpu < req_cpu:
            self.add(f"{field}.limits.cpu", f"limit {lim_cpu} is below the request {req_cpu}")
        if lim_cpu > PI5_CORES:
            self.add(f"{field}.limits.cpu", f"limit {lim_cpu} exceeds the Pi 5's {PI5_CORES} cores")


def _mib(value: Decimal) -> str:
    return f"{int(value) // MIB} MiB"


def check_catalog(catalog: Obj, site: str, schema_file: Path, result: SiteResult) -> None:
    """Schema first; the semantic checks run only on a catalog that matches the schema."""
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(catalog.doc))
    for error in errors:
        result.add("catalog", catalog, _path(error.absolute_path), error.message)
    if not errors:
        _CatalogChecker(catalog, site, result).run()
