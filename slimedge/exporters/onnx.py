"""ONNX emitter: the step IR as one self-contained ``.onnx`` file, built with ``onnx.helper``.

Two graphs, both with the model's config JSON in ``metadata_props["slimedge"]``:

``mode="step"``      one time step, the contract of the architecture note:
                     ``x`` (batch, m), ``h``, ``c`` (layers, batch, n) -> ``y`` (batch, K),
                     ``h_next``, ``c_next``; ``batch`` is symbolic.
``mode="sequence"``  a whole sequence for offline use: ``x`` (time, batch, m), initial ``h``, ``c``
                     -> ``y`` (time, batch, K) and the final ``h_next``, ``c_next``; ``time`` and
                     ``batch`` are symbolic. The time loop is an ONNX ``Scan`` whose body is the step
                     graph, except that everything computed from ``x`` alone (the normalisation
                     and the first layer's W·x with its bias) is hoisted out of the loop and runs
                     as one matrix product over all time steps; the loop carries only the
                     recurrence (for LSTM10/11/C6 the loop body holds no matrix product at all).

Each IR op maps to ONNX nodes through one small dict, :data:`OPS`. Weights are float32
initializers; a matmul weight keeps its (out, in) layout under ``Gemm(transB=1)``. One fusion on
top (``build(optimize=True)``, the default): an ``add`` of a bias-less matmul's product, read
nowhere else, becomes that Gemm's C input (Gemm(h, U, C=W·x + b) = U·h + W·x + b). No torch.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .. import __version__, integrity, ir
from ..formats import METADATA_KEY, MODES

OPSET = 18
IR_VERSION = 8  # the IR version of opset 18 (onnx 1.13), so older runtimes load the files too
BATCH, TIME = "batch", "time"
_BODY = "step."  # prefix of the Scan body's values (a subgraph may not reuse outer names)


class _Scope:
    """The nodes and initializers of one ONNX graph (the main graph or the Scan body)."""

    def __init__(self, graph: ir.Graph, *, time_major: frozenset[str] = frozenset(),
                 prefix: str = "") -> None:
        self.g = graph
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, np.ndarray] = {}
        self.time_major = time_major  # IR values that carry a leading time axis here
        self.prefix = prefix
        self._used: set[str] = set(graph.shapes) | set(graph.initializers)
        self._count: Counter = Counter()
        self._ints: dict[tuple, str] = {}

    # ---- names ---------------------------------------------------------------------------
    def v(self, name: str) -> str:
        """The ONNX name of an IR value (weights are registered on first use)."""
        if name in self.g.initializers:
            return self.weight(name)
        return self.prefix + name

    def tmp(self, stem: str) -> str:
        """A fresh name for an intermediate value no IR value holds."""
        while True:
            self._count[stem] += 1
            name = f"{stem}.{self._count[stem]}"
            if name not in self._used:
                self._used.add(name)
                return self.prefix + name

    def rank(self, name: str) -> int:
        return len(self.g.shapes[name]) + (name in self.time_major)

    # ---- tensors -------------------------------------------------------------------------
    def weight(self, name: str, *, transpose: bool = False) -> str:
        """A float32 initializer holding the IR initializer ``name`` (or its transpose)."""
        key = f"{name}.T" if transpose else name
        if key not in self.inits:
            w = self.g.initializers[name]
            self.inits[key] = np.ascontiguousarray((w.T if transpose else w), dtype=np.float32)
        return key

    def ints(self, stem: str, values) -> str:
        """An int64 constant (axes, indices, split sizes), shared by every node that needs it."""
        key = (stem, np.shape(values), tuple(np.ravel(values).tolist()))
        if key not in self._ints:
            self._ints[key] = self.tmp(stem)
            self.inits[self._ints[key]] = np.asarray(values, dtype=np.int64)
        return self._ints[key]

    def scalar(self, stem: str, value: float) -> str:
        """A float32 scalar constant, shared by every node that needs the same one."""
        key = (stem, "float", float(value))
        if key not in self._ints:
            self._ints[key] = self.tmp(stem)
            self.inits[self._ints[key]] = np.asarray(value, dtype=np.float32)
        return self._ints[key]

    def add(self, op_type: str, inputs, outputs, **attrs) -> None:
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs), **attrs))

    def emit(self, node: ir.Node) -> None:
        OPS[node.op](self, node)


# ---- the op mapping: IR op -> function emitting ONNX nodes ---------------------------------
def _matmul(s: _Scope, n: ir.Node) -> None:
    a, w, *bias = n.inputs
    out = s.v(n.outputs[0])
    if s.rank(a) == 2:  # one step: Gemm reads W in its (out, in) layout and fuses the bias
        s.add("Gemm", [s.v(a), s.weight(w), *(s.v(b) for b in bias)], [out], transB=1)
        return
    # hoisted over a whole sequence, (T, B, in) @ (in, out): MatMul, then the bias
    mm = s.tmp(f"{n.outputs[0]}.matmul") if bias else out
    s.add("MatMul", [s.v(a), s.weight(w, transpose=True)], [mm])
    if bias:
        s.add("Add", [mm, s.v(bias[0])], [out])


def _elementwise(op_type: str, **attrs) -> Callable[[_Scope, ir.Node], None]:
    def emit(s: _Scope, n: ir.Node) -> None:
        s.add(op_type, [s.v(i) for i in n.inputs], [s.v(o) for o in n.outputs], **attrs)
    return emit


def _clip(s: _Scope, n: ir.Node) -> None:
    """Clip(a, min, max), a missing bound an empty input (piecewise-linear activations)."""
    bounds = [("" if v is None else s.scalar(f"clip_{'lo' if k == 0 else 'hi'}", v))
              for k, v in enumerate((n.attrs["kernel"]["lo"], n.attrs["kernel"]["hi"]))]
    while bounds and bounds[-1] == "":
        bounds.pop()
    s.add("Clip", [s.v(n.inputs[0]), *bounds], [s.v(n.outputs[0])])


def _split(s: _Scope, n: ir.Node) -> None:
    sizes = s.ints(f"{n.outputs[0]}.sizes", n.attrs["kernel"]["sizes"])
    s.add("Split", [s.v(n.inputs[0]), sizes], [s.v(o) for o in n.outputs], axis=-1)


def _unstack(s: _Scope, n: ir.Node) -> None:
    (a,), outs = n.inputs, n.outputs
    if len(outs) == 1:
        s.add("Squeeze", [s.v(a), s.ints("axis0", [0])], [s.v(outs[0])])
        return
    for k, o in enumerate(outs):
        s.add("Gather", [s.v(a), s.ints(f"index{k}", k)], [s.v(o)], axis=0)


def _stack(s: _Scope, n: ir.Node) -> None:
    out = s.v(n.outputs[0])
    if len(n.inputs) == 1:
        s.add("Unsqueeze", [s.v(n.inputs[0]), s.ints("axis0", [0])], [out])
        return
    parts = []
    for a in n.inputs:
        parts.append(s.tmp(f"{a}.unsqueezed"))
        s.add("Unsqueeze", [s.v(a), s.ints("axis0", [0])], [parts[-1]])
    s.add("Concat", parts, [out], axis=0)


OPS: dict[str, Callable[[_Scope, ir.Node], None]] = {
    "matmul": _matmul,
    "add": _elementwise("Add"),
    "mul": _elementwise("Mul"),
    "sigmoid": _elementwise("Sigmoid"),
    "tanh": _elementwise("Tanh"),
    "clip": _clip,
    "split": _split,
    "unstack": _unstack,
    "stack": _stack,
    "identity": _elementwise("Identity"),
}
assert set(OPS) == set(ir.OPS), "every IR op needs an ONNX mapping"


# ---- graphs ----------------------------------------------------------------------------------
def _dims(shape, *, time: bool = False) -> list:
    return ([TIME] if time else []) + [BATCH if d == ir.B else int(d) for d in shape]


def _io(name: str, shape, doc: str = "") -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape, doc_string=doc)


_DOCS = {"x": "input frame(s), raw features (normalisation is part of the graph)",
         "h": "hidden state per layer", "c": "cell state per layer",
         "y": "model output (head logits, or the top layer's h)",
         "h_next": "hidden state after the step(s)", "c_next": "cell state after the step(s)"}


def _graph(name: str, scope: _Scope, inputs, outputs) -> onnx.GraphProto:
    inits = [numpy_helper.from_array(v, k) for k, v in scope.inits.items()]
    return helper.make_graph(scope.nodes, name, inputs, outputs, initializer=inits)


def gemm_bias_fusions(s: _Scope, nodes: list[ir.Node]) -> dict[int, tuple[ir.Node, str]]:
    """The ``add`` nodes to emit as one Gemm: ``add(matmul(a, W), v)`` -> ``Gemm(a, W, C=v)``.

    A matmul qualifies when it has no bias of its own, reads a 2-D operand here, and its product
    is read by that add alone; ``v`` is a value of the product's shape or a 1-D constant. Returns
    id(add) -> (the matmul, v); the matmul itself is then not emitted.
    """
    g = s.g
    readers = Counter(i for nd in nodes for i in nd.inputs) + Counter(g.outputs)
    producer = {o: nd for nd in nodes for o in nd.outputs}
    plan: dict[int, tuple[ir.Node, str]] = {}
    for nd in nodes:
        if nd.op != "add":
            continue
        for k in (1, 0):  # prefer the later operand (U·h: C is then W·x, hoisted in a sequence)
            mm, other = producer.get(nd.inputs[k]), nd.inputs[1 - k]
            if mm is None or mm.op != "matmul" or len(mm.inputs) != 2 or other == nd.inputs[k]:
                continue
            out_shape = g.shapes[mm.outputs[0]]
            fits = (g.initializers[other].shape == out_shape[-1:] if other in g.initializers
                    else g.shapes[other] == out_shape and s.rank(other) == 2)
            if readers[mm.outputs[0]] == 1 and s.rank(mm.inputs[0]) == 2 and fits:
                plan[id(nd)] = (mm, other)
                break
    return plan


def hard_sigmoid_fusions(s: _Scope, nodes: list[ir.Node]) -> dict[int, tuple]:
    """The piecewise-linear activations to emit as one HardSigmoid: clip(0, 1) of a·z + b (the
    mul and add of the same activation, scalar constants, each read only by the next) ->
    ``HardSigmoid(z, alpha=a, beta=b)``, ONNX's own op. Returns id(clip) -> (its mul and add
    nodes, z, a, b); those are then not emitted."""
    g = s.g
    readers = Counter(i for nd in nodes for i in nd.inputs) + Counter(g.outputs)
    producer = {o: nd for nd in nodes for o in nd.outputs}
    plan = {}
    for nd in nodes:
        if nd.op != "clip" or (nd.attrs["kernel"]["lo"], nd.attrs["kernel"]["hi"]) != (0.0, 1.0):
            continue
        chain, a, b, v = [], 1.0, 0.0, nd.inputs[0]
        while True:
            p = producer.get(v)
            if (p is None or p.op not in ("mul", "add") or readers[v] != 1
                    or p.attrs.get("activation") != nd.attrs.get("activation")):
                break
            k = next((j for j, i in enumerate(p.inputs) if i in g.initializers
                      and g.initializers[i].size == 1), None)
            if k is None:
                break
            c = float(g.initializers[p.inputs[k]].ravel()[0])
            a, b = (a * c, b) if p.op == "mul" else (a, b + a * c)  # out = a·(value) + b
            chain.append(p)
            v = p.inputs[1 - k]
        if chain and all(q.attrs.get("activation") for q in chain):
            plan[id(nd)] = (chain, v, a, b)
    return plan


def _emit_all(s: _Scope, nodes: list[ir.Node], optimize: bool) -> None:
    fused = gemm_bias_fusions(s, nodes) if optimize else {}
    hard = hard_sigmoid_fusions(s, nodes)
    skip = {id(mm) for mm, _ in fused.values()} | {id(p) for c, *_ in hard.values() for p in c}
    for node in nodes:
        if id(node) in skip:
            continue
        if id(node) in hard:
            _, z, a, b = hard[id(node)]
            s.add("HardSigmoid", [s.v(z)], [s.v(node.outputs[0])], alpha=a, beta=b)
        elif id(node) in fused:
            mm, other = fused[id(node)]
            s.add("Gemm", [s.v(mm.inputs[0]), s.weight(mm.inputs[1]), s.v(other)],
                  [s.v(node.outputs[0])], transB=1)
        else:
            s.emit(node)


def _step_graph(g: ir.Graph, optimize: bool = True) -> onnx.GraphProto:
    s = _Scope(g)
    _emit_all(s, g.nodes, optimize)
    return _graph("slimedge_step", s,
                  [_io(k, _dims(g.shapes[k]), _DOCS[k]) for k in g.inputs],
                  [_io(k, _dims(g.shapes[k]), _DOCS[k]) for k in g.outputs])


def hoistable(g: ir.Graph) -> list[ir.Node]:
    """The nodes that depend on ``x`` (and weights) alone: they need no time loop."""
    known, out = {"x"}, []
    for node in g.nodes:
        if node.op not in ("unstack", "stack") and all(
                i in known or i in g.initializers for i in node.inputs):
            out.append(node)
            known.update(node.outputs)
    return out


def _sequence_graph(g: ir.Graph, optimize: bool = True) -> onnx.GraphProto:
    pre = hoistable(g)
    pre_ids = {id(n) for n in pre}
    loop = [n for n in g.nodes if id(n) not in pre_ids]
    pre_values = {"x"} | {o for n in pre for o in n.outputs}
    # the x-only values the loop reads: scanned along time, one slice per step
    scanned = list(dict.fromkeys(i for n in loop for i in n.inputs if i in pre_values))
    outer = _Scope(g, time_major=frozenset(pre_values))
    for node in pre:
        outer.emit(node)
    body = _Scope(g, prefix=_BODY)
    body._used = outer._used  # one pool of intermediate names for both graphs
    _emit_all(body, loop, optimize)
    # a weight both graphs read lives in the outer graph; the body reads it from there
    for k in set(body.inits) & set(outer.inits):
        del body.inits[k]
    state = [_io(_BODY + k, _dims(g.shapes[k])) for k in ("h", "c")]
    slices = [_io(_BODY + k, _dims(g.shapes[k])) for k in scanned]
    body_out = [_io(_BODY + k, _dims(g.shapes[k])) for k in ("h_next", "c_next", "y")]
    body_graph = _graph("slimedge_step_body", body, state + slices, body_out)
    outer.add("Scan", ["h", "c", *scanned], ["h_next", "c_next", "y"], body=body_graph,
              num_scan_inputs=len(scanned))
    time_major = {"x", "y"}
    return _graph("slimedge_sequence", outer,
                  [_io(k, _dims(g.shapes[k], time=k in time_major), _DOCS[k]) for k in g.inputs],
                  [_io(k, _dims(g.shapes[k], time=k in time_major), _DOCS[k]) for k in g.outputs])


def build(graph: ir.Graph, *, mode: str = "step", opset: int = OPSET,
          optimize: bool = True) -> onnx.ModelProto:
    """The ONNX model of ``graph``: one time step, or a whole sequence (``mode="sequence"``).

    ``optimize`` (float files) fuses node patterns onnxruntime would run one by one (see
    :func:`gemm_bias_fusions`); ``False`` maps every IR node on its own, the form the quantizers
    start from.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    if int(opset) < OPSET:
        raise ValueError(f"opset {opset} is too old: the ONNX emitter needs opset >= {OPSET}")
    body = (_step_graph if mode == "step" else _sequence_graph)(graph, optimize)
    model = helper.make_model(body, opset_imports=[helper.make_opsetid("", int(opset))],
                              producer_name="slimedge", producer_version=__version__,
                              ir_version=IR_VERSION if int(opset) <= 19 else onnx.IR_VERSION,
                              doc_string=f"SLIM LSTM {mode} graph exported by slimedge")
    meta = json.loads(graph.metadata_json())
    meta["export"] = {"format": "onnx", "mode": mode, "opset": int(opset)}
    helper.set_model_props(model, {METADATA_KEY: integrity.dumps(meta)})
    return model


def write(graph: ir.Graph, path: str | os.PathLike, *, mode: str = "step", opset: int = OPSET,
          check: bool = True) -> None:
    """Write ``graph`` as one self-contained ONNX file (weights inside, no external data)."""
    model = build(graph, mode=mode, opset=opset)
    if check:
        onnx.checker.check_model(model, full_check=True)
    onnx.save_model(model, os.fspath(path), save_as_external_data=False)
    integrity.seal(path)  # a file written here loads checked, as an exported one does


def quantizer(quantize: str):
    """The quantizer for ``quantize`` ("dynamic" or "int8"; the format row's, see
    :mod:`slimedge.formats.table`), in :mod:`.onnx_quantize` (imported now)."""
    from . import onnx_quantize

    return {"dynamic": onnx_quantize.dynamic, "int8": onnx_quantize.int8}[quantize]


__all__ = ["OPS", "OPSET", "MODES", "build", "write", "quantizer", "hoistable",
           "gemm_bias_fusions"]
