"""Soak: 10^6 streaming steps per backend on the shipped model, one process per backend, with the
process's RSS at the start and end of the steps and whether every output stayed finite.

    .venv/bin/python benchmarks/soak.py [--steps 1000000] [--backends onnxruntime,litert,c]

Prints one line per backend (``--update``: also benchmarks/results/soak.json). The frames are the model's
own test split, cycled (a stream reset at each sequence's start), so the state stays in range.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "soak.json"

WORKER = r"""
import json, sys, time, resource
import numpy as np
from slimedge import runtime, data
path, backend, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20

m = runtime.load(path, backend, 1)
test = data.load_as_recorded(m.info.data)["test"]
seqs = [np.asarray(test.sequence(i), np.float32) for i in range(min(len(test), 50))]
s = m.stream()
s.step(seqs[0][0]); s.reset()
rss0, t0 = rss_mb(), time.perf_counter()
finite, done, k, peak = True, 0, 0, 0.0
while done < steps:
    seq = seqs[k % len(seqs)]; k += 1
    s.reset()
    for frame in seq[:steps - done]:
        y = s.step(frame)
        finite &= bool(np.isfinite(y).all())
    done += min(len(seq), steps - done)
    if k % 500 == 0:
        peak = max(peak, rss_mb())
seconds = time.perf_counter() - t0
rss1 = rss_mb()
print(json.dumps({"backend": backend, "file": path.rsplit("/", 1)[-1], "steps": done,
                  "seconds": seconds, "us_per_step": 1e6 * seconds / done,
                  "rss_start_mb": round(rss0, 1), "rss_end_mb": round(rss1, 1),
                  "rss_peak_mb": round(max(peak, rss1), 1), "finite": finite}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--backends", default="onnxruntime,litert,c,numpy")
    from slimedge._report import add_output_arguments, nothing_written, settle_outputs

    add_output_arguments(ap, RESULTS, markdown=False)
    args = ap.parse_args()
    settle_outputs(args, RESULTS)
    from slimedge import exporters, runtime
    from slimedge.zoo import default_model_path

    src = default_model_path()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        files = {"onnxruntime": ("onnx", "none"), "litert": ("tflite", "none"),
                 "litert-int8": ("tflite", "int8"), "c": ("c", "none"), "numpy": (None, None)}
        for name in args.backends.split(","):
            fmt, q = files[name]
            backend = name.split("-")[0]
            if not runtime.backend_module(backend).available():
                print(f"{name}: not installed, skipped")
                continue
            path = src if fmt is None else exporters.export(
                src, Path(d) / f"m{'.' + q if q != 'none' else ''}.{fmt}", format=fmt,
                quantize=q).path
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, "-c", WORKER, str(path), backend, str(args.steps)],
                               capture_output=True, text=True)
            if p.returncode:
                print(f"{name}: failed\n{p.stderr[-2000:]}")
                continue
            row = json.loads(p.stdout.strip().splitlines()[-1])
            row["name"], row["wall_s"] = name, time.perf_counter() - t0
            rows.append(row)
            print(f"{name:12s} {row['steps']:,} steps, {row['us_per_step']:.1f} µs/step, RSS "
                  f"{row['rss_start_mb']} -> {row['rss_end_mb']} MB (peak {row['rss_peak_mb']}), "
                  f"finite {row['finite']}", flush=True)
    from slimedge._report import machine

    if args.out is None:
        print(nothing_written(RESULTS))
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine(), "steps": args.steps, "results": rows},
                                   indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
