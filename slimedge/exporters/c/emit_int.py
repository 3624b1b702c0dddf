"""The full-integer C emitter: the step IR in fixed point, integer-only arithmetic, no FPU needed.

Every IR value gets an integer representation (:class:`Rep`: C type and scale), decided by what
the value is:

    normalised input x, hidden state h      int8, one calibrated scale (per layer for h)
    cell state c, f ⊙ c, i ⊙ c~, c'         int16, one calibrated scale per layer (x 4 headroom)
    matmul results, pre-activation sums,    int32 Q16 (scale 2^-16); y leaves as Q16 too
    u ⊙ h terms
    sigmoid / tanh outputs, clip outputs    int16 Q15 (scale 2^-15); a clip whose bounds
    within [-1, 1]                          lie within [-1, 1] (piecewise-linear activations)
    weights W, U, head                      int8, one scale per output row
    point-wise u, folded gate constants     int16, one scale per vector

Representations and the state's scales are in :mod:`.intrep`; the arithmetic runs in the fixed
kernels of ``slimedge_kernels.h``, which the generated code calls with named arrays and constants.
A matmul is one call of ``slimedge_matvec_s8``: an int32 dot product of int8 weights (row-major,
rows padded to whole 32-bit words) and the int8 input, rescaled per output row to Q16 by an integer
multiplier and shift (:mod:`.fixedpoint`), in int32 where the weights bound the accumulator
enough (SMLAD on cores with the ARM DSP extension, plain C elsewhere: the same exact sums). Where
W·x + b + U·h is read by nothing else, U·h accumulates onto W·x + b in the kernel. Element-wise
products and conversions rescale the same way (a constant factor folded into the multiplier,
named after the constant: ``l0_const_f_mult``), in int32 where the bounds prove it safe, else
int64; every result saturates to its type, except where the weights' bound proves it cannot
leave the range (a matmul row, the sum of two matmul results). Consecutive element-wise ops
(pre-activation sum -> gates -> cell update -> g(c') -> int8 h) run as one loop over the elements
with scalar temporaries (:mod:`.fusion`), storing only what later ops read, and writing the new
state there when no later op reads the old one. Gate nonlinearities are one 513-entry tanh table
with linear interpolation, branch-free (the sigmoid reads it at z/2), max error 4.7e-5 (tanh)
and 4.2e-5 (sigmoid) over every input, checked exhaustively (:func:`fixedpoint.error_bounds`).

Scales come from real rollouts of the float model on the training split
(``calibration.calibrate``: every intermediate value's range). The input normalisation
x·s + t stays float, in ``PREFIX_quantize_input``: the integer step takes the normalised frame
as int8. The file offers integer I/O (``PREFIX_step_q``: int8 x, int8 h, int16 c, int32 y) and
float wrappers with the float export's signatures (``PREFIX_step``, ``_step_batch``,
``_step_io``), which quantise the float state on the way in and back on the way out (exactly:
a state that came out of the step goes back in unchanged).
"""
from __future__ import annotations

import math

import numpy as np

from ... import ir
from ...errors import UsageError
from ..calibration import DEFAULT_CALIBRATION_SAMPLES, STATE_HEADROOM, calibrate
from . import emit_row, fusion
from . import fixedpoint as fx
from . import source as src
from .emit_int_files import files
from .intrep import BYTES, Q15, Rep, Z, absmax, i8, i16, scales, vmax


