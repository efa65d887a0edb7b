# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bootstrap and Git agree: what gitops_bootstrap places is exactly the hand-off the validator builds from.

The role's sync file is rendered by ansible-playbook from the role itself (its tasks, vars and
template); the validator's hand-off is taken from a real validation of the site (the objects it
added as the hand-off before following the Flux graph). They must be identical, object by object.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.edgeslm.pi5.scripts.gitops_validate import K3S_KUBERNETES_MINOR
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.cli import DEFAULT_SCHEMAS, Target, Validators, validate
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.core import load_module
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.crd_schema import CrdValidator
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.flux import HANDOFF_FILE, HANDOFF_REPO_URL
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.k8s_schema import BuiltinValidator
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.render import Renderer

REPO = Path(__file__).resolve().parents[3]
SYNC_FILE = "edgeslm-gitops-20-sync.yaml"


def render_role(tmp_path: Path, controller: str, site: str, repo_url: str, **extra: Any) -> list[dict[str, Any]]:
    """The sync file edgeslm.pi5.gitops_bootstrap writes, rendered by Ansible from the role."""
    out = tmp_path / "manifests"
    out.mkdir()
    play = [
        {
            "name": "Render the gitops_bootstrap hand-off",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            # The modules run with this test's Python (the project venv), not whatever `python3` is first.
            "vars": {"ansible_python_interpreter": sys.executable},
            "tasks": [
                {
                    "name": "Write the sync file as the role does",
                    "ansible.builtin.include_role": {"name": "edgeslm.pi5.gitops_bootstrap", "tasks_from": "sync"},
                    "vars": {
                        "gitops_bootstrap_controller": controller,
                        "gitops_bootstrap_site": site,
                        "gitops_bootstrap_repo_url": repo_url,
                        "gitops_bootstrap_manifests_dir": str(out),
                        **extra,
                    },
                }
            ],
        }
    ]
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump(play), encoding="utf-8")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(playbook)],
        cwd=REPO,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return [doc for doc in yaml.safe_load_all((out / SYNC_FILE).read_text(encoding="utf-8")) if doc]


@pytest.fixture(scope="module")
def validators() -> Validators:
    return Validators(BuiltinValidator(K3S_KUBERNETES_MINOR), CrdValidator(DEFAULT_SCHEMAS), frozenset())


@pytest.mark.parametrize("site", ["lab", "factory-line1"])
def test_role_places_exactly_the_validators_flux_handoff(tmp_path: Path, validators: Validators, site: str) -> None:
    result = validate([Target(site, root=REPO / "gitops")], validators, Renderer(), 1)[0]
    simulated = [obj.doc for obj in result.objects if obj.file == HANDOFF_FILE]
    assert [doc["kind"] for doc in simulated] == ["GitRepository", "Kustomization"]
    placed = render_role(tmp_path, "flux", site, HANDOFF_REPO_URL)
    assert placed == simulated


def test_role_places_exactly_the_argocd_application(tmp_path: Path) -> None:
    gitops = load_module("_gitops")
    # The arguments scripts/gitops_validate/argocd.py builds its Application with.
    expected = gitops.argocd_handoff(site="store-berlin", repo_url="ssh://git@git.invalid/fleet.git")
    placed = render_role(tmp_path, "argocd", "store-berlin", "ssh://git@git.invalid/fleet.git")
    assert placed == expected


def test_role_settings_reach_the_core(tmp_path: Path) -> None:
    """Root, branch, intervals, credentials and commit verification change the objects as the core says."""
    gitops = load_module("_gitops")
    settings = {
        "gitops_bootstrap_root": "./gitops",
        "gitops_bootstrap_repo_branch": "release",
        "gitops_bootstrap_source_interval": "1m",
        "gitops_bootstrap_reconcile_interval": "1h",
        "gitops_bootstrap_git_credentials": {"username": "git", "password": "not-a-secret"},
        "gitops_bootstrap_git_signing_keys": {"release": "-----BEGIN PGP PUBLIC KEY BLOCK-----"},
        "gitops_bootstrap_git_verify_mode": "Tag",
    }
    placed = render_role(tmp_path, "flux", "lab", "https://git.example/fleet.git", **settings)
    expected = gitops.flux_handoff(
        site="lab",
        repo_url="https://git.example/fleet.git",
        branch="release",
        gitops_root="./gitops",
        source_interval="1m",
        reconcile_interval="1h",
        git_credentials=True,
        verify_commits=True,
        verify_mode="Tag",
    )
    assert placed == expected
    assert placed[1]["spec"]["path"] == "./gitops/platform/flux"
    assert placed[0]["spec"]["secretRef"] == {"name": "flux-system"}
