"""What every runtime backend shares: the buffers a binding owns, a cache, reading the config JSON.

A backend module (``formats/onnx/onnxruntime.py``, ``formats/tflite/litert.py``, ...) opens and
steps its format's files, behind the same small surface; nothing outside needs more:

    available() -> bool     is its library installed (without importing it)
    open(path, *, threads, device) -> Session
    Session.bind(batch) -> Binding
    Binding.run()           one backend call: reads x, h, c; writes y, h_next, c_next
    Binding.advance()       after run: h_next, c_next become the next step's h, c (no copy)

``Session`` holds the loaded model (``config``, ``device``, ``detail``, and optionally
``measured``: what the interpreter says about itself); a ``Binding`` holds preallocated float32
NumPy buffers for one batch size: inputs ``x`` (batch, m), ``h``, ``c`` (layers, batch, n) that
the caller fills, outputs ``y`` (batch, K), ``h_next``, ``c_next`` that ``run`` overwrites. A
binding belongs to one caller (one Stream); bindings of one session may run concurrently from
different threads (a backend whose library is not thread-safe locks inside). Which backends read
which format, and the extra each needs, is the format table's (:mod:`slimedge.formats`).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Hashable, TypeVar

import numpy as np

from ..errors import ModelFileError, UsageError
from .model_info import METADATA_KEY

V = TypeVar("V")


class LruCache:
    """At most ``size`` values by key, the most recently used ones; thread-safe.

    For what a session makes per batch size (an interpreter, a captured graph): the cache keeps
    the recent sizes ready, and a value it drops lives on only while a binding still holds it, so
    streams that come and go (batch sizes 1, 2, ..., 400) do not pile up memory."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"cache size must be at least 1, got {size}")
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        """The value for ``key``, made by ``make()`` (under the cache's lock) when absent."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            value = make()
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return value

    def keys(self) -> list:
        """The cached keys, least recently used first."""
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        return len(self._items)


def check_batch(batch: int, input_size: int, hidden_size: int, num_layers: int,
                output_size: int) -> None:
    """A batch size the buffers can be allocated for: a whole number of streams from 1 to
    ``LIMITS["batch"]``, whose six buffers hold at most ``LIMITS["batch_floats"]`` floats
    (UsageError saying so, before anything is allocated)."""
    from .model_info import LIMITS

    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) \
            or not 1 <= batch <= LIMITS["batch"]:
        raise UsageError(f"batch size must be a whole number of streams from 1 to "
                         f"{LIMITS['batch']:,}, got {batch!r}")
    floats = batch * (input_size + output_size + 4 * num_layers * hidden_size)
    if floats > LIMITS["batch_floats"]:
        raise UsageError(f"batch size {batch:,} needs {floats * 4:,} bytes of buffers for this "
                         f"model, more than the {LIMITS['batch_floats'] * 4:,} allowed; step "
                         f"fewer streams at once")


class Buffers:
    """The six preallocated float32 arrays of one batch size (a binding's base class)."""

    def __init__(self, batch: int, input_size: int, hidden_size: int, num_layers: int,
                 output_size: int) -> None:
        f32 = np.float32
        check_batch(batch, input_size, hidden_size, num_layers, output_size)
        self.batch = batch
        self.x = np.zeros((batch, input_size), f32)
        self.h = np.zeros((num_layers, batch, hidden_size), f32)
        self.c = np.zeros((num_layers, batch, hidden_size), f32)
        self.y = np.zeros((batch, output_size), f32)
        self.h_next = np.zeros((num_layers, batch, hidden_size), f32)
        self.c_next = np.zeros((num_layers, batch, hidden_size), f32)
        # which of the two arrangements of the state arrays is current (see advance)
        self.flipped = 0

    def run(self) -> None:  # pragma: no cover - every backend overrides it
        raise NotImplementedError

    def advance(self) -> None:
        """Make the step's outputs h_next, c_next the next step's inputs h, c, without copying:
        the two pairs of arrays trade places. A backend that reads ``self.h`` etc. in ``run`` needs
        nothing more; one that binds particular arrays once keeps a binding for each of the two
        arrangements and picks it by ``self.flipped``."""
        self.h, self.h_next = self.h_next, self.h
        self.c, self.c_next = self.c_next, self.c
        self.flipped ^= 1

    def arrangements(self) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        """(x, h, c, y, h_next, c_next) as the arrays stand now, and after one ``advance``."""
        now = (self.x, self.h, self.c, self.y, self.h_next, self.c_next)
        return now, (self.x, self.h_next, self.c_next, self.y, self.h, self.c)


def sizes(config: dict) -> tuple[int, int, int, int]:
    """(input_size, hidden_size, num_layers, output_size) from a config's ``graph`` section."""
    g = config["graph"]
    return int(g["input_size"]), int(g["hidden_size"]), int(g["num_layers"]), int(g["output_size"])


def parse_config(path: Path, text: str | bytes | None, container: str) -> dict:
    """The slimedge config JSON stored in a model file's metadata, checked for the graph sizes."""
    if text is None:
        raise ModelFileError(f"{path}: a valid {container}, but not a slimedge export (no "
                             f"'{METADATA_KEY}' entry in its metadata)")
    from .model_info import ModelInfo, parse_json

    config = parse_json(text, path)
    if not isinstance(config.get("graph"), dict):
        raise ModelFileError(f"{path}: its '{METADATA_KEY}' metadata is not a slimedge config with "
                             f"a 'graph' section (input_size, hidden_size, num_layers, "
                             f"output_size)")
    ModelInfo.from_config(config, path=path)  # the schema: types, sizes, strings (ModelFileError)
    return config


def check_io(path: Path, config: dict, inputs: dict[str, tuple], outputs: dict[str, tuple]) -> None:
    """The file's graph inputs and outputs are the step graph's, in the config's sizes.

    ``inputs``/``outputs`` map names to shapes (a dimension may be None or a string: unknown).
    """
    m, n, layers, k = sizes(config)
    want_in = {"x": (None, m), "h": (layers, None, n), "c": (layers, None, n)}
    want_out = {"y": (None, k), "h_next": (layers, None, n), "c_next": (layers, None, n)}
    for kind, got, want in (("inputs", inputs, want_in), ("outputs", outputs, want_out)):
        if set(got) != set(want):
            x_rank = len(inputs.get("x", ()))
            hint = (" (a sequence-mode export? the runtime steps step-mode graphs: export with "
                    "mode='step')") if x_rank == 3 else ""
            raise ModelFileError(f"{path}: graph {kind} are {sorted(got)}, expected "
                                 f"{sorted(want)}{hint}")
        for name, shape in want.items():
            g = tuple(got[name])
            if len(g) != len(shape) or any(isinstance(a, int) and b is not None and a != b
                                           for a, b in zip(g, shape)):
                hint = " (a sequence-mode export?)" if name == "x" and len(g) == 3 else ""
                shown = tuple("batch" if d is None else d for d in shape)
                raise ModelFileError(f"{path}: graph {kind[:-1]} {name!r} has shape {g}, expected "
                                     f"{shown} from its metadata{hint}")


def step_failed(path, interpreter: str, error: BaseException) -> ModelFileError:
    """The error for an interpreter that refused to run a step of a file that loaded: the inputs
    are the binding's own buffers, in the shapes the graph declares (checked at load), so the
    file's graph is at fault (damaged, forged with a recomputed digest, or an op that fails on
    these sizes), not the caller. The interpreter's message is kept, on one line."""
    why = " ".join(str(error).split()) or type(error).__name__
    return ModelFileError(f"{path}: {interpreter} failed to run a step of it: {why[:500]} (its "
                          f"graph is damaged or forged; if slimedge wrote it unchanged, please "
                          f"report it)")
