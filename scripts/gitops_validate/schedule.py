# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Schedule every pod a site would run onto the site's nodes, as kube-scheduler would.

The nodes come from the site catalog through the collection's core: one per host, with the
labels and taints the k3s role applies (_catalog.node_labels_and_taints), the labels k3s adds
itself, and the allocatable CPU and memory the kubelet reports with the reservations the k3s
role configures (_capacity.allocatable).

The pods come from four places: what the pinned k3s release deploys by itself (data/k3s.yaml),
the Flux controllers the hand-off installs (data/bootstrap.yaml), the pods of each HelmRelease
(its values over the chart defaults in data/charts.yaml) and the site's rendered workloads:
DaemonSets on every node they are eligible for, Deployments, StatefulSets and Rollouts at the
minimum and at the maximum replicas of their autoscaler, a Rollout at the peak its canary steps
reach (Argo Rollouts' replica arithmetic, data/rollouts.yaml), and the analysis Job a canary
step starts.

Filters are kube-scheduler's: taints and tolerations (NoSchedule and NoExecute filter,
PreferNoSchedule only scores), nodeSelector, required node affinity (In, NotIn, Exists,
DoesNotExist, Gt, Lt), RuntimeClass scheduling (its node selector and tolerations merged into
the pod, its overhead added to the requests), requests against allocatable CPU, memory and
extended resources (a device plugin's resource exists only on the nodes its DaemonSet lands
on), host ports, required pod anti-affinity and DoNotSchedule topology spread. Among the nodes
that pass, the pod goes where its ScheduleAnyway spread is best, then to the node with the
fewest intolerable PreferNoSchedule taints, then to the least allocated one (the default
scoring, simplified). Preemption is not simulated: pods are placed in priority order, so a pod
that does not fit would not fit by evicting a lower-priority one either.

Every pod that cannot be placed is a problem (pod, node class, reason), and so is every node
whose model servers need more memory by the core's estimate (weights, KV cache and compute,
once per server) than the node has left next to the other pods' requests. The placement
summary goes to SiteResult.summary.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from .core import load_module
from .model import Obj, SiteResult, pod_spec
from .quantity import QuantityError, parse_quantity
from .upstream import DataError, chart, load

__all__ = ["Node", "PodGroup", "check_schedule", "schedule_site"]

CHECK = "schedule"
MIB = 1 << 20
GIB = 1 << 30
RUNTIME_LABEL = "edgeslm.pi5/runtime"
HOSTNAME = "kubernetes.io/hostname"
FILTERING_EFFECTS = ("NoSchedule", "NoExecute")
# Tolerations the DaemonSet controller adds to every DaemonSet pod (kubernetes
# pkg/controller/daemon/util/daemonset_util.go AddOrUpdateDaemonPodTolerations): node conditions
# only, none of the site's own taints.
DAEMONSET_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
# ScaledObject defaults (KEDA): minReplicaCount 0, maxReplicaCount 100.
KEDA_DEFAULT_MIN = 0
KEDA_DEFAULT_MAX = 100


# --- nodes -----------------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    node_class: str
    role: str
    labels: dict[str, str]
    taints: list[dict[str, str]]
    allocatable: dict[str, int]  # cpu in millicores, memory in bytes, extended resources as counts
    used: dict[str, int] = field(default_factory=dict)
    host_ports: set[tuple[str, int]] = field(default_factory=set)
    pods: list[Placed] = field(default_factory=list)


def _taint(text: str) -> dict[str, str]:
    head, _sep, effect = text.rpartition(":")
    key, _sep, value = head.partition("=")
    return {"key": key, "value": value, "effect": effect}


def site_nodes(catalog: Any) -> list[Node]:
    """The site's nodes as the k3s role registers them, with their allocatable resources."""
    capacity = load_module("_capacity")
    targets = load_module("_targets").TARGETS
    nodes = []
    for spec in catalog.nodes():
        node_class = spec.node_class
        labels = dict(spec.labels)
        labels.update(
            {
                HOSTNAME: spec.host,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": node_class.arch,
            }
        )
        if spec.k3s_role == "server":
            # k3s labels its servers (pkg/agent/run.go: control-plane, master, etcd with embedded etcd).
            for role in ("control-plane", "master", "etcd"):
                labels[f"node-role.kubernetes.io/{role}"] = "true"
        free = capacity.allocatable(targets[node_class.target].memory_bytes, spec.k3s_role)
        nodes.append(
            Node(
                name=spec.host,
                node_class=node_class.name,
                role=spec.k3s_role,
                labels=labels,
                taints=[_taint(t) for t in spec.taints],
                allocatable={"cpu": free.cpu_millis, "memory": free.memory_bytes},
            )
        )
    return nodes


# --- pods ------------------------------------------------------------------------------------


