"""The TFLite format: its row, its reader (:mod:`.reader`, struct alone), and the backends that open
and step its files: ``litert`` (:mod:`.litert`) and TensorFlow Lite Micro's interpreter ``tflm``
(:mod:`.tflm`); the writer is :mod:`slimedge.exporters.tflite`."""
from __future__ import annotations

from ..table import Backend, Format
from .reader import read_config

COMPAT = ("litert", "tflite-runtime", "tflm")
"""The interpreters a TFLite export can target (``compat``): what the file may hold and what
validates it."""


def _litert():
    from . import litert

    return litert


def _tflm():
    from . import tflm

    return tflm


def _exporter():
    from ...exporters import tflite

    return tflite


def _validate_on(config: dict) -> tuple[str, ...]:
    """A file written for TensorFlow Lite Micro (``export.compat`` "tflm") is validated on TFLM's
    own interpreter, any other on LiteRT."""
    return ("tflm",) if (config.get("export") or {}).get("compat") == "tflm" else ("litert",)


FORMAT = Format(
    "tflite", ".tflite", read_config,
    runtimes=(Backend("litert", _litert, extra="litert", requires=("ai_edge_litert|tflite_runtime",),
                      summary="ai-edge-litert (tflite-runtime as fallback), num_threads"),
              Backend("tflm", _tflm, extra="tflm", requires=("tflite_micro",),
                      summary="TensorFlow Lite Micro's interpreter (tflite-micro): batch 1, its "
                              "arena")),
    exporter=_exporter, quantize=("none", "dynamic", "int8"), write_needs=("flatbuffers",),
    validate_on=_validate_on, summary="TFLite step graph (LiteRT)")

__all__ = ["FORMAT", "COMPAT", "read_config"]
