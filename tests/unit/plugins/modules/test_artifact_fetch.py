# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""artifact_fetch as AnsibleModule runs it: results, diff, check mode, failures, signatures."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.edgeslm.pi5.plugins.modules import artifact_fetch
from ansible_collections.edgeslm.pi5.tests.unit.plugins.module_utils.test__signature import bundle, keypair, statement


def run(args: dict[str, Any], capsys: pytest.CaptureFixture[str], **flags: bool) -> dict[str, Any]:
    extra = {f"_ansible_{name}": value for name, value in flags.items()}
    with patch_module_args({**args, **extra}), pytest.raises(SystemExit):
        artifact_fetch.main()
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


@pytest.fixture
def airgap(tmp_path: Path) -> tuple[Path, str]:
    directory = tmp_path / "airgap" / "k3s"
    directory.mkdir(parents=True)
    data = os.urandom(100_000)
    (directory / "k3s-arm64").write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    (directory / "sha256sum-arm64.txt").write_text(f"{sha}  k3s-arm64\n{'0' * 64}  k3s\n")
    return directory, sha


def test_airgap_with_checksum_list_check_diff_and_idempotence(
    airgap: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, sha = airgap
    dest = tmp_path / "bin" / "k3s"
    dest.parent.mkdir()
    args = {
        "dest": str(dest),
        "source": "https://unreachable.invalid/k3s-arm64",
        "checksum_url": "https://unreachable.invalid/sha256sum-arm64.txt",
        "checksum_name": "k3s-arm64",
        "airgap_dir": str(directory),
        "mode": "0755",
    }
    checked = run(args, capsys, check_mode=True, diff=True)
    assert checked["changed"] and not dest.exists()
    assert checked["diff"] == {
        "before": {"path": str(dest), "sha256": "(absent)"},
        "after": {"path": str(dest), "sha256": sha},
    }
    first = run(args, capsys, diff=True)
    assert first["changed"] and first["origin"] == "airgap" and first["sha256"] == sha
    assert dest.stat().st_mode & 0o777 == 0o755
    second = run(args, capsys)
    assert not second["changed"] and second["cached"] and second["origin"] == "present"
    assert not run(args, capsys, check_mode=True)["changed"]


def test_failures_name_the_option(airgap: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory, _sha = airgap
    dest = tmp_path / "k3s"
    result = run({"dest": str(dest), "source": str(directory / "k3s-arm64")}, capsys)
    assert result["failed"] and "needs its digest: give sha256" in result["msg"]
    result = run(
        {
            "dest": str(dest),
            "source": str(directory / "k3s-arm64"),
            "checksum_list": "nope",
            "checksum_name": "k3s-arm64",
        },
        capsys,
    )
    assert result["failed"] and "checksum list line 1" in result["msg"]
    result = run({"dest": str(dest), "source": "oci://registry.example/models/tiny"}, capsys)
    assert result["failed"] and "neither a tag nor a digest" in result["msg"]
    assert not dest.exists()


def test_unreachable_fails_or_degrades(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = {
        "dest": str(tmp_path / "m.gguf"),
        "source": "oci://127.0.0.1:9/models/tiny:v1",
        "timeout": 5,
        "registries": {"mirrors": {"127.0.0.1:9": {"endpoint": ["http://127.0.0.1:10"]}}},
    }
    failed = run(args, capsys)
    assert failed["failed"] and "no registry endpoint reachable" in failed["msg"]
    assert [a["kind"] for a in failed["attempts"]] == ["mirror", "default"]
    degraded = run({**args, "degraded_ok": True}, capsys)
    assert not degraded.get("failed") and degraded["degraded"] and not degraded["changed"]


def test_signature_required_from_the_airgap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    private, public = keypair(keys, "ecparam", "-name", "prime256v1", "-genkey", "-noout")
    (keys / "site.pub").write_text(public)
    directory = tmp_path / "airgap"
    directory.mkdir()
    data = b"model bytes"
    sha = hashlib.sha256(data).hexdigest()
    (directory / "m.gguf").write_bytes(data)
    dest = tmp_path / "models" / "m.gguf"
    dest.parent.mkdir()
    args = {"dest": str(dest), "airgap_dir": str(directory), "sha256": sha, "trusted_keys": [str(keys / "site.pub")]}
    unsigned = run(args, capsys)
    assert unsigned["failed"] and "has no signature" in unsigned["msg"] and not dest.exists()
    (directory / "m.gguf.sig").write_bytes(bundle(private, public, statement(sha)))
    signed = run(args, capsys)
    assert signed["changed"] and signed["signature"]["key"] == str(keys / "site.pub")
    assert Path(signed["signature_path"]).read_bytes() == (directory / "m.gguf.sig").read_bytes()
    again = run({**args, "trusted_keys": [public]}, capsys)  # PEM text works too
    assert not again["changed"] and again["signature"]["key"] == "trusted_keys[0]"


def test_credentials_are_no_log() -> None:
    spec = artifact_fetch.ARGUMENT_SPEC
    assert all(spec[name].get("no_log") for name in ("registry_password", "url_password", "registries"))
