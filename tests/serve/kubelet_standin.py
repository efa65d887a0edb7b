# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""TEST STAND-IN for the kubelet: run one pod template of a site's rendered objects with podman.

No kubelet or Kubernetes API server can run on this machine, so `make serve` and `make serve-test`
use this stand-in to run the SLM pod exactly as the site renders it (scripts/validate-gitops
--output, Flux substitution included). It is never part of the product: it lives under tests/ and
says so in its name.

What it does as the kubelet does (Kubernetes v1.33, pkg/kubelet):

- volumes are set up before any container: a persistentVolumeClaim is followed to its bound
  PersistentVolume (spec.volumeName), whose nodeAffinity must admit this node and whose `local`
  path must exist on the node (a missing path leaves the pod ContainerCreating with a FailedMount
  event, as the local volume plugin does); secret volumes from the Secrets given (decrypted, as
  Flux applies them), emptyDir as a fresh directory or a tmpfs (medium Memory);
- init containers run in order, each to completion, before the regular container starts;
- `$(VAR)` in command, args and env values is expanded as Kubernetes does it
  (third_party/forked/golang/expansion): a defined variable is replaced, `$$` is a literal `$`,
  an undefined reference is kept as written; env values see only the variables defined before
  them;
- the security context becomes podman's: uid, gid, supplementary groups (fsGroup), read-only
  root filesystem, dropped capabilities, no privilege escalation, the runtime's default seccomp
  profile; resources.limits memory and cpu become the container's cgroup limits;
- startup, readiness and liveness httpGet probes are polled at their periods with their
  thresholds: readiness and liveness start after the startup probe succeeds; a failed startup or
  liveness probe restarts the container (restartPolicy Always, back-off 10 s doubling to 5 min).

Everything else a pod spec can say is refused by name (UnsupportedField), except the fields that
are the scheduler's (affinity, tolerations, ...), which the validator's scheduling simulation
checks and a kubelet never reads. The pod's status (phase, readiness, events, restarts, phase
timings) is written as JSON for the caller.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "PodRunner",
    "PodSpecError",
    "UnsupportedField",
    "expand",
    "find_pod_template",
    "load_objects",
]

PODMAN = shutil.which("podman") or "/usr/bin/podman"
# Fields of a pod spec the kubelet does not act on: the scheduler places the pod by them (and the
# validator's scheduling simulation checks them). Accepted, and listed so nothing is ignored silently.
SCHEDULER_FIELDS = frozenset(
    {"affinity", "tolerations", "topologySpreadConstraints", "priorityClassName", "nodeSelector", "schedulerName"}
)
POD_FIELDS = frozenset(
    {
        "containers",
        "initContainers",
        "volumes",
        "securityContext",
        "restartPolicy",
        "terminationGracePeriodSeconds",
        "automountServiceAccountToken",
        "enableServiceLinks",
        "serviceAccountName",
    }
)
CONTAINER_FIELDS = frozenset(
    {
        "name",
        "image",
        "imagePullPolicy",
        "command",
        "args",
        "env",
        "ports",
        "resources",
        "startupProbe",
        "readinessProbe",
        "livenessProbe",
        "securityContext",
        "volumeMounts",
        "workingDir",
    }
)
CONTAINER_SECURITY_FIELDS = frozenset(
    {
        "allowPrivilegeEscalation",
        "readOnlyRootFilesystem",
        "runAsNonRoot",
        "runAsUser",
        "runAsGroup",
        "capabilities",
        "seccompProfile",
    }
)
POD_SECURITY_FIELDS = frozenset(
    {"runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "seccompProfile", "supplementalGroups"}
)
PROBE_FIELDS = frozenset(
    {"httpGet", "periodSeconds", "timeoutSeconds", "failureThreshold", "successThreshold", "initialDelaySeconds"}
)
HTTP_GET_FIELDS = frozenset({"path", "port", "scheme", "httpHeaders"})
VOLUME_KINDS = frozenset({"persistentVolumeClaim", "secret", "emptyDir"})
MOUNT_FIELDS = frozenset({"name", "mountPath", "readOnly"})
# Kubernetes' defaults (pkg/apis/core/v1/defaults.go) for what a probe leaves out.
PROBE_DEFAULTS = {
    "periodSeconds": 10,
    "timeoutSeconds": 1,
    "failureThreshold": 3,
    "successThreshold": 1,
    "initialDelaySeconds": 0,
}
# Crash-loop back-off: 10 s doubling to 5 min (pkg/kubelet/kubelet.go, backOffPeriod / MaxContainerBackOff).
BACKOFF_START = 10.0
BACKOFF_MAX = 300.0
HOSTNAME_LABEL = "kubernetes.io/hostname"


class PodSpecError(ValueError):
    """The pod spec or the objects it refers to cannot be run; the message names the field."""


class UnsupportedField(PodSpecError):
    """A pod spec field this stand-in does not implement (refused rather than ignored)."""


def load_objects(path: Path) -> list[dict[str, Any]]:
    """The rendered objects of one site (a multi-document YAML file of validate-gitops --output)."""
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(doc, dict)]


