"""Profiling: latency, memory, size and work per step, with the standard LSTM beside every number.

    from slimedge import profile
    report = profile.run(["model.safetensors"], backends=["onnxruntime", "litert"])
    profile.print_table(report); profile.write_csv(report, "p.csv"); profile.plot(report, "p.png")

What is measured, per configuration (a model file on one backend), in the conventions of
TFLite's ``benchmark_model`` and ``onnxruntime_perf_test``: file size, parameters, MACs per step
and op census (from the file); load time, first step, then per-step latency over ``steps`` timed
``Stream.step`` calls after ``warmup`` (mean, std, min, p50, p90, p99, max), steps per second, the
real-time factor at a frame period (mean step time / frame period: below 1 keeps up), the bare
backend call the step wraps (so ``Stream.step``'s own overhead shows), optionally ``StreamBatch``
throughput for k streams, and resident memory (after imports, after loading, and the process peak).

How, so that the numbers can be compared on a busy machine:

* every configuration runs in its **own worker process** (``python -m slimedge.profile
  --worker``, JSON lines on a private pipe), so its memory figures are its own;
* the workers stay alive and the parent **interleaves** them: the timed steps are split into
  rounds, and each round visits every configuration in turn (one worker runs at a time). Load or
  noise on the machine then falls on every configuration alike;
* every comparison is a **ratio of medians measured in the same run**: ``speedup`` =
  baseline p50 / this p50 (above 1: faster), ``size_ratio`` = this file / the baseline's file.

Baselines (``baseline="lstm"``, see :mod:`slimedge.baselines`): a standard LSTM (LSTM0) with the
same sizes and head through the same formats, quantisation and backends (``vs_lstm0``), and
``torch.nn.LSTM`` exported by ``torch.onnx`` (the fused ONNX LSTM operator) on onnxruntime, what
a user deploys today (``vs_torch_onnx``; int8-weight configurations are compared with its
``quantize_dynamic`` version).
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ._report import machine

DEFAULT_STEPS = 2000
DEFAULT_WARMUP = 200
DEFAULT_ROUNDS = 20
DEFAULT_FRAME_MS = 10.0
BASELINES = ("lstm", "none")
CPU_BACKENDS = ("onnxruntime", "litert", "torch", "numpy")
CUDA = "torch-cuda"  # the torch backend on a GPU, its step replayed from a CUDA graph
BACKEND_NAMES = (*CPU_BACKENDS, CUDA)
FORMAT_OF = {"onnxruntime": "onnx", "litert": "tflite", "torch": "safetensors",
             "numpy": "safetensors", CUDA: "safetensors"}
SUFFIX_OF = {"onnx": ".onnx", "tflite": ".tflite", "safetensors": ".safetensors"}
QUANTIZE = ("none", "dynamic", "int8")
ROLES = ("model", "lstm0", "torch.onnx")
STAT_KEYS = ("mean", "std", "min", "p50", "p90", "p99", "max")
NO_GPU = ("no GPU found (torch.cuda.is_available() is False): the torch CUDA backend, which "
          "replays each step from a CUDA graph, was not profiled")


class ProfileError(ValueError):
    """A configuration that cannot be profiled (bad file, backend error); the message says which."""


# ---- configurations ----------------------------------------------------------------------------
@dataclass
class Config:
    """One model file on one backend: what a worker loads and times."""

    label: str       # e.g. "LSTM6 litert dynamic"
    name: str        # the model's name: its variant, file stem, or the baseline's name
    role: str        # "model", "lstm0" (LSTM0 through the same path) or "torch.onnx"
    backend: str     # a runtime backend name
    device: str      # "cpu" or "cuda"
    path: str        # the file the runtime loads
    format: str      # onnx, tflite, safetensors
    quantize: str    # none, dynamic, int8
    source: str | None = None  # the checkpoint it was exported from, if any
    group: int = 0   # which profiled model it belongs to (baselines share their model's group)


def _backend_key(backend: str) -> tuple[str, str]:
    """``"torch-cuda"`` -> ("torch", "cuda"); others -> (name, "cpu")."""
    return ("torch", "cuda") if backend == CUDA else (backend, "cpu")


def available_backends() -> list[str]:
    """Installed CPU backends, in :data:`CPU_BACKENDS` order (no library is imported)."""
    from . import runtime

    have = set(runtime.available_backends())
    return [b for b in CPU_BACKENDS if b in have]


def cuda_available() -> bool:
    """Whether torch sees a GPU (False when torch is not installed)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def _label(name: str, backend: str, quantize: str) -> str:
    return " ".join(p for p in (name, backend, "" if quantize == "none" else quantize) if p)


