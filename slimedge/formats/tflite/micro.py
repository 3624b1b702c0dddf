"""TensorFlow Lite Micro: a .tflite step graph in TFLM's own interpreter, and its tensor arena.

TFLite Micro (the ``tflite-micro`` package: ``tflite_micro.python.tflite_micro.runtime``, the
reference kernels a microcontroller build runs) is what a file exported with ``compat="tflm"`` is
validated on, and what the runtime's ``tflm`` backend steps. What it does differently from LiteRT,
and how this module deals with it:

* **Fixed shapes.** Nothing is resized: the batch dimension is the file's stored 1. The step
  graph keeps no state inside (h and c are inputs and outputs), so one interpreter steps a batch
  one row at a time, as a device steps its one stream.
* **The arena** is fixed when the interpreter is made. One far too small for the model crashes the
  process instead of raising, so the interpreter gets a generous one (:func:`arena_for`), and
  :meth:`MicroInterpreter.arena` measures two figures. ``arena_used_bytes``: what the model holds
  once allocated, TFLM's RecordingMicroAllocator's "Arena allocation total" (printed by
  ``print_allocations``). ``arena_bytes``: the smallest arena (to 16 bytes) TFLM allocates the
  model in, which a device must reserve: allocation also needs scratch space for the memory
  planner, so it is larger (the shipped int8 file: 4,928 bytes held, 6,128 needed; with 4,928
  TFLM fails, "Too many buffers"). Found by bisection from the used total upwards, where a
  failing allocation raises (only far smaller arenas crash). Both are the host build's (64-bit
  pointers); a 32-bit microcontroller's structs are smaller, so it needs somewhat less.
* **Errors** (an op without a kernel, a hybrid FULLY_CONNECTED) are printed by TFLM on stderr and
  raised as a bare RuntimeError; that text is captured and becomes a ModelFileError naming the
  file.
* **Crashes.** TFLM trusts the flatbuffer it is given: it checks neither the buffer's offsets nor
  that tensors, buffers and operators agree, so a well-formed but hostile file (one flipped bit,
  its digest recomputed: the digest is not a signature) can make it read out of bounds and kill
  the process. Checking every such invariant here would be a second, partial TFLM; instead each
  file is first loaded and stepped in a separate Python process (:func:`trial_run`): zeros,
  random values and extremes in every input, four steps. A crash or a hang there is a
  ModelFileError naming the file, and the file never reaches this process's interpreter. A file
  that passes is remembered (its SHA-256) for the rest of the process. What this does not cover:
  a crash that only some other input values would trigger (the step graph's operators read
  memory by shape, not by value).
* **Integer I/O** (``io="int"`` exports): inputs are quantised and outputs dequantised here, at
  the boundary, with each tensor's own scale and zero point (x normalised first, as the file's
  metadata says), so callers still pass float32.

Not thread-safe (one TFLM interpreter): callers that share one lock around :meth:`run`.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from ... import frontend
from ...errors import MissingDependency, ModelFileError
from ..binding import step_failed
from .io import from_tensor, to_tensor
from .reader import read_config

PACKAGE = "tflite_micro"
INTERPRETER = "tflite-micro"  # the name export results and the runtime report
INPUTS, OUTPUTS = ("x", "h", "c"), ("y", "h_next", "c_next")
_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
ARENA_STEP = 16  # the arena is measured to this many bytes (TFLM aligns its buffers to 16)
_STDERR_LOCK = threading.Lock()
TRIAL_TIMEOUT = 120  # seconds for a trial run's load and steps (a step graph at the caps: ~1 s)
_TRIED: set[str] = set()  # SHA-256 of the files that passed their trial run in this process
_TRIED_LOCK = threading.Lock()
# the trial run: the file's bytes on stdin, the arena in argv; exit 0 when every step ran, an
# exception's exit 1 when TFLM refused the file (this process then reports TFLM's reason)
_TRIAL = '''
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
it = runtime.Interpreter.from_bytes(sys.stdin.buffer.read(), arena_size=int(sys.argv[1]))
rng = np.random.default_rng(0)
for trial in range(4):
    for i in range(3):
        d = it.get_input_details(i)
        shape, dtype = tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"])
        if dtype.kind == "f":
            big = np.finfo(dtype).max
            a = [np.zeros(shape), rng.standard_normal(shape), np.full(shape, big),
                 np.full(shape, -big)][trial]
        else:
            lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
            a = [np.zeros(shape), rng.integers(lo, hi, shape, endpoint=True), np.full(shape, hi),
                 np.full(shape, lo)][trial]
        it.set_input(np.ascontiguousarray(a, dtype), i)
    it.invoke()
    for i in range(3):
        it.get_output(i)
'''


def available() -> bool:
    """Is tflite-micro installed (checked without importing it)."""
    return importlib.util.find_spec(PACKAGE) is not None


def _runtime():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise MissingDependency("running a TensorFlow Lite Micro file needs tflite-micro: pip "
                                "install tflite-micro (or 'slimedge[tflm]')") from None
    return runtime


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _version

    try:
        return _version("tflite-micro")
    except PackageNotFoundError:
        return "?"


def arena_for(content: bytes) -> int:
    """The arena an interpreter is made with: far more than any step graph needs (10x the file,
    tflite-micro's own default, plus 16 KiB), because too small an arena crashes the process."""
    return 10 * len(content) + 16 * 1024


@contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """What native code writes to file descriptor 2 inside the block, appended to the yielded list
    when it ends (TFLM prints its errors and allocations there). Serialised by a lock; another
    thread's stderr output in that window lands in the capture."""
    out: list[str] = []
    with _STDERR_LOCK, tempfile.TemporaryFile() as f:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            f.seek(0)
            out.append(f.read().decode("utf-8", errors="replace"))


class MicroInterpreter:
    """One TFLM interpreter of a slimedge step graph: float32 (x, h, c) in, outputs out, any batch
    (stepped a row at a time), integer I/O converted at the boundary."""

    def __init__(self, content: bytes, where: str | os.PathLike = "TFLite model") -> None:
        rt = _runtime()
        self.where, self.content = str(where), bytes(content)
        names = _io_names(rt, self.content, self.where)
        config = read_config(self.content)
        trial_run(self.content, self.where)
        failed = None
        with captured_stderr() as log:
            try:
                self.it = rt.Interpreter.from_bytes(self.content, arena_size=arena_for(self.content))
            except (RuntimeError, ValueError) as e:
                failed = e
        if failed is not None:
            why = "; ".join(dict.fromkeys(line.strip() for line in log[0].splitlines()
                                          if line.strip())) or str(failed)
            export = config.get("export") or {}
            hint = "" if export.get("compat") == "tflm" else (
                "; a dynamic (hybrid) file has no TFLite Micro kernels: export --quantize int8 or "
                "float with --compat tflm" if export.get("quantize") == "dynamic" else
                f"; it was written for {export.get('compat', 'litert')}: export it with "
                f"compat='tflm' (--compat tflm) for TensorFlow Lite Micro")
            raise ModelFileError(f"{self.where}: TensorFlow Lite Micro cannot run it: {why}{hint}")
        # by name: the graph's own order of x, h, c and y, h_next, c_next
        self._in = [names[0].index(k) for k in INPUTS]
        self._out = [names[1].index(k) for k in OUTPUTS]
        self.inputs = [self.it.get_input_details(k) for k in self._in]
        self.outputs = [self.it.get_output_details(k) for k in self._out]
        front = frontend.outside(config)  # integer x: its front-end first
        self._to_int = [to_tensor(d, front if k == "x" else None)
                        for k, d in zip(INPUTS, self.inputs)]
        self._to_float = [from_tensor(d) for d in self.outputs]
        self._arena = None

    @property
    def integer_io(self) -> bool:
        return any(q is not None for q in self._to_int + self._to_float)

    def arena(self) -> dict:
        """``{"arena_bytes": the smallest arena TFLM allocates this file in, "arena_used_bytes":
        what it holds once allocated}`` (see the module's docstring); measured once."""
        if self._arena is None:
            rt = _runtime()
            with captured_stderr() as log:
                self.it.print_allocations()
            found = _ARENA_TOTAL.search(log[0])
            with captured_stderr():  # what the failing allocations print
                self._arena = {"arena_bytes": None, "arena_used_bytes": None}
                if found:
                    used = int(found.group(1))
                    self._arena = {"arena_bytes": _smallest_arena(rt, self.content, used),
                                   "arena_used_bytes": used}
        return dict(self._arena)

    def run_into(self, x: np.ndarray, h: np.ndarray, c: np.ndarray, y: np.ndarray,
                 h_next: np.ndarray, c_next: np.ndarray) -> None:
        """One step of every row: x (B, m), h and c (layers, B, n) -> the output arrays."""
        it = self.it
        ix, ih, ic = self._in
        oy, oh, oc = self._out
        qx, qh, qc = self._to_int
        dy, dh, dc = self._to_float
        for b in range(x.shape[0]):
            it.set_input(_cast(x[b:b + 1], qx), ix)
            it.set_input(_cast(h[:, b:b + 1], qh), ih)
            it.set_input(_cast(c[:, b:b + 1], qc), ic)
            try:
                it.invoke()
            except RuntimeError as e:  # "Interpreter invocation failed." (TFLM's log: stderr)
                raise step_failed(self.where, "TensorFlow Lite Micro", e) from e
            y[b:b + 1] = _back(it.get_output(oy), dy)
            h_next[:, b:b + 1] = _back(it.get_output(oh), dh)
            c_next[:, b:b + 1] = _back(it.get_output(oc), dc)

    def run(self, x, h, c) -> dict[str, np.ndarray]:
        """Outputs by name for float inputs of any batch."""
        x, h, c = (np.asarray(a, np.float32) for a in (x, h, c))
        k = int(self.outputs[0]["shape"][-1])
        out = {"y": np.empty((x.shape[0], k), np.float32), "h_next": np.empty_like(h),
               "c_next": np.empty_like(c)}
        self.run_into(x, h, c, out["y"], out["h_next"], out["c_next"])
        return out


def trial_run(content: bytes, where: str) -> None:
    """Load and step ``content`` in TFLM in a separate process first (see the module's docstring):
    a ModelFileError naming ``where`` when TFLM crashes or hangs on it there. A file TFLM merely
    refuses passes: this process loads it next and reports TFLM's own reason."""
    digest = hashlib.sha256(content).hexdigest()
    with _TRIED_LOCK:
        if digest in _TRIED:
            return
    try:
        done = subprocess.run([sys.executable, "-c", _TRIAL, str(arena_for(content))],
                              input=content, capture_output=True, timeout=TRIAL_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ModelFileError(f"{where}: TensorFlow Lite Micro did not finish four steps of it in "
                             f"{TRIAL_TIMEOUT} s (tried in a separate process); a step graph "
                             f"takes about a second at the size caps, so the file is damaged or "
                             f"forged") from None
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        raise ModelFileError(f"{where}: TensorFlow Lite Micro crashed ({name}) on it, tried in a "
                             f"separate process: the file is damaged or forged (its digest, if "
                             f"any, is not a signature); not loaded")
    if done.returncode == 0:
        with _TRIED_LOCK:
            _TRIED.add(digest)


def _smallest_arena(rt, content: bytes, used: int) -> int:
    """Bisection over ``used + k * ARENA_STEP`` up to :func:`arena_for` (which allocates)."""
    def allocates(size: int) -> bool:
        try:
            rt.Interpreter.from_bytes(content, arena_size=size)
            return True
        except (RuntimeError, ValueError):
            return False
    lo, hi = -1, max(0, -(-(arena_for(content) - used) // ARENA_STEP))  # lo fails, hi allocates
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if allocates(used + mid * ARENA_STEP) else (mid, hi)
    return used + hi * ARENA_STEP


def _io_names(rt, content: bytes, where: str) -> tuple[list[str], list[str]]:
    """The names of the file's graph inputs and outputs, in order (TFLM addresses them by index)."""
    try:
        model = rt.convert_bytearray_to_object(bytearray(content))
        sg = model.subgraphs[0]
        name = lambda i: sg.tensors[int(i)].name.decode()  # noqa: E731
        names = [name(i) for i in sg.inputs], [name(i) for i in sg.outputs]
    except Exception as e:  # a damaged flatbuffer fails in many ways inside the generated code
        raise ModelFileError(f"{where}: not a readable TFLite model ({type(e).__name__}: {e})") from None
    if sorted(names[0]) != sorted(INPUTS) or sorted(names[1]) != sorted(OUTPUTS):
        raise ModelFileError(f"{where}: graph inputs {names[0]} and outputs {names[1]}, expected "
                             f"{list(INPUTS)} and {list(OUTPUTS)} (a slimedge step graph)")
    return names


def _cast(a: np.ndarray, q) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32) if q is None else np.ascontiguousarray(q(a))


def _back(a: np.ndarray, dq) -> np.ndarray:
    return a if dq is None else dq(a)


__all__ = ["MicroInterpreter", "available", "arena_for", "captured_stderr", "trial_run", "version",
           "ARENA_STEP", "INTERPRETER"]
