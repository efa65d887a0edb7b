# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Let a benchmark import `ansible_collections.edgeslm.pi5` from this checkout, without Ansible installed."""

from __future__ import annotations

import sys
from pathlib import Path


def use_checkout() -> None:
    """Put the checkout's collections/ (whose ansible_collections/edgeslm/pi5 links back here) on sys.path."""
    search = str(Path(__file__).resolve().parent.parent / "collections")
    if search not in sys.path:
        sys.path.insert(0, search)
