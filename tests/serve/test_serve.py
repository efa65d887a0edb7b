# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""`make serve-test`: the lab site's SLM, as rendered, answers, is scraped, scales, canaries and is closed.

One `serve.py up` (in .build/serve-test) is shared by the module's tests, in order, and stopped by
`serve.py down` at the end; the tests that prove a failure start their own pods next to it. Every
server is on loopback, every load bounded; no test asserts a wall-clock time (benchmarks/ measures).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STATE = REPO / ".build" / "serve-test"
os.environ["EDGESLM_SERVE_STATE"] = str(STATE)
sys.path.insert(0, str(REPO / "scripts"))

from gitops_validate.canary import analysis_phase  # noqa: E402
from gitops_validate.catalog import memory_needed  # noqa: E402
from gitops_validate.core import load_module  # noqa: E402

from ansible_collections.edgeslm.pi5.tests.serve import checks, kubelet_standin, serve, traefik_config  # noqa: E402

SITE_HOST = "llm.lab.edgeslm.internal"
LOAD_CONCURRENCY = 4  # above the lab's --parallel 1
LOAD_REQUESTS = 3  # per worker
LOAD_DEADLINE = 150.0
SCRAPE_WAIT = 6.0  # three scrapes of the 2 s interval
# The tiny model answers a chat in tens of milliseconds, so a load of a few requests can fall between
# two scrapes; the queue load is held for five scrape intervals instead (at most QUEUE_LOAD_REQUESTS
# per worker, for a bound on the count).
QUEUE_LOAD_HOLD = 10.0
QUEUE_LOAD_REQUESTS = 2000
FAILURE_DEADLINE = 45.0
PODMAN_MIN_MEMORY = 6 << 20  # podman refuses a memory limit below 6 MiB


