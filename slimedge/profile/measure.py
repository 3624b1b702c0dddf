"""Measuring: the file's facts, the timing rounds across worker processes, statistics, memory.

Every configuration runs in its own worker process (:mod:`.worker`); the workers stay alive and
the timed steps are split into rounds, each visiting every configuration in turn (one worker runs
at a time), so load or noise on the machine falls on every configuration alike.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .. import formats
from ..errors import CompileError, CompilerNotFound, UsageError
from .plan import Config
from .worker import ProfileError, WorkerProcess

DEFAULT_STEPS = 2000
DEFAULT_WARMUP = 200
DEFAULT_ROUNDS = 20
STAT_KEYS = ("mean", "std", "min", "p50", "p90", "p99", "max")


# ---- the file ----------------------------------------------------------------------------------
def _size_bytes(path: Path) -> int:
    """A file's size, or the total of the files in a folder (an export written as several)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _ops(path: Path, fmt: formats.Format, info: formats.ModelInfo, graph: dict) -> dict:
    """The op census of the file: an ONNX file's nodes; else what its export section records
    (TFLite: its builtin operators); else the step graph's census."""
    if fmt.name == "onnx":  # the nodes the file holds, after the exporter's fusions
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
        return dict(sorted(Counter(n.op_type for n in proto.graph.node).items()))
    if info.export.get("ops"):
        return dict(info.export["ops"])
    return dict(graph.get("census", {}))


def _compiled(path: Path) -> dict:
    """A C export's compiled size (code + constants of its object, as the ``c`` backend compiles
    it): what it occupies in flash; its source text's size says little about that."""
    from .. import extras
    from ..formats.c import toolchain

    extras.require("profile", f"the compiled size of {path.name}", "elftools")
    try:
        sizes = toolchain.compiled_size(path)
    except (CompileError, CompilerNotFound) as e:  # the c backend's load says so for its row
        return {"size_bytes": None, "source_bytes": _size_bytes(path), "size_of": None,
                "size_error": str(e).splitlines()[0]}
    return {"size_bytes": sizes["total"], "source_bytes": _size_bytes(path),
            "size_of": f"compiled code + constants ({sizes['flags']})"}


def file_facts(path: str | os.PathLike) -> dict:
    """Size, parameters, MACs per step and op census of a model file. ``size_bytes`` is the
    file's size, except for a C export: its compiled code + constants (``source_bytes``: the
    source text's), which needs the host compiler (the ``c`` backend's)."""
    path = Path(path)
    info = formats.info(path)  # ModelFileError naming the file when it is foreign or damaged
    graph = info.config.get("graph")
    if graph is None:  # a checkpoint: its step graph says
        from .. import ir

        graph = ir.lower(path).summary()
    fmt = formats.for_path(path)
    size = (_compiled(path) if fmt.name == "c" else
            {"size_bytes": _size_bytes(path), "source_bytes": None, "size_of": "file"})
    return {**size, "params": graph.get("params"),
            "macs_per_step": graph.get("macs_per_step"),
            "ops": _ops(path, fmt, info, graph),
            "graph_ops": graph.get("census", {}), "quantize": info.quantize,
            "variant": info.variant, "input_size": graph.get("input_size"),
            "hidden_size": graph.get("hidden_size"), "num_layers": graph.get("num_layers"),
            "output_size": graph.get("output_size")}


# ---- statistics --------------------------------------------------------------------------------
def stats(ns: np.ndarray) -> dict:
    """Latency statistics in microseconds from per-call nanoseconds."""
    us = np.asarray(ns, np.float64) / 1e3
    if us.size == 0:
        return {"count": 0, **{k: None for k in STAT_KEYS}}
    p50, p90, p99 = np.percentile(us, [50, 90, 99])
    return {"count": int(us.size), "mean": float(us.mean()), "std": float(us.std()),
            "min": float(us.min()), "p50": float(p50), "p90": float(p90), "p99": float(p99),
            "max": float(us.max())}


