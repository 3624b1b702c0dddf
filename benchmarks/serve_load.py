"""Load on ``slimedge serve``: N concurrent real-time streams of the shipped model, each sending a
100 ms chunk (10 frames of 13 features) every 100 ms over its own WebSocket; how many it serves
with p99 chunk-to-reply latency <= 100 ms, where the time goes, and memory per idle stream.

    python benchmarks/serve_load.py                          # prints the results
    python benchmarks/serve_load.py --update                 # ... and writes them (below)
    python benchmarks/serve_load.py --table-only --update    # BENCHMARKS.md from the JSON
    python benchmarks/serve_load.py --streams 100,200,400 --seconds 8 --backend onnxruntime
    python benchmarks/serve_load.py --audio                  # PCM in, events out (below)

The server is ``python -m slimedge serve`` in a subprocess on 127.0.0.1 (the shipped model exported
to ONNX, onnxruntime with one thread, the C export, or the checkpoint on numpy); the load generator
is this process, one event loop (uvloop where installed, as the server's) with an aiohttp client
and every message encoded before the run, on the same machine (the issue's target counts
it). For each N of the ladder (stopping after two failures in a row): N streams connect, start in
20 phases 5 ms apart (one timer per phase), run ``--warmup`` s unmeasured, then ``--seconds`` s
measured. Latency is the client's, from a chunk's send to its reply's arrival; a chunk without a
reply 2 s after the last send is unanswered. N passes when p99 <= 100 ms, every chunk was
answered and the generator never fell a chunk behind.

Where the time goes, CPU per chunk over each level's run: the backend calls (``step_streams_many``:
the CPU time of the server's stepping thread during them,
``slimedge_serve_backend_cpu_seconds_total``), the rest of the server's user CPU (aiohttp,
asyncio, slimedge's Python), its kernel CPU (loopback TCP, epoll), and the load generator's CPU.
Memory per idle stream: the server's RSS growth over ``--idle`` idle connections (connected,
nothing sent), divided by their number.

The frames are random normal values (the model's inputs are standardised MFCCs; the server's work
does not depend on the values). Only with ``--update`` does it write
``benchmarks/results/serve_load.json`` and the "Serving" section of BENCHMARKS.md (another
backend: ``serve_load_BACKEND.json`` and a section of its own).

``--audio``: the shipped continuous model (``slimedge/zoo/fsdd_stream.safetensors``, exported
likewise), each stream sending 100 ms of int16 PCM (800 samples at 8 kHz, 5 frames) every 100 ms
on ``/v1/stream?input=s16le&output=events`` and reading one events reply per chunk: the server
runs each connection's front-end and decoder besides the batched steps. The audio is the shipped
sample "7" said again and again over pink noise, each stream starting at its own place in it
(``serve_load_audio.json``, a section of its own).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "serve_load.json"
BENCH = ROOT / "BENCHMARKS.md"
SECTION = "## Serving: `slimedge serve` under load (`benchmarks/serve_load.py`)"
CHUNK_FRAMES, M, PERIOD_S, TARGET_P99_S = 10, 13, 0.1, 0.1
AUDIO_QUERY = "?input=s16le&output=events"
TICK = os.sysconf("SC_CLK_TCK")


def results_path(backend: str, audio: bool = False) -> Path:
    name = "serve_load_audio" if audio else "serve_load"
    return RESULTS.with_name(name + ("" if backend == "onnxruntime" else f"_{backend}") + ".json")


def section(backend: str, audio: bool = False) -> str:
    if audio:
        return ("## Serving audio: PCM in, events out (`benchmarks/serve_load.py --audio"
                + ("" if backend == "onnxruntime" else f" --backend {backend}") + "`)")
    return SECTION if backend == "onnxruntime" else (
        f"## Serving on the `{backend}` backend (`benchmarks/serve_load.py --backend {backend}`)")


def audio_payloads(count: int = 64) -> list[bytes]:
    """``count`` consecutive 100 ms chunks of int16 PCM: the shipped sample over pink noise."""
    from slimedge import zoo
    from slimedge.data import audio, streams

    rate = 8000
    pcm = np.zeros(0, np.int16)
    seed = 0
    while len(pcm) < count * rate // 10:
        pcm = np.concatenate([pcm, streams.make_stream(
            [audio.Clip(zoo.sample_wav_path(), "7", "jackson")], rate, count=4,
            background_kind="pink", level_db=(-55.0, -45.0), seed=seed).samples])
        seed += 1
    step = rate // 10
    return [pcm[k * step:(k + 1) * step].astype("<i2").tobytes() for k in range(count)]


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def start_server(model: Path, backend: str, max_connections: int, tick_ms: float):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.Popen([sys.executable, "-m", "slimedge", "serve", str(model), "--port", "0",
                          "--backend", backend, "--threads", "1", "--tick-ms", str(tick_ms),
                          "--max-connections", str(max_connections)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    line = p.stdout.readline()
    if " on http://" not in line:
        p.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return p, line.split(" on ")[1].split(" ")[0]


async def scrape(session, url: str) -> dict[str, float]:
    from slimedge.serve.metrics import parse

    async with session.get(url + "/metrics") as r:
        return parse(await r.text())


async def one_level(url: str, pid: int, n: int, warmup: float, seconds: float,
                    audio: bool = False) -> dict:
    import aiohttp

    rng = np.random.default_rng(n)
    if audio:
        payloads, query = audio_payloads(), AUDIO_QUERY
    else:
        payloads = [rng.normal(size=(CHUNK_FRAMES, M)).astype("<f4").tobytes() for _ in range(64)]
        query = ""
    events = [0]
    t_start = t_end = 0.0
    latencies: list[float] = []
    sent_measured = [0]
    behind = [0]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=None)) as s:
        sockets = []
        for i in range(0, n, 100):   # connect in batches of 100
            sockets += await asyncio.gather(*(s.ws_connect(url + "/v1/stream" + query,
                                                           compress=0)
                                              for _ in range(min(100, n - i))))
        await asyncio.gather(*(ws.receive() for ws in sockets))   # the ready messages
        t0 = time.perf_counter()
        t_start, t_end = t0 + warmup, t0 + warmup + seconds

        sent: list[list[float]] = [[] for _ in sockets]   # per stream: each chunk's send time
        got = [0] * n                                     # per stream: replies read

        async def reader(i: int, ws) -> None:
            while True:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT and audio:     # one events reply
                    events[0] += msg.data.count('"label"')
                elif msg.type != aiohttp.WSMsgType.BINARY:
                    return
                t = sent[i][got[i]]
                if t >= t_start:
                    latencies.append(time.perf_counter() - t)
                got[i] += 1

        async def sender(group: list[int], phase: float) -> None:
            """One timer for the streams of one phase (20 phases, 5 ms apart): each sends its
            chunk every 100 ms."""
            due, j = t0 + phase, 0
            while due < t_end:
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -PERIOD_S and due >= t_start:
                    behind[0] += 1         # the generator itself fell a chunk behind
                for i in group:
                    now = time.perf_counter()
                    sent[i].append(now)
                    if now >= t_start:
                        sent_measured[0] += 1
                    await sockets[i].send_bytes(payloads[(i + j) % len(payloads)])
                j += 1
                due += PERIOD_S

        phases = 20
        order = list(range(n))
        random.Random(n).shuffle(order)
        groups = [order[g::phases] for g in range(phases)]
        before = await scrape(s, url)
        cpu_s0, cpu_c0, wall0 = cpu_seconds(pid), own_cpu(), time.perf_counter()
        readers = [asyncio.create_task(reader(i, ws)) for i, ws in enumerate(sockets)]
        await asyncio.gather(*(sender(g, k * PERIOD_S / phases) for k, g in enumerate(groups)))
        deadline = time.perf_counter() + 2.0      # replies still due: unanswered if not by then
        while time.perf_counter() < deadline and any(got[i] < len(sent[i]) for i in range(n)):
            await asyncio.sleep(0.01)
        for task in readers:
            task.cancel()
        cpu_s1, cpu_c1, wall1 = cpu_seconds(pid), own_cpu(), time.perf_counter()
        after = await scrape(s, url)
        await asyncio.gather(*(ws.close() for ws in sockets))
    measured = len(latencies)
    missing = sent_measured[0] - measured
    chunks_all = (after["slimedge_serve_chunk_latency_seconds_count"]
                  - before["slimedge_serve_chunk_latency_seconds_count"])
    lat = np.sort(np.asarray(latencies)) if latencies else np.asarray([np.inf])
    q = {p: float(np.quantile(lat, p / 100)) for p in (50, 90, 99)}
    backend_s = (after["slimedge_serve_backend_cpu_seconds_total"]
                 - before["slimedge_serve_backend_cpu_seconds_total"])
    backend_wall = (after["slimedge_serve_backend_seconds_total"]
                    - before["slimedge_serve_backend_seconds_total"])
    frames = after["slimedge_serve_frames_total"] - before["slimedge_serve_frames_total"]
    calls = after["slimedge_serve_backend_calls_total"] - before["slimedge_serve_backend_calls_total"]
    frontend_s = (after["slimedge_serve_frontend_cpu_seconds_total"]
                  - before["slimedge_serve_frontend_cpu_seconds_total"])
    server_user, server_sys = cpu_s1[0] - cpu_s0[0], cpu_s1[1] - cpu_s0[1]
    per_chunk = lambda x: 1e6 * x / max(chunks_all, 1)   # noqa: E731
    row = {
        "streams": n, "loadavg_1min": round(os.getloadavg()[0], 2),
        "chunks_measured": measured, "chunks_unanswered": missing,
        "generator_behind": behind[0], "events": events[0],
        "p50_ms": 1e3 * q[50], "p90_ms": 1e3 * q[90], "p99_ms": 1e3 * q[99],
        "server_p50_ms": 1e3 * after['slimedge_serve_chunk_latency_seconds{quantile="0.5"}'],
        "server_p99_ms": 1e3 * after['slimedge_serve_chunk_latency_seconds{quantile="0.99"}'],
        "stream_steps_per_s": frames / (wall1 - wall0),
        "frames_per_backend_call": frames / max(calls, 1),
        "wall_s": wall1 - wall0,
        "cpu_cores_used": {"server_user": server_user / (wall1 - wall0),
                           "server_kernel": server_sys / (wall1 - wall0),
                           "generator": (cpu_c1 - cpu_c0) / (wall1 - wall0)},
        "backend_wall_us_per_chunk": per_chunk(backend_wall),
        "us_per_chunk": {"backend_step_streams": per_chunk(backend_s),
                         **({"frontend": per_chunk(frontend_s)} if audio else {}),
                         "server_python_other": per_chunk(server_user - backend_s - frontend_s),
                         "server_kernel_network": per_chunk(server_sys),
                         "generator": per_chunk(cpu_c1 - cpu_c0)},
    }
    total = sum(row["us_per_chunk"].values())   # CPU µs per chunk, server and generator
    row["cpu_ceiling_streams"] = int(os.cpu_count() * 1e6 / (total / PERIOD_S)) if total > 0 else 0
    row["passed"] = (row["p99_ms"] <= 1e3 * TARGET_P99_S and missing == 0 and behind[0] == 0)
    return row


async def idle_memory(url: str, pid: int, n: int, query: str = "") -> dict:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        await asyncio.sleep(0.5)
        rss0 = rss_mb(pid)
        sockets = []
        for i in range(0, n, 100):
            sockets += await asyncio.gather(*(s.ws_connect(url + "/v1/stream" + query,
                                                           compress=0)
                                              for _ in range(min(100, n - i))))
        await asyncio.gather(*(ws.receive() for ws in sockets))
        await asyncio.sleep(0.5)
        rss1 = rss_mb(pid)
        await asyncio.gather(*(ws.close() for ws in sockets))
    return {"idle_streams": n, "rss_before_mb": round(rss0, 1), "rss_after_mb": round(rss1, 1),
            "kb_per_idle_stream": round(1024 * (rss1 - rss0) / n, 1)}


STREAM_KB = r"""
import os, sys
from slimedge import runtime
def rss_kb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024
m = runtime.load(sys.argv[1], sys.argv[2], 1)
m.stream()
before = rss_kb()
streams = [m.stream() for _ in range(2000)]
print((rss_kb() - before) / len(streams))
"""


def stream_kb(model: Path, backend: str) -> float:
    """KB of one runtime Stream of this model and backend (its state and backend binding), in a
    fresh process (2,000 of them): the part of an idle connection that is the model's."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", STREAM_KB, str(model), backend], env=env,
                         capture_output=True, text=True, check=True).stdout
    return round(float(out.strip().splitlines()[-1]), 1)


