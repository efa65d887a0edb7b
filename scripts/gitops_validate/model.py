# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared data types: rendered objects with their origin, and problems."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CLUSTER_SCOPED_KINDS", "Obj", "Problem", "SiteResult", "pod_spec", "walk_containers"]

# Kinds without a namespace (built-in ones plus the cluster-scoped custom kinds in use).
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "StorageClass",
        "RuntimeClass",
        "PriorityClass",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "APIService",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "IngressClass",
        "CSIDriver",
        "VolumeSnapshotClass",
        "ClusterTriggerAuthentication",
        "ClusterAnalysisTemplate",
        "ClusterCloudEventSource",
        # The site catalog is local configuration, never applied: it has no namespace.
        "SiteCatalog",
    }
)


@dataclass(frozen=True)
class Problem:
    """One finding: which check, where (file, object, field) and what is wrong."""

    check: str
    file: str
    obj: str
    field: str
    message: str

    def render(self) -> str:
        where = f"{self.file}: {self.obj}" if self.obj else self.file
        if self.field:
            where += f": {self.field}"
        return f"  [{self.check}] {where}: {self.message}"


@dataclass
class Obj:
    """A rendered Kubernetes object and where it came from."""

    doc: dict[str, Any]
    file: str
    applied_by: str = ""

    @property
    def api_version(self) -> str:
        return str(self.doc.get("apiVersion", ""))

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind", ""))

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.doc.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        if self.kind in CLUSTER_SCOPED_KINDS:
            return ""
        return str(self.metadata.get("namespace") or "default")

    @property
    def ref(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {ns}{self.name}"

    def spec(self) -> dict[str, Any]:
        spec = self.doc.get("spec")
        return spec if isinstance(spec, dict) else {}


@dataclass
class SiteResult:
    """Everything validated for one site (or one set of given files)."""

    name: str
    objects: list[Obj] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Lines printed under the site's status line (the scheduling simulation's placement summary).
    summary: list[str] = field(default_factory=list)
    catalog: dict[str, Any] | None = None
    # The GitOps root the site was built from (None for manifests given on the command line).
    root: str | None = None
    catalog_file: str = ""
    # The collection core's typed view of the catalog (_catalog.SiteCatalog) once it loaded cleanly.
    site_catalog: Any = None

    def add(self, check: str, obj: Obj | None, field_path: str, message: str, file: str = "") -> None:
        self.problems.append(
            Problem(check, file or (obj.file if obj else ""), obj.ref if obj else "", field_path, message)
        )


def pod_spec(doc: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The pod spec of a workload and its field path, or (None, '')."""
    kind = doc.get("kind")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return None, ""
    if kind == "Pod":
        return spec, "spec"
    if kind == "CronJob":
        job = spec.get("jobTemplate", {}).get("spec", {})
        template = job.get("template", {}).get("spec")
        return (template, "spec.jobTemplate.spec.template.spec") if isinstance(template, dict) else (None, "")
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        return template["spec"], "spec.template.spec"
    return None, ""


def walk_containers(pod: Mapping[str, Any], base: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Every container and init container of a pod spec with its field path."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        items = pod.get(key)
        if not isinstance(items, list):
            continue
        for index, container in enumerate(items):
            if isinstance(container, dict):
                name = container.get("name", index)
                yield container, f"{base}.{key}[{name}]"
