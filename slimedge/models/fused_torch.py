"""The fused loop's ``"torch"`` engine: per step, a few in-place tensor operations on the whole
(batch, units) plane — one ``addmm_`` for all the U·h terms, one ``addcmul_`` for all the u ⊙ h
terms, one activation call per kind — on any device and dtype. It is the fallback of the compiled
engines (``fused_numba``, ``fused_triton``), which keep its interface and slot order
(:class:`~slimedge.models.fused_plan.Plan`).
"""
from __future__ import annotations

import torch

from .fused_plan import Plan, buffer, columns_of_U, states

_aten = torch.ops.aten


# ---- activations in place, and their backward from the activation's output --------------------
def _act_(name: str, z: torch.Tensor) -> None:
    if name == "sigmoid":
        z.sigmoid_()
    elif name == "tanh":
        z.tanh_()
    elif name == "relu":
        z.relu_()
    else:  # hard_sigmoid: clip(0.2 z + 0.5, 0, 1)
        z.mul_(0.2).add_(0.5).clamp_(0.0, 1.0)


def _act(name: str, z: torch.Tensor, out: torch.Tensor) -> None:
    if name == "tanh":
        torch.tanh(z, out=out)
    elif name == "sigmoid":
        torch.sigmoid(z, out=out)
    elif name == "relu":
        torch.clamp_min(z, 0.0, out=out)
    else:
        out.copy_(z)
        _act_(name, out)


