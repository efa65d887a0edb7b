# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Model staging when the new version's source cannot be reached: keep serving `current`, say so."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils._gguf import read_gguf
from ansible_collections.edgeslm.pi5.plugins.module_utils._model_stage import (
    StageError,
    StageRequest,
    model_from_mapping,
    stage,
)
from ansible_collections.edgeslm.pi5.tests.unit.gguf_factory import ModelSpec, write_model


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: connections are refused


def _item(path: Path, url: str) -> dict[str, Any]:
    data = path.read_bytes()
    return {
        "name": "edgeslm-tiny",
        "file": path.name,
        "format": "gguf",
        "url": url,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
        "fit_target": "pi5-8gb",
        "context_length": 512,
        "description": read_gguf(path).description(),
    }


def _request(models: Path, item: dict[str, Any]) -> StageRequest:
    return StageRequest(directory=str(models), model=model_from_mapping(item), min_free_bytes=0, timeout=5.0)


@pytest.fixture
def versions(tmp_path: Path) -> list[Path]:
    (tmp_path / "src").mkdir()
    return [write_model(tmp_path / "src" / f"m-v{n}.gguf", ModelSpec(name=f"m-v{n}")) for n in (1, 2)]


def test_unreachable_source_keeps_serving_the_current_version(tmp_path: Path, versions: list[Path]) -> None:
    models = tmp_path / "models"
    first = stage(_request(models, _item(versions[0], f"file://{versions[0]}")))
    served = first.entry["sha256"]
    home = models / "edgeslm-tiny"
    unreachable = f"oci://127.0.0.1:{_closed_port()}/models/edgeslm-tiny:v2"
    result = stage(_request(models, _item(versions[1], unreachable)))
    assert not result.changed
    assert result.degraded["serving"] == served
    assert result.degraded["wanted"] == hashlib.sha256(versions[1].read_bytes()).hexdigest()
    assert "Connection refused" in result.degraded["reason"] or "refused" in result.degraded["reason"]
    assert result.degraded["attempts"], "every endpoint tried is reported"
    assert result.entry["sha256"] == served and result.entry["file"] == versions[0].name
    assert "could not be fetched" in result.entry["degraded"]
    assert str(home.joinpath("current").readlink()) == served
    assert sorted(p.name for p in home.iterdir()) == sorted([served, "current"]), "nothing was left behind"


def test_unreachable_source_with_nothing_to_serve_fails(tmp_path: Path, versions: list[Path]) -> None:
    unreachable = f"http://127.0.0.1:{_closed_port()}/m-v1.gguf"
    with pytest.raises(StageError, match="Nothing was published"):
        stage(_request(tmp_path / "models", _item(versions[0], unreachable)))
    assert not (tmp_path / "models" / "edgeslm-tiny").exists()
