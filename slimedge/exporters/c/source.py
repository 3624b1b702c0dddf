"""C source text for the C export: identifiers, literals, const arrays, the embedded config.

Shared by the float emitter (:mod:`.emit_float`) and the full-integer one (:mod:`.emit_int`).
Everything here produces text that compiles cleanly under ``-std=c99 -Wall -Wextra -pedantic``:
string literals escape ``?`` (no trigraphs) and every non-ASCII byte, and the config JSON is
one string literal at the end of the ``.c`` (``PREFIX_config``), which
:func:`slimedge.formats.c.reader.read_config` reads without a compiler. Identifiers come from
the IR's names (:class:`Names`); the kernels every step calls are in the fixed header
``slimedge_kernels.h`` (the format's, :mod:`slimedge.formats.c`), written beside each export.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Iterable

import numpy as np

from ... import integrity, ir
from ...errors import UsageError
from ...formats.c.reader import ABI, HEADER_DIGEST, HEADER_PLACEHOLDER, KERNELS, KERNELS_DIGEST, kernels_text

FRAME_BYTES = 512
"""Allowance in ``PREFIX_STACK_BYTES`` for what the step's arrays do not count: the call frames
and register spills of the step, the kernels and the C library's tanhf/expf."""


def c_string(text: str, *, digest_entry: bool = False) -> str:
    """A C string literal holding ``text`` (UTF-8): printable ASCII as is, except ``"``, ``\\``
    and ``?`` (trigraphs); every other byte as a three-digit octal escape. The name of the
    file's digest entry (a label may hold it) is written with its underscore as ``\\137``, so
    the sealed ``.c`` holds one digest entry: the config's (``digest_entry``)."""
    if digest_entry:
        return '"' + _c_chars(text) + '"'
    key = _c_chars(integrity.KEY).replace("_", "\\137")
    return '"' + key.join(_c_chars(part) for part in text.split(integrity.KEY)) + '"'


def _c_chars(text: str) -> str:
    out = []
    for b in text.encode("utf-8"):
        ch = chr(b)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 32 <= b < 127:
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    return "".join(out)


def c_float(value: float) -> str:
    """A float literal that reads back as exactly ``float32(value)``."""
    v = float(np.float32(value))
    if not np.isfinite(v):
        raise ValueError(f"cannot write the non-finite weight {value!r} into C source")
    text = f"{v:.9g}"
    if not any(ch in text for ch in ".e"):
        text += ".0"
    return text + "f"


def c_int(value: int) -> str:
    """An integer literal; the most negative int32 is written as an expression (C has no negative
    literals, and 2147483648 does not fit an int)."""
    v = int(value)
    return "(-2147483647 - 1)" if v == -2**31 else str(v)


def array(ctype: str, name: str, values: np.ndarray, *, static: bool = True, comment: str = "",
          per_line: int = 8) -> str:
    """A ``const`` array definition (flattened, row-major) with a leading comment."""
    flat = np.asarray(values).ravel()
    if flat.size == 0:
        raise ValueError(f"{name}: an empty array cannot be written in C99")
    fmt = c_float if ctype == "float" else c_int
    items = [fmt(v) for v in flat.tolist()]
    if ctype == "float":
        per_line = min(per_line, 6)
    else:
        per_line = max(per_line, 16)
    lines = [", ".join(items[k:k + per_line]) for k in range(0, len(items), per_line)]
    body = ",\n    ".join(lines)
    head = f"/* {comment} */\n" if comment else ""
    storage = "static const" if static else "const"
    return f"{head}{storage} {ctype} {name}[{flat.size}] = {{\n    {body}\n}};\n"


# ---- the config JSON --------------------------------------------------------------------------
CONFIG_LINE = 96  # characters of JSON per line of the config's string literal


def config_literal(prefix: str, meta: dict) -> str:
    """``const char PREFIX_config[]``: the config JSON as one string literal (adjacent pieces,
    one line each, split after a ``", "``), which the format's reader reads back without a
    compiler. Longer than the 4,095 characters C99 promises in one literal, it is written
    under a pragma that tells gcc and clang not to warn (every compiler slimedge knows of takes
    it)."""
    text = integrity.dumps(meta, ensure_ascii=True)
    pieces, line = [], ""
    for part in text.split(", "):
        piece = part if not line else ", " + part
        if line and len(line) + len(piece) > CONFIG_LINE:
            pieces.append(line + ", ")
            piece = part
            line = ""
        line += piece
    pieces.append(line)
    body = "\n".join("    " + c_string(p, digest_entry=True) for p in pieces)
    out = (f"/* the model's config JSON (slimedge reads it without compiling) */\n"
           f"const char {prefix}_config[] =\n{body};\n")
    if len(text) > 4095:
        out = ("#if defined(__GNUC__)\n#pragma GCC diagnostic ignored \"-Woverlength-strings\"\n"
               "#endif\n" + out)
    return out


