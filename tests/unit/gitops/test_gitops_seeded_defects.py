# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every check of scripts/validate-gitops catches a defect seeded into a copy of the template.

Each case edits one file of a fresh copy (the edit fails the test if its text is missing),
validates one site and expects a problem from a named check whose text contains a needle.
The baseline test proves the unedited template is clean, so a hit comes from the defect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ansible_collections.edgeslm.pi5.scripts.gitops_validate.cli import Target, Validators, validate
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.model import SiteResult
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.render import Renderer

Edit = Callable[[Path, str, str], None]
RunSite = Callable[[Path, str], SiteResult]


@dataclass(frozen=True)
class Defect:
    id: str
    site: str
    file: str
    old: str
    new: str
    check: str
    needle: str


LLAMACPP = "apps/base/llamacpp/deployment.yaml"
LAB_SITE = "sites/lab/site.yaml"
STORE_SITE = "sites/store-berlin/site.yaml"

SECOND_LAB_MODEL = """  models:
    - name: edgeslm-tiny-b
      file: edgeslm-tiny-b.gguf
      sha256: "1111111111111111111111111111111111111111111111111111111111111111"
      sizeBytes: 1048576
      quantization: Q8_0
      contextLength: 512
      parallel: 1
      runtime: llamacpp
      target: pi5-8gb
      resources:
        requests: {cpu: 500m, memory: 256Mi}
        limits: {cpu: "1", memory: 512Mi}
      description:
        architecture: llama
        parameterCount: 1000000
        blockCount: 2
        embeddingLength: 64
        headCount: 4
        headCountKv: 2
        keyLength: 16
        valueLength: 16
        trainedContextLength: 512
        vocabSize: 256
"""

