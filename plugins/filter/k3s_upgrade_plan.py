# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter edgeslm.pi5.k3s_upgrade_plan: install, upgrade or nothing (docs: k3s_upgrade_plan.yml)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.edgeslm.pi5.plugins.module_utils._k3s import K3sError, upgrade_plan, version_from_output


def k3s_upgrade_plan(version_output: str | None, target: str) -> dict[str, str]:
    """From `k3s --version` output (empty: not installed) to {'action', 'current', 'target', 'error'}."""
    try:
        current = version_from_output(version_output or "")
        plan = upgrade_plan(str(current) if current else None, target)
        return {**plan.as_dict(), "error": ""}
    except K3sError as exc:
        return {"action": "refused", "current": "", "target": str(target), "error": str(exc)}


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"k3s_upgrade_plan": k3s_upgrade_plan}
