"""Quantised exports: :func:`quantize` finds the format's quantizer, then judges the file on the task.

    quantize(graph_or_path, path, *, format, quantize, checkpoint=None, data=None,
             validate=True, accuracy_tolerance=0.02, mode="step", **options) -> dict

The quantizer comes from the table of formats (:mod:`slimedge.formats`: a row's exporter offers
one function per mode, e.g. :func:`slimedge.exporters.onnx_quantize.int8`), all with one signature,
``quantizer(graph, path, *, mode, splits, options) -> dict``; ``options`` is a
:class:`QuantizeOptions`, which holds every quantizer option with its default, so a misspelt
option raises :class:`~slimedge.errors.UsageError` whatever the format. Calibration (the float
model's real rollouts of the training split, value ranges) is :mod:`.calibration`.

Validation is task-level (:func:`task_check`): accuracy on the validation split, float IR against
the quantised file, must stay within ``accuracy_tolerance`` (default 2.0 points); and the state
drift of the quantised file against the float64 IR over a 1,000-step closed-loop rollout of real
frames is reported (not judged: a recurrent state may drift while decisions hold).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import formats, ir, metrics
from ..checkpoint import Checkpoint
from ..errors import QuantizationError, UsageError
from .calibration import DEFAULT_CALIBRATION_SAMPLES, stream_frames

DEFAULT_ACCURACY_TOLERANCE = 0.02   # export-time check: val accuracy within 2 points of float
DRIFT_STEPS = 1000
DEFAULT_STATE_BITS = 16             # TFLite int8: the cell-state path in int16 (see the README)
EVAL_BATCH = 1  # streams per call when judging a file: the streaming deployment's batch
# loose guards for export()'s max-diff check against the float64 model (100 steps, 2 streams, one
# from a random state): they catch a broken file; the accuracy statement is task_check's
ATOL = {"dynamic": 2.0, "int8": 2.0}


@dataclass(frozen=True)
class QuantizeOptions:
    """Every quantizer option, with its default; each quantizer reads the ones it uses."""

    calibration_samples: int | None = DEFAULT_CALIBRATION_SAMPLES
    """int8: training sequences whose float rollouts calibrate (None: the whole split)."""
    seed: int = 0
    """int8: the seed of the calibration subset."""
    per_channel: bool = False
    """ONNX: one weight scale per output channel (measured worse here; per tensor by default)."""
    scope: str = "matmul"
    """ONNX int8: "matmul" quantises the Gemms' inputs only, "all" every op onnxruntime can."""
    state_bits: int = DEFAULT_STATE_BITS
    """TFLite int8: the cell-state path in 16 or 8 bits."""
    act_bits: int = 8
    """TFLite int8: the other activations in 8 or 16 bits."""
    compat: str = "litert"
    """TFLite: the target interpreter, "litert", "tflite-runtime" (per-tensor weight scales) or
    "tflm" (TensorFlow Lite Micro: its ops only, no ``dynamic``)."""
    io: str = "float"
    """TFLite int8: "float" inputs and outputs, or "int": x, h, c, y, h_next, c_next in their
    integer types (no float conversion on a device); their quantisation is in the metadata."""
    ranges: Mapping[str, tuple[float, float]] | None = None
    """TFLite int8: calibrated value ranges to use instead of calibrating (:func:`calibrate`)."""

    @classmethod
    def of(cls, **options: Any) -> "QuantizeOptions":
        """The options given by keyword; an unknown name raises UsageError listing the valid ones."""
        valid = [f.name for f in dataclasses.fields(cls)]
        bad = [k for k in options if k not in valid]
        if bad:
            raise UsageError(f"unknown quantisation option{'s' if len(bad) > 1 else ''} "
                             f"{', '.join(map(repr, bad))}; valid: {', '.join(valid)}")
        opts = cls(**options)
        if opts.io not in ("float", "int"):
            raise UsageError(f"unknown io {opts.io!r}; valid: float, int")
        return opts

    def check_for(self, format: str, quantize: str) -> "QuantizeOptions":
        """Refuse options that do not apply to ``format`` files quantised ``quantize``."""
        if self.io != "float" and (format != "tflite" or quantize != "int8"):
            raise UsageError(f"io={self.io!r} (integer inputs and outputs) is for TFLite int8 "
                             f"files, not {format} {quantize}")
        return self


