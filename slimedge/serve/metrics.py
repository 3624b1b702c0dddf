"""The server's counters and the Prometheus text exposition of them (``GET /metrics``).

Counters only grow (``*_total``); gauges are read when scraped; chunk-to-reply latency (a message
read -> its reply written) is a summary over the most recent 10,000 chunks (quantiles 0.5, 0.9,
0.99), and steps/s a gauge over the last 10 s beside the ``frames_total`` counter that
``rate()`` reads."""
from __future__ import annotations

import collections
import time

import numpy as np

WINDOW = 10_000   # latencies kept for the quantiles
RATE_WINDOW_S = 10.0


class Metrics:
    def __init__(self):
        self.started = time.monotonic()
        self.streams = 0                    # open WebSocket streams
        self.requests_in_flight = 0         # HTTP one-shot requests being stepped
        self.connections_total = 0
        self.requests_total = 0
        self.refused = collections.Counter()    # reason -> count (server_full, shutting_down)
        self.errors = collections.Counter()     # protocol error name -> count
        self.frames_total = 0               # stream-steps
        self.backend_calls_total = 0
        self.backend_seconds_total = 0.0
        self.backend_cpu_seconds_total = 0.0
        self.ticks_total = 0
        self.queued_frames = 0              # frames waiting for the batcher, all streams
        self.queue_high_water = 0           # the most any one stream ever had waiting
        self.audio_seconds_total = 0.0      # audio received by audio streams, in seconds
        self.frontend_cpu_seconds_total = 0.0   # the stepping thread's CPU in audio front-ends
        self.events_total = 0               # events sent to event streams
        self.slow_writes_total = 0          # times a client slow to read got its own writer task
        self.latencies = collections.deque(maxlen=WINDOW)
        self.latency_sum = 0.0
        self.latency_count = 0
        self._steps = collections.deque()   # (time, frames) per tick, for steps/s

    def chunk_done(self, seconds: float) -> None:
        self.latencies.append(seconds)
        self.latency_sum += seconds
        self.latency_count += 1

    def tick(self, frames: int, calls: int, seconds: float, cpu_seconds: float) -> None:
        now = time.monotonic()
        self.ticks_total += 1
        self.frames_total += frames
        self.backend_calls_total += calls
        self.backend_seconds_total += seconds
        self.backend_cpu_seconds_total += cpu_seconds
        self._steps.append((now, frames))
        while self._steps and self._steps[0][0] < now - RATE_WINDOW_S:
            self._steps.popleft()

    def steps_per_second(self) -> float:
        now = time.monotonic()
        span = min(RATE_WINDOW_S, now - self.started)
        recent = sum(f for t, f in self._steps if t >= now - RATE_WINDOW_S)
        return recent / span if span > 0 else 0.0

    def quantiles(self, qs=(0.5, 0.9, 0.99)) -> dict[float, float]:
        if not self.latencies:
            return {q: float("nan") for q in qs}
        a = np.fromiter(self.latencies, float)
        return {q: float(np.quantile(a, q)) for q in qs}

    def render(self) -> str:
        """Prometheus text format 0.0.4."""
        out: list[str] = []

        def metric(name, kind, help_, samples):
            out.append(f"# HELP slimedge_serve_{name} {help_}")
            out.append(f"# TYPE slimedge_serve_{name} {kind}")
            for labels, value in samples:
                out.append(f"slimedge_serve_{name}{labels} {_number(value)}")

        metric("streams", "gauge", "Open WebSocket streams.", [("", self.streams)])
        metric("requests_in_flight", "gauge", "One-shot HTTP requests being stepped.",
               [("", self.requests_in_flight)])
        metric("connections_total", "counter", "WebSocket streams accepted.",
               [("", self.connections_total)])
        metric("requests_total", "counter", "One-shot HTTP requests accepted.",
               [("", self.requests_total)])
        metric("refused_total", "counter", "Connections or requests refused, by reason.",
               [(f'{{reason="{r}"}}', n) for r, n in sorted(self.refused.items())]
               or [('{reason="server_full"}', 0)])
        metric("protocol_errors_total", "counter", "Protocol errors sent to clients, by name.",
               [(f'{{error="{e}"}}', n) for e, n in sorted(self.errors.items())]
               or [('{error="frame_size"}', 0)])
        metric("frames_total", "counter", "Frames stepped (stream-steps).", [("", self.frames_total)])
        metric("steps_per_second", "gauge", f"Frames stepped per second over the last "
               f"{RATE_WINDOW_S:g} s.", [("", self.steps_per_second())])
        metric("backend_calls_total", "counter", "Batched backend calls (Model.step_streams).",
               [("", self.backend_calls_total)])
        metric("backend_seconds_total", "counter", "Seconds spent in backend calls (wall clock).",
               [("", self.backend_seconds_total)])
        metric("backend_cpu_seconds_total", "counter", "CPU seconds of the thread making the "
               "backend calls, during them (single-threaded backends: their compute).",
               [("", self.backend_cpu_seconds_total)])
        metric("ticks_total", "counter", "Batcher ticks that stepped frames.", [("", self.ticks_total)])
        metric("queued_frames", "gauge", "Frames waiting for the batcher.", [("", self.queued_frames)])
        metric("queue_high_water_frames", "gauge", "The most frames one stream ever had waiting.",
               [("", self.queue_high_water)])
        metric("audio_seconds_total", "counter", "Seconds of audio received (input=s16le or "
               "f32le streams and requests).", [("", self.audio_seconds_total)])
        metric("frontend_cpu_seconds_total", "counter", "CPU seconds of the stepping thread in "
               "the audio streams' front-ends.", [("", self.frontend_cpu_seconds_total)])
        metric("events_total", "counter", "Events sent (output=events).",
               [("", self.events_total)])
        metric("slow_writes_total", "counter", "Times a stream's send buffer was over its "
               "low-water mark after a tick (a client slow to read), so that its replies went to a "
               "task of its own instead of being written by the batcher.",
               [("", self.slow_writes_total)])
        qs = self.quantiles()
        metric("chunk_latency_seconds", "summary", "A chunk read -> its reply written, the last "
               f"{WINDOW} chunks.",
               [*((f'{{quantile="{q}"}}', v) for q, v in qs.items()),
                ("_sum", self.latency_sum), ("_count", self.latency_count)])
        return "\n".join(out) + "\n"


def _number(v) -> str:
    if isinstance(v, float):
        return "NaN" if v != v else repr(v)
    return str(v)


def parse(text: str) -> dict[str, float]:
    """Samples of a Prometheus text exposition: ``{'name{labels}': value}`` (comments skipped)."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples
