"""Triton engine for the fused SLIM loop (CUDA): a layer's whole sequence as one kernel each way.

Each program owns a tile of (batch row, unit) pairs and runs every time step inside the kernel:
the slots' pre-activations (W·x + b, one matrix product before the kernel) are read once per step
and overwritten with their activations, h and c stay in registers, and S (h after each step),
C (c before/after each step) and G = g(c) are written for the backward. The backward kernel walks
the steps in reverse the same way and writes every slot's pre-activation gradient dZ; the
parameter gradients are then the same products and sums as in ``fused_cpu`` (one per term over
all steps). Without a full recurrent matrix U (LSTM10, LSTM11, LSTM_C6 and user-defined ones whose
slots hold only W, u, b terms or constants) a program is one batch row and up to 128 units. With
U and n <= :data:`MAX_N_IN_KERNEL` (LSTM0-LSTM6 at n = 128) a program is 16 batch rows and every
unit, and computes the U·h products itself (``tl.dot`` with U's (n, n) tile per slot, IEEE float32,
as cuBLAS's default): a batch row's recurrence needs no other program's h, so the sequence is
still one launch, a persistent kernel without grid-wide synchronisation. Above that n a variant
with U runs per step: one ``addmm_`` for the U·h terms (cuBLAS) and one launch of the same
kernels over that step.

It plugs into ``fused_cpu._FusedLayer`` as the engine ``"triton"`` (``fused_cpu.ENGINES``) with the
torch engine's interface and the same slot order (:class:`fused_cpu.Plan`). ``SlimLSTM`` uses it on
CUDA tensors where triton is installed; a kernel that fails to compile on a card (its shared
memory too small for the U tile, say) makes ``fused_cpu`` warn and use the torch engine. On the CPU
the kernels run under Triton's interpreter (``TRITON_INTERPRET=1``), which is how the tests check
them; their speed on a GPU is still to be measured. Importing this module without triton raises
ImportError.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..variants import VariantSpec
from . import fused_cpu

_KIND = {"sigmoid": 0, "hard_sigmoid": 1, "tanh": 2, "relu": 3}
BLOCK = 128  # units per program without U in the kernel
# the largest n whose U·h products run inside the kernels: each program holds one (n, n) tile of U
# per slot and step, 64 KB in float32 at n = 128 (a GPU's shared memory holds 100-228 KB), and 16
# batch rows; above it a variant with U runs per step beside cuBLAS
MAX_N_IN_KERNEL = 128


def supports(spec: VariantSpec, n: int) -> bool:
    """Whether the kernels run this structure's whole sequence at hidden size n in one launch
    each way: no slot has a full recurrent matrix U, or n <= MAX_N_IN_KERNEL; any other runs one
    launch per step beside torch's ``addmm_``."""
    return _one_launch(bool(spec.slots_with("U")), n)


def _one_launch(has_U: bool, n: int) -> bool:
    return not has_U or n <= MAX_N_IN_KERNEL


@triton.jit
def _act(z, KIND: tl.constexpr):
    if KIND == 0:
        a = 1.0 / (1.0 + tl.exp(-z))
    elif KIND == 1:
        a = tl.minimum(tl.maximum(0.2 * z + 0.5, 0.0), 1.0)
    elif KIND == 2:
        a = 1.0 - 2.0 / (tl.exp(2.0 * z) + 1.0)
    else:
        a = tl.maximum(z, 0.0)
    return a


@triton.jit
def _grad(a, KIND: tl.constexpr):
    """act'(z) from a = act(z)."""
    if KIND == 0:
        d = a * (1.0 - a)
    elif KIND == 1:
        d = tl.where((a > 0.0) & (a < 1.0), 0.2, 0.0)
    elif KIND == 2:
        d = 1.0 - a * a
    else:
        d = tl.where(a > 0.0, 1.0, 0.0)
    return d


