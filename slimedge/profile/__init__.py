"""Profiling: latency, memory, size and work per step, with the standard LSTM beside every number.

    from slimedge import profile
    report = profile.run(["model.safetensors"], backends=["onnxruntime", "litert"])
    for t in profile.tables(report): rich.print(t)
    profile.write_csv(report, "p.csv"); profile.plot(report, "p.png")

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

The package, by concept: :mod:`.plan` (what to measure: the configurations, from the format
table), :mod:`.worker` (the worker processes and their protocol), :mod:`.measure` (the file's
facts, the timing rounds, statistics, memory), :mod:`.report` (ratios, JSON, CSV, tables) and
:mod:`.plot` (the PNG). The functions ``plan``, ``measure`` and ``plot`` shadow their modules as
attributes of this package; reach a module itself with ``from slimedge.profile.plan import ...``
or ``importlib.import_module("slimedge.profile.plan")``.

``slimedge profile --target cortex-m4`` (also ``cortex-m0plus``, ``aarch64``) measures something
else: the model's C export on an emulated device (flash, RAM, instructions per step, estimated
time), beside LSTM0 and TensorFlow Lite Micro's arena; that is :mod:`.device` (``device.run``,
``device.tables``), on top of :mod:`slimedge.devices`.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

# beyond __all__, what the command line, benchmarks/ and the tests use from here
from .._report import machine as machine
from ..errors import UsageError
from .measure import DEFAULT_ROUNDS, DEFAULT_STEPS, DEFAULT_WARMUP
from .measure import file_facts as file_facts
from .measure import measure as measure
from .measure import stats as stats
from .plan import NO_GPU as NO_GPU
from .plan import Config as Config
from .plan import available_backends as available_backends
from .plan import cuda_available as cuda_available
from .plan import plan as plan
from .plot import plot
from .report import CSV_COLUMNS as CSV_COLUMNS
from .report import add_ratios as add_ratios
from .report import tables, write_csv, write_json
from .report import to_json as to_json
from .worker import ProfileError as ProfileError

DEFAULT_FRAME_MS = 10.0


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
    if not (frame_ms > 0 and frame_ms < float("inf")):  # NaN fails both
        raise UsageError(f"frame period must be a positive finite number of ms, got {frame_ms}")
    if workdir is not None and Path(workdir).exists() and not Path(workdir).is_dir():
        raise UsageError(f"--keep {workdir}: a file, not a folder; give a folder (new or "
                         f"existing) for the exported files")
    if streams < 1:
        raise UsageError(f"streams must be at least 1, got {streams}")
    from ..formats import LIMITS

    if threads is not None and not 1 <= threads <= LIMITS["threads"]:
        raise UsageError(f"threads must be at least 1 and at most {LIMITS['threads']}, got "
                         f"{threads}")
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


__all__ = ["run", "tables", "write_json", "write_csv", "plot"]
