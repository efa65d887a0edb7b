# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter edgeslm.pi5.k3s_token_plan: where a node's join token comes from (docs: k3s_token_plan.yml)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.edgeslm.pi5.plugins.module_utils._k3s import K3sError, token_plan


def k3s_token_plan(desired: str | None, cluster: str | None = None) -> dict[str, str]:
    """{'source': inventory|cluster|generate, 'error': ''} or {'source': 'refused', 'error': <why>}."""
    try:
        return {**token_plan(desired, cluster).as_dict(), "error": ""}
    except K3sError as exc:
        # The message never contains a token; the caller fails with it.
        return {"source": "refused", "error": str(exc)}


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"k3s_token_plan": k3s_token_plan}
