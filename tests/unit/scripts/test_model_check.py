# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/model-check as CI runs it: a separate interpreter, no Ansible on the import path."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils._gguf import read_gguf
from ansible_collections.edgeslm.pi5.tests.unit.gguf_factory import PRESETS, write_model

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "model-check"


def run(*args: str, stdin: str | None = None) -> tuple[int, Any]:
    # -I: isolated mode, so the collection comes from the checkout, not from PYTHONPATH.
    proc = subprocess.run(
        [sys.executable, "-I", str(SCRIPT), *args], capture_output=True, text=True, input=stdin, check=False
    )
    text = proc.stdout or proc.stderr
    return proc.returncode, json.loads(text)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return write_model(tmp_path / "m.gguf", PRESETS["gemma2-tiny"])


def test_describe_prints_the_catalog_description(model: Path) -> None:
    code, desc = run(str(model), "--describe")
    assert code == 0
    assert desc == read_gguf(model).description()


def test_good_model_passes(model: Path) -> None:
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    code, report = run(str(model), "--sha256", sha, "--target", "pi5-2gb", "--context-length", "2048", "--no-cache")
    assert code == 0
    assert report["ok"] is True
    assert report["sha256"] == sha
    assert report["fit"]["fits"] is True
    assert report["memory"]["total"] == report["fit"]["needed"]


def test_description_from_stdin_against_a_custom_target(model: Path) -> None:
    desc = json.dumps(read_gguf(model).description())
    target = json.dumps({"name": "tiny", "memory_bytes": 1 << 20, "reserve_bytes": 0})
    code, report = run("--description", "-", "--target", target, "--context-length", "1024", stdin=desc)
    assert code == 1
    assert report["ok"] is False
    assert "tiny has 1 MiB free" in report["fit"]["problems"][0]


def test_checksum_mismatch_exits_1(model: Path) -> None:
    code, report = run(str(model), "--sha256", "0" * 64, "--no-cache")
    assert code == 1
    assert report["errors"][0].startswith("checksum mismatch: expected " + "0" * 64)


def test_corrupt_model_exits_1(model: Path) -> None:
    model.write_bytes(model.read_bytes()[:-100])
    code, report = run(str(model))
    assert code == 1
    assert report["error"] == "GGUFTruncatedError"


def test_invalid_input_exits_2(model: Path) -> None:
    code, report = run(str(model), "--target", "pi5-8gb")
    assert code == 2
    assert "--context-length" in report["errors"][0]


def test_a_gguf_name_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    page = tmp_path / "model.gguf"
    page.write_text("<html><body>404</body></html>", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(page), "--no-hash"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1
    assert "not a GGUF file" in proc.stdout