DEFECTS = [
    # kustomize and Flux
    Defect(
        "kustomize-missing-resource",
        "lab",
        "apps/base/llamacpp/kustomization.yaml",
        "  - pdb.yaml\n",
        "  - pdb.yaml\n  - gone.yaml\n",
        "kustomize",
        "kustomize build failed",
    ),
    Defect(
        "flux-source-missing",
        "lab",
        "clusters/lab/apps.yaml",
        "    kind: GitRepository\n    name: flux-system",
        "    kind: GitRepository\n    name: fleet",
        "flux",
        "GitRepository flux-system/fleet not found",
    ),
    Defect(
        "flux-path-missing",
        "lab",
        "clusters/lab/apps.yaml",
        "path: ./apps/lab",
        "path: ./apps/lab-typo",
        "flux",
        "does not exist in the repository",
    ),
    Defect(
        "flux-depends-on-missing",
        "lab",
        "clusters/lab/apps.yaml",
        "- name: infra-configs",
        "- name: infra",
        "flux",
        "flux-system/infra does not exist",
    ),
    Defect(
        "flux-depends-on-cycle",
        "lab",
        "clusters/lab/infra-controllers.yaml",
        "  name: infra-controllers\n  namespace: flux-system\nspec:\n",
        "  name: infra-controllers\n  namespace: flux-system\nspec:\n  dependsOn:\n    - name: apps\n",
        "flux",
        "dependency cycle",
    ),
    Defect(
        "flux-postbuild-undefined",
        "lab",
        "clusters/lab/apps.yaml",
        "      SITE_DOMAIN: lab.edgeslm.internal\n",
        "",
        "flux",
        "${SITE_DOMAIN} is not defined",
    ),
    Defect(
        "flux-postbuild-absent",
        "lab",
        "clusters/lab/apps.yaml",
        "  postBuild:\n    substitute:\n      SITE: lab\n      SITE_DOMAIN: lab.edgeslm.internal\n",
        "",
        "flux",
        "has no postBuild",
    ),
    Defect(
        "flux-sourceignore",
        "lab",
        ".sourceignore",
        "/docs/\n",
        "/docs/\n/apps/lab/\n",
        "flux",
        "excluded by .sourceignore",
    ),
    # strict schemas, built-in kinds
    Defect(
        "builtin-unknown-field",
        "lab",
        LLAMACPP,
        "  revisionHistoryLimit: 3\n",
        "  revisionHistoryLimit: 3\n  replica: 2\n",
        "schema",
        "'replica' was unexpected",
    ),
    Defect(
        "builtin-wrong-type",
        "lab",
        LLAMACPP,
        "containerPort: 8080",
        'containerPort: "8080"',
        "schema",
        "is not of type 'integer'",
    ),
    Defect(
        "builtin-missing-required",
        "lab",
        "apps/base/common/networkpolicy-default-deny-all.yaml",
        "  name: default-deny-all\n  namespace: slm\nspec:\n  podSelector: {}\n",
        "  name: default-deny-all\n  namespace: slm\nspec:\n",
        "schema",
        "'podSelector' is a required property",
    ),
    # strict schemas, custom resources and their CEL rules
    Defect(
        "crd-unknown-field",
        "lab",
        "apps/base/llamacpp/rollout.yaml",
        "      abortScaleDownDelaySeconds: 30",
        "      abortScaleDownDelaySecs: 30",
        "schema",
        "'abortScaleDownDelaySecs' was unexpected",
    ),
    Defect(
        "crd-wrong-type",
        "lab",
        "clusters/lab/apps.yaml",
        "  prune: true",
        "  prune: enabled",
        "schema",
        "is not of type 'boolean'",
    ),
    Defect(
        "crd-cel-keda",
        "factory-line1",
        "apps/base/llamacpp/scaledobject.yaml",
        "  minReplicaCount: 1",
        "  minReplicaCount: 5",
        "schema",
        "CEL: minReplicaCount must be less than or equal to maxReplicaCount",
    ),
    Defect(
        "crd-cel-helmrelease",
        "lab",
        "infrastructure/controllers/base/keda.yaml",
        "  chart:\n",
        "  chartRef:\n    kind: OCIRepository\n    name: keda\n  chart:\n",
        "schema",
        "CEL:",
    ),
    Defect(
        "no-schema",
        "lab",
        "apps/base/common/serviceaccount.yaml",
        "apiVersion: v1",
        "apiVersion: v9",
        "schema",
        "no schema for v9 ServiceAccount",
    ),
    # the site catalog
    Defect(
        "catalog-schema-sha256",
        "lab",
        LAB_SITE,
        "ce37f84dd230fd154c876666bf12e124c78b08b15a33c50957635665544b2b4d",
        "ABC",
        "catalog",
        "does not match",
    ),
    Defect(
        "catalog-site-name", "lab", LAB_SITE, "  site: lab", "  site: lab2", "catalog", "catalog is for site 'lab2'"
    ),
    Defect(
        "catalog-does-not-fit",
        "store-berlin",
        STORE_SITE,
        "      target: pi5-8gb\n      arch: arm64",
        "      target: pi5-2gb\n      arch: arm64",
        "catalog",
        "no node class provides",
    ),
    Defect(
        "catalog-estimate-too-big",
        "store-berlin",
        STORE_SITE,
        "      contextLength: 4096",
        "      contextLength: 32768",
        "catalog",
        "below the estimate",
    ),
    Defect(
        "catalog-request-too-big",
        "lab",
        LAB_SITE,
        "requests: {cpu: 500m, memory: 256Mi}",
        "requests: {cpu: 500m, memory: 2Gi}",
        "catalog",
        "is more than",
    ),
    Defect(
        "catalog-limit-over-node",
        "lab",
        LAB_SITE,
        'limits: {cpu: "1", memory: 512Mi}',
        'limits: {cpu: "1", memory: 9Gi}',
        "catalog",
        "free for workloads",
    ),
    Defect(
        "catalog-two-models-one-runtime",
        "lab",
        LAB_SITE,
        "  models:\n",
        SECOND_LAB_MODEL,
        "catalog",
        "one model per runtime",
    ),
    # overlays must not drift from the catalog
    Defect(
        "sync-sha256",
        "lab",
        "apps/lab/kustomization.yaml",
        "patches:\n",
        "patches:\n  - target: {kind: Deployment, name: slm-llamacpp}\n    patch: |-\n"
        "      - op: replace\n        path: /spec/template/spec/containers/0/env/2/value\n"
        "        value: " + "ab" * 32 + "\n",
        "catalog-sync",
        "differs from the catalog's sha256",
    ),
    Defect(
        "sync-resources",
        "lab",
        "apps/lab/kustomization.yaml",
        "patches:\n",
        "patches:\n  - target: {kind: Deployment, name: slm-llamacpp}\n    patch: |-\n"
        "      - op: replace\n        path: /spec/template/spec/containers/0/resources/limits/memory\n"
        "        value: 4Gi\n",
        "catalog-sync",
        "differs from the catalog's",
    ),
    Defect(
        "sync-storage",
        "lab",
        "apps/lab/kustomization.yaml",
        "        value: 1Gi",
        "        value: 512Ki",
        "catalog-sync",
        "cannot hold",
    ),
    Defect(
        "npu-placement",
        "factory-line1",
        "apps/base/hailo/deployment.yaml",
        "edgeslm.io/npu: hailo10h",
        "edgeslm.io/npu: hailo8",
        "catalog-sync",
        "must be hailo10h for runtime hailo",
    ),
    Defect(
        "wasm-runtime",
        "store-berlin",
        "apps/base/llamaedge/deployment.yaml",
        "runtimeClassName: wasmedge-wasinn",
        "runtimeClassName: wasmedge",
        "catalog-sync",
        "needs the plugin-capable runtime wasmedge-wasinn",
    ),
    Defect(
        "host-path-writable",
        "store-berlin",
        "apps/base/llamaedge/deployment.yaml",
        "{name: wasi-nn-plugin, mountPath: /opt/containerd/lib, readOnly: true}",
        "{name: wasi-nn-plugin, mountPath: /opt/containerd/lib}",
        "security",
        "host directories are mounted read-only",
    ),
    Defect(
        "host-path-elsewhere",
        "store-berlin",
        "apps/base/llamaedge/deployment.yaml",
        "            path: /opt/containerd/lib",
        "            path: /etc",
        "security",
        "/etc is not a host directory SLM pods may mount",
    ),
    Defect(
        "host-path-in-restricted-namespace",
        "store-berlin",
        "apps/store-berlin/kustomization.yaml",
        "  - ../base/llamaedge/host-access\n",
        "",
        "security",
        "hostPath volumes are not allowed by restricted",
    ),
    # images and charts
    Defect(
        "image-not-pinned",
        "lab",
        "apps/base/llamacpp/kustomization.yaml",
        "    digest: sha256:295dc9897fa8a643e4a513fbcaada51d3b8db4b0afa4fda7aeae2386757de58b\n",
        "",
        "images",
        "pin the image by digest",
    ),
    Defect(
        "image-latest",
        "lab",
        "apps/base/llamacpp/kustomization.yaml",
        "    newTag: server\n",
        "    newTag: latest\n",
        "images",
        "latest tag is not allowed",
    ),
    Defect(
        "chart-range",
        "lab",
        "infrastructure/controllers/base/keda.yaml",
        "version: 2.20.2",
        'version: ">=2.0.0"',
        "images",
        "not pinned exactly",
    ),
    # references resolve
    Defect(
        "runtime-class",
        "store-berlin",
        "apps/base/llamaedge/deployment.yaml",
        "runtimeClassName: wasmedge-wasinn",
        "runtimeClassName: wasm-edge",
        "references",
        "RuntimeClass wasm-edge does not exist",
    ),
    Defect(
        "storage-class-pod",
        "lab",
        LLAMACPP,
        "storageClassName: local-path",
        "storageClassName: nvme",
        "references",
        "StorageClass nvme does not exist",
    ),
    Defect(
        "storage-class-helm",
        "store-berlin",
        "infrastructure/controllers/base/minio.yaml",
        "      storageClass: local-path",
        "      storageClass: longhorn",
        "references",
        "StorageClass longhorn",
    ),
    Defect(
        "secret-helm-values",
        "lab",
        "infrastructure/controllers/base/minio.yaml",
        "existingSecret: minio-root",
        "existingSecret: minio-admin",
        "references",
        "Secret minio/minio-admin does not exist",
    ),
    Defect(
        "secret-flux",
        "lab",
        "clusters/lab/infra-controllers.yaml",
        "name: sops-age",
        "name: sops-gpg",
        "references",
        "Secret flux-system/sops-gpg does not exist",
    ),
    Defect(
        "priority-class",
        "lab",
        LLAMACPP,
        "priorityClassName: edgeslm-inference",
        "priorityClassName: inference",
        "references",
        "PriorityClass inference does not exist",
    ),
    Defect(
        "service-account",
        "lab",
        LLAMACPP,
        "serviceAccountName: slm-server",
        "serviceAccountName: slm",
        "references",
        "ServiceAccount slm/slm does not exist",
    ),
    Defect(
        "namespace",
        "lab",
        "apps/base/common/namespace.yaml",
        "  name: slm\n",
        "  name: inference\n",
        "references",
        "namespace slm is not created",
    ),
    Defect(
        "rollout-service",
        "lab",
        "apps/base/llamacpp/rollout.yaml",
        "canaryService: slm-llamacpp-canary",
        "canaryService: slm-canary",
        "references",
        "Service slm/slm-canary does not exist",
    ),
    Defect(
        "rollout-analysis",
        "lab",
        "apps/base/llamacpp/rollout.yaml",
        "- templateName: slm-canary",
        "- templateName: slm-gate",
        "references",
        "AnalysisTemplate slm-gate does not exist",
    ),
    Defect(
        "traefik-service",
        "lab",
        "apps/base/llamacpp/traefikservice-slm-llamacpp.yaml",
        "      - name: slm-llamacpp-canary",
        "      - name: slm-llamacpp-preview",
        "references",
        "Service slm/slm-llamacpp-preview does not exist",
    ),
    Defect(
        "pdb-selector",
        "lab",
        "apps/base/llamacpp/pdb.yaml",
        "app.kubernetes.io/name: slm-llamacpp",
        "app.kubernetes.io/name: llamacpp",
        "references",
        "selects no workload's pods",
    ),
    # autoscaling
    Defect(
        "autoscaler-twice",
        "lab",
        "apps/lab/kustomization.yaml",
        "  - ../base/llamacpp\n",
        "  - ../base/llamacpp\n  - ../base/llamaedge/hpa.yaml\n",
        "kustomize",
        "kustomize build failed",
    ),
    Defect(
        "scale-to-zero-forbidden",
        "factory-line1",
        "apps/base/llamacpp/scaledobject.yaml",
        "  minReplicaCount: 1",
        "  minReplicaCount: 0",
        "autoscaling",
        "scaleToZero: false",
    ),
    # secrets
    Defect(
        "secret-clear-value",
        "lab",
        "infrastructure/controllers/lab/minio-root.enc.yaml",
        "    rootUser: ENC[",
        "    rootUser: admin\n    x: ENC[",
        "secrets",
        "clear text",
    ),
    Defect(
        "secret-no-sops",
        "lab",
        "infrastructure/controllers/lab/minio-root.enc.yaml",
        "sops:\n",
        "sopsx:\n",
        "secrets",
        "not SOPS-encrypted",
    ),
    Defect(
        "secret-no-decryption",
        "lab",
        "clusters/lab/infra-controllers.yaml",
        "  decryption:\n    provider: sops\n    secretRef:\n      name: sops-age\n",
        "",
        "secrets",
        "no spec.decryption",
    ),
    # security
    Defect(
        "restricted-escalation",
        "lab",
        LLAMACPP,
        "allowPrivilegeEscalation: false",
        "allowPrivilegeEscalation: true",
        "security",
        "must be false",
    ),
    Defect(
        "restricted-seccomp",
        "lab",
        LLAMACPP,
        "              type: RuntimeDefault",
        "              type: Unconfined",
        "security",
        "RuntimeDefault or Localhost",
    ),
    Defect(
        "read-only-root",
        "lab",
        LLAMACPP,
        "readOnlyRootFilesystem: true",
        "readOnlyRootFilesystem: false",
        "security",
        "read-only root filesystem",
    ),
    Defect(
        "checkov-skip-reason",
        "factory-line1",
        "infrastructure/controllers/components/hailo-device-plugin/daemonset-generic-device-plugin.yaml",
        "checkov.io/skip5: CKV_K8S_37=Privileged device access; capabilities cannot be dropped further.",
        "checkov.io/skip5: CKV_K8S_37",
        "security",
        "needs 'CHECK_ID=<written reason>'",
    ),
]


