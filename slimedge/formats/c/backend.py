"""The ``c`` backend: a C export (``.c`` + ``.h``, or their folder) compiled once, stepped via ctypes.

``open`` reads the config from the ``.c`` (no compiler needed for that), checks the ``.c``
against its digest and its ``.h`` and kernel header against the digests the config records,
then compiles exactly those checked bytes into the private library cache (``$SLIMEDGE_CACHE`` or
``~/.cache/slimedge/c``; see :mod:`.toolchain`): the first load of a model compiles (about a
second), later loads in any process find the library (checked by its hash). A prebuilt library
beside the ``.c`` (``model.so``) is used only when ``$SLIMEDGE_C_PREBUILT=1`` and it was built
from this sealed export (checked in its bytes, without loading it).

A step is one C call per batch: ``PREFIX_step_io`` takes one pointer to a struct holding the
batch size and the six buffers (x, h, c in; y, h_next, c_next out), so ctypes converts one
argument, not seven. Each binding keeps two such structs, one per arrangement of its state arrays,
and ``advance`` only flips which one the next call passes. The generated code has no globals and
writes only through the pointers it is given, so bindings of one model step concurrently from
many threads without a lock (ctypes releases the GIL for the call). ``threads`` is accepted and
not used: a step runs on the calling thread.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

from ...errors import UsageError
from ..binding import Buffers, ModelFileError, sizes
from . import reader, toolchain


class IO(ctypes.Structure):
    """The kernel header's ``slimedge_io`` struct, ``PREFIX_io`` (int batch, then six pointers)."""

    _fields_ = [("batch", ctypes.c_int)] + [(k, ctypes.c_void_p)
                                            for k in reader.IO_STRUCT_FIELDS[1:]]


def step_function(lib: ctypes.CDLL, prefix: str):
    """The export's ``PREFIX_step_io`` from a loaded library."""
    fn = getattr(lib, f"{prefix}_step_io")
    fn.restype = None
    return fn


def available() -> bool:
    """A C compiler is on this machine (a prebuilt library beside a file needs none)."""
    return toolchain.have_compiler()


def require(what: str) -> None:
    """CompilerNotFound (a MissingDependency) saying what to install, where there is no compiler."""
    toolchain.find_compiler()


def open(path: Path, *, threads: int | None = None, device: str | None = None) -> "Session":
    return Session(Path(path), threads, device)


class Session:
    def __init__(self, path: Path, threads: int | None, device: str | None) -> None:
        if device not in (None, "cpu"):
            raise UsageError(f"the c backend runs on the CPU only, not on {device!r}; valid: 'cpu'")
        c_path = reader.resolve(path)
        self.config = reader.read_config(c_path)
        try:
            sizes(self.config)
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"{c_path}: its slimedge config has no graph sizes ({e!r})") from None
        export = self.config["export"]
        self.path, self.prefix = c_path, str(export["prefix"])
        self.lib, origin = toolchain.load(c_path, self.config)
        try:
            self._fn = step_function(self.lib, self.prefix)
        except AttributeError:
            raise ModelFileError(f"{c_path}: the compiled library has no {self.prefix}_step_io "
                                 f"(not a slimedge C export of this version?)") from None
        self.device = "cpu"
        quantize = export.get("quantize", "none")
        self.detail = f"C export ({quantize}), {origin}"

    def bind(self, batch: int) -> "Binding":
        return Binding(self, batch, *sizes(self.config))


class Binding(Buffers):
    def __init__(self, session: Session, batch: int, *dims: int) -> None:
        super().__init__(batch, *dims)
        self._fn = session._fn
        self._session = session  # keeps the library loaded while the binding lives
        self._structs = [IO(batch, *(a.ctypes.data for a in arrays))
                         for arrays in self.arrangements()]
        self._args = [ctypes.pointer(s) for s in self._structs]

    def run(self) -> None:
        self._fn(self._args[self.flipped])
