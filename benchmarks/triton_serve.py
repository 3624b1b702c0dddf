"""Triton's sequence batcher serving the shipped model: throughput and latency for k streams.

    make triton-env                                          # once: the Triton venv
    python benchmarks/triton_serve.py                        # prints the results
    python benchmarks/triton_serve.py --update               # ... and writes them (below)
    python benchmarks/triton_serve.py --streams 16,64,256 --requests 6400 --repeats 3

The shipped model is exported with ``slimedge export --triton`` (the Python-backend model on its
ONNX step graph, onnxruntime with one thread) and served by the ``tritonserver`` nvidia-pytriton
bundles, on loopback ports of this machine; the client (``python -m slimedge.triton_server.client``
in the Triton venv, one gRPC stream) runs here too. For each k, k sequences advance in lockstep
for ``--steps`` steps or more (at least ``--requests`` requests a run; ``--repeats`` runs, the
one of median throughput reported): each step sends one frame per sequence (START on the first,
END on the last) and waits for all k replies, as k microphones each sending a frame per tick.
Reported:
stream-steps per second over the whole run; each request's send-to-reply latency (p50, p99); the
step round (the slowest reply of a step, p50, p99); and, as the ratio the server costs, the same
k streams stepped in this process by ``Model.step_streams`` (one call per step, no server). Every
served output is checked bit-equal to a local Stream. The frames are random normal values (the
work does not depend on them). Only with ``--update`` does it write
``benchmarks/results/triton_serve.json`` and the "Triton" section of BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "triton_serve.json"
BENCH = ROOT / "BENCHMARKS.md"
SECTION = "## Triton: the sequence batcher on the bundled server (`benchmarks/triton_serve.py`)"


TICK = os.sysconf("SC_CLK_TCK")


def group_cpu_s(pgid: int) -> dict:
    """User + system CPU seconds of the live processes in the process group ``pgid``: the
    server's own (``tritonserver``: gRPC, the sequence batcher) and its Python-backend stub's
    (the request hand-off and the Python model, which steps the slimedge runtime)."""
    total = {"tritonserver": 0, "python_stub": 0}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, tail = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        fields = tail.split()
        if int(fields[2]) == pgid:
            key = "tritonserver" if head.endswith("(tritonserver") else "python_stub"
            total[key] += int(fields[11]) + int(fields[12])
    return {k: v / TICK for k, v in total.items()}


def run_client(python: Path, url: str, model: str, frames: np.ndarray, folder: Path) -> dict:
    np.save(folder / "frames.npy", frames)
    subprocess.run([str(python), "-m", "slimedge.triton_server.client", "--url", url,
                    "--model", model, "--frames", str(folder / "frames.npy"),
                    "--out", str(folder / "out.npz")], cwd=ROOT, check=True, timeout=600,
                   env={"PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"]})
    with np.load(folder / "out.npz") as z:
        return {k: z[k] for k in z.files}


def one_run(python: Path, server, frames: np.ndarray, folder: Path) -> dict:
    """One client run of ``frames`` (k, T, m) through the server: its figures and outputs."""
    k, T, _ = frames.shape
    cpu0 = group_cpu_s(server.process.pid)
    got = run_client(python, server.grpc_url, "digits_python", frames, folder)
    cpu1 = group_cpu_s(server.process.pid)
    if got["errors"].size:
        raise SystemExit(f"error replies at k={k}: {got['errors'][:3]}")
    lat = got["latency_s"] * 1e3
    rounds = lat.max(axis=1)
    pct = lambda a, q: round(float(np.percentile(a, q)), 2)  # noqa: E731
    return {"stream_steps_per_s": round(k * T / float(got["wall_s"]), 1),
            "request_p50_ms": pct(lat, 50), "request_p99_ms": pct(lat, 99),
            "round_p50_ms": pct(rounds, 50), "round_p99_ms": pct(rounds, 99),
            "server_cpu_us_per_request": round((sum(cpu1.values()) - sum(cpu0.values()))
                                               / (k * T) * 1e6, 1),
            **{f"{key}_cpu_us_per_request": round((cpu1[key] - cpu0[key]) / (k * T) * 1e6, 1)
               for key in cpu0},
            "client_cpu_us_per_request": round(float(got["cpu_s"]) / (k * T) * 1e6, 1),
            "y": got["y"]}


def local_rate(model, frames: np.ndarray) -> float:
    """Stream-steps per second of ``Model.step_streams`` on the same streams, in this process."""
    k, T, _ = frames.shape
    streams = [model.stream() for _ in range(k)]
    model.step_streams(streams, frames[:, 0])  # warm
    t0 = time.perf_counter()
    for t in range(T):
        model.step_streams(streams, frames[:, t])
    return k * T / (time.perf_counter() - t0)


def local_outputs(model, frames: np.ndarray) -> np.ndarray:
    k, T, _ = frames.shape
    out = np.zeros((k, T, model.output_size), np.float32)
    for j in range(k):
        s = model.stream()
        for t in range(T):
            out[j, t] = s.step(frames[j, t])
    return out


def markdown(r: dict) -> str:
    from slimedge._report import describe

    lines = [SECTION, "",
             f"{r['date']}; {describe(r['machine'])}; load average before "
             f"{r['loadavg_before']}. The server, its Python-backend stub and the client share "
             f"this machine's {r['machine']['cores']} cores. Command: `{r['command']}` (after "
             f"`make triton-env`).", "",
             "| streams | steps each | stream-steps/s | request p50 ms | request p99 ms | "
             "step round p50 ms | step round p99 ms | in-process step_streams /s | served / "
             "in-process | CPU µs/request: server (tritonserver + Python stub) | client | "
             "bit-equal |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"]
    for row in r["levels"]:
        lines.append(f"| {row['streams']} | {row['steps']} | {row['stream_steps_per_s']:,.0f} | "
                     f"{row['request_p50_ms']:.1f} | {row['request_p99_ms']:.1f} | "
                     f"{row['round_p50_ms']:.1f} | {row['round_p99_ms']:.1f} | "
                     f"{row['in_process_steps_per_s']:,.0f} | {row['served_over_in_process']:.3f} "
                     f"| {row['server_cpu_us_per_request']:.0f} "
                     f"({row.get('tritonserver_cpu_us_per_request', float('nan')):.0f} + "
                     f"{row.get('python_stub_cpu_us_per_request', float('nan')):.0f}) | "
                     f"{row['client_cpu_us_per_request']:.0f} | "
                     f"{'yes' if row['bit_equal'] else 'NO'} |")
    lines += ["", r["notes"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", default="16,64,256", help="the k to measure")
    ap.add_argument("--steps", type=int, default=50, help="steps per stream at each k (at least)")
    ap.add_argument("--requests", type=int, default=6400,
                    help="requests per run at least (more steps for small k)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs per k; the run of median throughput is reported")
    ap.add_argument("--table-only", action="store_true",
                    help="the BENCHMARKS.md section from the JSON (printed; written with "
                         "--update), measure nothing")
    sys.path.insert(0, str(ROOT))
    from slimedge import runtime, triton_server, zoo
    from slimedge._report import add_output_arguments, machine, publish, settle_outputs
    from slimedge.triton_server import bundled

    add_output_arguments(ap, RESULTS)
    args = ap.parse_args(argv)
    settle_outputs(args, RESULTS)
    if args.table_only:
        return publish(args, None, RESULTS, BENCH, SECTION, markdown)
    python = bundled.env_python()
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        repo = triton_server.write(zoo.default_model_path(), d / "repo", name="digits",
                                   validate=False)
        model = runtime.load(repo.python_model / "1" / "digits.onnx", backend="onnxruntime",
                             threads=1)
        with bundled.Server(d / "repo", ["digits_python"], log=d / "server.log") as server:
            run_client(python, server.grpc_url, "digits_python",
                       rng.normal(size=(8, 5, model.input_size)).astype(np.float32), d)  # warm
            for k in (int(s) for s in args.streams.split(",")):
                steps = max(args.steps, -(-args.requests // k))
                frames = rng.normal(size=(k, steps, model.input_size)).astype(np.float32)
                runs = [one_run(python, server, frames, d) for _ in range(args.repeats)]
                row = sorted(runs, key=lambda r: r["stream_steps_per_s"])[len(runs) // 2]
                inproc = local_rate(model, frames)
                row.update(streams=k, steps=steps, repeats=args.repeats,
                           stream_steps_per_s_runs=[r["stream_steps_per_s"] for r in runs],
                           in_process_steps_per_s=round(inproc, 1),
                           served_over_in_process=round(row["stream_steps_per_s"] / inproc, 4),
                           in_process_us_per_stream_step=round(1e6 / inproc, 2),
                           bit_equal=all(np.array_equal(r.pop("y"), local_outputs(model, frames))
                                         for r in runs))
                rows.append(row)
                print(f"{k:4d} streams x {steps}: {row['stream_steps_per_s']:,.0f} stream-steps/s "
                      f"(median of {row['stream_steps_per_s_runs']}); request p50 "
                      f"{row['request_p50_ms']:.1f} p99 {row['request_p99_ms']:.1f} ms; round "
                      f"p50 {row['round_p50_ms']:.1f} p99 {row['round_p99_ms']:.1f} ms; in-process "
                      f"{inproc:,.0f}/s (x{row['served_over_in_process']:.3f}); CPU µs/request "
                      f"server {row['server_cpu_us_per_request']:.0f} (tritonserver "
                      f"{row['tritonserver_cpu_us_per_request']:.0f}, Python stub "
                      f"{row['python_stub_cpu_us_per_request']:.0f}) client "
                      f"{row['client_cpu_us_per_request']:.0f}; bit-equal {row['bit_equal']}",
                      flush=True)
    command = "python benchmarks/triton_serve.py " + " ".join(
        a for a in (argv if argv is not None else sys.argv[1:]) if a != "--update")
    result = {"machine": machine(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "command": command.strip(), "loadavg_before": load_before,
              "server": "tritonserver 2.51 (nvidia-pytriton 0.7.0), Python backend, oldest "
                        "sequence batcher (max batch 256, queue delay 500 µs); model stepped by "
                        "slimedge's onnxruntime backend, one thread",
              "levels": rows,
              "notes": "Each row: the run of median throughput of --repeats runs (every run's "
                       "throughput is in the JSON). "
                       "Stream-steps/s: k x steps over the client's wall time (lockstep: a step's "
                       "k requests sent, then its k replies awaited). Request latency: one "
                       "request's send to its reply, queueing behind the step's other requests "
                       "included; step round: the slowest reply of a step. In-process: "
                       "Model.step_streams on the same k streams, one call per step, in this "
                       "process; served / in-process is what gRPC, Triton's scheduler and the "
                       "Python backend's shared-memory hand-off cost. CPU per request: the "
                       "server's over the level's run, split into tritonserver's own (gRPC, the "
                       "sequence batcher) and its Python-backend stub's (the per-request hand-off "
                       "through shared memory, the Python model, the slimedge runtime's step), "
                       "and the client's (gRPC, tritonclient) over its streaming loop (its "
                       "start-up left out), user + system. Bit-equal: every served output equals "
                       "a local Stream's."}
    publish(args, result, RESULTS, BENCH, SECTION, markdown)


if __name__ == "__main__":
    main()
