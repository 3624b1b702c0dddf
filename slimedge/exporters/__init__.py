"""Exporters: a SLIM model as a file with only the work its variant needs, validated.

One public function, :func:`export`. Every format walks the same step IR (:mod:`slimedge.ir`);
where a format's writer and quantizers live is one row of the format table
(:mod:`slimedge.formats`): adding a format is one module and one row, nothing here. Float files
are written by the row's writer from the graph with the front-end folded in where it
folds; quantised ones by
the row's quantizer, calibrated on the model's data (:mod:`.quantize`). Exporters only write: the
written file is then opened through the runtime, once per interpreter it is validated on, judged
on the task (quantised files) and against the float64 step IR (:mod:`.validate`). One export reads
the checkpoint once, loads its data set once, and checks every option here, at its entry. No
torch is imported here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import checkpoint as _checkpoint
from .. import extras, formats, integrity, ir
from .._io import atomic_files, check_writable
from ..errors import QuantizationError, UsageError
from ..formats import MODES, QUANTIZE
from . import quantize as _quantize
from . import validate_audio
from .validate import (
    ExportValidationError,
    ValidationReport,
    compare,
    initial_state,
    open_file,
    validation_frames,
)

FLOAT_ATOL = 1e-5  # the per-step tolerance of a float file against the float64 model
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
    audio: Any = None  # the audio front-end's check (validate_audio.AudioReport), if it has one
    target: dict | None = None  # what the file's own interpreter measured validating it, where its
    # backend reports it (TFLite Micro: interpreter, arena_bytes, arena_used_bytes, integer_io)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "format": self.format, "mode": self.mode,
                "quantize": self.quantize, "size_bytes": self.size_bytes, "summary": self.summary,
                "validation": self.validation.to_dict() if self.validation else None,
                "notes": self.notes, "quantization": self.quantization, "target": self.target,
                "audio": self.audio.to_dict() if self.audio else None}


# ---- sources --------------------------------------------------------------------------------
def as_checkpoint(model: Any) -> _checkpoint.Checkpoint:
    """A :class:`~slimedge.checkpoint.Checkpoint` from a path, a Checkpoint, or a slimedge model
    (anything with ``checkpoint_state()``: ``SlimLSTM``, ``SequenceClassifier``, ...)."""
    if isinstance(model, _checkpoint.Checkpoint):
        return model
    if isinstance(model, (str, os.PathLike)):
        kind = formats.by_suffix(Path(model).suffix)
        if kind is not None and kind is not formats.CHECKPOINT:
            raise UsageError(f"{model}: export takes a checkpoint ({formats.CHECKPOINT.suffix}), "
                             f"and this is a {kind.name} file; export the checkpoint it was "
                             f"made from")
        return _checkpoint.read(model)
    if hasattr(model, "checkpoint_state"):
        config, tensors = model.checkpoint_state()

        def to_numpy(t):
            t = t.detach().cpu().numpy() if hasattr(t, "detach") else t
            return np.asarray(t, dtype=np.float32)  # what a saved checkpoint would hold
        return _checkpoint.Checkpoint(config=dict(config),
                                      tensors={k: to_numpy(v) for k, v in tensors.items()})
    raise UsageError(f"cannot export a {type(model).__name__}: give a checkpoint path, a "
                     f"Checkpoint, or a slimedge model (SlimLSTM, SequenceClassifier, ...)")


def _same_file(a: Path, b: Path | None) -> bool:
    try:
        return b is not None and a.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def suffix(format: str) -> str:
    """The file suffix of ``format`` (e.g. ``".onnx"``)."""
    return formats.get(format).suffix


def default_name(stem: str, format: str, quantize: str = "none") -> str:
    """The file name for an export of the model ``stem`` when none is given: the quantisation in
    the name, so that exports in different modes never replace each other (``m.int8.tflite``)."""
    tag = "" if quantize == "none" else f".{quantize}"
    return f"{stem}{tag}{suffix(format)}"


def _target(path: Path, fmt: formats.Format, source: Path | None) -> Path:
    """The main file to write: for a format with companion files (C: a .c and a .h), a folder
    or a suffix-less name means the files go inside it, named after the model."""
    if fmt.companions and (path.is_dir() or not path.suffix):
        stem = source.stem if source is not None else "model"
        return path / f"{stem}{fmt.suffix}"
    return path


# ---- the public function --------------------------------------------------------------------
def export(model: Any, path: str | os.PathLike, *, format: str = "onnx", mode: str = "step",
           quantize: str = "none", atol: float | None = None, validate: bool = True,
           validation_steps: int = DEFAULT_VALIDATION_STEPS,
           validation_batch: int = DEFAULT_VALIDATION_BATCH, frames: np.ndarray | None = None,
           seed: int = 0, drift_atol: float | None = None, data: Any = None,
           **options: Any) -> ExportResult:
    """Export a SLIM model to one file, validate it, and only then put it at ``path``.

    Args:
        model: a checkpoint path, a :class:`~slimedge.checkpoint.Checkpoint`, or a loaded slimedge
            model (``SequenceClassifier``, a bare ``SlimLSTM`` whose ``y`` is its top layer's h).
        path: the file to write. Written atomically: the file is written and validated in a
            temporary folder beside it first; on any failure nothing is left at ``path`` (an older
            file stays). For the C format a folder (or a name without suffix) takes the .c and
            .h files named after the model.
        format: a row of :data:`slimedge.formats.FORMATS` that export writes (``"onnx"``,
            ``"tflite"``, ``"c"``).
        mode: ``"step"`` (one time step: x, h, c -> y, h_next, c_next) or ``"sequence"`` (a whole
            sequence, time symbolic; initial and final state exposed; ONNX only).
        quantize: ``"none"``, ``"dynamic"`` or ``"int8"`` (the modes the format's row offers).
        atol: the largest absolute difference allowed per output (default 1e-5 for float files;
            for quantised ones a loose guard, see :mod:`slimedge.exporters.quantize`).
        validate: run the file against the float64 step IR over ``validation_steps`` steps of
            ``validation_batch`` streams and fail (raising
            :class:`~slimedge.exporters.validate.ExportValidationError`) when an output differs
            by more than ``atol`` at any step (each step run from the reference's state), or
            drifts by more than ``drift_atol`` (default 10 x atol) when the file carries its own
            state through the whole rollout (see :mod:`slimedge.exporters.validate`).
        frames: validation frames (steps, batch, m); default: the model's data set when installed,
            else seeded random frames.
        data: for quantised exports, the data set to calibrate and judge on (a name, a ``.npz``
            path or a DataSplits); default: the one the checkpoint records.
        options: passed to the format's writer (e.g. ``opset`` for ONNX), or for quantised
            exports to :class:`~slimedge.exporters.quantize.QuantizeOptions` (an unknown name is an
            error).

    Returns:
        :class:`ExportResult` with the path, size, the graph's census and the validation report.
    """
    fmt = formats.get(format)
    if not fmt.exportable:
        raise UsageError(f"{fmt.name} files are not written by export; valid formats: "
                         f"{', '.join(formats.exportable())}")
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    if mode not in fmt.modes:
        raise UsageError(f"{fmt.name} exports write {' or '.join(fmt.modes)} graphs, not "
                         f"mode={mode!r}; export ONNX for a sequence graph")
    _quantize.check(fmt, quantize, mode)
    if quantize != "none":
        tolerance = options.pop("accuracy_tolerance", _quantize.DEFAULT_ACCURACY_TOLERANCE)
        qopts = _quantize.QuantizeOptions.of(**options).check_for(fmt.name, quantize)
    if atol is None:
        atol = FLOAT_ATOL if quantize == "none" else _quantize.ATOL[quantize]
    if not (atol > 0 and np.isfinite(atol)):  # inf would switch validation off silently
        raise UsageError(f"atol must be positive (and finite), got {atol}")
    if drift_atol is not None and not (drift_atol > 0 and np.isfinite(drift_atol)):
        raise UsageError(f"drift_atol must be positive (and finite), got {drift_atol}")
    if int(validation_steps) < 1 or int(validation_batch) < 1:
        raise UsageError("validation_steps and validation_batch must be at least 1")
    for name, value in (("validation_steps", validation_steps),
                        ("validation_batch", validation_batch)):
        if int(value) > formats.LIMITS[name]:
            raise UsageError(f"{name} is {int(value):,}, over slimedge's limit of "
                             f"{formats.LIMITS[name]:,}")
    _require(fmt, checkpoint_file=isinstance(model, (str, os.PathLike)), validate=validate,
             quantize=quantize, options=options)
    ckpt = as_checkpoint(model)
    graph = ir.lower(ckpt)

    path = _target(Path(path), fmt, ckpt.path)
    check_writable(path)
    if _same_file(path, ckpt.path):
        raise UsageError(f"{path}: refusing to overwrite the model being exported")
    check_path = getattr(fmt.exporter(), "check_path", None)  # names the format cannot write
    if check_path is not None:
        check_path(path)
    for companion in fmt.companions:  # a C export's .h beside it: never over the model itself
        beside = path.with_suffix(companion) if companion.startswith(".") else \
            path.with_name(companion)
        if _same_file(beside, ckpt.path):
            raise UsageError(f"{path}: its companion file {beside.name} would overwrite the model "
                             f"being exported ({ckpt.path}); give the export another name or "
                             f"folder")
    other = formats.by_suffix(path.suffix)
    if other is not None and other is not fmt:
        hint = (f"choose --format {other.name}" if other.exportable
                else f"name it *{fmt.suffix}")
        raise UsageError(f"{path}: the suffix {path.suffix} is for {other.name} files, and this "
                         f"is a {fmt.name} export; name it *{fmt.suffix} or {hint}")
    if path.suffix.lower() != fmt.suffix:  # "m.pb", "m.int8": a file no reader would recognise
        tag = path.suffix[1:] in (*QUANTIZE, *MODES) or not path.suffix
        better = path.name + fmt.suffix if tag else path.with_suffix(fmt.suffix).name
        raise UsageError(f"{path}: a {fmt.name} export must end in {fmt.suffix} (slimedge tells "
                         f"model files by their suffix), e.g. {better}")
    # the graph the file holds: a float file takes the front-end's lowering rule for floats (the
    # standardisation folds into the first layer's input matmul(s)); quantizers get the unfolded
    # graph (they quantise the front-end's output, whose features share one range, and keep the
    # front-end in float). Either way the file is validated against the unfolded graph, the
    # model as trained.
    written = ir.lower(ckpt, fold_normalization=True) if quantize == "none" else graph
    # the model's data set, loaded once: calibration, the task check and the validation frames
    needs_data = quantize == "int8" or (quantize != "none" and validate)
    splits = _quantize.model_data(ckpt, data) if needs_data else None
    qinfo = None
    with atomic_files(path, fmt.companions) as tmp:
        if quantize == "none":
            fmt.writer()(written, tmp, mode=mode, **options)
        else:
            try:
                qinfo = fmt.quantizer(quantize)(graph, tmp, mode=mode, splits=splits,
                                                options=qopts)
            except QuantizationError as e:  # named by the model it quantises
                if ckpt.path is None or str(ckpt.path) in str(e):
                    raise
                raise QuantizationError(f"{ckpt.path}: {e}") from None
        report = measured = audio_report = None
        if validate:
            # the written file, opened once per interpreter it is validated on
            opened = [open_file(tmp, b, mode) for b in fmt.validators(fmt.read_config(tmp))]
            if quantize != "none":
                _quantize.judge(qinfo, graph, opened[0].run, fmt.name, quantize, splits,
                                tolerance, tmp)
            if frames is None:
                frames, source = validation_frames(ckpt, validation_steps, validation_batch,
                                                   seed=seed, splits=splits)
            else:
                source = "frames given by the caller"
            frames = np.asarray(frames, np.float32)
            state = initial_state(graph, frames.shape[1], seed=seed)
            for o in opened:
                report = compare(graph, o.run, mode=mode, frames=frames, state=state, atol=atol,
                                 drift_atol=drift_atol, source=source)
                if not report.passed:
                    raise ExportValidationError(report, path)
                audio_report = validate_audio.check(ckpt.config, fmt.read_config(tmp), o.model,
                                                    path, atol=atol) or audio_report
            measured = opened[0].measured
        integrity.seal(tmp)  # the file's digest over its placeholder (checked when it is loaded)
    result = ExportResult(path, fmt.name, mode, quantize, path.stat().st_size, written.summary(),
                          report, target=measured)
    if isinstance(qinfo, dict):
        result.quantization = qinfo
    result.audio = audio_report
    return result


def _require(fmt: formats.Format, *, checkpoint_file: bool, validate: bool, quantize: str,
             options: dict) -> None:
    """What this export needs, checked before any work (MissingDependency names the extra):
    safetensors to read a checkpoint file, the writer's packages, and the interpreters that
    validate the file."""
    modules = [*(("safetensors",) if checkpoint_file else ()), *fmt.write_needs,
               *(fmt.quantize_needs if quantize != "none" else ())]
    if validate:
        compat = {"export": {"compat": options.get("compat")}}
        modules += [m for b in fmt.validators(compat) for m in formats.backend(b).requires]
    extras.require("export", f"exporting to {fmt.name}", *modules)


__all__ = ["export", "ExportResult", "ValidationReport", "default_name"]
