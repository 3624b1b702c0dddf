"""A Triton client for a slimedge model: many interleaved sequences over one gRPC stream.

Runs where ``tritonclient[grpc]`` is installed (the Triton environment, ``make triton-env``):
numpy and tritonclient only, no slimedge import. ``k`` sequences advance in lockstep, as k
microphones each sending a frame per tick: at step t every sequence's request is sent (START on
its first, END on its last, and START again at each step of ``restart_at``) before any reply is
awaited; the step ends when all k replies are in. Each request's latency is its send-to-reply
time.

    python -m slimedge.triton_server.client --url 127.0.0.1:8001 --model fsdd_default_python \\
        --frames frames.npy --out outputs.npz [--restart-at 20] [--first-id 1]

``frames.npy`` is (k, T, m) float32; ``outputs.npz`` holds ``y`` (k, T, K), ``latency_s``
(T, k), ``wall_s`` and ``cpu_s`` (the client's wall and CPU time over the run, its threads
included) and ``errors`` (the text of any error replies).
"""
from __future__ import annotations

import argparse
import queue
import time

import numpy as np


def stream(url: str, model: str, frames: np.ndarray, *, restart_at=(), first_id: int = 1,
           timeout_s: float = 30.0) -> dict:
    """Send ``frames`` (k, T, m) as k sequences with ids first_id.. first_id+k-1 (see module)."""
    import tritonclient.grpc as grpcclient

    frames = np.ascontiguousarray(frames, np.float32)
    k, T, m = frames.shape
    replies: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(url=url)
    client.start_stream(callback=lambda result, error: replies.put((time.perf_counter(),
                                                                    result, error)))
    ys: list = [[None] * k for _ in range(T)]
    latency = np.zeros((T, k))
    errors: list[str] = []
    restart = set(int(r) for r in restart_at)
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        for t in range(T):
            sent = {}
            for j in range(k):
                x = grpcclient.InferInput("x", [1, m], "FP32")
                x.set_data_from_numpy(frames[j, t][None])
                rid = f"{j}:{t}"
                sent[rid] = time.perf_counter()
                client.async_stream_infer(model, [x], request_id=rid, sequence_id=first_id + j,
                                          sequence_start=t == 0 or t in restart,
                                          sequence_end=t == T - 1,
                                          outputs=[grpcclient.InferRequestedOutput("y")])
            for _ in range(k):
                when, result, error = replies.get(timeout=timeout_s)
                if error is not None:
                    errors.append(str(error))
                    continue
                rid = result.get_response().id
                j = int(rid.split(":")[0])
                ys[t][j] = result.as_numpy("y")[0]
                latency[t, j] = when - sent[rid]
    finally:
        client.stop_stream()
        client.close()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if errors:
        return {"errors": np.array(errors), "wall_s": wall, "cpu_s": cpu}
    y = np.stack([np.stack(row) for row in ys]).swapaxes(0, 1)
    return {"y": y, "latency_s": latency, "wall_s": wall, "cpu_s": cpu,
            "errors": np.array([], str)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="the server's gRPC address, host:port")
    ap.add_argument("--model", required=True)
    ap.add_argument("--frames", required=True, help="a .npy of (k, T, m) float32 frames")
    ap.add_argument("--out", required=True, help="the .npz to write")
    ap.add_argument("--restart-at", default="", help="steps (comma-separated) sent with START")
    ap.add_argument("--first-id", type=int, default=1)
    args = ap.parse_args(argv)
    restart = [int(s) for s in args.restart_at.split(",") if s]
    result = stream(args.url, args.model, np.load(args.frames), restart_at=restart,
                    first_id=args.first_id)
    np.savez(args.out, **result)


if __name__ == "__main__":
    main()
