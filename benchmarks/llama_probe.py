# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run llama-server on a model and read what it allocates: its own buffer report and the process's RSS.

Used by accuracy_llamacpp.py. The server listens on 127.0.0.1 on a free port, is stopped by its
PID, and every wait is bounded in time. Nothing here is a test: it measures.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1 << 20
BIN_DIR = Path(os.environ.get("LLAMA_CPP_BIN", "/work/cache/llama.cpp-0.3.36/bin"))
START_TIMEOUT = 300.0
REQUEST_TIMEOUT = 1800.0
STOP_TIMEOUT = 15.0

# llama.cpp's own buffer lines (src/llama-model.cpp load_tensors, src/llama-context.cpp,
# src/llama-kv-cache.cpp): name -> pattern; every match is summed (two KV caches with SWA).
BUFFER_LINES = {
    "mapped": r"CPU_Mapped model buffer size\s*=\s*([0-9.]+) MiB",
    "repacked": r"CPU_REPACK model buffer size\s*=\s*([0-9.]+) MiB",
    "loaded": r"\bCPU model buffer size\s*=\s*([0-9.]+) MiB",
    "kv_cache": r"CPU KV buffer size\s*=\s*([0-9.]+) MiB",
    "compute": r"CPU compute buffer size\s*=\s*([0-9.]+) MiB",
    "output": r"CPU\s+output buffer size\s*=\s*([0-9.]+) MiB",
}


@dataclass
class Probe:
    """What one llama-server run reported and used (bytes)."""

    buffers: dict[str, float] = field(default_factory=dict)
    idle: Memory | None = None  # after load, before any request
    peaks: list[Memory] = field(default_factory=list)  # after each prompt
    log: str = ""
    argv: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Memory:
    """A process's memory at one moment (bytes)."""

    rss: int
    hwm: int
    anon: int
    file: int
    model_file_rss: int  # resident pages of the model file's mapping (/proc/PID/smaps)


def memory_of(pid: int, model_path: str) -> Memory:
    """VmRSS, VmHWM, RssAnon, RssFile and the model file's resident bytes of process `pid`."""
    status = Path(f"/proc/{pid}/status").read_text()
    values = {}
    for key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
        match = re.search(rf"{key}:\s+(\d+) kB", status)
        values[key] = int(match.group(1)) * 1024 if match else 0
    model_rss = 0
    current = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = re.match(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$", line)
        if head:
            current = head.group(1).strip()
        elif line.startswith("Rss:") and current == model_path:
            model_rss += int(line.split()[1]) * 1024
    return Memory(values["VmRSS"], values["VmHWM"], values["RssAnon"], values["RssFile"], model_rss)


def _get(url: str, timeout: float) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status: int = response.status
            return status
    except (urllib.error.URLError, OSError):
        return 0


def _post(url: str, body: dict[str, object], timeout: float) -> dict[str, object]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            loaded: dict[str, object] = json.loads(response.read())
            return loaded
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{url}: HTTP {exc.code}: {exc.read()[:500]!r}") from exc


def parse_buffers(log: str) -> dict[str, float]:
    return {key: sum(float(v) for v in re.findall(pattern, log)) * MIB for key, pattern in BUFFER_LINES.items()}


def run_server(
    model_path: str,
    args: list[str],
    *,
    prompts: tuple[int, ...] = (),
    vocab: int = 0,
    threads: int = 2,
    extra: list[str] | None = None,
) -> Probe:
    """Start llama-server with `args`, read its buffers and idle RSS, send each prompt (token counts) in turn
    and read the RSS after each, stop it."""
    port = free_port()
    argv = [str(BIN_DIR / "llama-server"), *args, "--port", str(port), "-t", str(threads), "-lv", "4", "--no-warmup"]
    argv += extra or []
    # the template's args carry --host/--port; the probe's port wins (last one counts)
    probe = Probe(argv=argv)
    with tempfile.TemporaryFile(mode="w+") as log_file:
        proc = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and proc.poll() is None:
                if _get(f"http://127.0.0.1:{port}/health", 5) == 200:
                    break
                time.sleep(0.5)
            else:
                log_file.seek(0)
                raise RuntimeError(f"llama-server did not come up: {log_file.read()[-3000:]}")
            probe.idle = memory_of(proc.pid, model_path)
            for count in prompts:
                tokens = [10 + (i * 7919) % max(vocab - 20, 1) for i in range(count)]
                _post(
                    f"http://127.0.0.1:{port}/completion",
                    {"prompt": tokens, "n_predict": 1, "cache_prompt": False, "temperature": 0},
                    REQUEST_TIMEOUT,
                )
                probe.peaks.append(memory_of(proc.pid, model_path))
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(STOP_TIMEOUT)
            log_file.seek(0)
            probe.log = log_file.read()
    probe.buffers = parse_buffers(probe.log)
    return probe


def fit_params(model_path: str, args: list[str]) -> dict[str, float] | None:
    """llama-fit-params' own estimate (MiB per part: model, context, compute) for the same settings."""
    argv = [str(BIN_DIR / "llama-fit-params"), "-m", model_path, *args, "--fit-print", "on"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=START_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return None
    for line in reversed(proc.stdout.splitlines()):
        parts = line.split()
        if len(parts) == 4 and parts[0] == "Host":
            model, context, compute = (float(x) * MIB for x in parts[1:])
            return {"model": model, "context": context, "compute": compute}
    return None