@pytest.mark.parametrize("site", ["store-berlin", "factory-line1", "lab"])
def test_template_is_clean(repo: Path, run_site: RunSite, site: str) -> None:
    result = run_site(repo, site)
    assert result.problems == []
    assert len(result.objects) > 30


@pytest.mark.parametrize("defect", DEFECTS, ids=[d.id for d in DEFECTS])
def test_seeded_defect_is_caught(repo: Path, run_site: RunSite, edit: Edit, defect: Defect) -> None:
    edit(repo / defect.file, defect.old, defect.new)
    result = run_site(repo, defect.site)
    hits = [p for p in result.problems if p.check == defect.check and defect.needle in p.message]
    assert hits, "\n".join(p.render() for p in result.problems) or "no problems reported"
    assert all(p.file for p in hits)


def test_argocd_defect_is_caught(repo: Path, validators: Validators) -> None:
    sites = repo / "argocd" / "base" / "sites.yaml"
    sites.write_text(
        sites.read_text(encoding="utf-8").replace("goTemplate: true", "goTemplates: true"), encoding="utf-8"
    )
    result = validate([Target("argocd", paths=(repo / "argocd",))], validators, Renderer(), 1)[0]
    assert any(p.check == "schema" and "'goTemplates' was unexpected" in p.message for p in result.problems)


def test_argocd_project_must_allow_what_the_sites_render(repo: Path, validators: Validators) -> None:
    project = repo / "argocd" / "base" / "project.yaml"
    text = project.read_text(encoding="utf-8")
    project.write_text(text.replace("    - group: node.k8s.io\n      kind: RuntimeClass\n", ""), encoding="utf-8")
    assert "RuntimeClass" not in project.read_text(encoding="utf-8")
    targets = [Target("lab", root=repo), Target("argocd", paths=(repo / "argocd",), argocd_sites=("lab",))]
    argocd = validate(targets, validators, Renderer(), 1)[1]
    assert any(
        p.check == "argocd" and "RuntimeClass wasmedge-wasinn is not in AppProject" in p.message
        for p in argocd.problems
    )
