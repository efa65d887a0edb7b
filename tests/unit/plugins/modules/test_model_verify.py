# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""model_verify as AnsibleModule runs it: results, failures and check mode."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.edgeslm.pi5.plugins.module_utils import _digest as D
from ansible_collections.edgeslm.pi5.plugins.modules import model_verify
from ansible_collections.edgeslm.pi5.tests.unit import gguf_hostile
from ansible_collections.edgeslm.pi5.tests.unit.gguf_factory import PRESETS, write_model


def run(args: dict[str, Any], capsys: pytest.CaptureFixture[str], *, check_mode: bool = False) -> dict[str, Any]:
    if check_mode:
        args = {**args, "_ansible_check_mode": True}
    with patch_module_args(args), pytest.raises(SystemExit):
        model_verify.main()
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return write_model(tmp_path / "qwen.gguf", PRESETS["qwen2-tiny"])


def test_good_model_reports_everything(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    result = run(
        {"path": str(model), "sha256": f"sha256:{sha.upper()}", "target": "pi5-2gb", "context_length": 2048}, capsys
    )
    assert not result.get("failed"), result
    assert result["changed"] is False
    assert result["sha256"] == sha
    assert result["size"] == model.stat().st_size
    assert result["format"] == "gguf"
    assert result["gguf"]["architecture"] == "qwen2"
    assert result["gguf"]["tensor_types"] == {"F32": 11, "Q4_0": 15, "Q8_0": 1}
    assert result["memory"]["total"] == result["needed"]
    assert result["fits"] is True and result["problems"] == []
    assert result["cached"] is False


def test_second_run_uses_cache(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run({"path": str(model)}, capsys)
    assert run({"path": str(model)}, capsys)["cached"] is True
    assert run({"path": str(model), "force": True}, capsys)["cached"] is False


def test_check_mode_does_not_write_the_cache(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run({"path": str(model)}, capsys, check_mode=True)
    assert not result.get("failed")
    assert D.read_cache(str(model), model.stat()) is None
    assert run({"path": str(model)}, capsys, check_mode=True)["cached"] is False


def test_checksum_mismatch_fails(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run({"path": str(model), "sha256": "0" * 64}, capsys)
    assert result["failed"]
    assert "checksum mismatch: expected " + "0" * 64 in result["msg"]


def test_malformed_checksum_fails(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run({"path": str(model), "sha256": "abc"}, capsys)
    assert result["failed"]
    assert "must be 64 hexadecimal digits" in result["msg"]


def test_truncated_model_fails_without_hashing(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = model.read_bytes()
    model.write_bytes(data[: len(data) - 1000])
    result = run({"path": str(model), "sha256": "0" * 64}, capsys)
    assert result["failed"]
    assert "corrupt or unusable GGUF file" in result["msg"]
    assert "truncated" in result["msg"]
    assert result["error"] == "GGUFTruncatedError"
    assert "sha256" not in result


def test_misfit_fails_unless_opted_out(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = {"name": "tiny-board", "kind": "cpu", "memory_bytes": 16 << 20, "reserve_bytes": 0}
    failed = run({"path": str(model), "target": tiny, "context_length": 4096}, capsys)
    assert failed["failed"]
    assert "model cannot be served on the target: test-qwen2 Q4_0 at ctx 4096 needs" in failed["msg"]
    report = run({"path": str(model), "target": tiny, "context_length": 4096, "fail_on_misfit": False}, capsys)
    assert not report.get("failed")
    assert report["fits"] is False
    assert "tiny-board has 16 MiB free" in report["problems"][0]


def test_target_without_context_fails(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run({"path": str(model), "target": "pi5-8gb"}, capsys)
    assert result["failed"]
    assert "context_length is required with target" in result["msg"]


def test_gguf_on_hailo_fails_with_rule(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run({"path": str(model), "target": "hailo-10h", "context_length": 2048}, capsys)
    assert result["failed"]
    assert "GGUF runs on the CPU only" in result["msg"]


def test_opaque_file_is_checksummed_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"x" * 100)
    result = run({"path": str(path)}, capsys)
    assert result["format"] == "unknown"
    assert result["gguf"] == {}
    assert result["sha256"] == hashlib.sha256(b"x" * 100).hexdigest()


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (b"", "the file is empty (0 bytes)"),
        (b"<!DOCTYPE html><html><body>Access denied</body></html>", "an HTML page"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"ab" * 32 + b"\nsize 42\n", "Git LFS pointer"),
        (b"Not Found\n", "text; 10 bytes, starting 4e 6f 74 20"),
        (b"GGML" + b"\0" * 60, "binary data; 64 bytes, starting 47 47 4d 4c"),
    ],
)
def test_gguf_name_that_is_not_gguf_fails_without_hashing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, found: str
) -> None:
    path = tmp_path / "qwen.gguf"
    path.write_bytes(content)
    result = run({"path": str(path), "sha256": hashlib.sha256(content).hexdigest()}, capsys)
    assert result["failed"]
    assert result["msg"].startswith(f"{path}: not a GGUF ")
    assert "although its name ends in .gguf" in result["msg"]
    assert found in result["msg"]
    assert result["error"] in ("GGUFMagicError", "GGUFTruncatedError")
    assert "sha256" not in result  # refused before hashing, even with a matching checksum


def test_explicit_gguf_format_that_is_not_gguf_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b'<?xml version="1.0"?><Error><Code>NoSuchKey</Code></Error>')
    result = run({"path": str(path), "format": "gguf"}, capsys)
    assert result["failed"]
    assert f"{path}: not a GGUF file although format gguf was requested: an XML document" in result["msg"]
    assert result["error"] == "GGUFMagicError"


def test_crafted_gguf_fails_with_the_cores_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A hostile file (here: scores shorter than the token list) becomes fail_json, not a traceback."""
    case = next(c for c in gguf_hostile.CASES if c.name == "scores shorter than tokens")
    path = tmp_path / "hostile.gguf"
    path.write_bytes(case.build())
    result = run({"path": str(path), "target": "pi5-8gb", "context_length": 512}, capsys)
    assert result["failed"]
    assert result["msg"].startswith(f"{path}: corrupt or unusable GGUF file: tokenizer.ggml.scores has 2 entries")
    assert result["error"] == "GGUFMetadataError"


def test_hef_with_description(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.hef"
    path.write_bytes(b"hef" * 10)
    desc = {"name": "qwen-hef", "parameter_count": 1_500_000_000, "context_length": 2048}
    ok = run(
        {"path": str(path), "format": "hef", "target": "hailo-10h", "context_length": 2048, "description": desc}, capsys
    )
    assert ok["fits"] is True
    bad = run(
        {"path": str(path), "format": "hef", "target": "pi5-8gb", "context_length": 2048, "description": desc}, capsys
    )
    assert bad["failed"]
    assert "HEF files run only on a Hailo-10H" in bad["msg"]


def test_hef_without_description_cannot_be_fit_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.hef"
    path.write_bytes(b"hef")
    result = run({"path": str(path), "format": "hef", "target": "hailo-10h", "context_length": 2048}, capsys)
    assert result["failed"]
    assert "pass description" in result["msg"]


def test_missing_path_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run({"path": str(tmp_path / "absent.gguf")}, capsys)
    assert result["failed"]
    assert "does not exist" in result["msg"]


def test_bad_kv_cache_type_is_refused_by_argument_spec(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run({"path": str(model), "kv_cache_type": "q2_k"}, capsys)
    assert result["failed"]
    assert "kv_cache_type" in result["msg"]
