# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fetch one artifact to its final name: verified, resumable, atomic, never half-written.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

One way for every artifact the roles install (k3s binaries, Wasm shims, Flux/Argo CD
manifests, models):

    source       http(s):// or file:// URL, an absolute local path, or oci://registry/repo:tag[@digest];
                 a file of the same name in `airgap_dir` wins over the source (no network)
    integrity    a pinned sha256, or a sha256sum-format checksum list and the file's name in it;
                 OCI blobs are also checked against their manifest descriptors
    transfer     into `.<name>.<digest prefix>.partial` in the destination directory, resumed with an
                 HTTP Range request on the next run, hashed while it is written
    finish       signature check (optional), fsync, atomic rename, the digest recorded in `_digest`'s
                 verification cache so `model_verify` does not hash the file again

A destination that already has the expected digest is left alone (one stat + getxattr when
`_digest`'s cache holds it). When no registry endpoint or URL can be reached the result is
`degraded` (if the caller allows it): nothing changed and the caller keeps what it serves.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ansible_collections.edgeslm.pi5.plugins.module_utils import _digest
from ansible_collections.edgeslm.pi5.plugins.module_utils._http import (
    CHUNK_SIZE,
    DownloadStats,
    HttpClient,
    Response,
    TlsOptions,
    TransferError,
    UnreachableError,
    ranged_download,
)
from ansible_collections.edgeslm.pi5.plugins.module_utils._modelpack import ARTIFACT_TYPE_MODEL, model_artifact
from ansible_collections.edgeslm.pi5.plugins.module_utils._oci import (
    EmbeddedMirror,
    OciError,
    OciPuller,
    PullError,
    Reference,
    RegistriesConfig,
    RegistryUnreachableError,
    parse_reference,
    registry_endpoints,
)
from ansible_collections.edgeslm.pi5.plugins.module_utils._signature import (
    SignatureError,
    TrustedKey,
    VerifiedSignature,
    verify_model_signature,
)

__all__ = [
    "AirgapArtifact",
    "ChecksumListError",
    "FetchError",
    "FetchRequest",
    "FetchResult",
    "FetchUnreachableError",
    "Source",
    "SourceError",
    "airgap_artifact",
    "airgap_checksum_list",
    "checksum_for",
    "expected_sha256",
    "fetch",
    "naming_the_pin",
    "parse_checksum_list",
    "parse_source",
    "partial_path",
]

MAX_CHECKSUM_LIST_BYTES = 1 << 20
SIGNATURE_SUFFIX = ".sig"
_CHECKSUM_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *]?(\S+)")
DEFAULT_LIST_FIX = "use the release's checksum list for this file, or pin its sha256"


class FetchError(ValueError):
    """The fetch cannot be done as asked; the message names the option and the fix."""


class SourceError(FetchError):
    """The source (URL, path or OCI reference) is malformed."""


class ChecksumListError(FetchError):
    """A checksum list is malformed or does not name the wanted file."""


class FetchUnreachableError(FetchError):
    """No source could be reached (and the caller did not accept a degraded result)."""

    def __init__(self, message: str, attempts: Sequence[Mapping[str, str]] = ()) -> None:
        super().__init__(message)
        self.attempts = [dict(a) for a in attempts]


# --- checksum lists (sha256sum format) --------------------------------------------------------


