#!/usr/bin/python
# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: model_verify
short_description: Verify a model file's integrity, checksum and memory fit before serving it
version_added: 0.1.0
description:
  - Reads the metadata of a GGUF model (header, key/values, tensor infos) without reading
    tensor data, and refuses corrupt or truncated files.
  - Computes the file's SHA-256 in constant memory and compares it with O(sha256). The
    verified digest is cached in a C(user.edgeslm.sha256.v1) extended attribute (or a hidden
    C(.NAME.sha256.json) sidecar file where xattrs are unavailable), keyed on size,
    modification time, inode and device, so an unchanged file is not hashed again.
  - Estimates the memory needed to serve the model with llama.cpp-based runtimes at an
    explicit O(context_length) and checks it against a hardware O(target).
  - Never modifies the model file. Writing the cache record does not count as a change.
  - Checks run cheapest first (metadata, then fit, then the checksum), so a corrupt, truncated or
    oversized model fails in milliseconds without reading its tensor data.
author:
  - edgeslm maintainers (@edgeslm)
options:
  path:
    description: Path of the model file on the managed node.
    type: path
    required: true
  sha256:
    description:
      - Expected SHA-256 as 64 hex digits, optionally prefixed with C(sha256:) (the Hugging Face
        C(lfs.oid) form). The task fails on a mismatch.
      - When omitted, the digest is computed (or taken from the cache) and returned.
    type: str
  format:
    description:
      - Model file format. V(auto) detects GGUF by its magic bytes; other files are treated
        as opaque (checksum only), except that a file named C(*.gguf) must be GGUF.
      - With V(gguf), or V(auto) and a C(*.gguf) name, a file that is not GGUF (empty, text, an HTML
        error page, a Git LFS pointer, another format) fails, naming the file and what it holds.
      - V(hef) is a Hailo-compiled model for the Hailo-10H; its metadata cannot be read here,
        so pass O(description) for a fit check.
    type: str
    choices: [auto, gguf, hef]
    default: auto
  description:
    description:
      - Model description for formats whose metadata this module cannot read (HEF), with at
        least C(name) and C(weights_bytes) or C(parameter_count). Ignored for GGUF files,
        whose metadata is read from the file.
    type: dict
  target:
    description:
      - Hardware target to check the model against, by name (V(pi5-2gb), V(pi5-4gb), V(pi5-8gb),
        V(pi5-16gb), V(hailo-8l), V(hailo-8), V(hailo-10h)) or as a dict with C(name), C(kind)
        (V(cpu), V(hailo-llm), V(hailo-vision)), C(memory_bytes), C(reserve_bytes) and
        optionally C(base) (a catalog name whose values the others override).
      - Without a target, only integrity and checksum are verified.
    type: raw
  context_length:
    description:
      - Context length of one slot the server will be started with (llama.cpp C(--ctx-size)
        divided by C(--parallel)). Required with O(target) for GGUF models; the model's trained
        maximum is never assumed.
    type: int
  parallel:
    description:
      - Number of parallel slots (llama.cpp C(--parallel)).
      - The KV cache holds O(context_length) tokens for each slot.
    type: int
    default: 1
  batch_size:
    description: Logical batch size (llama.cpp C(--batch-size)).
    type: int
    default: 512
  kv_cache_type:
    description: KV cache element type (llama.cpp C(--cache-type-k)/C(--cache-type-v)).
    type: str
    choices: [f32, f16, bf16, q8_0, q5_1, q5_0, q4_1, q4_0, iq4_nl]
    default: f16
  flash_attention:
    description: Whether the runtime uses flash attention (required by llama.cpp for quantized V caches).
    type: bool
    default: true
  mmap:
    description:
      - Whether the runtime maps the weights (llama.cpp default) rather than reading them into anonymous memory.
    type: bool
    default: true
  runtime:
    description: Runtime whose fixed overhead to count.
    type: str
    choices: [llama.cpp, llamaedge]
    default: llama.cpp
  reserve_bytes:
    description: RAM to keep for the OS and k3s on a Pi target, overriding the target's default reserve.
    type: int
  fail_on_misfit:
    description: Fail when the model does not fit the target. Set to V(false) to only report C(fits) and C(problems).
    type: bool
    default: true
  force:
    description: Hash the file even if the cache says it is unchanged since it was last verified.
    type: bool
    default: false
  cache:
    description:
      - Use and maintain the verification cache. V(false) always hashes and stores nothing.
      - In check mode the cache is read but never written.
    type: bool
    default: true
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: The module only reads the model; in check mode it also leaves the cache record unwritten.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in diff mode) when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
notes:
  - Hashing reads the whole file. A cold 4 GiB model takes about 5 s on NVMe Gen 3 and 45 s or more on
    microSD on a Raspberry Pi 5; a cached re-run costs one stat and one getxattr.
  - The cache is an idempotence optimisation keyed on metadata; an in-place edit that restores size and
    mtime would not be noticed. Use O(force) for periodic full verification.
  - See C(docs/model-validation.md) for the memory formulas and their measured accuracy.
