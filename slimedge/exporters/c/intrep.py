"""The full-integer C step's integer representations and the calibrated scales of its state.

A value of the integer step is held as a :class:`Rep`: a C type, a scale (real = int * scale), a
saturation range and its magnitude bits. :func:`scales` picks the scales of the normalised input,
h and c from the ranges calibration found; :mod:`.emit_int` decides every other value's.
"""
from __future__ import annotations

from dataclasses import dataclass

from ... import activations, ir
from ..calibration import STATE_HEADROOM
from . import fixedpoint as fx


@dataclass(frozen=True)
class Rep:
    """An integer representation: C type, scale (real = int * scale), saturation range, and
    magnitude bits (|v| < 2^bits)."""

    ctype: str
    scale: float
    lo: int
    hi: int
    bits: int


def i8(scale: float) -> Rep:
    return Rep("int8_t", float(scale), -127, 127, 7)


def i16(scale: float) -> Rep:
    return Rep("int16_t", float(scale), -fx.Q15_MAX, fx.Q15_MAX, 15)


BYTES = {"int8_t": 1, "int16_t": 2, "int32_t": 4}
TYPE_MAX = {"int8_t": 128, "int16_t": 32768}  # |v| bound of a state or input an API caller gives


def vmax(rep: Rep) -> int:
    """The largest |value| an expression held as ``rep`` can have (its type's for int8/int16,
    which callers of the integer API fill; its saturation range for wider values)."""
    return TYPE_MAX.get(rep.ctype) or max(abs(rep.lo), abs(rep.hi)) or 2 ** rep.bits - 1
Q15 = i16(2.0 ** -fx.GATE_FRAC_BITS)
Z = Rep("int32_t", 2.0 ** -fx.Z_FRAC_BITS, -fx.Z_LIMIT, fx.Z_LIMIT, 30)


def absmax(r) -> float:
    return max(abs(float(r[0])), abs(float(r[1])))


def scales(graph: ir.Graph, ranges: dict, xin: str) -> tuple[float, list[float], list[float]]:
    """The calibrated scales of the normalised input (int8), each layer's h (int8) and c
    (int16, :data:`STATE_HEADROOM` times its range) from every value's range."""
    prod = graph.producers()
    h_new, c_new = prod["h_next"].inputs, prod["c_next"].inputs
    h_in = [n for n in graph.nodes if n.op == "unstack" and n.inputs == ("h",)][0].outputs
    c_in = [n for n in graph.nodes if n.op == "unstack" and n.inputs == ("c",)][0].outputs
    g_act = (graph.config.get("lstm") or {}).get("activation", "tanh")
    s_x = absmax(ranges[xin]) / 127.0 or 1.0
    s_h, s_c = [], []
    for k in range(graph.num_layers):
        top = max(absmax(ranges[h_in[k]]), absmax(ranges[h_new[k]]))
        s_h.append(min(top, activations.bound(g_act)) / 127.0 or 1.0)  # |g(.)| bounds h
        cell = [c_in[k], c_new[k]]
        node = prod.get(c_new[k])
        if node is not None and node.op == "add":
            cell += [v for v in node.inputs if v in ranges]
        s_c.append(STATE_HEADROOM * max(absmax(ranges[v]) for v in cell) / fx.Q15_MAX or 1.0)
    return s_x, s_h, s_c


__all__ = ["Rep", "i8", "i16", "vmax", "absmax", "Q15", "Z", "BYTES", "TYPE_MAX", "STATE_HEADROOM",
           "scales"]
