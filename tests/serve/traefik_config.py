# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""TEST STAND-IN for Traefik's Kubernetes CRD provider: a site's IngressRoutes as a file-provider config.

In a k3s cluster Traefik reads IngressRoute, Middleware and TraefikService objects from the API
server (providers.kubernetescrd) and the endpoints of the Services they name. There is no API
server here, so `make serve` translates the site's rendered objects into Traefik's file provider,
keeping what Traefik would build from them:

- each IngressRoute route becomes a router on its entry points with its match rule and middlewares;
- a TraefikService `weighted` becomes a weighted service; a Kubernetes Service (name, port) becomes a
  load balancer over the endpoints given for it (the pods the stand-in runs);
- names follow the CRD provider's: `<namespace>-<name>` for TraefikServices and middlewares,
  `<namespace>-<name>-<port>` for Kubernetes Services, so metric labels (`service=`) read like a
  cluster's (with `@file` in place of `@kubernetescrd`), and the site's queries, which match
  `<namespace>-<name>.*`, select them.

Weights: Argo Rollouts owns them during a canary; when the rendered TraefikService sets none, stable
gets 100 and canary 0, what Argo Rollouts sets with no canary in progress. Anything the translator does
not know (another middleware kind, TCP routes, TLS) is refused by name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["TranslationError", "dynamic_config", "write"]

MIDDLEWARE_KINDS = frozenset({"rateLimit", "headers", "stripPrefix"})


class TranslationError(ValueError):
    """Something in the rendered objects this stand-in does not translate; the message names it."""


def _id(namespace: str, name: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", f"{namespace}-{name}")


def _objects(objects: Sequence[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return [o for o in objects if o.get("kind") == kind and str(o.get("apiVersion", "")).startswith("traefik.io/")]


def dynamic_config(objects: Sequence[Mapping[str, Any]], endpoints: Mapping[str, Sequence[int]]) -> dict[str, Any]:
    """The file provider's dynamic configuration; `endpoints` maps a Service name ("" = any) to pod ports."""
    routers: dict[str, Any] = {}
    services: dict[str, Any] = {}
    middlewares: dict[str, Any] = {}
    traefik_services = {
        (o["metadata"]["namespace"], o["metadata"]["name"]): o for o in _objects(objects, "TraefikService")
    }

    def kube_service(namespace: str, name: str, port: Any) -> str:
        key = _id(namespace, name) + f"-{port}"
        ports = endpoints.get(name, endpoints.get("", []))
        services[key] = {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{p}"} for p in ports]}}
        return key

    def service_ref(namespace: str, ref: Mapping[str, Any], where: str) -> str:
        name = str(ref.get("name"))
        ns = str(ref.get("namespace") or namespace)
        if ref.get("kind", "Service") == "TraefikService":
            spec = (traefik_services.get((ns, name)) or {}).get("spec") or {}
            weighted = spec.get("weighted")
            if not isinstance(weighted, dict):
                raise TranslationError(f"{where}: TraefikService {ns}/{name}: only `weighted` is translated")
            children = []
            for index, child in enumerate(weighted.get("services") or []):
                child_name = str(child.get("name"))
                weight = child.get("weight")
                if weight is None:
                    weight = 0 if child_name.endswith("-canary") else 100
                key = service_ref(ns, child, f"{where}.weighted.services[{index}]")
                children.append({"name": key, "weight": int(weight)})
            key = _id(ns, name)
            services[key] = {"weighted": {"services": children}}
            return key
        if ref.get("kind", "Service") != "Service":
            raise TranslationError(f"{where}.kind: {ref.get('kind')} is not translated")
        return kube_service(ns, name, ref.get("port"))

    for route_obj in _objects(objects, "IngressRoute"):
        meta = route_obj["metadata"]
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        spec = route_obj.get("spec") or {}
        unknown = set(spec) - {"entryPoints", "routes"}
        if unknown:
            raise TranslationError(f"IngressRoute {namespace}/{name}: spec.{sorted(unknown)[0]} is not translated")
        for index, route in enumerate(spec.get("routes") or []):
            where = f"IngressRoute {namespace}/{name}: spec.routes[{index}]"
            route_services = route.get("services") or []
            if len(route_services) != 1:
                raise TranslationError(f"{where}.services: exactly one service is translated")
            chain = []
            for ref in route.get("middlewares") or []:
                ns = str(ref.get("namespace") or namespace)
                chain.append(_middleware(objects, ns, str(ref.get("name")), middlewares, where))
            router: dict[str, Any] = {
                "entryPoints": list(spec.get("entryPoints") or []),
                "rule": str(route.get("match")),
                "service": service_ref(namespace, route_services[0], f"{where}.services[0]"),
            }
            if chain:
                router["middlewares"] = chain
            routers[f"{_id(namespace, name)}-{index}"] = router
    return {"http": {"routers": routers, "services": services, "middlewares": middlewares}}


def _middleware(
    objects: Sequence[Mapping[str, Any]], namespace: str, name: str, out: dict[str, Any], where: str
) -> str:
    for obj in _objects(objects, "Middleware"):
        meta = obj["metadata"]
        if (meta.get("namespace"), meta.get("name")) == (namespace, name):
            spec = dict(obj.get("spec") or {})
            unknown = set(spec) - MIDDLEWARE_KINDS
            if unknown:
                raise TranslationError(f"Middleware {namespace}/{name}: spec.{sorted(unknown)[0]} is not translated")
            key = _id(namespace, name)
            out[key] = spec
            return key
    raise TranslationError(f"{where}.middlewares: Middleware {namespace}/{name} is not among the site's objects")


def write(
    objects: Sequence[Mapping[str, Any]],
    directory: Path,
    web_port: int,
    metrics_port: int,
    endpoints: Mapping[str, Sequence[int]],
) -> tuple[Path, Path]:
    """Write Traefik's static and dynamic configuration (entry points `web` and `metrics` on loopback)."""
    directory.mkdir(parents=True, exist_ok=True)
    dynamic = directory / "dynamic.yml"
    dynamic.write_text(yaml.safe_dump(dynamic_config(objects, endpoints), sort_keys=True))
    static = directory / "traefik.yml"
    static.write_text(
        yaml.safe_dump(
            {
                "entryPoints": {
                    "web": {"address": f"127.0.0.1:{web_port}"},
                    "metrics": {"address": f"127.0.0.1:{metrics_port}"},
                },
                "providers": {"file": {"filename": str(dynamic), "watch": True}},
                # What k3s's Traefik chart turns on: Prometheus metrics with entry point and service labels.
                "metrics": {
                    "prometheus": {"entryPoint": "metrics", "addEntryPointsLabels": True, "addServicesLabels": True}
                },
                "log": {"level": "ERROR"},
                "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
            },
            sort_keys=True,
        )
    )
    return static, dynamic
