"""TFLite emission: the step IR walked once, each IR op written through the op table :data:`OPS`.

IR op -> TFLite op:

    matmul        FULLY_CONNECTED (weights (out, in), optional bias)
    add, mul      ADD, MUL (broadcasting)
    sigmoid       LOGISTIC          tanh  TANH
    clip          RELU, RELU6, RELU_0_TO_1 or RELU_N1_TO_1 where the bounds are one of those and
                  the target has the kernel, else fused or composed (:mod:`.clip`); with mul and
                  add this writes every piecewise-linear activation (hard_sigmoid is MUL 0.2,
                  ADD 0.5, clip(0, 1); see slimedge.activations)
    split         SPLIT (equal parts) or SPLIT_V
    unstack       UNPACK            stack PACK          identity RESHAPE

``quantize="none"`` writes float32 throughout; ``"dynamic"`` int8 FULLY_CONNECTED weights with float
activations (hybrid); ``"int8"`` integer activations as :mod:`.plan` decides, with int8 weights,
int32 biases (int64 beside 16-bit activations) and LOGISTIC/TANH outputs at the spec's fixed
scales. Values convert between domains (QUANTIZE / DEQUANTIZE / a requantising QUANTIZE) where a
consumer first needs them in another; the graph keeps float32 inputs and outputs, unless
``io="int"`` (int8 only): then x, h, c, y, h_next, c_next are the plan's integer tensors (h and y
int8, c int16 with the default 16-bit cell path), so a device never converts floats. x is then
the front-end's output (:attr:`slimedge.ir.Graph.features`, the *normalised* frame) at the int8
scale the float-I/O file quantises it to (the front-end is no op of the graph: the standardisation
is one multiply-add per feature, done while quantising anyway), so both files compute the same
integers. The export info records every I/O tensor's quantisation and, for x, what the front-end
records for its reader (``io_quantization``; :func:`slimedge.frontend.outside` applies it):
x_q = round((x·s + t) / scale) + zero_point.

``compat`` names the interpreter the file must suit: ``"litert"``, ``"tflite-runtime"``
(per-tensor weight scales for hybrid FULLY_CONNECTED) or ``"tflm"`` (TensorFlow Lite Micro: only
ops it has kernels for; no hybrid ``dynamic`` files, which it cannot run).
"""
from __future__ import annotations

import json
import os
from typing import Callable, Mapping

import numpy as np

from ... import integrity, ir
from ..._io import write_bytes
from ...errors import IncompatibleTarget, UsageError
from ...formats import QUANTIZE as QUANTIZE_MODES
from ...formats.tflite import COMPAT
from .clip import clip_op, emit_clip, fusable_clips
from .flatbuffer import Writer, options
from .plan import Plan, plan
from .qparams import FIXED_OUT, QParams, clip_range, qparams_for_range, sym_weights, wants_per_channel

IO = ("float", "int")


def check_target(quantize: str, compat: str, io: str = "float") -> None:
    """Refuse (UsageError) a compat target, I/O kind or combination that cannot be written."""
    if compat not in COMPAT:
        raise UsageError(f"unknown compat target {compat!r}; valid: {', '.join(COMPAT)}")
    if io not in IO:
        raise UsageError(f"unknown io {io!r}; valid: {', '.join(IO)}")
    if compat == "tflm" and quantize == "dynamic":
        raise IncompatibleTarget(
            "TensorFlow Lite Micro cannot run quantize='dynamic' (hybrid FULLY_CONNECTED: float "
            "input, int8 weights has no kernel there); choose --quantize int8 (full integer) "
            "or the float file (--quantize none)")
    if io == "int" and quantize != "int8":
        raise UsageError(f"io='int' (integer inputs and outputs) needs quantize='int8', not "
                         f"{quantize!r}: only a full-integer file has integer tensors to expose")


