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

An audio front-end (samples -> frames: :mod:`.audio`, kinds ``logmel`` and ``microfrontend``) is
the optional ``audio`` section before the stages, ``{"audio": {"kind": "logmel", ...}, "stages":
[...]}``; :meth:`Frontend.stream` then takes PCM samples. It runs outside the step graph (the
model's step reads its frames); a config without it is unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from . import audio as audio_frontends
from . import standardize
from .standardize import Standardize

STAGES: dict[str, type] = {standardize.KIND: Standardize}
"""Stage kind -> its class. A new front-end stage is one module and one entry here."""


@dataclass(frozen=True)
class Frontend:
    """The stages before the model, in order (empty: the model reads raw frames), after the
    audio front-end ``audio`` when the model reads audio (None: it reads frames)."""

    stages: tuple = ()
    audio: object = None

    def __bool__(self) -> bool:
        return bool(self.stages) or self.audio is not None

    # ---- an audio front-end's framing --------------------------------------------------------
    @property
    def samples_per_frame(self) -> int | None:
        """Samples in one frame's window (None without an audio front-end)."""
        return None if self.audio is None else self.audio.window_samples

    @property
    def samples_per_hop(self) -> int | None:
        """Samples between frames (None without an audio front-end)."""
        return None if self.audio is None else self.audio.hop_samples

    @property
    def sample_rate(self) -> int | None:
        return None if self.audio is None else self.audio.sample_rate

    @property
    def state_size(self) -> int:
        """Numbers a stream keeps between pushes (sample overlap, noise estimates; 0 for the
        per-frame stages)."""
        return 0 if self.audio is None else self.audio.state_size

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(s.kind for s in self.stages)

    def describe(self) -> str:
        """The stages in words (an export's notes)."""
        parts = ([self.audio.description] if self.audio is not None else []) \
            + [s.description for s in self.stages]
        return ", then ".join(parts) or "none"

    # ---- the spec ------------------------------------------------------------------------------
    def to_config(self) -> dict:
        out: dict = {"stages": [s.to_config() for s in self.stages]}
        if self.audio is not None:
            out = {"audio": self.audio.to_config(), **out}
        return out

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
        audio = None
        if section is not None and section.get("audio") is not None:
            audio = audio_frontends.from_config(section["audio"])
        stages = []
        for j, spec in enumerate(specs):
            if not isinstance(spec, Mapping) or not isinstance(spec.get("kind"), str):
                raise ValueError(f"frontend.stages[{j}] must be an object with a kind")
            if spec["kind"] not in STAGES:
                raise ValueError(f"frontend.stages[{j}]: unknown front-end stage "
                                 f"{spec['kind']!r}; valid: {', '.join(STAGES)}")
            stages.append(STAGES[spec["kind"]].from_config(spec))
        return cls(tuple(stages), audio)

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
        return Frontend(tuple(s.bind(tensors) for s in self.stages), self.audio)

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
    """A front-end run as a stream: :meth:`push` raw frames (or, with an audio front-end, PCM
    samples of any length), get the model's input frames completed so far. The per-frame stages
    keep no state; the audio front-end's (window overlap, noise estimates) lives here."""

    def __init__(self, frontend: Frontend) -> None:
        self.frontend = frontend
        self.audio = None if frontend.audio is None else audio_frontends.AudioStream(frontend.audio)

    def push(self, x: np.ndarray) -> np.ndarray:
        if self.audio is not None:
            x = self.audio.push(x)
        return self.frontend.reference(x)

    def reset(self) -> None:
        if self.audio is not None:
            self.audio.reset()


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
