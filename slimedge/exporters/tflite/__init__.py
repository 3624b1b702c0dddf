"""The TFLite writer: the step IR as a ``.tflite`` flatbuffer written without TensorFlow.

One subgraph, one signature ``serving_default``; inputs ``x`` (B, m), ``h`` and ``c``
(layers, B, n), outputs ``y``, ``h_next``, ``c_next``, all float32 with the batch dimension
dynamic (shape_signature -1; ``resize_tensor_input`` picks it). The model's config JSON
(``graph.metadata_json()`` plus an ``export`` section describing the quantisation) is the Metadata
entry ``slimedge``. TFLite files are step graphs.

The modules, by concept:

    flatbuffer  the writer: buffers, tensors, operator codes, packing (LiteRT's schema)
    versions    each operator code's version, by TensorFlow's op_version.cc rules
    qparams     quantisation parameters: activation ranges, the spec's fixed outputs, int8 weights
    plan        int8 planning: which values are float, int8 or int16, at which scale
    emitter     the IR walked through an op table (IR op -> TFLite ops); to_bytes, emit
    quantize    the format table's quantizers, ``dynamic`` and ``int8``

Reading a file's metadata and running it (LiteRT, TensorFlow Lite Micro) are the format's own
(:mod:`slimedge.formats.tflite`); this package writes. Its :func:`write` and :func:`quantizer`
are the ``tflite`` row's writer; nothing here imports torch.
"""
from __future__ import annotations

import os

from ... import ir
from . import quantize as _quantize
from .emitter import COMPAT as COMPAT
from .emitter import QUANTIZE_MODES as QUANTIZE_MODES
from .emitter import emit, to_bytes
from .flatbuffer import METADATA_NAME as METADATA_NAME
from .qparams import QParams as QParams
from .qparams import qparams_for_range as qparams_for_range


def write(graph: ir.Graph, path: str | os.PathLike, *, mode: str = "step",
          compat: str = "litert") -> dict:
    """Write the float graph (``export(format="tflite")``); TFLite exports are step graphs.

    ``compat`` is recorded in the metadata; ``"tflm"`` also writes hard-sigmoid gates with ops
    TensorFlow Lite Micro has, and makes validation run the file on TFLM's interpreter."""
    if mode != "step":
        raise ValueError(f"TFLite export writes step graphs only (mode='step'); got mode={mode!r}. "
                         f"Stream a sequence through the step graph, or export ONNX for a "
                         f"sequence graph")
    return emit(graph, path, compat=compat)


def quantizer(quantize: str):
    """The quantizer for ``quantize`` ("dynamic" or "int8"), see :mod:`.quantize`."""
    return {"dynamic": _quantize.dynamic, "int8": _quantize.int8}[quantize]


# a name imported `as` itself (COMPAT, QParams, ...) is offered here as before, not in __all__
__all__ = ["write", "quantizer", "emit", "to_bytes"]
