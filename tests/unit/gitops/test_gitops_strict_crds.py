# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Strict custom resources and SOPS-encrypted Secrets: each check catches a defect seeded into a manifest.

The manifests are written here (not taken from gitops/), validated as manifests given on the
command line, and each case edits one of them (the edit fails the test if its text is missing)
and expects a `schema` problem containing a needle. The baseline proves the unedited manifests
are clean, so a hit comes from the defect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ansible_collections.edgeslm.pi5.scripts.gitops_validate.cli import Target, Validators, validate
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.model import SiteResult
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.render import Renderer
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.sops import as_applied

ENC_USER = (
    "ENC[AES256_GCM,data:JMmFVs7xhaM9qyb1UA==,iv:dTwas+QkdMpo17uotrR2mACWbKBhs2CmMWlmgiE5FEc=,"
    "tag:7bY1MkT0OHLDI6PKwbDGbQ==,type:str]"
)
ENC_PASSWORD = (
    "ENC[AES256_GCM,data:S0mzvz3pf/1sIOgheQd5qP37hwopDp76ESU89O7j2FU=,"
    "iv:BwC3Sz4qGcqxswY8n6EtgiTEPj7e9WRyjEtQTCPUR0M=,tag:kn5XE4Z6YunLWiaghU4fxw==,type:str]"
)
ENC_MAC = (
    "ENC[AES256_GCM,data:Pcs360K12EVwrfQf48zOU4Ghb3cDLmcM5yELmi90bOx8XZwbx0vi8lXcvFLL9qeCQ0WGA0GlReNyeMrxihHl8lo+0rX"
    "mdSIisMqqkQ2gpOJHrAYCBYpp16+IT1J+wWfwlkwppcYESlbzt1SiH6o8QH6jDjlmp7DZNTFIgF2GwSE=,"
    "iv:NSbeE15KEIFnuR6buJnFkWdDvaFPD78oPdDLp3G8VrM=,tag:+5HXBT05mStTNxE8suSbeA==,type:str]"
)

MANIFESTS = {
    "helmrelease.yaml": """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: keda
  namespace: keda
spec:
  interval: 1h
  chart:
    spec:
      chart: keda
      version: 2.20.2
      sourceRef:
        kind: HelmRepository
        name: kedacore
        namespace: flux-system
  upgrade:
    remediation:
      retries: 3
""",
    "ingressroute.yaml": """\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata:
  name: slm-llamacpp
  namespace: slm
  labels:
    app.kubernetes.io/name: slm-llamacpp
spec:
  entryPoints: [web]
  routes:
    - kind: Rule
      match: Host(`llm.lab.edgeslm.internal`) && PathPrefix(`/v1`)
      middlewares:
        - name: slm-prefix
      services:
        - name: slm-llamacpp
          kind: TraefikService
""",
    "middleware.yaml": """\
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata:
  name: slm-prefix
  namespace: slm
spec:
  addPrefix:
    prefix: /v1
""",
    "scaledobject.yaml": """\
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: slm-llamacpp
  namespace: slm
spec:
  scaleTargetRef:
    apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    name: slm-llamacpp
  minReplicaCount: 1
  maxReplicaCount: 2
  triggers:
    - type: cpu
      metricType: Utilization
      metadata:
        value: "80"
""",
    # sops --encrypt output (age); the recipient's key is not needed to check the shape
    "secret.enc.yaml": f"""\
apiVersion: v1
kind: Secret
metadata:
    name: minio-root
    namespace: minio
type: Opaque
stringData:
    rootUser: {ENC_USER}
    rootPassword: {ENC_PASSWORD}
sops:
    age:
        - recipient: age1ngq55cvp3mn7r438jskf0x5cafr63crca3e2l9g8hslm9r768y7qmrdkww
          enc: |
            -----BEGIN AGE ENCRYPTED FILE-----
            YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSA4VUZaRExlbHJySEQwK1Rl
            -----END AGE ENCRYPTED FILE-----
    lastmodified: "2026-11-23T08:00:00Z"
    mac: {ENC_MAC}
    encrypted_regex: ^(data|stringData)$
    version: 3.10.2
""",
}


