"""The Molecule check step's callback (TEST ONLY): check mode on a converged scenario must change nothing.

Runs ansible-playbook for real, on localhost, with the callback enabled as .config/molecule/config.yml
enables it, so the step can fail: a test that could not fail would prove nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CALLBACKS = REPO / "molecule" / "resources" / "plugins" / "callback"
PLAYBOOK = """\
- name: A play with one task that changes something
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Write a file
      ansible.builtin.copy:
        dest: "{{ target }}"
        content: "changed\\n"
        mode: "0644"
"""


def run(tmp_path: Path, state: str | None, check: bool) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "converge.yml"
    playbook.write_text(PLAYBOOK)
    ephemeral = tmp_path / "ephemeral"
    ephemeral.mkdir(exist_ok=True)
    if state is not None:
        (ephemeral / "state.yml").write_text(state)
    env = {
        **os.environ,
        "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
        "ANSIBLE_CALLBACKS_ENABLED": "edgeslm_check_unchanged",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "MOLECULE_EPHEMERAL_DIRECTORY": str(ephemeral),
    }
    cmd = [str(Path(sys.executable).with_name("ansible-playbook")), str(playbook), "-e", f"target={tmp_path / 'out'}"]
    if check:
        cmd.append("--check")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=120)


def test_check_mode_change_on_a_converged_scenario_fails(tmp_path: Path) -> None:
    result = run(tmp_path, "converged: true\ndriver: podman\n", check=True)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "check mode on a converged node reported a change: localhost: Write a file" in output


@pytest.mark.parametrize(
    ("state", "check"),
    [
        ("converged: false\n", True),  # a fresh node may need changes: a dry run before converge
        ("converged: true\n", False),  # a real converge is judged by the idempotence step instead
    ],
)
def test_other_runs_are_left_alone(tmp_path: Path, state: str | None, check: bool) -> None:
    result = run(tmp_path, state, check)
    assert result.returncode == 0, result.stdout + result.stderr
