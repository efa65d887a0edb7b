# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Import the collection's model core (_memory, _targets) from a plain checkout.

The core lives in plugins/module_utils and imports itself as
`ansible_collections.edgeslm.pi5.plugins.module_utils`. With the collection installed
(or .build/collections on sys.path) that just works; without Ansible, the package names
are registered here and pointed at the repository root, so nothing is copied.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import Any

__all__ = ["REPO_ROOT", "load_core"]

REPO_ROOT = Path(__file__).resolve().parents[2]
_PREFIX = "ansible_collections.edgeslm.pi5"


def _register(name: str, path: list[str]) -> None:
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
    except ImportError:
        module = types.ModuleType(name)
        module.__path__ = path
        sys.modules[name] = module


def load_core(repo_root: Path = REPO_ROOT) -> tuple[Any, Any]:
    """The (_memory, _targets) modules of the collection at repo_root."""
    try:
        memory = importlib.import_module(f"{_PREFIX}.plugins.module_utils._memory")
        targets = importlib.import_module(f"{_PREFIX}.plugins.module_utils._targets")
    except ImportError:
        _register("ansible_collections", [])
        _register("ansible_collections.edgeslm", [])
        _register(_PREFIX, [str(repo_root)])
        memory = importlib.import_module(f"{_PREFIX}.plugins.module_utils._memory")
        targets = importlib.import_module(f"{_PREFIX}.plugins.module_utils._targets")
    return memory, targets
