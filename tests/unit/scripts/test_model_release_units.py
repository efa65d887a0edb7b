# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/model-release parts that need no registry: registry credentials, catalog edits, options."""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

import pytest

from ansible_collections.edgeslm.pi5.scripts.gitops_validate import release
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.release import ReleaseError, registry_auth

HOST = "registry.example:5000"


def _config(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    return path


def test_environment_credentials_win_over_the_docker_config(tmp_path: Path) -> None:
    config = _config(tmp_path, {"auths": {HOST: {"auth": base64.b64encode(b"file:secret").decode()}}})
    env = {release.ENV_USERNAME: "ci", release.ENV_PASSWORD: "token"}
    auth, _note = registry_auth(HOST, env, config)
    assert auth is not None and auth.basic() == ("ci", "token")


def test_half_an_environment_login_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="set both EDGESLM_REGISTRY_USERNAME and EDGESLM_REGISTRY_PASSWORD"):
        registry_auth(HOST, {release.ENV_USERNAME: "ci"}, None)


@pytest.mark.parametrize(
    ("key", "entry", "expected"),
    [
        (HOST, {"auth": base64.b64encode(b"alice:pa:ss").decode()}, ("alice", "pa:ss")),
        (f"https://{HOST}/v1/", {"username": "bob", "password": "pw"}, ("bob", "pw")),
        (f"http://{HOST}", {"identitytoken": "refresh-me"}, None),
    ],
)
def test_docker_config_entries(tmp_path: Path, key: str, entry: dict[str, str], expected: object) -> None:
    config = _config(tmp_path, {"auths": {key: entry, "other.example": {"auth": "eDp5"}}})
    auth, note = registry_auth(HOST, {}, config)
    assert note is None and auth is not None
    if expected is None:
        assert auth.identity_token == "refresh-me" and auth.basic() is None
    else:
        assert auth.basic() == expected


def test_docker_config_found_through_DOCKER_CONFIG(tmp_path: Path) -> None:
    _config(tmp_path, {"auths": {HOST: {"auth": base64.b64encode(b"u:p").decode()}}})
    auth, _note = registry_auth(HOST, {"DOCKER_CONFIG": str(tmp_path)}, None)
    assert auth is not None and auth.basic() == ("u", "p")


def test_credential_helpers_are_named_not_run(tmp_path: Path) -> None:
    config = _config(tmp_path, {"auths": {HOST: {}}, "credHelpers": {HOST: "ecr-login"}})
    auth, note = registry_auth(HOST, {}, config)
    assert auth is None
    assert note is not None and "docker-credential-ecr-login" in note and release.ENV_USERNAME in note


def test_bad_docker_config_auth_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, {"auths": {HOST: {"auth": base64.b64encode(b"no-colon").decode()}}})
    with pytest.raises(ReleaseError, match=r"auths\[registry.example:5000\].auth is not base64 of user:password"):
        registry_auth(HOST, {}, config)


def test_missing_explicit_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match=r"--registry-config .*: no such file"):
        registry_auth(HOST, {}, tmp_path / "absent.json")


def test_no_credentials_anywhere(tmp_path: Path) -> None:
    assert registry_auth(HOST, {"HOME": str(tmp_path)}, None) == (None, None)


SITE = """\
---
spec:
  models:
    - name: m
      # about the file
      file: old.gguf
      source: https://example.invalid/old.gguf  # where it was
      # provenance of the old file
      origin: made by hand
      sha256: aa
      # the runtime serves it
      runtime: llamacpp
      description:
        blockCount: 2
        architecture: llama
        # the next model follows
    - name: other
"""


def test_stale_comments_go_and_the_others_stay() -> None:
    doc = release._yaml().load(SITE)
    entry = doc["spec"]["models"][0]
    release._drop_stale_comments(entry)
    entry.pop("origin")
    release._replace_description(entry, {"architecture": "qwen2", "blockCount": 4, "vocabSize": 10})
    text = release._dump(doc)
    # Comments above or beside a rewritten key were about the old file; the others stay where they were.
    assert "about the file" not in text and "where it was" not in text and "provenance of the old file" not in text
    assert "      sha256: aa\n      # the runtime serves it\n      runtime: llamacpp\n" in text
    assert "        vocabSize: 10\n        # the next model follows\n    - name: other\n" in text
    # The description keeps its key order; keys new to it come after.
    assert list(entry["description"]) == ["blockCount", "architecture", "vocabSize"]


def test_round_trip_keeps_every_template_site_byte_for_byte() -> None:
    for path in sorted((release.DEFAULT_ROOT / "sites").glob("*/site.yaml")):
        text = path.read_text(encoding="utf-8")
        assert release._dump(release._yaml().load(text)) == text, f"{path} would be rewritten"


def test_options_are_checked_before_anything_runs(tmp_path: Path) -> None:
    args = release.parse_args(
        [str(tmp_path / "m.gguf"), "--registry", HOST, "--repository", "Models/Bad", "--tag", "v1",
         "--key", "k.pem", "--site", "lab"]
    )  # fmt: skip
    with pytest.raises(release.UsageError, match="repository 'Models/Bad' must be lower-case"):
        release.release(args)
    args = argparse.Namespace(**{**vars(args), "repository": "models/ok", "tag": "-bad"})
    with pytest.raises(release.UsageError, match="--tag '-bad' is not an OCI tag"):
        release.release(args)
