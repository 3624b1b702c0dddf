"""A C export on 64-bit ARM Linux (phone / Raspberry Pi class): cross-compiled, run in qemu-user.

:func:`measure` builds a static test program (``aarch64-linux-gnu-gcc -O3 -mcpu=cortex-a72``:
the Raspberry Pi 4's core, an ISA every 64-bit phone core runs) from the export and a small
harness (:data:`HARNESS`), runs it under ``qemu-aarch64`` on real frames, and checks every step's
outputs and state against the host build (:mod:`.reference`): equal for a full-integer export,
within ``atol`` for a float one.

Instructions per step are counted exactly by running the program once more on the first few
frames with ``-singlestep -d exec,nochain`` (``-one-insn-per-tb`` on QEMU 8.1 and later): QEMU
then logs every executed instruction with its function's name, and the harness calls an empty
marker function before and after each step, so the instructions of the step function and its
callees between two markers are that step's. Size: the export's object file (``.text``,
``.rodata``, ``.data``; every function of the file, the config JSON included) — an application
processor's memory is not the constraint, so there is no stack measurement here.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from ..formats.c import toolchain
from . import timing, toolchains
from .reference import Export, HostReference, check_against_host, summary
from .toolchains import DeviceError

DEFAULT_OPT = "-O3 -mcpu=cortex-a72"
FLOAT_ATOL = 1e-4
COUNT_STEPS = 4  # steps traced per count (the trace is about 100 bytes per instruction)
MARK = "slimedge_mark"

HARNESS = r"""/* slimedge device harness: steps sequences read from a file, writes every step's outputs */
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include HEADER

__attribute__((noinline)) void slimedge_mark(void) { __asm__ volatile("" ::: "memory"); }

int main(int argc, char **argv)
{
    static X_T x[M];
    static H_T h[S];
    static C_T c[S];
    static Y_T y[K];
    int32_t sequences, frames;
    if (argc != 3) return 2;
    FILE *in = fopen(argv[1], "rb"), *out = fopen(argv[2], "wb");
    if (!in || !out || fread(&sequences, 4, 1, in) != 1) return 3;
    for (int32_t s = 0; s < sequences; s++) {
        if (fread(&frames, 4, 1, in) != 1) return 4;
        memset(h, 0, sizeof h);
        memset(c, 0, sizeof c);
        for (int32_t t = 0; t < frames; t++) {
            if (fread(x, sizeof x, 1, in) != 1) return 5;
            slimedge_mark();
            STEP(x, h, c, y);
            slimedge_mark();
            fwrite(y, sizeof y, 1, out);
            fwrite(h, sizeof h, 1, out);
            fwrite(c, sizeof c, 1, out);
        }
    }
    return fclose(out) != 0;
}
"""
C_TYPES = {"int8": "int8_t", "int16": "int16_t", "int32": "int32_t", "float32": "float"}


def harness_source(export: Export) -> str:
    dx, dh, dc, dy = (C_TYPES[d.name] for d in export.dtypes)
    sx, sh, sc, sy = export.sizes
    defs = (f'#define HEADER "{export.path.with_suffix(".h").name}"\n#define X_T {dx}\n'
            f"#define H_T {dh}\n#define C_T {dc}\n#define Y_T {dy}\n#define M {sx}\n#define S {sh}\n"
            f"#define K {sy}\n#define STEP {export.function}\n")
    return defs + HARNESS


def build(export: Export, workdir: Path, *, opt: str = DEFAULT_OPT) -> tuple[Path, dict, list[str]]:
    """The static test program, the export object's section sizes, and the compile command."""
    gcc = toolchains.find("aarch64-linux-gnu-gcc")
    src = workdir / "harness.c"
    src.write_text(harness_source(export))
    exe = workdir / f"{export.prefix}.aarch64"
    flags = [*shlex.split(opt), "-std=c99", "-Wall"]
    cmd = [gcc, *flags, "-static", f"-I{export.path.parent}", "-o", str(exe), str(src),
           str(export.path), "-lm"]
    toolchains.run(cmd, f"compiling {export.path.name} for aarch64")
    obj = workdir / f"{export.prefix}.o"
    toolchains.run([gcc, *flags, "-c", "-o", str(obj), str(export.path)], "compiling the object")
    return exe, toolchain.object_sizes(obj), cmd


def _write_inputs(path: Path, inputs: Sequence[np.ndarray], dtype) -> None:
    with open(path, "wb") as f:
        f.write(np.int32(len(inputs)).tobytes())
        for seq in inputs:
            f.write(np.int32(seq.shape[0]).tobytes())
            f.write(np.ascontiguousarray(seq, dtype).tobytes())


