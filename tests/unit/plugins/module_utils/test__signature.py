# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""_signature: keys and bundle shapes. Bundles are built here and signed with openssl itself;
tests/unit/oci/test_signature_crosscheck.py checks against the real model-signing library."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _signature as S

FILE_SHA = hashlib.sha256(b"model bytes").hexdigest()


def openssl(*args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


def keypair(tmp: Path, *genkey: str) -> tuple[Path, str]:
    private = tmp / f"k{len(list(tmp.iterdir()))}.pem"
    private.write_bytes(openssl(*genkey))
    return private, openssl("pkey", "-in", str(private), "-pubout").decode()


@pytest.fixture
def p256(tmp_path: Path) -> tuple[Path, str]:
    return keypair(tmp_path, "ecparam", "-name", "prime256v1", "-genkey", "-noout")


def statement(sha: str = FILE_SHA, **change: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_type": S.STATEMENT_TYPE,
        "subject": [{"name": "m.gguf", "digest": {"sha256": hashlib.sha256(bytes.fromhex(sha)).hexdigest()}}],
        "predicateType": S.PREDICATE_TYPE,
        "predicate": {
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False},
            "resources": [{"algorithm": "sha256", "name": ".", "digest": sha}],
        },
    }
    doc.update(change)
    return doc


def bundle(private: Path, public_pem: str, doc: dict[str, Any], *, digest: str = "sha256", **change: Any) -> bytes:
    payload = json.dumps(doc).encode()
    sig = openssl("dgst", f"-{digest}", "-sign", str(private), data=S.pae(S.PAYLOAD_TYPE, payload))
    out: dict[str, Any] = {
        "mediaType": S.BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": S.load_trusted_key(public_pem).hint}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": S.PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(sig).decode(), "keyid": ""}],
        },
    }
    out.update(change)
    return json.dumps(out).encode()


def test_verifies_a_well_formed_bundle(p256: tuple[Path, str]) -> None:
    private, public = p256
    key = S.load_trusted_key(public, "site key")
    verified = S.verify_model_signature(bundle(private, public, statement()), FILE_SHA, [key])
    assert verified.as_dict() == {"key": "site key", "key_hint": key.hint, "subject": "m.gguf", "sha256": FILE_SHA}
    assert key.curve == "P-256" and key.digest == "sha256"


@pytest.mark.parametrize(
    ("genkey", "message"),
    [
        (("genpkey", "-algorithm", "ed25519"), "not an EC public key"),
        (("genpkey", "-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:1024"), "not an EC public key"),
        (("ecparam", "-name", "secp224r1", "-genkey", "-noout"), "is not P-256, P-384 or P-521"),
    ],
)
def test_unsupported_key_types(tmp_path: Path, genkey: tuple[str, ...], message: str) -> None:
    _private, public = keypair(tmp_path, *genkey)
    with pytest.raises(S.SignatureFormatError, match=message):
        S.load_trusted_key(public)


def test_not_a_pem() -> None:
    with pytest.raises(S.SignatureFormatError, match=r"openssl ec -in key\.pem -pubout"):
        S.load_trusted_key("ssh-ed25519 AAAA")


@pytest.mark.parametrize(
    ("doc_change", "bundle_change", "message"),
    [
        ({"predicateType": S.PREDICATE_TYPE_V0}, {}, "re-sign with model-signing >= 1.0"),
        ({"predicateType": "https://example/other"}, {}, "predicateType must be"),
        ({"_type": "https://in-toto.io/Statement/v0.1"}, {}, "not an in-toto statement"),
        ({"subject": []}, {}, "exactly one subject"),
        ({}, {"mediaType": "application/json"}, "expected application/vnd.dev.sigstore.bundle"),
        ({}, {"dsseEnvelope": None}, "no dsseEnvelope"),
    ],
)
def test_format_refusals(
    p256: tuple[Path, str], doc_change: dict[str, Any], bundle_change: dict[str, Any], message: str
) -> None:
    private, public = p256
    raw = bundle(private, public, statement(**doc_change), **bundle_change)
    with pytest.raises(S.SignatureFormatError, match=message):
        S.verify_model_signature(raw, FILE_SHA, [S.load_trusted_key(public)])


def test_shards_and_directories_refused(p256: tuple[Path, str]) -> None:
    private, public = p256
    doc = statement()
    doc["predicate"]["serialization"]["method"] = "shards"
    with pytest.raises(S.SignatureFormatError, match="default 'files' method"):
        S.verify_model_signature(bundle(private, public, doc), FILE_SHA, [S.load_trusted_key(public)])
    two = statement()
    other = "0" * 64
    two["predicate"]["resources"] = [
        {"algorithm": "sha256", "name": "a", "digest": FILE_SHA},
        {"algorithm": "sha256", "name": "b", "digest": other},
    ]
    two["subject"][0]["digest"]["sha256"] = hashlib.sha256(bytes.fromhex(FILE_SHA + other)).hexdigest()
    with pytest.raises(S.SignatureFormatError, match="covers 2 files"):
        S.verify_model_signature(bundle(private, public, two), FILE_SHA, [S.load_trusted_key(public)])


def test_inconsistent_subject_refused(p256: tuple[Path, str]) -> None:
    private, public = p256
    doc = statement()
    doc["subject"][0]["digest"]["sha256"] = "1" * 64
    with pytest.raises(S.SignatureFormatError, match="inconsistent statement"):
        S.verify_model_signature(bundle(private, public, doc), FILE_SHA, [S.load_trusted_key(public)])


def test_no_trusted_keys_and_missing_openssl(p256: tuple[Path, str]) -> None:
    private, public = p256
    raw = bundle(private, public, statement())
    with pytest.raises(S.SignatureError, match="no trusted public keys"):
        S.verify_model_signature(raw, FILE_SHA, [])
    with pytest.raises(S.SignatureError, match="install openssl"):
        S.verify_model_signature(raw, FILE_SHA, [S.load_trusted_key(public)], openssl="openssl-not-here")
