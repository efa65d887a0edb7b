# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""SLM pods read their model from the node's verified cache, read-only (check `model-volume`).

For every pod template of a runtime that serves from the cache (sitegen.CACHE_VOLUME_RUNTIMES):

- its volume `model` is the persistentVolumeClaim of the catalog model's version
  (sitegen.model_claim), mounted read-only by the pod and by every container that mounts it;
- that claim is in the site and pre-bound to its PersistentVolume, whose `local` path is the
  version directory model_cache stages and verifies (<dir>/<model>/<sha256>) on exactly the hosts
  of the node classes that serve the model.

A pod that cannot get the model this way (a host without the version) stays ContainerCreating;
one that could write to it or read another version is refused here.
"""

from __future__ import annotations

from typing import Any

from .model import Obj, SiteResult, pod_spec
from .sitegen import CACHE_VOLUME_RUNTIMES, MODEL_CACHE_DIR, model_claim

__all__ = ["check_model_volumes"]

CHECK = "model-volume"
VOLUME = "model"
RUNTIME_LABEL = "edgeslm.pi5/runtime"
HOSTNAME = "kubernetes.io/hostname"


def _find(result: SiteResult, kind: str, name: str, namespace: str | None) -> Obj | None:
    return next(
        (
            o
            for o in result.objects
            if o.kind == kind and o.name == name and (namespace is None or o.namespace == namespace)
        ),
        None,
    )


def _hosts(pv: Obj) -> list[str]:
    terms = ((pv.spec().get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms") or []
    return sorted(
        str(value)
        for term in terms
        for expr in term.get("matchExpressions") or []
        if expr.get("key") == HOSTNAME and expr.get("operator") == "In"
        for value in expr.get("values") or []
    )


def _check_pod(result: SiteResult, obj: Obj, pod: dict[str, Any], base: str, model: Any, catalog: Any) -> None:
    pv_name, claim = model_claim(model)
    volume = next((v for v in pod.get("volumes") or [] if v.get("name") == VOLUME), None)
    source = (volume or {}).get("persistentVolumeClaim")
    where = f"{base}.volumes[{VOLUME}]"
    if not isinstance(source, dict) or source.get("claimName") != claim or source.get("readOnly") is not True:
        result.add(
            CHECK,
            obj,
            where,
            f"must be the claim of the node's verified cache, persistentVolumeClaim {claim} with readOnly: true "
            f"(generated in sites/{result.name}/apps/model-volumes.yaml from the catalog's {model.name})",
        )
    for kind in ("initContainers", "containers"):
        for container in pod.get(kind) or []:
            for mount in container.get("volumeMounts") or []:
                if mount.get("name") == VOLUME and mount.get("readOnly") is not True:
                    result.add(
                        CHECK,
                        obj,
                        f"{base}.{kind}[{container.get('name')}].volumeMounts[{VOLUME}].readOnly",
                        "the model is mounted read-only: the node's cache is verified once, by model_cache",
                    )
    pvc = _find(result, "PersistentVolumeClaim", claim, obj.namespace)
    if pvc is None:
        result.add(CHECK, obj, where, f"PersistentVolumeClaim {obj.namespace}/{claim} is not in the site")
        return
    if pvc.spec().get("volumeName") != pv_name:
        result.add(CHECK, pvc, "spec.volumeName", f"must be {pv_name}, the volume of {model.name}'s version")
    pv = _find(result, "PersistentVolume", pv_name, None)
    if pv is None:
        result.add(CHECK, pvc, "spec.volumeName", f"PersistentVolume {pv_name} is not in the site")
        return
    path = f"{MODEL_CACHE_DIR}/{model.name}/{model.sha256}"
    if (pv.spec().get("local") or {}).get("path") != path:
        result.add(CHECK, pv, "spec.local.path", f"must be {path}, the version directory model_cache verifies")
    hosts = sorted(h for c in catalog.classes_for(model) for h in c.hosts)
    if _hosts(pv) != hosts:
        result.add(
            CHECK,
            pv,
            "spec.nodeAffinity",
            f"must admit exactly the hosts that stage {model.name} ({', '.join(hosts)}), got {', '.join(_hosts(pv))}",
        )


def check_model_volumes(result: SiteResult) -> None:
    catalog = result.site_catalog
    if catalog is None:
        return
    models = {m.runtime.name: m for m in catalog.models}
    for obj in result.objects:
        pod, base = pod_spec(obj.doc)
        if pod is None or (obj.kind == "Rollout" and "workloadRef" in obj.spec()):
            continue
        labels = ((obj.spec().get("template") or {}).get("metadata") or {}).get("labels") or {}
        runtime = labels.get(RUNTIME_LABEL)
        if runtime in CACHE_VOLUME_RUNTIMES and runtime in models:
            _check_pod(result, obj, pod, base, models[runtime], catalog)
