"""Step latency of every variant beside the standard LSTM, on onnxruntime, LiteRT and C, float and int8.

    python benchmarks/step_latency.py --update         # the full sweep, into BENCHMARKS.md
    python benchmarks/step_latency.py --table-only --update  # rewrite BENCHMARKS.md from the JSON
    python benchmarks/step_latency.py --hidden 128 --variants LSTM0,LSTM6 --steps 300  # a taste

Every variant × hidden size {64, 128, 256, 512} × {onnxruntime, litert, c} × {none, dynamic,
int8}, one thread, batch 1, each a classifier shaped like the spoken-digit model (13 MFCCs in, 10
classes out, input normalisation; random weights: latency does not depend on their values; int8
files are calibrated on real FSDD rollouts). ``c`` is the C export compiled by the host compiler
and stepped through ctypes (its ``dynamic`` = int8 weights, float activations; ``int8`` = full
integer). Baselines in the same run: LSTM0 through the same path, and ``torch.nn.LSTM`` exported
by ``torch.onnx`` (the fused ONNX LSTM operator, float and ``quantize_dynamic``) on onnxruntime.
All configurations of one hidden size are loaded in one worker process and timed interleaved in
rounds (:func:`slimedge.profile.measure`); every number reported as a comparison is a ratio of
medians from that run. Also, in the same run:

* the shipped model profiled exactly as ``slimedge profile`` does it on every backend and
  quantisation (validated exports, LSTM0 and torch.onnx beside it), and its C exports' test
  accuracy (full integer against float);
* the bare C step of every C export (``PREFIX_step`` in a loop in C, no Python:
  ``benchmarks/c_step.py``), interleaved with the torch.onnx LSTM's bare onnxruntime call;
* ``StreamBatch`` throughput for 1, 64 and 1,024 streams, and ``Stream.step``'s overhead over the
  bare backend call it wraps (timed alternately, step by step).

Results: ``benchmarks/results/step_latency.json`` (it keeps the previous runs' target figures
under ``earlier_runs``) and the "## Step latency" section of ``BENCHMARKS.md``.
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

from slimedge import baselines, checkpoint, profile, variants  # noqa: E402
from slimedge._report import (  # noqa: E402
    add_output_arguments,
    nothing_written,
    settle_outputs,
    update_markdown_section,
)
from slimedge.profile import Config  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import c_step  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "step_latency.json"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
SECTION = "## Step latency"
BACKENDS = {"onnxruntime": "onnx", "litert": "tflite", "c": "c"}
SHORT = {"onnxruntime": "ORT", "litert": "LiteRT", "c": "C", "none": "float", "dynamic": "dyn",
         "int8": "int8"}
TORCH = baselines.TORCH_ONNX


_LOG = [sys.stderr]  # progress goes here (the real stderr while native output is silenced)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=_LOG[0], flush=True)


def base_checkpoint(path: Path, n: int, splits) -> Path:
    """An FSDD-shaped LSTM0 classifier (13 in, 10 out) with the data's feature normalisation."""
    mean, std = splits["train"].feature_stats()
    config = {"kind": "classifier",
              "lstm": {"variant": {"name": "LSTM0"}, "input_size": 13, "hidden_size": n,
                       "num_layers": 1, "gate_activation": "sigmoid", "activation": "tanh"},
              "head": {"num_classes": 10, "labels": [str(k) for k in range(10)]},
              "normalization": {"kind": "standard"}}
    import numpy as np

    rng = np.random.default_rng(n)
    tensors = {"head.weight": rng.uniform(-1, 1, (10, n)) / np.sqrt(n), "head.bias": np.zeros(10),
               "norm.mean": mean, "norm.std": np.maximum(std, 1e-6)}
    spec = variants.get("LSTM0")
    for name in spec.term_names():
        tensors[f"layers.0.{name}"] = np.zeros(spec.term_shape(name.split("_")[0], 13, n))
    return checkpoint.write(path, config, tensors)


def build(work: Path, hidden: list[int], names: list[str], quantize: list[str],
          backends: list[str], splits, calibration_samples: int,
          torch_onnx: bool | None = None) -> list[Config]:
    """Every variant × backend × quantisation export of the given hidden sizes (and, with
    ``torch_onnx``, by default where onnxruntime is measured, the torch.onnx LSTM float and
    ``quantize_dynamic``); C exports are compiled here into the c backend's cache."""
    from slimedge import exporters

    configs = []
    for n in hidden:
        d = work / f"n{n}"
        d.mkdir(parents=True, exist_ok=True)
        base = base_checkpoint(d / "base.safetensors", n, splits)
        for v in names:
            ck = baselines.random_checkpoint(v, base, d / f"{v}.safetensors", seed=n)
            for b in backends:
                fmt = BACKENDS[b]
                for mode in quantize:
                    path = d / f"{v}.{mode}.{fmt}"
                    if not path.exists():  # c_step.py may build into a kept folder again
                        log(f"export n={n} {v} {fmt} {mode}")
                        if mode == "none":
                            exporters.export(ck, path, format=fmt, validate=False)
                        else:  # random weights: only the speed matters (no validation)
                            exporters.export(ck, path, format=fmt, quantize=mode, data=splits,
                                             validate=False,
                                             calibration_samples=calibration_samples)
                    role = "lstm0" if v == "LSTM0" else "model"
                    configs.append(Config(f"{v} n{n} {b} {mode}", v, role, b, "cpu", str(path),
                                          fmt, mode, str(ck), n))
        if torch_onnx if torch_onnx is not None else "onnxruntime" in backends:
            for mode in [m for m in ("none", "dynamic") if m in quantize or m == "none"]:
                path = d / f"torch_lstm.{mode}.onnx"
                if not path.exists():
                    log(f"export n={n} torch.onnx LSTM {mode}")
                    baselines.torch_onnx_lstm(base, path, dynamic=(mode == "dynamic"))
                configs.append(Config(f"{TORCH} n{n} onnxruntime {mode}", TORCH, "torch.onnx",
                                      "onnxruntime", "cpu", str(path), "onnx", mode, None, n))
    compile_c([c.path for c in configs if c.backend == "c"])
    return configs


