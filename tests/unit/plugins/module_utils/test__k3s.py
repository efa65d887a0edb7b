"""Table-driven tests of the k3s decisions: versions, topology, tokens, config keys, labels, checksums."""

from __future__ import annotations

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _k3s
from ansible_collections.edgeslm.pi5.plugins.module_utils._k3s import (
    K3sVersion,
    TokenChangeError,
    VersionError,
)
from ansible_collections.edgeslm.pi5.plugins.module_utils._k3s_flags import (
    AGENT_KEYS,
    REPEATABLE_KEYS,
    SERVER_KEYS,
)

CA = "a" * 64
OTHER_CA = "b" * 64
SECRET = "s3cr3t-s3cr3t-s3cr3t"


# --- versions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v1.32.4+k3s1", K3sVersion(1, 32, 4, 1)),
        (" v1.34.10+k3s2 ", K3sVersion(1, 34, 10, 2)),
    ],
)
def test_parse_version(text: str, expected: K3sVersion) -> None:
    assert _k3s.parse_version(text) == expected
    assert str(expected) == text.strip()


@pytest.mark.parametrize("text", ["stable", "latest", "1.32.4+k3s1", "v1.32.4", "v1.32+k3s1", "v1.32.4-k3s1", ""])
def test_parse_version_refuses_unpinned(text: str) -> None:
    with pytest.raises(VersionError, match="edgeslm_k3s_version must be a pinned k3s release"):
        _k3s.parse_version(text)


def test_version_order_uses_revision_last() -> None:
    assert _k3s.parse_version("v1.32.4+k3s2") > _k3s.parse_version("v1.32.4+k3s1")
    assert _k3s.parse_version("v1.33.10+k3s1") > _k3s.parse_version("v1.33.9+k3s3")


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("k3s version v1.32.4+k3s1 (abcdef12)\ngo version go1.24.11\n", "v1.32.4+k3s1"),
        ("", None),
        ("bash: k3s: command not found", None),
    ],
)
def test_version_from_output(output: str, expected: str | None) -> None:
    found = _k3s.version_from_output(output)
    assert (str(found) if found else None) == expected


@pytest.mark.parametrize(
    ("current", "target", "action"),
    [
        (None, "v1.32.4+k3s1", "install"),
        ("", "v1.32.4+k3s1", "install"),
        ("v1.32.4+k3s1", "v1.32.4+k3s1", "none"),
        ("v1.32.2+k3s1", "v1.32.4+k3s1", "upgrade"),
        ("v1.32.4+k3s1", "v1.32.4+k3s2", "upgrade"),
        ("v1.32.4+k3s1", "v1.33.2+k3s1", "upgrade"),
    ],
)
def test_upgrade_plan_actions(current: str | None, target: str, action: str) -> None:
    assert _k3s.upgrade_plan(current, target).action == action


@pytest.mark.parametrize(
    ("current", "target", "message"),
    [
        ("v1.32.4+k3s1", "v1.32.2+k3s1", "does not support downgrades"),
        ("v1.33.1+k3s1", "v1.32.4+k3s1", "does not support downgrades"),
        ("v1.32.4+k3s2", "v1.32.4+k3s1", "does not support downgrades"),
        ("v1.32.4+k3s1", "v1.34.2+k3s1", "skips minor versions"),
        ("v1.32.4+k3s1", "v2.0.0+k3s1", "skips minor versions"),
        ("garbage", "v1.32.4+k3s1", "installed k3s version must be a pinned"),
    ],
)
def test_upgrade_plan_refusals(current: str, target: str, message: str) -> None:
    with pytest.raises(VersionError, match=message):
        _k3s.upgrade_plan(current, target)


# --- topology -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("servers", "endpoint", "allow_even", "fragments"),
    [
        (["s1"], "", False, []),
        (["s1", "s2", "s3"], "k3s.example", False, []),
        (["s1", "s2", "s3", "s4", "s5"], "10.0.0.10", False, []),
        (["s1", "s2"], "k3s.example", True, []),
        ([], "", False, ["k3s_servers is empty"]),
        (["s1", "s2"], "k3s.example", False, ["spec.cluster.allowEvenServers"]),
        (["s1", "s2", "s3", "s4"], "k3s.example", False, ["4 servers"]),
        (["s1", "s2", "s3"], "", False, ["set spec.cluster.apiEndpoint"]),
        (["s1", "s2"], " ", False, ["spec.cluster.allowEvenServers", "k3s_api_endpoint is not set"]),
    ],
)
def test_topology_errors(servers: list[str], endpoint: str, allow_even: bool, fragments: list[str]) -> None:
    errors = _k3s.topology_errors(servers, endpoint, allow_even)
    assert len(errors) == len(fragments)
    for error, fragment in zip(errors, fragments, strict=True):
        assert fragment in error


# --- tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (SECRET, (None, SECRET)),
        (f"K10{CA}::server:{SECRET}", (CA, SECRET)),
        (f"K10{CA}::node:{SECRET}", (CA, SECRET)),
        ("K10short::server:x", (None, "K10short::server:x")),
    ],
)
def test_parse_token(token: str, expected: tuple[str | None, str]) -> None:
    assert _k3s.parse_token(token) == expected


