"""slimedge serve over real sockets on 127.0.0.1: a real aiohttp client against the real server
(in a thread with its own event loop, or ``python -m slimedge serve`` in a subprocess), every
client's outputs bit-equal to a local Stream of the same model on the same backend.

The model is the shipped one exported to ONNX, on onnxruntime (one thread) both sides: its rows do
not depend on the batch size (the numpy backend's BLAS does: batched rows differ from a single
stream's by up to 6e-7, which the runtime's own step_streams test allows)."""
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

aiohttp = pytest.importorskip("aiohttp")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from slimedge import exporters, runtime, zoo  # noqa: E402
from slimedge.errors import UsageError  # noqa: E402
from slimedge.serve import Limits  # noqa: E402
from slimedge.serve.app import Server  # noqa: E402
from slimedge.serve.metrics import parse  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
M, K = 13, 10
TIMEOUT = aiohttp.ClientTimeout(total=30)


class ThreadServer:
    """A Server on a free loopback port, run by its own event loop in a thread."""

    def __init__(self, model, limits):
        self.server = Server(model, limits, host="127.0.0.1", port=0)
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.server.start())
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert started.wait(20), "server did not start"
        self.url = self.server.url
        self.ws_url = self.url + "/v1/stream"

    def call(self, fn):
        """Run ``fn()`` on the server's loop (its state belongs to that thread)."""
        return asyncio.run_coroutine_threadsafe(_call(fn), self.loop).result(10)

    def stop(self):
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def _call(fn):
    return fn()


def exported(tmp_path_factory, checkpoint, name):
    """The checkpoint exported to ONNX as ``name`` in a fresh folder."""
    return exporters.export(checkpoint, tmp_path_factory.mktemp("serve") / name,
                            validate=False).path


def on_onnxruntime(path):
    return runtime.load(path, backend="onnxruntime", threads=1)


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    return exported(tmp_path_factory, zoo.default_model_path(), "digits.onnx")


@pytest.fixture(scope="module")
def model(onnx_path):
    return on_onnxruntime(onnx_path)


@pytest.fixture(scope="module")
def local(onnx_path):
    """The client side's own copy of the model: what a local Stream gives."""
    return on_onnxruntime(onnx_path)


@pytest.fixture(scope="module")
def server(model):
    s = ThreadServer(model, Limits(max_connections=64, max_frames_per_message=10,
                                   max_queued_frames=40, max_message_bytes=4096, tick_s=0.002))
    yield s
    s.stop()


def expected(local, frames):
    s = local.stream()
    return np.stack([s.step(f) for f in frames])


def chunks_of(frames, sizes):
    out, i = [], 0
    for n in sizes:
        out.append(frames[i:i + n])
        i += n
    return out


async def send_chunk(ws, chunk, binary):
    if binary:
        await ws.send_bytes(chunk.astype("<f4").tobytes())
    else:
        await ws.send_str(json.dumps({"frames": chunk.astype(np.float64).tolist()}))


async def read_reply(ws, binary):
    msg = await ws.receive(timeout=20)
    if binary:
        assert msg.type == aiohttp.WSMsgType.BINARY, msg
        return np.frombuffer(msg.data, "<f4").reshape(-1, K)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    doc = json.loads(msg.data)
    assert doc["type"] == "outputs", doc
    return np.asarray(doc["outputs"], np.float64).astype(np.float32)


async def stream_all(session, url, chunks, binary):
    """Send every chunk (at once, reading replies concurrently); returns the outputs stacked."""
    async with session.ws_connect(url) as ws:
        ready = await ws.receive_json(timeout=20)
        assert ready["type"] == "ready" and ready["input_size"] == M and ready["output_size"] == K

        async def send():
            for c in chunks:
                await send_chunk(ws, c, binary)

        sender = asyncio.create_task(send())
        replies = [await read_reply(ws, binary) for _ in chunks]
        await sender
        for c, r in zip(chunks, replies):
            assert r.shape == (len(c), K)
        return np.concatenate(replies)


