# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter edgeslm.pi5.node_check: the catalog's node against pi5_facts (docs: node_check.yml)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.edgeslm.pi5.plugins.module_utils._node_check import (
    NodeCheckError,
    check_node,
    reserved_key_errors,
)


def node_check(
    facts: Mapping[str, Any] | None,
    node: Mapping[str, Any],
    architecture: str | None = None,
    catalog_file: str | None = None,
    extra_labels: Sequence[str] = (),
    extra_taints: Sequence[str] = (),
) -> dict[str, Any]:
    """{'errors': [...], 'checks': {...}}: disagreements between the catalog and the node's facts."""
    try:
        result = check_node(node, facts, architecture, catalog_file or "the site catalog")
        result.errors.extend(reserved_key_errors(node, list(extra_labels or ()), list(extra_taints or ())))
    except NodeCheckError as exc:
        raise AnsibleFilterError(f"node_check: {exc}") from exc
    return result.as_dict()


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"node_check": node_check}
