"""Quantised exports for both formats, calibrated and judged on real data.

Four quantizers, registered in :data:`slimedge.exporters.QUANTIZERS` under (format, mode):

    ("onnx", "dynamic")    onnxruntime ``quantize_dynamic``: int8 weights (per channel) on MatMul,
                           activations quantised on the fly (the step graph's Gemms are rewritten
                           to MatMul + Add first: onnxruntime's dynamic quantizer skips Gemm)
    ("onnx", "int8")       onnxruntime ``quantize_static``, QDQ format, int8 weights per channel and
                           int8 activations, MinMax-calibrated on real rollouts (below)
    ("tflite", "dynamic")  int8 weights per channel on FULLY_CONNECTED, float activations (hybrid);
                           ``compat="tflite-runtime"`` uses one scale per tensor
    ("tflite", "int8")     integer activations with calibrated scales (see ``exporters.tflite``);
                           the cell-state path in int16 by default (``state_bits``), measured below

Calibration is never fed random states: the float model (the step IR in float32) is stepped over
sequences of the training split of the model's data set, and every step's actual (x, h, c) — and,
for TFLite, every intermediate value's range — is what the quantizers see.

Validation is task-level (:func:`task_check`): accuracy on the validation split, float IR against
the quantised file, must stay within ``accuracy_tolerance`` (default 2.0 points); and the state
drift of the quantised file against the float64 IR over a 1,000-step closed-loop rollout of real
frames is reported (not judged: a recurrent state may drift while decisions hold).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from .. import ir
from ..checkpoint import Checkpoint

DEFAULT_CALIBRATION_SAMPLES = 128   # training sequences stepped for calibration
DEFAULT_ACCURACY_TOLERANCE = 0.02   # export-time check: val accuracy within 2 points of float
DRIFT_STEPS = 1000
DEFAULT_STATE_BITS = 16             # TFLite int8: the cell-state path in int16 (see the report)
# loose guards for export()'s max-diff check against the float64 model (100 steps, 2 streams, one
# from a random state): they catch a broken file; the accuracy statement is task_check's
ATOL = {"dynamic": 2.0, "int8": 2.0}


class QuantizationError(ValueError):
    """A quantised export that fails its task-level check (no file is kept)."""


# ---- real data --------------------------------------------------------------------------------
def model_data(ckpt: Checkpoint | Mapping | None, data=None):
    """The model's data splits: ``data`` (a DataSplits or a data set name) or the data set its
    checkpoint records (``info.data``, written by training)."""
    from .. import data as _data

    if data is not None and not isinstance(data, (str, os.PathLike)):
        return data
    if data is not None:
        return _data.load(data)
    cfg = ckpt.config if isinstance(ckpt, Checkpoint) else (ckpt or {})
    rec = (cfg.get("info") or {}).get("data") or {}
    if not isinstance(rec, dict) or not rec.get("name"):
        raise ValueError("quantisation needs real data for calibration and validation, and this "
                         "checkpoint records no data set (info.data); pass data=<name or DataSplits>")
    return _data.load_as_recorded(rec)


def _subset(d, samples: int | None, seed: int):
    from .. import data as _data

    if samples is None or samples >= len(d):
        return d
    return d.subset(_data.stratified_subset(d.y, int(samples), seed))


def _steps(d, batch: int = 256) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Batches of sequences as (frames (T, B, m), lengths, y, idx), sorted by length."""
    order = np.argsort(d.lengths, kind="stable")
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        x, lengths, y = d.batch(idx)
        yield np.ascontiguousarray(x.transpose(1, 0, 2)), lengths, y, idx


def _interpret(graph: ir.Graph, feeds: Mapping[str, np.ndarray], sink: dict) -> dict:
    """One float32 step of the IR recording every value's (min, max) into ``sink``."""
    env = dict(graph._weights_cache(np.float32))
    env.update({k: np.asarray(v, np.float32) for k, v in feeds.items()})
    for k in feeds:
        _widen(sink, k, env[k])
    for n in graph.nodes:
        out = ir._KERNELS[n.op](*[env[i] for i in n.inputs], **n.attrs.get("kernel", {}))
        outs = out if isinstance(out, tuple) else (out,)
        for name, v in zip(n.outputs, outs):
            env[name] = v
            _widen(sink, name, v)
    return {o: env[o] for o in graph.outputs}