@dataclass
class PodGroup:
    """Pods from one template: `count` of them (None: one per eligible node, a DaemonSet)."""

    owner: str  # "Deployment slm/slm-llamacpp", "k3s coredns", ...
    file: str
    namespace: str
    spec: dict[str, Any]
    labels: dict[str, str]
    count: int | None
    priority: int = 0
    model: Any = None  # the catalog model a server pod serves
    what: str = ""  # "canary", "analysis job", ...
    obj: Obj | None = None

    @property
    def title(self) -> str:
        return f"{self.owner} ({self.what})" if self.what else self.owner


@dataclass
class Placed:
    group: PodGroup
    requests: dict[str, int]


def _quantity(value: Any, resource: str) -> int:
    amount = parse_quantity(value)
    if resource == "cpu":
        return int((amount * 1000).to_integral_value(rounding="ROUND_CEILING"))
    return int(amount.to_integral_value(rounding="ROUND_CEILING"))


def _container_requests(container: Mapping[str, Any]) -> dict[str, int]:
    resources = container.get("resources") or {}
    requests = dict(resources.get("requests") or {})
    for name, value in (resources.get("limits") or {}).items():
        requests.setdefault(name, value)  # the API server defaults a missing request to its limit
    return {name: _quantity(value, name) for name, value in requests.items()}


def _add(into: dict[str, int], more: Mapping[str, int]) -> None:
    for name, value in more.items():
        into[name] = into.get(name, 0) + value


