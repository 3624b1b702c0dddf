"""Front-ends as data: the stages from raw input to the model's frames, a spec plus a float64 reference.

A front-end is a sequence of stages, each a small class registered in :data:`STAGES` under its
``kind``. Its spec is JSON, recorded in every checkpoint and export config as::

    "frontend": {"stages": [{"kind": "standardize"}, ...]}

(hyperparameters only: a stage's learned arrays are checkpoint tensors it names). A config written
before front-ends were data has no ``frontend`` section; :meth:`Frontend.from_config` reads its
``normalization`` field as the standardisation stage (:func:`.standardize.legacy`), so old files
load and behave as before.

One rule for every consumer:

* ``ir.lower`` asks each stage to :meth:`lower` itself into IR primitives before the model's step
  (nodes tagged ``role="frontend"``); the model's step keeps its contract x, h, c -> y, h', c' and
  reads the front-end's output (:attr:`slimedge.ir.Graph.features`). A float export may let a
  stage fold itself into what reads it (``lower(..., fold_normalization=True)``).
* Quantised files compute the front-end in float and quantise its output; a file with integer
  inputs leaves the front-end out of its graph and records :meth:`companion` in
  ``export.io_quantization.x``; its readers apply :func:`outside` before quantising x.
* Checkpoints check a stage's tensors with its :meth:`check`; training builds its torch module
  from the same spec (:mod:`slimedge.models.frontend`).

A stage provides: ``kind``, ``to_config()``, ``from_config(spec)``, ``output_size(m)``,
``tensor_shapes(m)``, ``check(tensors)``, ``bind(tensors)``, ``reference(x)`` (float64),
``typical_input(z)``, ``lower(builder, x) -> value``, optionally ``fold(graph)``, and
``companion()`` / ``from_companion(record)``. No torch is imported here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from . import standardize
from .standardize import Standardize

STAGES: dict[str, type] = {standardize.KIND: Standardize}
"""Stage kind -> its class. A new front-end stage is one module and one entry here."""


@dataclass(frozen=True)
class Frontend:
    """The stages before the model, in order (empty: the model reads raw frames)."""

    stages: tuple = ()

    def __bool__(self) -> bool:
        return bool(self.stages)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(s.kind for s in self.stages)

    def describe(self) -> str:
        """The stages in words (an export's notes)."""
        return ", then ".join(s.description for s in self.stages) or "none"

    # ---- the spec ------------------------------------------------------------------------------
    def to_config(self) -> dict:
        return {"stages": [s.to_config() for s in self.stages]}

    @classmethod
    def from_config(cls, config: Mapping) -> "Frontend":
        """The front-end a model config describes (its ``frontend`` section, or an old config's
        ``normalization``); ValueError for an unknown stage or a malformed section."""
        section = config.get("frontend")
        if section is None:
            specs = standardize.legacy(config)
        else:
            if not isinstance(section, Mapping) or not isinstance(section.get("stages"), list):
                raise ValueError("frontend must be an object with a list of stages")
            specs = section["stages"]
        stages = []
        for j, spec in enumerate(specs):
            if not isinstance(spec, Mapping) or not isinstance(spec.get("kind"), str):
                raise ValueError(f"frontend.stages[{j}] must be an object with a kind")
            if spec["kind"] not in STAGES:
                raise ValueError(f"frontend.stages[{j}]: unknown front-end stage "
                                 f"{spec['kind']!r}; valid: {', '.join(STAGES)}")
            stages.append(STAGES[spec["kind"]].from_config(spec))
        return cls(tuple(stages))

    def tensor_shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        """The checkpoint tensors the stages need, by name, for ``input_size`` raw features."""
        out, m = {}, input_size
        for s in self.stages:
            out.update(s.tensor_shapes(m))
            m = s.output_size(m)
        return out

    def neutral_tensors(self, input_size: int) -> dict[str, np.ndarray]:
        """Parameters that leave the input as it is (a profiled model of made-up weights)."""
        out, m = {}, input_size
        for s in self.stages:
            out.update(s.neutral_tensors(m))
            m = s.output_size(m)
        return out

    def unbounded(self) -> set[str]:
        """Tensors in the raw input's units, exempt from the checkpoint's weight limit."""
        return {t for s in self.stages for t in getattr(s, "unbounded", ())}

    def check(self, tensors: Mapping[str, np.ndarray]) -> None:
        for s in self.stages:
            s.check(tensors)

    def bind(self, tensors: Mapping[str, np.ndarray]) -> "Frontend":
        """The same stages with their parameters from ``tensors``."""
        return Frontend(tuple(s.bind(tensors) for s in self.stages))

    # ---- the reference -------------------------------------------------------------------------
    def reference(self, x: np.ndarray) -> np.ndarray:
        """float64: raw frames (..., m) -> the model's input features."""
        x = np.asarray(x, np.float64)
        for s in self.stages:
            x = s.reference(x)
        return x

    def typical_input(self, z: np.ndarray) -> np.ndarray:
        """Raw input whose front-end output is about ``z`` (standard normal features): the scale
        validation frames are drawn at."""
        x = np.asarray(z, np.float64)
        for s in reversed(self.stages):
            x = s.typical_input(x)
        return x

    def stream(self) -> "Stream":
        return Stream(self)

    # ---- lowering ------------------------------------------------------------------------------
    def lower(self, bld, x: str) -> str:
        """Emit every stage into the step graph being built; returns the model's input value."""
        for s in self.stages:
            x = s.lower(bld, x)
        return x

    def fold(self, g) -> None:
        """Let the last stage fold itself into the model's first ops, where it offers to."""
        if self.stages and hasattr(self.stages[-1], "fold"):
            self.stages[-1].fold(g)

    # ---- outside a file's graph ------------------------------------------------------------------
    def companion(self) -> dict:
        """What a file whose graph starts at the front-end's output records for its reader."""
        out: dict = {}
        for s in self.stages:
            out.update(s.companion())
        return out


class Stream:
    """A front-end run as a stream: :meth:`push` raw frames, get the model's input frames. The
    stages today work frame by frame (no state); a stage with state (an audio front-end's
    overlapping windows) keeps it here."""

    def __init__(self, frontend: Frontend) -> None:
        self.frontend = frontend

    def push(self, x: np.ndarray) -> np.ndarray:
        return self.frontend.reference(x)

    def reset(self) -> None:
        pass


def of_checkpoint(ckpt) -> Frontend:
    """The bound front-end of a :class:`~slimedge.checkpoint.Checkpoint`."""
    return Frontend.from_config(ckpt.config).bind(ckpt.tensors)


def outside(config: Mapping) -> Callable[[np.ndarray], np.ndarray] | None:
    """The front-end an export with integer inputs leaves to its reader (applied in float32 to a
    raw frame before quantising x), from its metadata; None when the file's graph starts at the
    raw input (every float-input file)."""
    record = ((config.get("export") or {}).get("io_quantization") or {}).get("x") or {}
    if not record:
        return None
    fns = [f for s in Frontend.from_config(config).stages
           if (f := type(s).from_companion(record)) is not None]
    if not fns:
        return None

    def apply(x):
        for f in fns:
            x = f(x)
        return x
    return apply


__all__ = ["Frontend", "Stream", "STAGES", "Standardize", "of_checkpoint", "outside"]
