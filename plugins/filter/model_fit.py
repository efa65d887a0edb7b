# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter edgeslm.pi5.model_fit: does a described model fit a hardware target (docs: model_fit.yml)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.edgeslm.pi5.plugins.module_utils._targets import check_fit


def model_fit(
    description: Mapping[str, Any],
    target: str | Mapping[str, Any] | None = None,
    context_length: int | None = None,
    kv_cache_type: str = "f16",
    parallel: int = 1,
    reserve_bytes: int | None = None,
    batch_size: int = 512,
    mmap: bool = True,
    flash_attention: bool = True,
    runtime: str = "llama.cpp",
) -> dict[str, Any]:
    """fits, problems, warnings, needed, available, memory and target as a dict."""
    if target is None:
        raise AnsibleFilterError("model_fit: target is required, e.g. model_fit('pi5-8gb', context_length=4096)")
    if context_length is None:
        raise AnsibleFilterError("model_fit: context_length is required (the model's trained maximum is never assumed)")
    try:
        return check_fit(
            description,
            target,
            context_length=context_length,
            kv_cache_type=kv_cache_type,
            parallel=parallel,
            reserve_bytes=reserve_bytes,
            batch_size=batch_size,
            mmap=mmap,
            flash_attention=flash_attention,
            runtime=runtime,
        ).as_dict()
    except ValueError as exc:
        raise AnsibleFilterError(f"model_fit: {exc}") from exc


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"model_fit": model_fit}
