"""Microcontrollers: every variant's C step on Cortex-M4F and Cortex-M0+, sized and counted by emulation.

For every catalogue variant at n = 32, 64 and 128 (random weights shaped like the shipped model:
13 MFCC inputs, one layer, 10-class head, its normalisation; the full-integer export calibrated
on FSDD's training split), the C export in float (``none``) and full integer (``int8``) is
cross-compiled and run in unicorn on FSDD test frames (:mod:`slimedge.devices`): flash (code +
constants), RAM (state + I/O + stack high-water mark + .data/.bss), instructions per step on
Cortex-M4F (float and integer) and Cortex-M0+ (integer), each against LSTM0 of the same size,
and TensorFlow Lite Micro's tensor arena for the same model's ``.tflite`` (float; int8 with
integer I/O). Every step of every run is checked against the host build (integer: equal; float:
within 1e-4). Then the shipped (trained) model on the three devices with ``profile --target``'s
own code, and the shipped model's integer step at -Os/-O2/-O3. The float step's instructions per
multiply-accumulate (the whole step, nonlinearities included, over its matmuls' MACs) and stack
high-water mark are in the per-variant tables; the matrix products' own cost per MAC is the
slope of a fit over the sizes (``mac_slopes``). Prints the tables; ``--update`` writes
``benchmarks/results/mcu.json`` and the ``## Microcontrollers`` section of BENCHMARKS.md
(``--table-only`` rewrites the section from the JSON).

    python benchmarks/mcu.py [--sizes 32,64,128] [--variants LSTM0,LSTM6] [--jobs 2] [--update]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slimedge import baselines, data, devices, formats, variants, zoo  # noqa: E402
from slimedge._report import (  # noqa: E402
    add_output_arguments,
    describe,
    machine,
    publish,
    settle_outputs,
    write_outputs,
)
from slimedge.devices import cortexm, tflm, timing  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "mcu.json"
BENCH = ROOT / "BENCHMARKS.md"
SECTION = "## Microcontrollers"
SIZES = (32, 64, 128)
RUNS = (("cortex-m4", "none"), ("cortex-m4", "int8"), ("cortex-m0plus", "int8"))
SEQUENCES = 1  # test utterances stepped per configuration (every step checked and counted)
OPTS = ("-Os", "-O2", "-O3")

_splits = None


def _data():
    global _splits
    if _splits is None:
        _splits = data.load_as_recorded(formats.info(zoo.default_model_path()).data)
    return _splits


def _like(n: int):
    """The shipped model's sizes, head and normalisation at hidden size ``n`` (a random head)."""
    import numpy as np

    from slimedge import checkpoint

    ship = checkpoint.read(zoo.default_model_path())
    config = {**ship.config, "lstm": {**ship.config["lstm"], "hidden_size": n}}
    tensors = dict(ship.tensors)
    k = tensors["head.weight"].shape[0]
    tensors["head.weight"] = np.random.default_rng(n).uniform(-1, 1, (k, n)) / np.sqrt(n)
    return checkpoint.Checkpoint(config=config, tensors=tensors)


def _brief(r: dict, macs: int | None = None) -> dict:
    out = {"flash_bytes": r["flash_bytes"], "ram_bytes": r["ram_bytes"],
           "instructions_per_step": r["instructions_per_step"],
            "cycles_per_step_estimate": r["cycles_per_step_estimate"], "time": r["time"],
           "check": {k: r["check"][k] for k in ("passed", "exact", "frames", "max_abs_diff")}}
    if macs:  # the whole step (nonlinearities included) per multiply-accumulate of its matmuls
        out["macs_per_step"] = macs
        out["instructions_per_mac"] = r["instructions_per_step"]["mean"] / macs
    return out


