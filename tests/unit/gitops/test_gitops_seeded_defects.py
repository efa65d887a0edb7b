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

from ansible_collections.edgeslm.pi5.scripts.gitops_validate import newsite
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.model import SiteResult

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


LLAMACPP = "platform/apps/llamacpp/deployment.yaml"
# A copy of the template where lab carries a SOPS-encrypted Secret among its apps.
SECRET_SITE = "lab"
SECRET_FILE = "sites/lab/apps/example-api-key.enc.yaml"
# The shape `sops --encrypt` writes (age recipient, encrypted_regex data|stringData).
ENCRYPTED_SECRET = """# yamllint disable-file
apiVersion: v1
kind: Secret
metadata:
    name: example-api-key
    namespace: slm
type: Opaque
stringData:
    apiKey: ENC[AES256_GCM,data:JMmFVs7xhaM9qyb1UA==,iv:dTwas+QkdMpo17uotrR2mA==,tag:7bY1MkT0OHLDI6PKwbDGbQ==,type:str]
sops:
    age:
        - recipient: age1ngq55cvp3mn7r438jskf0x5cafr63crca3e2l9g8hslm9r768y7qmrdkww
          enc: |
            -----BEGIN AGE ENCRYPTED FILE-----
            YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSA4VUZaRExlbHJySEQwK1Rl
            -----END AGE ENCRYPTED FILE-----
    lastmodified: "2026-11-23T08:00:00Z"
    mac: ENC[AES256_GCM,data:Pcs360K12EVwrf=,iv:NSbeE15KEIFnuR6bu==,tag:+5HXBT05mStTNxE8suSbeA==,type:str]
    encrypted_regex: ^(data|stringData)$
    version: 3.10.2
"""
LAB_SITE = "sites/lab/site.yaml"
# The last line of lab's generated apps kustomization: a patch added after it wins over the catalog's.
LAB_GENERATED_END = "        value: Host(`llm.lab.edgeslm.internal`) && PathPrefix(`/v1`)\n"
STORE_SITE = "sites/store-berlin/site.yaml"

