"""A C export on Cortex-M4F and Cortex-M0+: cross-compiled, run in unicorn, sized and counted.

:func:`build` compiles the export with ``arm-none-eabi-gcc`` for the target
(:data:`TARGETS`: Cortex-M4 with its single-precision FPU, hard-float ABI; Cortex-M0+, ARMv6-M,
no FPU) and links it alone, its entry the step function a device calls (``PREFIX_step_q`` for a
full-integer export, ``PREFIX_step`` otherwise), with ``-ffunction-sections -fdata-sections
-Wl,--gc-sections``: the image holds exactly the step, what it calls (newlib's ``tanhf``,
libgcc's 64-bit helpers) and the constants it reads. Flash is that image's ``.text`` (code),
``.rodata`` (weights, tables) and ``.data`` (initial values); the config JSON and labels, which
the step does not read, are not in it.

:class:`Machine` loads the ELF into unicorn (flash at 0x0, RAM at 0x20000000, as on an MPS2
board), paints the stack, and calls the step function per frame with the state in RAM,
counting the instructions it executes (a block hook; blocks are looked up in the ``objdump``
disassembly, which also gives the cycle estimate, :mod:`.timing`). The stack high-water mark is
the deepest painted word overwritten over all calls. RAM is state + the frame and output buffers
+ stack high-water mark + ``.data`` + ``.bss``.

:func:`measure` runs real frames through the device and through the host build
(:mod:`.reference`) and checks them: a full-integer export's outputs and state must be equal to
the host's at every step; a float one's within ``atol``.
"""
from __future__ import annotations

import os
import re
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import UsageError
from . import timing, toolchains
from .reference import Export, HostReference, check_against_host, summary
from .toolchains import DeviceError

DEFAULT_OPT = "-O2"
FLOAT_ATOL = 1e-4  # a float step on the device against the host's: tanhf (newlib vs glibc), FMA
FLASH_BASE, RAM_BASE = 0x00000000, 0x20000000
FLASH_SIZE = RAM_SIZE = 4 << 20
STACK_BYTES = 64 << 10
STOP = FLASH_BASE + FLASH_SIZE - 16  # the return address the step returns to: emulation ends
PAINT = 0xA5


@dataclass(frozen=True)
class Target:
    name: str
    cflags: tuple[str, ...]
    unicorn_cpu: str
    fpu: bool
    summary: str


TARGETS = {
    "cortex-m4": Target("cortex-m4", ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard",
                                      "-mfpu=fpv4-sp-d16"), "UC_CPU_ARM_CORTEX_M4", True,
                        "Cortex-M4F (ARMv7E-M, single-precision FPU, hard-float ABI)"),
    "cortex-m0plus": Target("cortex-m0plus", ("-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"),
                            "UC_CPU_ARM_CORTEX_M0", False,
                            "Cortex-M0+ (ARMv6-M, no FPU; unicorn's Cortex-M0 model, the same ISA)"),
}

LINKER_SCRIPT = f"""/* slimedge: the step function alone, flash at 0x0 and RAM at 0x20000000 */
MEMORY {{
  FLASH (rx)  : ORIGIN = 0x{FLASH_BASE:08x}, LENGTH = {FLASH_SIZE}
  RAM   (rwx) : ORIGIN = 0x{RAM_BASE:08x}, LENGTH = {RAM_SIZE}
}}
SECTIONS {{
  .text : {{ *(.text*) }} > FLASH
  .rodata : {{ *(.rodata*) }} > FLASH
  .ARM.exidx : {{ *(.ARM.exidx*) }} > FLASH
  .data : {{ *(.data*) }} > RAM AT > FLASH
  .bss (NOLOAD) : {{ *(.bss*) *(COMMON) }} > RAM
}}
"""
FLASH_SECTIONS = (".text", ".rodata", ".ARM.exidx", ".data")


def target(device: str) -> Target:
    if device not in TARGETS:
        raise UsageError(f"unknown Cortex-M target {device!r}; valid: {', '.join(TARGETS)}")
    return TARGETS[device]


@dataclass
class Build:
    """A linked step image: the ELF, its sections' sizes and symbols, and its disassembly."""

    elf: Path
    device: str
    function: str
    sections: dict[str, int]
    symbols: dict[str, int]
    insns: list = field(repr=False, default_factory=list)
    command: list[str] = field(default_factory=list)

    @property
    def flash(self) -> dict:
        code = self.sections.get(".text", 0) + self.sections.get(".ARM.exidx", 0)
        const = self.sections.get(".rodata", 0) + self.sections.get(".data", 0)
        return {"code": code, "constants": const, "total": code + const}

    @property
    def static_ram(self) -> int:
        return self.sections.get(".data", 0) + self.sections.get(".bss", 0)