@pytest.mark.parametrize(
    ("desired", "cluster", "source"),
    [
        ("", "", "generate"),
        (None, None, "generate"),
        (SECRET, "", "inventory"),
        ("", f"K10{CA}::server:{SECRET}", "cluster"),
        (SECRET, f"K10{CA}::server:{SECRET}", "inventory"),
        (f"K10{CA}::server:{SECRET}", f"K10{CA}::server:{SECRET}", "inventory"),
        (f"K10{CA}::server:{SECRET}", SECRET, "inventory"),
    ],
)
def test_token_plan_sources(desired: str | None, cluster: str | None, source: str) -> None:
    assert _k3s.token_plan(desired, cluster).source == source


@pytest.mark.parametrize(
    ("desired", "cluster", "message"),
    [
        ("a-different-secret-value", f"K10{CA}::server:{SECRET}", "differs from the token this cluster"),
        (f"K10{OTHER_CA}::server:{SECRET}", f"K10{CA}::server:{SECRET}", "differs from the token this cluster"),
        ("tiny-tok", "", "shorter than 16"),
        ("has space in the middle", "", "whitespace"),
    ],
)
def test_token_plan_refusals(desired: str, cluster: str, message: str) -> None:
    with pytest.raises(TokenChangeError, match=message) as info:
        _k3s.token_plan(desired, cluster)
    # A refusal names the variable and never echoes a token.
    assert "edgeslm_k3s_token" in str(info.value)
    for secret in (desired, cluster, SECRET, CA):
        if secret:
            assert secret not in str(info.value)


# --- config keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "role", "reserved", "fragments"),
    [
        ({"protect-kernel-defaults": True, "kube-apiserver-arg": ["a=b"]}, "server", (), []),
        ({"node-label+": ["a=b"], "node-taint": "k=v:NoSchedule"}, "agent", (), []),
        ({"cluster-init": True}, "agent", (), ["'cluster-init' is not a k3s agent option"]),
        ({"protect-kernel-default": True}, "server", (), ["did you mean 'protect-kernel-defaults'"]),
        ({"--tls-san": "x"}, "server", (), ["without leading dashes"]),
        ({"token": "x"}, "server", (), ["is a secret"]),
        ({"agent-token": "x"}, "server", (), ["is a secret"]),
        ({"server": "https://x:6443"}, "agent", ("server",), ["set by the role itself"]),
        ({"tls-san": {"a": 1}}, "server", (), ["takes a string or a list"]),
        ({"write-kubeconfig-mode": ["0600"]}, "server", (), ["takes a single value"]),
        ({"": 1}, "server", (), ["non-empty strings"]),
    ],
)
def test_config_key_errors(
    config: dict[str, object], role: str, reserved: tuple[str, ...], fragments: list[str]
) -> None:
    errors = _k3s.config_key_errors(config, role, "k3s_x_config", reserved)
    assert len(errors) == len(fragments), errors
    for error, fragment in zip(errors, fragments, strict=True):
        assert error.startswith("k3s_x_config")
        assert fragment in error


def test_config_key_errors_refuses_non_mapping_and_unknown_role() -> None:
    assert "must be a mapping" in _k3s.config_key_errors(["a"], "server", "v")[0]  # type: ignore[arg-type]
    with pytest.raises(_k3s.ConfigKeyError, match="role must be"):
        _k3s.config_key_errors({}, "worker", "v")


def test_flag_lists_are_consistent() -> None:
    # Every agent option is also a server option (servers run an agent), but not the other way round.
    agent_only = AGENT_KEYS - SERVER_KEYS
    assert agent_only == {"disable-apiserver-lb"}
    assert "cluster-init" in SERVER_KEYS and "cluster-init" not in AGENT_KEYS
    assert REPEATABLE_KEYS <= SERVER_KEYS
    assert "config" not in SERVER_KEYS | AGENT_KEYS
    assert all(key == key.strip().lower() and not key.startswith("-") for key in SERVER_KEYS | AGENT_KEYS)


# --- labels and taints ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "bad"),
    [
        (["edgeslm.io/ram-gb=8", "plain=yes", "a.b/c_d=e-f.g", "empty="], 0),
        (["novalue"], 1),
        (["Bad_Prefix.io/x=y"], 1),
        (["x=" + "v" * 64], 1),
        (["-x=y"], 1),
    ],
)
def test_label_errors(labels: list[str], bad: int) -> None:
    assert len(_k3s.label_errors(labels, "k3s_agent_node_labels")) == bad


@pytest.mark.parametrize(
    ("taints", "bad"),
    [
        (["edgeslm.io/npu=hailo10h:NoSchedule", "dedicated:PreferNoSchedule", "a=b:NoExecute"], 0),
        (["a=b"], 1),
        (["a=b:Sometimes"], 1),
        (["bad key=x:NoSchedule"], 1),
    ],
)
def test_taint_errors(taints: list[str], bad: int) -> None:
    assert len(_k3s.taint_errors(taints, "k3s_agent_node_taints")) == bad
