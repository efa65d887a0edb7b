# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Our stdlib + openssl verifier against the real model-signing 1.1.1 (from .venv-release).

Files are signed by `model_signing sign key` with real EC keys made by openssl; every case is
checked by both verifiers, which must agree (accept or refuse), and ours must say why.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _signature as S
from ansible_collections.edgeslm.pi5.tests.unit.oci.conftest import (
    ModelFile,
    SigningKey,
    make_key,
    model_signing,
    sign,
)


def ours(model: Path, signature: Path | None, keys: list[SigningKey]) -> S.VerifiedSignature:
    trusted = [S.load_trusted_key(k.public.read_text(), k.public.name) for k in keys]
    bundle = signature.read_bytes() if signature is not None and signature.exists() else None
    return S.verify_model_signature(bundle, hashlib.sha256(model.read_bytes()).hexdigest(), trusted)


def library_accepts(model: Path, signature: Path, key: SigningKey) -> bool:
    result = model_signing("verify", "key", str(model), "--signature", str(signature), "--public_key", str(key.public))
    return result.returncode == 0


@pytest.fixture
def signed(model_file: ModelFile, signing_key: SigningKey, tmp_path: Path) -> Path:
    signature = tmp_path / "model.sig"
    sign(model_file.path, signing_key, signature)
    return signature


@pytest.mark.parametrize("curve", ["prime256v1", "secp384r1", "secp521r1"])
def test_signed_file_verifies_on_every_supported_curve(model_file: ModelFile, tmp_path: Path, curve: str) -> None:
    key = make_key(tmp_path / "keys", f"k-{curve}", curve)
    signature = tmp_path / f"{curve}.sig"
    sign(model_file.path, key, signature)
    verified = ours(model_file.path, signature, [key])
    assert verified.sha256 == model_file.sha256 and verified.subject == model_file.path.name
    assert library_accepts(model_file.path, signature, key)


def test_tampered_file(model_file: ModelFile, signed: Path, signing_key: SigningKey) -> None:
    data = bytearray(model_file.path.read_bytes())
    data[1000] ^= 0x01
    model_file.path.write_bytes(bytes(data))
    with pytest.raises(S.ModelDigestMismatchError, match="changed after it was signed"):
        ours(model_file.path, signed, [signing_key])
    assert not library_accepts(model_file.path, signed, signing_key)


def test_wrong_key(model_file: ModelFile, signed: Path, tmp_path: Path) -> None:
    other = make_key(tmp_path / "keys", "other")
    with pytest.raises(S.UntrustedKeyError, match="not trusted"):
        ours(model_file.path, signed, [other])
    assert not library_accepts(model_file.path, signed, other)


def test_untrusted_key_among_several(model_file: ModelFile, tmp_path: Path, signing_key: SigningKey) -> None:
    intruder = make_key(tmp_path / "keys", "intruder")
    signature = tmp_path / "intruder.sig"
    sign(model_file.path, intruder, signature)
    trusted = [signing_key, make_key(tmp_path / "keys", "backup")]
    with pytest.raises(S.UntrustedKeyError, match=r"trusted: release\.pub"):
        ours(model_file.path, signature, trusted)
    assert not any(library_accepts(model_file.path, signature, k) for k in trusted)
    # and the right key among several is found by its hint
    assert ours(model_file.path, signature, [*trusted, intruder]).key == "intruder.pub"


def test_unsigned_model(model_file: ModelFile, signing_key: SigningKey, tmp_path: Path) -> None:
    missing = tmp_path / "absent.sig"
    with pytest.raises(S.UnsignedModelError, match="has no signature"):
        ours(model_file.path, missing, [signing_key])
    assert not library_accepts(model_file.path, missing, signing_key)


def test_altered_signature_bytes(model_file: ModelFile, signed: Path, signing_key: SigningKey, tmp_path: Path) -> None:
    doc = json.loads(signed.read_text())
    sig = bytearray(base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[-1] ^= 0x01
    doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    altered = tmp_path / "altered.sig"
    altered.write_text(json.dumps(doc))
    with pytest.raises(S.BadSignatureError, match="does not verify"):
        ours(model_file.path, altered, [signing_key])
    assert not library_accepts(model_file.path, altered, signing_key)


def test_statement_swapped_for_another_file(
    model_file: ModelFile, signed: Path, signing_key: SigningKey, tmp_path: Path
) -> None:
    """The signed statement re-pointed at another digest (kept consistent) no longer verifies."""
    doc = json.loads(signed.read_text())
    statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    fake = hashlib.sha256(b"another model").hexdigest()
    statement["predicate"]["resources"][0]["digest"] = fake
    statement["subject"][0]["digest"]["sha256"] = hashlib.sha256(bytes.fromhex(fake)).hexdigest()
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    altered = tmp_path / "swapped.sig"
    altered.write_text(json.dumps(doc))
    other_model = tmp_path / "other.gguf"
    other_model.write_bytes(b"another model")
    with pytest.raises(S.BadSignatureError):
        ours(other_model, altered, [signing_key])
    assert not library_accepts(other_model, altered, signing_key)


def test_bundle_without_key_hint_still_checked(
    model_file: ModelFile, signed: Path, signing_key: SigningKey, tmp_path: Path
) -> None:
    """Bundles of older signers have no publicKey.hint: every trusted key is tried."""
    doc = json.loads(signed.read_text())
    del doc["verificationMaterial"]["publicKey"]["hint"]
    no_hint = tmp_path / "nohint.sig"
    no_hint.write_text(json.dumps(doc))
    other = make_key(tmp_path / "keys", "other")
    assert ours(model_file.path, no_hint, [other, signing_key]).key == "release.pub"
    assert library_accepts(model_file.path, no_hint, signing_key)
    with pytest.raises(S.BadSignatureError):
        ours(model_file.path, no_hint, [other])
    assert not library_accepts(model_file.path, no_hint, other)


def test_hint_matches_what_model_signing_writes(signed: Path, signing_key: SigningKey) -> None:
    key = S.load_trusted_key(signing_key.public.read_text())
    assert json.loads(signed.read_text())["verificationMaterial"]["publicKey"]["hint"] == key.hint
