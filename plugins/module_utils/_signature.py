# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Verify an OpenSSF model-signing signature (key-based) with the standard library and `openssl`.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

A release signs the GGUF file with `model_signing sign key` (model-signing 1.1.1, an EC key on
P-256, P-384 or P-521; other key types are refused by that library). The signature is a sigstore
bundle (v0.3 JSON) holding a DSSE envelope whose payload is an in-toto statement:

* `verificationMaterial.publicKey.hint`: sha256 (hex) of the signer's public key as PEM
  (SubjectPublicKeyInfo, 64-column base64), which selects the trusted key;
* `dsseEnvelope.signatures[0].sig`: base64 of a DER ECDSA signature over the DSSE PAE
  (`DSSEv1 <len(type)> <type> <len(payload)> <payload>`), hashed with SHA-256/384/512 by curve;
* payload: `_type` https://in-toto.io/Statement/v1, `predicateType`
  https://model_signing/signature/v1.0, `predicate.serialization` (method `files`, hash_type
  `sha256`), `predicate.resources` [{name ".", algorithm sha256, digest <file sha256>}] for a
  single file, and one subject whose sha256 is the SHA-256 of the resource digests' bytes.

A node has neither model-signing nor cryptography: the ECDSA check runs `openssl dgst -verify`
(Raspberry Pi OS ships openssl) and the file digest comes from `_digest` (cached), so verifying
costs one openssl process and no extra read of a multi-GB model.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "FACTS",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "BadSignatureError",
    "ModelDigestMismatchError",
    "SignatureError",
    "SignatureFormatError",
    "TrustedKey",
    "UnsignedModelError",
    "UntrustedKeyError",
    "VerifiedSignature",
    "load_trusted_key",
    "pae",
    "verify_model_signature",
]

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
PREDICATE_TYPE_V0 = "https://model_signing/Digests/v0.1"
MAX_BUNDLE_BYTES = 1 << 20

_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
# curve OID -> (name, digest openssl uses), as model-signing 1.1.1 pairs them (sign_ec_key.get_ec_key_hash).
_CURVES: Mapping[str, tuple[str, str]] = {
    "1.2.840.10045.3.1.7": ("P-256", "sha256"),
    "1.3.132.0.34": ("P-384", "sha384"),
    "1.3.132.0.35": ("P-521", "sha512"),
}

FACTS: tuple[dict[str, str], ...] = (
    {
        "fact": "key-based signing accepts EC keys on secp256r1, secp384r1, secp521r1 only (ECDSA with SHA-256, "
        "SHA-384, SHA-512); ed25519 and RSA keys are refused",
        "source": "model-signing 1.1.1 model_signing/_signing/sign_ec_key.py _check_supported_ec_key, "
        "get_ec_key_hash; an ed25519 key fails `model_signing sign key` (tried here)",
    },
    {
        "fact": "bundle media type application/vnd.dev.sigstore.bundle.v0.3+json, DSSE payload type "
        "application/vnd.in-toto+json, PAE 'DSSEv1 <len> <type> <len> <payload>'",
        "source": "model-signing 1.1.1 model_signing/_signing/sign_sigstore_pb.py (_BUNDLE_MEDIA_TYPE, pae); "
        "secure-systems-lab/dsse v1.0.0 protocol.md",
    },
    {
        "fact": "publicKey.hint = sha256 hex of the public key's SubjectPublicKeyInfo PEM; tlogEntries empty",
        "source": "model-signing 1.1.1 sign_ec_key.Signer._get_verification_material",
    },
    {
        "fact": "statement: predicateType https://model_signing/signature/v1.0, predicate.serialization "
        "{method, hash_type, allow_symlinks, ignore_paths}, predicate.resources [{name, algorithm, digest}] "
        "(a single file is named '.'), subject digest = sha256 over the resource digests' bytes in order",
        "source": "model-signing 1.1.1 model_signing/_signing/signing.py Payload, dsse_payload_to_manifest",
    },
    {
        "fact": "model-signing 1.1.1 imports pyOpenSSL (sign_certificate.py) without declaring it: the release "
        "venv pins pyOpenSSL beside it",
        "source": "model-signing 1.1.1 METADATA Requires-Dist; `model_signing --help` fails without it (tried here)",
    },
)


