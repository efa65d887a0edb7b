# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The site catalog core: loading, refusals naming the field, and every derived value."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ansible_collections.edgeslm.pi5.plugins.module_utils import _catalog, _serving
from ansible_collections.edgeslm.pi5.plugins.module_utils._catalog import CatalogError, load_catalog

REPO = Path(__file__).resolve().parents[4]
SITES = REPO / "gitops" / "sites"
SCHEMA_FILE = REPO / "gitops" / "schemas" / "site-catalog.schema.json"


def _doc(site: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((SITES / site / "site.yaml").read_text(encoding="utf-8"))
    return loaded


def _problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(CatalogError) as info:
        load_catalog(doc)
    return info.value.problems


@pytest.mark.parametrize("site", sorted(p.parent.name for p in SITES.glob("*/site.yaml")))
def test_template_sites_load(site: str) -> None:
    catalog = load_catalog(_doc(site))
    assert catalog.name == site
    assert catalog.hosts()
    assert set(catalog.servers) <= set(catalog.hosts())


def test_committed_schema_is_generated_from_the_core() -> None:
    committed = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert committed == _catalog.catalog_json_schema(), "run scripts/gen-catalog-schema"


@pytest.mark.parametrize("site", sorted(p.parent.name for p in SITES.glob("*/site.yaml")))
def test_schema_accepts_what_the_core_accepts(site: str) -> None:
    jsonschema.Draft202012Validator(_catalog.catalog_json_schema()).validate(_doc(site))


def test_schema_and_core_refuse_an_unknown_key() -> None:
    doc = _doc("lab")
    doc["spec"]["nodeClasses"][0]["ramGb"] = 8
    assert any("spec.nodeClasses[pi5-8gb-amd64].ramGb: unknown key" in p for p in _problems(doc))
    errors = list(jsonschema.Draft202012Validator(_catalog.catalog_json_schema()).iter_errors(doc))
    assert errors


def test_serving_keys_have_one_definition() -> None:
    schema = _catalog.catalog_json_schema()
    serving = schema["properties"]["spec"]["properties"]["models"]["items"]["properties"]["serving"]
    assert set(serving["properties"]) == set(_serving.CATALOG_FIELDS)


BAD_CASES: list[tuple[str, Any, str]] = [
    ("missing domain", lambda d: d["spec"].pop("domain"), "spec.domain: is required"),
    (
        "host in two classes",
        lambda d: d["spec"]["nodeClasses"][1]["hosts"].append("pi5-lab-agent-1"),
        "pi5-lab-agent-1 is already in node class pi5-8gb-amd64",
    ),
    (
        "server not a host",
        lambda d: d["spec"]["cluster"]["servers"].__setitem__(0, "ghost"),
        "spec.cluster.servers[0]: ghost is not a host of any node class",
    ),
    (
        "even servers",
        lambda d: d["spec"]["cluster"].update(servers=["pi5-lab-server-1", "pi5-lab-agent-1"], apiEndpoint="k3s.lab"),
        "use an odd number or set allowEvenServers: true",
    ),
    (
        "two servers without an endpoint",
        lambda d: d["spec"]["cluster"].update(servers=["pi5-lab-server-1", "pi5-lab-agent-1"], allowEvenServers=True),
        "spec.cluster.apiEndpoint: required with more than one server",
    ),
    (
        "AI HAT+ and NVMe without a switch",
        lambda d: d["spec"]["nodeClasses"][1].update(npu="hailo-10h", nvme=True),
        "set pcieSwitch: true or drop one",
    ),
    (
        "amd64 that is not virtual",
        lambda d: d["spec"]["nodeClasses"][0].pop("virtual"),
        "amd64 is for virtual lab nodes only",
    ),
    (
        "GGUF on the NPU runtime",
        lambda d: d["spec"]["models"][0].update(runtime="hailo", target="hailo-10h"),
        "runtime hailo serves HEF files",
    ),
    (
        "LLM on a Hailo-8",
        lambda d: d["spec"]["models"][0].update(runtime="hailo", target="hailo-8", file="m.hef"),
        "hailo-8 runs no LLMs",
    ),
    (
        "no class can serve the model",
        lambda d: d["spec"]["models"][0].update(target="pi5-16gb"),
        "no node class can serve it: the site needs a node class with target pi5-16gb",
    ),
    (
        "LlamaEdge without a Wasm class",
        lambda d: d["spec"]["models"][0].update(runtime="llamaedge", promptTemplate="chatml"),
        "the site needs a node class with wasm: true and target pi5-8gb",
    ),
    (
        "LlamaEdge without a chat template",
        lambda d: d["spec"]["models"][0].update(runtime="llamaedge"),
        "spec.models[edgeslm-tiny].promptTemplate: LlamaEdge needs the model's chat template",
    ),
    (
        "unknown restricting class",
        lambda d: d["spec"]["models"][0].update(nodeClasses=["nope"]),
        "spec.models[edgeslm-tiny].nodeClasses: nope is not a node class",
    ),
    (
        "duplicate model",
        lambda d: d["spec"]["models"].append(copy.deepcopy(d["spec"]["models"][0])),
        "two models are named edgeslm-tiny",
    ),
    ("bad sha256", lambda d: d["spec"]["models"][0].update(sha256="abc"), "spec.models[edgeslm-tiny].sha256: must be"),
    (
        "bad serving value",
        lambda d: d["spec"]["models"][0]["serving"].update(parallel=0),
        "spec.models[edgeslm-tiny].serving.parallel",
    ),
    ("bad taint", lambda d: d["spec"]["nodeClasses"][0].update(taints=["oops"]), "taints[0]: must be a string"),
]


@pytest.mark.parametrize(("case", "mutate", "expected"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_refusals_name_the_field_and_the_fix(case: str, mutate: Any, expected: str) -> None:
    doc = _doc("lab")
    mutate(doc)
    problems = _problems(doc)
    assert any(expected in problem for problem in problems), problems


def test_every_problem_is_reported_at_once() -> None:
    doc = _doc("lab")
    doc["spec"].pop("domain")
    doc["spec"]["models"][0]["sha256"] = "abc"
    assert len(_problems(doc)) >= 2


def test_unknown_host_is_refused_with_the_catalog_hosts() -> None:
    catalog = load_catalog(_doc("lab"))
    with pytest.raises(CatalogError) as info:
        catalog.node("pi5-lab-agent-9")
    assert "pi5-lab-agent-9" in str(info.value) and "pi5-lab-server-1" in str(info.value)


def test_labels_and_taints_of_each_class_kind() -> None:
    factory = load_catalog(_doc("factory-line1"))
    npu = factory.node("line1-npu-1")
    assert npu.labels[_catalog.LABELS["npu"]] == "hailo10h"
    assert npu.labels[_catalog.LABELS["ram"]] == "16"
    assert npu.labels[_catalog.LABELS["nvme"]] == "true"
    assert npu.labels[_catalog.LABELS["page_size"]] == "4k"
    assert npu.taints == ("edgeslm.io/npu=hailo10h:PreferNoSchedule",)
    store = load_catalog(_doc("store-berlin")).node("store-berlin-pi-1")
    assert store.labels[_catalog.LABELS["wasinn"]] == "true"
    assert store.labels[_catalog.LABELS["wasm"]] == "wasmedge"
    doc = _doc("lab")
    doc["spec"]["nodeClasses"][1]["pageSize"] = "16k"
    sixteen = load_catalog(doc).node("pi5-lab-agent-2")
    assert "edgeslm.io/page-size=16k:NoSchedule" in sixteen.taints
    assert load_catalog(_doc("lab")).node("pi5-lab-agent-2").taints == ()


def test_k3s_roles_follow_the_servers_list() -> None:
    factory = load_catalog(_doc("factory-line1"))
    assert [n.k3s_role for n in factory.nodes() if n.host.startswith("line1-cp-")] == ["server"] * 3
    assert factory.node("line1-cp-1").server_index == 0
    assert factory.node("line1-cpu-1").k3s_role == "agent"


def test_runtime_rules_place_models() -> None:
    factory = load_catalog(_doc("factory-line1"))
    # the HEF goes to the NPU class only; the GGUF fallback only where the catalog restricts it.
    assert [m["name"] for m in factory.models_to_stage("line1-npu-1")] == ["qwen25-15b-instruct-hef"]
    assert [m["name"] for m in factory.models_to_stage("line1-cpu-1")] == ["qwen25-05b-instruct"]
    assert factory.models_to_stage("line1-cp-1") == []
    hef = factory.models_to_stage("line1-npu-1")[0]
    assert hef["fit_target"] == "hailo-10h" and hef["format"] == "hef"
    gguf = factory.models_to_stage("line1-cpu-1")[0]
    assert gguf["fit_target"] == "pi5-16gb" and gguf["memory_runtime"] == "llama.cpp"
    store = load_catalog(_doc("store-berlin"))
    assert store.models_to_stage("store-berlin-pi-2")[0]["memory_runtime"] == "llamaedge"


def test_node_as_dict_is_plain_data() -> None:
    node = load_catalog(_doc("lab")).node("pi5-lab-agent-2").as_dict()
    assert json.loads(json.dumps(node)) == node
    assert node["arch"] == "arm64" and node["k3s_role"] == "agent" and node["npu"] == "none"
    assert "edgeslm.io/node-class=pi5-8gb-arm64" in node["label_list"]


def test_description_from_gguf_maps_every_core_key() -> None:
    core = {core_key: 1 for core_key, _doc in _catalog.DESCRIPTION_KEYS.values()}
    catalog_keys = _catalog.description_from_gguf(core)
    assert set(catalog_keys) == set(_catalog.DESCRIPTION_KEYS)