async def expect_error(ws, name, code):
    """The error message naming the problem, then the close with its code."""
    msg = await ws.receive(timeout=20)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    doc = json.loads(msg.data)
    assert doc["type"] == "error" and doc["error"] == name, doc
    assert doc["message"]
    msg = await ws.receive(timeout=20)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == code and msg.extra == name, msg
    return doc["message"]


def state(server):
    """(sessions, open streams, queued frames, sessions waiting for the batcher), as the server's
    own loop sees them."""
    return server.call(lambda: (len(server.server.sessions), server.server.metrics.streams,
                                server.server.metrics.queued_frames,
                                len(server.server.batcher.ready)))


def idle(server):
    return state(server) == (0, 0, 0, 0)


async def wait_idle(server):
    for _ in range(200):
        if idle(server):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the server still holds streams or queued frames: {state(server)}")


def test_many_concurrent_clients_get_exactly_a_local_streams_outputs(server, local):
    rng = np.random.default_rng(27)
    clients = []
    for i in range(32):
        sizes = rng.integers(1, 11, size=int(rng.integers(2, 7)))
        frames = rng.normal(size=(int(sizes.sum()), M)).astype(np.float32)
        clients.append((frames, chunks_of(frames, sizes), i % 2 == 0))

    async def main():
        async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
            return await asyncio.gather(*(stream_all(s, server.ws_url, c, b) for _, c, b in clients))

    got = asyncio.run(main())
    for (frames, _, _), y in zip(clients, got):
        np.testing.assert_array_equal(y, expected(local, frames))   # bit-equal, JSON included
    # the 32 streams were batched: fewer backend calls than frames
    metrics = parse(server.call(server.server.metrics.render))
    assert metrics["slimedge_serve_backend_calls_total"] < metrics["slimedge_serve_frames_total"]
    asyncio.run(wait_idle(server))


def test_client_that_disconnects_mid_stream_leaves_nothing_behind(server, local):
    rng = np.random.default_rng(1)
    good = rng.normal(size=(60, M)).astype(np.float32)

    async def leaver(s):
        ws = await s.ws_connect(server.ws_url)
        await ws.receive_json(timeout=20)
        for _ in range(4):   # 40 frames queued, no reply read, then the socket is dropped
            await send_chunk(ws, rng.normal(size=(10, M)).astype(np.float32), True)
        ws._response.connection.transport.abort()   # no close handshake: a crashed client

    async def main():
        async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
            await asyncio.gather(*(leaver(s) for _ in range(4)))
            y = await stream_all(s, server.ws_url, chunks_of(good, [10] * 6), True)
            await wait_idle(server)
            return y

    np.testing.assert_array_equal(asyncio.run(main()), expected(local, good))


GARBAGE = [
    (b"\x00" * (4 * M + 1), "frame_size", 1007, "multiple of 52"),
    ('{"frames": [[1, 2, 3]]}', "frame_size", 1007, "expected 13 numbers, got 3"),
    ('{"frame": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, "x"]}', "not_a_number", 1007, '"x"'),
    ('{"frame": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, true]}', "not_a_number", 1007, "true"),
    ('{"frame": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, NaN]}', "not_finite", 1007, "nan"),
    ('{"frame": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 1e39]}', "not_finite", 1007, "1e+39"),
    (np.full((2, M), np.nan, "<f4").tobytes(), "not_finite", 1007, "finite"),
    ("hello", "bad_message", 1007, "not JSON"),
    ('[1, 2]', "bad_message", 1007, '"frames"'),
    (np.zeros((11, M), "<f4").tobytes(), "too_many_frames", 1009, "at most 10"),
]


