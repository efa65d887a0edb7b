# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/model-release: validate, sign and publish a GGUF model, and bump the site catalogs on a branch.

    scripts/model-release FILE.gguf --registry HOST[:PORT] --repository NAME --tag TAG
        --key SIGNING_KEY.pem --site SITE [--site SITE ...] [--branch BRANCH] [--dry-run]

The steps, cheapest first, so that a refusal costs milliseconds and happens before anything leaves
the machine:

1. the file: GGUF magic and every hostile-file check of the collection's GGUF reader;
2. the sites: each chosen site's catalog with the new entry loads (the core's rules), the model fits
   every node class that would serve it at the catalog's serving configuration, and the site trusts
   the signing key (spec.modelSigning.trustedKeys);
3. the repository: the sites' folders are committed, the branch is new, git can commit;
4. the registry: reachable, and the tag is not taken (a release never moves a tag);
5. sha256 of the file (the core's hashing, once), the OpenSSF model-signing signature made from that
   digest (model-signing in the release venv, started while the file is hashed), checked as a node
   checks it (stdlib + openssl) against every chosen site's trusted keys;
6. the ModelPack manifest, whose digest pins the catalog's `source`;
7. while the blobs (config, model, signature) upload: in a temporary git worktree, the catalogs
   edited (comments and key order kept, atomic writes), `new-site --sync`, `validate-gitops --site`,
   and the commit (on no branch yet);
8. once all of that has passed and the blobs are in: the manifest under the tag;
9. the branch (default release/<model>-<tag>) pointing at the commit.

Nothing before step 7 sends anything to the registry, and until step 8 no tag or manifest refers to
what was sent (unreferenced blobs, which the registry's garbage collection removes). Nothing changes
the checkout the command runs in: the worktree is removed at the end, the new commit is only on the
branch. A failure names exactly what reached the registry; after step 8 it also deletes the manifest
again when the registry allows it, and says how otherwise. `--dry-run` stops after step 6 and prints
the catalog entries as YAML: it contacts no registry and writes nothing.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import dataclasses
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from .catalog import MAX_REQUEST_FACTOR, MAX_REQUEST_SLACK
from .core import REPO_ROOT, load_module
from .newsite import MIB, gguf_model_entry, size_resources, write_atomic
from .quantity import parse_quantity
from .sitegen import write_site_files

__all__ = ["ReleaseError", "main", "registry_auth"]

SCRIPTS = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO_ROOT / "gitops"
RELEASE_PYTHON = REPO_ROOT / ".venv-release" / "bin" / "python"
SIGN_HELPER = Path(__file__).resolve().with_name("modelsign.py")
# Credentials of the registry the release pushes to, when no docker-style config holds them.
ENV_USERNAME = "EDGESLM_REGISTRY_USERNAME"
ENV_PASSWORD = "EDGESLM_REGISTRY_PASSWORD"
# docker-style client config (what `docker login` / `oras login` write): $DOCKER_CONFIG/config.json,
# else ~/.docker/config.json; `auths.<host>` holds `auth` (base64 of user:password), or username and
# password, or `identitytoken` (oras-project/oras-credentials-go config.go, AuthConfig). Credential
# helpers (`credsStore`, `credHelpers`) are not run here.
DOCKER_CONFIG_ENV = "DOCKER_CONFIG"
PLACEHOLDER_SHA256 = "0" * 64
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class ReleaseError(ValueError):
    """The release stopped; `pushed` says what reached the registry before it did (None: nothing)."""

    def __init__(self, message: str, pushed: Pushed | None = None) -> None:
        super().__init__(message)
        self.pushed = pushed


class UsageError(ValueError):
    """An option that cannot work; the message names it and the fix."""


# --- what was pushed ----------------------------------------------------------------------------


@dataclass
class Pushed:
    """What the registry received, in order, for the failure report."""

    reference: str  # registry/repository:tag
    plain_http: bool
    blobs: list[tuple[str, str, int, bool]] = field(default_factory=list)  # (what, digest, size, uploaded now)
    manifest_digest: str | None = None
    manifest_deleted: str | None = None  # how the clean-up went

    def describe(self) -> list[str]:
        if not self.manifest_digest and not self.blobs:
            return ["nothing reached the registry"]
        lines = []
        if self.manifest_digest:
            lines.append(f"pushed: manifest {self.manifest_digest} as {self.reference}")
        for what, digest, size, uploaded in self.blobs:
            state = "uploaded" if uploaded else "already in the registry"
            lines.append(f"pushed: {what} blob {digest} ({size} bytes, {state})")
        if not self.manifest_digest and self.blobs:
            lines.append(
                "no manifest references these blobs: the registry's garbage collector removes them "
                "(`registry garbage-collect`)"
            )
        if self.manifest_deleted:
            lines.append(self.manifest_deleted)
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "manifest_digest": self.manifest_digest,
            "blobs": [{"what": w, "digest": d, "size": s, "uploaded": u} for w, d, s, u in self.blobs],
            "manifest_deleted": self.manifest_deleted,
        }


# --- options ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="model-release", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("file", type=Path, help="the GGUF model file to release")
    parser.add_argument("--registry", required=True, help="OCI registry HOST[:PORT] to push to")
    parser.add_argument("--repository", required=True, help="repository in the registry, e.g. models/qwen2.5-1.5b")
    parser.add_argument("--tag", required=True, help="tag of this release (never moved once pushed)")
    parser.add_argument("--key", type=Path, required=True, help="EC private key (PEM) that signs the model")
    parser.add_argument(
        "--key-password-env", metavar="VAR", help="environment variable holding the signing key's password"
    )
    parser.add_argument("--site", action="append", required=True, help="site whose catalog gets the model (repeatable)")
    parser.add_argument("--branch", help="branch to commit on (default: release/<model>-<tag>)")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="GitOps root (default: %(default)s)")
    parser.add_argument("--replace", metavar="NAME", help="update the catalog entry NAME (a new version of that model)")
    parser.add_argument("--name", help="name of a new catalog entry (default: from the file name)")
    parser.add_argument(
        "--runtime", choices=("llamacpp", "llamaedge"), help="runtime of a new entry (default: llamacpp)"
    )
    parser.add_argument("--target", help="board a new entry is sized for (default: the site's only CPU target)")
    parser.add_argument(
        "--context", type=int, help="serving.contextPerSlot (default for a new entry: min(trained, 4096))"
    )
    parser.add_argument("--parallel", type=int, help="serving.parallel (default for a new entry: 1)")
    parser.add_argument("--prompt-template", help="chat template of a LlamaEdge entry (default: chatml)")
    parser.add_argument("--origin", help="provenance note written to the entry's `origin`")
    parser.add_argument("--plain-http", action="store_true", help="talk HTTP, not HTTPS, to the registry")
    parser.add_argument("--insecure", action="store_true", help="do not verify the registry's TLS certificate")
    parser.add_argument("--ca-file", help="CA bundle for the registry's TLS certificate")
    parser.add_argument(
        "--registry-config",
        type=Path,
        help="docker-style config.json with the registry's credentials "
        f"(default: ${DOCKER_CONFIG_ENV}/config.json or ~/.docker/config.json; ${ENV_USERNAME} and "
        f"${ENV_PASSWORD} win over it)",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait on the registry")
    parser.add_argument(
        "--signing-python",
        type=Path,
        help="a Python with model-signing 1.1.1 (default: this one if it has it, else .venv-release)",
    )
    parser.add_argument("--no-checkov", action="store_true", help="run validate-gitops without checkov")
    parser.add_argument("--dry-run", action="store_true", help="print the catalog entries; push and commit nothing")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON document")
    args = parser.parse_args(argv)
    args.site = list(dict.fromkeys(args.site))
    return args


# --- small helpers ------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"model-release: {message}", file=sys.stderr, flush=True)


def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    # Wide enough that no existing line is re-wrapped: the round trip keeps the file byte for byte.
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.explicit_start = True
    return yaml


def _dump(doc: Any, explicit_start: bool = True) -> str:
    out = StringIO()
    yaml = _yaml()
    yaml.explicit_start = explicit_start
    yaml.dump(doc, out)
    return out.getvalue()


def _plain(doc: Any) -> Any:
    return YAML(typ="safe").load(_dump(doc))


def _git(args: Sequence[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=600)
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise ReleaseError(f"git {' '.join(args)} failed in {cwd}: {detail}")
    return result


# --- the model file -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFile:
    path: Path
    info: Any  # _gguf.GGUFInfo
    size: int
    stat_key: tuple[int, int, int]


def inspect_model(path: Path) -> ModelFile:
    """The GGUF checks of the core: magic, structure and every hostile-file limit; no tensor data read."""
    gguf = load_module("_gguf")
    if not path.is_file():
        raise ReleaseError(f"{path}: no such file")
    if not path.name.endswith(".gguf"):
        raise ReleaseError(f"{path}: model-release publishes GGUF models; the file name must end in .gguf")
    try:
        gguf.detect_format(path, "gguf")
        info = gguf.read_gguf(path)
        info.architecture  # noqa: B018 - raises when general.architecture is missing
    except ValueError as exc:
        raise ReleaseError(f"{path} is not a GGUF model the nodes can use: {exc}") from exc
    st = path.stat()
    return ModelFile(path, info, st.st_size, (st.st_size, st.st_mtime_ns, st.st_ino))


def _unchanged(model: ModelFile) -> None:
    st = model.path.stat()
    if (st.st_size, st.st_mtime_ns, st.st_ino) != model.stat_key:
        raise ReleaseError(f"{model.path} changed while it was released; nothing was pushed: run the release again")


# --- the signing key ----------------------------------------------------------------------------


def public_key_of(key: Path, password_env: str | None) -> Any:
    """The signer's public key (a _signature.TrustedKey), through `openssl pkey -pubout`."""
    signature = load_module("_signature")
    if not key.is_file():
        raise ReleaseError(f"--key {key}: no such file")
    command = ["openssl", "pkey", "-in", str(key), "-pubout"]
    if password_env:
        if password_env not in os.environ:
            raise ReleaseError(f"--key-password-env {password_env}: the variable is not set")
        command += ["-passin", f"env:{password_env}"]
    else:
        command += ["-passin", "pass:"]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    if result.returncode != 0:
        raise ReleaseError(
            f"--key {key}: openssl cannot read it as a private key ({result.stderr.strip()[:200]}); "
            "an encrypted key needs --key-password-env"
        )
    try:
        return signature.load_trusted_key(result.stdout, key.name)
    except ValueError as exc:
        raise ReleaseError(f"--key {key}: {exc}") from exc


def signing_python(explicit: Path | None) -> str:
    if explicit is not None:
        return str(explicit)
    if importlib.util.find_spec("model_signing") is not None:
        return sys.executable
    if RELEASE_PYTHON.exists():
        return str(RELEASE_PYTHON)
    raise ReleaseError(
        "model-signing is not installed: run `make oci-tools` (creates .venv-release from requirements/release.txt), "
        "or give --signing-python with a Python that has model-signing 1.1.1 and pyOpenSSL"
    )


class Signer:
    """The model-signing process (release venv), started before hashing so its imports overlap the hash.

    It gets the digest on its standard input once the core has computed it (modelsign.py --sha256 -).
    """

    def __init__(self, python: str, model: ModelFile, key: Path, password_env: str | None, out: Path) -> None:
        command = [python, str(SIGN_HELPER), "--model", str(model.path), "--sha256", "-", "--key", str(key)]
        command += ["--out", str(out)]
        if password_env:
            command += ["--password-env", password_env]
        self.out = out
        self.process = subprocess.Popen(  # ended by finish() or close()
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def finish(self, sha256: str) -> bytes:
        try:
            out, err = self.process.communicate(f"{sha256}\n", timeout=600)
        except subprocess.TimeoutExpired as exc:
            self.close()
            raise ReleaseError("signing did not finish within 600 s") from exc
        if self.process.returncode != 0 or not self.out.is_file():
            raise ReleaseError(f"signing failed: {(err or out).strip()[-800:]}")
        return self.out.read_bytes()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


# --- registry -----------------------------------------------------------------------------------


def _config_host(key: str) -> str:
    text = key.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    return text.split("/", 1)[0]


def registry_auth(registry: str, environ: Mapping[str, str], config_file: Path | None) -> tuple[Any | None, str | None]:
    """(_oci.RegistryAuth or None, a note for a refused login): environment first, then the docker config."""
    oci = load_module("_oci")
    user, password = environ.get(ENV_USERNAME), environ.get(ENV_PASSWORD)
    if user is not None or password is not None:
        if not user or password is None:
            raise ReleaseError(f"set both {ENV_USERNAME} and {ENV_PASSWORD} (or neither)")
        return oci.RegistryAuth(username=user, password=password), None
    path = config_file
    if path is None:
        base = environ.get(DOCKER_CONFIG_ENV)
        path = (
            Path(base) / "config.json" if base else Path(environ.get("HOME", "~")).expanduser() / ".docker/config.json"
        )
    if not path.is_file():
        if config_file is not None:
            raise ReleaseError(f"--registry-config {config_file}: no such file")
        return None, None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReleaseError(f"{path}: not a readable docker-style config.json ({exc})") from exc
    if not isinstance(doc, dict):
        raise ReleaseError(f"{path}: not a docker-style config.json (a JSON object with `auths`)")
    auths = doc.get("auths") or {}
    entry = (
        next((v for k, v in auths.items() if _config_host(k) == registry), None) if isinstance(auths, dict) else None
    )
    helper = (doc.get("credHelpers") or {}).get(registry) or doc.get("credsStore")
    note = (
        f"{path} leaves {registry}'s credentials to the credential helper docker-credential-{helper}, which "
        f"model-release does not run: export {ENV_USERNAME} and {ENV_PASSWORD}"
        if helper
        else None
    )
    if not isinstance(entry, dict):
        return None, note
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return oci.RegistryAuth(identity_token=token), note
    if entry.get("username") is not None:
        return oci.RegistryAuth(username=str(entry["username"]), password=str(entry.get("password") or "")), note
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user, sep, secret = base64.b64decode(auth, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ReleaseError(f"{path}: auths[{registry}].auth is not base64 of user:password") from exc
        if not sep:
            raise ReleaseError(f"{path}: auths[{registry}].auth is not base64 of user:password")
        return oci.RegistryAuth(username=user, password=secret), note
    return None, note


@dataclass
class Registry:
    """The push side of _oci for one repository."""

    client: Any  # _oci.RegistryClient
    registry: str
    repository: str
    tag: str
    plain_http: bool
    login_note: str | None

    @classmethod
    def connect(cls, args: argparse.Namespace) -> Registry:
        oci = load_module("_oci")
        http = load_module("_http")
        auth, note = registry_auth(args.registry, os.environ, args.registry_config)
        tls = http.TlsOptions(ca_file=args.ca_file, insecure_skip_verify=bool(args.insecure))
        config = oci.RegistriesConfig(configs={args.registry: oci.HostConfig(auth, tls)})
        endpoint = oci.registry_endpoints(config, args.registry)[-1]
        if args.plain_http and endpoint.base_url.startswith("https://"):
            endpoint = dataclasses.replace(endpoint, base_url="http://" + endpoint.base_url.removeprefix("https://"))
        client = http.HttpClient(timeout=args.timeout, tls_for_host=lambda _host: tls)
        plain = endpoint.base_url.startswith("http://")
        return cls(oci.RegistryClient(client, endpoint), args.registry, args.repository, args.tag, plain, note)

    @property
    def reference(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"

    def _wrap(self, exc: Exception, doing: str, pushed: Pushed | None = None) -> ReleaseError:
        oci = load_module("_oci")
        http = load_module("_http")
        if isinstance(exc, oci.RegistryAuthError) and self.login_note:
            return ReleaseError(f"{doing}: {exc}; {self.login_note}", pushed)
        if isinstance(exc, oci.RegistryAuthError):
            return ReleaseError(
                f"{doing}: {exc}; log in (`oras login {self.registry}` or `docker login`) or export "
                f"{ENV_USERNAME} and {ENV_PASSWORD}",
                pushed,
            )
        if isinstance(exc, http.UnreachableError):
            return ReleaseError(f"{doing}: the registry {self.registry} cannot be reached: {exc}", pushed)
        return ReleaseError(f"{doing}: {exc}", pushed)

    def check_tag_free(self) -> None:
        """Reachable, and the tag is not taken: a release never moves a tag nodes may already pin."""
        http = load_module("_http")
        try:
            manifest = self.client.get_manifest(self.repository, self.tag)
        except http.HttpStatusError as exc:
            if exc.status == 404:
                return
            raise self._wrap(exc, f"checking {self.reference}") from exc
        except ValueError as exc:
            raise self._wrap(exc, f"checking {self.reference}") from exc
        raise ReleaseError(
            f"{self.reference} exists already (manifest {manifest.digest}); a released tag is never moved: "
            "choose another --tag"
        )

    def push_blobs(self, blobs: Sequence[tuple[str, bytes | Path, str, int]], pushed: Pushed) -> None:
        """Upload the blobs (a blob the repository has already is not sent again); no tag refers to them yet."""
        for what, content, digest, size in blobs:
            try:
                uploaded = self.client.push_blob(self.repository, content, digest, size)
            except ValueError as exc:
                raise self._wrap(exc, f"pushing the {what} blob {digest}", pushed) from exc
            pushed.blobs.append((what, digest, size, bool(uploaded)))

    def push_manifest(self, manifest: bytes, pushed: Pushed) -> str:
        """Put the manifest under the tag: from here on the release can be pulled."""
        oci = load_module("_oci")
        try:
            digest = str(self.client.put_manifest(self.repository, self.tag, manifest, oci.MEDIA_TYPE_OCI_MANIFEST))
        except ValueError as exc:
            raise self._wrap(exc, f"pushing the manifest of {self.reference}", pushed) from exc
        pushed.manifest_digest = digest
        return digest

    def delete_manifest(self, digest: str) -> str:
        """Try to take a pushed manifest back; a sentence saying what happened and what is left to do."""
        endpoint = self.client.endpoint
        url = f"{endpoint.base_url}/{self.repository}/manifests/{digest}"
        flag = " --plain-http" if self.plain_http else ""
        by_hand = f"oras manifest delete{flag} {self.registry}/{self.repository}@{digest}"
        try:
            response = self.client.request("DELETE", url, f"repository:{self.repository}:delete")
            with response:
                status = response.status
        except ValueError as exc:
            return f"the manifest could not be deleted again ({exc}); delete it with: {by_hand}"
        if status in (200, 202):
            return (
                f"the manifest {digest} was deleted again (tag {self.tag} is gone; its blobs stay until the "
                "registry's garbage collection)"
            )
        return (
            f"the manifest could not be deleted again (HTTP {status}: the registry does not allow deletes, "
            f"storage.delete.enabled); delete it with: {by_hand}"
        )


# --- catalogs -----------------------------------------------------------------------------------


@dataclass
class SiteEdit:
    """One chosen site: its catalog text, the edited document and the entry written."""

    name: str
    rel: Path  # sites/<name>/site.yaml, relative to the GitOps root
    text: str
    doc: CommentedMap
    entry: CommentedMap
    replaced: str | None
    catalog: Any = None  # the loaded SiteCatalog of `doc`
    signer_name: str | None = None  # the site's name for the signing key (spec.modelSigning.trustedKeys)


def _site_file(root: Path, site: str) -> Path:
    path = root / "sites" / site / "site.yaml"
    if not path.is_file():
        known = sorted(p.parent.name for p in (root / "sites").glob("*/site.yaml"))
        raise ReleaseError(f"--site {site}: {path} does not exist (sites under {root}: {', '.join(known) or 'none'})")
    return path


def _default_target(doc: Mapping[str, Any], site: str, runtime: str, explicit: str | None) -> str:
    if explicit:
        return explicit
    classes = doc["spec"].get("nodeClasses") or []
    if runtime == "llamaedge":
        classes = [c for c in classes if c.get("wasm")]
    targets = sorted({str(c["target"]) for c in classes})
    if len(targets) != 1:
        raise ReleaseError(
            f"site {site}: node classes have the targets {', '.join(targets) or 'none'}; say which one the "
            "model is sized for with --target"
        )
    return targets[0]


# The keys a release rewrites in a replaced entry: comments written about their old values go with them.
REWRITTEN = ("file", "source", "origin", "sha256", "sizeBytes", "quantization", "example")


def _drop_stale_comments(entry: CommentedMap) -> None:
    """Remove the comments about the values a release rewrites; every other comment stays.

    ruamel keeps a key's end-of-line comment and the full-line comments that follow it (those
    written above the next key) in one token in the key's own slot: the end-of-line part goes when
    the key is rewritten, the full-line part when the key below it is.
    """
    keys = list(entry)
    for index, key in enumerate(keys):
        following = keys[index + 1] if index + 1 < len(keys) else None
        slot = entry.ca.items.get(key)
        token = slot[2] if slot is not None and len(slot) > 2 else None
        if token is None or not isinstance(getattr(token, "value", None), str):
            continue
        end_of_line, newline, below = token.value.partition("\n")
        if key in REWRITTEN:
            end_of_line = ""
        if following in REWRITTEN:
            below = ""
        value = end_of_line + newline + below
        if value.strip():
            token.value = value if newline else value + "\n"
        else:
            slot[2] = None


def _replace_description(entry: CommentedMap, description: Mapping[str, Any]) -> None:
    """A new description block in the old block's key order (new keys after), its trailing comments kept."""
    old = entry.get("description")
    order = [key for key in (old or {}) if key in description]
    new = CommentedMap((key, description[key]) for key in [*order, *(k for k in description if k not in order)])
    if isinstance(old, CommentedMap) and len(old) and len(new):
        tail = old.ca.items.get(list(old)[-1])
        if tail is not None:
            new.ca.items[list(new)[-1]] = tail
    entry["description"] = new


def _keep_or_resize(entry: CommentedMap, site: str) -> None:
    """Keep a replaced entry's resources while the validator's rule holds for the new file, else resize memory."""
    catalog_core = load_module("_catalog")
    try:
        model = catalog_core.model_from_mapping(_plain(entry), f"site {site}: spec.models[{entry['name']}]")
        needed = int(catalog_core.model_fit(model).needed)
    except ValueError as exc:
        raise ReleaseError(str(exc)) from exc
    resources = entry.get("resources") or {}
    try:
        request = parse_quantity(resources["requests"]["memory"])
        limit = parse_quantity(resources["limits"]["memory"])
    except (KeyError, TypeError, ValueError):
        request = limit = Decimal(-1)
    if needed <= request <= Decimal(needed * MAX_REQUEST_FACTOR + MAX_REQUEST_SLACK) and limit >= request:
        return
    cpu = {section: dict(resources.get(section) or {}).get("cpu") for section in ("requests", "limits")}
    size_resources(entry)
    for section, value in cpu.items():
        if value is not None:
            entry["resources"][section]["cpu"] = value
    memory = entry["resources"]["requests"]["memory"]
    say(f"site {site}: {entry['name']}: memory request resized to {memory} (estimate {needed // MIB} MiB)")


def edit_site(root: Path, site: str, args: argparse.Namespace, model: ModelFile, sha256: str, source: str) -> SiteEdit:
    """The site's catalog with the release's entry, loaded by the core (every problem refused here)."""
    path = _site_file(root, site)
    text = path.read_text(encoding="utf-8")
    doc: CommentedMap = _yaml().load(text)
    models: CommentedSeq = doc["spec"]["models"]
    names = [str(m["name"]) for m in models]
    runtime = args.runtime or "llamacpp"
    if args.replace:
        if args.replace not in names:
            raise ReleaseError(
                f"site {site}: --replace {args.replace}: the catalog has no such model ({', '.join(names)})"
            )
        index = names.index(args.replace)
        entry = models[index]
        _drop_stale_comments(entry)
        entry["file"] = model.path.name
        entry["source"] = source
        entry["sha256"] = sha256
        entry["sizeBytes"] = model.size
        entry["quantization"] = model.info.quantization
        for key, value in (("runtime", args.runtime), ("target", args.target)):
            if value:
                entry[key] = value
        if args.prompt_template:
            entry["promptTemplate"] = args.prompt_template
        if args.context is not None or args.parallel is not None:
            serving = entry.setdefault("serving", CommentedMap())
            if args.context is not None:
                serving["contextPerSlot"] = args.context
            if args.parallel is not None:
                serving["parallel"] = args.parallel
        # What described the previous file no longer holds: provenance and example markers go.
        for stale in ("origin", "example"):
            entry.pop(stale, None)
        if args.origin:
            entry.insert(list(entry).index("sha256"), "origin", args.origin)
        catalog_core = load_module("_catalog")
        _replace_description(entry, catalog_core.description_from_gguf(model.info.description()))
        _keep_or_resize(entry, site)
        replaced: str | None = args.replace
    else:
        name = args.name or None
        entry = gguf_model_entry(
            model.path,
            model.info,
            sha256=sha256,
            size=model.size,
            source=source,
            name=name,
            runtime=runtime,
            target=_default_target(doc, site, runtime, args.target),
            context=args.context,
            parallel=args.parallel or 1,
            prompt_template=args.prompt_template or "chatml",
        )
        if args.origin:
            entry.insert(list(entry).index("sha256"), "origin", args.origin)
        if entry["name"] in names:
            raise ReleaseError(
                f"site {site}: a model named {entry['name']} exists already: add --replace {entry['name']} to "
                "release a new version of it, or --name for another entry"
            )
        same_runtime = [str(m["name"]) for m in models if m.get("runtime") == entry["runtime"]]
        if same_runtime:
            raise ReleaseError(
                f"site {site}: runtime {entry['runtime']} already serves {same_runtime[0]} (one model per runtime "
                f"and site): add --replace {same_runtime[0]} to release this file as its new version"
            )
        try:
            size_resources(entry)
        except ValueError as exc:
            raise ReleaseError(f"site {site}: {exc}") from exc
        models.append(entry)
        replaced = None
    return SiteEdit(site, path.relative_to(root), text, doc, entry, replaced)


def check_site(edit: SiteEdit, signer: Any) -> list[str]:
    """Every reason the edited catalog cannot take the model: load, fit per serving class, trusted signer."""
    catalog_core = load_module("_catalog")
    targets = load_module("_targets")
    try:
        catalog = catalog_core.load_catalog(_plain(edit.doc), source=f"sites/{edit.name}/site.yaml")
    except catalog_core.CatalogError as exc:
        return [f"site {edit.name}: {problem}" for problem in exc.problems]
    edit.catalog = catalog
    model = catalog.model(str(edit.entry["name"]))
    problems = []
    for node_class in catalog.classes_for(model):
        fit = catalog_core.model_fit(model, node_class.target, arch=node_class.arch)
        if not fit.fits:
            why = "; ".join(fit.problems)
            problems.append(
                f"site {edit.name}: {model.name} does not fit node class {node_class.name} ({node_class.target}) "
                f"at its serving configuration (context {model.serving.context_per_slot} x "
                f"{model.serving.parallel} slot(s)): needs {targets.format_bytes(fit.needed)}, "
                f"{targets.format_bytes(fit.available)} available: {why}"
            )
    hints = {key.hint for key in catalog.trusted_keys}
    if not catalog.trusted_keys:
        problems.append(
            f"site {edit.name}: spec.modelSigning.trustedKeys is empty, so its nodes could not verify the signature: "
            f"add the signer's public key (`openssl pkey -in {signer.label} -pubout`) to sites/{edit.name}/site.yaml"
        )
    elif signer.hint in hints:
        edit.signer_name = next(key.label for key in catalog.trusted_keys if key.hint == signer.hint)
    else:
        names = ", ".join(key.label for key in catalog.trusted_keys)
        problems.append(
            f"site {edit.name}: the signing key {signer.label} (hint {signer.hint[:16]}…) is not one of the site's "
            f"spec.modelSigning.trustedKeys ({names}): sign with a trusted key or add its public key there"
        )
    return problems


def entry_yaml(edits: Sequence[SiteEdit]) -> str:
    parts = []
    for edit in edits:
        what = f"replaces spec.models[{edit.replaced}]" if edit.replaced else "new item of spec.models"
        seq = CommentedSeq([edit.entry])
        parts.append(f"# sites/{edit.name}/site.yaml: {what}\n" + _dump(seq, explicit_start=False))
    return "---\n" + "---\n".join(parts)


# --- the repository -----------------------------------------------------------------------------


@dataclass
class Repo:
    top: Path
    rel_root: Path  # the GitOps root inside the repository
    head: str

    @classmethod
    def open(cls, root: Path, sites: Sequence[str], branch: str) -> Repo:
        found = _git(["rev-parse", "--show-toplevel"], root, check=False)
        if found.returncode != 0:
            raise ReleaseError(
                f"--root {root} is not inside a git repository: model-release commits the catalog change on a "
                "branch (--dry-run only prints the entry)"
            )
        top = Path(found.stdout.strip()).resolve()
        rel_root = root.resolve().relative_to(top)
        head = _git(["rev-parse", "--verify", "HEAD^{commit}"], top, check=False)
        if head.returncode != 0:
            raise ReleaseError(f"{top} has no commit yet: the release branch starts from HEAD")
        if _git(["check-ref-format", "--branch", branch], top, check=False).returncode != 0:
            raise ReleaseError(f"--branch {branch!r} is not a valid branch name")
        if _git(["rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"], top, check=False).returncode == 0:
            raise ReleaseError(f"branch {branch} exists already: choose another --branch, or delete it first")
        for who in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT"):
            if _git(["var", who], top, check=False).returncode != 0:
                raise ReleaseError(
                    "git cannot make a commit here (no user.name / user.email): set them, or GIT_AUTHOR_NAME, "
                    "GIT_AUTHOR_EMAIL, GIT_COMMITTER_NAME and GIT_COMMITTER_EMAIL"
                )
        dirty = _git(
            ["status", "--porcelain", "--", *(str(rel_root / "sites" / site) for site in sites)], top
        ).stdout.strip()
        if dirty:
            raise ReleaseError(
                "the chosen sites have uncommitted changes, and the release branch starts from HEAD: commit or "
                f"stash them first:\n{dirty}"
            )
        return cls(top, rel_root, head.stdout.strip())

    @contextlib.contextmanager
    def worktree(self) -> Iterator[Path]:
        """A detached worktree at HEAD in a temporary directory, removed afterwards whatever happens."""
        parent = Path(tempfile.mkdtemp(prefix="model-release-"))
        tree = parent / "tree"
        try:
            _git(["worktree", "add", "--quiet", "--detach", str(tree), self.head], self.top)
            yield tree
        finally:
            if tree.exists():
                _git(["worktree", "remove", "--force", str(tree)], self.top, check=False)
            shutil.rmtree(parent, ignore_errors=True)
            _git(["worktree", "prune"], self.top, check=False)


def commit_message(args: argparse.Namespace, edits: Sequence[SiteEdit], facts: Mapping[str, Any]) -> str:
    name = str(edits[0].entry["name"])
    sites = ", ".join(edit.name for edit in edits)
    lines = [
        f"Release model {name} {args.tag} ({facts['manifest_digest']}) to {sites}",
        "",
        f"model:     {name}, file {facts['file']} ({facts['size']} bytes, {facts['quantization']})",
        f"sha256:    {facts['sha256']}",
        f"artifact:  {facts['source']}",
        f"manifest:  {facts['manifest_digest']}",
        f"signed by: {facts['signer']} (key hint {facts['signer_hint']}), trusted as "
        + ", ".join(f"{edit.signer_name} in {edit.name}" for edit in edits),
        f"sites:     {sites}",
    ]
    lines += [f"  {edit.name}: {'replaces ' + edit.replaced if edit.replaced else 'new entry'}" for edit in edits]
    lines += ["", "Made by scripts/model-release."]
    return "\n".join(lines) + "\n"


def validate_gitops(root: Path, sites: Sequence[str], no_checkov: bool) -> None:
    command = [sys.executable, str(SCRIPTS / "validate-gitops"), "--root", str(root), "-q"]
    for site in sites:
        command += ["--site", site]
    if no_checkov:
        command.append("--no-checkov")
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=1800)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise ReleaseError(f"scripts/validate-gitops refused the changed sites:\n{output[-4000:]}")


# --- the release --------------------------------------------------------------------------------


@dataclass
class Laps:
    """Seconds per step, for --json and the release benchmark."""

    started: float = field(default_factory=time.monotonic)
    mark: float = field(default_factory=time.monotonic)
    seconds: dict[str, float] = field(default_factory=dict)

    def lap(self, step: str) -> None:
        now = time.monotonic()
        self.seconds[step] = round(self.seconds.get(step, 0.0) + now - self.mark, 3)
        self.mark = now

    def total(self) -> float:
        return round(time.monotonic() - self.started, 3)


def release(args: argparse.Namespace) -> dict[str, Any]:
    laps = Laps()
    oci = load_module("_oci")
    modelpack = load_module("_modelpack")
    digest_core = load_module("_digest")
    signature_core = load_module("_signature")
    if not _TAG.fullmatch(args.tag):
        raise UsageError(f"--tag {args.tag!r} is not an OCI tag ([A-Za-z0-9_][A-Za-z0-9_.-]*, at most 128)")
    try:
        oci.parse_reference(f"{args.registry}/{args.repository}:{args.tag}", "--registry/--repository/--tag")
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.replace and args.name:
        raise UsageError("--replace NAME keeps the entry's name: drop --name")
    root: Path = args.root

    # 1. the file, 2. the sites (with placeholders for what hashing and signing give)
    model = inspect_model(args.file)
    say(f"{model.path.name}: GGUF {model.info.architecture} {model.info.quantization}, {model.size} bytes")
    signing_key = public_key_of(args.key, args.key_password_env)
    placeholder = f"oci://{args.registry}/{args.repository}:{args.tag}@sha256:{PLACEHOLDER_SHA256}"
    edits = [edit_site(root, site, args, model, PLACEHOLDER_SHA256, placeholder) for site in args.site]
    problems = [problem for edit in edits for problem in check_site(edit, signing_key)]
    if problems:
        raise ReleaseError("refused before anything was pushed:\n  " + "\n  ".join(problems))
    name = str(edits[0].entry["name"])
    for edit in edits[1:]:
        if str(edit.entry["name"]) != name:
            raise ReleaseError(f"the entry is named {name} in {edits[0].name} but {edit.entry['name']} in {edit.name}")
    say(f"fits every serving node class of {', '.join(args.site)}; signer {signing_key.label} is trusted there")
    branch = args.branch or f"release/{name}-{args.tag}"

    # 3. the repository, 4. the registry
    repo = None if args.dry_run else Repo.open(root, args.site, branch)
    registry = None
    if not args.dry_run:
        registry = Registry.connect(args)
        registry.check_tag_free()
        say(f"{registry.reference} is free")

    # 5. hash once, sign from that digest, check the signature as the nodes will
    python = signing_python(args.signing_python)
    laps.lap("checks")
    with tempfile.TemporaryDirectory(prefix="model-release-sig-") as scratch:
        signing = Signer(python, model, args.key, args.key_password_env, Path(scratch) / f"{model.path.name}.sig")
        try:
            sha256, _stat = digest_core.sha256_file(str(model.path))
            _unchanged(model)
            laps.lap("sha256")
            bundle = signing.finish(sha256)
        finally:
            signing.close()
    for edit in edits:
        try:
            signature_core.verify_model_signature(bundle, sha256, edit.catalog.trusted_keys)
        except ValueError as exc:
            raise ReleaseError(
                f"site {edit.name}: the new signature does not verify as the nodes check it: {exc}"
            ) from exc
    say(f"sha256 {sha256}; signed by {signing_key.label}")
    laps.lap("sign")

    # 6. the artifact
    info = model.info
    config = modelpack.build_model_config(
        name=name,
        file_sha256=sha256,
        architecture=info.architecture,
        quantization=info.quantization,
        parameter_count=info.parameter_count or None,
    )
    manifest = modelpack.build_model_manifest(
        config=config,
        file_name=model.path.name,
        file_sha256=sha256,
        file_size=model.size,
        signature=bundle,
        annotations=modelpack.model_annotations(name, info.quantization, info.context_length),
    )
    manifest_digest = oci.blob_digest(manifest)
    source = f"oci://{args.registry}/{args.repository}:{args.tag}@{manifest_digest}"
    edits = [edit_site(root, edit.name, args, model, sha256, source) for edit in edits]
    problems = [problem for edit in edits for problem in check_site(edit, signing_key)]
    if problems:
        raise ReleaseError("refused before anything was pushed:\n  " + "\n  ".join(problems))
    facts: dict[str, Any] = {
        "model": name,
        "file": model.path.name,
        "size": model.size,
        "quantization": info.quantization,
        "sha256": sha256,
        "manifest_digest": manifest_digest,
        "source": source,
        "signer": signing_key.label,
        "signer_hint": signing_key.hint,
        "trusted_as": {edit.name: edit.signer_name for edit in edits},
        "sites": list(args.site),
        "entries": {edit.name: _plain(edit.entry) for edit in edits},
        "dry_run": bool(args.dry_run),
    }
    laps.lap("artifact")
    if args.dry_run:
        facts["yaml"] = entry_yaml(edits)
        facts["seconds"] = laps.total()
        facts["steps"] = laps.seconds
        return facts

    assert repo is not None and registry is not None
    pushed = Pushed(registry.reference, registry.plain_http)
    blobs: list[tuple[str, bytes | Path, str, int]] = [
        ("config", config, oci.blob_digest(config), len(config)),
        ("model", model.path, f"sha256:{sha256}", model.size),
        ("signature", bundle, oci.blob_digest(bundle), len(bundle)),
    ]
    _unchanged(model)
    with repo.worktree() as tree, ThreadPoolExecutor(1, thread_name_prefix="model-release-upload") as pool:
        # 7. the blobs go up while the catalogs are written, validated and committed in the worktree;
        #    no tag refers to them before all of that has passed
        upload = pool.submit(registry.push_blobs, blobs, pushed)
        try:
            tree_root = tree / repo.rel_root
            for edit in edits:
                write_atomic(tree_root / edit.rel, _dump(edit.doc))
                changed = write_site_files(tree_root / "sites" / edit.name, edit.catalog, write_atomic)
                written = "".join(", " + str(path) for path in changed)
                say(f"sites/{edit.name}: site.yaml{written} written (new-site --sync)")
            laps.lap("catalogs")
            validate_gitops(tree_root, args.site, args.no_checkov)
            say(f"validate-gitops passed on {', '.join(args.site)}")
            laps.lap("validate-gitops")
            _git(["add", "--", *(str(repo.rel_root / "sites" / edit.name) for edit in edits)], tree)
            _commit(tree, commit_message(args, edits, facts))
            commit = _git(["rev-parse", "HEAD"], tree).stdout.strip()
            laps.lap("commit")
        except ReleaseError as exc:
            failed = upload.exception()  # wait: the report must list every blob that arrived
            also = f"\nthe upload failed too: {failed}" if failed is not None else ""
            raise ReleaseError(
                f"{exc}{also}\nnothing was committed (no branch {branch}) and no tag was pushed", pushed
            ) from exc
        # 8. the push completes: the blobs, then the manifest under the tag
        try:
            upload.result()
            registry.push_manifest(manifest, pushed)
        except ReleaseError as exc:
            raise ReleaseError(f"{exc}\nnothing was committed (no branch {branch})", pushed) from exc
        say(f"pushed {registry.reference}@{manifest_digest}")
        laps.lap("push")
        # 9. the branch
        try:
            _git(["branch", branch, commit], repo.top)
        except ReleaseError as exc:
            pushed.manifest_deleted = registry.delete_manifest(manifest_digest)
            raise ReleaseError(f"{exc}\nthe release commit {commit[:12]} is on no branch", pushed) from exc
    facts.update(
        {
            "branch": branch,
            "commit": commit,
            "reference": f"{registry.reference}@{manifest_digest}",
            "pushed": pushed.as_dict(),
        }
    )
    laps.lap("branch")
    facts["seconds"] = laps.total()
    facts["steps"] = laps.seconds
    return facts


def _commit(tree: Path, message: str) -> None:
    result = subprocess.run(
        ["git", "commit", "--quiet", "--file", "-"],
        cwd=tree,
        input=message,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise ReleaseError(f"git commit failed: {detail}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        facts = release(args)
    except UsageError as exc:
        print(f"model-release: {exc}", file=sys.stderr)
        return 2
    except ReleaseError as exc:
        print(f"model-release: {exc}", file=sys.stderr)
        if exc.pushed is not None:
            for line in exc.pushed.describe():
                print(f"model-release: {line}", file=sys.stderr)
        elif not args.dry_run:
            print("model-release: nothing was pushed and nothing was committed", file=sys.stderr)
        if args.json:
            doc = {"failed": True, "msg": str(exc), "pushed": exc.pushed.as_dict() if exc.pushed else None}
            print(json.dumps(doc, indent=2))
        return 1
    if args.json:
        print(json.dumps({"failed": False, **facts}, indent=2))
    elif args.dry_run:
        sys.stdout.write(facts["yaml"])
        say(
            f"dry run: nothing pushed, nothing committed (the digest {facts['manifest_digest']} is this run's: the "
            "signature differs each time)"
        )
    else:
        print(f"released {facts['reference']}")
        print(f"  model   {facts['model']} ({facts['file']}, sha256 {facts['sha256']})")
        print(f"  sites   {', '.join(facts['sites'])}")
        print(f"  branch  {facts['branch']} (commit {facts['commit'][:12]}); push it and open a merge request")
    return 0
