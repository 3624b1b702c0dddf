"""The bare C step: every C export's ``PREFIX_step`` timed in a loop in C (no Python), interleaved
in rounds with the torch.onnx LSTM's bare onnxruntime call.

    python benchmarks/c_step.py --hidden 512 --variants LSTM0,LSTM6,LSTM_C6   # a table, no files

``benchmarks/step_latency.py`` calls :func:`measure` once per hidden size (its results go to
``benchmarks/results/step_latency.json``, key ``bare_c``, and BENCHMARKS.md); run alone, this
module exports and times what it is asked and prints the table.

How. A small harness program (:data:`HARNESS`, compiled here with the host compiler) ``dlopen``s
the very shared libraries the ``c`` runtime backend loads (``toolchain.build``: the runtime's
cache, ``-O3 -march=native -ffast-math``) and, on a command from this process, steps one of them:
``PREFIX_step(x, h, c, y)`` on one stream (state in place, a new real FSDD frame each step), or
for a full-integer export also ``PREFIX_step_q`` (int8/int16 state, no floating point). Each
sample is the mean of ``per`` consecutive steps between two ``clock_gettime`` reads (``per``
chosen so a sample lasts at least ``SAMPLE_NS``: the clock costs under 1 %); this process only
waits on the pipe while the harness runs. The torch.onnx LSTM's bare call (the binding's one
``session.run``, as ``slimedge profile`` times it) runs in a profile worker process
(:class:`slimedge.profile.worker.WorkerProcess`), one thread. Every configuration gets the same
time per round, the rounds visit all configurations in turn (rotated), and one process runs at a
time, so load on a shared machine falls on all alike; comparisons are ratios of medians, and the
per-round ratios give their spread.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SAMPLE_NS = 20_000      # a C sample lasts at least this long (per = its steps)
ROUND_NS = 10_000_000   # each configuration's time per round (C: samples; ORT: calls)
MAX_SAMPLES = 500       # samples per round and configuration at most
ROUND_WARMUP_NS = 20_000  # untimed steps at the start of every round (at least 3)
FRAMES = 64

HARNESS = r"""
/* slimedge bare-C step timer: loads exports' shared libraries, times their step on command.
   stdin:  load LIB PREFIX M S K FRAMES_FILE   -> "ok ID EST_NS"  (EST: ns per step, ~1 ms probe)
           time ID Q WARMUP PER NSAMP          -> "ok v1 v2 ..." (ns per step, one per sample)
           quit
   Q = 0: PREFIX_step (float I/O); Q = 1: PREFIX_step_q (full-integer exports). */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void (*step_fn)(const float *, float *, float *, float *);
typedef void (*step_q_fn)(const int8_t *, int8_t *, int16_t *, int32_t *);
typedef void (*reset_fn)(float *, float *);
typedef void (*quant_fn)(const float *, int8_t *);

#define NFRAMES 64
typedef struct {
    step_fn step; step_q_fn step_q;
    int m, s, k;
    float *frames, *h, *c, *y;
    int8_t *xq, *hq; int16_t *cq; int32_t *yq;
    double sink;
} model;

static model models[4096];
static int nmodels = 0;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *sym(void *lib, const char *prefix, const char *name)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s%s", prefix, name);
    return dlsym(lib, buf);
}

static void run(model *md, int q, long steps, long *t)
{
    long i;
    if (q) {
        for (i = 0; i < steps; i++, (*t)++)
            md->step_q(md->xq + (*t & (NFRAMES - 1)) * md->m, md->hq, md->cq, md->yq);
        md->sink += (double)md->yq[0];
    } else {
        for (i = 0; i < steps; i++, (*t)++)
            md->step(md->frames + (*t & (NFRAMES - 1)) * md->m, md->h, md->c, md->y);
        md->sink += (double)md->y[0];
    }
}

