# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Inventory plugin edgeslm.pi5.site_catalog: a site's hosts and groups from its GitOps catalog."""

from __future__ import annotations

DOCUMENTATION = r"""
name: site_catalog
short_description: The hosts, groups and node settings of an edgeslm site, from its site catalog
version_added: 0.2.0
author: edgeslm maintainers (@edgeslm)
description:
  - Reads C(<gitops_dir>/sites/<site>/site.yaml), the site catalog that declares the site's hosts, node hardware
    and models once, and yields the k3s-ansible inventory shape from it - group C(k3s_cluster) with children
    C(server) (in join order; the first initialises the cluster) and C(agent) - plus one group per node class,
    C(node_class_<name>) with dashes as underscores.
  - Every host gets C(edgeslm_site), C(edgeslm_catalog_file), C(edgeslm_gitops_dir) and C(edgeslm_node), the node
    as the catalog defines it (node class, k3s role, target board, RAM, architecture, NPU, NVMe, PCIe switch, Wasm,
    page size, and the node labels and taints the k3s role applies), computed by the collection's catalog core.
  - Only connection details are written here (O(hosts)); a host listed there that the catalog lacks, or a
    hardware variable set there, is refused, so a host or its hardware is never declared twice.
  - The file must be named C(site_catalog.yml) or end in C(.site_catalog.yml) (or C(.yaml)).
options:
  plugin:
    description: The name of this plugin.
    type: str
    required: true
    choices: [edgeslm.pi5.site_catalog]
  site:
    description: The site, a folder C(sites/<site>) of the GitOps repository.
    type: str
    required: true
  gitops_dir:
    description:
      - The GitOps repository root (holding C(sites/) and C(platform/)), absolute or relative to this file (not to
        the working directory).
    type: str
    default: ../../gitops
  hosts:
    description:
      - Connection variables per host (C(ansible_host), C(ansible_user), ...). Every key must be a host of the
        catalog. A host without an entry connects by its name.
    type: dict
    default: {}
"""

EXAMPLES = r"""
# inventories/factory-line1/site_catalog.yml
plugin: edgeslm.pi5.site_catalog
site: factory-line1
gitops_dir: ../../gitops
hosts:
  line1-cp-1: {ansible_host: 192.168.50.11}
  line1-npu-1: {ansible_host: 192.168.50.21}
"""

from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from ansible.errors import AnsibleParserError  # noqa: E402
from ansible.plugins.inventory import BaseInventoryPlugin  # noqa: E402

from ansible_collections.edgeslm.pi5.plugins.module_utils._catalog import CatalogError, load_catalog  # noqa: E402

# Variables the catalog decides: setting them in the inventory would declare a fact twice.
DERIVED_VARIABLES = (
    "edgeslm_site",
    "edgeslm_node",
    "edgeslm_catalog_file",
    "edgeslm_gitops_dir",
    "edgeslm_npu",
    "edgeslm_nvme",
    "edgeslm_pcie_switch",
    "edgeslm_node_hardware",
    "edgeslm_k3s_api_endpoint",
)
FILE_NAMES = ("site_catalog.yml", "site_catalog.yaml")


class InventoryModule(BaseInventoryPlugin):  # type: ignore[misc]
    NAME = "edgeslm.pi5.site_catalog"

    def verify_file(self, path: str) -> bool:
        base = Path(path).name
        return bool(super().verify_file(path)) and (
            base in FILE_NAMES or base.endswith(tuple("." + name for name in FILE_NAMES))
        )

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        site = str(self.get_option("site"))
        # Relative to this file, not to the working directory (why gitops_dir is not of type path).
        configured = Path(str(self.get_option("gitops_dir"))).expanduser()
        gitops_dir = str((Path(path).resolve().parent / configured).resolve())
        catalog_file = str(Path(gitops_dir) / "sites" / site / "site.yaml")
        if not Path(catalog_file).is_file():
            raise AnsibleParserError(
                f"{path}: site {site!r} has no catalog {catalog_file}: check site and gitops_dir "
                "(the GitOps root holding sites/ and platform/, relative to this file)"
            )
        try:
            doc = loader.load_from_file(catalog_file)
            catalog = load_catalog(_plain(doc), source=catalog_file)
        except CatalogError as exc:
            problems = "\n  ".join(exc.problems)
            raise AnsibleParserError(f"{catalog_file} is not a usable site catalog:\n  {problems}") from exc
        if catalog.name != site:
            raise AnsibleParserError(f"{catalog_file}: metadata.name is {catalog.name!r}, not the site {site!r}")
        connections = self.get_option("hosts") or {}
        self._check_connections(path, catalog_file, catalog.hosts(), connections)
        self._populate(catalog, catalog_file, gitops_dir, connections)

    @staticmethod
    def _check_connections(path: str, catalog_file: str, hosts: list[str], connections: dict[str, Any]) -> None:
        unknown = sorted(set(connections) - set(hosts))
        if unknown:
            raise AnsibleParserError(
                f"{path}: hosts {', '.join(unknown)} are not in {catalog_file}: add them to a node class there "
                f"(spec.nodeClasses[].hosts), or remove them here. The catalog's hosts: {', '.join(hosts)}"
            )
        for host, variables in connections.items():
            if not isinstance(variables, dict):
                raise AnsibleParserError(f"{path}: hosts.{host} must be a mapping of connection variables")
            derived = sorted(set(variables) & set(DERIVED_VARIABLES))
            if derived:
                raise AnsibleParserError(
                    f"{path}: hosts.{host} sets {', '.join(derived)}, which the site catalog decides: declare the "
                    f"hardware in {catalog_file} (spec.nodeClasses) and keep only connection details here"
                )

    def _populate(self, catalog: Any, catalog_file: str, gitops_dir: str, connections: dict[str, Any]) -> None:
        inventory = self.inventory
        for group in ("k3s_cluster", "server", "agent"):
            inventory.add_group(group)
        inventory.add_child("k3s_cluster", "server")
        inventory.add_child("k3s_cluster", "agent")
        nodes = {node.host: node for node in catalog.nodes()}
        ordered = list(catalog.servers) + [host for host in catalog.hosts() if host not in catalog.servers]
        for host in ordered:
            node = nodes[host]
            inventory.add_host(host, group=node.k3s_role)
            class_group = "node_class_" + node.node_class.name.replace("-", "_")
            inventory.add_group(class_group)
            inventory.add_host(host, group=class_group)
            inventory.set_variable(host, "edgeslm_site", catalog.name)
            inventory.set_variable(host, "edgeslm_catalog_file", catalog_file)
            inventory.set_variable(host, "edgeslm_gitops_dir", gitops_dir)
            inventory.set_variable(host, "edgeslm_node", node.as_dict())
            inventory.set_variable(
                host,
                "edgeslm_cluster",
                {
                    "servers": list(catalog.servers),
                    "api_endpoint": catalog.api_endpoint or "",
                    "allow_even_servers": catalog.allow_even_servers,
                },
            )
            for key, value in (connections.get(host) or {}).items():
                inventory.set_variable(host, key, value)


def _plain(value: Any) -> Any:
    """Ansible's YAML objects as plain dicts, lists and scalars for the core."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value