seealso:
  - name: Model validation
    description: Formulas, targets and the CLI.
    link: https://example.invalid/edgeslm/pi5/blob/main/docs/model-validation.md
"""

EXAMPLES = r"""
- name: Verify the model before k3s schedules a server on it
  edgeslm.pi5.model_verify:
    path: /var/lib/edgeslm/models/qwen2.5-1.5b-instruct-q4_k_m.gguf
    sha256: "sha256:6a1a2eb6d15622bf3c96857206351ba97e1af16c30d7a74ee38970e434e9407e"
    target: pi5-4gb
    context_length: 4096
    kv_cache_type: q8_0

- name: Check several slots on a 16 GB Pi with a smaller OS reserve, only report
  edgeslm.pi5.model_verify:
    path: /var/lib/edgeslm/models/llama-3.2-3b-q4_k_m.gguf
    target: pi5-16gb
    context_length: 8192
    parallel: 4
    reserve_bytes: 805306368
    fail_on_misfit: false
  register: fit

- name: Show why it would not fit
  ansible.builtin.debug:
    var: fit.problems
  when: not fit.fits

- name: Verify a Hailo-10H HEF model by checksum and declared size
  edgeslm.pi5.model_verify:
    path: /var/lib/edgeslm/hef/qwen2.5-1.5b-instruct.hef
    format: hef
    sha256: "{{ catalog.qwen25_hef.sha256 }}"
    target: hailo-10h
    context_length: 2048
    description:
      name: qwen2.5-1.5b-instruct
      format: hef
      parameter_count: 1540000000
      context_length: 2048

- name: Re-hash even if the cache says the file is unchanged
  edgeslm.pi5.model_verify:
    path: /var/lib/edgeslm/models/model.gguf
    force: true
"""

RETURN = r"""
sha256:
  description: SHA-256 of the file (lower-case hex).
  returned: always
  type: str
  sample: 6a1a2eb6d15622bf3c96857206351ba97e1af16c30d7a74ee38970e434e9407e
size:
  description: File size in bytes.
  returned: always
  type: int
  sample: 1117320736
format:
  description: Detected or declared format.
  returned: always
  type: str
  sample: gguf
cached:
  description: Whether the digest came from the verification cache (no hashing was done).
  returned: always
  type: bool
  sample: true
cache_store:
  description:
    - Where the cache record is (V(xattr), V(sidecar)), or V(none) when it could not be stored or caching is off.
  returned: always
  type: str
  sample: xattr
elapsed:
  description: Seconds spent obtaining the digest.
  returned: always
  type: float
  sample: 0.83
bytes_per_second:
  description: Hashing throughput; 0 when the digest came from the cache.
  returned: always
  type: float
  sample: 1380000000.0
