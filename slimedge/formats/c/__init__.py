"""The C format (a ``.c`` and its ``.h``, or their folder): its row and the ``c`` backend that
compiles and steps an export (:mod:`.backend`); the writer is :mod:`slimedge.exporters.c`."""
from __future__ import annotations

from pathlib import Path

from ..table import Backend, Format


def read_config(path) -> dict:
    from ...exporters import c

    return c.read_metadata(path)


def resolve(path) -> Path:
    from ...exporters import c

    return c.resolve(path)


def _backend():
    from . import backend

    return backend


def _exporter():
    from ...exporters import c

    return c


FORMAT = Format(
    "c", ".c", read_config,
    runtimes=(Backend("c", _backend, summary="the C export compiled once into a shared library, "
                                             "called by ctypes"),),
    exporter=_exporter, quantize=("none", "dynamic", "int8"),
    companions=(".h", "slimedge_kernels.h"), locate=resolve,
    summary="C99 step function (.c + .h + the kernel header), no allocation")

__all__ = ["FORMAT", "read_config", "resolve"]
