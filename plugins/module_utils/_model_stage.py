# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Stage one model of the site catalog on a node: fetch, verify, publish, rotate.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

Layout under the model directory (pods mount it read-only and read `<model>/current/<file>`):

    <dir>/<model>/<sha256>/<file>          a verified version; it only ever appears by a rename
    <dir>/<model>/.<sha256>.incoming/      where a version is fetched and verified (same file system)
    <dir>/<model>/current -> <sha256>      relative links, replaced atomically
    <dir>/<model>/previous -> <sha256>     the version `current` pointed at before, for rollback

One pass, cheapest checks first:

1. the catalog's description must fit the node's target at the catalog's serving
   configuration - refused before a byte is downloaded;
2. a version not on disk yet: free space (size + min_free_bytes), then `_fetch` (the collection's
   one way to fetch: URL, path or OCI reference; pinned sha256; resumable partial; digest cache
   record) into the incoming directory, then the file's own metadata (GGUF header, format) and
   fit; a refused file is removed with its incoming directory, nothing else changes;
3. publish by renaming the incoming directory to `<sha256>`: the file, `_digest`'s cache record
   (an xattr on the file, or its sidecar beside it, whatever `_digest` named it) and a signature
   move together, so the published file is never hashed again;
4. a version on disk: metadata and fit again (cheap), and the digest from the cache (hashed only
   when the cache does not match or `force`);
5. `current` -> this version, `previous` -> the one it replaced, older versions pruned beyond
   `keep_versions`, stale incoming directories of other versions removed.

Degraded mode: when the new version's source cannot be reached at all (every registry endpoint or
the URL refuses the connection, times out or answers 5xx/429 - `_fetch`'s definition) and a verified
version is current, nothing changes: the node keeps serving `current`, and the result says
`degraded` with the reason and every endpoint tried. A source that answers wrongly (a wrong digest,
a bad or missing signature, refused credentials) is still a failure, and so is an unreachable source
with nothing to serve.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible_collections.edgeslm.pi5.plugins.module_utils import _digest
from ansible_collections.edgeslm.pi5.plugins.module_utils._fetch import FetchRequest, FetchResult, fetch
from ansible_collections.edgeslm.pi5.plugins.module_utils._gguf import GGUF_MAGIC, GGUFError, read_gguf
from ansible_collections.edgeslm.pi5.plugins.module_utils._oci import RegistriesConfig
from ansible_collections.edgeslm.pi5.plugins.module_utils._signature import TrustedKey
from ansible_collections.edgeslm.pi5.plugins.module_utils._targets import FitResult, check_fit

