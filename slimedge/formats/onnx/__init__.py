"""The ONNX format: its row, its reader (:mod:`.reader`) and the ``onnxruntime`` backend that opens
and steps its files (:mod:`.onnxruntime`); the writer is :mod:`slimedge.exporters.onnx`."""
from __future__ import annotations

from ..table import Backend, Format
from .reader import read_config


def _onnxruntime():
    from . import onnxruntime

    return onnxruntime


def _exporter():
    from ...exporters import onnx

    return onnx


FORMAT = Format(
    "onnx", ".onnx", read_config,
    runtimes=(Backend("onnxruntime", _onnxruntime, extra="onnxruntime",
                      requires=("onnxruntime", "onnx"),  # onnx: the graph checked first
                      summary="CPU (CUDA with onnxruntime's GPU build), IO binding"),),
    exporter=_exporter, quantize=("none", "dynamic", "int8"), modes=("step", "sequence"),
    write_needs=("onnx",), quantize_needs=("onnxruntime",), summary="ONNX step (or sequence) graph, opset 18")

__all__ = ["FORMAT", "read_config"]
