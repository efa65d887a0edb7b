# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write real GGUF files with the `gguf` package's GGUFWriter, for tests and benchmarks.

The files carry real architecture layouts (llama, qwen2, qwen3, qwen3moe, phi3, gemma2,
gemma3) with the metadata llama.cpp needs to load them: hyper-parameters, a tokenizer (SPM,
GPT-2 BPE, WordPiece or Unigram) and one tensor per weight. Weights are zero blocks (valid
for every GGML type: scale 0), or a file hole with `sparse=True`, so a multi-GB model costs
no disk. Norms are ones so a runtime can run a forward pass.

Reusable outside pytest: `python tests/unit/gguf_factory.py OUT.gguf --preset llama-tiny`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import gguf
import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

Q = GGMLQuantizationType


@dataclass(frozen=True)
class ModelSpec:
    """Shape and metadata of a synthetic model with a real architecture layout."""

    arch: str = "llama"
    name: str = "test-llama"
    block_count: int = 2
    embedding_length: int = 256
    feed_forward_length: int = 512
    head_count: int = 8
    head_count_kv: int = 2
    context_length: int = 2048
    vocab_size: int = 512
    merges: int = 0  # > 0 writes a GPT-2 BPE tokenizer with that many merges
    weight_type: GGMLQuantizationType = Q.Q8_0
    # Per-name overrides, e.g. {"output.weight": Q.Q6_K}; norms and biases stay F32.
    type_overrides: dict[str, GGMLQuantizationType] = field(default_factory=dict)
    file_type: LlamaFileType | None = LlamaFileType.MOSTLY_Q8_0
    sliding_window: int | None = None
    tied_embeddings: bool = False
    extra_metadata: dict[str, object] = field(default_factory=dict)
    head_dim_override: int | None = None  # Gemma's heads are wider than embedding/heads
    tokenizer: str = ""  # "spm" | "bpe" | "wpm" | "ugm"; default: bpe when merges > 0, else spm
    expert_count: int = 0  # MoE (qwen3moe): experts per layer and experts used per token
    expert_used_count: int = 0
    expert_feed_forward_length: int = 0

    @property
    def head_dim(self) -> int:
        return self.head_dim_override or self.embedding_length // self.head_count

    @property
    def tokenizer_model(self) -> str:
        return self.tokenizer or ("bpe" if self.merges else "spm")


