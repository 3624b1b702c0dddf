"""The shape of a format table row: :class:`Format` (a file format) and :class:`Backend` (a runtime
that opens and steps its files).

A row references code, not strings: ``Backend.code`` and ``Format.exporter`` are functions that
import their module when called (``from . import onnxruntime``), so the table itself imports no
interpreter, and grep and static tracing see every module a row uses. The modules' surfaces:

    reader: read_config(path) -> dict           the config, read without an interpreter
    backend module: available() -> bool; open(path, *, threads, device) -> Session; optionally
        require(what) raising MissingDependency that says what to install when not available
        Session: config, device, detail, bind(batch) -> Binding (see :mod:`.backend`);
        optional ``measured`` (what the interpreter reports about itself, e.g. TFLM's arena)
    exporter module: write(graph, path, *, mode, **options); quantizer(mode) -> a quantizer,
        quantizer(graph, path, *, mode, splits, options) -> dict (what it did)

This module imports only the standard library, :mod:`slimedge.errors` and :mod:`slimedge.extras`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable

from .. import extras

QUANTIZE = ("none", "dynamic", "int8")
"""Every quantisation mode: float, int8 weights with float activations, full integer."""
MODES = ("step", "sequence")
"""Graph modes: one time step, or a whole sequence (time symbolic)."""


@dataclass(frozen=True)
class Backend:
    """A runtime backend: the module that opens and steps a format's files, and what it needs."""

    name: str
    code: Callable[[], ModuleType]
    extra: str | None = None  # the pip extra that installs its library
    requires: tuple[str, ...] = ()  # import names it needs ("a|b": either one)
    summary: str = ""

    def module(self) -> ModuleType:
        """The backend's module, imported now (its library is imported only by ``open``)."""
        return self.code()

    def available(self) -> bool:
        """Its library is installed (checked without importing it) and the module agrees."""
        return not extras.missing(*self.requires) and self.module().available()

    def require(self, what: str) -> None:
        """MissingDependency naming the extra unless every package it needs is installed; then
        the module's own ``require(what)``, where it has one, says what else is missing (the C
        backend: a compiler)."""
        if self.extra is not None:
            extras.require(self.extra, what, *self.requires)
        check = getattr(self.module(), "require", None)
        if check is not None:
            check(what)


@dataclass(frozen=True)
class Format:
    """One file format: its suffix, how its config is read, what steps it, and what writes it."""

    name: str
    suffix: str
    read_config: Callable[[Path], dict]
    runtimes: tuple[Backend, ...]  # the backends that open and step its files, best first
    exporter: Callable[[], ModuleType] | None = None  # None: not written by export (a checkpoint)
    quantize: tuple[str, ...] = ("none",)
    modes: tuple[str, ...] = ("step",)
    companions: tuple[str, ...] = ()  # files written beside the main one: a suffix (".h", the
    # same stem) or a fixed file name (a header shared by every export)
    write_needs: tuple[str, ...] = ()  # import names writing the file needs
    quantize_needs: tuple[str, ...] = ()  # and quantising it, validated or not
    # a folder or companion file -> the main file (a C export's folder or header -> its .c)
    locate: Callable[[Path], Path] | None = None
    # the backends an export is validated on, given its config (default: the first backend)
    validate_on: Callable[[dict], tuple[str, ...]] | None = None
    summary: str = ""

    @property
    def backends(self) -> tuple[str, ...]:
        """The names of the backends that read this format, best first."""
        return tuple(b.name for b in self.runtimes)

    @property
    def exportable(self) -> bool:
        return self.exporter is not None

    def validators(self, config: dict) -> tuple[str, ...]:
        """The backends an export of this format with ``config`` is validated on."""
        return self.validate_on(config) if self.validate_on else (self.runtimes[0].name,)

    def main_file(self, path) -> Path:
        """The file a path to this format names: itself, or for a folder or companion file the
        main file it holds or goes with."""
        path = Path(path)
        if self.locate is not None and (path.is_dir() or path.suffix.lower() != self.suffix):
            return self.locate(path)
        return path

    def writer(self) -> Callable:
        return self.exporter().write

    def quantizer(self, quantize: str) -> Callable:
        return self.exporter().quantizer(quantize)


__all__ = ["Format", "Backend", "QUANTIZE", "MODES"]
