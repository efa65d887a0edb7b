# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Nodes pull what was released: scripts/model-release, then the model_cache role, against the real registry.

The chain a fleet runs: a release pushes a signed ModelPack artifact and commits the catalog entry on
a branch; the branch is merged; the edgeslm.pi5.model_cache role (run by ansible-playbook on this
machine as host pi5-lab-server-1, connection local, model directory in tmp_path, facts skipped) pulls
the artifact by its pinned digest, verifies the model-signing signature against the site's
spec.modelSigning.trustedKeys with openssl, and publishes it as `current` with the previous version
kept. Then: an unsigned artifact is refused and `current` stays; with the registry down the node
keeps serving `current` (degraded, reported) instead of failing.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from ansible_collections.edgeslm.pi5.plugins.module_utils import _modelpack
from ansible_collections.edgeslm.pi5.tests.unit.fleet_repo import make_fleet
from ansible_collections.edgeslm.pi5.tests.unit.gguf_factory import ModelSpec, write_model
from ansible_collections.edgeslm.pi5.tests.unit.oci.conftest import make_key
from ansible_collections.edgeslm.pi5.tests.unit.oci_registry import REPO, Registry, oras

RELEASE = REPO / "scripts" / "model-release"
HOST = "pi5-lab-server-1"  # serves the lab's llama.cpp model
MODEL = "edgeslm-tiny"
REPOSITORY = "models/edgeslm-tiny"


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


def release_and_merge(repo: Path, key: Path, model: Path, registry: str, tag: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGESLM_REGISTRY_")}
    env["DOCKER_CONFIG"] = str(repo.parent / "no-docker-config")
    result = subprocess.run(
        [sys.executable, str(RELEASE), str(model), "--registry", registry, "--repository", REPOSITORY,
         "--tag", tag, "--key", str(key), "--site", "lab", "--root", str(repo / "gitops"), "--replace", MODEL,
         "--no-checkov", "--json"],
        capture_output=True, text=True, check=False, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, f"release {tag} failed:\n{result.stderr}"
    facts: dict[str, object] = json.loads(result.stdout)
    git(repo, "merge", "--quiet", "--ff-only", str(facts["branch"]))  # the merge request is merged
    return facts


def run_role(repo: Path, models: Path) -> subprocess.CompletedProcess[str]:
    playbook = repo.parent / "stage.yml"
    playbook.write_text(
        "---\n- name: Stage the catalog's models\n  hosts: all\n  gather_facts: false\n  roles:\n"
        "    - role: edgeslm.pi5.model_cache\n"
    )
    extra = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "model_cache_dir": str(models),
        "model_cache_catalog_file": str(repo / "gitops" / "sites" / "lab" / "site.yaml"),
        "model_cache_registries_file": str(repo.parent / "no-registries.yaml"),
        "model_cache_min_free_bytes": 0,
    }
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", f"{HOST},", str(playbook),
         "--skip-tags", "model_cache_facts", "-e", json.dumps(extra)],
        capture_output=True, text=True, check=False, cwd=REPO, timeout=600,
    )  # fmt: skip


def current(models: Path) -> tuple[str, str]:
    home = models / MODEL
    previous = home / "previous"
    return str((home / "current").readlink()), str(previous.readlink()) if previous.is_symlink() else ""


def test_nodes_pull_verify_and_keep_serving_what_was_released(registry: Registry, tmp_path: Path) -> None:
    key = make_key(tmp_path / "keys", "release")
    repo = tmp_path / "fleet"
    make_fleet(repo, {"lab": ("ci-release", key.public.read_text())})
    (tmp_path / "models").mkdir()
    files = [
        write_model(tmp_path / "models" / f"edgeslm-tiny-v{n}-q8_0.gguf", ModelSpec(name=f"edgeslm-tiny-v{n}"))
        for n in (1, 2, 3)
    ]
    sha = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    cache = tmp_path / "node" / "models"

    # v1 released and merged: the node pulls it, verifies the signature, publishes it as current.
    release_and_merge(repo, key.private, files[0], registry.host, "v1")
    first = run_role(repo, cache)
    assert first.returncode == 0, first.stdout + first.stderr
    assert current(cache) == (sha[0], "")
    staged = cache / MODEL / sha[0]
    assert (staged / files[0].name).read_bytes() == files[0].read_bytes()
    assert (staged / f"{files[0].name}.sig").is_file(), "the verified signature is kept beside the model"
    again = run_role(repo, cache)
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout

    # v2: staged beside v1, which stays as previous for rollback.
    release_and_merge(repo, key.private, files[1], registry.host, "v2")
    second = run_role(repo, cache)
    assert second.returncode == 0, second.stdout + second.stderr
    assert current(cache) == (sha[1], sha[0])
    assert sorted(p.name for p in (cache / MODEL).iterdir() if not p.is_symlink()) == sorted(sha[:2])

    # An unsigned artifact (pushed by hand with oras) put in the catalog is refused; v2 stays current.
    oras(
        "push", "--plain-http", f"{registry.host}/{REPOSITORY}:unsigned",
        f"{files[2].name}:{_modelpack.MEDIA_TYPE_WEIGHT_RAW}", cwd=files[2].parent,
    )  # fmt: skip
    raw = oras("manifest", "fetch", "--plain-http", f"{registry.host}/{REPOSITORY}:unsigned").stdout.encode()
    site = repo / "gitops" / "sites" / "lab" / "site.yaml"
    signed_text = site.read_text(encoding="utf-8")
    v2_source = f"oci://{registry.host}/{REPOSITORY}:v2@"
    start = signed_text.index(v2_source)
    end = signed_text.index("\n", start)
    unsigned_source = f"oci://{registry.host}/{REPOSITORY}:unsigned@sha256:{hashlib.sha256(raw).hexdigest()}"
    site.write_text(
        (signed_text[:start] + unsigned_source + signed_text[end:])
        .replace(sha[1], sha[2])
        .replace(files[1].name, files[2].name),
        encoding="utf-8",
    )
    refused = run_role(repo, cache)
    assert refused.returncode != 0
    assert "has no signature" in refused.stdout, refused.stdout
    assert current(cache) == (sha[1], sha[0])
    assert not (cache / MODEL / sha[2]).exists() and not list((cache / MODEL).glob(".*.incoming"))
    site.write_text(signed_text, encoding="utf-8")

    # v3 released while the registry is up, then the registry goes down before the node runs:
    # the node keeps serving v2 and says it is degraded, instead of failing.
    release_and_merge(repo, key.private, files[2], registry.host, "v3")
    registry.stop()
    degraded = run_role(repo, cache)
    assert degraded.returncode == 0, degraded.stdout + degraded.stderr
    output = degraded.stdout + degraded.stderr  # Ansible prints warnings on stderr
    assert f"degraded: model edgeslm-tiny version {sha[2]} could not be fetched" in output, output
    assert "Connection refused" in output and f"still serving {sha[1]}" in output
    assert "changed=0" in degraded.stdout
    assert current(cache) == (sha[1], sha[0])
    assert not (cache / MODEL / sha[2]).exists()