def test_garbage_gets_a_named_error_and_a_close_code_others_unaffected(server, local):
    rng = np.random.default_rng(2)
    good = rng.normal(size=(50, M)).astype(np.float32)

    async def garbage(s, payload, name, code, words):
        async with s.ws_connect(server.ws_url) as ws:
            await ws.receive_json(timeout=20)
            await send_chunk(ws, good[:3], True)        # a good chunk first: answered
            np.testing.assert_array_equal(await read_reply(ws, True), expected(local, good[:3]))
            await (ws.send_bytes(payload) if isinstance(payload, bytes) else ws.send_str(payload))
            message = await expect_error(ws, name, code)
            assert words.lower() in message.lower(), message

    async def main():
        async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
            results = await asyncio.gather(
                stream_all(s, server.ws_url, chunks_of(good, [10] * 5), False),
                *(garbage(s, *g) for g in GARBAGE))
            # a message over max_message_bytes is refused by the WebSocket layer unread: 1009
            async with s.ws_connect(server.ws_url) as ws:
                await ws.receive_json(timeout=20)
                await ws.send_bytes(b"\x00" * 8192)
                msg = await ws.receive(timeout=20)
                assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1009, msg
            await wait_idle(server)
            return results[0]

    np.testing.assert_array_equal(asyncio.run(main()), expected(local, good))
    errors = parse(server.call(server.server.metrics.render))
    assert errors['slimedge_serve_protocol_errors_total{error="not_finite"}'] >= 3


def test_a_client_sending_too_fast_is_held_back_memory_bounded(model, local):
    """No rate limit: the server stops reading the connection while 40 frames are unanswered;
    all 2,000 frames, sent as fast as the socket takes them, are answered exactly."""
    srv = ThreadServer(model, Limits(max_frames_per_message=10, max_queued_frames=40,
                                     tick_s=0.005))
    frames = np.random.default_rng(3).normal(size=(2000, M)).astype(np.float32)
    try:
        async def main():
            async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
                return await stream_all(s, srv.ws_url, chunks_of(frames, [10] * 200), True)

        np.testing.assert_array_equal(asyncio.run(main()), expected(local, frames))
        m = parse(srv.call(srv.server.metrics.render))
        assert m["slimedge_serve_queue_high_water_frames"] <= 40
        assert m["slimedge_serve_frames_total"] == 2000
    finally:
        srv.stop()


def test_rate_limit_refuses_a_client_over_it(model, local):
    srv = ThreadServer(model, Limits(max_frames_per_message=10, max_queued_frames=30,
                                     max_frames_per_second=100.0, max_connections=2))
    try:
        async def main():
            async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
                async with s.ws_connect(srv.ws_url) as ws:
                    ready = await ws.receive_json(timeout=20)
                    assert ready["max_frames_per_second"] == 100.0
                    for _ in range(4):    # 40 frames at once: the burst allowed is 30
                        await send_chunk(ws, np.zeros((10, M), np.float32), True)
                    for _ in range(3):    # the first 30 are answered
                        await read_reply(ws, True)
                    message = await expect_error(ws, "too_fast", 1008)
                    assert "100 frames per second" in message
                # the connection limit: 2 open, the third refused with 503 server_full
                async with s.ws_connect(srv.ws_url) as a, s.ws_connect(srv.ws_url) as b:
                    await a.receive_json(timeout=20)
                    await b.receive_json(timeout=20)
                    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                        await s.ws_connect(srv.ws_url)
                    assert e.value.status == 503
                    async with s.post(srv.url + "/v1/run", json={"frame": [0] * M}) as r:
                        assert r.status == 503 and (await r.json())["error"] == "server_full"

        asyncio.run(main())
    finally:
        srv.stop()


def test_http_one_shot_sequence_json_and_binary(server, local):
    frames = np.random.default_rng(4).normal(size=(37, M)).astype(np.float32)

    async def main():
        async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
            async with s.post(server.url + "/v1/run",
                              json={"frames": frames.astype(np.float64).tolist()}) as r:
                assert r.status == 200
                y_json = np.asarray((await r.json())["outputs"], np.float64).astype(np.float32)
            async with s.post(server.url + "/v1/run", data=frames.astype("<f4").tobytes(),
                              headers={"Content-Type": "application/octet-stream"}) as r:
                assert r.status == 200
                y_bin = np.frombuffer(await r.read(), "<f4").reshape(-1, K)
            async with s.post(server.url + "/v1/run", data="[[1]]",
                              headers={"Content-Type": "application/json"}) as r:
                assert r.status == 400 and (await r.json())["error"] == "bad_message"
            async with s.post(server.url + "/v1/run", data=b"\0" * 53) as r:   # octet-stream
                body = await r.json()
                assert r.status == 400 and body["error"] == "frame_size", body
                assert "multiple of 52" in body["message"]
            async with s.post(server.url + "/v1/run", json={"frame": [1] * (M - 1)}) as r:
                assert r.status == 400 and (await r.json())["error"] == "frame_size"
            async with s.post(server.url + "/v1/run", data=b"\0" * (2 << 20)) as r:
                assert r.status == 413 and (await r.json())["error"] == "too_big"
            return y_json, y_bin

    y_json, y_bin = asyncio.run(main())
    want = expected(local, frames)
    np.testing.assert_array_equal(y_json, want)
    np.testing.assert_array_equal(y_bin, want)