def _widen(sink: dict, name: str, v: np.ndarray) -> None:
    if v.size == 0:
        return
    lo, hi = float(v.min()), float(v.max())
    if name in sink:
        lo, hi = min(lo, sink[name][0]), max(hi, sink[name][1])
    sink[name] = (lo, hi)


CALIBRATION_STREAMS = 4        # besides whole sequences from a zero state: streams of training
CALIBRATION_STREAM_STEPS = 500  # sequences back to back with no reset, as a streaming app runs
STATE_HEADROOM = 4.0            # int16 cell state: range widened by this factor (precision to spare;
                                # a stream that never resets lets c wander past the calibrated range)


def rollout_feeds(graph: ir.Graph, d, *, samples: int | None = DEFAULT_CALIBRATION_SAMPLES,
                  seed: int = 0, ranges: dict | None = None,
                  streams: int = CALIBRATION_STREAMS,
                  stream_steps: int = CALIBRATION_STREAM_STEPS) -> Iterator[dict[str, np.ndarray]]:
    """The float model's real (x, h, c) at every step: ``samples`` sequences of ``d`` each from a
    zero state (rows whose sequence has ended are dropped), then ``streams`` streams of
    ``stream_steps`` frames of sequences back to back without a reset (where a streaming state
    wanders further than within one utterance). Fills ``ranges`` with every IR value's range."""
    sub = _subset(d, samples, seed)
    L, n = graph.num_layers, graph.hidden_size

    def step(feeds):
        return _interpret(graph, feeds, ranges) if ranges is not None else graph.run(feeds)

    for frames, lengths, _, _ in _steps(sub, 256):
        B = frames.shape[1]
        h = np.zeros((L, B, n), np.float32)
        c = np.zeros((L, B, n), np.float32)
        for t in range(frames.shape[0]):
            live = lengths > t
            feeds = {"x": frames[t][live], "h": h[:, live], "c": c[:, live]}
            yield feeds
            out = step(feeds)
            h[:, live], c[:, live] = out["h_next"], out["c_next"]
    if streams and stream_steps:
        frames = _long_frames(d, stream_steps, streams, offset=len(d) // 2)
        h = np.zeros((L, streams, n), np.float32)
        c = np.zeros((L, streams, n), np.float32)
        for x in frames:
            feeds = {"x": x, "h": h, "c": c}
            yield feeds
            out = step(feeds)
            h, c = out["h_next"], out["c_next"]


def calibrate(graph: ir.Graph, d, *, samples: int | None = DEFAULT_CALIBRATION_SAMPLES,
              seed: int = 0, **kw) -> dict[str, tuple[float, float]]:
    """(min, max) of every IR value over float rollouts of real sequences (:func:`rollout_feeds`)."""
    ranges: dict[str, tuple[float, float]] = {}
    for _ in rollout_feeds(graph, d, samples=samples, seed=seed, ranges=ranges, **kw):
        pass
    return ranges


# ---- running files on data --------------------------------------------------------------------
EVAL_BATCH = 1  # streams per call when judging a file: the streaming deployment's batch


def predict(run, d, batch: int = EVAL_BATCH) -> np.ndarray:
    """Class predictions of a step function ``run(feeds) -> {"y", "h_next", "c_next"}`` on ``d``:
    each sequence's y at its last valid step. ``batch`` matters for onnxruntime's dynamic
    quantisation, which picks one activation scale per call for the whole batch (TFLite's hybrid
    kernels pick one per row): the default 1 is the streaming case."""
    pred = np.zeros(len(d), np.int64)
    for frames, lengths, _, idx in _steps(d, batch):
        B = frames.shape[1]
        L, n = run.state_shape
        h = np.zeros((L, B, n), np.float32)
        c = np.zeros((L, B, n), np.float32)
        last = np.zeros((B,), np.int64)
        for t in range(frames.shape[0]):
            out = run({"x": frames[t], "h": h, "c": c})
            h, c = out["h_next"], out["c_next"]
            ends = lengths == t + 1
            last[ends] = np.argmax(out["y"][ends], axis=-1)
        pred[idx] = last
    return pred


class _Step:
    """A uniform step function over the IR (float32), a TFLite file or an ONNX file."""

    def __init__(self, fn, state_shape: tuple[int, int]) -> None:
        self.fn, self.state_shape = fn, state_shape

    def __call__(self, feeds):
        return self.fn(feeds)


def step_function(graph: ir.Graph, path: str | os.PathLike | None = None, format: str | None = None):
    """A step function for ``path`` (format by suffix unless given), or the float32 IR."""
    shape = (graph.num_layers, graph.hidden_size)
    if path is None:
        return _Step(lambda f: graph.run(f), shape)
    format = format or Path(path).suffix.lstrip(".")
    if format == "tflite":
        from .tflite import Runner

        r = Runner(path)
        return _Step(lambda f: r.run(f["x"], f["h"], f["c"]), shape)
    if format == "onnx":
        from .onnx import runner

        return _Step(runner(path), shape)
    raise ValueError(f"unknown format {format!r}")


def accuracy(run, d, batch: int = EVAL_BATCH) -> float:
    return float(np.mean(predict(run, d, batch) == d.y))


def drift(graph: ir.Graph, run, frames: np.ndarray) -> dict:
    """Closed-loop drift against the float64 IR over ``frames`` (T, B, m), from zero state."""
    L, n = graph.num_layers, graph.hidden_size
    z = np.zeros((L, frames.shape[1], n))
    ref = _closed_loop(lambda f: graph.run(f, dtype=np.float64), frames.astype(np.float64), z)
    got = _closed_loop(run, frames.astype(np.float32), z.astype(np.float32))
    out = {f"max_abs_{k}": float(np.abs(got[k] - ref[k]).max()) for k in ref}
    out.update({f"max_abs_ref_{k}": float(np.abs(ref[k]).max()) for k in ref})
    out["argmax_agreement"] = float(np.mean(got["y"].argmax(-1) == ref["y"].argmax(-1)))
    last = slice(frames.shape[0] - 100, None)  # is it still growing at the end?
    out["max_abs_c_next_last100"] = float(np.abs(got["c_next"][last] - ref["c_next"][last]).max())
    out["steps"], out["batch"] = int(frames.shape[0]), int(frames.shape[1])
    return out


def _closed_loop(run, frames: np.ndarray, zero: np.ndarray) -> dict[str, np.ndarray]:
    out: dict[str, list] = {"y": [], "h_next": [], "c_next": []}
    h = c = zero
    for x in frames:
        r = run({"x": x, "h": h, "c": c})
        for k in out:
            out[k].append(np.asarray(r[k], np.float64))
        h, c = r["h_next"].astype(zero.dtype), r["c_next"].astype(zero.dtype)
    return {k: np.stack(v) for k, v in out.items()}


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
                f"(drop {100 * (self.float_accuracy - self.accuracy):+.2f} points, tolerance "
                f"{100 * self.tolerance:.1f}); drift over {self.drift['steps']} steps: "
                f"h {self.drift['max_abs_h_next']:.3g}, c {self.drift['max_abs_c_next']:.3g}, "
                f"argmax agreement {100 * self.drift['argmax_agreement']:.1f}%")


