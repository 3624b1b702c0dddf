"""Numba engine for the fused SLIM loop on the CPU: each step's element-wise work compiled into one pass.

The torch engine (``fused_cpu``) issues every step as a handful of tensor operations, each a pass
over a (batch, slots, n) slice too large for the cache, plus its dispatch. This engine runs the same
arithmetic as one compiled loop over the batch rows: for each row it adds the u ⊙ h terms, activates
every slot, updates c and h (forward), or computes every slot's pre-activation gradient, dc and the
u part of dh (backward), while the row's k·n values sit in the L1 cache (with one learned slot and
no padding, r rows at once: :func:`rows_per_pass`). Where no slot has a full
recurrent matrix U (LSTM10, LSTM11, LSTM_C6, user variants of that shape) the whole time loop is
one call; otherwise each step is one ``addmm`` (torch's BLAS) plus one call.

Why written here: numba compiles the loops (no C toolchain at run time), but neither it nor torch
has a vectorisable tanh or sigmoid for float32 (libm is scalar, about 20× slower than the loop
around it). Float32 uses :func:`tanh` below, the [7/6] Padé approximant from Lambert's continued
fraction of tanh applied to x/2 and one double-angle step, so it needs no fitted constants; its
largest error is below 3e-7 (``tests/test_fused.py`` measures it against NumPy's float64 tanh
over [-20, 20]), sigmoid(x) = (1 + tanh(x/2)) / 2. Float64 uses libm's tanh and exp.

It plugs into ``fused_cpu._FusedLayer`` as the engine ``"numba"`` (``fused_cpu.ENGINES``) with the
torch engine's interface and slot order (:class:`fused_cpu.Plan`); ``SlimLSTM`` picks it for CPU
float32 tensors where numba is installed. The compiled loops run on one thread. Importing this module
without numba raises ImportError.
"""
from __future__ import annotations

import functools
import math

import numba
import numpy as np
import torch

from . import fused_cpu

_KIND = {"sigmoid": 0, "hard_sigmoid": 1, "tanh": 2, "relu": 3}

# tanh z ~ z·P(z²)/Q(z²) for |z| <= 4.5, the continued fraction z/(1 + z²/(3 + z²/(5 + ...)))
# cut after the term 13 (exact integers); tanh x = 2t/(1 + t²) with t = tanh(x/2) extends it to
# |x| <= 9, beyond which float32's tanh is ±1 to within rounding.
_P = (135135.0, 17325.0, 378.0, 1.0)
_Q = (135135.0, 62370.0, 3150.0, 28.0)
_CLIP = 9.0


def supports(dtype: torch.dtype) -> bool:
    """Whether ``SlimLSTM`` picks this engine for CPU tensors of ``dtype``: float32 only. The
    kernels serve float64 too (the tests gradcheck them in float64), but float64 is for checking,
    not for speed, and each structure's first use costs seconds of compilation."""
    return dtype == torch.float32