@dataclass(frozen=True)
class Defect:
    id: str
    file: str
    old: str
    new: str
    needle: str


DEFECTS = [
    # unknown fields, at every level
    Defect(
        "crd-top-level-key",
        "helmrelease.yaml",
        "spec:\n  interval",
        "specs:\n  interval",
        "specs: 'specs' was unexpected: an unknown field",
    ),
    Defect(
        "crd-nested-key",
        "ingressroute.yaml",
        "  entryPoints: [web]",
        "  entrypoints: [web]",
        "spec.entrypoints: 'entrypoints' was unexpected",
    ),
    Defect(
        "crd-deep-key",
        "helmrelease.yaml",
        "      retries: 3",
        "      retry: 3",
        "spec.upgrade.remediation.retry: 'retry' was unexpected",
    ),
    Defect(
        "crd-list-item-key",
        "ingressroute.yaml",
        "          kind: TraefikService",
        "          knd: TraefikService",
        "spec.routes[0].services[0].knd: 'knd' was unexpected",
    ),
    Defect(
        "crd-metadata-key",
        "middleware.yaml",
        "  namespace: slm\n",
        "  namespace: slm\n  lables: {}\n",
        "metadata.lables: 'lables' was unexpected",
    ),
    Defect("crd-metadata-name", "middleware.yaml", "name: slm-prefix", "name: SLM_prefix", "RFC 1123 subdomain"),
    Defect(
        "crd-metadata-label-key",
        "ingressroute.yaml",
        "app.kubernetes.io/name:",
        "app.kubernetes.io/a/name:",
        "label key 'app.kubernetes.io/a/name' is not a qualified name",
    ),
    Defect("crd-wrong-kind-for-version", "middleware.yaml", "kind: Middleware", "kind: MiddleWare", "no schema for"),
    # CEL rules
    Defect("cel-traefik-prefix", "middleware.yaml", "prefix: /v1", "prefix: v1", "CEL: must start with a '/'"),
    Defect(
        "cel-keda-replicas",
        "scaledobject.yaml",
        "minReplicaCount: 1",
        "minReplicaCount: 3",
        "CEL: minReplicaCount must be less than or equal to maxReplicaCount",
    ),
    Defect(
        "cel-helm-chart-and-ref",
        "helmrelease.yaml",
        "  chart:\n",
        "  chartRef:\n    kind: OCIRepository\n    name: keda\n  chart:\n",
        "CEL: either chart or chartRef must be set",
    ),
    # an encrypted Secret, checked as Flux will apply it
    Defect(
        "sops-secret-type-keys",
        "secret.enc.yaml",
        "type: Opaque",
        "type: kubernetes.io/tls",
        "needs the key tls.crt",
    ),
    Defect("sops-secret-key-syntax", "secret.enc.yaml", "    rootUser: ENC", "    root user: ENC", "a key consists of"),
    Defect(
        "sops-secret-value-type",
        "secret.enc.yaml",
        "tag:7bY1MkT0OHLDI6PKwbDGbQ==,type:str]",
        "tag:7bY1MkT0OHLDI6PKwbDGbQ==,type:int]",
        "0 is not of type 'string'",
    ),
    Defect(
        "sops-secret-malformed-value",
        "secret.enc.yaml",
        "    rootUser: ENC[AES256_GCM,data:",
        "    rootUser: ENC[AES256_GCM,dta:",
        "malformed SOPS value",
    ),
    Defect("sops-secret-unknown-field", "secret.enc.yaml", "stringData:", "strinData:", "'strinData' was unexpected"),
    Defect(
        "sops-block-on-other-kind",
        "middleware.yaml",
        "spec:\n",
        "sops:\n  version: 3.10.2\nspec:\n",
        "'sops' was unexpected",
    ),
]