def parse_checksum_list(text: str) -> dict[str, str]:
    """Parse `sha256sum` output (`<hex>  <file>` or `<hex> *<file>`) into {file name: hex digest}."""
    result: dict[str, str] = {}
    for number, line in enumerate(str(text).splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _CHECKSUM_LINE.fullmatch(stripped)
        if match is None:
            raise ChecksumListError(f"checksum list line {number} is not '<sha256>  <file>': {stripped[:80]!r}")
        name = match.group(2).removeprefix("./")
        digest = match.group(1).lower()
        if result.get(name, digest) != digest:
            raise ChecksumListError(f"checksum list names {name!r} twice with different digests")
        result[name] = digest
    return result


def checksum_for(text: str, filename: str, *, fix: str = DEFAULT_LIST_FIX) -> str:
    """The digest the checksum list gives for `filename`; refuse when it is not listed."""
    listing = parse_checksum_list(text)
    if filename not in listing:
        known = ", ".join(sorted(listing)) or "nothing"
        raise ChecksumListError(f"the checksum list does not name {filename!r} (it lists {known}); {fix}")
    return listing[filename]


def expected_sha256(
    *, sha256: str | None = None, checksum_list: str | None = None, checksum_name: str | None = None
) -> str | None:
    """The pinned digest: `sha256` itself, else the list's entry for `checksum_name`."""
    if sha256 and checksum_list:
        raise FetchError("give either sha256 or a checksum list, not both (one truth per digest)")
    if sha256:
        try:
            return _digest.normalize_sha256(sha256, "sha256")
        except _digest.DigestError as exc:
            raise FetchError(str(exc)) from exc
    if checksum_list is not None:
        if not checksum_name:
            raise FetchError("checksum_name is required with a checksum list (the file name the list uses)")
        return checksum_for(checksum_list, checksum_name)
    return None


# --- sources --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    kind: str  # "url" (http/https), "path" (local file, file:// URL) or "oci"
    location: str
    reference: Reference | None = None

    @property
    def file_name(self) -> str:
        if self.kind == "oci":
            return ""
        return Path(unquote(urlsplit(self.location).path) if self.kind == "url" else self.location).name


def parse_source(value: str, field_name: str = "source") -> Source:
    """`https://…`, `http://…`, `file:///…`, `/absolute/path` or `oci://registry/repo:tag[@sha256:…]`."""
    text = str(value).strip()
    if not text:
        raise SourceError(f"{field_name} is empty; give a URL, an absolute path or an oci:// reference")
    if text.startswith("oci://"):
        try:
            return Source("oci", text, parse_reference(text, field_name))
        except OciError as exc:
            raise SourceError(str(exc)) from exc
    parts = urlsplit(text)
    if parts.scheme in ("http", "https"):
        if not parts.netloc:
            raise SourceError(f"{field_name} {text!r} has no host")
        return Source("url", text)
    if parts.scheme == "file":
        return Source("path", unquote(parts.path))
    if parts.scheme:
        raise SourceError(
            f"{field_name} {text!r}: scheme {parts.scheme!r} is not supported; use https://, http://, file://, "
            "oci:// or an absolute path"
        )
    if not text.startswith("/"):
        raise SourceError(
            f"{field_name} {text!r} is neither a URL nor an absolute path; an OCI reference needs the oci:// prefix"
        )
    return Source("path", text)


def partial_path(dest: Path, key: str) -> Path:
    """Where the download of `dest` lives until it is verified (same directory: the rename is atomic)."""
    return dest.with_name(f".{dest.name}.{key[:16]}.partial")


def naming_the_pin(message: str, pinned_by: str | None) -> str:
    """A failure message that also names where the expected digest is set (the thing to fix)."""
    return f"{message} [expected digest from {pinned_by}]" if pinned_by else message


# --- an airgap directory on the controller -----------------------------------------------------


@dataclass(frozen=True)
class AirgapArtifact:
    """A file of an airgap directory, checked against its pinned digest where it lies."""

    path: str
    sha256: str
    size: int


def airgap_checksum_list(airgap_dir: str | None, checksum_url: str | None) -> str | None:
    """The text of the checksum list `checksum_url` names when the airgap directory holds a copy."""
    if not checksum_url:
        return None
    local = _airgap_file(airgap_dir, Path(unquote(urlsplit(checksum_url).path)).name)
    if local is None:
        return None
    return _read_local_small(local, "checksum_url").decode("utf-8", "replace")


def airgap_artifact(airgap_dir: str, name: str, expected: str | None) -> AirgapArtifact | None:
    """`name` in `airgap_dir` if it is there, hashed and refused unless it has the `expected` digest.

    Used where the airgap directory is not on the node (the controller's): a file that does not
    match never leaves the directory, so no node receives it.
    """
    local = _airgap_file(airgap_dir, name)
    if local is None:
        return None
    if expected is None:
        raise FetchError(
            f"{str(local)!r} has no digest to be checked against: give sha256, or checksum_list/checksum_url "
            "with checksum_name (the release's list may lie in the airgap directory)"
        )
    try:
        found, st = _digest.sha256_file(str(local))
    except _digest.DigestError as exc:
        raise FetchError(str(exc)) from exc
    if found != expected:
        raise FetchError(
            f"{str(local)!r} has sha256 {found}, expected {expected}; replace it with the pinned release's file "
            "(nothing was copied to the node)"
        )
    return AirgapArtifact(str(local), found, st.st_size)


# --- request and result ------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchRequest:
    dest: str
    source: str | None = None
    sha256: str | None = None
    checksum_list: str | None = None
    checksum_url: str | None = None
    checksum_name: str | None = None
    airgap_dir: str | None = None
    oci_file: str | None = None
    registries: RegistriesConfig = field(default_factory=RegistriesConfig)
    disable_default_endpoint: bool = False
    embedded_mirror: EmbeddedMirror | None = None
    registry_credentials: tuple[str, str] | None = None
    url_credentials: tuple[str, str] | None = None
    url_headers: Mapping[str, str] = field(default_factory=dict)
    tls: TlsOptions = field(default_factory=TlsOptions)
    trusted_keys: tuple[TrustedKey, ...] = ()
    signature: str | None = None
    timeout: float = 30.0
    force: bool = False
    degraded_ok: bool = False
    check_mode: bool = False


@dataclass
class FetchResult:
    dest: str
    changed: bool = False
    sha256: str = ""
    size: int = 0
    origin: str = ""  # "present", "airgap", "path", "url", "oci"
    location: str = ""  # where the bytes came from (path, URL, registry endpoint)
    cached: bool = False
    downloaded: int = 0
    reused: int = 0
    resumed: bool = False
    restarted: bool = False
    degraded: bool = False
    reason: str = ""
    manifest_digest: str = ""
    attempts: list[dict[str, str]] = field(default_factory=list)
    signature: dict[str, str] = field(default_factory=dict)
    signature_path: str = ""
    elapsed: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "dest": self.dest,
            "changed": self.changed,
            "sha256": self.sha256,
            "size": self.size,
            "origin": self.origin,
            "location": self.location,
            "cached": self.cached,
            "downloaded": self.downloaded,
            "reused": self.reused,
            "resumed": self.resumed,
            "restarted": self.restarted,
            "degraded": self.degraded,
            "reason": self.reason,
            "manifest_digest": self.manifest_digest,
            "attempts": self.attempts,
            "signature": self.signature,
            "signature_path": self.signature_path,
            "elapsed": round(self.elapsed, 3),
        }


