"""The TFLite quantizers of the format table: ``dynamic`` (hybrid, int8 weights) and ``int8`` (integer).

Both have the table's signature ``fn(graph, path, *, mode, splits, options) -> dict`` (see
:mod:`slimedge.formats`): ``graph`` is the unfolded step graph (the input normalisation stays a
float op), ``splits`` the model's data set, ``options`` a
:class:`~slimedge.exporters.quantize.QuantizeOptions`; they return the export info the file's
metadata records. The options that concern ONNX only (``per_channel``, ``scope``) are not used:
TFLite weight scales are per channel where a row is long enough, unless ``compat`` is
``"tflite-runtime"``. ``compat="tflm"`` (TensorFlow Lite Micro) refuses ``dynamic``: it has no
hybrid kernel; ``io="int"`` gives an ``int8`` file integer inputs and outputs.

``int8`` calibrates on real rollouts of the training split (unless ``options.ranges`` is given)
and, with a 16-bit cell-state path (``state_bits=16``) or 16-bit activations, widens the ranges of
the state values — c, its parts, f ⊙ c, i ⊙ c~, c' as the lowering tags them, not g(c'), which
its activation bounds — by :data:`~slimedge.exporters.calibration.STATE_HEADROOM`: int16 has
precision to spare, and a stream that never resets lets c wander past the calibrated range.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from ... import ir
from ..calibration import STATE_HEADROOM, calibrate
from .emitter import check_target, emit


def dynamic(graph: ir.Graph, path: str | os.PathLike, *, mode: str = "step", splits: Any = None,
            options: Any) -> dict:
    """Hybrid FULLY_CONNECTED: int8 weights, float activations (no data needed)."""
    _step_only(mode)
    check_target("dynamic", options.compat, options.io)  # TFLite Micro: refused, before any work
    return emit(graph, path, quantize="dynamic", compat=options.compat)


def int8(graph: ir.Graph, path: str | os.PathLike, *, mode: str = "step", splits: Any = None,
         options: Any) -> dict:
    """Integer activations at calibrated scales; the cell-state path in int16 with ``state_bits=16``."""
    _step_only(mode)
    check_target("int8", options.compat, options.io)
    samples = options.calibration_samples
    ranges = options.ranges
    calibration = None
    if ranges is None:
        if splits is None:
            raise ValueError("quantize='int8' needs real data to calibrate on (the model's data "
                             "set) or calibration ranges")
        ranges = calibrate(graph, splits["train"], samples=samples, seed=options.seed)
    if splits is not None:
        calibration = {"split": "train", "sequences": min(samples or 10**9, len(splits["train"]))}
    if options.state_bits == 16 or options.act_bits == 16:
        ranges = state_headroom(graph, ranges)
    return emit(graph, path, quantize="int8", compat=options.compat, ranges=ranges,
                state_bits=options.state_bits, act_bits=options.act_bits, io=options.io,
                export_info={"calibration": calibration} if calibration else None)


def state_headroom(graph: ir.Graph, ranges: Mapping[str, tuple[float, float]],
                   factor: float = STATE_HEADROOM) -> dict[str, tuple[float, float]]:
    """``ranges`` with the cell-state values' ranges (all but g(c')) widened by ``factor``."""
    out = dict(ranges)
    for v, part in graph.cell_state_values().items():
        if part != "activation":
            out[v] = tuple(factor * r for r in ranges[v])
    return out


def _step_only(mode: str) -> None:
    if mode != "step":
        raise ValueError(f"quantised TFLite exports are step graphs; mode={mode!r} is not "
                         f"supported")


__all__ = ["dynamic", "int8", "state_headroom", "STATE_HEADROOM"]
