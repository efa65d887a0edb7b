# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The OCI layout of a released model: CNCF ModelPack media types, ORAS-compatible file layers.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

One artifact per model version (an OCI image manifest, image-spec v1.1 `artifactType`):

* config: a ModelPack model config (`descriptor.name`, `config.format: gguf`, quantization, …);
* layer 1: the GGUF file itself, uncompressed (`weight.v1.raw`), titled with its file name, so
  the layer digest IS the model file's sha256 (the catalog's pin) and `oras pull` writes the file;
* layer 2 (when signed): the OpenSSF model-signing sigstore bundle, titled `<file>.sig`.

Manifest annotations carry name, quantization and trained context length so registry listings
show them without fetching the config. Media types and keys are data below, with their source.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ansible_collections.edgeslm.pi5.plugins.module_utils._oci import (
    ANNOTATION_TITLE,
    MEDIA_TYPE_OCI_MANIFEST,
    Descriptor,
    Manifest,
    OciError,
    blob_digest,
)

__all__ = [
    "ANNOTATION_CONTEXT_LENGTH",
    "ANNOTATION_MODEL_NAME",
    "ANNOTATION_QUANTIZATION",
    "ARTIFACT_TYPE_MODEL",
    "MEDIA_TYPE_MODEL_CONFIG",
    "MEDIA_TYPE_SIGSTORE_BUNDLE",
    "MEDIA_TYPE_WEIGHT_RAW",
    "SOURCES",
    "ModelArtifact",
    "ModelLayoutError",
    "build_model_config",
    "build_model_manifest",
    "model_annotations",
    "model_artifact",
    "param_size",
]

# CNCF ModelPack model-spec v0.0.7 (tag of 2025-07-21), specs-go/v1/mediatype.go and annotations.go.
ARTIFACT_TYPE_MODEL = "application/vnd.cncf.model.manifest.v1+json"
MEDIA_TYPE_MODEL_CONFIG = "application/vnd.cncf.model.config.v1+json"
MEDIA_TYPE_WEIGHT_RAW = "application/vnd.cncf.model.weight.v1.raw"
ANNOTATION_FILEPATH = "org.cncf.model.filepath"
# sigstore bundle v0.3, as model-signing 1.1.1 writes it (_signing/sign_sigstore_pb.py _BUNDLE_MEDIA_TYPE).
MEDIA_TYPE_SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
# This project's manifest annotations (reverse-domain keys as OCI image-spec annotations.md asks).
ANNOTATION_MODEL_NAME = "io.edgeslm.model.name"
ANNOTATION_QUANTIZATION = "io.edgeslm.model.quantization"
ANNOTATION_CONTEXT_LENGTH = "io.edgeslm.model.context-length"  # the trained maximum, from the GGUF

SOURCES: Mapping[str, str] = {
    "artifactType, config and layer media types": "modelpack/model-spec v0.0.7 specs-go/v1/mediatype.go, "
    "docs/spec.md (manifest: artifactType MUST be application/vnd.cncf.model.manifest.v1+json)",
    "config fields (descriptor, config.format/paramSize/quantization, modelfs.diffIds)": "modelpack/model-spec "
    "v0.0.7 docs/config.md, schema/config-schema.json",
    "org.cncf.model.filepath": "modelpack/model-spec v0.0.7 docs/annotations.md",
    "org.opencontainers.image.title names the file oras pull writes": "oras-project/oras (file store), "
    "OCI image-spec annotations.md",
    "sigstore bundle media type": "model-signing 1.1.1 model_signing/_signing/sign_sigstore_pb.py",
}