def one(job: tuple[str, int, int]) -> dict:
    """Every run of one variant at one size (a worker process)."""
    from slimedge import ir
    from slimedge.exporters import export

    variant, n, sequences = job
    splits = _data()
    frames = [splits.test.sequence(k) for k in range(sequences)]
    out = {"variant": variant, "hidden_size": n, "runs": {}, "tflm": {}}
    with tempfile.TemporaryDirectory(prefix="slimedge-mcu-") as tmp:
        work = Path(tmp)
        ckpt = baselines.random_checkpoint(variant, _like(n), work / f"{variant}-{n}.safetensors")
        macs = ir.lower(ckpt).macs_per_step(None)
        for q in ("none", "int8"):
            c = export(ckpt, work / f"m_{q}.c", format="c", quantize=q, data=splits,
                       validate=False).path
            for device, quant in RUNS:
                if quant == q:
                    r = cortexm.measure(c, device, frames, workdir=work / f"{device}-{q}")
                    out["runs"][f"{device}/{q}"] = _brief(r, macs)
            if tflm.available():
                out["tflm"][q] = tflm.arena(ckpt, q, work, stem="m", data=splits)
    return out


def ratios(rows: list[dict]) -> None:
    for r in rows:
        base = next(b for b in rows if b["variant"] == "LSTM0" and b["hidden_size"] == r["hidden_size"])
        for key, run in r["runs"].items():
            b = base["runs"][key]
            run["vs_lstm0"] = {
                "instructions": run["instructions_per_step"]["mean"] / b["instructions_per_step"]["mean"],
                "flash": run["flash_bytes"]["total"] / b["flash_bytes"]["total"]}
            arena = (r["tflm"].get(key.split("/")[1]) or {}).get("arena_bytes")
            run["ram_vs_tflm_arena"] = run["ram_bytes"]["total"] / arena if arena else None


def shipped(sequences: int) -> dict:
    """The trained model with profile --target's code on every device, and the opt levels."""
    from slimedge.profile import device as on_device

    out = {"devices": {}, "opt_levels": {}}
    for dev in devices.DEVICES:
        rep = on_device.run([None], dev, sequences=sequences)
        out["devices"][dev] = [{"role": r["role"], "variant": r["variant"], "quantize": r["quantize"],
                                "tflm": r["tflm"], "vs_lstm0": r["vs_lstm0"],
                                "ram_vs_tflm_arena": r["ram_vs_tflm_arena"], "flags": r["flags"],
                                **_brief(r)} for r in rep["results"]]
    from slimedge.exporters import export

    splits = _data()
    frames = [splits.test.sequence(k) for k in range(sequences)]
    with tempfile.TemporaryDirectory() as tmp:
        c = export(zoo.default_model_path(), Path(tmp) / "digits.c", format="c", quantize="int8",
                   data=splits, validate=False).path
        for dev in ("cortex-m4", "cortex-m0plus"):
            for opt in OPTS:
                r = cortexm.measure(c, dev, frames, opt=opt)
                out["opt_levels"][f"{dev} {opt}"] = _brief(r)
    return out


def mac_slopes(rows: list[dict]) -> dict[str, dict]:
    """The float step's instructions per multiply-accumulate of its matrix products on the
    Cortex-M4, apart from the rest of the step: per variant, the least-squares fit of
    instructions = a·MACs + b·n + c over its sizes (a: per MAC, b: the element-wise work per
    unit, c: the fixed cost). Only variants whose MACs grow faster than n (an n×n matrix) at
    three or more sizes: for the others MACs and n move together and no fit separates them."""
    import numpy as np

    out = {}
    for v in dict.fromkeys(r["variant"] for r in rows):
        runs = [r["runs"]["cortex-m4/none"] | {"n": r["hidden_size"]} for r in rows
                if r["variant"] == v]
        A = np.array([[x["macs_per_step"], x["n"], 1.0] for x in runs])
        if len(runs) < 3 or np.linalg.matrix_rank(A) < 3:
            continue
        y = np.array([x["instructions_per_step"]["mean"] for x in runs])
        (a, b, c), *_ = np.linalg.lstsq(A, y, rcond=None)
        out[v] = {"per_mac": float(a), "per_unit": float(b), "fixed": float(c),
                  "sizes": [x["n"] for x in runs]}
    return out


def _k(v: float) -> str:
    return f"{v:,.0f}"


