"""Calibration: the float model's real (x, h, c) and value ranges, collected on its training data.

Quantizers are never fed random states. The float model (the step IR in float32) is stepped by
:func:`slimedge.ir.rollout` over real frames of the training split, in two parts:

* ``samples`` training sequences (a seeded, stratified subset), each from a zero state, in
  batches sorted by length; a row whose sequence has ended is no longer fed;
* :data:`CALIBRATION_STREAMS` streams of :data:`CALIBRATION_STREAM_STEPS` frames each, training
  sequences back to back with no reset, as a streaming app runs (a state that is never reset
  wanders further than within one utterance).

:func:`rollout_feeds` returns every step's actual feeds (what onnxruntime's static quantizer
calibrates on, through :func:`reader`); :func:`calibrate` the (min, max) of every IR value over
the same steps, recorded by :meth:`slimedge.ir.Graph.run`'s observer (what the TFLite int8
emitter needs). :func:`stream_frames` (real frames back to back) also feeds export validation and
the task check's drift. NumPy only; onnxruntime is imported by :func:`reader` alone.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .. import ir
from ..errors import QuantizationError

DEFAULT_CALIBRATION_SAMPLES = 128  # training sequences stepped from a zero state
CALIBRATION_BATCH = 256            # of those, stepped together
CALIBRATION_STREAMS = 4            # then: streams of training sequences back to back,
CALIBRATION_STREAM_STEPS = 500     # this many frames each, never reset
STATE_HEADROOM = 4.0
"""A 16-bit cell-state path's calibrated ranges are widened by this factor: int16 has precision
to spare, and a stream that never resets lets c wander past the calibrated range."""

Ranges = dict[str, tuple[float, float]]


def stream_frames(d, steps: int, batch: int, offset: int = 0) -> np.ndarray:
    """Real frames (steps, batch, m) float32: stream b holds the sequences of ``d`` back to back,
    starting at sequence ``offset + b * len(d) // batch``."""
    out = np.empty((steps, batch, d.input_size), np.float32)
    for b in range(batch):
        k, got, parts = offset + (b * len(d)) // batch, 0, []
        while got < steps:
            parts.append(d.sequence(k % len(d)))
            got += len(parts[-1])
            k += 1
        out[:, b] = np.concatenate(parts)[:steps]
    return out


def _subset(d, samples: int | None, seed: int):
    """A seeded, stratified subset of ``samples`` sequences (all of ``d`` when None or more)."""
    from .. import data

    if samples is None or samples >= len(d):
        return d
    return d.subset(data.stratified_subset(d.y, int(samples), seed))


def _run_schedule(graph: ir.Graph, d, *, samples: int | None, seed: int, streams: int,
                  stream_steps: int, feeds: bool,
                  observe: Callable[[str, np.ndarray], None] | None) -> list[dict]:
    """Step the float32 IR over the calibration schedule (see the module docstring); returns
    every step's feeds when ``feeds``, else []."""
    from ..data import batches

    def step(f):
        return graph.run(f, observe=observe)
    step.state_shape = (graph.num_layers, graph.hidden_size)
    kept: list[dict] = []
    sub = _subset(d, samples, seed)
    for idx in batches(sub, CALIBRATION_BATCH):
        x, lengths, _ = sub.batch(idx)
        frames = np.ascontiguousarray(x.transpose(1, 0, 2))
        kept += ir.rollout(step, frames, lengths=lengths, record=(), feeds=feeds).feeds or []
    if streams and stream_steps:
        frames = stream_frames(d, stream_steps, streams, offset=len(d) // 2)
        kept += ir.rollout(step, frames, record=(), feeds=feeds).feeds or []
    return kept


def rollout_feeds(graph: ir.Graph, d, *, samples: int | None = DEFAULT_CALIBRATION_SAMPLES,
                  seed: int = 0, streams: int = CALIBRATION_STREAMS,
                  stream_steps: int = CALIBRATION_STREAM_STEPS,
                  observe: Callable[[str, np.ndarray], None] | None = None) -> list[dict]:
    """The float model's real feeds {x, h, c} at every step of the calibration schedule over
    ``d`` (the training split): ``samples`` sequences from a zero state (only the rows whose
    sequence is still running), then ``streams`` streams of ``stream_steps`` frames.
    ``observe(name, value)`` sees every IR value of every step (see :meth:`ir.Graph.run`)."""
    return _run_schedule(graph, d, samples=samples, seed=seed, streams=streams,
                         stream_steps=stream_steps, feeds=True, observe=observe)


def calibrate(graph: ir.Graph, d, *, samples: int | None = DEFAULT_CALIBRATION_SAMPLES,
              seed: int = 0, streams: int = CALIBRATION_STREAMS,
              stream_steps: int = CALIBRATION_STREAM_STEPS) -> Ranges:
    """(min, max) of every IR value (inputs x, h, c included) over the steps of
    :func:`rollout_feeds` on ``d``, the model's training split."""
    ranges: Ranges = {}

    def widen(name: str, v: np.ndarray) -> None:
        if v.size == 0:
            return
        lo, hi = float(v.min()), float(v.max())
        if name in ranges:
            lo, hi = min(lo, ranges[name][0]), max(hi, ranges[name][1])
        ranges[name] = (lo, hi)

    _run_schedule(graph, d, samples=samples, seed=seed, streams=streams,
                  stream_steps=stream_steps, feeds=False, observe=widen)
    bad = sorted(n for n, (lo, hi) in ranges.items() if not (math.isfinite(lo) and math.isfinite(hi)))
    if bad:
        raise QuantizationError(
            f"the model's streamed state diverges on its training data: {', '.join(bad[:4])}"
            f"{' ...' if len(bad) > 4 else ''} reach(es) inf or NaN within {stream_steps} steps, "
            f"so no int8 scale can hold them; an integer export needs bounded values. Export it "
            f"in float (--quantize none), or retrain it so its state stays bounded (e.g. "
            f"--activation tanh, or more epochs)")
    return ranges


class RolloutReader:
    """The float model's real feeds (:func:`rollout_feeds`) one step at a time, in the shape of
    onnxruntime's ``CalibrationDataReader`` (``get_next``, ``rewind``); :func:`reader` makes one
    that is also an instance of that class."""

    def __init__(self, graph: ir.Graph, d, *, samples: int | None, seed: int = 0) -> None:
        self.feeds = rollout_feeds(graph, d, samples=samples, seed=seed)
        self._it = iter(self.feeds)

    def get_next(self):
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self.feeds)


def reader(graph: ir.Graph, d, *, samples: int | None, seed: int = 0) -> RolloutReader:
    """A :class:`RolloutReader` that onnxruntime's ``quantize_static`` accepts (imports it)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(RolloutReader, CalibrationDataReader):
        pass

    return Reader(graph, d, samples=samples, seed=seed)


__all__ = ["calibrate", "rollout_feeds", "DEFAULT_CALIBRATION_SAMPLES", "STATE_HEADROOM"]