def _split(total: int, rounds: int) -> list[int]:
    """``total`` spread over ``rounds`` as evenly as whole numbers allow (the first get more)."""
    return [total // rounds + (1 if r < total % rounds else 0) for r in range(rounds)]


# ---- the rounds --------------------------------------------------------------------------------
def measure(configs: Sequence[Config], *, steps: int = DEFAULT_STEPS,
            warmup: int = DEFAULT_WARMUP, rounds: int = DEFAULT_ROUNDS, threads: int | None = 1,
            streams: Sequence[int] = (), stream_calls: int | dict | None = None, bare: bool = True,
            shared_worker: bool = False, keep_samples: bool = True,
            round_warmup: int | None = None,
            log: Callable[[str], None] = lambda s: None) -> list[dict]:
    """Time every configuration, interleaved in ``rounds``, each in its own worker process
    (``shared_worker=True``: all in one process, for large sweeps; memory is then not reported).

    The first round runs ``warmup`` untimed steps, later rounds ``round_warmup`` (default
    ``min(warmup, 50)``) to bring the model back into cache after the others ran. Returns one
    result dict per configuration (see :func:`slimedge.profile.run` for the fields); a
    configuration that fails carries ``"error"`` instead of timings.
    """
    if steps < 1 or warmup < 0 or rounds < 1:
        raise UsageError("steps must be >= 1, warmup >= 0 and rounds >= 1")
    rounds = min(rounds, steps)
    round_warmup = min(warmup, 50) if round_warmup is None else int(round_warmup)
    per_round = _split(steps, rounds)
    streams = [int(k) for k in streams if int(k) >= 1]
    if not isinstance(stream_calls, dict):
        stream_calls = {k: stream_calls for k in streams}
    calls = {k: (stream_calls.get(k) or max(5, steps // max(1, k // 8))) for k in streams}
    calls_round = {k: _split(v, rounds) for k, v in calls.items()}
    results = []
    for c in configs:
        facts = file_facts(c.path)
        facts.pop("quantize")  # the config's (the export's) is the one reported
        results.append({"config": asdict(c), **facts})
    workers: dict[int, WorkerProcess] = {}
    samples: dict[int, dict[str, list]] = {i: {} for i in range(len(configs))}
    try:
        if shared_worker:
            backends = sorted({c.backend for c in configs})
            w = WorkerProcess(threads)
            workers = {i: w for i in range(len(configs))}
            w.call("import", cmd="import", backends=backends)
            imports = {i: None for i in workers}
        else:
            for i, c in enumerate(configs):  # start all; they import in parallel
                workers[i] = WorkerProcess(threads)
                workers[i].send(cmd="import", backends=[c.backend])
            imports = {i: workers[i].recv(configs[i].label) for i in workers}
        alive = []
        for i, c in enumerate(configs):  # load one at a time, so load times are not contended
            log(f"loading {c.label}")
            try:
                load = workers[i].call(c.label, cmd="load", id=str(i), path=c.path,
                                       backend=c.backend, device=c.device, threads=threads,
                                       seed=i)
            except ProfileError as e:
                results[i]["error"] = str(e)
                continue
            results[i]["load"] = load
            if imports[i]:
                results[i]["import_ms"] = imports[i]["import_ms"]
                results[i].setdefault("memory_mb", {})["after_imports"] = imports[i]["rss_mb"]
            alive.append(i)
        for r in range(rounds):
            order = alive[r % len(alive):] + alive[:r % len(alive)] if alive else []
            log(f"round {r + 1}/{rounds}")
            for i in order:
                if "error" in results[i]:
                    continue
                try:
                    got = workers[i].call(configs[i].label, cmd="measure", id=str(i),
                                          steps=per_round[r],
                                          warmup=warmup if r == 0 else round_warmup,
                                          bare=bare,
                                          streams={str(k): calls_round[k][r] for k in streams
                                                   if calls_round[k][r] > 0})
                except ProfileError as e:
                    results[i]["error"] = str(e)
                    continue
                s = samples[i]
                for key in ("step_ns", "bare_ns", "invoke_ns"):
                    if key in got:
                        s.setdefault(key, []).extend(got[key])
                for k, v in got.get("streams_ns", {}).items():
                    s.setdefault(f"streams_{k}", []).extend(v)
        if not shared_worker:
            for i in alive:
                if "error" in results[i]:
                    continue
                fin = workers[i].call(configs[i].label, cmd="finish")
                _memory(results[i], fin)
    finally:
        for w in set(workers.values()):
            w.close()
    for i, res in enumerate(results):
        _summarise(res, samples[i], streams, keep_samples)
    return results


def _memory(res: dict, fin: dict) -> None:
    """A worker's memory figures (MB): after loading, what loading added, at the end, the peak."""
    load = res["load"]
    res.setdefault("memory_mb", {}).update({
        "loaded": load["rss_loaded_mb"], "model": load["rss_loaded_mb"] - load["rss_before_load_mb"],
        "end": fin["rss_mb"], "peak": fin["peak_rss_mb"]})


def _summarise(res: dict, s: dict[str, list], streams: list[int], keep_samples: bool) -> None:
    """A configuration's samples as statistics, in place (an error when it has none)."""
    if "error" in res or "step_ns" not in s:
        res.setdefault("error", "no measurements")
        return
    load = res.pop("load")
    res["load_ms"] = load["load_ms"]
    res["first_step_us"] = load["first_step_us"]
    res["backend_detail"] = load["backend_detail"]
    res["latency_us"] = stats(np.asarray(s["step_ns"]))
    res["steps_per_s"] = 1e6 / res["latency_us"]["mean"]
    if "bare_ns" in s:
        res["bare_us"] = stats(np.asarray(s["bare_ns"]))
        res["stream_overhead_us"] = res["latency_us"]["p50"] - res["bare_us"]["p50"]
    if "invoke_ns" in s:
        res["invoke_us"] = stats(np.asarray(s["invoke_ns"]))
    if streams:
        res["streams"] = {}
        for k in streams:
            st = stats(np.asarray(s.get(f"streams_{k}", []), np.int64))
            res["streams"][str(k)] = {
                "call_us": st, "stream_steps_per_s": (k * 1e6 / st["p50"]) if st["p50"] else None,
                "us_per_stream_step": (st["p50"] / k) if st["p50"] else None}
    if keep_samples:
        res["_samples_us"] = np.asarray(s["step_ns"], np.float64) / 1e3
