# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/site.yml refuses a site that contradicts its catalog in its first play, before any change.

Each case runs the real playbook with ansible-playbook against an inventory built from a site
of gitops/sites (every host on the local connection, so nothing could be reached anyway) and
checks that the plan play failed with the message naming the host, the file and the fix, and
that no later play started.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = REPO / "playbooks" / "site.yml"
PLAN_PLAY = "Plan the site before anything changes"


def site_inventory(
    tmp_path: Path,
    site: str,
    group_vars: dict[str, Any] | None = None,
    static_hosts: dict[str, Any] | None = None,
    host_vars: dict[str, dict[str, Any]] | None = None,
) -> Path:
    inv = tmp_path / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    config = {"plugin": "edgeslm.pi5.site_catalog", "site": site, "gitops_dir": str(REPO / "gitops")}
    (inv / "site_catalog.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    variables = {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3"}
    variables.update(group_vars or {})
    (inv / "group_vars" / "all.yml").write_text(yaml.safe_dump(variables), encoding="utf-8")
    if static_hosts is not None:
        (inv / "zz-hosts.yml").write_text(yaml.safe_dump(static_hosts), encoding="utf-8")
    for host, hv in (host_vars or {}).items():
        (inv / "host_vars").mkdir(exist_ok=True)
        (inv / "host_vars" / f"{host}.yml").write_text(yaml.safe_dump(hv), encoding="utf-8")
    return inv


def run_site(inv: Path) -> tuple[int, str]:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inv), str(PLAYBOOK), "--check"],
        cwd=REPO,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def refused_in_plan(output: str) -> str:
    plays = re.findall(r"^PLAY \[(.*)\]", output, re.MULTILINE)
    assert plays == [PLAN_PLAY], plays
    assert not re.search(r"changed=[1-9]", output), output[-2000:]
    return " ".join(output.split())


def test_a_host_outside_the_catalog_is_refused(tmp_path: Path) -> None:
    inv = site_inventory(
        tmp_path,
        "lab",
        static_hosts={"k3s_cluster": {"children": {"agent": {"hosts": {"pi5-lab-agent-9": {}}}}}},
    )
    status, output = run_site(inv)
    assert status != 0
    message = refused_in_plan(output)
    catalog = REPO / "gitops" / "sites" / "lab" / "site.yaml"
    assert f"pi5-lab-agent-9 is not a host of the site catalog {catalog}" in message
    assert "Add it to the hosts of its node class there (spec.nodeClasses[].hosts)" in message


def test_a_legacy_hardware_variable_is_refused(tmp_path: Path) -> None:
    inv = site_inventory(tmp_path, "lab", group_vars={"edgeslm_npu": "hailo10h", "edgeslm_k3s_api_endpoint": "x"})
    status, output = run_site(inv)
    assert status != 0
    message = refused_in_plan(output)
    assert "edgeslm_k3s_api_endpoint, edgeslm_npu are set in the inventory" in message
    assert "edgeslm_npu as spec.nodeClasses[].npu" in message
    assert "edgeslm_k3s_api_endpoint as spec.cluster.apiEndpoint" in message


def test_a_hand_written_node_is_refused(tmp_path: Path) -> None:
    inv = site_inventory(tmp_path, "lab")
    listing = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(inv), "--host", "pi5-lab-agent-2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "edgeslm_node" in listing.stdout
    node = {
        "host": "pi5-lab-agent-2",
        "node_class": "pi5-8gb-arm64",
        "k3s_role": "agent",
        "npu": "hailo-10h",
        "wasm": False,
    }
    inv = site_inventory(tmp_path / "again", "lab", host_vars={"pi5-lab-agent-2": {"edgeslm_node": node}})
    status, output = run_site(inv)
    assert status != 0
    message = refused_in_plan(output)
    assert "edgeslm_node of pi5-lab-agent-2 differs from what" in message
    assert "do not set it in group_vars or host_vars, change the catalog instead" in message


@pytest.mark.parametrize("arch", ["arm64"])
def test_wasm_without_a_pinned_shim_is_refused_before_any_change(tmp_path: Path, arch: str) -> None:
    """store-berlin's Wasm nodes are arm64, whose runwasi shim has no citable digest to ship."""
    inv = site_inventory(tmp_path, "store-berlin")
    status, output = run_site(inv)
    assert status != 0
    message = refused_in_plan(output)
    assert "wasm: true" in message
    assert f"for {arch}, which has no pinned SHA-256: set wasm_runtime_checksums['containerd-shim-wasmedge/v" in message
    assert "containerd-shim-wasmedge-aarch64-linux-musl.tar.gz']" in message
