"""One stream's step for the float emitter (:mod:`.emit_float`): :class:`Row` writes the body of
the row function (and, for int8 weights, of the block function) from the step IR, each op's C
expression from the table :data:`OPS` (checked against ``ir.OPS``).

Float weights are stored in blocks of eight rows, column by column (:func:`f32_layout`): the
kernel keeps eight rows' sums in registers and each input element scales eight contiguous
weights (on the Cortex-M4 eight VFMAs, 20 instructions per 8 multiply-adds; on a desktop CPU
vector multiply-adds, 64 rows at a time). int8 weights: :mod:`.emit_int8w`.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ... import ir
from . import emit_int8w as int8_weights
from . import fusion
from . import source as src

SIGMOID_CLAMP = 30.0  # |z| beyond this: σ(z) is 0 or 1 in float32; keeps expf finite


class Row(fusion.FusedRow):
    """The body of the row function for one graph: C lines and each value's C expression."""

    def __init__(self, graph: ir.Graph, prefix: str, weights: str,
                 names: src.Names | None = None, streams: int = 0) -> None:
        self.g, self.p, self.weights = graph, prefix, weights
        self.names = names or src.Names()
        self.streams = streams  # > 0: the rows of a block of up to this many streams
        self.lines: list[str] = []
        self.arrays: list[str] = []  # const definitions (file scope)
        # value -> C expression of a float pointer (in a block: stream s's, and the distance
        # from one stream's to the next in floats)
        self.expr: dict[str, str] = {"x": self.at_stream("x", graph.input_size)}
        self.stride: dict[str, int] = {"x": graph.input_size}
        self.const_names: dict[str, str] = {}
        self.deferred: list[str] = []  # state and output writes, after every read
        self.weight_bytes = 0
        self.weight_error: dict[str, float] = {}
        self.scratch_bytes = 0  # the row function's arrays on the stack
        self.group: fusion.Group | None = None  # the fused element-wise loop being written
        self.scalar: dict[str, str] = {}  # value -> its scalar in that loop
        self.stored: set[str] = set()  # new-state values written out in a fused loop
        self.accumulate: dict[str, str] = {}  # matmul result -> the result it is added onto

    # ---- names ------------------------------------------------------------------------------
    def at_stream(self, base: str, stride: int) -> str:
        """Stream s's part of an array of the block (one stream: the array itself)."""
        return f"({base} + s * {stride})" if self.streams else base

    def each_stream(self, line: str) -> str:
        """A statement run for every stream of the block (as is for one stream)."""
        return f"    for (int s = 0; s < nb; s++)\n    {line}" if self.streams else line

    def local(self, value: str, size: int, ctype: str = "float") -> str:
        name = self.names.get(value)
        rows = max(self.streams, 1)
        self.lines.append(f"    {ctype} {name}[{rows * size}]; /* {value} */")
        self.expr[value] = self.at_stream(name, size)
        self.stride[value] = size
        self.scratch_bytes += (4 if ctype == "float" else 2) * size * rows
        return self.expr[value]

    def size(self, value: str) -> int:
        shape = self.g.shapes[value]
        return int(shape[-1])

    def operand(self, value: str) -> Callable[[str], str]:
        """A function of the loop index giving the element expression of ``value``."""
        if value in self.scalar:
            v = self.scalar[value]
            return lambda i: v
        if value in self.g.initializers:
            name = self.const_array(value, self.g.initializers[value])
            if self.g.initializers[value].size == 1:
                return lambda i: name
            return lambda i: f"{name}[{i}]"
        e = self.expr[value]
        return lambda i: f"{e}[{i}]"

    def const_array(self, value: str, w: np.ndarray) -> str:
        """A named constant (one value) or const array of a graph initializer."""
        if value not in self.const_names:
            name = self.names.get(value)
            if w.size == 1:
                self.arrays.append(f"static const float {name} = {src.c_float(w.ravel()[0])};"
                                   f" /* {value} */\n")
            else:
                self.arrays.append(src.array("float", name, w.astype(np.float32),
                                             comment=f"{value} {tuple(w.shape)}"))
            self.const_names[value] = name
            self.weight_bytes += 4 * w.size
        return self.const_names[value]

    def define(self, value: str, size: int, expr) -> None:
        """``value`` (``size`` floats) is ``expr(i)`` at element ``i``: its own loop and array
        outside a fused group; inside one, a scalar of the group's loop, stored to an array only
        where something after the group reads it, and to the new state where that is its place
        (see :mod:`.fusion`)."""
        if self.group is None:
            out = self.local(value, size)
            self.lines.append(self.each_stream(
                f"    for (int i = 0; i < {size}; i++) {out}[i] = {expr('i')};"))
            return
        name = self.names.get(value)
        self.group.body.append(f"        const float {name} = {expr('i')}; /* {value} */")
        self.scalar[value] = name
        if value in self.group.escapes:
            arr = self.local(value, size)
            self.group.body.append(f"        {arr}[i] = {name};")
        if value in self.group.stores:
            state, k = self.group.stores[value]
            self.group.tail.append(f"        {self.state_dst(state, k)}[i] = {name};")
            self.stored.add(value)

    # ---- ops --------------------------------------------------------------------------------
    def matmul(self, n: ir.Node) -> None:
        a, wname, *bias = n.inputs
        W = self.g.initializers[wname]
        n_out, n_in = W.shape
        into = self.accumulate.get(n.outputs[0])
        if n.outputs[0] == "y" and self.weights == "float":  # the output array itself
            out = self.expr["y"] = self.at_stream("y", n_out)
            self.stride["y"] = n_out
        elif into is None:
            out = self.local(n.outputs[0], n_out)
        else:  # onto the other matmul's result: y = W·a + y
            out = self.expr[n.outputs[0]] = self.expr[into]
            self.stride[n.outputs[0]] = self.stride[into]
        ae = self.expr[a]
        name = self.names.get(wname)
        self.const_names[wname] = name
        b = self.operand(bias[0])("i") if bias else None
        if self.weights == "float":  # one stream (a block of float weights: Lanes)
            assert not self.streams, "a block of float weights is Lanes's"
            self.float_weights(wname, W, name)
            bias_arr = out if into is not None else self.const_names[bias[0]] if bias else "NULL"
            note = f" /* {into} + {n.outputs[0]} */" if into is not None else ""
            self.lines.append(f"    slimedge_matvec_f32({ae}, {n_in}, {name}, {n_out}, "
                              f"{bias_arr}, {out});{note}")
            return
        int8_weights.matmul(self, out, ae, name, wname, W, b)

    def float_weights(self, wname: str, W: np.ndarray, name: str) -> None:
        """The const array of a float matmul's weights, as slimedge_matvec_f32 reads them."""
        n_out, n_in = W.shape
        comment = (f"{wname}: {n_out} x {n_in}, blocks of 8 rows column by column "
                   f"(SLIMEDGE_F32_INDEX)")
        self.arrays.append(src.array("float", name, f32_layout(W), comment=comment))
        self.weight_bytes += 4 * W.size

    @staticmethod
    def sigmoid(a: str) -> str:
        lim = src.c_float(SIGMOID_CLAMP)
        return f"1.0f / (1.0f + expf(-fminf(fmaxf({a}, -{lim}), {lim})))"

    @staticmethod
    def tanh(a: str) -> str:
        return f"tanhf({a})"

    def binary(self, symbol: str) -> Callable[[ir.Node], None]:
        def emit(n: ir.Node) -> None:
            a, b = (self.operand(v) for v in n.inputs)
            self.define(n.outputs[0], self.size(n.outputs[0]),
                        lambda i: f"{a(i)} {symbol} {b(i)}")
        return emit

    def unary(self, fn: Callable[[str], str]) -> Callable[[ir.Node], None]:
        def emit(n: ir.Node) -> None:
            a = self.operand(n.inputs[0])
            self.define(n.outputs[0], self.size(n.outputs[0]), lambda i: fn(a(i)))
        return emit

    def split(self, n: ir.Node) -> None:
        base, offset = self.expr[n.inputs[0]], 0
        for o, s in zip(n.outputs, n.attrs["kernel"]["sizes"]):
            self.expr[o] = base if offset == 0 else f"({base} + {offset})"
            self.stride[o] = self.stride.get(n.inputs[0], 0)
            offset += int(s)

    def unstack(self, n: ir.Node) -> None:
        (state,) = n.inputs
        base = self.at_stream(state, self.g.hidden_size)
        for k, o in enumerate(n.outputs):
            self.expr[o] = base if k == 0 else f"({base} + {k} * ld)"
            self.stride[o] = self.g.hidden_size

    def stack(self, n: ir.Node) -> None:
        state = fusion.STATE_OF_STACK[n.outputs[0]]
        for k, v in enumerate(n.inputs):
            if v in self.stored:
                continue
            self.deferred.append(self.each_stream(
                f"    for (int i = 0; i < {self.size(v)}; i++) "
                f"{self.state_dst(state, k)}[i] = {self.operand(v)('i')};"))

    def accumulating(self, nodes: list[ir.Node]) -> list[ir.Node]:
        """``nodes`` with each sum of two matmul results that nothing else reads (W·x + b + U·h)
        made one array: the second matmul accumulates onto the first's result (its bias
        argument), the add becomes an alias of it. Float weights only."""
        if self.weights != "float":
            return list(nodes)
        pairs = fusion.matmul_sums(nodes)
        total = {t: first for first, t in pairs.values()}
        self.accumulate = {second: first for second, (first, _) in pairs.items()}
        return [ir.Node("identity", (total[n.outputs[0]],), n.outputs, {})
                if n.op == "add" and n.outputs[0] in total else n for n in nodes]

    def identity(self, n: ir.Node) -> None:
        self.expr[n.outputs[0]] = self.expr[n.inputs[0]]
        if n.inputs[0] in self.stride:
            self.stride[n.outputs[0]] = self.stride[n.inputs[0]]

    def state_dst(self, state: str, k: int) -> str:
        target = self.at_stream({"h": "h_out", "c": "c_out"}[state], self.g.hidden_size)
        return target if k == 0 else f"({target} + {k} * ld)"

    chains = False  # fusion.plan's: a block's loops split where two tanh/sigmoid would chain

    def walk_step(self) -> None:
        """Every node of the step, the element-wise runs fused into loops."""
        nodes = self.accumulating(self.g.nodes)
        groups = fusion.plan(nodes, self.size, self.chains)
        for g in groups.values():
            # the new state goes to arrays and is written after the row: a fused loop that
            # writes only its own arrays may be vectorised (tanhf and expf included, where the
            # C library has vector versions), one that might write over its inputs may not
            g.escapes |= set(g.stores)
            g.stores = {}
        self.walk(nodes, groups, OPS)

    def emit(self) -> None:
        self.walk_step()
        K = self.g.output_size
        y = self.at_stream("y", K)
        if self.expr.get("y") != y:
            self.deferred.append(self.each_stream(
                f"    for (int i = 0; i < {K}; i++) {y}[i] = {self.operand('y')('i')};"))