def build(export: Export, device: str, workdir: str | os.PathLike, *, opt: str = DEFAULT_OPT,
          function: str | None = None) -> Build:
    """Cross-compile and link ``export``'s step function (or ``function``, another of its
    functions) for ``device`` into ``workdir``; ``opt``: the optimisation flags (one string,
    e.g. ``"-O3 -funroll-loops"``)."""
    function = function or export.function
    from elftools.elf.elffile import ELFFile

    tgt = target(device)
    if not export.integer and not tgt.fpu:
        raise UsageError(f"{device} has no FPU: measure the full-integer export there "
                         f"(--quantize int8), not {export.path.name} ({export.quantize})")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ld = workdir / "step.ld"
    ld.write_text(LINKER_SCRIPT)
    elf = workdir / f"{function}.{device}{re.sub(r'[^A-Za-z0-9]+', '_', opt)}.elf"
    cmd = [toolchains.find("arm-none-eabi-gcc"), *tgt.cflags, *shlex.split(opt), "-std=c99", "-Wall",
           "-ffunction-sections", "-fdata-sections", "-nostartfiles", "-Wl,--gc-sections",
           f"-Wl,-T,{ld}", f"-Wl,-e,{function}", "--specs=nano.specs",
           "--specs=nosys.specs", "-o", str(elf), str(export.path), "-lm"]
    toolchains.run(cmd, f"compiling {export.path.name} for {device}")
    with open(elf, "rb") as f:
        e = ELFFile(f)
        sections = {s.name: int(s["sh_size"]) for s in e.iter_sections()
                    if s.name in (*FLASH_SECTIONS, ".bss")}
        symbols = {s.name: int(s["st_value"]) & ~1 for s in e.get_section_by_name(".symtab").iter_symbols()
                   if s.name}
    dump = toolchains.run([toolchains.find("arm-none-eabi-objdump"), "-d", "--no-show-raw-insn",
                           str(elf)], "disassembling", text=True).stdout
    return Build(elf, device, function, sections, symbols,
                 timing.disassemble(dump, device), cmd)


class Machine:
    """One Cortex-M core in unicorn with a build loaded; :meth:`call` runs a function to its return."""

    def __init__(self, b: Build) -> None:
        import unicorn
        from elftools.elf.elffile import ELFFile
        from unicorn import arm_const

        self.build, self._a = b, arm_const
        self.uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
        self.uc.ctl_set_cpu_model(getattr(arm_const, TARGETS[b.device].unicorn_cpu))
        self.uc.mem_map(FLASH_BASE, FLASH_SIZE)
        self.uc.mem_map(RAM_BASE, RAM_SIZE)
        end = RAM_BASE
        with open(b.elf, "rb") as f:
            for seg in ELFFile(f).iter_segments():
                if seg["p_type"] == "PT_LOAD" and seg["p_memsz"]:
                    data = seg.data()
                    self.uc.mem_write(seg["p_vaddr"], data)  # .data straight to its RAM address
                    if seg["p_vaddr"] >= RAM_BASE:
                        end = max(end, seg["p_vaddr"] + seg["p_memsz"])
        self._next = (end + 15) & ~15
        self.stack_top = RAM_BASE + RAM_SIZE
        self.stack_low = self.stack_top - STACK_BYTES
        self.uc.mem_write(self.stack_low, bytes([PAINT]) * STACK_BYTES)
        self.costs = timing.BlockCosts(b.insns, b.device)
        self._count = [0, 0, 0, 0]  # instructions, cycles, pending taken penalty, previous end
        self.uc.hook_add(unicorn.UC_HOOK_BLOCK, self._on_block)

    def _on_block(self, uc, address: int, size: int, _) -> None:
        n, cycles, penalty = self.costs.block(address, size)
        c = self._count
        if c[2] and address != c[3]:
            c[1] += c[2]
        c[0] += n
        c[1] += cycles
        c[2], c[3] = penalty, address + size

    def alloc(self, nbytes: int) -> int:
        """RAM for a buffer (8-byte aligned), below the stack."""
        addr = self._next
        self._next = (addr + nbytes + 7) & ~7
        if self._next > self.stack_low:
            raise DeviceError("the buffers do not fit the emulated RAM below the stack")
        return addr

    def write(self, addr: int, a: np.ndarray) -> None:
        self.uc.mem_write(addr, np.ascontiguousarray(a).tobytes())

    def read(self, addr: int, dtype, count: int) -> np.ndarray:
        dtype = np.dtype(dtype)
        return np.frombuffer(bytes(self.uc.mem_read(addr, dtype.itemsize * count)), dtype).copy()

    def call(self, function: str, *args: int) -> tuple[int, int]:
        """Run ``function(args...)`` (up to four pointer/int arguments) to its return; returns
        (instructions executed, estimated cycles)."""
        import unicorn

        a = self._a
        for reg, v in zip((a.UC_ARM_REG_R0, a.UC_ARM_REG_R1, a.UC_ARM_REG_R2, a.UC_ARM_REG_R3), args):
            self.uc.reg_write(reg, v)
        self.uc.reg_write(a.UC_ARM_REG_SP, self.stack_top)
        self.uc.reg_write(a.UC_ARM_REG_LR, STOP | 1)
        self._count[:] = [0, 0, 0, 0]
        try:
            self.uc.emu_start(self.build.symbols[function] | 1, STOP, timeout=60_000_000)
        except unicorn.UcError as e:
            pc = self.uc.reg_read(a.UC_ARM_REG_PC)
            raise DeviceError(f"{self.build.elf.name}: the emulated {self.build.device} stopped in "
                              f"{function} at pc=0x{pc:08x}: {e}") from None
        if self.uc.reg_read(a.UC_ARM_REG_PC) != STOP:
            raise DeviceError(f"{self.build.elf.name}: {function} did not return within the "
                              f"emulation time limit")
        c = self._count
        return c[0], c[1] + c[2]  # the final return is a taken branch

    def stack_high_water(self) -> int:
        """Bytes of stack used at the deepest point of every call so far (painted words that
        were overwritten, from the bottom of the stack region up)."""
        mem = bytes(self.uc.mem_read(self.stack_low, STACK_BYTES))
        untouched = len(mem) - len(mem.lstrip(bytes([PAINT])))
        if untouched == 0:
            raise DeviceError(f"the step used all {STACK_BYTES} bytes of the emulated stack")
        return STACK_BYTES - (untouched & ~3)


