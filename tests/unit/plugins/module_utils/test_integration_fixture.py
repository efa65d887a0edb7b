# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""The integration target's stdlib GGUF writer produces files gguf.GGUFReader agrees with."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import gguf
import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils._gguf import read_gguf

WRITER = Path(__file__).resolve().parents[3] / "integration" / "targets" / "model_verify" / "files" / "make_models.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_models", WRITER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fixture_files_match_gguf_reader(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _load().main(tmp_path)
    facts = json.loads(capsys.readouterr().out)
    for name in ("good-q8_0", "good-q4_0"):
        path = Path(facts[name]["path"])
        ours = read_gguf(path)
        oracle = gguf.GGUFReader(path)
        assert {t.name: (t.shape, t.ggml_type.name, ours.data_offset + t.offset) for t in ours.tensors} == {
            t.name: (tuple(int(d) for d in t.shape), t.tensor_type.name, int(t.data_offset)) for t in oracle.tensors
        }
        assert oracle.fields["general.architecture"].contents() == "llama"
        assert ours.file_size == facts[name]["size"]
