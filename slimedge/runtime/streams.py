"""A model's streams: :class:`Stream` (one, frame by frame) and :class:`StreamBatch` (k stepped
together in one backend call), and the checks every frame, sequence and state passes first.

A wrong shape, a non-numeric dtype or a NaN/inf raises :class:`InputError` naming what was
expected and what came, and leaves the stream's state as it was; integer frames are converted.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable

import numpy as np

from ..errors import InputError, UsageError
from ..formats.model_info import LIMITS

if TYPE_CHECKING:
    from . import Model

_F32_MAX_SQUARED = float(np.finfo(np.float32).max) ** 2
_F32 = np.dtype(np.float32)


class Stream:
    """One stream: ``step(frame) -> output``, ``reset()``, and a readable/writable ``state``."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self._b = model.bind(1)
        self._x0, self._y0 = self._b.x[0], self._b.y[0]
        self._frame_shape = (model.input_size,)
        self.steps = 0  # frames stepped since the last reset

    def step(self, frame) -> np.ndarray:
        """Feed one frame (m,) (float, or integers converted to float32); returns the output (K,)."""
        a = frame
        if type(a) is not np.ndarray or a.dtype is not _F32:
            a = self._as_float32(frame)  # other types and dtypes: checked and converted
        elif a.shape != self._frame_shape:
            raise InputError(f"frame: expected shape {self._frame_shape}, got {a.shape}")
        # one reduction of the frame itself: a NaN/inf always shows in it (or a huge but finite
        # frame, which the exact check then passes)
        if not math.isfinite(a.dot(a)):
            _finite("frame", a)
        self._x0[...] = a  # (slice assignment: cheaper than np.copyto for small arrays)
        b = self._b
        b.run()
        b.advance()  # the new state becomes the next input, without a copy
        self.steps += 1
        return self._y0.copy()

    def _as_float32(self, frame) -> np.ndarray:
        a = np.asarray(frame)
        if a.shape != self._frame_shape:
            raise InputError(f"frame: expected shape {self._frame_shape}, got {a.shape}")
        _check_dtype("frame", a)
        if a.dtype.itemsize > 4 and a.dtype.kind == "f":  # float64: check before the cast
            if not a.dot(a) < _F32_MAX_SQUARED:  # NaN, inf, or maybe beyond float32's range
                with np.errstate(over="ignore"):
                    _finite("frame", a.astype(np.float32))
        return a.astype(np.float32)  # integers and narrower floats cannot overflow

    def reset(self) -> None:
        """Back to the zero state."""
        self._b.h.fill(0)
        self._b.c.fill(0)
        self.steps = 0

    @property
    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """A copy of (h, c), each (num_layers, hidden_size) float32."""
        return self._b.h[:, 0].copy(), self._b.c[:, 0].copy()

    @state.setter
    def state(self, value) -> None:
        h, c = _check_state(value, self.model.state_shape)
        self._b.h[:, 0], self._b.c[:, 0] = h, c


