# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Streaming SHA-256 of multi-GB files in constant memory, with a verification cache.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

Why this shape (docs/performance-baselines.md, section 1): an unbuffered file read with
`readinto` into a page-aligned anonymous mmap buffer runs at ~0.9x `openssl dgst` and does
not depend on malloc's buffer placement; `hashlib.file_digest` and `readinto(bytearray)`
lose ~30 % across processes; hashing an mmap of the whole file makes RSS grow to the file
size. The cache (section 3) keys a verified digest on (size, mtime_ns, inode, device):
ctime cannot be part of it because writing the xattr itself changes ctime.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import mmap
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CACHE_XATTR",
    "CacheRecord",
    "DigestError",
    "DigestResult",
    "FileChangedError",
    "cache_key",
    "is_sha256_hex",
    "normalize_sha256",
    "read_cache",
    "sha256_file",
    "sidecar_path",
    "verify_sha256",
    "write_cache",
]

CHUNK_SIZE = 1 << 20
CACHE_XATTR = "user.edgeslm.sha256.v1"
CACHE_VERSION = 1
_HEX64 = re.compile(r"[0-9a-f]{64}")
# Errors meaning "this file system or file cannot carry user xattrs": fall back to a sidecar.
_NO_XATTR = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES, errno.EROFS, errno.ENOSPC, errno.E2BIG}


class DigestError(ValueError):
    """The file cannot be hashed, or a checksum argument is malformed."""


class FileChangedError(DigestError):
    """The file changed (size or mtime) while it was being hashed."""


def is_sha256_hex(value: object) -> bool:
    """True for a 64-digit hex string (either case, optional `sha256:` prefix)."""
    if not isinstance(value, str):
        return False
    text = value.strip().lower()
    text = text.removeprefix("sha256:")
    return _HEX64.fullmatch(text) is not None


def normalize_sha256(value: str, field_name: str = "sha256") -> str:
    """Lower-case 64-digit hex; accepts a `sha256:` prefix as Hugging Face and OCI write it."""
    if not is_sha256_hex(value):
        raise DigestError(
            f"{field_name} must be 64 hexadecimal digits (optionally prefixed 'sha256:'), got {str(value)[:80]!r}"
        )
    return value.strip().lower().removeprefix("sha256:")


@dataclass(frozen=True)
class DigestResult:
    """The outcome of hashing (or of a cache hit)."""

    sha256: str
    size: int
    cached: bool
    elapsed: float
    cache_store: str  # where the record lives afterwards: "xattr", "sidecar" or "none"

    @property
    def bytes_per_second(self) -> float:
        return self.size / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True)
