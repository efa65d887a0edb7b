# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""The kubelet TEST STAND-IN and the Traefik translation of tests/serve, without starting anything."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.edgeslm.pi5.tests.serve import kubelet_standin as ks
from ansible_collections.edgeslm.pi5.tests.serve import traefik_config

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "scripts"))

from gitops_validate import cli, sitegen  # noqa: E402

SHA = "ce37f84dd230fd154c876666bf12e124c78b08b15a33c50957635665544b2b4d"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("rendered")
    assert cli.main(["--no-checkov", "-q", "--site", "lab", "--output", str(out)]) == 0
    return ks.load_objects(out / "lab.yaml")


def _template(objects: list[dict[str, Any]]) -> dict[str, Any]:
    template: dict[str, Any] = json.loads(
        json.dumps(ks.find_pod_template(objects, "Deployment", "slm", "slm-llamacpp"))
    )
    return template


def _runner(
    objects: list[dict[str, Any]], template: dict[str, Any], tmp: Path, node: str = "pi5-lab-server-1"
) -> ks.PodRunner:
    return ks.PodRunner(
        objects,
        template,
        namespace="slm",
        pod_name="unit",
        node=node,
        node_root=tmp / "node",
        state_dir=tmp / "pod",
        host_ports={8080: 18080},
        secrets={"slm/slm-api-key": {"api-keys": b"k"}},
    )


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("$(A)", "a"),
        ("x$(A)y$(B)", "xaybb"),
        ("$$(A)", "$(A)"),
        ("$(UNDEFINED)", "$(UNDEFINED)"),
        ("$(A", "$(A"),
        ("$A and $", "$A and $"),
        ("$$$(A)", "$a"),
    ],
)
def test_expand_as_kubernetes_does(text: str, expanded: str) -> None:
    assert ks.expand(text, {"A": "a", "B": "bb"}) == expanded


def test_env_sees_only_earlier_variables(lab: list[dict[str, Any]], tmp_path: Path) -> None:
    template = _template(lab)
    template["spec"]["containers"][0]["env"] = [
        {"name": "LATER", "value": "$(FIRST)-$(SECOND)"},
        {"name": "FIRST", "value": "1"},
        {"name": "SECOND", "value": "$(FIRST)2"},
    ]
    env = _runner(lab, template, tmp_path)._env(template["spec"]["containers"][0], "c")
    assert env == {"LATER": "$(FIRST)-$(SECOND)", "FIRST": "1", "SECOND": "12"}


def test_plan_of_the_lab_pod(lab: list[dict[str, Any]], tmp_path: Path) -> None:
    (tmp_path / "node/var/lib/edgeslm/models/edgeslm-tiny" / SHA).mkdir(parents=True)
    runner = _runner(lab, _template(lab), tmp_path)
    volumes = runner._volumes()
    plan = runner.plan(runner.spec["containers"][0], "containers[server]", volumes)
    args = runner.run_args(plan, detach=True)
    joined = " ".join(args)
    for expected in (
        "--user 10001:10001",
        "--group-add=10001",
        "--read-only",
        "--cap-drop ALL",
        "--security-opt no-new-privileges",
        f"--memory {512 << 20}",
        "--cpus 1",
        "--publish 127.0.0.1:18080:8080",
        f"node/var/lib/edgeslm/models/edgeslm-tiny/{SHA}:/models:ro",
        ":/etc/edgeslm/api-key:ro",
        f"--tmpfs /tmp:rw,size={64 << 20}",
    ):
        assert expected in joined, expected
    assert plan.argv[plan.argv.index("--api-key-file") + 1] == "/etc/edgeslm/api-key/api-keys"
    assert (volumes["api-key"].host_path / "api-keys").read_bytes() == b"k"
    assert {p.kind for p in plan.probes.values()} == {"startup", "readiness", "liveness"}


def test_a_node_without_the_model_version_cannot_mount_it(lab: list[dict[str, Any]], tmp_path: Path) -> None:
    with pytest.raises(ks.VolumeNotReady, match=f'/var/lib/edgeslm/models/edgeslm-tiny/{SHA}" does not exist'):
        _runner(lab, _template(lab), tmp_path)._volumes()


def test_a_node_the_volume_does_not_admit(lab: list[dict[str, Any]], tmp_path: Path) -> None:
    with pytest.raises(ks.PodSpecError, match="does not admit node pi5-lab-agent-2"):
        _runner(lab, _template(lab), tmp_path, node="pi5-lab-agent-2")._volumes()


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda spec: spec.update(hostNetwork=True), "spec.template.spec.hostNetwork"),
        (lambda spec: spec.update(runtimeClassName="wasmedge-wasinn"), "spec.template.spec.runtimeClassName"),
        (lambda spec: spec["containers"][0].update(envFrom=[]), "containers[server].envFrom"),
        (lambda spec: spec["containers"][0].update(lifecycle={}), "containers[server].lifecycle"),
        (lambda spec: spec["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "volumes[h].hostPath"),
        (lambda spec: spec["containers"][0]["securityContext"].update(privileged=True), "securityContext.privileged"),
    ],
)
def test_unsupported_fields_are_refused_by_name(
    lab: list[dict[str, Any]], tmp_path: Path, edit: Any, field: str
) -> None:
    (tmp_path / "node/var/lib/edgeslm/models/edgeslm-tiny" / SHA).mkdir(parents=True)
    template = _template(lab)
    edit(template["spec"])
    with pytest.raises(ks.UnsupportedField, match=field.replace("[", r"\[").replace("]", r"\]")):
        runner = _runner(lab, template, tmp_path)
        volumes = runner._volumes()
        runner.plan(runner.spec["containers"][0], "containers[server]", volumes)


def test_traefik_config_keeps_route_middleware_and_weights(lab: list[dict[str, Any]]) -> None:
    config = traefik_config.dynamic_config(lab, {"": [18080]})["http"]
    routers = list(config["routers"].values())
    assert len(routers) == 1, routers
    router = routers[0]
    assert router["rule"] == "Host(`llm.lab.edgeslm.internal`) && PathPrefix(`/v1`)"
    assert router["middlewares"] == ["slm-slm-llamacpp-ratelimit"]
    assert config["middlewares"]["slm-slm-llamacpp-ratelimit"]["rateLimit"]["burst"] == 5
    weighted = config["services"][router["service"]]["weighted"]["services"]
    assert {s["name"]: s["weight"] for s in weighted} == {
        "slm-slm-llamacpp-stable-8080": 100,
        "slm-slm-llamacpp-canary-8080": 0,
    }
    assert config["services"]["slm-slm-llamacpp-stable-8080"]["loadBalancer"]["servers"] == [
        {"url": "http://127.0.0.1:18080"}
    ]


def test_model_cache_dir_is_the_roles() -> None:
    defaults = yaml.safe_load((REPO / "roles/model_cache/defaults/main.yml").read_text())
    assert defaults["model_cache_dir"] == sitegen.MODEL_CACHE_DIR
