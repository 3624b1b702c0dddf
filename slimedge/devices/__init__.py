"""Devices without Python: a C export measured on Cortex-M4F, Cortex-M0+ and 64-bit ARM Linux.

    from slimedge import devices
    r = devices.measure("model.int8.c", "cortex-m4", [frames, ...])
    r["flash_bytes"], r["ram_bytes"], r["instructions_per_step"], r["time"], r["check"]

Each device cross-compiles the C export (:mod:`slimedge.exporters.c`), runs it in an emulator on
real frames, checks every step against the host build of the same file (:mod:`.reference`), and
counts what it executes; instruction counts and sizes are exact, times are estimates
(:mod:`.timing` says from what). The modules:

    toolchains  find arm-none-eabi-gcc, aarch64-linux-gnu-gcc, qemu; name the Debian package
    reference   the host build stepped frame by frame (the check)
    cortexm     cortex-m4 (hard float) and cortex-m0plus (no FPU): unicorn, stack painting, ELF sizes
    aarch64     qemu-aarch64 user mode: outputs, and instructions from QEMU's execution log
    timing      cycle tables, clocks, the real-time factor
    tflm        TensorFlow Lite Micro's tensor arena for the same model's .tflite file

Needs the Debian cross tools (:mod:`.toolchains` names each package) and, for Cortex-M, the
``devices`` extra (unicorn, pyelftools). Nothing here imports torch.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..errors import DeviceError as DeviceError  # offered here as before (not in __all__)
from ..errors import ToolchainNotFound as ToolchainNotFound
from ..errors import UsageError
from .toolchains import available, require

DEVICES = ("cortex-m4", "cortex-m0plus", "aarch64")


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r}; valid: {', '.join(DEVICES)}")
    return device


def measure(path: str | os.PathLike, device: str, frames: Sequence[np.ndarray], *,
            opt: str | None = None, frame_ms: float = 10.0,
            workdir: str | os.PathLike | None = None) -> dict:
    """Flash, RAM, instructions per step, estimated time and the host check of the C export
    ``path`` on ``device``, stepping each of ``frames`` (raw (T, m) sequences) from a zero
    state. ``opt``: the optimisation flags (default: each device module's ``DEFAULT_OPT``)."""
    check_device(device)
    if device == "aarch64":
        from . import aarch64

        return aarch64.measure(path, frames, opt=opt or aarch64.DEFAULT_OPT, frame_ms=frame_ms,
                               workdir=workdir)
    from . import cortexm

    return cortexm.measure(path, device, frames, opt=opt or cortexm.DEFAULT_OPT,
                           frame_ms=frame_ms, workdir=workdir)


__all__ = ["measure", "DEVICES", "available", "require"]
