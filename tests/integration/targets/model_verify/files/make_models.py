# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write the model files the model_verify integration target checks, and print their facts.

Standard library only, so it runs in any interpreter ansible-test gives the target (the
gguf package is not installed in ansible-test's --venv). Its output is checked against
gguf.GGUFReader in tests/unit/plugins/module_utils/test_integration_fixture.py.

usage: make_models.py DIR  ->  JSON {name: {"path", "sha256", "size"}} on stdout
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path
from typing import Any

ALIGN = 32
# GGML type id -> (elements per block, bytes per block)
TYPES = {"F32": (0, 1, 4), "Q4_0": (2, 32, 18), "Q8_0": (8, 32, 34)}


def _str(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _kv(key: str, value: str | int | list[str]) -> bytes:
    if isinstance(value, str):
        return _str(key) + struct.pack("<I", 8) + _str(value)
    if isinstance(value, list):
        items = b"".join(_str(v) for v in value)
        return _str(key) + struct.pack("<IIQ", 9, 8, len(value)) + items
    return _str(key) + struct.pack("<II", 4, value)


def _nbytes(shape: tuple[int, ...], type_name: str) -> int:
    _tid, block, size = TYPES[type_name]
    rows = 1
    for dim in shape[1:]:
        rows *= dim
    return rows * shape[0] // block * size


def _pad(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def gguf_bytes(name: str, embd: int, layers: int, vocab: int, weight_type: str) -> tuple[bytes, int]:
    """Header, metadata and tensor infos of a llama-layout model; returns (bytes, data size)."""
    kvs = [
        _kv("general.architecture", "llama"),
        _kv("general.name", name),
        _kv("llama.block_count", layers),
        _kv("llama.context_length", 4096),
        _kv("llama.embedding_length", embd),
        _kv("llama.feed_forward_length", embd * 2),
        _kv("llama.attention.head_count", 8),
        _kv("llama.attention.head_count_kv", 2),
        _kv("general.file_type", {"Q8_0": 7, "Q4_0": 2}[weight_type]),
        _kv("tokenizer.ggml.tokens", [f"t{i}" for i in range(vocab)]),
    ]
    tensors: list[tuple[str, tuple[int, ...], str]] = [("token_embd.weight", (embd, vocab), "Q8_0")]
    for layer in range(layers):
        tensors.append((f"blk.{layer}.attn_norm.weight", (embd,), "F32"))
        tensors.append((f"blk.{layer}.attn_q.weight", (embd, embd), weight_type))
        tensors.append((f"blk.{layer}.ffn_up.weight", (embd, embd * 2), weight_type))
    infos, offset = b"", 0
    for tname, shape, tname_type in tensors:
        tid = TYPES[tname_type][0]
        infos += _str(tname) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape)
        infos += struct.pack("<IQ", tid, offset)
        offset += _pad(_nbytes(shape, tname_type))
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs) + infos
    return head + b"\0" * (_pad(len(head)) - len(head)), offset


def write(
    path: Path,
    name: str,
    embd: int = 256,
    layers: int = 2,
    vocab: int = 512,
    weight_type: str = "Q8_0",
    sparse: bool = False,
) -> None:
    head, data_size = gguf_bytes(name, embd, layers, vocab, weight_type)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as stream:
        stream.write(head)
        if sparse:
            stream.truncate(len(head) + data_size)
        else:
            # Deterministic filler: the checks never interpret tensor data.
            stream.write(bytes(range(256)) * (data_size // 256) + b"\1" * (data_size % 256))
    tmp.replace(path)


def facts(path: Path, *, digest: bool = True) -> dict[str, Any]:
    result: dict[str, Any] = {"path": str(path), "size": path.stat().st_size}
    if digest:
        sha = hashlib.sha256()
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                sha.update(chunk)
        result["sha256"] = sha.hexdigest()
    return result


def main(out_dir: Path) -> None:
    good = out_dir / "good-q8_0.gguf"
    write(good, "good-llama")
    write(out_dir / "good-q4_0.gguf", "good-llama-q4", weight_type="Q4_0")
    # ~1.4 GiB of weights as a file hole: too big for a pi5-2gb, costs no disk, never hashed
    # (the module refuses a misfit from the metadata before reading tensor data).
    write(out_dir / "big.gguf", "big-llama", embd=4096, layers=24, vocab=32000, sparse=True)
    data = good.read_bytes()
    (out_dir / "truncated.gguf").write_bytes(data[: len(data) - 4096])
    (out_dir / "corrupt.gguf").write_bytes(b"GGML" + data[4:])
    # What lands under a model's name when a download goes wrong: an error page, nothing at all.
    (out_dir / "error-page.gguf").write_bytes(b"<!DOCTYPE html>\n<html><body><h1>403 Forbidden</h1></body></html>\n")
    (out_dir / "empty.gguf").write_bytes(b"")
    (out_dir / "notes.gguf.txt").write_bytes(b"not a model\n")
    names = ("good-q8_0", "good-q4_0", "truncated", "corrupt", "error-page", "empty")
    files = {name: facts(out_dir / f"{name}.gguf") for name in names}
    files["notes"] = facts(out_dir / "notes.gguf.txt")
    files["big"] = facts(out_dir / "big.gguf", digest=False)
    json.dump(files, sys.stdout)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