class CacheRecord:
    """A digest verified earlier, valid while the file's identity key is unchanged."""

    sha256: str
    size: int
    mtime_ns: int
    inode: int
    device: int
    verified_at: float

    def key(self) -> tuple[int, int, int, int]:
        return (self.size, self.mtime_ns, self.inode, self.device)

    def to_json(self) -> bytes:
        data = {
            "v": CACHE_VERSION,
            "algorithm": "sha256",
            "sha256": self.sha256,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "inode": self.inode,
            "device": self.device,
            "verified_at": round(self.verified_at, 3),
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> CacheRecord | None:
        """Parse a record; anything malformed is treated as no record (it is only a cache)."""
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("v") != CACHE_VERSION or data.get("algorithm") != "sha256":
                return None
            ints = [data[name] for name in ("size", "mtime_ns", "inode", "device")]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
                return None
            sha = data["sha256"]
            verified_at = float(data.get("verified_at", 0.0))
            if not (isinstance(sha, str) and _HEX64.fullmatch(sha)):
                return None
            return cls(sha, ints[0], ints[1], ints[2], ints[3], verified_at)
        except (ValueError, KeyError, TypeError):
            return None


def cache_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def sidecar_path(path: str) -> Path:
    """Hidden file next to the model: `.NAME.sha256.json`."""
    model = Path(path).absolute()
    return model.with_name(f".{model.name}.sha256.json")


def _hash_fd(fd: int) -> str:
    digest = hashlib.sha256()
    # Page-aligned anonymous buffer: fast whatever malloc's state (see module docstring).
    buf = mmap.mmap(-1, CHUNK_SIZE)
    view = memoryview(buf)
    try:
        with os.fdopen(os.dup(fd), "rb", buffering=0) as stream:
            while True:
                n = stream.readinto(view)
                if not n:
                    break
                digest.update(view[:n])
    finally:
        view.release()
        buf.close()
    return digest.hexdigest()


def sha256_file(path: str) -> tuple[str, os.stat_result]:
    """SHA-256 of a file in constant memory; refuses a file that changes while hashed."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise DigestError(f"cannot open {path!r} for hashing: {exc.strerror}") from exc
    try:
        before = os.fstat(fd)
        if hasattr(os, "posix_fadvise"):
            # Doubles read-ahead on Linux: cold reads from SD/NVMe on a Pi are I/O bound.
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        try:
            sha = _hash_fd(fd)
        except OSError as exc:
            raise DigestError(f"read error while hashing {path!r}: {exc.strerror}") from exc
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if cache_key(before)[:2] != cache_key(after)[:2]:
        raise FileChangedError(
            f"{path!r} changed while it was hashed (size {before.st_size} -> {after.st_size}); "
            "wait for the download or copy to finish and run again"
        )
    return sha, after


def read_cache(path: str, st: os.stat_result) -> CacheRecord | None:
    """Return the cached record if it matches the file's current identity key."""
    for raw in (_read_xattr(path), _read_sidecar(path)):
        if raw is None:
            continue
        record = CacheRecord.from_json(raw)
        if record is not None and record.key() == cache_key(st):
            return record
    return None


def _read_xattr(path: str) -> bytes | None:
    if not hasattr(os, "getxattr"):
        return None
    try:
        return os.getxattr(path, CACHE_XATTR)
    except OSError:
        return None


def _read_sidecar(path: str) -> bytes | None:
    try:
        with sidecar_path(path).open("rb") as stream:
            return stream.read(4096)
    except OSError:
        return None


def write_cache(path: str, record: CacheRecord) -> str:
    """Store the record in the xattr, else in the sidecar; returns where, or "none"."""
    payload = record.to_json()
    if hasattr(os, "setxattr"):
        try:
            os.setxattr(path, CACHE_XATTR, payload)
            _remove_stale_sidecar(path)
            return "xattr"
        except OSError as exc:
            if exc.errno not in _NO_XATTR:
                raise DigestError(f"cannot store the verification cache on {path!r}: {exc.strerror}") from exc
    if _write_sidecar(path, payload):
        return "sidecar"
    return "none"


def _remove_stale_sidecar(path: str) -> None:
    # Absent or not ours to remove is fine: a stale sidecar never matches a changed key anyway.
    with contextlib.suppress(OSError):
        sidecar_path(path).unlink()


def _write_sidecar(path: str, payload: bytes) -> bool:
    """Atomic write (temp file + rename) so a crash never leaves half a record."""
    target = sidecar_path(path)
    try:
        fd, name = tempfile.mkstemp(prefix=".sha256-", dir=target.parent)
    except OSError:
        return False  # read-only directory: caching is an optimisation, skip it
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(payload)
        tmp.replace(target)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False


def _cached_store(path: str) -> str:
    return "xattr" if _read_xattr(path) is not None else "sidecar"


def verify_sha256(
    path: str,
    expected: str | None = None,
    *,
    force: bool = False,
    use_cache: bool = True,
    write: bool = True,
) -> DigestResult:
    """SHA-256 of `path`, from the cache when the file is unchanged since it was last hashed.

    `expected` only matters for one decision: a cache hit that disagrees with it is
    re-hashed once before the caller reports a mismatch, so a stale cache can never
    turn a good file into a failure. Comparing against `expected` is the caller's job.
    """
    start = time.perf_counter()
    try:
        st = Path(path).stat()
    except OSError as exc:
        raise DigestError(f"cannot stat {path!r}: {exc.strerror}") from exc
    want = normalize_sha256(expected, "expected sha256") if expected is not None else None
    if use_cache and not force:
        record = read_cache(path, st)
        if record is not None and (want is None or record.sha256 == want):
            return DigestResult(record.sha256, st.st_size, True, time.perf_counter() - start, _cached_store(path))
    sha, st = sha256_file(path)
    store = "none"
    if use_cache and write:
        record = CacheRecord(sha, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, time.time())
        store = write_cache(path, record)
    return DigestResult(sha, st.st_size, False, time.perf_counter() - start, store)