def compile_c(paths: list[str]) -> None:
    """Build the c backend's libraries of ``paths`` into its cache now (two compilers at a time),
    so that loading in the measuring process finds them."""
    from concurrent.futures import ThreadPoolExecutor

    from slimedge.formats.c import toolchain

    if paths:
        log(f"compile {len(paths)} C exports (the c backend's cache)")
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(toolchain.build, paths))


def bare_configs(configs: list[Config]) -> list:
    """The bare-C configurations of the C exports among ``configs``, and the torch.onnx LSTM's
    bare onnxruntime call."""
    out = []
    for c in configs:
        if c.backend == "c":
            out += c_step.c_configs(c.name, c.group, {c.quantize: c.path}, c.role)
        elif c.role == "torch.onnx":
            out.append(c_step.BareConfig(f"{TORCH} n{c.group} onnxruntime {c.quantize}", TORCH,
                                         c.group, c.quantize, "onnxruntime", c.path,
                                         "torch.onnx"))
    return out


def _slim(r: dict) -> dict:
    """A result without samples and without what the file itself says (graph census, sizes)."""
    drop = ("graph_ops", "variant", "input_size", "hidden_size", "num_layers", "output_size")
    out = {k: v for k, v in r.items() if not k.startswith("_") and k not in drop}
    out["config"] = {k: v for k, v in r["config"].items() if k not in ("path", "source")}
    return out


def _round_p50(res: list[dict], steps: int, rounds: int) -> None:
    """Each result's p50 per round (from its samples, which come in round order), in place."""
    from slimedge.profile.measure import _split

    sizes = _split(steps, min(rounds, steps))
    for r in res:
        s = r.get("_samples_us")
        if s is None or len(s) != steps:
            continue
        edges = np.cumsum([0] + sizes)
        r["rounds_p50_us"] = [float(np.median(s[a:b])) for a, b in zip(edges[:-1], edges[1:])]


def shipped(args, work: Path, backends: list[str], quantize: list[str]) -> tuple[dict, list]:
    """The shipped model exactly as ``slimedge profile`` measures it (every backend and
    quantisation, validated exports, LSTM0 and the torch.onnx LSTM beside it, a worker process
    per configuration, one thread), and the test accuracy of its C exports. Returns the JSON part
    and the bare-C configurations of its C exports."""
    from slimedge import data, formats, runtime, zoo

    ckpt = zoo.default_model_path()
    log(f"shipped model {ckpt.name}: slimedge profile -b {' -b '.join(backends)} "
        f"-q {' -q '.join(quantize)}")
    with profile.quiet_native_output() as err:
        _LOG[0] = err
        try:
            rep = profile.run([ckpt], backends=backends, quantize=quantize, threads=1,
                              steps=args.shipped_steps, rounds=args.shipped_rounds,
                              workdir=work / "shipped", log=log)
        finally:
            _LOG[0] = sys.stderr
    _round_p50(rep["results"], args.shipped_steps, args.shipped_rounds)
    splits = data.load_as_recorded(formats.info(ckpt).data)
    accuracy = {"checkpoint": runtime.evaluate(runtime.load(ckpt, backend="numpy"),
                                               splits.test).accuracy}
    bare = []
    for r in rep["results"]:
        c = r["config"]
        if c["backend"] == "c" and c["role"] == "model":
            log(f"accuracy {c['label']} on {splits.test.name}")
            accuracy[f"c {c['quantize']}"] = runtime.evaluate(runtime.load(c["path"]),
                                                              splits.test).accuracy
            bare += c_step.c_configs("shipped", 64, {c["quantize"]: c["path"]}, "shipped",
                                     label="shipped")
    out = {"model": ckpt.name, "variant": formats.info(ckpt).variant,
           "hidden_size": formats.info(ckpt).hidden_size, "notes": rep["notes"],
           "settings": rep["settings"], "test_split": splits.test.name,
           "test_sequences": len(splits.test), "accuracy": accuracy,
           "results": [_slim(r) for r in rep["results"]]}
    for r in out["results"]:
        if r.get("validation"):
            r["validation"] = {"passed": r["validation"].get("passed")}
    return out, bare