@triton.jit
def _forward_kernel(A, UW, UF, H0, C0, S, C, G, LEN, T0, T, B, N,
                    K: tl.constexpr, UA: tl.constexpr, UB: tl.constexpr,
                    VA: tl.constexpr, VB: tl.constexpr,
                    PI: tl.constexpr, PF: tl.constexpr, PO: tl.constexpr,
                    CI: tl.constexpr, CF: tl.constexpr, CO: tl.constexpr,
                    SIG: tl.constexpr, ACT: tl.constexpr, HAS_LEN: tl.constexpr,
                    BB: tl.constexpr, BN: tl.constexpr, DOT: tl.constexpr):
    """Steps T0..T0+T-1 for a tile of BB batch rows and BN units. With DOT the tile holds every
    unit (BN >= N) and the U·h terms of the slots VA..VB-1 are computed here (tl.dot with U's
    rows UF), so the whole sequence of a variant with U is one launch."""
    b = tl.program_id(0) * BB + tl.arange(0, BB)[:, None]
    j = tl.program_id(1) * BN + tl.arange(0, BN)[None, :]
    ok = (b < B) & (j < N)
    e = b * N + j
    h = tl.load(H0 + e, mask=ok, other=0.0)
    c = tl.load(C0 + e, mask=ok, other=0.0)
    tl.store(C + e, c, mask=ok)
    if HAS_LEN:
        length = tl.load(LEN + b, mask=b < B, other=0)
    if DOT:  # U_q^T as a (BN, BN) tile: [input unit kk, output unit j] = UF[q·N + j, kk]
        kk = tl.arange(0, BN)[:, None]
        u_at = j * N + kk
        u_ok = (kk < N) & (j < N)
    for t in range(T):
        base = t * B * K * N + b * K * N + j
        i = CI
        f = CF
        o = CO
        for p in tl.static_range(K):
            z = tl.load(A + base + p * N, mask=ok, other=0.0)
            if p >= UA and p < UB:
                z += tl.load(UW + (p - UA) * N + j, mask=j < N, other=0.0) * h
            if DOT:
                if p >= VA and p < VB:
                    ut = tl.load(UF + (p - VA) * N * N + u_at, mask=u_ok, other=0.0)
                    z += tl.dot(h, ut, input_precision="ieee", out_dtype=z.dtype)
            if p == K - 1:
                a = _act(z, ACT)
                cc = a
            else:
                a = _act(z, SIG)
            tl.store(A + base + p * N, a, mask=ok)
            if p == PI:
                i = a
            if p == PF:
                f = a
            if p == PO:
                o = a
        c_new = f * c + i * cc
        if HAS_LEN:
            c_new = tl.where(T0 + t < length, c_new, c)
        g = _act(c_new, ACT)
        h_new = o * g
        if HAS_LEN:
            h_new = tl.where(T0 + t < length, h_new, h)
        tl.store(C + (t + 1) * B * N + e, c_new, mask=ok)
        tl.store(G + t * B * N + e, g, mask=ok)
        tl.store(S + t * B * N + e, h_new, mask=ok)
        h = h_new
        c = c_new