SECOND_LAB_MODEL = """  models:
    - name: edgeslm-tiny-b
      file: edgeslm-tiny-b.gguf
      source: file:///srv/edgeslm-lab/models/edgeslm-tiny-b.gguf
      sha256: "1111111111111111111111111111111111111111111111111111111111111111"
      sizeBytes: 1048576
      quantization: Q8_0
      runtime: llamacpp
      target: pi5-8gb
      serving: {contextPerSlot: 512}
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
        "platform/apps/llamacpp/kustomization.yaml",
        "  - pdb.yaml\n",
        "  - pdb.yaml\n  - gone.yaml\n",
        "kustomize",
        "kustomize build failed",
    ),
    Defect(
        "flux-source-missing",
        "lab",
        "platform/flux/apps.yaml",
        "    kind: GitRepository\n    name: flux-system",
        "    kind: GitRepository\n    name: fleet",
        "flux",
        "GitRepository flux-system/fleet not found",
    ),
    Defect(
        "flux-path-missing",
        "lab",
        "platform/flux/apps.yaml",
        "path: ${GITOPS_ROOT}/sites/${SITE}/apps",
        "path: ${GITOPS_ROOT}/sites/${SITE}/apps-typo",
        "flux",
        "does not exist in the repository",
    ),
    Defect(
        "flux-depends-on-missing",
        "lab",
        "platform/flux/apps.yaml",
        "- name: infra-configs",
        "- name: infra",
        "flux",
        "flux-system/infra does not exist",
    ),
    Defect(
        "flux-depends-on-cycle",
        "lab",
        "platform/flux/infra-controllers.yaml",
        "  name: infra-controllers\n  namespace: flux-system\nspec:\n",
        "  name: infra-controllers\n  namespace: flux-system\nspec:\n  dependsOn:\n    - name: apps\n",
        "flux",
        "dependency cycle",
    ),
    Defect(
        "flux-postbuild-undefined",
        "lab",
        "platform/flux/apps.yaml",
        "path: ${GITOPS_ROOT}/sites/${SITE}/apps",
        "path: ${GITOPS_ROOT}/sites/${SITE_NAME}/apps",
        "flux",
        "${SITE_NAME} is not defined",
    ),
    Defect(
        "flux-postbuild-absent",
        "lab",
        "platform/apps/llamacpp/pdb.yaml",
        "  maxUnavailable: 1",
        "  maxUnavailable: ${MAX_UNAVAILABLE}",
        "flux",
        "has no postBuild",
    ),
    Defect(
        "flux-sourceignore",
        "lab",
        ".sourceignore",
        "/schemas/\n",
        "/schemas/\n/sites/lab/apps/\n",
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
        "platform/apps/common/networkpolicy-default-deny-all.yaml",
        "  name: default-deny-all\n  namespace: slm\nspec:\n  podSelector: {}\n",
        "  name: default-deny-all\n  namespace: slm\nspec:\n",
        "schema",
        "'podSelector' is a required property",
    ),
    # strict schemas, custom resources and their CEL rules
    Defect(
        "crd-unknown-field",
        "lab",
        "platform/apps/llamacpp/rollout.yaml",
        "      abortScaleDownDelaySeconds: 30",
        "      abortScaleDownDelaySecs: 30",
        "schema",
        "'abortScaleDownDelaySecs' was unexpected",
    ),
    Defect(
        "crd-wrong-type",
        "lab",
        "platform/flux/apps.yaml",
        "  prune: true",
        "  prune: enabled",
        "schema",
        "is not of type 'boolean'",
    ),
    Defect(
        "crd-cel-kustomization",
        "lab",
        "platform/flux/apps.yaml",
        "  prune: true",
        "  prune: true\n  kubeConfig: {}",
        "schema",
        "CEL:",
    ),
    Defect(
        "crd-cel-helmrelease",
        "lab",
        "platform/controllers/keda.yaml",
        "  chart:\n",
        "  chartRef:\n    kind: OCIRepository\n    name: keda\n  chart:\n",
        "schema",
        "CEL:",
    ),
    Defect(
        "no-schema",
        "lab",
        "platform/apps/common/serviceaccount.yaml",
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
        "must be a string matching",
    ),
    Defect(
        "catalog-site-name",
        "lab",
        LAB_SITE,
        "  name: lab\n",
        "  name: lab2\n",
        "catalog",
        "is 'lab2' but the folder is sites/lab",
    ),
    Defect(
        "catalog-scale-to-zero-runtime",
        "store-berlin",
        STORE_SITE,
        "    scaleToZero: false",
        "    scaleToZero: true",
        "catalog",
        "cannot scale to zero",
    ),
    Defect(
        "catalog-generated-stale",
        "lab",
        LAB_SITE,
        "maxReplicas: 2",
        "maxReplicas: 3",
        "catalog",
        "differs from what the site folder gives",
    ),
    Defect(
        "catalog-does-not-fit",
        "store-berlin",
        STORE_SITE,
        "      target: pi5-8gb\n      arch: arm64",
        "      target: pi5-2gb\n      arch: arm64",
        "catalog",
        "no node class can serve it",
    ),
    Defect(
        "catalog-estimate-too-big",
        "store-berlin",
        STORE_SITE,
        "        contextPerSlot: 4096",
        "        contextPerSlot: 32768",
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
        "sites/lab/apps/kustomization.yaml",
        LAB_GENERATED_END,
        LAB_GENERATED_END + "  - target: {kind: Deployment, name: slm-llamacpp}\n    patch: |-\n"
        "      - op: replace\n        path: /spec/template/spec/containers/0/env/2/value\n"
        "        value: " + "ab" * 32 + "\n",
        "catalog-sync",
        "differs from the catalog's sha256",
    ),
    Defect(
        "sync-resources",
        "lab",
        "sites/lab/apps/kustomization.yaml",
        LAB_GENERATED_END,
        LAB_GENERATED_END + "  - target: {kind: Deployment, name: slm-llamacpp}\n    patch: |-\n"
        "      - op: replace\n        path: /spec/template/spec/containers/0/resources/limits/memory\n"
        "        value: 4Gi\n",
        "catalog-sync",
        "differs from the catalog's",
    ),
    Defect(
        "model-volume-writable",
        "lab",
        LLAMACPP,
        "            - {name: model, mountPath: /models, readOnly: true}",
        "            - {name: model, mountPath: /models}",
        "model-volume",
        "the model is mounted read-only",
    ),
    Defect(
        "model-volume-not-the-cache",
        "lab",
        LLAMACPP,
        "          persistentVolumeClaim:\n            claimName: MODEL_CLAIM\n            readOnly: true",
        "          emptyDir: {}",
        "model-volume",
        "must be the claim of the node's verified cache",
    ),
    Defect(
        "npu-placement",
        "factory-line1",
        "platform/apps/hailo/deployment.yaml",
        "edgeslm.io/npu: hailo10h",
        "edgeslm.io/npu: hailo8",
        "catalog-sync",
        "must be hailo10h for runtime hailo",
    ),
    Defect(
        "wasm-runtime",
        "store-berlin",
        "platform/apps/llamaedge/deployment.yaml",
        "runtimeClassName: wasmedge-wasinn",
        "runtimeClassName: wasmedge",
        "catalog-sync",
        "needs the plugin-capable runtime wasmedge-wasinn",
    ),
    Defect(
        "host-path-in-restricted-namespace",
        "store-berlin",
        "platform/apps/llamaedge/deployment.yaml",
        "          persistentVolumeClaim:\n            claimName: wasi-nn-plugin\n            readOnly: true",
        "          hostPath:\n            path: /opt/containerd/lib\n            type: Directory",
        "security",
        "hostPath volumes are not allowed by restricted",
    ),
    Defect(
        "host-path-elsewhere",
        "store-berlin",
        "platform/apps/llamaedge/deployment.yaml",
        "          persistentVolumeClaim:\n            claimName: wasi-nn-plugin\n            readOnly: true",
        "          hostPath:\n            path: /etc\n            type: Directory",
        "security",
        "/etc is not a host directory SLM pods may mount",
    ),
    # project-built images (built_images.py)
    Defect(
        "built-image-stale-tag",
        "lab",
        "sites/lab/patches/apps/kustomization.yaml",
        "llama-server:0.3.36-",
        "llama-server:0.3.35-",
        "images",
        "now builds tag",
    ),
    # images and charts
    Defect(
        "image-not-pinned",
        "factory-line1",
        "platform/apps/llamacpp/kustomization.yaml",
        "    digest: sha256:295dc9897fa8a643e4a513fbcaada51d3b8db4b0afa4fda7aeae2386757de58b\n",
        "",
        "images",
        "pin the image by digest",
    ),
    Defect(
        "image-latest",
        "factory-line1",
        "platform/apps/llamacpp/kustomization.yaml",
        "    newTag: server-b9935\n",
        "    newTag: latest\n",
        "images",
        "latest tag is not allowed",
    ),
    Defect(
        "chart-range",
        "lab",
        "platform/controllers/keda.yaml",
        "version: 2.20.2",
        'version: ">=2.0.0"',
        "images",
        "not pinned exactly",
    ),
    # references resolve
    Defect(
        "runtime-class",
        "store-berlin",
        "platform/apps/llamaedge/deployment.yaml",
        "runtimeClassName: wasmedge-wasinn",
        "runtimeClassName: wasm-edge",
        "references",
        "RuntimeClass wasm-edge does not exist",
    ),
    Defect(
        "storage-class-pod",
        "lab",
        "platform/apps/common/storageclass-edgeslm-model-cache.yaml",
        "  name: edgeslm-model-cache",
        "  name: edgeslm-models",
        "references",
        "StorageClass edgeslm-model-cache does not exist",
    ),
    Defect(
        "storage-class-helm",
        "store-berlin",
        "platform/controllers/prometheus.yaml",
        "  values:\n",
        "  values:\n    persistence:\n      storageClass: longhorn\n",
        "references",
        "StorageClass longhorn",
    ),
    Defect(
        "secret-helm-values",
        "lab",
        "platform/controllers/prometheus.yaml",
        "  values:\n",
        "  values:\n    grafana:\n      existingSecret: grafana-admin\n",
        "references",
        "Secret monitoring/grafana-admin does not exist",
    ),
    Defect(
        "secret-flux",
        "lab",
        "platform/flux/infra-controllers.yaml",
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
        "platform/apps/common/namespace.yaml",
        "  name: slm\n",
        "  name: inference\n",
        "references",
        "namespace slm is not created",
    ),
    Defect(
        "rollout-service",
        "lab",
        "platform/apps/llamacpp/rollout.yaml",
        "canaryService: slm-llamacpp-canary",
        "canaryService: slm-canary",
        "references",
        "Service slm/slm-canary does not exist",
    ),
    Defect(
        "rollout-analysis",
        "lab",
        "platform/apps/llamacpp/rollout.yaml",
        "- templateName: slm-canary",
        "- templateName: slm-gate",
        "references",
        "AnalysisTemplate slm-gate does not exist",
    ),
    Defect(
        "traefik-service",
        "lab",
        "platform/apps/llamacpp/traefikservice-slm-llamacpp.yaml",
        "      - name: slm-llamacpp-canary",
        "      - name: slm-llamacpp-preview",
        "references",
        "Service slm/slm-llamacpp-preview does not exist",
    ),
    Defect(
        "pdb-selector",
        "lab",
        "platform/apps/llamacpp/pdb.yaml",
        "app.kubernetes.io/name: slm-llamacpp",
        "app.kubernetes.io/name: llamacpp",
        "references",
        "selects no workload's pods",
    ),
    # autoscaling
    Defect(
        "autoscaler-twice",
        "lab",
        "sites/lab/apps/kustomization.yaml",
        "  - ../../../platform/apps/llamacpp\n",
        "  - ../../../platform/apps/llamacpp\n  - ../../../platform/apps/llamaedge/hpa.yaml\n",
        "kustomize",
        "kustomize build failed",
    ),
    Defect(
        "scale-to-zero-forbidden",
        "factory-line1",
        "sites/factory-line1/apps/kustomization.yaml",
        "        path: /spec/minReplicaCount\n        value: 1",
        "        path: /spec/minReplicaCount\n        value: 0",
        "autoscaling",
        "scaleToZero: false",
    ),
    # secrets (SECRET_SITE carries an encrypted Secret, see site_with_secret)
    Defect(
        "secret-clear-value",
        SECRET_SITE,
        SECRET_FILE,
        "    apiKey: ENC[",
        "    apiKey: hunter2\n    x: ENC[",
        "secrets",
        "clear text",
    ),
    Defect(
        "secret-no-sops",
        SECRET_SITE,
        SECRET_FILE,
        "sops:\n",
        "sopsx:\n",
        "secrets",
        "not SOPS-encrypted",
    ),
    Defect(
        "secret-no-decryption",
        SECRET_SITE,
        "platform/flux/apps.yaml",
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
        "platform/components/hailo-device-plugin/daemonset-generic-device-plugin.yaml",
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


def add_secret(root: Path) -> None:
    """Put ENCRYPTED_SECRET beside lab's apps kustomization and regenerate it, as new-site --sync would."""
    path = root / SECRET_FILE
    path.write_text(ENCRYPTED_SECRET, encoding="utf-8")
    assert newsite.main(["--root", str(root), "--sync", SECRET_SITE]) == 0


