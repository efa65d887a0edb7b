# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""The project's own invariants over a site's rendered objects.

Checks, each reported under its own name:
- images: every container image pinned by digest, never `latest`; Helm charts pinned exactly;
  every image's origin recorded (images.py: platform/images.yaml, sites/<site>/images.yaml);
- references: runtimeClassName, storageClassName, Secrets, ServiceAccounts, PriorityClasses,
  namespaces, Rollout/autoscaler/Traefik/PDB targets all resolve in the site (or are things
  k3s or the bootstrap provide);
- secrets: every Secret is SOPS-encrypted and applied by a Kustomization that decrypts;
- security: pods in `restricted` namespaces meet that profile, SLM servers have a read-only
  root filesystem; checkov skips carry a reason;
- catalog-sync: SLM workloads carry exactly the catalog's file, sha256, resources and target;
- autoscaling: one autoscaler per workload, scale-to-zero only where the catalog allows it;
- health: what a waiting Flux Kustomization applies is readable by kstatus, or its
  healthCheckExprs give each phase the right health (health.py);
- traefik: Argo Rollouts writes the Traefik API group and version k3s's Traefik serves;
- server-args: SLM servers run exactly the arguments the core makes of their catalog entry;
- model-volume: SLM pods mount their model version read-only from the node's verified cache
  (model_volumes.py);
- canary: weights left to Argo Rollouts, analysis that fails without data, queries of metrics
  the runtime or Traefik exports, a smoke test against the canary (canary.py);
- schedule: every pod the site runs placed on the catalog's nodes as kube-scheduler would
  (schedule.py), the model servers within each node's memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from .built_images import recipe_entry, tag_reference_problems
from .canary import check_canary
from .controllers import check_server_args, check_traefik_api
from .core import load_module
from .crd_schema import DEFAULT_SCHEMAS
from .health import check_health
from .images import check_image_sources
from .model import Obj, SiteResult, pod_spec, walk_containers
from .model_volumes import check_model_volumes
from .quantity import QuantityError, parse_quantity
from .schedule import check_schedule

__all__ = ["BOOTSTRAP_SECRETS", "K3S_PROVIDED", "check_invariants"]

# What a k3s v1.33 server provides without any manifest from this repository.
K3S_PROVIDED: dict[str, frozenset[str]] = {
    # pkg/agent/containerd/runtimes.go + manifests/runtimes.yaml
    "RuntimeClass": frozenset(
        {"nvidia", "nvidia-experimental", "crun", "lunatic", "slight", "spin", "wws", "wasmedge", "wasmer", "wasmtime"}
    ),
    "StorageClass": frozenset({"local-path"}),
    "PriorityClass": frozenset({"system-node-critical", "system-cluster-critical"}),
    # flux-system and argocd are created by the GitOps bootstrap (flux bootstrap / Argo CD install).
    "Namespace": frozenset({"default", "kube-system", "kube-public", "kube-node-lease", "flux-system", "argocd"}),
}
# Storage classes created by a Helm chart when its HelmRelease is part of the site.
CHART_STORAGE_CLASSES = {"longhorn": "longhorn"}
# Secrets created out of band by the gitops_bootstrap role (never committed), as namespace/name.
BOOTSTRAP_SECRETS = frozenset(
    f"{load_module('_gitops').FLUX_NAMESPACE}/{name}" for name in load_module("_gitops").BOOTSTRAP_SECRETS.values()
)
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")
_SKIP = re.compile(r"^(CKV2?_[A-Z0-9]+_\d+)=(.+)$")
SLM_PART_OF = "edgeslm"
# Node labels the Ansible roles set (npu, wasm_runtime), and the npu role's value per target.
NPU_LABEL = "edgeslm.io/npu"
# The RuntimeClass whose handler (crun with WasmEdge plugins, wasm_runtime role) loads WASI-NN.
LLAMAEDGE_RUNTIME_CLASS = "wasmedge-wasinn"
# Host directories SLM pods may mount, read-only: the WASI-NN plugin (wasm_runtime) and the
# verified model cache (model_cache).
SLM_HOST_PATHS = frozenset({"/opt/containerd/lib", "/var/lib/edgeslm/models"})
NPU_LABEL_VALUES = {"hailo-10h": "hailo10h", "hailo-8": "hailo8", "hailo-8l": "hailo8"}
RUNTIME_LABEL = "edgeslm.pi5/runtime"


