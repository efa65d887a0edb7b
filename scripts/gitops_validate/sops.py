# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""A Secret as the API server will receive it: after Flux decrypts it, checked as ValidateSecret does.

Flux's kustomize-controller decrypts an object only when it is a `v1` `Secret` with a top-level
`sops` field (fluxcd/kustomize-controller internal/decryptor IsEncryptedSecret): it drops `sops`
and replaces every `ENC[AES256_GCM,data:…,iv:…,tag:…,type:<t>]` value by its plaintext, of
SOPS type t (str, int, float, bool, bytes). Any other kind keeps `sops` and is refused by the
API server as an unknown field. So the schema check sees, for an encrypted Secret, its decrypted
shape: the same keys, kind, namespace and type, each encrypted value replaced by a value of its
recorded type (an empty string for str and bytes), and a malformed ENC value is a problem.

Every v1 Secret (decrypted shape or clear) is then checked as kubernetes/kubernetes
pkg/apis/core/validation ValidateSecret (Kubernetes 1.33) checks it, on data merged with
stringData: keys are config-map keys (at most 253 of [-._a-zA-Z0-9], not `.`, `..` or `..*`),
the decoded data is at most 1 MiB, and typed Secrets carry their required keys
(kubernetes.io/tls: tls.crt and tls.key; kubernetes.io/dockerconfigjson: .dockerconfigjson;
kubernetes.io/dockercfg: .dockercfg; kubernetes.io/basic-auth: username or password;
kubernetes.io/ssh-auth: ssh-privatekey; kubernetes.io/service-account-token: the
kubernetes.io/service-account.name annotation). Clear `data` values must be base64.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

__all__ = ["as_applied", "is_encrypted_secret", "secret_problems"]

Problem = tuple[str, str]

_ENC = re.compile(r"^ENC\[AES256_GCM,data:([A-Za-z0-9+/=]*),iv:[A-Za-z0-9+/=]+,tag:[A-Za-z0-9+/=]+,type:(\w+)\]$")
_PLAINTEXT: dict[str, Any] = {"str": "", "bytes": "", "int": 0, "float": 0.0, "bool": False}
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_MAX_SECRET_BYTES = 1024 * 1024
_REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    # type: groups of keys, one of each group must be present
    "kubernetes.io/tls": (("tls.crt",), ("tls.key",)),
    "kubernetes.io/dockerconfigjson": ((".dockerconfigjson",),),
    "kubernetes.io/dockercfg": ((".dockercfg",),),
    "kubernetes.io/basic-auth": (("username", "password"),),
    "kubernetes.io/ssh-auth": (("ssh-privatekey",),),
}
_SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"
_SERVICE_ACCOUNT_NAME = "kubernetes.io/service-account.name"


def is_encrypted_secret(doc: dict[str, Any]) -> bool:
    return doc.get("apiVersion") == "v1" and doc.get("kind") == "Secret" and "sops" in doc


def as_applied(doc: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """(the object the API server receives, problems of its decrypted values and Secret rules)."""
    problems: list[Problem] = []
    sizes: dict[str, int] = {}
    if is_encrypted_secret(doc):
        if not isinstance(doc["sops"], dict):
            problems.append(("sops", "is not a mapping; Flux cannot decrypt this Secret"))
        doc = {k: _decrypted(v, k, problems, sizes) for k, v in doc.items() if k != "sops"}
    if doc.get("apiVersion") == "v1" and doc.get("kind") == "Secret":
        problems.extend(secret_problems(doc, sizes))
    return doc, problems


def _decrypted(value: Any, where: str, problems: list[Problem], sizes: dict[str, int]) -> Any:
    if isinstance(value, dict):
        return {k: _decrypted(v, f"{where}.{k}", problems, sizes) for k, v in value.items()}
    if isinstance(value, list):
        return [_decrypted(v, f"{where}[{i}]", problems, sizes) for i, v in enumerate(value)]
    if not isinstance(value, str) or not value.startswith("ENC["):
        return value
    match = _ENC.match(value)
    if match is None or match.group(2) not in _PLAINTEXT:
        problems.append((where, "malformed SOPS value (expected ENC[AES256_GCM,data:…,iv:…,tag:…,type:str])"))
        return value
    try:
        sizes[where] = len(base64.b64decode(match.group(1), validate=True))
    except binascii.Error:
        problems.append((where, "malformed SOPS value: its data is not base64"))
    return _PLAINTEXT[match.group(2)]


def secret_problems(doc: dict[str, Any], encrypted_sizes: dict[str, int] | None = None) -> list[Problem]:
    """ValidateSecret's rules on a v1 Secret (its decrypted shape when it was encrypted)."""
    encrypted_sizes = encrypted_sizes or {}
    problems: list[Problem] = []
    keys: set[str] = set()
    total = 0
    for section in ("data", "stringData"):
        values = doc.get(section)
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            where = f"{section}.{key}"
            keys.add(str(key))
            problems.extend((where, message) for message in _key_problems(str(key)))
            total += _size(section, where, value, encrypted_sizes, problems)
    if total > _MAX_SECRET_BYTES:
        problems.append(("data", f"holds {total} bytes after decoding; a Secret holds at most {_MAX_SECRET_BYTES}"))
    kind = doc.get("type") or "Opaque"
    for group in _REQUIRED.get(str(kind), ()):
        if not keys.intersection(group):
            wanted = " or ".join(group)
            problems.append(
                (f"data.{group[0]}", f"a Secret of type {kind} needs the key {wanted} (data or stringData)")
            )
    if kind == _SERVICE_ACCOUNT_TOKEN:
        annotations = (doc.get("metadata") or {}).get("annotations") or {}
        if not annotations.get(_SERVICE_ACCOUNT_NAME):
            problems.append(
                (f"metadata.annotations.{_SERVICE_ACCOUNT_NAME}", f"a Secret of type {kind} needs this annotation")
            )
    return problems


def _key_problems(key: str) -> list[str]:
    found = []
    if len(key) > 253:
        found.append("a key is at most 253 characters")
    if not _KEY.match(key):
        found.append("a key consists of alphanumerics, '-', '_' or '.'")
    if key in (".", ".."):
        found.append(f"a key must not be {key!r}")
    elif key.startswith(".."):
        found.append("a key must not start with '..'")
    return found


def _size(section: str, where: str, value: Any, encrypted: dict[str, int], problems: list[Problem]) -> int:
    if where in encrypted:
        # The ciphertext is as long as the plaintext; data's plaintext is base64 text.
        return encrypted[where] * 3 // 4 if section == "data" else encrypted[where]
    if not isinstance(value, str):
        return 0  # the schema check reports a value that is not a string
    if section == "stringData":
        return len(value.encode())
    try:
        # Go's base64 decoder (the API server's JSON decoding of bytes) skips line breaks.
        return len(base64.b64decode(value.replace("\n", "").replace("\r", ""), validate=True))
    except binascii.Error:
        problems.append((where, "is not base64 (data values are base64-encoded; use stringData for text)"))
        return 0