def shipped_table(ship: dict) -> list[str]:
    """The shipped model's table (README.md quotes it as it is: tests/test_readme.py checks)."""
    lines = [
        "| device | model | C | flash B | RAM B | stack B | instr/step | ×LSTM0 | est. cycles | "
        "µs/step | RTF at 10 ms | TFLM arena B | RAM/arena |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for dev, rs in ship["devices"].items():
        for r in rs:
            cyc = r["time"]["cycles_per_step"]
            tf = (r["tflm"] or {}).get("arena_bytes")
            ra = r["ram_vs_tflm_arena"]
            lines.append(
                f"| {dev} | {r['variant']}{' (random)' if r['role'] == 'lstm0' else ''} | "
                f"{r['quantize']} | {_k(r['flash_bytes']['total'])} | {_k(r['ram_bytes']['total'])} | "
                f"{_k(r['ram_bytes']['stack']) if 'stack' in r['ram_bytes'] else '–'} | "
                f"{_k(r['instructions_per_step']['mean'])} | "
                f"{(r['vs_lstm0'] or {}).get('instructions', 0):.2f} | {_k(cyc)} | "
                f"{r['time']['us_per_step']:,.1f} | {r['time']['rtf']:.4f} | "
                f"{_k(tf) if tf else '–'} | {f'{ra:.2f}' if ra else '–'} |")
    return lines


def markdown(report: dict) -> str:
    rows, ship = report["variants"], report["shipped"]
    lines = [SECTION, "",
             f"`python benchmarks/mcu.py` ({report['date']}; {describe(report['machine'])}; "
             f"{report['elapsed_s'] / 60:.1f} min). {report['compiler']}, `-O2`; unicorn "
             f"{report['unicorn']}; {report['tflm'] or 'TFLM not installed'}. Instruction counts "
             f"and sizes are exact; cycles and times are estimates: "
             f"{ship['devices']['cortex-m4'][0]['time']['basis']}, zero-wait-state memory, "
             f"Cortex-M4 at {timing.CLOCK_NOTE['cortex-m4']}, Cortex-M0+ at "
             f"{timing.CLOCK_NOTE['cortex-m0plus']}, aarch64 at {timing.CLOCK_NOTE['aarch64']} "
             f"and {timing.AARCH64_CPI:g} cycle per instruction (see slimedge/devices/timing.py). "
             f"Every step of every run equals the host build's (integer) or is within 1e-4 of it "
             f"(float).", "",
             "### The shipped model (trained LSTM6, n = 64) and LSTM0 of its size", "",
             *shipped_table(ship)]
    lines += ["", "aarch64: flash is the export's whole object file (every function, the config "
              "JSON), RAM the state and I/O only (no stack measured), so no RAM/arena ratio. "
              "TFLM arena: float file for `none`, int8 with integer I/O for `int8`; measured by "
              "the host (64-bit) build of TFLite Micro.", "",
              "### Optimisation level, shipped model, full integer", "",
              "| target | flags | flash B | RAM B | instr/step | est. cycles |",
              "|---|---|---:|---:|---:|---:|"]
    for key, r in ship["opt_levels"].items():
        dev, opt = key.split(" ")
        lines.append(f"| {dev} | {opt} | {_k(r['flash_bytes']['total'])} | "
                     f"{_k(r['ram_bytes']['total'])} | {_k(r['instructions_per_step']['mean'])} | "
                     f"{_k(r['cycles_per_step_estimate']['mean'])} |")
    for n in sorted({r["hidden_size"] for r in rows}):
        lines += ["", f"### Every variant at n = {n} (random weights, FSDD frames)", "",
                  "| variant | int8 flash B | int8 RAM B | M4 int8 instr | ×LSTM0 | M0+ int8 instr | "
                  "×LSTM0 | TFLM int8 arena B | int8 RAM/arena | float flash B | float RAM B | "
                  "M4 float instr | ×LSTM0 | M4 float instr/MAC | M4 float stack B | "
                  "TFLM float arena B |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in (r for r in rows if r["hidden_size"] == n):
            i, z, f = (r["runs"][k] for k in ("cortex-m4/int8", "cortex-m0plus/int8", "cortex-m4/none"))
            ti, tf = ((r["tflm"].get(q) or {}).get("arena_bytes") for q in ("int8", "none"))
            ra = i["ram_vs_tflm_arena"]
            lines.append(
                f"| {r['variant']} | {_k(i['flash_bytes']['total'])} | {_k(i['ram_bytes']['total'])} | "
                f"{_k(i['instructions_per_step']['mean'])} | {i['vs_lstm0']['instructions']:.2f} | "
                f"{_k(z['instructions_per_step']['mean'])} | {z['vs_lstm0']['instructions']:.2f} | "
                f"{_k(ti) if ti else '–'} | "
                f"{f'{ra:.2f}' if ra else '–'} | "
                f"{_k(f['flash_bytes']['total'])} | {_k(f['ram_bytes']['total'])} | "
                f"{_k(f['instructions_per_step']['mean'])} | {f['vs_lstm0']['instructions']:.2f} | "
                f"{f['instructions_per_mac']:.2f} | {_k(f['ram_bytes']['stack'])} | "
                f"{_k(tf) if tf else '–'} |")
    crashed = [f"{r['variant']} n={r['hidden_size']} {q}" for r in rows
               for q, t in r["tflm"].items() if t.get("arena_error")]
    if crashed:
        lines += ["", f"TFLM arena –: TensorFlow Lite Micro crashed (a segmentation fault in its "
                      f"allocator) while the smallest arena was searched for: {', '.join(crashed)}."]
    slopes = mac_slopes(rows)
    if slopes:
        lines += ["", "### The float step's matrix products per multiply-accumulate (Cortex-M4)", "",
                  "The tables' *M4 float instr/MAC* divides the whole step (activations from "
                  "libm included) by its MACs. The matrix products alone cost the slope *a* of the "
                  "least-squares fit instructions = a·MACs + b·n + c over the sizes above (b: the "
                  "element-wise work per hidden unit, mostly `expf`/`tanhf`; c: the fixed cost). "
                  "Variants whose MACs grow only linearly with n are left out: for them the fit "
                  "cannot tell MACs from element-wise work. With three sizes the fit is exact; the "
                  "agreement of the slopes across variants whose element-wise work differs is "
                  "its check.", "",
                  "| variant | sizes | instr per MAC (a) | instr per unit (b) | fixed instr (c) |",
                  "|---|---|---:|---:|---:|"]
        for v, f in slopes.items():
            lines.append(f"| {v} | {', '.join(map(str, f['sizes']))} | {f['per_mac']:.2f} | "
                         f"{_k(f['per_unit'])} | {_k(f['fixed'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--variants", default=",".join(variants.VARIANTS))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--sequences", type=int, default=SEQUENCES)
    ap.add_argument("--table-only", action="store_true",
                    help="only the BENCHMARKS.md section, from the JSON (--out, else the tracked one)")
    add_output_arguments(ap, RESULTS)
    args = ap.parse_args(argv)
    settle_outputs(args, RESULTS)
    if args.table_only:
        publish(args, None, RESULTS, BENCH, SECTION, markdown)
        return 0
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    if "LSTM0" not in names:
        names.insert(0, "LSTM0")  # every ratio needs it
    sizes = [int(s) for s in args.sizes.split(",")]
    for dev in ("cortex-m4", "cortex-m0plus"):
        devices.require(dev)
    started = time.time()
    jobs = [(v, n, args.sequences) for n in sizes for v in names]
    rows = []
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for r in pool.map(one, jobs):
            rows.append(r)
            i = r["runs"]["cortex-m4/int8"]
            print(f"{r['variant']:>8} n={r['hidden_size']:<4} M4 int8 "
                  f"{i['instructions_per_step']['mean']:>10,.0f} instr, flash {i['flash_bytes']['total']:,}",
                  flush=True)
    ratios(rows)
    ship = shipped(args.sequences if args.sequences > 1 else 3)
    import unicorn

    from slimedge.devices import toolchains
    from slimedge.formats.tflite import micro

    report = {"date": _dt.date.today().isoformat(), "machine": machine(),
              "elapsed_s": time.time() - started,
              "compiler": toolchains.version("arm-none-eabi-gcc"),
              "unicorn": unicorn.__version__,
              "tflm": f"tflite-micro {micro.version()}" if tflm.available() else None,
              "settings": {"sizes": sizes, "variants": names, "sequences": args.sequences,
                           "opt": cortexm.DEFAULT_OPT},
              "variants": rows, "shipped": ship}
    text = markdown(report)
    print(text)
    write_outputs(args, RESULTS, report, text, BENCH, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
