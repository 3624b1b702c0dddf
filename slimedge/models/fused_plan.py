"""What every engine of the fused loop (:mod:`~slimedge.models.fused_cpu`) shares: the layout of
a layer's packed parameters and the big buffers a layer reuses.

:class:`Plan` keeps the learned slots in the function's own order — the gates without a recurrent
term, then those with one grouped by U and u, the cell candidate last — so that every per-step range
is contiguous; :func:`_gather` / :func:`_scatter` move a cell's W, U, u, b into and out of that
order. On the CPU a layer keeps its big buffers (A, the states, dZ) and reuses them once nothing
holds them (:class:`_Buffers`): at long T fresh ones cost a page fault per 4 KB on every step.
"""
from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass

import torch

from ..variants import GATES, VariantSpec


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


__all__ = ["Plan", "make_plan", "buffer", "states", "columns_of_U"]
