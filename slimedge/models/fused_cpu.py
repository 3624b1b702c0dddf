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
(:class:`Plan`): the gates without a recurrent term, then those with one grouped by U and u, the
cell candidate last. The per-step loops are pluggable (:data:`ENGINES`): ``"torch"`` (this module;
any device), ``"numba"`` (``fused_numba``: CPU, each step's element-wise work compiled into one
pass per batch row) and ``"triton"`` (``fused_triton``: CUDA, one kernel per sequence each way,
U·h inside it up to n = 128). An engine's backward may return u's and b's gradients itself
(then dZ need hold only the slots with W or U), and an engine in :data:`OWN_BIAS` adds b itself
(its A holds W·x only).

Not covered (use ``SlimLSTM(..., impl="reference")``): double backward (``create_graph=True``
through the layer) and forward-mode AD; tracing and ``torch.compile`` pick the reference
automatically.
"""
from __future__ import annotations

import importlib
import itertools
import math
import threading
import warnings
from dataclasses import dataclass

import torch
from torch.autograd.function import once_differentiable

from ..variants import GATES, VariantSpec

_aten = torch.ops.aten


@dataclass(frozen=True)
class Plan:
    """How one layer's slots are laid out inside the fused function (see the module docstring)."""

    n: int
    order: tuple[str, ...]                 # the learned slots, the cell candidate last
    src: dict                              # term -> packed index of each slot with it, in order
    pos: dict                              # term -> function position of each slot with it
    static: tuple[int, int]                # gates without U or u: activated outside the loop
    dynamic: tuple[int, int]               # gates with U or u: activated per step
    cell_static: bool                      # the cell candidate has no recurrent term
    gate: dict                             # "i"/"f"/"o" -> position, or the fixed constant (float)
    gate_activation: str
    activation: str

    @property
    def k(self) -> int:
        return len(self.order)

    def span(self, term: str) -> tuple[int, int] | None:
        """The contiguous positions of ``term``'s slots, or None when it has none/they are apart."""
        p = self.pos[term]
        return (p[0], p[-1] + 1) if p and p == tuple(range(p[0], p[-1] + 1)) else None


def _contiguous(positions) -> bool:
    p = sorted(positions)
    return not p or p == list(range(p[0], p[-1] + 1))


def make_plan(spec: VariantSpec, hidden_size: int, gate_activation: str, activation: str) -> Plan:
    """The slot order for ``spec``: U, u, static and dynamic gate ranges contiguous (always
    possible), then W and b contiguous and the packed order kept where that is possible too."""
    gates = [s for s in spec.learned_slots if s != "c"]
    kind = {s: "U" if spec.has(s, "U") else "u" if spec.has(s, "u") else "" for s in spec.learned_slots}
    best = None
    for perm in itertools.permutations(gates):
        order = (*perm, "c")
        where = {s: j for j, s in enumerate(order)}
        groups = [[where[s] for s in order if kind[s] == t] for t in ("U", "u")]
        static = [where[s] for s in perm if not kind[s]]
        dynamic = [where[s] for s in perm if kind[s]]
        if not all(_contiguous(g) for g in (*groups, static, dynamic)):
            continue
        soft = [_contiguous([where[s] for s in order if spec.has(s, t)]) for t in ("W", "b")]
        score = (*soft, list(perm) == gates)
        if best is None or score > best[0]:
            best = (score, order, static, dynamic)
    _, order, static, dynamic = best
    src = {t: tuple(spec.slots_with(t).index(s) for s in order if spec.has(s, t)) for t in "WUub"}
    pos = {t: tuple(j for j, s in enumerate(order) if spec.has(s, t)) for t in "WUub"}
    span = lambda p: (min(p), max(p) + 1) if p else (0, 0)  # noqa: E731
    gate = {g: order.index(g) if g in order else float(spec.slots[g].const) for g in GATES}
    return Plan(int(hidden_size), order, src, pos, span(static), span(dynamic), not kind["c"],
                gate, gate_activation, activation)