@functools.cache
def _kernels(dtype: np.dtype, gate_kind: int, kind: int, learned: tuple[bool, bool, bool],
             filled: tuple[bool, bool, bool, bool], pointwise: tuple[bool, bool, bool, bool],
             biased: tuple[bool, bool, bool, bool]):
    """The forward and backward loops for one dtype, pair of activations, set of learned gates
    i, f, o, and sets of roles i, f, o, c whose A holds a part of the pre-activation (W·x or
    U·h: ``filled``), that have a point-wise u, and that have a b (compile-time constants:
    float32 arithmetic stays float32, the loops have no branches, and a fixed gate or a missing
    term costs nothing)."""
    F = np.dtype(dtype).type
    FAST = F is np.float32
    ZERO, HALF, ONE, TWO, FIFTH = F(0), F(0.5), F(1), F(2), F(0.2)
    HALF_CLIP = F(_CLIP / 2)
    P0, P1, P2, P3 = (F(c) for c in _P)
    Q0, Q1, Q2, Q3 = (F(c) for c in _Q)
    jit = functools.partial(numba.njit, fastmath=True, nogil=True, error_model="numpy")

    @jit(inline="always")
    def tanh(x):
        if FAST:
            z = min(max(x * HALF, -HALF_CLIP), HALF_CLIP)
            y = z * z
            t = z * (((P3 * y + P2) * y + P1) * y + P0)
            q = ((Q3 * y + Q2) * y + Q1) * y + Q0
            return TWO * t * q / (q * q + t * t)
        return math.tanh(x)

    def activation(which):
        @jit(inline="always")
        def act(x):
            if which == 0:
                if FAST:
                    return HALF + HALF * tanh(x * HALF)
                return ONE / (ONE + math.exp(-x))
            if which == 1:
                return min(max(FIFTH * x + HALF, ZERO), ONE)
            if which == 2:
                return tanh(x)
            return max(x, ZERO)

        @jit(inline="always")
        def grad(a):
            """act'(z) from a = act(z); at a kink torch's choice (relu: 0 at 0; hard sigmoid: 0
            where clipped, 0.2 strictly inside)."""
            if which == 0:
                return a * (ONE - a)
            if which == 1:
                return FIFTH if ZERO < a < ONE else ZERO
            if which == 2:
                return ONE - a * a
            return ONE if a > ZERO else ZERO
        return act, grad

    sig, sig_grad = activation(gate_kind)
    act, act_grad = activation(kind)

    LI, LF, LO = learned
    HI, HF, HO, HC = filled
    UI, UF, UO, UC = pointwise
    BI, BF, BO, BC = biased

    # Each loop below touches few arrays: LLVM vectorises a loop only while it can rule out
    # overlaps between everything it stores to and reads, and gives up on bigger loops.
    @jit(inline="always")
    def activate(r, has_input, has_b, bias, has_u, u, H, gate):
        """r = act(r + b + u ⊙ h) in place (r's part taken as 0 without one)."""
        for j in range(r.shape[0]):
            z = r[j] if has_input else ZERO
            if has_b:
                z += bias[j]
            if has_u:
                z += u[j] * H[j]
            r[j] = sig(z) if gate else act(z)

    @jit(inline="always")
    def sums(z, has_u, H, dbr, dur):
        """A slot's gradient z into its u and b sums."""
        if has_u:
            for j in range(z.shape[0]):
                dur[j] += z[j] * H[j]
                dbr[j] += z[j]
        else:
            for j in range(z.shape[0]):
                dbr[j] += z[j]

    @jit
    def forward(A, ur, br, h0, S, C, G, mask, t0, t1, slot, const):
        """Steps t0..t1-1. A (T, B, k, n) holds each slot's W·x (its U·h term added; anything
        where the slot has neither W nor U) and is activated in place; writes S[t] (h),
        C[t + 1] (c) and G[t] (g(c); G may be S where o = 1). Per role r = i, f, o, c: slot[r]
        its slot (0 for a fixed gate, unused), ur[r] and br[r] its u and b (zeros without),
        const[4 + r] the value of a fixed gate."""
        B = A.shape[1]
        pi, pf, po, pc = slot[0], slot[1], slot[2], slot[3]
        ia, fa, oa = const[4], const[5], const[6]
        has_mask = mask.shape[0] > 1 or mask.shape[1] > 1
        same = G.ctypes.data == S.ctypes.data  # o = 1: h is g(c)
        for t in range(t0, t1):
            Hs = S[t - 1] if t > 0 else h0
            for b in range(B):
                H, c, cn, g, s, Ab = Hs[b], C[t, b], C[t + 1, b], G[t, b], S[t, b], A[t, b]
                if has_mask and not mask[t, b]:  # past the sequence's end: the state is carried
                    cn[:] = c
                    s[:] = H
                    # defined, should the torch engine's backward read A
                    if LI and not HI:
                        Ab[pi, :] = ZERO
                    if LF and not HF:
                        Ab[pf, :] = ZERO
                    if LO and not HO:
                        Ab[po, :] = ZERO
                    if not HC:
                        Ab[pc, :] = ZERO
                    continue
                ri, rf, ro, rc = Ab[pi], Ab[pf], Ab[po], Ab[pc]
                if LI:
                    activate(ri, HI, BI, br[0], UI, ur[0], H, True)
                if LF:
                    activate(rf, HF, BF, br[1], UF, ur[1], H, True)
                if LO:
                    activate(ro, HO, BO, br[2], UO, ur[2], H, True)
                activate(rc, HC, BC, br[3], UC, ur[3], H, False)
                n = rc.shape[0]
                if same and not (LF or LI):  # fixed gates, h = g(c) (LSTM6, LSTM_C6): one pass
                    for j in range(n):
                        x = fa * c[j] + ia * rc[j]
                        cn[j] = x
                        s[j] = act(x)
                    continue
                if LF and LI:
                    for j in range(n):
                        cn[j] = rf[j] * c[j] + ri[j] * rc[j]
                elif LF:
                    for j in range(n):
                        cn[j] = rf[j] * c[j] + ia * rc[j]
                elif LI:
                    for j in range(n):
                        cn[j] = fa * c[j] + ri[j] * rc[j]
                else:
                    for j in range(n):
                        cn[j] = fa * c[j] + ia * rc[j]
                if LO:
                    for j in range(n):
                        y = act(cn[j])
                        g[j] = y
                        s[j] = ro[j] * y
                elif same:
                    for j in range(n):
                        s[j] = act(cn[j])
                else:
                    for j in range(n):
                        y = act(cn[j])
                        g[j] = y
                        s[j] = oa * y

    @jit
    def backward(A, S, C, G, ur, h0, dout, dh, dc, dZ, dhp, mask, t0, t1, slot, const, scratch,
                 du, db):
        """Steps t1-1 down to t0: from dh, dc (the gradients of h and c after each step; dh
        without the step's output gradient dout[t]) writes dZ[t, :, q] (slot q's pre-activation
        gradient) for the roles with slot[8 + r] set (a W or U term needs it; the others go to
        scratch), adds u's and b's gradients per role to du and db (float64), updates dc in place
        and writes dhp, the gradient of h before the step without its U·h part (dhp may be dh)."""
        B = A.shape[1]
        pi, pf, po, pc = slot[0], slot[1], slot[2], slot[3]
        ki, kf, ko, kc = slot[8], slot[9], slot[10], slot[11]
        ia, fa, oa = const[4], const[5], const[6]
        has_mask = mask.shape[0] > 1 or mask.shape[1] > 1
        has_dout = dout.shape[0] > 1 or dout.shape[1] > 1
        dcs = scratch[4]
        # u's and b's sums over one step's rows in the kernels' dtype (vectorised), then added
        # to the float64 totals once per step
        dbt, dut = scratch[5:9], scratch[9:13]
        for t in range(t1 - 1, t0 - 1, -1):
            Hs = S[t - 1] if t > 0 else h0
            dbt[:, :] = ZERO
            dut[:, :] = ZERO
            for b in range(B):
                dhr, dcr, out = dh[b], dc[b], dhp[b]
                if has_mask and not mask[t, b]:  # the gradient passes to the carried state
                    dZ[t, b, :, :] = ZERO
                    out[:] = dhr
                    continue
                if has_dout:
                    dhr += dout[t, b]
                Ab, Zb = A[t, b], dZ[t, b]
                H, c, g = Hs[b], C[t, b], G[t, b]
                ri, rf, ro, rc = Ab[pi], Ab[pf], Ab[po], Ab[pc]
                zi = Zb[pi] if ki else scratch[0]
                zf = Zb[pf] if kf else scratch[1]
                zo = Zb[po] if ko else scratch[2]
                zc = Zb[pc] if kc else scratch[3]
                n = rc.shape[0]
                if LO:
                    for j in range(n):
                        dcs[j] = dhr[j] * ro[j] * act_grad(g[j]) + dcr[j]
                    for j in range(n):
                        zo[j] = dhr[j] * g[j] * sig_grad(ro[j])
                else:
                    for j in range(n):
                        dcs[j] = dhr[j] * oa * act_grad(g[j]) + dcr[j]
                if LF:
                    for j in range(n):
                        zf[j] = dcs[j] * c[j] * sig_grad(rf[j])
                    for j in range(n):
                        dcr[j] = dcs[j] * rf[j]
                else:
                    for j in range(n):
                        dcr[j] = dcs[j] * fa
                if LI:
                    for j in range(n):
                        zi[j] = dcs[j] * rc[j] * sig_grad(ri[j])
                    for j in range(n):
                        zc[j] = dcs[j] * ri[j] * act_grad(rc[j])
                else:
                    for j in range(n):
                        zc[j] = dcs[j] * ia * act_grad(rc[j])
                # dh before the step through the u terms, in one pass (after dhr's last use:
                # out may be dhr)
                ui, uf, uo, uc = ur[0], ur[1], ur[2], ur[3]
                for j in range(n):
                    acc = zc[j] * uc[j] if UC else ZERO
                    if LI and UI:
                        acc += zi[j] * ui[j]
                    if LF and UF:
                        acc += zf[j] * uf[j]
                    if LO and UO:
                        acc += zo[j] * uo[j]
                    out[j] = acc
                sums(zc, UC, H, dbt[3], dut[3])
                if LI:
                    sums(zi, UI, H, dbt[0], dut[0])
                if LF:
                    sums(zf, UF, H, dbt[1], dut[1])
                if LO:
                    sums(zo, UO, H, dbt[2], dut[2])
            for q in range(4):
                for j in range(dbt.shape[1]):
                    db[q, j] += dbt[q, j]
                    du[q, j] += dut[q, j]

    return forward, backward


