"""Verify edgeslm.pi5.model_cache on a node: the verified model is current, the previous one is
kept for rollback, older ones are gone, refused models left nothing behind, and the idempotent
re-run hashed nothing (the verification cache).

Runs on real boards (molecule/hw) too: the molecule-only expectations (which test models were
staged and refused) skip themselves where the test catalog's models are absent.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from edgeslm_verify import is_container, local_fact

FACT = "/etc/ansible/facts.d/edgeslm_model_cache.fact"
# Refused model -> whether it got as far as a download (then its directory exists, emptied).
REFUSED = {"refused-misfit": True, "refused-checksum": True, "refused-space": False, "refused-input": False}


def _fact(host: Any) -> dict[str, Any]:
    data: dict[str, Any] = local_fact(host, "model_cache", mode=None)
    return data


def _models(host: Any) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in _fact(host)["models"]}


def _molecule(host: Any) -> bool:
    """The molecule node (a container) with the test catalog; real boards have the site's own models."""
    return is_container(host) and _fact(host)["node_class"] == "pi5-8gb-amd64"


def test_fact_lists_each_model_with_digest_and_verification_time(host: Any) -> None:
    assert host.file(FACT).mode == 0o644
    for model in _fact(host)["models"]:
        assert re.fullmatch(r"[0-9a-f]{64}", model["sha256"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", model["verified_at"])
        assert model["fits"] is True
        assert 0 < model["needed_bytes"] <= model["available_bytes"]


def test_current_points_at_the_verified_file(host: Any) -> None:
    for model in _fact(host)["models"]:
        current = host.file(model["path"])
        assert current.exists and current.is_file
        assert host.file(model["path"]).sha256sum == model["sha256"]
        link = host.file(model["path"].rsplit("/", 2)[0] + "/current")
        assert link.is_symlink and link.linked_to.endswith("/" + model["sha256"])
        assert host.file(model["version_dir"] + "/" + model["file"]).mode == 0o644


def test_no_temporary_download_is_left(host: Any) -> None:
    root = _fact(host)["dir"]
    leftovers = host.run(f"find {root} -name '*.partial' -print").stdout.split()
    assert leftovers == []


def test_unchanged_model_was_hashed_once(host: Any) -> None:
    # The first staging hashes the download once; the idempotent re-run reads the verification
    # cache (xattr or sidecar) kept across the atomic rename, and must not hash again.
    for model in _fact(host)["models"]:
        if _molecule(host):
            assert model["hashes"] == 1, model
        else:
            assert model["hashes"] >= 1, model


def test_catalog_selection_by_node_class(host: Any) -> None:
    fact = _fact(host)
    if not _molecule(host):
        pytest.skip("checks the molecule test catalog's selection")
    models = _models(host)
    assert fact["node_class"] == "pi5-8gb-amd64"
    assert set(models) == {"edgeslm-tiny"}
    assert not host.file(fact["dir"] + "/other-class-model").exists


def test_previous_version_kept_and_older_pruned(host: Any) -> None:
    models = _models(host)
    if not _molecule(host):
        pytest.skip("checks the versions the molecule prepare staged")
    model = models["edgeslm-tiny"]
    home = model["path"].rsplit("/", 2)[0]
    previous = host.file(home + "/previous")
    assert previous.is_symlink
    assert previous.linked_to.endswith("/" + model["previous"])
    assert host.file(f"{home}/{model['previous']}").is_directory
    versions = sorted(host.run(f"find {home} -mindepth 1 -maxdepth 1 -type d -printf '%f\\n'").stdout.split())
    assert versions == sorted([model["sha256"], model["previous"]])
    assert model["kept_versions"] == [model["sha256"], model["previous"]]
    assert model["quantization"] == "Q4_0"


@pytest.mark.parametrize(("name", "downloaded"), sorted(REFUSED.items()))
def test_refused_models_left_nothing(host: Any, name: str, downloaded: bool) -> None:
    if not _molecule(host):
        pytest.skip("checks the molecule refusal cases")
    home = host.file(_fact(host)["dir"] + "/" + name)
    # Refused before the download (space, input): nothing was created at all.
    assert home.exists == downloaded
    if not downloaded:
        return
    assert not host.file(home.path + "/current").exists
    assert host.run(f"find {home.path} -type f -print").stdout.strip() == ""
    assert name not in _models(host)