RunManifests = Callable[[Path], SiteResult]


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    for name, text in MANIFESTS.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


@pytest.fixture
def run_manifests(validators: Validators) -> RunManifests:
    def run(folder: Path) -> SiteResult:
        files = tuple(sorted(folder.glob("*.yaml")))
        return validate([Target("manifests", paths=files)], validators, Renderer(), 1)[0]

    return run


def _schema_problems(result: SiteResult) -> list[str]:
    return [problem.render() for problem in result.problems if problem.check == "schema"]


def test_baseline_is_clean(manifests: Path, run_manifests: RunManifests) -> None:
    result = run_manifests(manifests)
    assert len(result.objects) == len(MANIFESTS)
    assert _schema_problems(result) == []


@pytest.mark.parametrize("defect", DEFECTS, ids=[d.id for d in DEFECTS])
def test_seeded_defect_is_caught(
    defect: Defect, manifests: Path, run_manifests: RunManifests, edit: Callable[[Path, str, str], None]
) -> None:
    edit(manifests / defect.file, defect.old, defect.new)
    found = _schema_problems(run_manifests(manifests))
    assert any(defect.needle in line for line in found), "\n".join(found) or "no schema problem reported"


def test_a_large_encrypted_secret_is_refused(manifests: Path, run_manifests: RunManifests) -> None:
    # 1.5 MiB of ciphertext: the decrypted Secret exceeds the API server's 1 MiB limit
    data = "A" * (2 * 1024 * 1024)
    path = manifests / "secret.enc.yaml"
    text = path.read_text(encoding="utf-8").replace("data:JMmFVs7xhaM9qyb1UA==", f"data:{data}", 1)
    path.write_text(text, encoding="utf-8")
    found = _schema_problems(run_manifests(manifests))
    assert any("a Secret holds at most 1048576" in line for line in found), found


def _secret(**fields: object) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"}, **fields}


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        (_secret(data={"a": "not base64!"}), "is not base64"),
        (_secret(type="kubernetes.io/basic-auth", stringData={"user": "x"}), "needs the key username or password"),
        (_secret(type="kubernetes.io/service-account-token"), "needs this annotation"),
        (_secret(type="kubernetes.io/dockerconfigjson", data={}), "needs the key .dockerconfigjson"),
        (_secret(stringData={"..x": "y"}), "must not start with '..'"),
        (_secret(stringData={"k": "ENC[AES256_GCM,data:!!,iv:AA==,tag:AA==,type:str]"}, sops={}), "malformed"),
        (_secret(stringData={"k": "v"}, sops="x"), "Flux cannot decrypt"),
    ],
)
def test_secret_rules(doc: dict[str, object], needle: str) -> None:
    problems = as_applied(doc)[1]
    assert any(needle in message for _where, message in problems), problems


@pytest.mark.parametrize(
    "doc",
    [
        _secret(data={"a": "aGVs\nbG8="}),  # base64 split over lines, as Go's decoder accepts it
        _secret(type="kubernetes.io/basic-auth", stringData={"password": ""}),
        _secret(type="kubernetes.io/tls", data={"tls.crt": "", "tls.key": ""}),
        _secret(stringData={"k": ENC_USER}, sops={"mac": "x"}),
    ],
)
def test_secret_rules_accept(doc: dict[str, object]) -> None:
    applied, problems = as_applied(doc)
    assert problems == []
    assert "sops" not in applied


def test_decrypted_shape_keeps_keys_and_types() -> None:
    doc = _secret(type="Opaque", stringData={"a": ENC_USER}, data={"b": ENC_USER.replace("type:str", "type:int")})
    applied, problems = as_applied({**doc, "sops": {"mac": "x"}})
    assert problems == []
    assert applied == {**doc, "stringData": {"a": ""}, "data": {"b": 0}}
