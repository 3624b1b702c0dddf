"""Instructions into time: each core's per-instruction cycle table, the clocks assumed, the RTF.

Instruction counts under emulation are exact; cycles are not (an emulator has no pipeline). They
are estimated from the executed instruction mix with the cycle tables of the cores' Technical
Reference Manuals, on zero-wait-state memory (flash at or below the clock where it needs no wait
states, or behind a prefetch buffer/cache that hides them; caches and wait states are the
board's, not the code's):

* **Cortex-M4** (ARM DDI 0439, "Processor instruction timings"): data processing, MUL/MLA,
  the 32x32->64 multiplies (SMULL/UMULL/SMLAL/UMLAL) and DSP multiplies 1 cycle; a single load or
  store 2 (1 when it directly follows another single load or store, which pipeline); LDM/STM,
  PUSH/POP and VLDM/VSTM/VPUSH/VPOP 1 + registers; a taken branch 1 + 2 (pipeline refill, the
  TRM's P is 1 to 3); SDIV/UDIV 2 to 12, taken as 7; FPU: VMLA/VMLS/VFMA/VFMS 3, VDIV/VSQRT 14,
  VLDR/VSTR 2, the rest 1.
* **Cortex-M0+** (ARM DDI 0484): data processing and MULS 1 cycle (the single-cycle
  multiplier most parts implement; the small iterative one takes 32); a load or store 2;
  LDM/STM/PUSH 1 + registers, POP with PC 3 + registers; a taken branch 2, BL 3, BX/BLX 2.
* **aarch64** (Cortex-A class): no cycle table; one cycle per instruction is assumed (a
  Cortex-A53 sustains about 1 instruction a cycle on dependent integer code, an out-of-order
  A72/A76 more), so the time there is an estimate to within a factor of about 2.

Clocks (:data:`CLOCK_HZ`): Cortex-M4 at 80 MHz (STM32L4, nRF52 at 64 MHz, many M4 parts at 64 to
120 MHz), Cortex-M0+ at 48 MHz (SAMD21, RP2040 runs at 133), aarch64 at 1.5 GHz (Raspberry Pi 4's
Cortex-A72; phone little cores run 1.8 to 2 GHz).
"""
from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass

CLOCK_HZ = {"cortex-m4": 80e6, "cortex-m0plus": 48e6, "aarch64": 1.5e9}
CLOCK_NOTE = {
    "cortex-m4": "80 MHz (STM32L4-class)",
    "cortex-m0plus": "48 MHz (SAMD21-class)",
    "aarch64": "1.5 GHz (Raspberry Pi 4, Cortex-A72)",
}
AARCH64_CPI = 1.0
BRANCHES = ("b", "bl", "bx", "blx", "cbz", "cbnz", "tbb", "tbh")
_COND = ("eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt",
         "gt", "le", "al")
_LINE = re.compile(r"^\s*([0-9a-f]+):\s+([a-z][a-z0-9.]*)\s*(.*)$")


@dataclass(frozen=True)
class Insn:
    """One instruction of a disassembly: address, mnemonic (size suffix and condition removed),
    its static cycles, and what it is for the dynamic rules."""

    address: int
    mnemonic: str
    operands: str
    cycles: int
    branch: bool        # may change the PC
    single_ls: bool     # a single load or store (M4 pipelining)
    taken_penalty: int  # cycles added when it branches


def _base(mnemonic: str) -> str:
    m = mnemonic.split(".")[0]
    return m


def _strip_cond(m: str) -> str:
    for c in _COND:
        if len(m) > len(c) and m.endswith(c) and _strip_cond_ok(m[:-len(c)]):
            return m[:-len(c)]
    return m


def _strip_cond_ok(stem: str) -> bool:
    """Only the instructions whose cost the tables tell apart matter (inside an IT block, or a
    conditional branch): a branch, a load/store, a load/store multiple."""
    return (stem in BRANCHES or stem in ("pop", "push", "ldm", "stm", "ldmia", "stmia")
            or re.fullmatch(r"(ldr|str)(b|h|sb|sh|d)?", stem) is not None)


def _registers(operands: str) -> int:
    m = re.search(r"\{([^}]*)\}", operands)
    if not m:
        return 1
    count = 0
    for part in m.group(1).split(","):
        part = part.strip()
        r = re.match(r"([a-z]+)(\d+)-[a-z]+(\d+)", part)
        count += int(r.group(3)) - int(r.group(2)) + 1 if r else 1
    return count


