"""``slimedge serve``: many streams of one model over WebSocket, batched across connections.

One WebSocket connection is one stream (its :class:`~slimedge.runtime.Stream` holds the state);
every tick the frames that arrived since the last one are stepped together through
:meth:`Model.step_streams` in one worker thread. A stream sends frames, or PCM audio that its own
front-end state turns into frames (a model with an audio front-end), and gets outputs, or the
events its own decoder finds in them (a continuous model). Plain HTTP takes one-shot requests (a whole
sequence in, its outputs out), ``/health`` and Prometheus' ``/metrics``. The wire protocol, its
limits and its errors: :mod:`slimedge.serve.protocol` and :class:`Limits`.

Stack: aiohttp (the ``serve`` extra). One well-kept package (aio-libs, releases every few weeks)
gives the WebSocket server, the plain HTTP routes and a WebSocket client (the tests and the load
generator use it), with C-accelerated HTTP parsing and WebSocket unmasking, per-message size limits
and flow control that stops reading a socket whose queue is full, which is how backpressure
reaches the client. ``websockets`` alone would need a second package for POST requests, and
uvicorn + Starlette is three packages (with h11/httptools and a WebSocket implementation) for
the same routes.

The event loop is uvloop where installed (:func:`run`).

Modules: :mod:`.limits` (the bounds), :mod:`.protocol` (messages, errors, close codes),
:mod:`.batcher` (sessions and the tick loop), :mod:`.metrics` (counters and their exposition),
:mod:`.app` (the routes and the server's lifecycle).
"""
from __future__ import annotations

import asyncio

from .. import extras
from ..errors import ProtocolError
from .limits import Limits
from .protocol import CLOSE_CODES


def serve(model, limits: Limits | None = None, *, host: str = "127.0.0.1", port: int = 8000,
          on_ready=None) -> None:
    """Serve ``model`` (a :class:`~slimedge.runtime.Model`) until SIGINT/SIGTERM, then shut down
    gracefully. ``on_ready(server)`` is called once it listens (``server.port``, ``server.url``)."""
    extras.require("serve", "slimedge serve", "aiohttp")   # uvloop: used where installed
    from .app import Server

    run(Server(model, limits, host=host, port=port).serve_until_signalled(on_ready))


def run(main):
    """Run a coroutine on uvloop (libuv's event loop, in C; in the ``serve`` extra) where it is
    installed, else on asyncio's. Measured on the shared 2-core machine at 300 streams (load
    average 9, so within noise): the server's CPU per chunk 45 and 45 µs on asyncio, 45 and 38 on
    uvloop; the load generator's 31 µs on asyncio, 26 on uvloop."""
    try:
        import uvloop
    except ImportError:    # Windows, or the serve extra's optional part left out
        return asyncio.run(main)
    return uvloop.run(main)


__all__ = ["serve", "Limits", "ProtocolError", "CLOSE_CODES"]
