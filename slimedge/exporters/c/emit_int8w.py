"""The float emitter's int8-weight matmuls (``--quantize dynamic``): int8 weights with one float
scale per output row, float activations (see :mod:`.emit_float`).

* int8 weights with at least :data:`SMALL_INPUT` inputs are stored (out, in): the input
  vector is scaled once per call to int16
  (:func:`activation_bound`, 15 bits: a relative rounding of 2^-16 of its largest element, far
  below the weights' own), and each output row is an int32 dot product of int8 and int16 values,
  the form compilers turn into multiply-add instructions (vpmaddwd), then one float multiply by
  the row's scale times the input's. Each stream row scales its own input, so rows stay
  independent in a batch. LSTM0 n = 512: 3.5x faster than the float step (the int8 matrix fits
  the L2 cache, the float one does not, and the dot product does 16 multiply-adds an instruction);
* int8 weights with fewer inputs (W·x over 13 MFCCs) are stored transposed, (in, out), and
  converted to float in the loop: a short dot product per row costs more than it saves.

In a block of streams (a batched step) every array has a row per stream; a matrix of
:data:`BLOCK_INT8_BYTES` or more reads each weight row once per :data:`BLOCK_DOT` streams (the
same exact integer sums as one stream's), a smaller one runs each stream's as one stream does.
"""
from __future__ import annotations

import re

import numpy as np

from . import source as src

SMALL_INPUT = 32  # int8 weights: a matmul with fewer inputs runs by columns, float activations
ACTIVATION_BITS = 15  # int8-weight matmuls: the input vector as int16 (up to ±32767) per call