def find_object(objects: Sequence[Mapping[str, Any]], kind: str, name: str, namespace: str | None) -> dict[str, Any]:
    for obj in objects:
        meta = obj.get("metadata") or {}
        if (
            obj.get("kind") == kind
            and meta.get("name") == name
            and (namespace is None or meta.get("namespace") == namespace)
        ):
            return dict(obj)
    where = f"{namespace}/{name}" if namespace else name
    raise PodSpecError(f"{kind} {where}: not among the site's rendered objects")


def find_pod_template(objects: Sequence[Mapping[str, Any]], kind: str, namespace: str, name: str) -> dict[str, Any]:
    """spec.template of a workload (Deployment, ...) among the rendered objects."""
    workload = find_object(objects, kind, name, namespace)
    template = (workload.get("spec") or {}).get("template")
    if not isinstance(template, dict):
        raise PodSpecError(f"{kind} {namespace}/{name}: has no spec.template")
    return template


def expand(text: str, mapping: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion (third_party/forked/golang/expansion/expand.go)."""
    out: list[str] = []
    cursor = 0
    while cursor < len(text):
        char = text[cursor]
        if char == "$" and cursor + 1 < len(text):
            nxt = text[cursor + 1]
            if nxt == "$":
                out.append("$")
                cursor += 2
                continue
            if nxt == "(":
                close = text.find(")", cursor + 2)
                if close == -1:
                    out.append("$(")
                    cursor += 2
                    continue
                name = text[cursor + 2 : close]
                out.append(mapping[name] if name in mapping else text[cursor : close + 1])
                cursor = close + 1
                continue
            out.append("$" + nxt)
            cursor += 2
            continue
        out.append(char)
        cursor += 1
    return "".join(out)


def _refuse_unknown(mapping: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise UnsupportedField(f"{where}.{key}: not supported by the kubelet stand-in (tests/serve); refused")


def _quantity_bytes(value: str, where: str) -> int:
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 1000, "M": 10**6, "G": 10**9}
    text = str(value)
    for suffix, factor in units.items():
        if text.endswith(suffix) and text[: -len(suffix)].isdigit():
            return int(text[: -len(suffix)]) * factor
    if text.isdigit():
        return int(text)
    raise PodSpecError(f"{where}: {value!r} is not a memory quantity this stand-in reads (use Ki, Mi, Gi or bytes)")


def _quantity_cpus(value: str, where: str) -> float:
    text = str(value)
    try:
        return int(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError as exc:
        raise PodSpecError(f"{where}: {value!r} is not a CPU quantity") from exc


@dataclass
class Probe:
    kind: str
    path: str
    port: int
    scheme: str
    headers: dict[str, str]
    period: float
    timeout: float
    failure_threshold: int
    success_threshold: int
    initial_delay: float

    def check(self, host_port: int) -> tuple[bool, str]:
        url = f"http://127.0.0.1:{host_port}{self.path}"
        request = urllib.request.Request(url, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                code = response.status
        except urllib.error.HTTPError as exc:
            code = exc.code
        except OSError as exc:
            return False, f"{self.kind} probe failed: Get {url}: {exc}"
        # HTTP probes succeed on 200 <= code < 400 (pkg/probe/http/http.go).
        if 200 <= code < 400:
            return True, ""
        return False, f"{self.kind} probe failed: HTTP probe failed with statuscode: {code}"


@dataclass
class Mount:
    host_path: Path
    mount_path: str
    read_only: bool
    tmpfs_bytes: int | None = None


@dataclass
class ContainerPlan:
    name: str
    image: str
    pull_policy: str
    argv: list[str]  # entrypoint override (command) then args
    entrypoint: list[str] | None
    env: dict[str, str]
    user: str
    groups: list[int]
    read_only_root: bool
    no_new_privileges: bool
    cap_drop_all: bool
    memory_limit: int | None
    cpu_limit: float | None
    mounts: list[Mount]
    ports: dict[str, int]  # name -> containerPort
    probes: dict[str, Probe]
    workdir: str | None


@dataclass
class Status:
    pod: str
    node: str
    phase: str = "Pending"
    reason: str = ""
    ready: bool = False
    started: bool = False
    restarts: int = 0
    oom_kills: int = 0
    container_id: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def event(self, reason: str, message: str) -> None:
        self.events.append({"time": time.time(), "reason": reason, "message": message})


class PodRunner:
    """Run one pod template on this machine as the kubelet of node `node` would.

    `node_root` is the node's filesystem (local PersistentVolume paths are looked up below it),
    `state_dir` holds this pod's volumes and status, `host_ports` maps a container port (number)
    to the loopback port it is published on, `secrets` holds the site's Secrets as Flux applies
    them (namespace/name -> key -> bytes), `env_overrides` nothing: the template is run as is.
    """

    def __init__(
        self,
        objects: Sequence[Mapping[str, Any]],
        template: Mapping[str, Any],
        *,
        namespace: str,
        pod_name: str,
        node: str,
        node_root: Path,
        state_dir: Path,
        host_ports: Mapping[int, int],
        secrets: Mapping[str, Mapping[str, bytes]],
        podman_env: Mapping[str, str] | None = None,
    ) -> None:
        self.objects = list(objects)
        self.template = dict(template)
        self.namespace = namespace
        self.pod_name = pod_name
        self.node = node
        self.node_root = node_root
        self.state_dir = state_dir
        self.host_ports = dict(host_ports)
        self.secrets = secrets
        self.podman_env = {**os.environ, **(podman_env or {})}
        self.status = Status(pod=pod_name, node=node)
        self.status_file = state_dir / "status.json"
        self._stop = threading.Event()
        spec = self.template.get("spec") or {}
        self.spec: dict[str, Any] = dict(spec)
        self._check_pod_fields()
        self.labels: dict[str, str] = dict((self.template.get("metadata") or {}).get("labels") or {})

    # --- validation and planning -----------------------------------------------------------

    def _check_pod_fields(self) -> None:
        base = "spec.template.spec"
        _refuse_unknown(self.spec, POD_FIELDS | SCHEDULER_FIELDS, base)
        if self.spec.get("automountServiceAccountToken", True) is not False:
            raise UnsupportedField(
                f"{base}.automountServiceAccountToken: a service account token volume is not supported; set false"
            )
        if self.spec.get("enableServiceLinks", True) is not False:
            raise UnsupportedField(
                f"{base}.enableServiceLinks: service environment variables are not supported; set false"
            )
        if self.spec.get("restartPolicy", "Always") != "Always":
            raise UnsupportedField(f"{base}.restartPolicy: only Always is supported")
        _refuse_unknown(self.spec.get("securityContext") or {}, POD_SECURITY_FIELDS, f"{base}.securityContext")
        if len(self.spec.get("containers") or []) != 1:
            raise UnsupportedField(f"{base}.containers: exactly one container is supported")

    def _volumes(self) -> dict[str, Mount]:
        """Set up every volume (kubelet: volume manager, before any container)."""
        base = "spec.template.spec.volumes"
        mounts: dict[str, Mount] = {}
        pod_ctx = self.spec.get("securityContext") or {}
        fs_group = pod_ctx.get("fsGroup")
        for volume in self.spec.get("volumes") or []:
            name = str(volume.get("name"))
            kinds = [key for key in volume if key != "name"]
            if len(kinds) != 1 or kinds[0] not in VOLUME_KINDS:
                raise UnsupportedField(f"{base}[{name}].{'/'.join(kinds)}: volume kind not supported by the stand-in")
            kind = kinds[0]
            source = volume[kind] or {}
            where = f"{base}[{name}].{kind}"
            if kind == "persistentVolumeClaim":
                _refuse_unknown(source, frozenset({"claimName", "readOnly"}), where)
                path = self._claim_path(str(source.get("claimName")), where)
                mounts[name] = Mount(path, "", bool(source.get("readOnly")))
            elif kind == "secret":
                _refuse_unknown(source, frozenset({"secretName", "defaultMode"}), where)
                mounts[name] = Mount(self._secret_dir(name, source, fs_group, where), "", True)
            else:
                _refuse_unknown(source, frozenset({"medium", "sizeLimit"}), where)
                if source.get("medium") not in (None, "", "Memory"):
                    raise UnsupportedField(f"{where}.medium: {source.get('medium')!r} is not supported")
                size = _quantity_bytes(source["sizeLimit"], f"{where}.sizeLimit") if source.get("sizeLimit") else None
                directory = self.state_dir / "volumes" / name
                directory.mkdir(parents=True, exist_ok=True)
                # emptyDir on disk with a sizeLimit is a tmpfs here: podman enforces the size that way.
                mounts[name] = Mount(directory, "", False, tmpfs_bytes=size or (64 << 20))
        return mounts

    def _claim_path(self, claim: str, where: str) -> Path:
        pvc = find_object(self.objects, "PersistentVolumeClaim", claim, self.namespace)
        volume_name = (pvc.get("spec") or {}).get("volumeName")
        if not volume_name:
            raise UnsupportedField(
                f"{where}: PersistentVolumeClaim {claim} is not pre-bound (spec.volumeName); "
                "dynamic provisioning is not supported by the stand-in"
            )
        pv = find_object(self.objects, "PersistentVolume", str(volume_name), None)
        pv_spec = pv.get("spec") or {}
        ref = pv_spec.get("claimRef") or {}
        if ref and (ref.get("name"), ref.get("namespace")) != (claim, self.namespace):
            raise PodSpecError(
                f"{where}: PersistentVolume {volume_name} is bound to {ref.get('namespace')}/{ref.get('name')}"
            )
        if "ReadOnlyMany" not in (pvc.get("spec") or {}).get("accessModes", []):
            raise UnsupportedField(f"{where}: only ReadOnlyMany claims are supported")
        self._check_node_affinity(pv_spec.get("nodeAffinity") or {}, f"PersistentVolume {volume_name}")
        local = pv_spec.get("local")
        if not isinstance(local, dict):
            raise UnsupportedField(f"PersistentVolume {volume_name}: only `local` volumes are supported")
        host_path = self.node_root / str(local.get("path", "")).lstrip("/")
        if not host_path.is_dir():
            # The local volume plugin's mount fails the same way; the pod stays ContainerCreating.
            raise VolumeNotReady(
                f'MountVolume.NewMounter initialization failed for volume "{volume_name}" : path '
                f'"{local.get("path")}" does not exist on node {self.node} (model_cache has not staged this '
                "version here)"
            )
        return host_path

    def _check_node_affinity(self, affinity: Mapping[str, Any], what: str) -> None:
        terms = ((affinity.get("required") or {}).get("nodeSelectorTerms")) or []
        for term in terms:
            ok = True
            for expr in term.get("matchExpressions") or []:
                if expr.get("key") != HOSTNAME_LABEL or expr.get("operator") != "In":
                    raise UnsupportedField(f"{what}.spec.nodeAffinity: only {HOSTNAME_LABEL} In [...] is supported")
                ok = ok and self.node in (expr.get("values") or [])
            if ok:
                return
        if terms:
            raise PodSpecError(f"{what}: its node affinity does not admit node {self.node}")

    def _secret_dir(self, name: str, source: Mapping[str, Any], fs_group: Any, where: str) -> Path:
        secret_name = str(source.get("secretName"))
        data = self.secrets.get(f"{self.namespace}/{secret_name}")
        if data is None:
            raise VolumeNotReady(f'MountVolume.SetUp failed for volume "{name}" : secret "{secret_name}" not found')
        directory = self.state_dir / "volumes" / name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        mode = int(source.get("defaultMode", 0o644))
        for key, value in data.items():
            path = directory / key
            path.write_bytes(value)
            # The kubelet makes secret files group-owned by fsGroup (AtomicWriter + SetVolumeOwnership).
            if fs_group is not None:
                os.chown(path, 0, int(fs_group))
            path.chmod(mode)
        directory.chmod(0o755)
        return directory

    def _env(self, container: Mapping[str, Any], where: str) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in container.get("env") or []:
            name = str(item.get("name"))
            _refuse_unknown(item, frozenset({"name", "value", "valueFrom"}), f"{where}.env[{name}]")
            if "valueFrom" in item:
                ref = (item["valueFrom"] or {}).get("secretKeyRef")
                if not isinstance(ref, dict) or len(item["valueFrom"]) != 1:
                    raise UnsupportedField(f"{where}.env[{name}].valueFrom: only secretKeyRef is supported")
                data = self.secrets.get(f"{self.namespace}/{ref.get('name')}") or {}
                if ref.get("key") not in data:
                    raise PodSpecError(f"{where}.env[{name}]: secret {ref.get('name')} has no key {ref.get('key')}")
                env[name] = data[str(ref["key"])].decode()
            else:
                # An env value sees only the variables defined before it.
                env[name] = expand(str(item.get("value", "")), env)
        return env

    def _probe(self, container: Mapping[str, Any], kind: str, ports: Mapping[str, int], where: str) -> Probe | None:
        spec = container.get(kind)
        if spec is None:
            return None
        _refuse_unknown(spec, PROBE_FIELDS, f"{where}.{kind}")
        http = spec.get("httpGet")
        if not isinstance(http, dict):
            raise UnsupportedField(f"{where}.{kind}: only httpGet probes are supported")
        _refuse_unknown(http, HTTP_GET_FIELDS, f"{where}.{kind}.httpGet")
        if http.get("scheme", "HTTP") != "HTTP":
            raise UnsupportedField(f"{where}.{kind}.httpGet.scheme: only HTTP is supported")
        port = http.get("port")
        number = ports.get(port) if isinstance(port, str) else port
        if not isinstance(number, int):
            raise PodSpecError(f"{where}.{kind}.httpGet.port: {port!r} names no container port")
        values = {**PROBE_DEFAULTS, **{k: v for k, v in spec.items() if k in PROBE_DEFAULTS}}
        headers = {str(h.get("name")): str(h.get("value")) for h in http.get("httpHeaders") or []}
        return Probe(
            kind=kind.removesuffix("Probe"),
            path=str(http.get("path", "/")),
            port=number,
            scheme="HTTP",
            headers=headers,
            period=float(values["periodSeconds"]),
            timeout=float(values["timeoutSeconds"]),
            failure_threshold=int(values["failureThreshold"]),
            success_threshold=int(values["successThreshold"]),
            initial_delay=float(values["initialDelaySeconds"]),
        )

    def plan(self, container: Mapping[str, Any], where: str, volumes: Mapping[str, Mount]) -> ContainerPlan:
        _refuse_unknown(container, CONTAINER_FIELDS, where)
        pod_ctx = self.spec.get("securityContext") or {}
        ctx = container.get("securityContext") or {}
        _refuse_unknown(ctx, CONTAINER_SECURITY_FIELDS, f"{where}.securityContext")
        caps = ctx.get("capabilities") or {}
        _refuse_unknown(caps, frozenset({"drop"}), f"{where}.securityContext.capabilities")
        seccomp = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type", "RuntimeDefault")
        if seccomp != "RuntimeDefault":
            raise UnsupportedField(f"{where}.securityContext.seccompProfile.type: only RuntimeDefault is supported")
        uid = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
        gid = ctx.get("runAsGroup", pod_ctx.get("runAsGroup"))
        non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
        if uid is None:
            raise UnsupportedField(f"{where}.securityContext.runAsUser: the image's user is not read; set runAsUser")
        if non_root and int(uid) == 0:
            # kubelet: "container's runAsUser breaks non-root policy" (CreateContainerConfigError).
            raise PodSpecError(f"{where}.securityContext: runAsNonRoot with runAsUser 0")
        groups = [int(g) for g in pod_ctx.get("supplementalGroups") or []]
        if pod_ctx.get("fsGroup") is not None:
            groups.append(int(pod_ctx["fsGroup"]))
        env = self._env(container, where)
        command = [expand(str(c), env) for c in container.get("command") or []]
        args = [expand(str(a), env) for a in container.get("args") or []]
        ports: dict[str, int] = {}
        for index, port in enumerate(container.get("ports") or []):
            _refuse_unknown(port, frozenset({"name", "containerPort", "protocol"}), f"{where}.ports[{index}]")
            if port.get("protocol", "TCP") != "TCP":
                raise UnsupportedField(f"{where}.ports[{index}].protocol: only TCP is supported")
            ports[str(port.get("name", port["containerPort"]))] = int(port["containerPort"])
        resources = container.get("resources") or {}
        _refuse_unknown(resources, frozenset({"requests", "limits"}), f"{where}.resources")
        limits = resources.get("limits") or {}
        _refuse_unknown(limits, frozenset({"cpu", "memory"}), f"{where}.resources.limits")
        mounts = []
        for mount in container.get("volumeMounts") or []:
            _refuse_unknown(mount, MOUNT_FIELDS, f"{where}.volumeMounts[{mount.get('name')}]")
            volume = volumes.get(str(mount.get("name")))
            if volume is None:
                raise PodSpecError(f"{where}.volumeMounts[{mount.get('name')}]: no volume of that name")
            # A claim mounted readOnly in the pod is read-only whatever the mount says (kubelet).
            read_only = bool(mount.get("readOnly")) or volume.read_only
            mounts.append(Mount(volume.host_path, str(mount["mountPath"]), read_only, volume.tmpfs_bytes))
        probes = {
            kind: probe
            for kind in ("startupProbe", "readinessProbe", "livenessProbe")
            if (probe := self._probe(container, kind, ports, where)) is not None
        }
        return ContainerPlan(
            name=str(container["name"]),
            image=str(container["image"]),
            pull_policy=str(container.get("imagePullPolicy", "IfNotPresent")),
            argv=args,
            entrypoint=command or None,
            env=env,
            user=f"{int(uid)}:{int(gid) if gid is not None else 0}",
            groups=groups,
            read_only_root=bool(ctx.get("readOnlyRootFilesystem")),
            no_new_privileges=ctx.get("allowPrivilegeEscalation") is False,
            cap_drop_all="ALL" in (caps.get("drop") or []),
            memory_limit=_quantity_bytes(limits["memory"], f"{where}.resources.limits.memory")
            if "memory" in limits
            else None,
            cpu_limit=_quantity_cpus(limits["cpu"], f"{where}.resources.limits.cpu") if "cpu" in limits else None,
            mounts=mounts,
            ports=ports,
            probes=probes,
            workdir=container.get("workingDir"),
        )

    # --- running ---------------------------------------------------------------------------

    def _podman(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        # conmon, which podman starts in its own working directory, writes a file named `oom` there when
        # the container's cgroup reports an OOM event: keep it in the pod's state, not the caller's tree.
        self.state_dir.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [PODMAN, *args],
            capture_output=True,
            text=True,
            check=False,
            env=self.podman_env,
            timeout=timeout,
            cwd=self.state_dir,
        )
        if check and result.returncode != 0:
            raise PodSpecError(f"podman {args[0]} failed ({result.returncode}): {result.stderr.strip()[-800:]}")
        return result

    def _pull(self, plan: ContainerPlan) -> None:
        present = self._podman("image", "exists", plan.image, check=False).returncode == 0
        if plan.pull_policy == "Never" and not present:
            raise PodSpecError(f"{plan.name}: image {plan.image} is not present and imagePullPolicy is Never")
        if plan.pull_policy == "Always" or not present:
            started = time.monotonic()
            self.status.event("Pulling", f'Pulling image "{plan.image}"')
            result = self._podman("pull", "--quiet", plan.image, check=False)
            if result.returncode != 0:
                self.status.event("Failed", f"Failed to pull image {plan.image}: {result.stderr.strip()[-400:]}")
                raise ImagePullError(f"ErrImagePull: {plan.image}: {result.stderr.strip()[-400:]}")
            self.status.timings[f"pull_{plan.name}_seconds"] = time.monotonic() - started
            self.status.event("Pulled", f'Successfully pulled image "{plan.image}"')

    def container_name(self, plan: ContainerPlan) -> str:
        return f"{self.pod_name}-{plan.name}"

    def run_args(self, plan: ContainerPlan, detach: bool) -> list[str]:
        args = ["run", "--name", self.container_name(plan), "--user", plan.user, "--pull", "never"]
        args += ["--detach"] if detach else []
        args += [f"--group-add={group}" for group in plan.groups]
        if plan.read_only_root:
            args.append("--read-only")
            args.append("--read-only-tmpfs=false")
        if plan.no_new_privileges:
            args += ["--security-opt", "no-new-privileges"]
        if plan.cap_drop_all:
            args += ["--cap-drop", "ALL"]
        if plan.memory_limit is not None:
            args += ["--memory", str(plan.memory_limit), "--memory-swap", str(plan.memory_limit)]
        if plan.cpu_limit is not None:
            args += ["--cpus", f"{plan.cpu_limit:g}"]
        if plan.workdir:
            args += ["--workdir", plan.workdir]
        for mount in plan.mounts:
            if mount.tmpfs_bytes is not None:
                args += ["--tmpfs", f"{mount.mount_path}:rw,size={mount.tmpfs_bytes},mode=1777"]
            else:
                args += ["--volume", f"{mount.host_path}:{mount.mount_path}:{'ro' if mount.read_only else 'rw'}"]
        for name, value in plan.env.items():
            args += ["--env", f"{name}={value}"]
        if plan.ports:
            for number in plan.ports.values():
                host = self.host_ports.get(number)
                if host is not None:
                    args += ["--publish", f"127.0.0.1:{host}:{number}"]
        else:
            args += ["--network", "none"]
        args += ["--label", f"io.edgeslm.test-standin.pod={self.pod_name}"]
        if plan.entrypoint:
            args += ["--entrypoint", json.dumps(plan.entrypoint[:1]), plan.image, *plan.entrypoint[1:], *plan.argv]
        else:
            args += [plan.image, *plan.argv]
        return args

    def _write_status(self) -> None:
        tmp = self.status_file.with_name(f".{self.status_file.name}.tmp")
        tmp.write_text(json.dumps(self.status.__dict__, indent=2, default=str))
        tmp.replace(self.status_file)

    def remove_containers(self) -> None:
        listing = self._podman(
            "ps",
            "-a",
            "--filter",
            f"label=io.edgeslm.test-standin.pod={self.pod_name}",
            "--format",
            "{{.ID}}",
            check=False,
        )
        for cid in listing.stdout.split():
            grace = int(self.spec.get("terminationGracePeriodSeconds", 30))
            self._podman("stop", "--time", str(min(grace, 10)), cid, check=False)
            self._podman("rm", "--force", cid, check=False)

    def stop(self) -> None:
        self._stop.set()

    def run(self, deadline_seconds: float | None = None) -> Status:
        """Set up, run the init containers, then run and probe the container until stop() or the deadline."""
        started = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.status.timings["pod_start"] = time.time()
        self.remove_containers()
        try:
            self._run(started, deadline_seconds)
        except (VolumeNotReady, ImagePullError) as exc:
            self.status.phase = "Pending"
            self.status.reason = "ContainerCreating" if isinstance(exc, VolumeNotReady) else "ErrImagePull"
            self.status.event("FailedMount" if isinstance(exc, VolumeNotReady) else "Failed", str(exc))
            self._write_status()
            self._stop.wait(self._remaining(started, deadline_seconds))
        except PodSpecError as exc:
            self.status.phase = "Failed"
            self.status.reason = "CreateContainerConfigError"
            self.status.event("Failed", str(exc))
            self._write_status()
            raise
        finally:
            self.remove_containers()
            self.status.ready = False
            self._write_status()
        return self.status

    @staticmethod
    def _remaining(started: float, deadline: float | None) -> float | None:
        return None if deadline is None else max(0.0, deadline - (time.monotonic() - started))

    def _run(self, started: float, deadline: float | None) -> None:
        volumes = self._volumes()
        self.status.timings["volumes_ready"] = time.time()
        for index, container in enumerate(self.spec.get("initContainers") or []):
            where = f"spec.template.spec.initContainers[{container.get('name', index)}]"
            plan = self.plan(container, where, volumes)
            self._pull(plan)
            self.status.reason = f"Init:{index}/{len(self.spec['initContainers'])}"
            self._write_status()
            result = self._podman(*self.run_args(plan, detach=False), check=False, timeout=1800)
            self._podman("rm", "--force", self.container_name(plan), check=False)
            if result.returncode != 0:
                self.status.reason = "Init:Error"
                self.status.event(
                    "Failed",
                    f"init container {plan.name} exited {result.returncode}: "
                    f"{(result.stderr or result.stdout).strip()[-400:]}",
                )
                self._write_status()
                self._stop.wait(self._remaining(started, deadline))
                return
        self.status.timings["init_done"] = time.time()
        container = self.spec["containers"][0]
        plan = self.plan(container, f"spec.template.spec.containers[{container.get('name', 0)}]", volumes)
        self._pull(plan)
        backoff = BACKOFF_START
        while not self._stop.is_set():
            if deadline is not None and time.monotonic() - started > deadline:
                return
            outcome = self._run_container(plan, started, deadline)
            if outcome == "stopped":
                return
            self.status.restarts += 1
            self.status.reason = "CrashLoopBackOff"
            self.status.event("BackOff", f"Back-off {backoff:.0f}s restarting failed container {plan.name}")
            self._write_status()
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _run_container(self, plan: ContainerPlan, started: float, deadline: float | None) -> str:
        self._podman("rm", "--force", self.container_name(plan), check=False)
        result = self._podman(*self.run_args(plan, detach=True))
        self.status.container_id = result.stdout.strip()
        self.status.phase = "Running"
        self.status.reason = ""
        self.status.started = False
        self.status.timings.setdefault("container_started", time.time())
        self.status.event("Started", f"Started container {plan.name}")
        self._write_status()
        host_port = {name: self.host_ports.get(number) for name, number in plan.ports.items()}
        startup = plan.probes.get("startupProbe")
        readiness = plan.probes.get("readinessProbe")
        liveness = plan.probes.get("livenessProbe")
        counters: dict[str, tuple[int, int]] = {}
        next_due: dict[str, float] = {}
        began = time.monotonic()
        for probe in (startup, readiness, liveness):
            if probe is not None:
                next_due[probe.kind] = began + probe.initial_delay
        started_ok = startup is None
        if started_ok:
            self._mark_started()
        while not self._stop.is_set():
            if deadline is not None and time.monotonic() - started > deadline:
                return "stopped"
            exited = self._exited(plan)
            if exited is not None:
                self.status.ready = False
                self.status.event("Died", exited)
                self._write_status()
                return "died"
            now = time.monotonic()
            active = [startup] if not started_ok else [readiness, liveness]
            for probe in active:
                if probe is None or now < next_due[probe.kind]:
                    continue
                next_due[probe.kind] = now + probe.period
                port = self.host_ports.get(probe.port) or host_port.get(str(probe.port))
                ok, message = probe.check(int(port)) if port else (False, f"port {probe.port} not published")
                successes, failures = counters.get(probe.kind, (0, 0))
                successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
                counters[probe.kind] = (successes, failures)
                if not ok:
                    self.status.event("Unhealthy", message)
                if probe is startup:
                    if ok:
                        started_ok = True
                        self._mark_started()
                        for later in (readiness, liveness):
                            if later is not None:
                                next_due[later.kind] = time.monotonic() + later.initial_delay
                    elif failures >= probe.failure_threshold:
                        self.status.event("Killing", f"Container {plan.name} failed startup probe, will be restarted")
                        self._podman("rm", "--force", self.container_name(plan), check=False)
                        return "died"
                elif probe is readiness:
                    if ok and successes >= probe.success_threshold and not self.status.ready:
                        self.status.ready = True
                        self.status.timings.setdefault("ready", time.time())
                        self.status.event("Ready", "readiness probe succeeded")
                    elif not ok and failures >= probe.failure_threshold and self.status.ready:
                        self.status.ready = False
                elif probe is liveness and not ok and failures >= probe.failure_threshold:
                    self.status.event("Killing", f"Container {plan.name} failed liveness probe, will be restarted")
                    self._podman("rm", "--force", self.container_name(plan), check=False)
                    return "died"
                self._write_status()
            if started_ok and readiness is None and not self.status.ready:
                self.status.ready = True
                self.status.timings.setdefault("ready", time.time())
                self._write_status()
            self._stop.wait(0.2)
        return "stopped"

    def _mark_started(self) -> None:
        self.status.started = True
        self.status.timings.setdefault("startup_probe_ok", time.time())
        self._write_status()

    def _exited(self, plan: ContainerPlan) -> str | None:
        result = self._podman(
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}}",
            self.container_name(plan),
            check=False,
        )
        if result.returncode != 0:
            return "container gone"
        state, code, oom = ([*result.stdout.split(), "", "", ""])[:3]
        if state in ("running", "created", "configured"):
            return None
        if oom == "true":
            self.status.oom_kills += 1
            logs = ""
        else:
            tail = self._podman("logs", "--tail", "5", self.container_name(plan), check=False)
            logs = (tail.stderr + tail.stdout).strip()[-600:]
        reason = "OOMKilled" if oom == "true" else "Error"
        return f"container {plan.name} terminated: {reason}, exit code {code}" + (f": {logs}" if logs else "")


class VolumeNotReady(PodSpecError):
    """A volume cannot be set up on this node (the pod stays ContainerCreating)."""


class ImagePullError(PodSpecError):
    """The image cannot be pulled (ErrImagePull)."""


def template_hash(template: Mapping[str, Any]) -> str:
    """A stable hash of the pod template, standing in for the pod-template-hash label a controller adds."""
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def main(argv: list[str]) -> int:
    """Daemon entry: run the pod described by a JSON job file until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", type=Path, help="JSON job file written by tests/serve/serve.py")
    args = parser.parse_args(argv)
    job = json.loads(args.job.read_text())
    objects = load_objects(Path(job["rendered"]))
    template = job.get("template") or find_pod_template(objects, job["kind"], job["namespace"], job["name"])
    secrets = {ref: {k: bytes.fromhex(v) for k, v in data.items()} for ref, data in job["secrets"].items()}
    runner = PodRunner(
        objects,
        template,
        namespace=job["namespace"],
        pod_name=job["pod"],
        node=job["node"],
        node_root=Path(job["node_root"]),
        state_dir=Path(job["state_dir"]),
        host_ports={int(k): int(v) for k, v in job["host_ports"].items()},
        secrets=secrets,
        podman_env=job.get("podman_env") or {},
    )
    signal.signal(signal.SIGTERM, lambda *_signal: runner.stop())
    signal.signal(signal.SIGINT, lambda *_signal: runner.stop())
    try:
        runner.run(job.get("deadline_seconds"))
    except PodSpecError as exc:
        print(f"kubelet-standin: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main(sys.argv[1:]))