class Emitter:
    """Walks the IR once; every value keeps its TFLite tensor (and its quantisation, if any)."""

    def __init__(self, graph: ir.Graph, quantize: str, per_channel: bool,
                 ranges: Mapping[str, tuple[float, float]] | None, state_bits: int,
                 act_bits: int, compat: str = "litert", io: str = "float") -> None:
        self.g, self.quantize, self.per_channel = graph, quantize, per_channel
        self.compat, self.io = compat, io
        self.per_channel_used = False  # did any weight get per-channel scales
        self.w = Writer()
        self.s = self.w.s
        self.weights = graph.weights(np.float64)
        self.tensor_of: dict[tuple[str, str], str] = {}  # (IR value, domain) -> tensor name
        self.q: dict[str, QParams] = {}                  # tensor name -> its quantisation
        self.plan: Plan | None = None
        self.value_q: dict[str, QParams] = {}            # IR value -> its planned quantisation
        self._pending_requant = None
        self._packs = {i for n in graph.nodes if n.op == "stack" for i in n.inputs}
        if quantize == "int8":
            if ranges is None:
                raise ValueError("quantize='int8' needs calibration ranges "
                                 "(slimedge.exporters.calibration.calibrate)")
            self.plan = plan(graph, ranges, state_bits=state_bits, act_bits=act_bits,
                             integer_io=(io == "int"))
            self.value_q = self.plan.value_q
        self.fused: dict[str, ir.Node] = fusable_clips(self)  # producer's value -> its clip

    # -- tensors of IR values
    def clip_op(self, lo, hi, dom: str) -> str | None:
        """The one TFLite op that is clip(lo, hi) on this target in ``dom``, or None."""
        return clip_op(self.compat, lo, hi, dom)

    def domain_of(self, v: str) -> str:
        if self.plan is None or v in self.plan.float_values:
            return "float"
        return self.plan.dtype[v]

    def value(self, v: str, domain: str = "float") -> str:
        """The tensor holding IR value ``v`` in ``domain`` ('float', 'int8', 'int16'), converting
        (QUANTIZE / DEQUANTIZE / requantising QUANTIZE) on first demand."""
        key = (v, domain)
        if key in self.tensor_of:
            return self.tensor_of[key]
        if v in self.g.initializers:
            return self._const(v, domain)
        have = [(d, t) for (vv, d), t in self.tensor_of.items() if vv == v]
        if not have:
            raise KeyError(f"IR value {v!r} used before it is produced")
        src_dom, src = have[0]
        shape = self.g.shapes[v]
        name = f"{v}:{domain}"
        if domain == "float":
            self.w.tensor(name, shape)
            self.w.op("DEQUANTIZE", [src], [name])
        else:
            if v in self.value_q and self.value_q[v].dtype == domain:
                qp = self.value_q[v]
            elif src_dom == "float":
                qp = qparams_for_range(*self.plan.ranges[v], domain)
            else:  # a requantisation int8 <-> int16 keeps the source's range
                qp = qparams_for_range(*self.q[src].range(), domain)
            self.w.tensor(name, shape, domain, q=qp)
            self.q[name] = qp
            self.w.op("QUANTIZE", [src], [name])
        self.tensor_of[key] = name
        return name

    def _const(self, v: str, domain: str) -> str:
        val = self.weights[v]
        name = v if domain == "float" else f"{v}:{domain}"
        if domain == "float":
            self.w.tensor(name, val.shape, "float32", val)
        else:
            amax = float(np.abs(val).max()) or 1.0
            qmax = 127 if domain == "int8" else 32767
            qp = QParams(domain, amax / qmax, 0)
            self.w.tensor(name, val.shape, domain, qp.quantize(val), q=qp)
            self.q[name] = qp
        self.tensor_of[(v, domain)] = name
        return name

    def new_out(self, v: str, domain: str, q: QParams | None = None) -> str:
        name = v if (v, "float") not in self.tensor_of and domain == "float" else f"{v}:{domain}"
        if name in self.w.index:
            name = self.w.fresh(name)
        qp = q if domain != "float" else None
        self.w.tensor(name, self.g.shapes[v], domain, q=qp)
        if qp is not None:
            self.q[name] = qp
        self.tensor_of[(v, domain)] = name
        return name

    def tmp(self, stem: str, shape, domain: str, q: QParams | None = None) -> str:
        name = self.w.fresh(stem)
        self.w.tensor(name, shape, domain, q=q if domain != "float" else None)
        if domain != "float":
            self.q[name] = q
        return name

    def out(self, node: ir.Node, k: int = 0, fixed: QParams | None = None) -> str:
        """The output tensor of ``node`` (its k-th); a fixed-scale op writes to a temporary that is
        requantised to the planned scale when some consumer needs exactly that (PACK)."""
        v = node.outputs[k]
        dom = self.domain_of(v)
        if dom == "float":
            return self.new_out(v, "float")
        if fixed is not None:
            planned = self.value_q[v]
            if fixed == planned or v not in self._packs:
                self.value_q[v] = fixed
                return self.new_out(v, dom, fixed)
            t = self.tmp(f"{v}:fixed", self.g.shapes[v], dom, fixed)
            self._pending_requant = (t, v, dom, planned)
            return t
        return self.new_out(v, dom, self.value_q[v])

    def after(self) -> None:
        """Write the requantisation :meth:`out` left pending, once the op itself is written."""
        if self._pending_requant:
            t, v, dom, planned = self._pending_requant
            self.w.op("QUANTIZE", [t], [self.new_out(v, dom, planned)])
            self._pending_requant = None

    def same_q_outputs(self, node: ir.Node, src: str, dom: str) -> list[str]:
        """Output tensors at the source tensor's quantisation (SPLIT, UNPACK, RESHAPE)."""
        outs = []
        for v in node.outputs:
            if dom != "float":
                self.value_q[v] = self.q[src]
            outs.append(self.new_out(v, dom, self.q.get(src)))
        return outs

    def int8_weight(self, name: str, wt: np.ndarray) -> tuple[int, np.ndarray]:
        """The int8 tensor of a weight (out, in) and its scales (per channel where that pays)."""
        pc = wants_per_channel(wt, self.per_channel)
        self.per_channel_used |= pc
        q, scale = sym_weights(wt, pc)
        return self.w.tensor(f"{name}:int8", wt.shape, "int8", q, scales=scale), scale

    # -- the walk
    def emit(self) -> Writer:
        g, w = self.g, self.w
        for name in g.inputs:
            dom = self.io_domain(name)
            v = self.x_value if name == "x" else name  # integer x: the front-end's output
            q = self.value_q[v] if dom != "float" else None
            w.tensor(name, g.shapes[name], dom, q=q)
            if q is not None:
                self.q[name] = q
            self.tensor_of[(v, dom)] = name
        for node in g.nodes:
            if self.io == "int" and node.attrs.get("role") == "frontend":
                continue  # done by whoever quantises x (io_quantization says how)
            OPS[node.op](self, node)
        # the outputs under their public names: float, or (io="int") in their planned type
        for o in g.outputs:
            dom = self.io_domain(o)
            if dom == "float" and (o, "float") not in self.tensor_of:
                src = self.value(o, self.domain_of(o))
                w.tensor(o, g.shapes[o])
                w.op("DEQUANTIZE", [src], [o])
                self.tensor_of[(o, "float")] = o
            elif dom != "float":
                src = self.value(o, dom)
                if src != o:  # e.g. "y:int8" -> "y"
                    assert o not in w.index, f"tensor name {o!r} taken"
                    w.tensors[w.index[src]].name = o
                    w.index[o] = w.index.pop(src)
                    self.q[o] = self.q.pop(src)
                    self.tensor_of[(o, dom)] = o
        return w

    @property
    def x_value(self) -> str:
        """The IR value the graph input x holds: x, or with io="int" the front-end's output."""
        return self.g.features if self.io == "int" else "x"

    def io_domain(self, v: str) -> str:
        """The domain of a graph input or output: float, or with io="int" its planned type."""
        if self.io != "int":
            return "float"
        return self.domain_of(self.x_value if v == "x" else v)

    def io_quantization(self) -> dict:
        """Each graph input's and output's integer type, scale and zero point (io="int"); for x
        also what the front-end records for its reader (the standardisation's per-feature s and
        t, float32, under ``normalization``), applied before quantising."""
        out = {v: {"dtype": self.q[v].dtype, "scale": float(np.float32(self.q[v].scale)),
                   "zero_point": int(self.q[v].zero_point)}
               for v in (*self.g.inputs, *self.g.outputs)}
        if self.g.frontend_nodes():
            out["x"].update(self.g.frontend.companion())
        return out


