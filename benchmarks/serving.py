# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab site served on this machine: throughput, time to first token, pod start, memory vs the estimate.

Runs `tests/serve/serve.py up` in its own state directory (.build/serve-bench), then, for the lab's
serving configuration as rendered (--parallel 1) and the same pod with --parallel 4 (the context per
slot kept, so --ctx-size x4), sends a bounded load at 1, 2 and 4 concurrent streaming requests
(REQUESTS requests per level, MAX_TOKENS each, loopback only) and reports:

- generated tokens per second (all requests together, wall clock of the level);
- time to first token per request (first streamed content chunk), median and worst;
- the pod's start split by phase (volume set-up, image pull from the registry, process start to
  /health answering, to Ready), and the model_cache staging run before it;
- the container's cgroup memory peak at the end of the levels against the core's estimate
  (_catalog.model_fit: the estimate the validator sizes requests with) for the same configuration.

Stops everything by PID at the end. No baseline comparison: the figures describe this machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("EDGESLM_SERVE_STATE", str(REPO / ".build" / "serve-bench"))
sys.path.insert(0, str(REPO / "collections"))
sys.path.insert(0, str(REPO / "scripts"))

import yaml  # noqa: E402
from gitops_validate.core import load_module  # noqa: E402

from ansible_collections.edgeslm.pi5.tests.serve import checks, kubelet_standin, serve  # noqa: E402

LEVELS = (1, 2, 4)


def estimate(parallel: int) -> int:
    catalog = load_module("_catalog")
    doc = yaml.safe_load((REPO / "gitops/sites/lab/site.yaml").read_text())
    model = catalog.load_catalog(doc).models[0]
    model = dataclasses.replace(model, serving=dataclasses.replace(model.serving, parallel=parallel))
    return int(catalog.model_fit(model).needed)


def levels(base: str, key: str, requests: int, max_tokens: int) -> list[dict[str, Any]]:
    rows = []
    for concurrency in LEVELS:
        per_worker = max(1, requests // concurrency)
        load = checks.run_load(
            base, key, concurrency=concurrency, requests_per_worker=per_worker, max_tokens=max_tokens,
            deadline_seconds=300,
        )  # fmt: skip
        ok = [r for r in load.results if r.status == 200]
        ttft = sorted(r.first_token_seconds for r in ok if r.first_token_seconds is not None)
        wall = load.ended - load.started
        rows.append(
            {
                "concurrency": concurrency,
                "requests": len(load.results),
                "answered": len(ok),
                "tokens": sum(r.tokens for r in ok),
                "tokens_per_second": sum(r.tokens for r in ok) / wall if wall else 0.0,
                "ttft_median": statistics.median(ttft) if ttft else None,
                "ttft_max": ttft[-1] if ttft else None,
            }
        )
    return rows


def phases(status: dict[str, Any]) -> dict[str, float]:
    t = status["timings"]
    return {
        "volumes": t["volumes_ready"] - t["pod_start"],
        "image_pull": float(t.get("pull_server_seconds") or 0.0),
        "process_start_to_health_ok": t["startup_probe_ok"] - t["container_started"],
        "health_ok_to_ready": t["ready"] - t["startup_probe_ok"],
        "pod_start_to_ready": t["ready"] - t["pod_start"],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=8, help="requests per concurrency level (bounded)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    serve.down(quiet=True)
    state = serve.up()
    report: dict[str, Any] = {"stage_model_seconds": state["timings"].get("stage_seconds"), "variants": []}
    try:
        objects = kubelet_standin.load_objects(serve.STATE / "rendered" / "lab.yaml")
        key = str(state["api_key"])
        secrets = {"slm/slm-api-key": {"api-keys": key.encode()}}
        template = kubelet_standin.find_pod_template(objects, "Deployment", "slm", "slm-llamacpp")
        for parallel in (1, 4):
            variant = json.loads(json.dumps(template))
            server = variant["spec"]["containers"][0]
            server["args"][server["args"].index("--parallel") + 1] = str(parallel)
            ctx = server["args"].index("--ctx-size") + 1
            server["args"][ctx] = str(int(server["args"][ctx]) * parallel)
            pod = serve.start_pod(
                serve.STATE / "rendered" / "lab.yaml", secrets, serve.STATE / "node", f"bench-parallel-{parallel}",
                state["podman_env"], template=variant,
            )  # fmt: skip
            try:
                status = serve.wait_ready(pod)
                for _warmup in range(2):  # warm-up: first requests pay page faults of the mapped model and binary
                    checks.chat(f"http://127.0.0.1:{pod.port}/v1", key, "warm up", stream=False, max_tokens=8)
                rows = levels(f"http://127.0.0.1:{pod.port}/v1", key, args.requests, args.max_tokens)
                time.sleep(0.5)
                status = serve.pod_status(pod.status_file)
                peak = checks.cgroup_memory_peak(str(status["container_id"]))
            finally:
                serve.stop_pid(pod.pid, pod.name, grace=30)
            report["variants"].append(
                {
                    "parallel": parallel,
                    "levels": rows,
                    "pod_phases": phases(status),
                    "cgroup_peak": peak,
                    "estimate": estimate(parallel),
                    "restarts": status.get("restarts"),
                    "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
                }
            )
    finally:
        serve.down(quiet=True)
    for variant in report["variants"]:
        print(f"\n--parallel {variant['parallel']} (restarts {variant['restarts']})")
        print("concurrent  answered  tokens/s  TTFT median  TTFT max  (load average " + variant["load"] + ")")
        for row in variant["levels"]:
            print(
                f"{row['concurrency']:>10}  {row['answered']:>4}/{row['requests']:<4}  {row['tokens_per_second']:8.1f}"
                f"  {row['ttft_median'] or 0:10.3f}s  {row['ttft_max'] or 0:7.3f}s"
            )
        print("pod start phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in variant["pod_phases"].items()))
        peak, est = variant["cgroup_peak"], variant["estimate"]
        ratio = f"{peak / est:.2f}" if peak and est else "n/a"
        print(f"memory: cgroup peak {peak / 2**20 if peak else 0:.1f} MiB, estimate {est / 2**20:.1f} MiB, "
              f"peak/estimate {ratio}")  # fmt: skip
    print(f"\nmodel_cache staging run (ansible-playbook, cold): {report['stage_model_seconds']:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print("serving benchmark: done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
