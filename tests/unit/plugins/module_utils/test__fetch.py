# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""_fetch: checksum lists, sources, local/airgap copies and resumable HTTP downloads.

The HTTP cases use a loopback test server (ThreadingHTTPServer on 127.0.0.1, stopped by the
fixture) that serves one file, honours or ignores Range as the test asks, and counts bytes.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _digest
from ansible_collections.edgeslm.pi5.plugins.module_utils import _fetch as F

DIGEST_A = "a" * 64
LISTING = f"{DIGEST_A}  k3s\n{'b' * 64} *k3s-arm64\n# comment\n\n{'c' * 64}  ./wasmedge.tar.gz\n"


# --- checksum lists ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "digest"), [("k3s", DIGEST_A), ("k3s-arm64", "b" * 64), ("wasmedge.tar.gz", "c" * 64)]
)
def test_checksum_for(name: str, digest: str) -> None:
    assert F.checksum_for(LISTING, name) == digest


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        (LISTING, "k3s-armhf", r"does not name 'k3s-armhf' \(it lists k3s, k3s-arm64, wasmedge.tar.gz\)"),
        ("nonsense", "k3s", "line 1 is not"),
        (f"{DIGEST_A}  k3s\n{'d' * 64}  k3s\n", "k3s", "twice with different digests"),
        ("", "k3s", "it lists nothing"),
    ],
)
def test_checksum_refusals(text: str, name: str, message: str) -> None:
    with pytest.raises(F.ChecksumListError, match=message):
        F.checksum_for(text, name)


def test_one_checksum_parser_in_the_collection() -> None:
    """One truth: no other module parses sha256sum lines."""
    root = Path(__file__).resolve().parents[4] / "plugins"
    pattern = "[0-9a-fA-F]{64}) [ *]?"
    holders = [p.name for p in root.rglob("*.py") if pattern in p.read_text()]
    assert holders == ["_fetch.py"]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"sha256": f"sha256:{DIGEST_A.upper()}"}, DIGEST_A),
        ({"checksum_list": LISTING, "checksum_name": "k3s"}, DIGEST_A),
        ({}, None),
    ],
)
def test_expected_sha256(kwargs: dict[str, str], expected: str | None) -> None:
    assert F.expected_sha256(**kwargs) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sha256": DIGEST_A, "checksum_list": LISTING}, "not both"),
        ({"sha256": "abc"}, "64 hexadecimal digits"),
        ({"checksum_list": LISTING}, "checksum_name is required"),
    ],
)
def test_expected_sha256_refusals(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(F.FetchError, match=message):
        F.expected_sha256(**kwargs)


# --- sources ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "location"),
    [
        ("https://example.invalid/k3s", "url", "https://example.invalid/k3s"),
        ("http://127.0.0.1:8080/a%2Bb", "url", "http://127.0.0.1:8080/a%2Bb"),
        ("file:///srv/airgap/k3s", "path", "/srv/airgap/k3s"),
        ("/srv/airgap/k3s", "path", "/srv/airgap/k3s"),
        ("oci://registry.example:5000/models/tiny:v1", "oci", "oci://registry.example:5000/models/tiny:v1"),
    ],
)
def test_parse_source(text: str, kind: str, location: str) -> None:
    source = F.parse_source(text)
    assert (source.kind, source.location) == (kind, location)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("ftp://host/file", "scheme 'ftp' is not supported"),
        ("relative/file", "needs the oci:// prefix"),
        ("registry.example/models/tiny:v1", "needs the oci:// prefix"),
        ("oci://registry.example/Models/tiny:v1", "lower-case"),
        ("oci://registry.example/models/tiny", "neither a tag nor a digest"),
        ("https://", "has no host"),
    ],
)
def test_parse_source_refusals(text: str, message: str) -> None:
    with pytest.raises(F.SourceError, match=message):
        F.parse_source(text)


# --- local and airgap copies --------------------------------------------------------------------


@pytest.fixture
def artifact(tmp_path: Path) -> tuple[Path, str]:
    src = tmp_path / "src" / "k3s"
    src.parent.mkdir()
    data = os.urandom(2 * (1 << 20) + 7)
    src.write_bytes(data)
    return src, hashlib.sha256(data).hexdigest()


