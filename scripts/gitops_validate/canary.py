# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""A canary that can fail (check `canary`).

- Weights: Argo Rollouts writes the weights of the TraefikService it routes through while a
  canary runs; Flux's default apply policy resets them on its next reconciliation. The
  TraefikService must carry Flux's `kustomize.toolkit.fluxcd.io/ssa: IfNotPresent` (or Ignore)
  annotation, or hold no weights in Git (data/rollouts.yaml, fluxOwnership).
- No data is no pass: every metric of every AnalysisTemplate is evaluated the way Argo Rollouts
  evaluates a measurement (exprlang.py, data/rollouts.yaml) with the result an empty Prometheus
  vector gives, and with a NaN sample; a metric that would be Successful on either lets a canary
  nobody measured through.
- Real metrics: every metric name a Prometheus query of an AnalysisTemplate or a ScaledObject
  reads must be exported by Traefik or by the server runtime of the workload it gates
  (data/metrics.yaml); metrics that reset on every scrape are refused.
- A smoke test: a canary analysis runs a Job that sends chat requests to the canary Service
  (an Argo Rollouts Job metric calling /v1/chat/completions on the Rollout's canaryService).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from .exprlang import ExprError, ExprUnsupported, evaluate, parse
from .model import Obj, SiteResult
from .upstream import load

__all__ = ["analysis_phase", "check_canary", "query_metrics"]

CHECK = "canary"
RUNTIME_LABEL = "edgeslm.pi5/runtime"
CHAT_PATH = "/v1/chat/completions"
_ARG = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}")
_TEMPLATE = re.compile(r"\{\{[^}]*\}\}")

