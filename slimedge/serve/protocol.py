"""The wire protocol: what a client sends, what it gets back, and how a mistake is named.

WebSocket, one stream per connection. The server first sends ``{"type": "ready", "input_size": m,
"output_size": K, "labels": [...], "backend": ..., "max_frames_per_message": F,
"max_queued_frames": Q}``. Then each client message is a chunk of 1..F frames:

- binary: float32 little-endian, ``n * m`` values (frame after frame) -> a binary reply of
  float32 ``n * K`` values, the n frames' outputs;
- text: JSON ``{"frames": [[m numbers], ...]}`` (or ``{"frame": [m numbers]}``) ->
  ``{"type": "outputs", "outputs": [[K numbers], ...]}`` (each number the float32 output written
  exactly).

Replies come in the order of the chunks. A mistake gets ``{"type": "error", "error": NAME,
"message": "..."}`` and the connection is closed with the close code below (the reason is NAME).
The one-shot HTTP endpoint (``POST /v1/run``) takes the same payloads as a whole sequence and
answers 400/413 with the same JSON error object (``too_big``: a body over ``max_request_bytes``).
"""
from __future__ import annotations

import json

import numpy as np

from ..errors import ProtocolError

# RFC 6455 close codes
GOING_AWAY = 1001          # graceful shutdown
INVALID_DATA = 1007        # wrong frame size, not a number, NaN/inf, not JSON
POLICY = 1008              # sending faster than the rate limit
TOO_BIG = 1009             # too many frames in one message, or too many bytes
TRY_AGAIN_LATER = 1013     # the server is full

CLOSE_CODES = {"frame_size": INVALID_DATA, "not_a_number": INVALID_DATA,
               "not_finite": INVALID_DATA, "bad_message": INVALID_DATA,
               "too_many_frames": TOO_BIG, "too_big": TOO_BIG, "too_fast": POLICY,
               "shutting_down": GOING_AWAY, "server_full": TRY_AGAIN_LATER}


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


def encode_binary(outputs: np.ndarray) -> bytes:
    return np.ascontiguousarray(outputs, "<f4").tobytes()


def encode_json(outputs: np.ndarray) -> str:
    return json.dumps({"type": "outputs", "outputs": outputs.astype(np.float64).tolist()})