__all__ = ["ModelToStage", "StageError", "StageRequest", "StageResult", "model_from_mapping", "stage"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_FILE = re.compile(r"[A-Za-z0-9._-]+\.(gguf|hef)")
INCOMING = ".{sha}.incoming"
KV_TYPES = ("f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "iq4_nl")


class StageError(ValueError):
    """The model cannot be staged; the message names the model, the field or the numbers, and the fix."""


def version_path(directory: str, name: str, sha256: str, file: str) -> str:
    """Where a verified version of a model lies once published: `<dir>/<name>/<sha256>/<file>`."""
    return str(Path(directory) / name / sha256 / file)


@dataclass(frozen=True)
class ModelToStage:
    """One entry of the site_models filter (_catalog.SiteCatalog.models_to_stage)."""

    name: str
    file: str
    format: str
    url: str
    sha256: str
    size_bytes: int
    memory_runtime: str
    fit_target: str
    context_length: int
    parallel: int
    kv_cache_type: str
    batch_size: int
    flash_attention: bool
    mmap: bool
    description: Mapping[str, Any]


def _int(item: Mapping[str, Any], key: str, where: str, minimum: int) -> int:
    value = item.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StageError(f"{where}.{key} must be an integer >= {minimum}, got {value!r}")
    return value


def model_from_mapping(item: Mapping[str, Any], where: str = "model") -> ModelToStage:
    """Check one site_models entry; refusals name the field."""
    if not isinstance(item, Mapping):
        raise StageError(f"{where} must be a mapping (an entry of the edgeslm.pi5.site_models filter)")
    missing = [
        key
        for key in ("name", "file", "format", "url", "sha256", "size_bytes", "fit_target", "context_length")
        if key not in item
    ]
    if missing:
        raise StageError(
            f"{where} lacks {', '.join(missing)}: take the models from the site catalog with the "
            "edgeslm.pi5.site_models filter"
        )
    name = str(item["name"])
    where = f"{where}[{name}]"
    if not _NAME.fullmatch(name):
        raise StageError(f"{where}.name {name!r} must be a DNS label (its folder under the model directory)")
    file = str(item["file"])
    if not _FILE.fullmatch(file):
        raise StageError(f"{where}.file {file!r} must be a plain file name ending .gguf or .hef")
    try:
        sha = _digest.normalize_sha256(str(item["sha256"]), f"{where}.sha256")
    except _digest.DigestError as exc:
        raise StageError(f"{exc}; fix the catalog's sha256") from exc
    fmt = str(item["format"])
    if fmt not in ("gguf", "hef") or not file.endswith("." + fmt):
        raise StageError(f"{where}.format {fmt!r} must be gguf or hef and match the file name {file!r}")
    kv = str(item.get("kv_cache_type", "f16"))
    if kv not in KV_TYPES:
        raise StageError(f"{where}.kv_cache_type {kv!r} is not one of {', '.join(KV_TYPES)}")
    description = item.get("description") or {}
    if not isinstance(description, Mapping):
        raise StageError(f"{where}.description must be a mapping")
    return ModelToStage(
        name=name,
        file=file,
        format=fmt,
        url=str(item["url"]),
        sha256=sha,
        size_bytes=_int(item, "size_bytes", where, 1),
        memory_runtime=str(item.get("memory_runtime") or "llama.cpp"),
        fit_target=str(item["fit_target"]),
        context_length=_int(item, "context_length", where, 1),
        parallel=_int({"parallel": item.get("parallel", 1)}, "parallel", where, 1),
        kv_cache_type=kv,
        batch_size=_int({"batch_size": item.get("batch_size", 512)}, "batch_size", where, 1),
        flash_attention=bool(item.get("flash_attention", False)),
        mmap=bool(item.get("mmap", True)),
        description=dict(description),
    )


@dataclass(frozen=True)
class StageRequest:
    directory: str
    model: ModelToStage
    keep_versions: int = 2
    min_free_bytes: int = 1 << 30
    reserve_bytes: int | None = None
    force: bool = False
    timeout: float = 60.0
    registries: RegistriesConfig = field(default_factory=RegistriesConfig)
    trusted_keys: tuple[TrustedKey, ...] = ()
    # A directory on the node holding `<file>` (the model's airgap copy): it wins over the model's URL.
    airgap_dir: str | None = None
    check_mode: bool = False


@dataclass
class StageResult:
    changed: bool = False
    hashed: bool = False  # this run hashed the file (while fetching it, or because the cache missed)
    entry: dict[str, Any] = field(default_factory=dict)
    fetch: dict[str, Any] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)
    # Set when the new version could not be fetched and `current` keeps being served: reason, attempts,
    # the sha256 served and the one the catalog wants.
    degraded: dict[str, Any] = field(default_factory=dict)


def _fit(model: ModelToStage, description: Mapping[str, Any], reserve: int | None) -> FitResult:
    try:
        return check_fit(
            description,
            model.fit_target,
            context_length=model.context_length,
            kv_cache_type=model.kv_cache_type,
            parallel=model.parallel,
            reserve_bytes=reserve,
            batch_size=model.batch_size,
            mmap=model.mmap,
            flash_attention=model.flash_attention,
            runtime=model.memory_runtime,
        )
    except ValueError as exc:
        raise StageError(f"model {model.name}: the fit check cannot run: {exc}") from exc


def _refuse_misfit(model: ModelToStage, fit: FitResult, what: str) -> None:
    if not fit.fits:
        raise StageError(
            f"model {model.name} ({model.file}) cannot be served on {model.fit_target} ({what}): "
            + "; ".join(fit.problems)
            + ". Nothing was published and the current version stays; change the catalog's serving settings, "
            "target or node class."
        )


def _file_checks(model: ModelToStage, path: Path, reserve: int | None) -> tuple[FitResult, dict[str, Any]]:
    """The file's own metadata (GGUF) and the fit it gives; no hashing."""
    info: dict[str, Any] = {}
    if model.format == "gguf":
        with path.open("rb") as stream:
            if stream.read(4) != GGUF_MAGIC:
                raise StageError(f"model {model.name}: {path} is not a GGUF file (no GGUF magic)")
        try:
            gguf = read_gguf(path)
        except GGUFError as exc:
            raise StageError(f"model {model.name}: {path}: corrupt or unusable GGUF file: {exc}") from exc
        description = gguf.description()
        info = {"quantization": gguf.quantization}
    else:
        description = dict(model.description)
    fit = _fit(model, description, reserve)
    _refuse_misfit(model, fit, "from the file's metadata")
    return fit, info


def _free_bytes(path: Path) -> int:
    probe = path
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def _readlink(path: Path) -> str:
    try:
        return str(path.readlink())
    except OSError:
        return ""


def _link(path: Path, target: str) -> bool:
    """Point `path` at `target` (relative), atomically; True when it changed."""
    if _readlink(path) == target and path.is_symlink():
        return False
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(path)
    return True


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _versions(home: Path) -> list[Path]:
    if not home.is_dir():
        return []
    found = [p for p in home.iterdir() if p.is_dir() and not p.is_symlink() and _HEX64.fullmatch(p.name)]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _fetch_version(request: StageRequest, home: Path, result: StageResult, serving: str = "") -> Path | None:
    """Fetch and verify into the incoming directory; return it (or raise, leaving nothing behind).

    With a version `serving` (current), an unreachable source returns None (degraded) instead.
    """
    model = request.model
    needed = model.size_bytes + request.min_free_bytes
    free = _free_bytes(home)
    if free < needed:
        raise StageError(
            f"not enough disk space for {model.file}: it needs {model.size_bytes} bytes plus "
            f"model_cache_min_free_bytes {request.min_free_bytes} bytes to stay free, and {free} bytes are "
            f"available under {home.parent}. "
            "Free space, move model_cache_dir to the SSD, or stage fewer models."
        )
    incoming = home / INCOMING.format(sha=model.sha256)
    if request.check_mode:
        result.actions.append(f"fetch {model.url}")
        return incoming
    home.mkdir(mode=0o755, parents=True, exist_ok=True)
    incoming.mkdir(mode=0o755, exist_ok=True)
    dest = incoming / model.file
    try:
        fetched: FetchResult = fetch(
            FetchRequest(
                dest=str(dest),
                source=model.url,
                sha256=model.sha256,
                airgap_dir=request.airgap_dir,
                registries=request.registries,
                trusted_keys=request.trusted_keys,
                timeout=request.timeout,
                force=request.force,
                degraded_ok=bool(serving),
            )
        )
        result.fetch = fetched.as_dict()
        if fetched.degraded:
            with contextlib.suppress(OSError):
                if not any(incoming.iterdir()):
                    incoming.rmdir()
            result.degraded = {
                "reason": fetched.reason,
                "attempts": fetched.attempts,
                "serving": serving,
                "wanted": model.sha256,
            }
            return None
        dest.chmod(0o644)
        _file_checks(model, dest, request.reserve_bytes)
    except (ValueError, OSError) as exc:
        # A resumable partial download stays for the next run; a refused file goes with its folder.
        dest.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            if not any(p.name.endswith(".partial") for p in incoming.iterdir()):
                shutil.rmtree(incoming)
        with contextlib.suppress(OSError):
            home.rmdir()  # only when empty: a model with versions keeps its folder
        if isinstance(exc, StageError):
            raise
        raise StageError(
            f"model {model.name} ({model.file}) from {model.url}: {exc}. Nothing was published and the current "
            "version stays."
        ) from exc
    result.actions.append(f"fetched {model.file} ({fetched.origin}, {fetched.downloaded} bytes)")
    return incoming


def stage(request: StageRequest) -> StageResult:
    """Make `<dir>/<model>/current/<file>` the verified catalog version; see the module docstring."""
    model = request.model
    if request.keep_versions < 1:
        raise StageError(
            f"model_cache_keep_versions must be at least 1 (the current version), got {request.keep_versions}"
        )
    directory = Path(request.directory)
    if not directory.is_absolute():
        raise StageError(f"model_cache_dir {request.directory!r} must be an absolute path")
    final = Path(version_path(request.directory, model.name, model.sha256, model.file))
    version = final.parent
    home = version.parent
    result = StageResult()
    fetched_now = False

    # 1. The catalog's description must fit before anything is fetched.
    if model.description:
        _refuse_misfit(model, _fit(model, model.description, request.reserve_bytes), "from the catalog's description")

    # 2./3. Fetch, verify and publish a version not on disk yet.
    if not final.is_file():
        if version.exists():
            # A version directory without its file is not ours to fill: only a rename creates one.
            if any(version.iterdir()):
                raise StageError(f"{version} exists without {model.file} but is not empty: remove it, then re-run")
            if not request.check_mode:
                version.rmdir()
        serving = _readlink(home / "current")
        if not (home / serving).is_dir() or not _HEX64.fullmatch(serving):
            serving = ""
        incoming = _fetch_version(request, home, result, serving)
        if incoming is None:
            result.entry = _served_entry(request, home, serving)
            result.actions.append(f"degraded: {model.url} unreachable, kept serving {serving}")
            return result
        result.changed = fetched_now = True
        if request.check_mode:
            result.entry = _entry(request, None, {}, None, "", [], home)
            return result
        incoming.rename(version)
        with contextlib.suppress(OSError):
            fd = os.open(home, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        result.actions.append(f"published {final}")

    # 4. The version on disk: metadata and fit again, digest from the cache.
    fit, info = _file_checks(model, final, request.reserve_bytes)
    try:
        digest = _digest.verify_sha256(str(final), model.sha256, force=request.force, write=not request.check_mode)
    except _digest.DigestError as exc:
        raise StageError(f"model {model.name}: {exc}") from exc
    if digest.sha256 != model.sha256:
        raise StageError(
            f"model {model.name}: {final} has sha256 {digest.sha256}, the catalog pins {model.sha256}: checksum "
            "mismatch (the file changed on disk). Remove the version directory and re-run, or fix the catalog."
        )

    # 5. Links and rotation.
    current_before = _readlink(home / "current")
    previous = _readlink(home / "previous")
    if current_before and current_before != model.sha256:
        previous = current_before
    if request.keep_versions < 2 or previous == model.sha256:
        previous = ""
    keep = [model.sha256] + ([previous] if previous else [])
    for other in _versions(home):
        if other.name not in keep:
            keep.append(other.name)
    keep = keep[: request.keep_versions]
    if previous and previous not in keep:
        previous = ""
    changes = []
    if not request.check_mode:
        if previous and _link(home / "previous", previous):
            changes.append(f"previous -> {previous}")
        if not previous and (home / "previous").is_symlink():
            (home / "previous").unlink()
            changes.append("previous removed")
        if _link(home / "current", model.sha256):
            changes.append(f"current -> {model.sha256}")
    else:
        if current_before != model.sha256 or _readlink(home / "previous") != previous:
            changes.append("links")
    for other in _versions(home):
        if other.name not in keep:
            changes.append(f"pruned {other.name}")
            if not request.check_mode:
                shutil.rmtree(other)
    for stale in home.glob(".*.incoming"):
        if stale.name != INCOMING.format(sha=model.sha256):
            changes.append(f"removed {stale.name}")
            if not request.check_mode:
                shutil.rmtree(stale, ignore_errors=True)
    if changes:
        result.changed = True
        result.actions.extend(changes)
    record = _digest.read_cache(str(final), final.stat())
    result.entry = _entry(request, fit, info, digest, previous, keep, home, record)
    # The download was hashed while it was written, even when the check above read the cache.
    result.hashed = fetched_now or not digest.cached
    return result


def _served_entry(request: StageRequest, home: Path, serving: str) -> dict[str, Any]:
    """The model's fact line while degraded: the version still served, and what the catalog wants."""
    model = request.model
    files = sorted(p.name for p in (home / serving).iterdir() if _FILE.fullmatch(p.name))
    file = files[0] if files else model.file
    record = _digest.read_cache(str(home / serving / file), (home / serving / file).stat()) if files else None
    return {
        "name": model.name,
        "file": file,
        "sha256": serving,
        "path": str(home / "current" / file),
        "version_dir": str(home / serving),
        "previous": _readlink(home / "previous"),
        "format": model.format,
        "target": model.fit_target,
        "verified_at": _iso(record.verified_at) if record else "",
        "degraded": f"the catalog's version {model.sha256} could not be fetched: {model.url} is unreachable",
    }


def _entry(
    request: StageRequest,
    fit: FitResult | None,
    info: Mapping[str, Any],
    digest: _digest.DigestResult | None,
    previous: str,
    keep: Sequence[str],
    home: Path,
    record: _digest.CacheRecord | None = None,
) -> dict[str, Any]:
    """The model's line in the role's local fact."""
    model = request.model
    return {
        "name": model.name,
        "file": model.file,
        "sha256": model.sha256,
        "size": digest.size if digest else model.size_bytes,
        "path": str(home / "current" / model.file),
        "version_dir": str(home / model.sha256),
        "previous": previous,
        "kept_versions": list(keep),
        "format": model.format,
        "quantization": str(info.get("quantization", "")),
        "target": model.fit_target,
        "context_length": model.context_length,
        "parallel": model.parallel,
        "kv_cache_type": model.kv_cache_type,
        "fits": fit.fits if fit else None,
        "needed_bytes": fit.needed if fit else 0,
        "available_bytes": fit.available if fit else 0,
        # The time of the last hash: the digest cache record's, so a re-run that did not hash keeps it
        # (and the line stays the same: the role's fact changes only when something did).
        "verified_at": _iso(record.verified_at) if record else "",
        "cache_store": digest.cache_store if digest else "",
    }