def test_health_and_metrics_parse(server):
    async def main():
        async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
            async with s.ws_connect(server.ws_url) as ws:
                await ws.receive_json(timeout=20)
                await send_chunk(ws, np.zeros((5, M), np.float32), True)
                await read_reply(ws, True)
                async with s.get(server.url + "/health") as r:
                    health = await r.json()
                    assert r.status == 200
                async with s.get(server.url + "/metrics") as r:
                    assert r.content_type == "text/plain"
                    return health, await r.text()

    health, text = asyncio.run(main())
    assert health["status"] == "ok" and health["streams"] == 1 and health["input_size"] == M
    m = parse(text)
    assert m["slimedge_serve_streams"] == 1
    assert m["slimedge_serve_frames_total"] >= 5 and m["slimedge_serve_steps_per_second"] > 0
    q50, q99 = (m[f'slimedge_serve_chunk_latency_seconds{{quantile="{q}"}}'] for q in (0.5, 0.99))
    assert 0 < q50 <= q99 < 10
    assert m["slimedge_serve_chunk_latency_seconds_count"] >= 1
    for line in text.splitlines():     # every sample declared with HELP and TYPE
        if not line.startswith("#"):
            base = line.split("{")[0].split(" ")[0]
            for suffix in ("_sum", "_count"):
                base = base.removesuffix(suffix) if base.endswith("latency_seconds" + suffix) else base
            assert f"# TYPE {base} " in text, line


def test_limits_are_checked():
    with pytest.raises(UsageError, match="max_connections"):
        Limits(max_connections=0)
    with pytest.raises(UsageError, match="must hold at least one message"):
        Limits(max_frames_per_message=100, max_queued_frames=50)
    with pytest.raises(UsageError, match="max_frames_per_second"):
        Limits(max_frames_per_second=0)


def _start_cli(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "slimedge", "serve", *args], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if "serving" not in line:
        p.kill()
        raise AssertionError(f"no server: {line!r} {p.stderr.read()}")
    return p, line.split(" on ")[1].split(" ")[0]


