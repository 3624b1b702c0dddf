"""The cross-compilers, emulators and Python packages device measurements need, found or named.

Each tool is looked up on ``PATH``; a missing one raises :class:`ToolchainNotFound` (a
:class:`~slimedge.errors.SlimedgeError`) naming the Debian package that installs it, and a
missing Python package raises :class:`~slimedge.errors.MissingDependency` naming the
``devices`` extra. Nothing here compiles or runs anything but ``--version``.

    tool                    Debian package                 used for
    arm-none-eabi-gcc       gcc-arm-none-eabi (+ libnewlib-arm-none-eabi: libm, libc)
                                                           Cortex-M4 and Cortex-M0+ builds
    arm-none-eabi-objdump   binutils-arm-none-eabi (comes with gcc-arm-none-eabi)
                                                           the executed instruction mix
    aarch64-linux-gnu-gcc   gcc-aarch64-linux-gnu          64-bit ARM Linux builds
    qemu-aarch64            qemu-user                      runs them, counts their instructions
    qemu-system-arm         qemu-system-arm                runs the examples/mcu firmware
    unicorn, pyelftools     PyPI (slimedge[devices])       runs a Cortex-M step, reads the ELF
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

from .. import extras
from ..errors import DeviceError, MissingDependency, ToolchainNotFound

APT = "apt-get install -y"
TOOLS = {
    "arm-none-eabi-gcc": ("gcc-arm-none-eabi libnewlib-arm-none-eabi",
                          "cross-compiling for Cortex-M"),
    "arm-none-eabi-objdump": ("binutils-arm-none-eabi", "reading a Cortex-M build's instructions"),
    "arm-none-eabi-size": ("binutils-arm-none-eabi", "sizing a Cortex-M firmware"),
    "aarch64-linux-gnu-gcc": ("gcc-aarch64-linux-gnu", "cross-compiling for 64-bit ARM Linux"),
    "qemu-aarch64": ("qemu-user", "running 64-bit ARM Linux programs"),
    "qemu-system-arm": ("qemu-system-arm", "running a Cortex-M firmware (mps2-an386)"),
}
PACKAGES = {"unicorn": "unicorn", "elftools": "pyelftools"}
NEWLIB_HEADER = Path("/usr/lib/arm-none-eabi/include/math.h")


def find(tool: str) -> str:
    """The full path of ``tool`` (a key of :data:`TOOLS`), or ToolchainNotFound naming its package."""
    path = shutil.which(tool)
    if path is None:
        package, what = TOOLS[tool]
        raise ToolchainNotFound(f"{tool} is not installed ({what} needs it): install it with "
                                f"'{APT} {package}' (Debian/Ubuntu), or put it on PATH")
    return path


def require_packages(what: str) -> None:
    """unicorn and pyelftools, or MissingDependency naming the ``devices`` extra."""
    gone = [dist for module, dist in PACKAGES.items() if not extras.installed(module)]
    if gone:
        raise MissingDependency(f"{what} needs {', '.join(gone)}, not installed here: "
                                f"{extras.hint('devices')}")


def require(device: str) -> None:
    """Everything measuring on ``device`` needs, checked before any work."""
    if device == "aarch64":
        for tool in ("aarch64-linux-gnu-gcc", "qemu-aarch64"):
            find(tool)
        return
    find("arm-none-eabi-gcc")
    find("arm-none-eabi-objdump")
    if not NEWLIB_HEADER.is_file() and not _newlib_found():
        raise ToolchainNotFound(f"arm-none-eabi-gcc has no C library (newlib's math.h is "
                                f"missing): install it with '{APT} libnewlib-arm-none-eabi'")
    require_packages(f"measuring on {device}")


@functools.lru_cache(maxsize=None)
def _newlib_found() -> bool:
    gcc = find("arm-none-eabi-gcc")
    res = subprocess.run([gcc, "-print-file-name=libm.a"], capture_output=True, text=True)
    return os.path.isabs(res.stdout.strip())


@functools.lru_cache(maxsize=None)
def version(tool: str) -> str:
    """The first line of ``tool --version`` (recorded with every measurement)."""
    res = subprocess.run([find(tool), "--version"], capture_output=True, text=True, timeout=60)
    return (res.stdout or res.stderr).strip().splitlines()[0] if (res.stdout or res.stderr) else tool


def available(device: str) -> bool:
    """Does this machine have everything ``device`` needs?"""
    try:
        require(device)
        return True
    except (ToolchainNotFound, MissingDependency):
        return False


def run(cmd: list[str], what: str, *, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """Run a tool; a non-zero exit is a DeviceError holding its output."""
    res = subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)
    if res.returncode != 0:
        out = res.stderr or res.stdout
        text = out.decode("utf-8", "replace") if isinstance(out, bytes) else out
        raise DeviceError(f"{what} failed ({' '.join(map(str, cmd))})", text.strip()[-4000:])
    return res


__all__ = ["find", "require", "require_packages", "available", "version", "run", "TOOLS",
           "ToolchainNotFound", "DeviceError"]
