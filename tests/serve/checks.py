# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""What `make serve-test` (and benchmarks/serving.py) ask of a served site: requests, load, PromQL.

Every request goes to 127.0.0.1 only; every load is bounded in count and in time.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path
from typing import Any

__all__ = [
    "ChatResult",
    "CheckFailed",
    "Load",
    "alert_expressions",
    "analysis_queries",
    "cgroup_memory_peak",
    "chat",
    "dashboard_queries",
    "http",
    "prom_query",
    "prom_query_range_max",
    "require_samples",
    "run_load",
    "scaledobject_queries",
    "split_comparison",
]

REQUEST_TIMEOUT = 120.0


class CheckFailed(AssertionError):
    """A check of the served site failed; the message says what was asked and what came back."""


def http(
    url: str,
    *,
    method: str = "GET",
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to loopback: (status, headers, body); HTTP errors are returned, not raised."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"{url}: only loopback servers are asked")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()
    except (OSError, HTTPException) as exc:
        # The server closed the connection or is gone (killed mid-request): status 0.
        return 0, {}, str(exc).encode()


@dataclass
class ChatResult:
    status: int
    text: str
    seconds: float
    first_token_seconds: float | None
    tokens: int


def chat(
    base: str,
    key: str | None,
    prompt: str,
    *,
    stream: bool,
    max_tokens: int = 16,
    host: str | None = None,
    seed: int = 42,
    ignore_eos: bool = False,
) -> ChatResult:
    """A chat completion against `base` (…/v1); with stream, the time to the first content chunk."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if host:
        headers["Host"] = host
    body = {
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": stream,
        "seed": seed,
    }
    if ignore_eos:
        # llama-server's own request field (tools/server): generate exactly max_tokens. The lab model's
        # random weights end some answers at once, which would make a load's length a matter of luck.
        body["ignore_eos"] = True
    started = time.monotonic()
    if not stream:
        status, _headers, raw = http(f"{base}/chat/completions", method="POST", body=body, headers=headers)
        elapsed = time.monotonic() - started
        if status != 200:
            return ChatResult(status, raw.decode(errors="replace"), elapsed, None, 0)
        doc = json.loads(raw)
        text = str(doc["choices"][0]["message"].get("content") or "")
        return ChatResult(status, text, elapsed, None, int(doc.get("usage", {}).get("completion_tokens", 0)))
    request = urllib.request.Request(
        f"{base}/chat/completions", data=json.dumps(body).encode(), method="POST", headers=headers
    )
    request.add_header("Content-Type", "application/json")
    if not base.startswith("http://127.0.0.1:"):
        raise ValueError(f"{base}: only loopback servers are asked")
    parts: list[str] = []
    first: float | None = None
    chunks = 0
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            for line in response:
                text = line.decode(errors="replace").strip()
                if not text.startswith("data:") or text == "data: [DONE]":
                    continue
                doc = json.loads(text[5:])
                delta = (doc.get("choices") or [{}])[0].get("delta") or {}
                content = delta.get("content")
                if content:
                    chunks += 1
                    if first is None:
                        first = time.monotonic() - started
                    parts.append(str(content))
            status = response.status
    except urllib.error.HTTPError as exc:
        return ChatResult(exc.code, exc.read().decode(errors="replace"), time.monotonic() - started, None, 0)
    except (OSError, HTTPException, ValueError) as exc:
        return ChatResult(0, str(exc), time.monotonic() - started, None, 0)
    return ChatResult(status, "".join(parts), time.monotonic() - started, first, chunks)


@dataclass
class Load:
    """What a bounded load did: answers per status, per-request timings, its window."""

    started: float
    ended: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    results: list[ChatResult] = field(default_factory=list)


def run_load(
    base: str,
    key: str,
    *,
    concurrency: int,
    requests_per_worker: int,
    max_tokens: int,
    deadline_seconds: float,
    stream: bool = True,
    hold_seconds: float = 0.0,
) -> Load:
    """`concurrency` workers, each sending at most `requests_per_worker` chats, all stopping by the deadline.

    With `hold_seconds`, a worker stops early once that long has passed since the start: the load lasts
    at least that long (unless the count runs out first), so a scraper sees it however fast the model is.
    """
    load = Load(started=time.time())
    lock = threading.Lock()
    started = time.monotonic()
    stop_at = started + deadline_seconds

    def worker(index: int) -> None:
        for number in range(requests_per_worker):
            now = time.monotonic()
            if now > stop_at or (hold_seconds and now - started > hold_seconds):
                return
            result = chat(
                base, key, f"Request {index}.{number}: count to five.", stream=stream, max_tokens=max_tokens,
                ignore_eos=True,
            )  # fmt: skip
            with lock:
                load.statuses[result.status] = load.statuses.get(result.status, 0) + 1
                load.results.append(result)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, stop_at - time.monotonic()) + REQUEST_TIMEOUT)
    load.ended = time.time()
    return load


# --- Prometheus ----------------------------------------------------------------------------


def prom_query(prometheus: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    params = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    status, _headers, raw = http(f"{prometheus}/api/v1/query?{urllib.parse.urlencode(params)}")
    doc = json.loads(raw or b"{}")
    if status != 200 or doc.get("status") != "success":
        raise CheckFailed(f"Prometheus refused {expr!r}: {doc.get('error') or raw[:300]!r}")
    result = doc["data"]["result"]
    if doc["data"]["resultType"] == "scalar":
        return [{"metric": {}, "value": result}]
    return list(result)


def require_samples(prometheus: str, expr: str, what: str) -> list[dict[str, Any]]:
    """The samples `expr` returns now; CheckFailed if there are none (a wrong name, label or window)."""
    samples = prom_query(prometheus, expr)
    if not samples:
        raise CheckFailed(f"{what}: {expr!r} returned no samples from the running site")
    return samples


def prom_query_range_max(prometheus: str, expr: str, start: float, end: float, step: float = 1.0) -> float:
    """The largest value `expr` took between start and end (CheckFailed when it has no samples)."""
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
    status, _headers, raw = http(f"{prometheus}/api/v1/query_range?{urllib.parse.urlencode(params)}")
    doc = json.loads(raw or b"{}")
    if status != 200 or doc.get("status") != "success":
        raise CheckFailed(f"Prometheus refused {expr!r}: {doc.get('error') or raw[:300]!r}")
    values = [float(v) for series in doc["data"]["result"] for _time, v in series["values"]]
    if not values:
        raise CheckFailed(f"{expr!r} returned no samples between the load's start and end")
    return max(values)


# --- what the site ships -------------------------------------------------------------------


def _objects(objects: Sequence[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return [o for o in objects if o.get("kind") == kind]


def scaledobject_queries(objects: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, float]]:
    """(where, query, threshold) of every prometheus trigger of the site's ScaledObjects."""
    out = []
    for obj in _objects(objects, "ScaledObject"):
        for trigger in (obj.get("spec") or {}).get("triggers") or []:
            if trigger.get("type") == "prometheus":
                meta = trigger.get("metadata") or {}
                where = f"ScaledObject {obj['metadata']['name']} trigger {trigger.get('name')}"
                out.append((where, str(meta["query"]), float(meta.get("threshold", 0))))
    return out


def analysis_queries(
    objects: Sequence[Mapping[str, Any]], args: Mapping[str, str]
) -> list[tuple[str, dict[str, Any], str]]:
    """(where, metric, query with {{args.x}} filled) of every Prometheus metric of the site's AnalysisTemplates."""
    out = []
    for obj in _objects(objects, "AnalysisTemplate"):
        defaults = {str(a["name"]): str(a["value"]) for a in (obj.get("spec") or {}).get("args") or [] if "value" in a}
        values = {**defaults, **args}
        for metric in (obj.get("spec") or {}).get("metrics") or []:
            prometheus = (metric.get("provider") or {}).get("prometheus")
            if not prometheus:
                continue
            query = str(prometheus["query"])
            for name, value in values.items():
                query = query.replace("{{args." + name + "}}", value)
            out.append((f"AnalysisTemplate {obj['metadata']['name']} metric {metric['name']}", dict(metric), query))
    return out


def split_comparison(expr: str) -> str:
    """The left operand of a top-level comparison (`A > 80` -> `A`): what an alert watches.

    An alert's expression returns samples only while it fires; its left operand shows that the
    series it watches exist, with the labels it groups by.
    """
    depth = 0
    quote = ""
    index = 0
    while index < len(expr):
        char = expr[index]
        if quote:
            if char == "\\":
                index += 2
                continue
            if char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0:
            for op in ("==", "!=", ">=", "<=", ">", "<"):
                if expr.startswith(op, index) and not (op in ("<", ">") and expr[index + 1 : index + 2] == "="):
                    return expr[:index].strip()
        index += 1
    return expr.strip()


def alert_expressions(objects: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(alert, expr) of the rendered Prometheus HelmRelease's alerting rules."""
    out = []
    for release in _objects(objects, "HelmRelease"):
        values = (release.get("spec") or {}).get("values") or {}
        rules = ((values.get("serverFiles") or {}).get("alerting_rules.yml")) or {}
        for group in rules.get("groups") or []:
            for rule in group.get("rules") or []:
                if "alert" in rule:
                    out.append((str(rule["alert"]), str(rule["expr"])))
    return out


def dashboard_queries(objects: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(panel, expr) of every target of the Grafana dashboards the site ships (ConfigMaps, sidecar label)."""
    out = []
    for obj in _objects(objects, "ConfigMap"):
        if ((obj.get("metadata") or {}).get("labels") or {}).get("grafana_dashboard") != "1":
            continue
        for name, text in (obj.get("data") or {}).items():
            dashboard = json.loads(text)
            for panel in dashboard.get("panels") or []:
                for target in panel.get("targets") or []:
                    out.append((f"{name}: {panel.get('title')} [{target.get('refId')}]", str(target["expr"])))
    return out


def cgroup_memory_peak(container_id: str) -> int | None:
    """The container's peak memory use in bytes, as its cgroup records it (what the limit is enforced on).

    cgroup v1 (this machine, podman's cgroupfs manager): memory/<parent>/libpod-<id>/memory.max_usage_in_bytes;
    cgroup v2: <slice>/libpod-<id>.scope/memory.peak.
    """
    root = Path("/sys/fs/cgroup")
    candidates = [
        *(root / "memory").glob(f"*/libpod-{container_id}*/memory.max_usage_in_bytes"),
        *root.glob(f"*/libpod-{container_id}*/memory.peak"),
    ]
    for path in candidates:
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            continue
    return None
