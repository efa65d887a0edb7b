# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller side of an airgap directory: the base of the artifact_fetch and model_stage actions.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

The file is checked against its pinned digest on the controller (`_fetch.airgap_artifact`) by
the caller; these helpers ask the node whether it already holds that digest and, when it does
not, copy the file (and its `.sig` bundle) into the task's temporary directory on the node,
where the module reads it as a node-side airgap directory and verifies it once more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

SIGNATURE_SUFFIX = ".sig"


def node_has(action: ActionBase, path: str, sha256: str | None, task_vars: dict[str, Any]) -> bool:
    """Whether `path` exists on the node (with `sha256`, when one is given)."""
    found = action._execute_module(
        "ansible.legacy.stat",
        module_args={
            "path": path,
            "get_checksum": sha256 is not None,
            "checksum_algorithm": "sha256",
            "get_mime": False,
        },
        task_vars=task_vars,
    )
    if found.get("failed"):
        raise AnsibleActionFail(f"cannot stat {path!r} on the node: {found.get('msg', '')}")
    stat = found.get("stat", {})
    return bool(stat.get("exists")) and (sha256 is None or stat.get("checksum") == sha256)


def copy_to_node(action: ActionBase, local_path: str) -> str:
    """Copy a verified airgap file (and its signature) to the task's temporary directory on the node.

    Returns that directory; the caller removes it with the task's other temporary files.
    """
    shell = action._connection._shell
    tmpdir: str = shell.tmpdir or action._make_tmp_path()
    staged = [shell.join_path(tmpdir, Path(local_path).name)]
    action._transfer_file(local_path, staged[0])
    signature = Path(local_path + SIGNATURE_SUFFIX)
    if signature.is_file():
        staged.append(staged[0] + SIGNATURE_SUFFIX)
        action._transfer_file(str(signature), staged[1])
    action._fixup_perms2([tmpdir, *staged], execute=False)
    return tmpdir


class AirgapAction(ActionBase):  # type: ignore[misc]  # ansible has no type information
    """Runs MODULE on the node; with `airgap_dir` on the controller, `from_controller` rewrites its arguments.

    `airgap_remote: true` passes `airgap_dir` to the module unchanged (a directory on the node).
    """

    TRANSFERS_FILES = True
    MODULE = ""

    def run(self, tmp: str | None = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        args = dict(self._task.args)
        remote = boolean(args.pop("airgap_remote", False), strict=True)
        airgap_dir = args.get("airgap_dir")
        try:
            local = None
            if airgap_dir and not remote:
                del args["airgap_dir"]
                local = self.from_controller(args, Path(str(airgap_dir)).expanduser(), task_vars or {})
            module_result: dict[str, Any] = self._execute_module(self.MODULE, module_args=args, task_vars=task_vars)
            if local is not None:
                self.name_the_controller_copy(module_result, local)
            result.update(module_result)
            return result
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)

    def from_controller(self, args: dict[str, Any], airgap: Path, task_vars: dict[str, Any]) -> str | None:
        """Rewrite the module's `args` for a controller airgap directory; the controller file used, if any."""
        raise NotImplementedError

    def name_the_controller_copy(self, module_result: dict[str, Any], local: str) -> None:
        """Say in the result that the bytes came from `local` on the controller, not the node's temporary copy."""