# ---- the op table -------------------------------------------------------------------------------
def _matmul(e: Emitter, node: ir.Node) -> None:
    a, wname = node.inputs[0], node.inputs[1]
    wt = e.weights[wname]
    bias = e.weights[node.inputs[2]] if len(node.inputs) > 2 else None
    dom = e.domain_of(node.outputs[0])
    if e.quantize == "none" or (e.quantize == "int8" and dom == "float"):
        ins = [e.value(a), e.value(wname)]
        if bias is not None:
            ins.append(e.value(node.inputs[2]))
    elif e.quantize == "dynamic":
        wq, _ = e.int8_weight(wname, wt)
        ins = [e.value(a), wq]
        if bias is not None:
            ins.append(e.value(node.inputs[2]))
    else:
        xin = e.value(a, dom)
        wq, scale = e.int8_weight(wname, wt)
        ins = [xin, wq]
        if bias is not None:
            bscale = e.q[xin].scale * scale
            btype = "int32" if dom == "int8" else "int64"
            bq = np.round(bias / bscale).astype(btype)
            ins.append(e.w.tensor(f"{node.inputs[2]}:{btype}", bias.shape, btype, bq,
                                  scales=bscale))
    e.w.op("FULLY_CONNECTED", ins, [e.out(node)], options(e.s, "FullyConnectedOptions"))
    e.after()


