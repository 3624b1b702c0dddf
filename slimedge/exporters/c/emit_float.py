"""The float C emitter: the step IR as a C99 ``.c``/``.h`` pair with float activations.

Two weight formats (``weights=``): ``"float"`` (float32 weights, the float export) and ``"int8"``
(int8 weights with one float scale per output row: ``--quantize dynamic``).

The generated step walks the graph for one stream (one batch row) in a ``static`` row function,
calling the kernels of ``slimedge_kernels.h`` with arrays and constants named after the model's
tensors (``l0_W_c``, ``l0_const_f``). A matmul is one call of ``slimedge_matvec_f32``; where
W·x + b + U·h is read by nothing else, U·h accumulates onto W·x + b (one array). Consecutive
element-wise ops run as one loop over the elements with scalar temporaries (:mod:`.fusion`), an
array only for what later ops read; each op's C expression comes from the table :data:`OPS`
(checked against ``ir.OPS``). Every write of the new state is deferred to the end of the row,
after the last read of the old state, so ``h_next``/``c_next`` may be ``h``/``c`` themselves (in
place), and the fused loops write only their own arrays (so a compiler may vectorise them).

A batch (``PREFIX_step_io`` with more than one stream) runs the same step on blocks of up to
:data:`BLOCK_STREAMS` streams in a second function, ``PREFIX_rows``, written from the same graph
walk. Float weights (:class:`_Lanes`): every array of the block is lane-major (element i of the
block's stream s at ``[i * lanes + s]``, the streams across the vector lanes); x, h and c are
transposed in once, y and the new state out once; each matmul is one call of
``slimedge_matmat_f32`` for the whole block (W·x + b + U·h one call), so each weight is read
once per block instead of once per stream, and writes whole vectors of streams, which the
element-wise loops (elements outside, lanes inside) read as whole vectors (tanh and sigmoid as
``slimedge_tanh_block``, a rational function of plain arithmetic, no C library call: within
3.3e-7 of tanh; a loop splits where a tanh would read another's result, see
:func:`.fusion.plan`). int8 weights: every array gets a row per stream, every element-wise loop
runs once per stream, and the matmuls read each weight row once per :data:`BLOCK_DOT` streams
(the same exact integer sums as one stream's). Every stream of a batch runs the same
instructions, so its result does not depend on the batch it is in nor on its place in it; one
stream alone runs the row function, whose sums run in another order (float32 rounding apart,
tested). Microcontrollers (and ``-DSLIMEDGE_NO_BLOCKED``) leave ``PREFIX_rows`` out and step a
batch one stream at a time. BENCHMARKS.md › Many streams: batched C has the speeds.

Matmuls, as measured on this project's CPU (gcc 12, -O3 -march=native -ffast-math) and on the
emulated Cortex-M4 (arm-none-eabi-gcc -O2):

* float weights are stored in blocks of eight rows, column by column (:func:`f32_layout`): the
  kernel keeps eight rows' sums in registers and each input element scales eight contiguous
  weights (on the Cortex-M4 eight VFMAs, 20 instructions per 8 multiply-adds; on a desktop CPU
  vector multiply-adds, 64 rows at a time);
* int8 weights with at least :data:`SMALL_INPUT` inputs are stored (out, in): the input
  vector is scaled once per call to int16
  (:func:`activation_bound`, 15 bits: a relative rounding of 2^-16 of its largest element, far
  below the weights' own), and each output row is an int32 dot product of int8 and int16 values,
  the form compilers turn into multiply-add instructions (vpmaddwd), then one float multiply by
  the row's scale times the input's. Each stream row scales its own input, so rows stay
  independent in a batch. LSTM0 n = 512: 3.5x faster than the float step (the int8 matrix fits
  the L2 cache, the float one does not, and the dot product does 16 multiply-adds an instruction);
* int8 weights with fewer inputs (W·x over 13 MFCCs) are stored transposed, (in, out), and
  converted to float in the loop: a short dot product per row costs more than it saves.
"""
from __future__ import annotations

import re
from typing import Callable

import numpy as np

from ... import ir
from . import fusion
from . import source as src

WEIGHTS = ("float", "int8")
SMALL_INPUT = 32  # int8 weights: a matmul with fewer inputs runs by columns, float activations
LAYOUT = {"float": "float32 weights stored transposed (in, out); float32 arithmetic",
          "int8": "int8 weights, one float scale per output row; a matmul with at least "
                  f"{SMALL_INPUT} inputs rounds its input vector per call to int16 (15 bits) for an "
                  "int32 dot product; float32 elsewhere"}