# ---- big buffers, reused between calls ---------------------------------------------------------
class _Buffers:
    """A layer's big per-call CPU buffers (A, the states, dZ), kept between calls and handed out
    again once nothing else holds them. At long T each is tens of MB, which the C library maps
    fresh for every allocation and zeroes page by page on first touch: at (T, B, n) =
    (784, 128, 128) those page faults took a third to two thirds of every training step. A buffer
    is reused only while its storage has no user but this pool (checked under a lock), so a graph
    kept with ``retain_graph=True``, an output the caller still holds or another thread never
    sees its memory rewritten."""

    MIN_BYTES = 1 << 20  # smaller ones come from the allocator's own free lists
    KEEP = 2             # per tag: a caller holding one step's output still reuses the other

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.kept: dict[tuple, list[torch.Tensor]] = {}

    def __reduce__(self):  # a copied or pickled model starts with none (and no lock to copy)
        return _Buffers, ()

    @staticmethod
    def _unused(t: torch.Tensor) -> bool:
        # users of the storage: the pool's tensor, the storage object made to ask, and one per
        # tensor handed out (a graph saving it, or an output held, holds that tensor, which
        # counts; a reference to the pool's own tensor would not, so that is never handed out)
        return _storage_users(t.untyped_storage()._cdata) == 2

    def empty(self, tag: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        numel = math.prod(shape)
        # not in inference mode: its tensors cannot be written outside it later
        if (like.device.type != "cpu" or not _POOLING or torch.is_inference_mode_enabled()
                or numel * like.element_size() < self.MIN_BYTES):
            return like.new_empty(shape)
        # flat buffers, a call taking the front of one as big or bigger: batches of other
        # lengths (T) reuse them too, and a layer keeps at most KEEP per tag
        with self.lock:
            kept = self.kept.setdefault((tag, like.dtype), [])
            for t in kept:
                if t.numel() >= numel and self._unused(t):
                    return _hand_out(t, shape)
            t = like.new_empty(numel)
            kept.append(t)
            del kept[:-self.KEEP]
            return _hand_out(t, shape)


def _hand_out(t: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """A tensor of ``shape`` on the front of ``t``'s memory: its own tensor, not a view (a layer's
    output stays an ordinary tensor, which may be changed in place as before)."""
    return t.new_empty(0).set_(t.untyped_storage(), 0, shape)


def _counts_users() -> bool:
    """Whether this torch counts a storage's users as :class:`_Buffers` relies on (else every
    buffer is fresh, as before)."""
    if _storage_users is None:
        return False
    t = torch.empty(1)
    u = _hand_out(t, (1,))
    held = _storage_users(t.untyped_storage()._cdata)
    del u
    return held == 3 and _Buffers._unused(t)


_storage_users = getattr(torch._C, "_storage_Use_Count", None)
_POOLING = _counts_users()


def buffer(p: Plan, tag: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """An uninitialised tensor of ``shape`` with ``like``'s dtype and device, from the layer's
    :class:`_Buffers` (big CPU ones are reused between calls)."""
    pool = p.__dict__.get("_buffers")
    if pool is None:
        pool = p.__dict__.setdefault("_buffers", _Buffers())
    return pool.empty(tag, shape, like)


def states(p: Plan, A: torch.Tensor, mask) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Uninitialised S (T, B, n), C (T + 1, B, n) and G (T, B, n) for a forward (G is S where
    h = g(c): o = 1 and no masking)."""
    T, B, _, n = A.shape
    S, C = buffer(p, "S", (T, B, n), A), buffer(p, "C", (T + 1, B, n), A)
    o = p.gate["o"]
    G = S if (isinstance(o, float) and o == 1.0 and mask is None) else buffer(p, "G", (T, B, n), A)
    return S, C, G


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


# ---- the packed parameters in the function's slot order ------------------------------------------
def _gather(p: torch.Tensor | None, idx: tuple[int, ...], rows: int) -> torch.Tensor | None:
    """Packed W/U (k·n, cols) or u/b (k, n) in the function's order of ``idx``."""
    if p is None:
        return None
    if idx == tuple(range(len(idx))):
        return p
    blocks = p.view(len(idx), rows, -1) if rows > 1 else p
    return blocks[list(idx)].reshape(p.shape)


def _scatter(g: torch.Tensor | None, idx: tuple[int, ...], rows: int) -> torch.Tensor | None:
    """The inverse of :func:`_gather` for a gradient."""
    if g is None or idx == tuple(range(len(idx))):
        return g
    out = g.new_empty(g.shape)
    view = out.view(len(idx), rows, -1) if rows > 1 else out
    view[list(idx)] = g.reshape(len(idx), rows, -1) if rows > 1 else g
    return out


def _input_part(p: Plan, x2d: torch.Tensor, Wf, bf, bias: bool = True) -> torch.Tensor:
    """W·x + b of every slot for all rows: (TB, m) -> (TB, k, n), zero where a slot has neither.
    Without ``bias`` (an engine that adds b itself: :data:`OWN_BIAS`) b is left out, and so are
    the slots with neither W nor U: the engine sets those itself."""
    TB, k, n = x2d.shape[0], p.k, p.n
    out = buffer(p, "A", (TB, k, n), x2d)
    if len(p.pos["W"]) == k:
        if bias and len(p.pos["b"]) == k:
            return torch.addmm(bf.reshape(-1), x2d, Wf.t(), out=out.view(TB, k * n)).view(TB, k, n)
        torch.mm(x2d, Wf.t(), out=out.view(TB, k * n))
    else:
        w = p.span("W")
        if w is not None:  # one product straight into the W slots' (strided) rows
            torch.mm(x2d, Wf.t(), out=out[:, w[0]:w[1]].flatten(1))
        elif Wf is not None:
            Y = torch.mm(x2d, Wf.t()).view(TB, -1, n)
            for q, j in enumerate(p.pos["W"]):
                out[:, j].copy_(Y[:, q])
        for j in range(k):
            if j not in p.pos["W"] and ((j not in p.pos["b"]) if bias else (j in p.pos["U"])):
                out[:, j].zero_()
    if bias:
        for q, j in enumerate(p.pos["b"]):
            if j in p.pos["W"]:
                out[:, j].add_(bf[q])
            else:
                out[:, j].copy_(bf[q].expand(TB, n))
    return out


def columns_of_U(p: Plan, X: torch.Tensor) -> torch.Tensor:
    """(..., k, n) -> the slots with a U term as (..., len·n), a view (make_plan keeps them
    together): where every engine adds the U·h products, and reads their gradients."""
    r = p.span("U")
    return X.flatten(-2)[..., r[0] * p.n:r[1] * p.n]


def _rows(t: torch.Tensor, positions: tuple[int, ...], span) -> torch.Tensor:
    """(TB, k, n) -> the slots at ``positions`` as (TB, len·n), a view where they are contiguous."""
    if span is not None:
        return t[:, span[0]:span[1]].reshape(t.shape[0], -1)
    return t[:, list(positions)].reshape(t.shape[0], -1)


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