@triton.jit
def _backward_kernel(A, UW, UF, C, G, DOUT, DHT, DCT, DZ, DH0, DC0, LEN, T0, T, B, N,
                     K: tl.constexpr, UA: tl.constexpr, UB: tl.constexpr,
                     VA: tl.constexpr, VB: tl.constexpr,
                     PI: tl.constexpr, PF: tl.constexpr, PO: tl.constexpr,
                     CI: tl.constexpr, CF: tl.constexpr, CO: tl.constexpr,
                     SIG: tl.constexpr, ACT: tl.constexpr, HAS_LEN: tl.constexpr,
                     HAS_DOUT: tl.constexpr, BB: tl.constexpr, BN: tl.constexpr,
                     DOT: tl.constexpr):
    """The steps in reverse; with DOT the dh through U (dZ_q · U_q) is computed here too."""
    b = tl.program_id(0) * BB + tl.arange(0, BB)[:, None]
    j = tl.program_id(1) * BN + tl.arange(0, BN)[None, :]
    ok = (b < B) & (j < N)
    e = b * N + j
    dh = tl.load(DHT + e, mask=ok, other=0.0)
    dc = tl.load(DCT + e, mask=ok, other=0.0)
    if HAS_LEN:
        length = tl.load(LEN + b, mask=b < B, other=0)
    if DOT:  # U_q as a (BN, BN) tile: [output unit jj, input unit j] = UF[q·N + jj, j]
        jj = tl.arange(0, BN)[:, None]
        u_at = jj * N + j
        u_ok = (jj < N) & (j < N)
    for tt in range(T):
        t = T - 1 - tt
        base = t * B * K * N + b * K * N + j
        dS = dh
        if HAS_DOUT:
            d_out = tl.load(DOUT + t * B * N + e, mask=ok, other=0.0)
            if HAS_LEN:
                d_out = tl.where(T0 + t < length, d_out, 0.0)
            dS = dS + d_out
        dhn = dS
        dcn = dc
        if HAS_LEN:
            live = T0 + t < length
            dhn = tl.where(live, dS, 0.0)
            dcn = tl.where(live, dc, 0.0)
        g = tl.load(G + t * B * N + e, mask=ok, other=0.0)
        c_prev = tl.load(C + t * B * N + e, mask=ok, other=0.0)
        cc = tl.load(A + base + (K - 1) * N, mask=ok, other=0.0)
        dG = dhn * CO
        if PO >= 0:
            a_o = tl.load(A + base + PO * N, mask=ok, other=0.0)
            dG = dhn * a_o
            dzo = dhn * g * _grad(a_o, SIG)
            tl.store(DZ + base + PO * N, dzo, mask=ok)
        dcs = dcn + dG * _grad(g, ACT)
        dcc = dcs * CI
        if PI >= 0:
            a_i = tl.load(A + base + PI * N, mask=ok, other=0.0)
            dcc = dcs * a_i
            dzi = dcs * cc * _grad(a_i, SIG)
            tl.store(DZ + base + PI * N, dzi, mask=ok)
        dzc = dcc * _grad(cc, ACT)
        tl.store(DZ + base + (K - 1) * N, dzc, mask=ok)
        dc_new = dcs * CF
        if PF >= 0:
            a_f = tl.load(A + base + PF * N, mask=ok, other=0.0)
            dc_new = dcs * a_f
            dzf = dcs * c_prev * _grad(a_f, SIG)
            tl.store(DZ + base + PF * N, dzf, mask=ok)
        dh_new = dhn * 0.0
        for p in tl.static_range(K):
            if p == K - 1:
                dz = dzc
            elif p == PI:
                dz = dzi
            elif p == PF:
                dz = dzf
            else:
                dz = dzo
            if p >= UA and p < UB:
                dh_new += dz * tl.load(UW + (p - UA) * N + j, mask=j < N, other=0.0)
            if DOT:
                if p >= VA and p < VB:
                    um = tl.load(UF + (p - VA) * N * N + u_at, mask=u_ok, other=0.0)
                    dh_new += tl.dot(dz, um, input_precision="ieee", out_dtype=dz.dtype)
        if HAS_LEN:
            dh_new += dS - dhn
            dc_new += dc - dcn
        dh = dh_new
        dc = dc_new
    tl.store(DH0 + e, dh, mask=ok)
    tl.store(DC0 + e, dc, mask=ok)


def _constants(p: fused_cpu.Plan) -> dict:
    """The kernels' compile-time description of the slots (-1 / the constant for a fixed gate)."""
    ur, Ur = p.span("u") or (0, 0), p.span("U") or (0, 0)
    pos = {g: p.gate[g] if isinstance(p.gate[g], int) else -1 for g in "ifo"}
    const = {g: 0.0 if isinstance(p.gate[g], int) else float(p.gate[g]) for g in "ifo"}
    return dict(K=p.k, UA=ur[0], UB=ur[1], VA=Ur[0], VB=Ur[1], PI=pos["i"], PF=pos["f"],
                PO=pos["o"], CI=const["i"], CF=const["f"], CO=const["o"],
                SIG=_KIND[p.gate_activation], ACT=_KIND[p.activation])


