# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter edgeslm.pi5.k3s_checksum: a file's sha256 from a release checksum list (docs: k3s_checksum.yml)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.edgeslm.pi5.plugins.module_utils._k3s import K3sError, checksum_for


def k3s_checksum(checksum_list: str, filename: str) -> str:
    """The lower-case hex digest listed for `filename`."""
    try:
        return checksum_for(checksum_list, filename)
    except K3sError as exc:
        raise AnsibleFilterError(f"k3s_checksum: {exc}") from exc


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"k3s_checksum": k3s_checksum}
