# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Accuracy of the memory estimate against what llama.cpp itself allocates.

For each configuration (real architecture layouts written with the gguf package, sparse so
they cost no disk), a child process loads the model with llama-cpp-python (which builds
llama.cpp from source), with llama-server's defaults that matter here (n_batch = n_ubatch =
512, one slot, sliding-window cache not forced to full size), evaluates a short prompt and
reports its RSS. The parent reads llama.cpp's own log lines for the model, KV, compute and
output buffers and compares them, part by part, with `estimate_from_description`.

`llama.cpp total` = the buffers llama.cpp reports + the child's RSS before the model was
loaded (interpreter + libllama). It does not include the tokenizer tables (llama.cpp does
not report them), which our `overhead` counts, so ours is expected slightly above it.

usage: python benchmarks/accuracy_llamacpp.py [--dir DIR] [--prompt 64]
       (needs benchmarks/requirements.txt; prints a Markdown table)
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from checkout import use_checkout  # benchmarks/ is sys.path[0] when a benchmark runs

use_checkout()

from ansible_collections.edgeslm.pi5.plugins.module_utils._gguf import read_gguf  # noqa: E402
from ansible_collections.edgeslm.pi5.plugins.module_utils._memory import estimate_from_description  # noqa: E402

MIB = 1 << 20
KV_TYPE_IDS = {"f16": 1, "q8_0": 8, "q4_0": 2}


@dataclass(frozen=True)
class Config:
    preset: str
    weight_type: str | None  # override of the preset's 2-D weight type
    ctx: int
    flash_attention: bool
    kv_type: str = "f16"

    @property
    def file_name(self) -> str:
        return f"{self.preset}-{self.weight_type or 'default'}.gguf"


CONFIGS = [
    Config("tinyllama-1.1b", None, 2048, True),
    Config("tinyllama-1.1b", None, 8192, False),
    Config("tinyllama-1.1b", None, 8192, True, "q8_0"),
    Config("qwen2.5-0.5b", None, 2048, True),
    Config("qwen2.5-0.5b", "Q4_0", 8192, True),
    Config("llama3.2-1b", None, 4096, True),
    Config("gemma2-2b", None, 2048, True),
    Config("gemma2-2b", None, 8192, True),
]


def write_file(work: Path, config: Config) -> Path:
    from gguf import GGMLQuantizationType, LlamaFileType

    from ansible_collections.edgeslm.pi5.tests.unit.gguf_factory import PRESETS, write_model

    path = work / config.file_name
    if not path.exists():
        spec = PRESETS[config.preset]
        if config.weight_type:
            spec = replace(
                spec,
                weight_type=GGMLQuantizationType[config.weight_type],
                file_type=LlamaFileType[f"MOSTLY_{config.weight_type}"],
            )
        write_model(path, spec, sparse=True)
    return path


def _status() -> dict[str, int]:
    text = Path("/proc/self/status").read_text()
    keys = ("VmRSS", "VmHWM", "RssAnon", "RssFile")
    return {k: int(re.search(rf"{k}:\s+(\d+)", text).group(1)) * 1024 for k in keys}  # type: ignore[union-attr]


def probe(path: str, ctx: int, flash_attention: bool, kv_type: str, prompt: int) -> None:
    """Child: load with llama.cpp, evaluate a prompt, print RSS figures as JSON on stdout."""
    llama_cpp = importlib.import_module("llama_cpp")  # built by benchmarks/requirements.txt, not in .venv

    before = _status()
    model = llama_cpp.Llama(
        model_path=path,
        n_ctx=ctx,
        n_batch=512,
        n_ubatch=512,
        n_threads=2,
        flash_attn=flash_attention,
        type_k=KV_TYPE_IDS[kv_type],
        type_v=KV_TYPE_IDS[kv_type],
        swa_full=False,
        verbose=True,
    )
    model.eval(list(range(10, 10 + prompt)))
    after = _status()
    print(json.dumps({"before": before, "after": after}))


def _mib_lines(pattern: str, log: str) -> float:
    return sum(float(m) for m in re.findall(pattern + r"\s*=\s*([0-9.]+) MiB", log)) * MIB


def run_config(path: Path, config: Config, prompt: int) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--probe", str(path), str(config.ctx), str(int(config.flash_attention))]
    argv += [config.kv_type, str(prompt)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=True)
    log = proc.stderr
    rss = json.loads(proc.stdout.strip().splitlines()[-1])
    reported = {
        "model_mapped": _mib_lines(r"CPU_Mapped model buffer size", log),
        "model_repack": _mib_lines(r"CPU_REPACK model buffer size", log),
        "kv_cache": _mib_lines(r"CPU KV buffer size", log),
        "compute": _mib_lines(r"CPU compute buffer size", log),
        "output": _mib_lines(r"CPU\s+output buffer size", log),
    }
    est = estimate_from_description(
        read_gguf(path).description(),
        context_length=config.ctx,
        kv_cache_type=config.kv_type,
        flash_attention=config.flash_attention,
    )
    base = rss["before"]["VmRSS"]
    llama_total = reported["model_mapped"] + reported["kv_cache"] + reported["compute"] + reported["output"] + base
    return {"config": config, "reported": reported, "estimate": est, "rss": rss, "llama_total": llama_total}


def _pct(ours: float, theirs: float) -> str:
    return f"{(ours - theirs) / theirs * 100:+.1f}%" if theirs else "n/a"


def table(results: list[dict[str, Any]]) -> None:
    print(
        "| model | weights | ctx | FA | KV | weights ours / llama.cpp MiB | KV ours / llama.cpp | "
        "compute ours / llama.cpp | total ours / llama.cpp (diff) | RSS after prompt |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for r in results:
        c: Config = r["config"]
        rep, est = r["reported"], r["estimate"]
        desc_q = read_gguf(r["path"]).quantization
        repack = f" (+{rep['model_repack'] / MIB:.0f} repack)" if rep["model_repack"] else ""
        diff = (est.total - r["llama_total"]) / r["llama_total"] * 100
        worst = max(worst, abs(diff))
        print(
            f"| {c.preset} | {desc_q} | {c.ctx} | {'on' if c.flash_attention else 'off'} | {c.kv_type} | "
            f"{est.weights / MIB:.1f} / {rep['model_mapped'] / MIB:.1f}{repack} | "
            f"{est.kv_cache / MIB:.1f} / {rep['kv_cache'] / MIB:.1f} | "
            f"{est.compute / MIB:.1f} / {rep['compute'] / MIB:.1f} | "
            f"{est.total / MIB:.0f} / {r['llama_total'] / MIB:.0f} ({diff:+.1f}%) | "
            f"{r['rss']['after']['VmRSS'] / MIB:.0f} ({_pct(est.total, r['rss']['after']['VmRSS'])}) |"
        )
    print(f"\nworst total difference: {worst:.1f}% (goal: within 10%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", help="keep the sparse model files here")
    parser.add_argument("--prompt", type=int, default=64, help="prompt tokens evaluated before reading RSS")
    parser.add_argument("--probe", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        path, ctx, fa, kv_type, prompt = args.probe
        probe(path, int(ctx), fa == "1", kv_type, int(prompt))
        return
    with tempfile.TemporaryDirectory(prefix="acc-bench-", dir=os.environ.get("BENCH_DIR")) as tmp:
        work = Path(args.dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = []
        for config in CONFIGS:
            path = write_file(work, config)
            result = run_config(path, config, args.prompt)
            result["path"] = path
            results.append(result)
            print(f"done: {config}", file=sys.stderr)
        table(results)


if __name__ == "__main__":
    main()