class _Site:
    """Lookup tables over one site's objects."""

    def __init__(self, result: SiteResult, external_secrets: frozenset[str]) -> None:
        self.result = result
        self.objects = result.objects
        self.external_secrets = external_secrets | BOOTSTRAP_SECRETS
        self.by_kind: dict[str, list[Obj]] = {}
        for obj in self.objects:
            self.by_kind.setdefault(obj.kind, []).append(obj)

    def names(self, kind: str, namespace: str | None = None) -> set[str]:
        found = {o.name for o in self.by_kind.get(kind, []) if namespace is None or o.namespace == namespace}
        return found | set(K3S_PROVIDED.get(kind, frozenset()))

    def find(self, kind: str, namespace: str, name: str) -> Obj | None:
        return next((o for o in self.by_kind.get(kind, []) if o.namespace == namespace and o.name == name), None)

    def storage_classes(self) -> set[str]:
        names = self.names("StorageClass")
        for release in self.by_kind.get("HelmRelease", []):
            chart = release.spec().get("chart", {}).get("spec", {}).get("chart")
            if chart in CHART_STORAGE_CLASSES:
                names.add(CHART_STORAGE_CLASSES[chart])
        return names

    def secret_exists(self, namespace: str, name: str) -> bool:
        return f"{namespace}/{name}" in self.external_secrets or self.find("Secret", namespace, name) is not None


def _workloads(site: _Site) -> Iterator[tuple[Obj, dict[str, Any], str]]:
    for obj in site.objects:
        pod, base = pod_spec(obj.doc)
        if pod is not None and not (obj.kind == "Rollout" and "workloadRef" in obj.spec()):
            yield obj, pod, base


def check_images(site: _Site) -> None:
    for obj, pod, base in _workloads(site):
        for container, where in walk_containers(pod, base):
            image = str(container.get("image", ""))
            name_part = image.split("@", 1)[0]
            tag = name_part.rsplit(":", 1)[1] if ":" in name_part.rsplit("/", 1)[-1] else ""
            if tag == "latest":
                site.result.add("images", obj, f"{where}.image", f"{image}: the latest tag is not allowed")
            if not _DIGEST.search(image):
                name, _colon, tag_only = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
                # A project-built image may be referenced by the tag its recipe builds (built_images.py).
                entry = recipe_entry(site.result, name)
                problems = (
                    tag_reference_problems(site.result, obj, image, name, tag_only, entry)
                    if entry is not None
                    else [f"{image}: pin the image by digest (@sha256:...)"]
                )
                for problem in problems:
                    site.result.add("images", obj, f"{where}.image", problem)
    for release in site.by_kind.get("HelmRelease", []):
        version = str(release.spec().get("chart", {}).get("spec", {}).get("version", ""))
        if not _EXACT_VERSION.match(version):
            site.result.add(
                "images", release, "spec.chart.spec.version", f"chart version {version!r} is not pinned exactly"
            )


def _volume_claims(pod: dict[str, Any], base: str) -> Iterator[tuple[dict[str, Any], str]]:
    for index, volume in enumerate(pod.get("volumes") or []):
        template = (volume.get("ephemeral") or {}).get("volumeClaimTemplate")
        if isinstance(template, dict):
            yield (
                template.get("spec") or {},
                f"{base}.volumes[{volume.get('name', index)}].ephemeral.volumeClaimTemplate.spec",
            )


