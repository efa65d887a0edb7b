# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""The checks that model the cluster catch a defect seeded into a copy of the template.

Same shape as test_gitops_seeded_defects.py: each case edits one file of a fresh copy and
expects a problem from a named check whose message contains a needle. A case that edits a
site.yaml regenerates the site's kustomizations first, as `scripts/new-site --sync` would, so
the defect reaches the rendered objects instead of only making the generated files stale.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ansible_collections.edgeslm.pi5.scripts.gitops_validate import K3S_KUBERNETES_MINOR, newsite
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.cli import DEFAULT_SCHEMAS, Target, Validators, validate
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.crd_schema import CrdValidator
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.k8s_schema import BuiltinValidator
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.model import SiteResult
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.render import Renderer

Edit = Callable[[Path, str, str], None]
RunSite = Callable[[Path, str], SiteResult]

LLAMACPP = "platform/apps/llamacpp/deployment.yaml"
APPS_FLUX = "platform/flux/apps.yaml"
ANALYSIS = "platform/apps/common/analysistemplate.yaml"
LAB_GENERATED = "sites/lab/apps/kustomization.yaml"
LAB_GENERATED_END = "        value: Host(`llm.lab.edgeslm.internal`) && PathPrefix(`/v1`)\n"
STORE_GENERATED = "sites/store-berlin/apps/kustomization.yaml"
# The last line of store-berlin's generated apps kustomization: a patch added after it wins.
STORE_GENERATED_END = "        value: Host(`llamaedge.store-berlin.edgeslm.example`) && PathPrefix(`/v1`)\n"


@dataclass(frozen=True)
class Defect:
    id: str
    site: str
    file: str
    old: str
    new: str
    check: str
    needle: str


