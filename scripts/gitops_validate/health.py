# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Health as Flux computes it: every object a waiting Kustomization applies must be readable.

kustomize-controller with `wait: true` (or `healthChecks`) waits until kstatus says each object
is Current. kstatus reads status.observedGeneration as an integer (data/kstatus.yaml): a custom
resource whose CRD makes it a string (Argo Rollouts' Rollout) can never become Current, so the
Kustomization fails at its timeout, and every Kustomization that depends on it waits forever.
Such kinds need `.spec.healthCheckExprs` (Flux 2.5+). The expressions given are compiled and
evaluated with cel-python on a sample object of each phase the resource reports (data/
kstatus.yaml), in Flux's order (inProgress, failed, current), and must give each phase its
expected health.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import celpy
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

from .crd_schema import DEFAULT_SCHEMAS
from .model import Obj, SiteResult
from .upstream import load

__all__ = ["check_health", "unreadable_kinds"]

CHECK = "health"
FLUX_KUSTOMIZATION = "kustomize.toolkit.fluxcd.io/"


def unreadable_kinds(schemas: Path = DEFAULT_SCHEMAS) -> dict[tuple[str, str], str]:
    """(apiVersion, kind) of every custom resource kstatus cannot read -> why."""
    return dict(_unreadable_kinds(schemas))


@lru_cache(maxsize=8)
def _unreadable_kinds(schemas: Path) -> dict[tuple[str, str], str]:
    # Read once per process: every site of a fleet asks, and the answer is in ~30 schema files.
    wanted = load("kstatus")["kstatus"]["observedGenerationType"]
    try:
        index = json.loads((schemas / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out = {}
    for entry in index.get("schemas") or []:
        try:
            schema = json.loads((schemas / entry["file"]).read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError):
            continue
        field = (((schema.get("properties") or {}).get("status") or {}).get("properties") or {}).get(
            "observedGeneration"
        )
        if isinstance(field, dict) and field.get("type") not in (None, wanted):
            out[(entry["apiVersion"], entry["kind"])] = (
                f"its status.observedGeneration is a {field.get('type')}, kstatus reads an {wanted}"
            )
    return out


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def _expr_for(exprs: list[dict[str, Any]], api_version: str, kind: str) -> dict[str, Any] | None:
    """The entry Flux uses for a kind: one naming the kind wins over a group-only one."""
    group = _group(api_version)
    matching = [e for e in exprs if _group(str(e.get("apiVersion", ""))) == group]
    specific = [e for e in matching if e.get("kind") == kind]
    general = [e for e in matching if not e.get("kind")]
    found = specific or general
    return found[0] if found else None


def _waited_kinds(ks: Obj, result: SiteResult) -> Iterator[tuple[str, str, str]]:
    """(apiVersion, kind, field) of what the Kustomization waits for."""
    spec = ks.spec()
    if spec.get("wait"):
        for obj in result.objects:
            if obj.applied_by == ks.ref:
                yield obj.api_version, obj.kind, "spec.wait"
    else:
        for index, check in enumerate(spec.get("healthChecks") or []):
            yield str(check.get("apiVersion", "")), str(check.get("kind", "")), f"spec.healthChecks[{index}]"


@lru_cache(maxsize=256)
def _program(expression: str) -> celpy.Runner:
    """A compiled expression; a fleet's sites share the same few (parse errors are not cached)."""
    env = celpy.Environment()
    return env.program(env.compile(expression))


def _evaluate(expression: str, doc: Mapping[str, Any]) -> bool:
    program = _program(expression)
    activation = {str(key): json_to_cel(value) for key, value in doc.items()}
    value = program.evaluate(activation)
    if isinstance(value, CELEvalError):
        raise value
    return bool(value)


def _phase_problems(entry: Mapping[str, Any], facts: Mapping[str, Any]) -> list[str]:
    order = load("kstatus")["healthCheckExprs"]["order"]
    problems = []
    for phase, expected in facts["expected"].items():
        doc = copy.deepcopy(facts["sample"])
        doc.setdefault("status", {})["phase"] = phase
        got = None
        for name in order:
            expression = entry.get(name)
            if not expression:
                continue
            try:
                if _evaluate(str(expression), doc):
                    got = name
                    break
            except (CELParseError, CELEvalError, TypeError, ValueError) as exc:
                problems.append(f"{name}: {expression!r} does not evaluate on a {phase} {facts['kind']}: {exc}")
                got = "error"
                break
        if got != expected and got != "error":
            problems.append(
                f"a {phase} {facts['kind']} must be {expected}, the expressions make it {got or 'never ready'}"
            )
    return problems


def check_health(result: SiteResult, schemas: Path = DEFAULT_SCHEMAS) -> None:
    """Flux Kustomizations whose waited kinds kstatus cannot read, or whose health expressions are wrong.

    `schemas` is the CRD schema directory the run validates against (--schemas), so a kind's
    status shape is read from the same schema the objects were checked with.
    """
    unreadable = unreadable_kinds(schemas)
    phases = {(p["apiVersion"], p["kind"]): p for p in load("kstatus").get("phases") or []}
    for ks in (o for o in result.objects if o.api_version.startswith(FLUX_KUSTOMIZATION) and o.kind == "Kustomization"):
        exprs = [e for e in ks.spec().get("healthCheckExprs") or [] if isinstance(e, dict)]
        reported: set[tuple[str, str]] = set()
        for api_version, kind, where in _waited_kinds(ks, result):
            key = (api_version, kind)
            if key in reported:
                continue
            entry = _expr_for(exprs, api_version, kind)
            if key in unreadable and entry is None:
                reported.add(key)
                result.add(
                    CHECK,
                    ks,
                    where,
                    f"waits for {kind} ({api_version}), whose health kstatus cannot compute: {unreadable[key]}; "
                    "the Kustomization would never become Ready. Add spec.healthCheckExprs for it (Flux 2.5+) "
                    "or do not wait on it",
                )
            elif entry is not None and key in phases:
                reported.add(key)
                for problem in _phase_problems(entry, phases[key]):
                    result.add(CHECK, ks, "spec.healthCheckExprs", f"{kind}: {problem}")
