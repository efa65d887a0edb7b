# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hostile GGUF input: the corpus of tests/unit/gguf_hostile.py (one or more crafted files per
published GGUF parser vulnerability class, with its sources) is refused by the core, each file
with its own error and message, within 1 s of CPU and 64 MiB, and a real file cut at any
structural boundary is refused as truncated."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _gguf as G
from ansible_collections.edgeslm.pi5.tests.unit import gguf_bytes as gb
from ansible_collections.edgeslm.pi5.tests.unit import gguf_hostile as H
from ansible_collections.edgeslm.pi5.tests.unit.gguf_factory import PRESETS, write_model


def _parse(data: bytes) -> G.GGUFInfo:
    return G.read_gguf_stream(io.BytesIO(data), len(data))


def test_every_class_has_sources_and_crafted_files() -> None:
    assert {case.vuln_class for case in H.CASES} == set(H.VULNERABILITY_CLASSES)
    for name, (what, sources) in H.VULNERABILITY_CLASSES.items():
        assert what, name
        assert sources and all(sources), name
    names = [case.name for case in H.CASES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("case", H.CASES, ids=[case.name for case in H.CASES])
def test_crafted_file_is_refused_with_its_reason(tmp_path: Path, case: H.Case) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(case.build())
    with pytest.raises(G.GGUFError) as refused:
        G.read_gguf(path)
    assert re.fullmatch(case.error, type(refused.value).__name__), refused.value
    assert re.search(case.pattern, str(refused.value)), str(refused.value)


def test_corpus_is_refused_within_cpu_and_memory_bounds() -> None:
    """A child process parses every crafted file under a 1 s ITIMER_PROF timer per file and
    RLIMIT_AS of its own size + 64 MiB, measuring each file's Python allocations."""
    proc = subprocess.run(
        [sys.executable, str(Path(H.__file__)), "--json"],
        capture_output=True,
        text=True,
        timeout=600,  # a hang guard only: the per-case bound is the child's CPU timer
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [result["case"] for result in results] == [case.name for case in H.CASES]
    for case, result in zip(H.CASES, results, strict=True):
        assert re.fullmatch(case.error, result["error"]), (case.name, result)  # not timeout, crash, MemoryError
        assert result["cpu"] < H.CPU_LIMIT, (case.name, result)
        assert result["peak"] < H.MEMORY_LIMIT, (case.name, result)


@pytest.mark.parametrize("preset", ["llama-tiny", "qwen2-tiny", "gemma2-tiny"])
def test_truncation_at_every_structural_boundary_is_refused(tmp_path: Path, preset: str) -> None:
    data = write_model(tmp_path / "m.gguf", PRESETS[preset]).read_bytes()
    layout = gb.layout(data)
    cuts = sorted({cut + delta for cut in layout.boundaries() for delta in (-1, 0, 1)} - {len(data)})
    assert len(cuts) > 1000 if preset != "gemma2-tiny" else len(cuts) > 500  # the walk saw every field
    for cut in (c for c in cuts if 0 <= c < len(data)):
        with pytest.raises((G.GGUFTruncatedError, G.GGUFLimitError)):
            _parse(data[:cut])
    # and one byte short of the end: the last tensor's data is incomplete
    with pytest.raises(G.GGUFTruncatedError, match="1 missing"):
        _parse(data[:-1])


def test_layout_walker_agrees_with_the_reader(tmp_path: Path) -> None:
    """The oracle the boundary test and the fuzz rely on finds the reader's data offset."""
    for preset in ("llama-tiny", "qwen2-tiny", "gemma2-tiny"):
        data = write_model(tmp_path / f"{preset}.gguf", PRESETS[preset]).read_bytes()
        assert gb.layout(data).data_offset == _parse(data).data_offset


def test_string_element_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """MAX_STRING_ELEMENTS bounds the work all string arrays together can cause."""
    tokens = gb.kv_strings("tokenizer.ggml.tokens", ["t"] * 2000)
    merges = gb.kv_strings("tokenizer.ggml.merges", ["t t"] * 2000)
    kvs = [kv for kv in gb.LLAMA_KVS if b"tokenizer.ggml.tokens" not in kv] + [tokens, merges]
    assert _parse(gb.build(kvs)).vocab_size == 2000
    monkeypatch.setattr(G, "MAX_STRING_ELEMENTS", 3999)
    with pytest.raises(G.GGUFLimitError, match=r"string arrays hold more than 3999 strings"):
        _parse(gb.build(kvs))


def test_decoded_metadata_budget_allows_real_metadata() -> None:
    """The budget leaves room for what models carry: long chat templates and per-layer arrays."""
    template = "{% for m in messages %}{{ m.content }}{% endfor %}" * 1200  # ~60 KiB, decoded
    kvs = [
        *(kv for kv in gb.LLAMA_KVS if b"block_count" not in kv and b"head_count_kv" not in kv),
        gb.kv_u32("llama.block_count", 512),
        gb.kv_u32s("llama.attention.head_count_kv", [2] * 512),
        gb.kv_u32s("llama.feed_forward_length", [256] * 512),
        *(gb.kv_str(f"tokenizer.chat_template.t{i}", template) for i in range(8)),
    ]
    info = _parse(gb.build(kvs, ()))
    assert info.metadata["tokenizer.chat_template.t7"] == template
    assert info.head_count_kv == 2
    assert info.metadata_types["llama.feed_forward_length"] == "array[uint32]"