PRESETS: dict[str, ModelSpec] = {
    "llama-tiny": ModelSpec(),
    "qwen2-tiny": ModelSpec(
        arch="qwen2",
        name="test-qwen2",
        head_count_kv=2,
        merges=300,
        weight_type=Q.Q4_0,
        type_overrides={"output.weight": Q.Q8_0},
        file_type=LlamaFileType.MOSTLY_Q4_0,
    ),
    "gemma2-tiny": ModelSpec(
        arch="gemma2",
        name="test-gemma2",
        block_count=4,
        head_count_kv=4,
        weight_type=Q.Q4_K,
        type_overrides={"token_embd.weight": Q.Q6_K},
        file_type=LlamaFileType.MOSTLY_Q4_K_M,
        sliding_window=256,
        tied_embeddings=True,
    ),
    # Real published shapes (used sparse by the benchmarks).
    "gemma2-2b": ModelSpec(
        arch="gemma2",
        name="Gemma-2-2B",
        block_count=26,
        embedding_length=2304,
        feed_forward_length=9216,
        head_count=8,
        head_count_kv=4,
        context_length=8192,
        vocab_size=256000,
        weight_type=Q.Q4_0,
        type_overrides={"token_embd.weight": Q.Q8_0},
        file_type=LlamaFileType.MOSTLY_Q4_0,
        sliding_window=4096,
        tied_embeddings=True,
        head_dim_override=256,
    ),
    "tinyllama-1.1b": ModelSpec(
        name="TinyLlama-1.1B",
        block_count=22,
        embedding_length=2048,
        feed_forward_length=5632,
        head_count=32,
        head_count_kv=4,
        vocab_size=32000,
    ),
    "llama2-7b": ModelSpec(
        name="Llama-2-7B",
        block_count=32,
        embedding_length=4096,
        feed_forward_length=11008,
        head_count=32,
        head_count_kv=32,
        context_length=4096,
        vocab_size=32000,
    ),
    "llama3-8b": ModelSpec(
        name="Llama-3-8B",
        block_count=32,
        embedding_length=4096,
        feed_forward_length=14336,
        head_count=32,
        head_count_kv=8,
        context_length=8192,
        vocab_size=128256,
        merges=280147,
    ),
    "llama3.2-1b": ModelSpec(
        name="Llama-3.2-1B",
        block_count=16,
        embedding_length=2048,
        feed_forward_length=8192,
        head_count=32,
        head_count_kv=8,
        context_length=131072,
        vocab_size=128256,
        merges=280147,
        tied_embeddings=True,
        head_dim_override=64,
    ),
    "qwen2.5-0.5b": ModelSpec(
        arch="qwen2",
        name="Qwen2.5-0.5B",
        block_count=24,
        embedding_length=896,
        feed_forward_length=4864,
        head_count=14,
        head_count_kv=2,
        context_length=32768,
        vocab_size=151936,
        merges=151387,
        weight_type=Q.Q8_0,
        tied_embeddings=True,
    ),
    # Shapes of the accuracy benchmark (issue 12): fused QKV, wide queries, sliding window, MoE.
    "qwen3-0.6b": ModelSpec(
        arch="qwen3",
        name="Qwen3-0.6B",
        block_count=28,
        embedding_length=1024,
        feed_forward_length=3072,
        head_count=16,
        head_count_kv=8,
        context_length=40960,
        vocab_size=151936,
        merges=151387,
        tied_embeddings=True,
        head_dim_override=128,
    ),
    "phi3-mini": ModelSpec(
        arch="phi3",
        name="Phi-3-mini-4k",
        block_count=32,
        embedding_length=3072,
        feed_forward_length=8192,
        head_count=32,
        head_count_kv=32,
        context_length=4096,
        vocab_size=32064,
    ),
    "smollm2-360m": ModelSpec(
        name="SmolLM2-360M",
        block_count=32,
        embedding_length=960,
        feed_forward_length=2560,
        head_count=15,
        head_count_kv=5,
        context_length=8192,
        vocab_size=49152,
        merges=48900,
        tied_embeddings=True,
        head_dim_override=64,
    ),
    "gemma3-1b": ModelSpec(
        arch="gemma3",
        name="Gemma-3-1B",
        block_count=26,
        embedding_length=1152,
        feed_forward_length=6912,
        head_count=4,
        head_count_kv=1,
        context_length=32768,
        vocab_size=262144,
        weight_type=Q.Q8_0,
        sliding_window=512,
        tied_embeddings=True,
        head_dim_override=256,
    ),
    "llama-ffn8x": ModelSpec(
        name="Llama-FFN8x",
        block_count=8,
        embedding_length=1024,
        feed_forward_length=8192,
        head_count=16,
        head_count_kv=4,
        context_length=8192,
        vocab_size=32000,
    ),
    "qwen2-nogqa": ModelSpec(
        arch="qwen2",
        name="Qwen1.5-0.5B",
        block_count=24,
        embedding_length=1024,
        feed_forward_length=2816,
        head_count=16,
        head_count_kv=16,
        context_length=32768,
        vocab_size=151936,
        merges=151387,
        tied_embeddings=True,
    ),
    "qwen3moe-mini": ModelSpec(
        arch="qwen3moe",
        name="Qwen3-MoE-mini",
        block_count=8,
        embedding_length=1024,
        feed_forward_length=3072,
        head_count=16,
        head_count_kv=4,
        context_length=32768,
        vocab_size=32000,
        head_dim_override=128,
        expert_count=16,
        expert_used_count=4,
        expert_feed_forward_length=512,
    ),
    "llama-wpm": ModelSpec(name="Llama-WordPiece", vocab_size=30522, tokenizer="wpm"),
    "llama-ugm": ModelSpec(name="Llama-Unigram", vocab_size=32128, tokenizer="ugm"),
}


