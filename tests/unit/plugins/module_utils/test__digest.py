# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Streaming SHA-256 and the (size, mtime_ns, inode, device) verification cache."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from unittest import mock

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _digest as D

HEX = "ab" * 32


def _file(tmp_path: Path, size: int, name: str = "model.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def _xattrs_work(path: Path) -> bool:
    try:
        os.setxattr(path, "user.edgeslm.probe", b"1")
        os.removexattr(path, "user.edgeslm.probe")
        return True
    except OSError:
        return False


@pytest.mark.parametrize("size", [0, 1, D.CHUNK_SIZE - 1, D.CHUNK_SIZE, D.CHUNK_SIZE + 1, 3 * D.CHUNK_SIZE + 17])
def test_digest_matches_hashlib_at_chunk_boundaries(tmp_path: Path, size: int) -> None:
    path = _file(tmp_path, size)
    sha, st = D.sha256_file(str(path))
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    assert st.st_size == size


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (HEX, True),
        (HEX.upper(), True),
        (f"sha256:{HEX}", True),
        (f"  {HEX}\n", True),
        (HEX[:-1], False),
        (HEX + "a", False),
        ("g" * 64, False),
        ("", False),
        (None, False),
        (12, False),
        (f"md5:{HEX}", False),
    ],
)
def test_is_sha256_hex(value: object, expected: bool) -> None:
    assert D.is_sha256_hex(value) is expected


def test_normalize_sha256_refuses_with_field_name() -> None:
    assert D.normalize_sha256(f"SHA256:{HEX.upper()}") == HEX
    with pytest.raises(D.DigestError, match=r"catalog\.sha256 must be 64 hexadecimal digits"):
        D.normalize_sha256("abc", "catalog.sha256")


def test_missing_file_is_a_digest_error(tmp_path: Path) -> None:
    with pytest.raises(D.DigestError, match="cannot stat"):
        D.verify_sha256(str(tmp_path / "absent"))
    with pytest.raises(D.DigestError, match="cannot open"):
        D.sha256_file(str(tmp_path / "absent"))


def test_second_run_is_cached_and_force_rehashes(tmp_path: Path) -> None:
    path = _file(tmp_path, 5000)
    first = D.verify_sha256(str(path))
    assert not first.cached
    assert first.cache_store in ("xattr", "sidecar")
    with mock.patch.object(D, "_hash_fd", side_effect=AssertionError("must not hash")):
        second = D.verify_sha256(str(path))
    assert second.cached and second.sha256 == first.sha256
    forced = D.verify_sha256(str(path), force=True)
    assert not forced.cached and forced.sha256 == first.sha256


def test_changed_file_is_rehashed(tmp_path: Path) -> None:
    path = _file(tmp_path, 5000)
    first = D.verify_sha256(str(path))
    path.write_bytes(os.urandom(5000))  # same size, new mtime
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 1_000_000))
    second = D.verify_sha256(str(path))
    assert not second.cached
    assert second.sha256 != first.sha256


def test_stale_cache_never_fails_a_good_file(tmp_path: Path) -> None:
    """A cache hit that disagrees with the expected digest is re-hashed before judging."""
    path = _file(tmp_path, 4096)
    real = hashlib.sha256(path.read_bytes()).hexdigest()
    st = path.stat()
    bogus = D.CacheRecord("0" * 64, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, 0.0)
    D.write_cache(str(path), bogus)
    result = D.verify_sha256(str(path), real)
    assert not result.cached
    assert result.sha256 == real


def test_cache_off_hashes_and_stores_nothing(tmp_path: Path) -> None:
    path = _file(tmp_path, 100)
    result = D.verify_sha256(str(path), use_cache=False)
    assert result.cache_store == "none"
    assert D.read_cache(str(path), path.stat()) is None


def test_write_false_reads_but_does_not_store(tmp_path: Path) -> None:
    path = _file(tmp_path, 100)
    D.verify_sha256(str(path), write=False)
    assert D.read_cache(str(path), path.stat()) is None


def test_xattr_record_key_excludes_ctime(tmp_path: Path) -> None:
    path = _file(tmp_path, 100)
    if not _xattrs_work(path):
        pytest.skip("file system without user xattrs")
    D.verify_sha256(str(path))
    raw = os.getxattr(path, D.CACHE_XATTR)
    record = D.CacheRecord.from_json(raw)
    assert record is not None
    assert record.key() == D.cache_key(path.stat())  # still valid after setxattr bumped ctime
    assert b"ctime" not in raw


def test_sidecar_fallback_when_xattrs_are_unsupported(tmp_path: Path) -> None:
    path = _file(tmp_path, 2048)
    unsupported = OSError(95, "Operation not supported")
    with (
        mock.patch.object(os, "setxattr", side_effect=unsupported),
        mock.patch.object(os, "getxattr", side_effect=unsupported),
    ):
        first = D.verify_sha256(str(path))
        assert first.cache_store == "sidecar"
        assert D.sidecar_path(str(path)).is_file()
        second = D.verify_sha256(str(path))
    assert second.cached
    assert second.cache_store == "sidecar"


def test_unwritable_directory_means_no_cache_not_an_error(tmp_path: Path) -> None:
    path = _file(tmp_path, 64)
    unsupported = OSError(95, "Operation not supported")
    with (
        mock.patch.object(os, "setxattr", side_effect=unsupported),
        mock.patch("tempfile.mkstemp", side_effect=PermissionError(13, "denied")),
    ):
        assert D.verify_sha256(str(path)).cache_store == "none"


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"v": 2, "algorithm": "sha256"}',
        b'{"v": 1, "algorithm": "md5", "sha256": "' + HEX.encode() + b'", "size": 1, "mtime_ns": 1, "inode": 1, '
        b'"device": 1}',
        b'{"v": 1, "algorithm": "sha256", "sha256": "xyz", "size": 1, "mtime_ns": 1, "inode": 1, "device": 1}',
        b'{"v": 1, "algorithm": "sha256", "sha256": "' + HEX.encode() + b'", "size": "1", "mtime_ns": 1, '
        b'"inode": 1, "device": 1}',
        b'{"v": 1, "algorithm": "sha256", "sha256": "' + HEX.encode() + b'"}',
    ],
)
def test_malformed_cache_records_are_ignored(raw: bytes) -> None:
    assert D.CacheRecord.from_json(raw) is None


def test_cache_record_round_trip() -> None:
    record = D.CacheRecord(HEX, 10, 20, 30, 40, 1.5)
    assert D.CacheRecord.from_json(record.to_json()) == record


def test_file_growing_during_hash_is_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, 3 * D.CHUNK_SIZE)
    real_hash = D._hash_fd

    def grow_then_hash(fd: int) -> str:
        with path.open("ab") as stream:
            stream.write(b"more")
        return real_hash(fd)

    with mock.patch.object(D, "_hash_fd", side_effect=grow_then_hash), pytest.raises(D.FileChangedError):
        D.sha256_file(str(path))


def test_foreign_xattr_error_is_reported(tmp_path: Path) -> None:
    path = _file(tmp_path, 64)
    with (
        mock.patch.object(os, "setxattr", side_effect=OSError(5, "Input/output error")),
        pytest.raises(D.DigestError, match="cannot store the verification cache"),
    ):
        D.write_cache(str(path), D.CacheRecord(HEX, 64, 1, 1, 1, 0.0))
