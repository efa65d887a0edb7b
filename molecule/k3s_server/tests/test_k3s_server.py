"""k3s server and agent nodes: binary, config files, hardening files, token handling, units, labels.

The same file runs against real Pi 5 boards from molecule/hw; checks that only make sense
with the molecule test stand-in of k3s skip themselves there, and the other way round.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from edgeslm_verify import local_fact as role_fact

CONFIG = "/etc/rancher/k3s/config.yaml"
DROPIN = "/etc/rancher/k3s/config.yaml.d/40-edgeslm-node.yaml"
TOKEN_FILE = "/etc/rancher/k3s/edgeslm-cluster-token"
SERVER_TOKEN = "/var/lib/rancher/k3s/server/token"
STANDIN_STATE = "/var/lib/rancher/k3s/standin"


def is_server(host: Any) -> bool:
    return bool(host.file("/etc/systemd/system/k3s.service").exists)


def is_standin(host: Any) -> bool:
    return "TEST STAND-IN" in host.run("/usr/local/bin/k3s --version").stdout


def local_fact(host: Any) -> dict[str, Any]:
    return role_fact(host, "k3s", mode=None)


def read_yaml(host: Any, path: str) -> Any:
    return yaml.safe_load(host.file(path).content_string)


def effective(host: Any) -> dict[str, Any]:
    command = "server" if is_server(host) else "agent"
    data: dict[str, Any] = json.loads(host.file(f"{STANDIN_STATE}/effective-{command}.json").content_string)
    return data


def test_binary_is_the_pinned_release(host: Any) -> None:
    fact = local_fact(host)
    binary = host.file("/usr/local/bin/k3s")
    assert binary.mode == 0o755 and binary.user == "root"
    assert f"k3s version {fact['version']} " in host.check_output("/usr/local/bin/k3s --version")
    assert binary.sha256sum == fact["binary_sha256"]


def test_config_is_root_only_and_holds_no_secret(host: Any) -> None:
    config = host.file(CONFIG)
    assert (config.mode, config.user, config.group) == (0o600, "root", "root")
    data = read_yaml(host, CONFIG)
    assert "token" not in data and "agent-token" not in data
    token = host.file(TOKEN_FILE)
    if token.exists:
        assert (token.mode, token.user) == (0o600, "root")
        assert token.content_string.strip() not in host.file(CONFIG).content_string


def test_cluster_keys(host: Any) -> None:
    data = read_yaml(host, CONFIG)
    fact = local_fact(host)
    if is_server(host) and fact["first_server"]:
        assert data.get("cluster-init") is True
        assert "server" not in data
    else:
        assert data["server"] == fact["join_url"]
        assert data["server"].startswith("https://") and data["server"].endswith(":6443")
        assert data["token-file"] == TOKEN_FILE


def test_cis_hardening_keys(host: Any) -> None:
    data = read_yaml(host, CONFIG)
    assert data["protect-kernel-defaults"] is True
    kubelet = data["kubelet-arg"]
    assert "streaming-connection-idle-timeout=5m" in kubelet
    assert any(arg.startswith("tls-cipher-suites=TLS_ECDHE_") for arg in kubelet)
    if not is_server(host):
        return
    assert data["secrets-encryption"] is True
    api = dict(arg.split("=", 1) for arg in data["kube-apiserver-arg"])
    assert api["enable-admission-plugins"] == "NodeRestriction,EventRateLimit"
    assert api["admission-control-config-file"] == "/var/lib/rancher/k3s/server/psa.yaml"
    assert api["audit-policy-file"] == "/var/lib/rancher/k3s/server/audit.yaml"
    assert api["audit-log-path"] == "/var/lib/rancher/k3s/server/logs/audit.log"
    assert (api["audit-log-maxage"], api["audit-log-maxbackup"], api["audit-log-maxsize"]) == ("30", "10", "100")
    assert api["service-account-extend-token-expiration"] == "false"
    assert "terminated-pod-gc-threshold=100" in data["kube-controller-manager-arg"]


def test_every_rendered_key_is_a_k3s_option(host: Any) -> None:
    from ansible_collections.edgeslm.pi5.plugins.module_utils._k3s_flags import AGENT_KEYS, SERVER_KEYS

    valid = SERVER_KEYS if is_server(host) else AGENT_KEYS
    for path in (CONFIG, DROPIN):
        if host.file(path).exists:
            keys = {key.rstrip("+") for key in read_yaml(host, path)}
            assert keys <= valid, (path, sorted(keys - valid))


# The admission and audit configuration are component config (not API objects), so
# kubernetes-validate has no schema for them: these are the fields the apiserver reads.
ADMISSION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "plugins"],
    "properties": {
        "apiVersion": {"const": "apiserver.config.k8s.io/v1"},
        "kind": {"const": "AdmissionConfiguration"},
        "plugins": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "configuration"],
                "properties": {
                    "name": {"enum": ["PodSecurity", "EventRateLimit"]},
                    "configuration": {"type": "object"},
                },
            },
        },
    },
}
LEVEL = {"enum": ["privileged", "baseline", "restricted"]}
VERSION = {"type": "string", "pattern": "^(latest|v1\\.[0-9]+)$"}
POD_SECURITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "defaults"],
    "properties": {
        "apiVersion": {"const": "pod-security.admission.config.k8s.io/v1"},
        "kind": {"const": "PodSecurityConfiguration"},
        "defaults": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enforce": LEVEL,
                "enforce-version": VERSION,
                "audit": LEVEL,
                "audit-version": VERSION,
                "warn": LEVEL,
                "warn-version": VERSION,
            },
        },
        "exemptions": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "usernames": {"type": "array", "items": {"type": "string"}},
                "runtimeClasses": {"type": "array", "items": {"type": "string"}},
                "namespaces": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}
EVENT_RATE_LIMIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "limits"],
    "properties": {
        "apiVersion": {"const": "eventratelimit.admission.k8s.io/v1alpha1"},
        "kind": {"const": "Configuration"},
        "limits": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["type"],
                "properties": {
                    "type": {"enum": ["Server", "Namespace", "User", "SourceAndObject"]},
                    "qps": {"type": "integer", "minimum": 1},
                    "burst": {"type": "integer", "minimum": 1},
                    "cacheSize": {"type": "integer", "minimum": 1},
                },
            },
        },
    },
}
AUDIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "rules"],
    "properties": {
        "apiVersion": {"const": "audit.k8s.io/v1"},
        "kind": {"const": "Policy"},
        "rules": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["level"],
                "properties": {"level": {"enum": ["None", "Metadata", "Request", "RequestResponse"]}},
            },
        },
    },
}


def test_admission_and_audit_configuration(host: Any) -> None:
    if not is_server(host):
        pytest.skip("admission and audit configuration live on servers")
    import jsonschema

    for path in ("/var/lib/rancher/k3s/server/psa.yaml", "/var/lib/rancher/k3s/server/audit.yaml"):
        assert (host.file(path).mode, host.file(path).user) == (0o600, "root")
    admission = read_yaml(host, "/var/lib/rancher/k3s/server/psa.yaml")
    jsonschema.validate(admission, ADMISSION_SCHEMA)
    plugins = {plugin["name"]: plugin["configuration"] for plugin in admission["plugins"]}
    jsonschema.validate(plugins["PodSecurity"], POD_SECURITY_SCHEMA)
    jsonschema.validate(plugins["EventRateLimit"], EVENT_RATE_LIMIT_SCHEMA)
    defaults = plugins["PodSecurity"]["defaults"]
    assert defaults["enforce"] == defaults["audit"] == defaults["warn"] == "restricted"
    assert plugins["PodSecurity"]["exemptions"]["namespaces"] == ["kube-system"]
    jsonschema.validate(read_yaml(host, "/var/lib/rancher/k3s/server/audit.yaml"), AUDIT_SCHEMA)
    logs = host.file("/var/lib/rancher/k3s/server/logs")
    assert logs.is_directory and logs.mode == 0o700


def test_catalog_labels_dropin(host: Any) -> None:
    """The drop-in holds exactly the node class's labels and taints from the site catalog."""
    fact = local_fact(host)
    dropin = read_yaml(host, DROPIN)
    assert host.file(DROPIN).mode == 0o600
    assert set(dropin) <= {"node-label+", "node-taint+", "kubelet-arg+"}
    assert sorted(dropin["node-label+"]) == sorted(fact["catalog_labels"])
    assert dropin.get("node-taint+", []) == fact["catalog_taints"]
    # The kubelet reserves what the validator's allocatable memory assumes (the catalog core's
    # _capacity.kubelet_args for the node's k3s role).
    reserved = dropin["kubelet-arg+"]
    assert reserved == fact["catalog_kubelet_args"]
    assert {arg.split("=", 1)[0] for arg in reserved} == {"system-reserved", "kube-reserved", "eviction-hard"}
    labels = dict(label.split("=", 1) for label in fact["catalog_labels"])
    assert labels["edgeslm.io/node-class"] == fact["node_class"]
    if labels["edgeslm.io/page-size"] == "16k":
        assert "edgeslm.io/page-size=16k:NoSchedule" in fact["catalog_taints"]
    else:
        assert not [t for t in fact["catalog_taints"] if t.startswith("edgeslm.io/page-size")]
    # Extra labels live in config.yaml and never repeat a catalog key.
    extra = read_yaml(host, CONFIG).get("node-label", [])
    assert extra == fact["extra_labels"]
    assert not {label.split("=")[0] for label in extra} & set(labels)


