"""Fixed-point arithmetic for the full-integer C step: rescaling multipliers and the tanh table.

**Rescaling.** A value ``v`` held at scale ``s_from`` moves to scale ``s_to`` as
``round(v * s_from / s_to)``, computed in integers as ``(v * M + 2^(r-1)) >> r`` with int64
arithmetic (:func:`multiplier`): ``M`` has as many bits as the int64 product leaves room for
(``|v| < 2^vbits``: ``M < 2^min(30, 62 - vbits)``), so the relative error of the factor is at most
2^-(mantissa bits - 1) and nothing overflows. Where the values' bound allows, the same
formula runs in int32 (:func:`multipliers32`: ``vmax·|M| + 2^(r-1) <= 2^31 - 1`` proved from
the type's or the weights' bound, not from calibration), one multiply, add and shift on any
32-bit core, with the factor's relative error at most 2^-14 element-wise and 2^-10 for a
matmul row (int32 accumulators leave the multiplier 11+ bits; int8 weight rounding is 2^-8 of
a row's largest weight); a conversion that cannot meet that stays in int64.

**Nonlinearities.** tanh is one table of :data:`TANH_ENTRIES` int16 values,
``round(32768*tanh(k/64))`` for k = 0..512 (0 to 8), read with linear interpolation between
entries and odd symmetry; past 8 it is 32767 (1 - 2^-15). The C clamps |z| to just under 8 instead
of branching (the table's last entries are already 32767: the values are the same). The sigmoid is
the same table, σ(z) = (1 + tanh(z/2))/2. Inputs are Q16 (int32, scale 2^-16), outputs Q15 (int16,
scale 2^-15). :func:`error_bounds` evaluates the integer formulas (numpy, bit-exact with the C) at
every Q16 input in [-40, 40] (|z| beyond that gives the same saturated output) against the exact
functions: max |error| 4.7e-5 for tanh and 4.2e-5 for the sigmoid (interpolation error ≤ h²/8 ·
max|tanh''| = 2.4e-5 for h = 1/64, plus the entries' and the output's rounding; the sigmoid's
floor is 1/32768 at -inf). The hard sigmoid clip(0.2 z + 0.5, 0, 1) is exact up to the output's
rounding (one Q15 step, 3.1e-5).
"""
from __future__ import annotations

import functools
import math

import numpy as np

Z_FRAC_BITS = 16          # pre-activations: int32 Q16
GATE_FRAC_BITS = 15       # gate and tanh outputs: int16 Q15
Z_LIMIT = 2 ** 30 - 1     # |pre-activation| clamp: two of them add without overflow
TANH_STEP_BITS = 10       # table step 2^10 Q16 units = 1/64
TANH_RANGE = 8            # table covers [0, 8]
TANH_ENTRIES = TANH_RANGE * (1 << (Z_FRAC_BITS - TANH_STEP_BITS)) + 1
Q15_MAX = 2 ** 15 - 1


def multiplier(ratio: float, vbits: int) -> tuple[int, int]:
    """(M, r) with round(v * ratio) ≈ (v * M + 2^(r-1)) >> r for |v| < 2^vbits, no int64
    overflow, M < 2^30. Raises ValueError when the ratio is too large to represent that way."""
    (m,), r = multipliers(np.array([ratio]), vbits)
    return m, r


def multipliers(ratios: np.ndarray, vbits: int) -> tuple[list[int], int]:
    """Per-element multipliers sharing one shift ``r`` (chosen for the largest ratio)."""
    ratios = np.asarray(ratios, np.float64)
    if not np.all(np.isfinite(ratios)) or np.any(ratios < 0):
        raise ValueError(f"cannot rescale by {ratios!r}")
    mbits = min(30, 62 - int(vbits))
    top = float(ratios.max()) if ratios.size else 0.0
    if top == 0.0:
        return [0] * ratios.size, 1
    e = math.floor(math.log2(top))
    r = mbits - 1 - e
    if r < 1:
        raise ValueError(f"a rescaling factor of {top:.4g} is too large for the integer step "
                         f"(values of {vbits} bits); the calibrated scales are out of range")
    r = min(r, 62)
    M = np.rint(ratios * 2.0 ** r).astype(np.int64)
    while M.max() >= 2 ** mbits and r > 1:  # rounding reached the next power of two
        r -= 1
        M = np.rint(ratios * 2.0 ** r).astype(np.int64)
    return [int(v) for v in M], int(r)


INT32_MAX = 2 ** 31 - 1
RESCALE32_TOL = 2.0 ** -14  # element-wise 32-bit rescaling: largest relative error of the factor
MATMUL32_TOL = 2.0 ** -10   # matmul row rescaling (int32 accumulators): the same, per row


