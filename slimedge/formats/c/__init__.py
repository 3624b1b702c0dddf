"""The C format (a ``.c``, its ``.h`` and the kernel header, or their folder): its row, its reader
(:mod:`.reader`: the config without compiling) and the ``c`` backend that compiles and steps an
export (:mod:`.backend`, with the compiler and library cache in :mod:`.toolchain`); the writer is
:mod:`slimedge.exporters.c`."""
from __future__ import annotations

from ..table import Backend, Format
from .reader import KERNELS, read_config, resolve


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
    exporter=_exporter, quantize=("none", "dynamic", "int8"), companions=(".h", KERNELS),
    locate=resolve, summary="C99 step function (.c + .h + the kernel header), no allocation")

__all__ = ["FORMAT", "read_config", "resolve"]
