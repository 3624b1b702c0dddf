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

A matmul is an int32 dot product of int8 weights and the int8 input, rescaled per output row to
Q16 by an integer multiplier and shift (:mod:`.fixedpoint`), in int32 where the weights bound the
accumulator enough. On cores with the ARM DSP extension it runs SMLAD on SXTB16-extended pairs,
three rows sharing each load of the input pairs; elsewhere (Cortex-M0+, the host) the input is
widened to int32 words once (one load each, with an immediate offset, on ARMv6-M) and two rows
share each, four inputs per loop turn. Both sum the same exact products. Element-wise products
and conversions rescale the same way (a constant factor folded into the multiplier), in int32
where the bounds prove it safe, else int64; every result saturates to its type, except where the
weights' bound proves it cannot leave the range (a matmul row, the sum of two matmul results).
Consecutive element-wise ops (pre-activation sum -> gates -> cell update -> g(c') -> int8 h) run
as one loop over the elements with scalar temporaries, storing only what later ops read, and
writing the new state there when no later op reads the old one. Gate nonlinearities are one
513-entry tanh table with linear interpolation, branch-free (the sigmoid reads it at z/2), max
error 4.7e-5 (tanh) and 4.2e-5 (sigmoid) over every input, checked exhaustively
(:func:`fixedpoint.error_bounds`).

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
from dataclasses import dataclass

import numpy as np

from ... import activations, ir
from ...errors import UsageError
from . import emit_float, emit_int_helpers
from . import fixedpoint as fx
from . import source as src
from .emit_int_files import files

# calibration's module (older trees kept it in quantize)
try:
    from ..calibration import calibrate
except ImportError:
    from ..quantize import calibrate

DEFAULT_CALIBRATION_SAMPLES = 128
STATE_HEADROOM = 4.0  # int16 cell state: calibrated range x 4 (a stream that never resets wanders)


@dataclass(frozen=True)
class Rep:
    """An integer representation: C type, scale (real = int * scale), saturation range, and
    magnitude bits (|v| < 2^bits)."""

    ctype: str
    scale: float
    lo: int
    hi: int
    bits: int


def i8(scale: float) -> Rep:
    return Rep("int8_t", float(scale), -127, 127, 7)


def i16(scale: float) -> Rep:
    return Rep("int16_t", float(scale), -fx.Q15_MAX, fx.Q15_MAX, 15)


BYTES = {"int8_t": 1, "int16_t": 2, "int32_t": 4}
TYPE_MAX = {"int8_t": 128, "int16_t": 32768}  # |v| bound of a state or input an API caller gives


def vmax(rep: Rep) -> int:
    """The largest |value| an expression held as ``rep`` can have (its type's for int8/int16,
    which callers of the integer API fill; its saturation range for wider values)."""
    return TYPE_MAX.get(rep.ctype) or max(abs(rep.lo), abs(rep.hi)) or 2 ** rep.bits - 1
Q15 = i16(2.0 ** -fx.GATE_FRAC_BITS)
Z = Rep("int32_t", 2.0 ** -fx.Z_FRAC_BITS, -fx.Z_LIMIT, fx.Z_LIMIT, 30)


def _absmax(r) -> float:
    return max(abs(float(r[0])), abs(float(r[1])))


class _IntRow:
    """The integer row function of one graph: C lines, each value's expression and Rep."""

    def __init__(self, graph: ir.Graph, prefix: str, ranges: dict, xin: str,
                 s_x: float, s_h: list[float], s_c: list[float]) -> None:
        self.g, self.p, self.ranges = graph, prefix, ranges
        self.lines: list[str] = []
        self.arrays: list[str] = []
        self.deferred: list[str] = []
        self.expr: dict[str, str] = {xin: "xq"}
        self.rep: dict[str, Rep] = {xin: i8(s_x)}
        self.helpers: set[str] = set()
        self.tmp = self.narr = 0
        self.weight_bytes = self.scratch_bytes = 0
        self.rescale = {"int32": 0, "int64": 0, "max_relative_factor_error": 0.0}
        self.target: dict[str, Rep] = {}
        self.group: dict | None = None  # the fused element-wise loop being written
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
        name = f"t{self.tmp}"
        self.tmp += 1
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
        name = f"v{self.tmp}"
        self.tmp += 1
        self.group["body"].append(f"        const {rep.ctype} {name} = {expr}; /* {value} */")
        self.scalar[value], self.rep[value] = name, rep
        if value in self.group["escapes"]:
            arr = self.local(value, rep, size)
            self.group["body"].append(f"        {arr}[i] = {name};")
        if value in self.group["stores"]:  # a new state, written once the element is done
            dst, srep = self.group["stores"][value]
            self.group["tail"].append(f"        {dst}[i] = {self.conv(name, rep, srep)};")
            self.stored.add(value)

    def const(self, ctype: str, values: np.ndarray, comment: str) -> str:
        name = f"{self.p}_q{self.narr}"
        self.narr += 1
        self.arrays.append(src.array(ctype, name, values, comment=comment))
        self.weight_bytes += values.size * BYTES[ctype]
        return name

    def counted(self, width: int, err: float) -> None:
        self.rescale[f"int{width}"] += 1
        self.rescale["max_relative_factor_error"] = max(self.rescale["max_relative_factor_error"],
                                                        float(err))

    def conv(self, e: str, frm: Rep, to: Rep, top: int | None = None) -> str:
        """Expression ``e`` (held as ``frm``, |e| <= ``top``) rescaled and saturated to ``to``:
        in int32 where the bound allows (:func:`fx.multipliers32`), else in int64."""
        if frm == to:
            return e
        top = vmax(frm) if top is None else top
        fit = fx.multipliers32([frm.scale / to.scale], top) if top <= fx.INT32_MAX else None
        if fit is not None:
            (M,), r, err = fit
            self.helpers.update(("rq", "sat"))
            self.counted(32, err)
            return f"({to.ctype}){self.p}_sat({self.p}_rq({e}, {M}, {r}), {to.lo}, {to.hi})"
        M, r = fx.multiplier(frm.scale / to.scale, frm.bits)
        self.helpers.update(("rq64", "sat64"))
        self.counted(64, 2.0 ** -(max(M.bit_length(), 1) - 1) if M else 0.0)
        return f"({to.ctype}){self.p}_sat64({self.p}_rq64({e}, {M}, {r}), {to.lo}, {to.hi})"

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
        name = self.const(ctype, q, f"{value} ({w.size},) at scale {rep.scale:.6g}")
        return (lambda i: f"{name}[{i}]"), rep

    def size(self, value: str) -> int:
        return int(self.g.shapes[value][-1])

    def int8_input(self, value: str) -> tuple[str, Rep]:
        """The matmul operand ``value`` as an int8 array (converted when it is held wider)."""
        rep = self.rep[value]
        if rep.ctype == "int8_t":
            return self.expr[value], rep
        to = i8(_absmax(self.ranges[value]) / 127.0 or 1.0)
        a, _ = self.operand(value)
        name = f"t{self.tmp}"
        self.tmp += 1
        size = self.size(value)
        self.lines.append(f"    int8_t {name}[{size}]; /* {value} as int8 */")
        self.scratch_bytes += size
        self.lines.append(f"    for (int i = 0; i < {size}; i++) {name}[i] = {self.conv(a('i'), rep, to)};")
        return name, to

    # ---- ops --------------------------------------------------------------------------------
    def matmul(self, n: ir.Node) -> None:
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
            rq, sat, wide = f"{self.p}_rq", f"{self.p}_sat", 32
            self.helpers.add("rq")
        else:
            acc_bits = math.ceil(math.log2(127 * 127 * n_in + 1))
            Ms, R = fx.multipliers(ratios, acc_bits)
            err = 2.0 ** -(max(max(Ms).bit_length(), 1) - 1)
            rq, sat, wide = f"{self.p}_rq64", f"{self.p}_sat64", 64
            self.helpers.add("rq64")
        self.counted(wide, err)
        pad = f" (rows padded to {n_pad})" if n_pad != n_in else ""
        wq = self.const("int8_t", qp, f"{wname}: {n_out} x {n_in}{pad}, int8, one scale per row")
        mq = self.const("int32_t", np.array(Ms), f"{wname}: per-row multipliers to Q16, shift {R}")
        b = ""
        if bias:
            bv = self.g.initializers[bias[0]].astype(np.float64)
            bq = np.clip(np.rint(bv / Z.scale), Z.lo, Z.hi).astype(np.int64)
            b = f" + {self.const('int32_t', bq, f'{bias[0]} in Q16')}[i]"
        self.helpers.add("dsp")
        out = self.local(n.outputs[0], Z, n_out)
        P, L, G = self.p, self.lines, n_pad // 4
        # the saturation only where the weights' bound lets a row's result pass Z_LIMIT
        bq_abs = np.abs(bq) if bias else np.zeros(n_out, np.int64)
        row_top = max((128 * int(np.abs(q[i]).sum()) * abs(int(Ms[i])) + (1 << R)) >> R
                      for i in range(n_out)) + int(bq_abs.max()) + 1
        self.bound[n.outputs[0]] = min(row_top, Z.hi)
        value = f"{rq}(acc, {mq}[i], {R}){b}"
        if row_top <= Z.hi:
            store = f"{out}[i] = (int32_t){value};"
        else:
            store = f"{out}[i] = {sat}({value}, {Z.lo}, {Z.hi});"
            self.helpers.add("sat" if wide == 32 else "sat64")

        def rows(first: int, end: int, count: int, dsp: bool) -> None:
            """Rows ``first`` to ``end``, ``count`` at a time: they share each activation load."""
            if first >= end:
                return
            L.append(f"        for (int i = {first}; i < {end}; i += {count}) {{")
            L.append(f"            const int8_t *w = {wq} + (size_t)i * {n_pad};")
            L.append("            int32_t " + ", ".join(f"acc{k} = 0" for k in range(count)) + ";")
            if dsp:
                step = next(u for u in (4, 2, 1) if G % u == 0)  # groups of 4 inputs per turn
                L.append("            const int32_t *p = ap;")
                L.append(f"            for (int g = 0; g < {G}; g += {step}) {{")
                L.append("                int32_t lo, hi, wv;")
                for u in range(step):
                    L.append(f"                lo = p[{2 * u}]; hi = p[{2 * u + 1}];")
                    for k in range(count):
                        L.append(f"                memcpy(&wv, w + {k * n_pad + 4 * u}, 4); "
                                 f"acc{k} = __smlad(__sxtb16(wv), lo, acc{k}); "
                                 f"acc{k} = __smlad({P}_sxtb16_ror8(wv), hi, acc{k});")
                L.append(f"                p += {2 * step}; w += {4 * step};")
                L.append("            }")
            else:
                L.append(f"            for (int j = 0; j < {n_pad}; j += 4) {{")
                L.append("                int32_t a;")
                for u in range(4):
                    L.append(f"                a = a32[j + {u}];" + "".join(
                        f" acc{k} += (int32_t)w[{k * n_pad + u} + j] * a;" for k in range(count)))
                L.append("            }")
            for k in range(count):
                L.append("            " + store.replace("[i]", f"[i + {k}]").replace("(acc,", f"(acc{k},"))
            L.append("        }")

        def all_rows(dsp: bool, most: int) -> None:
            done = 0
            for count in (most, 2, 1):
                if count > most:
                    continue
                end = done + (n_out - done) // count * count
                rows(done, end, count, dsp)
                done = end

        L.append("    {")
        # Cortex-M4/M7/M33 (DSP extension): two multiply-accumulates per SMLAD, int8 pairs
        # sign-extended by SXTB16; the sums are exact, so both paths give the same integers
        L.append(f"#if {P.upper()}_DSP")
        if n_pad != n_in:
            L.append(f"        int8_t a8[{n_pad}];")
            L.append(f"        for (int j = 0; j < {n_pad}; j++) a8[j] = j < {n_in} ? {ae}[j] : 0;")
            a8 = "a8"
        else:
            a8 = ae
        L.append(f"        int32_t ap[{2 * G}]; /* (a0, a2), (a1, a3) of every 4 inputs, int16 pairs */")
        L.append(f"        for (int g = 0; g < {G}; g++) {{")
        L.append("            int32_t x;")
        L.append(f"            memcpy(&x, {a8} + 4 * g, 4);")
        L.append("            ap[2 * g] = __sxtb16(x);")
        L.append(f"            ap[2 * g + 1] = {P}_sxtb16_ror8(x);")
        L.append("        }")
        all_rows(True, 3)
        L.append("#else")
        # elsewhere: the inputs as int32 words (one load each, with an immediate offset, on
        # ARMv6-M), each shared by two rows, four inputs per loop turn; the rows' zero padding
        # meets zero inputs
        L.append(f"        int32_t a32[{n_pad}];")
        L.append(f"        for (int j = 0; j < {n_in}; j++) a32[j] = {ae}[j];")
        if n_pad != n_in:
            L.append(f"        for (int j = {n_in}; j < {n_pad}; j++) a32[j] = 0;")
        self.scratch_bytes += max(2 * n_pad + (n_pad if n_pad != n_in else 0), 4 * n_pad)
        all_rows(False, 2)
        L.append("#endif")
        L.append("    }")

    def add(self, n: ir.Node) -> None:
        T = self.target.get(n.outputs[0], Z)
        terms = []
        for v in n.inputs:
            e, rep = self.operand(v, scale_for_add=T)
            terms.append(self.conv(e("i"), rep, T) if rep.scale != T.scale else e("i"))
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
        self.helpers.add("sat")
        self.define(n.outputs[0], T, size, f"({T.ctype}){self.p}_sat({total}, {T.lo}, {T.hi})")

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
                self.helpers.update(("rq", "sat"))
                if len(Ms) == 1:
                    m = lambda i: src.c_int(Ms[0])  # noqa: E731
                else:
                    ctype = "int16_t" if max(abs(v) for v in Ms) <= fx.Q15_MAX else "int32_t"
                    name = self.const(ctype, np.array(Ms, np.int64),
                                      f"{n.inputs[k]} ({w.size},) folded into multipliers, shift {r}")
                    m = lambda i: f"{name}[{i}]"  # noqa: E731
                self.define(out_v, T, size, f"({T.ctype})"
                            f"{self.p}_sat({self.p}_rq({var('i')}, {m('i')}, {r}), {T.lo}, {T.hi})")
                return
        (ea, ra), (eb, rb) = (self.operand(v) for v in n.inputs)
        top = vmax(ra) * vmax(rb)
        wide = "int32_t" if top <= fx.INT32_MAX else "int64_t"
        prod = Rep(wide, ra.scale * rb.scale, -top, top, ra.bits + rb.bits)
        self.define(out_v, T, size, self.conv(f"({wide}){ea('i')} * ({wide}){eb('i')}", prod, T, top))

    def gate(self, fn: str):
        def emit(n: ir.Node) -> None:
            e, rep = self.operand(n.inputs[0])
            z = self.conv(e("i"), rep, Z)
            self.helpers.add(fn)
            T = self.target.get(n.outputs[0], Q15)
            size = self.size(n.outputs[0])
            self.define(n.outputs[0], T, size, self.conv(f'{self.p}_{fn}({z})', Q15, T))
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
            self.helpers.add("sat")
            v = f"({T.ctype}){self.p}_sat({e('i')}, {lo_q}, {hi_q})"
        else:
            v = self.conv(e("i"), rep, bounded)
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
                                 f"{dst}[i] = {self.conv(e('i'), rep, self.state[state][k])};")

    def identity(self, n: ir.Node) -> None:
        self.expr[n.outputs[0]] = self.expr[n.inputs[0]]
        self.rep[n.outputs[0]] = self.rep[n.inputs[0]]

    def flush(self) -> None:
        """Close the fused element-wise loop: the arrays it fills, then the one loop."""
        if self.group is None:
            return
        g, self.group = self.group, None
        self.scalar.clear()
        self.lines.append(f"    for (int i = 0; i < {g['size']}; i++) {{")
        self.lines.extend(g["body"] + g["tail"])
        self.lines.append("    }")

    def emit(self, nodes: list[ir.Node]) -> None:
        """Consecutive element-wise ops of one size run as one loop over the elements (no
        temporary arrays but for what later ops read); the others as they come."""
        consumers: dict[str, list[int]] = {}
        for k, n in enumerate(nodes):
            for v in n.inputs:
                consumers.setdefault(v, []).append(k)
        runs, k = {}, 0
        while k < len(nodes):
            end = k
            if nodes[k].op in ELEMENTWISE:
                size = self.size(nodes[k].outputs[0])
                while (end + 1 < len(nodes) and nodes[end + 1].op in ELEMENTWISE
                       and self.size(nodes[end + 1].outputs[0]) == size):
                    end += 1
                runs[k] = end
            k = end + 1
        # a new state produced in a fused loop is written there when nothing after that loop
        # reads the old state of its layer (through aliases too): element i of the old state
        # is read, in that loop, only before element i of the new one is written
        prod = {o: k for k, n in enumerate(nodes) for o in n.outputs}
        last_read: dict[tuple[str, int], int] = {}
        for n in nodes:
            if n.op == "unstack":
                for k, o in enumerate(n.outputs):
                    seen, todo, last = set(), [o], -1
                    while todo:
                        v = todo.pop()
                        for c in consumers.get(v, []):
                            last = max(last, c)
                            if nodes[c].op in ("identity", "split") and c not in seen:
                                seen.add(c)
                                todo.extend(nodes[c].outputs)
                    last_read[(n.inputs[0], k)] = last
        state_of = {}
        for n in nodes:
            if n.op == "stack":
                state = {"h_next": "h", "c_next": "c"}[n.outputs[0]]
                for k, v in enumerate(n.inputs):
                    state_of[v] = (state, k)
        end = -1
        for k, n in enumerate(nodes):
            if k in runs:
                self.flush()
                end = runs[k]
                outs = {o for m in nodes[k:end + 1] for o in m.outputs}
                escapes = {o for o in outs if o == "y" or not consumers.get(o)
                           or any(c < k or c > end for c in consumers.get(o, []))}
                stores = {}
                for o in outs:
                    if o in state_of and o in prod and nodes[prod[o]].op in ELEMENTWISE:
                        state, layer = state_of[o]
                        if last_read.get((state, layer), 10 ** 9) <= end and state_of[o] not in [
                                state_of[x] for x in stores]:
                            stores[o] = (self.state_dst(state, layer), self.state[state][layer])
                escapes = {o for o in escapes
                           if o not in stores or any(c < k or c > end
                                                     for c in consumers.get(o, [])
                                                     if nodes[c].op != "stack")}
                self.group = {"size": self.size(n.outputs[0]), "body": [], "escapes": escapes,
                              "stores": stores, "tail": []}
            elif k > end:
                self.flush()
            OPS[n.op](self, n)
        self.flush()
        e, rep = self.operand("y")
        self.deferred.append(f"    for (int i = 0; i < {self.g.output_size}; i++) "
                             f"yq[i] = {self.conv(e('i'), rep, Z)};")


ELEMENTWISE = ("add", "mul", "sigmoid", "tanh", "clip")
OPS = {
    "matmul": _IntRow.matmul, "add": _IntRow.add, "mul": _IntRow.mul,
    "sigmoid": lambda r, n: r.gate("sigmoid")(n),
    "tanh": lambda r, n: r.gate("tanh")(n),
    "clip": _IntRow.clip, "split": _IntRow.split, "unstack": _IntRow.unstack,
    "stack": _IntRow.stack, "identity": _IntRow.identity,
}
assert set(OPS) == set(ir.OPS), "every IR op needs an integer C mapping"


# ---- the files ------------------------------------------------------------------------------------
def _scales(graph: ir.Graph, ranges: dict, xin: str) -> tuple[float, list[float], list[float]]:
    prod = graph.producers()
    h_new, c_new = prod["h_next"].inputs, prod["c_next"].inputs
    h_in = [n for n in graph.nodes if n.op == "unstack" and n.inputs == ("h",)][0].outputs
    c_in = [n for n in graph.nodes if n.op == "unstack" and n.inputs == ("c",)][0].outputs
    g_act = (graph.config.get("lstm") or {}).get("activation", "tanh")
    s_x = _absmax(ranges[xin]) / 127.0 or 1.0
    s_h, s_c = [], []
    for k in range(graph.num_layers):
        top = max(_absmax(ranges[h_in[k]]), _absmax(ranges[h_new[k]]))
        s_h.append(min(top, activations.bound(g_act)) / 127.0 or 1.0)  # |g(.)| bounds h
        cell = [c_in[k], c_new[k]]
        node = prod.get(c_new[k])
        if node is not None and node.op == "add":
            cell += [v for v in node.inputs if v in ranges]
        s_c.append(STATE_HEADROOM * max(_absmax(ranges[v]) for v in cell) / fx.Q15_MAX or 1.0)
    return s_x, s_h, s_c


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
    s_x, s_h, s_c = _scales(graph, ranges, xin)
    row = _IntRow(graph, prefix, ranges, xin, s_x, s_h, s_c)
    row.emit(graph.model_nodes())
    fl = emit_float._Row(graph, prefix, "float")  # the front-end, in float
    for n in graph.frontend_nodes():
        emit_float.OPS[n.op](fl, n)
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
            "stack_bytes": row.scratch_bytes}
    info["weights_sha256"] = src.digest(row.arrays + fl.arrays)
    meta = src.export_meta(graph, prefix, "int8", **info)
    used = emit_int_helpers.helpers(prefix, row.helpers)
    c_text, h_text = files(graph, prefix, header, meta, row, fl, used, xin, s_x, s_h, s_c)
    return c_text, h_text, {**meta["export"], "ranges": {k: list(v) for k, v in ranges.items()}}


__all__ = ["generate", "OPS", "Rep", "DEFAULT_CALIBRATION_SAMPLES", "STATE_HEADROOM"]
