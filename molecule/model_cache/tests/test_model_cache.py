"""Verify edgeslm.pi5.model_cache on a node: the verified model is current, the previous one is
kept for rollback, older ones are gone, refused models left nothing behind, and the idempotent
re-run hashed nothing (the verification cache).

Runs on real boards (molecule/hw) too: the molecule-only expectations (which test models were
staged and refused) skip themselves where the test catalog's models are absent.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
from edgeslm_verify import is_container, local_fact

from ansible_collections.edgeslm.pi5.plugins.module_utils._digest import CACHE_XATTR, sidecar_path

FACT = "/etc/ansible/facts.d/edgeslm_model_cache.fact"
# Every refused model leaves nothing behind: a misfit, a full disk and a bad entry are refused
# before the download, a wrong checksum removes what was fetched (and the empty model folder), an
# airgap copy that does not match is refused on the controller.
REFUSED = ("refused-misfit", "refused-checksum", "refused-airgap", "refused-space", "refused-input")


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
    leftovers = host.run(f"find {root} '(' -name '*.partial' -o -name '.*.incoming' ')' -print").stdout.split()
    assert leftovers == []


def test_verified_at_is_the_cache_records_time_of_the_one_hash(host: Any) -> None:
    # The staging hashed the download while fetching it and recorded the digest (xattr, or the sidecar
    # the digest core names), which the atomic folder rename kept with the file. verified_at is that
    # record's time: a re-run that hashed again would have rewritten it and changed the fact, which the
    # idempotence step refuses.
    for model in _fact(host)["models"]:
        assert model["cache_store"] in ("xattr", "sidecar"), model
        path = model["version_dir"] + "/" + model["file"]
        # Where the record lives is the digest core's business: its xattr name and sidecar path.
        script = (
            "import json, os, sys, time\n"
            "try:\n    raw = os.getxattr(sys.argv[1], sys.argv[2])\n"
            "except OSError:\n    raw = open(sys.argv[3], 'rb').read()\n"
            "r = json.loads(raw)\n"
            "print(r['sha256'], time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(r['verified_at'])))\n"
        )
        command = f"python3 -c {shlex.quote(script)} {path} {CACHE_XATTR} {sidecar_path(path)}"
        sha, verified_at = host.check_output(command).split()
        assert (sha, verified_at) == (model["sha256"], model["verified_at"])


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


@pytest.mark.parametrize("name", REFUSED)
def test_refused_models_left_nothing(host: Any, name: str) -> None:
    if not _molecule(host):
        pytest.skip("checks the molecule refusal cases")
    assert not host.file(_fact(host)["dir"] + "/" + name).exists
    assert name not in _models(host)