def test_cli_serve_sigterm_answers_queued_frames_then_closes_1001(onnx_path, local):
    """SIGTERM with 40 frames queued (a 300 ms tick holds them): every one is answered, then the
    close 1001 and a clean exit; new connections are no longer accepted."""
    p, url = _start_cli(str(onnx_path), "--port", "0", "--tick-ms", "300", "--threads", "1",
                        "--max-frames-per-message", "10", "--max-queue", "40")
    frames = np.random.default_rng(5).normal(size=(40, M)).astype(np.float32)
    try:
        async def main():
            async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
                async with s.ws_connect(url + "/v1/stream") as ws:
                    await ws.receive_json(timeout=20)
                    for c in chunks_of(frames, [10] * 4):
                        await send_chunk(ws, c, True)
                    await asyncio.sleep(0.05)
                    p.send_signal(signal.SIGTERM)
                    replies = [await read_reply(ws, True) for _ in range(4)]
                    await expect_error(ws, "shutting_down", 1001)
                with pytest.raises(aiohttp.ClientError):
                    await s.ws_connect(url + "/v1/stream")
                return np.concatenate(replies)

        np.testing.assert_array_equal(asyncio.run(main()), expected(local, frames))
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert out.strip().endswith("stopped")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_cli_serve_user_errors(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    missing = tmp_path / "missing.onnx"
    r = subprocess.run([sys.executable, "-m", "slimedge", "serve", str(missing), "--port", "0"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "missing.onnx" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_without_aiohttp_serve_names_its_extra():
    """slimedge.serve imports without aiohttp; serving without it is one line naming the extra."""
    code = ("import sys\nsys.modules['aiohttp'] = None\n"
            "import slimedge.serve\n"
            "from slimedge.cli import app\n"
            "app(['serve', '--port', '0'])\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "aiohttp" in r.stderr and "pip install 'slimedge[serve]'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_client_slow_to_read_gets_exact_replies_late_others_on_time(model, local):
    """A client with a 4 KB receive buffer (and the server's sockets 4 KB send buffers, so that
    the kernel does not absorb it all) sends 20,000 frames and reads nothing for a while: its
    replies back up in the server's send buffer, so they go to a writer task of its own (counted),
    and all arrive, exact, once it reads; meanwhile another client streams and is answered."""
    import socket

    srv = ThreadServer(model, Limits(max_frames_per_message=100, max_queued_frames=400,
                                     tick_s=0.002))
    for listener in next(iter(srv.server._runner.sites))._server.sockets:   # accepted: inherited
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    slow_frames = np.random.default_rng(5).normal(size=(20000, M)).astype(np.float32)
    fast_frames = np.random.default_rng(6).normal(size=(200, M)).astype(np.float32)

    def small_receive_buffer(addr_info):
        family, type_, proto, _, _ = addr_info
        sock = socket.socket(family, type_, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        return sock

    def slow_writes():
        return parse(srv.call(srv.server.metrics.render))["slimedge_serve_slow_writes_total"]

    try:
        async def main():
            connector = aiohttp.TCPConnector(socket_factory=small_receive_buffer)
            async with aiohttp.ClientSession(timeout=TIMEOUT, connector=connector) as slow_s, \
                    aiohttp.ClientSession(timeout=TIMEOUT) as s:
                async with slow_s.ws_connect(srv.ws_url) as ws:
                    await ws.receive_json(timeout=20)
                    chunks = chunks_of(slow_frames, [100] * 200)

                    async def send():
                        for c in chunks:
                            await send_chunk(ws, c, True)
                    sender = asyncio.create_task(send())
                    for _ in range(500):       # the slow client reads nothing until then
                        if slow_writes() >= 1:
                            break
                        await asyncio.sleep(0.02)
                    assert slow_writes() >= 1, "the slow client's replies never backed up"
                    fast = await stream_all(s, srv.ws_url, chunks_of(fast_frames, [10] * 20),
                                            True)
                    replies = [await read_reply(ws, True) for _ in chunks]
                    await sender
            return fast, np.concatenate(replies)

        fast, slow = asyncio.run(main())
        np.testing.assert_array_equal(fast, expected(local, fast_frames))
        np.testing.assert_array_equal(slow, expected(local, slow_frames))
    finally:
        srv.stop()


# ---- audio in, outputs or events out ---------------------------------------------------------
# The shipped continuous model (microfrontend, 8 kHz, 20 ms hop; background "_silence_") exported
# to ONNX, on onnxruntime (one thread) both sides, as above: each client's replies are what a
# local model.audio_stream() / model.listen() gives for the same PCM, bit for bit and event for
# event (the local side runs the NumPy front-end, the server the compiled one: the same values).
SR, HOP = 8000, 160
AUDIO_K = 11


@pytest.fixture(scope="module")
def stream_onnx(tmp_path_factory):
    return exported(tmp_path_factory, zoo.stream_model_path(), "continuous.onnx")


@pytest.fixture(scope="module")
def audio_local(stream_onnx):
    return on_onnxruntime(stream_onnx)


@pytest.fixture(scope="module")
def audio_server(stream_onnx):
    s = ThreadServer(on_onnxruntime(stream_onnx),
                     Limits(max_connections=64, max_frames_per_message=10, max_queued_frames=40,
                            max_message_bytes=8192, tick_s=0.002))
    yield s
    s.stop()


def digits_pcm(seed, count=2):
    """A stream of the shipped sample "7" over pink noise: int16 PCM at 8 kHz."""
    from slimedge.data import audio as wavdata
    from slimedge.data import streams

    return streams.make_stream([wavdata.Clip(zoo.sample_wav_path(), "7", "jackson")], SR,
                               count=count, background_kind="pink", level_db=(-55.0, -45.0),
                               seed=seed).samples


def odd_pieces(pcm, rng, most):
    """The PCM cut into pieces of odd lengths: 1, a few samples, under and over a hop, up to
    ``most``."""
    sizes = [1, 7, HOP - 1, HOP + 1, 3, most, 2 * HOP + 5]
    out, i = [], 0
    while i < len(pcm):
        n = sizes[len(out)] if len(out) < len(sizes) else int(rng.integers(1, most + 1))
        out.append(pcm[i:i + n])
        i += n
    return out


def event_dicts(events):
    from dataclasses import asdict
    return [asdict(e) for e in events]


async def audio_client(session, url, pieces, input_="s16le", output="outputs", query=""):
    """Send every piece (reading the replies concurrently); returns the ready message and the
    replies: outputs (n, K) arrays or lists of event dicts, one per piece."""
    async with session.ws_connect(f"{url}?input={input_}&output={output}{query}") as ws:
        ready = await ws.receive_json(timeout=20)
        assert ready["type"] == "ready", ready
        assert (ready["input"], ready["output"], ready["sample_rate"]) == (input_, output, SR)

        async def send():
            for p in pieces:
                await ws.send_bytes(p.astype("<i2" if input_ == "s16le" else "<f4").tobytes())

        sender = asyncio.create_task(send())
        replies = []
        for _ in pieces:
            msg = await ws.receive(timeout=20)
            if output == "events":
                assert msg.type == aiohttp.WSMsgType.TEXT, msg
                doc = json.loads(msg.data)
                assert doc["type"] == "events", doc
                replies.append(doc["events"])
            else:
                assert msg.type == aiohttp.WSMsgType.BINARY, msg
                replies.append(np.frombuffer(msg.data, "<f4").reshape(-1, AUDIO_K))
        await sender
        return ready, replies


def test_concurrent_audio_clients_get_a_local_audio_streams_outputs_and_events(audio_server,
                                                                               audio_local):
    """12 clients at once, PCM in odd pieces (1 sample, 7, a hop less or more one, ...): int16
    and float32 audio for outputs, int16 audio for events (two with decoder settings of their
    own); each gets, piece by piece, exactly what a local audio stream or listener gives for the
    same pieces, and the streams were stepped in shared batches."""
    from slimedge.runtime.decoder import DEFAULTS

    rng = np.random.default_rng(23)
    most = 10 * HOP       # max_samples_per_message: 10 frames' worth
    clients = []
    for i in range(12):
        pcm = digits_pcm(seed=i)
        pieces = odd_pieces(pcm, rng, most)
        if i % 3 == 2:    # float32 in [-1, 1): what the local stream is given too
            pieces = [(p / 32768.0).astype(np.float32) for p in pieces]
        output = "events" if i % 2 else "outputs"
        query = "&threshold=0.8&min_count=2" if i in (1, 5) else ""
        clients.append((pieces, "f32le" if i % 3 == 2 else "s16le", output, query))

    async def main():
        async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
            return await asyncio.gather(*(audio_client(s, audio_server.ws_url, *c)
                                          for c in clients))

    got = asyncio.run(main())
    fired = 0
    for (pieces, _, output, query), (ready, replies) in zip(clients, got):
        assert ready["max_samples_per_message"] == most and ready["hop_samples"] == HOP
        if output == "outputs":
            a = audio_local.audio_stream()
            for p, r in zip(pieces, replies):
                np.testing.assert_array_equal(r, a.push(p).astype(np.float32))
            assert any(len(r) == 0 for r in replies)   # a piece that completed no frame
        else:
            knobs = {"threshold": 0.8, "min_count": 2} if query else {}
            assert ready["decoder"]["threshold"] == knobs.get("threshold", DEFAULTS["threshold"])
            a = audio_local.listen(**knobs)
            for p, r in zip(pieces, replies):
                assert r == event_dicts(a.push(p))
            fired += sum(len(r) for r in replies)
            assert {e["label"] for r in replies for e in r} <= {"7"}
    assert fired >= 6      # the sample was heard, most of the 12 times it was said
    m = parse(audio_server.call(audio_server.server.metrics.render))
    assert m["slimedge_serve_backend_calls_total"] < m["slimedge_serve_frames_total"]
    assert m["slimedge_serve_events_total"] >= fired
    total = sum(len(p) for c in clients for p in c[0])
    assert m["slimedge_serve_audio_seconds_total"] == pytest.approx(total / SR)
    asyncio.run(wait_idle(audio_server))


AUDIO_GARBAGE = [
    ("s16le", b"\x00" * 3, "sample_size", 1007, "multiple of 2"),
    ("f32le", b"\x00" * 6, "sample_size", 1007, "multiple of 4"),
    ("s16le", b"", "sample_size", 1007, "at least one sample"),
    ("f32le", np.array([0.0, np.nan], "<f4").tobytes(), "not_finite", 1007, "sample 1"),
    ("s16le", "{\"frame\": [0]}", "bad_message", 1007, "binary messages of s16le samples"),
    ("s16le", b"\x00" * (2 * 1601), "too_many_samples", 1009, "at most 1600"),
]


def test_audio_garbage_gets_a_named_error_after_what_came_before(audio_server, audio_local):
    pcm = digits_pcm(seed=40, count=1)[:4000]

    async def garbage(s, input_, payload, name, code, words):
        async with s.ws_connect(f"{audio_server.ws_url}?input={input_}") as ws:
            await ws.receive_json(timeout=20)
            good = pcm[:1000] if input_ == "s16le" else (pcm[:1000] / 32768.0).astype("<f4")
            await ws.send_bytes(good.astype("<i2" if input_ == "s16le" else "<f4").tobytes())
            await (ws.send_bytes(payload) if isinstance(payload, bytes) else ws.send_str(payload))
            y = np.frombuffer((await ws.receive(timeout=20)).data, "<f4").reshape(-1, AUDIO_K)
            np.testing.assert_array_equal(y, audio_local.audio_stream().push(good))
            message = await expect_error(ws, name, code)
            assert words.lower() in message.lower(), message

    async def main():
        async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
            await asyncio.gather(*(garbage(s, *g) for g in AUDIO_GARBAGE))
            await wait_idle(audio_server)

    asyncio.run(main())


def test_what_a_model_cannot_serve_is_refused_before_ready(server, audio_server):
    """Audio to a frames-only model, events from a model without a background class, and a
    query not understood: the error instead of ready, then the close (1003: unsupported; 1008:
    a bad query); a frames stream of the audio model's features still works as before."""
    cases = [
        (server, "?input=s16le", "unsupported", 1003, "no audio front-end"),
        (server, "?input=f32le&output=events", "unsupported", 1003, "no audio front-end"),
        (server, "?output=events", "unsupported", 1003, "not a continuous one"),
        (audio_server, "?input=wav", "bad_query", 1008, "s16le"),
        (audio_server, "?output=labels", "bad_query", 1008, "events"),
        (audio_server, "?input=s16le&rate=8000", "bad_query", 1008, "unknown query parameter"),
        (audio_server, "?input=s16le&threshold=0.5", "bad_query", 1008, "needs output=events"),
        (audio_server, "?output=events&threshold=2", "bad_query", 1008, "threshold"),
        (audio_server, "?output=events&min_count=x", "bad_query", 1008, "an integer"),
        (audio_server, "?output=events&window_ms=inf", "bad_query", 1008, "finite"),
        (audio_server, "?input=s16le&input=f32le", "bad_query", 1008, "twice"),
    ]

    async def refused(s, srv, query, name, code, words):
        async with s.ws_connect(srv.ws_url + query) as ws:
            message = await expect_error(ws, name, code)
            assert words.lower() in message.lower(), (query, message)

    async def main():
        async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
            await asyncio.gather(*(refused(s, *c) for c in cases))
            async with s.ws_connect(audio_server.ws_url) as ws:     # frames, as before
                ready = await ws.receive_json(timeout=20)
                assert (ready["input"], ready["output"], ready["input_size"]) == \
                    ("frames", "outputs", 40)
                await ws.send_bytes(np.zeros((3, 40), "<f4").tobytes())
                y = np.frombuffer((await ws.receive(timeout=20)).data, "<f4")
                assert y.shape == (3 * AUDIO_K,)
            await wait_idle(server)
            await wait_idle(audio_server)

    asyncio.run(main())
    m = parse(server.call(server.server.metrics.render))
    assert m['slimedge_serve_protocol_errors_total{error="unsupported"}'] >= 3


def test_http_one_shot_audio_outputs_and_events(server, audio_server, audio_local):
    pcm = digits_pcm(seed=7)

    async def main():
        async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
            url = audio_server.url + "/v1/run"
            async with s.post(url + "?input=s16le", data=pcm.astype("<i2").tobytes()) as r:
                assert r.status == 200 and r.content_type == "application/octet-stream"
                y = np.frombuffer(await r.read(), "<f4").reshape(-1, AUDIO_K)
            async with s.post(url + "?input=s16le&output=events",
                              data=pcm.astype("<i2").tobytes()) as r:
                assert r.status == 200
                events = (await r.json())["events"]
            async with s.post(url + "?input=s16le&output=events", data=b"\0" * 20) as r:
                assert r.status == 200 and (await r.json()) == {"type": "events", "events": []}
            async with s.post(url + "?input=s16le", data=b"\0" * 3) as r:
                assert r.status == 400 and (await r.json())["error"] == "sample_size"
            async with s.post(server.url + "/v1/run?input=s16le", data=b"\0" * 20) as r:
                body = await r.json()
                assert r.status == 400 and body["error"] == "unsupported", body
            return y, events

    y, events = asyncio.run(main())
    np.testing.assert_array_equal(y, audio_local.audio_stream().push(pcm))
    assert events == event_dicts(audio_local.listen().push(pcm)) and events


def test_audio_sent_too_fast_is_held_back_and_answered_exactly(stream_onnx, audio_local):
    """40 s of audio sent at once in 200 ms messages (10 frames each) against a queue of 40
    frames: the server stops reading while the samples waiting for their front-end and the frames
    waiting for a step could pass it; every reply is exact. Then a graceful stop with chunks still
    queued (a 300 ms tick holds them): each is answered before the close 1001."""
    srv = ThreadServer(on_onnxruntime(stream_onnx),
                       Limits(max_frames_per_message=10, max_queued_frames=40, tick_s=0.005))
    pcm = np.concatenate([digits_pcm(seed=s, count=4) for s in range(4)])[:40 * SR]
    pieces = [pcm[i:i + 10 * HOP] for i in range(0, len(pcm), 10 * HOP)]
    try:
        async def main():
            async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
                return await audio_client(s, srv.ws_url, pieces)

        _, replies = asyncio.run(main())
        a = audio_local.audio_stream()
        for p, r in zip(pieces, replies):
            np.testing.assert_array_equal(r, a.push(p))
        m = parse(srv.call(srv.server.metrics.render))
        assert m["slimedge_serve_queue_high_water_frames"] <= 40
        assert m["slimedge_serve_frames_total"] == sum(len(r) for r in replies)
    finally:
        srv.stop()

    srv = ThreadServer(on_onnxruntime(stream_onnx),
                       Limits(max_frames_per_message=10, max_queued_frames=40, tick_s=0.3))
    try:
        async def stopped():
            async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
                async with s.ws_connect(srv.ws_url + "?input=s16le&output=events") as ws:
                    await ws.receive_json(timeout=20)
                    for p in pieces[:4]:
                        await ws.send_bytes(p.astype("<i2").tobytes())
                    await asyncio.sleep(0.05)
                    stopping = asyncio.get_running_loop().run_in_executor(None, srv.stop)
                    replies = [(await ws.receive_json(timeout=20))["events"] for _ in range(4)]
                    await expect_error(ws, "shutting_down", 1001)
                    await stopping
                    return replies

        replies = asyncio.run(stopped())
        listener = audio_local.listen()
        assert replies == [event_dicts(listener.push(p)) for p in pieces[:4]]
    finally:
        if srv.thread.is_alive():
            srv.stop()
