"""The worker processes: one per configuration, the JSON-lines protocol, and the timed loops.

``python -m slimedge.profile --worker`` (see ``__main__.py``) reads one JSON request per line on
stdin and writes one JSON reply per line on a private copy of the original stdout; fd 1 is
pointed at stderr so that library prints cannot corrupt the replies. Requests (``cmd``):

``import``   import the runtime and the backends' libraries (the "after imports" memory);
``load``     load a model file on a backend, take the first step, bind a bare backend call;
``measure``  time ``steps`` ``Stream.step`` calls (and the bare backend call, and StreamBatch
             calls for k streams) after ``warmup`` untimed ones; replies with nanoseconds;
``finish``   reply with the process's RSS and peak RSS, and exit.

Every reply has ``ok``; a failed request replies ``{"ok": false, "error": "..."}``.
:class:`WorkerProcess` is the parent's handle on one worker.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..errors import ProfileError

# the libraries a backend loads, imported up front so that "after imports" memory includes them
_LIBS = {"onnxruntime": ("onnxruntime",), "litert": ("ai_edge_litert.interpreter",),
         "torch": ("torch",), "numpy": ()}


# ---- memory of this process --------------------------------------------------------------------
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


# ---- the child side ----------------------------------------------------------------------------
class _Worker:
    """Models loaded in this process, timed on request (the child side of the protocol)."""

    def __init__(self) -> None:
        self.models: dict[str, dict] = {}

    def do_import(self, req: dict) -> dict:
        t0 = time.perf_counter()
        from .. import runtime  # noqa: F401

        for backend in req.get("backends", []):
            for lib in _LIBS.get(backend, ()):
                try:
                    importlib.import_module(lib)
                except ImportError:
                    pass
        return {"import_ms": (time.perf_counter() - t0) * 1e3, "rss_mb": _rss_mb(),
                "pid": os.getpid()}

    def do_load(self, req: dict) -> dict:
        from .. import runtime

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
        session = model.session
        if hasattr(session, "interpreter_for"):  # LiteRT: the interpreter call inside the binding
            entry["invoke"] = session.interpreter_for(1)[0].invoke
        self.models[req["id"]] = entry
        return {"load_ms": load_ns / 1e6, "first_step_us": first_ns / 1e3,
                "rss_before_load_mb": rss0, "rss_loaded_mb": _rss_mb(),
                "backend_detail": session.detail, "device": model.device,
                "input_size": m, "hidden_size": model.hidden_size,
                "num_layers": model.num_layers, "output_size": model.output_size}

    def do_measure(self, req: dict) -> dict:
        """Time ``steps`` Stream.step calls (and as many bare backend calls, and StreamBatch
        calls for each k in ``streams``) after ``warmup`` untimed ones."""
        e = self.models[req["id"]]
        steps, warmup = int(req.get("steps", 0)), int(req.get("warmup", 0))
        # Stream.step, the bare backend call it wraps and (LiteRT) the interpreter's invoke are
        # timed in turn within each step, so all three see the same moments of machine noise
        bare, invoke = (e["bare"].run, e["invoke"]) if req.get("bare", True) else (None, None)
        out = _time_steps(e["stream"].step, bare, invoke, e["frames"], steps, warmup)
        for k, calls in (req.get("streams") or {}).items():
            k, calls = int(k), int(calls)
            if k not in e["batch"]:
                rng = np.random.default_rng(k)
                frames = rng.standard_normal((4, k, e["frames"].shape[1])).astype(np.float32)
                e["batch"][k] = (e["model"].streams(k), frames)
            batch, frames = e["batch"][k]
            ns = _time_batch(batch.step, frames, calls, max(1, min(warmup, 5)))
            out.setdefault("streams_ns", {})[str(k)] = ns
        return out

    def do_finish(self, req: dict) -> dict:
        return {"rss_mb": _rss_mb(), "peak_rss_mb": _peak_rss_mb()}


def _time_steps(step, bare, invoke, frames: np.ndarray, steps: int, warmup: int) -> dict:
    """Per-call nanoseconds of ``step`` (and of ``bare`` and ``invoke`` when given, each timed
    right after it), over ``steps`` calls after ``warmup`` untimed ones."""
    mask = len(frames) - 1  # 64 frames: a power of two
    clock = time.perf_counter_ns
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
    out = {"step_ns": ns.tolist()}
    if bare is not None:
        out["bare_ns"] = bns.tolist()
    if invoke is not None:
        out["invoke_ns"] = ins.tolist()
    return out


def _time_batch(bstep, frames: np.ndarray, calls: int, warmup: int) -> list[int]:
    """Per-call nanoseconds of ``calls`` StreamBatch steps over ``frames`` (4, k, m)."""
    clock = time.perf_counter_ns
    for i in range(warmup):
        bstep(frames[i & 3])
    ns = np.empty(calls, np.int64)
    for i in range(calls):
        f = frames[i & 3]
        t0 = clock()
        bstep(f)
        ns[i] = clock() - t0
    return ns.tolist()


def main() -> int:
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


# ---- the parent side ---------------------------------------------------------------------------
def _worker_env(threads: int | None) -> dict:
    env = dict(os.environ)
    if threads:  # BLAS/OpenMP pools of numpy and torch follow the thread count too
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


class WorkerProcess:
    """The parent's handle on one worker process."""

    def __init__(self, threads: int | None = None) -> None:
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "slimedge.profile", "--worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, text=True, bufsize=1,
                                     env=_worker_env(threads))

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