int main(void)
{
    char line[8192];
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof line, stdin)) {
        char cmd[16];
        if (sscanf(line, "%15s", cmd) != 1) continue;
        if (!strcmp(cmd, "quit")) break;
        if (!strcmp(cmd, "load")) {
            char lib[4096], prefix[256], ffile[4096];
            int m, s, k;
            if (sscanf(line, "load %4095s %255s %d %d %d %4095s", lib, prefix, &m, &s, &k, ffile) != 6
                || nmodels >= 4096) { printf("error bad load\n"); continue; }
            void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
            if (!h) { printf("error %s\n", dlerror()); continue; }
            model *md = &models[nmodels];
            memset(md, 0, sizeof *md);
            md->step = (step_fn)sym(h, prefix, "_step");
            md->step_q = (step_q_fn)sym(h, prefix, "_step_q");
            reset_fn reset = (reset_fn)sym(h, prefix, "_reset");
            quant_fn quant = (quant_fn)sym(h, prefix, "_quantize_input");
            if (!md->step || !reset) { printf("error no %s_step\n", prefix); continue; }
            md->m = m; md->s = s; md->k = k;
            md->frames = malloc(sizeof(float) * (size_t)(NFRAMES * m));
            md->h = calloc((size_t)s, sizeof(float)); md->c = calloc((size_t)s, sizeof(float));
            md->y = calloc((size_t)k, sizeof(float));
            FILE *f = fopen(ffile, "rb");
            if (!f || fread(md->frames, sizeof(float), (size_t)(NFRAMES * m), f) != (size_t)(NFRAMES * m)) {
                printf("error frames %s\n", ffile); if (f) fclose(f); continue;
            }
            fclose(f);
            reset(md->h, md->c);
            if (md->step_q && quant) {
                md->xq = malloc((size_t)(NFRAMES * m));
                for (int i = 0; i < NFRAMES; i++) quant(md->frames + i * m, md->xq + i * m);
                md->hq = calloc((size_t)s, 1); md->cq = calloc((size_t)s, sizeof(int16_t));
                md->yq = calloc((size_t)k, sizeof(int32_t));
            } else {
                md->step_q = NULL;
            }
            long t = 0, n = 1;
            double dt = 0.0;
            for (;; n *= 2) {  /* the probe: ~1 ms of steps */
                double t0 = now_ns();
                run(md, 0, n, &t);
                dt = now_ns() - t0;
                if (dt > 1e6 || n > (1L << 24)) break;
            }
            printf("ok %d %.3f\n", nmodels, dt / (double)n);
            nmodels++;
            continue;
        }
        if (!strcmp(cmd, "time")) {
            int id, q;
            long warm, per, nsamp;
            if (sscanf(line, "time %d %d %ld %ld %ld", &id, &q, &warm, &per, &nsamp) != 5
                || id < 0 || id >= nmodels || per < 1 || nsamp < 1 || (q && !models[id].step_q)) {
                printf("error bad time\n"); continue;
            }
            model *md = &models[id];
            double *v = malloc(sizeof(double) * (size_t)nsamp);
            long t = 0;
            run(md, q, warm, &t);
            for (long i = 0; i < nsamp; i++) {
                double t0 = now_ns();
                run(md, q, per, &t);
                v[i] = (now_ns() - t0) / (double)per;
            }
            printf("ok");
            for (long i = 0; i < nsamp; i++) printf(" %.2f", v[i]);
            printf("\n");
            free(v);
            continue;
        }
        printf("error unknown command\n");
    }
    return 0;
}
"""


@dataclass
class BareConfig:
    """One thing timed bare: a C export's step (``kind`` "c"), its integer step ("c_q"), or an
    ONNX file's bare onnxruntime call ("onnxruntime")."""

    label: str
    name: str      # the variant, or the torch.onnx baseline's name
    group: int     # the hidden size
    quantize: str  # none, dynamic, int8
    kind: str      # "c", "c_q" or "onnxruntime"
    path: str      # the .c (kinds c, c_q) or the .onnx
    role: str = "model"  # "model", "lstm0", "torch.onnx", "shipped"
    samples: list = field(default_factory=list, repr=False)   # ns per step
    rounds: list = field(default_factory=list, repr=False)    # per-round p50, ns


class HarnessError(RuntimeError):
    pass


def compile_harness(folder: Path) -> Path:
    """The harness program, compiled into ``folder`` with the host compiler (-O2; the loop calls
    into the exports' libraries, which carry their own flags)."""
    from slimedge.formats.c import toolchain

    src = folder / "c_step_harness.c"
    src.write_text(HARNESS)
    exe = folder / "c_step_harness"
    cmd = [*toolchain.find_compiler(), "-O2", "-std=c99", "-Wall", "-Wextra", "-o", str(exe),
           str(src), "-ldl"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise HarnessError(f"compiling the harness failed ({' '.join(cmd)}):\n{res.stderr}")
    return exe


class Harness:
    """The running harness process (one thread; it runs only while this process waits on it)."""

    def __init__(self, exe: Path) -> None:
        self.proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)

    def ask(self, line: str) -> list[str]:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().split()
        if not reply or reply[0] != "ok":
            raise HarnessError(f"harness: {line!r} -> {' '.join(reply) or 'no reply (exited)'}")
        return reply[1:]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def real_frames(m: int, folder: Path) -> Path:
    """64 consecutive raw FSDD frames (float32, the C exports normalise them) in a file; random
    ones when the input size is not FSDD's."""
    path = folder / f"frames_{m}.f32"
    if not path.exists():
        frames = None
        if m == 13:
            try:
                from slimedge import data

                frames = data.load("fsdd")["test"].frames[:FRAMES]
            except Exception:  # no data set here: random frames time the same work
                frames = None
        if frames is None or len(frames) < FRAMES:
            frames = np.random.default_rng(0).standard_normal((FRAMES, m))
        np.ascontiguousarray(frames, np.float32).tofile(path)
    return path


