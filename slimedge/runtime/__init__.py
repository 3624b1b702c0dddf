"""The streaming runtime: step an exported model (or a checkpoint) frame by frame.

    from slimedge import runtime
    model = runtime.load("model.onnx")            # .onnx, .tflite or .safetensors; backend="auto"
    s = model.stream()
    y = s.step(frame)                             # frame (m,) -> output (K,), state kept inside
    saved = s.state                               # (h, c) NumPy copies, each (layers, n)
    s.reset(); s.state = saved                    # suspend and resume (np.savez works too)
    batch = model.streams(16)                     # 16 streams, one backend call per step
    ys = batch.step(frames)                       # (16, m) -> (16, K); batch.reset(3), add, remove
    ys = model.step_streams([s1, s7], frames)     # any Stream objects, one backend call (servers)
    ys = model.run(sequence)                      # (T, m) -> (T, K), or (B, T, m) -> (B, T, K)
    a = model.audio_stream()                      # a model that records an audio front-end:
    ys = a.push(pcm)                              # PCM of any length -> (frames completed, K)

Backends (``BACKENDS``) are the format table's (:mod:`slimedge.formats`): each format's package
holds the modules that open and step its files, one per backend, behind one small interface
(:mod:`slimedge.formats.binding`); which backends read which file type, best first, is its rows'.
This package imports nothing from ``slimedge.exporters``.
``backend="auto"`` takes the backend named by ``$SLIMEDGE_BACKEND`` where it reads the file type,
else the first installed backend the table lists for it; it logs its choice on the
``slimedge.runtime`` logger and records it in ``model.backend`` / ``model.backend_reason``.
Importing this package imports no backend library; only loading a model imports the one it uses.

Every frame, sequence and state is checked before the backend runs: a wrong shape, a non-numeric
dtype or a NaN/inf raises :class:`InputError` naming what was expected and what came, and leaves
the stream's state as it was. Integer frames (e.g. raw uint8 pixels) are converted to float32.
Threads: one :class:`Model` may be shared by many threads, each stepping its own streams; a single
``Stream`` or ``StreamBatch`` belongs to one thread at a time.
"""
from __future__ import annotations

import logging
import math
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterable

import numpy as np

from .. import extras, formats, metrics
from ..errors import MissingDependency, ModelFileError, UsageError
from ..metrics import Evaluation  # numpy only: evaluate's result, exported with it
from ..rollout import rollout
from .streams import InputError, Stream, StreamBatch, _check_dtype, _check_state, _copy_float32, _finite

log = logging.getLogger(__name__)

ENV_BACKEND = "SLIMEDGE_BACKEND"


def __getattr__(name: str):
    if name == "BACKENDS":  # derived from the format table's rows, so a registered row counts
        return tuple(formats.backends())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def backend_module(name: str):
    """The module of backend ``name`` (imports it, not its library)."""
    return formats.backend(name).module()


def reads(backend: str, fmt: formats.Format) -> bool:
    """Does ``backend`` read files of format ``fmt``?"""
    return backend in fmt.backends


def available_backends() -> list[str]:
    """Backends whose library is installed (checked without importing it)."""
    return [name for name, b in formats.backends().items() if b.available()]


def load(path: str | os.PathLike | None = None, backend: str = "auto",
         threads: int | None = None, *, device: str | None = None,
         verify: bool = True) -> "Model":
    """Load a model for streaming.

    Args:
        path: an exported step graph (``.onnx``, ``.tflite``) or a checkpoint (``.safetensors``);
            None: the shipped default model, in a format an installed backend reads
            (:func:`slimedge.zoo.for_runtime`: a runtime-only install gets its ``.tflite``).
        backend: ``"auto"`` (by file type and what is installed; ``$SLIMEDGE_BACKEND`` overrides)
            or one of ``BACKENDS``.
        threads: the backend's thread count (onnxruntime intra-op threads, LiteRT num_threads,
            torch.set_num_threads); None leaves the backend's default.
        device: ``"cpu"`` or ``"cuda"`` where the backend supports it; None: CUDA when available
            (torch, onnxruntime GPU build), else CPU.
        verify: check the file against the integrity digest it records (:mod:`slimedge.integrity`)
            before loading it: a corrupted file raises IntegrityError (a ModelFileError) naming it.
            ``False`` loads it anyway (a file without a digest, written before there was one,
            loads either way).

    Raises ModelFileError (a ValueError) naming the file when it is missing, truncated, foreign
    or not a step graph, and ValueError/ImportError for a backend that cannot read it.
    """
    if path is None:
        from .. import zoo

        path = zoo.for_runtime(backend)
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file")
    fmt = formats.for_path(path)
    if not path.is_dir():
        from .._io import check_regular_file

        check_regular_file(path, "model file")  # a FIFO would block the reader forever
    if verify:
        from .. import integrity
        from ..errors import UnsealedError

        try:
            integrity.verify(fmt.main_file(path))
        except UnsealedError:
            # a foreign or junk file has no digest either: say what it is, when its reader can
            fmt.read_config(path)
            raise
    if threads is not None and not 1 <= int(threads) <= formats.LIMITS["threads"]:
        raise UsageError(f"threads must be at least 1 and at most {formats.LIMITS['threads']}, got "
                         f"{threads}")
    name, reason = _choose(fmt, backend)
    row = formats.backend(name)
    module = row.module()
    if not reads(name, fmt):
        theirs = [f.suffix for f in formats.FORMATS.values() if reads(name, f)]
        raise UsageError(f"backend {name!r} reads {', '.join(theirs)} files, not {fmt.suffix} "
                         f"({path}); for {fmt.suffix} use {' or '.join(fmt.backends)}")
    if not row.available():
        row.require(f"backend {name!r} (for {path})")  # names the extra
        raise MissingDependency(f"backend {name!r} is not installed (needed for {path})")
    row.require(f"loading {path} on backend {name!r}")  # e.g. safetensors
    if verify:
        session = module.open(path, threads=threads, device=device)
    else:
        from .. import integrity

        with integrity.unchecked():
            session = module.open(path, threads=threads, device=device)
    model = Model(path, name, session, threads, reason)
    log.info("%s: backend %s (%s; %s)", path, name, reason, session.detail)
    return model


