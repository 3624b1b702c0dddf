"""What to measure: the configurations (model file × backend × quantisation, and the baselines).

Formats, suffixes, the backends that read a format and the quantisation modes a format offers
all come from :mod:`slimedge.formats`: a backend's format is the table row whose ``backends``
name it, and only the backends :func:`slimedge.runtime.available_backends` reports are planned,
so a new row needs no change here. The one name this module adds is ``torch-cuda``, the torch
backend on a GPU (each step replayed from a CUDA graph).
"""
from __future__ import annotations

import importlib.util
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .. import formats
from ..errors import ModelFileError, UsageError

BASELINES = ("lstm", "none")
CUDA = "torch-cuda"  # the torch backend on a GPU, its step replayed from a CUDA graph
_CUDA_ALIASES = {"cuda": CUDA, "torch:cuda": CUDA}
TORCH_ONNX_BACKEND = "onnxruntime"  # where the torch.onnx baseline runs: what its users deploy on
NO_GPU = ("no GPU found (torch.cuda.is_available() is False): the torch CUDA backend, which "
          "replays each step from a CUDA graph, was not profiled")


@dataclass
class Config:
    """One model file on one backend: what a worker loads and times."""

    label: str       # e.g. "LSTM6 litert dynamic"
    name: str        # the model's name: its variant, file stem, or the baseline's name
    role: str        # "model", "lstm0" (LSTM0 through the same path) or "torch.onnx"
    backend: str     # a runtime backend name
    device: str      # "cpu" or "cuda"
    path: str        # the file the runtime loads
    format: str      # a row of slimedge.formats.FORMATS: onnx, tflite, safetensors, ...
    quantize: str    # none, dynamic, int8
    source: str | None = None  # the checkpoint it was exported from, if any
    group: int = 0   # which profiled model it belongs to (baselines share their model's group)


# ---- backends and their formats ----------------------------------------------------------------
def _backend_key(backend: str) -> tuple[str, str]:
    """``"torch-cuda"`` -> ("torch", "cuda"); others -> (name, "cpu")."""
    return ("torch", "cuda") if backend == CUDA else (backend, "cpu")


def backend_names() -> list[str]:
    """Every backend a format row names, and ``torch-cuda``: what ``backends=`` accepts."""
    names = dict.fromkeys(b for f in formats.FORMATS.values() for b in f.backends)
    return [*names, CUDA]


def format_of(backend: str) -> formats.Format:
    """The format ``backend`` reads: the first row whose ``backends`` name it."""
    name = _backend_key(backend)[0]
    if name in formats.backends():
        return formats.format_of(name)
    raise UsageError(f"unknown backend {backend!r}; valid: {', '.join(backend_names())}")


def available_backends() -> list[str]:
    """Installed CPU backends that read a format of the table, in the runtime's order (no
    library is imported)."""
    from .. import runtime

    known = set(backend_names())
    return [b for b in runtime.available_backends() if b in known]


