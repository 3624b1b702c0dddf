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
    quantizer(mode)                                        the table's quantizer for a mode

Every file is C99 with no allocation and no mutable globals: weights are ``static const`` arrays
named after the model's tensors (``l0_W_c``), the caller owns the state. Beside the ``.c`` and its
``.h`` lies the fixed kernel header ``slimedge_kernels.h`` (the same for every export: the
matvecs, the integer requantisation and tables, the model descriptor and its API). The model's
header has the sizes and ``PREFIX_STACK_BYTES`` (an upper bound of the stack a step uses) as
macros, the labels, the descriptor ``const slimedge_model PREFIX_model`` (firmware calls
``slimedge_step(&PREFIX_model, x, h, c, y)`` for any model) and, as thin wrappers over it,
``PREFIX_step`` (one stream, state in place), ``PREFIX_step_batch`` (B streams, state laid out
(layers, B, n) like the ONNX/TFLite step graphs; on a desktop CPU in blocks of streams, each
matmul one small matrix product per block, so each weight is read once per block, not once per
stream: :mod:`.emit_float`; on a microcontroller, or with ``-DSLIMEDGE_NO_BLOCKED``, one stream
at a time), ``PREFIX_step_io`` (one struct argument; new
state to separate arrays or in place: the runtime's call) and ``PREFIX_reset``. The identifier
prefix is the file's stem made a C identifier (``digits-v2.c`` -> ``digits_v2_step``); several
models link into one program, the kernels once. The model's config JSON (with an ``export``
section: format ``c``, the quantisation, the prefix) is the string ``const char
PREFIX_config[]`` at the end of the ``.c``.

Writing needs no compiler. Reading the files back (the config, without compiling) and running
them (the runtime's ``c`` backend, which export validation uses) are the format's own:
:mod:`slimedge.formats.c`. This package does not import torch.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ... import integrity, ir
from ...errors import UsageError
from ...formats.c.reader import (
    HEADER_DIGEST,
    HEADER_PLACEHOLDER,
    HEADER_SUFFIX,
    KERNELS,
    SUFFIX,
    kernels_text,
    prefix_for,
)
from . import emit_audio, emit_float


def _check_mode(mode: str) -> None:
    if mode != "step":
        raise UsageError(f"the C export has step mode only (mode='step'); got mode={mode!r}. "
                         f"Stream a sequence through the step function, or export ONNX for a "
                         f"sequence graph")


def check_path(path: str | os.PathLike) -> None:
    """A C export's file name must be ASCII without quotes or backslashes: the ``.c`` names its
    header in an ``#include`` line. UsageError naming the file, before anything is written."""
    name = Path(path).name
    if not name.isascii() or not name.isprintable() or any(ch in name for ch in '"\\'):
        raise UsageError(f"{path}: a C export's file name must be printable ASCII without quotes or "
                         f"backslashes (its .c includes its .h by name); choose a plainer name")


def _write_pair(path: Path, c_text: str, h_text: str, graph: ir.Graph, *,
                integer_model: bool = False) -> None:
    """The ``.c``, its ``.h`` (with the audio front-end, when the model has one: see
    :mod:`.emit_audio`) and the kernel header (the package's, the same for every export)."""
    path = Path(path)
    check_path(path)
    c_text, h_text = emit_audio.attach(c_text, h_text, graph.config, prefix_for(path),
                                       integer_model=integer_model)
    if path.suffix != SUFFIX:
        raise ValueError(f"{path}: a C export is written to a file ending in {SUFFIX}")
    # the .h's digest into the .c's config: the .c's own digest then covers the header too
    # (in the config's C string literal, whose quotes are escaped)
    slot = f'\\"{HEADER_DIGEST}\\": \\"{HEADER_PLACEHOLDER}\\"'
    if c_text.count(slot) != 1:
        raise AssertionError(f"the generated C source has {c_text.count(slot)} header digest slots")
    h_digest = hashlib.sha256(h_text.encode("ascii")).hexdigest()
    c_text = c_text.replace(slot, slot.replace(HEADER_PLACEHOLDER, h_digest))
    path.write_text(c_text, encoding="ascii")
    path.with_suffix(HEADER_SUFFIX).write_text(h_text, encoding="ascii")
    integrity.seal(path)  # a file written here loads checked, as an exported one does
    kernels = path.with_name(KERNELS)
    text = kernels_text()
    if not kernels.is_file() or kernels.read_text(encoding="ascii", errors="replace") != text:
        kernels.write_text(text, encoding="ascii")


def write(graph: ir.Graph, path: str | os.PathLike, *, mode: str = "step") -> None:
    """Write ``graph`` (float, normalisation folded) as ``path`` (.c) and its ``.h`` beside it."""
    _check_mode(mode)
    path = Path(path)
    c_text, h_text, _ = emit_float.generate(graph, prefix_for(path),
                                            header=path.with_suffix(HEADER_SUFFIX).name)
    _write_pair(path, c_text, h_text, graph)


def write_int8_weights(graph: ir.Graph, path: str | os.PathLike, *, mode: str = "step",
                       splits=None, options=None) -> dict:
    """Write the step with int8 weights (one float scale per output row) and float activations.

    ``graph`` is the unfolded graph (the normalisation stays a float multiply-add); ``splits`` and
    ``options`` are not needed (the weights alone decide their scales). Returns the export
    section: weight bytes and the largest absolute weight rounding error (half a row's scale).
    """
    _check_mode(mode)
    path = Path(path)
    c_text, h_text, info = emit_float.generate(graph, prefix_for(path), weights="int8",
                                               header=path.with_suffix(HEADER_SUFFIX).name)
    _write_pair(path, c_text, h_text, graph)
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
    c_text, h_text, info = emit_int.generate(graph, prefix_for(path), splits=splits,
                                             samples=samples, seed=getattr(options, "seed", 0),
                                             ranges=getattr(options, "ranges", None),
                                             header=path.with_suffix(HEADER_SUFFIX).name)
    _write_pair(path, c_text, h_text, graph, integer_model=True)
    return info


def quantizer(quantize: str):
    """The quantizer for ``quantize``: "dynamic" (int8 weights) or "int8" (full integer)."""
    return {"dynamic": write_int8_weights, "int8": write_integer}[quantize]


__all__ = ["write", "write_int8_weights", "write_integer", "quantizer"]
