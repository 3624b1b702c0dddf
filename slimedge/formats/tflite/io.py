"""Integer I/O at a TFLite interpreter's boundary: float frames and states to a file's integer input
types and its outputs back, by the interpreter's tensor details (LiteRT and TFLite Micro give the
same keys), as TFLite's QUANTIZE and DEQUANTIZE do."""
from __future__ import annotations

import numpy as np


def _tensor_qparams(detail) -> tuple[float, int]:
    q = detail["quantization_parameters"]
    return float(q["scales"][0]), int(q["zero_points"][0])


def to_tensor(detail, prepare=None):
    """float -> a graph input's type, by an interpreter's tensor details (LiteRT and TFLite Micro
    give the same keys): None for a float32 tensor, else ``prepare`` first where given (the
    front-end an integer-I/O file leaves to its reader, :func:`slimedge.frontend.outside`), then
    float32 division by the scale, rounding half away from zero and the zero point, as TFLite's
    QUANTIZE does (so a float-I/O file computes the same integers inside)."""
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return None
    scale, zero = _tensor_qparams(detail)
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max

    def convert(a):
        a = np.asarray(a, np.float32)
        if prepare is not None:
            a = prepare(a)
        v = (a / np.float32(scale)).astype(np.float64)
        return np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + zero, lo, hi).astype(dtype)
    return convert


def from_tensor(detail):
    """A graph output's values -> float32 (None for a float32 tensor)."""
    if np.dtype(detail["dtype"]) == np.float32:
        return None
    scale, zero = _tensor_qparams(detail)
    return lambda q: (q.astype(np.float32) - zero) * np.float32(scale)


__all__ = ["to_tensor", "from_tensor"]