def _add_options(e: Emitter, dom: str, **fields):
    # int16: the general-scale kernel (pot_scale_int16 false), as TF's converter writes it; the
    # scales here are calibrated, not powers of two
    return options(e.s, "AddOptions", **({"potScaleInt16": False} if dom == "int16" else {}),
                   **fields)


def _binary(code: str) -> Callable[[Emitter, ir.Node], None]:
    def emit(e: Emitter, node: ir.Node) -> None:
        v = node.outputs[0]
        dom = e.domain_of(v)
        ins = [e.value(i, dom) for i in node.inputs]
        fused = {}
        clip = e.fused.get(v)
        if clip is not None:  # a clip from 0 fused: RELU here, the rest by the clip
            fused = {"fusedActivationFunction": e.s.ActivationFunctionType.RELU}
        opts = (_add_options(e, dom, **fused) if code == "ADD"
                else options(e.s, "MulOptions", **fused))
        if clip is not None and dom != "float":  # integer: straight to the clip's range
            lo, hi = clip.attrs["kernel"]["lo"], clip.attrs["kernel"]["hi"]
            fixed = clip_range(lo, hi, dom) if hi is not None else None
            out = e.out(clip, fixed=fixed)
            e.tensor_of[(v, dom)] = out
            e.w.op(code, ins, [out], opts)
        else:
            if dom != "float" and "activation" in node.attrs:
                e.value_q[v] = _affine_q(e, node, ins, dom)
            e.w.op(code, ins, [e.out(node)], opts)
        e.after()
    return emit