# --- the fetch ------------------------------------------------------------------------------


def _read_local_small(path: Path, what: str) -> bytes:
    """A checksum list or signature bundle from a local file, refused beyond MAX_CHECKSUM_LIST_BYTES."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_CHECKSUM_LIST_BYTES + 1)
    except OSError as exc:
        raise FetchError(f"{what} {str(path)!r} cannot be read: {exc.strerror}") from exc
    if len(data) > MAX_CHECKSUM_LIST_BYTES:
        raise FetchError(f"{what} {str(path)!r} is larger than {MAX_CHECKSUM_LIST_BYTES} bytes")
    return data


def _read_small(location: str, http: HttpClient, headers: Mapping[str, str], what: str) -> bytes:
    source = parse_source(location, what)
    if source.kind == "path":
        return _read_local_small(Path(source.location), what)
    if source.kind == "url":
        response = http.request("GET", source.location, headers)
        with response:
            if response.status != 200:
                raise TransferError(f"{what} {source.location}: HTTP {response.status}")
            data = response.read(MAX_CHECKSUM_LIST_BYTES)
    else:
        raise SourceError(f"{what} must be a URL or a path, not an OCI reference")
    if len(data) > MAX_CHECKSUM_LIST_BYTES:
        raise FetchError(f"{what} {location!r} is larger than {MAX_CHECKSUM_LIST_BYTES} bytes")
    return data


def _airgap_file(airgap_dir: str | None, name: str) -> Path | None:
    if not airgap_dir or not name:
        return None
    candidate = Path(airgap_dir) / name
    return candidate if candidate.is_file() else None


def _copy_local(src: Path, partial: Path, expected: str | None, what: str) -> DownloadStats:
    start = time.perf_counter()
    digest = hashlib.sha256()
    size = 0
    try:
        with src.open("rb", buffering=0) as reader, partial.open("wb") as writer:
            buffer = bytearray(CHUNK_SIZE)
            view = memoryview(buffer)
            while n := reader.readinto(view):
                writer.write(view[:n])
                digest.update(view[:n])
                size += n
            writer.flush()
            os.fsync(writer.fileno())
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise FetchError(f"{what}: cannot copy {str(src)!r}: {exc.strerror}") from exc
    if expected is not None and digest.hexdigest() != expected:
        partial.unlink(missing_ok=True)
        raise FetchError(
            f"{what}: {str(src)!r} has sha256 {digest.hexdigest()}, expected {expected}; "
            "replace the file with the pinned release"
        )
    return DownloadStats(digest.hexdigest(), size, size, 0, False, False, time.perf_counter() - start)


def _free_space_check(directory: Path, needed: int, what: str) -> None:
    try:
        usage = shutil.disk_usage(directory)
    except OSError:
        return
    if usage.free < needed:
        raise FetchError(
            f"{what}: {needed} bytes needed in {str(directory)!r}, only {usage.free} free; free space or move dest"
        )


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_stale_partials(dest: Path, keep: Path | None) -> None:
    for stale in dest.parent.glob(f".{dest.name}.*.partial"):
        if keep is None or stale != keep:
            with contextlib.suppress(OSError):
                stale.unlink()


def _verify_signature(request: FetchRequest, bundle: bytes | None, sha: str) -> VerifiedSignature | None:
    if not request.trusted_keys:
        return None
    return verify_model_signature(bundle, sha, request.trusted_keys)


def _present(request: FetchRequest, dest: Path, expected: str | None, result: FetchResult) -> bool:
    """True when dest already holds the expected content (and, if required, a valid signature)."""
    if expected is None or not dest.is_file():
        return False
    try:
        found = _digest.verify_sha256(str(dest), expected, force=request.force, write=not request.check_mode)
    except _digest.DigestError:
        return False
    if found.sha256 != expected:
        return False
    if request.trusted_keys:
        sig_path = Path(f"{dest}{SIGNATURE_SUFFIX}")
        bundle = sig_path.read_bytes() if sig_path.is_file() else None
        try:
            verified = _verify_signature(request, bundle, found.sha256)
        except SignatureError:
            return False  # fetch again: the signature comes with the artifact
        result.signature = verified.as_dict() if verified else {}
        result.signature_path = str(sig_path)
    result.sha256, result.size, result.cached = found.sha256, found.size, found.cached
    result.origin, result.location = "present", str(dest)
    return True


def _tls_for_host(request: FetchRequest, host: str) -> TlsOptions:
    """TLS for a connection: the embedded mirror's certificates, configs.<host>.tls (or '*'), else `tls`."""
    mirror = request.embedded_mirror
    if mirror is not None and host == mirror.address:
        return TlsOptions(mirror.ca_file, mirror.cert_file, mirror.key_file)
    configs = request.registries.configs
    config = configs.get(host) or configs.get("docker.io" if host == "registry-1.docker.io" else "*")
    if config is not None and config.tls is not None:
        return config.tls
    return request.tls


