"""Export-time validation: run the written file against the source model and compare.

The reference is the step IR run by its NumPy interpreter in float64 (no torch): the float model
the file was made from, stepped over a rollout of real frames. The file is run on it twice:

* **per step** (the check against ``atol``): every step of the rollout at once, each from the
  reference's own state at that step (one call, batch = steps x streams; a sequence graph gets
  sequences of length 1). This is the file's own error, the same at step 1 and step 1,000.
* **closed loop** (the drift, checked against the looser ``drift_atol``): the file carries its
  own state through the whole rollout (a step graph is fed its ``h_next``/``c_next`` back; a
  sequence graph runs the whole sequence). Here float32 rounding accumulates through the
  recurrence, for any float32 implementation alike (the NumPy interpreter in float32 drifts as
  much): with a forget gate near 1 (LSTM4a/5a, f = 0.96) |c| reaches 10-20 and the drift 1e-5 after
  100 steps, and with larger weights more (1.4e-4 over 40 steps for a two-layer LSTM4a with weights
  of std 0.4). So the drift is judged against what float32 itself reaches on the same rollout: the
  step IR run in float32 from the same state; the limit per output is
  ``drift_atol + FLOAT32_DRIFT_FACTOR x that drift``. Any correct float32 file passes (its rounding
  is float32's), and a wrong one still fails: a state that is not carried from one step to the
  next, or a per-step error compounding, drifts by orders of magnitude more.

The report holds, per output, the largest absolute difference over every step and batch row.

The file is opened through the runtime (:func:`open_file`): the backend that validates it is the
one that deploys it, and it is opened once per interpreter for every check of one export.

Frames come from the first source in :data:`FRAME_SOURCES` that has them: the model's own data set
(recorded in the checkpoint's ``info.data`` by training) when :mod:`slimedge.data` can load it, else
seeded random frames in the model's input scale (its front-end's, see ``Frontend.typical_input``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from .. import frontend, ir
from ..checkpoint import Checkpoint
from ..errors import ExportValidationError
from ..formats import ModelInfo
from .calibration import stream_frames

OUTPUTS = ("y", "h_next", "c_next")
# the closed-loop drift may reach this many times atol (float32 rounding accumulates, see above)
DRIFT_FACTOR = 10.0
# a correct file's closed-loop drift may reach this many times float32's own (the step IR in
# float32 over the same rollout): its rounding differs from the interpreter's, not its size
FLOAT32_DRIFT_FACTOR = 10.0


@dataclass
class ValidationReport:
    """Largest absolute difference of each output between the file and the float64 reference."""

    max_abs_diff: dict[str, float]  # per step, from the reference's state: checked against atol
    drift: dict[str, float]  # closed loop over the whole rollout: checked against drift_atol
    max_abs_ref: dict[str, float]
    atol: float
    drift_atol: float
    steps: int
    batch: int
    mode: str
    frames: str  # where the frames came from
    notes: list[str] = field(default_factory=list)
    # float32's own closed-loop drift on the same rollout (the step IR in float32), per output
    float32_drift: dict[str, float] = field(default_factory=dict)

    def drift_limit(self, name: str) -> float:
        """The drift allowed for output ``name``: drift_atol plus FLOAT32_DRIFT_FACTOR times what
        float32 itself drifts on the same rollout."""
        return self.drift_atol + FLOAT32_DRIFT_FACTOR * self.float32_drift.get(name, 0.0)

    @property
    def passed(self) -> bool:
        return (all(d <= self.atol for d in self.max_abs_diff.values())
                and all(d <= self.drift_limit(k) for k, d in self.drift.items()))

    def failures(self) -> list[str]:
        """One phrase per output over its tolerance, e.g. ``"y differs by 3e-4 > atol 1e-05"``."""
        out = [f"{k} differs by {d:.3g} per step > atol {self.atol:g}"
               for k, d in self.max_abs_diff.items() if not d <= self.atol]
        return out + [f"{k} drifts by {d:.3g} in closed loop > {self.drift_limit(k):.3g} "
                      f"(drift_atol {self.drift_atol:g} + {FLOAT32_DRIFT_FACTOR:g} x float32's own "
                      f"drift {self.float32_drift.get(k, 0.0):.3g})"
                      for k, d in self.drift.items() if not d <= self.drift_limit(k)]

    def describe(self) -> str:
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in self.max_abs_diff.items())
        drift = ", ".join(f"{k} {v:.2e}" for k, v in self.drift.items())
        return (f"{self.steps} steps x {self.batch} streams, {self.frames}; max |diff| per step: "
                f"{diffs}; closed-loop drift: {drift}")

    def to_dict(self) -> dict:
        return {**asdict(self), "drift_limit": {k: self.drift_limit(k) for k in self.drift},
                "passed": self.passed}


# ---- the written file, opened through the runtime ------------------------------------------------
@dataclass
class Opened:
    """A written file opened on one backend: ``run(feeds) -> outputs`` for float32 x, h, c of any
    batch, and what the backend's interpreter says about itself (``measured``, or None)."""

    backend: str
    run: Callable[[dict], dict]
    measured: dict | None = None
    model: object = None  # the runtime's Model (a step graph)


