# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Accuracy of the memory estimate against what llama.cpp itself allocates, part by part.

For each configuration (real architecture layouts written with the gguf package as sparse
files, or quantized from one with llama-quantize), llama-server runs with exactly the command
line the collection generates for the serving configuration (_serving.llama_server_args), and
the benchmark reads:

* llama.cpp's own buffer report: model buffers (CPU_Mapped, CPU_REPACK, CPU when not mapped),
  KV cache, compute and output buffers;
* the process's memory after load (idle) and its peak after a prompt that fills one
  micro-batch (VmHWM), with the model file's resident pages from /proc/PID/smaps;
* llama-fit-params' own estimate for the same settings, where it applies.

and compares each with the collection's estimate (_memory.estimate) for the same model,
serving configuration and CPU (this machine's x86-64 AVX2 build: _memory.CPU_PROFILES).

Definitions (benchmarks/README.md explains them):
* weights (plain) = the weights llama.cpp does not repack; llama.cpp's figure is its `CPU model
  buffer` when it loads without mmap (a second, load-only run when the configuration maps the
  file: CPU_Mapped is the file span between the first and last plain tensor, which includes
  the source bytes of repacked tensors);
* process overhead = what the process holds besides llama.cpp's buffers, the larger of: idle
  RSS minus the model file's resident pages, KV cache, repacked and loaded weights; and the
  peak RSS (less the repacked tensors' file pages) minus all of llama.cpp's buffers. Without
  flash attention a second prompt fills the slot's context, so the scores and the CPU work
  buffer reach their full size;
* llama.cpp total = plain + repacked weights + KV + compute + output + measured overhead.

usage: python benchmarks/accuracy_llamacpp.py [--dir DIR] [--only NAME...] [--json OUT]
       (needs the llama.cpp 0.3.36 tools: LLAMA_CPP_BIN, default /work/cache/llama.cpp-0.3.36/bin)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from checkout import use_checkout  # benchmarks/ is sys.path[0] when a benchmark runs

use_checkout()

from llama_probe import BIN_DIR, MIB, fit_params, run_server  # noqa: E402

from ansible_collections.edgeslm.pi5.plugins.module_utils._compute import compute_sizes  # noqa: E402
from ansible_collections.edgeslm.pi5.plugins.module_utils._gguf import read_gguf  # noqa: E402
from ansible_collections.edgeslm.pi5.plugins.module_utils._memory import (  # noqa: E402
    CPU_PROFILES,
    MemoryEstimate,
    compute_shape,
    describe_gguf,
    estimate_from_description,
    parse_description,
)
from ansible_collections.edgeslm.pi5.plugins.module_utils._serving import (  # noqa: E402
    ServingConfig,
    llama_server_args,
)

CPU = CPU_PROFILES["x86-64-avx2"]
GOAL = 10.0  # percent, every part and the total


@dataclass(frozen=True)
class Config:
    name: str
    preset: str
    weight_type: str  # GGML type written directly, or a llama-quantize type after "quantize:"
    serving: ServingConfig
    note: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    full_context: bool = True  # also run a prompt that fills the context (slow on big models)

    @property
    def file_name(self) -> str:
        return f"{self.preset}-{self.weight_type.replace(':', '-')}.gguf"


def S(**kwargs: Any) -> ServingConfig:  # a short constructor for the table below
    return ServingConfig(**kwargs)


CONFIGS: list[Config] = [
    Config("tinyllama-q8", "tinyllama-1.1b", "Q8_0", S(context_per_slot=2048, flash_attention=True), "baseline"),
    Config(
        "tinyllama-q40-2slots",
        "tinyllama-1.1b",
        "Q4_0",
        S(context_per_slot=2048, parallel=2),
        "per-slot streams, scores without FA, Q4_0 repacked",
    ),
    Config(
        "qwen25-q8-ub1024",
        "qwen2.5-0.5b",
        "Q8_0",
        S(context_per_slot=4096, batch=2048, ubatch=1024, flash_attention=True),
        "micro-batch 1024, 152k BPE",
    ),
    Config(
        "qwen25-q4km-q8cache",
        "qwen2.5-0.5b",
        "quantize:Q4_K_M",
        S(context_per_slot=8192, flash_attention=True, cache_type_k="q8_0", cache_type_v="q8_0"),
        "llama-quantize Q4_K_M mix, q8_0 cache",
    ),
    Config(
        "llama32-unified-2",
        "llama3.2-1b",
        "Q8_0",
        S(context_per_slot=4096, parallel=2, kv_unified=True, flash_attention=True),
        "unified KV, 128k BPE + 280k merges",
    ),
    Config(
        "gemma2-q40-swa", "gemma2-2b", "Q4_0", S(context_per_slot=2048, flash_attention=True), "SWA, tied, repacked"
    ),
    Config(
        "gemma2-2slots-nofa",
        "gemma2-2b",
        "Q8_0",
        S(context_per_slot=4096, parallel=2),
        "SWA per stream, soft-capped scores",
    ),
    Config(
        "qwen3-16k-q8cache",
        "qwen3-0.6b",
        "Q8_0",
        S(context_per_slot=16384, flash_attention=True, cache_type_k="q8_0", cache_type_v="q8_0"),
        "wide queries, Hadamard-rotated q8_0 cache",
    ),
    Config(
        "qwen3-q4k-ub2048",
        "qwen3-0.6b",
        "Q4_K",
        S(context_per_slot=4096, parallel=2, batch=2048, ubatch=2048),
        "micro-batch 2048, 2 streams, Q4_K repacked",
    ),
    Config(
        "phi3-2slots-nofa",
        "phi3-mini",
        "Q5_K",
        S(context_per_slot=2048, parallel=2),
        "fused QKV, no GQA",
    ),
    Config(
        "phi3-q40k-ub1024",
        "phi3-mini",
        "Q5_K",
        S(context_per_slot=2048, batch=1024, ubatch=1024, flash_attention=True, cache_type_k="q4_0"),
        "q4_0 K over head 96 (no rotation)",
    ),
    Config(
        "smollm2-ub2048",
        "smollm2-360m",
        "Q8_0",
        S(context_per_slot=8192, batch=2048, ubatch=2048),
        "micro-batch 2048, scores",
    ),
    Config(
        "smollm2-4slots-ub256",
        "smollm2-360m",
        "Q8_0",
        S(context_per_slot=2048, parallel=4, batch=256, ubatch=256, flash_attention=True),
        "4 streams, micro-batch 256",
    ),
    Config(
        "gemma3-2slots",
        "gemma3-1b",
        "Q8_0",
        S(context_per_slot=4096, parallel=2, flash_attention=True),
        "SWA 512 per stream, 262k SPM",
    ),
    Config(
        "gemma3-nommap-nofa",
        "gemma3-1b",
        "Q8_0",
        S(context_per_slot=8192, batch=1024, ubatch=1024, mmap=False),
        "--load-mode none, micro-batch 1024",
    ),
    Config(
        "llama-ffn8x-q6k",
        "llama-ffn8x",
        "Q6_K",
        S(context_per_slot=4096, batch=1024, ubatch=1024, flash_attention=True),
        "8x FFN, Q6_K (tiled scratch)",
    ),
    Config(
        "qwen-nogqa-q8k",
        "qwen2-nogqa",
        "Q8_0",
        S(context_per_slot=4096, cache_type_k="q8_0"),
        "no GQA, q8_0 K without FA",
    ),
    Config(
        "moe-2slots", "qwen3moe-mini", "Q8_0", S(context_per_slot=4096, parallel=2, flash_attention=True), "MoE 16x4"
    ),
    Config("moe-q40-nofa", "qwen3moe-mini", "Q4_0", S(context_per_slot=2048), "MoE experts repacked (3-D)"),
]


def write_file(work: Path, config: Config) -> Path:
    from gguf import GGMLQuantizationType

    from ansible_collections.edgeslm.pi5.tests.unit.gguf_factory import PRESETS, write_model

    path = work / config.file_name
    if path.exists():
        return path
    spec = replace(PRESETS[config.preset], **config.overrides)
    if config.weight_type.startswith("quantize:"):
        source = work / f"{config.preset}-F16.gguf"
        if not source.exists():
            write_model(
                source,
                replace(spec, weight_type=GGMLQuantizationType.F16, file_type=None, type_overrides={}),
                sparse=True,
            )
        target = config.weight_type.split(":", 1)[1]
        subprocess.run(
            [str(BIN_DIR / "llama-quantize"), str(source), str(path), target, "2"],
            check=True,
            capture_output=True,
            timeout=3600,
        )
        return path
    qtype = GGMLQuantizationType[config.weight_type]
    spec = replace(spec, weight_type=qtype, file_type=None, type_overrides={})
    write_model(path, spec, sparse=True)
    return path


def measure(path: Path, config: Config, with_fit: bool) -> dict[str, Any]:
    serving = config.serving
    args = llama_server_args(serving, model_path=str(path), alias=config.name, host="127.0.0.1", port=0, metrics=False)
    info = read_gguf(path)
    desc = describe_gguf(info)
    # one prompt that fills one micro-batch; without flash attention also one that fills the
    # slot's context (the scores and the work buffer reach their reserved size only when every
    # cell is attended; with flash attention they do not grow with the cells)
    prompts = [min(serving.ubatch, serving.batch, serving.context_per_slot - 64)]
    if not serving.flash_attention and config.full_context:
        # llama-server caps a slot at the trained context (tools/server/server-context.cpp)
        prompts.append(min(serving.context_per_slot, int(desc.get("context_length") or 1 << 30)) - 16)
    probe = run_server(str(path), args, prompts=tuple(prompts), vocab=int(desc["vocab_size"]))
    buffers = probe.buffers
    plain = buffers["loaded"]
    if serving.mmap and buffers["repacked"]:
        # what llama.cpp keeps unrepacked, as it reports it when it does not map the file
        plain = run_server(str(path), [*args, "--load-mode", "none"]).buffers["loaded"]
    elif serving.mmap:
        plain = buffers["mapped"]
    idle = probe.idle
    assert idle is not None
    buffers_total = plain + buffers["repacked"] + buffers["kv_cache"] + buffers["compute"] + buffers["output"]
    # the process beyond llama.cpp's buffers after load, and what it adds by the peak (the CPU
    # work buffer, the slots' sampler state); context checkpoints, from the server's own log
    idle_rest = idle.rss - idle.model_file_rss - buffers["kv_cache"] - buffers["repacked"] - buffers["loaded"]
    last = probe.peaks[-1]
    peak_needed = last.hwm - min(last.model_file_rss, buffers["repacked"])
    checkpoints = checkpoint_bytes(probe.log)
    process = max(idle_rest, peak_needed - buffers_total - checkpoints)
    est = estimate_from_description(desc, serving, cpu=CPU)
    fit = None
    if with_fit and not serving.kv_unified:
        fit_args = ["-c", str(serving.total_context), "-np", str(serving.parallel), "-b", str(serving.batch)]
        fit_args += ["-ub", str(serving.ubatch), "-ctk", serving.cache_type_k, "-ctv", serving.cache_type_v]
        fit_args += ["-fa", "on" if serving.flash_attention else "off"]
        fit = fit_params(str(path), fit_args)
    return {
        "config": config,
        "desc": desc,
        "buffers": buffers,
        "plain": plain,
        "process": process,
        "idle_rest": idle_rest,
        "checkpoints": checkpoints,
        "peak_ubatch": probe.peaks[0].hwm,
        "peak": last.hwm,
        "peak_file": last.model_file_rss,
        "peak_needed": peak_needed,
        "estimate": est,
        "fit": fit,
    }


def checkpoint_bytes(log: str) -> float:
    """The most context-checkpoint bytes alive at once, from llama-server's "created/erasing ... checkpoint" lines."""
    alive = largest = 0.0
    for line in log.splitlines():
        match = re.search(r"(created|eras\w+|supersed\w+) .*context checkpoint.*size = ([0-9.]+) MiB", line)
        if match:
            size = float(match.group(2)) * MIB
            alive += size if match.group(1) == "created" else -size
            largest = max(largest, alive)
    return largest


def _pct(ours: float, theirs: float) -> float:
    return (ours - theirs) / theirs * 100 if theirs else 0.0


def _cell(ours: float, theirs: float, worst: list[float], rounding: float = 0.0) -> str:
    """ours / theirs (diff); `rounding`: llama.cpp prints buffers to 0.01 MiB, so closer counts as equal."""
    if not theirs and not ours:
        return "0 / 0"
    diff = 0.0 if abs(ours - theirs) <= rounding else _pct(ours, theirs)
    worst.append(abs(diff) if theirs else 0.0)
    return f"{ours / MIB:.1f} / {theirs / MIB:.1f} ({diff:+.1f}%)"


def llama_total(r: dict[str, Any]) -> float:
    b = r["buffers"]
    total: float = r["plain"] + b["repacked"] + b["kv_cache"] + b["compute"] + b["output"] + r["process"]
    return total


def table(results: list[dict[str, Any]]) -> tuple[str, dict[str, float]]:
    lines = [
        "| configuration | weights plain | repacked | KV cache | compute | output | process at idle "
        "| by the peak: slots + work (ours, planned) / measured | checkpoints: ours (bound) / largest alive "
        "| total | peak RSS: micro-batch / full context → needed "
        "| llama-fit-params: model / context / compute (ours at its settings) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    worst: dict[str, list[float]] = {k: [] for k in ("plain", "repacked", "kv", "compute", "output", "idle", "total")}
    below = 0
    for r in results:
        c: Config = r["config"]
        b, e = r["buffers"], r["estimate"]
        assert isinstance(e, MemoryEstimate)
        total = llama_total(r)
        measured_ckpt = r.get("checkpoints", 0.0)
        peak = r["peak_needed"]  # peak RSS less the repacked tensors' file pages (read once, reclaimable)
        # the prompt cache and the checkpoints grow over many requests: llama.cpp's report does not
        # show them, so the total compares without them (and the checkpoints have their own column)
        ours = e.total - e.checkpoints - e.prompt_cache
        if ours < total or e.total < peak:
            below += 1
        peak_cell = (
            f"{r['peak_ubatch'] / MIB:.0f} / {r['peak'] / MIB:.0f} → {peak / MIB:.0f} ({_pct(e.total, peak):+.1f}%)"
            if r["peak"]
            else "n/a"
        )
        growth = max(r["process"] - r["idle_rest"], 0.0)
        rnd = 0.005 * MIB
        lines.append(
            f"| {c.name}: {c.note} | {_cell(e.mapped + e.loaded, r['plain'], worst['plain'], rnd)} "
            f"| {_cell(e.repacked, b['repacked'], worst['repacked'], rnd)} "
            f"| {_cell(e.kv_cache, b['kv_cache'], worst['kv'], rnd)} "
            f"| {_cell(e.compute, b['compute'], worst['compute'], rnd)} "
            f"| {_cell(e.output, b['output'], worst['output'], rnd)} "
            f"| {_cell(e.base + e.tokenizer, r['idle_rest'], worst['idle'])} "
            f"| {(e.slots + e.work) / MIB:.1f} / {growth / MIB:.1f} "
            f"| {e.checkpoints / MIB:.0f} / {measured_ckpt / MIB:.0f} "
            f"| {_cell(ours, total, worst['total'])} | {peak_cell} | {fit_cell(r)} |"
        )
    summary = {k: max(v, default=0.0) for k, v in worst.items()}
    summary["below"] = below
    return "\n".join(lines), summary


def fit_cell(r: dict[str, Any]) -> str:
    """llama-fit-params' figures (whole MiB) next to ours under its own settings.

    It plans with the defaults of llama.cpp's tools other than the server: logits for every
    token of the micro-batch (n_outputs_max = n_batch); and its model figure is the weights it
    places in a device buffer, so repacked weights are not in it.
    """
    fit = r["fit"]
    if not fit:
        return "n/a"
    e = r["estimate"]
    ours_compute = compute_sizes(compute_shape(parse_description(r["desc"]), r["config"].serving, cpu=CPU))[0]
    return (
        f"{fit['model'] / MIB:.0f} / {fit['context'] / MIB:.0f} / {fit['compute'] / MIB:.0f} "
        f"({(e.mapped + e.loaded) / MIB:.0f} / {e.kv_cache / MIB:.0f} / {ours_compute / MIB:.0f})"
    )


def raw_of(r: dict[str, Any]) -> dict[str, Any]:
    keys = ["buffers", "plain", "process", "idle_rest", "checkpoints", "peak_needed", "peak_ubatch", "peak"]
    keys += ["peak_file", "fit"]
    return {"name": r["config"].name, **{k: r[k] for k in keys}, "estimate": r["estimate"].as_dict()}


def rebuild(raw_file: Path, work: Path) -> list[dict[str, Any]]:
    """Results of an earlier --json run, with the estimate of this checkout (model files in `work`)."""
    by_name = {c.name: c for c in CONFIGS}
    results = []
    for raw in json.loads(raw_file.read_text(encoding="utf-8")):
        config = by_name[raw["name"]]
        desc = describe_gguf(read_gguf(work / config.file_name))
        result = dict(raw, config=config, desc=desc)
        result["estimate"] = estimate_from_description(desc, config.serving, cpu=CPU)
        results.append(result)
    return results


def print_table(results: list[dict[str, Any]]) -> None:
    text, summary = table(results)
    print(text)
    print(
        "\nworst difference per part (%): "
        + ", ".join(f"{k} {v:.1f}" for k, v in summary.items() if k != "below")
        + f"; totals below llama.cpp's or the peak RSS: {int(summary['below'])} (goal: every part within "
        f"{GOAL:.0f}%, none below)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", help="keep the model files here (sparse; quantized ones are real)")
    parser.add_argument("--only", nargs="*", help="configuration names")
    parser.add_argument("--json", help="write the raw figures here")
    parser.add_argument("--no-fit", action="store_true", help="skip llama-fit-params")
    parser.add_argument("--table-from", help="print the table of an earlier --json run, estimated with this checkout")
    args = parser.parse_args()
    if args.table_from:
        print_table(rebuild(Path(args.table_from), Path(args.dir or ".")))
        return
    with tempfile.TemporaryDirectory(prefix="acc-bench-", dir=os.environ.get("BENCH_DIR")) as tmp:
        work = Path(args.dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = []
        for config in CONFIGS:
            if args.only and config.name not in args.only:
                continue
            path = write_file(work, config)
            result = measure(path, config, not args.no_fit)
            results.append(result)
            e = result["estimate"]
            print(
                f"done: {config.name}: ours {e.total / MIB:.1f} MiB, llama.cpp {llama_total(result) / MIB:.1f} MiB, "
                f"peak RSS {result['peak'] / MIB:.1f} MiB",
                file=sys.stderr,
                flush=True,
            )
            if args.json:  # after each configuration, so an interrupted run keeps what it measured
                Path(args.json).write_text(json.dumps([raw_of(x) for x in results], indent=1) + "\n", encoding="utf-8")
        print_table(results)


if __name__ == "__main__":
    main()