def summary(result: dict) -> dict:
    """One run in a line: when, how loaded, the capacity and its p99."""
    at = [row for row in result["levels"] if row["streams"] == result["capacity_streams"]]
    return {"date": result["date"], "loadavg_before": result["loadavg_before"],
            "capacity_streams": result["capacity_streams"],
            "p99_ms_at_capacity": round(at[0]["p99_ms"], 1) if at else None,
            "failed": [(row["streams"], round(row["p99_ms"], 1)) for row in result["levels"]
                       if not row["passed"]]}


def markdown(result: dict) -> str:
    r = result
    cap = r["capacity_streams"]
    audio = r.get("audio", False)
    chunk = ("100 ms of int16 PCM (800 samples at 8 kHz: 5 frames of the continuous model) on "
             "`?input=s16le&output=events` every 100 ms, each answered with its events" if audio
             else "a 100 ms chunk (10 frames × 13 features, binary float32) every 100 ms")
    lines = [section(r["backend"], audio), "",
             f"`{r['command']}` on {r['machine'].get('cpu', 'this machine')} "
             f"({r['machine'].get('cores', '?')} cores, shared with other work; load average "
             f"{r['loadavg_before']} before the run), {r['date']}. The server "
             f"(`python -m slimedge serve`, {r['backend']}, 1 thread, tick {r['tick_ms']:g} ms) and "
             f"the load generator (one uvloop event loop, aiohttp client) on the same 2 cores, over "
             f"127.0.0.1. Each stream sends {chunk}, in 20 phases 5 ms apart; "
             f"latency is the client's, send to reply; "
             f"{r['warmup_s']:g} s warm-up, {r['seconds_s']:g} s measured per level. The load "
             f"average column is the 1-minute load when each level ended: above 2, other work "
             f"(other engineers' test runs) held part of the 2 cores, so these capacities are "
             f"what the server and generator reached with a share of the machine.", "",
             f"**Capacity found: {cap if cap else 'none of the levels tried'} concurrent real-time "
             f"streams** with p99 ≤ 100 ms (the issue's target: ≥ 1,000 streams of audio or "
             f"frames; "
             + (f"with audio in and events out {'reached' if cap and cap >= 1000 else 'not reached'}"
                f" here, with frames see the frames sections)." if audio else
                f"{'reached' if cap and cap >= 1000 else 'not reached'}).")
             + "".join(f" Earlier run, {e['date']} (load average {e['loadavg_before']}): "
                       f"{e['capacity_streams']} streams (p99 {e['p99_ms_at_capacity']} ms); failed "
                       + ", ".join(f"{n} at p99 {q} ms" for n, q in e["failed"]) + "."
                       for e in r.get("earlier_runs", [])), "",
             "| streams | load avg | p50 ms | p90 ms | p99 ms | server p99 ms | stream-steps/s | frames per "
             "backend call | µs/chunk: backend | " + ("front-end | " if audio else "")
             + "server Python | server kernel (TCP) | load generator | CPU ceiling (streams) | "
             "passed |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if audio else "")
             + "---:|---:|---:|---:|---|"]
    for row in r["levels"]:
        u = row["us_per_chunk"]
        lines.append(f"| {row['streams']:,} | {row['loadavg_1min']:.1f} | {row['p50_ms']:.1f} | "
                     f"{row['p90_ms']:.1f} | "
                     f"{row['p99_ms']:.1f} | {row['server_p99_ms']:.1f} | "
                     f"{row['stream_steps_per_s']:,.0f} | {row['frames_per_backend_call']:.0f} | "
                     f"{u['backend_step_streams']:.0f} | "
                     + (f"{u['frontend']:.0f} | " if audio else "")
                     + f"{u['server_python_other']:.0f} | "
                     f"{u['server_kernel_network']:.0f} | {u['generator']:.0f} | "
                     f"{row['cpu_ceiling_streams']:,} | {'yes' if row['passed'] else 'no'} |")
    mem = r["idle_memory"]
    lines += ["", f"Memory per idle stream (connected, nothing sent): "
              f"{mem['kb_per_idle_stream']:.1f} KB (server RSS {mem['rss_before_mb']} → "
              f"{mem['rss_after_mb']} MB over {mem['idle_streams']:,} connections), of which "
              f"{mem['kb_per_runtime_stream']:.1f} KB is the runtime `Stream` ({r['backend']}: "
              f"its state and backend binding); the rest is the connection (aiohttp's request, "
              f"WebSocket reader and writer, two asyncio tasks, the session's queues).", "",
              r["notes"], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", default="200,300,400,500,600,700,850,1000,1200",
                    help="the ladder of concurrent streams (stops after two failures in a row)")
    ap.add_argument("--seconds", type=float, default=8.0, help="measured seconds per level")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "c", "numpy"))
    ap.add_argument("--tick-ms", type=float, default=20.0,
                    help="the server's --tick-ms (20: larger batches, within the 100 ms budget)")
    ap.add_argument("--idle", type=int, default=1000, help="idle connections for memory")
    ap.add_argument("--audio", action="store_true",
                    help="the shipped continuous model, 100 ms PCM chunks in, events out")
    ap.add_argument("--table-only", action="store_true",
                    help="the BENCHMARKS.md section from the JSON (printed; written with "
                         "--update), measure nothing")
    sys.path.insert(0, str(ROOT))
    from slimedge._report import (
        add_output_arguments,
        machine,
        nothing_written,
        settle_outputs,
        update_markdown_section,
    )

    add_output_arguments(ap, RESULTS)
    args = ap.parse_args(argv)
    settle_outputs(args, results_path(args.backend, args.audio))
    if args.table_only:
        text = markdown(json.loads(args.source.read_text()))
        if args.markdown:
            update_markdown_section(BENCH, section(args.backend, args.audio), text)
            print("rewrote BENCHMARKS.md from", args.source)
        else:
            print(text)
        return
    from slimedge import exporters, zoo
    from slimedge.serve import run

    levels = [int(x) for x in args.streams.split(",")]
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = []
    with tempfile.TemporaryDirectory() as d:
        model = zoo.stream_model_path() if args.audio else zoo.default_model_path()
        if args.backend in ("onnxruntime", "c"):
            suffix = {"onnxruntime": "onnx", "c": "c"}[args.backend]
            model = exporters.export(model, Path(d) / f"digits.{suffix}", format=suffix,
                                     validate=False).path
        p, url = start_server(model, args.backend, max(levels) + args.idle + 16, args.tick_ms)
        try:
            mem = run(idle_memory(url, p.pid, args.idle, AUDIO_QUERY if args.audio else ""))
            mem["kb_per_runtime_stream"] = stream_kb(model, args.backend)
            print(f"idle: {mem['kb_per_idle_stream']} KB per stream "
                  f"({mem['rss_before_mb']} -> {mem['rss_after_mb']} MB)", flush=True)
            for n in levels:
                row = run(one_level(url, p.pid, n, args.warmup, args.seconds, args.audio))
                rows.append(row)
                u = row["us_per_chunk"]
                print(f"{n:5d} streams: p50 {row['p50_ms']:.1f} p90 {row['p90_ms']:.1f} p99 "
                      f"{row['p99_ms']:.1f} ms (server p99 {row['server_p99_ms']:.1f}), "
                      f"{row['stream_steps_per_s']:,.0f} steps/s, "
                      f"{row['frames_per_backend_call']:.0f} per call; µs/chunk backend "
                      f"{u['backend_step_streams']:.0f} "
                      + (f"front-end {u['frontend']:.0f} " if "frontend" in u else "")
                      + f"server-py {u['server_python_other']:.0f} "
                      f"kernel {u['server_kernel_network']:.0f} generator {u['generator']:.0f}; "
                      f"{'pass' if row['passed'] else 'FAIL'}"
                      + (f" ({row['chunks_unanswered']} unanswered, generator behind "
                         f"{row['generator_behind']})" if not row["passed"] else ""), flush=True)
                if len(rows) >= 2 and not any(r["passed"] for r in rows[-2:]):
                    break           # two levels in a row failed
        finally:
            p.terminate()
            p.wait(30)
    passed = [r["streams"] for r in rows if r["passed"]]
    cap = max(passed) if passed else 0
    print(f"capacity: {cap} streams with p99 <= 100 ms")
    command = "python benchmarks/serve_load.py " + " ".join(
        a for a in sys.argv[1:] if a != "--update")
    result = {"machine": machine(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "command": command.strip(), "backend": args.backend, "audio": args.audio,
              "tick_ms": args.tick_ms,
              "warmup_s": args.warmup, "seconds_s": args.seconds, "loadavg_before": load_before,
              "capacity_streams": cap, "levels": rows, "idle_memory": mem,
              "notes": f"CPU µs per chunk ({5 if args.audio else 10} frames), over each level's "
                       "whole run: backend = the "
                       "CPU time of the server's stepping thread in its step_streams_many calls (one "
                       "per tick; the Python gather/scatter of each stream's state, once per tick, "
                       "included); " + ("front-end = the stepping thread's CPU in the connections' "
                       "audio front-ends (between its steps, each tick); " if args.audio else "")
                       + "server Python = "
                       "the rest of its user CPU (aiohttp framing, asyncio, batching, replies"
                       + ("; each connection's decoder" if args.audio else "")
                       + "); "
                       "server kernel = its system CPU (loopback TCP, epoll); load generator = "
                       "this process's CPU. CPU ceiling = the machine's cores / (the four per chunk "
                       "× 10 chunks per stream-second): the streams that would saturate every core "
                       "with nothing else running, an upper bound, not a capacity."}
    if args.out is None:
        print(nothing_written(results_path(args.backend, args.audio)))
        return
    if args.out.exists():       # the capacity of each earlier run stays on record
        prev = json.loads(args.out.read_text())
        result["earlier_runs"] = [*prev.get("earlier_runs", []), summary(prev)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    if args.markdown:
        update_markdown_section(BENCH, section(args.backend, args.audio), markdown(result))
        print("and BENCHMARKS.md's section")


if __name__ == "__main__":
    main()
