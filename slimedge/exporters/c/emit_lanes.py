"""The float emitter's block function for float weights (:class:`Lanes`): a batched step of up to
``BLOCK_STREAMS`` streams with every array lane-major (element i of the block's stream s at
``[i * lanes + s]``, the streams across the vector lanes); x, h and c are transposed in once, y
and the new state out once; each matmul is one call of ``slimedge_matmat_f32`` for the whole
block (W·x + b + U·h one call), so each weight is read once per block instead of once per
stream, and writes whole vectors of streams, which the element-wise loops (elements outside,
lanes inside) read as whole vectors (tanh and sigmoid as ``slimedge_tanh_block``, a rational
function of plain arithmetic, no C library call: within 3.3e-7 of tanh; a loop splits where a
tanh would read another's result, see :func:`.fusion.plan`). See :mod:`.emit_float`.

The other layout, :class:`StreamLanes`: the element-wise arrays stream-major, as one stream's,
only each matmul's input transposed into lanes and its result out. ``generate`` keeps the one
that transposes fewer floats per stream (:attr:`Lanes.transposed`; a tie keeps :class:`Lanes`):
LSTM_C6 n = 128, 1,024 streams, 93 -> 79 us per call (its state is read only element-wise:
x and W·x in and out and h into the head, instead of h and c in and out); LSTM6 and LSTM10 no
slower (this machine, BENCHMARKS.md › Many streams: batched C).
"""
from __future__ import annotations

from typing import Callable

from ... import ir
from . import fusion
from . import source as src
from .emit_int8w import _on_stream
from .emit_row import Row


class Lanes(Row):
    """The body of the block function for float weights: every array lane-major, element i of
    the block's stream s at ``[i * lanes + s]`` (``lanes`` = :attr:`streams`, 16 or 32: whole
    vectors of streams); x, h and c transposed in at the start, y and the new h and c out at
    the end; each matmul one ``slimedge_matmat_f32`` for the block (W·x + b + U·h one call);
    each element-wise loop over the elements and, inside, the lanes (whole vectors). The lanes
    past the block's nb streams hold zeros in and are never written out."""

    def __init__(self, graph: ir.Graph, prefix: str, streams: int,
                 names: src.Names | None = None) -> None:
        super().__init__(graph, prefix, "float", names, streams)
        self.pending: dict[str, tuple] = {}  # W·x + b waiting for the U·h added to it
        self.inputs = {v: self.names.get(f"{v}_lanes") for v in ("x", "h", "c")}
        self.expr = {"x": self.inputs["x"]}
        n, L = graph.hidden_size, streams
        self.scratch_bytes += 4 * L * (graph.input_size + 2 * graph.num_layers * n)
        # floats of a stream transposed into or out of the block (x, h and c in; more in emit)
        self.transposed = graph.input_size + 2 * graph.num_layers * n

    chains = True

    @staticmethod
    def sigmoid(a: str) -> str:
        return f"slimedge_sigmoid_block({a})"

    @staticmethod
    def tanh(a: str) -> str:
        return f"slimedge_tanh_block({a})"

    def elem(self, base: str, i: str) -> str:
        return f"{base}[{i} * {self.streams} + s]"

    def local(self, value: str, size: int, ctype: str = "float") -> str:
        assert ctype == "float"
        return super().local(value, size, ctype)

    def at_stream(self, base: str, stride: int) -> str:
        return base  # lane-major: an array's base (element i of stream s: elem)

    def loop_head(self, size: int) -> list[str]:
        return [f"    for (int i = 0; i < {size}; i++)",
                f"    for (int s = 0; s < {self.streams}; s++) {{"]

    def operand(self, value: str) -> Callable[[str], str]:
        if value in self.scalar or value in self.g.initializers:
            return super().operand(value)
        e = self.expr[value]
        return lambda i: self.elem(e, i)

    def define(self, value: str, size: int, expr) -> None:
        if self.group is None:
            out = self.local(value, size)
            self.lines += [*self.loop_head(size), f"        {self.elem(out, 'i')} = {expr('i')};",
                           "    }"]
            return
        name = self.names.get(value)
        self.group.body.append(f"        const float {name} = {expr('i')}; /* {value} */")
        self.scalar[value] = name
        assert value not in self.group.stores  # (walk_step: the new state is written at the end)
        if value in self.group.escapes:
            self.group.body.append(f"        {self.elem(self.local(value, size), 'i')} = {name};")

    def matmul(self, n: ir.Node) -> None:
        n_out = self.g.initializers[n.inputs[1]].shape[0]
        into = self.accumulate.get(n.outputs[0])
        if into is None:
            out = self.local(n.outputs[0], n_out)
        else:  # U·h, in one call with the W·x + b it is added onto
            out = self.expr[n.outputs[0]] = self.expr[into]
        call = _matmat(self, n, self.expr.__getitem__)
        if call is not None:
            self.lines.append(f"    {call[0]}{out});{call[1]}")

    def split(self, n: ir.Node) -> None:
        base, offset = self.expr[n.inputs[0]], 0
        for o, s in zip(n.outputs, n.attrs["kernel"]["sizes"]):
            self.expr[o] = base if offset == 0 else f"({base} + {offset * self.streams})"
            offset += int(s)

    def unstack(self, n: ir.Node) -> None:
        (state,) = n.inputs
        base, layer = self.inputs[state], self.g.hidden_size * self.streams
        for k, o in enumerate(n.outputs):
            self.expr[o] = base if k == 0 else f"({base} + {k * layer})"

    def stack(self, n: ir.Node) -> None:
        state = {"h": "h_out", "c": "c_out"}[fusion.STATE_OF_STACK[n.outputs[0]]]
        for k, v in enumerate(n.inputs):
            self.deferred.append(self.lanes_out(self.expr[v], self.size(v),
                                                state if k == 0 else f"{state} + {k} * ld",
                                                self.g.hidden_size))

    def lanes_out(self, src_: str, size: int, dst: str, ld: int) -> str:
        self.transposed += size
        return f"    slimedge_lanes_out(nb, {src_}, {size}, {self.streams}, {dst}, {ld});"

    def emit(self) -> None:
        self.walk_step()
        g, L = self.g, self.streams
        m, n, layers, K = g.input_size, g.hidden_size, g.num_layers, g.output_size
        self.deferred.append(self.lanes_out(self.expr["y"], K, "y", K))
        x, h, c = (self.inputs[v] for v in ("x", "h", "c"))
        self.lines[:0] = [
            f"    float {x}[{m * L}], {h}[{layers * n * L}], {c}[{layers * n * L}];",
            f"    slimedge_lanes_in(nb, x, {m}, {m}, {L}, {x});",
            f"    for (int k = 0; k < {layers}; k++) {{",
            f"        slimedge_lanes_in(nb, h + k * ld, {n}, {n}, {L}, {h} + k * {n * L});",
            f"        slimedge_lanes_in(nb, c + k * ld, {n}, {n}, {L}, {c} + k * {n * L});",
            "    }"]