def task_check(graph: ir.Graph, path, format: str, quantize: str, splits, *,
               split: str = "val", tolerance: float = DEFAULT_ACCURACY_TOLERANCE,
               drift_steps: int = DRIFT_STEPS, drift_batch: int = EVAL_BATCH, details: dict | None = None,
               seed: int = 0) -> TaskReport:
    d = splits[split]
    run = step_function(graph, path, format)
    f_acc = accuracy(step_function(graph), d)
    q_acc = accuracy(run, d)
    frames = _long_frames(d, drift_steps, drift_batch)
    return TaskReport(format, quantize, f_acc, q_acc, float(tolerance), split, len(d),
                      drift(graph, run, frames), dict(details or {}))


def _long_frames(d, steps: int, batch: int, offset: int = 0) -> np.ndarray:
    """Real frames, sequences back to back, ``steps`` long per stream."""
    out = np.empty((steps, batch, d.input_size), np.float32)
    for b in range(batch):
        k, got, parts = offset + (b * len(d)) // batch, 0, []
        while got < steps:
            parts.append(d.sequence(k % len(d)))
            got += len(parts[-1])
            k += 1
        out[:, b] = np.concatenate(parts)[:steps]
    return out


# ---- ONNX -------------------------------------------------------------------------------------
def _float_onnx(graph: ir.Graph, tmpdir: str, *, matmul: bool) -> str:
    import onnx
    from onnx import numpy_helper

    from . import onnx as onnx_exporter

    model = onnx_exporter.build(graph, mode="step", optimize=False)  # one ONNX node per IR op
    if matmul:  # Gemm(a, W, b, transB=1) -> MatMul(a, W^T) + Add(b)
        g = model.graph
        inits = {i.name: i for i in g.initializer}
        nodes = []
        for node in g.node:
            if node.op_type != "Gemm":
                nodes.append(node)
                continue
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
                nodes.append(node)
                continue
            a, w, *b = node.input
            wt = numpy_helper.to_array(inits[w])
            if attrs.get("transB", 0):
                wt = wt.T
            name = f"{w}.T" if attrs.get("transB", 0) else w
            if name not in inits:
                t = numpy_helper.from_array(np.ascontiguousarray(wt), name)
                g.initializer.append(t)
                inits[name] = t
            out = node.output[0]
            mm = out + ".matmul" if b else out
            nodes.append(onnx.helper.make_node("MatMul", [a, name], [mm], name=f"{out}.matmul"))
            if b:
                nodes.append(onnx.helper.make_node("Add", [mm, b[0]], [out], name=f"{out}.bias"))
        del g.node[:]
        g.node.extend(nodes)
        used = {i for n in g.node for i in n.input}
        keep = [i for i in g.initializer if i.name in used]
        del g.initializer[:]
        g.initializer.extend(keep)
    path = os.path.join(tmpdir, "float.onnx")
    onnx.save_model(model, path, save_as_external_data=False)
    return path


