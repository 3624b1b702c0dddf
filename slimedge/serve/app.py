"""The aiohttp application: ``GET /v1/stream`` (WebSocket, one stream per connection: frames or
audio in, outputs or events out, as its query asks), ``POST /v1/run`` (one sequence in, its
outputs or events out), ``GET /health``, ``GET /metrics``; and :class:`Server`, which runs it on a
port and shuts it down gracefully."""
from __future__ import annotations

import asyncio
import contextlib
import json
import signal

import numpy as np
from aiohttp import WSMsgType, web

from ..errors import ProtocolError, UsageError
from ..frontend import Frontend
from ..frontend.audio import AudioStream as FrontendStream
from ..runtime.decoder import Decoder, Settings
from .batcher import Batcher, Chunk, Session
from .limits import Limits
from .metrics import Metrics
from .protocol import (
    Mode,
    close_code,
    encode_binary,
    encode_events,
    encode_json,
    error_json,
    parse_binary,
    parse_json,
    parse_mode,
    parse_pcm,
)

BINARY_TYPES = ("application/octet-stream",)


def _error_response(status: int, name: str, message: str) -> web.Response:
    return web.json_response({"type": "error", "error": name, "message": message}, status=status)


def _writable(transport):
    """Whether a reply can be written to this connection now without waiting: its send buffer is
    at or under the transport's low-water mark (so the write cannot pause the protocol)."""
    if transport is None:
        return lambda: True      # gone: the write fails at once, and the session closes
    low = transport.get_write_buffer_limits()[0]
    return lambda: transport.get_write_buffer_size() <= low