def fetch(request: FetchRequest, http: HttpClient | None = None) -> FetchResult:
    """Make `request.dest` hold the verified artifact; see the module docstring for the rules."""
    start = time.perf_counter()
    dest = Path(request.dest)
    if not dest.is_absolute():
        raise FetchError(f"dest {request.dest!r} must be an absolute path")
    if not dest.parent.is_dir():
        raise FetchError(f"dest directory {str(dest.parent)!r} does not exist; create it first")
    source = parse_source(request.source, "source") if request.source else None
    name = request.checksum_name or dest.name
    client = http or HttpClient(timeout=request.timeout, tls_for_host=lambda host: _tls_for_host(request, host))
    result = FetchResult(dest=str(dest))
    try:
        checksum_text = request.checksum_list
        if checksum_text is None and request.checksum_url:
            # The airgap directory's copy of the list wins over the URL, as the file itself does.
            checksum_text = airgap_checksum_list(request.airgap_dir, request.checksum_url)
            if checksum_text is None:
                checksum_text = _read_small(request.checksum_url, client, request.url_headers, "checksum_url").decode(
                    "utf-8", "replace"
                )
        expected = expected_sha256(sha256=request.sha256, checksum_list=checksum_text, checksum_name=name)
        airgap = _airgap_file(request.airgap_dir, request.oci_file or name)
        if expected is None and (airgap is not None or (source is not None and source.kind != "oci")):
            raise FetchError(
                "an artifact from a URL, a path or an airgap directory needs its digest: give sha256, or "
                "checksum_list/checksum_url with checksum_name"
            )
        if source is None and airgap is None:
            raise FetchError(
                f"no source: {name!r} is not in airgap_dir {request.airgap_dir!r} and no source URL or reference "
                "was given"
            )
        if _present(request, dest, expected, result):
            result.elapsed = time.perf_counter() - start
            return result
        if request.check_mode:
            result.changed = True
            result.sha256 = expected or ""
            result.origin = "airgap" if airgap else (source.kind if source else "")
            result.elapsed = time.perf_counter() - start
            return result
        if airgap is not None:
            _fetch_local(request, dest, airgap, expected, result, "airgap", client)
        elif source is not None and source.kind == "path":
            _fetch_local(request, dest, Path(source.location), expected, result, "path", client)
        elif source is not None and source.kind == "url":
            _fetch_url(request, dest, source, expected, result, client)
        elif source is not None and source.reference is not None:
            _fetch_oci(request, dest, source.reference, expected, result, client)
    except (RegistryUnreachableError, UnreachableError) as exc:
        attempts = [a.as_dict() for a in getattr(exc, "attempts", [])]
        if not request.degraded_ok:
            raise FetchUnreachableError(str(exc), attempts) from exc
        result.degraded, result.reason, result.attempts = True, str(exc), attempts
        result.changed = False
    except PullError as exc:
        raise FetchError(str(exc)) from exc
    except (TransferError, OciError) as exc:
        raise FetchError(str(exc)) from exc
    finally:
        if http is None:
            client.close()
    result.elapsed = time.perf_counter() - start
    return result