def _tag_onnx(path, info: dict) -> None:
    import json

    import onnx

    model = onnx.load(os.fspath(path))
    props = {p.key: p.value for p in model.metadata_props}
    meta = json.loads(props.get("slimedge", "{}"))
    meta["export"] = {**meta.get("export", {}), **info}
    props["slimedge"] = json.dumps(meta, sort_keys=True)
    onnx.helper.set_model_props(model, props)
    onnx.save_model(model, os.fspath(path), save_as_external_data=False)


class RolloutReader:
    """An onnxruntime CalibrationDataReader over the float model's real rollouts."""

    def __init__(self, graph: ir.Graph, d, *, samples: int | None, seed: int = 0) -> None:
        self.feeds = list(rollout_feeds(graph, d, samples=samples, seed=seed))
        self._it = iter(self.feeds)

    def get_next(self):
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self.feeds)


def _reader(graph, d, samples, seed):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(RolloutReader, CalibrationDataReader):
        pass

    return Reader(graph, d, samples=samples, seed=seed)


def onnx_dynamic(graph: ir.Graph, path, *, splits=None, per_channel: bool = False, **_) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src = _float_onnx(graph, tmp, matmul=True)
        quantize_dynamic(src, os.fspath(path), weight_type=QuantType.QInt8, per_channel=per_channel)
    info = {"format": "onnx", "mode": "step", "quantize": "dynamic",
            "weights": "int8 symmetric" + (" per channel" if per_channel else ""),
            "activations": "float32, quantised per call by DynamicQuantizeLinear"}
    _tag_onnx(path, info)
    return info


ONNX_SCOPES = {"all": None, "matmul": ["Gemm", "MatMul"]}
DEFAULT_ONNX_SCOPE = "matmul"