class SignatureError(ValueError):
    """The model's signature cannot be accepted; the message says why and what to do."""


class UnsignedModelError(SignatureError):
    """No signature was found for a model that must be signed."""


class SignatureFormatError(SignatureError):
    """The signature is not a model-signing sigstore bundle this verifier understands."""


class UntrustedKeyError(SignatureError):
    """The signature names a key that is not among the trusted keys."""


class BadSignatureError(SignatureError):
    """The DSSE signature does not verify with the trusted key it names."""


class ModelDigestMismatchError(SignatureError):
    """The signature is valid but covers different content than the model file."""


@dataclass(frozen=True)
class TrustedKey:
    label: str
    pem: str  # normalised SubjectPublicKeyInfo PEM
    hint: str  # sha256 hex of `pem`, as model-signing writes publicKey.hint
    curve: str
    digest: str


@dataclass(frozen=True)
class VerifiedSignature:
    key: str  # the trusted key's label
    key_hint: str
    subject: str  # the model name the signer recorded
    sha256: str  # the signed file digest (equal to the model's)

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "key_hint": self.key_hint, "subject": self.subject, "sha256": self.sha256}


# --- keys ------------------------------------------------------------------------------------


def _der_item(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """(tag, content, next offset) of the DER TLV at offset."""
    if offset + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length = data[offset], data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or offset + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    end = offset + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, data[offset:end], end


def _oid(content: bytes) -> str:
    first = content[0]
    parts = [first // 40, first % 40]
    value = 0
    for byte in content[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def load_trusted_keys(values: list[str] | None, field: str = "trusted_keys") -> tuple[TrustedKey, ...]:
    """Each entry a PEM public key or the path of a file holding one (as modules take them)."""
    keys = []
    for index, value in enumerate(values or []):
        label = f"{field}[{index}]"
        if "-----BEGIN" in value:
            keys.append(load_trusted_key(value, label))
            continue
        try:
            text = Path(value).read_text(encoding="utf-8")
        except OSError as exc:
            raise SignatureFormatError(f"{label} {value!r} cannot be read: {exc.strerror}") from exc
        keys.append(load_trusted_key(text, value))
    return tuple(keys)


def load_trusted_key(pem_text: str, label: str = "trusted key") -> TrustedKey:
    """Parse a PEM public key (EC P-256/P-384/P-521, SubjectPublicKeyInfo) and compute its hint."""
    match = re.search(r"-----BEGIN PUBLIC KEY-----(.*?)-----END PUBLIC KEY-----", str(pem_text), re.S)
    if match is None:
        raise SignatureFormatError(
            f"{label}: not a PEM public key ('-----BEGIN PUBLIC KEY-----'); export it with "
            "`openssl ec -in key.pem -pubout`"
        )
    try:
        der = base64.b64decode("".join(match.group(1).split()), validate=True)
        tag, spki, _end = _der_item(der, 0)
        tag_alg, algorithm, after = _der_item(spki, 0)
        tag_key, _key_bits, _end = _der_item(spki, after)
        tag_oid, oid, rest = _der_item(algorithm, 0)
        if (tag, tag_alg, tag_key, tag_oid) != (0x30, 0x30, 0x03, 0x06) or _oid(oid) != _EC_PUBLIC_KEY:
            raise SignatureFormatError(
                f"{label}: not an EC public key; model-signing key-based signatures use EC keys on P-256, P-384 "
                "or P-521 (`openssl ecparam -name prime256v1 -genkey`)"
            )
        tag_curve, curve_oid, _end = _der_item(algorithm, rest)
    except (binascii.Error, ValueError, IndexError) as exc:
        if isinstance(exc, SignatureFormatError):
            raise
        raise SignatureFormatError(f"{label}: the PEM does not hold a valid SubjectPublicKeyInfo ({exc})") from exc
    curve = _CURVES.get(_oid(curve_oid)) if tag_curve == 0x06 else None
    if curve is None:
        raise SignatureFormatError(
            f"{label}: EC curve {_oid(curve_oid) if tag_curve == 0x06 else '?'} is not "
            "P-256, P-384 or P-521, the curves model-signing supports"
        )
    body = base64.b64encode(der).decode()
    pem = "-----BEGIN PUBLIC KEY-----\n" + "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    pem += "\n-----END PUBLIC KEY-----\n"
    return TrustedKey(label, pem, hashlib.sha256(pem.encode()).hexdigest(), curve[0], curve[1])


# --- bundle ----------------------------------------------------------------------------------


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    return b" ".join([f"DSSEv1 {len(payload_type)} {payload_type} {len(payload)}".encode(), payload])


@dataclass(frozen=True)
class _Bundle:
    payload: bytes
    signature: bytes
    hint: str | None


def _parse_bundle(raw: bytes) -> _Bundle:
    if len(raw) > MAX_BUNDLE_BYTES:
        raise SignatureFormatError(f"signature bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SignatureFormatError(f"signature is not a JSON sigstore bundle: {exc}") from exc
    if not isinstance(doc, dict):
        raise SignatureFormatError("signature bundle must be a JSON object")
    if doc.get("mediaType") != BUNDLE_MEDIA_TYPE:
        raise SignatureFormatError(
            f"signature bundle mediaType is {doc.get('mediaType')!r}, expected {BUNDLE_MEDIA_TYPE} "
            "(sign with `model_signing sign key`, model-signing >= 1.0)"
        )
    envelope = doc.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        raise SignatureFormatError("signature bundle has no dsseEnvelope (only DSSE model signatures are accepted)")
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        raise SignatureFormatError(
            f"dsseEnvelope.payloadType must be {PAYLOAD_TYPE}, got {envelope.get('payloadType')!r}"
        )
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures or not isinstance(signatures[0], dict):
        raise SignatureFormatError("dsseEnvelope.signatures must hold one signature")
    try:
        payload = base64.b64decode(str(envelope.get("payload", "")), validate=True)
        signature = base64.b64decode(str(signatures[0].get("sig", "")), validate=True)
    except binascii.Error as exc:
        raise SignatureFormatError(f"dsseEnvelope payload or signature is not base64: {exc}") from exc
    if not payload or not signature:
        raise SignatureFormatError("dsseEnvelope has an empty payload or signature")
    material = doc.get("verificationMaterial")
    hint = None
    if isinstance(material, dict) and isinstance(material.get("publicKey"), dict):
        value = material["publicKey"].get("hint")
        hint = value.lower() if isinstance(value, str) and value else None
    return _Bundle(payload, signature, hint)


def _statement_digest(payload: bytes) -> tuple[str, str]:
    """(subject name, signed file sha256) from the in-toto statement of a single-file signature."""
    try:
        statement = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SignatureFormatError(f"signed payload is not JSON: {exc}") from exc
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise SignatureFormatError(f"signed payload is not an in-toto statement ({STATEMENT_TYPE})")
    predicate_type = statement.get("predicateType")
    if predicate_type == PREDICATE_TYPE_V0:
        raise SignatureFormatError(
            f"signature uses the pre-1.0 predicate {PREDICATE_TYPE_V0}; re-sign with model-signing >= 1.0"
        )
    if predicate_type != PREDICATE_TYPE:
        raise SignatureFormatError(f"predicateType must be {PREDICATE_TYPE}, got {predicate_type!r}")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise SignatureFormatError("statement must have exactly one subject")
    subject = subjects[0]
    subject_digest = (subject.get("digest") or {}).get("sha256") if isinstance(subject.get("digest"), dict) else None
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise SignatureFormatError("statement has no predicate")
    serialization = predicate.get("serialization")
    if not isinstance(serialization, dict) or serialization.get("method") != "files":
        method = serialization.get("method") if isinstance(serialization, dict) else None
        raise SignatureFormatError(
            f"signature serialization method is {method!r}; sign the model file with the default 'files' method"
        )
    if serialization.get("hash_type") != "sha256":
        raise SignatureFormatError(
            f"signature hash_type is {serialization.get('hash_type')!r}; sign with hash_type sha256 (the default)"
        )
    resources = predicate.get("resources")
    if not isinstance(resources, list) or not resources:
        raise SignatureFormatError("predicate.resources must list the signed file")
    total = hashlib.sha256()
    for item in resources:
        digest = item.get("digest") if isinstance(item, dict) else None
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise SignatureFormatError("predicate.resources entries need a 64-hex sha256 digest")
        total.update(bytes.fromhex(digest))
    if subject_digest != total.hexdigest():
        raise SignatureFormatError("statement subject digest does not match its resources (inconsistent statement)")
    if len(resources) != 1 or resources[0].get("name") != "." or resources[0].get("algorithm") != "sha256":
        names = [item.get("name") for item in resources if isinstance(item, dict)]
        raise SignatureFormatError(
            f"signature covers {len(resources)} files {names[:5]}; sign the single model file "
            "(`model_signing sign key MODEL.gguf`)"
        )
    return str(subject.get("name", "")), str(resources[0]["digest"])


Runner = Callable[..., "subprocess.CompletedProcess[bytes]"]


def _openssl_verify(key: TrustedKey, message: bytes, signature: bytes, openssl: str, runner: Runner) -> bool:
    binary = shutil.which(openssl) if os.sep not in openssl else openssl
    if not binary:
        raise SignatureError(f"the `{openssl}` command is needed to check model signatures; install openssl")
    with tempfile.TemporaryDirectory(prefix="edgeslm-sig-") as tmp:
        key_path, sig_path = Path(tmp, "key.pem"), Path(tmp, "sig.der")
        key_path.write_text(key.pem)
        sig_path.write_bytes(signature)
        result = runner(
            [binary, "dgst", f"-{key.digest}", "-verify", str(key_path), "-signature", str(sig_path)],
            input=message,
            capture_output=True,
            check=False,
        )
    out = result.stdout.decode(errors="replace")
    if result.returncode == 0 and "Verified OK" in out:
        return True
    if "Verification failure" in out or b"Verification failure" in result.stderr:
        return False
    raise SignatureError(
        f"openssl could not check the signature with {key.label}: {result.stderr.decode(errors='replace')[:300]}"
    )


def verify_model_signature(
    bundle: bytes | None,
    model_sha256: str,
    trusted_keys: Sequence[TrustedKey],
    *,
    openssl: str = "openssl",
    runner: Runner = subprocess.run,
) -> VerifiedSignature:
    """Accept the model only if a trusted key signed exactly this file content.

    Checks, in order: a signature exists; it is a model-signing DSSE bundle; the key it names
    is trusted; the ECDSA signature verifies; the signed statement covers one file whose sha256
    equals `model_sha256`.
    """
    if not trusted_keys:
        raise SignatureError("no trusted public keys were given; list the site's model signing keys")
    if not bundle:
        raise UnsignedModelError(
            "the model has no signature; release it with `model_signing sign key` (scripts/model-release) "
            "or stop requiring signatures for this model"
        )
    parsed = _parse_bundle(bundle)
    candidates = [k for k in trusted_keys if parsed.hint is None or k.hint == parsed.hint]
    if not candidates:
        known = ", ".join(f"{k.label} ({k.hint[:16]}…)" for k in trusted_keys)
        raise UntrustedKeyError(
            f"the model was signed by a key that is not trusted (key hint {parsed.hint}); trusted: {known}. "
            "Add the signer's public key to the site's trusted keys, or re-sign with a trusted key"
        )
    message = pae(PAYLOAD_TYPE, parsed.payload)
    key = next((k for k in candidates if _openssl_verify(k, message, parsed.signature, openssl, runner)), None)
    if key is None:
        names = ", ".join(k.label for k in candidates)
        raise BadSignatureError(
            f"the signature does not verify with {names}: the signature or its statement was altered, or it was "
            "made with a different key; re-release the model"
        )
    subject, signed_sha = _statement_digest(parsed.payload)
    want = model_sha256.lower().removeprefix("sha256:")
    if signed_sha != want:
        raise ModelDigestMismatchError(
            f"the model file has sha256 {want} but the signature (by {key.label}) covers {signed_sha}: "
            "the file was changed after it was signed"
        )
    return VerifiedSignature(key.label, key.hint, subject, signed_sha)


def statement_of(bundle: bytes) -> Mapping[str, Any]:
    """The (unverified) in-toto statement, for reports."""
    parsed = _parse_bundle(bundle)
    data = json.loads(parsed.payload)
    return data if isinstance(data, dict) else {}
