"""Quantisation parameters for TFLite: activation QParams from a range, fixed op outputs, int8 weights.

(The conversion at an interpreter's boundary for integer-I/O files is the reader's:
:mod:`slimedge.formats.tflite.io`.)

Activations: asymmetric int8 over a calibrated [lo, hi] (widened to hold 0), or symmetric int16
(zero point 0, as LiteRT's 16x8 kernels need). Weights: symmetric int8 in [-127, 127], one scale
per output row only where a row holds at least :data:`PER_CHANNEL_MIN_ROW` values: TFLite stores a
float32 scale and an int64 zero point per channel (12 bytes a row), which for shorter rows (W·x
over 13 MFCCs, U·h at n = 64) costs more than it buys. Measured on the shipped FSDD model:
per-tensor scales everywhere kept its test accuracy (97.0% dynamic and int8) and cut its int8
weight bytes, scales included, from 0.34-0.38× to 0.27× of the float file's.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QParams:
    """How one tensor is quantised: its integer type, scale and zero point."""

    dtype: str            # "int8" | "int16"
    scale: float
    zero_point: int = 0

    def quantize(self, v: np.ndarray) -> np.ndarray:
        lo, hi = (-128, 127) if self.dtype == "int8" else (-32768, 32767)
        q = np.round(np.asarray(v, np.float64) / self.scale) + self.zero_point
        return np.clip(q, lo, hi).astype(self.dtype)

    def range(self) -> tuple[float, float]:
        """The real values the integer range covers (int16: symmetric, ±32767)."""
        lo, hi = (-128, 127) if self.dtype == "int8" else (-32767, 32767)
        return (lo - self.zero_point) * self.scale, (hi - self.zero_point) * self.scale


MIN_RANGE = 1e-3
"""The narrowest range an activation is quantised over. A value that calibration saw stay at 0 (a
state that never leaves its zero start, e.g. a cell of u ⊙ h alone) would otherwise get a scale
near 0, and the int32 bias of the product reading it (bias / (input scale × weight scale))
overflows; values this small change no output of an LSTM step."""


def qparams_for_range(lo: float, hi: float, dtype: str) -> QParams:
    """Asymmetric int8 over [lo, hi] ∪ {0}; symmetric int16 (zero point 0, as LiteRT's 16x8 needs);
    either over at least :data:`MIN_RANGE`."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if dtype == "int16":
        return QParams("int16", max(abs(lo), abs(hi), MIN_RANGE) / 32767.0, 0)
    scale = max(hi - lo, MIN_RANGE) / 255.0
    zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return QParams("int8", scale, zp)


# the output quantisation the TFLite spec (and LiteRT's int16 kernels) fix for these ops
FIXED_OUT = {("sigmoid", "int8"): QParams("int8", 1 / 256, -128),
             ("sigmoid", "int16"): QParams("int16", 1 / 32768, 0),
             ("tanh", "int8"): QParams("int8", 1 / 128, 0),
             ("tanh", "int16"): QParams("int16", 1 / 32768, 0),
             ("hard_sigmoid", "int8"): QParams("int8", 1 / 256, -128),
             ("hard_sigmoid", "int16"): QParams("int16", 1 / 32768, 0)}

PER_CHANNEL_MIN_ROW = 128
"""A weight gets one scale per output row only where its rows hold at least this many values."""


def wants_per_channel(w: np.ndarray, allowed: bool) -> bool:
    """Per-channel scales for the weight ``w`` (out, in): allowed, and its rows long enough."""
    return bool(allowed and w.shape[1] >= PER_CHANNEL_MIN_ROW)


def sym_weights(w: np.ndarray, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 in [-127, 127]; scale per output row (axis 0) or one for the tensor."""
    w = np.asarray(w, np.float64)
    amax = np.abs(w).max(axis=1) if per_channel else np.full(w.shape[0], np.abs(w).max())
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    q = np.clip(np.round(w / scale[:, None]), -127, 127).astype(np.int8)
    return q, (scale if per_channel else scale[:1])


__all__ = ["QParams", "qparams_for_range", "FIXED_OUT", "PER_CHANNEL_MIN_ROW", "wants_per_channel",
           "sym_weights"]
