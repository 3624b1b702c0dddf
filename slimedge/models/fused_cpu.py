"""Fused SLIM recurrence: one layer's whole time loop in one autograd function, hand-written backward.

:func:`run_layer` computes what :class:`~slimedge.models.slim.SlimLSTM`'s reference loop computes
for one layer, for any variant (any legal slot structure, catalogue or user-defined), both gate
activations, every activation g, fixed constants and ``lengths`` masking, in float32 or float64:

- the input part W·x + b of every slot is one matrix product over all T·B rows, and in the backward
  dW, dx and db are one product (or sum) each over all time steps;
- per step only the recurrence runs, as a few in-place tensor operations on the whole (batch, units)
  plane: one ``addmm_`` for all the U·h terms, one ``addcmul_`` for all the u ⊙ h terms, one
  activation call per kind; slots without a recurrent term are activated for the whole sequence
  before the loop (and differentiated after it);
- no autograd graph is built per step: the forward saves the activations, states and g(c), and the
  backward walks the steps in reverse, then dU and du are one product (or sum) over all steps;
- on the CPU a layer keeps its big buffers (A, the states, dZ) and reuses them once nothing holds
  them (:class:`_Buffers`): at long T fresh ones cost a page fault per 4 KB on every step.

To make every per-step range contiguous the function keeps the learned slots in its own order
(:class:`Plan`, in ``fused_plan`` with the buffers): the gates without a recurrent term, then those
with one grouped by U and u, the cell candidate last. The per-step loops are pluggable
(:data:`ENGINES`): ``"torch"`` (``fused_torch``: any device), ``"numba"`` (``fused_numba``: CPU,
each step's element-wise work compiled into one pass per batch row) and ``"triton"``
(``fused_triton``: CUDA, one kernel per sequence each way, U·h inside it up to n = 128). An
engine's backward may return u's and b's gradients itself (then dZ need hold only the slots with
W or U), and an engine in :data:`OWN_BIAS` adds b itself
(its A holds W·x only).

Not covered (use ``SlimLSTM(..., impl="reference")``): double backward (``create_graph=True``
through the layer) and forward-mode AD; tracing and ``torch.compile`` pick the reference
automatically.
"""
from __future__ import annotations

import importlib
import warnings

import torch
from torch.autograd.function import once_differentiable

from .fused_plan import (  # noqa: F401 - the engines' shared layout, offered here as before
    _POOLING,
    Plan,
    _Buffers,
    _gather,
    _input_part,
    _rows,
    _scatter,
    buffer,
    columns_of_U,
    make_plan,
    states,
)
from .fused_torch import torch_backward, torch_forward

ENGINES = {"torch": (torch_forward, torch_backward)}
# engines whose forward adds b itself and sets the slots with neither W nor U (A holds W·x, and
# zeros where a slot has U but no W)
OWN_BIAS: set[str] = set()
FAILED: dict[str, str] = {}  # engines that raised here: not used again in this process


def _engine_failed(name: str, error: Exception) -> None:
    FAILED[name] = f"{type(error).__name__}: {error}"
    warnings.warn(f"the fused loop's {name} engine failed ({FAILED[name]}); using the torch "
                  f"engine from now on", RuntimeWarning, stacklevel=3)


_MODULES = {"triton": "fused_triton", "numba": "fused_numba"}  # register themselves on import


def engine(name: str):
    """The (forward, backward) pair of an engine, importing its module on first use."""
    if name not in ENGINES and name in _MODULES:
        importlib.import_module(f".{_MODULES[name]}", __package__)
    return ENGINES[name]


def available(name: str) -> bool:
    """Whether engine ``name`` can run here: its module imports (triton, numba installed) and it
    has not failed in this process."""
    if name in FAILED:
        return False
    try:
        engine(name)
    except ImportError:
        return False
    return True