def _file_config(path: Path) -> dict:
    """The slimedge config of a model file (checkpoint, ONNX or TFLite export)."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from . import checkpoint, ir

        ckpt = checkpoint.read(path)
        return {**ckpt.config, "graph": ir.lower(ckpt).summary()}
    if suffix == ".onnx":
        from .runtime._common import parse_config

        props = {p.key: p.value for p in _load_onnx(path).metadata_props}
        return parse_config(path, props.get("slimedge"), "ONNX model")
    if suffix == ".tflite":
        from .runtime._common import ModelFileError, parse_config
        from .runtime.litert import read_metadata

        try:
            meta = read_metadata(path.read_bytes())
        except ModelFileError as e:
            raise ProfileError(f"{path}: {e}") from None
        return parse_config(path, meta.get("slimedge"), "TFLite model")
    raise ProfileError(f"{path}: unknown model file type {path.suffix!r}; profile reads "
                       f".safetensors checkpoints and .onnx / .tflite exports")


def _load_onnx(path: Path):
    """The ONNX proto of ``path`` (weights stored outside it not loaded); ProfileError naming the
    file when it is not an ONNX model (onnx raises protobuf's DecodeError and others)."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except OSError:
        raise  # missing, unreadable: the message names the file
    except Exception as e:
        raise ProfileError(f"{path}: not a loadable ONNX model (truncated or another kind of "
                           f"file?): {str(e).strip() or type(e).__name__}") from None


def file_facts(path: str | os.PathLike) -> dict:
    """Size, parameters, MACs per step and op census of a model file (no backend needed)."""
    path = Path(path)
    config = _file_config(path)
    graph = config.get("graph", {})
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        proto = _load_onnx(path)
        ops = dict(sorted(Counter(n.op_type for n in proto.graph.node).items()))
    elif suffix == ".tflite":
        ops = dict((config.get("export") or {}).get("ops") or {})
    else:
        ops = dict(graph.get("census", {}))
    quantize = (config.get("export") or {}).get("quantize", "none")
    variant = ((config.get("lstm") or {}).get("variant") or {}).get("name")
    return {"size_bytes": path.stat().st_size, "params": graph.get("params"),
            "macs_per_step": graph.get("macs_per_step"), "ops": ops,
            "graph_ops": graph.get("census", {}), "quantize": quantize, "variant": variant,
            "input_size": graph.get("input_size"), "hidden_size": graph.get("hidden_size"),
            "num_layers": graph.get("num_layers"), "output_size": graph.get("output_size")}


def _export(source: Path, backend: str, quantize: str, out_dir: Path, stem: str, *,
            validate: bool, data=None) -> tuple[Path, dict | None]:
    """The file ``backend`` loads for checkpoint ``source`` (exported when needed).

    ``validate=False`` (the random-weight baselines: only their speed matters) skips the export
    checks; a quantised baseline is still calibrated on real frames, ``data`` (the profiled
    model's data set)."""
    fmt = FORMAT_OF[backend]
    if fmt == "safetensors":
        return source, None
    path = out_dir / f"{stem}{'' if quantize == 'none' else '.' + quantize}{SUFFIX_OF[fmt]}"
    if path.is_file():  # the same export asked for twice (e.g. for several backends)
        return path, None
    if not validate and quantize != "none":
        from .exporters import quantize as q

        q.quantize(source, path, format=fmt, quantize=quantize, data=data, validate=False)
        return path, None
    from . import exporters

    result = exporters.export(source, path, format=fmt, mode="step", quantize=quantize,
                              validate=validate)
    return path, (result.validation.to_dict() if result.validation else None)


def _model_data(config: dict):
    """The data splits a model's config records (for calibrating quantised baselines), or None."""
    rec = (config.get("info") or {}).get("data") or {}
    if not isinstance(rec, dict) or not rec.get("name"):
        return None
    from .exporters.quantize import model_data

    try:
        return model_data(config)
    except (ValueError, ImportError, OSError):
        return None


def plan(models: Sequence[str | os.PathLike | None], *, backends: Sequence[str] | None = None,
         quantize: Sequence[str] = ("none",), baseline: str = "lstm",
         workdir: str | os.PathLike, validate: bool = True,
         log: Callable[[str], None] = lambda s: None) -> tuple[list[Config], list[str], dict]:
    """The configurations to profile: every model × backend × quantisation, plus baselines.

    ``models``: checkpoints (exported here to each backend's format) or ``.onnx``/``.tflite``
    exports (profiled on the backend that reads them); None means the shipped default model.
    Returns (configs, notes, validation reports by file).
    """
    from . import baselines

    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; valid: {', '.join(BASELINES)}")
    for q in quantize:
        if q not in QUANTIZE:
            raise ValueError(f"unknown quantize mode {q!r}; valid: {', '.join(QUANTIZE)}")
    notes: list[str] = []
    have = available_backends()
    if backends is None or len(backends) == 0:
        wanted = list(have) + [CUDA]
    else:
        wanted = []
        for b in backends:
            b = {"cuda": CUDA, "torch:cuda": CUDA}.get(b, b)
            if b not in BACKEND_NAMES:
                raise ValueError(f"unknown backend {b!r}; valid: {', '.join(BACKEND_NAMES)}")
            if b not in wanted:
                wanted.append(b)
        missing = [b for b in wanted if _backend_key(b)[0] not in have]
        if missing:
            raise ValueError(f"backend(s) {', '.join(missing)} not installed here "
                             f"(installed: {', '.join(have) or 'none'})")
    if CUDA in wanted and not cuda_available():
        wanted.remove(CUDA)
        notes.append(NO_GPU)
        if not wanted:
            raise ValueError(NO_GPU)
    models = [Path(m) if m is not None else None for m in (models or [None])]
    for model in models:  # every file checked before any work starts
        if model is not None and not model.is_file():
            raise FileNotFoundError(f"{model}: no such model file")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    configs: list[Config] = []
    validations: dict[str, dict] = {}
    seen_names: Counter = Counter()

    def add(name, role, backend, path, quantize_, source, group):
        be, dev = _backend_key(backend)
        configs.append(Config(_label(name, backend, quantize_), name, role, be, dev, str(path),
                              FORMAT_OF[backend], quantize_, str(source) if source else None,
                              group))

    for group, model in enumerate(models):
        if model is None:
            from .zoo import default_model_path

            model = default_model_path()
        config = _file_config(model)
        variant = ((config.get("lstm") or {}).get("variant") or {}).get("name") or model.stem
        seen_names[variant] += 1
        name = variant if seen_names[variant] == 1 else f"{variant}#{seen_names[variant]}"
        suffix = model.suffix.lower()
        gdir = workdir / f"{group}-{name}"
        gdir.mkdir(exist_ok=True)
        if suffix == ".safetensors":
            source = model
            todo = [(b, q) for b in wanted for q in
                    (quantize if FORMAT_OF[b] != "safetensors" else ("none",))]
            # a checkpoint's float path is profiled on numpy/torch only once, whatever --quantize
            todo = list(dict.fromkeys(todo))
            for b, q in todo:
                log(f"exporting {name} for {b}{'' if q == 'none' else ' (' + q + ')'}")
                path, report = _export(source, b, q, gdir, name, validate=validate)
                if report:
                    validations[str(path)] = report
                add(name, "model", b, path, q, source, group)
            shape_from = model
        else:
            readers = [b for b in wanted if SUFFIX_OF[FORMAT_OF[b]] == suffix]
            if not readers:
                raise ValueError(f"{model}: none of the backends {', '.join(wanted)} reads "
                                 f"{suffix} files")
            q = (config.get("export") or {}).get("quantize", "none")
            todo = [(b, q) for b in readers]
            for b, _ in todo:
                add(name, "model", b, model, q, None, group)
            source = None
            shape_from = config
        if baseline == "none":
            continue
        # baselines are named for their model when several models (or LSTM0 itself) are profiled
        tag = f" [{name}]" if group > 0 or name == "LSTM0" else ""
        # LSTM0 through exactly the same formats, quantisation and backends
        lstm0 = baselines.lstm0_checkpoint(shape_from, gdir / "LSTM0.safetensors")
        data = _model_data(config) if any(q != "none" for _, q in todo) else None
        for b, q in todo:
            if q != "none" and data is None:
                notes.append(f"LSTM0 {b} {q} not profiled: a quantised baseline is calibrated on "
                             f"the model's data set, and {model.name} records none")
                continue
            log(f"exporting the LSTM0 baseline for {b}{'' if q == 'none' else ' (' + q + ')'}")
            path, _ = _export(lstm0, b, q, gdir, "LSTM0", validate=False, data=data)
            add("LSTM0" + tag, "lstm0", b, path, q, lstm0, group)
        # torch.nn.LSTM through torch.onnx on onnxruntime, float and (for int8 weights) dynamic
        if "onnxruntime" in have:
            qs = ["none"] + (["dynamic"] if any(q != "none" for _, q in todo) else [])
            for q in qs:
                log(f"exporting torch.nn.LSTM with torch.onnx{'' if q == 'none' else ' (' + q + ')'}")
                path = gdir / f"torch_lstm{'' if q == 'none' else '.' + q}.onnx"
                try:
                    baselines.torch_onnx_lstm(shape_from, path, dynamic=(q != "none"))
                except ImportError as e:
                    notes.append(f"torch.onnx baseline skipped: {e}")
                    break
                add(baselines.TORCH_ONNX + tag, "torch.onnx", "onnxruntime", path, q, None, group)
    return configs, notes, validations


# ---- statistics and ratios ---------------------------------------------------------------------
def stats(ns: np.ndarray) -> dict:
    """Latency statistics in microseconds from per-call nanoseconds."""
    us = np.asarray(ns, np.float64) / 1e3
    if us.size == 0:
        return {"count": 0, **{k: None for k in STAT_KEYS}}
    p50, p90, p99 = np.percentile(us, [50, 90, 99])
    return {"count": int(us.size), "mean": float(us.mean()), "std": float(us.std()),
            "min": float(us.min()), "p50": float(p50), "p90": float(p90), "p99": float(p99),
            "max": float(us.max())}


def _ratio(num, den) -> float | None:
    if num is None or den is None or not den:
        return None
    return float(num) / float(den)


def _find(results: list[dict], **want) -> dict | None:
    for r in results:
        if all(r["config"].get(k) == v for k, v in want.items()) and r.get("latency_us"):
            return r
    return None


def add_ratios(results: list[dict]) -> None:
    """Each result's ratios to the baselines measured in the same run (in place).

    ``vs_lstm0``: the LSTM0 of the same group, backend, device and quantisation;
    ``vs_torch_onnx``: torch.onnx's LSTM on onnxruntime, the int8-weight one for quantised
    configurations when it was profiled. ``speedup`` = baseline p50 / this p50; ``size_ratio`` =
    this file's bytes / the baseline's; ``memory_ratio`` = this peak RSS / the baseline's.
    """
    for r in results:
        c = r["config"]
        refs = {
            "vs_lstm0": _find(results, role="lstm0", group=c["group"], backend=c["backend"],
                              device=c["device"], quantize=c["quantize"]),
            "vs_torch_onnx": (_find(results, role="torch.onnx", group=c["group"],
                                    quantize="dynamic" if c["quantize"] != "none" else "none")
                              or _find(results, role="torch.onnx", group=c["group"],
                                       quantize="none")),
        }
        for key, ref in refs.items():
            if ref is None or ref is r or not r.get("latency_us"):
                r[key] = None
                continue
            r[key] = {
                "baseline": ref["config"]["label"],
                "same_backend": ref["config"]["backend"] == c["backend"],
                "speedup": _ratio(ref["latency_us"]["p50"], r["latency_us"]["p50"]),
                "size_ratio": _ratio(r["size_bytes"], ref["size_bytes"]),
                "params_ratio": _ratio(r["params"], ref["params"]),
                "macs_ratio": _ratio(r["macs_per_step"], ref["macs_per_step"]),
                "memory_ratio": _ratio((r.get("memory_mb") or {}).get("peak"),
                                       (ref.get("memory_mb") or {}).get("peak")),
            }


# ---- the worker: one process per configuration ---------------------------------------------------
_LIBS = {"onnxruntime": ("onnxruntime",), "litert": ("ai_edge_litert.interpreter",),
         "torch": ("torch",), "numpy": ()}


def _rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:  # /proc/self/statm: pages
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM (ru_maxrss survives exec on Linux, so a worker would
    inherit its parent's peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


class _Worker:
    """Models loaded in this process, timed on request (the child side of the protocol)."""

    def __init__(self) -> None:
        self.models: dict[str, dict] = {}

    def do_import(self, req: dict) -> dict:
        import importlib

        t0 = time.perf_counter()
        from . import runtime  # noqa: F401

        for backend in req.get("backends", []):
            for lib in _LIBS.get(backend, ()):
                try:
                    importlib.import_module(lib)
                except ImportError:
                    pass
        return {"import_ms": (time.perf_counter() - t0) * 1e3, "rss_mb": _rss_mb(),
                "pid": os.getpid()}

    def do_load(self, req: dict) -> dict:
        from . import runtime

        threads = req.get("threads")
        rss0 = _rss_mb()
        t0 = time.perf_counter_ns()
        model = runtime.load(req["path"], backend=req["backend"], threads=threads,
                             device=req.get("device"))
        load_ns = time.perf_counter_ns() - t0
        stream = model.stream()
        rng = np.random.default_rng(req.get("seed", 0))
        m = model.input_size
        frames = rng.standard_normal((64, m)).astype(np.float32)
        t0 = time.perf_counter_ns()
        stream.step(frames[0])
        first_ns = time.perf_counter_ns() - t0
        bare = model.bind(1)
        np.copyto(bare.x, frames[:1])
        entry = {"model": model, "stream": stream, "bare": bare, "frames": frames, "batch": {},
                 "invoke": None}
        if model.backend == "litert":  # the interpreter call inside the binding, for reference
            session = model.session
            if hasattr(session, "interpreter_for"):
                entry["invoke"] = session.interpreter_for(1)[0].invoke
        self.models[req["id"]] = entry
        return {"load_ms": load_ns / 1e6, "first_step_us": first_ns / 1e3,
                "rss_before_load_mb": rss0, "rss_loaded_mb": _rss_mb(),
                "backend_detail": model.session.detail, "device": model.device,
                "input_size": m, "hidden_size": model.hidden_size,
                "num_layers": model.num_layers, "output_size": model.output_size}

    def do_measure(self, req: dict) -> dict:
        """Time ``steps`` Stream.step calls (and as many bare backend calls, and StreamBatch
        calls for each k in ``streams``) after ``warmup`` untimed ones."""
        e = self.models[req["id"]]
        frames = e["frames"]
        mask = len(frames) - 1  # 64 frames: a power of two
        clock = time.perf_counter_ns
        steps, warmup = int(req.get("steps", 0)), int(req.get("warmup", 0))
        out: dict = {}

        # Stream.step, the bare backend call it wraps and (LiteRT) the interpreter's invoke are
        # timed in turn within each step, so all three see the same moments of machine noise
        step, bare, invoke = e["stream"].step, e["bare"].run, e["invoke"]
        if not req.get("bare", True):
            bare = invoke = None
        for i in range(warmup):
            step(frames[i & mask])
            if bare is not None:
                bare()
        ns, bns, ins = (np.empty(steps, np.int64) for _ in range(3))
        if bare is None:
            for i in range(steps):
                f = frames[i & mask]
                t0 = clock()
                step(f)
                ns[i] = clock() - t0
        elif invoke is None:
            for i in range(steps):
                f = frames[i & mask]
                t0 = clock()
                step(f)
                t1 = clock()
                bare()
                t2 = clock()
                ns[i], bns[i] = t1 - t0, t2 - t1
        else:
            for i in range(steps):
                f = frames[i & mask]
                t0 = clock()
                step(f)
                t1 = clock()
                bare()
                t2 = clock()
                invoke()
                t3 = clock()
                ns[i], bns[i], ins[i] = t1 - t0, t2 - t1, t3 - t2
        out["step_ns"] = ns.tolist()
        if bare is not None:
            out["bare_ns"] = bns.tolist()
        if invoke is not None:
            out["invoke_ns"] = ins.tolist()
        for k, calls in (req.get("streams") or {}).items():
            k, calls = int(k), int(calls)
            if k not in e["batch"]:
                batch = e["model"].streams(k)
                rng = np.random.default_rng(k)
                e["batch"][k] = (batch, rng.standard_normal((4, k, frames.shape[1])).astype(np.float32))
            batch, fr = e["batch"][k]
            bstep = batch.step
            for i in range(max(1, min(warmup, 5))):
                bstep(fr[i & 3])
            ns = np.empty(calls, np.int64)
            for i in range(calls):
                f = fr[i & 3]
                t0 = clock()
                bstep(f)
                ns[i] = clock() - t0
            out.setdefault("streams_ns", {})[str(k)] = ns.tolist()
        return out

    def do_unload(self, req: dict) -> dict:
        self.models.pop(req["id"], None)
        return {}

    def do_finish(self, req: dict) -> dict:
        return {"rss_mb": _rss_mb(), "peak_rss_mb": _peak_rss_mb()}


def _worker_main() -> int:
    """``python -m slimedge.profile --worker``: requests on stdin, one JSON line per reply on the
    original stdout; fd 1 is pointed at stderr so that library prints cannot corrupt replies."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    worker = _Worker()
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        cmd = req.get("cmd")
        try:
            reply = {"ok": True, **getattr(worker, f"do_{cmd}")(req)}
        except Exception as e:  # reported to the parent, which names the configuration
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        proto.write(json.dumps(reply) + "\n")
        if cmd == "finish":
            break
    return 0


def _worker_env(threads: int | None) -> dict:
    env = dict(os.environ)
    if threads:  # BLAS/OpenMP pools of numpy and torch follow the thread count too
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


class WorkerProcess:
    """The parent's handle on one worker process."""

    def __init__(self, threads: int | None = None, backends: Iterable[str] = ()) -> None:
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "slimedge.profile", "--worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, text=True, bufsize=1,
                                     env=_worker_env(threads))
        self._pending_import = list(backends)
        self._sent_import = False

    def send(self, **req) -> None:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()

    def recv(self, what: str) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=10)
            self._err.seek(0)
            tail = self._err.read().decode(errors="replace").strip().splitlines()[-5:]
            raise ProfileError(f"{what}: the worker process exited (code {self.proc.returncode})"
                               + (": " + " | ".join(tail) if tail else ""))
        reply = json.loads(line)
        if not reply.pop("ok", False):
            raise ProfileError(f"{what}: {reply.get('error')}")
        return reply

    def call(self, what: str, **req) -> dict:
        self.send(**req)
        return self.recv(what)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err.close()