# ---- the model's data -------------------------------------------------------------------------
def model_data(model: Checkpoint | Mapping, data=None):
    """The model's data splits: ``data`` itself (a DataSplits), the data set ``data`` names, or
    the one the model's config (or Checkpoint) records (``info.data``, written by training), each
    split as the model was trained on it (:func:`slimedge.data.load_as_recorded`)."""
    from .. import data as _data

    if data is not None and not isinstance(data, (str, os.PathLike)):
        return data
    config = model.config if isinstance(model, Checkpoint) else model
    info = formats.ModelInfo.from_config(config)
    recorded = info.data
    if data is None and not (recorded or {}).get("name"):
        raise UsageError("quantisation needs real data for calibration and validation, and this "
                         "checkpoint records no data set (info.data); pass data=<name or DataSplits>")
    return _data.load_as_recorded(recorded, data, audio=info.frontend.audio)


# ---- running files on data --------------------------------------------------------------------
class _Step:
    """A step function ``run(feeds) -> outputs`` with the model's sizes, for :func:`ir.rollout`."""

    def __init__(self, fn, graph: ir.Graph) -> None:
        self.fn = fn
        self.state_shape = (graph.num_layers, graph.hidden_size)
        self.output_size = graph.output_size

    def __call__(self, feeds):
        return self.fn(feeds)


def step_function(graph: ir.Graph, path: str | os.PathLike | None = None,
                  format: str | None = None) -> _Step:
    """The float32 IR as a step function, or (with ``path``) the file opened through the runtime
    on the backend its format validates it on (the format by its suffix unless named)."""
    if path is None:
        return _Step(graph.run, graph)
    from .validate import open_file

    fmt = formats.get(format) if format else formats.for_path(path)
    return _Step(open_file(path, fmt.validators(fmt.read_config(path))[0]).run, graph)


def evaluate(run: _Step, d, batch: int = EVAL_BATCH) -> metrics.Evaluation:
    """A step function's :class:`~slimedge.metrics.Evaluation` on ``d``: each sequence stepped
    from a zero state, judged by its output at its last frame. ``batch`` matters for onnxruntime's
    dynamic quantisation, which picks one activation scale per call for the whole batch (TFLite's
    hybrid kernels pick one per row): the default 1 is the streaming case."""
    k = run.output_size

    def final_outputs(x, lengths):
        frames = np.ascontiguousarray(x.transpose(1, 0, 2))
        return ir.rollout(run, frames, lengths=lengths).at_end(lengths)
    labels = list(d.labels) if len(d.labels) == k else [str(j) for j in range(k)]
    return metrics.evaluate(final_outputs, d, labels, num_classes=k, batch_size=batch)


def accuracy(run: _Step, d, batch: int = EVAL_BATCH) -> float:
    return evaluate(run, d, batch).accuracy


def drift(graph: ir.Graph, run, frames: np.ndarray) -> dict:
    """Closed-loop drift against the float64 IR over ``frames`` (T, B, m), from zero state."""
    z = np.zeros((graph.num_layers, frames.shape[1], graph.hidden_size))
    outs = ("y", "h_next", "c_next")
    ref = ir.rollout(graph, frames.astype(np.float64), (z, z), dtype=np.float64,
                     record=outs).outputs
    z32 = z.astype(np.float32)
    got = ir.rollout(run, frames.astype(np.float32), (z32, z32), record=outs).outputs
    out = {f"max_abs_{k}": float(np.abs(got[k] - ref[k]).max()) for k in ref}
    out.update({f"max_abs_ref_{k}": float(np.abs(ref[k]).max()) for k in ref})
    out["argmax_agreement"] = float(np.mean(got["y"].argmax(-1) == ref["y"].argmax(-1)))
    last = slice(frames.shape[0] - 100, None)  # is it still growing at the end?
    out["max_abs_c_next_last100"] = float(np.abs(got["c_next"][last] - ref["c_next"][last]).max())
    out["steps"], out["batch"] = int(frames.shape[0]), int(frames.shape[1])
    return out


# ---- the task check ---------------------------------------------------------------------------
@dataclass
class TaskReport:
    """A quantised file judged on the task: validation accuracy and long-rollout drift."""

    format: str
    quantize: str
    float_accuracy: float
    accuracy: float
    tolerance: float
    split: str
    n: int
    drift: dict
    details: dict

    @property
    def passed(self) -> bool:
        return self.float_accuracy - self.accuracy <= self.tolerance + 1e-12

    def to_dict(self) -> dict:
        return {**asdict(self), "accuracy_drop": self.float_accuracy - self.accuracy,
                "passed": self.passed}

    def describe(self) -> str:
        return (f"{self.split} accuracy {100 * self.accuracy:.2f}% vs float {100 * self.float_accuracy:.2f}% "
                f"({100 * (self.accuracy - self.float_accuracy):+.2f} points; a loss of up to "
                f"{100 * self.tolerance:.1f} is tolerated); drift over {self.drift['steps']} steps: "
                f"h {self.drift['max_abs_h_next']:.3g}, c {self.drift['max_abs_c_next']:.3g}, "
                f"argmax agreement {100 * self.drift['argmax_agreement']:.1f}%")


