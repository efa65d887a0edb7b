"""Every k3s config key the k3s role renders is an option of the pinned k3s release.

The role keeps the keys it sets in vars/main.yml (`__k3s_<command>_*_config` mappings, one set for
servers and one for agents); the molecule scenarios check the rendered files on the nodes as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.edgeslm.pi5.plugins.module_utils._k3s import config_key_errors
from ansible_collections.edgeslm.pi5.plugins.module_utils._k3s_flags import AGENT_KEYS, SERVER_KEYS

ROLE = Path(__file__).resolve().parents[3] / "roles" / "k3s"


def role_vars() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    return data


@pytest.mark.parametrize(("command", "valid"), [("server", SERVER_KEYS), ("agent", AGENT_KEYS)])
def test_role_renders_only_real_options(command: str, valid: frozenset[str]) -> None:
    data = role_vars()
    mappings = {name: data[f"__k3s_{command}_{name}_config"] for name in ("cluster", "hardening")}
    for name, mapping in mappings.items():
        assert isinstance(mapping, dict), name
        assert set(mapping) <= valid, (name, sorted(set(mapping) - valid))
        # The same check the role runs on the assembled file (values here are still templates).
        assert config_key_errors(dict.fromkeys(mapping, "x"), command, name) == []


def test_reserved_keys_are_the_ones_the_role_sets() -> None:
    data = role_vars()
    for command in ("server", "agent"):
        reserved = set(data[f"__k3s_{command}_reserved_keys"])
        assert reserved <= set(data[f"__k3s_{command}_cluster_config"]) | {"tls-san"}


def test_cis_hardening_keys_are_rendered() -> None:
    data = role_vars()
    assert {"protect-kernel-defaults", "secrets-encryption", "kube-apiserver-arg", "kubelet-arg"} <= set(
        data["__k3s_server_hardening_config"]
    )
    assert {"protect-kernel-defaults", "kubelet-arg"} <= set(data["__k3s_agent_hardening_config"])


def test_one_k3s_role_and_no_role_reads_another_roles_internals() -> None:
    """roles/k3s replaces k3s_server, k3s_agent and k3s_common; internals (__<role>_*) stay in their role."""
    roles = ROLE.parent
    assert not [name for name in ("k3s_server", "k3s_agent", "k3s_common") if (roles / name).exists()]
    names = sorted(p.name for p in roles.iterdir() if p.is_dir())
    foreign = []
    for role in names:
        for path in (roles / role).rglob("*"):
            if not path.is_file() or path.suffix not in (".yml", ".yaml", ".j2"):
                continue
            text = path.read_text(encoding="utf-8")
            for other in names:
                if other != role and f"__{other}_" in text:
                    foreign.append(f"{path.relative_to(roles)} reads __{other}_*")
    assert foreign == []


def test_entry_points_have_their_own_argument_specs() -> None:
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    assert set(specs) == {"main", "upgrade", "reset"}
    for entry in ("upgrade", "reset"):
        assert (ROLE / "tasks" / f"{entry}.yml").is_file()
        assert specs[entry]["options"], entry
