"""TFLite emitter: the step IR as a ``.tflite`` flatbuffer, written without TensorFlow.

The file is built with LiteRT's generated schema (``ai_edge_litert.schema_py_generated``, object
API) and packed with ``flatbuffers``. One subgraph, one signature ``serving_default``; inputs ``x``
(B, m), ``h`` and ``c`` (layers, B, n), outputs ``y``, ``h_next``, ``c_next``, all float32 with the
batch dimension dynamic (shape_signature -1; ``resize_tensor_input`` picks it). The model's config
JSON (``graph.metadata_json()`` plus an ``export`` section describing the quantisation) is the
Metadata entry ``slimedge``. Buffer 0 is empty and every weight buffer starts 16-byte aligned.

IR op -> TFLite op:

    matmul        FULLY_CONNECTED (weights (out, in), optional bias)
    add, mul      ADD, MUL (broadcasting)
    sigmoid       LOGISTIC          tanh  TANH          relu  RELU
    hard_sigmoid  MUL 0.2, ADD 0.5, RELU_0_TO_1  (TFLite has no hard-sigmoid op)
    split         SPLIT (equal parts) or SPLIT_V
    unstack       UNPACK            stack PACK          identity RESHAPE

Quantisation (``quantize=``):

``"none"``     float32 throughout.
``"dynamic"``  "dynamic range": every FULLY_CONNECTED weight int8, symmetric, per output channel
               where that pays (below), else per tensor (always per tensor with
               ``per_channel=False``, which the old ``tflite-runtime`` needs: it ignores per-channel
               scales in hybrid FULLY_CONNECTED); activations stay float.
``"int8"``     integer activations with scales from calibration ranges (see
               :func:`slimedge.exporters.quantize.calibrate`): weights int8 (scales as above), biases
               int32 (int64 beside 16-bit activations), LOGISTIC/TANH outputs at the spec's fixed
               scales. ``state_bits=16`` keeps the cell-state path (c, f ⊙ c, i ⊙ c~, c', g(c'))
               in int16 (symmetric, LiteRT's 16x8 kernels) and the rest int8; ``act_bits=16`` makes
               every activation int16. The graph keeps float32 inputs and outputs: the input
               normalisation (x·s + t, one multiply-add per feature) runs in float and a QUANTIZE
               follows it; outputs leave through DEQUANTIZE.

Per-channel scales cost 12 bytes per output row in the file (a float32 scale and an int64 zero
point), so a weight gets them only when its rows hold at least ``PER_CHANNEL_MIN_ROW`` (128) int8
values, where that adds under 10%; shorter rows (W·x over 13 MFCCs, U·h at n = 64) share one scale
per tensor. Measured on the shipped FSDD model: per-tensor scales everywhere kept its test accuracy
(97.0% dynamic and int8) and cut its int8 weight bytes, scales included, from 0.34-0.38× to 0.27×
of the float file's.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from .. import ir
from .._io import write_bytes

FILE_IDENTIFIER = b"TFL3"
SIGNATURE_KEY = "serving_default"
METADATA_NAME = "slimedge"
ALIGN = 16
QUANTIZE_MODES = ("none", "dynamic", "int8")
COMPAT = ("litert", "tflite-runtime")


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as s
    except ImportError:  # pragma: no cover - a declared dependency
        raise ImportError("writing TFLite needs ai-edge-litert (pip install ai-edge-litert)") from None
    return s


# ---- quantisation parameters of one activation tensor ------------------------------------------
@dataclass(frozen=True)
class QParams:
    dtype: str            # "int8" | "int16"
    scale: float
    zero_point: int = 0

    def quantize(self, v: np.ndarray) -> np.ndarray:
        lo, hi = (-128, 127) if self.dtype == "int8" else (-32768, 32767)
        q = np.round(np.asarray(v, np.float64) / self.scale) + self.zero_point
        return np.clip(q, lo, hi).astype(self.dtype)


def qparams_for_range(lo: float, hi: float, dtype: str) -> QParams:
    """Asymmetric int8 over [lo, hi] ∪ {0}; symmetric int16 (zero point 0, as LiteRT's 16x8 needs)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if dtype == "int16":
        return QParams("int16", max(abs(lo), abs(hi), 1e-8) / 32767.0, 0)
    scale = max(hi - lo, 1e-8) / 255.0
    zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return QParams("int8", scale, zp)


# fixed output quantisation of the TFLite spec (and LiteRT's int16 kernels)
_FIXED_OUT = {("sigmoid", "int8"): QParams("int8", 1 / 256, -128),
              ("sigmoid", "int16"): QParams("int16", 1 / 32768, 0),
              ("tanh", "int8"): QParams("int8", 1 / 128, 0),
              ("tanh", "int16"): QParams("int16", 1 / 32768, 0),
              ("hard_sigmoid", "int8"): QParams("int8", 1 / 256, -128),
              ("hard_sigmoid", "int16"): QParams("int16", 1 / 32768, 0)}


PER_CHANNEL_MIN_ROW = 128


def _sym_weights(w: np.ndarray, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 in [-127, 127]; scale per output row (axis 0) or one for the tensor."""
    w = np.asarray(w, np.float64)
    amax = np.abs(w).max(axis=1) if per_channel else np.full(w.shape[0], np.abs(w).max())
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    q = np.clip(np.round(w / scale[:, None]), -127, 127).astype(np.int8)
    return q, (scale if per_channel else scale[:1])


# ---- the writer ---------------------------------------------------------------------------------
class _Writer:
    def __init__(self) -> None:
        s = self.s = _schema()
        self.tensors: list = []
        self.index: dict[str, int] = {}
        self.buffers: list = [s.BufferT()]  # buffer 0: the empty buffer
        self.operators: list = []
        self.opcodes: dict[int, int] = {}
        self.codes: list = []
        self.weight_bytes = 0
        self._uniq = 0

    # tensors
    def fresh(self, stem: str) -> str:
        self._uniq += 1
        return f"{stem}/{self._uniq}"

    def tensor(self, name: str, shape, dtype: str = "float32", data: np.ndarray | None = None,
               q: QParams | None = None, scales=None, zero_points=None, axis: int = 0) -> int:
        s = self.s
        dtype = "float32" if dtype == "float" else dtype
        t = s.TensorT()
        t.name = name
        dims = [1 if d == ir.B else int(d) for d in shape]
        t.shape = np.array(dims, np.int32)
        if any(d == ir.B for d in shape):
            t.shapeSignature = np.array([-1 if d == ir.B else int(d) for d in shape], np.int32)
        t.type = getattr(s.TensorType, dtype.upper())
        if data is not None:
            raw = np.ascontiguousarray(data, dtype=dtype).tobytes()
            b = s.BufferT()
            b.data = np.frombuffer(raw, np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
            self.weight_bytes += len(raw)
        if q is not None:
            scales, zero_points = [q.scale], [q.zero_point]
        if scales is not None:
            qp = s.QuantizationParametersT()
            qp.scale = np.asarray(scales, np.float32).reshape(-1)
            zp = np.zeros(len(qp.scale), np.int64) if zero_points is None else zero_points
            qp.zeroPoint = np.asarray(zp, np.int64).reshape(-1)
            qp.quantizedDimension = axis
            t.quantization = qp
            if data is not None:
                self.weight_bytes += qp.scale.nbytes + qp.zeroPoint.nbytes
        self.tensors.append(t)
        self.index[name] = len(self.tensors) - 1
        return self.index[name]

    def const_i32(self, stem: str, values) -> int:
        v = np.asarray(values, np.int32)
        return self.tensor(self.fresh(stem), v.shape, "int32", v)

    # operators
    def op(self, code: str, inputs, outputs, options=None, options_type: str | None = None) -> None:
        s = self.s
        c = getattr(s.BuiltinOperator, code)
        if c not in self.opcodes:
            oc = s.OperatorCodeT()
            oc.builtinCode = c
            oc.deprecatedBuiltinCode = min(c, s.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
            oc.version = 1
            self.codes.append(oc)
            self.opcodes[c] = len(self.codes) - 1
        o = s.OperatorT()
        o.opcodeIndex = self.opcodes[c]
        o.inputs = np.array([self.index[i] if isinstance(i, str) else i for i in inputs], np.int32)
        o.outputs = np.array([self.index[i] if isinstance(i, str) else i for i in outputs], np.int32)
        if options is not None:
            o.builtinOptionsType = getattr(s.BuiltinOptions, options_type or type(options).__name__[:-1])
            o.builtinOptions = options
        self.operators.append(o)

    def finish(self, inputs, outputs, metadata: str) -> bytes:
        import flatbuffers

        s = self.s
        sg = s.SubGraphT()
        sg.tensors, sg.operators, sg.name = self.tensors, self.operators, "main"
        sg.inputs = np.array([self.index[n] for n in inputs], np.int32)
        sg.outputs = np.array([self.index[n] for n in outputs], np.int32)
        sig = s.SignatureDefT()
        sig.signatureKey, sig.subgraphIndex = SIGNATURE_KEY, 0
        sig.inputs = [_tensor_map(s, n, self.index[n]) for n in inputs]
        sig.outputs = [_tensor_map(s, n, self.index[n]) for n in outputs]
        meta_buf = s.BufferT()
        meta_buf.data = np.frombuffer(metadata.encode(), np.uint8)
        self.buffers.append(meta_buf)
        md = s.MetadataT()
        md.name, md.buffer = METADATA_NAME, len(self.buffers) - 1
        m = s.ModelT()
        m.version, m.description = 3, "slimedge step graph"
        m.operatorCodes, m.subgraphs, m.signatureDefs, m.metadata = self.codes, [sg], [sig], [md]
        m.buffers = [_Aligned(b) for b in self.buffers]
        builder = flatbuffers.Builder(1024)
        builder.Finish(m.Pack(builder), file_identifier=FILE_IDENTIFIER)
        return bytes(builder.Output())


def _tensor_map(s, name: str, index: int):
    tm = s.TensorMapT()
    tm.name, tm.tensorIndex = name, index
    return tm


class _Aligned:
    """A BufferT whose data vector starts on a 16-byte boundary of the finished file."""

    def __init__(self, buf) -> None:
        self.data = buf.data

    def Pack(self, builder):
        s = _schema()
        vec = None
        if self.data is not None:
            payload = np.ascontiguousarray(self.data, np.uint8).tobytes()
            builder.StartVector(1, len(payload), ALIGN)
            builder.head -= len(payload)
            builder.Bytes[builder.head:builder.head + len(payload)] = payload
            builder.vectorNumElems = len(payload)
            vec = builder.EndVector()
        s.BufferStart(builder)
        if vec is not None:
            s.BufferAddData(builder, vec)
        return s.BufferEnd(builder)


# ---- emitting the IR ----------------------------------------------------------------------------
def _options(s, kind: str, **kw):
    o = getattr(s, f"{kind}T")()
    for k, v in kw.items():
        setattr(o, k, v)
    return o


class _Emitter:
    """Walks the IR once; every value keeps its TFLite tensor (and its quantisation, if any)."""

    def __init__(self, graph: ir.Graph, quantize: str, per_channel: bool,
                 ranges: Mapping[str, tuple[float, float]] | None, state_bits: int,
                 act_bits: int) -> None:
        self.g, self.quantize, self.per_channel = graph, quantize, per_channel
        self.per_channel_used = False  # did any weight get per-channel scales
        self.w = _Writer()
        self.s = self.w.s
        self.weights = graph.weights(np.float64)
        self.tensor_of: dict[tuple[str, str], str] = {}  # (IR value, domain) -> tensor name
        self.q: dict[str, QParams] = {}                  # tensor name -> its quantisation
        if quantize == "int8":
            if ranges is None:
                raise ValueError("quantize='int8' needs calibration ranges (exporters.quantize.calibrate)")
            self._plan(ranges, state_bits, act_bits)

    # -- int8 planning: which IR values are integer, in which dtype, at which scale
    def _plan(self, ranges, state_bits: int, act_bits: int) -> None:
        g = self.g
        consumers: dict[str, list[ir.Node]] = {}
        for n in g.nodes:
            for i in n.inputs:
                consumers.setdefault(i, []).append(n)
        self.float_values = {"x"} | {o for n in g.nodes if n.attrs.get("role") == "norm" for o in n.outputs}
        base = "int16" if act_bits == 16 else "int8"
        dtype = {v: base for v in g.shapes if v not in self.float_values}
        if state_bits == 16 and base == "int8":
            for v in _cell_path(g):
                dtype[v] = "int16"
        self.dtype = dtype

        def rng(v):
            if v not in ranges:
                raise ValueError(f"calibration ranges lack the value {v!r}")
            return ranges[v]

        # state tensors share one quantisation per state (all layers, in and out): PACK needs its
        # inputs at the output's scale, and the next step's input is this step's output
        share = {}
        for state, nxt in (("h", "h_next"), ("c", "c_next")):
            group = [state, nxt] + [o for n in g.nodes if n.op == "unstack" and n.inputs[0] == state
                                    for o in n.outputs]
            group += list(g.producers()[nxt].inputs)
            lo = min(rng(v)[0] for v in group)
            hi = max(rng(v)[1] for v in group)
            for v in group:
                share[v] = (lo, hi, dtype.get(nxt, base))
        self.ranges = ranges
        self.value_q: dict[str, QParams] = {v: qparams_for_range(*rng(v), base)
                                            for v in self.float_values if v in ranges}
        for v, dt in dtype.items():
            if v in g.initializers:
                continue
            if v in share:
                lo, hi, dt2 = share[v]
                self.value_q[v] = qparams_for_range(lo, hi, dt2)
                dtype[v] = dt2
            else:
                self.value_q[v] = qparams_for_range(*rng(v), dt)

    # -- tensors of IR values
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
                qp = qparams_for_range(*self.ranges[v], domain)
            else:  # a requantisation int8 <-> int16 keeps the source's range
                qp = qparams_for_range(*self._range_of(src), domain)
            self.w.tensor(name, shape, domain, q=qp)
            self.q[name] = qp
            self.w.op("QUANTIZE", [src], [name])
        self.tensor_of[key] = name
        return name

    def _range_of(self, tensor: str) -> tuple[float, float]:
        qp = self.q[tensor]
        lo, hi = (-128, 127) if qp.dtype == "int8" else (-32767, 32767)
        return (lo - qp.zero_point) * qp.scale, (hi - qp.zero_point) * qp.scale

    def _const(self, v: str, domain: str) -> str:
        val = self.weights[v]
        shape = val.shape
        name = v if domain == "float" else f"{v}:{domain}"
        if domain == "float":
            self.w.tensor(name, shape, "float32", val)
        else:
            amax = float(np.abs(val).max()) or 1.0
            qmax = 127 if domain == "int8" else 32767
            qp = QParams(domain, amax / qmax, 0)
            self.w.tensor(name, shape, domain, qp.quantize(val), q=qp)
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

    # -- the walk
    def domain_of(self, v: str) -> str:
        if self.quantize != "int8" or v in self.float_values:
            return "float"
        return self.dtype[v]

    def emit(self) -> _Writer:
        g, w = self.g, self.w
        for name in g.inputs:
            w.tensor(name, g.shapes[name])
            self.tensor_of[(name, "float")] = name
        for node in g.nodes:
            getattr(self, f"_op_{node.op}")(node)
        # float outputs under their public names
        for o in g.outputs:
            if (o, "float") not in self.tensor_of:
                src = self.value(o, self.domain_of(o))
                w.tensor(o, g.shapes[o])
                w.op("DEQUANTIZE", [src], [o])
                self.tensor_of[(o, "float")] = o
        return w

    def _out(self, node: ir.Node, k: int = 0, fixed: QParams | None = None) -> str:
        """The output tensor of ``node`` (its k-th); a fixed-scale op writes to a temporary that is
        requantised to the planned scale when some consumer needs exactly that (PACK)."""
        v = node.outputs[k]
        dom = self.domain_of(v)
        if dom == "float":
            return self.new_out(v, "float")
        if fixed is not None:
            planned = self.value_q[v]
            if fixed == planned or v not in self._pack_inputs():
                self.value_q[v] = fixed
                return self.new_out(v, dom, fixed)
            t = self.tmp(f"{v}:fixed", g_shape(self.g, v), dom, fixed)
            self._pending_requant = (t, v, dom, planned)
            return t
        return self.new_out(v, dom, self.value_q[v])

    def _pack_inputs(self) -> set[str]:
        if not hasattr(self, "_packs"):
            self._packs = {i for n in self.g.nodes if n.op == "stack" for i in n.inputs}
        return self._packs

    def _after(self) -> None:
        pend = getattr(self, "_pending_requant", None)
        if pend:
            t, v, dom, planned = pend
            out = self.new_out(v, dom, planned)
            self.w.op("QUANTIZE", [t], [out])
            self._pending_requant = None

    def _per_channel(self, wt: np.ndarray) -> bool:
        """Per-channel scales for this weight (out, in): allowed, and its rows long enough."""
        pc = self.per_channel and wt.shape[1] >= PER_CHANNEL_MIN_ROW
        self.per_channel_used |= pc
        return pc

    def _op_matmul(self, node: ir.Node) -> None:
        s, w = self.s, self.w
        a, wname = node.inputs[0], node.inputs[1]
        wt = self.weights[wname]
        bias = self.weights[node.inputs[2]] if len(node.inputs) > 2 else None
        opts = _options(s, "FullyConnectedOptions")
        dom = self.domain_of(node.outputs[0])
        if self.quantize == "none" or (self.quantize == "int8" and dom == "float"):
            ins = [self.value(a), self.value(wname)]
            if bias is not None:
                ins.append(self.value(node.inputs[2]))
        elif self.quantize == "dynamic":
            q, scale = _sym_weights(wt, self._per_channel(wt))
            wq = w.tensor(f"{wname}:int8", wt.shape, "int8", q, scales=scale)
            ins = [self.value(a), wq]
            if bias is not None:
                ins.append(self.value(node.inputs[2]))
        else:
            xin = self.value(a, dom)
            q, scale = _sym_weights(wt, self._per_channel(wt))
            wq = w.tensor(f"{wname}:int8", wt.shape, "int8", q, scales=scale)
            ins = [xin, wq]
            if bias is not None:
                bscale = self.q[xin].scale * scale
                btype = "int32" if dom == "int8" else "int64"
                bq = np.round(bias / bscale).astype(btype)
                ins.append(w.tensor(f"{node.inputs[2]}:{btype}", bias.shape, btype, bq,
                                    scales=bscale))
        out = self._out(node)
        w.op("FULLY_CONNECTED", ins, [out], opts)
        self._after()

    def _binary(self, node: ir.Node, code: str, kind: str) -> None:
        dom = self.domain_of(node.outputs[0])
        ins = [self.value(i, dom) for i in node.inputs]
        out = self._out(node)
        self.w.op(code, ins, [out], _options(self.s, kind))
        self._after()

    def _op_add(self, node):
        self._binary(node, "ADD", "AddOptions")

    def _op_mul(self, node):
        self._binary(node, "MUL", "MulOptions")

    def _unary(self, node: ir.Node, code: str) -> None:
        dom = self.domain_of(node.outputs[0])
        a = self.value(node.inputs[0], dom)
        fixed = _FIXED_OUT.get((node.op, dom))
        out = self._out(node, fixed=fixed)
        self.w.op(code, [a], [out])
        self._after()

    def _op_sigmoid(self, node):
        self._unary(node, "LOGISTIC")

    def _op_tanh(self, node):
        self._unary(node, "TANH")

    def _op_relu(self, node):
        self._unary(node, "RELU")

    def _op_hard_sigmoid(self, node: ir.Node) -> None:
        # clip(0.2 z + 0.5, 0, 1) = RELU_0_TO_1(z * 0.2 + 0.5)
        s, w = self.s, self.w
        v = node.outputs[0]
        dom = self.domain_of(v)
        z = self.value(node.inputs[0], dom)
        shape = self.g.shapes[v]
        if dom == "float":
            c02 = w.tensor(w.fresh(f"{v}/0.2"), (1,), "float32", np.array([0.2]))
            c05 = w.tensor(w.fresh(f"{v}/0.5"), (1,), "float32", np.array([0.5]))
            t1, t2 = self.tmp(f"{v}/scaled", shape, dom), self.tmp(f"{v}/shifted", shape, dom)
        else:
            qmax = 127 if dom == "int8" else 32767
            q02, q05 = QParams(dom, 0.2 / qmax), QParams(dom, 0.5 / qmax)
            c02 = w.tensor(w.fresh(f"{v}/0.2"), (1,), dom, q02.quantize([0.2]), q=q02)
            c05 = w.tensor(w.fresh(f"{v}/0.5"), (1,), dom, q05.quantize([0.5]), q=q05)
            lo, hi = self._range_of(z)
            t1 = self.tmp(f"{v}/scaled", shape, dom, qparams_for_range(0.2 * lo, 0.2 * hi, dom))
            t2 = self.tmp(f"{v}/shifted", shape, dom,
                          qparams_for_range(0.2 * lo + 0.5, 0.2 * hi + 0.5, dom))
        w.op("MUL", [z, c02], [t1], _options(s, "MulOptions"))
        w.op("ADD", [t1, c05], [t2], _options(s, "AddOptions"))
        out = self._out(node, fixed=_FIXED_OUT.get(("hard_sigmoid", dom)))
        w.op("RELU_0_TO_1", [t2], [out])
        self._after()

    def _same_q_outputs(self, node: ir.Node, src: str, dom: str) -> list[str]:
        outs = []
        for v in node.outputs:
            if dom != "float":
                self.value_q[v] = self.q[src]
            outs.append(self.new_out(v, dom, self.q.get(src)))
        return outs

    def _op_split(self, node: ir.Node) -> None:
        s = self.s
        sizes = list(node.attrs["kernel"]["sizes"])
        dom = self.domain_of(node.outputs[0])
        a = self.value(node.inputs[0], dom)
        outs = self._same_q_outputs(node, a, dom)
        rank = len(self.g.shapes[node.inputs[0]])
        axis = self.w.const_i32("split_axis", np.int32(rank - 1))
        if len(set(sizes)) == 1:
            self.w.op("SPLIT", [axis, a], outs, _options(s, "SplitOptions", numSplits=len(sizes)))
        else:
            sz = self.w.const_i32("split_sizes", sizes)
            self.w.op("SPLIT_V", [a, sz, axis], outs, _options(s, "SplitVOptions", numSplits=len(sizes)))

    def _op_unstack(self, node: ir.Node) -> None:
        dom = self.domain_of(node.outputs[0])
        a = self.value(node.inputs[0], dom)
        outs = self._same_q_outputs(node, a, dom)
        self.w.op("UNPACK", [a], outs, _options(self.s, "UnpackOptions", num=len(outs), axis=0))

    def _op_stack(self, node: ir.Node) -> None:
        dom = self.domain_of(node.outputs[0])
        out_q = self.value_q.get(node.outputs[0]) if dom != "float" else None
        ins = []
        for i in node.inputs:
            t = self.value(i, dom)
            if out_q is not None and self.q[t] != out_q:  # PACK needs one scale for all
                r = self.tmp(f"{i}:requant", self.g.shapes[i], dom, out_q)
                self.w.op("QUANTIZE", [t], [r])
                t = r
            ins.append(t)
        out = self.new_out(node.outputs[0], dom, out_q)
        self.w.op("PACK", ins, [out], _options(self.s, "PackOptions", valuesCount=len(ins), axis=0))

    def _op_identity(self, node: ir.Node) -> None:
        dom = self.domain_of(node.outputs[0])
        a = self.value(node.inputs[0], dom)
        (out,) = self._same_q_outputs(node, a, dom)
        shape = [-1 if d == ir.B else int(d) for d in self.g.shapes[node.outputs[0]]]
        new_shape = self.w.const_i32("reshape_to", shape)
        self.w.op("RESHAPE", [a, new_shape], [out], _options(self.s, "ReshapeOptions"))


def g_shape(g: ir.Graph, v: str):
    return g.shapes[v]


def _cell_path(g: ir.Graph) -> set[str]:
    """The values on the cell-state path: c, its per-layer parts, f ⊙ c, i ⊙ c~, c' and g(c')."""
    prod = g.producers()
    c_new = set(prod["c_next"].inputs)
    path = {"c", "c_next"} | c_new
    for n in g.nodes:
        if n.op == "unstack" and n.inputs[0] == "c":
            path.update(n.outputs)
    for v in c_new:
        n = prod.get(v)
        if n is not None and n.op == "add":
            path.update(i for i in n.inputs if i in prod and prod[i].op == "mul")
    for n in g.nodes:  # g(c')
        if n.op in ("tanh", "sigmoid", "relu", "hard_sigmoid") and n.inputs[0] in c_new:
            path.add(n.outputs[0])
    return path


# ---- public API ---------------------------------------------------------------------------------
def to_bytes(graph: ir.Graph, *, quantize: str = "none", per_channel: bool = True,
             ranges: Mapping[str, tuple[float, float]] | None = None, state_bits: int = 8,
             act_bits: int = 8, export_info: Mapping | None = None) -> tuple[bytes, dict]:
    """The ``.tflite`` bytes of ``graph`` and a summary (ops, weight bytes, quantisation)."""
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"unknown quantize mode {quantize!r}; valid: {', '.join(QUANTIZE_MODES)}")
    if state_bits not in (8, 16) or act_bits not in (8, 16):
        raise ValueError("state_bits and act_bits must be 8 or 16")
    em = _Emitter(graph, quantize, per_channel, ranges, state_bits, act_bits)
    w = em.emit()
    info = {"format": "tflite", "quantize": quantize,
            "weights": {"none": "float32", "dynamic": "int8 symmetric", "int8": "int8 symmetric"}[quantize],
            "per_channel": em.per_channel_used,
            "hybrid_per_channel_fully_connected": bool(quantize == "dynamic" and em.per_channel_used),
            "tflite_runtime_ok": not (quantize == "dynamic" and em.per_channel_used),
            "weight_bytes": int(w.weight_bytes)}
    if quantize == "int8":
        dts = {em.dtype[v] for v in em.dtype}
        info["activations"] = ("int16" if act_bits == 16 else
                               "int8, cell-state path int16" if state_bits == 16 else "int8")
        info["activation_dtypes"] = sorted(dts)
        info["float_ops"] = "input normalisation (x*s + t) before the first QUANTIZE"
    if quantize == "dynamic":
        info["activations"] = "float32"
    if export_info:
        info.update(export_info)
    ops: dict[str, int] = {}
    s = w.s
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    for o in w.operators:
        code = names[w.codes[o.opcodeIndex].builtinCode]
        ops[code] = ops.get(code, 0) + 1
    info["ops"] = dict(sorted(ops.items()))
    meta = json.loads(graph.metadata_json())
    meta["export"] = info
    data = w.finish(graph.inputs, graph.outputs, json.dumps(meta, sort_keys=True))
    return data, info


def emit(graph: ir.Graph | str | os.PathLike, path: str | os.PathLike, *, quantize: str = "none",
         compat: str = "litert", ranges: Mapping[str, tuple[float, float]] | None = None,
         state_bits: int = 8, act_bits: int = 8, export_info: Mapping | None = None) -> dict:
    """Write ``graph`` (or the checkpoint at that path) to ``path`` as TFLite; returns the summary.

    ``compat="tflite-runtime"`` writes per-tensor weight scales for ``quantize="dynamic"`` (the old
    interpreter mis-computes per-channel hybrid FULLY_CONNECTED); LiteRT runs both.
    """
    if compat not in COMPAT:
        raise ValueError(f"unknown compat target {compat!r}; valid: {', '.join(COMPAT)}")
    g = graph if isinstance(graph, ir.Graph) else ir.lower(
        graph, fold_normalization=(quantize == "none"))  # float: normalisation in the weights
    data, info = to_bytes(g, quantize=quantize, per_channel=(compat != "tflite-runtime"),
                          ranges=ranges, state_bits=state_bits, act_bits=act_bits,
                          export_info={"compat": compat, **(export_info or {})})
    write_bytes(path, data)
    info["file_bytes"] = len(data)
    return info


# ---- the exporters' format interface (slimedge.exporters.export) ------------------------------
SUFFIX = ".tflite"


def write(graph: ir.Graph, path: str | os.PathLike, *, mode: str = "step", **options) -> dict:
    """Write the float graph (``export(format="tflite")``); TFLite exports are step graphs."""
    if mode != "step":
        raise ValueError(f"TFLite export writes step graphs only (mode='step'); got mode={mode!r}. "
                         f"Stream a sequence through the step graph, or export ONNX for a "
                         f"sequence graph")
    return emit(graph, path, **options)


def runner(path: str | os.PathLike, *, threads: int = 1):
    """A function running the file on LiteRT: feeds (x, h, c) -> outputs by name."""
    r = Runner(path, threads=threads)
    return lambda feeds: r.run(feeds["x"], feeds["h"], feeds["c"])


# ---- reading back -------------------------------------------------------------------------------
def read_metadata(path_or_bytes) -> dict:
    """The ``slimedge`` metadata JSON of a .tflite file (no interpreter needed)."""
    s = _schema()
    data = path_or_bytes if isinstance(path_or_bytes, (bytes, bytearray)) else Path(path_or_bytes).read_bytes()
    if data[4:8] != FILE_IDENTIFIER:
        raise ValueError("not a TFLite flatbuffer (no TFL3 identifier)")
    m = s.Model.GetRootAs(data, 0)
    for k in range(m.MetadataLength()):
        md = m.Metadata(k)
        if md.Name().decode() == METADATA_NAME:
            return json.loads(m.Buffers(md.Buffer()).DataAsNumpy().tobytes().decode())
    raise ValueError(f"no '{METADATA_NAME}' metadata entry in this TFLite file")


class Runner:
    """A step graph on the LiteRT interpreter: ``run(x, h, c)`` -> dict of y, h_next, c_next."""

    def __init__(self, path_or_bytes, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        kw = {"model_content": bytes(path_or_bytes)} if isinstance(path_or_bytes, (bytes, bytearray)) \
            else {"model_path": str(path_or_bytes)}
        self.it = Interpreter(num_threads=threads, **kw)
        self.inp = {d["name"]: d for d in self.it.get_input_details()}
        self.out = {d["name"]: d for d in self.it.get_output_details()}
        self.batch = None

    def run(self, x, h, c) -> dict[str, np.ndarray]:
        b = x.shape[0]
        if b != self.batch:
            for name, a in (("x", x), ("h", h), ("c", c)):
                self.it.resize_tensor_input(self.inp[name]["index"], a.shape)
            self.it.allocate_tensors()
            self.batch = b
        for name, a in (("x", x), ("h", h), ("c", c)):
            self.it.set_tensor(self.inp[name]["index"], np.ascontiguousarray(a, np.float32))
        self.it.invoke()
        return {k: self.it.get_tensor(d["index"]).copy() for k, d in self.out.items()}


__all__ = ["emit", "write", "runner", "SUFFIX", "to_bytes", "read_metadata", "Runner", "QParams", "qparams_for_range",
           "QUANTIZE_MODES", "COMPAT", "METADATA_NAME"]
