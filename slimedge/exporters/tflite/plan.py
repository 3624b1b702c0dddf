"""Int8 planning for TFLite: which IR values stay float, which are int8 or int16, and at which scale.

The front-end stage (:mod:`slimedge.frontend`; the standardisation x·s + t) stays float; every
other activation is int8 (``act_bits=16``: int16). With integer I/O (``integer_io``) nothing is
float: the graph's int8 input is the front-end's output itself (the emitter leaves the front-end to
whoever quantises x).
``state_bits=16`` puts the cell-state path — the values the lowering tags
(:meth:`slimedge.ir.Graph.cell_state_values`: c, its per-layer parts, f ⊙ c, i ⊙ c~, c', g(c'),
c_next) — in int16. Scales come from calibration ranges; each state (h and c) shares one
quantisation across its input, per-layer parts and output, because PACK needs its inputs at the
output's scale and the next step's input is this step's output.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ... import ir
from .qparams import QParams, qparams_for_range


@dataclass
class Plan:
    """The integer form of a graph's values."""

    float_values: set[str]            # IR values computed in float (x and the front-end's)
    dtype: dict[str, str]             # every other value -> "int8" | "int16"
    value_q: dict[str, QParams]       # IR value -> its planned quantisation
    ranges: Mapping[str, tuple[float, float]]


def plan(g: ir.Graph, ranges: Mapping[str, tuple[float, float]], *, state_bits: int = 8,
         act_bits: int = 8, integer_io: bool = False) -> Plan:
    """The plan of ``g`` under calibration ``ranges`` (IR value -> (min, max))."""
    front = {"x"} | {o for n in g.frontend_nodes() for o in n.outputs}
    float_values = set() if integer_io else front
    base = "int16" if act_bits == 16 else "int8"
    dtype = {v: base for v in g.shapes if v not in float_values}
    if state_bits == 16 and base == "int8":
        for v in g.cell_state_values():
            dtype[v] = "int16"

    def rng(v):
        if v not in ranges:
            raise ValueError(f"calibration ranges lack the value {v!r}")
        return ranges[v]

    # state tensors share one quantisation per state (all layers, in and out)
    share = {}
    producers = g.producers()
    for state, nxt in (("h", "h_next"), ("c", "c_next")):
        group = [state, nxt] + [o for n in g.nodes if n.op == "unstack" and n.inputs[0] == state
                                for o in n.outputs]
        group += list(producers[nxt].inputs)
        lo = min(rng(v)[0] for v in group)
        hi = max(rng(v)[1] for v in group)
        for v in group:
            share[v] = (lo, hi, dtype.get(nxt, base))
    value_q: dict[str, QParams] = {v: qparams_for_range(*rng(v), base)
                                   for v in float_values if v in ranges}
    for v, dt in dtype.items():
        if v in g.initializers:
            continue
        if v in share:
            lo, hi, dt2 = share[v]
            value_q[v] = qparams_for_range(lo, hi, dt2)
            dtype[v] = dt2
        else:
            value_q[v] = qparams_for_range(*rng(v), dt)
    return Plan(float_values, dtype, value_q, ranges)


__all__ = ["Plan", "plan"]