def sweep(args) -> dict:
    from slimedge import data

    t0 = time.time()
    load_before = list(os.getloadavg())
    splits = data.load("fsdd")
    names = args.variants.split(",") if args.variants else list(variants.VARIANTS)
    names = [variants.canonical_name(v) for v in names]
    if "LSTM0" not in names:
        names.insert(0, "LSTM0")
    hidden = [int(h) for h in args.hidden.split(",")]
    quantize = args.quantize.split(",")
    backends = args.backends.split(",")
    bare_c = "c" in backends and not args.no_bare
    results, stream_results, bare_results, ship = [], [], [], None
    with tempfile.TemporaryDirectory(prefix="slimedge-bench-") as tmp:
        work = Path(tmp)
        shipped_bare: list = []
        if not args.no_shipped:
            ship, shipped_bare = shipped(args, work, backends, quantize)
        for n in hidden:
            with profile.quiet_native_output() as err:
                _LOG[0] = err
                try:
                    configs = build(work, [n], names, quantize, backends, splits,
                                    args.calibration_samples)
                finally:
                    _LOG[0] = sys.stderr
            steps = _steps(args, n)
            log(f"measure n={n}: {len(configs)} configurations, {steps} steps each")
            res = profile.measure(configs, steps=steps, warmup=args.warmup,
                                  rounds=args.rounds, round_warmup=args.round_warmup, threads=1,
                                  shared_worker=True, keep_samples=True, log=log)
            _round_p50(res, steps, args.rounds)
            profile.add_ratios(res)
            results += [_slim(r) for r in res]
            if bare_c:
                bare = bare_configs(configs) + (shipped_bare if n == 64 else [])
                log(f"bare C n={n}: {len(bare)} configurations, {args.bare_rounds} rounds")
                bare_results += c_step.measure(bare, rounds=args.bare_rounds,
                                               round_ns=int(args.bare_round_ms * 1e6),
                                               workdir=work / "harness", log=log)
            if n in [int(h) for h in args.stream_hidden.split(",")]:
                keep = {"LSTM0", "LSTM6", "LSTM10", "LSTM_C6", TORCH}
                sub = [c for c in configs if c.name in keep and c.quantize in ("none", "dynamic")]
                ks = [int(k) for k in args.streams.split(",")]
                log(f"streams n={n}: {len(sub)} configurations, k = {ks}")
                sres = profile.measure(sub, steps=10, warmup=5, rounds=10,
                                       threads=1, streams=ks, bare=False, shared_worker=True,
                                       round_warmup=1,
                                       keep_samples=False,
                                       stream_calls={1: 400, 64: 100, 1024: 20}, log=log)
                stream_results += [{"config": r["config"], "streams": r.get("streams"),
                                    "error": r.get("error")} for r in sres]
    mach = profile.machine()
    mach["loadavg_before"] = load_before
    if "c" in backends:
        from slimedge.formats.c import toolchain

        mach["c_compiler"] = toolchain.describe()
    rep = {"machine": mach,
           "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "command": "python benchmarks/step_latency.py " + " ".join(
               shlex.quote(a) for a in (args.argv or [])),
           "settings": {"steps": args.steps, "steps_512": _steps(args, 512),
                        "warmup": args.warmup, "rounds": args.rounds,
                        "round_warmup": args.round_warmup,
                        "threads": 1, "batch": 1, "input_size": 13, "output_size": 10,
                        "hidden": hidden, "variants": names, "quantize": quantize,
                        "backends": backends, "calibration_samples": args.calibration_samples,
                        "bare_rounds": args.bare_rounds, "bare_round_ms": args.bare_round_ms,
                        "bare_sample_us": c_step.SAMPLE_NS / 1e3},
           "elapsed_s": time.time() - t0, "results": results, "streams": stream_results,
           "bare_c": bare_results}
    if ship is not None:
        rep["shipped"] = ship
    rep["targets"] = c_targets(rep)
    return rep


def _steps(args, n: int) -> int:
    """Timed Stream.step calls per configuration at hidden size ``n`` (fewer at the largest)."""
    return args.steps_512 if n >= 512 and args.steps_512 else args.steps


# ---- the C export's targets (issue 11) -----------------------------------------------------
def _bare_index(rep: dict) -> dict:
    return {(r["config"]["name"], r["config"]["group"], r["config"]["kind"],
             r["config"]["quantize"]): r for r in rep.get("bare_c", []) if r.get("latency_us")}


def _target(key: str, what: str, slow: dict | None, fast: dict | None, goal: float | None,
            **extra) -> dict | None:
    """slow p50 / fast p50 with its per-round spread, against ``goal`` (None: for reference)."""
    rr = c_step.round_ratios(slow, fast)
    if rr is None:
        return None
    return {"key": key, "what": what, **rr, "slow_us": slow["latency_us"]["p50"],
            "fast_us": fast["latency_us"]["p50"], "goal": goal,
            "met": None if goal is None else rr["ratio"] >= goal, **extra}


def c_targets(rep: dict) -> list[dict]:
    """Issue 11's targets from a report: ratios of medians from this run, with the spread of the
    same ratio over the interleaved rounds."""
    out: list = []
    sh = rep.get("shipped")
    if sh:
        by = {(r["config"]["role"], r["config"]["backend"], r["config"]["quantize"]): r
              for r in sh["results"] if r.get("latency_us")}
        for q in ("none", "dynamic", "int8"):
            for b in ("litert", "onnxruntime"):
                out.append(_target(
                    f"shipped_step_c_vs_{b}_{q}",
                    f"shipped model ({sh['variant']}, n = {sh['hidden_size']}) `Stream.step`, "
                    f"c vs {b}, {SHORT[q]}", by.get(("model", b, q)), by.get(("model", "c", q)),
                    2.0 if q == "none" else None))
        acc = sh.get("accuracy", {})
        if "c int8" in acc and "c none" in acc:
            d = 100 * (acc["c int8"] - acc["c none"])
            out.append({"key": "shipped_int8_accuracy",
                        "what": "shipped model, full-integer C vs float C, test accuracy",
                        "float": acc["c none"], "int8": acc["c int8"],
                        "dynamic": acc.get("c dynamic"), "checkpoint": acc.get("checkpoint"),
                        "delta_points": d, "sequences": sh.get("test_sequences"),
                        "goal": -1.0, "met": d >= -1.0})
    bi = _bare_index(rep)
    n = max(rep["settings"]["hidden"])
    for v, goal in (("LSTM6", 5.0), ("LSTM_C6", 30.0)):
        out.append(_target(f"bare_{v}_{n}_vs_torch_onnx",
                           f"bare C {v} n = {n}, float, vs the torch.onnx LSTM's bare "
                           f"onnxruntime call, float", bi.get((TORCH, n, "onnxruntime", "none")),
                           bi.get((v, n, "c", "none")), goal))
        out.append(_target(f"bare_{v}_{n}_dyn_vs_torch_onnx_dyn",
                           f"bare C {v} n = {n}, int8 weights, vs the torch.onnx LSTM's bare "
                           f"onnxruntime call, quantize_dynamic",
                           bi.get((TORCH, n, "onnxruntime", "dynamic")),
                           bi.get((v, n, "c", "dynamic")), None))
    out.append(_target(f"bare_LSTM0_{n}_dyn_vs_float",
                       f"bare C LSTM0 n = {n}: int8 weights vs float",
                       bi.get(("LSTM0", n, "c", "none")), bi.get(("LSTM0", n, "c", "dynamic")),
                       2.0))
    out.append(_target(f"bare_LSTM0_{n}_int8_vs_float",
                       f"bare C LSTM0 n = {n}: full integer (float I/O) vs float",
                       bi.get(("LSTM0", n, "c", "none")), bi.get(("LSTM0", n, "c", "int8")),
                       None))
    idx = _index(rep["results"])
    out.append(_target(f"step_LSTM0_{n}_dyn_vs_float",
                       f"`Stream.step` on c, LSTM0 n = {n}: int8 weights vs float",
                       idx.get(("LSTM0", n, "c", "none")), idx.get(("LSTM0", n, "c", "dynamic")),
                       None))
    return [t for t in out if t is not None]


