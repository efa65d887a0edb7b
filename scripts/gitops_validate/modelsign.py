# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Sign one model file with OpenSSF model signing (model-signing 1.1.1, key-based) from a known digest.

Runs in the release venv (.venv-release: requirements/release.txt), started by scripts/model-release:

    python modelsign.py --model FILE --sha256 HEX|- --key KEY.pem --out FILE.sig [--password-env VAR]

The release has already hashed the file with the collection's core (_digest, at openssl speed);
hashing it again inside model-signing would read a multi-GB file a second time. So the signature
is made from a manifest built from that digest with model-signing's public API: the serialization
`SerializationType.from_args` gives for `files`/`sha256` (what `use_file_serialization()` records),
one item named "." as a single-file model has, and the file name as the model name: the resources
and subject model-signing's own hashing gives a single file (its CLI also records the git paths it
would ignore in a directory, which a single file has none of). The release tests verify such a
signature with model-signing's verifier, which hashes the file itself. The signing itself is
`signing.Config().use_elliptic_key_signer(...).sign(...)`, unchanged.

Exit status 0 and nothing on stdout on success; 2 and one line on stderr on a refusal.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["main", "sign_from_digest"]


class SignError(ValueError):
    """The signature cannot be made; the message says why and what to do."""


def _model_signing(name: str) -> Any:
    try:
        return importlib.import_module(f"model_signing.{name}")
    except ImportError as exc:
        raise SignError(
            f"model-signing is not installed in {sys.executable} ({exc}); create the release venv with "
            "`make oci-tools` (requirements/release.txt) or `pip install model-signing==1.1.1 pyOpenSSL`"
        ) from exc


def single_file_manifest(file_name: str, sha256: str) -> Any:
    """The manifest model-signing builds for a single file, from its sha256."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise SignError(f"--sha256 {sha256!r} must be 64 lower-case hex digits")
    manifest = _model_signing("manifest")
    hashing = importlib.import_module("model_signing._hashing.hashing")
    serialization = manifest.SerializationType.from_args(
        {"method": "files", "hash_type": "sha256", "allow_symlinks": False}
    )
    item = manifest.FileManifestItem(path=PurePosixPath("."), digest=hashing.Digest("sha256", bytes.fromhex(sha256)))
    return manifest.Manifest(file_name, [item], serialization)


def sign_from_digest(model: Path, sha256: str, key: Path, out: Path, password: str | None = None) -> None:
    """Write the model-signing bundle for `model` (whose sha256 is `sha256`) signed with `key` to `out`."""
    signing = _model_signing("signing")
    hashing = _model_signing("hashing")
    built = single_file_manifest(model.name, sha256)

    def precomputed(_self: Any, model_path: Any, **_kwargs: Any) -> Any:
        if Path(model_path).name != model.name:
            raise SignError(f"asked to hash {model_path}, but the digest given is the one of {model}")
        return built

    # A hashing configuration whose hash() returns the manifest of the digest already computed.
    config_class = type("PrecomputedHashing", (hashing.Config,), {"hash": precomputed})
    try:
        signer = signing.Config().use_elliptic_key_signer(private_key=key, password=password)
    except (ValueError, TypeError) as exc:
        raise SignError(
            f"--key {key}: model-signing cannot use it ({exc}); key-based signing takes an EC private key on "
            "P-256, P-384 or P-521 (`openssl ecparam -name prime256v1 -genkey -noout -out key.pem`)"
        ) from exc
    signer.set_hashing_config(config_class()).sign(model, out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelsign", description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="the model file (its name is the signed name)")
    parser.add_argument(
        "--sha256", required=True, help="the file's sha256 (hex) as the release computed it; '-': read it from stdin"
    )
    parser.add_argument("--key", type=Path, required=True, help="EC private key (PEM)")
    parser.add_argument("--out", type=Path, required=True, help="where to write the signature bundle")
    parser.add_argument("--password-env", help="environment variable holding the key's password")
    args = parser.parse_args(argv)
    if args.sha256 == "-":  # the release starts this process early and sends the digest when it has it
        args.sha256 = sys.stdin.readline().strip()
    password = None
    if args.password_env:
        password = os.environ.get(args.password_env)
        if password is None:
            print(f"modelsign: --password-env {args.password_env}: the variable is not set", file=sys.stderr)
            return 2
    try:
        sign_from_digest(args.model, args.sha256, args.key, args.out, password)
    except SignError as exc:
        print(f"modelsign: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"modelsign: signing {args.model} with {args.key} failed: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
