"""The table of model file formats, and :class:`ModelInfo`, one typed view of any model file.

A format is one row of :data:`FORMATS`: its name, file suffix, the runtime backends that read it
(best first), the quantisation modes it offers, and where its code lives — a metadata reader that
needs no interpreter, the float writer, a runner for export validation, and one quantizer per
mode — as ``"module:function"`` names imported on first use. Adding a format is one module that
provides those functions plus one row here; the exporters, the runtime, the profiler, the demo and
the command line all ask this table, and nothing else in slimedge states a suffix.

The function signatures a row names:

    read_config(path) -> dict                     the model's slimedge config (ModelFileError)
    write(graph, path, *, mode) -> None           the float step graph (folded normalisation)
    runner(path) -> run(feeds) -> outputs         run the file on float32 x, h, c (validation)
    quantizer(graph, path, *, mode, splits, options) -> dict
        the quantised file from the unfolded graph; ``splits`` is the model's data set
        (:class:`~slimedge.data.DataSplits`, or None when it has none), ``options`` a
        :class:`~slimedge.exporters.quantize.QuantizeOptions`; returns what it did

This module imports neither torch nor any interpreter.
"""
from __future__ import annotations

import importlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import ModelFileError, UsageError

METADATA_KEY = "slimedge"
"""The key under which every format stores the model's config JSON in its file's metadata."""
QUANTIZE = ("none", "dynamic", "int8")
"""Every quantisation mode: float, int8 weights with float activations, full integer."""
MODES = ("step", "sequence")
"""Graph modes: one time step, or a whole sequence (time symbolic)."""


@dataclass(frozen=True)
class Format:
    """One file format: what reads it, what writes it, and how to read its metadata."""

    name: str
    suffix: str
    backends: tuple[str, ...]
    read_config: str  # "module:function": path -> config dict
    writer: str | None = None  # None: not an export format (a checkpoint)
    runner: str | None = None
    quantizers: Mapping[str, str] = field(default_factory=dict)  # mode -> "module:function"
    modes: tuple[str, ...] = ("step",)
    companions: tuple[str, ...] = ()  # suffixes of files written beside the main one (a header)
    summary: str = ""

    @property
    def exportable(self) -> bool:
        return self.writer is not None

    @property
    def quantize(self) -> tuple[str, ...]:
        """The quantisation modes this format offers, in :data:`QUANTIZE` order."""
        return tuple(q for q in QUANTIZE if q == "none" or q in self.quantizers)

    def function(self, role: str, quantize: str = "none") -> Callable:
        """The writer, runner, read_config or a quantizer, imported now."""
        if role == "quantizer":
            if quantize not in self.quantizers:
                raise UsageError(f"quantize={quantize!r} is not offered for {self.name} files; "
                                 f"valid: {', '.join(self.quantize)}")
            ref = self.quantizers[quantize]
        else:
            ref = getattr(self, role)
        if ref is None:
            raise UsageError(f"{self.name} files are not written by export")
        return _resolve(ref)

    def read(self, path: str | os.PathLike) -> dict:
        """The config stored in a file of this format (ModelFileError naming the file)."""
        return self.function("read_config")(Path(path))


def _resolve(ref: str) -> Callable:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


FORMATS: dict[str, Format] = {f.name: f for f in [
    Format("safetensors", ".safetensors", ("numpy", "torch"),
           read_config="slimedge.checkpoint:read_config",
           summary="a slimedge checkpoint (weights + config), what training writes"),
    Format("onnx", ".onnx", ("onnxruntime",),
           read_config="slimedge.exporters.onnx:read_config",
           writer="slimedge.exporters.onnx:write", runner="slimedge.exporters.onnx:runner",
           quantizers={"dynamic": "slimedge.exporters.onnx_quantize:dynamic",
                       "int8": "slimedge.exporters.onnx_quantize:int8"},
           modes=("step", "sequence"), summary="ONNX step (or sequence) graph, opset 18"),
    Format("tflite", ".tflite", ("litert", "tflm"),
           read_config="slimedge.exporters.tflite.readback:read_config",
           writer="slimedge.exporters.tflite:write", runner="slimedge.exporters.tflite:runner",
           quantizers={"dynamic": "slimedge.exporters.tflite.quantize:dynamic",
                       "int8": "slimedge.exporters.tflite.quantize:int8"},
           summary="TFLite step graph (LiteRT)"),
    Format("c", ".c", ("c",),
           read_config="slimedge.exporters.c:read_metadata",
           writer="slimedge.exporters.c:write", runner="slimedge.exporters.c:runner",
           quantizers={"dynamic": "slimedge.exporters.c:write_int8_weights",
                       "int8": "slimedge.exporters.c:write_integer"},
           companions=(".h",), summary="C99 step function (.c + .h), no allocation"),
]}