def pod_requests(spec: Mapping[str, Any], overhead: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Effective requests (kube-scheduler's computePodResourceRequest): containers, init, sidecars, overhead."""
    total: dict[str, int] = {}
    for container in spec.get("containers") or []:
        _add(total, _container_requests(container))
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for container in spec.get("initContainers") or []:
        requests = _container_requests(container)
        if container.get("restartPolicy") == "Always":
            _add(sidecars, requests)
            continue
        for name, value in requests.items():
            init_peak[name] = max(init_peak.get(name, 0), value + sidecars.get(name, 0))
    _add(total, sidecars)
    for name, value in init_peak.items():
        total[name] = max(total.get(name, 0), value)
    if overhead:
        _add(total, {name: _quantity(value, name) for name, value in overhead.items()})
    return total


def _host_ports(spec: Mapping[str, Any]) -> set[tuple[str, int]]:
    ports = set()
    host_network = bool(spec.get("hostNetwork"))
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            for port in container.get("ports") or []:
                number = port.get("hostPort") or (port.get("containerPort") if host_network else None)
                if number:
                    ports.add((str(port.get("protocol") or "TCP"), int(number)))
    return ports


# --- filters ---------------------------------------------------------------------------------


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, str]) -> bool:
    """core/v1 Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint["effect"]:
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if not key:
        return operator == "Exists"
    if key != taint["key"]:
        return False
    if operator == "Exists":
        return True
    return str(toleration.get("value") or "") == taint.get("value", "")


def _untolerated(tolerations: Sequence[Mapping[str, Any]], taints: Iterable[Mapping[str, str]]) -> list[str]:
    return [
        f"{t['key']}{'=' + t['value'] if t.get('value') else ''}:{t['effect']}"
        for t in taints
        if not any(tolerates(tol, t) for tol in tolerations)
    ]


def _match_expression(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key = str(expression.get("key"))
    operator = expression.get("operator")
    values = [str(v) for v in expression.get("values") or []]
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and values:
        try:
            left, right = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return left > right if operator == "Gt" else left < right
    return False


def _term_matches(term: Mapping[str, Any], node: Node) -> bool:
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False  # an empty term matches nothing
    if not all(_match_expression(e, node.labels) for e in expressions):
        return False
    return all(_match_expression(f, {"metadata.name": node.name}) for f in fields)


def _selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    if not selector:
        return False
    wanted = selector.get("matchLabels") or {}
    if any(labels.get(k) != str(v) for k, v in wanted.items()):
        return False
    return all(_match_expression(e, labels) for e in selector.get("matchExpressions") or [])


@dataclass
class _Pod:
    """One pod to place, with its RuntimeClass folded in."""

    group: PodGroup
    spec: dict[str, Any]
    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]
    requests: dict[str, int]
    host_ports: set[tuple[str, int]]


def _node_filters(pod: _Pod, node: Node) -> str | None:
    """Why `node` cannot take `pod` on grounds that do not depend on other pods, or None."""
    for key, value in pod.node_selector.items():
        if node.labels.get(key) != str(value):
            return f"node selector {key}={value} (node has {node.labels.get(key, 'no such label')})"
    affinity = ((pod.spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if isinstance(affinity, dict):
        terms = affinity.get("nodeSelectorTerms") or []
        if not any(_term_matches(term, node) for term in terms):
            return "required node affinity does not match the node's labels"
    untolerated = _untolerated(pod.tolerations, (t for t in node.taints if t["effect"] in FILTERING_EFFECTS))
    if untolerated:
        return f"untolerated taint {', '.join(untolerated)}"
    return None


def _resource_filter(pod: _Pod, node: Node) -> str | None:
    for name, wanted in pod.requests.items():
        if wanted <= 0:
            continue
        have = node.allocatable.get(name, 0) - node.used.get(name, 0)
        if wanted > have:
            if name not in node.allocatable:
                return f"no {name} on the node (no device plugin advertises it there)"
            left, total = _show(name, max(have, 0)), _show(name, node.allocatable[name])
            return f"insufficient {name}: requests {_show(name, wanted)}, {left} left of {total}"
    conflict = pod.host_ports & node.host_ports
    if conflict:
        ports = ", ".join(f"{port}/{proto}" for proto, port in sorted(conflict))
        return f"host port {ports} already in use"
    return None


def _show(resource: str, value: int) -> str:
    if resource == "cpu":
        return f"{value}m"
    if resource == "memory":
        return f"{value / MIB:.0f} MiB"
    return str(value)


def _anti_affinity_filter(pod: _Pod, node: Node, nodes: list[Node]) -> str | None:
    terms = ((pod.spec.get("affinity") or {}).get("podAntiAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or []
    for term in terms:
        key = term.get("topologyKey")
        if key not in node.labels:
            continue
        domain = [n for n in nodes if n.labels.get(key) == node.labels[key]]
        for other in domain:
            for placed in other.pods:
                if placed.group.namespace == pod.group.namespace and _selector_matches(
                    term.get("labelSelector"), placed.group.labels
                ):
                    return f"pod anti-affinity with {placed.group.owner} ({key})"
    return None


def _spread_counts(constraint: Mapping[str, Any], pod: _Pod, nodes: list[Node]) -> dict[str, int] | None:
    key = str(constraint.get("topologyKey"))
    eligible = [n for n in nodes if key in n.labels and _node_filters_for_spread(pod, n)]
    if not eligible:
        return None
    counts: dict[str, int] = {n.labels[key]: 0 for n in eligible}
    for node in nodes:
        if key not in node.labels or node.labels[key] not in counts:
            continue
        for placed in node.pods:
            if placed.group.namespace == pod.group.namespace and _selector_matches(
                constraint.get("labelSelector"), placed.group.labels
            ):
                counts[node.labels[key]] += 1
    return counts


def _node_filters_for_spread(pod: _Pod, node: Node) -> bool:
    """Domains count when the node passes the pod's node selector and affinity (nodeAffinityPolicy Honor);
    taints are ignored (nodeTaintsPolicy Ignore), as by default."""
    reason = _node_filters(pod, node)
    return reason is None or reason.startswith("untolerated taint")


def _spread_skew(pod: _Pod, node: Node, nodes: list[Node], mode: str) -> int | None:
    """The worst skew after placing `pod` on `node` over the pod's constraints of `mode`."""
    worst = 0
    for constraint in pod.spec.get("topologySpreadConstraints") or []:
        if (constraint.get("whenUnsatisfiable") or "DoNotSchedule") != mode:
            continue
        key = constraint.get("topologyKey")
        if key not in node.labels:
            return None if mode == "DoNotSchedule" else worst
        counts = _spread_counts(constraint, pod, nodes)
        if counts is None or node.labels[key] not in counts:
            continue
        after = counts[node.labels[key]] + 1
        skew = after - min(counts.values())
        if mode == "DoNotSchedule" and skew > int(constraint.get("maxSkew") or 1):
            return None
        worst = max(worst, skew)
    return worst


# --- placement -------------------------------------------------------------------------------


@dataclass
class Unplaced:
    group: PodGroup
    reasons: dict[str, list[str]]  # node class -> reasons


@dataclass
class Scenario:
    name: str
    nodes: list[Node]
    placed: int = 0
    unplaced: list[Unplaced] = field(default_factory=list)
    daemonset_skips: int = 0


