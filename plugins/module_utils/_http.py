# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""HTTP transfers for artifact fetches and the OCI client: TLS options, redirects, resumable downloads.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

`http.client` directly (not urllib) because a pull needs what urllib hides or gets wrong here:
a `Range` request whose 206/200/416 answer decides between resume and restart, redirects that
drop the `Authorization` header when they leave the host (registries redirect blob reads to
object storage), one kept-alive connection per host, and a 1 MiB socket read and send size.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

__all__ = [
    "CHUNK_SIZE",
    "DownloadStats",
    "HttpClient",
    "HttpStatusError",
    "Response",
    "TlsOptions",
    "TransferError",
    "TransferIntegrityError",
    "UnreachableError",
    "ranged_download",
]

CHUNK_SIZE = 1 << 20
USER_AGENT = "edgeslm.pi5-fetch/1"
MAX_REDIRECTS = 5
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)")


class TransferError(ValueError):
    """A transfer failed; the message names the URL and what to do."""


class UnreachableError(TransferError):
    """The server could not be reached or answered with a temporary failure (5xx, 429)."""


class HttpStatusError(TransferError):
    """The server answered with a definitive error status."""

    def __init__(self, message: str, status: int, url: str) -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class TransferIntegrityError(TransferError):
    """The bytes received do not match the expected size or SHA-256."""