def test_site_with_a_secret_is_clean(repo: Path, run_site: RunSite) -> None:
    add_secret(repo)
    result = run_site(repo, SECRET_SITE)
    assert result.problems == []
    assert any(o.kind == "Secret" and o.name == "example-api-key" for o in result.objects)


@pytest.mark.parametrize("defect", DEFECTS, ids=[d.id for d in DEFECTS])
def test_seeded_defect_is_caught(repo: Path, run_site: RunSite, edit: Edit, defect: Defect) -> None:
    if defect.file == SECRET_FILE or defect.check == "secrets":
        add_secret(repo)
    edit(repo / defect.file, defect.old, defect.new)
    result = run_site(repo, defect.site)
    hits = [p for p in result.problems if p.check == defect.check and defect.needle in p.message]
    assert hits, "\n".join(p.render() for p in result.problems) or "no problems reported"
    assert all(p.file for p in hits)


def test_argocd_handoff_needs_its_source_folders(repo: Path, run_site: RunSite) -> None:
    (repo / "platform" / "configs" / "kustomization.yaml").unlink()
    result = run_site(repo, "lab")
    assert any(p.check == "argocd" and "platform/configs is not a kustomization" in p.message for p in result.problems)


def test_argocd_note_names_encrypted_secrets(repo: Path, run_site: RunSite) -> None:
    add_secret(repo)
    result = run_site(repo, SECRET_SITE)
    assert any("KSOPS" in note for note in result.notes)
