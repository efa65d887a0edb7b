# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A plain clone resolves edgeslm.pi5.* with no `make` run and no ANSIBLE_* variables.

The committed checkout is cloned with git (so only tracked files exist: no .build, no
generated link), and `ansible-playbook --syntax-check` runs in it with an environment that
holds nothing but PATH and HOME, as a new user's shell would.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def _plain_env(home: Path) -> dict[str, str]:
    # The venv's bin first (ansible-playbook's own interpreter), then the system's.
    return {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout")
    target = tmp_path_factory.mktemp("plain") / "edgeslm-pi5"
    # Uncommitted work is not part of a clone: stash nothing, clone HEAD as a user would get it.
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(target)], check=True)
    return target


@pytest.mark.parametrize(
    ("inventory", "playbook"),
    [
        ("inventories/example", "playbooks/site.yml"),
        ("inventories/lab", "playbooks/site.yml"),
        ("inventories/example", "playbooks/upgrade.yml"),
        ("inventories/example", "playbooks/reset.yml"),
    ],
)
def test_syntax_check_from_a_plain_clone(clone: Path, tmp_path: Path, inventory: str, playbook: str) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", inventory, playbook, "--syntax-check"],
        cwd=clone,
        env=_plain_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"playbook: {playbook}" in result.stdout