def test_hardware_was_checked_against_the_catalog(host: Any) -> None:
    checks = local_fact(host)["hardware_check"]
    assert set(checks) == {"ram_gb", "page_size", "nvme", "npu", "arch", "pcie_switch"}
    for field, outcome in checks.items():
        assert outcome.startswith("unchecked: ") or "(" in outcome, (field, outcome)
    if host.file("/opt/edgeslm-test-fixture/k3s-hw-8gb").exists:
        # The molecule nodes' fixture facts (molecule/k3s_server/prepare.yml).
        assert checks["ram_gb"] in ("8 GB (fixture)", "16 GB (fixture)")
        assert checks["page_size"] in ("4k (fixture)", "16k (fixture)")


def test_service_runs(host: Any) -> None:
    unit = "k3s" if is_server(host) else "k3s-agent"
    service = host.service(unit)
    assert service.is_enabled and service.is_running
    env = host.file(f"/etc/systemd/system/{unit}.service.env")
    assert (env.mode, env.user) == (0o600, "root")


def test_local_fact_never_holds_a_token(host: Any) -> None:
    text = host.file("/etc/ansible/facts.d/edgeslm_k3s.fact").content_string
    fact = json.loads(text)
    assert fact["hardening"]["enabled"] is True
    for path in (SERVER_TOKEN, TOKEN_FILE):
        if host.file(path).exists:
            secret = host.file(path).content_string.strip().rsplit(":", 1)[-1]
            assert secret not in text