def export_meta(graph: ir.Graph, prefix: str, quantize: str, **info) -> dict:
    """The config the files carry: the graph's metadata plus an ``export`` section saying how the
    file was made (format, mode, quantisation, the identifier prefix and the interface version)."""
    meta = json.loads(graph.metadata_json())
    meta["export"] = {"format": "c", "mode": "step", "quantize": quantize, "prefix": prefix,
                      "abi": ABI, "language": "C99", **info,
                      # the files compiled with the .c, covered by its digest (the writer fills
                      # in the .h's once it is generated)
                      HEADER_DIGEST: HEADER_PLACEHOLDER,
                      KERNELS_DIGEST: hashlib.sha256(kernels_text().encode("ascii")).hexdigest()}
    audio = (graph.config.get("frontend") or {}).get("audio")
    if audio:  # the .c carries it (emit_audio): PREFIX_audio_push, PREFIX_listen
        meta["export"]["audio_frontend"] = audio["kind"]
        from .emit_decoder import present
        if present(graph.config):  # and a continuous model's decoder: PREFIX_events
            from ...runtime.decoder import Settings
            meta["export"]["decoder"] = Settings.from_config(graph.config).as_config()
    return meta


# ---- shared pieces of the generated files -------------------------------------------------------
def labels(graph: ir.Graph) -> tuple[list[str], bool]:
    """The output labels (the head's, else the output indices) and whether the model has any."""
    head = graph.config.get("head") or {}
    got = head.get("labels")
    if got and len(got) == graph.output_size:
        return [str(v) for v in got], True
    return [str(k) for k in range(graph.output_size)], False


def size_macros(prefix: str, graph: ir.Graph) -> list[str]:
    P = prefix.upper()
    _, has = labels(graph)
    return [f"#define {P}_INPUT_SIZE {graph.input_size}",
            f"#define {P}_HIDDEN_SIZE {graph.hidden_size}",
            f"#define {P}_NUM_LAYERS {graph.num_layers}",
            f"#define {P}_OUTPUT_SIZE {graph.output_size}",
            f"#define {P}_STATE_SIZE ({P}_NUM_LAYERS * {P}_HIDDEN_SIZE)",
            f"#define {P}_HAS_LABELS {int(has)}"]


def labels_array(prefix: str, graph: ir.Graph) -> str:
    names, _ = labels(graph)
    items = ",\n    ".join(c_string(s) for s in names)
    return (f"/* output labels (the output indices when the model has none) */\n"
            f"const char *const {prefix}_labels[{len(names)}] = {{\n    {items}\n}};\n")


_RESERVED = {"x", "h", "c", "y", "ld", "i", "j", "b", "k", "s", "sx", "nb", "sa", "xt", "io", "xq", "hq",
             "cq", "yq", "h_out",
             "c_out", "hq_out", "cq_out", "scratch", "auto", "break", "case", "char", "const",
             "continue", "default", "do", "double", "else", "enum", "extern", "float", "for",
             "goto", "if", "inline", "int", "long", "register", "restrict", "return", "short",
             "signed", "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned",
             "void", "volatile", "while"}


class Names:
    """Readable C identifiers from IR names (``l0.W_c`` -> ``l0_W_c``), each given once per file:
    a name already taken (or a parameter's, a keyword) gets ``_v``, ``_v2``... appended."""

    def __init__(self) -> None:
        self.used = set(_RESERVED)

    def get(self, name: str, suffix: str = "") -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", name) + suffix
        if not base or base[0].isdigit():
            base = "v_" + base
        out, k = base, 1
        while out in self.used or out.startswith("slimedge_"):
            out = f"{base}_v{k if k > 1 else ''}"
            k += 1
        self.used.add(out)
        return out


