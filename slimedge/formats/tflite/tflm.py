"""The ``tflm`` backend: an exported ``.tflite`` step graph in TensorFlow Lite Micro's interpreter.

Uses the ``tflite-micro`` package (its Python interpreter runs TFLite Micro's reference kernels,
what a microcontroller build runs), through :class:`.micro.MicroInterpreter`.
A way to check, on the host, exactly what a device will compute, and how large a tensor arena it
needs (``session.arena``). Files exported with
``compat="tflm"`` are written for it; another ``.tflite`` runs when TFLM has kernels for all its
ops, and is refused with TFLM's own reason otherwise (a ModelFileError naming the file: a hybrid
``dynamic`` file, a hard-sigmoid gate written as RELU_0_TO_1).

Batch: TFLM never resizes a tensor, so a file runs at its stored batch of 1. The step graph holds
no state (h and c are inputs and outputs), so one interpreter per session steps a batch of any
size one row after another, under one lock (the interpreter is not thread-safe); a StreamBatch
of k streams costs k invocations per step. ``threads`` is accepted and not used. Integer-I/O
files (``io="int"``) are converted at the boundary with each tensor's scale and zero point, so
bindings keep the float32 buffers every backend has.
"""
from __future__ import annotations

import threading
from pathlib import Path

from ...errors import UsageError
from ..binding import METADATA_KEY, Buffers, ModelFileError, check_io, parse_config, sizes
from . import micro
from .reader import read_metadata  # struct alone: no interpreter, no torch


def available() -> bool:
    return micro.available()


def open(path: Path, *, threads: int | None = None, device: str | None = None) -> "Session":
    return Session(Path(path), threads, device)


class Session:
    def __init__(self, path: Path, threads: int | None, device: str | None) -> None:
        if device not in (None, "cpu"):
            raise UsageError(f"the tflm backend runs on the CPU only, not on {device!r}; valid: 'cpu'")
        self.path, self.threads, self.device = path, threads, "cpu"
        content = path.read_bytes()
        try:
            meta = read_metadata(content)
        except ModelFileError as e:
            raise ModelFileError(f"{path}: {e}") from None
        self.config = parse_config(path, meta.get(METADATA_KEY), "TFLite model")
        self._mi = micro.MicroInterpreter(content, path)
        shape = lambda d: tuple(int(s) for s in d["shape"])  # noqa: E731
        check_io(path, self.config,
                 {k: shape(d) for k, d in zip(micro.INPUTS, self._mi.inputs)},
                 {k: shape(d) for k, d in zip(micro.OUTPUTS, self._mi.outputs)})
        self._lock = threading.Lock()
        self._dims = sizes(self.config)
        io = ", integer I/O" if self._mi.integer_io else ""
        self.detail = f"{micro.INTERPRETER} {micro.version()}, batch 1 (rows in turn){io}"

    @property
    def arena(self) -> dict:
        """The file's tensor arena in TFLM: ``arena_bytes`` (the smallest it allocates in, what a
        device reserves) and ``arena_used_bytes`` (what it holds); measured on first use."""
        with self._lock:
            return self._mi.arena()

    @property
    def measured(self) -> dict:
        """What TFLM says about the file: the interpreter, its arena figures, integer I/O (an
        export validated on TFLM reports it as its ``target``)."""
        return {"interpreter": f"{micro.INTERPRETER} {micro.version()}", **self.arena,
                "integer_io": self._mi.integer_io}

    def bind(self, batch: int) -> "Binding":
        return Binding(self, batch, *self._dims)


class Binding(Buffers):
    def __init__(self, session: Session, batch: int, *dims: int) -> None:
        super().__init__(batch, *dims)
        self._run, self._lock = session._mi.run_into, session._lock

    def run(self) -> None:
        # the arrays are read at each call: advance() swaps the state arrays between steps
        with self._lock:
            self._run(self.x, self.h, self.c, self.y, self.h_next, self.c_next)
