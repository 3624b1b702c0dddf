"""The wire protocol: what a client sends, what it gets back, and how a mistake is named.

WebSocket, one stream per connection (``GET /v1/stream``). What a stream takes and gives is chosen
by the query (:func:`parse_mode`); without one, frames in and outputs out, as below:

- ``input``: ``frames`` (the default), or audio for a model whose config records an audio
  front-end: ``s16le`` (int16 little-endian PCM) or ``f32le`` (float32 little-endian in [-1, 1)),
  mono at the model's sample rate, as binary messages of any number of samples (at most
  ``max_samples_per_message``); the server runs the front-end per connection and each message is
  answered with the frames it completed (none, one or several);
- ``output``: ``outputs`` (the default: each chunk's per-frame outputs, as below) or ``events``
  for a continuous model (a background class in its config): each chunk is answered with
  ``{"type": "events", "events": [...]}``, the events its frames fired (often none), each
  ``{"label", "index", "time", "start", "score", "frame", "start_frame"}`` as
  :class:`~slimedge.runtime.decoder.Event` has them; the decoder's settings are the model's,
  each overridable in the query (``threshold=0.8``, ``window_ms``, ``min_count``,
  ``refractory_ms``, ``arithmetic``).

The server first sends ``{"type": "ready", "input_size": m,
"output_size": K, "labels": [...], "backend": ..., "max_frames_per_message": F,
"max_queued_frames": Q, "input": ..., "output": ...}`` (audio adds ``"sample_rate"``,
``"hop_samples"``, ``"window_samples"``, ``"max_samples_per_message"``; events add ``"decoder"``,
its settings). A query the model cannot serve is answered with the error below instead of
``ready``. Then each client message is a chunk of 1..F frames (or of audio samples):

- binary: float32 little-endian, ``n * m`` values (frame after frame) -> a binary reply of
  float32 ``n * K`` values, the n frames' outputs;
- text: JSON ``{"frames": [[m numbers], ...]}`` (or ``{"frame": [m numbers]}``) ->
  ``{"type": "outputs", "outputs": [[K numbers], ...]}`` (each number the float32 output written
  exactly).

Replies come in the order of the chunks, one per chunk (for audio, an empty one when a message
completes no frame). A mistake gets ``{"type": "error", "error": NAME,
"message": "..."}`` and the connection is closed with the close code below (the reason is NAME).
The one-shot HTTP endpoint (``POST /v1/run``) takes the same payloads as a whole sequence and
answers 400/413 with the same JSON error object (``too_big``: a body over ``max_request_bytes``).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ProtocolError

# RFC 6455 close codes
GOING_AWAY = 1001          # graceful shutdown
INVALID_DATA = 1007        # wrong frame size, not a number, NaN/inf, not JSON
UNSUPPORTED = 1003         # audio (or events) asked of a model that cannot give them
POLICY = 1008              # sending faster than the rate limit; a query not understood
TOO_BIG = 1009             # too many frames in one message, or too many bytes
TRY_AGAIN_LATER = 1013     # the server is full

CLOSE_CODES = {"frame_size": INVALID_DATA, "not_a_number": INVALID_DATA,
               "not_finite": INVALID_DATA, "bad_message": INVALID_DATA,
               "sample_size": INVALID_DATA, "too_many_frames": TOO_BIG,
               "too_many_samples": TOO_BIG, "too_big": TOO_BIG, "too_fast": POLICY,
               "bad_query": POLICY, "unsupported": UNSUPPORTED,
               "shutting_down": GOING_AWAY, "server_full": TRY_AGAIN_LATER}


INPUTS = {"frames": None, "s16le": "<i2", "f32le": "<f4"}   # input -> its samples' dtype
OUTPUTS = ("outputs", "events")
DECODER_KNOBS = {"window_ms": float, "threshold": float, "min_count": int,
                 "refractory_ms": float, "arithmetic": str}


@dataclass(frozen=True)
class Mode:
    """What one stream takes and gives (the query of ``/v1/stream`` or ``/v1/run``)."""

    input: str = "frames"
    output: str = "outputs"
    decoder: dict = field(default_factory=dict)    # the decoder settings the query overrides

    @property
    def audio(self) -> bool:
        return self.input != "frames"

    @property
    def events(self) -> bool:
        return self.output == "events"


def parse_mode(query) -> Mode:
    """The :class:`Mode` a request's query asks for (``input``, ``output`` and, with
    ``output=events``, decoder settings); ``bad_query`` for anything else."""
    allowed = {"input", "output", *DECODER_KNOBS}
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise ProtocolError("bad_query", f"unknown query parameter {unknown[0]!r}; expected "
                                         f"{', '.join(sorted(allowed))}")
    for key in query:
        if len(query.getall(key) if hasattr(query, "getall") else [query[key]]) > 1:
            raise ProtocolError("bad_query", f"query parameter {key!r} given twice")
    input_, output = query.get("input", "frames"), query.get("output", "outputs")
    if input_ not in INPUTS:
        raise ProtocolError("bad_query", f"input={input_!r}: expected one of "
                                         f"{', '.join(INPUTS)}")
    if output not in OUTPUTS:
        raise ProtocolError("bad_query", f"output={output!r}: expected one of "
                                         f"{', '.join(OUTPUTS)}")
    decoder = {}
    for key, kind in DECODER_KNOBS.items():
        if key not in query:
            continue
        if output != "events":
            raise ProtocolError("bad_query", f"{key} is a decoder setting: it needs "
                                             f"output=events")
        try:
            decoder[key] = value = kind(query[key])
            if kind is float and not math.isfinite(value):
                raise ValueError
        except ValueError:
            raise ProtocolError("bad_query", f"{key}={query[key]!r}: expected "
                                             f"{'an integer' if kind is int else 'a finite number'}"
                                ) from None
    return Mode(input_, output, decoder)


def close_code(error: ProtocolError) -> int:
    return CLOSE_CODES[error.name]


def error_json(error: ProtocolError) -> str:
    """The error message a client gets before the close."""
    return json.dumps({"type": "error", "error": error.name, "message": error.message})


def _finite(a: np.ndarray) -> np.ndarray:
    # one reduction: a float64 sum of float32 values cannot overflow, and NaN/inf carry through it
    if not np.isfinite(a.sum(dtype=np.float64)):
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ProtocolError("not_finite", f"frame {bad[0]} value {bad[1]} is "
                                          f"{a[tuple(bad)]!r}: frames must be finite numbers")
    return a


def _count(n: int, max_frames: int) -> None:
    if n == 0:
        raise ProtocolError("frame_size", "a message must carry at least one frame")
    if n > max_frames:
        raise ProtocolError("too_many_frames", f"{n} frames in one message; at most {max_frames}")


def parse_binary(data: bytes, m: int, max_frames: int) -> np.ndarray:
    """Frames (n, m) float32 from little-endian float32 bytes."""
    if len(data) % (4 * m):
        raise ProtocolError("frame_size", f"binary message of {len(data)} bytes: expected a "
                                          f"multiple of {4 * m} ({m} float32 values per frame)")
    _count(len(data) // (4 * m), max_frames)
    return _finite(np.frombuffer(data, "<f4").reshape(-1, m))   # a read-only view, no copy


def parse_json(text: str, m: int, max_frames: int) -> np.ndarray:
    """Frames (n, m) float32 from ``{"frames": [[...], ...]}`` or ``{"frame": [...]}``."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ProtocolError("bad_message", f"text message is not JSON ({e.msg} at char "
                                           f"{e.pos})") from None
    if not isinstance(doc, dict) or ("frames" in doc) == ("frame" in doc):
        raise ProtocolError("bad_message", 'expected a JSON object with "frames": [[...], ...] '
                                           'or "frame": [...]')
    rows = doc["frames"] if "frames" in doc else [doc["frame"]]
    if not isinstance(rows, list):
        raise ProtocolError("bad_message", '"frames" must be a list of frames')
    _count(len(rows), max_frames)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != m:
            got = f"{len(row)} values" if isinstance(row, list) else type(row).__name__
            raise ProtocolError("frame_size", f"frame {i}: expected {m} numbers, got {got}")
        for j, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ProtocolError("not_a_number", f"frame {i} value {j} is {json.dumps(v)}, "
                                                    f"not a number")
    with np.errstate(over="ignore"):
        a = np.asarray(rows, np.float64).astype(np.float32)
    if not np.isfinite(a).all():  # NaN/Infinity (Python's json reads them) or beyond float32
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ProtocolError("not_finite", f"frame {bad[0]} value {bad[1]} is "
                                          f"{rows[bad[0]][bad[1]]!r}: frames must be finite "
                                          f"float32 numbers")
    return a


