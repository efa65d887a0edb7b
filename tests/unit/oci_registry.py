# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""The real OCI test parts: Debian's docker-registry (CNCF Distribution) and the oras client.

Both are installed by `make oci-tools` (Makefile): `docker-registry` from bookworm (its systemd
unit never runs; each test starts the binary with its own config, storage in a temp dir,
listening on 127.0.0.1 on a free port, and stops it by PID), and `oras` unpacked from trixie's
Debian package into .build/tools. `CutProxy` is a loopback TCP relay that counts the bytes it
passes and can cut a response after N bytes: how the tests cut a pull in the middle.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKER_REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
ORAS = REPO / ".build" / "tools" / "oras"
HTPASSWD = shutil.which("htpasswd") or "/usr/bin/htpasswd"
MISSING_HINT = "run `make oci-tools` (installs docker-registry, apache2-utils and .build/tools/oras)"


def require_tools(*tools: str | Path) -> None:
    """Fail (not skip) with the make target to run when a real part (by default: any) is missing."""
    missing = [str(p) for p in (tools or (DOCKER_REGISTRY, ORAS, HTPASSWD)) if not Path(p).is_file()]
    if missing:
        raise RuntimeError(f"OCI test tools missing: {', '.join(missing)}; {MISSING_HINT}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Registry:
    """One docker-registry process on 127.0.0.1:<port>, storage under `root`."""

    root: Path
    port: int = 0
    users: dict[str, str] = field(default_factory=dict)
    extra_config: str = ""  # more top-level YAML (e.g. `auth: token: ...`)
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> Registry:
        # The registry alone needs no oras (make serve starts one without the OCI client).
        require_tools(DOCKER_REGISTRY, *((HTPASSWD,) if self.users else ()))
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        auth = ""
        if self.users:
            htpasswd = self.root / "htpasswd"
            lines = []
            for user, password in self.users.items():
                made = subprocess.run(
                    [HTPASSWD, "-Bbn", user, password], capture_output=True, check=True, text=True
                ).stdout
                lines.append(made.strip())
            htpasswd.write_text("\n".join(lines) + "\n")
            auth = f"auth:\n  htpasswd:\n    realm: edgeslm-test\n    path: {htpasswd}\n"
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'data'}\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            f"http:\n  addr: {self.host}\n  secret: {secrets.token_hex(16)}\n" + auth + self.extra_config
        )
        log = (self.root / "registry.log").open("ab")
        self.process = subprocess.Popen(  # stopped by PID in stop()
            [DOCKER_REGISTRY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {(self.root / 'registry.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=1):
                    return self
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("docker-registry did not answer within 15 s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def blob_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob (to tamper with it)."""
        hexdigest = digest.removeprefix("sha256:")
        return self.root / "data" / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"


@contextlib.contextmanager
def running_registry(root: Path, users: dict[str, str] | None = None) -> Iterator[Registry]:
    registry = Registry(root, users=dict(users or {})).start()
    try:
        yield registry
    finally:
        registry.stop()


def oras(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real oras client (plain HTTP to the loopback registry), raising with its output on failure."""
    require_tools()
    home = Path(env["HOME"]) if env and "HOME" in env else None
    result = subprocess.run(
        [str(ORAS), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {}), **({"HOME": str(home)} if home else {})},
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"oras {' '.join(args)} failed ({result.returncode}): {result.stderr}{result.stdout}")
    return result


class CutProxy:
    """A loopback TCP relay to `upstream` that counts response bytes and can cut after `cut_after`.

    Bounded: one thread per connection, each ending when either side closes; `close()` stops
    the listener and every relay. Only 127.0.0.1 is ever connected to.
    """

    def __init__(self, upstream_port: int, cut_after: int | None = None) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.downstream_bytes = 0
        self.cuts = 0
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port: int = self._sock.getsockname()[1]
        self._closed = False
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _addr = self._sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
            self._conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, counting: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if counting:
                    with self._lock:
                        if self.cut_after is not None and self.downstream_bytes + len(data) > self.cut_after:
                            keep = self.cut_after - self.downstream_bytes
                            dst.sendall(data[: max(keep, 0)])
                            self.downstream_bytes += max(keep, 0)
                            self.cut_after = None  # cut once
                            self.cuts += 1
                            raise ConnectionAbortedError("cut by test")
                        self.downstream_bytes += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()
        for sock in self._conns:
            with contextlib.suppress(OSError):
                sock.close()
        self._thread.join(timeout=5)
