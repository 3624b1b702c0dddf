"""Integer I/O at a TFLite interpreter's boundary: float frames and states to a file's integer input
types and its outputs back, by the interpreter's tensor details (LiteRT and TFLite Micro give the
same keys), as TFLite's QUANTIZE and DEQUANTIZE do."""
from __future__ import annotations

import numpy as np


def _tensor_qparams(detail) -> tuple[float, int]:
    q = detail["quantization_parameters"]
    return float(q["scales"][0]), int(q["zero_points"][0])


def input_normalization(config: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """The per-feature (s, t) an integer-I/O file expects applied to a frame before quantising it
    (its metadata's ``export.io_quantization.x.normalization``), or None."""
    x = ((config.get("export") or {}).get("io_quantization") or {}).get("x") or {}
    norm = x.get("normalization")
    if not norm:
        return None
    return np.asarray(norm["scale"], np.float32), np.asarray(norm["shift"], np.float32)


def to_tensor(detail, normalization: tuple[np.ndarray, np.ndarray] | None = None):
    """float -> a graph input's type, by an interpreter's tensor details (LiteRT and TFLite Micro
    give the same keys): None for a float32 tensor, else x·s + t first where a ``normalization``
    (s, t) is given, then float32 division by the scale, rounding half away from zero and the zero
    point, as TFLite's QUANTIZE does (so a float-I/O file computes the same integers inside)."""
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return None
    scale, zero = _tensor_qparams(detail)
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    s, t = normalization if normalization is not None else (None, None)

    def convert(a):
        a = np.asarray(a, np.float32)
        if s is not None:
            a = a * s + t
        v = (a / np.float32(scale)).astype(np.float64)
        return np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + zero, lo, hi).astype(dtype)
    return convert


def from_tensor(detail):
    """A graph output's values -> float32 (None for a float32 tensor)."""
    if np.dtype(detail["dtype"]) == np.float32:
        return None
    scale, zero = _tensor_qparams(detail)
    return lambda q: (q.astype(np.float32) - zero) * np.float32(scale)


__all__ = ["to_tensor", "from_tensor", "input_normalization"]