# ---- measuring ---------------------------------------------------------------------------------
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
    result dict per configuration (see :func:`run` for the fields); a configuration
    that fails carries ``"error"`` instead of timings.
    """
    if steps < 1 or warmup < 0 or rounds < 1:
        raise ValueError("steps must be >= 1, warmup >= 0 and rounds >= 1")
    rounds = min(rounds, steps)
    round_warmup = min(warmup, 50) if round_warmup is None else int(round_warmup)
    per_round = [steps // rounds + (1 if r < steps % rounds else 0) for r in range(rounds)]
    streams = [int(k) for k in streams if int(k) >= 1]
    if not isinstance(stream_calls, dict):
        stream_calls = {k: stream_calls for k in streams}
    calls = {k: (stream_calls.get(k) or max(5, steps // max(1, k // 8))) for k in streams}
    calls_round = {k: [v // rounds + (1 if r < v % rounds else 0) for r in range(rounds)]
                   for k, v in calls.items()}
    results = []
    for c in configs:
        facts = file_facts(c.path)
        facts.pop("quantize")  # the config's (the export's) is the one reported
        results.append({"config": asdict(c), **facts})
    backends = sorted({c.backend for c in configs})
    workers: dict[int, WorkerProcess] = {}
    samples: dict[int, dict[str, list]] = {i: {} for i in range(len(configs))}
    try:
        if shared_worker:
            w = WorkerProcess(threads, backends)
            workers = {i: w for i in range(len(configs))}
            w.call("import", cmd="import", backends=backends)
            imports = {i: None for i in workers}
        else:
            for i, c in enumerate(configs):  # start all; they import in parallel
                workers[i] = WorkerProcess(threads, [c.backend])
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
                mem = results[i].setdefault("memory_mb", {})
                mem.update({"loaded": results[i]["load"]["rss_loaded_mb"],
                            "model": results[i]["load"]["rss_loaded_mb"]
                            - results[i]["load"]["rss_before_load_mb"],
                            "end": fin["rss_mb"], "peak": fin["peak_rss_mb"]})
    finally:
        for w in set(workers.values()):
            w.close()
    for i, res in enumerate(results):
        s = samples[i]
        if "error" in res or "step_ns" not in s:
            res.setdefault("error", "no measurements")
            continue
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
    return results


# ---- the whole run -----------------------------------------------------------------------------
def run(models: Sequence[str | os.PathLike | None] = (None,), *,
        backends: Sequence[str] | None = None, quantize: Sequence[str] = ("none",),
        baseline: str = "lstm", threads: int | None = 1, steps: int = DEFAULT_STEPS,
        warmup: int = DEFAULT_WARMUP, rounds: int = DEFAULT_ROUNDS, streams: int = 1,
        frame_ms: float = DEFAULT_FRAME_MS, workdir: str | os.PathLike | None = None,
        validate: bool = True, log: Callable[[str], None] = lambda s: None) -> dict:
    """Profile ``models`` (None: the shipped default) on ``backends`` (None: every installed one,
    and the torch CUDA backend when a GPU is present) with the baselines; returns the report.

    The report (JSON-able but for per-step samples under ``"_samples_us"``, which :func:`plot`
    reads and :func:`to_json` drops) has ``machine``, ``settings``, ``notes`` and ``results``: per
    configuration its ``config``, file facts (``size_bytes``, ``params``, ``macs_per_step``,
    ``ops``), ``load_ms``, ``first_step_us``, ``latency_us`` (count, mean, std, min, p50, p90, p99,
    max), ``steps_per_s``, ``rtf``, ``bare_us`` and ``stream_overhead_us``, ``memory_mb``
    (after_imports, loaded, model, end, peak), ``streams`` (with ``streams`` > 1), and the ratios
    ``vs_lstm0`` / ``vs_torch_onnx`` (see :func:`add_ratios`).
    """
    if frame_ms <= 0:
        raise ValueError(f"frame period must be positive, got {frame_ms} ms")
    if streams < 1:
        raise ValueError(f"streams must be at least 1, got {streams}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    started = time.time()
    own_dir = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="slimedge-profile-")) if own_dir else Path(workdir)
    try:
        load_before = list(os.getloadavg())
        configs, notes, validations = plan(list(models) or [None], backends=backends,
                                           quantize=quantize, baseline=baseline,
                                           workdir=workdir, validate=validate, log=log)
        results = measure(configs, steps=steps, warmup=warmup, rounds=rounds, threads=threads,
                          streams=[streams] if streams > 1 else [], log=log)
    finally:
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)
    for r in results:
        if r.get("latency_us"):
            r["rtf"] = r["latency_us"]["mean"] / (frame_ms * 1e3)
        if own_dir:
            r["config"]["path"] = Path(r["config"]["path"]).name
        if r["config"]["path"] in validations:
            r["validation"] = validations[r["config"]["path"]]
    add_ratios(results)
    mach = machine()
    mach["loadavg_before"] = load_before
    if max(load_before[0], mach["loadavg"][0]) > (mach["cores"] or 1):
        notes.append(f"the machine was busy (1-minute load average {load_before[0]:.1f} before, "
                     f"{mach['loadavg'][0]:.1f} after, on {mach['cores']} cores): absolute times "
                     f"are inflated; the ratios, measured interleaved, hold better")
    for r in results:
        if "error" in r:
            notes.append(f"{r['config']['label']}: {r['error']}")
    return {"machine": mach, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "settings": {"steps": steps, "warmup": warmup, "rounds": rounds, "threads": threads,
                         "streams": streams, "frame_ms": frame_ms, "baseline": baseline,
                         "quantize": list(quantize), "batch": 1},
            "elapsed_s": time.time() - started, "notes": notes, "results": results}


@contextlib.contextmanager
def quiet_native_output():
    """Silence what native libraries write to fd 2 (LiteRT's "INFO: Created TensorFlow Lite
    XNNPACK delegate", onnxruntime.quantization's root-logger warnings) while exporting.

    Yields a text stream on the original stderr for progress output. fd 2 is restored before an
    exception leaves the block, so tracebacks and error messages still show."""
    import logging

    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    root = logging.getLogger()
    level = root.level
    real = os.fdopen(os.dup(saved), "w", buffering=1)
    try:
        os.dup2(devnull, 2)
        root.setLevel(logging.ERROR)
        yield real
    finally:
        real.flush()
        root.setLevel(level)
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
        real.close()


# ---- output ------------------------------------------------------------------------------------
def to_json(report: dict) -> dict:
    """The report without the per-step samples (those are for :func:`plot`)."""
    out = dict(report)
    out["results"] = [{k: v for k, v in r.items() if not k.startswith("_")}
                      for r in report["results"]]
    return out


def write_json(report: dict, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(report), indent=2) + "\n")
    return path


CSV_COLUMNS = ["label", "name", "role", "backend", "device", "format", "quantize", "size_bytes",
               "params", "macs_per_step", "ops", "load_ms", "first_step_us",
               *[f"{k}_us" for k in STAT_KEYS], "count", "steps_per_s", "rtf", "bare_p50_us",
               "stream_overhead_us", "memory_after_imports_mb", "memory_loaded_mb",
               "memory_peak_mb", "speedup_vs_lstm0", "size_ratio_vs_lstm0",
               "speedup_vs_torch_onnx", "size_ratio_vs_torch_onnx", "error"]


def rows(report: dict) -> list[dict]:
    """One flat row per configuration (the CSV's rows)."""
    out = []
    for r in report["results"]:
        c, lat, mem = r["config"], r.get("latency_us") or {}, r.get("memory_mb") or {}
        row = {k: c.get(k) for k in ("label", "name", "role", "backend", "device", "format",
                                     "quantize")}
        row.update(size_bytes=r.get("size_bytes"), params=r.get("params"),
                   macs_per_step=r.get("macs_per_step"),
                   ops=" ".join(f"{k}:{v}" for k, v in (r.get("ops") or {}).items()),
                   load_ms=r.get("load_ms"), first_step_us=r.get("first_step_us"),
                   count=lat.get("count"), steps_per_s=r.get("steps_per_s"), rtf=r.get("rtf"),
                   bare_p50_us=(r.get("bare_us") or {}).get("p50"),
                   stream_overhead_us=r.get("stream_overhead_us"),
                   memory_after_imports_mb=mem.get("after_imports"),
                   memory_loaded_mb=mem.get("loaded"), memory_peak_mb=mem.get("peak"),
                   error=r.get("error"))
        for k in STAT_KEYS:
            row[f"{k}_us"] = lat.get(k)
        for key, name in (("vs_lstm0", "lstm0"), ("vs_torch_onnx", "torch_onnx")):
            ref = r.get(key) or {}
            row[f"speedup_vs_{name}"] = ref.get("speedup")
            row[f"size_ratio_vs_{name}"] = ref.get("size_ratio")
        out.append(row)
    return out


def write_csv(report: dict, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for row in rows(report):
            w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return path


def _fmt(v, spec: str = ".1f", none: str = "–") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return none
    return format(v, spec)


def _size(b) -> str:
    if b is None:
        return "–"
    return f"{b / 1024:.1f} KB" if b < 2**20 else f"{b / 2**20:.2f} MB"


def _times(x) -> str:
    return "–" if x is None else f"{x:.2f}×"


def tables(report: dict) -> list:
    """The report as rich Tables, side by side per configuration: latency, then size and memory."""
    from rich.table import Table

    s = report["settings"]
    style = {"model": "bold", "lstm0": "dim", "torch.onnx": "yellow"}
    ok = [r for r in report["results"] if r.get("latency_us")]
    lat_t = Table(title=(f"Per-step latency (µs), batch 1, {s['threads']} thread(s): "
                         f"{s['steps']} steps after {s['warmup']} warm-up, interleaved in "
                         f"{s['rounds']} rounds"),
                  caption=("× = the baseline's p50 / this p50, measured in the same run (above 1:"
                           f" faster). RTF = mean step / {s['frame_ms']:g} ms frame period."),
                  caption_justify="left")
    for col in ("configuration", "p50", "p90", "p99", "mean ± std", "min", "max", "steps/s",
                "RTF", "× LSTM0", "× torch.onnx"):
        lat_t.add_column(col, justify="left" if col == "configuration" else "right",
                         no_wrap=col != "configuration")
    for r in ok:
        lat, c = r["latency_us"], r["config"]
        l0, tox = r.get("vs_lstm0") or {}, r.get("vs_torch_onnx") or {}
        lat_t.add_row(c["label"], _fmt(lat["p50"]), _fmt(lat["p90"]), _fmt(lat["p99"]),
                      f"{lat['mean']:.1f} ± {lat['std']:.1f}", _fmt(lat["min"]),
                      _fmt(lat["max"], ".0f"), _fmt(r["steps_per_s"], ",.0f"),
                      _fmt(r.get("rtf"), ".4f"), _times(l0.get("speedup")),
                      _times(tox.get("speedup")), style=style.get(c["role"]))
    size_t = Table(title="Size, work, load and memory",
                   caption=("size × = this file / the baseline's. step overhead = Stream.step p50 "
                            "- the bare backend call's p50. peak = the worker process's peak RSS "
                            "(VmHWM); model = RSS added by loading."), caption_justify="left")
    for col in ("configuration", "file", "size × LSTM0", "size × torch.onnx", "params", "MACs/step",
                "ops", "load ms", "1st step µs", "step overhead µs", "peak MB", "model MB"):
        size_t.add_column(col, justify="left" if col == "configuration" else "right",
                          no_wrap=col != "configuration")
    for r in report["results"]:
        c, mem = r["config"], r.get("memory_mb") or {}
        l0, tox = r.get("vs_lstm0") or {}, r.get("vs_torch_onnx") or {}
        if r.get("error"):
            size_t.add_row(c["label"], _size(r.get("size_bytes")), *["–"] * 10, style="red")
            continue
        size_t.add_row(c["label"], _size(r["size_bytes"]), _times(l0.get("size_ratio")),
                       _times(tox.get("size_ratio")), _fmt(r["params"], ","),
                       _fmt(r["macs_per_step"], ","), _fmt(sum((r.get("ops") or {}).values()), "d"),
                       _fmt(r["load_ms"]), _fmt(r["first_step_us"]),
                       _fmt(r.get("stream_overhead_us"), ".2f"), _fmt(mem.get("peak"), ".0f"),
                       _fmt(mem.get("model"), ".1f"), style=style.get(c["role"]))
    out = [lat_t, size_t]
    extra = [r for r in ok if r.get("streams")]
    if extra:
        k = s["streams"]
        t = Table(title=f"{k} streams stepped together (one StreamBatch call per step)")
        for col in ("configuration", "call p50 µs", "µs per stream-step", "stream-steps/s"):
            t.add_column(col, justify="left" if col == "configuration" else "right")
        for r in extra:
            st = r["streams"][str(k)]
            t.add_row(r["config"]["label"], _fmt(st["call_us"]["p50"]),
                      _fmt(st["us_per_stream_step"], ".2f"), _fmt(st["stream_steps_per_s"], ",.0f"),
                      style=style.get(r["config"]["role"]))
        out.append(t)
    return out


def print_table(report: dict, console=None) -> None:
    """Print :func:`tables` and the report's notes."""
    from rich.console import Console

    console = console or Console()
    for t in tables(report):
        console.print(t)
    for note in report.get("notes", []):
        console.print(f"note: {note}", style="dim", highlight=False)


_COLOURS = {"model": "#1f77b4", "lstm0": "#7f7f7f", "torch.onnx": "#d62728"}


def plot(report: dict, path: str | os.PathLike) -> Path:
    """A PNG a person can read at a glance: left, each configuration's per-step latency
    distribution (box: p25-p75, line: p50, whiskers: p1-p99); right, each configuration's file
    size and p50 latency, with the baselines in grey (LSTM0) and red (torch.onnx)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    # minor ticks labelled only at 2 and 5 of each decade, so the log axes stay readable
    plain_minor = FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else "")

    res = [r for r in report["results"] if r.get("latency_us")]
    if not res:
        raise ValueError("nothing to plot: no configuration was measured")
    n = len(res)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, max(4.0, 0.42 * n + 1.8)),
                                   gridspec_kw={"width_ratios": [1.25, 1]})
    data = [r["_samples_us"] if "_samples_us" in r else
            np.array([r["latency_us"][k] for k in ("min", "p50", "p90", "p99", "max")])
            for r in res]
    labels = [r["config"]["label"] for r in res]
    pos = np.arange(n)[::-1]
    box = dict(positions=pos, whis=(1, 99), showfliers=False, widths=0.6, patch_artist=True,
               medianprops={"color": "black"})
    try:
        bp = ax1.boxplot(data, orientation="horizontal", **box)  # matplotlib >= 3.10
    except TypeError:
        bp = ax1.boxplot(data, vert=False, **box)
    for patch, r in zip(bp["boxes"], res):
        patch.set_facecolor(_COLOURS.get(r["config"]["role"], "#1f77b4"))
        patch.set_alpha(0.55)
    for y, r in zip(pos, res):
        lat = r["latency_us"]
        ax1.text(lat["p99"], y, f"  {lat['p50']:.1f} µs", va="center", fontsize=8)
    ax1.set_yticks(pos, labels, fontsize=8)
    ax1.set_xscale("log")
    ax1.xaxis.set_major_formatter(plain)
    ax1.set_xlabel("per-step latency, µs (log; box p25–p75, line p50, whiskers p1–p99)")
    ax1.set_title("Latency distribution per configuration")
    ax1.grid(axis="x", alpha=0.3, which="both")

    for r in res:
        c = r["config"]
        marker = {"onnxruntime": "o", "litert": "s", "torch": "^", "numpy": "D"}.get(c["backend"], "o")
        ax2.scatter(r["size_bytes"] / 1024, r["latency_us"]["p50"], s=60, marker=marker,
                    color=_COLOURS.get(c["role"]), alpha=0.8,
                    edgecolors="black" if c["quantize"] != "none" else "none")
        ref = r.get("vs_lstm0") or r.get("vs_torch_onnx")
        tag = c["label"]
        if ref and ref.get("speedup") and c["role"] == "model":
            tag += f"\n{ref['speedup']:.2f}× faster, {1 / ref['size_ratio']:.1f}× smaller" \
                   f" than {ref['baseline']}" if ref.get("size_ratio") else ""
        ax2.annotate(tag, (r["size_bytes"] / 1024, r["latency_us"]["p50"]), fontsize=6.5,
                     xytext=(4, 3), textcoords="offset points")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    for axis in (ax2.xaxis, ax2.yaxis):
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(plain_minor)
    ax2.set_xlabel("file size, KB (log)")
    ax2.set_ylabel("p50 latency, µs (log)")
    ax2.set_title("Size and latency against the baselines (lower left is better)")
    ax2.grid(alpha=0.3, which="both")
    handles = [Line2D([], [], marker="o", linestyle="", color=col, label=role)
               for role, col in (("profiled model", _COLOURS["model"]),
                                 ("LSTM0, same path", _COLOURS["lstm0"]),
                                 ("torch.onnx LSTM", _COLOURS["torch.onnx"]))]
    handles += [Line2D([], [], marker=m, linestyle="", color="black", fillstyle="none", label=b)
                for b, m in (("onnxruntime", "o"), ("litert", "s"), ("torch", "^"), ("numpy", "D"))
                if any(r["config"]["backend"] == b for r in res)]
    ax2.legend(handles=handles, fontsize=7, loc="best")
    m = report.get("machine", {})
    s = report.get("settings", {})
    fig.suptitle(f"slimedge profile — {m.get('cpu', '')}, {s.get('threads')} thread(s), "
                 f"batch 1, {report.get('date', '')}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":  # pragma: no cover - the worker entry point
    if sys.argv[1:] == ["--worker"]:
        sys.exit(_worker_main())
    sys.exit("usage: python -m slimedge.profile --worker (the profiler starts it; see "
             "`slimedge profile --help`)")
