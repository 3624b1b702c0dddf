"""TensorFlow Lite Micro's tensor arena for a model: what the C step's RAM is compared with.

The model is exported as TFLite for TFLite Micro (``compat="tflm"``): float, and int8 with
integer I/O (``io="int"``: int8 x and h, the cell state in its integer type, as the full-integer
C step takes them, so neither side converts floats). The arena is what
:meth:`slimedge.formats.tflite.micro.MicroInterpreter.arena` measures on TFLM's own
interpreter: ``arena_bytes``, the smallest arena (to 16 bytes) the file allocates in, which a
device must reserve (it holds the input, output and intermediate tensors, the state included,
and TFLM's bookkeeping), and ``arena_used_bytes``, what stays allocated. Measured by the host
build of TFLM (64-bit pointers): a 32-bit microcontroller's bookkeeping is somewhat smaller.

The measurement runs in a child process: TFLM's allocator can crash the process (a segmentation
fault, not an exception) at some arena sizes just below the smallest that works (seen: a random
LSTM1, n = 128, int8 with float I/O, at 13,392 bytes), and the bisection tries sizes there. A
crash is reported as ``arena_bytes: None`` with the reason, and the caller's run goes on.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
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

    io = "int" if quantize == "int8" else "float"
    options = {"io": "int"} if io == "int" else {}
    path = Path(workdir) / f"{stem}.{quantize}.tflm.tflite"
    result = export(checkpoint, path, format="tflite", quantize=quantize, compat="tflm",
                    validate=validate, data=data, **options)
    content = Path(result.path).read_bytes()
    return {"file": path.name, "quantize": quantize, "io": io, "size_bytes": len(content),
            **measure(result.path)}


_CHILD = """
import json, sys
from pathlib import Path
from slimedge.formats.tflite import micro
p = Path(sys.argv[1])
a = micro.MicroInterpreter(p.read_bytes(), p).arena()
print(json.dumps({"interpreter": f"{micro.INTERPRETER} {micro.version()}", **a}))
"""


def measure(path: str | os.PathLike, *, timeout: float = 300) -> dict:
    """``arena_bytes`` and ``arena_used_bytes`` of a ``.tflite`` file on TFLM, in a child process
    (None, with ``arena_error``, when TFLM crashed or failed)."""
    here = str(Path(__file__).resolve().parents[2])  # this slimedge, installed or not
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (here, os.environ.get("PYTHONPATH", "")) if p)}
    res = subprocess.run([sys.executable, "-c", _CHILD, os.fspath(path)], capture_output=True,
                         text=True, timeout=timeout, env=env)
    lines = res.stdout.strip().splitlines()
    if res.returncode == 0 and lines:
        return json.loads(lines[-1])
    why = (f"signal {-res.returncode}" if res.returncode < 0 else
           (res.stderr.strip().splitlines() or [f"exit status {res.returncode}"])[-1])
    return {"arena_bytes": None, "arena_used_bytes": None,
            "arena_error": f"TensorFlow Lite Micro failed measuring the arena of "
                           f"{Path(path).name} ({why})"}


__all__ = ["arena", "measure", "available", "MISSING"]