class StreamLanes(Row):
    """The body of the block function for float weights with every element-wise array
    stream-major, as one stream's (stream s's row of each at ``base + s * size``, the old and new
    state read and written in place): only each matmul's input is transposed into lanes (once per
    value) and its result out, around one ``slimedge_matmat_f32`` for the block (W·x + b + U·h
    one call). Chosen over :class:`Lanes` where it transposes fewer floats per stream: a step
    whose state no matmul reads (LSTM_C6: h and c only element-wise) transposes x and W·x in and
    out, and h into the head, instead of h and c in and out. Each element-wise loop runs over a
    stream's elements (vectors of elements), the same instructions for every stream."""

    chains = True

    def __init__(self, graph: ir.Graph, prefix: str, streams: int,
                 names: src.Names | None = None) -> None:
        super().__init__(graph, prefix, "float", names, streams)
        self.pending: dict[str, tuple] = {}  # W·x + b waiting for the U·h added to it
        self.lanes: dict[str, str] = {}  # value -> its lane-major copy in the block
        self.transposed = 0

    sigmoid = staticmethod(Lanes.sigmoid)
    tanh = staticmethod(Lanes.tanh)

    def lanes_of(self, value: str) -> str:
        """The lane-major copy of ``value`` (element i of stream s at ``[i * lanes + s]``),
        transposed in at its first use."""
        if value not in self.lanes:
            name, size, L = self.names.get(f"{value}_lanes"), self.size(value), self.streams
            self.lines += [f"    float {name}[{size * L}];",
                           f"    slimedge_lanes_in(nb, {_on_stream(self.expr[value], '0')}, "
                           f"{self.stride[value]}, {size}, {L}, {name});"]
            self.scratch_bytes += 4 * size * L
            self.transposed += size
            self.lanes[value] = name
        return self.lanes[value]

    def matmul(self, n: ir.Node) -> None:
        call = _matmat(self, n, self.lanes_of)
        if call is None:
            return
        n_out = self.g.initializers[n.inputs[1]].shape[0]
        into = self.accumulate.get(n.outputs[0])
        value, L = into or n.outputs[0], self.streams
        tmp = self.names.get(f"{value}_mm")
        self.lines += [f"    float {tmp}[{n_out * L}];", f"    {call[0]}{tmp});{call[1]}"]
        self.scratch_bytes += 4 * n_out * L
        if value == "y":  # straight into the output
            self.expr["y"], self.stride["y"], base = self.at_stream("y", n_out), n_out, "y"
        else:
            base = _on_stream(self.local(value, n_out), "0")
        if into is not None:
            self.expr[n.outputs[0]], self.stride[n.outputs[0]] = self.expr[value], n_out
        self.lines.append(f"    slimedge_lanes_out(nb, {tmp}, {n_out}, {L}, {base}, {n_out});")
        self.transposed += n_out


def _matmat(row: Row, n: ir.Node, lanes_of: Callable[[str], str]) -> tuple[str, str] | None:
    """A block's matmul ``n`` as one ``slimedge_matmat_f32`` call, its weights (and bias) made
    arrays of ``row``: the call up to its output argument and a note, or None for a W·x + b that
    waits for the U·h added to it (both in the U·h's call). ``lanes_of``: a value's lane-major
    array."""
    a, wname, *bias = n.inputs
    W = row.g.initializers[wname]
    n_out, n_in = W.shape
    into = row.accumulate.get(n.outputs[0])
    name = row.names.get(wname)
    row.const_names[wname] = name
    if bias:
        row.operand(bias[0])
    row.float_weights(wname, W, name)
    operands = (lanes_of(a), n_in, name)
    bias_arr = row.const_names[bias[0]] if bias else "NULL"
    if n.outputs[0] in row.accumulate.values():
        row.pending[n.outputs[0]] = (operands, bias_arr)
        return None
    second, note = ("NULL", 0, "NULL"), ""
    if into is not None:
        (operands, bias_arr), second = row.pending.pop(into), operands
        note = f" /* {into} + {n.outputs[0]} */"
    return (f"slimedge_matmat_f32({row.streams}, {', '.join(map(str, operands + second))}, "
            f"{n_out}, {bias_arr}, ", note)


__all__ = ["Lanes", "StreamLanes"]