def _c_sizes(c_path: str) -> tuple[str, int, int, int]:
    from slimedge.formats import c as c_format

    cfg = c_format.read_config(c_path)
    g = cfg["graph"]
    return (cfg["export"]["prefix"], int(g["input_size"]),
            int(g["num_layers"]) * int(g["hidden_size"]), int(g["output_size"]))


def c_configs(name: str, group: int, paths: dict[str, str], role: str = "model",
              label: str | None = None) -> list[BareConfig]:
    """The bare configurations of one variant's C exports (``paths``: quantize -> .c): the float
    step of each, and the integer step of the full-integer one."""
    label = label or f"{name} n{group}"
    out = []
    for q, p in paths.items():
        out.append(BareConfig(f"{label} c {q}", name, group, q, "c", str(p), role))
        if q == "int8":
            out.append(BareConfig(f"{label} c int8 step_q", name, group, q, "c_q", str(p), role))
    return out


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if r < total % parts else 0) for r in range(parts)]


def measure(configs: Sequence[BareConfig], *, rounds: int = 20, round_ns: int = ROUND_NS,
            workdir: str | os.PathLike, log: Callable[[str], None] = lambda s: None) -> list[dict]:
    """Time ``configs`` interleaved in ``rounds``; one result dict per configuration (p50 and
    other statistics in µs, per-round p50s, the samples' settings; ``error`` when it failed)."""
    from slimedge.formats.c import toolchain
    from slimedge.profile.measure import stats
    from slimedge.profile.worker import ProfileError, WorkerProcess

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    exe = compile_harness(workdir)
    harness = Harness(exe)
    worker = None
    plan: dict[int, dict] = {}
    errors: dict[int, str] = {}
    try:
        libs: dict[str, tuple[str, str]] = {}
        for i, c in enumerate(configs):
            try:
                if c.kind in ("c", "c_q"):
                    if c.path not in libs:
                        prefix, m, s, k = _c_sizes(c.path)
                        lib = toolchain.build(c.path)  # the c backend's library (cache)
                        frames = real_frames(m, workdir)
                        cid, est = harness.ask(f"load {lib} {prefix} {m} {s} {k} {frames}")
                        libs[c.path] = (cid, est)
                    cid, est = libs[c.path]
                    est = max(float(est), 1.0)
                    if c.kind == "c_q":  # probe the integer step (its own speed)
                        got = harness.ask(f"time {cid} 1 3 {max(1, int(1e6 / est))} 1")
                        est = max(float(got[0]), 1.0)
                    per = max(1, math.ceil(SAMPLE_NS / est))
                    nsamp = int(min(MAX_SAMPLES, max(5, round(round_ns / (per * est)))))
                    warm = max(3, math.ceil(ROUND_WARMUP_NS / est))
                    plan[i] = {"id": cid, "q": int(c.kind == "c_q"), "per": per, "nsamp": nsamp,
                               "warm": warm, "est_ns": est}
                else:
                    if worker is None:
                        worker = WorkerProcess(threads=1)
                        worker.call("import", cmd="import", backends=["onnxruntime"])
                    worker.call(c.label, cmd="load", id=str(i), path=c.path,
                                backend="onnxruntime", device="cpu", threads=1, seed=i)
                    probe = worker.call(c.label, cmd="measure", id=str(i), steps=50, warmup=20,
                                        bare=True)
                    est = float(np.median(probe["bare_ns"]))
                    # Stream.step and the bare call alternate: half the round's time is bare calls
                    steps = int(min(1000, max(10, round(round_ns / (2 * est)))))
                    plan[i] = {"steps": steps, "est_ns": est}
            except (HarnessError, ProfileError, OSError, ValueError) as e:
                errors[i] = str(e)
                log(f"{c.label}: {e}")
        alive = [i for i in range(len(configs)) if i in plan]
        for r in range(rounds):
            log(f"bare round {r + 1}/{rounds}")
            order = alive[r % len(alive):] + alive[:r % len(alive)] if alive else []
            for i in order:
                c, p = configs[i], plan[i]
                try:
                    if c.kind in ("c", "c_q"):
                        got = [float(v) for v in harness.ask(
                            f"time {p['id']} {p['q']} {p['warm']} {p['per']} {p['nsamp']}")]
                    else:
                        got = [float(v) for v in worker.call(
                            c.label, cmd="measure", id=str(i), steps=p["steps"], warmup=3,
                            bare=True)["bare_ns"]]
                except (HarnessError, ProfileError) as e:
                    errors[i] = str(e)
                    alive.remove(i)
                    continue
                c.samples.extend(got)
                c.rounds.append(float(np.median(got)))
    finally:
        harness.close()
        if worker is not None:
            worker.close()
    out = []
    for i, c in enumerate(configs):
        res = {"config": {"label": c.label, "name": c.name, "group": c.group,
                          "quantize": c.quantize, "kind": c.kind, "role": c.role}}
        if i in errors or not c.samples:
            res["error"] = errors.get(i, "no measurements")
        else:
            p = plan[i]
            res["latency_us"] = stats(np.asarray(c.samples))  # ns in, µs out
            res["rounds_p50_us"] = [v / 1e3 for v in c.rounds]
            res["sample"] = ({"steps_per_sample": p["per"], "samples_per_round": p["nsamp"],
                              "round_warmup_steps": p["warm"]} if "per" in p else
                             {"steps_per_sample": 1, "calls_per_round": p["steps"],
                              "round_warmup_steps": 3})
        out.append(res)
    return out