def open_file(path, backend: str, mode: str = "step") -> Opened:
    """Open the file at ``path`` once on ``backend`` (unverified: it is not sealed yet). A step
    graph is stepped by the runtime's :class:`~slimedge.runtime.Model`; a sequence graph (ONNX)
    by its backend module's ``run_graph``."""
    from .. import formats, runtime

    if mode == "sequence":
        return Opened(backend, formats.backend(backend).module().run_graph(path))
    model = runtime.load(path, backend=backend, threads=1, verify=False)

    def run(feeds: dict) -> dict:
        y, h, c = model.step_raw(*(np.ascontiguousarray(feeds[k], np.float32) for k in "xhc"))
        return {"y": y.copy(), "h_next": h.copy(), "c_next": c.copy()}
    run.state_shape, run.output_size = model.state_shape, model.output_size
    return Opened(backend, run, getattr(model.session, "measured", None), model)


# ---- frames -----------------------------------------------------------------------------------
def _data_set_frames(ckpt: Checkpoint, steps: int, batch: int, *, seed: int, split: str,
                     splits=None):
    """Streams of real frames: the recorded data set's sequences, back to back (from ``splits``
    when the caller has loaded them already)."""
    info = ModelInfo.from_config(ckpt.config)
    rec = info.data
    name = (rec or {}).get("name")
    if not name:
        return None, "no data set recorded in the checkpoint"
    try:
        if splits is None:
            from .. import data
            splits = data.load_as_recorded(rec, audio=info.frontend.audio)
        d = splits[split]
    except (ImportError, ValueError, OSError, KeyError) as e:
        return None, f"data set {name!r} not available ({type(e).__name__}: {e})"
    m = info.input_size
    if d.input_size != m or len(d) == 0:
        return None, f"data set {name!r} has {d.input_size} features, the model takes {m}"
    return stream_frames(d, steps, batch), f"{name} {split} split"


def _random_frames(ckpt: Checkpoint, steps: int, batch: int, *, seed: int, split: str,
                   splits=None):
    """Seeded normal frames in the model's input scale (what its front-end maps to standard
    normal features: the standardisation's mean and std)."""
    m = int(ckpt.lstm["input_size"])
    x = np.random.default_rng(seed).standard_normal((steps, batch, m))
    x = frontend.of_checkpoint(ckpt).typical_input(x)
    return x.astype(np.float32), f"seeded random frames (seed {seed})"


# the frame sources, tried in order; each returns (frames (T, B, m) or None, description)
FRAME_SOURCES: list[Callable] = [_data_set_frames, _random_frames]


def validation_frames(ckpt: Checkpoint, steps: int = 100, batch: int = 2, *, seed: int = 0,
                      split: str = "test", splits=None) -> tuple[np.ndarray, str]:
    """Frames (steps, batch, m) float32 for validation and where they came from (``splits``: the
    model's data set, when the caller has loaded it)."""
    why = []
    for source in FRAME_SOURCES:
        frames, desc = source(ckpt, int(steps), int(batch), seed=seed, split=split, splits=splits)
        if frames is not None:
            return frames, desc + (f"; {why[-1]}" if why else "")
        why.append(desc)
    raise ValueError("no frames for validation: " + "; ".join(why))