def cuda_available() -> bool:
    """Whether torch sees a GPU (False when torch is not installed)."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def _wanted(backends: Sequence[str] | None, have: list[str], notes: list[str],
            cuda: bool = True) -> list[str]:
    """The backends to profile on: ``backends`` checked, or every installed one (and CUDA, where
    ``cuda``: a checkpoint is profiled, which the torch CUDA backend would read)."""
    if backends is None or len(backends) == 0:
        wanted = [b for b in have if b not in NOT_BY_DEFAULT] + ([CUDA] if cuda else [])
    else:
        valid = backend_names()
        wanted = []
        for b in backends:
            b = _CUDA_ALIASES.get(b, b)
            if b not in valid:
                raise UsageError(f"unknown backend {b!r}; valid: {', '.join(valid)}")
            if b not in wanted:
                wanted.append(b)
        missing = [b for b in wanted if _backend_key(b)[0] not in have]
        if missing:
            raise UsageError(f"backend(s) {', '.join(missing)} not installed here "
                             f"(installed: {', '.join(have) or 'none'})")
    if CUDA in wanted and not cuda_available():
        wanted.remove(CUDA)
        notes.append(NO_GPU)
        if not wanted:
            raise UsageError(NO_GPU)
    return wanted


def _label(name: str, backend: str, quantize: str) -> str:
    return " ".join(p for p in (name, backend, "" if quantize == "none" else quantize) if p)


def _suffix(quantize: str) -> str:
    return "" if quantize == "none" else "." + quantize


# What a backend needs of an export beyond its format's defaults: TFLite Micro runs only files
# written for it (no hybrid kernels; hard-sigmoid from ops it has), and offers no `dynamic`.
EXPORT_OPTIONS = {"tflm": {"compat": "tflm"}}
NO_DYNAMIC = {"tflm"}
# Profiled only when asked for (-b): TFLite Micro's reference kernels timed on this host say
# nothing about a microcontroller (`profile --target` measures those), and are slow.
NOT_BY_DEFAULT = ("tflm",)


def _modes(fmt: formats.Format, quantize: Sequence[str], notes: list[str],
           backend: str | None = None) -> list[str]:
    """The quantisation modes a checkpoint is profiled in on ``fmt`` (read by ``backend``): a
    format the runtime reads without export (the checkpoint itself) once, in float, whatever
    ``quantize`` asks."""
    if not fmt.exportable:
        return ["none"]
    offered = [q for q in fmt.quantize if not (q == "dynamic" and backend in NO_DYNAMIC)]
    for q in quantize:
        if q not in offered:
            notes.append(f"{backend or fmt.name} offers no {q!r} quantisation: not profiled")
    return [q for q in quantize if q in offered]


# ---- exports -----------------------------------------------------------------------------------
def _export(source: Path, fmt: formats.Format, quantize: str, out_dir: Path, stem: str, *,
            validate: bool, data=None, backend: str | None = None) -> tuple[Path, dict | None]:
    """The file a backend reading ``fmt`` loads for checkpoint ``source`` (exported when needed).

    ``validate=False`` (the random-weight baselines: only their speed matters) skips the export
    checks; a quantised baseline is still calibrated on real frames, ``data`` (the profiled
    model's data set)."""
    if not fmt.exportable:  # the checkpoint itself
        return source, None
    options = EXPORT_OPTIONS.get(backend, {})
    target = "".join(f".{v}" for v in options.values())  # a backend's own file: m.tflm.tflite
    path = out_dir / f"{stem}{_suffix(quantize)}{target}{fmt.suffix}"
    if path.exists():  # the same export asked for twice (e.g. for several backends)
        return path, None
    from .. import exporters

    result = exporters.export(source, path, format=fmt.name, mode="step", quantize=quantize,
                              validate=validate, data=data, **options)
    return path, (result.validation.to_dict() if result.validation else None)


def _model_data(info: formats.ModelInfo):
    """The data splits a model records (for calibrating quantised baselines), or None."""
    if not info.data or not info.data.get("name"):
        return None
    from .. import data

    try:
        return data.load_as_recorded(info.data)
    except (ValueError, ImportError, OSError):
        return None


# ---- the plan ----------------------------------------------------------------------------------
def plan(models: Sequence[str | os.PathLike | None], *, backends: Sequence[str] | None = None,
         quantize: Sequence[str] = ("none",), baseline: str = "lstm",
         workdir: str | os.PathLike, validate: bool = True,
         log: Callable[[str], None] = lambda s: None) -> tuple[list[Config], list[str], dict]:
    """The configurations to profile: every model × backend × quantisation, plus baselines.

    ``models``: checkpoints (exported here to each backend's format) or exports (profiled on the
    backends that read them); None means the shipped default model. Returns (configs, notes,
    validation reports by file).
    """
    from .. import baselines

    if baseline not in BASELINES:
        raise UsageError(f"unknown baseline {baseline!r}; valid: {', '.join(BASELINES)}")
    for q in quantize:
        if q not in formats.QUANTIZE:
            raise UsageError(f"unknown quantize mode {q!r}; valid: {', '.join(formats.QUANTIZE)}")
    notes: list[str] = []
    have = available_backends()
    models = [Path(m) if m is not None else None for m in (models or [None])]
    # no "no GPU found" for a run of exports only: the CUDA backend reads checkpoints
    checkpoints = any(m is None or formats.by_suffix(m.suffix) is formats.CHECKPOINT
                      for m in models)
    wanted = _wanted(backends, have, notes, cuda=checkpoints)
    for model in models:  # every file checked before any work starts
        if model is None:
            continue
        if not model.exists():
            raise ModelFileError(f"{model}: no such model file")
        fmt = formats.for_path(model)
        if fmt.exportable and not any(format_of(b) is fmt for b in wanted):
            raise UsageError(f"{model}: none of the backends {', '.join(wanted)} reads "
                             f"{fmt.suffix} files")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    configs: list[Config] = []
    validations: dict[str, dict] = {}
    seen_names: Counter = Counter()

    def add(name, role, backend, path, quantize_, source, group):
        be, dev = _backend_key(backend)
        configs.append(Config(_label(name, backend, quantize_), name, role, be, dev, str(path),
                              format_of(backend).name, quantize_,
                              str(source) if source else None, group))

    from ..zoo import resolve

    for group, model in enumerate(models):
        model = resolve(model)
        info = formats.info(model)
        fmt = formats.for_path(model)
        variant = info.variant or model.stem
        seen_names[variant] += 1
        name = variant if seen_names[variant] == 1 else f"{variant}#{seen_names[variant]}"
        gdir = workdir / f"{group}-{re.sub(r'[^A-Za-z0-9_.+-]', '_', name)}"  # a name is data
        gdir.mkdir(exist_ok=True)
        if not fmt.exportable:  # a checkpoint: exported here to each backend's format
            source = model
            todo = [(b, q) for b in wanted for q in _modes(format_of(b), quantize, notes, b)]
            # a checkpoint's float path is profiled on numpy/torch only once, whatever --quantize
            todo = list(dict.fromkeys(todo))
            for b, q in todo:
                log(f"exporting {name} for {b}{'' if q == 'none' else ' (' + q + ')'}")
                path, report = _export(source, format_of(b), q, gdir, name, validate=validate,
                                       backend=b)
                if report:
                    validations[str(path)] = report
                add(name, "model", b, path, q, source, group)
            shape_from = model
        else:  # an export: profiled on the backends that read it
            todo = [(b, info.quantize) for b in wanted if format_of(b) is fmt]
            for b, q in todo:
                add(name, "model", b, model, q, None, group)
            shape_from = info.config
        if baseline == "none":
            continue
        _plan_baselines(baselines, add, notes, model, info, name, group, gdir, todo, shape_from,
                        have, log)
    return configs, notes, validations


def _plan_baselines(baselines, add, notes, model, info, name, group, gdir, todo, shape_from,
                    have, log) -> None:
    """LSTM0 through exactly the model's formats, quantisation and backends, and torch.nn.LSTM
    through torch.onnx on onnxruntime (float and, for quantised configurations, dynamic)."""
    # baselines are named for their model when several models (or LSTM0 itself) are profiled
    tag = f" [{name}]" if group > 0 or name == "LSTM0" else ""
    lstm0 = baselines.lstm0_checkpoint(shape_from, gdir / f"LSTM0{formats.CHECKPOINT.suffix}")
    data = _model_data(info) if any(q != "none" for _, q in todo) else None
    for b, q in todo:
        if q != "none" and data is None:
            notes.append(f"LSTM0 {b} {q} not profiled: a quantised baseline is calibrated on "
                         f"the model's data set, and {model.name} records none")
            continue
        log(f"exporting the LSTM0 baseline for {b}{'' if q == 'none' else ' (' + q + ')'}")
        path, _ = _export(lstm0, format_of(b), q, gdir, "LSTM0", validate=False, data=data,
                          backend=b)
        add("LSTM0" + tag, "lstm0", b, path, q, lstm0, group)
    if TORCH_ONNX_BACKEND not in have:
        return
    fmt = format_of(TORCH_ONNX_BACKEND)
    qs = ["none"] + (["dynamic"] if any(q != "none" for _, q in todo) else [])
    for q in qs:
        log(f"exporting torch.nn.LSTM with torch.onnx{'' if q == 'none' else ' (' + q + ')'}")
        path = gdir / f"torch_lstm{_suffix(q)}{fmt.suffix}"
        try:
            baselines.torch_onnx_lstm(shape_from, path, dynamic=(q != "none"))
        except ImportError as e:
            notes.append(f"torch.onnx baseline skipped: {e}")
            break
        add(baselines.TORCH_ONNX + tag, "torch.onnx", TORCH_ONNX_BACKEND, path, q, None, group)