def _finish(
    request: FetchRequest,
    dest: Path,
    partial: Path,
    stats: DownloadStats,
    bundle: bytes | None,
    result: FetchResult,
) -> None:
    """Signature check, then signature and file to their final names, then the digest cache."""
    try:
        verified = _verify_signature(request, bundle, stats.sha256)
    except SignatureError:
        partial.unlink(missing_ok=True)
        raise
    if bundle is not None:
        sig_path = Path(f"{dest}{SIGNATURE_SUFFIX}")
        _atomic_write(sig_path, bundle)
        result.signature_path = str(sig_path)
    if verified is not None:
        result.signature = verified.as_dict()
    partial.replace(dest)
    _fsync_dir(dest.parent)
    st = dest.stat()
    record = _digest.CacheRecord(stats.sha256, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, time.time())
    with contextlib.suppress(_digest.DigestError):
        _digest.write_cache(str(dest), record)
    result.changed = True
    result.sha256, result.size = stats.sha256, stats.size
    result.downloaded, result.reused = stats.downloaded, stats.reused
    result.resumed, result.restarted = stats.resumed, stats.restarted


def _local_signature(request: FetchRequest, near: Path | None, client: HttpClient) -> bytes | None:
    if not request.trusted_keys:
        return None
    if request.signature:
        return _read_small(request.signature, client, request.url_headers, "signature")
    if near is not None:
        candidate = Path(f"{near}{SIGNATURE_SUFFIX}")
        if candidate.is_file():
            return candidate.read_bytes()
    return None


