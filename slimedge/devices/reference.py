"""The host build of a C export, stepped frame by frame: what every device run is checked against.

The export's ``.c`` is compiled with the host compiler at ``-O2`` (no ``-ffast-math``: the host
reference rounds as C says, as the cross builds do) into a private shared library, and stepped
through the same function a device runs: ``PREFIX_step_q`` (int8 x and h, int16 c, int32 y) for
a full-integer export, ``PREFIX_step`` (float32) otherwise. :class:`Export` also reads what a
device build needs from the file's config: the prefix, the sizes, which function and types.
"""
from __future__ import annotations

import ctypes
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..formats.c import reader as c_reader
from ..formats.c import toolchain
from .toolchains import DeviceError

HOST_FLAGS = ["-O2"]


@dataclass(frozen=True)
class Export:
    """A C export as a device sees it: its file, prefix, sizes and step function's types."""

    path: Path
    prefix: str
    quantize: str            # none, dynamic, int8
    m: int
    n: int
    layers: int
    k: int
    config: dict

    @classmethod
    def read(cls, path: str | os.PathLike) -> "Export":
        path = c_reader.resolve(path)
        config = c_reader.read_config(path)
        g = config["graph"]
        return cls(path, config["export"]["prefix"], config["export"].get("quantize", "none"),
                   int(g["input_size"]), int(g["hidden_size"]), int(g["num_layers"]),
                   int(g["output_size"]), config)

    @property
    def integer(self) -> bool:
        """Full integer (``--quantize int8``): the device steps ``PREFIX_step_q``."""
        return self.quantize == "int8"

    @property
    def function(self) -> str:
        return f"{self.prefix}_step_q" if self.integer else f"{self.prefix}_step"

    @property
    def dtypes(self) -> tuple[np.dtype, np.dtype, np.dtype, np.dtype]:
        """The element types of x, h, c and y."""
        if self.integer:
            return np.dtype(np.int8), np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32)
        f = np.dtype(np.float32)
        return f, f, f, f

    @property
    def sizes(self) -> tuple[int, int, int, int]:
        """Element counts of x, h, c and y for one stream."""
        s = self.layers * self.n
        return self.m, s, s, self.k

    @property
    def state_bytes(self) -> int:
        _, dh, dc, _ = self.dtypes
        return self.layers * self.n * (dh.itemsize + dc.itemsize)

    @property
    def io_bytes(self) -> int:
        dx, _, _, dy = self.dtypes
        return self.m * dx.itemsize + self.k * dy.itemsize

    @property
    def variant(self) -> str:
        return self.config["lstm"]["variant"]["name"]


class HostReference:
    """The export compiled for this machine; :meth:`inputs` and :meth:`run` as a device's."""

    def __init__(self, export: Export) -> None:
        self.export = export
        self._tmp = tempfile.TemporaryDirectory(prefix="slimedge-host-")
        lib = Path(self._tmp.name) / f"{export.prefix}{toolchain.library_suffix()}"
        toolchain.compile_library(export.path, lib, flags=list(HOST_FLAGS))
        self.lib = ctypes.CDLL(os.fspath(lib))
        self.compiler = toolchain.compiler_identity(toolchain.find_compiler())

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> "HostReference":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def inputs(self, frames: np.ndarray) -> np.ndarray:
        """What the step function takes for raw frames (T, m): the frames as float32, or for a
        full-integer export their int8 codes from ``PREFIX_quantize_input`` (normalisation in
        float, then int8: the one float part of such an export, done here on the host)."""
        frames = np.ascontiguousarray(frames, dtype=np.float32)
        if frames.ndim != 2 or frames.shape[1] != self.export.m:
            raise UsageError(f"frames of shape {frames.shape}; {self.export.path.name} takes "
                             f"(T, {self.export.m})")
        if not self.export.integer:
            return frames
        out = np.empty(frames.shape, np.int8)
        fn = getattr(self.lib, f"{self.export.prefix}_quantize_input")
        fn.restype, fn.argtypes = None, [ctypes.c_void_p] * 2
        for t in range(frames.shape[0]):
            fn(frames[t].ctypes.data, out[t].ctypes.data)
        return out

    def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Step a zero state through ``inputs`` (from :meth:`inputs`): y, h and c after every step
        ((T, k), (T, layers·n), (T, layers·n)) in the step function's own types."""
        e = self.export
        dx, dh, dc, dy = e.dtypes
        _, sh, sc, sy = e.sizes
        fn = getattr(self.lib, e.function)
        fn.restype, fn.argtypes = None, [ctypes.c_void_p] * 4
        h, c, y = np.zeros(sh, dh), np.zeros(sc, dc), np.zeros(sy, dy)
        T = inputs.shape[0]
        out = {"y": np.empty((T, sy), dy), "h": np.empty((T, sh), dh), "c": np.empty((T, sc), dc)}
        for t in range(T):
            x = np.ascontiguousarray(inputs[t], dx)
            fn(x.ctypes.data, h.ctypes.data, c.ctypes.data, y.ctypes.data)
            out["y"][t], out["h"][t], out["c"][t] = y, h, c
        return out


def compare(export: Export, got: dict[str, np.ndarray], want: dict[str, np.ndarray],
            atol: float) -> dict:
    """How a device's outputs differ from the host's: exactly equal for a full-integer export;
    the largest absolute difference (and whether it is within ``atol``) for a float one. Also
    whether the predicted class at the last frame agrees."""
    if export.integer:
        diff = {k: int(np.abs(got[k].astype(np.int64) - want[k].astype(np.int64)).max())
                for k in want}
        ok = all(v == 0 for v in diff.values())
    else:
        diff = {k: float(np.abs(got[k].astype(np.float64) - want[k].astype(np.float64)).max())
                for k in want}
        ok = all(v <= atol for v in diff.values())
    return {"exact": export.integer, "max_abs_diff": diff, "atol": None if export.integer else atol,
            "passed": bool(ok),
            "argmax_agrees": bool(np.argmax(got["y"][-1]) == np.argmax(want["y"][-1]))}


__all__ = ["Export", "HostReference", "compare", "HOST_FLAGS"]


def check_against_host(export: Export, got: list[dict], want: list[dict], frames, atol: float,
                       compiler: str, where: str) -> dict:
    """The device's outputs of each sequence against the host build's, summed up: passed (equal
    for the integer path, within ``atol`` for float), the largest differences, the predictions.
    Raises DeviceError when they differ (``where``: the device, for the message)."""
    checks = [compare(export, g, w, atol) for g, w in zip(got, want)]
    check = {"sequences": len(checks), "frames": int(sum(f.shape[0] for f in frames)),
            "passed": all(c["passed"] for c in checks), "exact": export.integer,
            "max_abs_diff": {k: max(c["max_abs_diff"][k] for c in checks)
                             for k in checks[0]["max_abs_diff"]} if checks else {},
            "atol": None if export.integer else atol,
            "argmax_agrees": all(c["argmax_agrees"] for c in checks),
            "predicted": [int(np.argmax(g["y"][-1])) for g in got], "host_compiler": compiler}
    if not check["passed"]:
        raise DeviceError(f"{export.path.name} on {where}: outputs differ from the host build's "
                          f"(largest differences {check['max_abs_diff']}"
                          f"{'' if export.integer else f', tolerance {atol}'})")
    return check


def summary(values: np.ndarray) -> dict:
    """Mean, min and max of a per-step count, and how many steps."""
    return {"mean": float(values.mean()), "min": int(values.min()), "max": int(values.max()),
            "steps": int(values.size)}