class Site:
    """The running serve-test site: its state file and rendered objects."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.state: dict[str, Any] = json.loads(serve.STATE_FILE.read_text())
        self.objects = kubelet_standin.load_objects(STATE / "rendered" / "lab.yaml")
        self.key = str(self.state["api_key"])
        self.pod_port = int(self.state["pod"]["port"])
        self.base = f"http://127.0.0.1:{self.pod_port}/v1"
        self.prometheus = f"http://127.0.0.1:{self.state['prometheus']}"
        self.traefik = f"http://127.0.0.1:{self.state['traefik']['web']}/v1"
        self.template_hash = str(self.state["template_hash"])
        self.notes: dict[str, Any] = {}
        self.load: checks.Load | None = None

    @property
    def template(self) -> dict[str, Any]:
        template: dict[str, Any] = kubelet_standin.find_pod_template(self.objects, "Deployment", "slm", "slm-llamacpp")
        return template

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = serve.pod_status(Path(self.state["pod"]["status"]))
        return status


def _untracked() -> set[str]:
    """Files git would list as new in the work tree (what `git status` shows a user after the test)."""
    listed = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=False
    )
    return set(listed.stdout.splitlines()) if listed.returncode == 0 else set()


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    serve.down(quiet=True)
    untracked_before = _untracked()
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(HERE / "serve.py"), "up"], capture_output=True, text=True, check=False, timeout=2400
    )
    if result.returncode != 0:
        serve.down(quiet=True)
        pytest.fail(f"serve.py up failed: {result.stderr[-3000:]}")
    lines = result.stdout.splitlines()
    running = Site(lines)
    running.notes["up_seconds"] = time.monotonic() - started
    try:
        yield running
    finally:
        down = subprocess.run(
            [sys.executable, str(HERE / "serve.py"), "down"], capture_output=True, text=True, check=False, timeout=300
        )
        pids = [int(p) for p in running.state.get("pids", {}).values() if p]
        left = [p for p in pids if serve.pid_alive(p)]
        report = {**running.notes, "timings": running.state.get("timings")}
        print("\nserve-test figures: " + json.dumps(report, default=str))
        assert down.returncode == 0, down.stderr
        assert not STATE.exists(), "serve.py down left its state directory"
        assert not left, f"serve.py down left processes running: {left}"
        # conmon writes `oom` into its working directory when a pod is OOM-killed (the limit test).
        assert not _untracked() - untracked_before, "serve-test left files in the work tree"


# --- make serve's contract -----------------------------------------------------------------


def test_up_prints_exactly_three_lines(site: Site) -> None:
    assert len(site.lines) == 3, site.lines
    assert re.fullmatch(r"serve: openai http://127\.0\.0\.1:\d+/v1", site.lines[0])
    assert re.fullmatch(r"serve: api-key \S{20,}", site.lines[1])
    assert re.fullmatch(r"serve: prometheus http://127\.0\.0\.1:\d+", site.lines[2])
    assert site.lines[1].split()[-1] == site.key


def test_image_pulled_from_the_registry_through_the_sites_mirror(site: Site) -> None:
    image = site.template["spec"]["containers"][0]["image"]
    assert image.startswith("registry.lab.edgeslm.internal/"), image
    events = [e["reason"] for e in site.status()["events"]]
    assert "Pulled" in events, f"the pod's image was not pulled: {events}"


# --- the API ---------------------------------------------------------------------------------


def test_models_names_the_catalog_model(site: Site) -> None:
    catalog = yaml.safe_load((REPO / "gitops/sites/lab/site.yaml").read_text())
    status, _headers, body = checks.http(f"{site.base}/models", headers={"Authorization": f"Bearer {site.key}"})
    assert status == 200, body
    names = {m.get("id") for m in json.loads(body)["data"]}
    assert catalog["spec"]["models"][0]["name"] in names, names


@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])
def test_chat_completion_answers_with_text(site: Site, stream: bool) -> None:
    result = checks.chat(site.base, site.key, "Say hello.", stream=stream)
    assert result.status == 200, result.text
    assert result.text, "empty answer"
    if stream:
        assert result.first_token_seconds is not None


def test_api_key_required_and_cors_restricted(site: Site) -> None:
    for base, host in ((site.base, None), (site.traefik, SITE_HOST)):
        extra = {"Host": host} if host else {}
        refused = checks.chat(base, None, "hello", stream=False, host=host)
        assert refused.status == 401, f"{base}: a request without the key got {refused.status}"
        wrong = checks.chat(base, "sk-not-the-key", "hello", stream=False, host=host)
        assert wrong.status == 401, f"{base}: a wrong key got {wrong.status}"
        answered = checks.chat(base, site.key, "hello", stream=False, host=host)
        assert answered.status == 200 and answered.text, f"{base}: {answered.status} {answered.text[:200]}"
        status, headers, _body = checks.http(
            f"{base}/models",
            headers={"Authorization": f"Bearer {site.key}", "Origin": "https://evil.example", **extra},
        )
        allowed = headers.get("Access-Control-Allow-Origin")
        assert status == 200 and allowed == f"https://{SITE_HOST}", f"CORS allows {allowed!r}"
    # /health stays open (the probes and Traefik's health checks carry no key).
    assert checks.http(f"http://127.0.0.1:{site.pod_port}/health")[0] == 200


def test_traefik_rate_limit(site: Site) -> None:
    """More requests at once than the Middleware's burst: Traefik answers 429 before the server sees them."""

    def one(_number: int) -> int:
        status, _headers, _body = checks.http(
            f"{site.traefik}/models", headers={"Authorization": f"Bearer {site.key}", "Host": SITE_HOST}
        )
        return status

    with ThreadPoolExecutor(max_workers=12) as pool:  # bounded: 12 cheap requests at once, no retries
        statuses = list(pool.map(one, range(12)))
    assert 200 in statuses and 429 in statuses, statuses
    time.sleep(6)  # let the bucket refill for the tests after this one


