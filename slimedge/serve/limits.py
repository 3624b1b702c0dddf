"""What one server allows: connections, message size, frames per message, queued frames, rate.

Every bound that keeps a server's memory finite lives here, checked once when the server is made
(a bad value is a :class:`~slimedge.errors.UsageError` naming the option)."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError


@dataclass(frozen=True)
class Limits:
    """The server's bounds.

    - ``max_connections``: open WebSocket streams plus one-shot requests in flight; one more is
      refused with HTTP 503 ``server_full``.
    - ``max_message_bytes``: the largest WebSocket message (larger: close 1009 before it is
      buffered); ``max_request_bytes``: the largest HTTP body (larger: 413).
    - ``max_frames_per_message``: frames in one WebSocket message (more: ``too_many_frames``).
    - ``max_queued_frames``: frames a stream may have unanswered (waiting, being stepped, or not
      yet written); while one more message could pass it, the server stops reading that
      connection (TCP backpressure: the client's sends block), so memory per stream is bounded.
    - ``max_frames_per_second``: a stream's sustained rate (a token bucket holding
      ``max_queued_frames``); faster: closed with ``too_fast`` (1008). ``None``: no rate limit,
      backpressure only.
    - ``max_frames_per_request``: the longest sequence one ``POST /v1/run`` may send.
    - ``tick_s``: the batcher's period: frames that arrive within a tick are stepped together.
    - ``shutdown_timeout_s``: how long a graceful shutdown waits for queued frames."""

    max_connections: int = 2048
    max_message_bytes: int = 64 * 1024
    max_frames_per_message: int = 100
    max_queued_frames: int = 200
    max_frames_per_second: float | None = None
    max_frames_per_request: int = 10_000
    max_request_bytes: int = 1 << 20
    tick_s: float = 0.005
    shutdown_timeout_s: float = 10.0

    def __post_init__(self):
        for name in ("max_connections", "max_message_bytes", "max_frames_per_message",
                     "max_queued_frames", "max_frames_per_request", "max_request_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"{name} must be a positive integer, got {value!r}")
        if self.max_queued_frames < self.max_frames_per_message:
            raise UsageError(f"max_queued_frames ({self.max_queued_frames}) must hold at least one "
                             f"message (max_frames_per_message = {self.max_frames_per_message})")
        if self.max_frames_per_second is not None and not self.max_frames_per_second > 0:
            raise UsageError(f"max_frames_per_second must be positive, got "
                             f"{self.max_frames_per_second!r}")
        if not 0 <= self.tick_s <= 1:
            raise UsageError(f"tick must be between 0 and 1 s, got {self.tick_s!r}")
        if not self.shutdown_timeout_s >= 0:
            raise UsageError(f"shutdown_timeout_s must be >= 0, got {self.shutdown_timeout_s!r}")
