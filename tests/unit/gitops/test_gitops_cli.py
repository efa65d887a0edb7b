# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""The command line as users and CI call it: exit codes, output, given paths."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.edgeslm.pi5.scripts.gitops_validate.cli import main

REPO = Path(__file__).resolve().parents[3]
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
SCRIPT = REPO / "scripts" / "validate-gitops"


def test_script_validates_one_site_without_ansible_on_the_path() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ANSIBLE_COLLECTIONS_PATH")}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--no-checkov", "--site", "lab"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd="/",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0].startswith("site lab: ")
    assert "1 passed, 0 failed" in proc.stdout


def test_missing_schema_dir_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-checkov", "--schemas", str(tmp_path / "nowhere")]) == 2
    assert "CRD schemas not found" in capsys.readouterr().err


def test_given_file_with_defect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n  namespace: default\nautomount: false\n",
        encoding="utf-8",
    )
    assert main(["--no-checkov", str(manifest)]) == 1
    out = capsys.readouterr().out
    assert f"site {manifest}: 1 objects, 1 problem(s)" in out
    assert "[schema]" in out and "'automount' was unexpected" in out


def test_given_directories_are_one_unit(capsys: pytest.CaptureFixture[str]) -> None:
    platform = REPO / "gitops" / "platform"
    # Not the lab: its server image is referenced by its recipe's tag, which only the GitOps root's
    # image records (sites/lab/images.yaml) allow; given directories have no root.
    apps = REPO / "gitops" / "sites" / "store-berlin" / "apps"
    # Alone, the apps reference a PriorityClass the shared configs create.
    assert main(["--no-checkov", str(apps)]) == 1
    assert "PriorityClass edgeslm-inference does not exist" in capsys.readouterr().out
    assert main(["--no-checkov", str(apps), str(platform / "configs")]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith(" objects, ok")


def test_given_gitops_root(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-checkov", "-q", str(repo)]) == 0
    out = capsys.readouterr().out
    assert "3 passed, 0 failed" in out


def test_default_run_covers_every_site(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-checkov", "-q"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == ["site factory-line1", "site lab", "site store-berlin"]
    assert lines[-1].startswith("validate-gitops: 3 passed, 0 failed")


@pytest.mark.checkov
@pytest.mark.skipif(not CHECKOV.is_file(), reason="checkov lives in .venv-checkov, which `make setup` creates")
def test_checkov_catches_missing_probe(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deployment = repo / "platform" / "apps" / "llamacpp" / "deployment.yaml"
    text = deployment.read_text(encoding="utf-8")
    start = text.index("          livenessProbe:\n")
    end = text.index("          securityContext:\n", start)
    deployment.write_text(text[:start] + text[end:], encoding="utf-8")
    assert main(["-q", "--checkov", str(CHECKOV), "--root", str(repo), "--site", "lab"]) == 1
    out = capsys.readouterr().out
    assert "[checkov]" in out
    assert "CKV_K8S_8 Liveness Probe Should be Configured" in out


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def git_repo(repo: Path) -> Path:
    """The template copy as a one-commit git repository (what a fleet repository's CI checks out)."""
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "fleet")
    return repo


def _validated_sites(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line.split(":")[0].removeprefix("site ") for line in capsys.readouterr().out.splitlines()[:-1]]


def test_changed_since_validates_the_changed_site_only(git_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = git_repo / "sites" / "store-berlin" / "site.yaml"
    site.write_text(site.read_text(encoding="utf-8").replace("CPU-only", "CPU only"), encoding="utf-8")
    assert main(["--no-checkov", "-q", "--root", str(git_repo), "--changed-since", "HEAD"]) == 0
    assert _validated_sites(capsys) == ["store-berlin"]


def test_changed_since_validates_every_site_after_a_shared_change(
    git_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pdb = git_repo / "platform" / "apps" / "llamacpp" / "pdb.yaml"
    pdb.write_text(pdb.read_text(encoding="utf-8") + "# reviewed\n", encoding="utf-8")
    assert main(["--no-checkov", "-q", "--root", str(git_repo), "--changed-since", "HEAD"]) == 0
    assert _validated_sites(capsys) == ["factory-line1", "lab", "store-berlin"]


def test_changed_since_without_changes_and_with_a_bad_ref(git_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-checkov", "--root", str(git_repo), "--changed-since", "HEAD"]) == 0
    assert "no site changed since HEAD" in capsys.readouterr().out
    assert main(["--no-checkov", "--root", str(git_repo), "--changed-since", "no-such-ref"]) == 2
    assert "--changed-since" in capsys.readouterr().err


def test_rendered_output_is_byte_identical_across_runs(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        assert main(["--no-checkov", "-q", "--output", str(out)]) == 0
    names = sorted(p.name for p in first.iterdir())
    assert names == ["factory-line1.yaml", "lab.yaml", "store-berlin.yaml"]
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes()
    assert "kind: Rollout" in (first / "lab.yaml").read_text(encoding="utf-8")