def initial_state(graph: ir.Graph, batch: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row 0 starts from zeros (a fresh stream); the other rows from a seeded random state."""
    shape = (graph.num_layers, batch, graph.hidden_size)
    rng = np.random.default_rng(seed + 1)
    h, c = (rng.standard_normal(shape) * 0.5 for _ in range(2))
    h[:, :1] = c[:, :1] = 0.0
    return h.astype(np.float32), c.astype(np.float32)


# ---- the comparison ---------------------------------------------------------------------------
def reference(graph: ir.Graph, frames: np.ndarray, h: np.ndarray, c: np.ndarray, *,
              with_state: bool = False) -> dict:
    """Float64 rollout: per step the outputs y (T, B, K), h_next and c_next (T, L, B, n); with
    ``with_state`` also the state each step started from, h and c (T, L, B, n)."""
    state = (np.asarray(h, np.float64), np.asarray(c, np.float64))
    r = ir.rollout(graph, np.asarray(frames, np.float64), state, dtype=np.float64, record=OUTPUTS,
                   states=with_state)
    return {**r.outputs, **({"h": r.h, "c": r.c} if with_state else {})}


def run_per_step(run: Callable[[dict], dict], mode: str, frames: np.ndarray, h: np.ndarray,
                 c: np.ndarray) -> dict:
    """Every step at once, each from its given state: frames (T, B, m), h and c (T, L, B, n)."""
    T, B, m = frames.shape
    L, n = h.shape[1], h.shape[3]
    flat = lambda s: s.transpose(1, 0, 2, 3).reshape(L, T * B, n)  # noqa: E731  steps as batch
    x = frames.reshape(T * B, m)
    r = run({"x": x[None] if mode == "sequence" else x, "h": flat(h), "c": flat(c)})
    y = r["y"][0] if mode == "sequence" else r["y"]
    unflat = lambda s: s.reshape(L, T, B, n).transpose(1, 0, 2, 3)  # noqa: E731
    return {"y": y.reshape(T, B, -1), "h_next": unflat(r["h_next"]), "c_next": unflat(r["c_next"])}


def run_closed_loop(run: Callable[[dict], dict], mode: str, frames: np.ndarray, h: np.ndarray,
                    c: np.ndarray) -> dict:
    """The file carrying its own state: y (T, B, K); h_next, c_next per step (T, L, B, n), or in
    sequence mode the final state only (1, L, B, n)."""
    if mode == "sequence":
        r = run({"x": frames, "h": h, "c": c})
        return {"y": r["y"], "h_next": r["h_next"][None], "c_next": r["c_next"][None]}
    return ir.rollout(run, frames, (h, c), record=OUTPUTS).outputs


def _max_diff(got: np.ndarray, want: np.ndarray, what: str) -> float:
    if got.shape != want.shape:
        raise ValueError(f"validation: output {what!r} has shape {got.shape}, expected {want.shape}")
    d = np.abs(got.astype(np.float64) - want)
    return float(d.max()) if np.isfinite(d).all() else float("inf")


def compare(graph: ir.Graph, run: Callable[[dict], dict], *, mode: str, frames: np.ndarray,
            state: tuple[np.ndarray, np.ndarray], atol: float, drift_atol: float | None = None,
            source: str = "") -> ValidationReport:
    """Run the file (via ``run``) and the float64 reference over ``frames``; report the diffs."""
    frames = np.asarray(frames, np.float32)
    if frames.ndim != 3 or frames.shape[2] != graph.input_size:
        raise ValueError(f"validation frames must be (steps, batch, {graph.input_size}), "
                         f"got {frames.shape}")
    drift_atol = DRIFT_FACTOR * atol if drift_atol is None else float(drift_atol)
    h, c = (np.asarray(s, np.float32) for s in state)
    ref = reference(graph, frames, h, c, with_state=True)
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    per_step = run_per_step(run, mode, frames, f32(ref["h"]), f32(ref["c"]))
    loop = run_closed_loop(run, mode, frames, h, c)
    final = {"y": ref["y"], "h_next": ref["h_next"], "c_next": ref["c_next"]}
    if mode == "sequence":  # only the final state leaves a sequence graph
        final["h_next"], final["c_next"] = ref["h_next"][-1:], ref["c_next"][-1:]
    diffs = {k: _max_diff(per_step[k], ref[k], k) for k in OUTPUTS}
    drift = {k: _max_diff(loop[k], final[k], k) for k in OUTPUTS}
    scale = {k: float(np.abs(ref[k]).max()) for k in OUTPUTS}
    # what float32 itself drifts on this rollout: the step IR in float32 from the same state
    own = ir.rollout(graph, frames, (h, c), dtype=np.float32, record=OUTPUTS).outputs
    if mode == "sequence":
        own = {**own, "h_next": own["h_next"][-1:], "c_next": own["c_next"][-1:]}
    f32_drift = {k: _max_diff(own[k], final[k], k) for k in OUTPUTS}
    return ValidationReport(diffs, drift, scale, float(atol), drift_atol, frames.shape[0],
                            frames.shape[1], mode, source or "given frames",
                            float32_drift=f32_drift)


__all__ = ["ValidationReport", "ExportValidationError", "Opened", "open_file", "FRAME_SOURCES",
           "validation_frames", "initial_state", "reference", "run_per_step", "run_closed_loop", "compare",
           "DRIFT_FACTOR", "FLOAT32_DRIFT_FACTOR"]
