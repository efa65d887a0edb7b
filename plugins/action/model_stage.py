# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action for edgeslm.pi5.model_stage: a models folder of the airgap root on the controller (docs: the module).

The module stages on the node. With `airgap_dir` on the controller (the default; `airgap_remote:
true` means the node's), a model file found there is checked against the catalog's sha256 before
it leaves the controller and copied to the node's temporary directory only when the node has no
published version of that digest yet; the module then takes it as a node-side airgap copy and
verifies it again. A model the folder does not hold comes from the catalog's URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.errors import AnsibleActionFail

from ansible_collections.edgeslm.pi5.plugins.module_utils._fetch import FetchError, airgap_artifact
from ansible_collections.edgeslm.pi5.plugins.module_utils._model_stage import (
    StageError,
    model_from_mapping,
    version_path,
)
from ansible_collections.edgeslm.pi5.plugins.plugin_utils._airgap import AirgapAction, copy_to_node, node_has


class ActionModule(AirgapAction):
    MODULE = "edgeslm.pi5.model_stage"

    def from_controller(self, args: dict[str, Any], airgap: Path, task_vars: dict[str, Any]) -> str | None:
        """Hand the module the node directory holding the verified airgap copy, when the node needs it."""
        try:
            model = model_from_mapping(args.get("model") or {})
            local = airgap_artifact(str(airgap), model.file, model.sha256)
        except (StageError, FetchError) as exc:
            raise AnsibleActionFail(f"airgap_dir (controller): {exc}") from exc
        if local is None or self._task.check_mode:
            return None  # the catalog's URL; in check mode the module only reports
        published = version_path(str(args.get("dir") or ""), model.name, model.sha256, model.file)
        if node_has(self, published, None, task_vars):
            return None  # the module checks the published version from its digest cache
        args["airgap_dir"] = copy_to_node(self, local.path)
        return local.path

    def name_the_controller_copy(self, module_result: dict[str, Any], local: str) -> None:
        fetched = module_result.get("fetch") or {}
        if fetched.get("origin") == "airgap":
            fetched["location"] = local