def parse_pcm(data: bytes, input_: str, max_samples: int) -> np.ndarray:
    """Audio samples (1-D int16 or float32) from a binary message of ``s16le`` or ``f32le``."""
    dtype = np.dtype(INPUTS[input_])
    if len(data) % dtype.itemsize:
        raise ProtocolError("sample_size", f"binary message of {len(data)} bytes: expected a "
                                           f"multiple of {dtype.itemsize} ({input_} samples of "
                                           f"{dtype.itemsize} bytes)")
    n = len(data) // dtype.itemsize
    if n == 0:
        raise ProtocolError("sample_size", "a message must carry at least one sample")
    if n > max_samples:
        raise ProtocolError("too_many_samples", f"{n} samples in one message; at most "
                                                f"{max_samples}")
    x = np.frombuffer(data, dtype)
    if dtype.kind == "f" and not np.isfinite(x.sum(dtype=np.float64)):
        bad = int(np.argwhere(~np.isfinite(x))[0][0])
        raise ProtocolError("not_finite", f"sample {bad} is {x[bad]!r}: audio samples must be "
                                          f"finite numbers")
    return x


def encode_binary(outputs: np.ndarray) -> bytes:
    return np.ascontiguousarray(outputs, "<f4").tobytes()


def encode_json(outputs: np.ndarray) -> str:
    return json.dumps({"type": "outputs", "outputs": outputs.astype(np.float64).tolist()})


def encode_events(events) -> str:
    """``{"type": "events", "events": [...]}``, each event with every field of
    :class:`~slimedge.runtime.decoder.Event` (times in seconds, the score as its float32 value)."""
    return json.dumps({"type": "events", "events": [asdict(e) for e in events]})