def test_path_source_copied_atomically_and_cached(artifact: tuple[Path, str], tmp_path: Path) -> None:
    src, sha = artifact
    dest = tmp_path / "bin" / "k3s"
    dest.parent.mkdir()
    result = F.fetch(F.FetchRequest(dest=str(dest), source=str(src), sha256=sha))
    assert result.changed and result.origin == "path" and dest.read_bytes() == src.read_bytes()
    record = _digest.read_cache(str(dest), dest.stat())
    assert record is not None and record.sha256 == sha  # model_verify will not hash it again
    again = F.fetch(F.FetchRequest(dest=str(dest), source=str(src), sha256=sha))
    assert not again.changed and again.cached


def test_airgap_artifact_on_the_controller(artifact: tuple[Path, str]) -> None:
    """The controller's copy is hashed where it lies; a mismatch is refused before any transfer."""
    src, sha = artifact
    found = F.airgap_artifact(str(src.parent), "k3s", sha)
    assert found == F.AirgapArtifact(str(src), sha, src.stat().st_size)
    assert F.airgap_artifact(str(src.parent), "k3s-arm64", sha) is None
    with pytest.raises(F.FetchError, match="nothing was copied to the node"):
        F.airgap_artifact(str(src.parent), "k3s", "b" * 64)
    with pytest.raises(F.FetchError, match="no digest"):
        F.airgap_artifact(str(src.parent), "k3s", None)


def test_airgap_checksum_list_is_read_by_the_url_s_file_name(artifact: tuple[Path, str]) -> None:
    src, sha = artifact
    (src.parent / "sha256sum-amd64.txt").write_text(f"{sha}  k3s\n")
    url = "https://releases.example/v9.8.7%2Bk3s1/sha256sum-amd64.txt"
    listed = F.airgap_checksum_list(str(src.parent), url)
    assert listed is not None and F.checksum_for(listed, "k3s") == sha
    assert F.airgap_checksum_list(str(src.parent), "https://releases.example/sha256sum-arm64.txt") is None
    assert F.airgap_checksum_list(str(src.parent), None) is None


def test_airgap_dir_wins_over_the_url(artifact: tuple[Path, str], tmp_path: Path) -> None:
    src, sha = artifact
    dest = tmp_path / "bin" / "k3s"
    dest.parent.mkdir()
    listing = f"{sha}  k3s\n"
    (src.parent / "sha256sum-amd64.txt").write_text(listing)
    result = F.fetch(
        F.FetchRequest(
            dest=str(dest),
            source="https://unreachable.invalid/k3s",
            checksum_url="https://unreachable.invalid/sha256sum-amd64.txt",
            airgap_dir=str(src.parent),
        )
    )
    assert result.origin == "airgap" and result.sha256 == sha


def test_wrong_content_never_reaches_dest(artifact: tuple[Path, str], tmp_path: Path) -> None:
    src, _sha = artifact
    dest = tmp_path / "bin" / "k3s"
    dest.parent.mkdir()
    dest.write_bytes(b"old version")
    with pytest.raises(F.FetchError, match="replace the file with the pinned release"):
        F.fetch(F.FetchRequest(dest=str(dest), source=str(src), sha256="0" * 64))
    assert dest.read_bytes() == b"old version"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["k3s"]


def test_check_mode_changes_nothing(artifact: tuple[Path, str], tmp_path: Path) -> None:
    src, sha = artifact
    dest = tmp_path / "bin" / "k3s"
    dest.parent.mkdir()
    result = F.fetch(F.FetchRequest(dest=str(dest), source=str(src), sha256=sha, check_mode=True))
    assert result.changed and not dest.exists() and list(dest.parent.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dest": "relative/k3s", "source": "/x", "sha256": DIGEST_A}, "must be an absolute path"),
        ({"dest": "/nonexistent-dir-edgeslm/k3s", "source": "/x", "sha256": DIGEST_A}, "create it first"),
        ({"source": "/srv/k3s"}, "needs its digest"),
        ({"airgap_dir": "/nonexistent-dir-edgeslm", "sha256": DIGEST_A}, "no source"),
    ],
)
def test_request_refusals(kwargs: dict[str, str], message: str, tmp_path: Path) -> None:
    kwargs.setdefault("dest", str(tmp_path / "k3s"))
    with pytest.raises(F.FetchError, match=message):
        F.fetch(F.FetchRequest(**kwargs))  # type: ignore[arg-type]


# --- HTTP: resume, restart, unreachable ----------------------------------------------------------


