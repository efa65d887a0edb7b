# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter edgeslm.pi5.k3s_hardware_labels: node labels from Pi 5 facts (docs: k3s_hardware_labels.yml)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.edgeslm.pi5.plugins.module_utils._k3s import K3sError, hardware_labels


def k3s_hardware_labels(
    facts: Mapping[str, object] | None, inventory: Mapping[str, object] | None = None, taint_16k_pages: bool = True
) -> dict[str, object]:
    """{'labels': [...], 'taints': [...], 'sources': {...}} for the 40-edgeslm-node.yaml drop-in."""
    try:
        return hardware_labels(facts, inventory, bool(taint_16k_pages))
    except K3sError as exc:
        raise AnsibleFilterError(f"k3s_hardware_labels: {exc}") from exc


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"k3s_hardware_labels": k3s_hardware_labels}