_ROLES = ("i", "f", "o", "c")


def _where(p: fused_cpu.Plan) -> list[int]:
    """The slot of each role i, f, o, c (-1 for a fixed gate)."""
    return [p.gate[r] if isinstance(p.gate[r], int) else -1 for r in "ifo"] + [p.k - 1]


def _roles(p: fused_cpu.Plan, dtype) -> tuple[np.ndarray, np.ndarray]:
    """The kernels' description of the slots per role i, f, o, c (see ``forward``)."""
    empty = empty_slots(p)
    keep = set(p.pos["W"]) | set(p.pos["U"])
    where = _where(p)
    slot = np.array([max(q, 0) for q in where] + [q >= 0 and q not in empty for q in where] +
                    [q in keep for q in where], dtype=np.int64)
    const = np.array([float(q >= 0) for q in where] +
                     [0.0 if q >= 0 else float(p.gate[r]) for r, q in zip(_ROLES, where)],
                     dtype=dtype)
    return slot, const


def _has(p: fused_cpu.Plan, term: str) -> tuple[bool, ...]:
    """Per role i, f, o, c: whether it has ``term``."""
    return tuple(q in p.pos[term] for q in _where(p))


def _role_index(p: fused_cpu.Plan, term: str) -> np.ndarray:
    """The role (row of the kernels' (4, n) arrays) of each slot with ``term``, function order."""
    return np.array([_ROLES.index(p.order[q]) for q in p.pos[term]], dtype=np.int64)