def test_health_gates_readiness(site: Site) -> None:
    container = site.template["spec"]["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health", probe
    status = site.status()
    assert status["ready"] and status["restarts"] == 0, status
    timings = status["timings"]
    assert timings["container_started"] <= timings["startup_probe_ok"] <= timings["ready"], timings
    site.notes["pod_phases_seconds"] = {
        "volumes": timings["volumes_ready"] - timings["pod_start"],
        "image_pull": timings.get("pull_server_seconds"),
        "container_start_to_health_ok": timings["startup_probe_ok"] - timings["container_started"],
        "health_ok_to_ready": timings["ready"] - timings["startup_probe_ok"],
        "pod_start_to_ready": timings["ready"] - timings["pod_start"],
    }


def test_pod_on_a_node_without_the_model_stays_unready(site: Site, tmp_path: Path) -> None:
    """A node of the model's hosts where model_cache has not staged the version: ContainerCreating, FailedMount."""
    runner = kubelet_standin.PodRunner(
        site.objects,
        site.template,
        namespace="slm",
        pod_name="slm-llamacpp-unstaged",
        node="pi5-lab-agent-1",
        node_root=tmp_path / "empty-node",
        state_dir=tmp_path / "pod",
        host_ports={8080: serve.free_port()},
        secrets={},
    )
    status = runner.run(deadline_seconds=1.0)
    assert not status.ready and status.reason == "ContainerCreating", status
    message = " ".join(e["message"] for e in status.events if e["reason"] == "FailedMount")
    assert "/var/lib/edgeslm/models/edgeslm-tiny/" in message and "does not exist" in message, status.events


# --- load, autoscaling query, every expression the site ships ----------------------------------


def _queue_load_concurrency(site: Site, threshold: float) -> int:
    """Every slot busy and threshold + 2 requests waiting: the queue stays above the threshold even in
    the instant between one request's answer and its worker's next request."""
    args = site.template["spec"]["containers"][0]["args"]
    parallel = int(args[args.index("--parallel") + 1])
    return parallel + int(threshold) + 2


def test_bounded_load_crosses_the_queue_threshold(site: Site) -> None:
    (where, query, threshold), *_others = [q for q in checks.scaledobject_queries(site.objects) if "deferred" in q[1]]
    idle = float(checks.prom_query(site.prometheus, query)[0]["value"][1])
    assert idle == 0, f"{where}: {idle} while idle"
    concurrency = _queue_load_concurrency(site, threshold)
    site.load = checks.run_load(
        site.base,
        site.key,
        concurrency=concurrency,
        requests_per_worker=QUEUE_LOAD_REQUESTS,
        max_tokens=64,
        deadline_seconds=LOAD_DEADLINE,
        hold_seconds=QUEUE_LOAD_HOLD,
    )
    time.sleep(SCRAPE_WAIT)
    answered = sum(site.load.statuses.values())
    assert set(site.load.statuses) == {200} and answered >= concurrency, site.load.statuses
    peak = checks.prom_query_range_max(site.prometheus, query, site.load.started, site.load.ended)
    assert peak > threshold, (
        f"{where}: queue depth peaked at {peak} under {concurrency} clients for {QUEUE_LOAD_HOLD:g} s "
        f"({answered} answers), never above its threshold {threshold}"
    )
    deadline = time.monotonic() + 30
    while float(checks.prom_query(site.prometheus, query)[0]["value"][1]) != 0:
        assert time.monotonic() < deadline, f"{where}: not back to 0 after the load"
        time.sleep(1)
    site.notes["queue_depth_peak"] = peak
    site.notes["queue_load"] = {"clients": concurrency, "answers": answered}


def _through_traefik(site: Site, count: int) -> list[int]:
    """`count` chats through Traefik, paced under the rate limit (1 per second)."""
    statuses = []
    for number in range(count):
        result = checks.chat(site.traefik, site.key, f"Canary question {number}.", stream=False, host=SITE_HOST)
        statuses.append(result.status)
        time.sleep(1.1)
    return statuses


def _set_canary(site: Site, canary_ports: list[int], weights: tuple[int, int]) -> None:
    """Argo Rollouts' part: point the canary Service at the canary pod and set the weights."""
    objects = json.loads(json.dumps(site.objects))
    for obj in objects:
        if obj.get("kind") == "TraefikService":
            for child in obj["spec"]["weighted"]["services"]:
                child["weight"] = weights[1] if child["name"].endswith("-canary") else weights[0]
    endpoints = {"slm-llamacpp-stable": [site.pod_port], "slm-llamacpp-canary": canary_ports}
    dynamic = Path(site.state["traefik"]["dynamic"])
    tmp = dynamic.with_name(".dynamic.yml.tmp")
    tmp.write_text(yaml.safe_dump(traefik_config.dynamic_config(objects, endpoints), sort_keys=True))
    tmp.replace(dynamic)
    time.sleep(3)  # the file provider's watch picks it up


def _analysis(site: Site, canary_hash: str) -> dict[str, str]:
    args = {"traefik-service": "slm-slm-llamacpp-canary", "canary-service": "slm-llamacpp-canary",
            "canary-hash": canary_hash}  # fmt: skip
    phases = {}
    for where, metric, query in checks.analysis_queries(site.objects, args):
        samples = checks.prom_query(site.prometheus, query)
        result = [float(s["value"][1]) for s in samples]
        phases[where] = analysis_phase(metric, result, args)
    return phases


def test_canary_analysis_passes_a_good_canary(site: Site) -> None:
    _set_canary(site, [site.pod_port], (0, 100))
    assert _through_traefik(site, 6) == [200] * 6
    time.sleep(SCRAPE_WAIT)
    phases = _analysis(site, site.template_hash)
    assert phases and all(p == "Successful" for p in phases.values()), phases
    site.notes["good_canary"] = phases


def test_every_expression_the_site_ships_returns_samples(site: Site) -> None:
    """ScaledObject triggers, AnalysisTemplate metrics, alert rules, dashboard panels: real data for each."""
    assert site.load is not None, "runs after the load test"
    args = {"traefik-service": "slm-slm-llamacpp-canary", "canary-service": "slm-llamacpp-canary",
            "canary-hash": site.template_hash}  # fmt: skip
    expressions = [(w, q) for w, q, _threshold in checks.scaledobject_queries(site.objects)]
    expressions += [(w, q) for w, _metric, q in checks.analysis_queries(site.objects, args)]
    expressions += [(f"alert {a}", checks.split_comparison(e)) for a, e in checks.alert_expressions(site.objects)]
    expressions += [(f"dashboard {p}", e) for p, e in checks.dashboard_queries(site.objects)]
    kinds = {w.split()[0] for w, _expr in expressions}
    assert {"ScaledObject", "AnalysisTemplate", "alert", "dashboard"} <= kinds, kinds
    failures = []
    for where, expr in expressions:
        try:
            checks.require_samples(site.prometheus, expr, where)
        except checks.CheckFailed as exc:
            failures.append(str(exc))
    assert not failures, "\n".join(failures)
    site.notes["expressions_evaluated"] = len(expressions)


def test_canary_analysis_fails_a_broken_canary(site: Site, tmp_path: Path) -> None:
    """A canary whose server cannot load its model: Traefik answers 502 for it and it exports nothing."""
    template = json.loads(json.dumps(site.template))
    args = template["spec"]["containers"][0]["args"]
    args[args.index("--model") + 1] = "/models/not-the-catalog-file.gguf"
    broken_hash = kubelet_standin.template_hash(template)
    template["metadata"]["labels"]["rollouts-pod-template-hash"] = broken_hash
    pod = serve.start_pod(
        STATE / "rendered" / "lab.yaml",
        _secrets(site),
        STATE / "node",
        "slm-llamacpp-broken-canary",
        site.state["podman_env"],
        template=template,
    )
    try:
        _set_canary(site, [pod.port], (0, 100))
        statuses = _through_traefik(site, 6)
        assert all(s >= 500 for s in statuses), statuses
        time.sleep(SCRAPE_WAIT)
        phases = _analysis(site, broken_hash)
        assert "Failed" in phases.values(), phases
        site.notes["broken_canary"] = phases
    finally:
        serve.stop_pid(pod.pid, "broken canary", grace=30)
        _set_canary(site, [site.pod_port], (100, 0))


def _secrets(site: Site) -> dict[str, dict[str, bytes]]:
    return {
        "slm/slm-api-key": {"api-keys": site.key.encode()},
        "monitoring/slm-metrics-key": {"key": site.key.encode()},
    }


# --- alert rules -------------------------------------------------------------------------------


def test_promtool_checks_and_tests_every_alert(site: Site, tmp_path: Path) -> None:
    rules = tmp_path / "alerting_rules.yml"
    shutil.copy(STATE / "prometheus" / "alerting_rules.yml", rules)
    tests = tmp_path / "alerting_rules_test.yml"
    shutil.copy(HERE / "promtool" / "alerting_rules_test.yml", tests)
    for cmd in (["promtool", "check", "rules", str(rules)], ["promtool", "test", "rules", str(tests)]):
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
    tested = {t["alertname"] for case in yaml.safe_load(tests.read_text())["tests"] for t in case["alert_rule_test"]}
    alerts = {name for name, _expr in checks.alert_expressions(site.objects)}
    assert alerts and alerts <= tested, f"alerts without a promtool unit test: {sorted(alerts - tested)}"
    assert {"Pi5SocHot", "Pi5Throttled"} <= alerts


# --- memory ------------------------------------------------------------------------------------


def _estimate() -> int | None:
    """The core's estimate for the lab model's serving configuration (what the validator sizes with)."""
    doc = yaml.safe_load((REPO / "gitops/sites/lab/site.yaml").read_text())
    model = load_module("_catalog").load_catalog(doc).models[0]
    needed: int | None = memory_needed(model)
    return needed


def _memory_within_limit(status: dict[str, Any], template: dict[str, Any], load: checks.Load) -> int:
    """The pod answered its load without a restart, and its cgroup peak stayed within its limit; the peak."""
    if set(load.statuses) != {200}:
        raise checks.CheckFailed(f"requests under load were answered {load.statuses}")
    if status.get("restarts") or status.get("oom_kills"):
        died = [e["message"][:200] for e in status.get("events", []) if e["reason"] == "Died"]
        raise checks.CheckFailed(f"the server restarted {status.get('restarts')} time(s) under load: {died}")
    peak = checks.cgroup_memory_peak(str(status["container_id"]))
    if peak is None:
        raise checks.CheckFailed(f"no cgroup memory record for container {str(status['container_id'])[:12]}")
    limit = kubelet_standin._quantity_bytes(template["spec"]["containers"][0]["resources"]["limits"]["memory"], "")
    if peak > limit:
        raise checks.CheckFailed(f"cgroup peak {peak} above the limit {limit}")
    return peak


def test_memory_peak_under_load_within_the_limit(site: Site) -> None:
    assert site.load is not None, "runs after the load test"
    peak = _memory_within_limit(site.status(), site.template, site.load)
    limit = kubelet_standin._quantity_bytes(site.template["spec"]["containers"][0]["resources"]["limits"]["memory"], "")
    estimate = _estimate()
    assert estimate, "the core gives no estimate for the lab model"
    site.notes["memory"] = {
        "cgroup_peak": peak,
        "limit": limit,
        "estimate": estimate,
        "peak_over_estimate": round(peak / estimate, 3),
    }


# --- a defect makes serve-test fail (one test each) ----------------------------------------------


def _run_variant(site: Site, template: dict[str, Any], name: str) -> None:
    """Start a pod from a changed template and wait for it as `make serve` does (ServeError if never Ready)."""
    pod = serve.start_pod(
        STATE / "rendered" / "lab.yaml",
        _secrets(site),
        STATE / "node",
        name,
        site.state["podman_env"],
        template=template,
    )
    try:
        serve.wait_ready(pod, timeout=FAILURE_DEADLINE)
    finally:
        serve.stop_pid(pod.pid, name, grace=30)


def test_a_wrong_server_argument_fails(site: Site) -> None:
    template = json.loads(json.dumps(site.template))
    args = template["spec"]["containers"][0]["args"]
    args[args.index("--ctx-size")] = "--ctx-sise"
    with pytest.raises(serve.ServeError, match="not Ready"):
        _run_variant(site, template, "slm-llamacpp-wrong-argument")


def test_a_wrong_metric_name_in_a_query_fails(site: Site) -> None:
    assert site.load is not None, "runs after the load test"
    (_where, query, threshold), *_others = [q for q in checks.scaledobject_queries(site.objects) if "deferred" in q[1]]
    wrong = query.replace("llamacpp:requests_deferred", "llamacpp:requests_defered")
    # The trigger's `or vector(0)` hides the misspelling from an empty-result check...
    peak = checks.prom_query_range_max(site.prometheus, wrong, site.load.started, site.load.ended)
    # ...but not from the load check: the queue never crosses the threshold.
    assert not peak > threshold
    panel, expr = next((p, e) for p, e in checks.dashboard_queries(site.objects) if "llamacpp:tokens_predicted" in e)
    checks.require_samples(site.prometheus, expr, panel)
    with pytest.raises(checks.CheckFailed, match="returned no samples"):
        checks.require_samples(
            site.prometheus, expr.replace("llamacpp:tokens_predicted", "llamacpp:token_predicted"), panel
        )


def test_a_memory_limit_below_the_servers_need_fails(site: Site) -> None:
    """The lab's limit lowered below the peak the server reached under load: the same checks fail."""
    peak = site.notes.get("memory", {}).get("cgroup_peak")
    assert peak, "runs after the memory test"
    limit = max(PODMAN_MIN_MEMORY, int(peak * 0.8))
    assert limit < peak, f"the measured peak {peak} is too close to podman's minimum limit to go below it"
    template = json.loads(json.dumps(site.template))
    template["spec"]["containers"][0]["resources"]["limits"]["memory"] = str(limit)
    pod = serve.start_pod(
        STATE / "rendered" / "lab.yaml", _secrets(site), STATE / "node", "slm-llamacpp-small-limit",
        site.state["podman_env"], template=template,
    )  # fmt: skip
    try:
        with pytest.raises((serve.ServeError, checks.CheckFailed)):
            serve.wait_ready(pod, timeout=FAILURE_DEADLINE)
            load = checks.run_load(
                f"http://127.0.0.1:{pod.port}/v1",
                site.key,
                concurrency=LOAD_CONCURRENCY,
                requests_per_worker=LOAD_REQUESTS,
                max_tokens=24,
                deadline_seconds=LOAD_DEADLINE,
            )
            time.sleep(1)
            _memory_within_limit(serve.pod_status(pod.status_file), template, load)
    finally:
        serve.stop_pid(pod.pid, "small-limit pod", grace=30)
