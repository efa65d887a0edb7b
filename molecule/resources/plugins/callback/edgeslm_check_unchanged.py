# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""TEST ONLY (Molecule): fail a check-mode run on a converged node that reports a change.

Molecule's `check` action runs the converge playbook with --check and fails only on failed
tasks. Enabled by .config/molecule/config.yml for every scenario, this callback makes the
action assert what it is for: once Molecule has converged the scenario (state.yml in
MOLECULE_EPHEMERAL_DIRECTORY says `converged: true`), a check-mode run must report no
changed task. A check run before converge (a fresh node) may report changes.

The failure is an AssertionError, which Ansible's callback dispatch lets through on purpose,
so ansible-playbook exits non-zero after printing every changed task.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ansible import context
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: edgeslm_check_unchanged
type: aggregate
short_description: TEST ONLY - fail a check-mode run on a converged Molecule scenario that reports a change
description:
  - Counts tasks and handlers that report changed while ansible-playbook runs with --check on a
    scenario Molecule has converged, lists them, and fails the run.
requirements:
  - enabled in callbacks_enabled (.config/molecule/config.yml does this)
"""


def _converged() -> bool:
    state = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "state.yml"
    try:
        text = state.read_text(encoding="utf-8")
    except OSError:
        return False
    return re.search(r"^converged:\s*true\s*$", text, re.MULTILINE) is not None


def _field(result: Any, name: str) -> Any:
    """ansible-core 2.19 passes CallbackTaskResult (.task, .host, .result); older cores use _task, _host, _result."""
    value = getattr(result, name, None)
    return value if value is not None else getattr(result, f"_{name}", None)


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "edgeslm_check_unchanged"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.changed: list[str] = []
        self.active = bool(context.CLIARGS.get("check")) and _converged()

    def _record(self, result: Any) -> None:
        payload = _field(result, "result") or {}
        if not self.active or not payload.get("changed"):
            return
        task, host = _field(result, "task"), _field(result, "host")
        self.changed.append(f"{host.get_name() if host else '?'}: {task.get_name() if task else '?'}")

    def v2_runner_on_ok(self, result: Any) -> None:
        self._record(result)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        if not self.changed:
            return
        for line in self.changed:
            self._display.error(f"check mode on a converged node reported a change: {line}")
        raise AssertionError(
            f"check mode on the converged scenario reported {len(self.changed)} changed task(s); "
            "a converged node must need nothing (see the errors above)"
        )