class _FusedLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h0, c0, W, U, u, b, mask, plan, engine_name):
        T, B, m = x.shape
        n, k = plan.n, plan.k
        fwd, _ = engine(engine_name)
        Wf, Uf = _gather(W, plan.src["W"], n), _gather(U, plan.src["U"], n)
        uf, bf = _gather(u, plan.src["u"], 1), _gather(b, plan.src["b"], 1)
        x2d = x.reshape(T * B, m)
        own_bias = engine_name in OWN_BIAS  # the engine adds b: A gets W·x only
        with torch.no_grad():
            A = _input_part(plan, x2d, Wf, bf, not own_bias).view(T, B, k, n)
            try:
                S, C, G = fwd(plan, A, Uf, uf, h0, c0, mask, **({"bf": bf} if own_bias else {}))
            except Exception as e:  # a Triton kernel that does not compile here: warn, go on
                if engine_name == "torch":
                    raise
                _engine_failed(engine_name, e)
                engine_name = "torch"
                A = _input_part(plan, x2d, Wf, bf).view(T, B, k, n)
                S, C, G = torch_forward(plan, A, Uf, uf, h0, c0, mask)
            out = S * mask if mask is not None else S
            h_n = S[-1].clone()
            c_n = C[-1].clone()
        ctx.plan, ctx.engine_name = plan, engine_name
        ctx.save_for_backward(x2d, h0, Wf, Uf, uf, A, S, C, G, mask, out)
        ctx.set_materialize_grads(False)  # unused outputs (often all of them but h_n) cost nothing
        return out, h_n, c_n

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dhT, dcT):
        x2d, h0, Wf, Uf, uf, A, S, C, G, mask, _ = ctx.saved_tensors
        p = ctx.plan
        T, B, k, n = A.shape
        _, bwd = engine(ctx.engine_name)
        try:  # an engine may return u's and b's gradients too (function order), else None
            dZ, dh0, dc0, du_f, db_f = (*bwd(p, A, S, C, G, Uf, uf, h0, dout, dhT, dcT, mask),
                                        None, None)[:5]
        except Exception as e:  # the kernels leave A, S, C, G as they were
            if ctx.engine_name == "torch":
                raise
            _engine_failed(ctx.engine_name, e)
            dZ, dh0, dc0 = torch_backward(p, A, S, C, G, Uf, uf, h0, dout, dhT, dcT, mask)
            du_f = db_f = None
        dZ2 = dZ.view(T * B, k, n)
        need = ctx.needs_input_grad
        dx = dW = dU = du = db = None
        if Wf is not None:
            dZW = _rows(dZ2, p.pos["W"], p.span("W"))
            if need[3]:  # as (x^T dZ)^T: 20-30% faster than dZ^T x when m is small
                dW = _scatter(torch.mm(x2d.t(), dZW).t(), p.src["W"], n)
            if need[0]:
                dx = torch.mm(dZW, Wf).view(T, B, -1)
        elif need[0]:
            dx = x2d.new_zeros(T, B, x2d.shape[1])
        if need[6] and db_f is not None:
            db = _scatter(db_f, p.src["b"], 1)
        elif need[6]:
            br = p.span("b")
            dZb = dZ2[:, br[0]:br[1]] if br is not None else dZ2[:, list(p.pos["b"])]
            db = _scatter(dZb.sum(0), p.src["b"], 1)
        # h before each step: h0, then S[:-1]; used in two parts rather than concatenated
        hp = S[:-1].reshape((T - 1) * B, n)
        if Uf is not None and need[4]:
            dZU = _rows(dZ2, p.pos["U"], p.span("U"))
            dU = torch.mm(dZU[B:].t(), hp).addmm_(dZU[:B].t(), h0)
            dU = _scatter(dU, p.src["U"], n)
        if uf is not None and need[5] and du_f is not None:
            du = _scatter(du_f, p.src["u"], 1)
        elif uf is not None and need[5]:  # the last use of dZ: multiplied in place
            ur = p.span("u")
            dZu = dZ[:, :, ur[0]:ur[1]]
            dZu[1:].mul_(S[:-1].unsqueeze(2))
            dZu[0].mul_(h0.unsqueeze(1))
            du = _scatter(dZu.sum((0, 1)), p.src["u"], 1)
        return dx, dh0, dc0, dW, dU, du, db, None, None, None


def run_layer(cell, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor,
              mask: torch.Tensor | None = None, engine_name: str = "torch"):
    """One layer over a sequence: x (T, B, m), h0 and c0 (B, n), mask (T, B, 1) bool or None.
    Returns (outputs (T, B, n), h_T, c_T) as the reference loop does (outputs 0 past each
    sequence's end, the state carried)."""
    plan = getattr(cell, "_fused_plan", None)
    if plan is None:
        plan = make_plan(cell.spec, cell.hidden_size, cell.gate_activation, cell.activation)
        cell._fused_plan = plan
    return _FusedLayer.apply(x, h0, c0, cell.W, cell.U, cell.u, cell.b, mask, plan, engine_name)


__all__ = ["Plan", "make_plan", "run_layer", "torch_forward", "torch_backward", "ENGINES"]