def _helm_values_items(value: Any, where: str) -> Iterator[tuple[str, Any, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key), item, f"{where}.{key}"
            yield from _helm_values_items(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _helm_values_items(item, f"{where}[{index}]")


def check_storage(site: _Site) -> None:
    classes = site.storage_classes()

    def check(obj: Obj, name: Any, where: str) -> None:
        if name and str(name) not in classes:
            site.result.add(
                "references", obj, where, f"StorageClass {name} does not exist (known: {', '.join(sorted(classes))})"
            )

    for obj, pod, base in _workloads(site):
        for claim, where in _volume_claims(pod, base):
            check(obj, claim.get("storageClassName"), f"{where}.storageClassName")
    for obj in site.by_kind.get("PersistentVolumeClaim", []):
        check(obj, obj.spec().get("storageClassName"), "spec.storageClassName")
    for obj in site.by_kind.get("StatefulSet", []):
        for index, claim in enumerate(obj.spec().get("volumeClaimTemplates") or []):
            check(
                obj,
                (claim.get("spec") or {}).get("storageClassName"),
                f"spec.volumeClaimTemplates[{index}].spec.storageClassName",
            )
    for release in site.by_kind.get("HelmRelease", []):
        for key, value, where in _helm_values_items(release.spec().get("values") or {}, "spec.values"):
            if key in ("storageClass", "storageClassName") and isinstance(value, str):
                check(release, value, where)


def _pod_secret_refs(pod: dict[str, Any], base: str) -> Iterator[tuple[str, str]]:
    for index, volume in enumerate(pod.get("volumes") or []):
        secret = volume.get("secret")
        if isinstance(secret, dict) and not secret.get("optional"):
            yield str(secret.get("secretName")), f"{base}.volumes[{volume.get('name', index)}].secret.secretName"
    for index, ref in enumerate(pod.get("imagePullSecrets") or []):
        yield str(ref.get("name")), f"{base}.imagePullSecrets[{index}]"
    for container, where in walk_containers(pod, base):
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if isinstance(ref, dict) and not ref.get("optional"):
                yield str(ref.get("name")), f"{where}.env[{env.get('name')}].valueFrom.secretKeyRef"
        for index, source in enumerate(container.get("envFrom") or []):
            ref = source.get("secretRef")
            if isinstance(ref, dict) and not ref.get("optional"):
                yield str(ref.get("name")), f"{where}.envFrom[{index}].secretRef"


def _flux_secret_refs(obj: Obj) -> Iterator[tuple[str, str]]:
    spec = obj.spec()
    for path in ("secretRef", "decryption.secretRef", "verify.secretRef", "kubeConfig.secretRef", "certSecretRef"):
        node: Any = spec
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get("name"):
            yield str(node["name"]), f"spec.{path}.name"
    if obj.kind == "HelmRelease":
        for key, value, where in _helm_values_items(spec.get("values") or {}, "spec.values"):
            if key == "existingSecret" and isinstance(value, str) and value:
                target = str(spec.get("targetNamespace") or obj.namespace)
                yield f"{target}/{value}", where


def check_secrets_refs(site: _Site) -> None:
    for obj, pod, base in _workloads(site):
        for name, where in _pod_secret_refs(pod, base):
            if not site.secret_exists(obj.namespace, name):
                site.result.add("references", obj, where, f"Secret {obj.namespace}/{name} does not exist")
    for obj in site.objects:
        if obj.api_version.split("/")[0].endswith(".toolkit.fluxcd.io"):
            for name, where in _flux_secret_refs(obj):
                namespace, short = name.rpartition("/")[::2]
                namespace = namespace or obj.namespace
                if not site.secret_exists(namespace, short):
                    site.result.add("references", obj, where, f"Secret {namespace}/{short} does not exist")


def check_pod_references(site: _Site) -> None:
    runtime_classes = site.names("RuntimeClass")
    priority_classes = site.names("PriorityClass")
    for obj, pod, base in _workloads(site):
        rc = pod.get("runtimeClassName")
        if rc and rc not in runtime_classes:
            site.result.add("references", obj, f"{base}.runtimeClassName", f"RuntimeClass {rc} does not exist")
        pc = pod.get("priorityClassName")
        if pc and pc not in priority_classes:
            site.result.add("references", obj, f"{base}.priorityClassName", f"PriorityClass {pc} does not exist")
        sa = pod.get("serviceAccountName")
        if sa and sa != "default" and sa not in site.names("ServiceAccount", obj.namespace):
            site.result.add(
                "references", obj, f"{base}.serviceAccountName", f"ServiceAccount {obj.namespace}/{sa} does not exist"
            )
        for index, volume in enumerate(pod.get("volumes") or []):
            cm = volume.get("configMap")
            if (
                isinstance(cm, dict)
                and not cm.get("optional")
                and cm.get("name") not in site.names("ConfigMap", obj.namespace)
            ):
                site.result.add(
                    "references",
                    obj,
                    f"{base}.volumes[{index}].configMap",
                    f"ConfigMap {cm.get('name')} does not exist",
                )


def check_namespaces(site: _Site) -> None:
    namespaces = site.names("Namespace")
    for obj in site.objects:
        if obj.namespace and obj.namespace not in namespaces:
            site.result.add(
                "references", obj, "metadata.namespace", f"namespace {obj.namespace} is not created by the site"
            )


def _ref_exists(site: _Site, obj: Obj, kind: str, name: Any, where: str) -> None:
    if site.find(kind, obj.namespace, str(name)) is None:
        site.result.add("references", obj, where, f"{kind} {obj.namespace}/{name} does not exist")


def check_rollouts(site: _Site) -> None:
    for rollout in site.by_kind.get("Rollout", []):
        spec = rollout.spec()
        ref = spec.get("workloadRef")
        if isinstance(ref, dict):
            _ref_exists(site, rollout, str(ref.get("kind")), ref.get("name"), "spec.workloadRef")
        canary = (spec.get("strategy") or {}).get("canary") or {}
        for key in ("canaryService", "stableService"):
            if key in canary:
                _ref_exists(site, rollout, "Service", canary[key], f"spec.strategy.canary.{key}")
        traefik = (canary.get("trafficRouting") or {}).get("traefik") or {}
        if "weightedTraefikServiceName" in traefik:
            _ref_exists(
                site,
                rollout,
                "TraefikService",
                traefik["weightedTraefikServiceName"],
                "spec.strategy.canary.trafficRouting.traefik.weightedTraefikServiceName",
            )
        steps = canary.get("steps") or []
        analyses: list[dict[str, Any]] = [
            s["analysis"] for s in steps if isinstance(s, dict) and isinstance(s.get("analysis"), dict)
        ]
        if isinstance(canary.get("analysis"), dict):
            analyses.append(canary["analysis"])
        for analysis in analyses:
            for template in analysis.get("templates") or []:
                kind = "ClusterAnalysisTemplate" if template.get("clusterScope") else "AnalysisTemplate"
                found = site.names(kind) if kind.startswith("Cluster") else site.names(kind, rollout.namespace)
                if template.get("templateName") not in found:
                    site.result.add(
                        "references",
                        rollout,
                        "spec.strategy.canary",
                        f"{kind} {template.get('templateName')} does not exist",
                    )


def check_autoscalers(site: _Site, catalog: dict[str, Any] | None) -> None:
    targets: dict[tuple[str, str, str], Obj] = {}
    scalers = [(o, o.spec().get("scaleTargetRef") or {}) for o in site.by_kind.get("ScaledObject", [])]
    scalers += [(o, o.spec().get("scaleTargetRef") or {}) for o in site.by_kind.get("HorizontalPodAutoscaler", [])]
    for obj, ref in scalers:
        kind = str(ref.get("kind") or "Deployment")
        key = (obj.namespace, kind, str(ref.get("name")))
        _ref_exists(site, obj, kind, ref.get("name"), "spec.scaleTargetRef")
        if key in targets:
            site.result.add(
                "autoscaling",
                obj,
                "spec.scaleTargetRef",
                f"{kind} {ref.get('name')} is already scaled by {targets[key].ref}",
            )
        targets[key] = obj
    allow_zero = bool(((catalog or {}).get("spec") or {}).get("autoscaling", {}).get("scaleToZero", False))
    for obj in site.by_kind.get("ScaledObject", []):
        if obj.spec().get("minReplicaCount", 0) == 0 and not allow_zero:
            site.result.add(
                "autoscaling",
                obj,
                "spec.minReplicaCount",
                "scales to zero but the site catalog sets autoscaling.scaleToZero: false",
            )


def check_traefik(site: _Site) -> None:
    for obj in site.by_kind.get("TraefikService", []):
        for index, service in enumerate((obj.spec().get("weighted") or {}).get("services") or []):
            kind = service.get("kind", "Service")
            _ref_exists(
                site,
                obj,
                "TraefikService" if kind == "TraefikService" else "Service",
                service.get("name"),
                f"spec.weighted.services[{index}]",
            )
    for obj in site.by_kind.get("IngressRoute", []):
        for r_index, route in enumerate(obj.spec().get("routes") or []):
            for s_index, service in enumerate(route.get("services") or []):
                kind = "TraefikService" if service.get("kind") == "TraefikService" else "Service"
                _ref_exists(site, obj, kind, service.get("name"), f"spec.routes[{r_index}].services[{s_index}]")


def _labels_match(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    wanted = selector.get("matchLabels") or {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def check_selectors(site: _Site) -> None:
    pods = [
        (o, ((o.spec().get("template") or {}).get("metadata") or {}).get("labels") or {})
        for o, _pod, _base in _workloads(site)
    ]
    for pdb in site.by_kind.get("PodDisruptionBudget", []):
        selector = pdb.spec().get("selector") or {}
        if not any(o.namespace == pdb.namespace and _labels_match(selector, labels) for o, labels in pods):
            site.result.add("references", pdb, "spec.selector", "selects no workload's pods")
    for service in site.by_kind.get("Service", []):
        selector = service.spec().get("selector")
        if selector and not any(
            o.namespace == service.namespace and _labels_match({"matchLabels": selector}, labels) for o, labels in pods
        ):
            site.result.add("references", service, "spec.selector", "selects no workload's pods")


def check_sops(site: _Site) -> None:
    decrypting = {
        o.ref
        for o in site.by_kind.get("Kustomization", [])
        if (o.spec().get("decryption") or {}).get("provider") == "sops"
    }
    for secret in site.by_kind.get("Secret", []):
        sops = secret.doc.get("sops")
        if not isinstance(sops, dict) or not sops.get("mac"):
            site.result.add("secrets", secret, "", "Secret is not SOPS-encrypted (commit only sops --encrypt output)")
            continue
        for section in ("data", "stringData"):
            for key, value in (secret.doc.get(section) or {}).items():
                if not str(value).startswith("ENC["):
                    site.result.add(
                        "secrets", secret, f"{section}.{key}", "value is in clear text next to SOPS metadata"
                    )
        # Manifests given on the command line have no Flux Kustomization to check.
        if secret.applied_by and secret.applied_by not in decrypting:
            site.result.add(
                "secrets",
                secret,
                "",
                f"applied by {secret.applied_by or 'the entry point'}, which has no spec.decryption (provider sops)",
            )


def _restricted_problems(pod: dict[str, Any], base: str) -> Iterator[tuple[str, str]]:
    pod_ctx = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            yield f"{base}.{key}", "not allowed by Pod Security restricted"
    for index, volume in enumerate(pod.get("volumes") or []):
        if "hostPath" in volume:
            yield (
                f"{base}.volumes[{volume.get('name', index)}].hostPath",
                "hostPath volumes are not allowed by restricted",
            )
    for container, where in walk_containers(pod, base):
        ctx = container.get("securityContext") or {}

        def pick(key: str, ctx: dict[str, Any] = ctx) -> Any:
            return ctx.get(key, pod_ctx.get(key))

        if ctx.get("privileged"):
            yield f"{where}.securityContext.privileged", "privileged containers are not allowed"
        if ctx.get("allowPrivilegeEscalation") is not False:
            yield f"{where}.securityContext.allowPrivilegeEscalation", "must be false"
        if pick("runAsNonRoot") is not True:
            yield f"{where}.securityContext.runAsNonRoot", "must be true"
        if pick("runAsUser") == 0:
            yield f"{where}.securityContext.runAsUser", "must not be 0"
        if "ALL" not in ((ctx.get("capabilities") or {}).get("drop") or []):
            yield f"{where}.securityContext.capabilities.drop", "must drop ALL"
        seccomp = (pick("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            yield f"{where}.securityContext.seccompProfile", "must be RuntimeDefault or Localhost"


def _host_path_problems(pod: dict[str, Any], base: str) -> Iterator[tuple[str, str]]:
    host_volumes = set()
    for index, volume in enumerate(pod.get("volumes") or []):
        host = volume.get("hostPath")
        if isinstance(host, dict):
            host_volumes.add(volume.get("name"))
            if host.get("path") not in SLM_HOST_PATHS:
                yield (
                    f"{base}.volumes[{volume.get('name', index)}].hostPath.path",
                    f"{host.get('path')} is not a host directory SLM pods may mount "
                    f"({', '.join(sorted(SLM_HOST_PATHS))})",
                )
    for container, where in walk_containers(pod, base):
        for mount in container.get("volumeMounts") or []:
            if mount.get("name") in host_volumes and mount.get("readOnly") is not True:
                yield f"{where}.volumeMounts[{mount.get('name')}].readOnly", "host directories are mounted read-only"


def check_security(site: _Site) -> None:
    restricted = {
        o.name
        for o in site.by_kind.get("Namespace", [])
        if (o.metadata.get("labels") or {}).get("pod-security.kubernetes.io/enforce") == "restricted"
    }
    for obj, pod, base in _workloads(site):
        if obj.namespace in restricted:
            for where, message in _restricted_problems(pod, base):
                site.result.add("security", obj, where, message)
        labels = ((obj.spec().get("template") or {}).get("metadata") or {}).get("labels") or {}
        if RUNTIME_LABEL in labels:
            for where, message in _host_path_problems(pod, base):
                site.result.add("security", obj, where, message)
            for container, where in walk_containers(pod, base):
                if (container.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True:
                    site.result.add(
                        "security",
                        obj,
                        f"{where}.securityContext.readOnlyRootFilesystem",
                        "SLM pods run with a read-only root filesystem",
                    )
    for obj in site.objects:
        for key, value in (obj.metadata.get("annotations") or {}).items():
            if key.startswith("checkov.io/skip"):
                match = _SKIP.match(str(value))
                if not match or len(match.group(2).strip()) < 10:
                    site.result.add(
                        "security",
                        obj,
                        f"metadata.annotations.{key}",
                        "a checkov skip needs 'CHECK_ID=<written reason>'",
                    )


def _env(container: dict[str, Any], name: str) -> Any:
    return next((e.get("value") for e in container.get("env") or [] if e.get("name") == name), None)


def _same_quantity(a: Any, b: Any) -> bool:
    try:
        return parse_quantity(a) == parse_quantity(b)
    except QuantityError:
        return False


def check_catalog_sync(site: _Site, catalog: dict[str, Any] | None) -> None:
    models: dict[str, dict[str, Any]] = {}
    for model in ((catalog or {}).get("spec") or {}).get("models") or []:
        # kustomize replacements select the first entry of a runtime; so does this check.
        models.setdefault(str(model.get("runtime")), model)
    for obj, pod, base in _workloads(site):
        labels = ((obj.spec().get("template") or {}).get("metadata") or {}).get("labels") or {}
        runtime = labels.get(RUNTIME_LABEL)
        if runtime is None:
            continue
        model = models.get(runtime)
        if model is None:
            site.result.add("catalog-sync", obj, f"{base}", f"runtime {runtime} has no model in the site catalog")
            continue
        _sync_containers(site, obj, pod, base, model)
        for claim, where in _volume_claims(pod, base):
            size = ((claim.get("resources") or {}).get("requests") or {}).get("storage")
            try:
                if size is not None and parse_quantity(size) < Decimal(int(model["sizeBytes"])):
                    site.result.add(
                        "catalog-sync",
                        obj,
                        f"{where}.resources.requests.storage",
                        f"{size} cannot hold {model['file']} ({model['sizeBytes']} bytes)",
                    )
            except QuantityError as exc:
                site.result.add("catalog-sync", obj, f"{where}.resources.requests.storage", str(exc))
        _check_placement(site, obj, pod, base, runtime, model)


def _check_placement(
    site: _Site, obj: Obj, pod: dict[str, Any], base: str, runtime: str, model: dict[str, Any]
) -> None:
    """NPU servers must land on the NPU the model targets; LlamaEdge needs the WASI-NN runtime.

    CPU placement needs no selector: the memory request, checked against the catalog's
    estimate, keeps a pod off nodes that are too small. The RuntimeClass's own nodeSelector
    places LlamaEdge pods.
    """
    if runtime == "hailo":
        value = NPU_LABEL_VALUES.get(str(model["target"]), str(model["target"]))
        if (pod.get("nodeSelector") or {}).get(NPU_LABEL) != value:
            site.result.add(
                "catalog-sync", obj, f"{base}.nodeSelector.{NPU_LABEL}", f"must be {value} for runtime {runtime}"
            )
    if runtime == "llamaedge" and pod.get("runtimeClassName") != LLAMAEDGE_RUNTIME_CLASS:
        site.result.add(
            "catalog-sync",
            obj,
            f"{base}.runtimeClassName",
            f"LlamaEdge needs the plugin-capable runtime {LLAMAEDGE_RUNTIME_CLASS} "
            "(the stock shim cannot load WASI-NN)",
        )


_PLACEHOLDER = re.compile(r"^MODEL_[A-Z_0-9]+$")


def _sync_containers(site: _Site, obj: Obj, pod: dict[str, Any], base: str, model: dict[str, Any]) -> None:
    for container, where in walk_containers(pod, base):
        for env in container.get("env") or []:
            if _PLACEHOLDER.match(str(env.get("value", ""))):
                site.result.add(
                    "catalog-sync",
                    obj,
                    f"{where}.env[{env.get('name')}]",
                    f"still the base's placeholder {env.get('value')!r}: the site's generated kustomization "
                    "does not set it",
                )
        sha = _env(container, "MODEL_SHA256")
        if sha is not None and not _SHA256.match(str(sha)):
            site.result.add("catalog-sync", obj, f"{where}.env[MODEL_SHA256]", f"{sha!r} is not a sha256 digest")
        elif sha is not None and sha != model["sha256"]:
            site.result.add(
                "catalog-sync",
                obj,
                f"{where}.env[MODEL_SHA256]",
                f"differs from the catalog's sha256 for {model['name']}",
            )
        file = _env(container, "MODEL_FILE")
        if file is not None and file != model["file"]:
            site.result.add(
                "catalog-sync", obj, f"{where}.env[MODEL_FILE]", f"{file!r} is not the catalog's file {model['file']!r}"
            )
        if container.get("name") != "server":
            continue
        for section in ("requests", "limits"):
            actual = (container.get("resources") or {}).get(section) or {}
            for resource in ("cpu", "memory"):
                wanted = model["resources"][section][resource]
                if not _same_quantity(actual.get(resource), wanted):
                    site.result.add(
                        "catalog-sync",
                        obj,
                        f"{where}.resources.{section}.{resource}",
                        f"{actual.get(resource)!r} differs from the catalog's {wanted!r}",
                    )


CHECKS: tuple[Callable[[_Site], None], ...] = (
    check_images,
    check_storage,
    check_secrets_refs,
    check_pod_references,
    check_namespaces,
    check_rollouts,
    check_traefik,
    check_selectors,
    check_sops,
    check_security,
)


def check_invariants(
    result: SiteResult, external_secrets: frozenset[str] = frozenset(), schemas: Path = DEFAULT_SCHEMAS
) -> None:
    site = _Site(result, external_secrets)
    for check in CHECKS:
        check(site)
    check_autoscalers(site, result.catalog)
    check_catalog_sync(site, result.catalog)
    check_health(result, schemas)
    check_traefik_api(result)
    check_server_args(result)
    check_model_volumes(result)
    check_canary(result)
    check_image_sources(result)
    check_schedule(result)