ACTIVATION_BITS = 15  # int8-weight matmuls: the input vector as int16 (up to ±32767) per call


def activation_bound(inputs: int) -> int:
    """The largest |int16| an int8-weight matmul's input is scaled to: 32767, less where
    ``inputs`` x 127 x it would overflow the int32 dot product."""
    return int(min(2 ** ACTIVATION_BITS - 1, (2 ** 31 - 1) // (127 * inputs)))


BLOCK_STREAMS = 32  # batched steps: streams per block (each weight read once per block)
BLOCK_SCRATCH = 512 << 10  # ... 16 where a block's arrays would pass this many bytes
BLOCK_INT8_BYTES = 128 << 10  # int8 matrices this large or larger: the block's dot products
BLOCK_DOT = 4  # int8 weights: streams whose dot products share each load of a weight row


def block_streams(row_scratch: int) -> int:
    """Streams per block of a batched step: :data:`BLOCK_STREAMS`, 16 (a whole number of
    vectors of streams, ``SLIMEDGE_MM_LANES`` 8 or 16) where the block's arrays
    (``row_scratch`` bytes per stream) would pass :data:`BLOCK_SCRATCH`."""
    return 16 if row_scratch * BLOCK_STREAMS > BLOCK_SCRATCH else BLOCK_STREAMS


SIGMOID_CLAMP = 30.0  # |z| beyond this: σ(z) is 0 or 1 in float32; keeps expf finite


class _Row(fusion.FusedRow):
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
        if self.weights == "float":  # one stream (a block of float weights: _Lanes)
            assert not self.streams, "a block of float weights is _Lanes's"
            self.float_weights(wname, W, name)
            bias_arr = out if into is not None else self.const_names[bias[0]] if bias else "NULL"
            note = f" /* {into} + {n.outputs[0]} */" if into is not None else ""
            self.lines.append(f"    slimedge_matvec_f32({ae}, {n_in}, {name}, {n_out}, "
                              f"{bias_arr}, {out});{note}")
            return
        scale = np.abs(W).max(axis=1) / 127.0
        scale[scale == 0] = 1.0
        q = np.clip(np.rint(W / scale[:, None]), -127, 127).astype(np.int8)
        self.weight_error[wname] = float(np.abs(q * scale[:, None] - W).max())
        by_columns = n_in < SMALL_INPUT
        self.arrays.append(src.array("int8_t", name, q.T if by_columns else q,
                                     comment=f"{wname}: {n_out} x {n_in}, int8" +
                                     (f", stored transposed ({n_in}, {n_out})" if by_columns else "")))
        self.arrays.append(src.array("float", name + "_scale", scale.astype(np.float32),
                                     comment=f"{wname}: one scale per output row"))
        self.weight_bytes += q.size + 4 * n_out
        tail = f" + {b}" if b else ""
        if by_columns:  # few inputs: float activations as they are, rows scaled at the end
            if self.streams:
                self.lines.append("    for (int s = 0; s < nb; s++) {")
            self._columns(out, ae, name, "int8_t", n_out, n_in, "0.0f")
            self.lines.append(f"    for (int i = 0; i < {n_out}; i++) "
                              f"{out}[i] = {out}[i] * {name}_scale[i]{tail};")
            if self.streams:
                self.lines.append("    }")
            return
        if self.streams and n_out * n_in >= BLOCK_INT8_BYTES:
            self._int8_block(out, ae, name, n_out, n_in, b)
            return
        # the input vector in int16 (scaled per call to activation_bound(n_in)), an int32 dot
        # product per output row, then the row's scale times the input's
        L = self.lines
        # (a block's small matrix: each stream's own, as one stream runs it; the weights stay
        # in the cache from one stream to the next)
        L.append("    for (int s = 0; s < nb; s++) {" if self.streams else "    {")
        L.append("        float amax = 0.0f;")
        L.append(f"        for (int j = 0; j < {n_in}; j++) amax = fmaxf(amax, fabsf({ae}[j]));")
        L.append(f"        const float sx = amax > 0.0f ? amax / {activation_bound(n_in)}.0f : 1.0f;")
        L.append("        const float inv = 1.0f / sx;")
        L.append(f"        int16_t aq[{n_in}];")
        self.scratch_bytes += 2 * n_in
        L.append(f"        for (int j = 0; j < {n_in}; j++) {{")
        L.append(f"            const float v = {ae}[j] * inv;")
        L.append("            aq[j] = (int16_t)(v < 0.0f ? v - 0.5f : v + 0.5f);")
        L.append("        }")
        L.append(f"        for (int i = 0; i < {n_out}; i++) {{")
        L.append(f"            const int8_t *w = {name} + (size_t)i * {n_in};")
        L.append("            int32_t acc = 0;")
        L.append(f"            for (int j = 0; j < {n_in}; j++) acc += (int32_t)w[j] * (int32_t)aq[j];")
        L.append(f"            {out}[i] = (float)acc * ({name}_scale[i] * sx){tail};")
        L.append("        }")
        L.append("    }")

    def float_weights(self, wname: str, W: np.ndarray, name: str) -> None:
        """The const array of a float matmul's weights, as slimedge_matvec_f32 reads them."""
        n_out, n_in = W.shape
        comment = (f"{wname}: {n_out} x {n_in}, blocks of 8 rows column by column "
                   f"(SLIMEDGE_F32_INDEX)")
        self.arrays.append(src.array("float", name, f32_layout(W), comment=comment))
        self.weight_bytes += 4 * W.size

    def _int8_block(self, out: str, a: str, w: str, n_out: int, n_in: int, b: str | None) -> None:
        """The int8 matmul of a block: each stream's input scaled to int16 as one stream's is,
        then each weight row read once for the block, four streams' int32 dot products at a
        time (the same exact sums, the same float epilogue: a stream's result is the one it
        gets alone)."""
        T = BLOCK_DOT
        L = self.lines
        L.append("    {")
        L.append(f"        int16_t aq[{self.streams * n_in}];")
        L.append(f"        float sa[{self.streams}];")
        self.scratch_bytes += 2 * n_in * self.streams + 4 * self.streams
        L.append("        for (int s = 0; s < nb; s++) {")
        L.append("            float amax = 0.0f;")
        L.append(f"            for (int j = 0; j < {n_in}; j++) amax = fmaxf(amax, fabsf({a}[j]));")
        L.append(f"            sa[s] = amax > 0.0f ? amax / {activation_bound(n_in)}.0f : 1.0f;")
        L.append("            const float inv = 1.0f / sa[s];")
        L.append(f"            for (int j = 0; j < {n_in}; j++) {{")
        L.append(f"                const float v = {a}[j] * inv;")
        L.append(f"                aq[s * {n_in} + j] = (int16_t)(v < 0.0f ? v - 0.5f : v + 0.5f);")
        L.append("            }")
        L.append("        }")
        L.append(f"        for (int i = 0; i < {n_out}; i++) {{")
        L.append(f"            const int8_t *w = {w} + (size_t)i * {n_in};")
        L.append("            int s = 0;")
        L.append(f"            for (; s + {T} <= nb; s += {T}) {{")
        L.append(f"                const int16_t *q = aq + s * {n_in};")
        L.append("                int32_t " + ", ".join(f"a{t} = 0" for t in range(T)) + ";")
        L.append(f"                for (int j = 0; j < {n_in}; j++) {{")
        L.append("                    const int32_t wj = w[j];")
        L.append("                    " + " ".join(f"a{t} += wj * (int32_t)q[{t * n_in} + j];"
                                                    for t in range(T)))
        L.append("                }")
        for t in range(T):
            st = f"(s + {t})" if t else "s"
            tail = f" + {_on_stream(b, st)}" if b else ""
            L.append(f"                {_on_stream(out, st)}[i] = (float)a{t} * ({w}_scale[i] * "
                     f"sa[{st}]){tail};")
        L.append("            }")
        L.append("            for (; s < nb; s++) {")
        L.append(f"                const int16_t *q = aq + s * {n_in};")
        L.append("                int32_t acc = 0;")
        L.append(f"                for (int j = 0; j < {n_in}; j++) acc += (int32_t)w[j] * (int32_t)q[j];")
        tail = f" + {b}" if b else ""
        L.append(f"                {out}[i] = (float)acc * ({w}_scale[i] * sa[s]){tail};")
        L.append("            }")
        L.append("        }")
        L.append("    }")

    def _columns(self, out: str, a: str, w: str, wtype: str, n_out: int, n_in: int,
                 init: str) -> None:
        """out = init + W·a with W stored (in, out): one contiguous weight row per input."""
        L = self.lines
        L.append(f"    for (int i = 0; i < {n_out}; i++) {out}[i] = {init};")
        L.append(f"    for (int j = 0; j < {n_in}; j++) {{")
        L.append(f"        const float aj = {a}[j];")
        L.append(f"        const {wtype} *w = {w} + (size_t)j * {n_out};")
        L.append(f"        for (int i = 0; i < {n_out}; i++) {out}[i] += (float)w[i] * aj;")
        L.append("    }")

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


class _Lanes(_Row):
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
        a, wname, *bias = n.inputs
        W = self.g.initializers[wname]
        n_out, n_in = W.shape
        into = self.accumulate.get(n.outputs[0])
        if into is None:
            out = self.local(n.outputs[0], n_out)
        else:  # U·h, in one call with the W·x + b it is added onto
            out = self.expr[n.outputs[0]] = self.expr[into]
        name = self.names.get(wname)
        self.const_names[wname] = name
        if bias:
            self.operand(bias[0])
        self.float_weights(wname, W, name)
        operands = (self.expr[a], n_in, name)
        bias_arr = self.const_names[bias[0]] if bias else "NULL"
        if n.outputs[0] in self.accumulate.values():  # W·x + b waits for the U·h added to it
            self.pending[n.outputs[0]] = (operands, bias_arr)
            return
        second, note = ("NULL", 0, "NULL"), ""
        if into is not None:
            (operands, bias_arr), second = self.pending.pop(into), operands
            note = f" /* {into} + {n.outputs[0]} */"
        self.lines.append(f"    slimedge_matmat_f32({self.streams}, "
                          f"{', '.join(map(str, operands + second))}, {n_out}, {bias_arr}, "
                          f"{out});{note}")

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


def f32_layout(W: np.ndarray) -> np.ndarray:
    """Float weights (out, in) as ``slimedge_matvec_f32`` reads them: blocks of eight rows stored
    column by column, the last rows % 8 rows row-major after them (``SLIMEDGE_F32_INDEX``)."""
    W = np.asarray(W, np.float32)
    rows, cols = W.shape
    full = rows // 8 * 8
    blocks = W[:full].reshape(rows // 8, 8, cols).transpose(0, 2, 1)
    return np.concatenate([blocks.ravel(), W[full:].ravel()])


def _on_stream(expr: str, stream: str) -> str:
    """A block's C expression written for stream ``s`` taken at stream ``stream``."""
    return re.sub(r"\bs\b", stream, expr)


def _clip(a: str, lo: float | None, hi: float | None) -> str:
    a = a if lo is None else f"fmaxf({a}, {src.c_float(lo)})"
    return a if hi is None else f"fminf({a}, {src.c_float(hi)})"


OPS: dict[str, Callable[[_Row, ir.Node], None]] = {
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


def _header(prefix: str, header: str, graph: ir.Graph, meta: dict, weights: str,
            stack_bytes: int, batch_stack_bytes: int) -> str:
    what = ("float32 weights and arithmetic" if weights == "float" else
            "int8 weights (one float scale per output row), float32 activations")
    return src.join([
        f"/* {header}: a slimedge {meta['lstm']['variant']['name']} step function in C99 "
        f"({what}).\n   Generated by slimedge; do not edit. The model's config JSON is "
        f"{prefix}_config, in the .c. */",
        f"#ifndef {src.guard(prefix)}\n#define {src.guard(prefix)}\n",
        "#ifdef __cplusplus\nextern \"C\" {\n#endif\n",
        "/* State: h and c hold NUM_LAYERS x HIDDEN_SIZE floats per stream, owned by the caller;\n"
        "   zero them (reset) to start a stream. Batched calls lay x out (batch, INPUT_SIZE), y\n"
        "   (batch, OUTPUT_SIZE) and h, c (NUM_LAYERS, batch, HIDDEN_SIZE), like the ONNX and\n"
        "   TFLite step graphs. Inputs are raw frames: the learned normalisation is inside. */",
        *src.api_header(prefix, graph, stack_bytes, batch_stack_bytes),
        "#ifdef __cplusplus\n}\n#endif\n",
        f"#endif /* {src.guard(prefix)} */",
    ])


def generate(graph: ir.Graph, prefix: str, *, header: str, weights: str = "float",
             meta_info: dict | None = None) -> tuple[str, str, dict]:
    """The ``.c`` and ``.h`` text of ``graph`` (the ``.c`` includes the header by the file name
    ``header``) and the config's export section."""
    if weights not in WEIGHTS:
        raise ValueError(f"unknown weight format {weights!r}; valid: {', '.join(WEIGHTS)}")
    row = _Row(graph, prefix, weights)
    row.emit()
    # the same step for a block of streams (batched calls on a desktop CPU): the same names,
    # so it reads the same weight arrays
    streams = block_streams(row.scratch_bytes)
    block = (_Lanes(graph, prefix, streams) if weights == "float"
             else _Row(graph, prefix, weights, streams=streams))
    block.emit()
    assert block.arrays == row.arrays, "the block's step must read the row's weights"
    quantize = "none" if weights == "float" else "dynamic"
    info = {"weights": "float32" if weights == "float" else "int8 symmetric, one scale per row",
            "activations": "float32", "weight_bytes": row.weight_bytes, "arithmetic": LAYOUT[weights],
            "stack_bytes": row.scratch_bytes + src.FRAME_BYTES, "block_streams": streams,
            "batch_stack_bytes": block.scratch_bytes + src.FRAME_BYTES}
    if weights == "int8":
        info["max_abs_weight_error"] = max(row.weight_error.values(), default=0.0)
    info["weights_sha256"] = src.digest(row.arrays)
    meta = src.export_meta(graph, prefix, quantize, **info, **(meta_info or {}))
    m, n, K = graph.input_size, graph.hidden_size, graph.output_size
    after = ["    /* the new state and the output, after every read of the old */"]
    body = "\n".join(row.lines + after + row.deferred)
    block_body = "\n".join(block.lines + after + block.deferred)
    c_text = src.join([
        f"/* {header[:-2]}.c: a slimedge step function in C99, generated from the step IR by slimedge "
        f"(see {header}).\n   No allocation, no mutable globals: the weights are const arrays and "
        f"the caller owns the state. */",
        "#include <math.h>\n#include <stddef.h>\n#include <stdint.h>\n" + src.include(header),
        *row.arrays,
        src.labels_array(prefix, graph),
        f"/* One stream: x ({m}), state layer k at h + k * ld, output y ({K}). Every read of h and c\n"
        f"   comes before the write of its element of h_out and c_out, so they may be the same. */\n"
        f"static void {prefix}_row(const float *x, const float *h, const float *c, size_t ld,\n"
        f"                         float *y, float *h_out, float *c_out)\n{{\n"
        f"    (void)ld;\n{body}\n}}\n",
        f"#if SLIMEDGE_BLOCKED\n"
        f"/* Streams s < nb ({streams} at most) of a batch, each as {prefix}_row steps one: stream s's x\n"
        f"   at x + s * {m}, state layer k at h + s * {n} + k * ld, output at y + s * {K}; each matmul\n"
        f"   one small matrix product for the block (each weight read once). */\n"
        f"static void {prefix}_rows(int nb, const float *x, const float *h, const float *c, "
        f"size_t ld,\n"
        f"                          float *y, float *h_out, float *c_out)\n{{\n"
        f"    (void)ld;\n{block_body}\n}}\n"
        f"#endif\n",
        f"void {prefix}_step_io(const {prefix}_io *io)\n{{\n"
        f"    const size_t ld = (size_t)io->batch * {n};\n"
        f"#if SLIMEDGE_BLOCKED\n"
        f"    if (io->batch > 1) {{\n"
        f"        for (int b = 0; b < io->batch; b += {streams}) {{\n"
        f"            const int nb = io->batch - b < {streams} ? io->batch - b : {streams};\n"
        f"            {prefix}_rows(nb, io->x + (size_t)b * {m}, io->h + (size_t)b * {n}, "
        f"io->c + (size_t)b * {n}, ld,\n"
        f"                          io->y + (size_t)b * {K}, io->h_next + (size_t)b * {n}, "
        f"io->c_next + (size_t)b * {n});\n"
        f"        }}\n"
        f"        return;\n"
        f"    }}\n"
        f"#endif\n"
        f"    for (int b = 0; b < io->batch; b++)\n"
        f"        {prefix}_row(io->x + (size_t)b * {m}, io->h + (size_t)b * {n}, "
        f"io->c + (size_t)b * {n}, ld,\n"
        f"                     io->y + (size_t)b * {K}, io->h_next + (size_t)b * {n}, "
        f"io->c_next + (size_t)b * {n});\n}}\n",
        *src.api_functions(prefix, graph),
        src.config_literal(prefix, meta),
        src.descriptor(prefix),
    ])
    return (c_text, _header(prefix, header, graph, meta, weights, row.scratch_bytes,
                            block.scratch_bytes), meta["export"])


__all__ = ["generate", "OPS", "WEIGHTS"]
