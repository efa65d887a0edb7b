# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""model_stage as AnsibleModule runs it: the fact line, check mode, and a refusal as fail_json."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.edgeslm.pi5.plugins.module_utils._gguf import read_gguf
from ansible_collections.edgeslm.pi5.plugins.modules import model_stage
from ansible_collections.edgeslm.pi5.tests.unit.gguf_factory import PRESETS, write_model


def run(args: dict[str, Any], capsys: pytest.CaptureFixture[str], *, check_mode: bool = False) -> dict[str, Any]:
    if check_mode:
        args = {**args, "_ansible_check_mode": True}
    with patch_module_args(args), pytest.raises(SystemExit):
        model_stage.main()
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


@pytest.fixture
def model(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "src").mkdir()
    path = write_model(tmp_path / "src" / "tiny.gguf", PRESETS["llama-tiny"])
    data = path.read_bytes()
    return {
        "name": "tiny",
        "file": "tiny.gguf",
        "format": "gguf",
        "url": f"file://{path}",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
        "memory_runtime": "llama.cpp",
        "fit_target": "pi5-8gb",
        "context_length": 512,
        "description": read_gguf(path).description(),
    }


def test_stage_then_nothing_to_do(tmp_path: Path, model: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    args = {"dir": str(tmp_path / "models"), "model": model, "min_free_bytes": 0}
    (tmp_path / "models").mkdir()
    planned = run(args, capsys, check_mode=True)
    assert planned["changed"] and planned["actions"] == [f"fetch {model['url']}"]
    assert list((tmp_path / "models").iterdir()) == []
    first = run(args, capsys)
    assert first["changed"] and first["model"]["fits"] and first["hashed"]
    assert first["model"]["path"] == str(tmp_path / "models" / "tiny" / "current" / "tiny.gguf")
    assert first["fetch"]["origin"] == "path"
    second = run(args, capsys)
    assert not second["changed"] and not second["hashed"]
    assert second["model"] == first["model"]


def test_refusal_is_a_failure_naming_the_field(
    tmp_path: Path, model: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    result = run({"dir": str(tmp_path), "model": {**model, "sha256": "nope"}}, capsys)
    assert result["failed"]
    assert "model[tiny].sha256 must be 64 hexadecimal digits" in result["msg"]