def _tensor_plan(spec: ModelSpec) -> Iterator[tuple[str, tuple[int, ...], GGMLQuantizationType]]:
    """(name, ggml shape ne0-first, type) for every tensor of the architecture (src/models/<arch>.cpp)."""
    e, f, v = spec.embedding_length, spec.feed_forward_length, spec.vocab_size
    kv = spec.head_dim * spec.head_count_kv
    q = spec.head_dim * spec.head_count
    gemma = spec.arch in ("gemma2", "gemma3")
    yield "token_embd.weight", (e, v), spec.weight_type
    for i in range(spec.block_count):
        b = f"blk.{i}"
        yield f"{b}.attn_norm.weight", (e,), Q.F32
        if spec.arch == "phi3":
            yield f"{b}.attn_qkv.weight", (e, q + 2 * kv), spec.weight_type
        else:
            yield f"{b}.attn_q.weight", (e, q), spec.weight_type
            yield f"{b}.attn_k.weight", (e, kv), spec.weight_type
            yield f"{b}.attn_v.weight", (e, kv), spec.weight_type
        if spec.arch == "qwen2":
            yield f"{b}.attn_q.bias", (q,), Q.F32
            yield f"{b}.attn_k.bias", (kv,), Q.F32
            yield f"{b}.attn_v.bias", (kv,), Q.F32
        if spec.arch in ("qwen3", "qwen3moe", "gemma3"):
            yield f"{b}.attn_q_norm.weight", (spec.head_dim,), Q.F32
            yield f"{b}.attn_k_norm.weight", (spec.head_dim,), Q.F32
        yield f"{b}.attn_output.weight", (q, e), spec.weight_type
        if gemma:
            yield f"{b}.post_attention_norm.weight", (e,), Q.F32
            yield f"{b}.post_ffw_norm.weight", (e,), Q.F32
        yield f"{b}.ffn_norm.weight", (e,), Q.F32
        if spec.expert_count:
            n, ff = spec.expert_count, spec.expert_feed_forward_length or f
            yield f"{b}.ffn_gate_inp.weight", (e, n), Q.F32
            yield f"{b}.ffn_gate_exps.weight", (e, ff, n), spec.weight_type
            yield f"{b}.ffn_up_exps.weight", (e, ff, n), spec.weight_type
            yield f"{b}.ffn_down_exps.weight", (ff, e, n), spec.weight_type
        elif spec.arch == "phi3":
            yield f"{b}.ffn_up.weight", (e, 2 * f), spec.weight_type
            yield f"{b}.ffn_down.weight", (f, e), spec.weight_type
        else:
            yield f"{b}.ffn_gate.weight", (e, f), spec.weight_type
            yield f"{b}.ffn_up.weight", (e, f), spec.weight_type
            yield f"{b}.ffn_down.weight", (f, e), spec.weight_type
    yield "output_norm.weight", (e,), Q.F32
    if not spec.tied_embeddings:
        yield "output.weight", (e, v), spec.weight_type