def onnx_int8(graph: ir.Graph, path, *, splits=None, calibration_samples: int | None =
              DEFAULT_CALIBRATION_SAMPLES, seed: int = 0, per_channel: bool = False,
              scope: str = DEFAULT_ONNX_SCOPE, **_) -> dict:
    """Static QDQ. ``scope="matmul"`` quantises the Gemms (weights and their input activations,
    x and h) and keeps the element-wise gate and cell-state arithmetic float; ``scope="all"`` lets
    onnxruntime quantise every op it can (Add, Mul, Sigmoid, ...), the cell state included."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if scope not in ONNX_SCOPES:
        raise ValueError(f"unknown scope {scope!r}; valid: {', '.join(ONNX_SCOPES)}")
    reader = _reader(graph, splits["train"], calibration_samples, seed)
    with tempfile.TemporaryDirectory() as tmp:
        src = _float_onnx(graph, tmp, matmul=False)
        quantize_static(src, os.fspath(path), reader, quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=ONNX_SCOPES[scope],
                        per_channel=per_channel, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    info = {"format": "onnx", "mode": "step", "quantize": "int8", "quant_format": "QDQ",
            "weights": "int8 symmetric" + (" per channel" if per_channel else ""),
            "activations": "int8 asymmetric, MinMax over real rollouts" + (
                "; only the Gemm inputs (x, h): element-wise gate/cell-state ops stay float"
                if scope == "matmul" else "; every op onnxruntime quantises, cell state included"),
            "scope": scope,
            "calibration": {"split": "train", "sequences": min(calibration_samples or 10**9, len(splits["train"])),
                            "steps": len(reader.feeds)}}
    _tag_onnx(path, info)
    return info


# ---- TFLite -----------------------------------------------------------------------------------
def tflite_dynamic(graph: ir.Graph, path, *, compat: str = "litert", **_) -> dict:
    from . import tflite

    return tflite.emit(graph, path, quantize="dynamic", compat=compat)


def tflite_int8(graph: ir.Graph, path, *, splits=None, calibration_samples: int | None =
                DEFAULT_CALIBRATION_SAMPLES, seed: int = 0, state_bits: int = DEFAULT_STATE_BITS,
                act_bits: int = 8, compat: str = "litert", ranges=None, **_) -> dict:
    from . import tflite

    if ranges is None:
        ranges = calibrate(graph, splits["train"], samples=calibration_samples, seed=seed)
    if state_bits == 16 or act_bits == 16:
        ranges = dict(ranges)
        prod = graph.producers()
        for v in tflite._cell_path(graph):  # c, f ⊙ c, i ⊙ c~, c' (not g(c'), which is bounded)
            if v in ("c", "c_next") or prod[v].op in ("add", "mul", "unstack"):
                ranges[v] = tuple(STATE_HEADROOM * r for r in ranges[v])
    n = min(calibration_samples or 10**9, len(splits["train"]))
    return tflite.emit(graph, path, quantize="int8", compat=compat, ranges=ranges,
                       state_bits=state_bits, act_bits=act_bits,
                       export_info={"calibration": {"split": "train", "sequences": n}})


QUANTIZERS = {("onnx", "dynamic"): onnx_dynamic, ("onnx", "int8"): onnx_int8,
              ("tflite", "dynamic"): tflite_dynamic, ("tflite", "int8"): tflite_int8}


def quantize(graph: ir.Graph | str, path, *, format: str, quantize: str, checkpoint=None,
             data=None, validate: bool = True, accuracy_tolerance: float = DEFAULT_ACCURACY_TOLERANCE,
             mode: str = "step", **options: Any) -> dict:
    """Write a quantised step graph and judge it on the task; returns the export info with a
    ``task`` report. Raises :class:`QuantizationError` (after removing the file) when the
    validation accuracy drops by more than ``accuracy_tolerance``."""
    if mode != "step":
        raise ValueError(f"quantised exports are step graphs; mode={mode!r} is not supported "
                         f"(export the sequence graph with quantize='none')")
    if (format, quantize) not in QUANTIZERS:
        raise ValueError(f"no quantizer for format {format!r} and quantize={quantize!r}")
    from .. import checkpoint as _ckpt

    if not isinstance(graph, ir.Graph):
        checkpoint = checkpoint or _ckpt.read(graph)
        graph = ir.lower(checkpoint)
    needs_data = validate or quantize == "int8"
    splits = model_data(checkpoint if checkpoint is not None else {"info": graph.config.get("info")},
                        data) if needs_data else None
    info = QUANTIZERS[(format, quantize)](graph, path, splits=splits, **options)
    if validate:
        report = task_check(graph, path, format, quantize, splits, tolerance=accuracy_tolerance)
        info["task"] = report.to_dict()
        if not report.passed:
            Path(path).unlink(missing_ok=True)
            raise QuantizationError(f"{format} {quantize}: {report.describe()}: exceeds the "
                                    f"tolerance; no file written")
    return info


def _register() -> None:
    """Hook the quantizers into ``slimedge.exporters.export`` (when that module exists)."""
    import slimedge.exporters as exporters

    if not hasattr(exporters, "QUANTIZERS"):
        return
    for (fmt, mode), _ in QUANTIZERS.items():
        exporters.QUANTIZERS[(fmt, mode)] = _export_adapter(fmt, mode)
    exporters.DEFAULT_ATOL.update(ATOL)


def _export_adapter(fmt: str, mode: str):
    def write(graph: ir.Graph, path, *, mode: str = "step", checkpoint=None, **options) -> dict:
        return quantize(graph, path, format=fmt, quantize=mode_q, checkpoint=checkpoint, mode=mode,
                        **options)
    mode_q = mode
    write.__name__ = f"{fmt}_{mode}"
    return write


_register()

__all__ = ["quantize", "calibrate", "rollout_feeds", "task_check", "TaskReport", "accuracy",
           "predict", "drift", "step_function", "model_data", "QuantizationError", "QUANTIZERS",
           "DEFAULT_CALIBRATION_SAMPLES", "DEFAULT_ACCURACY_TOLERANCE", "DEFAULT_STATE_BITS"]