def _fetch_local(
    request: FetchRequest,
    dest: Path,
    src: Path,
    expected: str | None,
    result: FetchResult,
    origin: str,
    client: HttpClient,
) -> None:
    if not src.is_file():
        raise FetchError(f"source {str(src)!r} is not a file")
    partial = partial_path(dest, expected or "local")
    _remove_stale_partials(dest, None)
    _free_space_check(dest.parent, src.stat().st_size, f"copy of {src}")
    stats = _copy_local(src, partial, expected, f"copy of {src}")
    bundle = _local_signature(request, src, client)
    _finish(request, dest, partial, stats, bundle, result)
    result.origin, result.location = origin, str(src)


def _fetch_url(
    request: FetchRequest, dest: Path, source: Source, expected: str | None, result: FetchResult, client: HttpClient
) -> None:
    if expected is None:
        raise FetchError("a URL source needs its digest: give sha256, or a checksum list and checksum_name")
    partial = partial_path(dest, expected)
    _remove_stale_partials(dest, partial)
    headers = dict(request.url_headers)
    if request.url_credentials is not None:
        user, password = request.url_credentials
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def open_response(extra: Mapping[str, str]) -> Response:
        return client.request("GET", source.location, {**headers, **extra})

    stats = ranged_download(open_response, partial, what=source.location, expected_sha256=expected)
    bundle = _local_signature(request, None, client)
    if request.trusted_keys and bundle is None and not request.signature:
        bundle_url = f"{source.location}{SIGNATURE_SUFFIX}"
        with contextlib.suppress(TransferError, FetchError):
            bundle = _read_small(bundle_url, client, headers, "signature")
    _finish(request, dest, partial, stats, bundle, result)
    result.origin, result.location = "url", source.location


def _fetch_oci(
    request: FetchRequest,
    dest: Path,
    reference: Reference,
    expected: str | None,
    result: FetchResult,
    client: HttpClient,
) -> None:
    endpoints = registry_endpoints(
        request.registries,
        reference.registry,
        disable_default_endpoint=request.disable_default_endpoint,
        embedded_mirror=request.embedded_mirror,
    )
    puller = OciPuller(reference, endpoints, client, request.registry_credentials)
    try:
        manifest = puller.resolve(artifact_type=ARTIFACT_TYPE_MODEL)
        artifact = model_artifact(manifest, request.oci_file or dest.name)
        layer_sha = artifact.file.digest.removeprefix("sha256:")
        if expected is not None and layer_sha != expected:
            raise FetchError(
                f"{reference}: the artifact's {artifact.file.title!r} has sha256 {layer_sha}, but {expected} is "
                "pinned; release the pinned file under this reference or update the pin"
            )
        result.manifest_digest = manifest.digest
        partial = partial_path(dest, layer_sha)
        _remove_stale_partials(dest, partial)
        have = partial.stat().st_size if partial.exists() else 0
        _free_space_check(dest.parent, max(artifact.file.size - have, 0), f"pull of {reference}")
        stats = puller.fetch_blob(artifact.file, partial)
        bundle = None
        if artifact.signature is not None:
            bundle = puller.fetch_small_blob(artifact.signature)
        elif request.signature:
            bundle = _read_small(request.signature, client, request.url_headers, "signature")
        _finish(request, dest, partial, stats, bundle, result)
    finally:
        result.attempts = [a.as_dict() for a in puller.attempts]
    used = puller.clients[puller.used or 0].endpoint
    result.origin, result.location = "oci", f"{used.base_url} ({used.kind})"