DEFECTS = [
    # scheduling: taints, selectors, host ports, devices, capacity
    Defect(
        "schedule-page-size-taint",
        "store-berlin",
        "sites/store-berlin/site.yaml",
        "      wasm: true\n",
        "      wasm: true\n      pageSize: 16k\n",
        "schedule",
        "untolerated taint edgeslm.io/page-size=16k:NoSchedule",
    ),
    Defect(
        "schedule-node-selector",
        "lab",
        LLAMACPP,
        "      priorityClassName: edgeslm-inference\n",
        "      priorityClassName: edgeslm-inference\n      nodeSelector: {edgeslm.io/npu: hailo10h}\n",
        "schedule",
        "node selector edgeslm.io/npu=hailo10h",
    ),
    Defect(
        "schedule-host-port",
        "lab",
        LLAMACPP,
        "- {name: http, containerPort: 8080, protocol: TCP}",
        "- {name: http, containerPort: 8080, hostPort: 443, protocol: TCP}",
        "schedule",
        "host port 443/TCP already in use",
    ),
    Defect(
        "schedule-device-plugin-elsewhere",
        "factory-line1",
        "platform/components/hailo-device-plugin/daemonset-generic-device-plugin.yaml",
        "        edgeslm.io/npu: hailo10h",
        "        edgeslm.io/npu: hailo8",
        "schedule",
        "no squat.ai/hailo on the node",
    ),
    Defect(
        "schedule-cpu-at-max-replicas",
        "lab",
        "sites/lab/site.yaml",
        'requests: {cpu: 500m, memory: 256Mi}\n        limits: {cpu: "1", memory: 512Mi}',
        "requests: {cpu: 3500m, memory: 256Mi}\n        limits: {cpu: 3500m, memory: 512Mi}",
        "schedule",
        "insufficient cpu",
    ),
    Defect(
        "schedule-chart-tolerations-missing",
        "store-berlin",
        "sites/store-berlin/site.yaml",
        "      wasm: true\n",
        "      wasm: true\n      taints: [dedicated=slm:NoSchedule]\n",
        "schedule",
        "Deployment keda/keda-operator: a pod cannot be placed",
    ),
    Defect(
        "schedule-chart-unknown-version",
        "lab",
        "platform/controllers/keda.yaml",
        "version: 2.20.2",
        "version: 2.20.1",
        "schedule",
        "chart keda 2.20.1: its pods' scheduling facts are not in",
    ),
    Defect(
        "schedule-model-estimate-over-node",
        "store-berlin",
        STORE_GENERATED,
        STORE_GENERATED_END,
        STORE_GENERATED_END + "  - target: {kind: HorizontalPodAutoscaler, name: slm-llamaedge}\n    patch: |-\n"
        "      - op: replace\n        path: /spec/maxReplicas\n        value: 12\n"
        "  - target: {kind: Deployment, name: slm-llamaedge}\n    patch: |-\n"
        "      - op: replace\n        path: /spec/template/spec/containers/0/resources/requests\n"
        "        value: {cpu: 100m, memory: 300Mi}\n",
        "schedule",
        "is more than its allocatable",
    ),
    # health as Flux computes it
    Defect(
        "health-rollout-without-exprs",
        "lab",
        APPS_FLUX,
        "  healthCheckExprs:\n",
        "  healthCheckExprsUnused:\n",
        "health",
        "whose health kstatus cannot compute: its status.observedGeneration is a string",
    ),
    Defect(
        "health-expr-never-current",
        "lab",
        APPS_FLUX,
        "      current: status.phase == 'Healthy'",
        "      current: status.phase == 'Ready'",
        "health",
        "a Healthy Rollout must be current, the expressions make it never ready",
    ),
    Defect(
        "health-expr-does-not-compile",
        "lab",
        APPS_FLUX,
        "      failed: status.phase == 'Degraded'",
        "      failed: status.phase = 'Degraded'",
        "health",
        "does not evaluate on a",
    ),
    Defect(
        "health-healthchecks-on-rollout",
        "lab",
        "platform/flux/infra-configs.yaml",
        "  wait: true\n",
        "  healthChecks:\n"
        "    - {apiVersion: argoproj.io/v1alpha1, kind: Rollout, name: slm-llamacpp, namespace: slm}\n",
        "health",
        "waits for Rollout (argoproj.io/v1alpha1)",
    ),
    # versions that must match what k3s ships
    Defect(
        "traefik-api-group-default",
        "lab",
        "platform/controllers/argo-rollouts.yaml",
        "        - --traefik-api-group=traefik.io\n",
        "",
        "traefik",
        "as traefik.containo.us (--traefik-api-group default)",
    ),
    Defect(
        "traefik-api-version-v2",
        "store-berlin",
        "platform/controllers/argo-rollouts.yaml",
        "--traefik-api-version=traefik.io/v1alpha1",
        "--traefik-api-version=traefik.containo.us/v1alpha1",
        "traefik",
        "set --traefik-api-version=traefik.io/v1alpha1",
    ),
    # server arguments come from the catalog
    Defect(
        "server-args-overridden",
        "lab",
        LAB_GENERATED,
        LAB_GENERATED_END,
        LAB_GENERATED_END + "  - target: {kind: Deployment, name: slm-llamacpp}\n    patch: |-\n"
        "      - op: replace\n        path: /spec/template/spec/containers/0/args/9\n        value: '4096'\n",
        "server-args",
        "argument 9 (after --ctx-size) is '4096', the catalog's serving configuration gives '512'",
    ),
    Defect(
        "server-args-extra",
        "store-berlin",
        STORE_GENERATED,
        STORE_GENERATED_END,
        STORE_GENERATED_END + "  - target: {kind: Deployment, name: slm-llamaedge}\n    patch: |-\n"
        "      - op: add\n        path: /spec/template/spec/containers/0/args/-\n        value: --no-mmap\n",
        "server-args",
        "extra arguments --no-mmap",
    ),
    # a canary that can fail
    Defect(
        "canary-weights-reset-by-flux",
        "lab",
        "platform/apps/llamacpp/traefikservice-slm-llamacpp.yaml",
        "    kustomize.toolkit.fluxcd.io/ssa: IfNotPresent\n",
        "    example.com/unrelated: x\n",
        "canary",
        "weights are written in Git and Flux applies them on every reconciliation",
    ),
    Defect(
        "canary-passes-without-data",
        "lab",
        ANALYSIS,
        "successCondition: len(result) > 0 && !isNaN(result[0]) && result[0] <= 0.05",
        "successCondition: len(result) == 0 || result[0] <= 0.05",
        "canary",
        "is Successful on an empty result (no data)",
    ),
    Defect(
        "canary-passes-on-nan",
        "lab",
        ANALYSIS,
        "successCondition: len(result) > 0 && !isNaN(result[0]) && result[0] <= 30",
        "successCondition: len(result) > 0 && (isNaN(result[0]) || result[0] <= 30)",
        "canary",
        "is Successful on a NaN result",
    ),
    Defect(
        "canary-condition-outside-subset",
        "lab",
        ANALYSIS,
        "successCondition: len(result) > 0 && !isNaN(result[0]) && result[0] <= 30",
        "successCondition: all(result, {# <= 30})",
        "canary",
        "a condition the validator cannot evaluate",
    ),
    Defect(
        "canary-metric-the-runtime-does-not-export",
        "store-berlin",
        ANALYSIS,
        "histogram_quantile(0.95, sum by (le) (rate(traefik_service_request_duration_seconds_bucket",
        "histogram_quantile(0.95, sum by (le) (rate(llamacpp:n_decode_total",
        "canary",
        "llamacpp:n_decode_total is exported neither by Traefik nor by the llamaedge server",
    ),
    Defect(
        "canary-metric-reset-by-scrape",
        "lab",
        "platform/apps/llamacpp/analysistemplate-slm-canary-llamacpp.yaml",
        "sum(rate(llamacpp:tokens_predicted_total{",
        "avg(llamacpp:predicted_tokens_seconds{",
        "canary",
        "llamacpp:predicted_tokens_seconds: reset by every scrape",
    ),
    Defect(
        "canary-without-smoke-test",
        "store-berlin",
        ANALYSIS,
        '/v1/chat/completions"\n',
        '/health"\n',
        "canary",
        "no analysis step runs a smoke test",
    ),
    Defect(
        "scaler-metric-misspelt",
        "lab",
        "platform/apps/llamacpp/scaledobject.yaml",
        "llamacpp:requests_deferred{",
        "llamacpp:requests_waiting{",
        "canary",
        "llamacpp:requests_waiting is exported neither by Traefik nor by the llamacpp server",
    ),
    # every image has a recorded origin
    Defect(
        "image-origin-unrecorded",
        "factory-line1",
        "platform/apps/llamacpp/kustomization.yaml",
        "  - name: ghcr.io/ggml-org/llama.cpp\n",
        "  - name: ghcr.io/ggml-org/llama.cpp\n    newName: ghcr.io/someone/llama.cpp\n",
        "images",
        "ghcr.io/someone/llama.cpp:server-b9935@sha256:295dc98",
    ),
    Defect(
        "built-image-wrong-arch",
        "lab",
        "sites/lab/site.yaml",
        "      nodeClasses: [pi5-8gb-amd64]\n",
        "",
        "images",
        "single-arch amd64 image",
    ),
    Defect(
        "image-digest-not-the-recorded-one",
        "factory-line1",
        "platform/apps/llamacpp/kustomization.yaml",
        "digest: sha256:295dc9897fa8a643e4a513fbcaada51d3b8db4b0afa4fda7aeae2386757de58b",
        "digest: sha256:" + "1" * 64,
        "images",
        "digest differs from the one whose origin is recorded",
    ),
    Defect(
        "image-placeholder-not-overridden",
        "store-berlin",
        "sites/store-berlin/images.yaml",
        "    - name: registry.invalid/edgeslm/llamaedge\n",
        "    - name: registry.invalid/edgeslm/llamaedge-other\n",
        "images",
        "still the placeholder of an image the project builds (images/llamaedge)",
    ),
    Defect(
        "image-record-without-source",
        "lab",
        "platform/images.yaml",
        "      readFrom: >-\n        not read from Docker Hub here",
        "      readFromX: >-\n        not read from Docker Hub here",
        "images",
        "needs `digest` and `readFrom`",
    ),
]


