# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Import the collection's core (plugins/module_utils/_*.py) from a checkout or an install.

The core imports itself as `ansible_collections.edgeslm.pi5.plugins.module_utils`. An
installed collection already sits at <dir>/ansible_collections/edgeslm/pi5; a checkout
carries the link collections/ansible_collections/edgeslm/pi5 -> the checkout. Either way
the directory above `ansible_collections` goes on sys.path and the import is a plain one:
nothing is copied or faked. This is the only place the project's tools do this.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["COLLECTION_ROOT", "REPO_ROOT", "load_module", "use_collection"]

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTION_ROOT = REPO_ROOT
_PACKAGE = "ansible_collections.edgeslm.pi5.plugins.module_utils"


def _search_dir(root: Path) -> Path:
    parts = root.parts
    if len(parts) >= 3 and parts[-3:-1] == ("ansible_collections", "edgeslm") and parts[-1] == "pi5":
        return root.parents[2]
    return root / "collections"


def use_collection(root: Path = REPO_ROOT) -> None:
    """Make `ansible_collections.edgeslm.pi5` importable from this checkout or install."""
    search = str(_search_dir(root))
    if search not in sys.path:
        sys.path.insert(0, search)


def load_module(name: str) -> ModuleType:
    """One core module, e.g. load_module("_catalog")."""
    use_collection()
    return importlib.import_module(f"{_PACKAGE}.{name}")
