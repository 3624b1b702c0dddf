"""Many streams: the batched C step against onnxruntime and against the C step one stream at a time.

    python benchmarks/many_streams.py --update          # into BENCHMARKS.md › Many streams: batched C
    python benchmarks/many_streams.py --hidden 128 --variants LSTM0 --streams 1,64  # a taste

For each variant (default LSTM0, LSTM6, LSTM10, LSTM_C6) at hidden sizes 128 and 512 (13 inputs,
10 outputs, random weights: speed does not depend on their values), float and ``dynamic`` (int8
weights), one ``StreamBatch`` of k streams steps one frame per stream per call, on:

* ``c``: the C export as the runtime compiles it (``-O3 -march=native -ffast-math``): a batch
  runs in blocks of streams, each weight read once per block (``PREFIX_rows``);
* ``c/stream``: the same export compiled with ``-DSLIMEDGE_NO_BLOCKED``: the batch one stream at
  a time (the C step before the blocked one, and what a microcontroller runs);
* ``onnxruntime`` (one thread) on the ONNX export of the same checkpoint.

All configurations are loaded in this one process and timed interleaved in rounds (each round
every configuration and k in turn), so the load of a shared machine falls on all alike; a
configuration's figure is the median call time over its rounds, reported as stream-steps per
second (k / call time), and every comparison is a ratio of two figures of this run.

Before the rounds every configuration steps :data:`WARM_UP` times untimed (first calls fault in
the state's pages and fill the caches). The same run measures this core's float32 multiply-add
peak before and after the rounds (:data:`PEAK_C`: 12 independent chains of vector multiply-adds
as wide as the batched kernel's, compiled by the c backend's toolchain with its flags; the
largest of the measurements): each row's multiply-adds per second (stream-steps per second times
the model's multiply-adds per stream-step, ``ir.lower(checkpoint).macs_per_step(None)``) are
reported as a share of it, and so is what 2x onnxruntime would need.

Results: ``benchmarks/results/many_streams.json`` and BENCHMARKS.md's "## Many streams: batched C"
(with ``--update``).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import step_latency  # noqa: E402  (its exports: the same checkpoints as the step-latency sweep)
from slimedge import ir, profile, runtime, variants  # noqa: E402
from slimedge._report import (  # noqa: E402
    add_output_arguments,
    nothing_written,
    settle_outputs,
    update_markdown_section,
)
from slimedge.formats.c import toolchain  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "many_streams.json"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
SECTION = "## Many streams: batched C"
PER_STREAM = "c/stream"
PER_STREAM_FLAG = "-DSLIMEDGE_NO_BLOCKED"
# timed calls per configuration and round, by k (fewer where a call is long)
CALLS = {1: 200, 64: 12, 1024: 3}
WARM_UP = 8  # untimed calls of each configuration before the first round
PEAK_CHAINS = 12  # independent multiply-add chains: enough to hide the latency on current cores
# the peak: PEAK_CHAINS chains of multiply-adds of vectors as wide as slimedge_matmat_f32's
PEAK_C = f"""#include "slimedge_kernels.h"
#ifndef SLIMEDGE_MM_LANES
#define SLIMEDGE_MM_LANES 8
#endif
typedef float peak_t __attribute__((vector_size(4 * SLIMEDGE_MM_LANES)));
int peak_lanes(void) {{ return {PEAK_CHAINS} * SLIMEDGE_MM_LANES; }}
float peak(long rounds, float m, float a)
{{
    peak_t acc[{PEAK_CHAINS}];
    for (int k = 0; k < {PEAK_CHAINS}; k++) acc[k] = (peak_t){{0.0f}} + (float)k;
    for (long i = 0; i < rounds; i++)
        for (int k = 0; k < {PEAK_CHAINS}; k++) acc[k] = acc[k] * m + a;
    float s = 0.0f;
    for (int k = 0; k < {PEAK_CHAINS}; k++)
        for (int t = 0; t < SLIMEDGE_MM_LANES; t++) s += acc[k][t];
    return s;
}}
"""
PEAK_ROUNDS = 2_000_000  # per call: about 3 ms at 134 G multiply-adds per second
PEAK_TIMES = 5  # the peak measured before the rounds and again after them; the largest is kept


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load(path: str, backend: str):
    """The runtime's model of ``path`` on ``backend``; ``c/stream`` is the c backend with the
    export compiled per stream (its own cache entry: the flags are part of the key)."""
    if backend != PER_STREAM:
        return runtime.load(path, backend=backend, threads=1)
    flags = " ".join([*(toolchain.user_cflags() or toolchain.DEFAULT_CFLAGS), PER_STREAM_FLAG])
    old = os.environ.get(toolchain.ENV_CFLAGS)
    os.environ[toolchain.ENV_CFLAGS] = flags
    try:
        return runtime.load(path, backend="c")
    finally:
        if old is None:
            del os.environ[toolchain.ENV_CFLAGS]
        else:
            os.environ[toolchain.ENV_CFLAGS] = old


class Peak:
    """This core's float32 multiply-adds per second: :data:`PEAK_C` compiled by the c backend's
    toolchain (its compiler and flags), the best of three calls each time it is measured
    (:attr:`samples`, multiply-adds per second)."""

    def __init__(self, work: Path) -> None:
        import ctypes

        c = work / "peak.c"
        c.write_text(PEAK_C)
        lib = work / f"peak{toolchain.library_suffix()}"
        toolchain.compile_library(c, lib)
        self.lib = ctypes.CDLL(str(lib))
        self.lib.peak.argtypes = [ctypes.c_long, ctypes.c_float, ctypes.c_float]
        self.lib.peak.restype = ctypes.c_float
        self.lanes = self.lib.peak_lanes()
        self.samples: list[float] = []

    def measure(self) -> None:
        best = min(self._time() for _ in range(3))
        self.samples.append(self.lanes * PEAK_ROUNDS / best)

    def _time(self) -> float:
        t = time.perf_counter()
        self.lib.peak(PEAK_ROUNDS, 0.999999, 1e-7)
        return time.perf_counter() - t


def sweep(args) -> dict:
    from slimedge import data

    t0 = time.time()
    load_before = list(os.getloadavg())
    splits = data.load("fsdd")
    names = [variants.canonical_name(v) for v in args.variants.split(",")]
    hidden = [int(h) for h in args.hidden.split(",")]
    quantize = args.quantize.split(",")
    ks = [int(k) for k in args.streams.split(",")]
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="slimedge-streams-") as tmp:
        configs = step_latency.build(Path(tmp), hidden, names, quantize, ["onnxruntime", "c"],
                                     splits, 16, torch_onnx=False)
        peak = Peak(Path(tmp))
        macs = {}  # (variant, n) -> multiply-adds of one stream-step
        for c in configs:
            if (c.name, c.group) not in macs:
                macs[(c.name, c.group)] = ir.lower(c.source).macs_per_step(None)
        for c in configs:
            for backend in ([c.backend] if c.backend != "c" else ["c", PER_STREAM]):
                log(f"load {c.name} n{c.group} {backend} {c.quantize}")
                model = load(c.path, backend)
                for k in ks:
                    rows.append({"variant": c.name, "hidden": c.group, "backend": backend,
                                 "quantize": c.quantize, "k": k, "model": model,
                                 "batch": model.streams(k),
                                 "frames": rng.normal(size=(k, 13)).astype(np.float32),
                                 "times": []})
        log(f"warm-up: every configuration steps {WARM_UP} times, untimed")
        for row in rows:  # first calls: the state's pages, the caches, the stack
            for _ in range(WARM_UP):
                row["batch"].step(row["frames"])
        for _ in range(PEAK_TIMES):
            peak.measure()
        for r in range(args.rounds):
            log(f"round {r + 1}/{args.rounds}: {len(rows)} configurations")
            for row in rows:
                step, frames = row["batch"].step, row["frames"]
                step(frames)  # back into cache after the others ran
                for _ in range(max(1, CALLS.get(row["k"], 2) * args.calls // 100)):
                    t = time.perf_counter()
                    step(frames)
                    row["times"].append(time.perf_counter() - t)
        for _ in range(PEAK_TIMES):
            peak.measure()
    fma_peak = max(peak.samples)
    results = []
    for row in rows:
        p50 = statistics.median(row["times"])
        mac = macs[(row["variant"], row["hidden"])]
        results.append({k: row[k] for k in ("variant", "hidden", "backend", "quantize", "k")}
                       | {"calls": len(row["times"]), "p50_us": p50 * 1e6,
                          "stream_steps_per_s": row["k"] / p50, "macs_per_step": mac,
                          "gmacs": row["k"] / p50 * mac / 1e9,
                          "of_peak": row["k"] / p50 * mac / fma_peak})
    mach = profile.machine()
    mach["fma_peak_gmacs"] = fma_peak / 1e9
    mach["fma_peak_samples_gmacs"] = [v / 1e9 for v in peak.samples]
    mach["fma_peak_kernel"] = (f"{PEAK_CHAINS} chains of {peak.lanes // PEAK_CHAINS}-lane float32 "
                               "vector multiply-adds")
    mach["loadavg_before"] = load_before
    mach["c_compiler"] = toolchain.describe()
    return {"machine": mach,
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python benchmarks/many_streams.py " + " ".join(
                shlex.quote(a) for a in (args.argv or [])),
            "settings": {"variants": names, "hidden": hidden, "quantize": quantize, "streams": ks,
                         "rounds": args.rounds, "calls_per_round": {
                             k: max(1, CALLS.get(k, 2) * args.calls // 100) for k in ks},
                         "threads": 1, "input_size": 13, "output_size": 10,
                         "per_stream_flag": PER_STREAM_FLAG},
            "elapsed_s": time.time() - t0, "results": results}


def _index(rep: dict) -> dict:
    return {(r["variant"], r["hidden"], r["backend"], r["quantize"], r["k"]): r
            for r in rep["results"]}


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def _ratios(idx: dict, ks: list[int], key: tuple, other: str) -> str:
    """c's stream-steps per second over ``other``'s, for each k (in order)."""
    v, n, q = key
    out = [idx[(v, n, "c", q, k)]["stream_steps_per_s"] / idx[(v, n, other, q, k)]["stream_steps_per_s"]
           for k in ks if (v, n, "c", q, k) in idx and (v, n, other, q, k) in idx]
    return ", ".join(f"{r:.2f}×" for r in out)


def target_lines(rep: dict) -> list[str]:
    """The issue's targets, from this run: c at least onnxruntime at every (variant, n, k >= 64),
    and 2x it for LSTM6 and LSTM_C6 at n = 128, k = 1024 (float)."""
    idx = _index(rep)
    ratio = {key[:2] + key[3:]: idx[key]["stream_steps_per_s"]
             / idx[key[:2] + ("onnxruntime",) + key[3:]]["stream_steps_per_s"]
             for key in idx if key[2] == "c" and key[:2] + ("onnxruntime",) + key[3:] in idx}
    big = {k: r for k, r in ratio.items() if k[3] >= 64}
    below = sorted((k, r) for k, r in big.items() if r < 1.0)
    out = ["- `c` ≥ onnxruntime at every (variant, n, quantize, k ≥ 64): "
           + ("met" if not below else "not met at " + ", ".join(
               f"{v} n{n} {q} k={k} ({r:.2f}×)" for (v, n, q, k), r in below))
           + (f" (lowest {min(big.values()):.2f}×)." if big else ".")]
    peak = rep["machine"].get("fma_peak_gmacs")
    for v in ("LSTM6", "LSTM_C6"):
        r = ratio.get((v, 128, "none", 1024))
        if r is None:
            continue
        line = (f"- {v}, n = 128, k = 1,024, float: `c` {r:.2f}× onnxruntime (target ≥ 2×: "
                f"{'met' if r >= 2 else 'not met'}).")
        ort = idx.get((v, 128, "onnxruntime", "none", 1024), {})
        c = idx.get((v, 128, "c", "none", 1024), {})
        if peak and "gmacs" in ort and c:
            budget = ort["p50_us"] / 2  # µs per call at 2x onnxruntime
            macs_us = ort["macs_per_step"] * 1024 / (peak * 1e3)  # at the peak, in µs
            line += (f" 2× onnxruntime is {budget:.0f} µs per call, {2 * ort['gmacs']:.0f} GMAC/s "
                     f"({2 * ort['gmacs'] / peak:.0%} of this core's float32 multiply-add peak "
                     f"over the whole step); the {ort['macs_per_step']:,} multiply-adds per "
                     f"stream-step alone take {macs_us:.0f} µs at the peak, which "
                     + (f"leaves {budget - macs_us:.0f} µs" if budget > macs_us else "leaves nothing")
                     + f" for the rest (two tanh per unit, the state into and out of the block); "
                     f"`c` takes {c['p50_us']:.0f} µs ({c['gmacs']:.0f} GMAC/s, "
                     f"{c['gmacs'] / peak:.0%} of the peak).")
        out.append(line)
    return out


def markdown(rep: dict) -> str:
    idx = _index(rep)
    s = rep["settings"]
    m = rep["machine"]
    ks = s["streams"]
    big = ks[-1]
    peak = m.get("fma_peak_gmacs")
    lines = [SECTION, "",
             f"`{rep['command']}` — {rep['date']}; {m.get('cpu', '?')}, "
             f"{m.get('cores', '?')} cores shared with other work (load average "
             f"{' '.join(f'{v:.1f}' for v in m.get('loadavg_before', []))} before the run; "
             f"one thread used); {m.get('c_compiler', '')}. "
             f"Median of {s['rounds']} interleaved rounds; stream-steps per second (k / call time), "
             f"µs per call in brackets. `c` steps a batch in blocks of streams (each weight read "
             f"once per block); `c/stream` is the same export compiled with "
             f"`{s['per_stream_flag']}` (one stream at a time, as before). Ratios are of this run."
             + (f" This core's float32 multiply-add peak, measured in the same run "
                f"({m.get('fma_peak_kernel', '')}, the same compiler and flags; the largest of "
                f"{len(m.get('fma_peak_samples_gmacs', []))} measurements before and after the rounds): "
                f"**{peak:.0f} GMAC/s**; the last column is each row's multiply-adds per second "
                f"at k = {big:,} (stream-steps per second × multiply-adds per stream-step) and "
                f"their share of that peak (float weights; int8 weights multiply in integers)." if peak
                else ""),
             "",
             "| model | n | quantize | backend | " + " | ".join(f"k = {k}" for k in ks)
             + " | c / onnxruntime | c / c-per-stream |"
             + (f" GMAC/s at k = {big:,} (of peak) |" if peak else ""),
             "|---|---:|---|---|" + "---:|" * len(ks) + "---|---|" + ("---:|" if peak else "")]
    for v in s["variants"]:
        for n in s["hidden"]:
            for q in s["quantize"]:
                for b in ("c", PER_STREAM, "onnxruntime"):
                    cells = []
                    for k in ks:
                        r = idx.get((v, n, b, q, k))
                        cells.append(f"{_fmt(r['stream_steps_per_s'])} ({r['p50_us']:.0f})"
                                     if r else "–")
                    extra = (f" | {_ratios(idx, ks, (v, n, q), 'onnxruntime')} | "
                             f"{_ratios(idx, ks, (v, n, q), PER_STREAM)} |" if b == "c" else " | | |")
                    r = idx.get((v, n, b, q, big))
                    if peak:
                        share = f" ({r['of_peak']:.0%})" if q == "none" else ""  # (a float peak)
                        extra += f" {r['gmacs']:.1f}{share} |" if r and "gmacs" in r else " – |"
                    lines.append(f"| {v} | {n} | {q} | {b} | " + " | ".join(cells) + extra)
    lines += ["", "Ratios are listed for k = " + ", ".join(str(k) for k in ks) + " in order."]
    lines += ["", *target_lines(rep)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", default="LSTM0,LSTM6,LSTM10,LSTM_C6")
    p.add_argument("--hidden", default="128,512")
    p.add_argument("--quantize", default="none,dynamic")
    p.add_argument("--streams", default="1,64,1024")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=100,
                   help="timed calls per round, in percent of the default (200 at k = 1, 12 at "
                        "k = 64, 3 at k = 1024)")
    p.add_argument("--table-only", action="store_true",
                   help="only the BENCHMARKS.md section, from the JSON (--out, else the tracked one)")
    add_output_arguments(p, RESULTS)
    args = p.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    settle_outputs(args, RESULTS)
    if args.table_only:
        rep = json.loads(Path(args.source).read_text())
    else:
        rep = sweep(args)
        if args.out:
            Path(args.out).write_text(json.dumps(rep, indent=1) + "\n")
    text = markdown(rep)
    print(text)
    if args.markdown:
        update_markdown_section(BENCHMARKS_MD, SECTION, text)
    if not args.out and not args.markdown:
        print(nothing_written(RESULTS))


if __name__ == "__main__":
    main()
