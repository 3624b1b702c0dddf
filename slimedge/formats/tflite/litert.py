"""The ``litert`` backend: an exported ``.tflite`` step graph in LiteRT's interpreter.

Uses ``ai_edge_litert`` (LiteRT); the old ``tflite_runtime`` interpreter is a fallback only for
graphs it runs correctly: it silently ignores per-channel scales in hybrid (float input, int8
weight) FULLY_CONNECTED, so such files are refused on it. One interpreter per batch size, resized
and allocated once and shared by the bindings of that size made while it is cached: the session
keeps the ``CACHED_SIZES`` most recently used sizes, and a binding keeps its own interpreter alive
(so a StreamBatch that grows one stream at a time holds a few interpreters, not one per size it
ever had). Interpreters are not thread-safe, so each one's set/invoke/get runs under its own lock.
``threads`` is the interpreter's ``num_threads``. LiteRT's native "INFO: Created TensorFlow Lite
XNNPACK delegate for CPU." line (printed once per process, when the first interpreter allocates)
is dropped; anything else it prints then still reaches stderr.
"""
from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import numpy as np

from ... import frontend
from ...errors import UsageError
from ..binding import (
    METADATA_KEY,
    Buffers,
    LruCache,
    ModelFileError,
    check_io,
    parse_config,
    sizes,
    step_failed,
)
from .io import from_tensor, to_tensor
from .micro import captured_stderr
from .reader import read_metadata  # struct alone: no LiteRT, no torch

INTERPRETERS = ("ai_edge_litert", "tflite_runtime")  # in order of preference
CACHED_SIZES = 4  # batch sizes whose interpreter a session keeps ready


def available() -> bool:
    return any(importlib.util.find_spec(m) is not None for m in INTERPRETERS)


def open(path: Path, *, threads: int | None = None, device: str | None = None) -> "Session":
    return Session(Path(path), threads, device)


XNNPACK_INFO = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
_first_interpreter = threading.Lock()
_announced = False  # LiteRT printed (and we dropped) its one-time XNNPACK line


def _quietly(make):
    """``make()``, with LiteRT's one-time XNNPACK INFO line dropped from what it prints to fd 2
    (the rest written back): only the first allocation of the process pays for the capture."""
    global _announced
    if _announced:
        return make()
    with _first_interpreter:
        if _announced:
            return make()
        captured: list[str] = []
        try:
            with captured_stderr() as captured:
                made = make()
            _announced = True
            return made
        finally:
            rest = [line for line in "".join(captured).splitlines(keepends=True)
                    if line.strip() != XNNPACK_INFO]
            if rest:
                os.write(2, "".join(rest).encode())


def _interpreter_module():
    for name in INTERPRETERS:
        if importlib.util.find_spec(name) is not None:
            return importlib.import_module(f"{name}.interpreter"), name
    raise ImportError("the litert backend needs LiteRT: pip install ai-edge-litert")


class Session:
    def __init__(self, path: Path, threads: int | None, device: str | None,
                 interpreter: str | None = None) -> None:
        if device not in (None, "cpu"):
            raise UsageError(f"the litert backend runs on the CPU only, not on {device!r}; valid: 'cpu'")
        if interpreter is None:
            self._mod, self.interpreter = _interpreter_module()
        else:  # a named interpreter package (tests use it to check the refusal on the old one)
            self._mod, self.interpreter = importlib.import_module(f"{interpreter}.interpreter"), interpreter
        self.path, self.threads, self.device = path, threads, "cpu"
        self._content = path.read_bytes()
        try:
            meta = read_metadata(self._content)
        except ModelFileError as e:
            raise ModelFileError(f"{path}: {e}") from None
        self.config = parse_config(path, meta.get(METADATA_KEY), "TFLite model")
        first = self._new_interpreter()
        check_io(path, self.config,
                 {d["name"]: tuple(int(s) for s in d["shape"]) for d in first.get_input_details()},
                 {d["name"]: tuple(int(s) for s in d["shape"]) for d in first.get_output_details()})
        if self.interpreter == "tflite_runtime":
            refuse_on_tflite_runtime(path, first, self.config)
        try:
            version = importlib.import_module(self.interpreter).__version__
        except (ImportError, AttributeError):
            version = "?"
        self.detail = f"{self.interpreter} {version}, {threads or 'default'} threads"
        self._dims = sizes(self.config)
        # batch size -> (interpreter, its lock, input details, output details)
        self._by_batch = LruCache(CACHED_SIZES)
        try:  # one step from the zero state: a file LiteRT loads but cannot run fails here, named
            self.bind(1).run()
        except (ValueError, RuntimeError) as e:
            raise ModelFileError(f"{path}: LiteRT cannot run it ({e}); the file is damaged or "
                                 f"not one slimedge wrote") from None

    def _new_interpreter(self):
        kw = {"num_threads": int(self.threads)} if self.threads else {}
        try:
            return self._mod.Interpreter(model_content=self._content, **kw)
        except (ValueError, RuntimeError) as e:
            raise ModelFileError(f"{self.path}: LiteRT cannot load it: {e}") from None

    def interpreter_for(self, batch: int):
        """(interpreter, its lock, input details, output details) for one batch size: the cached
        one of that size, else a new one (and the least recently used size leaves the cache)."""
        return self._by_batch.get(batch, lambda: self._resized(batch))

    def _resized(self, batch: int):
        it = self._new_interpreter()
        m, n, layers, _ = self._dims
        want = {"x": (batch, m), "h": (layers, batch, n), "c": (layers, batch, n)}
        for d in it.get_input_details():
            it.resize_tensor_input(d["index"], want[d["name"]], strict=False)
        _quietly(it.allocate_tensors)
        ins = {d["name"]: d for d in it.get_input_details()}
        outs = {d["name"]: d for d in it.get_output_details()}
        return it, threading.Lock(), ins, outs

    def bind(self, batch: int) -> "Binding":
        return Binding(self, batch, *self._dims)


