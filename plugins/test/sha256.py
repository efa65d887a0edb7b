# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test edgeslm.pi5.sha256: is the value a SHA-256 hex digest (docs: sha256.yml)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.edgeslm.pi5.plugins.module_utils._digest import is_sha256_hex


def sha256(value: Any) -> bool:
    """64 hex digits, either case, optionally prefixed 'sha256:'."""
    return is_sha256_hex(value)


class TestModule:
    def tests(self) -> dict[str, Callable[..., Any]]:
        return {"sha256": sha256}