def _regenerate(root: Path, defect: Defect) -> None:
    if defect.file.endswith("/site.yaml"):
        assert newsite.main(["--root", str(root), "--sync", defect.site]) == 0


@pytest.mark.parametrize("defect", DEFECTS, ids=[d.id for d in DEFECTS])
def test_seeded_defect_is_caught(repo: Path, run_site: RunSite, edit: Edit, defect: Defect) -> None:
    edit(repo / defect.file, defect.old, defect.new)
    _regenerate(repo, defect)
    result = run_site(repo, defect.site)
    hits = [p for p in result.problems if p.check == defect.check and defect.needle in p.message]
    assert hits, "\n".join(p.render() for p in result.problems) or "no problems reported"
    assert all(p.file for p in hits)


@pytest.mark.parametrize("site", ["store-berlin", "factory-line1", "lab"])
def test_example_site_schedules_within_capacity(repo: Path, run_site: RunSite, site: str) -> None:
    result = run_site(repo, site)
    assert [p for p in result.problems if p.check == "schedule"] == []
    lines = "\n".join(result.summary)
    assert "placement (min replicas)" in lines
    assert "placement (max replicas + canary)" in lines
    assert " 0 unplaced" in lines and "unplaced" not in lines.replace(" 0 unplaced", "")


def test_health_reads_the_schemas_the_run_validates_with(repo: Path, edit: Edit, tmp_path: Path) -> None:
    """--schemas decides what kstatus can read: a Rollout schema with an integer observedGeneration is readable."""
    schemas = tmp_path / "schemas"
    shutil.copytree(DEFAULT_SCHEMAS, schemas)
    rollout = schemas / "argoproj.io" / "rollout_v1alpha1.json"
    schema = json.loads(rollout.read_text(encoding="utf-8"))
    schema["properties"]["status"]["properties"]["observedGeneration"] = {"type": "integer"}
    rollout.write_text(json.dumps(schema), encoding="utf-8")
    edit(repo / APPS_FLUX, "  healthCheckExprs:\n", "  healthCheckExprsUnused:\n")
    needle = "Rollout (argoproj.io/v1alpha1), whose health kstatus cannot compute"

    def health_problems(directory: Path) -> list[str]:
        validators = Validators(BuiltinValidator(K3S_KUBERNETES_MINOR), CrdValidator(directory), frozenset())
        result = validate([Target("lab", root=repo)], validators, Renderer(), 1)[0]
        return [p.message for p in result.problems if p.check == "health" and needle in p.message]

    assert health_problems(DEFAULT_SCHEMAS)
    assert not health_problems(schemas)
