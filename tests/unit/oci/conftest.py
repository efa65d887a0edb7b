# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for the tests against the real registry (docker-registry) and the real oras client."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ansible_collections.edgeslm.pi5.tests.unit.oci_registry import REPO, Registry, running_registry

RELEASE_VENV = REPO / ".venv-release"
MODEL_SIGNING = RELEASE_VENV / "bin" / "model_signing"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with running_registry(tmp_path / "registry") as reg:
        yield reg


@dataclass
class ModelFile:
    path: Path
    sha256: str
    size: int


@pytest.fixture
def model_file(tmp_path: Path) -> ModelFile:
    """A 3 MiB + 123 byte file of random bytes (incompressible, not a multiple of the chunk size)."""
    path = tmp_path / "work" / "edgeslm-tiny-q8_0.gguf"
    path.parent.mkdir()
    data = os.urandom(3 * (1 << 20) + 123)
    path.write_bytes(data)
    return ModelFile(path, hashlib.sha256(data).hexdigest(), len(data))


@dataclass
class SigningKey:
    private: Path
    public: Path


def make_key(directory: Path, name: str, curve: str = "prime256v1") -> SigningKey:
    """A real EC key pair made with openssl."""
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / f"{name}.pem", directory / f"{name}.pub"
    subprocess.run(["openssl", "ecparam", "-name", curve, "-genkey", "-noout", "-out", str(private)], check=True)
    subprocess.run(
        ["openssl", "ec", "-in", str(private), "-pubout", "-out", str(public)], check=True, capture_output=True
    )
    return SigningKey(private, public)


def model_signing(*args: str) -> subprocess.CompletedProcess[str]:
    """The real model_signing CLI from .venv-release (`make oci-tools` installs it)."""
    if not MODEL_SIGNING.exists():
        raise RuntimeError(f"{MODEL_SIGNING} is missing; run `make oci-tools`")
    return subprocess.run([str(MODEL_SIGNING), *args], capture_output=True, text=True, check=False, timeout=120)


def sign(model: Path, key: SigningKey, signature: Path) -> None:
    result = model_signing("sign", "key", str(model), "--private_key", str(key.private), "--signature", str(signature))
    if result.returncode != 0:
        raise RuntimeError(f"model_signing sign failed: {result.stderr}{result.stdout}")


@pytest.fixture
def signing_key(tmp_path: Path) -> SigningKey:
    return make_key(tmp_path / "keys", "release")
