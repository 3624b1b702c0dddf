"""``slimedge serve``: a model's streams over WebSocket and HTTP (:mod:`slimedge.serve`)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import RUN_BACKENDS, _choices, app, shown, user_errors


@app.command("serve")
@user_errors
def serve_cmd(
    model: Optional[Path] = typer.Argument(None, help="An exported .onnx, .tflite or .c file, or a checkpoint; default: the shipped model. Or a shipped model by name: fsdd_mfcc, fsdd_audio, fsdd_stream."),
    host: str = typer.Option("127.0.0.1", "--host", help="The address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", "-p", min=0, max=65535, help="The TCP port (0: a free one, printed)."),
    backend: str = typer.Option("auto", "--backend", "-b", metavar=_choices(RUN_BACKENDS), help="The runtime backend."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, show_default=False, help="Backend threads [default: the backend's own]."),
    max_connections: int = typer.Option(2048, "--max-connections", min=1, help="Open streams and one-shot requests at once; more are refused (HTTP 503)."),
    max_message_bytes: int = typer.Option(65536, "--max-message-bytes", min=1, help="The largest WebSocket message (larger: close 1009)."),
    max_frames_per_message: int = typer.Option(100, "--max-frames-per-message", min=1, help="Frames in one WebSocket message."),
    max_queued_frames: int = typer.Option(200, "--max-queue", min=1, help="Frames a stream may have unanswered; past it the server stops reading that connection (backpressure)."),
    max_fps: Optional[float] = typer.Option(None, "--max-fps", min=0.001, show_default=False, help="Frames per second a stream may sustain (a burst of --max-queue); faster: closed with too_fast (1008) [default: no limit, backpressure only]."),
    max_request_frames: int = typer.Option(10000, "--max-request-frames", min=1, help="Frames in one POST /v1/run request."),
    tick_ms: float = typer.Option(5.0, "--tick-ms", min=0.0, max=1000.0, help="The batcher's period: frames arriving within one tick are stepped together."),
    shutdown_timeout: float = typer.Option(10.0, "--shutdown-timeout", min=0.0, help="Seconds SIGINT/SIGTERM waits for queued frames to be answered."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Load the model even when its bytes do not match the integrity digest it records."),
) -> None:
    """Serve a model's streams: WebSocket /v1/stream (one stream per connection; frames, or PCM
    audio for a model with an audio front-end, in; outputs, or a continuous model's events, out:
    ?input=s16le&output=events), POST /v1/run, /health, /metrics; batched across connections
    every tick."""
    from .. import extras, serve
    from ..zoo import resolve
    from .commands_run import _load_runtime_model

    extras.require("serve", "slimedge serve", "aiohttp")   # uvloop: used where installed
    limits = serve.Limits(max_connections=max_connections, max_message_bytes=max_message_bytes,
                          max_frames_per_message=max_frames_per_message,
                          max_queued_frames=max_queued_frames, max_frames_per_second=max_fps,
                          max_frames_per_request=max_request_frames, tick_s=tick_ms / 1000,
                          shutdown_timeout_s=shutdown_timeout)
    path = resolve(model)
    m = _load_runtime_model(path, backend, threads, verify=not no_verify)

    def ready(server) -> None:
        # the first stdout line: what a script (or a test) reads to find a --port 0 server
        print(f"serving {shown(path)} on {server.url} (WebSocket {server.url.replace('http', 'ws')}"
              f"/v1/stream; POST /v1/run, GET /health, /metrics)", flush=True)

    serve.serve(m, limits, host=host, port=port, on_ready=ready)
    print("stopped", flush=True)
