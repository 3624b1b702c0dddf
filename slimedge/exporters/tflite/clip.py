"""The IR's ``clip`` in TFLite: one kernel where the target has it, else fused or composed.

Every piecewise-linear activation reaches the TFLite emitter as mul, add and ``clip(lo, hi)``
(:mod:`slimedge.activations`), so this is the one place that knows TFLite's clamps:

* a clip whose bounds are a TFLite op's (RELU (0, -), RELU6 (0, 6), RELU_0_TO_1 (0, 1),
  RELU_N1_TO_1 (-1, 1)) is that op, where the target has a kernel for it in the value's type
  (TensorFlow Lite Micro: RELU and RELU6 only; int16: RELU and RELU_0_TO_1);
* a clip from 0 without such a kernel, reading an ADD or MUL that nothing else reads, fuses into
  it: a fused RELU, then in float MINIMUM hi; in integers the ADD writes straight at the clip's
  fixed range, whose saturation is the clip (no op) — TFLite Micro's hard sigmoid;
* otherwise MAXIMUM and/or MINIMUM in float, a saturating requantisation (QUANTIZE) to the
  clip's range in integers.

Integer clips with both bounds write at the fixed quantisation of [lo, hi)
(:func:`.qparams.clip_range`: 1/256 from 0 for [0, 1), as the spec fixes sigmoid's).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ... import ir
from .qparams import clip_range

if TYPE_CHECKING:
    from .emitter import Emitter

CLIP_KERNELS = {(0.0, None): ("RELU", {"float", "int8", "int16"}),
                (0.0, 6.0): ("RELU6", {"float", "int8"}),
                (0.0, 1.0): ("RELU_0_TO_1", {"float", "int8", "int16"}),
                (-1.0, 1.0): ("RELU_N1_TO_1", {"float", "int8"})}
"""clip bounds -> the TFLite op that is exactly that clip, and the types its kernels take."""
MICRO_KERNELS = {"RELU", "RELU6"}
"""The clip ops TensorFlow Lite Micro has kernels for."""


def clip_op(compat: str, lo, hi, dom: str) -> str | None:
    """The one TFLite op that is clip(lo, hi) in ``dom`` on the target ``compat``, or None."""
    code, doms = CLIP_KERNELS.get((lo, hi), (None, ()))
    if code is None or dom not in doms or compat == "tflm" and code not in MICRO_KERNELS:
        return None
    return code


def fusable_clips(e: "Emitter") -> dict[str, ir.Node]:
    """Clips from 0 with no kernel on the target whose input is an ADD or MUL read by nothing
    else, by that input: they fuse into its op (a fused RELU)."""
    g = e.g
    readers: dict[str, int] = {}
    for n in g.nodes:
        for i in n.inputs:
            readers[i] = readers.get(i, 0) + 1
    prod = g.producers()
    out = {}
    for n in g.nodes:
        if n.op != "clip":
            continue
        lo, hi = n.attrs["kernel"]["lo"], n.attrs["kernel"]["hi"]
        p = prod.get(n.inputs[0])
        if (p is not None and lo == 0.0 and e.clip_op(lo, hi, e.domain_of(n.outputs[0])) is None
                and p.op in ("add", "mul") and readers[n.inputs[0]] == 1
                and n.inputs[0] not in g.outputs and n.inputs[0] not in e._packs):
            out[n.inputs[0]] = n
    return out


def emit_clip(e: "Emitter", node: ir.Node) -> None:
    """min(max(z, lo), hi), as the module's docstring says."""
    w, v = e.w, node.outputs[0]
    lo, hi = node.attrs["kernel"]["lo"], node.attrs["kernel"]["hi"]
    dom = e.domain_of(v)
    fused = node.inputs[0] in e.fused
    if fused and dom != "float":
        return  # the producer wrote this value (its range ends at the bounds)
    z = e.value(node.inputs[0], dom)
    fixed = (clip_range(lo, hi, dom) if dom != "float" and lo is not None and hi is not None
             else None)
    code = e.clip_op(lo, hi, dom)
    if code is not None:
        w.op(code, [z], [e.out(node, fixed=fixed)])
    elif dom != "float":  # a requantisation saturates to the output's range
        w.op("QUANTIZE", [z], [e.out(node, fixed=fixed)])
    else:
        steps = [("MINIMUM", hi)] if fused else [("MAXIMUM", lo), ("MINIMUM", hi)]
        steps = [(op, b) for op, b in steps if b is not None]
        for k, (op, b) in enumerate(steps):
            bound = w.tensor(w.fresh(f"{v}/{b:g}"), (1,), "float32", np.array([b]))
            last = k == len(steps) - 1
            t = e.out(node) if last else e.tmp(f"{v}/{op.lower()}", e.g.shapes[v], dom)
            w.op(op, [z, bound], [t])
            z = t
    e.after()


__all__ = ["CLIP_KERNELS", "MICRO_KERNELS", "clip_op", "fusable_clips", "emit_clip"]
