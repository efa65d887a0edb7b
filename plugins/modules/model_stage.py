#!/usr/bin/python
# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: model_stage
short_description: Stage one site-catalog model on a node - fetch, verify, publish atomically, rotate versions
version_added: 0.2.0
description:
  - Makes C(<dir>/<name>/current/<file>) the verified version of one model of the site catalog, as the
    M(edgeslm.pi5.model_cache) role does for every model of the node.
  - Refuses, before anything is downloaded, a model whose catalog description does not fit the C(fit_target) of
    O(model) at the catalog's serving configuration (context per slot, parallel slots, KV cache type, batch, flash
    attention).
  - A version not on disk yet needs the C(size_bytes) of O(model) plus O(min_free_bytes) of free space; it is fetched
    with the collection's one fetch core (the same as M(edgeslm.pi5.artifact_fetch) - C(https://), C(http://),
    C(file://) or C(oci://) source, pinned SHA-256, resumable partial file) into
    C(<dir>/<name>/.<sha256>.incoming/), checked against its own metadata (GGUF header and fit), and published by
    renaming that directory to C(<sha256>), so the file and its verification cache record (an extended attribute,
    or the sidecar the digest core names) move together and the file is never hashed again. A refused file is
    removed; the current version stays.
  - A version on disk is checked again from its metadata, and its digest is read from the verification cache
    (hashed only when the cache does not match, or with O(force)).
  - Points C(current) at the version, keeps the one it replaced as C(previous) for rollback, and prunes older
    versions beyond O(keep_versions).
  - Degraded mode - when the new version's source cannot be reached at all (connection refused or reset, timeout,
    HTTP 5xx or 429 from every registry endpoint or the URL) and a verified version is current, nothing changes and
    the node keeps serving it; the task succeeds with a warning and returns RV(degraded). A source that answers
    wrongly (wrong digest, missing or untrusted signature, refused credentials) still fails the task, and so does an
    unreachable source with no version to serve.
  - With O(trusted_keys), the model must carry an OpenSSF model-signing signature by one of them (an OCI artifact's
    C(<file>.sig) layer, or a C(<file>.sig) beside a path source), checked before the version is published; the
    signature is kept beside the file.
author:
  - edgeslm maintainers (@edgeslm)
options:
  dir:
    description: The model directory on the node (absolute).
    type: path
    required: true
  model:
    description:
      - One entry of the C(edgeslm.pi5.site_models) filter (the site catalog's models for this host), with at least
        C(name), C(file), C(format), C(url), C(sha256), C(size_bytes), C(fit_target) and C(context_length); also
        C(parallel), C(kv_cache_type), C(batch_size), C(flash_attention), C(mmap), C(memory_runtime) and
        C(description).
    type: dict
    required: true
  keep_versions:
    description: Versions kept, the current one included (2 keeps the previous one for rollback).
    type: int
    default: 2
  min_free_bytes:
    description: Disk space that must remain free after a download.
    type: int
    default: 1073741824
  reserve_bytes:
    description: RAM kept for the OS and k3s on the target, overriding the target's default reserve.
    type: int
  force:
    description: Hash the staged file even when the verification cache matches.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for a connection or data while fetching.
    type: int
    default: 60
  registries_file:
    description:
      - k3s's C(registries.yaml) on the node, for C(oci://) sources (mirrors first, credentials); a missing file
        means no mirrors. Read only for OCI sources (needs PyYAML on the node).
    type: path
  trusted_keys:
    description:
      - PEM public keys (paths on the node or PEM text); when given, the model must carry a model-signing signature
        by one of them.
    type: list
    elements: str
    default: []
  airgap_dir:
    description:
      - A directory holding the model's file under its catalog name (C(file) of O(model)), on the controller unless
        O(airgap_remote=true). When it holds the file, that file is used instead of the catalog's C(url).
      - On the controller, the file is checked against the catalog's C(sha256) before it leaves the controller,
        and copied to the node only when the node does not have that version yet.
    type: path
  airgap_remote:
    description: O(airgap_dir) is a directory on the managed node.
    type: bool
    default: false
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Nothing is downloaded, linked or removed; C(changed) says whether something would be.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in diff mode) when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
notes:
  - Only the standard library (and C(openssl) for signatures) is needed on the node.
seealso:
  - module: edgeslm.pi5.artifact_fetch
  - module: edgeslm.pi5.model_verify
