# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""_modelpack: the model artifact's config, manifest and layer selection."""

from __future__ import annotations

import json

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _modelpack as M
from ansible_collections.edgeslm.pi5.plugins.module_utils import _oci as O

SHA = "ab" * 32


@pytest.mark.parametrize(
    ("count", "text"),
    [(494_032_768, "494M"), (1_543_714_304, "1.5B"), (7_000_000_000, "7B"), (6_738_415_616, "6.7B"), (999, "999")],
)
def test_param_size(count: int, text: str) -> None:
    assert M.param_size(count) == text


def test_config_follows_modelpack_schema_fields() -> None:
    raw = M.build_model_config(
        name="qwen2.5-0.5b",
        file_sha256=SHA,
        architecture="qwen2",
        quantization="Q4_K_M",
        parameter_count=494_032_768,
    )
    doc = json.loads(raw)
    assert set(doc) == {"descriptor", "config", "modelfs"}  # schema: additionalProperties false
    assert doc["descriptor"] == {"name": "qwen2.5-0.5b", "family": "qwen2"}
    assert doc["config"] == {
        "format": "gguf",
        "architecture": "transformer",
        "quantization": "Q4_K_M",
        "paramSize": "494M",
    }
    assert doc["modelfs"] == {"type": "layers", "diffIds": [f"sha256:{SHA}"]}
    assert raw == M.build_model_config(
        name="qwen2.5-0.5b",
        file_sha256=SHA,
        architecture="qwen2",
        quantization="Q4_K_M",
        parameter_count=494_032_768,
    )


def test_manifest_layout_and_selection() -> None:
    config = M.build_model_config(name="tiny", file_sha256=SHA)
    raw = M.build_model_manifest(
        config=config,
        file_name="tiny-q8_0.gguf",
        file_sha256=SHA,
        file_size=10,
        signature=b"{}",
        annotations=M.model_annotations("tiny", "Q8_0", 2048),
    )
    manifest = O.parse_manifest(raw)
    assert manifest.artifact_type == M.ARTIFACT_TYPE_MODEL
    assert manifest.config is not None and manifest.config.media_type == M.MEDIA_TYPE_MODEL_CONFIG
    artifact = M.model_artifact(manifest, "tiny-q8_0.gguf")
    assert artifact.file.digest == f"sha256:{SHA}" and artifact.file.media_type == M.MEDIA_TYPE_WEIGHT_RAW
    assert artifact.file.annotations[M.ANNOTATION_FILEPATH] == "tiny-q8_0.gguf"
    assert artifact.signature is not None and artifact.signature.title == "tiny-q8_0.gguf.sig"
    assert (artifact.is_modelpack, artifact.name, artifact.quantization, artifact.context_length) == (
        True,
        "tiny",
        "Q8_0",
        2048,
    )
    with pytest.raises(M.ModelLayoutError, match=r"no layer titled 'other\.gguf'"):
        M.model_artifact(manifest, "other.gguf")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"file_name": "../x.gguf"}, "plain file name"),
        ({"annotations": {"a": 1}}, "strings to strings"),
    ],
)
def test_manifest_refusals(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"config": b"{}", "file_name": "m.gguf", "file_sha256": SHA, "file_size": 1, **kwargs}
    with pytest.raises(M.ModelLayoutError, match=message):
        M.build_model_manifest(**args)  # type: ignore[arg-type]


def test_media_types_written_once() -> None:
    """One truth: the ModelPack media type strings live in _modelpack.py only."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[4] / "plugins"
    holders = sorted(p.name for p in root.rglob("*.py") if "application/vnd.cncf.model." in p.read_text())
    assert holders == ["_modelpack.py"]