def round_ratios(num: dict | None, den: dict | None) -> dict | None:
    """num p50 / den p50 (above 1: ``den`` is faster), and the spread of the same ratio per round
    (rounds are interleaved, so each round's pair saw the same moment of the machine)."""
    if not num or not den or not num.get("latency_us") or not den.get("latency_us"):
        return None
    a, b = num.get("rounds_p50_us") or [], den.get("rounds_p50_us") or []
    per = [x / y for x, y in zip(a, b) if y]
    out = {"ratio": num["latency_us"]["p50"] / den["latency_us"]["p50"]}
    if per:
        q1, q3 = np.percentile(per, [25, 75])
        out.update({"round_min": float(min(per)), "round_q1": float(q1),
                    "round_median": float(np.median(per)), "round_q3": float(q3),
                    "round_max": float(max(per)), "rounds": len(per)})
    return out


def main(argv=None) -> None:
    import argparse

    import step_latency as sl  # noqa: E402  (benchmarks/ is this file's folder)

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hidden", default="512")
    p.add_argument("--variants", default="LSTM0,LSTM6,LSTM_C6")
    p.add_argument("--quantize", default="none,dynamic,int8")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args(argv)
    from slimedge import baselines, data, variants

    splits = data.load("fsdd")
    names = [variants.canonical_name(v) for v in args.variants.split(",")]
    quantize = args.quantize.split(",")
    with tempfile.TemporaryDirectory(prefix="slimedge-cstep-") as tmp:
        work = args.workdir or Path(tmp)
        for n in [int(h) for h in args.hidden.split(",")]:
            configs = sl.build(work, [n], names, quantize, ["c"], splits, 32, torch_onnx=True)
            bare = sl.bare_configs(configs)
            res = measure(bare, rounds=args.rounds, workdir=work / "harness", log=sl.log)
            torch = {r["config"]["quantize"]: r for r in res
                     if r["config"]["name"] == baselines.TORCH_ONNX}
            print(f"n = {n}: p50 µs (× the torch.onnx LSTM's bare onnxruntime call, float vs "
                  f"float, quantised vs its quantize_dynamic)")
            for r in res:
                c = r["config"]
                if "error" in r:
                    print(f"  {c['label']:<36} error: {r['error']}")
                    continue
                t = torch.get("none" if c["quantize"] == "none" else "dynamic")
                rr = round_ratios(t, r) if c["name"] != baselines.TORCH_ONNX else None
                print(f"  {c['label']:<36} {r['latency_us']['p50']:9.3f}"
                      + (f"  {rr['ratio']:7.2f}× (rounds {rr['round_min']:.2f}–"
                         f"{rr['round_max']:.2f})" if rr else ""))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
