"""Correctly rounded transcendental functions for integer front-end tables (no libm).

The microfrontend's tables (window, FFT twiddles, filterbank, PCAN gain) are TensorFlow Lite
Micro's formulas, whose float steps are IEEE float32/float64 arithmetic (identical on every
platform) around a few calls into libm (cos, sin, log1p, powf), whose last bit is not. Here those
calls are evaluated with :mod:`decimal` at :data:`DIGITS` significant digits and rounded once to
the nearest float64 (or float32): the tables are then the same integers on every machine, and the
C export embeds them as constants. Each function takes and returns Python floats.
"""
from __future__ import annotations

import decimal
from decimal import Decimal

import numpy as np

DIGITS = 50
_CTX = decimal.Context(prec=DIGITS + 10, rounding=decimal.ROUND_HALF_EVEN)
_PI = Decimal("3.14159265358979323846264338327950288419716939937510582097494459230781640628620899")


def _cos_dec(x: Decimal) -> Decimal:
    """cos(x) by argument reduction to [-pi, pi] and the Taylor series."""
    with decimal.localcontext(_CTX):
        two_pi = 2 * _PI
        x = x - two_pi * (x / two_pi).to_integral_value(rounding=decimal.ROUND_HALF_EVEN)
        x2, term, total, k = x * x, Decimal(1), Decimal(1), 0
        eps = Decimal(10) ** -(DIGITS + 5)
        while abs(term) > eps:
            k += 2
            term = -term * x2 / (k * (k - 1))
            total += term
        return +total


def cos(x: float) -> float:
    """cos of the float64 ``x``, correctly rounded to float64."""
    return float(_cos_dec(Decimal(x)))


def cosf(x: float) -> float:
    """cos of the float32 ``x``, correctly rounded to float32 (C's ``cosf``)."""
    with decimal.localcontext(_CTX):
        return to_float32(_cos_dec(Decimal(float(x))))


def sin(x: float) -> float:
    """sin of the float64 ``x`` (cos(x - pi/2) in exact arithmetic), rounded to float64."""
    with decimal.localcontext(_CTX):
        return float(_cos_dec(Decimal(x) - _PI / 2))


def log1p(x: float) -> float:
    """ln(1 + x) of the float64 ``x``, correctly rounded to float64."""
    with decimal.localcontext(_CTX):
        return float((1 + Decimal(x)).ln())


def log1pf(x: float) -> float:
    """ln(1 + x) of the float32 ``x``, correctly rounded to float32 (C's ``log1pf``)."""
    with decimal.localcontext(_CTX):
        return to_float32((1 + Decimal(float(x))).ln())


def powf(a: float, b: float) -> float:
    """a ** b for float32 values a > 0 and b, correctly rounded to float32 (C's ``powf``)."""
    with decimal.localcontext(_CTX):
        return to_float32((Decimal(float(a)).ln() * Decimal(float(b))).exp())


def to_float32(d: Decimal) -> float:
    """The float32 nearest the exact value ``d`` (ties to even), as a Python float."""
    f = np.float32(float(d))
    for g in (np.nextafter(f, np.float32(-np.inf)), np.nextafter(f, np.float32(np.inf))):
        dg, df = abs(Decimal(float(g)) - d), abs(Decimal(float(f)) - d)
        if dg < df or (dg == df and int(g.view(np.uint32)) % 2 == 0):
            f = g
    return float(f)


__all__ = ["cos", "cosf", "sin", "log1p", "log1pf", "powf", "to_float32", "DIGITS"]