def _affine_q(e: Emitter, node: ir.Node, ins: list[str], dom: str) -> QParams:
    """Inside a piecewise-linear activation, a·z or z + b (a scalar constant) is quantised over
    its input's quantised range mapped through it, not its calibrated one: no saturation can
    happen before the clip, which is where the activation's own bounds apply."""
    k = next((j for j, i in enumerate(node.inputs) if i in e.g.initializers), None)
    c = e.weights[node.inputs[k]].ravel() if k is not None else None
    if c is None or c.size != 1:
        return e.value_q[node.outputs[0]]
    lo, hi = e.q[ins[1 - k]].range()
    c = float(c[0])
    lo, hi = sorted((lo * c, hi * c)) if node.op == "mul" else (lo + c, hi + c)
    return qparams_for_range(lo, hi, dom)


def _unary(code: str) -> Callable[[Emitter, ir.Node], None]:
    def emit(e: Emitter, node: ir.Node) -> None:
        dom = e.domain_of(node.outputs[0])
        a = e.value(node.inputs[0], dom)
        e.w.op(code, [a], [e.out(node, fixed=FIXED_OUT.get((node.op, dom)))])
        e.after()
    return emit


def _split(e: Emitter, node: ir.Node) -> None:
    sizes = list(node.attrs["kernel"]["sizes"])
    dom = e.domain_of(node.outputs[0])
    a = e.value(node.inputs[0], dom)
    outs = e.same_q_outputs(node, a, dom)
    axis = e.w.const_i32("split_axis", np.int32(len(e.g.shapes[node.inputs[0]]) - 1))
    if len(set(sizes)) == 1:
        e.w.op("SPLIT", [axis, a], outs, options(e.s, "SplitOptions", numSplits=len(sizes)))
    else:
        sz = e.w.const_i32("split_sizes", sizes)
        e.w.op("SPLIT_V", [a, sz, axis], outs, options(e.s, "SplitVOptions", numSplits=len(sizes)))


def _unstack(e: Emitter, node: ir.Node) -> None:
    dom = e.domain_of(node.outputs[0])
    a = e.value(node.inputs[0], dom)
    outs = e.same_q_outputs(node, a, dom)
    e.w.op("UNPACK", [a], outs, options(e.s, "UnpackOptions", num=len(outs), axis=0))


def _stack(e: Emitter, node: ir.Node) -> None:
    dom = e.domain_of(node.outputs[0])
    out_q = e.value_q.get(node.outputs[0]) if dom != "float" else None
    ins = []
    for i in node.inputs:
        t = e.value(i, dom)
        if out_q is not None and e.q[t] != out_q:  # PACK needs one scale for all
            r = e.tmp(f"{i}:requant", e.g.shapes[i], dom, out_q)
            e.w.op("QUANTIZE", [t], [r])
            t = r
        ins.append(t)
    out = e.new_out(node.outputs[0], dom, out_q)
    e.w.op("PACK", ins, [out], options(e.s, "PackOptions", valuesCount=len(ins), axis=0))


def _identity(e: Emitter, node: ir.Node) -> None:
    dom = e.domain_of(node.outputs[0])
    a = e.value(node.inputs[0], dom)
    (out,) = e.same_q_outputs(node, a, dom)
    shape = [-1 if d == ir.B else int(d) for d in e.g.shapes[node.outputs[0]]]
    new_shape = e.w.const_i32("reshape_to", shape)
    e.w.op("RESHAPE", [a, new_shape], [out], options(e.s, "ReshapeOptions"))


OPS: dict[str, Callable[[Emitter, ir.Node], None]] = {
    "matmul": _matmul,
    "add": _binary("ADD"),
    "mul": _binary("MUL"),
    "sigmoid": _unary("LOGISTIC"),
    "tanh": _unary("TANH"),
    "clip": emit_clip,
    "split": _split,
    "unstack": _unstack,
    "stack": _stack,
    "identity": _identity,
}
"""IR op -> the function writing it as TFLite ops."""
assert set(OPS) == set(ir.OPS), "every IR op needs a TFLite mapping"


