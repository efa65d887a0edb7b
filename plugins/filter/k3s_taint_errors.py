# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter edgeslm.pi5.k3s_taint_errors: invalid node taints (docs: k3s_taint_errors.yml)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ansible_collections.edgeslm.pi5.plugins.module_utils._k3s import taint_errors


def k3s_taint_errors(taints: Sequence[str], variable: str = "taints") -> list[str]:
    """One message per taint that kubelet would refuse; empty when all are valid."""
    return taint_errors(list(taints or []), variable)


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"k3s_taint_errors": k3s_taint_errors}