def _place_one(pod: _Pod, nodes: list[Node]) -> tuple[Node | None, dict[str, list[str]]]:
    reasons: dict[str, list[str]] = {}
    feasible: list[tuple[tuple[Any, ...], Node]] = []
    for node in nodes:
        reason = _node_filters(pod, node) or _resource_filter(pod, node) or _anti_affinity_filter(pod, node, nodes)
        if reason is None and _spread_skew(pod, node, nodes, "DoNotSchedule") is None:
            reason = "topology spread (DoNotSchedule) would exceed maxSkew"
        if reason is not None:
            reasons.setdefault(node.node_class, [])
            entry = f"{node.name}: {reason}"
            if entry not in reasons[node.node_class]:
                reasons[node.node_class].append(entry)
            continue
        soft = _spread_skew(pod, node, nodes, "ScheduleAnyway") or 0
        prefer = len(_untolerated(pod.tolerations, (t for t in node.taints if t["effect"] == "PreferNoSchedule")))
        memory = (node.used.get("memory", 0) + pod.requests.get("memory", 0)) / max(node.allocatable["memory"], 1)
        cpu = (node.used.get("cpu", 0) + pod.requests.get("cpu", 0)) / max(node.allocatable["cpu"], 1)
        feasible.append(((soft, prefer, round((memory + cpu) / 2, 6), node.name), node))
    if not feasible:
        return None, reasons
    return min(feasible, key=lambda item: item[0])[1], reasons


def _bind(pod: _Pod, node: Node) -> None:
    _add(node.used, pod.requests)
    node.host_ports |= pod.host_ports
    node.pods.append(Placed(pod.group, pod.requests))
    _advertise_devices(pod.group, node)


def _advertise_devices(group: PodGroup, node: Node) -> None:
    """A generic device plugin pod makes its devices an extended resource of its node."""
    for resource, count in _device_plugin_resources(group.spec).items():
        node.allocatable[resource] = node.allocatable.get(resource, 0) + count


def _device_plugin_resources(spec: Mapping[str, Any]) -> dict[str, int]:
    facts = load("devices")["genericDevicePlugin"]
    found: dict[str, int] = {}
    for container in spec.get("containers") or []:
        image = str(container.get("image", "")).split("@", maxsplit=1)[0]
        if not image.split(":", maxsplit=1)[0].endswith(facts["image"]):
            continue
        args = [str(a) for a in container.get("args") or []]
        domain = facts["defaultDomain"]
        for index, arg in enumerate(args):
            if arg == "--domain" and index + 1 < len(args):
                domain = args[index + 1]
        for index, arg in enumerate(args):
            if arg != "--device" or index + 1 >= len(args):
                continue
            try:
                device = yaml.safe_load(args[index + 1])
            except yaml.YAMLError:  # an unreadable device spec advertises nothing
                continue
            if not isinstance(device, dict) or not device.get("name"):
                continue
            count = sum(int(g.get("count") or 1) for g in device.get("groups") or [{}])
            found[f"{domain}/{device['name']}"] = found.get(f"{domain}/{device['name']}", 0) + count
    return found


def _expand(group: PodGroup, runtime_classes: Mapping[str, dict[str, Any]]) -> _Pod:
    spec = group.spec
    selector = {str(k): str(v) for k, v in (spec.get("nodeSelector") or {}).items()}
    tolerations = list(spec.get("tolerations") or [])
    overhead = None
    runtime_class = runtime_classes.get(str(spec.get("runtimeClassName") or ""))
    if runtime_class is not None:
        scheduling = runtime_class.get("scheduling") or {}
        selector.update({str(k): str(v) for k, v in (scheduling.get("nodeSelector") or {}).items()})
        tolerations += list(scheduling.get("tolerations") or [])
        overhead = (runtime_class.get("overhead") or {}).get("podFixed")
    if group.count is None:
        tolerations += list(DAEMONSET_TOLERATIONS)
    return _Pod(group, spec, selector, tolerations, pod_requests(spec, overhead), _host_ports(spec))


def run_scenario(
    name: str, nodes: list[Node], groups: list[PodGroup], runtime_classes: Mapping[str, dict[str, Any]]
) -> Scenario:
    scenario = Scenario(name, nodes)
    daemonsets = [g for g in groups if g.count is None]
    others = [g for g in groups if g.count is not None]
    for group in sorted(daemonsets, key=lambda g: -g.priority):
        pod = _expand(group, runtime_classes)
        for node in nodes:
            if _node_filters(pod, node) is not None:
                scenario.daemonset_skips += 1
                continue  # the DaemonSet controller creates no pod there
            reason = _resource_filter(pod, node)
            if reason is not None:
                scenario.unplaced.append(Unplaced(group, {node.node_class: [f"{node.name}: {reason}"]}))
                continue
            _bind(pod, node)
            scenario.placed += 1
    for group in sorted(others, key=lambda g: (-g.priority, g.what == "canary", g.what == "analysis job")):
        pod = _expand(group, runtime_classes)
        for _replica in range(group.count or 0):
            chosen, reasons = _place_one(pod, nodes)
            if chosen is None:
                scenario.unplaced.append(Unplaced(group, reasons))
                break  # one report per group: the others fail the same way
            _bind(pod, chosen)
            scenario.placed += 1
    return scenario


# --- collecting the site's pods ----------------------------------------------------------------