gguf:
  description:
    - GGUF metadata (the model description consumed by the estimate and the C(edgeslm.pi5.model_fit)
      filter, plus file-level facts). Empty for non-GGUF files.
  returned: always
  type: dict
  contains:
    name:
      description: C(general.name), or the architecture when absent.
      type: str
      sample: Qwen2.5 1.5B Instruct
    architecture:
      description: C(general.architecture).
      type: str
      sample: qwen2
    quantization:
      description: Quantization mix from C(general.file_type), or the GGML type holding most weight bytes.
      type: str
      sample: Q4_K_M
    file_type:
      description: Raw C(general.file_type) value, or null.
      type: int
      sample: 15
    parameter_count:
      description: Parameters, from the tensor shapes.
      type: int
      sample: 1543714304
    weights_bytes:
      description: Bytes of tensor data.
      type: int
      sample: 986046464
    tensor_types:
      description: Number of tensors per GGML type.
      type: dict
      sample: {"F32": 141, "Q4_K": 169, "Q6_K": 29}
    block_count:
      description: Transformer layers.
      type: int
      sample: 28
    context_length:
      description: Trained context length (informational; never used as a default).
      type: int
      sample: 32768
    embedding_length:
      description: Embedding width.
      type: int
      sample: 1536
    head_count:
      description: Attention heads.
      type: int
      sample: 12
    head_count_kv:
      description: KV heads (smaller than head_count with grouped-query attention).
      type: int
      sample: 2
    key_length:
      description: Key width per head.
      type: int
      sample: 128
    value_length:
      description: Value width per head.
      type: int
      sample: 128
    vocab_size:
      description: Vocabulary size.
      type: int
      sample: 151936
    sliding_window:
      description: Sliding-window size, when the architecture has one.
      type: int
      sample: 4096
    expert_count:
      description: Experts of a mixture-of-experts model, when present.
      type: int
      sample: 8
memory:
  description: Estimated bytes to serve the model (GGUF with a context length only), per part and total.
  returned: when a GGUF model is checked with O(context_length)
  type: dict
  sample: {"weights": 986046464, "kv_cache": 117440512, "compute": 311427072, "overhead": 81788928,
           "total": 1496702976, "mapped": 986046464, "context_length": 4096, "kv_cells": 4096}
fits:
  description: Whether the model fits the target; null without a target.
  returned: always
  type: bool
  sample: true
problems:
  description: Every reason the model does not fit the target (each names the model, target and numbers).
  returned: always
  type: list
  elements: str
  sample: ["qwen2.5-3b Q4_K_M at ctx 8192 needs 3.1 GiB (...), pi5-4gb has 2.9 GiB free after a 1.1 GiB reserve"]
warnings_fit:
  description: Non-fatal observations, such as a context beyond the trained one.
  returned: always
  type: list
  elements: str
  sample: []
needed:
  description: Bytes the model needs on the target (0 without a target).
  returned: always
  type: int
  sample: 1496702976
available:
  description: Bytes the target offers after its reserve (0 without a target).
  returned: always
  type: int
  sample: 3087007744