def activation_bound(inputs: int) -> int:
    """The largest |int16| an int8-weight matmul's input is scaled to: 32767, less where
    ``inputs`` x 127 x it would overflow the int32 dot product."""
    return int(min(2 ** ACTIVATION_BITS - 1, (2 ** 31 - 1) // (127 * inputs)))


BLOCK_INT8_BYTES = 128 << 10  # int8 matrices this large or larger: the block's dot products
BLOCK_DOT = 4  # int8 weights: streams whose dot products share each load of a weight row


def matmul(row, out: str, ae: str, name: str, wname: str, W: np.ndarray,
           b: str | None) -> None:
    """``out`` = W·``ae`` (+ ``b``, an element expression) with ``W`` (out, in) as int8 weights
    named ``name``, one scale per output row: the weight arrays and the C lines of ``row`` (a
    row function, or a block's with ``row.streams`` > 0)."""
    n_out, n_in = W.shape
    scale = np.abs(W).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(W / scale[:, None]), -127, 127).astype(np.int8)
    row.weight_error[wname] = float(np.abs(q * scale[:, None] - W).max())
    by_columns = n_in < SMALL_INPUT
    row.arrays.append(src.array("int8_t", name, q.T if by_columns else q,
                                comment=f"{wname}: {n_out} x {n_in}, int8" +
                                (f", stored transposed ({n_in}, {n_out})" if by_columns else "")))
    row.arrays.append(src.array("float", name + "_scale", scale.astype(np.float32),
                                comment=f"{wname}: one scale per output row"))
    row.weight_bytes += q.size + 4 * n_out
    tail = f" + {b}" if b else ""
    if by_columns:  # few inputs: float activations as they are, rows scaled at the end
        if row.streams:
            row.lines.append("    for (int s = 0; s < nb; s++) {")
        _columns(row, out, ae, name, "int8_t", n_out, n_in, "0.0f")
        row.lines.append(f"    for (int i = 0; i < {n_out}; i++) "
                         f"{out}[i] = {out}[i] * {name}_scale[i]{tail};")
        if row.streams:
            row.lines.append("    }")
        return
    if row.streams and n_out * n_in >= BLOCK_INT8_BYTES:
        _block(row, out, ae, name, n_out, n_in, b)
        return
    # the input vector in int16 (scaled per call to activation_bound(n_in)), an int32 dot
    # product per output row, then the row's scale times the input's
    L = row.lines
    # (a block's small matrix: each stream's own, as one stream runs it; the weights stay
    # in the cache from one stream to the next)
    L.append("    for (int s = 0; s < nb; s++) {" if row.streams else "    {")
    L.append("        float amax = 0.0f;")
    L.append(f"        for (int j = 0; j < {n_in}; j++) amax = fmaxf(amax, fabsf({ae}[j]));")
    L.append(f"        const float sx = amax > 0.0f ? amax / {activation_bound(n_in)}.0f : 1.0f;")
    L.append("        const float inv = 1.0f / sx;")
    L.append(f"        int16_t aq[{n_in}];")
    row.scratch_bytes += 2 * n_in
    L.append(f"        for (int j = 0; j < {n_in}; j++) {{")
    L.append(f"            const float v = {ae}[j] * inv;")
    L.append("            aq[j] = (int16_t)(v < 0.0f ? v - 0.5f : v + 0.5f);")
    L.append("        }")
    L.append(f"        for (int i = 0; i < {n_out}; i++) {{")
    L.append(f"            const int8_t *w = {name} + (size_t)i * {n_in};")
    L.append("            int32_t acc = 0;")
    L.append(f"            for (int j = 0; j < {n_in}; j++) acc += (int32_t)w[j] * (int32_t)aq[j];")
    L.append(f"            {out}[i] = (float)acc * ({name}_scale[i] * sx){tail};")
    L.append("        }")
    L.append("    }")


def _block(row, out: str, a: str, w: str, n_out: int, n_in: int, b: str | None) -> None:
    """The int8 matmul of a block: each stream's input scaled to int16 as one stream's is,
    then each weight row read once for the block, four streams' int32 dot products at a
    time (the same exact sums, the same float epilogue: a stream's result is the one it
    gets alone)."""
    T = BLOCK_DOT
    L = row.lines
    L.append("    {")
    L.append(f"        int16_t aq[{row.streams * n_in}];")
    L.append(f"        float sa[{row.streams}];")
    row.scratch_bytes += 2 * n_in * row.streams + 4 * row.streams
    L.append("        for (int s = 0; s < nb; s++) {")
    L.append("            float amax = 0.0f;")
    L.append(f"            for (int j = 0; j < {n_in}; j++) amax = fmaxf(amax, fabsf({a}[j]));")
    L.append(f"            sa[s] = amax > 0.0f ? amax / {activation_bound(n_in)}.0f : 1.0f;")
    L.append("            const float inv = 1.0f / sa[s];")
    L.append(f"            for (int j = 0; j < {n_in}; j++) {{")
    L.append(f"                const float v = {a}[j] * inv;")
    L.append(f"                aq[s * {n_in} + j] = (int16_t)(v < 0.0f ? v - 0.5f : v + 0.5f);")
    L.append("            }")
    L.append("        }")
    L.append(f"        for (int i = 0; i < {n_out}; i++) {{")
    L.append(f"            const int8_t *w = {w} + (size_t)i * {n_in};")
    L.append("            int s = 0;")
    L.append(f"            for (; s + {T} <= nb; s += {T}) {{")
    L.append(f"                const int16_t *q = aq + s * {n_in};")
    L.append("                int32_t " + ", ".join(f"a{t} = 0" for t in range(T)) + ";")
    L.append(f"                for (int j = 0; j < {n_in}; j++) {{")
    L.append("                    const int32_t wj = w[j];")
    L.append("                    " + " ".join(f"a{t} += wj * (int32_t)q[{t * n_in} + j];"
                                                for t in range(T)))
    L.append("                }")
    for t in range(T):
        st = f"(s + {t})" if t else "s"
        tail = f" + {_on_stream(b, st)}" if b else ""
        L.append(f"                {_on_stream(out, st)}[i] = (float)a{t} * ({w}_scale[i] * "
                 f"sa[{st}]){tail};")
    L.append("            }")
    L.append("            for (; s < nb; s++) {")
    L.append(f"                const int16_t *q = aq + s * {n_in};")
    L.append("                int32_t acc = 0;")
    L.append(f"                for (int j = 0; j < {n_in}; j++) acc += (int32_t)w[j] * (int32_t)q[j];")
    tail = f" + {b}" if b else ""
    L.append(f"                {out}[i] = (float)acc * ({w}_scale[i] * sa[s]){tail};")
    L.append("            }")
    L.append("        }")
    L.append("    }")


def _columns(row, out: str, a: str, w: str, wtype: str, n_out: int, n_in: int,
             init: str) -> None:
    """out = init + W·a with W stored (in, out): one contiguous weight row per input."""
    L = row.lines
    L.append(f"    for (int i = 0; i < {n_out}; i++) {out}[i] = {init};")
    L.append(f"    for (int j = 0; j < {n_in}; j++) {{")
    L.append(f"        const float aj = {a}[j];")
    L.append(f"        const {wtype} *w = {w} + (size_t)j * {n_out};")
    L.append(f"        for (int i = 0; i < {n_out}; i++) {out}[i] += (float)w[i] * aj;")
    L.append("    }")



def _on_stream(expr: str, stream: str) -> str:
    """A block's C expression written for stream ``s`` taken at stream ``stream``."""
    return re.sub(r"\bs\b", stream, expr)