def f32_layout(W: np.ndarray) -> np.ndarray:
    """Float weights (out, in) as ``slimedge_matvec_f32`` reads them: blocks of eight rows stored
    column by column, the last rows % 8 rows row-major after them (``SLIMEDGE_F32_INDEX``)."""
    W = np.asarray(W, np.float32)
    rows, cols = W.shape
    full = rows // 8 * 8
    blocks = W[:full].reshape(rows // 8, 8, cols).transpose(0, 2, 1)
    return np.concatenate([blocks.ravel(), W[full:].ravel()])


def _clip(a: str, lo: float | None, hi: float | None) -> str:
    a = a if lo is None else f"fmaxf({a}, {src.c_float(lo)})"
    return a if hi is None else f"fminf({a}, {src.c_float(hi)})"


OPS: dict[str, Callable[[Row, ir.Node], None]] = {
    "matmul": lambda r, n: r.matmul(n),
    "add": lambda r, n: r.binary("+")(n),
    "mul": lambda r, n: r.binary("*")(n),
    "sigmoid": lambda r, n: r.unary(r.sigmoid)(n),
    "tanh": lambda r, n: r.unary(r.tanh)(n),
    "clip": lambda r, n: r.unary(lambda a: _clip(a, **n.attrs["kernel"]))(n),
    "split": lambda r, n: r.split(n),
    "unstack": lambda r, n: r.unstack(n),
    "stack": lambda r, n: r.stack(n),
    "identity": lambda r, n: r.identity(n),
}
assert set(OPS) == set(ir.OPS), "every IR op needs a C mapping"


__all__ = ["OPS", "Row", "f32_layout"]