"""

# Imports follow the documentation blocks, as validate-modules requires.
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.edgeslm.pi5.plugins.module_utils._digest import verify_sha256  # noqa: E402
from ansible_collections.edgeslm.pi5.plugins.module_utils._gguf import GGUFError, detect_format, read_gguf  # noqa: E402
from ansible_collections.edgeslm.pi5.plugins.module_utils._memory import (  # noqa: E402
    describe_gguf,
    estimate_from_description,
)
from ansible_collections.edgeslm.pi5.plugins.module_utils._targets import check_fit  # noqa: E402

ARGUMENT_SPEC: dict[str, Any] = {
    "path": {"type": "path", "required": True},
    "sha256": {"type": "str"},
    "format": {"type": "str", "choices": ["auto", "gguf", "hef"], "default": "auto"},
    "description": {"type": "dict"},
    "target": {"type": "raw"},
    "context_length": {"type": "int"},
    "parallel": {"type": "int", "default": 1},
    "batch_size": {"type": "int", "default": 512},
    "kv_cache_type": {
        "type": "str",
        "choices": ["f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "iq4_nl"],
        "default": "f16",
    },
    "flash_attention": {"type": "bool", "default": True},
    "mmap": {"type": "bool", "default": True},
    "runtime": {"type": "str", "choices": ["llama.cpp", "llamaedge"], "default": "llama.cpp"},
    "reserve_bytes": {"type": "int"},
    "fail_on_misfit": {"type": "bool", "default": True},
    "force": {"type": "bool", "default": False},
    "cache": {"type": "bool", "default": True},
}


def _estimate_args(params: dict[str, Any]) -> dict[str, Any]:
    return {
        "context_length": params["context_length"],
        "kv_cache_type": params["kv_cache_type"],
        "parallel": params["parallel"],
    }


def _model_checks(module: AnsibleModule, fmt: str, result: dict[str, Any]) -> None:
    """Metadata, memory estimate and fit; raises ValueError subclasses from the core."""
    params = module.params
    description: dict[str, Any] | None = None
    if fmt == "gguf":
        info = read_gguf(params["path"])
        result["gguf"] = info.as_dict()
        description = describe_gguf(info)  # with the tensor groups: the exact repacking split
    elif params["description"] is not None:
        description = dict(params["description"])
        description.setdefault("format", fmt if fmt != "unknown" else "gguf")
    extra = {
        "batch_size": params["batch_size"],
        "mmap": params["mmap"],
        "flash_attention": params["flash_attention"],
        "runtime": params["runtime"],
    }
    if description is not None and params["context_length"] is not None and description.get("format") == "gguf":
        est = estimate_from_description(description, **_estimate_args(params), **extra)
        result["memory"] = est.as_dict()
    if params["target"] is None:
        return
    if description is None:
        module.fail_json(msg="target needs the model's metadata: use a GGUF file or pass description", **result)
        return
    if params["context_length"] is None:
        module.fail_json(
            msg="context_length is required with target: pass the context the server will run with "
            "(the model's trained maximum is never assumed)",
            **result,
        )
    fit = check_fit(
        description,
        params["target"],
        **_estimate_args(params),
        reserve_bytes=params["reserve_bytes"],
        **extra,
    )
    result.update(
        fits=fit.fits, problems=fit.problems, warnings_fit=fit.warnings, needed=fit.needed, available=fit.available
    )


def run(module: AnsibleModule) -> dict[str, Any]:
    params = module.params
    path = params["path"]
    result: dict[str, Any] = {
        "changed": False,
        "path": path,
        "gguf": {},
        "fits": None,
        "problems": [],
        "warnings_fit": [],
        "needed": 0,
        "available": 0,
    }
    if not Path(path).is_file():
        module.fail_json(msg=f"path {path!r} does not exist or is not a regular file", **result)
    try:
        # A *.gguf name or format gguf promises GGUF: anything else (empty, an error page,
        # an LFS pointer) is refused here, naming the file and what it holds.
        fmt = detect_format(path, params["format"])
    except GGUFError as exc:
        module.fail_json(msg=str(exc), error=type(exc).__name__, **result)
    except OSError as exc:
        module.fail_json(msg=f"{path}: {exc}", error=type(exc).__name__, **result)
    try:
        result["format"] = fmt
        # Parse and fit first: a corrupt, truncated or oversized model is refused from its
        # metadata, without hashing gigabytes (minutes on a Pi's microSD).
        _model_checks(module, fmt, result)
        if result["fits"] is False and params["fail_on_misfit"]:
            module.fail_json(
                msg="model cannot be served on the target: "
                + "; ".join(result["problems"])
                + " (checksum not verified; set fail_on_misfit=false to only report)",
                **result,
            )
        digest = verify_sha256(
            path,
            params["sha256"],
            force=params["force"],
            use_cache=params["cache"],
            write=params["cache"] and not module.check_mode,
        )
    except GGUFError as exc:
        module.fail_json(msg=f"{path}: corrupt or unusable GGUF file: {exc}", error=type(exc).__name__, **result)
    except (ValueError, OSError) as exc:
        module.fail_json(msg=f"{path}: {exc}", error=type(exc).__name__, **result)
    result.update(
        sha256=digest.sha256,
        size=digest.size,
        cached=digest.cached,
        cache_store=digest.cache_store,
        elapsed=round(digest.elapsed, 6),
        bytes_per_second=0.0 if digest.cached else round(digest.bytes_per_second, 1),
    )
    expected = params["sha256"]
    if expected is not None and digest.sha256 != expected.strip().lower().removeprefix("sha256:"):
        module.fail_json(
            msg=f"{path}: checksum mismatch: expected {expected}, file has {digest.sha256} "
            "(re-download the model or fix the catalog's sha256)",
            **result,
        )
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
