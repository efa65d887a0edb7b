# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter edgeslm.pi5.quant_bpw: effective bits per weight of a quantization name (docs: quant_bpw.yml)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.edgeslm.pi5.plugins.module_utils._memory import bits_per_weight


def quant_bpw(quantization: str) -> float:
    """Q4_K_M -> 4.85, Q8_0 -> 8.5, F16 -> 16.0."""
    try:
        return bits_per_weight(quantization)
    except ValueError as exc:
        raise AnsibleFilterError(f"quant_bpw: {exc}") from exc


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"quant_bpw": quant_bpw}