def _priority(spec: Mapping[str, Any], classes: Mapping[str, int], default: int) -> int:
    name = spec.get("priorityClassName")
    if name:
        return classes.get(str(name), default)
    return default


def _template_labels(doc: Mapping[str, Any]) -> dict[str, str]:
    template = (doc.get("spec") or {}).get("template") or {}
    return {str(k): str(v) for k, v in ((template.get("metadata") or {}).get("labels") or {}).items()}


def _autoscaled(objects: list[Obj]) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(namespace, kind, name) of every autoscaled workload -> (min, max) replicas."""
    bounds: dict[tuple[str, str, str], tuple[int, int]] = {}
    for obj in objects:
        spec = obj.spec()
        ref = spec.get("scaleTargetRef") or {}
        if obj.kind == "HorizontalPodAutoscaler":
            bounds[(obj.namespace, str(ref.get("kind")), str(ref.get("name")))] = (
                int(spec.get("minReplicas", 1)),
                int(spec.get("maxReplicas", 1)),
            )
        elif obj.kind == "ScaledObject":
            bounds[(obj.namespace, str(ref.get("kind") or "Deployment"), str(ref.get("name")))] = (
                int(spec.get("minReplicaCount", KEDA_DEFAULT_MIN)),
                int(spec.get("maxReplicaCount", KEDA_DEFAULT_MAX)),
            )
    return bounds


def canary_peak(rollout: Mapping[str, Any], replicas: int) -> int:
    """Most pods a canary Rollout runs at once while it updates `replicas` stable pods.

    Argo Rollouts' replica arithmetic with traffic routing (data/rollouts.yaml): the canary gets
    setCanaryScale's replicas or ceil(weight x replicas / 100); the stable ReplicaSet stays at
    full scale, or with dynamicStableScale at max(ceil((100 - weight) x replicas / 100), the
    replicas behind the traffic it still has); after the last step the canary is scaled to full
    before the stable scales down. Without traffic routing (a basic canary) maxSurge bounds the
    extra pods (25 % by default, rounded up).
    """
    if replicas <= 0:
        return 0
    canary = ((rollout.get("spec") or {}).get("strategy") or {}).get("canary") or {}
    if not canary.get("trafficRouting"):
        surge = canary.get("maxSurge", "25%")
        extra = math.ceil(replicas * int(str(surge)[:-1]) / 100) if str(surge).endswith("%") else int(surge)
        return replicas + extra

    def ratio(weight: int) -> int:
        return math.ceil(weight * replicas / 100)

    dynamic = bool(canary.get("dynamicStableScale"))
    peak = replicas
    stable_weight = 100  # traffic still on stable
    weight = 0
    scale: int | None = None
    for step in [*(canary.get("steps") or []), {"_promote": True}]:
        if step.get("_promote"):
            canary_pods, weight_after = replicas, 100
        elif "setCanaryScale" in step:
            setting = step["setCanaryScale"] or {}
            if "replicas" in setting:
                scale = int(setting["replicas"])
            elif "weight" in setting:
                scale = ratio(int(setting["weight"]))
            else:  # matchTrafficWeight
                scale = None
            canary_pods, weight_after = (scale if scale is not None else ratio(weight)), weight
        elif "setWeight" in step:
            weight = int(step["setWeight"])
            canary_pods, weight_after = (scale if scale is not None else ratio(weight)), weight
        else:
            continue
        stable_pods = max(ratio(100 - weight_after), ratio(stable_weight)) if dynamic else replicas
        peak = max(peak, canary_pods + stable_pods)
        stable_weight = 100 - weight_after
    return peak


class _Collector:
    def __init__(self, result: SiteResult, catalog: Any) -> None:
        self.result = result
        self.catalog = catalog
        self.objects = result.objects
        k3s = load("k3s")
        self.priority_classes: dict[str, int] = {str(k): int(v) for k, v in (k3s.get("priorityClasses") or {}).items()}
        self.default_priority = 0
        for obj in self.objects:
            if obj.kind == "PriorityClass":
                self.priority_classes[obj.name] = int(obj.doc.get("value", 0))
                if obj.doc.get("globalDefault"):
                    self.default_priority = int(obj.doc.get("value", 0))
        self.runtime_classes = {o.name: o.doc for o in self.objects if o.kind == "RuntimeClass"}
        self.bounds = _autoscaled(self.objects)
        self.models = {m.runtime.name: m for m in catalog.models} if catalog is not None else {}
        self.workload_refs = {
            (
                o.namespace,
                str((o.spec().get("workloadRef") or {}).get("kind")),
                str((o.spec().get("workloadRef") or {}).get("name")),
            )
            for o in self.objects
            if o.kind == "Rollout" and isinstance(o.spec().get("workloadRef"), dict)
        }

    def group(
        self,
        owner: str,
        file: str,
        namespace: str,
        spec: dict[str, Any],
        labels: dict[str, str],
        count: int | None,
        what: str = "",
        obj: Obj | None = None,
    ) -> PodGroup:
        model = self.models.get(labels.get(RUNTIME_LABEL, ""))
        return PodGroup(
            owner,
            file,
            namespace,
            spec,
            labels,
            count,
            _priority(spec, self.priority_classes, self.default_priority),
            model,
            what,
            obj,
        )

    def k3s_groups(self) -> list[PodGroup]:
        out = []
        for workload in load("k3s")["workloads"]:
            count = None if workload["kind"] == "DaemonSet" else int(workload.get("replicas", 1))
            out.append(
                self.group(
                    f"k3s {workload['kind']} {workload['namespace']}/{workload['name']}",
                    "data/k3s.yaml",
                    workload["namespace"],
                    dict(workload["pod"]),
                    {str(k): str(v) for k, v in (workload.get("labels") or {}).items()},
                    count,
                )
            )
        flux = load("bootstrap")["flux"]
        for workload in flux["workloads"]:
            spec: dict[str, Any] = {
                "containers": [{"name": "manager", "resources": {"requests": workload["requests"]}}],
            }
            if workload.get("priorityClassName"):
                spec["priorityClassName"] = workload["priorityClassName"]
            out.append(
                self.group(
                    f"Flux Deployment flux-system/{workload['name']}",
                    "data/bootstrap.yaml",
                    "flux-system",
                    spec,
                    {"app": workload["name"]},
                    1,
                )
            )
        return out

    def workload_groups(self, scenario: str) -> list[PodGroup]:
        out: list[PodGroup] = []
        for obj in self.objects:
            if obj.kind not in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod", "Rollout"):
                continue
            if obj.kind == "Rollout":
                out.extend(self._rollout(obj, scenario))
                continue
            if (obj.namespace, obj.kind, obj.name) in self.workload_refs:
                continue  # its pod template runs under the Rollout
            pod, _path = pod_spec(obj.doc)
            if pod is None:
                continue
            labels = _template_labels(obj.doc) if obj.kind != "Pod" else dict(obj.metadata.get("labels") or {})
            if obj.kind == "DaemonSet":
                count: int | None = None
            elif obj.kind == "Pod":
                count = 1
            else:
                count = self._replicas(obj, scenario)
            out.append(self.group(obj.ref, obj.file, obj.namespace, pod, labels, count, obj=obj))
        return out

    def _replicas(self, obj: Obj, scenario: str) -> int:
        bounds = self.bounds.get((obj.namespace, obj.kind, obj.name))
        if bounds is not None:
            return bounds[0] if scenario == "min" else bounds[1]
        return int(obj.spec().get("replicas", 1))

    def _rollout(self, rollout: Obj, scenario: str) -> list[PodGroup]:
        spec = rollout.spec()
        ref = spec.get("workloadRef")
        source = rollout
        if isinstance(ref, dict):
            found = next(
                (
                    o
                    for o in self.objects
                    if o.kind == ref.get("kind") and o.namespace == rollout.namespace and o.name == ref.get("name")
                ),
                None,
            )
            if found is None:
                return []  # the references check reports it
            source = found
        pod, _path = pod_spec(source.doc)
        if pod is None:
            return []
        labels = _template_labels(source.doc)
        replicas = self._replicas(rollout, scenario)
        groups = [self.group(rollout.ref, rollout.file, rollout.namespace, pod, labels, replicas, obj=rollout)]
        if scenario == "max" and replicas > 0:
            extra = canary_peak(rollout.doc, replicas) - replicas
            if extra > 0:
                groups.append(
                    self.group(rollout.ref, rollout.file, rollout.namespace, pod, labels, extra, "canary", rollout)
                )
            groups.extend(self._analysis_jobs(rollout))
        return groups

    def _analysis_jobs(self, rollout: Obj) -> list[PodGroup]:
        """The Job pods a canary's analysis starts (Job metrics), one per metric, at the same time."""
        canary = ((rollout.spec().get("strategy") or {}).get("canary")) or {}
        names = set()
        for step in canary.get("steps") or []:
            for template in ((step.get("analysis") or {}).get("templates")) or []:
                names.add(str(template.get("templateName")))
        out = []
        for obj in self.objects:
            if obj.kind != "AnalysisTemplate" or obj.namespace != rollout.namespace or obj.name not in names:
                continue
            for metric in obj.spec().get("metrics") or []:
                job = ((metric.get("provider") or {}).get("job")) or {}
                template = ((job.get("spec") or {}).get("template")) or {}
                if isinstance(template.get("spec"), dict):
                    labels = {str(k): str(v) for k, v in ((template.get("metadata") or {}).get("labels") or {}).items()}
                    out.append(
                        self.group(
                            f"{obj.ref} metric {metric.get('name')}",
                            obj.file,
                            obj.namespace,
                            template["spec"],
                            labels,
                            1,
                            "analysis job",
                            obj,
                        )
                    )
        return out

    def helm_groups(self) -> list[PodGroup]:
        out = []
        for release in (o for o in self.objects if o.kind == "HelmRelease"):
            spec = release.spec()
            chart_spec = (spec.get("chart") or {}).get("spec") or {}
            name, version = str(chart_spec.get("chart")), str(chart_spec.get("version"))
            facts = chart(name, version)
            namespace = str(spec.get("targetNamespace") or release.namespace)
            if facts is None:
                self.result.add(
                    CHECK,
                    release,
                    "spec.chart.spec",
                    f"chart {name} {version}: its pods' scheduling facts are not in scripts/gitops_validate/data/"
                    "charts.yaml, so they cannot be placed; add the chart's workloads there (read from that version)",
                )
                continue
            values = spec.get("values") or {}
            for workload in facts.get("workloads") or []:
                if not _enabled(workload, values):
                    continue
                if workload.get("modelled") is False:
                    self.result.add(
                        CHECK,
                        release,
                        "spec.values",
                        f"chart {name} {version}: {workload['kind']} {workload['name']} is enabled but its pods "
                        "are not modelled in scripts/gitops_validate/data/charts.yaml (disable it or add its facts)",
                    )
                    continue
                pod = _chart_pod(workload, values)
                count = None if workload["kind"] == "DaemonSet" else int(_value(workload.get("replicas"), values, 1))
                out.append(
                    self.group(
                        f"{release.ref} {workload['kind']} {namespace}/{workload['name']}",
                        release.file,
                        namespace,
                        pod,
                        {"app.kubernetes.io/name": workload["name"]},
                        count,
                        obj=release,
                    )
                )
        return out