def task_check(graph: ir.Graph, run, format: str, quantize: str, splits, *,
               split: str = "val", tolerance: float = DEFAULT_ACCURACY_TOLERANCE,
               drift_steps: int = DRIFT_STEPS, drift_batch: int = EVAL_BATCH,
               details: dict | None = None) -> TaskReport:
    """The quantised file, opened as ``run(feeds) -> outputs`` (:func:`.validate.open_file`),
    against the float IR: accuracy on ``splits[split]`` and the drift over ``drift_steps`` real
    frames (sequences back to back) of ``drift_batch`` streams."""
    d = splits[split]
    run = _Step(run, graph)
    f_acc = accuracy(step_function(graph), d)
    q_acc = accuracy(run, d)
    frames = stream_frames(d, drift_steps, drift_batch)
    return TaskReport(format, quantize, f_acc, q_acc, float(tolerance), split, len(d),
                      drift(graph, run, frames), dict(details or {}))


# ---- the public function ----------------------------------------------------------------------
def quantize(graph: ir.Graph | str | os.PathLike, path, *, format: str, quantize: str,
             checkpoint: Checkpoint | None = None, data=None, validate: bool = True,
             accuracy_tolerance: float = DEFAULT_ACCURACY_TOLERANCE, mode: str = "step",
             **options: Any) -> dict:
    """Write a quantised step graph of ``graph`` (a step IR, or a checkpoint path) to ``path``
    and judge it on the task; returns the quantizer's export info with a ``task`` report.

    ``options`` are :class:`QuantizeOptions` (UsageError for an unknown one); ``data`` the data
    set to calibrate and check on (default: the one the model records, see :func:`model_data`).
    Raises :class:`QuantizationError` (after removing the file) when the validation accuracy drops
    by more than ``accuracy_tolerance``. :func:`slimedge.exporters.export` does the same steps
    (and more validation) with each input read once."""
    fmt = formats.get(format)
    check(fmt, quantize, mode)
    opts = QuantizeOptions.of(**options).check_for(fmt.name, quantize)
    if not isinstance(graph, ir.Graph):
        from .. import checkpoint as _ckpt

        checkpoint = checkpoint or _ckpt.read(graph)
        graph = ir.lower(checkpoint)
    needs_data = validate or quantize == "int8"
    splits = model_data(checkpoint if checkpoint is not None else graph.config,
                        data) if needs_data else None
    info = fmt.quantizer(quantize)(graph, path, mode=mode, splits=splits, options=opts)
    if validate:
        from .validate import open_file

        opened = open_file(path, fmt.validators(fmt.read_config(path))[0])
        judge(info, graph, opened.run, fmt.name, quantize, splits, accuracy_tolerance, path)
    return info


def check(fmt: formats.Format, quantize: str, mode: str) -> None:
    """Refuse a quantisation mode the format does not offer, or a graph mode quantisers lack."""
    if quantize not in formats.QUANTIZE:
        raise UsageError(f"unknown quantize {quantize!r}: quantize={quantize!r} is not offered "
                         f"for any format; valid: {', '.join(formats.QUANTIZE)}")
    if quantize not in fmt.quantize:
        raise UsageError(f"quantize={quantize!r} is not offered for {fmt.name} files; valid: "
                         f"{', '.join(fmt.quantize)}")
    if quantize != "none" and mode != "step":
        raise UsageError(f"quantised exports are step graphs; mode={mode!r} is not supported "
                         f"(export the sequence graph with quantize='none')")


def judge(info: dict, graph: ir.Graph, run, format: str, quantize: str, splits,
          tolerance: float, path) -> TaskReport:
    """The task check of a written file (``run``: it opened); its report goes into ``info``, and
    a file that loses too much accuracy is removed and refused (QuantizationError)."""
    report = task_check(graph, run, format, quantize, splits, tolerance=tolerance)
    info["task"] = report.to_dict()
    if not report.passed:
        Path(path).unlink(missing_ok=True)
        raise QuantizationError(f"{format} {quantize}: {report.describe()}: exceeds the "
                                f"tolerance; no file written")
    return report


__all__ = ["quantize", "task_check", "QuantizeOptions", "TaskReport"]
