# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The site_catalog inventory plugin as ansible-inventory loads it: a site's hosts and groups, and refusals.

A host, or its hardware, is declared once (in the catalog): a connection entry for a host the
catalog lacks, a hardware variable in the inventory, and an invalid catalog are each refused
with the file, the field and the fix.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[4]
ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def inventory(
    tmp_path: Path, site: str, hosts: dict[str, Any] | None = None, catalog: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    """ansible-inventory --list over a site_catalog.yml in tmp_path, run with the checkout's ansible.cfg."""
    gitops = tmp_path / "gitops"
    (gitops / "sites" / site).mkdir(parents=True)
    source = REPO / "gitops" / "sites" / site / "site.yaml"
    if catalog is None:
        shutil.copy(source, gitops / "sites" / site / "site.yaml")
    else:
        (gitops / "sites" / site / "site.yaml").write_text(yaml.safe_dump(catalog), encoding="utf-8")
    inv = tmp_path / "inventory"
    inv.mkdir()
    config: dict[str, Any] = {"plugin": "edgeslm.pi5.site_catalog", "site": site, "gitops_dir": "../gitops"}
    if hosts is not None:
        config["hosts"] = hosts
    (inv / "site_catalog.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true", "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(ANSIBLE_INVENTORY), "-i", str(inv), "--list"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_site_is_the_inventory(tmp_path: Path) -> None:
    result = inventory(tmp_path, "factory-line1", hosts={"line1-npu-1": {"ansible_host": "192.168.50.21"}})
    assert result.returncode == 0, result.stderr
    data = _plain(json.loads(result.stdout))
    assert data["server"]["hosts"] == ["line1-cp-1", "line1-cp-2", "line1-cp-3"]
    assert sorted(data["agent"]["hosts"]) == ["line1-cpu-1", "line1-npu-1", "line1-npu-2"]
    assert sorted(data["k3s_cluster"]["children"]) == ["agent", "server"]
    assert data["node_class_pi5_16gb_npu"]["hosts"] == ["line1-npu-1", "line1-npu-2"]
    hostvars = data["_meta"]["hostvars"]
    npu = hostvars["line1-npu-1"]
    assert npu["ansible_host"] == "192.168.50.21"
    assert npu["edgeslm_site"] == "factory-line1"
    assert npu["edgeslm_catalog_file"] == str(tmp_path / "gitops" / "sites" / "factory-line1" / "site.yaml")
    node = npu["edgeslm_node"]
    assert (node["k3s_role"], node["npu"], node["nvme"], node["pcie_switch"], node["ram_gb"]) == (
        "agent",
        "hailo-10h",
        True,
        True,
        16,
    )
    assert node["labels"]["edgeslm.io/npu"] == "hailo10h"
    assert hostvars["line1-cp-1"]["edgeslm_cluster"]["servers"] == ["line1-cp-1", "line1-cp-2", "line1-cp-3"]
    assert hostvars["line1-cp-1"]["edgeslm_node"]["server_index"] == 0


def test_a_host_the_catalog_lacks_is_refused(tmp_path: Path) -> None:
    result = inventory(tmp_path, "factory-line1", hosts={"line1-cp-1": {"ansible_host": "10.0.0.1"}, "line1-gpu-9": {}})
    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    catalog = tmp_path / "gitops" / "sites" / "factory-line1" / "site.yaml"
    assert f"hosts line1-gpu-9 are not in {catalog}" in message
    assert "add them to a node class there (spec.nodeClasses[].hosts), or remove them here" in message


def test_hardware_in_the_inventory_is_refused(tmp_path: Path) -> None:
    result = inventory(tmp_path, "factory-line1", hosts={"line1-npu-1": {"edgeslm_npu": "hailo10h"}})
    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert "hosts.line1-npu-1 sets edgeslm_npu, which the site catalog decides" in message


def test_an_invalid_catalog_is_refused_with_every_problem(tmp_path: Path) -> None:
    catalog = yaml.safe_load((REPO / "gitops" / "sites" / "factory-line1" / "site.yaml").read_text(encoding="utf-8"))
    catalog["spec"]["cluster"]["servers"] = ["line1-cp-1", "line1-cp-2"]
    catalog["spec"]["nodeClasses"][1]["pcieSwitch"] = False
    result = inventory(tmp_path, "factory-line1", catalog=catalog)
    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert "is not a usable site catalog" in message
    assert "spec.cluster.servers: 2 servers give embedded etcd no more fault tolerance than 1" in message
    assert "spec.nodeClasses[pi5-16gb-npu]: an AI HAT+ (hailo-10h) and an NVMe drive share" in message


def test_a_missing_site_is_refused(tmp_path: Path) -> None:
    result = inventory(tmp_path, "factory-line1")
    assert result.returncode == 0
    (tmp_path / "inventory" / "site_catalog.yml").write_text(
        yaml.safe_dump({"plugin": "edgeslm.pi5.site_catalog", "site": "nowhere", "gitops_dir": "../gitops"}),
        encoding="utf-8",
    )
    result = subprocess.run(
        [str(ANSIBLE_INVENTORY), "-i", str(tmp_path / "inventory"), "--list"],
        cwd=REPO,
        env={**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "site 'nowhere' has no catalog" in " ".join(result.stderr.split())


@pytest.mark.parametrize("inventory_dir", ["example", "lab"])
def test_the_shipped_inventories_are_sites(inventory_dir: str) -> None:
    """inventories/example deploys factory-line1, inventories/lab the lab: hosts from gitops/sites only."""
    result = subprocess.run(
        [str(ANSIBLE_INVENTORY), "-i", f"inventories/{inventory_dir}", "--list"],
        cwd=REPO,
        env={**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data = _plain(json.loads(result.stdout))
    site = {"example": "factory-line1", "lab": "lab"}[inventory_dir]
    catalog = yaml.safe_load((REPO / "gitops" / "sites" / site / "site.yaml").read_text(encoding="utf-8"))
    declared = sorted(host for node_class in catalog["spec"]["nodeClasses"] for host in node_class["hosts"])
    assert sorted(data["_meta"]["hostvars"]) == declared
    assert not list((REPO / "inventories" / inventory_dir).glob("hosts.y*ml"))
    assert not (REPO / "inventories" / inventory_dir / "host_vars").exists()
