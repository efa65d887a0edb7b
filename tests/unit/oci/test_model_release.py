# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/model-release against the real parts: docker-registry, oras, model-signing, git, validate-gitops.

Each test builds a fleet repository in tmp_path (a git repository holding a copy of gitops/, whose lab
site trusts a key the test makes with openssl), a real GGUF with tests/unit/gguf_factory.py, and runs
the release command as CI would (a subprocess). What is proved: the release end to end (artifact in the
registry, oras pulls it, both signature verifiers accept it, the catalog entry read from the file, a
commit on the branch with main untouched, validate-gitops passing, and only the model Deployment's pod
template changed in the rendered site); a model that does not fit (refused before anything is pushed);
the registry down; a failure after the push (names what was pushed); --dry-run (nothing pushed or
committed); an untrusted key, a taken tag and a file that is not GGUF refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.edgeslm.pi5.plugins.module_utils import _catalog, _gguf, _modelpack, _signature
from ansible_collections.edgeslm.pi5.tests.unit.fleet_repo import make_fleet, trust_key
from ansible_collections.edgeslm.pi5.tests.unit.gguf_factory import ModelSpec, preset, write_model
from ansible_collections.edgeslm.pi5.tests.unit.oci.conftest import SigningKey, make_key, model_signing
from ansible_collections.edgeslm.pi5.tests.unit.oci_registry import REPO, Registry, free_port, oras, running_registry

RELEASE = REPO / "scripts" / "model-release"
VALIDATE = REPO / "scripts" / "validate-gitops"
SITE = "lab"
OLD_MODEL = "edgeslm-tiny"
REPOSITORY = "models/edgeslm-tiny"


@dataclass
class Fleet:
    repo: Path  # the git repository
    root: Path  # its GitOps root (repo/gitops)
    key: SigningKey
    head: str

    def git(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(["git", *args], cwd=self.repo, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)}: {result.stderr}")
        return result.stdout.strip()

    def branches(self) -> list[str]:
        return self.git("for-each-ref", "--format=%(refname:short)", "refs/heads").split()

    def assert_untouched(self) -> None:
        """main where it was, nothing uncommitted, no worktree left behind, no release branch."""
        assert self.git("rev-parse", "HEAD") == self.head, "main moved"
        assert self.git("status", "--porcelain") == "", "the checkout changed"
        assert len(self.git("worktree", "list").splitlines()) == 1, "a temporary worktree was left behind"
        assert self.branches() == ["main"], f"unexpected branches {self.branches()}"


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    """A fleet repository (tests/unit/fleet_repo.py) whose lab site trusts a key made here."""
    key = make_key(tmp_path / "keys", "release")
    head = make_fleet(tmp_path / "fleet", {SITE: ("ci-release", key.public.read_text())})
    return Fleet(tmp_path / "fleet", tmp_path / "fleet" / "gitops", key, head)


@pytest.fixture
def new_model(tmp_path: Path) -> Path:
    """A real GGUF, a new version of the lab's model (same shape, other content)."""
    (tmp_path / "models").mkdir(exist_ok=True)
    return write_model(tmp_path / "models" / "edgeslm-tiny-v2-q8_0.gguf", ModelSpec(name="edgeslm-tiny-v2"))


def release(
    fleet: Fleet,
    model: Path,
    registry: str,
    *extra: str,
    key: Path | None = None,
    tag: str = "v2",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("EDGESLM_REGISTRY_")}, **(env or {})}
    env["DOCKER_CONFIG"] = str(fleet.repo.parent / "no-docker-config")
    command = [sys.executable, str(RELEASE), str(model), "--registry", registry, "--repository", REPOSITORY]
    command += ["--tag", tag, "--key", str(key or fleet.key.private), "--site", SITE, "--root", str(fleet.root)]
    command += ["--no-checkov", *extra]
    return subprocess.run(command, capture_output=True, text=True, check=False, env=env, timeout=600)


def repositories(registry: Registry) -> list[str]:
    with urllib.request.urlopen(f"{registry.url}/v2/_catalog", timeout=10) as response:
        found: list[str] = json.loads(response.read())["repositories"]
    return found