CHECKPOINT = FORMATS["safetensors"]


def get(name: str) -> Format:
    """The format called ``name`` (UsageError listing the valid ones)."""
    if isinstance(name, Format):
        return name
    if name not in FORMATS:
        raise UsageError(f"unknown format {name!r}; valid: {', '.join(FORMATS)}")
    return FORMATS[name]


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


def backends_for(path: str | os.PathLike) -> tuple[str, ...]:
    """The runtime backends that read ``path``, best first."""
    return for_path(path).backends


def read_config(path: str | os.PathLike) -> dict:
    """The slimedge config stored in any model file (no interpreter, no torch)."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file")
    return for_path(path).read(path)


# ---- the typed view ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelInfo:
    """What a model file says about its model, whatever its format.

    ``data`` is the data set the model was trained on, as recorded (``None`` when not recorded);
    ``export`` the export section (format, quantisation, ...; empty for a checkpoint).
    """

    path: Path | None
    format: str
    config: dict
    variant: str
    input_size: int
    hidden_size: int
    num_layers: int
    output_size: int
    labels: tuple[str, ...] | None
    data: dict | None
    export: dict

    @property
    def quantize(self) -> str:
        return str(self.export.get("quantize", "none"))

    @property
    def is_checkpoint(self) -> bool:
        return self.format == CHECKPOINT.name

    @property
    def state_shape(self) -> tuple[int, int]:
        return (self.num_layers, self.hidden_size)

    @property
    def spec(self):
        """The :class:`~slimedge.variants.VariantSpec` the config describes."""
        from . import variants

        return variants.from_config(self.config["lstm"]["variant"])

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, path: str | os.PathLike | None = None,
                    format: str | None = None) -> "ModelInfo":
        """The typed view of a config dict (ModelFileError naming ``path`` when it is malformed)."""
        where = path if path is not None else "model config"
        try:
            return cls._parse(dict(config), path, format)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
            if isinstance(e, ModelFileError):
                raise
            raise ModelFileError(f"{where}: its slimedge config is malformed "
                                 f"({type(e).__name__}: {e})") from None

    @classmethod
    def _parse(cls, config: dict, path, format: str | None) -> "ModelInfo":
        lstm = config["lstm"]
        variant = lstm["variant"]
        name = variant if isinstance(variant, str) else variant["name"]
        graph = config.get("graph")
        head = config.get("head") or {}
        if graph is not None:
            sizes = [graph[k] for k in ("input_size", "hidden_size", "num_layers", "output_size")]
        else:
            n = lstm["hidden_size"]
            out = head["num_classes"] if config.get("kind") == "classifier" else n
            sizes = [lstm["input_size"], n, lstm.get("num_layers", 1), out]
        sizes = [_count(v) for v in sizes]
        labels = head.get("labels")
        if labels is not None:
            if not isinstance(labels, list):
                raise ValueError(f"head.labels must be a list, got {type(labels).__name__}")
            labels = tuple(str(x) for x in labels)
        info = config.get("info") or {}
        if not isinstance(info, dict):
            raise ValueError(f"info must be an object, got {type(info).__name__}")
        data = info.get("data")
        if data is not None and not isinstance(data, dict):
            raise ValueError(f"info.data must be an object, got {type(data).__name__}")
        export = config.get("export") or {}
        if not isinstance(export, dict):
            raise ValueError(f"export must be an object, got {type(export).__name__}")
        if format is None:
            format = export.get("format", CHECKPOINT.name if graph is None else "?")
        return cls(path=Path(path) if path is not None else None, format=str(format),
                   config=config, variant=str(name), input_size=sizes[0], hidden_size=sizes[1],
                   num_layers=sizes[2], output_size=sizes[3], labels=labels, data=data,
                   export=export)


def _count(v) -> int:
    """A positive integer size from JSON (a float such as 64.0 allowed; inf, nan, 0, '3' not)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"a size must be a number, got {v!r}")
    if isinstance(v, float) and (not math.isfinite(v) or v != int(v)):
        raise ValueError(f"a size must be a whole number, got {v!r}")
    if int(v) < 1:
        raise ValueError(f"a size must be at least 1, got {v!r}")
    return int(v)


def info(path: str | os.PathLike) -> ModelInfo:
    """The :class:`ModelInfo` of any model file (checkpoint or export), read without torch or an
    interpreter. Raises ModelFileError naming the file when it is missing, foreign or malformed."""
    path = Path(path)
    fmt = for_path(path) if path.exists() else None
    config = read_config(path)
    return ModelInfo.from_config(config, path=path, format=fmt.name if fmt else None)


__all__ = ["Format", "FORMATS", "ModelInfo", "QUANTIZE", "MODES", "get", "for_path", "info",
           "read_config", "exportable", "by_suffix", "backends_for"]