def test_kernel_check_outcome_is_recorded(host: Any) -> None:
    fact = local_fact(host)
    if host.system_info.type == "linux" and host.file("/run/.containerenv").exists:
        assert fact["hardening"]["kernel_check"].startswith("skipped: container node")
        assert fact["container_node"] is True
        unit = host.file(
            "/etc/systemd/system/k3s.service" if is_server(host) else "/etc/systemd/system/k3s-agent.service"
        )
        assert "modprobe" not in unit.content_string and "LimitNOFILE" not in unit.content_string
    else:
        assert fact["hardening"]["kernel_check"] == "passed"


# --- what the k3s test stand-in saw (molecule only) --------------------------------------------


def test_standin_merged_config_keeps_every_label_source(host: Any) -> None:
    if not is_standin(host):
        pytest.skip("real k3s: the stand-in's record does not exist")
    seen = effective(host)
    labels = seen["config"].get("node-label", [])
    fact = local_fact(host)
    for label in fact["catalog_labels"] + fact["extra_labels"]:
        assert label in labels, (label, labels)
    for taint in fact["catalog_taints"]:
        assert taint in seen["config"].get("node-taint", []), taint
    if host.file("/etc/rancher/k3s/config.yaml.d/50-edgeslm-npu.yaml").exists:
        # The npu role's informational label survives the merge; the scheduling one is the catalog's, once.
        assert "edgeslm.io/npu-driver=4.20.0" in labels
    assert len([label for label in labels if label.startswith("edgeslm.io/npu=")]) == 1
    assert all(value != "<redacted>" or key in ("token",) for key, value in seen["config"].items())


def test_standin_cluster_registered_every_node(host: Any) -> None:
    if not is_standin(host) or not is_server(host) or not local_fact(host)["first_server"]:
        pytest.skip("the first server (stand-in) keeps the node list")
    nodes = json.loads(host.file(f"{STANDIN_STATE}/nodes.json").content_string)
    roles = sorted(entry["role"] for entry in nodes.values())
    assert roles.count("server") == len(local_fact(host)["servers"])
    assert "agent" in roles
    assert host.file(f"{STANDIN_STATE}/datastore").content_string.strip() == "etcd"


def test_registries_are_root_only(host: Any) -> None:
    path = "/etc/rancher/k3s/registries.yaml"
    if not host.file(path).exists:
        pytest.skip("no k3s_registries on this node")
    registries = host.file(path)
    assert (registries.mode, registries.user) == (0o600, "root")
    assert "mirrors" in read_yaml(host, path)