def rendered(root: Path, out: Path) -> dict[tuple[str, str, str], Any]:
    """The site as validate-gitops renders it (--output), keyed by (kind, namespace, name)."""
    result = subprocess.run(
        [
            sys.executable,
            str(VALIDATE),
            "--root",
            str(root),
            "--site",
            SITE,
            "--no-checkov",
            "-q",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, f"validate-gitops failed on {root}:\n{result.stdout}{result.stderr}"
    docs = [d for d in yaml.safe_load_all((out / f"{SITE}.yaml").read_text(encoding="utf-8")) if d]
    return {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d for d in docs}


def differences(before: Any, after: Any, path: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in sorted(set(before) | set(after)):
            out += differences(before.get(key), after.get(key), f"{path}.{key}")
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            d for i, (b, a) in enumerate(zip(before, after, strict=True)) for d in differences(b, a, f"{path}[{i}]")
        ]
    return [] if before == after else [path]


def test_release_end_to_end(registry: Registry, fleet: Fleet, new_model: Path, tmp_path: Path) -> None:
    before = rendered(fleet.root, tmp_path / "render-before")
    old_text = (fleet.root / "sites" / SITE / "site.yaml").read_text(encoding="utf-8")

    result = release(fleet, new_model, registry.host, "--replace", OLD_MODEL, "--json")
    assert result.returncode == 0, f"release failed:\n{result.stderr}{result.stdout}"
    facts = json.loads(result.stdout)
    sha256 = hashlib.sha256(new_model.read_bytes()).hexdigest()
    digest = facts["manifest_digest"]
    assert facts["sha256"] == sha256 and facts["size"] == new_model.stat().st_size
    branch = f"release/{OLD_MODEL}-v2"
    assert facts["branch"] == branch

    # The registry has the artifact under the tag, as the ModelPack layout says.
    raw = oras("manifest", "fetch", "--plain-http", f"{registry.host}/{REPOSITORY}:v2").stdout.encode()
    assert f"sha256:{hashlib.sha256(raw).hexdigest()}" == digest, "the tag does not point at the reported manifest"
    manifest = json.loads(raw)
    assert manifest["artifactType"] == _modelpack.ARTIFACT_TYPE_MODEL
    assert manifest["config"]["mediaType"] == _modelpack.MEDIA_TYPE_MODEL_CONFIG
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        _modelpack.MEDIA_TYPE_WEIGHT_RAW,
        _modelpack.MEDIA_TYPE_SIGSTORE_BUNDLE,
    ]
    assert manifest["layers"][0]["digest"] == f"sha256:{sha256}"
    assert manifest["annotations"] == {
        _modelpack.ANNOTATION_MODEL_NAME: OLD_MODEL,
        _modelpack.ANNOTATION_QUANTIZATION: "Q8_0",
        _modelpack.ANNOTATION_CONTEXT_LENGTH: "2048",
    }

    # oras pulls it by the digest the catalog pins; both verifiers accept the signature.
    pulled = tmp_path / "oras-pulled"
    pulled.mkdir()
    oras("pull", "--plain-http", f"{registry.host}/{REPOSITORY}@{digest}", "-o", str(pulled))
    assert (pulled / new_model.name).read_bytes() == new_model.read_bytes()
    bundle = (pulled / f"{new_model.name}.sig").read_bytes()
    trusted = _signature.load_trusted_key(fleet.key.public.read_text(), "ci-release")
    verified = _signature.verify_model_signature(bundle, sha256, [trusted])
    assert (verified.sha256, verified.subject, verified.key) == (sha256, new_model.name, "ci-release")
    library = model_signing(
        "verify", "key", str(pulled / new_model.name), "--signature", str(pulled / f"{new_model.name}.sig"),
        "--public_key", str(fleet.key.public),
    )  # fmt: skip
    assert library.returncode == 0, f"model-signing (hashing the file itself) refused: {library.stderr}"

    # The commit is on the branch only; the checkout, main and the worktrees are as they were.
    assert fleet.git("rev-parse", "HEAD") == fleet.head and fleet.git("status", "--porcelain") == ""
    assert len(fleet.git("worktree", "list").splitlines()) == 1
    assert fleet.git("rev-parse", f"{branch}^") == fleet.head
    message = fleet.git("log", "-1", "--format=%B", branch)
    assert OLD_MODEL in message and digest in message and SITE in message and sha256 in message
    changed = fleet.git("diff", "--name-only", "main", branch).split()
    assert f"gitops/sites/{SITE}/site.yaml" in changed and f"gitops/sites/{SITE}/apps/kustomization.yaml" in changed
    assert all(path.startswith(f"gitops/sites/{SITE}/") for path in changed), changed

    # The catalog entry: read from the file, pinned by the manifest digest, comments and order kept.
    new_text = fleet.git("show", f"{branch}:gitops/sites/{SITE}/site.yaml") + "\n"
    catalog = _catalog.load_catalog(yaml.safe_load(new_text))
    entry = catalog.model(OLD_MODEL)
    info = _gguf.read_gguf(new_model)
    assert entry.sha256 == sha256 and entry.size_bytes == new_model.stat().st_size and entry.file == new_model.name
    assert entry.source == f"oci://{registry.host}/{REPOSITORY}:v2@{digest}"
    assert dict(entry.description) == _catalog.description_from_gguf(info.description())
    assert [k.label for k in catalog.trusted_keys] == ["ci-release"]
    old_lines, new_lines = old_text.splitlines(), new_text.splitlines()
    models_at = old_lines.index("  models:")
    assert new_lines[:models_at] == old_lines[:models_at], "the catalog above spec.models changed"
    old_comments = [ln.strip() for ln in old_lines if ln.lstrip().startswith("#")]
    new_comments = [ln.strip() for ln in new_lines if ln.lstrip().startswith("#")]
    # Only the two comments about the old file's source and origin go; every other one stays, in order.
    about_old_file = [c for c in old_comments if c.startswith(("# The lab's artifact directory", "# A real, determ"))]
    assert len(about_old_file) == 2
    assert new_comments == [c for c in old_comments if c not in about_old_file]
    old_keys = list(yaml.safe_load(old_text)["spec"]["models"][0])
    assert list(yaml.safe_load(new_text)["spec"]["models"][0]) == [k for k in old_keys if k != "origin"]

    # validate-gitops passes on the branch, and only the model's pod template changed in the rendered site.
    checkout = tmp_path / "branch-checkout"
    fleet.git("worktree", "add", "--quiet", "--detach", str(checkout), branch)
    after = rendered(checkout / "gitops", tmp_path / "render-after")
    fleet.git("worktree", "remove", "--force", str(checkout))
    # Per-version objects (the model cache's volumes, named by the sha256) are the old version's
    # objects with the new digest, and nothing else about them changed.
    old_sha = yaml.safe_load(old_text)["spec"]["models"][0]["sha256"]
    old_versioned = sorted(k for k in before if old_sha[:12] in k[2])
    new_versioned = sorted(k for k in after if sha256[:12] in k[2])
    assert [k[:2] for k in old_versioned] == [k[:2] for k in new_versioned]
    for old_key, new_key in zip(old_versioned, new_versioned, strict=True):
        renamed = yaml.safe_load(yaml.safe_dump(before[old_key]).replace(old_sha, sha256))
        renamed = yaml.safe_load(yaml.safe_dump(renamed).replace(old_sha[:12], sha256[:12]))
        assert renamed == after[new_key], f"{new_key} differs beyond the model version"
    before = {k: v for k, v in before.items() if k not in old_versioned}
    after = {k: v for k, v in after.items() if k not in new_versioned}
    assert set(before) == set(after)
    changed_objects = sorted(key for key in before if before[key] != after[key])
    assert changed_objects == [("Deployment", "slm", "slm-llamacpp")], changed_objects
    paths = differences(before[changed_objects[0]], after[changed_objects[0]])
    assert paths and all(p.startswith(".spec.template.") for p in paths), paths
    template = after[changed_objects[0]]["spec"]["template"]
    assert template["metadata"]["annotations"]["edgeslm.io/model-sha256"] == sha256
    assert ".spec.template.metadata.annotations.edgeslm.io/model-sha256" in paths

    # A released tag is never moved: the same tag again is refused before anything is pushed.
    again = release(fleet, new_model, registry.host, "--replace", OLD_MODEL, "--branch", "release/again")
    assert again.returncode == 1
    assert f"{registry.host}/{REPOSITORY}:v2 exists already (manifest {digest})" in again.stderr
    assert "nothing was pushed and nothing was committed" in again.stderr
    assert "release/again" not in fleet.branches()


def test_model_that_does_not_fit_is_refused_before_anything_is_pushed(
    registry: Registry, fleet: Fleet, tmp_path: Path
) -> None:
    # Llama-2-7B's real shape at Q8_0 (a sparse file: the tensor data is a hole) on the lab's 8 GB boards.
    (tmp_path / "models").mkdir()
    big = write_model(tmp_path / "models" / "llama2-7b-q8_0.gguf", preset("llama2-7b"), sparse=True)
    result = release(fleet, big, registry.host, "--replace", OLD_MODEL, "--context", "4096")
    assert result.returncode == 1, result.stderr
    assert "refused before anything was pushed" in result.stderr
    catalog = _catalog.load_catalog(yaml.safe_load((fleet.root / "sites" / SITE / "site.yaml").read_text()))
    serving_classes = catalog.classes_for(catalog.model(OLD_MODEL))
    assert serving_classes
    for node_class in serving_classes:
        assert f"does not fit node class {node_class.name} (pi5-8gb)" in result.stderr
    assert "nothing was pushed and nothing was committed" in result.stderr
    assert repositories(registry) == []
    fleet.assert_untouched()


def test_registry_down(fleet: Fleet, new_model: Path) -> None:
    port = free_port()  # nothing listens there
    result = release(fleet, new_model, f"127.0.0.1:{port}", "--replace", OLD_MODEL)
    assert result.returncode == 1
    assert f"the registry 127.0.0.1:{port} cannot be reached" in result.stderr
    assert "nothing was pushed and nothing was committed" in result.stderr
    fleet.assert_untouched()


def blob_in_registry(registry: Registry, digest: str) -> bool:
    request = urllib.request.Request(f"{registry.url}/v2/{REPOSITORY}/blobs/{digest}", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError:
        return False


def tag_in_registry(registry: Registry, tag: str) -> bool:
    request = urllib.request.Request(f"{registry.url}/v2/{REPOSITORY}/manifests/{tag}", method="HEAD")
    request.add_header("Accept", "application/vnd.oci.image.manifest.v1+json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError:
        return False


def reported_blobs(stderr: str) -> dict[str, str]:
    """what -> digest of every `pushed: <what> blob <digest> (N bytes, uploaded)` line."""
    return dict(re.findall(r"pushed: (\w+) blob (sha256:[0-9a-f]{64}) \(\d+ bytes, uploaded\)", stderr))


def test_validate_gitops_failing_during_the_upload_reports_the_blobs(
    registry: Registry, fleet: Fleet, new_model: Path
) -> None:
    # A defect only validate-gitops finds (an unknown field of the server's pod spec), already on main.
    deployment = fleet.root / "platform" / "apps" / "llamacpp" / "deployment.yaml"
    text = deployment.read_text(encoding="utf-8")
    assert "\n      serviceAccountName: " in text
    deployment.write_text(
        text.replace("\n      serviceAccountName: ", "\n      bogusField: 1\n      serviceAccountName: ", 1)
    )
    fleet.git("commit", "--quiet", "-am", "a defect")
    fleet.head = fleet.git("rev-parse", "HEAD")
    result = release(fleet, new_model, registry.host, "--replace", OLD_MODEL)
    assert result.returncode == 1
    assert "scripts/validate-gitops refused the changed sites" in result.stderr and "bogusField" in result.stderr
    assert f"nothing was committed (no branch release/{OLD_MODEL}-v2) and no tag was pushed" in result.stderr
    blobs = reported_blobs(result.stderr)
    assert set(blobs) == {"config", "model", "signature"}, result.stderr
    assert blobs["model"] == f"sha256:{hashlib.sha256(new_model.read_bytes()).hexdigest()}"
    assert all(blob_in_registry(registry, digest) for digest in blobs.values()), "a reported blob is not there"
    assert "no manifest references these blobs" in result.stderr
    assert not tag_in_registry(registry, "v2"), "the tag was pushed although validation failed"
    fleet.assert_untouched()


def test_refused_commit_pushes_no_tag(registry: Registry, fleet: Fleet, new_model: Path) -> None:
    hook = fleet.repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'pre-commit: refused by policy' >&2\nexit 1\n")
    hook.chmod(0o755)
    result = release(fleet, new_model, registry.host, "--replace", OLD_MODEL)
    assert result.returncode == 1
    assert "git commit failed: pre-commit: refused by policy" in result.stderr
    assert f"nothing was committed (no branch release/{OLD_MODEL}-v2) and no tag was pushed" in result.stderr
    blobs = reported_blobs(result.stderr)
    assert set(blobs) == {"config", "model", "signature"} and all(blob_in_registry(registry, d) for d in blobs.values())
    assert not tag_in_registry(registry, "v2")
    fleet.assert_untouched()


def test_failure_after_the_manifest_says_exactly_what_was_pushed(
    registry: Registry, fleet: Fleet, new_model: Path
) -> None:
    # Another job takes the branch name between the commit and the branch (a post-commit hook does it).
    branch = f"release/{OLD_MODEL}-v2"
    hook = fleet.repo / ".git" / "hooks" / "post-commit"
    hook.write_text(f"#!/bin/sh\ngit branch {branch} main\n")
    hook.chmod(0o755)
    result = release(fleet, new_model, registry.host, "--replace", OLD_MODEL)
    assert result.returncode == 1
    assert f"git branch {branch}" in result.stderr and "already exists" in result.stderr
    raw = oras("manifest", "fetch", "--plain-http", f"{registry.host}/{REPOSITORY}:v2").stdout.encode()
    digest = f"sha256:{hashlib.sha256(raw).hexdigest()}"
    assert f"pushed: manifest {digest} as {registry.host}/{REPOSITORY}:v2" in result.stderr
    assert reported_blobs(result.stderr) == {
        what: layer["digest"] for what, layer in zip(("model", "signature"), json.loads(raw)["layers"], strict=True)
    } | {"config": json.loads(raw)["config"]["digest"]}
    # The test registry does not allow deletes: the report says so and how to remove the release.
    assert "the manifest could not be deleted again (HTTP 405" in result.stderr
    assert f"oras manifest delete --plain-http {registry.host}/{REPOSITORY}@{digest}" in result.stderr
    assert "is on no branch" in result.stderr
    assert fleet.git("rev-parse", branch) == fleet.head, "the other job's branch was moved"
    assert fleet.git("rev-parse", "HEAD") == fleet.head and fleet.git("status", "--porcelain") == ""
    assert len(fleet.git("worktree", "list").splitlines()) == 1


def test_dry_run_pushes_and_commits_nothing(registry: Registry, fleet: Fleet, new_model: Path) -> None:
    result = release(fleet, new_model, registry.host, "--replace", OLD_MODEL, "--dry-run")
    assert result.returncode == 0, result.stderr
    docs = list(yaml.safe_load_all(result.stdout))
    assert len(docs) == 1 and result.stdout.startswith("---\n# sites/lab/site.yaml: replaces spec.models[edgeslm-tiny]")
    (entry,) = docs[0]
    assert entry["sha256"] == hashlib.sha256(new_model.read_bytes()).hexdigest()
    assert entry["source"].startswith(f"oci://{registry.host}/{REPOSITORY}:v2@sha256:")
    _catalog.model_from_mapping(entry)  # a complete, valid entry
    assert "dry run: nothing pushed, nothing committed" in result.stderr
    assert repositories(registry) == []
    fleet.assert_untouched()


def test_untrusted_signing_key_is_refused(registry: Registry, fleet: Fleet, new_model: Path, tmp_path: Path) -> None:
    stranger = make_key(tmp_path / "other-keys", "stranger")
    result = release(fleet, new_model, registry.host, "--replace", OLD_MODEL, key=stranger.private)
    assert result.returncode == 1
    assert "the signing key stranger.pem" in result.stderr and "ci-release" in result.stderr
    assert repositories(registry) == []
    fleet.assert_untouched()


def test_a_file_that_is_not_gguf_is_refused(fleet: Fleet, tmp_path: Path) -> None:
    fake = tmp_path / "error-page.gguf"
    fake.write_text("<!DOCTYPE html><html><body>403 Forbidden</body></html>\n")
    result = release(fleet, fake, f"127.0.0.1:{free_port()}", "--replace", OLD_MODEL)
    assert result.returncode == 1
    assert "is not a GGUF model the nodes can use" in result.stderr and "HTML page" in result.stderr
    fleet.assert_untouched()


def test_new_entry_in_another_site_and_one_model_per_runtime(fleet: Fleet, new_model: Path, tmp_path: Path) -> None:
    # store-berlin serves a LlamaEdge model; the release adds a llama.cpp entry beside it.
    site_yaml = fleet.root / "sites" / "store-berlin" / "site.yaml"
    trust_key(site_yaml, "ci-release", fleet.key.public.read_text())
    fleet.git("commit", "--quiet", "-am", "store-berlin trusts the release key")
    fleet.head = fleet.git("rev-parse", "HEAD")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGESLM_REGISTRY_")}
    base = [sys.executable, str(RELEASE), str(new_model), "--registry", f"127.0.0.1:{free_port()}"]
    base += ["--repository", REPOSITORY, "--tag", "v2", "--key", str(fleet.key.private), "--root", str(fleet.root)]
    added = subprocess.run(
        [*base, "--site", "store-berlin", "--name", "tiny-chat", "--context", "1024", "--dry-run"],
        capture_output=True, text=True, check=False, env=env, timeout=300,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "new item of spec.models" in added.stdout
    (entry,) = next(yaml.safe_load_all(added.stdout))
    assert (entry["name"], entry["runtime"], entry["target"]) == ("tiny-chat", "llamacpp", "pi5-8gb")
    assert entry["serving"] == {"contextPerSlot": 1024, "parallel": 1}
    model = _catalog.model_from_mapping(entry)
    needed = _catalog.model_fit(model).needed
    assert int(entry["resources"]["requests"]["memory"].removesuffix("Mi")) * (1 << 20) >= needed
    # The lab already serves a llama.cpp model: a second one is refused, naming the fix.
    refused = subprocess.run(
        [*base, "--site", "lab", "--dry-run"], capture_output=True, text=True, check=False, env=env, timeout=300
    )
    assert refused.returncode == 1
    assert "runtime llamacpp already serves edgeslm-tiny" in refused.stderr
    assert "add --replace edgeslm-tiny" in refused.stderr
    fleet.assert_untouched()


def test_playbook_runs_the_same_release(fleet: Fleet, new_model: Path) -> None:
    """edgeslm.pi5.model_release (playbooks/model_release.yml) calls the script: a dry run through Ansible."""
    playbook = Path(sys.executable).parent / "ansible-playbook"
    extra = {
        "edgeslm_release_file": str(new_model),
        "edgeslm_release_registry": f"127.0.0.1:{free_port()}",
        "edgeslm_release_repository": REPOSITORY,
        "edgeslm_release_tag": "v2",
        "edgeslm_release_key": str(fleet.key.private),
        "edgeslm_release_sites": [SITE],
        "edgeslm_release_root": str(fleet.root),
        "edgeslm_release_replace": OLD_MODEL,
        "edgeslm_release_context": 1024,
        "edgeslm_release_dry_run": True,
    }
    result = subprocess.run(
        [str(playbook), str(REPO / "playbooks" / "model_release.yml"), "-e", json.dumps(extra)],
        capture_output=True, text=True, check=False, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"contextPerSlot\"?: 1024", result.stdout), result.stdout
    assert hashlib.sha256(new_model.read_bytes()).hexdigest() in result.stdout
    assert "changed=0" in result.stdout and "failed=0" in result.stdout
    fleet.assert_untouched()


def test_release_with_a_registry_login(fleet: Fleet, new_model: Path, tmp_path: Path) -> None:
    with running_registry(tmp_path / "auth-registry", users={"ci": "s3cret"}) as registry:
        refused = release(fleet, new_model, registry.host, "--replace", OLD_MODEL)
        assert refused.returncode == 1
        assert "asks for credentials" in refused.stderr and "EDGESLM_REGISTRY_USERNAME" in refused.stderr
        assert "nothing was pushed and nothing was committed" in refused.stderr
        fleet.assert_untouched()
        login = {"EDGESLM_REGISTRY_USERNAME": "ci", "EDGESLM_REGISTRY_PASSWORD": "s3cret"}
        result = release(fleet, new_model, registry.host, "--replace", OLD_MODEL, env=login)
        assert result.returncode == 0, result.stderr
        oras("login", "--plain-http", "-u", "ci", "-p", "s3cret", registry.host, env={"HOME": str(tmp_path)})
        oras("manifest", "fetch", "--plain-http", f"{registry.host}/{REPOSITORY}:v2", env={"HOME": str(tmp_path)})
    assert f"release/{OLD_MODEL}-v2" in fleet.branches()