# ---- the markdown ------------------------------------------------------------------------------
def _index(results):
    return {(r["config"]["name"], r["config"]["group"], r["config"]["backend"],
             r["config"]["quantize"]): r for r in results if r.get("latency_us")}


def _x(v, digits=2):
    return "–" if v is None else f"{v:.{digits}f}×"


def _p50(r):
    return None if r is None else r["latency_us"]["p50"]


def markdown(rep: dict) -> str:
    s, m = rep["settings"], rep["machine"]
    idx = _index(rep["results"])
    hidden, names = s["hidden"], s["variants"]
    backends, quantize = s["backends"], s["quantize"]
    lines = [SECTION, "",
             f"Measured by `{rep['command'].strip()}` on {rep['date']} ({rep['elapsed_s'] / 60:.1f} min); "
             f"this section is written from its JSON (`--table-only` rewrites it).",
             f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; "
             + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
             f"1-minute load average {m['loadavg_before'][0]:.1f} at the start and "
             f"{m['loadavg'][0]:.1f} at the end on {m['cores']} cores"
             + (": **the machine was shared with other jobs during the run**, so absolute "
                "times are inflated and noisy; every comparison below is a ratio of medians of "
                "configurations timed interleaved in the same run, which holds up much better."
                if max(m["loadavg_before"][0], m["loadavg"][0]) > m["cores"] * 0.75 else "."),
             "",
             f"Each configuration: one thread, batch 1, {s['steps']} timed `Stream.step` calls "
             f"after {s['warmup']} warm-up, split into {s['rounds']} rounds that visit every "
             f"configuration of a hidden size in turn ({s['steps'] // s['rounds']} steps each, "
             f"after {s.get('round_warmup', 0)} untimed ones), all in one worker process. Models "
             f"are shaped like the spoken-digit "
             f"classifier (13 inputs, 10 outputs, input normalisation, one layer) with random "
             f"weights; `dyn` = int8 weights with float activations (onnxruntime "
             f"`quantize_dynamic`, TFLite dynamic-range), `int8` = static int8 (ONNX QDQ; TFLite "
             f"integer activations, 16-bit cell state), calibrated on FSDD rollouts. "
             f"× = baseline p50 / variant p50 (above 1: faster).", ""]
    if s.get("steps_512") and s["steps_512"] != s["steps"]:
        lines[-1:-1] = [f"At n = 512 each configuration gets {s['steps_512']} timed steps in the "
                        f"same {s['rounds']} rounds (the run's time goes mostly there)."]
    if "c" in backends:
        lines[-1:-1] = [
            f"`C` = the `c` backend: the C export (`slimedge export -f c`) compiled once by the "
            f"host compiler ({m.get('c_compiler', 'cc -O3 -march=native -ffast-math')}) and "
            f"stepped through ctypes, one C call per step; its `dyn` = int8 weights with one "
            f"float scale per row and float activations, its `int8` = full integer (int8 "
            f"weights and activations, int16 cell state, integer-only arithmetic inside the "
            f"float-I/O step), calibrated on FSDD rollouts."]

    # targets
    lines += ["### Targets", ""]
    def bare(r):
        return (r.get("bare_us") or {}).get("p50")

    for mode in ("none", "dynamic"):
        v, t = idx.get(("LSTM6", 512, "onnxruntime", mode)), idx.get((TORCH, 512, "onnxruntime", mode))
        if v and t:
            sp = _p50(t) / _p50(v)
            bs = bare(t) / bare(v) if bare(t) and bare(v) else None
            lines.append(f"- LSTM6 at n = 512 vs the torch.onnx LSTM, onnxruntime {SHORT[mode]}: "
                         f"**{sp:.2f}×** ({_p50(v):.1f} vs {_p50(t):.1f} µs p50 per "
                         f"`Stream.step`; {_x(bs)} on the bare backend calls) — target ≥ 3×: "
                         f"**{'met' if sp >= 3 else 'not met'}**.")
    for mode in quantize:
        v, l0 = idx.get(("LSTM6", 512, "litert", mode)), idx.get(("LSTM0", 512, "litert", mode))
        if v and l0:
            sp = _p50(l0) / _p50(v)
            bs = bare(l0) / bare(v) if bare(l0) and bare(v) else None
            lines.append(f"- LSTM6 at n = 512 vs LSTM0 on LiteRT {SHORT[mode]} (the standard LSTM "
                         f"through the same TFLite path; torch.onnx has no TFLite file): "
                         f"**{sp:.2f}×** ({_p50(v):.1f} vs {_p50(l0):.1f} µs; {_x(bs)} bare) — "
                         f"target ≥ 3×: **{'met' if sp >= 3 else 'not met'}**.")
    over = {}
    for r in rep["results"]:
        if r.get("stream_overhead_us") is not None:
            over.setdefault(r["config"]["backend"], []).append(r["stream_overhead_us"])
    for b, vals in over.items():
        med = statistics.median(vals)
        lines.append(f"- `Stream.step` overhead over the bare backend call, {b}: median "
                     f"**{med:.2f} µs** over {len(vals)} configurations (range "
                     f"{min(vals):.2f} to {max(vals):.2f}) — target ≤ 2 µs: "
                     f"**{'met' if med <= 2 else 'not met'}**.")
    inv = [r["bare_us"]["p50"] - r["invoke_us"]["p50"] for r in rep["results"]
           if r.get("invoke_us") and r.get("bare_us")]
    if inv:
        lines.append(f"- For reference, LiteRT's binding (set inputs, invoke, copy outputs) costs "
                     f"a median {statistics.median(inv):.2f} µs over `Interpreter.invoke` alone.")
    lines.append("")
    lines += c_target_lines(rep)
    lines += ["### Summary", ""]
    n_max = hidden[-1]
    for b in backends:
        sp = {v: _p50(idx[("LSTM0", n_max, b, "none")]) / _p50(idx[(v, n_max, b, "none")])
              for v in names if v != "LSTM0" and (v, n_max, b, "none") in idx
              and ("LSTM0", n_max, b, "none") in idx}
        if sp:
            best = max(sp, key=sp.get)
            lines.append(f"- {b}, float, n = {n_max}: every variant against LSTM0 from "
                         f"{min(sp.values()):.2f}× to {max(sp.values()):.2f}× ({best} fastest; "
                         f"LSTM6 {_x(sp.get('LSTM6'))}). The gain grows with n: at small n a "
                         f"step is dominated by fixed per-call costs that no variant removes.")
        for m_ in [m_ for m_ in quantize if m_ != "none"]:
            gains = {v: _p50(idx[(v, n_max, b, "none")]) / _p50(idx[(v, n_max, b, m_)])
                     for v in names if (v, n_max, b, "none") in idx and (v, n_max, b, m_) in idx}
            if gains:
                lines.append(f"- {b} {SHORT[m_]} vs float, n = {n_max}: LSTM0 "
                             f"{_x(gains.get('LSTM0'))}, LSTM6 {_x(gains.get('LSTM6'))}, LSTM_C6 "
                             f"{_x(gains.get('LSTM_C6'))}.")
    n_min = hidden[0]
    small = [(_p50(idx[(v, n_min, b, "none")]) / _p50(idx[(v, n_min, b, m_)]))
             for v in names for b in backends for m_ in quantize if m_ != "none"
             if (v, n_min, b, "none") in idx and (v, n_min, b, m_) in idx]
    pays = sum(g > 1.05 for g in small)
    lines.append("- int8 pays where one large matrix dominates the step (LSTM0–LSTM2 at large "
                 "n); for the point-wise variants, whose only matrix is W_c (n × m), it buys "
                 "little or costs time" + (
                     f", and at n = {n_min} it costs time or gains under 5 % in {len(small) - pays}"
                     f" of {len(small)} quantised configurations here." if small else "."))
    m_in = s.get("input_size", 13)
    mib0 = 4 * n_max * (m_in + n_max) * 4 / 2**20
    r6 = {b: _p50(idx[("LSTM0", n_max, b, "none")]) / _p50(idx[("LSTM6", n_max, b, "none")])
          for b in backends if ("LSTM0", n_max, b, "none") in idx
          and ("LSTM6", n_max, b, "none") in idx}
    lines.append(
        "- LSTM6 does a quarter of LSTM0's multiply-accumulates and holds a quarter of its "
        "weights (one n × (m + n) matrix instead of four). Where a step costs its arithmetic, "
        "about 4× is its ceiling, and the fixed cost of a step (the backend call, the "
        "element-wise ops, `Stream.step`'s own work) keeps it below that; where LSTM0's float "
        f"matrices ({mib0:.1f} MiB at n = {n_max}) no longer fit the CPU's L2 cache and LSTM6's "
        f"({mib0 / 4:.1f} MiB) do, it can go past 4×. Here, float, n = {n_max}: "
        + ", ".join(f"{SHORT[b]} {v:.2f}×" for b, v in r6.items()) + ".")
    bad = [r for r in rep["results"] + rep.get("bare_c", []) if r.get("error")]
    if bad:
        lines.append(f"- Not measured ({len(bad)}): " + "; ".join(
            f"{r['config']['label']}: {r['error'][:120]}" for r in bad[:8])
            + (" ..." if len(bad) > 8 else "") + ".")
    lines.append("")

    # speedup vs LSTM0, per backend (float), and vs torch.onnx
    for mode in quantize:
        cols = [(b, n) for b in backends for n in hidden]
        lines += [f"### Speed-up over LSTM0, same backend, {SHORT[mode]} (p50 ratio)", "",
                  "| variant | " + " | ".join(f"{SHORT[b]} n={n}" for b, n in cols)
                  + f" | size × LSTM0 (n={hidden[-1]}, {SHORT[backends[0]]}) |",
                  "|---|" + "---:|" * (len(cols) + 1)]
        for v in names:
            cells = []
            for b, n in cols:
                r, l0 = idx.get((v, n, b, mode)), idx.get(("LSTM0", n, b, mode))
                cells.append(_x(_p50(l0) / _p50(r)) if r and l0 else "–")
            r = idx.get((v, hidden[-1], backends[0], mode))
            size = (r.get("vs_lstm0") or {}).get("size_ratio") if r else None
            lines.append(f"| {v} | " + " | ".join(cells) + f" | {_x(size if v != 'LSTM0' else 1.0)} |")
        lines.append("")
    if "onnxruntime" in backends:
        modes = [m for m in ("none", "dynamic") if m in quantize]
        cols = [(m_, n) for m_ in modes for n in hidden]
        lines += ["### Speed-up over the torch.onnx LSTM on onnxruntime (p50 ratio)", "",
                  "Float variants against the float torch.onnx LSTM, `dyn` against its "
                  "`quantize_dynamic` version.", "",
                  "| variant | " + " | ".join(f"{SHORT[m_]} n={n}" for m_, n in cols) + " |",
                  "|---|" + "---:|" * len(cols)]
        for v in names:
            cells = []
            for m_, n in cols:
                r, t = idx.get((v, n, "onnxruntime", m_)), idx.get((TORCH, n, "onnxruntime", m_))
                cells.append(_x(_p50(t) / _p50(r)) if r and t else "–")
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
        lines.append("")
    q8 = [m_ for m_ in quantize if m_ != "none"]
    if q8:
        cols = [(b, m_, n) for b in backends for m_ in q8 for n in sorted({hidden[0], hidden[-1]})]
        lines += ["### What int8 buys: float p50 / quantised p50, same variant and backend", "",
                  "| variant | " + " | ".join(f"{SHORT[b]} {SHORT[m_]} n={n}" for b, m_, n in cols)
                  + " |", "|---|" + "---:|" * len(cols)]
        for v in names + [TORCH]:
            cells = []
            for b, m_, n in cols:
                f, qq = idx.get((v, n, b, "none")), idx.get((v, n, b, m_))
                cells.append(_x(_p50(f) / _p50(qq)) if f and qq else "–")
            if any(c != "–" for c in cells):
                lines.append(f"| {v} | " + " | ".join(cells) + " |")
        lines.append("")
    # absolute anchors
    lines += ["### Absolute p50 per step (µs), for orientation", "",
              "| model | " + " | ".join(f"{SHORT[b]} {SHORT[m_]}" for b in backends
                                       for m_ in quantize) + " |",
              "|---|" + "---:|" * (len(backends) * len(quantize))]
    for v in [TORCH] + names:
        for n in hidden:
            cells = [(f"{_p50(idx[(v, n, b, m_)]):.1f}" if (v, n, b, m_) in idx else "–")
                     for b in backends for m_ in quantize]
            if v in (TORCH, "LSTM0", "LSTM6", "LSTM_C6") and any(c != "–" for c in cells):
                lines.append(f"| {v} n={n} | " + " | ".join(cells) + " |")
    lines += ["", "Every configuration (with p90/p99, load time, first step, size, op census and "
              "the bare-call timings) is in `benchmarks/results/step_latency.json`.", ""]
    # streams
    if rep.get("streams"):
        ks = sorted({int(k) for r in rep["streams"] if r.get("streams") for k in r["streams"]})
        lines += ["### Many streams: StreamBatch, one backend call per step for k streams", "",
                  "Stream-steps per second at the p50 call time (µs per call in brackets), "
                  f"measured on {rep['date']} with the rest of this section. The `c` rows may "
                  "predate the batched C step: its own section, *Many streams: batched C* "
                  "(`benchmarks/many_streams.py`), times the current one against onnxruntime.", ""]
        by = {(r["config"]["name"], r["config"]["group"], r["config"]["backend"],
               r["config"]["quantize"]): r["streams"] for r in rep["streams"] if r.get("streams")}
        kmax = str(ks[-1])
        for n in sorted({r["config"]["group"] for r in rep["streams"]}):
            for b in backends:
                a, l0 = by.get(("LSTM_C6", n, b, "none")), by.get(("LSTM0", n, b, "none"))
                a6 = by.get(("LSTM6", n, b, "none"))
                if a and l0 and a6 and kmax in a and kmax in l0:
                    r6 = a6[kmax]["stream_steps_per_s"] / l0[kmax]["stream_steps_per_s"]
                    rc = a[kmax]["stream_steps_per_s"] / l0[kmax]["stream_steps_per_s"]
                    lines.append(f"- {b}, n = {n}, k = {kmax}, float: LSTM6 {r6:.2f}× and "
                                 f"LSTM_C6 {rc:.2f}× LSTM0's stream-steps per second.")
            ratios = []
            for b in backends:
                f, d = by.get(("LSTM0", n, b, "none")), by.get(("LSTM0", n, b, "dynamic"))
                if f and d and "64" in f and "64" in d:
                    ratios.append(f"{b} {d['64']['stream_steps_per_s'] / f['64']['stream_steps_per_s']:.2f}×")
            if ratios:
                lines.append(f"- `dyn` against float with batch, LSTM0 n = {n}, k = 64 "
                             f"(throughput ratio): {', '.join(ratios)}.")
        lines += ["",
                  "| model | " + " | ".join(f"k = {k}" for k in ks) + " |",
                  "|---|" + "---:|" * len(ks)]
        for r in rep["streams"]:
            if not r.get("streams"):
                continue
            c = r["config"]
            cells = []
            for k in ks:
                st = r["streams"].get(str(k))
                cells.append(f"{st['stream_steps_per_s']:,.0f} ({st['call_us']['p50']:.0f})"
                             if st and st.get("stream_steps_per_s") else "–")
            lines.append(f"| {c['label']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += bare_lines(rep)
    lines += ["GPU: no GPU on this machine, so the torch CUDA backend (CUDA-graph replay) was not "
              "measured here; `slimedge profile -b torch-cuda` profiles it where one is present.",
              ""]
    return "\n".join(lines)


def _spread(t: dict) -> str:
    if "round_min" not in t:
        return ""
    return (f"; per round {t['round_q1']:.2f}–{t['round_q3']:.2f}× (quartiles), "
            f"{t['round_min']:.2f}–{t['round_max']:.2f}× (range) over {t['rounds']} rounds")


def _target_line(t: dict) -> str:
    if t["key"] == "shipped_int8_accuracy":
        return (f"- {t['what']}: **{100 * t['int8']:.2f} %** vs {100 * t['float']:.2f} % "
                f"(**{t['delta_points']:+.2f} points**; {t['sequences']} test sequences, one is "
                f"{100 / t['sequences']:.2f} points; int8-weight C "
                f"{100 * (t['dynamic'] or float('nan')):.2f} %, the checkpoint on numpy "
                f"{100 * (t['checkpoint'] or float('nan')):.2f} %) — target within 1 point: "
                f"**{'met' if t['met'] else 'not met'}**.")
    goal = ("for reference" if t["goal"] is None else
            f"target ≥ {t['goal']:g}×: **{'met' if t['met'] else 'not met'}**")
    return (f"- {t['what']}: **{t['ratio']:.2f}×** ({t['fast_us']:.3g} vs {t['slow_us']:.3g} µs "
            f"p50{_spread(t)}) — {goal}.")


def _SHORT_TARGET(key: str) -> str:  # noqa: N802  (a table in function form)
    """A target's key in a few words, for the earlier runs' line."""
    for prefix, words in (("shipped_step_c_vs_litert", "shipped c vs LiteRT"),
                          ("shipped_step_c_vs_onnxruntime", "shipped c vs onnxruntime"),
                          ("shipped_int8_accuracy", "full-integer accuracy"),
                          ("bare_LSTM6_", "bare LSTM6 vs torch.onnx"),
                          ("bare_LSTM_C6_", "bare LSTM_C6 vs torch.onnx"),
                          ("bare_LSTM0_", "bare LSTM0 int8 weights vs float")):
        if key.startswith(prefix):
            return words
    return key


def c_target_lines(rep: dict) -> list[str]:
    """The C export's targets (issue 11), from this run and the earlier runs the JSON keeps."""
    targets = rep.get("targets") or c_targets(rep)
    if not targets:
        return []
    lines = ["### The C export's targets (issue 11)", "",
             "Same run, one thread, ratios of medians (slower p50 / faster p50; the spread is "
             "the same ratio taken round by round: the rounds interleave the configurations, so "
             "each round's pair saw the same moment of this shared machine). The shipped model "
             "is profiled exactly as `slimedge profile -b c -b litert -b onnxruntime -q none -q "
             "dynamic -q int8` does it (validated exports, a worker process per configuration); "
             "bare C is the export's `PREFIX_step` in a C loop (see *Bare C step* below).", ""]
    lines += [_target_line(t) for t in targets]
    for old in rep.get("earlier_runs", []):
        figs = [f"{_SHORT_TARGET(t['key'])} {t['delta_points']:+.2f} points"
                if t["key"] == "shipped_int8_accuracy" else
                f"{_SHORT_TARGET(t['key'])} {t['ratio']:.2f}×"
                for t in old["targets"] if t.get("met") is not None]
        lines.append(f"- The targets in the previous run of the same command ({old['date']}, "
                     f"1-minute load {old.get('loadavg', '?')}): " + ", ".join(figs) + ".")
    lines.append("")
    return lines


def bare_lines(rep: dict) -> list[str]:
    """The bare-C tables: p50 per step, and the ratios to the torch.onnx LSTM and to LSTM0."""
    bi = _bare_index(rep)
    if not bi:
        return []
    s = rep["settings"]
    hidden, names = s["hidden"], s["variants"]
    modes = [q for q in s["quantize"]]
    lines = ["### Bare C step: the export's step in a C loop, no Python", "",
             f"Every C export's `PREFIX_step(x, h, c, y)` (one stream, state in place, a new "
             f"real FSDD frame each step) called in a loop by a small C program that `dlopen`s "
             f"the same shared library the `c` backend loads "
             f"([benchmarks/c_step.py](benchmarks/c_step.py)); `int8 q` is a full-integer "
             f"export's `PREFIX_step_q` (int8 input and hidden state, int16 cell state, int32 "
             f"outputs: no float at all), the rest take and return float. The torch.onnx LSTM "
             f"row is its bare onnxruntime call (the binding's one `session.run`, from Python, as "
             f"`slimedge profile` times it). All configurations of one hidden size are timed in "
             f"the same {s.get('bare_rounds')} interleaved rounds, about "
             f"{s.get('bare_round_ms')} ms each per configuration, one thread, one process "
             f"running at a time; a C sample is the mean of as many consecutive steps as last "
             f"{s.get('bare_sample_us', 20):g} µs (the clock read costs under 1 %), and p50 is "
             f"the median sample.", "",
             "p50 per step, µs:", "",
             "| model | " + " | ".join(f"{SHORT[q]} n={n}" for q in modes for n in hidden)
             + " | int8 q n=" + " | int8 q n=".join(str(n) for n in (hidden[0], hidden[-1]))
             + " |", "|---|" + "---:|" * (len(modes) * len(hidden) + 2)]

    def cell(r):
        if not r:
            return "–"
        v = r["latency_us"]["p50"]
        return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 1e3 else f"{v:.0f}"

    for v in names + (["shipped"] if any(k[0] == "shipped" for k in bi) else []):
        cells = [cell(bi.get((v, n, "c", q))) for q in modes for n in hidden]
        cells += [cell(bi.get((v, n, "c_q", "int8"))) for n in (hidden[0], hidden[-1])]
        if any(c != "–" for c in cells):
            label = "shipped model (LSTM6 n = 64, trained)" if v == "shipped" else v
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for q in ("none", "dynamic"):
        cells = [cell(bi.get((TORCH, n, "onnxruntime", q))) if mq == q else "–"
                 for mq in modes for n in hidden]
        if any(c != "–" for c in cells):
            lines.append(f"| {TORCH}, bare onnxruntime, {SHORT[q]} | " + " | ".join(cells)
                         + " | – | – |")
    lines += ["", "× the torch.onnx LSTM's bare onnxruntime call (its p50 / this p50; float "
              "against its float file, `dyn` and `int8` against its `quantize_dynamic` file), and "
              "× bare C LSTM0 in the same mode:", "",
              "| variant | " + " | ".join(f"{SHORT[q]} n={n}" for q in modes for n in hidden)
              + f" | × LSTM0 float n={hidden[-1]} | × LSTM0 {SHORT[modes[-1]]} n={hidden[-1]} |",
              "|---|" + "---:|" * (len(modes) * len(hidden) + 2)]
    for v in names:
        cells = []
        for q in modes:
            for n in hidden:
                t = bi.get((TORCH, n, "onnxruntime", "none" if q == "none" else "dynamic"))
                r = bi.get((v, n, "c", q))
                cells.append(_x(_p50(t) / _p50(r), 1) if t and r else "–")
        for q in ("none", modes[-1]):
            r, l0 = bi.get((v, hidden[-1], "c", q)), bi.get(("LSTM0", hidden[-1], "c", q))
            cells.append(_x(_p50(l0) / _p50(r)) if r and l0 else "–")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    lines += ["", "What int8 buys in C: float p50 / quantised p50, same variant "
              "(`int8 q`: the integer-I/O step):", "",
              "| variant | " + " | ".join(f"{SHORT[q]} n={n}" for q in modes if q != "none"
                                       for n in (hidden[0], hidden[-1]))
              + f" | int8 q n={hidden[0]} | int8 q n={hidden[-1]} |",
              "|---|" + "---:|" * (2 * (len(modes) - 1) + 2)]
    for v in names:
        cells = []
        for q in [q for q in modes if q != "none"] + ["q"]:
            for n in (hidden[0], hidden[-1]):
                f = bi.get((v, n, "c", "none"))
                r = bi.get((v, n, "c_q", "int8")) if q == "q" else bi.get((v, n, "c", q))
                cells.append(_x(_p50(f) / _p50(r)) if f and r else "–")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    lines += ["", "Every bare configuration, with its per-round p50s, is under `bare_c` in "
              "`benchmarks/results/step_latency.json`.", ""]
    return lines


def update_benchmarks_md(text: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) only our section; other sections stay as they are."""
    update_markdown_section(path, SECTION, text)


def _rounded(obj):
    """Floats to 4 significant digits (the noise is far larger), so the JSON stays readable."""
    if isinstance(obj, float):
        return float(f"{obj:.4g}")
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v) for v in obj]
    return obj


def _dumps(rep: dict) -> str:
    """JSON with one line per configuration (diffable, a third of the indented size)."""
    lists: dict[str, list] = {}

    def rows(items: list) -> str:
        tag = f"@@rows{len(lists)}@@"
        lists[tag] = items
        return tag

    head = dict(rep)
    for key in ("results", "streams", "bare_c", "targets"):
        if key in head:
            head[key] = rows(head[key])
    if "shipped" in head:
        head["shipped"] = {**head["shipped"], "results": rows(head["shipped"]["results"])}
    text = json.dumps(head, indent=1)
    for tag, items in lists.items():
        body = ",\n  ".join(json.dumps(r, separators=(",", ":")) for r in items)
        text = text.replace(json.dumps(tag), f"[\n  {body}\n ]" if items else "[]")
    return text + "\n"


def _earlier(path: Path, rep: dict, keep: int = 2) -> list[dict]:
    """The target figures of the run ``path`` holds (and of the runs it kept), when it measured
    the same configurations: a run on a shared machine is one draw, so the file keeps the last
    few for their spread."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if not old.get("targets") or old.get("settings", {}).get("hidden") != rep["settings"]["hidden"]:
        return []
    slim = [{k: v for k, v in t.items() if k in ("key", "ratio", "delta_points", "met")}
            for t in old["targets"]]
    this = {"date": old["date"], "loadavg": round(old["machine"]["loadavg_before"][0], 1),
            "targets": slim}
    return ([this] + old.get("earlier_runs", []))[:keep]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hidden", default="64,128,256,512")
    p.add_argument("--variants", default="", help="comma-separated; default: all 12")
    p.add_argument("--backends", default="onnxruntime,litert,c")
    p.add_argument("--quantize", default="none,dynamic,int8")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--rounds", type=int, default=50,
                   help="rounds visiting every configuration in turn (fine interleaving: the "
                        "load of a shared machine then falls on all configurations alike)")
    p.add_argument("--round-warmup", type=int, default=3,
                   help="untimed steps at the start of each later round (back into cache)")
    p.add_argument("--streams", default="1,64,1024")
    p.add_argument("--stream-hidden", default="128,512")
    p.add_argument("--calibration-samples", type=int, default=16,
                   help="training sequences calibrating int8 files (latency does not depend on it)")
    p.add_argument("--steps-512", type=int, default=0,
                   help="timed steps per configuration at n = 512 (default: --steps)")
    p.add_argument("--shipped-steps", type=int, default=2000,
                   help="timed Stream.step calls per configuration for the shipped model")
    p.add_argument("--shipped-rounds", type=int, default=20)
    p.add_argument("--no-shipped", action="store_true",
                   help="skip the shipped model (its profile and its C exports' accuracy)")
    p.add_argument("--no-bare", action="store_true", help="skip the bare-C timing")
    p.add_argument("--bare-rounds", type=int, default=20)
    p.add_argument("--bare-round-ms", type=float, default=10.0,
                   help="time per bare configuration and round (ms)")
    add_output_arguments(p, RESULTS)
    p.add_argument("--no-markdown", action="store_true", help="with --update: not BENCHMARKS.md")
    p.add_argument("--table-only", action="store_true",
                   help="only the BENCHMARKS.md section, from the JSON (--out, else the tracked one)")
    args = p.parse_args(argv)
    settle_outputs(args, RESULTS)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.table_only:
        rep = json.loads(args.source.read_text())
    else:
        rep = sweep(args)
        rep["earlier_runs"] = _earlier(args.source, rep)
        rep = _rounded(rep)  # the markdown from exactly what the JSON holds (--table-only agrees)
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(_dumps(rep))
            log(f"wrote {args.out} ({rep['elapsed_s'] / 60:.1f} min)")
    text = markdown(rep)
    if args.markdown:
        update_benchmarks_md(text)
    print(text)
    if args.out is None and not args.table_only:
        print(nothing_written(RESULTS))


if __name__ == "__main__":
    main()
