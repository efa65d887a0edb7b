# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter edgeslm.pi5.gitops_handoff: the GitOps hand-off objects of a site (docs: gitops_handoff.yml)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.edgeslm.pi5.plugins.module_utils._gitops import HandoffError, handoff


def gitops_handoff(
    controller: str,
    site: str,
    repo_url: str,
    branch: str = "main",
    gitops_root: str = ".",
    source_interval: str = "5m",
    reconcile_interval: str = "10m",
    git_credentials: bool = False,
    verify_commits: bool = False,
    verify_mode: str = "HEAD",
) -> list[dict[str, Any]]:
    """The objects gitops_bootstrap places, built by the same core function the GitOps validator starts from."""
    try:
        return handoff(
            str(controller),
            site=str(site),
            repo_url=str(repo_url),
            branch=str(branch),
            gitops_root=str(gitops_root),
            source_interval=str(source_interval),
            reconcile_interval=str(reconcile_interval),
            git_credentials=bool(git_credentials),
            verify_commits=bool(verify_commits),
            verify_mode=str(verify_mode),
        )
    except HandoffError as exc:
        raise AnsibleFilterError(f"gitops_handoff: {exc}") from exc


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"gitops_handoff": gitops_handoff}
