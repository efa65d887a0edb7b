# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter edgeslm.pi5.k3s_topology_errors: can these servers form a cluster (docs: k3s_topology_errors.yml)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ansible_collections.edgeslm.pi5.plugins.module_utils._k3s import topology_errors


def k3s_topology_errors(servers: Sequence[str], api_endpoint: str = "", allow_even: bool = False) -> list[str]:
    """Empty when the layout is sound; otherwise one message per problem."""
    return topology_errors(list(servers or []), str(api_endpoint or ""), bool(allow_even))


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"k3s_topology_errors": k3s_topology_errors}
