"""Every k3s config key the k3s roles render is an option of the pinned k3s release.

The roles keep the keys they set in vars/main.yml (`__k3s_<role>_*_config` mappings); the
molecule scenarios check the rendered files on the nodes as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.edgeslm.pi5.plugins.module_utils._k3s import config_key_errors
from ansible_collections.edgeslm.pi5.plugins.module_utils._k3s_flags import AGENT_KEYS, SERVER_KEYS

ROLES = Path(__file__).resolve().parents[3] / "roles"


def role_config_mappings(role: str) -> dict[str, dict[str, Any]]:
    data = yaml.safe_load((ROLES / role / "vars" / "main.yml").read_text())
    return {name: value for name, value in data.items() if name.endswith("_config") and isinstance(value, dict)}


@pytest.mark.parametrize(
    ("role", "command", "valid"), [("k3s_server", "server", SERVER_KEYS), ("k3s_agent", "agent", AGENT_KEYS)]
)
def test_role_renders_only_real_options(role: str, command: str, valid: frozenset[str]) -> None:
    mappings = {
        name: value
        for name, value in role_config_mappings(role).items()
        if name.endswith(("_cluster_config", "_hardening_config"))
    }
    assert len(mappings) == 2, sorted(mappings)
    for name, mapping in mappings.items():
        assert set(mapping) <= valid, (name, sorted(set(mapping) - valid))
        # The same check the role runs on the assembled file (values here are still templates).
        assert config_key_errors(dict.fromkeys(mapping, "x"), command, name) == []


def test_reserved_keys_are_the_ones_the_role_sets() -> None:
    for role, prefix in (("k3s_server", "__k3s_server"), ("k3s_agent", "__k3s_agent")):
        data = yaml.safe_load((ROLES / role / "vars" / "main.yml").read_text())
        reserved = set(data[f"{prefix}_reserved_keys"])
        assert reserved <= set(data[f"{prefix}_cluster_config"]) | {"tls-san"}


def test_cis_hardening_keys_are_rendered() -> None:
    data = yaml.safe_load((ROLES / "k3s_server" / "vars" / "main.yml").read_text())
    hardening = data["__k3s_server_hardening_config"]
    assert {"protect-kernel-defaults", "secrets-encryption", "kube-apiserver-arg", "kubelet-arg"} <= set(hardening)
    assert {"protect-kernel-defaults", "kubelet-arg"} <= set(
        yaml.safe_load((ROLES / "k3s_agent" / "vars" / "main.yml").read_text())["__k3s_agent_hardening_config"]
    )
