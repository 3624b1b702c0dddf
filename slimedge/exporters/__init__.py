"""Exporters: a SLIM model as an ONNX or TFLite file with only the work its variant needs.

One public function, :func:`export`. Every format walks the same step IR (:mod:`slimedge.ir`);
a format is a module with

    SUFFIX                               the file suffix, e.g. ".onnx"
    write(graph, path, *, mode, **opts)  write the float graph (mode "step" or "sequence")
    runner(path) -> run(feeds) -> dict   run the file (float32 feeds) for validation

found by name in :data:`FORMATS` and imported on first use (so ``tflite`` appears as soon as
``slimedge/exporters/tflite.py`` exists), or registered directly in :data:`EMITTERS` and
:data:`RUNNERS`. Quantised exports are a plain dict too: :data:`QUANTIZERS` maps
``(format, quantize)`` to ``fn(graph, path, *, mode, checkpoint, **opts)`` that writes the
quantised file; a module ``slimedge.exporters.quantization`` is imported on first use to fill it.
No torch is imported here.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import checkpoint as _checkpoint
from .. import ir
from .._io import atomic_path, check_writable
from .validate import ExportValidationError, ValidationReport, compare, initial_state, validation_frames

MODES = ("step", "sequence")
QUANTIZE = ("none", "dynamic", "int8")

# format name -> module that implements it (imported lazily)
FORMATS: dict[str, str] = {"onnx": "slimedge.exporters.onnx", "tflite": "slimedge.exporters.tflite"}
EMITTERS: dict[str, Callable] = {}   # format -> write(graph, path, *, mode, **options)
RUNNERS: dict[str, Callable] = {}    # format -> runner(path) -> run(feeds) -> outputs
SUFFIXES: dict[str, str] = {}        # format -> file suffix
QUANTIZERS: dict[tuple[str, str], Callable] = {}  # (format, quantize) -> fn(graph, path, ...)
# modules that may register quantizers, imported once on first quantised export
QUANTIZER_MODULES: list[str] = ["slimedge.exporters.quantize"]
# default validation tolerance per quantisation; a quantizer module adds its own
DEFAULT_ATOL: dict[str, float] = {"none": 1e-5}
DEFAULT_VALIDATION_STEPS = 100
DEFAULT_VALIDATION_BATCH = 2


@dataclass
class ExportResult:
    """What :func:`export` wrote and how it validated."""

    path: Path
    format: str
    mode: str
    quantize: str
    size_bytes: int
    summary: dict  # the step graph's census, params and MACs (ir.Graph.summary())
    validation: ValidationReport | None = None
    notes: list[str] = field(default_factory=list)
    quantization: dict | None = None  # what the quantizer reports (its task-level check included)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "format": self.format, "mode": self.mode,
                "quantize": self.quantize, "size_bytes": self.size_bytes, "summary": self.summary,
                "validation": self.validation.to_dict() if self.validation else None,
                "notes": self.notes, "quantization": self.quantization}


# ---- registries -----------------------------------------------------------------------------
def _import_optional(module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:  # the module itself is absent, not one of its imports
            return None
        raise


def format_module(name: str) -> None:
    """Make sure format ``name`` is registered (importing its module), or raise ValueError."""
    if name in EMITTERS:
        return
    known = sorted(set(FORMATS) | set(EMITTERS))
    if name not in FORMATS:
        raise ValueError(f"unknown format {name!r}; valid: {', '.join(known)}")
    mod = _import_optional(FORMATS[name])
    if mod is None:
        raise ValueError(f"format {name!r} is not available in this installation "
                         f"({FORMATS[name]} is missing)")
    if not (callable(getattr(mod, "write", None)) and callable(getattr(mod, "runner", None))):
        raise ValueError(f"format {name!r} is not available yet ({FORMATS[name]} does not "
                         f"provide write() and runner())")
    EMITTERS[name], RUNNERS[name] = mod.write, mod.runner
    SUFFIXES[name] = getattr(mod, "SUFFIX", f".{name}")


def suffix(format: str) -> str:
    format_module(format)
    return SUFFIXES.get(format, f".{format}")


_quantizers_loaded = False


def _quantizer(format: str, quantize: str) -> Callable | None:
    global _quantizers_loaded
    if quantize not in QUANTIZE:
        raise ValueError(f"unknown quantize {quantize!r}; valid: {', '.join(QUANTIZE)}")
    if quantize == "none":
        return None
    if not _quantizers_loaded:
        for module in QUANTIZER_MODULES:
            _import_optional(module)
        _quantizers_loaded = True
    if (format, quantize) not in QUANTIZERS:
        raise ValueError(f"quantize={quantize!r} is not implemented for format {format!r} yet "
                         f"(no quantizer registered); export with quantize='none'")
    return QUANTIZERS[(format, quantize)]


# ---- sources --------------------------------------------------------------------------------
def as_checkpoint(model: Any) -> _checkpoint.Checkpoint:
    """A :class:`~slimedge.checkpoint.Checkpoint` from a path, a Checkpoint, or a slimedge model
    (anything with ``checkpoint_state()``: ``SlimLSTM``, ``SequenceClassifier``, ...)."""
    if isinstance(model, _checkpoint.Checkpoint):
        return model
    if isinstance(model, (str, os.PathLike)):
        return _checkpoint.read(model)
    if hasattr(model, "checkpoint_state"):
        config, tensors = model.checkpoint_state()

        def to_numpy(t):
            t = t.detach().cpu().numpy() if hasattr(t, "detach") else t
            return np.asarray(t, dtype=np.float32)  # what a saved checkpoint would hold
        return _checkpoint.Checkpoint(config=dict(config),
                                      tensors={k: to_numpy(v) for k, v in tensors.items()})
    raise ValueError(f"cannot export a {type(model).__name__}: give a checkpoint path, a "
                     f"Checkpoint, or a slimedge model (SlimLSTM, SequenceClassifier, ...)")


def _same_file(a: Path, b: Path | None) -> bool:
    try:
        return b is not None and a.exists() and os.path.samefile(a, b)
    except OSError:
        return False


# ---- the public function --------------------------------------------------------------------
def export(model: Any, path: str | os.PathLike, *, format: str = "onnx", mode: str = "step",
           quantize: str = "none", atol: float | None = None, validate: bool = True,
           validation_steps: int = DEFAULT_VALIDATION_STEPS,
           validation_batch: int = DEFAULT_VALIDATION_BATCH, frames: np.ndarray | None = None,
           seed: int = 0, drift_atol: float | None = None, **options: Any) -> ExportResult:
    """Export a SLIM model to one file, validate it, and only then put it at ``path``.

    Args:
        model: a checkpoint path, a :class:`~slimedge.checkpoint.Checkpoint`, or a loaded slimedge
            model (``SequenceClassifier``, a bare ``SlimLSTM`` whose ``y`` is its top layer's h).
        path: the file to write. Written atomically: a temporary file beside it is written and
            validated first; on any failure nothing is left at ``path`` (an older file stays).
        format: ``"onnx"`` or ``"tflite"`` (see :data:`FORMATS`).
        mode: ``"step"`` (one time step: x, h, c -> y, h_next, c_next) or ``"sequence"`` (a whole
            sequence, time symbolic; initial and final state exposed).
        quantize: ``"none"``, ``"dynamic"`` or ``"int8"`` (needs a registered quantizer).
        atol: the largest absolute difference allowed per output (default 1e-5 for float graphs,
            see :data:`DEFAULT_ATOL`).
        validate: run the file against the float64 step IR over ``validation_steps`` steps of
            ``validation_batch`` streams and fail (raising
            :class:`~slimedge.exporters.validate.ExportValidationError`) when an output differs
            by more than ``atol`` at any step (each step run from the reference's state), or
            drifts by more than ``drift_atol`` (default 10 x atol) when the file carries its own
            state through the whole rollout (see :mod:`slimedge.exporters.validate`).
        frames: validation frames (steps, batch, m); default: the model's data set when installed,
            else seeded random frames.
        options: passed to the format's writer (e.g. ``opset`` for ONNX).

    Returns:
        :class:`ExportResult` with the path, size, the graph's census and the validation report.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    format_module(format)
    quantizer = _quantizer(format, quantize)
    if atol is None:
        atol = DEFAULT_ATOL.get(quantize, DEFAULT_ATOL["none"])
    if not atol > 0:
        raise ValueError(f"atol must be positive, got {atol}")
    if int(validation_steps) < 1 or int(validation_batch) < 1:
        raise ValueError("validation_steps and validation_batch must be at least 1")
    ckpt = as_checkpoint(model)
    graph = ir.lower(ckpt)

    path = Path(path)
    check_writable(path)
    if _same_file(path, ckpt.path):
        raise ValueError(f"{path}: refusing to overwrite the model being exported")
    others = {s: f for f in FORMATS if f != format for s in [suffix(f)]}
    if path.suffix.lower() in others:
        other = others[path.suffix.lower()]
        raise ValueError(f"{path}: the suffix {path.suffix} is for {other} files, and this is a "
                         f"{format} export; name it *{suffix(format)} or choose --format {other}")
    # the graph the file holds: a float file folds the input normalisation into the first
    # layer's input matmul(s); quantizers get the unfolded graph (they quantise the normalised
    # input, whose features share one range, and keep x·s + t in float). Either way the file is
    # validated against the unfolded graph, the model as trained.
    written = ir.lower(ckpt, fold_normalization=True) if quantizer is None else graph
    with atomic_path(path, suffix=suffix(format)) as tmp:
        if quantizer is None:
            EMITTERS[format](written, tmp, mode=mode, **options)
        else:
            qinfo = quantizer(graph, tmp, mode=mode, checkpoint=ckpt, **options)
        report = None
        if validate:
            if frames is None:
                frames, source = validation_frames(ckpt, validation_steps, validation_batch,
                                                   seed=seed)
            else:
                source = "frames given by the caller"
            frames = np.asarray(frames, np.float32)
            state = initial_state(graph, frames.shape[1], seed=seed)
            report = compare(graph, RUNNERS[format](tmp), mode=mode, frames=frames, state=state,
                             atol=atol, drift_atol=drift_atol, source=source)
            if not report.passed:
                raise ExportValidationError(report, path)
    result = ExportResult(path, format, mode, quantize, path.stat().st_size, written.summary(),
                          report)
    if quantizer is not None and isinstance(qinfo, dict):
        result.quantization = qinfo
    return result


__all__ = ["export", "ExportResult", "ExportValidationError", "ValidationReport", "as_checkpoint",
           "FORMATS", "EMITTERS", "RUNNERS", "QUANTIZERS", "DEFAULT_ATOL", "MODES", "QUANTIZE",
           "validation_frames", "suffix"]