def _lengths(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    # mask[t, b] is t < length[b], so the length is the count of its valid steps
    return (mask.reshape(mask.shape[0], -1).sum(0).to(torch.int32) if mask is not None
            else like.new_zeros(1, dtype=torch.int32))


def _tiles(B: int, n: int, dot: bool) -> tuple[dict, tuple[int, int]]:
    """Tile sizes and grid: with U in the kernel, 16 rows (tl.dot's least) of every unit; without,
    one row of up to BLOCK units per program (many programs: the steps' latency hides better)."""
    if dot:  # 8 warps: the U tile's share of registers per thread halves
        bn = max(16, triton.next_power_of_2(n))
        return dict(BB=16, BN=bn, DOT=True, num_warps=8), (triton.cdiv(B, 16), 1)
    bn = min(BLOCK, max(16, triton.next_power_of_2(n)))
    return dict(BB=1, BN=bn, DOT=False), (B, triton.cdiv(n, bn))


def _launch(p, A, Uf, uf, mask, **flags):
    """What both directions launch with: whether the whole sequence is one launch, the grid, the
    kernels' keyword arguments, u (or a placeholder), U where the kernels compute U·h (or a
    placeholder) and the sequences' lengths."""
    T, B, k, n = A.shape
    whole = _one_launch(Uf is not None, n)
    dot = Uf is not None and whole
    tiles, grid = _tiles(B, n, dot)
    args = dict(HAS_LEN=mask is not None, **flags, **tiles, **_constants(p))
    return (whole, grid, args, uf if uf is not None else A, Uf.contiguous() if dot else A,
            _lengths(mask, A))


def triton_forward(p, A, Uf, uf, h0, c0, mask):
    """The torch engine's :func:`fused_cpu.torch_forward`: one kernel launch for the whole
    sequence (U·h in the kernel where n <= MAX_N_IN_KERNEL); otherwise, with U, per step one
    ``addmm_`` (the U·h terms) and one launch."""
    T, B, k, n = A.shape
    S = A.new_empty(T, B, n)
    C = A.new_empty(T + 1, B, n)
    G = A.new_empty(T, B, n)
    whole, grid, args, UW, UF, lengths = _launch(p, A, Uf, uf, mask)
    if whole:
        _forward_kernel[grid](A, UW, UF, h0.contiguous(), c0.contiguous(), S, C, G, lengths, 0,
                              T, B, n, **args)
        return S, C, G
    UfT, AU = Uf.t(), fused_cpu.columns_of_U(p, A)
    C[0] = c0
    h = h0.contiguous()
    for t in range(T):
        AU[t].addmm_(h, UfT)
        _forward_kernel[grid](A[t], UW, UF, h, C[t], S[t], C[t:t + 2], G[t], lengths, t, 1, B,
                              n, **args)
        h = S[t]
    return S, C, G


def triton_backward(p, A, S, C, G, Uf, uf, h0, dout, dhT, dcT, mask):
    """The torch engine's :func:`fused_cpu.torch_backward`: one launch for the whole sequence
    (dh through U in the kernel where n <= MAX_N_IN_KERNEL); otherwise, with U, per step one
    launch and one ``addmm_`` (dh through U)."""
    T, B, k, n = A.shape
    dZ = A.new_empty(T, B, k, n)
    dh0, dc0 = A.new_empty(B, n), A.new_empty(B, n)
    zeros = A.new_zeros(B, n)
    whole, grid, args, UW, UF, lengths = _launch(p, A, Uf, uf, mask, HAS_DOUT=dout is not None)
    dout = dout.contiguous() if dout is not None else A
    dh = dhT.contiguous() if dhT is not None else zeros
    dc = dcT.contiguous() if dcT is not None else zeros
    if whole:
        _backward_kernel[grid](A, UW, UF, C, G, dout, dh, dc, dZ, dh0, dc0, lengths, 0, T, B, n,
                               **args)
        return dZ, dh0, dc0
    ZU = fused_cpu.columns_of_U(p, dZ)
    pairs = [(A.new_empty(B, n), A.new_empty(B, n)) for _ in range(2)]
    for idx, t in enumerate(range(T - 1, -1, -1)):
        out = (dh0, dc0) if t == 0 else pairs[idx % 2]  # never the pair read this step
        _backward_kernel[grid](A[t], UW, UF, C[t], G[t], dout[t] if dout is not A else A, dh, dc,
                               dZ[t], out[0], out[1], lengths, t, 1, B, n, **args)
        out[0].addmm_(ZU[t], Uf)
        dh, dc = out
    return dZ, dh0, dc0


fused_cpu.ENGINES["triton"] = (triton_forward, triton_backward)

__all__ = ["supports", "triton_forward", "triton_backward"]