class _IntRow(fusion.FusedRow):
    """The integer row function of one graph: C lines, each value's expression and Rep."""

    def __init__(self, graph: ir.Graph, prefix: str, ranges: dict, xin: str,
                 s_x: float, s_h: list[float], s_c: list[float], names: src.Names) -> None:
        self.g, self.p, self.ranges, self.names = graph, prefix, ranges, names
        self.lines: list[str] = []
        self.arrays: list[str] = []
        self.deferred: list[str] = []
        self.expr: dict[str, str] = {xin: "xq"}
        self.rep: dict[str, Rep] = {xin: i8(s_x)}
        self.weight_bytes = self.scratch_bytes = 0
        self.matvec_scratch = 0  # int32 words the matvec kernels need (the widest input)
        self.pairs: dict[str, tuple[str, str]] = {}  # see fusion.matmul_sums
        self.merged: set[str] = set()  # adds the second matmul did
        self.rescale = {"int32": 0, "int64": 0, "max_relative_factor_error": 0.0}
        self.target: dict[str, Rep] = {}
        self.group: fusion.Group | None = None  # the fused element-wise loop being written
        self.scalar: dict[str, str] = {}  # value -> its scalar in that loop
        self.stored: set[str] = set()  # new-state values written out in a fused loop
        self.bound: dict[str, int] = {}  # value -> a proven bound on |element| (matmul results)
        prod = graph.producers()
        h_new, c_new = prod["h_next"].inputs, prod["c_next"].inputs
        for k in range(graph.num_layers):
            self.target[h_new[k]] = i8(s_h[k])
            self.target[c_new[k]] = i16(s_c[k])
            node = prod.get(c_new[k])
            if node is not None and node.op == "add":  # f ⊙ c and i ⊙ c~ at the state's scale
                for v in node.inputs:
                    if v in prod and prod[v].op == "mul":
                        self.target[v] = i16(s_c[k])
        self.state = {"h": [i8(s) for s in s_h], "c": [i16(s) for s in s_c]}

    # ---- helpers ----------------------------------------------------------------------------
    def local(self, value: str, rep: Rep, size: int) -> str:
        name = self.names.get(value)
        self.lines.append(f"    {rep.ctype} {name}[{size}]; /* {value} */")
        self.expr[value], self.rep[value] = name, rep
        self.scratch_bytes += BYTES[rep.ctype] * size
        return name

    def define(self, value: str, rep: Rep, size: int, expr: str) -> None:
        """``value`` (``rep``, ``size`` elements) is ``expr`` at element ``i``: its own loop and
        array outside a fused group; inside one, a scalar of the group's single loop, stored to
        an array only where something after the group reads it."""
        if self.group is None:
            out = self.local(value, rep, size)
            self.lines.append(f"    for (int i = 0; i < {size}; i++) {out}[i] = {expr};")
            return
        name = self.names.get(value)
        self.group.body.append(f"        const {rep.ctype} {name} = {expr}; /* {value} */")
        self.scalar[value], self.rep[value] = name, rep
        if value in self.group.escapes:
            arr = self.local(value, rep, size)
            self.group.body.append(f"        {arr}[i] = {name};")
        if value in self.group.stores:  # a new state, written once the element is done
            state, k = self.group.stores[value]
            dst, srep = self.state_dst(state, k), self.state[state][k]
            conv = self.conv(name, rep, srep, f"{value}_to_{state}{k}")
            self.group.tail.append(f"        {dst}[i] = {conv};")
            self.stored.add(value)

    def const(self, ctype: str, values: np.ndarray, comment: str, name: str) -> str:
        """A const array named after ``name`` (an IR name, made an identifier)."""
        name = self.names.get(name)
        self.arrays.append(src.array(ctype, name, values, comment=comment))
        self.weight_bytes += values.size * BYTES[ctype]
        return name

    def counted(self, width: int, err: float) -> None:
        self.rescale[f"int{width}"] += 1
        self.rescale["max_relative_factor_error"] = max(self.rescale["max_relative_factor_error"],
                                                        float(err))

    def conv(self, e: str, frm: Rep, to: Rep, name: str, top: int | None = None) -> str:
        """Expression ``e`` (held as ``frm``, |e| <= ``top``) rescaled and saturated to ``to``:
        in int32 where the bound allows (:func:`fx.multipliers32`), else in int64; the
        multiplier and shift are the named constants ``NAME_rescale`` and ``_shift``."""
        if frm == to:
            return e
        top = vmax(frm) if top is None else top
        fit = fx.multipliers32([frm.scale / to.scale], top) if top <= fx.INT32_MAX else None
        if fit is not None:
            (M,), r, err = fit
            self.counted(32, err)
            wide = ""
        else:
            M, r = fx.multiplier(frm.scale / to.scale, frm.bits)
            self.counted(64, 2.0 ** -(max(M.bit_length(), 1) - 1) if M else 0.0)
            wide = "64"
        m = self.names.get(name, "_rescale")
        self.arrays.append(f"enum {{ {m} = {src.c_int(M)}, {m}_shift = {r} }}; "
                           f"/* scale {frm.scale:.6g} -> {to.scale:.6g} */\n")
        return (f"({to.ctype})slimedge_sat{wide}(slimedge_rq{wide}({e}, {m}, {m}_shift), "
                f"{to.lo}, {to.hi})")

    def operand(self, value: str, *, scale_for_add: Rep | None = None):
        """(element expression of index i, Rep) of a value or a constant. Constants in an add are
        written at the add's own scale (int32); in a product, as int16 with their own scale."""
        if value in self.scalar:
            v = self.scalar[value]
            return (lambda i: v), self.rep[value]
        if value not in self.g.initializers:
            e = self.expr[value]
            return (lambda i: f"{e}[{i}]"), self.rep[value]
        w = self.g.initializers[value].astype(np.float64).ravel()
        if scale_for_add is not None:
            T = scale_for_add
            q = np.clip(np.rint(w / T.scale), T.lo, T.hi).astype(np.int64)
            rep = Rep("int32_t", T.scale, T.lo, T.hi, T.bits)
            ctype = "int32_t"
        else:
            top = float(np.abs(w).max())
            rep = Q15 if top <= 1.0 else i16(top / fx.Q15_MAX)
            q = np.clip(np.rint(w / rep.scale), -fx.Q15_MAX, fx.Q15_MAX).astype(np.int64)
            ctype = "int16_t"
        if w.size == 1:
            lit = src.c_int(int(q[0]))
            return (lambda i: lit), rep
        name = self.const(ctype, q, f"{value} ({w.size},) at scale {rep.scale:.6g}", value)
        return (lambda i: f"{name}[{i}]"), rep

    def size(self, value: str) -> int:
        return int(self.g.shapes[value][-1])

    def int8_input(self, value: str) -> tuple[str, Rep]:
        """The matmul operand ``value`` as an int8 array (converted when it is held wider)."""
        rep = self.rep[value]
        if rep.ctype == "int8_t":
            return self.expr[value], rep
        to = i8(absmax(self.ranges[value]) / 127.0 or 1.0)
        a, _ = self.operand(value)
        name = self.names.get(value, "_q")
        size = self.size(value)
        self.lines.append(f"    int8_t {name}[{size}]; /* {value} as int8 */")
        self.scratch_bytes += size
        self.lines.append(f"    for (int i = 0; i < {size}; i++) {name}[i] = "
                          f"{self.conv(a('i'), rep, to, name)};")
        return name, to

    # ---- ops --------------------------------------------------------------------------------
    def matmul(self, n: ir.Node) -> None:
        """A call of the kernel ``slimedge_matvec_s8`` with the weights, multipliers, shift and
        bias by name (flags: saturating where the weights' bound lets a row's result pass
        Z_LIMIT; rescaling in int64 where int32 leaves the multipliers too few bits)."""
        a, wname, *bias = n.inputs
        W = self.g.initializers[wname].astype(np.float64)
        n_out, n_in = W.shape
        ae, arep = self.int8_input(a)
        s_w = np.abs(W).max(axis=1) / 127.0
        s_w[s_w == 0] = 1.0
        q = np.clip(np.rint(W / s_w[:, None]), -127, 127).astype(np.int64)
        n_pad = -(-n_in // 4) * 4  # rows padded with zeros to whole 32-bit words
        qp = np.zeros((n_out, n_pad), np.int64)
        qp[:, :n_in] = q
        ratios = arep.scale * s_w / Z.scale
        # |acc| <= 128 * sum_j |w_ij| (an int8 input, even -128): a hard bound, per row
        fit = fx.multipliers32(ratios, 128 * np.abs(q).sum(axis=1), fx.MATMUL32_TOL)
        if fit is not None:
            Ms, R, err = fit
            wide = 32
        else:
            acc_bits = math.ceil(math.log2(127 * 127 * n_in + 1))
            Ms, R = fx.multipliers(ratios, acc_bits)
            err = 2.0 ** -(max(max(Ms).bit_length(), 1) - 1)
            wide = 64
        self.counted(wide, err)
        pad = f" (rows padded to {n_pad})" if n_pad != n_in else ""
        wq = self.const("int8_t", qp, f"{wname}: {n_out} x {n_in}{pad}, int8, one scale per row",
                        wname)
        mq = self.const("int32_t", np.array(Ms), f"{wname}: per-row multipliers to Q16 "
                        f"(shift {wq}_shift)", wname + "_mult")
        self.arrays.append(f"enum {{ {wq}_shift = {R} }}; /* {wname}: the multipliers' shift */\n")
        bq_abs, b = np.zeros(n_out, np.int64), "NULL"
        if bias:
            bv = self.g.initializers[bias[0]].astype(np.float64)
            bq = np.clip(np.rint(bv / Z.scale), Z.lo, Z.hi).astype(np.int64)
            b, bq_abs = self.const("int32_t", bq, f"{bias[0]} in Q16", bias[0]), np.abs(bq)
        out = self.local(n.outputs[0], Z, n_out)
        # the saturation only where the weights' bound lets a row's result pass Z_LIMIT
        row_top = max((128 * int(np.abs(q[i]).sum()) * abs(int(Ms[i])) + (1 << R)) >> R
                      for i in range(n_out)) + int(bq_abs.max()) + 1
        self.bound[n.outputs[0]] = min(row_top, Z.hi)
        saturate, note = row_top > Z.hi, ""
        onto = self.pairs.get(n.outputs[0])
        if onto is not None and not bias and not saturate and self.target.get(onto[1], Z) == Z:
            # W·x + b + U·h: this (unsaturated) result added onto the other's in the kernel,
            # the sum saturated where their bounds let it leave the range, as the add would
            first, total = onto
            top = self.bound[first] + row_top
            saturate, b, note = top > Z.hi, self.expr[first], f" /* {first} + {n.outputs[0]} */"
            assert self.lines[-1].startswith(f"    int32_t {out}[")
            self.lines.pop()  # no array of its own
            self.scratch_bytes -= 4 * n_out
            out = self.expr[n.outputs[0]] = self.expr[total] = self.expr[first]
            self.rep[total] = Z
            self.bound[total] = min(top, Z.hi)
            self.merged.add(total)
        flags = "SLIMEDGE_RESCALE" + ("64" if wide == 64 else "32") + (
            " | SLIMEDGE_SATURATE" if saturate else "")
        self.matvec_scratch = max(self.matvec_scratch, n_pad)
        self.lines.append(f"    slimedge_matvec_s8({ae}, {n_in}, {n_pad}, {wq}, {n_out}, {mq}, "
                          f"{wq}_shift, {b},\n                       {flags}, {out}, scratch);{note}")

    def add(self, n: ir.Node) -> None:
        if n.outputs[0] in self.merged:  # summed by the second matmul (see matmul)
            return
        T = self.target.get(n.outputs[0], Z)
        terms = []
        for v in n.inputs:
            e, rep = self.operand(v, scale_for_add=T)
            terms.append(self.conv(e("i"), rep, T, f"{v}_in_{n.outputs[0]}")
                         if rep.scale != T.scale else e("i"))
        size = self.size(n.outputs[0])
        # every term is within +-(2^30 - 1) (Z_LIMIT, or its int8/int16 type): the sum fits int32
        total = f"(int32_t){terms[0]} + (int32_t){terms[1]}"
        tops = [self.bound.get(v) for v in n.inputs]
        if (all(t is not None and self.rep[v].scale == T.scale for t, v in zip(tops, n.inputs))
                and sum(tops) <= min(T.hi, -T.lo)):
            # both terms matmul results at T's scale, their proven bounds leave the sum in range
            self.bound[n.outputs[0]] = sum(tops)
            self.define(n.outputs[0], T, size, f"({T.ctype})({total})")
            return
        self.define(n.outputs[0], T, size, f"({T.ctype})slimedge_sat({total}, {T.lo}, {T.hi})")

    def _const_rep(self, value: str) -> Rep:
        """The Rep :meth:`operand` gives a constant in a product (without writing its array)."""
        top = float(np.abs(self.g.initializers[value]).max())
        return Q15 if top <= 1.0 else i16(top / fx.Q15_MAX)

    def mul(self, n: ir.Node) -> None:
        consts = [v in self.g.initializers for v in n.inputs]
        ra, rb = (self._const_rep(v) if c else self.rep[v] for v, c in zip(n.inputs, consts))
        out_v = n.outputs[0]
        T = self.target.get(out_v) or (Q15 if ra.scale * (2 ** ra.bits) <= 1.0001
                                       and rb.scale * (2 ** rb.bits) <= 1.0001 else Z)
        size = self.size(out_v)
        if consts.count(True) == 1:  # a value times a constant: the constant folds into the multiplier
            k = consts.index(True)
            var, vrep = self.operand(n.inputs[1 - k])
            w = self.g.initializers[n.inputs[k]].astype(np.float64).ravel()
            fit = fx.multipliers32(w * vrep.scale / T.scale, vmax(vrep))
            if fit is not None:
                Ms, r, err = fit
                self.counted(32, err)
                cname, what = n.inputs[k], n.inputs[k]
                if len(Ms) == 1:  # a fixed gate (f = 0.6): its multiplier named as such
                    what = f"{cname} = {float(w[0]):.6g}"
                    name = self.names.get(cname, "_mult")
                    shift = self.names.get(cname, "_shift")
                    self.arrays.append(f"enum {{ {name} = {src.c_int(Ms[0])}, {shift} = {r} }}; "
                                       f"/* {what}, times {n.inputs[1 - k]}'s scale over "
                                       f"{out_v}'s */\n")
                    m = lambda i: name  # noqa: E731
                else:
                    ctype = "int16_t" if max(abs(v) for v in Ms) <= fx.Q15_MAX else "int32_t"
                    name = self.const(ctype, np.array(Ms, np.int64),
                                      f"{cname} ({w.size},) folded into multipliers, shift "
                                      f"{r}", cname + "_mult")
                    shift = self.names.get(cname, "_shift")
                    self.arrays.append(f"enum {{ {shift} = {r} }};\n")
                    m = lambda i: f"{name}[{i}]"  # noqa: E731
                self.define(out_v, T, size, f"({T.ctype})slimedge_sat(slimedge_rq({var('i')}, "
                            f"{m('i')}, {shift}), {T.lo}, {T.hi})")
                return
        (ea, ra), (eb, rb) = (self.operand(v) for v in n.inputs)
        top = vmax(ra) * vmax(rb)
        wide = "int32_t" if top <= fx.INT32_MAX else "int64_t"
        prod = Rep(wide, ra.scale * rb.scale, -top, top, ra.bits + rb.bits)
        self.define(out_v, T, size, self.conv(f"({wide}){ea('i')} * ({wide}){eb('i')}", prod, T,
                                              out_v, top))

    def gate(self, fn: str):
        def emit(n: ir.Node) -> None:
            e, rep = self.operand(n.inputs[0])
            z = self.conv(e("i"), rep, Z, f"{n.inputs[0]}_to_q16")
            T = self.target.get(n.outputs[0], Q15)
            size = self.size(n.outputs[0])
            self.define(n.outputs[0], T, size, self.conv(f'slimedge_{fn}_q15({z})', Q15, T,
                                                         n.outputs[0]))
        return emit

    def clip(self, n: ir.Node) -> None:
        """min(max(a, lo), hi), saturating: the result goes to Q15 where both bounds lie within
        [-1, 1] (a gate), else keeps a's scale; the bounds (rounded to the result's scale) are
        the saturation of the conversion itself, so a clip costs no more than a rescaling."""
        e, rep = self.operand(n.inputs[0])
        lo, hi = n.attrs["kernel"]["lo"], n.attrs["kernel"]["hi"]
        gate = lo is not None and hi is not None and max(abs(lo), abs(hi)) <= 1.0
        wide = rep if rep.ctype == "int32_t" else Rep("int32_t", rep.scale, rep.lo, rep.hi, rep.bits)
        T = self.target.get(n.outputs[0], Q15 if gate else wide)
        lo_q = T.lo if lo is None else max(T.lo, min(T.hi, int(round(lo / T.scale))))
        hi_q = T.hi if hi is None else max(T.lo, min(T.hi, int(round(hi / T.scale))))
        bounded = Rep(T.ctype, T.scale, lo_q, hi_q, max(abs(lo_q), abs(hi_q), 1).bit_length())
        if rep.scale == T.scale:
            v = f"({T.ctype})slimedge_sat({e('i')}, {lo_q}, {hi_q})"
        else:
            v = self.conv(e("i"), rep, bounded, n.outputs[0])
        self.define(n.outputs[0], T, self.size(n.outputs[0]), v)

    def split(self, n: ir.Node) -> None:
        base, offset, rep = self.expr[n.inputs[0]], 0, self.rep[n.inputs[0]]
        for o, s in zip(n.outputs, n.attrs["kernel"]["sizes"]):
            self.expr[o] = base if offset == 0 else f"({base} + {offset})"
            self.rep[o] = rep
            offset += int(s)

    def unstack(self, n: ir.Node) -> None:
        (state,) = n.inputs
        for k, o in enumerate(n.outputs):
            self.expr[o] = f"{state}q" if k == 0 else f"({state}q + {k} * ld)"
            self.rep[o] = self.state[state][k]

    @staticmethod
    def state_dst(state: str, k: int) -> str:
        return f"{state}q_out" if k == 0 else f"({state}q_out + {k} * ld)"

    def stack(self, n: ir.Node) -> None:
        state = {"h_next": "h", "c_next": "c"}[n.outputs[0]]
        for k, v in enumerate(n.inputs):
            if v in self.stored:
                continue
            dst = self.state_dst(state, k)
            e, rep = self.operand(v)
            self.deferred.append(f"    for (int i = 0; i < {self.size(v)}; i++) "
                                 f"{dst}[i] = "
                                 f"{self.conv(e('i'), rep, self.state[state][k], f'{v}_to_{state}{k}')};")

    def identity(self, n: ir.Node) -> None:
        self.expr[n.outputs[0]] = self.expr[n.inputs[0]]
        self.rep[n.outputs[0]] = self.rep[n.inputs[0]]

    def emit(self, nodes: list[ir.Node]) -> None:
        """Consecutive element-wise ops of one size run as one loop over the elements (no
        temporary arrays but for what later ops read, see :mod:`.fusion`); the others as they
        come. The matvecs share one scratch array, declared first."""
        self.pairs = fusion.matmul_sums(nodes)
        groups = fusion.plan(nodes, self.size)
        self.walk(nodes, groups, OPS)
        e, rep = self.operand("y")
        self.deferred.append(f"    for (int i = 0; i < {self.g.output_size}; i++) "
                             f"yq[i] = {self.conv(e('i'), rep, Z, 'y_to_q16')};")
        if self.matvec_scratch:
            words = self.matvec_scratch
            self.lines.insert(0, f"    int32_t scratch[{words}]; /* the matvec kernels' */")
            self.scratch_bytes += 4 * words


ELEMENTWISE = fusion.ELEMENTWISE
OPS = {
    "matmul": _IntRow.matmul, "add": _IntRow.add, "mul": _IntRow.mul,
    "sigmoid": lambda r, n: r.gate("sigmoid")(n),
    "tanh": lambda r, n: r.gate("tanh")(n),
    "clip": _IntRow.clip, "split": _IntRow.split, "unstack": _IntRow.unstack,
    "stack": _IntRow.stack, "identity": _IntRow.identity,
}
assert set(OPS) == set(ir.OPS), "every IR op needs an integer C mapping"


# ---- the files ------------------------------------------------------------------------------------
def _api_stack(graph: ir.Graph, row: _IntRow, fl) -> int:
    """Bytes of arrays a float-API step has on the stack: the integer row's, the normalised
    frame's, and the wrapper's int8 frame and integer state and output."""
    m, n, L, K = graph.input_size, graph.hidden_size, graph.num_layers, graph.output_size
    return row.scratch_bytes + fl.scratch_bytes + m + 3 * L * n + 4 * K


def generate(graph: ir.Graph, prefix: str, *, header: str, splits=None,
             samples: int | None = DEFAULT_CALIBRATION_SAMPLES, seed: int = 0,
             ranges: dict | None = None) -> tuple[str, str, dict]:
    """The ``.c`` and ``.h`` of the full-integer step of ``graph`` (unfolded: the front-end's
    nodes become ``PREFIX_quantize_input``, in float), and the export section (scales, error bounds, the
    calibration). ``ranges`` (value -> (min, max)) skips calibration; else ``splits.train`` is
    stepped through the float model."""
    if ranges is None:
        if splits is None:
            raise UsageError("the full-integer C export calibrates its scales on real data, and "
                             "this model records no data set; give its data (--data)")
        n_train = len(splits["train"])
        calibration = {"split": "train", "seed": seed, "state_headroom": STATE_HEADROOM,
                       "sequences": n_train if samples is None else min(int(samples), n_train)}
        ranges = calibrate(graph, splits["train"], samples=samples, seed=seed)
    else:
        calibration = {"ranges": "given by the caller", "state_headroom": STATE_HEADROOM}
    xin = graph.features  # the front-end's output: the integer step's input
    s_x, s_h, s_c = scales(graph, ranges, xin)
    names = src.Names()
    row = _IntRow(graph, prefix, ranges, xin, s_x, s_h, s_c, names)
    row.emit(graph.model_nodes())
    fl = emit_row.Row(graph, prefix, "float", names)  # the front-end, in float
    for n in graph.frontend_nodes():
        emit_row.OPS[n.op](fl, n)
    bounds = dict(fx.error_bounds())
    info = {"weights": "int8 symmetric, one scale per output row (point-wise u: int16)",
            "activations": "int8 x and h, int16 cell state, int32 Q16 pre-activations, Q15 gates",
            "arithmetic": "integer only in PREFIX_step_q: int32 products and rescaling where the "
                          "bounds prove it safe, else int64; SMLAD dot products on cores with "
                          "the ARM DSP extension (same integers)",
            "rescaling": dict(row.rescale),
            "scales": {"x": s_x, "h": s_h, "c": s_c, "y": Z.scale},
            "nonlinearities": {"method": f"tanh table of {fx.TANH_ENTRIES} int16 entries "
                                         f"(step 1/64, 0..8), linear interpolation; "
                                         f"sigmoid(z) = (1 + tanh(z/2))/2",
                               "max_abs_error": bounds},
            "calibration": calibration,
            "weight_bytes": row.weight_bytes + fl.weight_bytes,
            "stack_bytes": _api_stack(graph, row, fl) + src.FRAME_BYTES}
    info["weights_sha256"] = src.digest(row.arrays + fl.arrays)
    meta = src.export_meta(graph, prefix, "int8", **info)
    c_text, h_text = files(graph, prefix, header, meta, row, fl, xin, s_x, s_h, s_c,
                           _api_stack(graph, row, fl))
    return c_text, h_text, {**meta["export"], "ranges": {k: list(v) for k, v in ranges.items()}}


__all__ = ["generate", "OPS", "Rep", "DEFAULT_CALIBRATION_SAMPLES", "STATE_HEADROOM"]
