# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Mutation fuzz of the GGUF reader: no crash, no hang, no traceback but the core's own errors.

Seeds are valid GGUF files: three real architecture layouts written with the `gguf` package's
writer by tests/unit/gguf_factory.py (llama SPM tokenizer with scores and token types, qwen2
BPE with merges, gemma2 with sliding window and K-quants) and byte-built ones from
tests/unit/gguf_bytes.py (custom alignment, per-layer arrays). Each case mutates one seed:

* bitflip   - 1-8 random bits, mostly in the header/metadata/tensor-info region;
* byte      - 1-4 bytes set to 0x00, 0x01, 0x7f, 0x80 or 0xff;
* field     - one length, count, type, dimension or offset field (found by walking the seed's
              structure) set to a boundary value: 0, 1, max, 2^31, 2^32, 2^63, the file size,
              the bytes left, the old value +-1 ...;
* truncate  - cut at a structural boundary or at a random byte;
* splice    - the head of one seed up to a boundary, the tail of another from a boundary;
* duplicate / delete - a whole key/value or tensor-info record, with or without fixing the count;
* insert    - random bytes at a boundary;
* stack     - two or three of the above.

Each case runs the collection's parser (`read_gguf_stream`) and, when the file is accepted,
what `model_verify` does next (`as_dict`, `description`, the memory estimate and the fit
check). A finding is any exception that is not a `GGUFError` from the parser or a
`ValueError` from the later stages (the module turns those into `fail_json`), a case that
uses more than --cpu-limit seconds of CPU (ITIMER_PROF: a hard bound, independent of other
load on the machine), or a MemoryError under the process's RLIMIT_AS. Per case the CPU time,
wall time and tracemalloc peak are recorded. Reproducers are written to --findings.

Not part of `make test`; run it niced, the machine is shared:
    nice -n 10 .venv/bin/python benchmarks/gguf_fuzz.py --cases 10000 --seed 1
    .venv/bin/python benchmarks/gguf_fuzz.py --write-seeds /tmp/seeds     # then, on any Python 3.11+:
    nice -n 10 python3.13 benchmarks/gguf_fuzz.py --seeds-dir /tmp/seeds --cases 2000
