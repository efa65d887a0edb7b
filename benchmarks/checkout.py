# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Let a benchmark import `ansible_collections.edgeslm.pi5` from this checkout, without Ansible installed."""

from __future__ import annotations

import sys
import types
from pathlib import Path


def use_checkout() -> None:
    """Register this checkout as the `ansible_collections.edgeslm.pi5` package (idempotent)."""
    root = Path(__file__).resolve().parent.parent
    for name, path in (
        ("ansible_collections", None),
        ("ansible_collections.edgeslm", None),
        ("ansible_collections.edgeslm.pi5", root),
    ):
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [str(path)] if path else []
            sys.modules[name] = module