def _act_backward(name: str, grad: torch.Tensor, a: torch.Tensor, out: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """grad ⊙ act'(z) from a = act(z); ``out`` may be ``grad`` itself (element-wise in place)."""
    if name == "tanh":
        fn, args = _aten.tanh_backward, ()
    elif name == "sigmoid":
        fn, args = _aten.sigmoid_backward, ()
    elif name == "relu":
        fn, args = _aten.threshold_backward, (0.0,)
    else:  # hard_sigmoid: 0.2 where 0 < a < 1
        fn, args = _aten.hardtanh_backward, (0.0, 1.0)
    if out is None:
        r = fn(grad, a, *args)
    else:
        r = fn.grad_input(grad, a, *args, grad_input=out)
    return r.mul_(0.2) if name == "hard_sigmoid" else r


# ---- the torch engine: per-step tensor operations -----------------------------------------------
def _gate(p: Plan, At: torch.Tensor, g: str):
    j = p.gate[g]
    return At[:, j] if isinstance(j, int) else j


def torch_forward(p: Plan, A, Uf, uf, h0, c0, mask):
    """The time loop. A (T, B, k, n) holds W·x + b and is activated in place; returns the states
    S (T, B, n) (h after each step), C (T + 1, B, n) (c before/after each step) and G (T, B, n),
    g(c) (an alias of S where h = g(c))."""
    T, B, k, n = A.shape
    act, sig = p.activation, p.gate_activation
    s0, s1 = p.static
    if s1 > s0:
        _act_(sig, A[:, :, s0:s1])
    if p.cell_static:
        _act_(act, A[:, :, k - 1])
    d0, d1 = p.dynamic
    Ur, ur = p.span("U"), p.span("u")
    UfT = Uf.t() if Uf is not None else None
    S, C, G = states(p, A, mask)
    C[0] = c0
    h = h0
    for t in range(T):
        At = A[t]
        if Ur is not None:
            columns_of_U(p, At).addmm_(h, UfT)
        if ur is not None:
            At[:, ur[0]:ur[1]].addcmul_(uf, h.unsqueeze(1))
        if d1 > d0:
            _act_(sig, At[:, d0:d1])
        if not p.cell_static:
            _act_(act, At[:, k - 1])
        c, cn = C[t], C[t + 1]
        f, i = _gate(p, At, "f"), _gate(p, At, "i")
        if isinstance(f, torch.Tensor):
            torch.mul(f, c, out=cn)
        elif f == 0.0:
            cn.zero_()
        elif f == 1.0:
            cn.copy_(c)
        else:
            torch.mul(c, f, out=cn)
        if isinstance(i, torch.Tensor):
            cn.addcmul_(i, At[:, k - 1])
        else:
            cn.add_(At[:, k - 1], alpha=i)
        if mask is not None:  # past a sequence's end the state is carried (its h, c unused)
            torch.where(mask[t], cn, c, out=cn)
        _act(act, cn, G[t])
        oo = _gate(p, At, "o")
        if isinstance(oo, torch.Tensor):
            torch.mul(oo, G[t], out=S[t])
        elif G is not S:
            torch.mul(G[t], oo, out=S[t])
        if mask is not None:
            torch.where(mask[t], S[t], h, out=S[t])
        h = S[t]
    return S, C, G


def torch_backward(p: Plan, A, S, C, G, Uf, uf, h0, dout, dhT, dcT, mask):
    """The reverse time loop: dZ (T, B, k, n), the gradient of every slot's pre-activation, and
    the gradients of h0 and c0. ``dout`` is the gradient of the layer's outputs (or None)."""
    T, B, k, n = A.shape
    act, sig = p.activation, p.gate_activation
    d0, d1 = p.dynamic
    Ur, ur = p.span("U"), p.span("u")
    dZ = buffer(p, "dZ", (T, B, k, n), A)
    dh = dhT.clone() if dhT is not None else A.new_zeros(B, n)
    dc = dcT.clone() if dcT is not None else A.new_zeros(B, n)
    mf = mask.to(A.dtype) if mask is not None else None
    for t in range(T - 1, -1, -1):
        At, dZt, Gt = A[t], dZ[t], G[t]
        if mf is not None:  # where the sequence had ended, the gradient passes to the state before
            m = mf[t]
            dS = torch.addcmul(dh, dout[t], m) if dout is not None else dh
            dhn = dS * m
            dh_carry = dS.sub_(dhn)
            dcn = dc * m
            dc_carry = dc.sub_(dcn)
        else:
            dhn = dh.add_(dout[t]) if dout is not None else dh
            dcn = dc
        o = _gate(p, At, "o")
        if isinstance(o, torch.Tensor):
            torch.mul(dhn, Gt, out=dZt[:, p.gate["o"]])
            dG = dhn * o
        else:
            dG = dhn if o == 1.0 else dhn * o
        dcs = _act_backward(act, dG, Gt).add_(dcn)
        f, i = _gate(p, At, "f"), _gate(p, At, "i")
        cc = At[:, k - 1]
        if isinstance(f, torch.Tensor):
            torch.mul(dcs, C[t], out=dZt[:, p.gate["f"]])
        if isinstance(i, torch.Tensor):
            torch.mul(dcs, cc, out=dZt[:, p.gate["i"]])
            dcc = dcs * i
        else:
            dcc = dcs if i == 1.0 else dcs * i
        if p.cell_static:
            dZt[:, k - 1].copy_(dcc)
        else:
            _act_backward(act, dcc, cc, out=dZt[:, k - 1])
        if d1 > d0:
            _act_backward(sig, dZt[:, d0:d1], At[:, d0:d1], out=dZt[:, d0:d1])
        if isinstance(f, torch.Tensor):
            dc = dcs.mul_(f)
        elif f == 0.0:
            dc = dcs.zero_()
        else:
            dc = dcs if f == 1.0 else dcs.mul_(f)
        dh = None
        if Ur is not None:
            dh = torch.mm(columns_of_U(p, dZt), Uf)
        if ur is not None:
            r = (dZt[:, ur[0]:ur[1]] * uf).sum(1)
            dh = r if dh is None else dh.add_(r)
        if dh is None:
            dh = A.new_zeros(B, n)
        if mf is not None:
            dh.add_(dh_carry)
            dc = dc.add_(dc_carry)
    s0, s1 = p.static
    if s1 > s0:
        _act_backward(sig, dZ[:, :, s0:s1], A[:, :, s0:s1], out=dZ[:, :, s0:s1])
    if p.cell_static:
        _act_backward(act, dZ[:, :, k - 1], A[:, :, k - 1], out=dZ[:, :, k - 1])
    return dZ, dh, dc


__all__ = ["torch_forward", "torch_backward"]