def tensor_plan(spec: ModelSpec) -> list[tuple[str, tuple[int, ...], GGMLQuantizationType, int]]:
    """The plan with each tensor's byte size (type overrides applied)."""
    plan = []
    for name, shape, qtype in _tensor_plan(spec):
        qtype = spec.type_overrides.get(name, qtype) if qtype != Q.F32 else qtype
        block, size = GGML_QUANT_SIZES[qtype]
        rows = 1
        for dim in shape[1:]:
            rows *= dim
        plan.append((name, shape, qtype, rows * shape[0] // block * size))
    return plan


def _bytes_to_unicode() -> list[str]:
    """The 256 printable stand-ins GPT-2 byte-level BPE uses for raw bytes."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, extra = [], 0
    for b in range(256):
        if b in keep:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


def _add_tokenizer(w: gguf.GGUFWriter, spec: ModelSpec) -> None:
    n = spec.vocab_size
    kind = spec.tokenizer_model
    if kind == "bpe":
        base = _bytes_to_unicode()
        tokens = base + [f"t{i}" for i in range(n - len(base))]
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("qwen2" if spec.arch.startswith("qwen") else "llama-bpe")
        w.add_token_list(tokens[:n])
        w.add_token_types([1] * n)
        w.add_token_merges([f"t{i % 1000} t{(i // 1000) % 1000}" for i in range(spec.merges)])
        w.add_bos_token_id(n - 2)
        w.add_eos_token_id(n - 1)
        return
    if kind == "wpm":
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tokens = specials + [f"w{i}" if i % 2 else f"##w{i}" for i in range(n - len(specials))]
        w.add_tokenizer_model("bert")
        w.add_token_list(tokens[:n])
        w.add_token_types([3] * len(specials) + [1] * (n - len(specials)))
        w.add_unk_token_id(1)
        w.add_bos_token_id(2)
        w.add_eos_token_id(3)
        w.add_pad_token_id(0)
        return
    if kind == "ugm":
        specials = ["<pad>", "</s>", "<unk>"]
        tokens = specials + [f"\u2581u{i}" for i in range(n - len(specials))]
        w.add_tokenizer_model("t5")
        w.add_token_list(tokens[:n])
        w.add_token_scores([0.0, 0.0, 0.0] + [float(-1 - i / n) for i in range(n - 3)])
        w.add_token_types([3, 3, 2] + [1] * (n - 3))
        w.add_pad_token_id(0)
        w.add_eos_token_id(1)
        w.add_unk_token_id(2)
        return
    specials = ["<unk>", "<s>", "</s>"]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    tokens = specials + byte_tokens + [f"\u2581w{i}" for i in range(n - len(specials) - len(byte_tokens))]
    types = [2, 3, 3] + [6] * 256 + [1] * (n - 259)
    if spec.arch == "phi3":
        # llama.cpp sets attributes on <|endoftext|> for Phi-3 vocabularies (src/llama-vocab.cpp)
        tokens[n - 1], types[n - 1] = "<|endoftext|>", 3
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens[:n])
    w.add_token_scores([float(-i) for i in range(n)])
    w.add_token_types(types[:n])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)


def _add_hparams(w: gguf.GGUFWriter, spec: ModelSpec) -> None:
    w.add_name(spec.name)
    w.add_block_count(spec.block_count)
    w.add_context_length(spec.context_length)
    w.add_embedding_length(spec.embedding_length)
    w.add_feed_forward_length(spec.feed_forward_length)
    w.add_head_count(spec.head_count)
    w.add_head_count_kv(spec.head_count_kv)
    w.add_rope_dimension_count(spec.head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-6)
    if spec.arch in ("gemma2", "gemma3") or spec.head_dim_override:
        w.add_key_length(spec.head_dim)
        w.add_value_length(spec.head_dim)
    if spec.arch == "gemma2":
        w.add_float32(f"{spec.arch}.attn_logit_softcapping", 50.0)
        w.add_float32(f"{spec.arch}.final_logit_softcapping", 30.0)
    if spec.expert_count:
        w.add_expert_count(spec.expert_count)
        w.add_expert_used_count(spec.expert_used_count)
        if spec.expert_feed_forward_length:
            w.add_expert_feed_forward_length(spec.expert_feed_forward_length)
    if spec.sliding_window:
        w.add_sliding_window(spec.sliding_window)
    if spec.file_type is not None:
        w.add_file_type(spec.file_type)
    w.add_quantization_version(2)
    for key, value in spec.extra_metadata.items():
        if isinstance(value, bool):
            w.add_bool(key, value)
        elif isinstance(value, int):
            w.add_uint32(key, value)
        elif isinstance(value, float):
            w.add_float32(key, value)
        else:
            w.add_string(key, str(value))


def _byte_shape(shape: tuple[int, ...], qtype: GGMLQuantizationType) -> list[int]:
    """numpy shape (outermost first) of a quantized tensor stored as raw uint8 rows."""
    block, size = GGML_QUANT_SIZES[qtype]
    return [*reversed(shape[1:]), shape[0] // block * size]


def _data(shape: tuple[int, ...], qtype: GGMLQuantizationType) -> np.ndarray:
    """Ones for F32 norms/biases, zero blocks (scale 0) for weights."""
    if qtype == Q.F32:
        return np.ones(tuple(reversed(shape)), dtype=np.float32)
    if qtype == Q.F16:
        return np.zeros(tuple(reversed(shape)), dtype=np.float16)
    return np.zeros(_byte_shape(shape, qtype), dtype=np.uint8)


def write_model(path: str | os.PathLike[str], spec: ModelSpec, *, sparse: bool = False) -> Path:
    """Write `spec` as a GGUF file; `sparse` leaves the tensor data as a file hole."""
    out = Path(path)
    w = gguf.GGUFWriter(out, spec.arch)
    _add_hparams(w, spec)
    _add_tokenizer(w, spec)
    plan = tensor_plan(spec)
    if not sparse:
        for name, shape, qtype, _nbytes in plan:
            data = _data(shape, qtype)
            w.add_tensor(name, data, raw_dtype=None if qtype in (Q.F32, Q.F16) else qtype)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return out
    for name, shape, qtype, nbytes in plan:
        if qtype == Q.F32:
            w.add_tensor_info(name, list(reversed(shape)), np.dtype(np.float32), nbytes)
        else:
            w.add_tensor_info(name, _byte_shape(shape, qtype), np.dtype(np.uint8), nbytes, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    total = expected_size(out, plan)
    os.truncate(out, total)
    return out


def expected_size(path: Path, plan: list[tuple[str, tuple[int, ...], GGMLQuantizationType, int]]) -> int:
    """File size once tensor data is laid out at 32-byte alignment after the metadata."""
    meta_end = path.stat().st_size
    offset = -(-meta_end // 32) * 32
    for _name, _shape, _qtype, nbytes in plan:
        offset += -(-nbytes // 32) * 32
    return offset


def preset(name: str, **changes: object) -> ModelSpec:
    return replace(PRESETS[name], **changes)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out")
    parser.add_argument("--preset", default="llama-tiny", choices=sorted(PRESETS))
    parser.add_argument("--weight-type", help="GGML type name for 2-D weights, e.g. Q4_0")
    parser.add_argument("--sparse", action="store_true")
    args = parser.parse_args()
    spec = PRESETS[args.preset]
    if args.weight_type:
        spec = replace(spec, weight_type=GGMLQuantizationType[args.weight_type], file_type=None)
    print(write_model(args.out, spec, sparse=args.sparse))


if __name__ == "__main__":
    main()