# PromQL words that are not metric names (operators, aggregations, modifiers) and its functions.
_PROMQL_WORDS = frozenset(
    {
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
        "quantile", "limitk", "limit_ratio", "by", "without", "on", "ignoring", "group_left", "group_right",
        "bool", "and", "or", "unless", "offset", "atan2", "inf", "nan",
    }
)  # fmt: skip
_STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![A-Za-z0-9_:.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
_NUMBER_SUFFIX = re.compile(r"\b\d+(\.\d+)?(ms|s|m|h|d|w|y|e[-+]?\d+)?\b")


def query_metrics(query: str) -> set[str]:
    """The metric names a PromQL query reads (after Argo's {{args.x}} templating is blanked out)."""
    text = _TEMPLATE.sub("x", query)
    text = _STRING.sub('""', text)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub("", text)
    text = _NUMBER_SUFFIX.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name in _PROMQL_WORDS:
            continue
        names.add(name)
    return names


def analysis_phase(metric: Mapping[str, Any], result: Any, args: Mapping[str, str]) -> str:
    """Argo Rollouts' EvaluateResult for one measurement: Successful, Failed, Inconclusive or Error."""
    success_source = _substitute(str(metric.get("successCondition") or ""), args)
    failure_source = _substitute(str(metric.get("failureCondition") or ""), args)
    env = {"result": result}
    try:
        success = bool(evaluate(success_source, env)) if success_source else False
        failure = bool(evaluate(failure_source, env)) if failure_source else False
    except ExprError:
        return "Error"
    if not success_source and not failure_source:
        return "Successful"
    if success_source and not failure_source:
        failure = not success
    elif failure_source and not success_source:
        success = not failure
    if failure:
        return "Failed"
    if not success:
        return "Inconclusive"
    return "Successful"


def _substitute(text: str, args: Mapping[str, str]) -> str:
    return _ARG.sub(lambda m: args.get(m.group(1), "0"), text)


def _template_args(template: Obj, supplied: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for arg in template.spec().get("args") or []:
        name = str(arg.get("name"))
        if name in supplied:
            out[name] = supplied[name]
        elif "value" in arg:
            out[name] = str(arg["value"])
    return out


def _analysis_steps(rollout: Obj) -> Iterator[dict[str, Any]]:
    canary = ((rollout.spec().get("strategy") or {}).get("canary")) or {}
    for step in canary.get("steps") or []:
        if isinstance(step.get("analysis"), dict):
            yield step["analysis"]
    if isinstance(canary.get("analysis"), dict):
        yield canary["analysis"]


def _supplied_args(analysis: Mapping[str, Any]) -> dict[str, str]:
    return {str(a.get("name")): str(a["value"]) for a in analysis.get("args") or [] if "value" in a}


def _runtime_of(objects: list[Obj], kind: str, namespace: str, name: str) -> str | None:
    target = next((o for o in objects if o.kind == kind and o.namespace == namespace and o.name == name), None)
    if target is None:
        return None
    ref = target.spec().get("workloadRef")
    if target.kind == "Rollout" and isinstance(ref, dict):
        key = (ref.get("kind"), namespace, ref.get("name"))
        target = next((o for o in objects if (o.kind, o.namespace, o.name) == key), target)
    labels = (((target.spec().get("template") or {}).get("metadata") or {}).get("labels")) or {}
    runtime = labels.get(RUNTIME_LABEL)
    return str(runtime) if runtime else None


def _exported(runtime: str) -> tuple[set[str], dict[str, str]]:
    facts = load("metrics")
    names: set[str] = set()
    avoid: dict[str, str] = {}
    for exporter in facts["runtimes"].get(runtime, ["traefik"]):
        entry = facts["exporters"][exporter]
        names.update(entry.get("metrics") or [])
        for histogram in entry.get("histograms") or []:
            names.update(f"{histogram}_{suffix}" for suffix in ("bucket", "sum", "count"))
        avoid.update(entry.get("avoid") or {})
    return names, avoid


def _check_query(result: SiteResult, obj: Obj, where: str, query: str, runtimes: set[str], users: str) -> None:
    metrics = query_metrics(query)
    for runtime in sorted(runtimes):
        exported, avoid = _exported(runtime)
        for name in sorted(metrics):
            if name in avoid:
                result.add(CHECK, obj, where, f"{name}: {avoid[name]}")
            elif name not in exported:
                result.add(
                    CHECK,
                    obj,
                    where,
                    f"{name} is exported neither by Traefik nor by the {runtime} server ({users}); the query would "
                    "return nothing",
                )


def _check_conditions(result: SiteResult, template: Obj, args: Mapping[str, str]) -> None:
    facts = load("rollouts")["argoRollouts"]["analysis"]
    for index, metric in enumerate(template.spec().get("metrics") or []):
        where = f"spec.metrics[{metric.get('name', index)}]"
        if "prometheus" not in (metric.get("provider") or {}):
            continue
        try:
            for key in ("successCondition", "failureCondition"):
                if metric.get(key):
                    parse(_substitute(str(metric[key]), args))
        except ExprUnsupported as exc:
            result.add(CHECK, template, where, f"a condition the validator cannot evaluate: {exc}")
            continue
        for label, value in (("an empty result (no data)", facts["emptyResult"]), ("a NaN result", facts["nanResult"])):
            phase = analysis_phase(metric, value, args)
            if phase == "Successful":
                result.add(
                    CHECK,
                    template,
                    where,
                    f"is Successful on {label}: a canary nobody measured would pass; make the conditions fail or stay "
                    "inconclusive without data (e.g. len(result) > 0 && !isNaN(result[0]) && ...)",
                )


def _weights_owned_by_flux(result: SiteResult, rollout: Obj) -> None:
    traefik = ((((rollout.spec().get("strategy") or {}).get("canary") or {}).get("trafficRouting")) or {}).get(
        "traefik"
    ) or {}
    name = traefik.get("weightedTraefikServiceName")
    if not name:
        return
    key = ("TraefikService", rollout.namespace, name)
    service = next((o for o in result.objects if (o.kind, o.namespace, o.name) == key), None)
    if service is None:
        return  # the references check reports it
    ownership = load("rollouts")["fluxOwnership"]
    policy = (service.metadata.get("annotations") or {}).get(ownership["annotation"])
    has_weights = any("weight" in s for s in ((service.spec().get("weighted") or {}).get("services") or []))
    if has_weights and policy not in ownership["leavesFieldsAlone"]:
        result.add(
            CHECK,
            service,
            "spec.weighted.services",
            f"weights are written in Git and Flux applies them on every reconciliation, resetting what Argo Rollouts "
            f"sets mid-canary ({rollout.ref}); annotate it {ownership['annotation']}: IfNotPresent or leave the "
            "weights out",
        )


def _smoke_test(result: SiteResult, rollout: Obj, templates: Mapping[str, Obj]) -> None:
    canary = ((rollout.spec().get("strategy") or {}).get("canary")) or {}
    service = str(canary.get("canaryService") or "")
    for analysis in _analysis_steps(rollout):
        supplied = _supplied_args(analysis)
        for ref in analysis.get("templates") or []:
            template = templates.get(str(ref.get("templateName")))
            if template is None:
                continue
            args = _template_args(template, supplied)
            for metric in template.spec().get("metrics") or []:
                job = ((metric.get("provider") or {}).get("job")) or {}
                text = _substitute(str(job), args)
                if CHAT_PATH in text and service and service in text:
                    return
    result.add(
        CHECK,
        rollout,
        "spec.strategy.canary.steps",
        f"no analysis step runs a smoke test: add an Argo Rollouts Job metric that sends chat requests to the canary "
        f"Service {service or '(canaryService)'} ({CHAT_PATH}) and fails on an error or an empty answer",
    )


def check_canary(result: SiteResult) -> None:
    objects = result.objects
    templates = {o.name: o for o in objects if o.kind == "AnalysisTemplate"}
    users: dict[str, set[str]] = {}  # template -> runtimes of the Rollouts using it
    user_names: dict[str, set[str]] = {}
    checked: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for rollout in (o for o in objects if o.kind == "Rollout"):
        runtime = _runtime_of(objects, "Rollout", rollout.namespace, rollout.name)
        _weights_owned_by_flux(result, rollout)
        if not list(_analysis_steps(rollout)):
            continue
        _smoke_test(result, rollout, templates)
        for analysis in _analysis_steps(rollout):
            supplied = _supplied_args(analysis)
            for ref in analysis.get("templates") or []:
                name = str(ref.get("templateName"))
                template = templates.get(name)
                if template is None:
                    continue
                if runtime:
                    users.setdefault(name, set()).add(runtime)
                    user_names.setdefault(name, set()).add(rollout.name)
                args = _template_args(template, supplied)
                key = (name, tuple(sorted(args.items())))
                if key not in checked:
                    checked.add(key)
                    _check_conditions(result, template, args)
    for name, template in templates.items():
        if name not in users:
            _check_conditions(result, template, _template_args(template, {}))
            continue
        for index, metric in enumerate(template.spec().get("metrics") or []):
            query = ((metric.get("provider") or {}).get("prometheus") or {}).get("query")
            if query:
                _check_query(
                    result,
                    template,
                    f"spec.metrics[{metric.get('name', index)}].provider.prometheus.query",
                    str(query),
                    users[name],
                    f"used by {', '.join(sorted(user_names[name]))}",
                )
    for scaler in (o for o in objects if o.kind == "ScaledObject"):
        ref = scaler.spec().get("scaleTargetRef") or {}
        runtime = _runtime_of(objects, str(ref.get("kind") or "Deployment"), scaler.namespace, str(ref.get("name")))
        if runtime is None:
            continue
        for index, trigger in enumerate(scaler.spec().get("triggers") or []):
            query = (trigger.get("metadata") or {}).get("query") if trigger.get("type") == "prometheus" else None
            if query:
                _check_query(
                    result,
                    scaler,
                    f"spec.triggers[{trigger.get('name', index)}].metadata.query",
                    str(query),
                    {runtime},
                    f"scales {ref.get('name')}",
                )