def _lookup(values: Mapping[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _value(spec: Mapping[str, Any] | None, values: Mapping[str, Any], fallback: Any = None) -> Any:
    """A chart value by its `paths` (Helm `a | default b`: empty values fall through), else its default."""
    if spec is None:
        return fallback
    for path in spec.get("paths") or []:
        found = _lookup(values, path)
        if found not in (None, "", {}, []):
            return found
    return spec.get("default", fallback)


def _enabled(workload: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    spec = workload.get("enabled")
    if spec is None:
        return True
    found: Any = spec.get("default")
    for path in spec.get("paths") or []:
        value = _lookup(values, path)
        if value is not None:
            found = value
            break
    return not bool(found) if spec.get("invert") else bool(found)


def _chart_pod(workload: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = {}
    selector = dict((workload.get("nodeSelector") or {}).get("fixed") or {})
    selector.update(_value(workload.get("nodeSelector"), values, {}) or {})
    if selector:
        pod["nodeSelector"] = selector
    for key in ("tolerations", "affinity", "topologySpreadConstraints", "priorityClassName", "hostNetwork"):
        value = _value(workload.get(key), values)
        if value not in (None, "", {}, []):
            pod[key] = value
    containers = []
    for container in workload.get("containers") or []:
        if not _enabled(container, values):
            continue
        entry: dict[str, Any] = {
            "name": container["name"],
            "resources": _value(container.get("resources"), values, {}) or {},
        }
        ports = [
            {
                "containerPort": int(_value(port, values)),
                "hostPort": int(_value(port, values)),
                "protocol": port.get("protocol", "TCP"),
            }
            for port in container.get("hostPorts") or []
        ]
        if ports:
            entry["ports"] = ports
        containers.append(entry)
    pod["containers"] = containers
    for spread in pod.get("topologySpreadConstraints") or []:
        spread.setdefault("labelSelector", {"matchLabels": {"app.kubernetes.io/name": workload["name"]}})
    return pod


# --- checks ----------------------------------------------------------------------------------


def schedule_site(result: SiteResult, catalog: Any) -> dict[str, Scenario]:
    """Run the min and max scenarios; problems are added to `result`."""
    collector = _Collector(result, catalog)
    base = collector.k3s_groups() + collector.helm_groups()
    scenarios = {}
    for name in ("min", "max"):
        groups = base + collector.workload_groups(name)
        scenarios[name] = run_scenario(name, site_nodes(catalog), groups, collector.runtime_classes)
    return scenarios


def _report_unplaced(result: SiteResult, scenario: Scenario, seen: set[str]) -> None:
    label = "at minimum replicas" if scenario.name == "min" else "at maximum replicas with the canary"
    for miss in scenario.unplaced:
        group = miss.group
        parts = []
        for node_class, reasons in sorted(miss.reasons.items()):
            parts.append(f"node class {node_class}: " + "; ".join(reasons))
        who = group.title
        if group.obj is not None:
            rest = group.owner[len(group.obj.ref) :].strip() if group.owner.startswith(group.obj.ref) else group.owner
            who = " ".join(part for part in (rest, f"({group.what})" if group.what else "") if part) or "pod"
        message = f"{who}: a pod cannot be placed {label}: " + (" | ".join(parts) or "the site has no node")
        if message in seen:
            continue
        seen.add(message)
        if group.obj is not None:
            result.add(CHECK, group.obj, "", message)
        else:
            result.add(CHECK, None, "", message, file=f"scripts/gitops_validate/{group.file}")


def _estimates(scenario: Scenario) -> Iterator[tuple[Node, int, int, list[str]]]:
    """Per node: memory the model servers need by the estimate, other pods' requests, server names."""
    catalog_mod = load_module("_catalog")
    cache: dict[tuple[str, str], int | None] = {}
    for node in scenario.nodes:
        # The node's CPU decides which weights the server repacks (kubernetes.io/arch label).
        arch = node.labels.get("kubernetes.io/arch")
        servers = 0
        others = 0
        names = []
        for placed in node.pods:
            model = placed.group.model
            need = None
            if model is not None and model.runtime.memory_runtime is not None:
                key = (model.name, arch or "")
                if key not in cache:
                    try:
                        cache[key] = int(catalog_mod.model_fit(model, arch=arch).needed)
                    except ValueError:
                        cache[key] = None
                need = cache[key]
            if need is None:
                others += placed.requests.get("memory", 0)
            else:
                servers += need
                names.append(model.name)
        yield node, servers, others, names


def _check_estimates(result: SiteResult, scenario: Scenario) -> None:
    for node, servers, others, names in _estimates(scenario):
        if not names:
            continue
        allocatable = node.allocatable["memory"]
        if servers + others > allocatable:
            result.add(
                CHECK,
                None,
                "",
                f"node {node.name} (class {node.node_class}): {len(names)} model server(s) "
                f"({', '.join(sorted(set(names)))}) "
                f"need {servers / MIB:.0f} MiB by the estimate, the node's other pods request {others / MIB:.0f} MiB: "
                f"{(servers + others) / MIB:.0f} MiB is more than its allocatable {allocatable / MIB:.0f} MiB "
                f"(at {'minimum' if scenario.name == 'min' else 'maximum replicas with the canary'})",
                file=result.catalog_file or "site catalog",
            )


def _summary(scenario: Scenario) -> list[str]:
    title = "min replicas" if scenario.name == "min" else "max replicas + canary"
    lines = [f"  placement ({title}): {scenario.placed} pods placed, {len(scenario.unplaced)} unplaced"]
    classes: dict[str, list[Node]] = {}
    for node in scenario.nodes:
        classes.setdefault(node.node_class, []).append(node)
    for node_class, nodes in classes.items():
        used = sum(n.used.get("memory", 0) for n in nodes)
        total = sum(n.allocatable["memory"] for n in nodes)
        cpu = sum(n.used.get("cpu", 0) for n in nodes)
        cpu_total = sum(n.allocatable["cpu"] for n in nodes)
        per_node = ", ".join(
            f"{n.name} {n.used.get('memory', 0) / GIB:.1f}/{n.allocatable['memory'] / GIB:.1f} GiB" for n in nodes
        )
        lines.append(
            f"    {node_class} ({len(nodes)} node(s)): memory {used / GIB:.1f}/{total / GIB:.1f} GiB requested, "
            f"cpu {cpu / 1000:.2f}/{cpu_total / 1000:.2f} cores; {per_node}"
        )
    return lines


def check_schedule(result: SiteResult) -> None:
    """The scheduling and capacity simulation of one site (needs its catalog to build the nodes)."""
    catalog = result.site_catalog
    if catalog is None:
        return
    try:
        facts = load("k3s")
        pinned_release = getattr(importlib.import_module(__package__ or ""), "pinned_k3s_release", None)
        pinned = pinned_release() if pinned_release is not None else facts.get("release")
        if facts.get("release") != pinned:
            result.add(
                CHECK,
                None,
                "release",
                f"the k3s add-on facts are for {facts.get('release')}, the k3s role pins {pinned}: re-read them for "
                "the pinned release",
                file="scripts/gitops_validate/data/k3s.yaml",
            )
        scenarios = schedule_site(result, catalog)
    except (DataError, QuantityError, KeyError, TypeError, ValueError) as exc:
        result.add(CHECK, None, "", f"cannot simulate scheduling: {exc}", file=result.catalog_file or "site catalog")
        return
    seen: set[str] = set()
    for scenario in scenarios.values():
        _report_unplaced(result, scenario, seen)
        _check_estimates(result, scenario)
        result.summary.extend(_summary(scenario))