"""

EXAMPLES = r"""
- name: Stage the models the site catalog gives this host
  edgeslm.pi5.model_stage:
    dir: /var/lib/edgeslm/models
    model: "{{ item }}"
  loop: >-
    {{ lookup('ansible.builtin.file', edgeslm_catalog_file) | from_yaml
       | edgeslm.pi5.site_models(inventory_hostname) }}
  loop_control:
    label: "{{ item.name }}"
"""

RETURN = r"""
model:
  description:
    - The model's line for the local fact - C(name), C(file), C(sha256), C(size), C(path) (through C(current)),
      C(version_dir), C(previous), C(kept_versions), C(format), C(quantization), C(target), C(context_length),
      C(parallel), C(kv_cache_type), C(fits), C(needed_bytes), C(available_bytes), C(verified_at) (the time of the
      last hash, from the verification cache) and C(cache_store). It changes only when the model did.
  returned: always
  type: dict
hashed:
  description: Whether this run hashed the file (while fetching it, or because the verification cache did not match).
  returned: always
  type: bool
fetch:
  description: What the fetch did (origin, location, bytes downloaded and reused, resumed), when it ran.
  returned: always
  type: dict
actions:
  description: What changed (fetched, published, links, pruned versions), or would change in check mode.
  returned: always
  type: list
  elements: str
degraded:
  description:
    - Empty, or when the new version's source could not be reached at all and a verified version is current (kept
      and still served) - C(reason), C(attempts) (every endpoint tried), C(serving) (the sha256 served) and C(wanted)
      (the catalog's). The task then succeeds with a warning; C(model) describes the version served.
  returned: always
  type: dict
"""

from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.edgeslm.pi5.plugins.module_utils._model_stage import (  # noqa: E402
    StageError,
    StageRequest,
    model_from_mapping,
    stage,
)
from ansible_collections.edgeslm.pi5.plugins.module_utils._oci import RegistriesConfig  # noqa: E402
from ansible_collections.edgeslm.pi5.plugins.module_utils._signature import load_trusted_keys  # noqa: E402

ARGUMENT_SPEC: dict[str, Any] = {
    "dir": {"type": "path", "required": True},
    "model": {"type": "dict", "required": True},
    "keep_versions": {"type": "int", "default": 2},
    "min_free_bytes": {"type": "int", "default": 1 << 30},
    "reserve_bytes": {"type": "int"},
    "force": {"type": "bool", "default": False},
    "timeout": {"type": "int", "default": 60},
    "registries_file": {"type": "path"},
    "trusted_keys": {"type": "list", "elements": "str", "default": [], "no_log": False},
    "airgap_dir": {"type": "path"},
    "airgap_remote": {"type": "bool", "default": False},
}


def _registries(path: str | None, source: str) -> RegistriesConfig:
    if not path or not source.startswith("oci://") or not Path(path).exists():
        return RegistriesConfig()
    try:
        import yaml
    except ImportError as exc:
        raise StageError(f"registries_file {path!r} needs PyYAML on the node (python3-yaml)") from exc
    with Path(path).open(encoding="utf-8") as stream:
        return RegistriesConfig.from_mapping(yaml.safe_load(stream) or {}, f"registries_file {path}")


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    try:
        model = model_from_mapping(p["model"])
        result = stage(
            StageRequest(
                directory=p["dir"],
                model=model,
                keep_versions=p["keep_versions"],
                min_free_bytes=p["min_free_bytes"],
                reserve_bytes=p["reserve_bytes"],
                force=p["force"],
                timeout=float(p["timeout"]),
                registries=_registries(p["registries_file"], model.url),
                trusted_keys=load_trusted_keys(p["trusted_keys"]),
                airgap_dir=p["airgap_dir"],
                check_mode=module.check_mode,
            )
        )
    except (ValueError, OSError) as exc:
        module.fail_json(msg=str(exc), model={}, fetch={}, actions=[], hashed=False, degraded={})
    if result.degraded:
        module.warn(
            f"degraded: model {model.name} version {result.degraded['wanted']} could not be fetched "
            f"({result.degraded['reason']}); still serving {result.degraded['serving']}"
        )
    module.exit_json(
        changed=result.changed,
        model=result.entry,
        hashed=result.hashed,
        fetch=result.fetch,
        actions=result.actions,
        degraded=result.degraded,
    )


if __name__ == "__main__":
    main()