def multipliers32(ratios, vmax, tol: float = RESCALE32_TOL):
    """32-bit rescaling: (M list, r, worst relative factor error) with
    round(v * ratio) ≈ (v * M + 2^(r-1)) >> r computed in int32 for every |v| <= vmax (per
    element or one bound): the largest r <= 31 with vmax·|M| + 2^(r-1) <= 2^31 - 1, so nothing
    overflows. Ratios may be negative (a folded constant). None when the factor's relative error
    at that r exceeds ``tol`` (the caller then rescales in int64)."""
    ratios = np.asarray(ratios, np.float64).ravel()
    vmax = np.broadcast_to(np.asarray(vmax, np.float64), ratios.shape)
    if not np.all(np.isfinite(ratios)):
        raise ValueError(f"cannot rescale by {ratios!r}")
    if not np.any(ratios):
        return [0] * ratios.size, 1, 0.0
    for r in range(31, 0, -1):
        M = np.rint(ratios * 2.0 ** r)
        if np.all(vmax * np.abs(M) + 2.0 ** (r - 1) <= INT32_MAX):
            nz = ratios != 0
            err = float(np.max(np.abs(M[nz] / 2.0 ** r - ratios[nz]) / np.abs(ratios[nz])))
            if err > tol:
                return None
            return [int(m) for m in M], r, err
    return None


def rescale(v: np.ndarray, M, r: int) -> np.ndarray:
    """The C ``rq``: (v * M + 2^(r-1)) >> r in int64 (arithmetic shift)."""
    v = np.asarray(v, np.int64)
    return (v * np.asarray(M, np.int64) + (np.int64(1) << np.int64(r - 1))) >> np.int64(r)


def tanh_table() -> np.ndarray:
    k = np.arange(TANH_ENTRIES, dtype=np.float64)
    t = np.tanh(k / (1 << (Z_FRAC_BITS - TANH_STEP_BITS)))
    return np.minimum(np.rint(t * 2 ** GATE_FRAC_BITS), Q15_MAX).astype(np.int64)


def tanh_q15(z: np.ndarray, table: np.ndarray | None = None) -> np.ndarray:
    """The C ``tanh`` on Q16 inputs (int64 arrays), bit-exact."""
    T = tanh_table() if table is None else table
    z = np.asarray(z, np.int64)
    t = np.abs(z)
    big = t >= (TANH_RANGE << Z_FRAC_BITS)
    k = np.where(big, 0, t >> TANH_STEP_BITS)
    f = t & ((1 << TANH_STEP_BITS) - 1)
    half = 1 << (TANH_STEP_BITS - 1)
    y = T[k] + (((T[np.minimum(k + 1, TANH_ENTRIES - 1)] - T[k]) * f + half) >> TANH_STEP_BITS)
    y = np.where(big, Q15_MAX, y)
    return np.where(z < 0, -y, y)


def sigmoid_q15(z: np.ndarray, table: np.ndarray | None = None) -> np.ndarray:
    """The C ``sigmoid``: (2^15 + tanh(z / 2) + 1) >> 1, capped at 2^15 - 1 (z / 2 truncates
    toward zero, as C's division does)."""
    z = np.asarray(z, np.int64)
    half = np.where(z < 0, -((-z) >> 1), z >> 1)
    return np.minimum((2 ** GATE_FRAC_BITS + tanh_q15(half, table) + 1) >> 1, Q15_MAX)


@functools.lru_cache(maxsize=None)
def error_bounds(limit: float = 40.0) -> dict[str, float]:
    """Max |integer result - exact| of tanh and sigmoid over every Q16 input in [-limit, limit]."""
    table = tanh_table()
    z = np.arange(-int(limit * 2 ** Z_FRAC_BITS), int(limit * 2 ** Z_FRAC_BITS) + 1, dtype=np.int64)
    x = z / 2.0 ** Z_FRAC_BITS
    out = {}
    for name, fn, exact in (("tanh", tanh_q15, np.tanh(x)),
                            ("sigmoid", sigmoid_q15, 0.5 * (1.0 + np.tanh(x / 2)))):
        got = fn(z, table) / 2.0 ** GATE_FRAC_BITS
        out[name] = float(np.abs(got - exact).max())
    out["hard_sigmoid"] = 2.0 ** -GATE_FRAC_BITS
    return out


__all__ = ["multiplier", "multipliers", "multipliers32", "rescale", "INT32_MAX",
           "RESCALE32_TOL", "MATMUL32_TOL", "tanh_table", "tanh_q15", "sigmoid_q15",
           "error_bounds", "Z_FRAC_BITS", "GATE_FRAC_BITS", "Z_LIMIT", "TANH_ENTRIES", "Q15_MAX"]