def _read_outputs(path: Path, export: Export, lengths: list[int]) -> list[dict]:
    dx, dh, dc, dy = export.dtypes
    _, sh, sc, sy = export.sizes
    rec = np.dtype([("y", dy, (sy,)), ("h", dh, (sh,)), ("c", dc, (sc,))])
    data = np.fromfile(path, rec)
    if data.size != sum(lengths):
        raise DeviceError(f"the aarch64 harness wrote {data.size} steps, expected {sum(lengths)}")
    out, at = [], 0
    for T in lengths:
        part = data[at:at + T]
        out.append({k: np.ascontiguousarray(part[k]) for k in ("y", "h", "c")})
        at += T
    return out


@lru_cache(maxsize=None)
def _one_insn_flag() -> str:
    """QEMU 8.1 renamed -singlestep to -one-insn-per-tb."""
    res = subprocess.run([toolchains.find("qemu-aarch64"), "-h"], capture_output=True, text=True)
    return "-one-insn-per-tb" if "one-insn-per-tb" in res.stdout else "-singlestep"


_TRACE = re.compile(r"^Trace \d+: \S+ \[[^\]]*\] ?(\S*)")


def count_instructions(exe: Path, inputs_file: Path, workdir: Path) -> list[int]:
    """Instructions executed by each step (the step function and its callees), from QEMU's
    execution log of the program run on ``inputs_file``."""
    qemu = toolchains.find("qemu-aarch64")
    log = workdir / "exec.log"
    toolchains.run([qemu, _one_insn_flag(), "-d", "exec,nochain", "-D", str(log), str(exe),
                    str(inputs_file), str(workdir / "trace.out")], "tracing the aarch64 step",
                   timeout=600)
    counts, inside, n, prev = [], False, 0, ""
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = _TRACE.match(line)
            if not m:
                continue
            sym = m.group(1)
            if sym == MARK:
                if prev != MARK:  # entering a marker: a step starts or ends here
                    if inside:
                        counts.append(n)
                    inside, n = not inside, 0
            elif inside and sym != "main":
                n += 1
            prev = sym
    log.unlink(missing_ok=True)
    if not counts:
        raise DeviceError(f"no step found in QEMU's execution log of {exe.name} (is "
                          f"{MARK} in its symbol table?)")
    return counts


def measure(path: str | os.PathLike, frames: Sequence[np.ndarray], *, opt: str = DEFAULT_OPT,
            frame_ms: float = 10.0, atol: float = FLOAT_ATOL, count_steps: int = COUNT_STEPS,
            workdir: str | os.PathLike | None = None) -> dict:
    """Size, instructions per step and the check against the host build of the C export
    ``path`` on 64-bit ARM Linux, stepping each of ``frames`` (raw (T, m) sequences)."""
    toolchains.require("aarch64")
    toolchains.require_packages("measuring on aarch64")  # pyelftools reads the object
    export = Export.read(path)
    tmp = tempfile.TemporaryDirectory(prefix="slimedge-aarch64-") if workdir is None else None
    work = Path(tmp.name if tmp else workdir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        exe, sizes, cmd = build(export, work, opt=opt)
        with HostReference(export) as host:
            inputs = [host.inputs(f) for f in frames]
            want = [host.run(i) for i in inputs]
            compiler = host.compiler
        dx = export.dtypes[0]
        _write_inputs(work / "in.bin", inputs, dx)
        toolchains.run([toolchains.find("qemu-aarch64"), str(exe), str(work / "in.bin"),
                        str(work / "out.bin")], f"running {exe.name} under qemu-aarch64")
        got = _read_outputs(work / "out.bin", export, [i.shape[0] for i in inputs])
        first = inputs[0][:count_steps]
        _write_inputs(work / "count.bin", [first], dx)
        counts = np.array(count_instructions(exe, work / "count.bin", work))
    finally:
        if tmp is not None:
            tmp.cleanup()
    check = check_against_host(export, got, want, frames, atol, compiler, "aarch64")
    ins = summary(counts)
    ram = {"state": export.state_bytes, "io": export.io_bytes}
    return {"device": "aarch64", "target": "64-bit ARM Linux (static, qemu-aarch64 user mode)",
            "file": export.path.name, "variant": export.variant, "hidden_size": export.n,
            "quantize": export.quantize, "function": export.function,
            "compiler": toolchains.version("aarch64-linux-gnu-gcc"), "flags": opt,
            "flash_bytes": {**sizes, "what": "the export's object file, every function"},
            "ram_bytes": {**ram, "total": sum(ram.values()), "what": "state and I/O; stack not measured"},
            "instructions_per_step": ins, "cycles_per_step_estimate": None,
            "time": timing.time_figures("aarch64", ins["mean"], None, frame_ms), "check": check,
            "command": " ".join(cmd)}


__all__ = ["measure", "build", "count_instructions", "harness_source", "DEFAULT_OPT"]
