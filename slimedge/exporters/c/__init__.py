"""The C99 step export: a SLIM model's step as one ``.c`` file and its ``.h``, from the step IR.

Entry points (the format table names them):

    write(graph, path, *, mode="step")                     float32 weights and arithmetic
    write_int8_weights(graph, path, *, mode, splits, options) -> dict
                                                           int8 weights, one float scale per
                                                           output row; float activations
    write_integer(graph, path, *, mode, splits, options) -> dict
                                                           full integer: int8 weights and
                                                           activations, int16 cell state,
                                                           integer-only arithmetic, calibrated
                                                           on real rollouts (see emit_int)
    runner(path) -> run(feeds) -> outputs                  compile (cached) and step via ctypes
    read_metadata(path) -> dict                            the config, read without compiling
    resolve(path) -> Path                                  a folder holding one export -> its .c

Every file is C99 with no allocation and no mutable globals: weights are ``static const`` arrays
named after the model's tensors (``l0_W_c``), the caller owns the state. Beside the ``.c`` and its
``.h`` lies the fixed kernel header ``slimedge_kernels.h`` (the same for every export: the
matvecs, the integer requantisation and tables, the model descriptor and its API). The model's
header has the sizes and ``PREFIX_STACK_BYTES`` (an upper bound of the stack a step uses) as
macros, the labels, the descriptor ``const slimedge_model PREFIX_model`` (firmware calls
``slimedge_step(&PREFIX_model, x, h, c, y)`` for any model) and, as thin wrappers over it,
``PREFIX_step`` (one stream, state in place), ``PREFIX_step_batch`` (B streams, state laid out
(layers, B, n) like the ONNX/TFLite step graphs), ``PREFIX_step_io`` (one struct argument; new
state to separate arrays or in place: the runtime's call) and ``PREFIX_reset``. The identifier
prefix is the file's stem made a C identifier (``digits-v2.c`` -> ``digits_v2_step``); several
models link into one program, the kernels once. The model's config JSON (with an ``export``
section: format ``c``, the quantisation, the prefix) is the string ``const char
PREFIX_config[]`` at the end of the ``.c``, which :func:`read_metadata` reads without compiling.

Writing needs no compiler; :func:`runner` and the runtime's ``c`` backend compile with the host
compiler (see :mod:`.toolchain`). This package does not import torch.
"""
from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ... import ir
from ...errors import ModelFileError, UsageError
from ...formats import FORMATS
from . import emit_float, source
from .toolchain import CompileError, CompilerNotFound

SUFFIX = FORMATS["c"].suffix
HEADER_SUFFIX = FORMATS["c"].companions[0]
MODES = ("step",)


def _check_mode(mode: str) -> None:
    if mode != "step":
        raise UsageError(f"the C export has step mode only (mode='step'); got mode={mode!r}. "
                         f"Stream a sequence through the step function, or export ONNX for a "
                         f"sequence graph")


def _write_pair(path: Path, c_text: str, h_text: str) -> None:
    """The ``.c``, its ``.h`` and the kernel header (the package's, the same for every export)."""
    path = Path(path)
    if path.suffix != SUFFIX:
        raise ValueError(f"{path}: a C export is written to a file ending in {SUFFIX}")
    path.write_text(c_text, encoding="ascii")
    path.with_suffix(HEADER_SUFFIX).write_text(h_text, encoding="ascii")
    kernels = path.with_name(source.KERNELS)
    text = source.kernels_text()
    if not kernels.is_file() or kernels.read_text(encoding="ascii", errors="replace") != text:
        kernels.write_text(text, encoding="ascii")


def write(graph: ir.Graph, path: str | os.PathLike, *, mode: str = "step") -> None:
    """Write ``graph`` (float, normalisation folded) as ``path`` (.c) and its ``.h`` beside it."""
    _check_mode(mode)
    path = Path(path)
    c_text, h_text, _ = emit_float.generate(graph, source.prefix_for(path),
                                            header=path.with_suffix(HEADER_SUFFIX).name)
    _write_pair(path, c_text, h_text)


def write_int8_weights(graph: ir.Graph, path: str | os.PathLike, *, mode: str = "step",
                       splits=None, options=None) -> dict:
    """Write the step with int8 weights (one float scale per output row) and float activations.

    ``graph`` is the unfolded graph (the normalisation stays a float multiply-add); ``splits`` and
    ``options`` are not needed (the weights alone decide their scales). Returns the export
    section: weight bytes and the largest absolute weight rounding error (half a row's scale).
    """
    _check_mode(mode)
    path = Path(path)
    c_text, h_text, info = emit_float.generate(graph, source.prefix_for(path), weights="int8",
                                               header=path.with_suffix(HEADER_SUFFIX).name)
    _write_pair(path, c_text, h_text)
    return info


