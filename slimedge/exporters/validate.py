"""Export-time validation: run the written file against the source model and compare.

The reference is the step IR run by its NumPy interpreter in float64 (no torch): the float model
the file was made from. Both are stepped over the same frames from the same initial state; in step
mode the file is run closed-loop (its own ``h_next``/``c_next`` fed back each step), so the report
shows the drift a streaming app would see. The report holds, per output, the largest absolute
difference over every step and batch row, against ``atol``.

Frames come from the first source in :data:`FRAME_SOURCES` that has them: the model's own data set
(recorded in the checkpoint's ``info.data`` by training) when :mod:`slimedge.data` can load it, else
seeded random frames in the model's input scale (its normalisation's mean and std when it has one).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from .. import ir
from ..checkpoint import Checkpoint

OUTPUTS = ("y", "h_next", "c_next")


@dataclass
class ValidationReport:
    """Largest absolute difference of each output between the file and the float64 reference."""

    max_abs_diff: dict[str, float]
    max_abs_ref: dict[str, float]
    atol: float
    steps: int
    batch: int
    mode: str
    frames: str  # where the frames came from
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(d <= self.atol for d in self.max_abs_diff.values())

    @property
    def worst(self) -> tuple[str, float]:
        name = max(self.max_abs_diff, key=self.max_abs_diff.get)
        return name, self.max_abs_diff[name]

    def describe(self) -> str:
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in self.max_abs_diff.items())
        return f"max |diff| over {self.steps} steps x {self.batch} streams, {self.frames}: {diffs}"

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


class ExportValidationError(ValueError):
    """The exported file does not reproduce the source model within atol (no file was kept)."""

    def __init__(self, report: ValidationReport, path=None) -> None:
        self.report, self.path = report, path
        name, diff = report.worst
        where = f"{path}: " if path is not None else ""
        super().__init__(f"{where}validation failed, output {name!r} differs by {diff:.3g} "
                         f"> atol {report.atol:g} ({report.describe()}); no file written")


# ---- frames -----------------------------------------------------------------------------------
def _data_set_frames(ckpt: Checkpoint, steps: int, batch: int, *, seed: int, split: str):
    """Streams of real frames: the recorded data set's sequences, back to back."""
    rec = (ckpt.config.get("info") or {}).get("data") or {}
    name = rec.get("name") if isinstance(rec, dict) else None
    if not name:
        return None, "no data set recorded in the checkpoint"
    try:
        from .. import data
        kw = {k: rec[k] for k in ("split_seed", "val_fraction", "test_fraction", "limit")
              if rec.get(k) is not None}
        d = data.load(name, **kw)[split]
    except (ImportError, ValueError, OSError, KeyError) as e:
        return None, f"data set {name!r} not available ({type(e).__name__}: {e})"
    m = int(ckpt.lstm["input_size"])
    if d.input_size != m or len(d) == 0:
        return None, f"data set {name!r} has {d.input_size} features, the model takes {m}"
    out = np.empty((steps, batch, m), np.float32)
    for b in range(batch):
        k, got, parts = (b * len(d)) // batch, 0, []
        while got < steps:
            seq = d.sequence(k % len(d))
            parts.append(seq)
            got += len(seq)
            k += 1
        out[:, b] = np.concatenate(parts)[:steps]
    return out, f"{name} {split} split"


def _random_frames(ckpt: Checkpoint, steps: int, batch: int, *, seed: int, split: str):
    """Seeded normal frames in the model's input scale (its normalisation's mean and std)."""
    m = int(ckpt.lstm["input_size"])
    x = np.random.default_rng(seed).standard_normal((steps, batch, m))
    if "norm.mean" in ckpt.tensors:
        x = x * ckpt.tensors["norm.std"].astype(np.float64) + ckpt.tensors["norm.mean"]
    return x.astype(np.float32), f"seeded random frames (seed {seed})"


# the frame sources, tried in order; each returns (frames (T, B, m) or None, description)
FRAME_SOURCES: list[Callable] = [_data_set_frames, _random_frames]


def validation_frames(ckpt: Checkpoint, steps: int = 100, batch: int = 2, *, seed: int = 0,
                      split: str = "test") -> tuple[np.ndarray, str]:
    """Frames (steps, batch, m) float32 for validation (or calibration) and where they came from."""
    why = []
    for source in FRAME_SOURCES:
        frames, desc = source(ckpt, int(steps), int(batch), seed=seed, split=split)
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
def reference(graph: ir.Graph, frames: np.ndarray, h: np.ndarray, c: np.ndarray) -> dict:
    """Float64 per-step outputs: y (T, B, K), h_next and c_next (T, L, B, n)."""
    out = {k: [] for k in OUTPUTS}
    h, c = np.asarray(h, np.float64), np.asarray(c, np.float64)
    for x in np.asarray(frames, np.float64):
        r = graph.run({"x": x, "h": h, "c": c}, dtype=np.float64)
        for k in OUTPUTS:
            out[k].append(r[k])
        h, c = r["h_next"], r["c_next"]
    return {k: np.stack(v) for k, v in out.items()}


def run_file(run: Callable[[dict], dict], mode: str, frames: np.ndarray, h: np.ndarray,
             c: np.ndarray) -> dict:
    """The file's outputs in the layout of :func:`reference` (sequence mode: final state only)."""
    if mode == "sequence":
        r = run({"x": frames, "h": h, "c": c})
        return {"y": r["y"], "h_next": r["h_next"][None], "c_next": r["c_next"][None]}
    out = {k: [] for k in OUTPUTS}
    for x in frames:
        r = run({"x": x, "h": h, "c": c})
        for k in OUTPUTS:
            out[k].append(r[k])
        h, c = r["h_next"], r["c_next"]
    return {k: np.stack(v) for k, v in out.items()}


def compare(graph: ir.Graph, run: Callable[[dict], dict], *, mode: str, frames: np.ndarray,
            state: tuple[np.ndarray, np.ndarray], atol: float, source: str = "") -> ValidationReport:
    """Run the file (via ``run``) and the float64 reference over ``frames``; report the diffs."""
    frames = np.asarray(frames, np.float32)
    if frames.ndim != 3 or frames.shape[2] != graph.input_size:
        raise ValueError(f"validation frames must be (steps, batch, {graph.input_size}), "
                         f"got {frames.shape}")
    h, c = (np.asarray(s, np.float32) for s in state)
    ref = reference(graph, frames, h, c)
    got = run_file(run, mode, frames, h, c)
    if mode == "sequence":  # only the final state leaves a sequence graph
        ref["h_next"], ref["c_next"] = ref["h_next"][-1:], ref["c_next"][-1:]
    diffs, scale = {}, {}
    for k in OUTPUTS:
        if got[k].shape != ref[k].shape:
            raise ValueError(f"validation: output {k!r} has shape {got[k].shape}, "
                             f"expected {ref[k].shape}")
        d = np.abs(got[k].astype(np.float64) - ref[k])
        diffs[k] = float(np.nanmax(d)) if np.isfinite(d).all() else float("inf")
        scale[k] = float(np.abs(ref[k]).max())
    return ValidationReport(diffs, scale, float(atol), frames.shape[0], frames.shape[1], mode,
                            source or "given frames")


__all__ = ["ValidationReport", "ExportValidationError", "FRAME_SOURCES", "validation_frames",
           "initial_state", "reference", "run_file", "compare"]