def _choose(fmt: formats.Format, backend: str) -> tuple[str, str]:
    if backend in (None, "auto"):
        env = os.environ.get(ENV_BACKEND, "").strip()
        if env and env != "auto" and reads(env, fmt):  # else: auto
            return env, f"${ENV_BACKEND}={env}"
        for row in fmt.runtimes:
            if row.available():
                return row.name, (f"auto: first installed of {', '.join(fmt.backends)} for "
                                  f"{fmt.suffix}")
        hints = [extras.hint(b.extra) for b in fmt.runtimes if b.extra]
        raise MissingDependency(f"no backend for {fmt.suffix} files is installed (it is read by "
                                f"{' or '.join(fmt.backends)})"
                                + (f": {' or '.join(dict.fromkeys(hints))}" if hints else ""))
    formats.backend(backend)  # unknown name -> UsageError listing the valid ones
    return backend, "asked for"


class Model:
    """A loaded model: its sizes, labels, config, and the backend session that steps it."""

    def __init__(self, path: Path, backend: str, session, threads: int | None, reason: str) -> None:
        self.path, self.backend, self.session = path, backend, session
        self.threads, self.backend_reason = threads, reason
        self.device: str = session.device
        self.config: dict = session.config
        self.info = formats.ModelInfo.from_config(self.config, path=path)
        self.input_size, self.hidden_size = self.info.input_size, self.info.hidden_size
        self.num_layers, self.output_size = self.info.num_layers, self.info.output_size
        self.labels: list[str] | None = list(self.info.labels) if self.info.labels else None
        self._raw = None  # binding of step_raw, created on first use

    @property
    def state_shape(self) -> tuple[int, int]:
        """Shape of each of a stream's h and c: (num_layers, hidden_size)."""
        return (self.num_layers, self.hidden_size)

    @property
    def variant(self) -> str:
        return self.info.variant

    def __repr__(self) -> str:
        return (f"Model({str(self.path)!r}, backend={self.backend!r}, device={self.device!r}, "
                f"input_size={self.input_size}, output_size={self.output_size}, "
                f"hidden_size={self.hidden_size}, num_layers={self.num_layers})")

    def stream(self) -> "Stream":
        """A new stream at the zero state."""
        return Stream(self)

    def audio_stream(self, compiled: bool = False):
        """A new stream of audio through the model (:class:`~slimedge.runtime.audio.AudioStream`:
        ``push(pcm)`` -> one output per completed frame), for a model whose config records an
        audio front-end; UsageError otherwise. ``compiled``: the integer front-end's compiled
        kernel (numba; the same values, for servers and long streams)."""
        from .audio import AudioStream
        return AudioStream(self, compiled)

    def listen(self, compiled: bool = False, **decoder):
        """A continuous model listening (:class:`~slimedge.runtime.audio.EventStream`:
        ``push(pcm)`` -> the events fired), for a model with an audio front-end and a background
        class (its config's "stream" section); ``decoder``: settings over the config's "decoder"
        section (window_ms, threshold, min_count, refractory_ms, arithmetic)."""
        from .audio import EventStream
        return EventStream(self, compiled, **decoder)

    def streams(self, k: int) -> "StreamBatch":
        """k new streams at the zero state, stepped together in one backend call."""
        return StreamBatch(self, k)

    def step_streams(self, streams: Iterable["Stream"], frames) -> np.ndarray:
        """Step any streams of this model together, in one backend call: ``frames`` (k, m), one
        per stream in the order given -> outputs (k, K).

        For a server whose streams come and go: keep each client's :class:`Stream` (its state lives
        in it) and batch whichever have a frame ready, in any order and any subset, as
        sherpa-onnx's ``decode_streams(list)`` does. Each stream's state is read from it and the
        new state written back to it (a copy of (layers, n) per stream), so ``s.step``,
        ``s.state`` and ``s.reset`` keep working on every one, and nothing is renumbered when a
        stream leaves. The result is the streams' own ``step`` results (tested). A binding per
        batch size is kept per thread (the 4 most recent sizes); each stream belongs to one
        thread at a time."""
        streams = self._own_streams(streams)
        k, m = len(streams), self.input_size
        a = np.asarray(frames)
        if a.shape != (k, m):
            raise InputError(f"frames: expected shape ({k}, {m}) (one frame per stream), got "
                             f"{a.shape}")
        return self.step_streams_many(streams, a[None], checked=True)[0]

    def step_streams_many(self, streams: Iterable["Stream"], frames, counts=None, *,
                          checked: bool = False) -> np.ndarray:
        """Several steps of any streams of this model: ``frames`` (T, k, m), stream j taking its
        first ``counts[j]`` frames (all T by default; the counts must not increase with j, so
        step i is a prefix of the streams) -> outputs (T, k, K), zero past a stream's count.

        The same as T calls of :meth:`step_streams` (the same batch sizes, so the same results),
        with each stream's state read from it once at the start and written back once, when it
        has taken its last frame: a server's tick of 100 ms chunks costs one gather and one
        scatter per stream, not one per frame."""
        if not checked:
            streams = self._own_streams(streams)
        k, m, K = len(streams), self.input_size, self.output_size
        a = np.asarray(frames)
        if a.ndim != 3 or a.shape[1:] != (k, m):
            raise InputError(f"frames: expected shape (steps, {k}, {m}) (steps of one frame per "
                             f"stream), got {a.shape}")
        _check_dtype("frames", a)
        T = a.shape[0]
        if counts is None:
            counts = [T] * k
        counts = [int(c) for c in counts]
        if len(counts) != k or any(not 0 <= c <= T for c in counts) \
                or any(x < y for x, y in zip(counts, counts[1:])):
            raise UsageError(f"counts: one per stream ({k}), each from 0 to {T}, not increasing "
                             f"from one stream to the next; got {counts[:8]}"
                             + (" ..." if k > 8 else ""))
        y = np.zeros((T, k, K), np.float32)
        width = sum(1 for c in counts if c > 0)
        if width == 0:
            return y
        x = np.empty((T, k, m), np.float32)
        _copy_float32(x, a)
        if not math.isfinite(float(np.vdot(x, x))):
            _finite("frames", x)
        b = self._streams_binding(width)
        # gather: each stream's current state, once
        np.concatenate([s._b.h for s in streams[:width]], axis=1, out=b.h)
        np.concatenate([s._b.c for s in streams[:width]], axis=1, out=b.c)
        for i in range(T):
            now = width
            while now and counts[now - 1] <= i:
                now -= 1
            if now < width:  # streams now..width took their last frame: their state goes back
                self._scatter(streams, b, now, width)
                if now == 0:
                    break
                narrower = self._streams_binding(now)
                narrower.h[...] = b.h[:, :now]
                narrower.c[...] = b.c[:, :now]
                b, width = narrower, now
            b.x[...] = x[i, :width]
            b.run()
            b.advance()
            y[i, :width] = b.y
        else:
            self._scatter(streams, b, 0, width)
        for s, c in zip(streams, counts):
            s.steps += c
        return y

    @staticmethod
    def _scatter(streams, b, lo: int, hi: int) -> None:
        """The state of rows lo..hi of binding ``b`` back into their streams."""
        for j in range(lo, hi):
            s = streams[j]
            s._b.h[:, 0] = b.h[:, j]
            s._b.c[:, 0] = b.c[:, j]

    def _own_streams(self, streams: Iterable["Stream"]) -> list["Stream"]:
        """``streams`` as a list, each a Stream of this model, none twice (UsageError)."""
        streams = list(streams)
        seen: set[int] = set()
        for s in streams:
            if not isinstance(s, Stream) or s.model is not self:
                raise UsageError(f"step_streams takes Stream objects of this model "
                                 f"(model.stream()), got {type(s).__name__}"
                                 + (" of another model" if isinstance(s, Stream) else ""))
            if id(s) in seen:
                raise UsageError("step_streams: a stream appears twice in one call; each stream "
                                 "takes one frame per step")
            seen.add(id(s))
        return streams

    def _streams_binding(self, k: int):
        """This thread's binding for k rows (step_streams), the 4 most recent sizes kept."""
        local = self.__dict__.get("_stream_bindings")
        if local is None:
            local = self.__dict__.setdefault("_stream_bindings", threading.local())
        cache = getattr(local, "cache", None)
        if cache is None:
            cache = local.cache = OrderedDict()
        b = cache.get(k)
        if b is None:
            b = cache[k] = self.bind(k)
            while len(cache) > 4:
                cache.popitem(last=False)
        cache.move_to_end(k)
        return b

    def bind(self, batch: int):
        """A backend binding with preallocated buffers for ``batch`` rows (see
        :mod:`slimedge.formats.binding`)."""
        from ..formats.binding import check_batch

        check_batch(batch, self.input_size, self.hidden_size, self.num_layers, self.output_size)
        return self.session.bind(int(batch))

    def step_raw(self, x: np.ndarray, h: np.ndarray, c: np.ndarray):
        """The bare backend call on unchecked float32 arrays x (B, m), h, c (L, B, n); returns
        (y, h_next, c_next) as the binding's own arrays (overwritten by the next call). For
        measuring the backend alone; not thread-safe. Apps use :meth:`stream`."""
        b = self._raw
        if b is None or b.batch != x.shape[0]:
            b = self._raw = self.bind(x.shape[0])
        if x is not b.x:
            np.copyto(b.x, x)
        if h is not b.h:
            np.copyto(b.h, h)
        if c is not b.c:
            np.copyto(b.c, c)
        b.run()
        return b.y, b.h_next, b.c_next

    def run(self, sequence, state=None, *, return_state: bool = False):
        """Outputs for a whole sequence: (T, m) -> (T, K), or a batch (B, T, m) -> (B, T, K).

        ``state``: the initial (h, c), each (layers, n) for one sequence or (layers, B, n) for a
        batch (default zeros). With ``return_state`` returns (outputs, (h, c)).
        """
        seq = np.asarray(sequence)
        single = seq.ndim == 2
        if seq.ndim not in (2, 3) or seq.shape[-1] != self.input_size:
            raise InputError(f"sequence: expected shape (T, {self.input_size}) or "
                             f"(B, T, {self.input_size}), got {seq.shape}")
        _check_dtype("sequence", seq)
        with np.errstate(over="ignore"):
            seq32 = _finite("sequence", seq.astype(np.float32, copy=False))
        batch = seq32[None] if single else seq32
        B, T = batch.shape[:2]
        ys = np.zeros((B, T, self.output_size), np.float32)
        h, c = (np.zeros((self.num_layers, B, self.hidden_size), np.float32) for _ in range(2))
        if state is not None:
            sh = self.state_shape if single else (self.num_layers, B, self.hidden_size)
            h0, c0 = _check_state(state, sh)
            h[:], c[:] = (h0[:, None], c0[:, None]) if single else (h0, c0)
        if B and T:
            b = self.bind(B)
            b.h[:], b.c[:] = h, c

            def step(feeds):  # the binding's own state arrays come back: advance() swaps them
                np.copyto(b.x, feeds["x"])
                b.run()
                b.advance()
                return {"y": b.y, "h_next": b.h, "c_next": b.c}
            r = rollout(step, batch.swapaxes(0, 1), (b.h, b.c), out={"y": ys.swapaxes(0, 1)})
            h, c = r.state[0].copy(), r.state[1].copy()
        out = ys[0] if single else ys
        if not return_state:
            return out
        return out, ((h[:, 0], c[:, 0]) if single else (h, c))


def evaluate(model: Model, data, batch_size: int = 256):
    """Classify every sequence of ``data`` (a :class:`slimedge.data.SequenceData`) by the model's
    output at its last frame; ``batch_size`` sequences are stepped together (padded: frames after
    a sequence's end cannot change its earlier outputs)."""
    if data.input_size != model.input_size:
        raise UsageError(f"the model takes {model.input_size} features per frame, the data "
                         f"{data.name} has {data.input_size}")
    k = model.output_size
    if data.num_classes > k:
        raise UsageError(f"the data {data.name} has {data.num_classes} classes, the model {k} "
                         f"outputs")
    labels = model.labels or list(getattr(data, "labels", [])) or [str(j) for j in range(k)]

    def predict(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return model.run(x)[np.arange(len(x)), np.asarray(lengths) - 1]

    # batches in index order, as always: a dynamically quantised ONNX graph picks one activation
    # scale per call, so which sequences share a batch can change its outputs
    return metrics.evaluate(predict, data, labels, num_classes=k, batch_size=batch_size,
                            by_length=False)


__all__ = ["load", "Model", "Stream", "StreamBatch", "InputError", "ModelFileError",
           "available_backends", "evaluate", "Evaluation"]