def write_integer(graph: ir.Graph, path: str | os.PathLike, *, mode: str = "step", splits=None,
                  options=None) -> dict:
    """Write the full-integer step (see :mod:`.emit_int`), calibrated on the model's data.

    ``splits`` (a DataSplits) provides the training split whose real rollouts give every value's
    range: ``options.calibration_samples`` sequences of it (default 128; None: all), chosen with
    ``options.seed``; ``options.ranges`` (value -> (min, max)), when given, is used instead.
    Returns the export section: scales, calibration, the integer nonlinearities' error bounds,
    and every value's calibrated range (``ranges``).
    """
    from . import emit_int

    _check_mode(mode)
    path = Path(path)
    samples = getattr(options, "calibration_samples", emit_int.DEFAULT_CALIBRATION_SAMPLES)
    c_text, h_text, info = emit_int.generate(graph, source.prefix_for(path), splits=splits,
                                             samples=samples, seed=getattr(options, "seed", 0),
                                             ranges=getattr(options, "ranges", None),
                                             header=path.with_suffix(HEADER_SUFFIX).name)
    _write_pair(path, c_text, h_text)
    return info


# ---- reading back ------------------------------------------------------------------------------
def resolve(path: str | os.PathLike) -> Path:
    """The ``.c`` of an export: ``path`` itself, or the one slimedge export in a folder."""
    path = Path(path)
    if not path.is_dir():
        return path
    found = []
    for c in sorted(path.glob(f"*{SUFFIX}")):
        try:
            text = c.read_text(encoding="ascii", errors="replace")
            if source.read_config(text) is not None:
                found.append(c)
        except (OSError, ValueError, RecursionError):
            continue
    if len(found) != 1:
        what = "no slimedge C export" if not found else (
            f"{len(found)} slimedge C exports ({', '.join(p.name for p in found)}); name one")
        raise ModelFileError(f"{path}: a folder holding {what}")
    return found[0]


def read_metadata(path: str | os.PathLike) -> dict:
    """The model's config JSON stored in a C export (the ``.c``, its ``.h``, or their folder),
    read without compiling. Raises ModelFileError (a ValueError) naming the file."""
    path = resolve(path)
    if path.suffix == HEADER_SUFFIX and path.with_suffix(SUFFIX).is_file():
        path = path.with_suffix(SUFFIX)  # the config is in the .c
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read it ({e.strerror or e})") from None
    try:
        config = source.read_config(text)
    except (ValueError, RecursionError) as e:
        raise ModelFileError(f"{path}: its slimedge config line is not valid JSON "
                             f"({type(e).__name__})") from None
    if config is not None:
        from ...formats import parse_json

        config = parse_json(json.dumps(config), path)  # nesting and type checks
    if config is None:
        raise ModelFileError(f"{path}: not a slimedge C export (no 'const char PREFIX_config[]' "
                             f"string with the model's config)")
    if not isinstance(config, dict) or not isinstance(config.get("export"), dict) \
            or "prefix" not in config["export"]:
        raise ModelFileError(f"{path}: its slimedge config has no export section naming the "
                             f"C identifier prefix")
    return config


class IO(ctypes.Structure):
    """The kernel header's ``slimedge_io`` struct, ``PREFIX_io`` (int batch, then six pointers)."""

    _fields_ = [("batch", ctypes.c_int)] + [(k, ctypes.c_void_p)
                                            for k in source.IO_STRUCT_FIELDS[1:]]


def quantizer(quantize: str):
    """The quantizer for ``quantize``: "dynamic" (int8 weights) or "int8" (full integer)."""
    return {"dynamic": write_int8_weights, "int8": write_integer}[quantize]


def step_function(lib: ctypes.CDLL, prefix: str):
    """The export's ``PREFIX_step_io`` from a loaded library."""
    fn = getattr(lib, f"{prefix}_step_io")
    fn.restype = None
    return fn


def runner(path: str | os.PathLike) -> Callable[[dict], dict]:
    """Compile the export (cached) and return ``run(feeds) -> {"y", "h_next", "c_next"}`` for
    float32 feeds ``x`` (B, m), ``h``, ``c`` (L, B, n): one C call per run."""
    from . import toolchain

    path = resolve(path)
    config = read_metadata(path)
    lib, _ = toolchain.load(path, config, allow_prebuilt=False)
    fn = step_function(lib, config["export"]["prefix"])
    g = config["graph"]
    L, n, K = int(g["num_layers"]), int(g["hidden_size"]), int(g["output_size"])
    m = int(g["input_size"])

    def run(feeds: dict) -> dict:
        x = np.ascontiguousarray(feeds["x"], dtype=np.float32)
        B = x.shape[0]
        h = np.ascontiguousarray(feeds["h"], dtype=np.float32)
        c = np.ascontiguousarray(feeds["c"], dtype=np.float32)
        if x.shape != (B, m) or h.shape != (L, B, n) or c.shape != (L, B, n):
            raise ValueError(f"feeds: expected x ({B}, {m}), h and c ({L}, {B}, {n}); got "
                             f"{x.shape}, {h.shape}, {c.shape}")
        out = {"y": np.empty((B, K), np.float32), "h_next": np.empty((L, B, n), np.float32),
               "c_next": np.empty((L, B, n), np.float32)}
        io = IO(B, *(a.ctypes.data for a in (x, h, c, out["y"], out["h_next"], out["c_next"])))
        fn(ctypes.byref(io))
        return out
    return run


__all__ = ["write", "write_int8_weights", "write_integer", "quantizer", "runner", "read_metadata", "resolve",
           "SUFFIX", "HEADER_SUFFIX", "MODES", "CompilerNotFound", "CompileError", "IO",
           "step_function"]