# ---- the file -----------------------------------------------------------------------------------
def to_bytes(graph: ir.Graph, *, quantize: str = "none", per_channel: bool = True,
             ranges: Mapping[str, tuple[float, float]] | None = None, state_bits: int = 8,
             act_bits: int = 8, export_info: Mapping | None = None, compat: str = "litert",
             io: str = "float") -> tuple[bytes, dict]:
    """The ``.tflite`` bytes of ``graph`` and a summary (ops, weight bytes, quantisation)."""
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"unknown quantize mode {quantize!r}; valid: {', '.join(QUANTIZE_MODES)}")
    if state_bits not in (8, 16) or act_bits not in (8, 16):
        raise ValueError("state_bits and act_bits must be 8 or 16")
    check_target(quantize, compat, io)
    em = Emitter(graph, quantize, per_channel, ranges, state_bits, act_bits, compat, io)
    w = em.emit()
    info = {"format": "tflite", "quantize": quantize,
            "weights": {"none": "float32", "dynamic": "int8 symmetric", "int8": "int8 symmetric"}[quantize],
            "per_channel": em.per_channel_used,
            "hybrid_per_channel_fully_connected": bool(quantize == "dynamic" and em.per_channel_used),
            "tflite_runtime_ok": not (quantize == "dynamic" and em.per_channel_used),
            "weight_bytes": int(w.weight_bytes)}
    if quantize == "int8":
        info["activations"] = ("int16" if act_bits == 16 else
                               "int8, cell-state path int16" if state_bits == 16 else "int8")
        info["activation_dtypes"] = sorted(set(em.plan.dtype.values()))
        info["float_ops"] = ("none" if io == "int" else
                             f"{graph.frontend.describe()} before the first QUANTIZE"
                             if graph.frontend_nodes() else "none")
        info["io"] = io
        if io == "int":
            info["io_quantization"] = em.io_quantization()
    if quantize == "dynamic":
        info["activations"] = "float32"
    if export_info:
        info.update(export_info)
    ops: dict[str, int] = {}
    for o in w.operators:
        code = w.op_name(o)
        ops[code] = ops.get(code, 0) + 1
    info["ops"] = dict(sorted(ops.items()))
    meta = json.loads(graph.metadata_json())
    meta["export"] = info
    data = w.finish(graph.inputs, graph.outputs, integrity.dumps(meta))
    return data, info


def emit(graph: ir.Graph | str | os.PathLike, path: str | os.PathLike, *, quantize: str = "none",
         compat: str = "litert", ranges: Mapping[str, tuple[float, float]] | None = None,
         state_bits: int = 8, act_bits: int = 8, export_info: Mapping | None = None,
         io: str = "float") -> dict:
    """Write ``graph`` (or the checkpoint at that path) to ``path`` as TFLite; returns the summary.

    ``compat="tflite-runtime"`` writes per-tensor weight scales for ``quantize="dynamic"`` (the old
    interpreter mis-computes per-channel hybrid FULLY_CONNECTED); LiteRT runs both.
    ``compat="tflm"`` writes only ops TensorFlow Lite Micro has and refuses ``quantize="dynamic"``
    (:class:`IncompatibleTarget`); ``io="int"`` (int8 only) gives the graph integer inputs and
    outputs.
    """
    check_target(quantize, compat, io)
    g = graph if isinstance(graph, ir.Graph) else ir.lower(
        graph, fold_normalization=(quantize == "none"))  # float: the front-end folded
    data, info = to_bytes(g, quantize=quantize, per_channel=(compat != "tflite-runtime"),
                          ranges=ranges, state_bits=state_bits, act_bits=act_bits,
                          export_info={"compat": compat, **(export_info or {})}, compat=compat,
                          io=io)
    write_bytes(path, data)
    integrity.seal(path)  # a file written here loads checked, as an exported one does
    info["file_bytes"] = len(data)
    return info


__all__ = ["OPS", "Emitter", "to_bytes", "emit", "check_target", "IncompatibleTarget",
           "QUANTIZE_MODES", "COMPAT", "IO"]