class Server:
    """A model served on ``host:port`` (``port=0``: a free one, read back from :attr:`port`)."""

    def __init__(self, model, limits: Limits | None = None, *, host: str = "127.0.0.1",
                 port: int = 8000):
        self.model, self.limits = model, limits or Limits()
        self.host, self.port = host, port
        self.metrics = Metrics()
        self.closing = False
        self.sessions: set[Session] = set()
        self._readers: set[asyncio.Task] = set()
        self._runner: web.AppRunner | None = None
        self.batcher: Batcher | None = None
        # what the model can serve besides frames: audio (its front-end) and events (a decoder)
        self.audio = Frontend.from_config(model.config).audio
        try:
            Decoder(model.config)
            self.no_events = None
        except UsageError as e:     # not a continuous model: why not
            self.no_events = str(e)
        self.app = web.Application(client_max_size=self.limits.max_request_bytes)
        self.app.router.add_get("/v1/stream", self._stream)
        self.app.router.add_post("/v1/run", self._run)
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/metrics", self._metrics)
        self.app.on_shutdown.append(self._on_shutdown)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        if self.audio is not None:   # the compiled front-end compiles now, not on a first client
            FrontendStream(self.audio, compiled=True).push(
                np.zeros(self.audio.window_samples, np.int16))
        self.batcher = Batcher(self.model, self.limits, self.metrics)
        self.batcher.start()
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None,
                                     shutdown_timeout=self.limits.shutdown_timeout_s)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop accepting, let every stream's queued frames be stepped and answered (up to
        ``shutdown_timeout_s``), close each connection with 1001, then stop the batcher."""
        if self._runner is not None:
            await self._runner.cleanup()   # closes the listener, then _on_shutdown, then waits
        if self.batcher is not None:
            await self.batcher.stop()

    async def serve_until_signalled(self, on_ready=None) -> None:
        """Run until SIGINT or SIGTERM, then :meth:`stop`."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        if on_ready is not None:
            on_ready(self)
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def _on_shutdown(self, app) -> None:
        self.closing = True
        for task in list(self._readers):   # stop reading; what was read is still answered
            task.cancel()

    def _admit(self) -> web.Response | None:
        if self.closing:
            self.metrics.refused["shutting_down"] += 1
            return _error_response(503, "shutting_down", "the server is shutting down")
        if self.metrics.streams + self.metrics.requests_in_flight >= self.limits.max_connections:
            self.metrics.refused["server_full"] += 1
            return _error_response(503, "server_full", f"the server is full "
                                   f"({self.limits.max_connections} connections)")
        return None

    def _mode(self, query) -> Mode:
        """The mode a request's query asks for, if this model can serve it (ProtocolError)."""
        mode = parse_mode(query)
        name = self.model.path.name
        if mode.audio and self.audio is None:
            raise ProtocolError("unsupported", f"input={mode.input}: {name} records no audio "
                                f"front-end; it reads frames of {self.model.input_size} "
                                f"features (input=frames)")
        if mode.events:
            if self.no_events is not None:
                raise ProtocolError("unsupported", f"output=events: {name}: {self.no_events}")
            try:
                Settings.from_config(self.model.config, **mode.decoder)
            except UsageError as e:
                raise ProtocolError("bad_query", str(e)) from None
        return mode

    def _session(self, mode: Mode) -> Session:
        frontend = FrontendStream(self.audio, compiled=True) if mode.audio else None
        decoder = Decoder(self.model.config, **mode.decoder) if mode.events else None
        return Session(self.model.stream(), self.limits, self.metrics, self.model.output_size,
                       frontend, decoder)

    def _max_samples(self, frames: int) -> int:
        """The most samples one message may carry: those that complete at most ``frames``."""
        return frames * self.audio.hop_samples

    def _chunk(self, mode: Mode, data, binary: bool, most: int) -> Chunk:
        """A message's chunk: its frames (input=frames), or its samples (audio: the session's
        front-end makes their frames)."""
        K = self.model.output_size
        if not mode.audio:
            m = self.model.input_size
            return Chunk(parse_binary(data, m, most) if binary else parse_json(data, m, most), K,
                         binary)
        if not binary:
            raise ProtocolError("bad_message", f"this stream takes audio: binary messages of "
                                f"{mode.input} samples (input={mode.input}), not text")
        pcm = parse_pcm(data, mode.input, self._max_samples(most))
        self.metrics.audio_seconds_total += len(pcm) / self.audio.sample_rate
        return Chunk.audio(pcm, K, self.audio.hop_samples)

    # -- WebSocket streams ---------------------------------------------------------------------
    async def _stream(self, request: web.Request):
        refused = self._admit()
        if refused is not None:
            return refused
        self.metrics.streams += 1      # counted before the handshake's await: no overshoot
        try:
            ws = web.WebSocketResponse(max_msg_size=self.limits.max_message_bytes, compress=False)
            await ws.prepare(request)
        except BaseException:
            self.metrics.streams -= 1
            raise
        try:
            mode = self._mode(request.query)
        except ProtocolError as e:   # the error instead of ready, then the close
            try:
                self.metrics.errors[e.name] += 1
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_str(error_json(e))
                await ws.close(code=close_code(e), message=e.name.encode())
            finally:
                self.metrics.streams -= 1
            return ws
        session = self._session(mode)
        self.sessions.add(session)
        self.metrics.connections_total += 1
        reader = asyncio.create_task(self._read(ws, session, mode))
        session.attach(self._writer(ws, reader, session), _writable(request.transport))
        self._readers.add(reader)
        try:
            await ws.send_str(json.dumps(self._ready(mode, session)))
            error = await reader
            if error is None and self.closing and not ws.closed:
                error = ProtocolError("shutting_down", "the server is shutting down; every "
                                      "chunk received before was answered")
            if error is not None and not ws.closed:   # answer what came before, then close
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(session.drained(), self.limits.shutdown_timeout_s)
            session.close()
            if error is not None and not ws.closed:
                if error.name != "shutting_down":
                    self.metrics.errors[error.name] += 1
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_str(error_json(error))
                await ws.close(code=close_code(error), message=error.name.encode())
            elif not ws.closed:
                await ws.close()
        finally:
            session.close()
            reader.cancel()
            self._readers.discard(reader)
            self.sessions.discard(session)
            self.metrics.streams -= 1
        return ws

    def _ready(self, mode: Mode, session: Session) -> dict:
        m = self.model
        ready = {"type": "ready", "input_size": m.input_size, "output_size": m.output_size,
                 "labels": list(m.labels) if m.labels else None, "backend": m.backend,
                 "max_frames_per_message": self.limits.max_frames_per_message,
                 "max_queued_frames": self.limits.max_queued_frames,
                 "max_frames_per_second": self.limits.max_frames_per_second,
                 "input": mode.input, "output": mode.output}
        if mode.audio:
            a = self.audio
            ready.update(sample_rate=a.sample_rate, hop_samples=a.hop_samples,
                         window_samples=a.window_samples,
                         max_samples_per_message=self._max_samples(
                             self.limits.max_frames_per_message))
        if mode.events:
            ready["decoder"] = session.decoder.settings.as_config()
        return ready

    async def _read(self, ws: web.WebSocketResponse, session: Session,
                    mode: Mode) -> ProtocolError | None:
        """Read chunks until the client leaves (None), breaks the protocol (the error), or the
        server shuts down (cancelled: None)."""
        most = self.limits.max_frames_per_message
        try:
            while True:
                await session.room()
                msg = await ws.receive()
                if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                    return None  # CLOSE, CLOSED, ERROR (over max_message_bytes: closed 1009)
                chunk = self._chunk(mode, msg.data, msg.type == WSMsgType.BINARY, most)
                session.charge(chunk.cost)
                if self.batcher.submit(session, chunk):
                    await session.send_replies()    # no frame completed: its empty reply
        except ProtocolError as e:
            return e
        except asyncio.CancelledError:
            return None

    def _writer(self, ws: web.WebSocketResponse, reader: asyncio.Task, session: Session):
        """The session's reply writer; a connection gone stops the reader too (it may be waiting
        for room that only replies make)."""
        async def write(chunk: Chunk) -> bool:
            try:
                if session.decoder is not None:
                    await ws.send_str(self._events(session, chunk))
                elif chunk.binary:
                    await ws.send_bytes(encode_binary(chunk.outputs))
                else:
                    await ws.send_str(encode_json(chunk.outputs))
            except (ConnectionError, RuntimeError):
                reader.cancel()
                return False
            return True
        return write

    def _events(self, session: Session, chunk: Chunk) -> str:
        """A chunk's outputs through the session's decoder: the events reply."""
        events = session.decoder.push(chunk.outputs)
        self.metrics.events_total += len(events)
        return encode_events(events)

    # -- one-shot HTTP -------------------------------------------------------------------------
    async def _run(self, request: web.Request):
        refused = self._admit()
        if refused is not None:
            return refused
        self.metrics.requests_in_flight += 1     # counted before the body's await
        try:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                self.metrics.errors["too_big"] += 1
                return _error_response(413, "too_big", f"request body over "
                                       f"{self.limits.max_request_bytes} bytes")
            try:
                mode = self._mode(request.query)
                binary = mode.audio or request.content_type in BINARY_TYPES
                session = self._session(mode)
                chunk = self._chunk(mode, body if binary else body.decode("utf-8", "replace"),
                                    binary, self.limits.max_frames_per_request)
            except ProtocolError as e:
                self.metrics.errors[e.name] += 1
                return _error_response(413 if e.name.startswith("too_many") else 400, e.name,
                                       e.message)
            self.metrics.requests_total += 1
            if chunk.frames is None:     # a whole recording: its front-end off the event loop
                frames = await asyncio.to_thread(session.frontend.push, chunk.pcm)
                chunk.set_frames(frames.astype(np.float32))
            if len(chunk.frames):
                done = asyncio.get_running_loop().create_future()

                async def write(chunk: Chunk) -> bool:
                    done.set_result(chunk)
                    return True
                session.attach(write, lambda: True)
                try:
                    self.batcher.submit(session, chunk)
                    chunk = await done
                finally:
                    session.close()
        finally:
            self.metrics.requests_in_flight -= 1
        if session.decoder is not None:
            return web.Response(text=self._events(session, chunk),
                                content_type="application/json")
        if binary:
            return web.Response(body=encode_binary(chunk.outputs), content_type=BINARY_TYPES[0])
        return web.Response(text=encode_json(chunk.outputs), content_type="application/json")

    # -- health and metrics --------------------------------------------------------------------
    async def _health(self, request: web.Request):
        m = self.model
        return web.json_response(
            {"status": "shutting_down" if self.closing else "ok", "streams": self.metrics.streams,
             "backend": m.backend, "variant": m.variant, "input_size": m.input_size,
             "output_size": m.output_size}, status=503 if self.closing else 200)

    async def _metrics(self, request: web.Request):
        return web.Response(text=self.metrics.render(), content_type="text/plain",
                            charset="utf-8", headers={"X-Content-Type-Options": "nosniff"})
