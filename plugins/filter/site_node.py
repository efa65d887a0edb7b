# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters edgeslm.pi5.site_node and edgeslm.pi5.site_models: one host of a site catalog (docs: *.yml)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.edgeslm.pi5.plugins.module_utils._catalog import CatalogError, SiteCatalog, load_catalog


def _catalog(name: str, doc: Mapping[str, Any]) -> SiteCatalog:
    try:
        return load_catalog(_plain(doc))
    except CatalogError as exc:
        raise AnsibleFilterError(f"{name}: the site catalog is not usable: {'; '.join(exc.problems)}") from exc


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def site_node(catalog: Mapping[str, Any], host: str) -> dict[str, Any]:
    """The node `host` as the catalog defines it (what the site_catalog inventory plugin sets as edgeslm_node)."""
    try:
        return _catalog("site_node", catalog).node(host).as_dict()
    except CatalogError as exc:
        raise AnsibleFilterError(f"site_node: {'; '.join(exc.problems)}") from exc


def site_models(catalog: Mapping[str, Any], host: str) -> list[dict[str, Any]]:
    """The models `host` stages and verifies, with their fit target and serving configuration."""
    try:
        return _catalog("site_models", catalog).models_to_stage(host)
    except CatalogError as exc:
        raise AnsibleFilterError(f"site_models: {'; '.join(exc.problems)}") from exc


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"site_node": site_node, "site_models": site_models}