class StreamBatch:
    """k streams stepped together: ``step(frames (k, m)) -> (k, K)`` in one backend call.

    Streams are addressed by position 0..k-1; ``add`` appends one, ``remove(i)`` takes stream i
    out (later streams move down by one) and returns its state. ``reset(i)`` resets some streams.
    For streams that come and go (a server), :meth:`Model.step_streams` batches any list of
    :class:`Stream` objects instead: nothing to renumber, each stream keeps its own state.
    """

    def __init__(self, model: Model, k: int) -> None:
        cap = LIMITS["batch"]
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= cap:
            raise UsageError(f"number of streams must be a whole number from 0 to {cap:,}, "
                             f"got {k!r}")
        self.model = model
        self._k = int(k)
        self._b = self._binding(self._k)

    def _binding(self, k: int):
        """A new binding for k streams (None for none). The batch holds only the binding it steps
        now: add and remove make one of the new size, copy the states over and drop the old one,
        so a batch that grows to 400 streams and shrinks again keeps no binding of every size."""
        return None if k == 0 else self.model.bind(k)

    def __len__(self) -> int:
        return self._k

    def step(self, frames) -> np.ndarray:
        """One frame per stream, (k, m); returns the outputs (k, K)."""
        m = self.model.input_size
        a = np.asarray(frames)
        if a.shape != (self._k, m):
            raise InputError(f"frames: expected shape ({self._k}, {m}) (one frame per stream), "
                             f"got {a.shape}")
        _check_dtype("frames", a)
        if self._k == 0:
            return np.zeros((0, self.model.output_size), np.float32)
        b = self._b
        _copy_float32(b.x, a)
        if not math.isfinite(float(np.vdot(b.x, b.x))):
            _finite("frames", b.x)
        b.run()
        b.advance()
        return b.y.copy()

    def _indices(self, i) -> list[int]:
        idx = [i] if isinstance(i, (int, np.integer)) else list(i)
        for j in idx:
            if not -self._k <= int(j) < self._k:
                raise IndexError(f"stream index {j} out of range for {self._k} streams")
        return [int(j) % self._k for j in idx]

    def reset(self, i: int | Iterable[int] | None = None) -> None:
        """Reset all streams (None), stream i, or the streams in an iterable of indices."""
        if self._b is None:
            return
        idx = slice(None) if i is None else self._indices(i)
        self._b.h[:, idx] = 0
        self._b.c[:, idx] = 0

    @property
    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """A copy of every stream's (h, c), each (num_layers, k, hidden_size)."""
        if self._b is None:
            shape = (self.model.num_layers, 0, self.model.hidden_size)
            return np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        return self._b.h.copy(), self._b.c.copy()

    @state.setter
    def state(self, value) -> None:
        h, c = _check_state(value, (self.model.num_layers, self._k, self.model.hidden_size))
        if self._b is not None:
            self._b.h[:], self._b.c[:] = h, c

    def stream_state(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """A copy of stream i's (h, c), each (num_layers, hidden_size), as ``Stream.state``."""
        (j,) = self._indices(i)
        return self._b.h[:, j].copy(), self._b.c[:, j].copy()

    def set_stream_state(self, i: int, state) -> None:
        (j,) = self._indices(i)
        h, c = _check_state(state, self.model.state_shape)
        self._b.h[:, j], self._b.c[:, j] = h, c

    def add(self, state=None) -> int:
        """Append a stream (zero state, or ``state`` as from ``Stream.state``); returns its index."""
        new = None if state is None else _check_state(state, self.model.state_shape)
        h, c = self.state
        nb = self._binding(self._k + 1)
        nb.h[:, :self._k], nb.c[:, :self._k] = h, c
        nb.h[:, self._k], nb.c[:, self._k] = (0, 0) if new is None else new
        self._k, self._b = self._k + 1, nb
        return self._k - 1

    def remove(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Take stream i out (later streams move down one); returns its state."""
        (j,) = self._indices(i)
        gone = self.stream_state(j)
        h, c = self.state
        keep = [q for q in range(self._k) if q != j]
        nb = self._binding(self._k - 1)
        if nb is not None:
            nb.h[:], nb.c[:] = h[:, keep], c[:, keep]
        self._k, self._b = self._k - 1, nb
        return gone


# ---- checks shared by Stream, StreamBatch and Model.run ----------------------------------------
def _check_dtype(what: str, a: np.ndarray) -> None:
    if a.dtype.kind not in "fiu":
        raise InputError(f"{what}: expected a float (or integer) array, got dtype {a.dtype}")


def _copy_float32(dst: np.ndarray, a: np.ndarray) -> None:
    """``dst[...] = a`` in float32: float32 frames as they are (nothing to convert, no overflow
    to silence); other dtypes converted, a float64 beyond float32's range becoming inf (which the
    caller's finite check then names)."""
    if a.dtype is _F32:
        np.copyto(dst, a)
    else:
        with np.errstate(over="ignore"):
            np.copyto(dst, a, casting="unsafe")


def _finite(what: str, a: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        bad = ~np.isfinite(a)
    if bad.any():
        where = tuple(int(v) for v in np.argwhere(bad)[0])
        raise InputError(f"{what}: expected finite values, got {a[where]} at index "
                         f"{where if len(where) > 1 else where[0]} (a value outside float32's "
                         f"range also becomes inf)")
    return a


def _check_state(value, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    try:
        h, c = value
    except (TypeError, ValueError):
        raise InputError(f"state: expected a pair (h, c) of arrays each of shape {shape}, got "
                         f"{type(value).__name__}") from None
    out = []
    for name, v in (("h", h), ("c", c)):
        a = np.asarray(v)
        if a.shape != tuple(shape):
            raise InputError(f"state {name}: expected shape {tuple(shape)}, got {a.shape}")
        _check_dtype(f"state {name}", a)
        with np.errstate(over="ignore"):
            out.append(_finite(f"state {name}", a.astype(np.float32)))
    return out[0], out[1]