def run_sequences(b: Build, export: Export, inputs: Sequence[np.ndarray]) -> tuple[list[dict], dict]:
    """Step each input sequence (from :meth:`HostReference.inputs`) from a zero state on the
    device; returns per sequence the outputs like :meth:`HostReference.run`, and the counts."""
    mach = Machine(b)
    dx, dh, dc, dy = export.dtypes
    sx, sh, sc, sy = export.sizes
    ax, ah, ac, ay = (mach.alloc(d.itemsize * s) for d, s in zip(export.dtypes, export.sizes))
    outs, instructions, cycles = [], [], []
    for seq in inputs:
        mach.write(ah, np.zeros(sh, dh))
        mach.write(ac, np.zeros(sc, dc))
        T = seq.shape[0]
        out = {"y": np.empty((T, sy), dy), "h": np.empty((T, sh), dh), "c": np.empty((T, sc), dc)}
        for t in range(T):
            mach.write(ax, np.asarray(seq[t], dx))
            n, cyc = mach.call(export.function, ax, ah, ac, ay)
            instructions.append(n)
            cycles.append(cyc)
            out["y"][t] = mach.read(ay, dy, sy)
            out["h"][t] = mach.read(ah, dh, sh)
            out["c"][t] = mach.read(ac, dc, sc)
        outs.append(out)
    counts = {"instructions": np.array(instructions), "cycles": np.array(cycles),
              "stack_bytes": mach.stack_high_water()}
    return outs, counts


def measure(path: str | os.PathLike, device: str, frames: Sequence[np.ndarray], *,
            opt: str = DEFAULT_OPT, frame_ms: float = 10.0, atol: float = FLOAT_ATOL,
            workdir: str | os.PathLike | None = None) -> dict:
    """Flash, RAM, instructions per step and the check against the host build of the C export
    ``path`` on ``device``, stepping each of ``frames`` (raw (T, m) sequences) from a zero state.
    Raises DeviceError when the outputs differ from the host's."""
    toolchains.require(device)
    export = Export.read(path)
    own = workdir is None
    tmp = tempfile.TemporaryDirectory(prefix="slimedge-cortexm-") if own else None
    try:
        b = build(export, device, tmp.name if own else workdir, opt=opt)
        with HostReference(export) as host:
            inputs = [host.inputs(f) for f in frames]
            want = [host.run(i) for i in inputs]
            compiler = host.compiler
        got, counts = run_sequences(b, export, inputs)
    finally:
        if tmp is not None:
            tmp.cleanup()
    check = check_against_host(export, got, want, frames, atol, compiler, device)
    ins = summary(counts["instructions"])
    cyc = summary(counts["cycles"])
    ram = {"state": export.state_bytes, "io": export.io_bytes, "stack": counts["stack_bytes"],
           "data_bss": b.static_ram}
    ram["total"] = sum(ram.values())
    return {"device": device, "target": TARGETS[device].summary, "file": export.path.name,
            "variant": export.variant, "hidden_size": export.n, "quantize": export.quantize,
            "function": export.function, "compiler": toolchains.version("arm-none-eabi-gcc"),
            "flags": " ".join([*TARGETS[device].cflags, opt]), "flash_bytes": b.flash,
            "ram_bytes": ram, "instructions_per_step": ins, "cycles_per_step_estimate": cyc,
            "time": timing.time_figures(device, ins["mean"], cyc["mean"], frame_ms),
            "check": check}


__all__ = ["build", "Machine", "measure", "run_sequences", "TARGETS", "DEFAULT_OPT", "Build",
           "Target", "FLOAT_ATOL"]