def _m4(m: str, ops: str) -> tuple[int, bool, int]:
    """(cycles, single load/store, taken-branch penalty) of one Cortex-M4 instruction."""
    pc_loaded = "pc" in ops.split("}")[0] if "{" in ops else ops.startswith("pc")
    if m in ("ldm", "ldmia", "ldmdb", "stm", "stmia", "stmdb", "push", "pop"):
        return 1 + _registers(ops), False, 2 if (m in ("pop", "ldm", "ldmia") and pc_loaded) else 0
    if m in ("vldm", "vldmia", "vldmdb", "vstm", "vstmia", "vstmdb", "vpush", "vpop"):
        return 1 + _registers(ops), False, 0
    if m in ("ldrd", "strd"):
        return 3, False, 0
    if re.fullmatch(r"(ldr|str)(b|h|sb|sh|t|bt|ht|sbt|sht|ex|exb|exh)?", m):
        return 2, True, 2 if (m == "ldr" and pc_loaded) else 0
    if m in ("vldr", "vstr"):
        return 2, False, 0
    if m in ("sdiv", "udiv"):
        return 7, False, 0
    if m in ("vdiv", "vsqrt"):
        return 14, False, 0
    if m in ("vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma", "vfnms"):
        return 3, False, 0
    if m in ("tbb", "tbh"):
        return 2, False, 2
    if m in BRANCHES:
        return 1, False, 2
    return 1, False, 0


def _m0plus(m: str, ops: str) -> tuple[int, bool, int]:
    """(cycles, -, taken-branch penalty) of one Cortex-M0+ instruction."""
    if m in ("ldm", "ldmia", "stm", "stmia", "push"):
        return 1 + _registers(ops), False, 0
    if m == "pop":
        pc = "pc" in ops
        return 1 + _registers(ops) + (2 if pc else 0), False, 0
    if re.fullmatch(r"(ldr|str)(b|h|sb|sh)?", m):
        return 2, False, 0
    if m == "bl":
        return 3, False, 0
    if m in ("bx", "blx"):
        return 2, False, 0
    if m == "b":
        return 1, False, 1
    return 1, False, 0


CYCLE_TABLES = {"cortex-m4": _m4, "cortex-m0plus": _m0plus}


def disassemble(text: str, core: str) -> list[Insn]:
    """The instructions of ``objdump -d`` output, by address, with ``core``'s static cycles
    (data words in literal pools, ``.word``/``.short``, are left out)."""
    table = CYCLE_TABLES[core]
    out = []
    for line in text.splitlines():
        mt = _LINE.match(line)
        if not mt:
            continue
        addr, mnem, ops = int(mt.group(1), 16), mt.group(2), mt.group(3).split(";")[0].split("@")[0]
        if mnem.startswith("."):
            continue
        base = _strip_cond(_base(mnem))
        cycles, single, penalty = table(base, ops.strip())
        branch = base in BRANCHES or penalty > 0
        out.append(Insn(addr, base, ops.strip(), cycles, branch, single, penalty))
    out.sort(key=lambda i: i.address)
    return out


class BlockCosts:
    """Instruction and cycle counts of executed blocks (address, size), looked up in a disassembly."""

    def __init__(self, insns: list[Insn], core: str) -> None:
        self.insns, self.core = insns, core
        self.addresses = [i.address for i in insns]
        self._cache: dict[tuple[int, int], tuple[int, int, int]] = {}

    def block(self, address: int, size: int) -> tuple[int, int, int]:
        """(instructions, static cycles, the taken penalty of its last instruction when it is a
        branch, else 0) of the block [address, address + size)."""
        key = (address, size)
        got = self._cache.get(key)
        if got is None:
            lo = bisect_left(self.addresses, address)
            hi = bisect_left(self.addresses, address + size)
            part = self.insns[lo:hi]
            cycles = 0
            prev_ls = False
            for insn in part:
                c = insn.cycles
                if self.core == "cortex-m4" and insn.single_ls and prev_ls:
                    c = 1  # neighbouring single loads/stores pipeline
                cycles += c
                prev_ls = insn.single_ls
            penalty = part[-1].taken_penalty if part and part[-1].branch else 0
            got = (len(part), cycles, penalty)
            self._cache[key] = got
        return got


def time_figures(device: str, instructions: float, cycles: float | None,
                 frame_ms: float) -> dict:
    """Seconds per step at the assumed clock, and the real-time factor at ``frame_ms`` frames
    (step time / frame period: below 1 keeps up, and 1 - RTF of the core is left for the rest)."""
    clock = CLOCK_HZ[device]
    if cycles is None:
        cycles = instructions * AARCH64_CPI
        basis = f"{AARCH64_CPI:g} cycle per instruction assumed"
    else:
        basis = "cycles from the executed instruction mix and the core's TRM cycle table"
    seconds = cycles / clock
    return {"cycles_per_step": cycles, "cpi": cycles / instructions if instructions else None,
            "clock_hz": clock, "clock": CLOCK_NOTE[device], "basis": basis,
            "us_per_step": seconds * 1e6, "rtf": seconds / (frame_ms * 1e-3),
            "frame_ms": frame_ms}


__all__ = ["disassemble", "BlockCosts", "time_figures", "CLOCK_HZ", "CLOCK_NOTE", "Insn",
           "AARCH64_CPI"]
