# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which sites a change touches: what a fleet repository's CI validates on a pull request.

A change inside sites/<site>/ touches that site only; a change anywhere else under the GitOps
root (platform/, .sourceignore, ...) can touch every site, so all of them are validated.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["ChangeError", "changed_sites"]


class ChangeError(ValueError):
    """git could not say what changed (not a repository, unknown ref)."""


def _git(root: Path, *args: str) -> list[str]:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ChangeError(f"git {' '.join(args)} failed in {root}: {proc.stderr.strip() or proc.returncode}")
    return [line for line in proc.stdout.splitlines() if line]


def changed_sites(root: Path, ref: str) -> list[str] | None:
    """The sites whose folders changed since `ref` (committed, staged, unstaged or untracked).

    None means every site: something shared changed.
    """
    root = root.resolve()
    top = Path(_git(root, "rev-parse", "--show-toplevel")[0])
    _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    paths = _git(root, "diff", "--name-only", ref, "--", ".")
    paths += _git(root, "ls-files", "--others", "--exclude-standard", "--full-name", "--", ".")
    sites: set[str] = set()
    for name in paths:
        try:
            rel = (top / name).relative_to(root)
        except ValueError:
            continue
        parts = rel.parts
        if len(parts) >= 2 and parts[0] == "sites":
            sites.add(parts[1])
        else:
            return None
    return sorted(site for site in sites if (root / "sites" / site / "site.yaml").is_file())
