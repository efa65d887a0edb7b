"""Every role fetches release artifacts one way: edgeslm.pi5.artifact_fetch (or model_stage, built on it).

A second way (get_url, a copy from the controller after a stat, a checksum parsed in Jinja) would
check digests differently and drift from `_fetch`; the airgap directories hang off one root.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
TASK_FILES = sorted([*REPO.glob("roles/*/tasks/**/*.yml"), *REPO.glob("playbooks/*.yml")])


def _tasks(path: Path) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []

    def walk(node: object) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            found.append(node)
            for key in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers"):
                walk(node.get(key))

    walk(yaml.safe_load(path.read_text()))
    return found


@pytest.mark.parametrize("path", TASK_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_second_fetch(path: Path) -> None:
    for task in _tasks(path):
        name = task.get("name", "")
        assert not {"ansible.builtin.get_url", "get_url", "ansible.builtin.uri"} & set(task), (path, name)
        text = yaml.safe_dump(task)
        assert "regex_findall" not in text or "[0-9a-f]{64}" not in text, (path, name)
        if "ansible.builtin.copy" in task and "delegate_to" not in task:
            options = task["ansible.builtin.copy"]
            src = str(options.get("src", "")) if isinstance(options, dict) else ""
            assert "_airgap_dir" not in src, (path, name, "copy from an airgap directory: use artifact_fetch")


def test_one_airgap_root() -> None:
    """Role defaults derive their airgap folder from edgeslm_airgap_dir, a folder each."""
    folders = {}
    for defaults in REPO.glob("roles/*/defaults/main.yml"):
        for key, value in (yaml.safe_load(defaults.read_text()) or {}).items():
            if key.endswith("_airgap_dir"):
                match = re.search(r"edgeslm_airgap_dir ~ '/(\w+)'", str(value))
                assert match, (defaults, key, value)
                folders[key] = match.group(1)
    assert folders == {
        "k3s_airgap_dir": "k3s",
        "wasm_runtime_airgap_dir": "wasm",
        "gitops_bootstrap_airgap_dir": "gitops",
        "model_cache_airgap_dir": "models",
    }
    old_name = "edgeslm_k3s" + "_airgap_dir"
    holders = [
        str(p.relative_to(REPO))
        for p in [*REPO.glob("roles/**/*.yml"), *REPO.glob("playbooks/*.yml"), *REPO.glob("inventories/**/*.yml")]
        if old_name in p.read_text()
    ]
    assert holders == ["roles/k3s/vars/main.yml"]  # only where it is refused as a renamed variable