def _role_rows(index: np.ndarray, v: torch.Tensor | None, r: int, n: int, dtype) -> np.ndarray:
    """u or b per role, repeated r times along a row (4, r·n); zeros for a role without one."""
    out = np.zeros((4, r, n), dtype=dtype)
    if v is not None:
        out[index] = v.detach().numpy()[:, None, :]
    return out.reshape(4, r * n)


def empty_slots(p: fused_cpu.Plan) -> tuple[int, ...]:
    """The slots whose A holds nothing (neither W nor U): this engine adds b itself
    (``fused_cpu.OWN_BIAS``)."""
    filled = set(p.pos["W"]) | set(p.pos["U"])
    return tuple(q for q in range(p.k) if q not in filled)


def _np(t: torch.Tensor | None, dummy: tuple = (), dtype=np.bool_) -> np.ndarray:
    """A tensor's data as an array (shared), or a placeholder of ``dummy``'s rank for None."""
    if t is None:
        return np.zeros(dummy, dtype=dtype)
    return t.detach().contiguous().numpy()


def _compiled(p: fused_cpu.Plan, dtype: np.dtype):
    """The kernels, their slot description and the roles of u's and b's slots for a plan, kept
    on the plan (per dtype)."""
    cache = p.__dict__.setdefault("_numba", {})
    if dtype not in cache:
        slot, const = _roles(p, dtype)
        kernels = _kernels(dtype, _KIND[p.gate_activation], _KIND[p.activation],
                           tuple(isinstance(p.gate[g], int) for g in "ifo"),
                           tuple(bool(v) for v in slot[4:8]),
                           _has(p, "u"), _has(p, "b"))
        cache[dtype] = (kernels, slot, const, _role_index(p, "u"), _role_index(p, "b"))
    return cache[dtype]


# Each loop over a row pays its set-up (overlap checks, the vector loop's entry and tail) once:
# with n = 128 that is about a third of the loop's time. Where one step's plane of every array is
# contiguous (one learned slot: LSTM6, LSTM_C6) and no row is masked, r rows are one row of r·n
# (u repeated r times). Measured at (28, 128, 28, 128), forward and backward kernel time per
# elements a row: 128: 1.17 ms; 512: 0.83; 1,024: 0.80; 4,096: 0.94; 16,384: 1.91 (the backward's
# passes over one row leave the L1 cache).
ROW = 1024


