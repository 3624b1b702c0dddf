"""The table of model file formats: per format its suffix, reader, runtime backends and writer.

A format is one row of :data:`FORMATS` (a :class:`~.table.Format`), declared in the format's own
package beside the code that reads, opens and steps its files:

    safetensors/   checkpoints: the ``numpy`` and ``torch`` backends
    onnx/          its reader and the ``onnxruntime`` backend
    tflite/        its reader and the ``litert`` and ``tflm`` backends
    c/             the ``c`` backend (compile once, step via ctypes)

The runtime, the exporters (which write files, then validate them through the runtime), the
profiler and the command line all ask this table, and nothing else in slimedge states a suffix.
:func:`register` adds a row (a new format: one module and one row); the backends, the extras they
need and the command line's choices are derived from the rows. A format or backend of your own
reaches every process slimedge starts (the profiler's workers) through ``$SLIMEDGE_FORMATS``: a
comma-separated list of modules, each with a ``FORMAT`` row, registered when this package is
imported. :class:`ModelInfo` is the typed view of any model file's config (:mod:`.model_info`).

Importing this package imports no interpreter, no torch, and nothing from ``slimedge.exporters``.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

from ..errors import ModelFileError, UsageError
from . import c, onnx, safetensors, tflite
from .model_info import LIMITS, MAX_DEPTH, METADATA_KEY, ModelInfo, parse_json, printable  # noqa: F401
from .table import MODES, QUANTIZE, Backend, Format

FORMATS: dict[str, Format] = {m.FORMAT.name: m.FORMAT for m in (onnx, tflite, c, safetensors)}
"""Every format, by name: the table."""
CHECKPOINT = FORMATS["safetensors"]


def register(fmt: Format) -> Format:
    """Add a format row (or replace the row of that name): ``export``, ``runtime.load`` and
    ``profile`` take it from then on, in this process. A suffix or backend name another format
    already uses is refused."""
    for other in FORMATS.values():
        if other.name == fmt.name:
            continue
        if other.suffix == fmt.suffix.lower():
            raise UsageError(f"format {fmt.name!r}: the suffix {fmt.suffix} is {other.name}'s")
        clash = set(other.backends) & set(fmt.backends)
        if clash:
            raise UsageError(f"format {fmt.name!r}: backend {sorted(clash)[0]!r} is "
                             f"{other.name}'s")
    FORMATS[fmt.name] = fmt
    return fmt


def get(name: str) -> Format:
    """The format called ``name`` (UsageError listing the valid ones)."""
    if isinstance(name, Format):
        return name
    if name not in FORMATS:
        raise UsageError(f"unknown format {name!r}; valid: {', '.join(FORMATS)}")
    return FORMATS[name]


def backends() -> dict[str, Backend]:
    """Every runtime backend, by name, in the table's order."""
    return {b.name: b for f in FORMATS.values() for b in f.runtimes}


def backend(name: str) -> Backend:
    """The backend called ``name`` (UsageError listing the valid ones)."""
    found = backends()
    if name not in found:
        raise UsageError(f"unknown backend {name!r}; valid: auto, {', '.join(found)}")
    return found[name]


def format_of(backend_name: str) -> Format:
    """The format whose files the backend ``backend_name`` reads."""
    return next(f for f in FORMATS.values() if backend_name in f.backends)


def exportable() -> list[str]:
    """The formats ``export`` writes."""
    return [f.name for f in FORMATS.values() if f.exportable]


def by_suffix(suffix: str) -> Format | None:
    """The format whose files end in ``suffix`` (case-insensitive), or None."""
    suffix = suffix.lower()
    return next((f for f in FORMATS.values() if f.suffix == suffix), None)


def suffixes() -> list[str]:
    return [f.suffix for f in FORMATS.values()]


def for_path(path: str | os.PathLike) -> Format:
    """The format of a model file, by its suffix; a directory is a C export's folder.

    Raises ModelFileError naming the file when the suffix is no model format's."""
    path = Path(path)
    if path.is_dir():
        return FORMATS["c"]
    fmt = by_suffix(path.suffix)
    if fmt is None:
        raise ModelFileError(f"{path}: unknown model file type {path.suffix or '(no suffix)'!r}; "
                             f"slimedge reads {', '.join(suffixes())} (and a folder holding a C "
                             f"export)")
    return fmt


def read_config(path: str | os.PathLike) -> dict:
    """The slimedge config stored in any model file (no interpreter, no torch)."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file")
    if not path.is_dir():
        from .._io import check_regular_file

        check_regular_file(path, "model file")  # a FIFO would block the reader forever
    return for_path(path).read_config(path)


def info(path: str | os.PathLike) -> ModelInfo:
    """The :class:`ModelInfo` of any model file (checkpoint or export), read without torch or an
    interpreter. Raises ModelFileError naming the file when it is missing, foreign or malformed."""
    path = Path(path)
    fmt = for_path(path) if path.exists() else None
    config = read_config(path)
    return ModelInfo.from_config(config, path=path, format=fmt.name if fmt else None)


ENV_FORMATS = "SLIMEDGE_FORMATS"


def _register_from_environment() -> None:
    for name in filter(None, (s.strip() for s in os.environ.get(ENV_FORMATS, "").split(","))):
        try:
            module = importlib.import_module(name)
        except ImportError as e:
            raise UsageError(f"${ENV_FORMATS} names the module {name!r}, which does not import: "
                             f"{e}") from None
        row = getattr(module, "FORMAT", None)
        if not isinstance(row, Format):
            raise UsageError(f"${ENV_FORMATS}: the module {name!r} has no FORMAT row "
                             f"(a slimedge.formats.Format)")
        register(row)


_register_from_environment()

# LIMITS, METADATA_KEY, parse_json, ...: used as formats.X in the library, not taught
__all__ = ["FORMATS", "Format", "Backend", "ModelInfo", "info", "read_config", "get", "register",
           "for_path", "QUANTIZE", "MODES"]