_PARAM_SCALES = ((10**15, "Q"), (10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K"))
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,254}")


class ModelLayoutError(OciError):
    """An artifact does not have the model layout, or a value for it is invalid."""


def param_size(parameter_count: int) -> str:
    """ModelPack `paramSize`: a count with at most one decimal and a scale letter (`1.5B`, `494M`)."""
    if not isinstance(parameter_count, int) or isinstance(parameter_count, bool) or parameter_count <= 0:
        raise ModelLayoutError("parameter_count must be a positive integer")
    for scale, letter in _PARAM_SCALES:
        if parameter_count >= scale:
            value = round(parameter_count / scale, 1)
            text = f"{value:.1f}".removesuffix(".0")
            return f"{text}{letter}"
    return str(parameter_count)


def _canonical(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def build_model_config(
    *,
    name: str,
    file_sha256: str,
    architecture: str | None = None,
    quantization: str | None = None,
    parameter_count: int | None = None,
    created: str | None = None,
) -> bytes:
    """The ModelPack config blob for one GGUF file (deterministic bytes for the same input)."""
    if not isinstance(name, str) or not name:
        raise ModelLayoutError("name must be a non-empty string (descriptor.name)")
    if not re.fullmatch(r"[0-9a-f]{64}", file_sha256 or ""):
        raise ModelLayoutError("file_sha256 must be 64 lower-case hex digits (the GGUF layer's digest)")
    descriptor: dict[str, Any] = {"name": name}
    if architecture:
        descriptor["family"] = architecture
    if created:
        descriptor["createdAt"] = created
    config: dict[str, Any] = {"format": "gguf"}
    if architecture:
        config["architecture"] = "transformer"
    if quantization:
        config["quantization"] = quantization
    if parameter_count:
        config["paramSize"] = param_size(parameter_count)
    return _canonical(
        {
            "descriptor": descriptor,
            "config": config,
            "modelfs": {"type": "layers", "diffIds": [f"sha256:{file_sha256}"]},
        }
    )


def build_model_manifest(
    *,
    config: bytes,
    file_name: str,
    file_sha256: str,
    file_size: int,
    signature: bytes | None = None,
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """The image manifest of a model artifact (config + GGUF layer + optional signature layer)."""
    if not _FILE_NAME.fullmatch(file_name or ""):
        raise ModelLayoutError(f"file_name {file_name!r} must be a plain file name (letters, digits, . _ + -)")
    layers = [
        Descriptor(
            MEDIA_TYPE_WEIGHT_RAW,
            f"sha256:{file_sha256}",
            file_size,
            {ANNOTATION_TITLE: file_name, ANNOTATION_FILEPATH: file_name},
        )
    ]
    if signature is not None:
        layers.append(
            Descriptor(
                MEDIA_TYPE_SIGSTORE_BUNDLE,
                blob_digest(signature),
                len(signature),
                {ANNOTATION_TITLE: f"{file_name}.sig"},
            )
        )
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE_MODEL,
        "config": Descriptor(MEDIA_TYPE_MODEL_CONFIG, blob_digest(config), len(config)).to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    if annotations:
        bad = [k for k, v in annotations.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise ModelLayoutError(f"annotations must map strings to strings (bad keys: {bad})")
        doc["annotations"] = dict(annotations)
    return json.dumps(doc, indent=2, sort_keys=False).encode()


def model_annotations(name: str, quantization: str | None, context_length: int | None) -> dict[str, str]:
    annotations = {ANNOTATION_MODEL_NAME: name}
    if quantization:
        annotations[ANNOTATION_QUANTIZATION] = quantization
    if context_length:
        annotations[ANNOTATION_CONTEXT_LENGTH] = str(int(context_length))
    return annotations


@dataclass(frozen=True)
class ModelArtifact:
    """The layers a node needs from an artifact: the file, and its signature bundle if any."""

    file: Descriptor
    signature: Descriptor | None
    is_modelpack: bool
    name: str | None
    quantization: str | None
    context_length: int | None


def model_artifact(manifest: Manifest, file_name: str) -> ModelArtifact:
    """Find the layer titled `file_name` (and `<file_name>.sig`) in a ModelPack or plain ORAS artifact."""
    if manifest.is_index:
        raise ModelLayoutError(f"{manifest.digest} is an index, not an artifact manifest")
    layer = manifest.layer_titled(file_name)
    if layer is None:
        titles = [layer.title for layer in manifest.layers if layer.title]
        raise ModelLayoutError(
            f"artifact {manifest.digest} has no layer titled {file_name!r} (it has {titles or 'no titled layers'}); "
            "name the file as it was pushed"
        )
    signature = manifest.layer_titled(f"{file_name}.sig")
    if signature is not None and signature.media_type != MEDIA_TYPE_SIGSTORE_BUNDLE:
        raise ModelLayoutError(
            f"layer {file_name}.sig has media type {signature.media_type!r}, expected {MEDIA_TYPE_SIGSTORE_BUNDLE}"
        )
    context = manifest.annotations.get(ANNOTATION_CONTEXT_LENGTH)
    return ModelArtifact(
        file=layer,
        signature=signature,
        is_modelpack=manifest.artifact_type == ARTIFACT_TYPE_MODEL,
        name=manifest.annotations.get(ANNOTATION_MODEL_NAME),
        quantization=manifest.annotations.get(ANNOTATION_QUANTIZATION),
        context_length=int(context) if context and context.isdigit() else None,
    )
