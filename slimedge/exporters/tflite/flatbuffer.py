"""The TFLite flatbuffer writer: buffers, tensors, operator codes and their versions, packing.

Built with LiteRT's generated schema (``ai_edge_litert.schema_py_generated``, object API, imported
when a :class:`Writer` is made) and packed with ``flatbuffers``; no TensorFlow. One subgraph
``main`` and one signature ``serving_default``; the model's config JSON is the Metadata entry
``slimedge``. Buffer 0 is the empty buffer and every weight buffer starts 16-byte aligned. Each
operator code gets the version TensorFlow's rules give its ops (:mod:`.versions`).
"""
from __future__ import annotations

import numpy as np

from ... import ir
from ...formats import METADATA_KEY
from ...formats.tflite.reader import FILE_IDENTIFIER
from .qparams import QParams
from .versions import Operand, op_version

SIGNATURE_KEY = "serving_default"
METADATA_NAME = METADATA_KEY
ALIGN = 16


def schema():
    """LiteRT's generated flatbuffer schema module."""
    try:
        from ai_edge_litert import schema_py_generated as s
    except ImportError:  # pragma: no cover - a declared dependency
        raise ImportError("writing TFLite needs ai-edge-litert (pip install ai-edge-litert)") from None
    return s


def options(s, kind: str, **fields):
    """A builtin options object, e.g. ``options(s, "AddOptions", potScaleInt16=False)``."""
    o = getattr(s, f"{kind}T")()
    for k, v in fields.items():
        setattr(o, k, v)
    return o


class Writer:
    """Collects tensors, buffers and operators by name, and packs them into one model."""

    def __init__(self) -> None:
        s = self.s = schema()
        self.tensors: list = []
        self.index: dict[str, int] = {}
        self.buffers: list = [s.BufferT()]  # buffer 0: the empty buffer
        self.operators: list = []
        self.opcodes: dict[int, int] = {}
        self.codes: list = []
        self.weight_bytes = 0
        self._uniq = 0
        self._type_names = {v: k for k, v in vars(s.TensorType).items() if not k.startswith("_")}
        self._op_names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}

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
    def op(self, code: str, inputs, outputs, opts=None, options_type: str | None = None) -> None:
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
        if opts is not None:
            o.builtinOptionsType = getattr(s.BuiltinOptions, options_type or type(opts).__name__[:-1])
            o.builtinOptions = opts
        self.operators.append(o)

    def op_name(self, o) -> str:
        """The builtin operator name (e.g. ``"ADD"``) of an operator written here."""
        return self._op_names[self.codes[o.opcodeIndex].builtinCode]

    def operand(self, index: int) -> Operand:
        t = self.tensors[index]
        q = t.quantization
        scales = tuple(float(v) for v in q.scale) if q is not None and q.scale is not None else ()
        return Operand(self._type_names[t.type], scales, q is not None,
                       tuple(int(d) for d in t.shape), int(q.quantizedDimension) if q else 0)

    def set_versions(self) -> None:
        """Each operator code's version: the highest its operators need (op_version.cc's rules)."""
        for o in self.operators:
            v = op_version(self.op_name(o), [self.operand(i) for i in o.inputs],
                           [self.operand(i) for i in o.outputs], o.builtinOptions)
            oc = self.codes[o.opcodeIndex]
            oc.version = max(oc.version, v)

    def finish(self, inputs, outputs, metadata: str) -> bytes:
        import flatbuffers

        s = self.s
        self.set_versions()
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
        s = schema()
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


__all__ = ["Writer", "schema", "options", "SIGNATURE_KEY", "METADATA_NAME", "ALIGN"]
