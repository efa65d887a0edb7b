"""Verify edgeslm.pi5.gitops_bootstrap: the bootstrap is files in k3s's auto-deploy directory.

Custom resources are checked against the project's strict CRD schemas in
scripts/gitops_validate/schemas/crds (override with EDGESLM_SCHEMAS_DIR), built-in kinds with
kubernetes-validate.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from edgeslm_verify import local_fact

from ansible_collections.edgeslm.pi5.plugins.module_utils import _gitops
from ansible_collections.edgeslm.pi5.scripts.gitops_validate import K3S_KUBERNETES_MINOR

FACT = "/etc/ansible/facts.d/edgeslm_gitops_bootstrap.fact"
MANIFESTS = "/var/lib/rancher/k3s/server/manifests"
KUBERNETES_VERSION = K3S_KUBERNETES_MINOR
REPO_ROOT = Path(__file__).resolve().parents[3]
SCHEMAS = Path(os.environ.get("EDGESLM_SCHEMAS_DIR", REPO_ROOT / "scripts" / "gitops_validate" / "schemas" / "crds"))
CRD_SCHEMAS = {
    ("source.toolkit.fluxcd.io/v1", "GitRepository"): "source.toolkit.fluxcd.io/gitrepository_v1.json",
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"): "kustomize.toolkit.fluxcd.io/kustomization_v1.json",
    ("argoproj.io/v1alpha1", "Application"): "argoproj.io/application_v1alpha1.json",
}


def _fact(host: Any) -> dict[str, Any]:
    data: dict[str, Any] = local_fact(host, "gitops_bootstrap", mode=None)
    return data


def _docs(host: Any, path: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(host.file(path).content_string) if d]


def _validate(doc: dict[str, Any]) -> None:
    key = (doc["apiVersion"], doc["kind"])
    if key in CRD_SCHEMAS:
        schema_file = SCHEMAS / CRD_SCHEMAS[key]
        if not schema_file.exists():
            pytest.fail(f"CRD schema {schema_file} missing: run scripts/gen-crd-schemas or set EDGESLM_SCHEMAS_DIR")
        schema = json.loads(schema_file.read_text())
        jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def _placed(host: Any) -> dict[str, Any]:
    fact = _fact(host)
    if not fact["placed_here"]:
        pytest.skip("the bootstrap is placed on the first server only")
    return fact


def test_fact_names_the_bootstrap_target(host: Any) -> None:
    fact = _fact(host)
    assert host.file(FACT).mode == 0o644
    assert fact["site"]
    if fact["placed_here"]:
        assert fact["skipped"] == ""
        assert fact["sync_manifest"] == f"{MANIFESTS}/edgeslm-gitops-20-sync.yaml"
    else:
        assert fact["skipped"] == f"bootstrap manifests are placed on the first server, {fact['first_server']}"
        assert fact["sync_manifest"] == ""


def test_nothing_is_placed_on_other_hosts(host: Any) -> None:
    if _fact(host)["placed_here"]:
        pytest.skip("this host is the first server")
    directory = host.file(MANIFESTS)
    if directory.exists:
        assert not [name for name in directory.listdir() if name.startswith("edgeslm-gitops-")]


def test_every_placed_file_is_root_only(host: Any) -> None:
    _placed(host)
    names = [name for name in host.file(MANIFESTS).listdir() if name.startswith("edgeslm-gitops-")]
    assert names
    for name in names:
        placed = host.file(f"{MANIFESTS}/{name}")
        assert placed.user == "root" and placed.mode == 0o600, name


def test_controller_install_manifest_is_the_pinned_release(host: Any) -> None:
    fact = _placed(host)
    install = fact["controller_install"]
    assert install["enabled"]
    text = host.file(install["manifest"]).content_string
    if fact["controller"] == "flux":
        assert hashlib.sha256(text.encode()).hexdigest() == install["sha256"]
    else:
        header = text.splitlines()[:2]
        assert f"source sha256 {install['sha256']}" in header[1]


def test_argocd_objects_land_in_the_argocd_namespace(host: Any) -> None:
    fact = _placed(host)
    if fact["controller"] != "argocd":
        pytest.skip("Flux's install.yaml carries its own namespaces")
    docs = _docs(host, fact["controller_install"]["manifest"])
    assert docs[0]["kind"] == "Namespace" and docs[0]["metadata"]["name"] == "argocd"
    cluster_scoped = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
    for doc in docs:
        if doc["kind"] in cluster_scoped:
            assert "namespace" not in doc["metadata"], doc["metadata"]["name"]
        else:
            assert doc["metadata"]["namespace"] == "argocd", doc["metadata"]["name"]
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_sync_objects_are_schema_valid_and_point_at_the_site(host: Any) -> None:
    fact = _placed(host)
    docs = _docs(host, fact["sync_manifest"])
    for doc in docs:
        _validate(doc)
    repo = fact["repository"]
    if fact["controller"] == "flux":
        source, kustomization = docs
        assert (source["kind"], kustomization["kind"]) == ("GitRepository", "Kustomization")
        assert source["metadata"] == kustomization["metadata"] | {"name": "flux-system"}
        assert source["spec"]["url"] == repo["url"]
        assert source["spec"]["ref"] == {"branch": repo["branch"]}
        assert kustomization["spec"]["path"] == f"{repo['root']}/platform/flux"
        assert kustomization["spec"]["postBuild"]["substitute"]["SITE"] == fact["site"]
        assert kustomization["spec"]["sourceRef"] == {"kind": "GitRepository", "name": "flux-system"}
        assert kustomization["spec"]["prune"] is True and kustomization["spec"]["wait"] is True
    else:
        (app,) = docs
        assert app["kind"] == "Application" and app["metadata"]["namespace"] == "argocd"
        assert [s["path"] for s in app["spec"]["sources"]] == [
            f"{repo['root']}/platform/configs",
            f"{repo['root']}/sites/{fact['site']}/apps",
        ]
        assert {s["repoURL"] for s in app["spec"]["sources"]} == {repo["url"]}
        assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    # Exactly the objects the collection's core builds (the ones scripts/validate-gitops starts from).
    expected = _gitops.handoff(
        fact["controller"],
        site=fact["site"],
        repo_url=repo["url"],
        branch=repo["branch"],
        gitops_root=repo["root"],
        git_credentials="flux-system/flux-system" in fact["secrets"]["names"],
        verify_commits=any(name.endswith("/flux-git-signers") for name in fact["secrets"]["names"]),
    )
    assert docs == expected


def test_secrets_are_valid_and_referenced(host: Any) -> None:
    fact = _placed(host)
    names = fact["secrets"]["names"]
    if not names:
        pytest.skip("no credentials configured")
    secrets = _docs(host, fact["secrets"]["manifest"])
    assert sorted(f"{s['metadata']['namespace']}/{s['metadata']['name']}" for s in secrets) == sorted(names)
    for secret in secrets:
        kubernetes_validate.validate(secret, KUBERNETES_VERSION, strict=True)
        assert all(value for value in secret["stringData"].values())
    sync = _docs(host, fact["sync_manifest"])
    if fact["controller"] == "flux":
        by_name = {s["metadata"]["name"]: s for s in secrets}
        assert sync[0]["spec"]["secretRef"] == {"name": "flux-system"}
        assert set(by_name["flux-system"]["stringData"]) in ({"username", "password"}, {"identity", "known_hosts"})
        if "flux-git-signers" in by_name:
            assert sync[0]["spec"]["verify"] == {"mode": "HEAD", "secretRef": {"name": "flux-git-signers"}}
            assert all(key.endswith(".asc") for key in by_name["flux-git-signers"]["stringData"])
        else:
            assert "verify" not in sync[0]["spec"]
        if "sops-age" in by_name:
            # Flux's own Kustomizations in platform/flux decrypt with it; the hand-off does not.
            assert "decryption" not in sync[1]["spec"]
            assert by_name["sops-age"]["stringData"]["age.agekey"].startswith("AGE-SECRET-KEY-1")
    else:
        (secret,) = secrets
        assert secret["metadata"]["labels"]["argocd.argoproj.io/secret-type"] == "repository"
        assert secret["stringData"]["url"] == fact["repository"]["url"]


def test_fact_carries_no_secret_values(host: Any) -> None:
    text = host.file(FACT).content_string
    assert "AGE-SECRET-KEY" not in text
    assert "PRIVATE KEY" not in text
    assert "password" not in text.lower() or '"password"' not in text
