# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action for edgeslm.pi5.artifact_fetch: an airgap directory on the controller (docs: the module).

The module does every fetch on the node. This adapter only handles what the module cannot see:
`airgap_dir` on the controller (the default; `airgap_remote: true` means the node's). There the
file is checked against its pinned digest before it leaves the controller, copied to the node's
temporary directory only when the destination does not already hold that digest, and handed to
the module as a node-side airgap directory: the module copies it to its partial name, verifies it
again and renames it into place.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from ansible.errors import AnsibleActionFail

from ansible_collections.edgeslm.pi5.plugins.module_utils._fetch import (
    FetchError,
    airgap_artifact,
    airgap_checksum_list,
    expected_sha256,
    naming_the_pin,
)
from ansible_collections.edgeslm.pi5.plugins.plugin_utils._airgap import AirgapAction, copy_to_node, node_has


class ActionModule(AirgapAction):
    MODULE = "edgeslm.pi5.artifact_fetch"

    def from_controller(self, args: dict[str, Any], airgap: Path, task_vars: dict[str, Any]) -> str | None:
        """Rewrite `args` so the module reads the controller's file on the node; its controller path, if any."""
        dest = str(args.get("dest") or "")
        name = args.get("oci_file") or args.get("checksum_name") or PurePosixPath(dest).name
        try:
            listed = airgap_checksum_list(str(airgap), args.get("checksum_url"))
            if listed is not None:
                args.pop("checksum_url")
                args["checksum_list"] = listed
            elif args.get("checksum_url") and (airgap / name).is_file():
                list_name = PurePosixPath(urlsplit(str(args["checksum_url"])).path).name
                raise FetchError(
                    f"{str(airgap)!r} holds {name!r} but not its checksum list {list_name!r}: copy the list from "
                    "the same release beside it"
                )
            expected = expected_sha256(
                sha256=args.get("sha256"),
                checksum_list=args.get("checksum_list"),
                checksum_name=args.get("checksum_name") or PurePosixPath(dest).name,
            )
            local = airgap_artifact(str(airgap), name, expected)
        except FetchError as exc:
            raise AnsibleActionFail(naming_the_pin(f"airgap_dir (controller): {exc}", args.get("pinned_by"))) from exc
        if local is None:
            if not args.get("source"):
                raise AnsibleActionFail(
                    f"airgap_dir (controller) {str(airgap)!r} has no {name!r} and no source is given: put the "
                    "release's file there, or set source"
                )
            return None
        # The digest is checked: the module needs no list, and finds the file under `name`.
        for key in ("checksum_list", "checksum_url", "oci_file"):
            args.pop(key, None)
        args.update(sha256=local.sha256, checksum_name=name)
        if node_has(self, dest, local.sha256, task_vars) or self._task.check_mode:
            # Never read: the module finds dest present, or in check mode only reports the copy.
            args["source"] = local.path
        else:
            args["airgap_dir"] = copy_to_node(self, local.path)
        return local.path

    def name_the_controller_copy(self, module_result: dict[str, Any], local: str) -> None:
        if module_result.get("origin") in ("airgap", "path"):
            module_result.update(origin="airgap", location=local)