The last line is `gguf fuzz: N cases, F findings`.
"""

from __future__ import annotations

import argparse
import io
import random
import resource
import signal
import sys
import tempfile
import time
import traceback
import tracemalloc
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from checkout import use_checkout  # benchmarks/ is sys.path[0] when a benchmark runs

use_checkout()
from ansible_collections.edgeslm.pi5.plugins.module_utils._gguf import (  # noqa: E402
    GGUFError,
    describe_start,
    read_gguf_stream,
)
from ansible_collections.edgeslm.pi5.plugins.module_utils._memory import estimate_from_description  # noqa: E402
from ansible_collections.edgeslm.pi5.plugins.module_utils._targets import check_fit  # noqa: E402
from ansible_collections.edgeslm.pi5.tests.unit import gguf_bytes as gb  # noqa: E402

MIB = 1 << 20


class CaseTimeout(BaseException):
    """Raised from the SIGPROF handler: a case used more CPU than allowed (not an Exception)."""


def _on_sigprof(_signum: int, _frame: FrameType | None) -> None:
    raise CaseTimeout


# --- seeds ----------------------------------------------------------------------------------


def byte_seeds() -> dict[str, bytes]:
    """Seeds built from raw bytes: custom alignment and per-layer arrays (stdlib only)."""
    layers = [
        *(kv for kv in gb.LLAMA_KVS if b"block_count" not in kv and b"head_count_kv" not in kv),
        gb.kv_u32("llama.block_count", 3),
        gb.kv_u32s("llama.attention.head_count_kv", [1, 2, 2]),
        gb.kv_u32("general.alignment", 64),
        gb.kv_str("tokenizer.chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}"),
    ]
    tensors = [(f"blk.{i}.attn_norm.weight", (64,), 0, 256 * i) for i in range(3)]
    tensors.append(("output_norm.weight", (64,), 0, 768))
    return {"bytes-default": gb.build(), "bytes-align64-layers": gb.build(layers, tensors, alignment=64)}


def factory_seeds() -> dict[str, bytes]:
    """Real layouts written by the gguf package (needs gguf + numpy: the project .venv)."""
    from ansible_collections.edgeslm.pi5.tests.unit.gguf_factory import PRESETS, write_model

    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("llama-tiny", "qwen2-tiny", "gemma2-tiny"):
            path = write_model(Path(tmp) / f"{name}.gguf", PRESETS[name], sparse=True)
            out[name] = path.read_bytes()
    return out


def load_seeds(seeds_dir: str | None, extra: list[str]) -> dict[str, bytes]:
    if seeds_dir:
        found = {p.stem: p.read_bytes() for p in sorted(Path(seeds_dir).glob("*.gguf"))}
        if not found:
            raise SystemExit(f"no *.gguf seeds in {seeds_dir}")
    else:
        found = {**factory_seeds(), **byte_seeds()}
    for name in extra:  # e.g. llama.cpp's own models/ggml-vocab-*.gguf, written by its converter
        found[Path(name).stem] = Path(name).read_bytes()
    return found


@dataclass
class Seed:
    """A valid file and where its fields, boundaries and whole records lie (walked once)."""

    name: str
    data: bytes
    layout: gb.Layout
    boundaries: list[int]
    fields: list[gb.Field]  # the fields worth overwriting: lengths, counts, types, dims, offsets
    records: list[tuple[int, int, str]]  # (start, end, "kv" | "tensor") byte spans of whole records

    @classmethod
    def of(cls, name: str, data: bytes) -> Seed:
        lay = gb.layout(data)
        starts = [
            (f.offset, "kv" if f.label.startswith("length of key") else "tensor")
            for f in lay.fields
            if f.label.startswith(("length of key #", "length of name of tensor #"))
        ]
        end_of_infos = max((f.offset + f.size for f in lay.fields if f.kind != "padding"), default=24)
        records = [
            (start, starts[i + 1][0] if i + 1 < len(starts) else end_of_infos, kind)
            for i, (start, kind) in enumerate(starts)
        ]
        fields = [f for f in lay.fields if f.kind not in ("bytes", "elements", "padding", "magic")]
        return cls(name, data, lay, lay.boundaries(), fields, records)


# --- mutators: (rng, data, seed, all seeds) -> data ------------------------------------------
# `data` is the seed's bytes or, in a stack, an earlier mutation of them: positions come from
# the seed's walk and are clamped to the data (a stacked mutation need not stay well-formed).

INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF)
KV_COUNT_AT, TENSOR_COUNT_AT = 16, 8
Mutator = Callable[[random.Random, bytes, Seed, list[Seed]], bytes]


def _field_value(rng: random.Random, f: gb.Field, data: bytes) -> int:
    bits = f.size * 8
    top = (1 << bits) - 1
    old = int.from_bytes(data[f.offset : f.offset + f.size], "little")
    left = len(data) - f.offset - f.size
    choices = [0, 1, 2, 3, 4, 5, 8, 9, 12, 13, 31, 32, 33, 64, 255, 256, 1024, 1025, 65535, 65536]
    choices += [top, top - 1, 1 << (bits - 1), (1 << (bits - 1)) - 1, len(data), left, left + 1, left - 1]
    choices += [old + 1, old - 1, old * 2, old + 8, old - 8, old + 32, old ^ (1 << rng.randrange(bits))]
    if bits == 64:
        choices += [1 << 32, (1 << 32) - 1, 1 << 40, 1 << 50, 1 << 62, (1 << 63) + 1]
    if f.kind in ("type", "ggml_type"):
        choices += [*range(42), 0x7FFFFFFF]
    if f.kind == "ndims":
        choices += [0, 1, 2, 3, 4, 5, 8, 9, 64]
    return rng.choice(choices) & top


def m_bitflip(rng: random.Random, data: bytes, seed: Seed, _seeds: list[Seed]) -> bytes:
    out = bytearray(data)
    limit = min(seed.layout.data_offset, len(out)) if rng.random() < 0.9 else len(out)
    for _bit in range(rng.randint(1, 8) if limit else 0):
        out[rng.randrange(limit)] ^= 1 << rng.randrange(8)
    return bytes(out)


def m_byte(rng: random.Random, data: bytes, seed: Seed, _seeds: list[Seed]) -> bytes:
    out = bytearray(data)
    limit = min(seed.layout.data_offset, len(out))
    for _byte in range(rng.randint(1, 4) if limit else 0):
        out[rng.randrange(limit)] = rng.choice(INTERESTING_BYTES)
    return bytes(out)


def m_field(rng: random.Random, data: bytes, seed: Seed, seeds: list[Seed]) -> bytes:
    f = rng.choice(seed.fields)
    if f.offset + f.size > len(data):
        return m_bitflip(rng, data, seed, seeds)
    value = _field_value(rng, f, data)
    return data[: f.offset] + value.to_bytes(f.size, "little") + data[f.offset + f.size :]


def m_truncate(rng: random.Random, data: bytes, seed: Seed, _seeds: list[Seed]) -> bytes:
    if rng.random() < 0.7:
        return data[: rng.choice(seed.boundaries)]
    return data[: rng.randrange(len(data) + 1)]


def m_splice(rng: random.Random, data: bytes, seed: Seed, seeds: list[Seed]) -> bytes:
    other = rng.choice(seeds)
    return data[: rng.choice(seed.boundaries)] + other.data[rng.choice(other.boundaries) :]


def _bump(data: bytes, at: int, delta: int) -> bytes:
    if len(data) < at + 8:
        return data
    value = (int.from_bytes(data[at : at + 8], "little") + delta) % (1 << 64)
    return data[:at] + value.to_bytes(8, "little") + data[at + 8 :]


def m_duplicate(rng: random.Random, data: bytes, seed: Seed, _seeds: list[Seed]) -> bytes:
    if not seed.records:
        return data
    start, end, kind = rng.choice(seed.records)
    out = data[:end] + data[start:end] + data[end:]
    return _bump(out, KV_COUNT_AT if kind == "kv" else TENSOR_COUNT_AT, 1) if rng.random() < 0.5 else out


def m_delete(rng: random.Random, data: bytes, seed: Seed, _seeds: list[Seed]) -> bytes:
    if not seed.records:
        return data
    start, end, kind = rng.choice(seed.records)
    out = data[:start] + data[end:]
    return _bump(out, KV_COUNT_AT if kind == "kv" else TENSOR_COUNT_AT, -1) if rng.random() < 0.5 else out


def m_insert(rng: random.Random, data: bytes, seed: Seed, _seeds: list[Seed]) -> bytes:
    at = min(rng.choice(seed.boundaries), len(data))
    return data[:at] + rng.randbytes(rng.randint(1, 64)) + data[at:]


MUTATORS: dict[str, Mutator] = {
    "bitflip": m_bitflip,
    "byte": m_byte,
    "field": m_field,
    "truncate": m_truncate,
    "splice": m_splice,
    "duplicate": m_duplicate,
    "delete": m_delete,
    "insert": m_insert,
}
WEIGHTS = {"bitflip": 3, "byte": 2, "field": 6, "truncate": 2, "splice": 1, "duplicate": 1, "delete": 1, "insert": 1}


def _pick(rng: random.Random) -> str:
    return rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]


def mutate(rng: random.Random, seeds: list[Seed]) -> tuple[str, str, bytes]:
    """(seed name, mutation, bytes): one mutation, or a stack of two or three (15 %)."""
    seed = rng.choice(seeds)
    names = [_pick(rng) for _step in range(rng.randint(2, 3) if rng.random() < 0.15 else 1)]
    data = seed.data
    for name in names:
        data = MUTATORS[name](rng, data, seed, seeds)
    return seed.name, ("stack:" if len(names) > 1 else "") + "+".join(names), data


# --- one case -------------------------------------------------------------------------------


@dataclass
class Outcome:
    verdict: str  # accepted | refused:<Error> | refused:<stage>:<Error> | finding
    cpu: float  # the whole case
    wall: float
    peak: int
    parse_cpu: float  # detecting and parsing only: the reader's own share
    parse_peak: int
    finding: str = ""


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "edgeslm" in f.filename or "/plugins/" in f.filename] or frames
    last = ours[-1] if ours else None
    return f"{Path(last.filename).name}:{last.lineno} {last.name}" if last else "?"


def run_case(data: bytes, cpu_limit: float) -> Outcome:
    tracemalloc.reset_peak()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    stage = "detect"
    signal.setitimer(signal.ITIMER_PROF, cpu_limit)
    try:
        describe_start(data[:64], len(data))  # what the module says about a file that is not GGUF
        stage = "parse"
        info = read_gguf_stream(io.BytesIO(data), len(data))
        parse_cpu, parse_peak = time.process_time() - cpu0, tracemalloc.get_traced_memory()[1]
        stage = "describe"
        info.as_dict()
        desc = info.description()
        stage = "estimate"
        estimate_from_description(desc, context_length=512)
        check_fit(desc, "pi5-8gb", context_length=512)
        verdict, finding = "accepted", ""
    except GGUFError as exc:
        verdict, finding = f"refused:{type(exc).__name__}", ""
    except ValueError as exc:
        if stage == "parse":
            verdict, finding = "finding", f"parse raised {type(exc).__name__} (not a GGUFError) at {_where(exc)}"
        else:
            verdict, finding = f"refused:{stage}:{type(exc).__name__}", ""
    except CaseTimeout:
        verdict, finding = "finding", f"{stage} used more than {cpu_limit} s of CPU"
    except Exception as exc:  # recording every other exception is the point
        verdict, finding = "finding", f"{stage} raised {type(exc).__name__}: {str(exc)[:80]} at {_where(exc)}"
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
    cpu, wall, peak = time.process_time() - cpu0, time.perf_counter() - wall0, tracemalloc.get_traced_memory()[1]
    if stage in ("detect", "parse"):
        parse_cpu, parse_peak = cpu, peak
    return Outcome(verdict, cpu, wall, peak, parse_cpu, parse_peak, finding)


@dataclass
class Totals:
    cases: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    mutators: Counter[str] = field(default_factory=Counter)
    findings: dict[str, tuple[int, str, str, bytes]] = field(default_factory=dict)  # key -> count, seed, how
    max_cpu: float = 0.0
    max_parse_cpu: float = 0.0
    max_parse_peak: int = 0
    max_wall: float = 0.0
    max_peak: int = 0
    worst_cpu_case: str = ""


def _limit_address_space(extra: int) -> None:
    """RLIMIT_AS = what the process maps now + `extra`: a runaway allocation is a MemoryError."""
    status = Path("/proc/self/status").read_text()
    vm = next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + extra, resource.getrlimit(resource.RLIMIT_AS)[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1, help="random seed: the same seed replays the same cases")
    parser.add_argument("--cpu-limit", type=float, default=1.0, help="CPU seconds per case (hard bound)")
    parser.add_argument("--seeds-dir", help="read seed *.gguf files from here instead of generating them")
    parser.add_argument("--extra-seed", action="append", default=[], help="another valid GGUF file to mutate")
    parser.add_argument("--write-seeds", help="write the generated seeds to this directory and exit")
    parser.add_argument("--findings", help="directory for reproducers (default: a new temporary directory)")
    parser.add_argument(
        "--verdicts",
        help="write `index seed mutation verdict` per case here: the cases depend only on --seed "
        "and the seeds, so two cores can be compared case by case",
    )
    args = parser.parse_args()

    raw = load_seeds(args.seeds_dir, args.extra_seed)
    if args.write_seeds:
        out = Path(args.write_seeds)
        out.mkdir(parents=True, exist_ok=True)
        for name, data in raw.items():
            (out / f"{name}.gguf").write_bytes(data)
        print(f"wrote {len(raw)} seeds to {out}")
        return 0
    seeds = [Seed.of(name, data) for name, data in raw.items()]
    for seed in seeds:  # every seed must be valid, or the fuzz measures nothing
        read_gguf_stream(io.BytesIO(seed.data), len(seed.data)).description()

    rng = random.Random(args.seed)
    signal.signal(signal.SIGPROF, _on_sigprof)
    _limit_address_space(512 * MIB)
    tracemalloc.start()
    totals = Totals()
    started = time.perf_counter()
    verdicts = Path(args.verdicts).open("w") if args.verdicts else None  # noqa: SIM115 - closed below
    for index in range(args.cases):
        seed_name, how, data = mutate(rng, seeds)
        outcome = run_case(data, args.cpu_limit)
        if verdicts:
            verdicts.write(f"{index} {seed_name} {how} {outcome.verdict}\n")
        totals.cases += 1
        totals.verdicts[outcome.verdict] += 1
        totals.mutators["stack" if how.startswith("stack:") else how] += 1
        if outcome.cpu > totals.max_cpu:
            totals.max_cpu, totals.worst_cpu_case = outcome.cpu, f"#{index} {seed_name} {how} ({len(data)} bytes)"
        totals.max_wall = max(totals.max_wall, outcome.wall)
        totals.max_parse_cpu = max(totals.max_parse_cpu, outcome.parse_cpu)
        totals.max_parse_peak = max(totals.max_parse_peak, outcome.parse_peak)
        totals.max_peak = max(totals.max_peak, outcome.peak)
        if outcome.finding:
            count, first_seed, first_how, first_data = totals.findings.get(outcome.finding, (0, seed_name, how, data))
            totals.findings[outcome.finding] = (count + 1, first_seed, first_how, first_data)
    elapsed = time.perf_counter() - started
    tracemalloc.stop()
    if verdicts:
        verdicts.close()
    return report(args, raw, totals, elapsed)


def report(args: argparse.Namespace, raw: dict[str, bytes], totals: Totals, elapsed: float) -> int:
    print(
        f"python {sys.version.split()[0]}, seed {args.seed}, {len(raw)} seeds: "
        + ", ".join(f"{name} ({len(data)} B)" for name, data in raw.items())
    )
    print(f"cases: {totals.cases} in {elapsed:.1f} s ({elapsed / max(1, totals.cases) * 1000:.2f} ms per case)")
    print("mutators: " + ", ".join(f"{k} {v}" for k, v in sorted(totals.mutators.items())))
    print("verdicts:")
    for verdict, count in totals.verdicts.most_common():
        print(f"  {count:6d}  {verdict}")
    print(
        f"max per case: CPU {totals.max_cpu * 1000:.1f} ms ({totals.worst_cpu_case}), "
        f"wall {totals.max_wall * 1000:.1f} ms, tracemalloc peak {totals.max_peak / MIB:.2f} MiB "
        f"(bound: {args.cpu_limit} s CPU by ITIMER_PROF; RLIMIT_AS +512 MiB)"
    )
    print(
        f"max per case, detect + parse only: CPU {totals.max_parse_cpu * 1000:.1f} ms, "
        f"tracemalloc peak {totals.max_parse_peak / MIB:.2f} MiB"
    )
    if totals.findings:
        out = Path(args.findings or tempfile.mkdtemp(prefix="gguf-fuzz-findings-"))
        out.mkdir(parents=True, exist_ok=True)
        print(f"findings (reproducers in {out}):")
        for number, (finding, (count, seed_name, how, data)) in enumerate(sorted(totals.findings.items())):
            path = out / f"finding-{number:02d}.gguf"
            path.write_bytes(data)
            print(f"  {count:6d}  {finding}  [first: {seed_name} {how}, {path.name}]")
    print(f"gguf fuzz: {totals.cases} cases, {len(totals.findings)} findings")
    return 1 if totals.findings else 0


if __name__ == "__main__":
    sys.exit(main())