class _FileServer:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.honour_range = True
        self.sent = 0
        self.cut_after: int | None = None
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(dict(self.headers))
                if self.path.endswith(".sha256"):
                    body = f"{hashlib.sha256(server.data).hexdigest()}  file.bin\n".encode()
                    self._send(200, body, {})
                    return
                if self.path != "/file.bin":
                    self._send(404, b"not here", {})
                    return
                start = 0
                wanted = self.headers.get("Range")
                if wanted and server.honour_range:
                    start = int(wanted.removeprefix("bytes=").split("-")[0])
                    if start >= len(server.data):
                        self._send(416, b"", {"Content-Range": f"bytes */{len(server.data)}"})
                        return
                    end = len(server.data) - 1
                    self._send(206, server.data[start:], {"Content-Range": f"bytes {start}-{end}/{len(server.data)}"})
                    return
                self._send(200, server.data, {})

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if server.cut_after is not None and len(body) > server.cut_after:
                    self.wfile.write(body[: server.cut_after])
                    server.sent += server.cut_after
                    server.cut_after = None
                    self.close_connection = True
                    return
                self.wfile.write(body)
                server.sent += len(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def served() -> Iterator[_FileServer]:
    server = _FileServer(os.urandom(3 * (1 << 20) + 5))
    try:
        yield server
    finally:
        server.close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_url_download_resumes_after_a_cut(served: _FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "file.bin"
    sha = _sha(served.data)
    served.cut_after = 1_000_000
    with pytest.raises(F.FetchUnreachableError, match="kept and resumed"):
        F.fetch(F.FetchRequest(dest=str(dest), source=f"{served.url}/file.bin", sha256=sha))
    partial = F.partial_path(dest, sha)
    assert partial.stat().st_size == 1_000_000 and not dest.exists()
    served.sent = 0
    result = F.fetch(F.FetchRequest(dest=str(dest), source=f"{served.url}/file.bin", sha256=sha))
    assert result.resumed and not result.restarted
    assert (result.reused, result.downloaded, served.sent) == (
        1_000_000,
        len(served.data) - 1_000_000,
        len(served.data) - 1_000_000,
    )
    assert served.requests[-1]["Range"] == "bytes=1000000-"
    assert dest.read_bytes() == served.data and not partial.exists()


def test_server_ignoring_range_restarts_cleanly(served: _FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "file.bin"
    sha = _sha(served.data)
    F.partial_path(dest, sha).write_bytes(served.data[:500_000])
    served.honour_range = False
    result = F.fetch(F.FetchRequest(dest=str(dest), source=f"{served.url}/file.bin", sha256=sha))
    assert result.restarted and result.downloaded == len(served.data) and result.reused == 0
    assert dest.read_bytes() == served.data


def test_stale_partial_of_other_content_restarts_once(served: _FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "file.bin"
    sha = _sha(served.data)
    F.partial_path(dest, sha).write_bytes(b"x" * 700_000)  # wrong bytes: resuming gives a wrong digest
    result = F.fetch(F.FetchRequest(dest=str(dest), source=f"{served.url}/file.bin", sha256=sha))
    assert result.restarted and dest.read_bytes() == served.data


def test_complete_partial_answered_416_is_used(served: _FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "file.bin"
    sha = _sha(served.data)
    F.partial_path(dest, sha).write_bytes(served.data)
    result = F.fetch(F.FetchRequest(dest=str(dest), source=f"{served.url}/file.bin", sha256=sha))
    assert result.changed and result.downloaded == 0 and result.reused == len(served.data)


def test_checksum_url_and_http_errors(served: _FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "file.bin"
    result = F.fetch(
        F.FetchRequest(dest=str(dest), source=f"{served.url}/file.bin", checksum_url=f"{served.url}/list.sha256")
    )
    assert result.sha256 == _sha(served.data)
    with pytest.raises(F.FetchError, match="HTTP 404"):
        F.fetch(F.FetchRequest(dest=str(tmp_path / "other.bin"), source=f"{served.url}/other.bin", sha256=DIGEST_A))
    with pytest.raises(F.FetchError, match="tampered or corrupted"):
        F.fetch(F.FetchRequest(dest=str(tmp_path / "x.bin"), source=f"{served.url}/file.bin", sha256=DIGEST_A))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]


def test_unreachable_url_degraded(tmp_path: Path) -> None:
    dead = _FileServer(b"")
    url = dead.url
    dead.close()
    request = F.FetchRequest(dest=str(tmp_path / "f"), source=f"{url}/f", sha256=DIGEST_A, timeout=5)
    with pytest.raises(F.FetchUnreachableError, match="cannot connect"):
        F.fetch(request)
    result = F.fetch(F.FetchRequest(dest=str(tmp_path / "f"), source=f"{url}/f", sha256=DIGEST_A, degraded_ok=True))
    assert result.degraded and not result.changed and "cannot connect" in result.reason