class Binding(Buffers):
    def __init__(self, session: Session, batch: int, *dims: int) -> None:
        super().__init__(batch, *dims)
        # the interpreter (held through its bound methods) and its lock stay with this binding
        # even after the session's cache lets go of them
        it, self._lock, ins, outs = session.interpreter_for(batch)
        self._interpreter = it
        self._set, self._tensor = it.set_tensor, it.tensor
        self._path, self._it_invoke = session.path, it.invoke
        names = ("x", "h", "c", "y", "h_next", "c_next")
        self._io = [(ins[k] if j < 3 else outs[k])["index"] for j, k in enumerate(names)]
        front = frontend.outside(session.config)  # an integer-I/O file's x: its front-end first
        self._q = ([to_tensor(ins[k], front if k == "x" else None) for k in names[:3]]
                   + [from_tensor(outs[k]) for k in names[3:]])

    def run(self) -> None:
        # the arrays are read at each call: advance() swaps the state arrays between steps
        ix, ih, ic, iy, ihn, icn = self._io
        with self._lock:
            if not any(self._q):
                self._set(ix, self.x)
                self._set(ih, self.h)
                self._set(ic, self.c)
                self._invoke()
                # each view into the interpreter's arena is dropped before the next invoke
                np.copyto(self.y, self._tensor(iy)())
                np.copyto(self.h_next, self._tensor(ihn)())
                np.copyto(self.c_next, self._tensor(icn)())
                return
            qx, qh, qc, dy, dh, dc = self._q
            for index, arr, q in ((ix, self.x, qx), (ih, self.h, qh), (ic, self.c, qc)):
                self._set(index, arr if q is None else q(arr))
            self._invoke()
            for index, arr, dq in ((iy, self.y, dy), (ihn, self.h_next, dh), (icn, self.c_next, dc)):
                np.copyto(arr, self._tensor(index)() if dq is None else dq(self._tensor(index)()))


    def _invoke(self) -> None:
        try:
            self._it_invoke()
        except RuntimeError as e:  # LiteRT: "Node number 3 (ADD) failed to invoke."
            raise step_failed(self._path, "LiteRT", e) from e


def refuse_on_tflite_runtime(path: Path, interpreter, config: dict) -> None:
    """tflite-runtime ignores per-channel scales in hybrid FULLY_CONNECTED: refuse such graphs,
    as the exporter's metadata flags them (``export.tflite_runtime_ok``) or as the graph shows."""
    flagged = (config.get("export") or {}).get("tflite_runtime_ok") is False
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    for op in ([] if flagged else interpreter._get_ops_details()):
        if op["op_name"] != "FULLY_CONNECTED" or len(op["inputs"]) < 2:
            continue
        a, w = (tensors.get(int(i)) for i in op["inputs"][:2])
        if (a is not None and w is not None and a["dtype"] == np.float32
                and w["dtype"] == np.int8
                and len(w["quantization_parameters"]["scales"]) > 1):
            flagged = True
    if flagged:
        raise ModelFileError(
            f"{path}: uses hybrid FULLY_CONNECTED with per-channel int8 weights, which the old "
            f"tflite-runtime interpreter silently computes wrongly; install ai-edge-litert "
            f"(pip install ai-edge-litert) to run it, or export with compat='tflite-runtime'")
