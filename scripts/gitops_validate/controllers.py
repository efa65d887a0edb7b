# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Settings that must agree with what the pinned software actually is.

- traefik: Rollouts that shift traffic through Traefik need the Argo Rollouts controller to
  write the API group and version the cluster's Traefik serves. k3s ships Traefik v3 (group
  traefik.io, data/k3s.yaml); Argo Rollouts defaults to the v2 group traefik.containo.us
  (data/rollouts.yaml), so the chart's controller.extraArgs must set --traefik-api-group and
  --traefik-api-version, or every canary's weight change fails.
- server-args: an SLM server's command line is exactly what the collection's core makes of its
  catalog entry (sitegen.server_args: _serving.llama_server_args / llamaedge_args), the
  configuration the memory estimate sized. The generated kustomization sets it; a base or a
  site patch applied after it could still change it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .model import Obj, SiteResult, pod_spec
from .sitegen import SERVER_CONTAINER, server_args
from .upstream import load

__all__ = ["check_server_args", "check_traefik_api"]

RUNTIME_LABEL = "edgeslm.pi5/runtime"
ROLLOUTS_CHART = "argo-rollouts"


def _flag_value(args: list[str], flag: str) -> str | None:
    """The value of `flag` in a command line (`--flag=value` or `--flag value`); the last one wins."""
    found = None
    for index, arg in enumerate(args):
        if arg == flag and index + 1 < len(args):
            found = args[index + 1]
        elif arg.startswith(flag + "="):
            found = arg[len(flag) + 1 :]
    return found


def _traefik_rollouts(result: SiteResult) -> list[Obj]:
    return [
        o
        for o in result.objects
        if o.kind == "Rollout"
        and "traefik" in ((((o.spec().get("strategy") or {}).get("canary") or {}).get("trafficRouting")) or {})
    ]


def check_traefik_api(result: SiteResult) -> None:
    rollouts = _traefik_rollouts(result)
    if not rollouts:
        return
    k3s_traefik = load("k3s")["traefik"]
    flags = load("rollouts")["argoRollouts"]["traefik"]
    releases = [
        o
        for o in result.objects
        if o.kind == "HelmRelease" and ((o.spec().get("chart") or {}).get("spec") or {}).get("chart") == ROLLOUTS_CHART
    ]
    if not releases:
        if result.root is None:
            return  # manifests given on the command line: the controller may be elsewhere
        result.add(
            "traefik",
            rollouts[0],
            "spec.strategy.canary.trafficRouting.traefik",
            "routes canary traffic through Traefik but the site installs no argo-rollouts HelmRelease to check",
        )
        return
    for release in releases:
        args = [str(a) for a in ((release.spec().get("values") or {}).get("controller") or {}).get("extraArgs") or []]
        for flag, default, wanted in (
            (flags["groupFlag"], flags["groupDefault"], k3s_traefik["apiGroup"]),
            (flags["versionFlag"], flags["versionDefault"], k3s_traefik["apiVersion"]),
        ):
            value = _flag_value(args, flag) or default
            if value != wanted:
                result.add(
                    "traefik",
                    release,
                    "spec.values.controller.extraArgs",
                    f"Argo Rollouts would write TraefikService weights as {value} ({flag} "
                    f"{'default' if _flag_value(args, flag) is None else 'set'}), the Traefik k3s ships serves "
                    f"{wanted}: every canary's traffic shift would fail; set {flag}={wanted}",
                )


def _server_containers(obj: Obj) -> Iterator[tuple[str, dict[str, Any], str]]:
    pod, base = pod_spec(obj.doc)
    if pod is None:
        return
    labels = ((obj.spec().get("template") or {}).get("metadata") or {}).get("labels") or {}
    runtime = labels.get(RUNTIME_LABEL)
    if runtime is None:
        return
    for index, container in enumerate(pod.get("containers") or []):
        if container.get("name") == SERVER_CONTAINER:
            yield str(runtime), container, f"{base}.containers[{index}].args"


def check_server_args(result: SiteResult) -> None:
    catalog = result.site_catalog
    if catalog is None:
        return
    models = {m.runtime.name: m for m in catalog.models}
    for obj in result.objects:
        for runtime, container, where in _server_containers(obj):
            model = models.get(runtime)
            if model is None:
                continue  # catalog-sync reports a runtime without a model
            try:
                wanted = server_args(model, catalog.domain)
            except ValueError as exc:
                result.add("server-args", obj, where, f"the core cannot make {model.name}'s arguments: {exc}")
                continue
            if not wanted:
                continue  # configured by its image and environment (hailo-ollama)
            actual = [str(a) for a in container.get("args") or []]
            if actual != wanted:
                result.add("server-args", obj, where, _difference(actual, wanted, model.name))


def _difference(actual: list[str], wanted: list[str], model: str) -> str:
    for index, (have, want) in enumerate(zip(actual, wanted, strict=False)):
        if have != want:
            context = f" (after {wanted[index - 1]})" if index else ""
            return (
                f"differ from what the core makes of catalog model {model}: argument {index}{context} is {have!r}, "
                f"the catalog's serving configuration gives {want!r}; the estimate and the server would describe "
                "different configurations (change site.yaml, not the arguments)"
            )
    extra = actual[len(wanted) :] if len(actual) > len(wanted) else wanted[len(actual) :]
    which = "extra" if len(actual) > len(wanted) else "missing"
    return f"differ from what the core makes of catalog model {model}: {which} arguments {' '.join(extra)}"
