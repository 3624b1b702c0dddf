"""Batching across connections: every tick, the frames that arrived since the last one are stepped
through :meth:`Model.step_streams_many`, one backend call per round (round i holds the i-th
waiting frame of every stream that has one), in a single worker thread that alone touches the
streams.

A :class:`Session` is one client's stream: its :class:`~slimedge.runtime.Stream` (the state), the
chunks it sent that wait for the batcher or for their reply, and its backpressure and rate-limit
accounting; for an audio stream also its front-end's state, and for events its decoder's (both
run per connection: the front-end in the worker thread at the start of the tick after its samples
arrived, where the compiled microfrontend releases the GIL while the event loop reads on; the
decoder on the event loop, on the outputs as their reply is written). The event loop only queues
frames and sends replies; while the worker steps one tick, the loop reads the next tick's frames.
After a tick the batcher writes each finished chunk's reply itself, at once, while the
connection's send buffer has room (a write then cannot wait); a slow reader's replies go to a
task of that session's own, so it never holds up the others."""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import time

import numpy as np

from ..errors import ProtocolError
from .limits import Limits
from .metrics import Metrics


class Chunk:
    """One message's frames and, as they are stepped, their outputs (a view of the tick's outputs
    where one tick stepped the whole chunk, else gathered over ticks). An audio message's chunk
    (:meth:`audio`) holds its samples until the front-end makes its frames (:meth:`set_frames`);
    it may complete no frame, and is then answered (empty) after the chunks before it. ``cost``:
    what it counts against the stream's queue and rate (its frames, or for samples the most frames
    they can complete; at least 1)."""

    __slots__ = ("frames", "outputs", "taken", "done", "received", "binary", "output_size",
                 "cost", "pcm")

    def __init__(self, frames: np.ndarray | None, output_size: int, binary: bool,
                 cost: int | None = None):
        self.output_size = output_size
        self.frames = self.outputs = self.pcm = None
        if frames is not None:
            self.set_frames(frames)
        self.cost = max(1, len(frames) if cost is None else cost)
        self.taken = self.done = 0
        self.received = time.perf_counter()
        self.binary = binary

    @classmethod
    def audio(cls, pcm: np.ndarray, output_size: int, hop: int) -> "Chunk":
        """A chunk of audio samples: pushing s samples completes at most ceil(s / hop) frames."""
        chunk = cls(None, output_size, True, cost=-(-len(pcm) // hop))
        chunk.pcm = pcm
        return chunk

    def set_frames(self, frames: np.ndarray) -> None:
        self.frames, self.pcm = frames, None
        if not len(frames):
            self.outputs = np.empty((0, self.output_size), np.float32)


class Session:
    """One client's stream and its queue. ``unanswered``: frames received and not yet replied to
    (waiting, being stepped, or stepped and not yet written); reading waits while another message
    could take it past ``max_queued_frames``. ``frontend``: the audio front-end's stream
    (:class:`slimedge.frontend.audio.AudioStream`) for a stream of audio, else None; ``decoder``:
    the event decoder (:class:`slimedge.runtime.decoder.Decoder`) for a stream of events."""

    def __init__(self, stream, limits: Limits, metrics: Metrics, output_size: int,
                 frontend=None, decoder=None):
        self.stream = stream
        self.frontend, self.decoder = frontend, decoder
        self.limits, self.metrics, self.output_size = limits, metrics, output_size
        self.chunks: collections.deque[Chunk] = collections.deque()   # not fully stepped
        self.replies: collections.deque[Chunk] = collections.deque()     # stepped, to write
        self.audio: collections.deque[Chunk] = collections.deque()  # samples for the front-end
        self._write = self._writable = None     # set by attach()
        self._sender: asyncio.Task | None = None
        self._sending = False    # send_replies is writing (one writer at a time keeps the order)
        self.waiting = 0        # frames not yet taken by the batcher
        self.unanswered = 0
        self.closed = False
        self._room = asyncio.Event()
        self._room.set()
        self._drained = asyncio.Event()
        self._drained.set()
        self._tokens = float(limits.max_queued_frames)
        self._refilled = time.monotonic()

    def attach(self, write, writable) -> None:
        """How replies leave: ``await write(chunk)`` sends one (False: the client is gone);
        ``writable()``: whether a reply can be written now without waiting for the client."""
        self._write, self._writable = write, writable

    # -- the reader's side ---------------------------------------------------------------------
    async def room(self) -> None:
        """Wait until one more message of the largest size fits (backpressure)."""
        await self._room.wait()

    def _update_room(self) -> None:
        if self.unanswered + self.limits.max_frames_per_message <= self.limits.max_queued_frames:
            self._room.set()
        else:
            self._room.clear()
        if self.unanswered == 0:
            self._drained.set()
        else:
            self._drained.clear()

    def charge(self, n: int) -> None:
        """The rate limit: a token bucket of ``max_queued_frames`` frames refilled at
        ``max_frames_per_second``."""
        rate = self.limits.max_frames_per_second
        if rate is None:
            return
        now = time.monotonic()
        self._tokens = min(self.limits.max_queued_frames,
                           self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if n > self._tokens:
            raise ProtocolError("too_fast", f"more than {rate:g} frames per second sustained "
                                            f"(a burst of {self.limits.max_queued_frames} allowed)")
        self._tokens -= n

    def add(self, chunk: Chunk) -> bool:
        """Queue a chunk (of samples: for the front-end); True when it has no frames and nothing
        before it waits to be stepped: its (empty) reply is ready, to be sent with
        :meth:`send_replies`."""
        self.unanswered += chunk.cost
        self.metrics.queue_high_water = max(self.metrics.queue_high_water, self.unanswered)
        if chunk.frames is None:
            self.audio.append(chunk)
            self._update_room()
            return False
        return self._place(chunk)

    def framed(self, chunk: Chunk, frames: np.ndarray) -> bool:
        """A chunk of samples has its frames (from the front-end, in the order the chunks came):
        queue it for stepping, as :meth:`add` does."""
        chunk.set_frames(frames)
        return self._place(chunk)

    def _place(self, chunk: Chunk) -> bool:
        n = len(chunk.frames)
        ready = n == 0 and not self.chunks
        (self.replies if ready else self.chunks).append(chunk)
        self.waiting += n
        self.metrics.queued_frames += n
        self._update_room()
        return ready

    async def drained(self) -> None:
        """Every frame received so far has been answered."""
        await self._drained.wait()

    # -- the batcher's side --------------------------------------------------------------------
    def take(self, most: int) -> np.ndarray:
        """Up to ``most`` waiting frames, oldest first."""
        parts, left = [], most
        for c in self.chunks:
            if left == 0:
                break
            part = c.frames[c.taken:c.taken + left]
            if len(part):
                c.taken += len(part)
                left -= len(part)
                parts.append(part)
        frames = parts[0] if len(parts) == 1 else np.concatenate(parts)
        self.waiting -= len(frames)
        self.metrics.queued_frames -= len(frames)
        return frames

    def give(self, outputs: np.ndarray) -> None:
        """The outputs of the frames last taken, in order: finished chunks go to the writer."""
        i = 0
        while i < len(outputs):
            c = self.chunks[0]
            n = min(c.taken - c.done, len(outputs) - i)
            if c.done == 0 and n == len(c.frames):
                c.outputs = outputs[i:i + n]
            else:
                if c.outputs is None:
                    c.outputs = np.empty((len(c.frames), c.output_size), np.float32)
                c.outputs[c.done:c.done + n] = outputs[i:i + n]
            c.done += n
            i += n
            if c.done == len(c.frames):
                self.chunks.popleft()
                self.replies.append(c)
        while self.chunks and not len(self.chunks[0].frames):   # empty chunks behind those
            self.replies.append(self.chunks.popleft())

    async def send_replies(self) -> None:
        """Write the finished chunks' replies, in order: here while the connection takes them at
        once, else (a client slow to read) in a task of this session's own."""
        if self._sender is not None or self._sending:
            return          # the slow path, or a write in progress, sends these after its own
        self._sending = True
        try:
            while self.replies and not self.closed:
                if not self._writable():
                    self.metrics.slow_writes_total += 1
                    self._sender = asyncio.create_task(self._send_slowly())
                    return
                await self._send_one()
        finally:
            self._sending = False

    async def _send_one(self) -> None:
        chunk = self.replies.popleft()
        if await self._write(chunk):
            self.answered(chunk)
        else:
            self.close()

    async def _send_slowly(self) -> None:
        try:
            while self.replies and not self.closed:
                await self._send_one()
        finally:
            self._sender = None

    def answered(self, chunk: Chunk) -> None:
        self.unanswered -= chunk.cost
        self.metrics.chunk_done(time.perf_counter() - chunk.received)
        self._update_room()

    def close(self) -> None:
        """Drop whatever is still waiting (the client left or broke the protocol)."""
        self.closed = True
        self.metrics.queued_frames -= self.waiting
        self.waiting = 0
        self.chunks.clear()
        self.replies.clear()
        self.audio.clear()
        if self._sender is not None and self._sender is not asyncio.current_task():
            self._sender.cancel()


class Batcher:
    """The tick loop: waits for frames, then steps every session with frames waiting (at most
    ``max_frames_per_message`` frames each per tick, so one long request does not hold up the
    others) in the worker thread, and hands the outputs back."""

    def __init__(self, model, limits: Limits, metrics: Metrics):
        self.model, self.limits, self.metrics = model, limits, metrics
        self.ready: dict[Session, None] = {}     # sessions with frames waiting, in arrival order
        self.audio: dict[Session, None] = {}     # sessions with samples for their front-end
        self._wake = asyncio.Event()
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="slimedge-step")
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="slimedge-batcher")

    def submit(self, session: Session, chunk: Chunk) -> bool:
        """Queue a chunk for the next tick; True when it has no frames to step and its empty reply
        is ready now (the caller sends it: :meth:`Session.send_replies`)."""
        if session.add(chunk):
            return True
        if chunk.frames is None:
            self.audio[session] = None
            self._wake.set()
        elif len(chunk.frames):
            self.ready[session] = None
            self._wake.set()
        return False

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._worker.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = 0.0
        while True:
            await self._wake.wait()
            wait = self.limits.tick_s - (time.perf_counter() - last)
            if wait > 0:
                await asyncio.sleep(wait)
            last = time.perf_counter()
            self._wake.clear()
            if self.audio:
                await self._frontends(loop)
            work = []
            for s in list(self.ready):
                if not s.closed and s.waiting:
                    work.append((s, s.take(self.limits.max_frames_per_message)))
                if s.closed or not s.waiting:
                    del self.ready[s]
            if self.ready:
                self._wake.set()     # more than one tick's worth waiting: go on at the next tick
            if not work:
                continue
            outputs, calls, seconds, cpu = await loop.run_in_executor(self._worker, self._step, work)
            self.metrics.tick(sum(len(f) for _, f in work), calls, seconds, cpu)
            for s, y in outputs:
                if not s.closed:
                    s.give(y)
                    await s.send_replies()

    async def _frontends(self, loop) -> None:
        """Every audio chunk that came since the last tick through its stream's front-end, in the
        worker thread; then queued for this tick's steps (or answered at once: no frame)."""
        pending = [(s, list(s.audio)) for s in self.audio if not s.closed]
        for s in self.audio:
            s.audio.clear()
        self.audio.clear()

        def run():
            cpu = time.thread_time()
            framed = [[s.frontend.push(c.pcm).astype(np.float32) for c in chunks]
                      for s, chunks in pending]
            return framed, time.thread_time() - cpu
        framed, cpu = await loop.run_in_executor(self._worker, run)
        self.metrics.frontend_cpu_seconds_total += cpu
        for (s, chunks), frames in zip(pending, framed):
            if s.closed:
                continue
            answer = False
            for c, f in zip(chunks, frames):
                answer |= s.framed(c, f)
                if len(f):
                    self.ready[s] = None
            if answer:
                await s.send_replies()

    def _step(self, work):
        """In the worker thread: step i takes the i-th frame of each session that has one, all of
        a tick's steps in one :meth:`Model.step_streams_many` call (each stream's state gathered
        and scattered once per tick)."""
        counts = [len(f) for _, f in work]
        if min(counts) == max(counts):      # the usual tick: every stream sent the same chunk size
            x = np.stack([f for _, f in work], axis=1)
        else:
            work = sorted(work, key=lambda w: -len(w[1]))   # step i: a prefix of the sessions
            counts = [len(f) for _, f in work]
            x = np.zeros((counts[0], len(work), work[0][1].shape[1]), np.float32)
            for j, (_, f) in enumerate(work):
                x[:len(f), j] = f
        rounds = counts[0]
        t, c = time.perf_counter(), time.thread_time()
        y = self.model.step_streams_many([s.stream for s, _ in work], x, counts)
        seconds, cpu = time.perf_counter() - t, time.thread_time() - c
        outputs = [(s, y[:c, j]) for j, ((s, _), c) in enumerate(zip(work, counts))]
        return outputs, rounds, seconds, cpu
