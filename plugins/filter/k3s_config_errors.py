# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter edgeslm.pi5.k3s_config_errors: k3s config keys k3s would reject (docs: k3s_config_errors.yml)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.edgeslm.pi5.plugins.module_utils._k3s import config_key_errors


def k3s_config_errors(
    config: Mapping[str, object], role: str, variable: str = "config", reserved: Sequence[str] = ()
) -> list[str]:
    """Unknown options, wrong shapes, clear-text secrets and role-managed keys; empty when valid."""
    try:
        return config_key_errors(config, role, variable, list(reserved))
    except ValueError as exc:
        raise AnsibleFilterError(f"k3s_config_errors: {exc}") from exc


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"k3s_config_errors": k3s_config_errors}