def rows_per_pass(p: fused_cpu.Plan, B: int, mask) -> int:
    """r: how many batch rows the loops take as one (the largest divisor of B with r·n <= ROW)."""
    if p.k != 1 or mask is not None or p.n > ROW:
        return 1
    return _largest_divisor(B, ROW // p.n)


@functools.cache
def _largest_divisor(B: int, most: int) -> int:
    return max(r for r in range(1, min(B, most) + 1) if B % r == 0)


def _merge(a: np.ndarray, r: int) -> np.ndarray:
    """(..., B, n) -> (..., B/r, r·n): r rows as one (a view; ``a`` is contiguous)."""
    return a.reshape(*a.shape[:-2], a.shape[-2] // r, r * a.shape[-1]) if r > 1 else a


def _setup(p: fused_cpu.Plan, A: torch.Tensor, uf, mask, r: int):
    T, B, k, n = A.shape
    An = A.numpy()
    kernels, slot, const, iu, ib = _compiled(p, An.dtype)
    maskn = _np(mask[..., 0] if mask is not None else None, (1, 1))
    ur = _role_rows(iu, uf, r, n, An.dtype)
    if r > 1:  # k = 1: A's (B, 1, n) plane is (B/r, 1, r·n)
        An = An.reshape(T, B // r, 1, r * n)
    return An, kernels, slot, const, ur, maskn, iu, ib


def numba_forward(p, A, Uf, uf, h0, c0, mask, bf):
    """The torch engine's :func:`fused_cpu.torch_forward`, compiled (see the module docstring),
    with b (``bf``) added here: A holds W·x only, and anything in its :func:`empty_slots`."""
    T, B, k, n = A.shape
    r = rows_per_pass(p, B, mask)
    An, (fwd, _), slot, const, ur, maskn, _, ib = _setup(p, A, uf, mask, r)
    br = _role_rows(ib, bf, r, n, An.dtype)
    S, C, G = fused_cpu.states(p, A, mask)
    C[0] = c0
    args = (An, ur, br, _merge(_np(h0), r), *(_merge(t.numpy(), r) for t in (S, C, G)), maskn)
    if Uf is None:
        fwd(*args, 0, T, slot, const)
        return S, C, G
    UfT, AU = Uf.t(), fused_cpu.columns_of_U(p, A).unbind(0)
    hs = (h0, *S.unbind(0))
    for t in range(T):
        AU[t].addmm_(hs[t], UfT)
        fwd(*args, t, t + 1, slot, const)
    return S, C, G


def numba_backward(p, A, S, C, G, Uf, uf, h0, dout, dhT, dcT, mask):
    """The torch engine's :func:`fused_cpu.torch_backward`, compiled; dZ holds only the slots
    with a W or U term, and u's and b's gradients (function order) come computed."""
    T, B, k, n = A.shape
    r = rows_per_pass(p, B, mask)
    An, (_, bwd), slot, const, ur, maskn, iu, ib = _setup(p, A, uf, mask, r)
    dZ = fused_cpu.buffer(p, "dZ", (T, B, k, n), A)
    dh = dhT.clone().contiguous() if dhT is not None else A.new_zeros(B, n)
    dc = dcT.clone().contiguous() if dcT is not None else A.new_zeros(B, n)
    scratch = np.empty((13, r * n), dtype=An.dtype)
    du, db = np.zeros((4, r * n)), np.zeros((4, r * n))
    doutn = _merge(_np(dout), r) if dout is not None else np.zeros((1, 1, 1), An.dtype)
    args = (An, *(_merge(t.numpy(), r) for t in (S, C, G)), ur, _merge(_np(h0), r), doutn)
    dcn, dZn = _merge(dc.numpy(), r), dZ.numpy().reshape(An.shape)
    if Uf is None:
        dhn = _merge(dh.numpy(), r)
        bwd(*args, dhn, dcn, dZn, dhn, maskn, 0, T, slot, const, scratch, du, db)
    else:
        ZU = fused_cpu.columns_of_U(p, dZ).unbind(0)
        spare = torch.empty_like(dh)
        cur, other = (dh, _merge(dh.numpy(), r)), (spare, _merge(spare.numpy(), r))
        for t in range(T - 1, -1, -1):
            bwd(*args, cur[1], dcn, dZn, other[1], maskn, t, t + 1, slot, const, scratch, du, db)
            other[0].addmm_(ZU[t], Uf)
            cur, other = other, cur
        dh = cur[0]
    du_t, db_t = (torch.from_numpy(g.reshape(4, r, n).sum(1)[i].astype(An.dtype)) if len(i) else None
                  for g, i in ((du, iu), (db, ib)))
    return dZ, dh, dc, du_t, db_t


fused_cpu.ENGINES["numba"] = (numba_forward, numba_backward)
fused_cpu.OWN_BIAS.add("numba")

__all__ = ["supports", "empty_slots", "numba_forward", "numba_backward"]
