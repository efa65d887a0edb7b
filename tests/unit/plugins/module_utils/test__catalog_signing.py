# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""spec.modelSigning.trustedKeys: the site's model signers, declared once in its catalog."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ansible_collections.edgeslm.pi5.plugins.module_utils import _catalog, _signature
from ansible_collections.edgeslm.pi5.plugins.module_utils._catalog import CatalogError, load_catalog

REPO = Path(__file__).resolve().parents[4]


def _public_key(tmp_path: Path, name: str, algorithm: list[str]) -> str:
    private = tmp_path / f"{name}.pem"
    subprocess.run(["openssl", *algorithm, "-out", str(private)], check=True, capture_output=True)
    return subprocess.run(
        ["openssl", "pkey", "-in", str(private), "-pubout"], check=True, capture_output=True, text=True
    ).stdout


EC_P256 = ["ecparam", "-name", "prime256v1", "-genkey", "-noout"]


def _lab(keys: list[dict[str, str]] | None) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((REPO / "gitops" / "sites" / "lab" / "site.yaml").read_text())
    if keys is not None:
        doc["spec"]["modelSigning"] = {"trustedKeys": keys}
    return doc


def test_trusted_keys_are_loaded_and_handed_to_the_nodes(tmp_path: Path) -> None:
    first, second = _public_key(tmp_path, "a", EC_P256), _public_key(tmp_path, "b", EC_P256)
    catalog = load_catalog(_lab([{"name": "ci", "publicKey": first}, {"name": "backup", "publicKey": second}]))
    assert [k.label for k in catalog.trusted_keys] == ["ci", "backup"]
    assert catalog.trusted_keys[0] == _signature.load_trusted_key(first, "ci")
    staged = catalog.models_to_stage("pi5-lab-agent-1")
    assert staged and all(m["trusted_keys"] == [k.pem for k in catalog.trusted_keys] for m in staged)
    jsonschema.Draft202012Validator(_catalog.catalog_json_schema()).validate(_lab([{"name": "ci", "publicKey": first}]))


def test_a_site_without_signers_hands_no_keys() -> None:
    catalog = load_catalog(_lab(None))
    assert catalog.trusted_keys == ()
    assert all(m["trusted_keys"] == [] for m in catalog.models_to_stage("pi5-lab-agent-1"))


def _problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(CatalogError) as info:
        load_catalog(doc)
    return info.value.problems


def test_a_key_model_signing_cannot_use_is_refused(tmp_path: Path) -> None:
    ed25519 = _public_key(tmp_path, "ed", ["genpkey", "-algorithm", "ed25519"])
    problems = _problems(_lab([{"name": "edwards", "publicKey": ed25519}]))
    assert any(
        p.startswith("spec.modelSigning.trustedKeys[edwards].publicKey: edwards: not an EC public key")
        for p in problems
    ), problems


def test_not_a_pem_public_key_is_refused(tmp_path: Path) -> None:
    problems = _problems(_lab([{"name": "ci", "publicKey": "ssh-ed25519 AAAAC3Nza..."}]))
    assert any(
        p.startswith("spec.modelSigning.trustedKeys[ci].publicKey: must be a string matching")
        and "openssl pkey -in signing-key.pem -pubout" in p
        for p in problems
    ), problems
    errors = list(jsonschema.Draft202012Validator(_catalog.catalog_json_schema()).iter_errors(_lab(
        [{"name": "ci", "publicKey": "ssh-ed25519 AAAAC3Nza..."}]
    )))  # fmt: skip
    assert errors, "the JSON schema must refuse it too"


def test_duplicate_names_and_keys_are_refused(tmp_path: Path) -> None:
    key = _public_key(tmp_path, "a", EC_P256)
    other = _public_key(tmp_path, "b", EC_P256)
    problems = _problems(_lab([{"name": "ci", "publicKey": key}, {"name": "ci", "publicKey": other}]))
    assert "spec.modelSigning.trustedKeys[ci]: two trusted keys are named ci; names are unique" in problems
    problems = _problems(_lab([{"name": "ci", "publicKey": key}, {"name": "again", "publicKey": key}]))
    assert (
        "spec.modelSigning.trustedKeys[again].publicKey: the same key is already listed as ci; list a key once"
        in problems
    )


def test_an_empty_key_list_is_refused() -> None:
    problems = _problems(_lab([]))
    assert "spec.modelSigning.trustedKeys: needs at least 1 item(s)" in problems
