"""C source text for the C export: identifiers, literals, const arrays, the embedded config.

Shared by the float emitter (:mod:`.emit_float`) and the full-integer one (:mod:`.emit_int`).
Everything here produces text that compiles cleanly under ``-std=c99 -Wall -Wextra -pedantic``:
string literals escape ``?`` (no trigraphs) and every non-ASCII byte, and the config JSON is
stored as a char array (C99 promises only 4,095 characters in one string literal) and once more
in a comment line that :func:`read_config_comment` finds without a compiler.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ... import ir

CONFIG_TAG = "slimedge-config: "
"""The comment line holding the model's config JSON starts with ``/* `` and this tag."""
ABI = 1
"""Version of the generated functions' interface (recorded in the config's export section)."""
IO_STRUCT_FIELDS = ("batch", "x", "h", "c", "y", "h_next", "c_next")
"""Members of the generated ``PREFIX_io`` struct, in order (int batch, then six pointers)."""


def prefix_for(path: str | Path) -> str:
    """The C identifier prefix of an export: the file's stem, with every character that cannot be
    part of an identifier replaced by ``_`` (and ``m_`` in front of a leading digit)."""
    stem = Path(path).stem
    name = re.sub(r"[^A-Za-z0-9_]", "_", stem)
    if not name or name[0].isdigit():
        name = "m_" + name
    return name


def c_string(text: str) -> str:
    """A C string literal holding ``text`` (UTF-8): printable ASCII as is, except ``"``, ``\\``
    and ``?`` (trigraphs); every other byte as a three-digit octal escape."""
    out = []
    for b in text.encode("utf-8"):
        ch = chr(b)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 32 <= b < 127:
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


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
def config_json(meta: dict) -> str:
    """The config as one line of ASCII JSON that is safe inside a C comment: ``*`` is written as
    ``\\u002a`` (so neither ``*/`` nor ``/*`` can occur) and ``?`` as ``\\u003f`` (no trigraph)."""
    text = json.dumps(meta, sort_keys=True, ensure_ascii=True)
    # outside strings JSON has no '*' or '?', so these replacements only touch string contents
    return text.replace("*", "\\u002a").replace("?", "\\u003f")


def config_comment(meta: dict) -> str:
    return f"/* {CONFIG_TAG}{config_json(meta)} */\n"


def config_array(prefix: str, meta: dict) -> str:
    """``const char PREFIX_config[]``: the config JSON, NUL-terminated, as character codes."""
    data = json.dumps(meta, sort_keys=True, ensure_ascii=True).encode("ascii") + b"\0"
    return array("char", f"{prefix}_config", np.frombuffer(data, np.uint8), static=False,
                 comment="the model's config JSON (the same as the comment line at the top)",
                 per_line=24)


def read_config_comment(text: str) -> dict | None:
    """The config JSON from the tagged comment line, or None when the text has none."""
    start = text.find("/* " + CONFIG_TAG)
    if start < 0:
        return None
    start += 3 + len(CONFIG_TAG)
    end = text.find(" */", start)
    if end < 0:
        return None
    return json.loads(text[start:end])


def export_meta(graph: ir.Graph, prefix: str, quantize: str, **info) -> dict:
    """The config the files carry: the graph's metadata plus an ``export`` section saying how the
    file was made (format, mode, quantisation, the identifier prefix and the interface version)."""
    meta = json.loads(graph.metadata_json())
    meta["export"] = {"format": "c", "mode": "step", "quantize": quantize, "prefix": prefix,
                      "abi": ABI, "language": "C99", **info}
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


def io_struct(prefix: str, ctypes_: Sequence[str]) -> str:
    """The ``PREFIX_io`` struct: batch, then pointers x, h, c (in), y, h_next, c_next (out)."""
    x, s_h, s_c, y = ctypes_
    return (f"typedef struct {{\n"
            f"    int batch;            /* streams (rows) in this call */\n"
            f"    const {x} *x;     /* (batch, INPUT_SIZE) */\n"
            f"    const {s_h} *h;     /* (NUM_LAYERS, batch, HIDDEN_SIZE) */\n"
            f"    const {s_c} *c;     /* (NUM_LAYERS, batch, HIDDEN_SIZE) */\n"
            f"    {y} *y;           /* (batch, OUTPUT_SIZE) */\n"
            f"    {s_h} *h_next;      /* like h; may be h itself (in place) */\n"
            f"    {s_c} *c_next;      /* like c; may be c itself (in place) */\n"
            f"}} {prefix}_io;\n")


def include(header: str) -> str:
    """``#include`` of the export's own header by its file name."""
    if any(ch in header for ch in '"\\\n') or not header.isprintable():
        raise ValueError(f"the header name {header!r} cannot be written in an #include line; "
                         f"choose a plainer file name")
    return f'#include "{header}"\n'


def digest(arrays: Iterable[str]) -> str:
    """SHA-256 of the weight arrays' types, sizes and values (not their names, which carry the
    prefix): a prebuilt library is trusted only when its config's digest is the source's."""
    import hashlib

    h = hashlib.sha256()
    for a in arrays:
        after_comment = a.find("*/") + 2 if a.startswith("/*") else 0
        decl = a[a.index("const ", after_comment):]
        ctype, rest = decl.split(" ", 2)[1], decl.split("[", 1)[1]
        h.update(f"{ctype}[{rest}".encode("ascii"))
    return h.hexdigest()


def guard(prefix: str) -> str:
    return f"SLIMEDGE_{prefix.upper()}_H"


def join(parts: Iterable[str]) -> str:
    return "\n".join(p.rstrip("\n") + "\n" for p in parts if p)


__all__ = ["prefix_for", "c_string", "c_float", "c_int", "array", "config_comment",
           "config_array", "read_config_comment", "export_meta", "labels", "size_macros",
           "labels_array", "io_struct", "guard", "include", "digest", "CONFIG_TAG", "ABI", "IO_STRUCT_FIELDS"]
