"""TensorFlow Lite Micro's tensor arena for a model: what the C step's RAM is compared with.

The model is exported as TFLite for TFLite Micro (``compat="tflm"``): float, and int8 with
integer I/O (``io="int"``: int8 x and h, the cell state in its integer type, as the full-integer
C step takes them, so neither side converts floats). The arena is what
:meth:`slimedge.exporters.tflite.micro.MicroInterpreter.arena` measures on TFLM's own
interpreter: ``arena_bytes``, the smallest arena (to 16 bytes) the file allocates in, which a
device must reserve (it holds the input, output and intermediate tensors, the state included,
and TFLM's bookkeeping), and ``arena_used_bytes``, what stays allocated. Measured by the host
build of TFLM (64-bit pointers): a 32-bit microcontroller's bookkeeping is somewhat smaller.
"""
from __future__ import annotations

import os
from pathlib import Path

from .. import extras

MISSING = "tflite-micro is not installed (pip install 'slimedge[tflm]'): no TFLM arena"


def available() -> bool:
    return extras.installed("tflite_micro")


def arena(checkpoint, quantize: str, workdir: str | os.PathLike, *, stem: str = "model",
          data=None, validate: bool = False) -> dict:
    """Export ``checkpoint`` for TFLite Micro (``quantize`` none or int8) into ``workdir`` and
    measure its arena: {file, quantize, io, arena_bytes, arena_used_bytes, size_bytes}."""
    from ..exporters import export
    from ..exporters.tflite import micro

    io = "int" if quantize == "int8" else "float"
    options = {"io": "int"} if io == "int" else {}
    path = Path(workdir) / f"{stem}.{quantize}.tflm.tflite"
    result = export(checkpoint, path, format="tflite", quantize=quantize, compat="tflm",
                    validate=validate, data=data, **options)
    content = Path(result.path).read_bytes()
    measured = micro.MicroInterpreter(content, result.path).arena()
    return {"file": path.name, "quantize": quantize, "io": io, "size_bytes": len(content),
            "interpreter": f"{micro.INTERPRETER} {micro.version()}", **measured}


__all__ = ["arena", "available", "MISSING"]
