"""The one stepping loop: a step function rolled over frames, carrying h and c from step to step.

Validation, calibration, the quantisation task check, evaluation and ``runtime.Model.run`` all
step through :func:`rollout`; a step is the IR's :class:`~slimedge.ir.Graph`, an exported file
opened through the runtime, or a runtime binding. NumPy only.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np


@dataclass
class Rollout:
    """What :func:`rollout` kept, time first: ``outputs[name]`` (T, *shape) per recorded output
    (absent when no step ran); ``state`` the final (h, c) (may be the step's own arrays); with
    ``states=True`` ``h``, ``c`` the state each step started from (T, L, B, n); with
    ``feeds=True`` a copy of every step's feeds."""

    outputs: dict[str, np.ndarray]
    state: tuple[np.ndarray, np.ndarray]
    h: np.ndarray | None = None
    c: np.ndarray | None = None
    feeds: list[dict[str, np.ndarray]] | None = None

    @property
    def y(self) -> np.ndarray:
        return self.outputs["y"]

    def at_end(self, lengths, name: str = "y") -> np.ndarray:
        """Each row's ``name`` output at its last valid step (``lengths`` (B,), each >= 1)."""
        v = self.outputs[name]
        return v[np.asarray(lengths, np.int64) - 1, np.arange(v.shape[1])]


_STATE_VALUES = ("h", "c", "h_next", "c_next")  # (layers, batch, n): the batch is axis 1


def rollout(step, frames, state=None, *, dtype=np.float32, lengths=None,
            record: Sequence[str] = ("y",), states: bool = False, feeds: bool = False,
            out: Mapping[str, np.ndarray] | None = None) -> Rollout:
    """Step a model over ``frames`` (T, B, m) carrying h and c: slimedge's one stepping loop.

    ``step(feeds) -> outputs`` maps ``{"x" (B, m), "h", "c" (L, B, n)}`` to ``{"y" (B, K),
    "h_next", "c_next"}``: a :class:`Graph` (run in ``dtype``), a written file opened through the
    runtime, a runtime binding. The ``h_next``/``c_next`` it returns are fed back as the next
    ``h``/``c`` as they are (a step owning preallocated buffers may return them and skip the copy
    when fed its own arrays); what is recorded is copied at once.

    ``state``: the initial (h, c), each (L, B, n); default zeros in ``dtype`` sized by the graph
    (or ``step.state_shape``, (L, n)). ``lengths`` (B,): the valid frames per row of a padded
    batch; step t feeds only the rows with ``lengths > t`` (the others keep their last state and
    record 0; ``Rollout.at_end(lengths)`` picks each row's last output). ``record``: the outputs
    kept per step; ``states``/``feeds``: also keep each step's starting state / a copy of its
    feeds (the rows fed). ``out``: arrays (T, *shape) to record into, by name, instead of new
    ones (e.g. ``{"y": ys.swapaxes(0, 1)}`` for a caller's (B, T, K) buffer).
    """
    ir = sys.modules.get(f"{__package__}.ir")  # a Graph exists only once ir is imported: no cycle
    if ir is not None and isinstance(step, ir.Graph):
        shape, run = (step.num_layers, step.hidden_size), step.run
        step = lambda f: run(f, dtype=dtype)
    else:
        shape = getattr(step, "state_shape", None)
    T, B = int(frames.shape[0]), int(frames.shape[1])
    if state is None:
        if shape is None:
            raise ValueError("rollout: a step function without state_shape needs the initial state")
        state = (np.zeros((shape[0], B, shape[1]), dtype), np.zeros((shape[0], B, shape[1]), dtype))
    h, c = state
    if lengths is not None:
        lengths = np.asarray(lengths)
        h, c = np.array(h), np.array(c)  # own copies: the live rows are written back in place
    rec: dict[str, np.ndarray] = dict(out or {})
    hs = cs = None
    kept: list | None = [] if feeds else None
    for t in range(T):
        live = None if lengths is None else lengths > t
        if live is not None and live.all():
            live = slice(None)  # every row: fed as they are, not copied
        if isinstance(live, np.ndarray):
            f = {"x": frames[t][live], "h": h[:, live], "c": c[:, live]}
        else:
            f = {"x": frames[t], "h": h, "c": c}
        if kept is not None:
            kept.append({k: np.array(v) for k, v in f.items()})
        if states:
            if hs is None:
                hs, cs = np.empty((T, *h.shape), h.dtype), np.empty((T, *c.shape), c.dtype)
            hs[t], cs[t] = h, c
        r = step(f)
        for name in record:
            v, axis = np.asarray(r[name]), 1 if name in _STATE_VALUES else 0
            if name not in rec:
                rec[name] = np.zeros((T, *v.shape[:axis], B, *v.shape[axis + 1:]), v.dtype)
            rec[name][t][(slice(None),) * axis + (slice(None) if live is None else live,)] = v
        if live is None:
            h, c = r["h_next"], r["c_next"]
        else:
            h[:, live], c[:, live] = r["h_next"], r["c_next"]
    return Rollout(rec, (h, c), hs, cs, kept)




__all__ = ["Rollout", "rollout"]