@dataclass(frozen=True)
class TlsOptions:
    """TLS settings as k3s's registries.yaml `configs.<host>.tls` declares them."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False

    def context(self) -> ssl.SSLContext:
        if bool(self.cert_file) != bool(self.key_file):
            raise TransferError(
                "tls.cert_file and tls.key_file must be given together (a client certificate needs its key)"
            )
        ctx = ssl.create_default_context()
        if self.ca_file:
            try:
                ctx.load_verify_locations(cafile=self.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise TransferError(f"tls.ca_file {self.ca_file!r} cannot be loaded: {exc}") from exc
        if self.cert_file and self.key_file:
            try:
                ctx.load_cert_chain(self.cert_file, self.key_file)
            except (OSError, ssl.SSLError) as exc:
                raise TransferError(
                    f"tls.cert_file {self.cert_file!r} / tls.key_file {self.key_file!r} cannot be loaded: {exc}"
                ) from exc
        if self.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


@dataclass
class Response:
    """One HTTP response; the body is read by the caller, then `close()` (or use as a context manager)."""

    status: int
    headers: dict[str, str]
    url: str
    _raw: http.client.HTTPResponse
    _release: Callable[[bool], None]

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def read(self, limit: int | None = None) -> bytes:
        """Read the whole body (refusing one longer than `limit`)."""
        if limit is None:
            return self._raw.read()
        data = self._raw.read(limit + 1)
        if len(data) > limit:
            raise TransferError(f"{self.url}: response body is larger than {limit} bytes")
        return data

    def readinto(self, buffer: memoryview) -> int:
        return self._raw.readinto(buffer)

    def close(self) -> None:
        raw = self._raw
        if not raw.isclosed() and raw.length is not None and raw.length <= 65536:
            with contextlib.suppress(OSError, http.client.HTTPException):
                raw.read()  # drain a short rest (HEAD, error bodies) so the connection can be kept
        reusable = raw.isclosed() and not raw.will_close
        if not raw.isclosed():
            raw.close()
        self._release(reusable)

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class HttpClient:
    """Kept-alive connections per (scheme, host, port), TLS per host, manual redirects."""

    timeout: float = 30.0
    tls_for_host: Callable[[str], TlsOptions] = field(default=lambda _host: TlsOptions())
    user_agent: str = USER_AGENT
    _pool: dict[tuple[str, str], http.client.HTTPConnection] = field(default_factory=dict, repr=False)
    _contexts: dict[str, ssl.SSLContext] = field(default_factory=dict, repr=False)

    def close(self) -> None:
        for conn in self._pool.values():
            conn.close()
        self._pool.clear()

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        key = (scheme, netloc)
        conn = self._pool.pop(key, None)
        if conn is not None:
            return conn
        if scheme == "https":
            if netloc not in self._contexts:
                self._contexts[netloc] = self.tls_for_host(netloc).context()
            return http.client.HTTPSConnection(
                netloc, timeout=self.timeout, context=self._contexts[netloc], blocksize=CHUNK_SIZE
            )
        if scheme == "http":
            return http.client.HTTPConnection(netloc, timeout=self.timeout, blocksize=CHUNK_SIZE)
        raise TransferError(f"unsupported URL scheme {scheme!r}; use http:// or https://")

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | BinaryIO | None = None,
        *,
        follow_redirects: bool = True,
    ) -> Response:
        """Send one request, following up to 5 redirects; `Authorization` never leaves its host.

        Connection failures, timeouts, 5xx and 429 raise UnreachableError; TLS verification
        failures raise TransferError (they are not a reason to fall back silently).
        """
        send_headers = {"User-Agent": self.user_agent, **(headers or {})}
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            parts = urlsplit(current)
            path = parts.path or "/"
            if parts.query:
                path = f"{path}?{parts.query}"
            response = self._send(method, parts.scheme, parts.netloc, path, send_headers, body, current)
            if follow_redirects and response.status in (301, 302, 303, 307, 308):
                location = response.header("location")
                response.read()
                response.close()
                if not location:
                    raise TransferError(f"{current}: redirect without a Location header")
                target = urljoin(current, location)
                if urlsplit(target).netloc != parts.netloc:
                    send_headers = {k: v for k, v in send_headers.items() if k.lower() != "authorization"}
                if response.status == 303:
                    method, body = "GET", None
                current = target
                continue
            if response.status >= 500 or response.status == 429:
                detail = _short_body(response)
                raise UnreachableError(f"{current}: server answered HTTP {response.status}{detail}")
            return response
        raise TransferError(f"{url}: more than {MAX_REDIRECTS} redirects")

    def _send(
        self,
        method: str,
        scheme: str,
        netloc: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes | BinaryIO | None,
        url: str,
    ) -> Response:
        key = (scheme, netloc)
        for attempt in (1, 2):
            conn = self._connection(scheme, netloc)
            reused = attempt == 1 and conn.sock is not None
            try:
                conn.request(method, path, body=body, headers=dict(headers))
                raw = conn.getresponse()
            except ssl.SSLCertVerificationError as exc:
                conn.close()
                raise TransferError(
                    f"{url}: TLS certificate not trusted ({exc.verify_message}); set tls.ca_file for this host"
                ) from exc
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                conn.close()
                # A kept-alive connection the server closed meanwhile: retry once on a new one,
                # unless a streamed body was already partly sent.
                if reused and (body is None or isinstance(body, bytes)):
                    continue
                raise UnreachableError(f"{url}: connection lost ({exc})") from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise UnreachableError(f"{url}: cannot connect ({_os_reason(exc)})") from exc

            def release(reusable: bool, conn: http.client.HTTPConnection = conn) -> None:
                if reusable and key not in self._pool:
                    self._pool[key] = conn
                else:
                    conn.close()

            headers_out = {name.lower(): value for name, value in raw.getheaders()}
            return Response(raw.status, headers_out, url, raw, release)
        raise UnreachableError(f"{url}: connection lost twice")  # pragma: no cover - loop always returns


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _short_body(response: Response) -> str:
    try:
        text = response.read(4096).decode("utf-8", "replace").strip()
    except (TransferError, OSError, http.client.HTTPException):
        text = ""
    finally:
        response.close()
    return f": {text[:200]}" if text else ""


@dataclass(frozen=True)
class DownloadStats:
    """What one resumable download did."""

    sha256: str
    size: int
    downloaded: int  # bytes received from the network in this call
    reused: int  # bytes of an earlier partial download kept
    resumed: bool  # a Range request continued an earlier partial file
    restarted: bool  # an earlier partial file was discarded (server ignored Range, too long, wrong digest)
    elapsed: float

    def as_dict(self) -> dict[str, object]:
        return {
            "sha256": self.sha256,
            "size": self.size,
            "downloaded": self.downloaded,
            "reused": self.reused,
            "resumed": self.resumed,
            "restarted": self.restarted,
            "elapsed": round(self.elapsed, 3),
        }


Opener = Callable[[Mapping[str, str]], Response]


def _hash_prefix(path: Path, length: int) -> hashlib._Hash:
    digest = hashlib.sha256()
    with path.open("rb", buffering=0) as stream:
        remaining = length
        buffer = bytearray(CHUNK_SIZE)
        view = memoryview(buffer)
        while remaining > 0:
            n = stream.readinto(view[: min(CHUNK_SIZE, remaining)])
            if not n:
                break
            digest.update(view[:n])
            remaining -= n
    return digest


def ranged_download(
    open_response: Opener,
    partial: Path,
    *,
    what: str,
    expected_size: int | None = None,
    expected_sha256: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> DownloadStats:
    """Download into `partial`, continuing it with an HTTP Range request when it already exists.

    The existing bytes are hashed once, the new ones as they arrive (one pass over the file).
    The partial restarts from zero when it is longer than `expected_size`, when the server
    answers a Range request with the whole body (200), or when a resumed file ends with the
    wrong digest (once). A connection lost mid-body raises UnreachableError and keeps the
    partial for the next call. On a size or digest mismatch of a fresh download the partial is
    removed and TransferIntegrityError raised. `open_response` sends the GET with the extra
    headers it is given (Range) and returns the response.
    """
    start = time.perf_counter()
    restarted = False
    for _round in range(3):
        have = partial.stat().st_size if partial.exists() else 0
        if expected_size is not None and have > expected_size:
            partial.unlink()
            have, restarted = 0, True
        digest = _hash_prefix(partial, have) if have else hashlib.sha256()
        if expected_size is not None and have == expected_size and have > 0:
            if expected_sha256 is None or digest.hexdigest() == expected_sha256:
                return DownloadStats(digest.hexdigest(), have, 0, have, True, restarted, time.perf_counter() - start)
            partial.unlink()
            have, restarted, digest = 0, True, hashlib.sha256()
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        response = open_response(headers)
        try:
            outcome = _range_outcome(response, have, what)
        except BaseException:
            response.close()
            raise
        if outcome == "fresh":  # an answer to a Range we cannot use: start over without one
            response.close()
            partial.unlink(missing_ok=True)
            restarted = True
            continue
        if outcome == "complete":  # 416 whose Content-Range says the partial is the whole entity
            response.close()
            stats = DownloadStats(digest.hexdigest(), have, 0, have, True, restarted, time.perf_counter() - start)
        else:
            offset = have if outcome == "append" else 0
            if outcome == "whole" and have:
                restarted, have, digest = True, 0, hashlib.sha256()
            downloaded = _stream_body(response, partial, offset, digest, what, expected_size, progress)
            stats = DownloadStats(
                digest.hexdigest(),
                offset + downloaded,
                downloaded,
                have,
                have > 0,
                restarted,
                time.perf_counter() - start,
            )
        if expected_size is not None and stats.size != expected_size:
            if stats.size < expected_size:
                raise UnreachableError(
                    f"{what}: the server ended the body at {stats.size} of {expected_size} bytes; "
                    "the partial download is kept and resumed on the next run"
                )
            partial.unlink(missing_ok=True)
            raise TransferIntegrityError(f"{what}: received {stats.size} bytes, expected {expected_size}")
        if expected_sha256 is not None and stats.sha256 != expected_sha256:
            partial.unlink(missing_ok=True)
            if stats.reused and _round == 0:
                restarted = True
                continue  # a stale partial of other content: one clean restart
            raise TransferIntegrityError(
                f"{what}: content has sha256 {stats.sha256}, expected {expected_sha256}; "
                "the download was discarded (tampered or corrupted at the source)"
            )
        return stats
    raise TransferError(f"{what}: the server kept answering Range requests unusably; giving up after 3 tries")


def _range_outcome(response: Response, have: int, what: str) -> str:
    """How to use a response: append (206 at our offset), whole (200), complete (416 = done), fresh (retry)."""
    status = response.status
    if status == 206 and have:
        match = _CONTENT_RANGE.fullmatch(response.header("content-range") or "")
        return "append" if match is not None and int(match.group(1)) == have else "fresh"
    if status == 200:
        return "whole"
    if status == 416 and have:
        match = _UNSATISFIED_RANGE.fullmatch(response.header("content-range") or "")
        return "complete" if match is not None and int(match.group(1)) == have else "fresh"
    detail = _short_body(response)
    raise HttpStatusError(f"{what}: HTTP {status}{detail}", status, response.url)


def _stream_body(
    response: Response,
    partial: Path,
    offset: int,
    digest: hashlib._Hash,
    what: str,
    expected_size: int | None,
    progress: Callable[[int], None] | None,
) -> int:
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(partial, flags, 0o600)
    received = 0
    limit = None if expected_size is None else expected_size - offset
    length = response.header("content-length")
    announced = int(length) if length is not None and length.isdigit() else None
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    try:
        os.ftruncate(fd, offset)
        os.lseek(fd, offset, os.SEEK_SET)
        while True:
            try:
                n = response.readinto(view)
            except (OSError, http.client.HTTPException) as exc:
                raise UnreachableError(
                    f"{what}: connection lost after {offset + received} bytes ({_os_reason(exc)}); "
                    "the partial download is kept and resumed on the next run"
                ) from exc
            if not n:
                break
            if limit is not None and received + n > limit:
                raise TransferIntegrityError(f"{what}: the server sent more than the expected {expected_size} bytes")
            _write_all(fd, view[:n])
            # In line: a hashing thread competes with the registry and the writer for 2 cores on a Pi.
            digest.update(view[:n])
            received += n
            if progress is not None:
                progress(n)
        os.fsync(fd)
        if announced is not None and received < announced:
            raise UnreachableError(
                f"{what}: connection closed after {offset + received} bytes, {announced - received} short of the "
                "announced length; the partial download is kept and resumed on the next run"
            )
    except TransferIntegrityError:
        os.close(fd)
        fd = -1
        partial.unlink(missing_ok=True)
        raise
    finally:
        view.release()
        if fd >= 0:
            os.close(fd)
        response.close()
    return received


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


@contextlib.contextmanager
def closing_client(client: HttpClient) -> Iterator[HttpClient]:
    try:
        yield client
    finally:
        client.close()
