# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter edgeslm.pi5.model_memory: memory estimate of a described GGUF model (docs: model_memory.yml)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.edgeslm.pi5.plugins.module_utils._memory import estimate_from_description


def model_memory(
    description: Mapping[str, Any],
    context_length: int | None = None,
    kv_cache_type: str = "f16",
    parallel: int = 1,
    batch_size: int = 512,
    mmap: bool = True,
    flash_attention: bool = True,
    runtime: str = "llama.cpp",
) -> dict[str, int]:
    """Bytes per part (weights, kv_cache, compute, overhead, total) to serve the model."""
    if context_length is None:
        raise AnsibleFilterError(
            "model_memory: context_length is required (the model's trained maximum is never assumed)"
        )
    try:
        return estimate_from_description(
            description,
            context_length=context_length,
            kv_cache_type=kv_cache_type,
            batch_size=batch_size,
            parallel=parallel,
            mmap=mmap,
            flash_attention=flash_attention,
            runtime=runtime,
        ).as_dict()
    except ValueError as exc:
        raise AnsibleFilterError(f"model_memory: {exc}") from exc


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"model_memory": model_memory}