def api_header(prefix: str, graph: ir.Graph, stack_bytes: int,
               batch_stack_bytes: int | None = None) -> list[str]:
    """The header's common part: the kernel header, the sizes, the stack bound, the io type, the
    descriptor and the float API's prototypes."""
    P, U = prefix, prefix.upper()
    return [
        include(KERNELS),
        "\n".join(size_macros(prefix, graph)),
        f"/* An upper bound of the stack one {P}_step or {P}_step_io call uses (bytes): the step's\n"
        f"   arrays plus {FRAME_BYTES} for call frames and the C library's functions. */\n"
        f"#define {U}_STACK_BYTES {stack_bytes + FRAME_BYTES}\n",
        (f"/* The same for a {P}_step_batch or {P}_step_io call of more than one stream on a\n"
         f"   desktop CPU (blocks of streams: slimedge_kernels.h, SLIMEDGE_BLOCKED). */\n"
         f"#define {U}_BATCH_STACK_BYTES {batch_stack_bytes + FRAME_BYTES}\n"
         if batch_stack_bytes is not None else ""),
        f"typedef slimedge_io {P}_io;  /* batch, x, h, c (in), y, h_next, c_next (out) */",
        f"extern const char {P}_config[];  /* the model's config JSON */",
        f"extern const char *const {P}_labels[{U}_OUTPUT_SIZE];",
        f"/* the descriptor: slimedge_step(&{P}_model, x, h, c, y), slimedge_reset(&{P}_model, h, c) */",
        f"extern const slimedge_model {P}_model;\n",
        "/* The same as functions of this model: one stream (x (INPUT_SIZE) -> y (OUTPUT_SIZE); h, c\n"
        "   updated in place), batch streams, the general call (new state to h_next, c_next, which\n"
        "   may be h, c), and zeroing the state of one stream or of a batch. */",
        f"void {P}_step(const float *x, float *h, float *c, float *y);",
        f"void {P}_step_batch(int batch, const float *x, float *h, float *c, float *y);",
        f"void {P}_step_io(const {P}_io *io);",
        f"void {P}_reset(float *h, float *c);",
        f"void {P}_reset_batch(int batch, float *h, float *c);\n",
    ]


def api_functions(prefix: str, graph: ir.Graph) -> list[str]:
    """The thin wrappers over ``PREFIX_step_io`` and the descriptor (after the config)."""
    P = prefix
    return [
        f"void {P}_step_batch(int batch, const float *x, float *h, float *c, float *y)\n{{\n"
        f"    slimedge_step_batch(&{P}_model, batch, x, h, c, y);\n}}\n",
        f"void {P}_step(const float *x, float *h, float *c, float *y)\n{{\n"
        f"    slimedge_step(&{P}_model, x, h, c, y);\n}}\n",
        f"void {P}_reset_batch(int batch, float *h, float *c)\n{{\n"
        f"    slimedge_reset_batch(&{P}_model, batch, h, c);\n}}\n",
        f"void {P}_reset(float *h, float *c)\n{{\n"
        f"    slimedge_reset(&{P}_model, h, c);\n}}\n",
    ]


def descriptor(prefix: str) -> str:
    """``const slimedge_model PREFIX_model`` (the config JSON is not in it: a firmware that does
    not read ``PREFIX_config`` keeps it out of flash)."""
    P, U = prefix, prefix.upper()
    return (f"const slimedge_model {P}_model = {{\n"
            f"    {c_string(P)}, {U}_INPUT_SIZE, {U}_HIDDEN_SIZE, {U}_NUM_LAYERS, {U}_OUTPUT_SIZE,\n"
            f"    {U}_STATE_SIZE, {U}_STACK_BYTES, {P}_labels, {P}_step_io\n}};\n")


def include(header: str) -> str:
    """``#include`` of the export's own header by its file name."""
    if any(ch in header for ch in '"\\\n') or not header.isprintable() or not header.isascii():
        raise UsageError(f"the header name {header!r} cannot be written in an #include line; "
                         f"choose a plainer file name")
    return f'#include "{header}"\n'


def digest(arrays: Iterable[str]) -> str:
    """SHA-256 of the weight arrays' types, sizes and values (not their names, which carry the
    prefix): a prebuilt library is trusted only when its config's digest is the source's."""
    import hashlib

    h = hashlib.sha256()
    for a in arrays:
        after_comment = a.find("*/") + 2 if a.startswith("/*") else 0
        m = re.search(r"const (\w+) \w+(.*)", a[after_comment:], re.DOTALL)
        # an array or constant: its type and value; anything else (an enum of shifts): all
        h.update((f"{m.group(1)}{m.group(2)}" if m else a).encode("ascii"))
    return h.hexdigest()


def guard(prefix: str) -> str:
    return f"SLIMEDGE_{prefix.upper()}_H"


def join(parts: Iterable[str]) -> str:
    return "\n".join(p.rstrip("\n") + "\n" for p in parts if p)


__all__ = ["c_string", "c_float", "c_int", "array", "config_literal", "export_meta", "labels",
           "size_macros", "labels_array", "api_header", "api_functions", "descriptor", "Names",
           "guard", "include", "digest", "FRAME_BYTES"]
