"""Reading a C export: which files make it up, its config (read without compiling), and the
contract the writer (:mod:`slimedge.exporters.c`) and the ``c`` backend share.

An export is a ``.c``, its ``.h`` and the fixed kernel header ``slimedge_kernels.h`` (this
package's own copy, :func:`kernels_text`), in one folder. The model's config JSON is the string
literal ``const char PREFIX_config[]`` at the end of the ``.c`` (files written before there was
one: a tagged comment line). The identifier prefix is the file's stem made a C identifier.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..._io import read_regular
from ...errors import ModelFileError, UsageError
from ..model_info import parse_json

SUFFIX, HEADER_SUFFIX = ".c", ".h"
CONFIG_TAG = "slimedge-config: "
"""The comment line holding the model's config JSON starts with ``/* `` and this tag."""
ABI = 1
"""Version of the generated functions' interface (recorded in the config's export section)."""
IO_STRUCT_FIELDS = ("batch", "x", "h", "c", "y", "h_next", "c_next")
"""Members of the generated ``PREFIX_io`` struct, in order (int batch, then six pointers)."""


SOURCE_LIMIT = 1 << 30
"""The most bytes a ``.c`` may hold (float weights at the parameter cap take about that much)."""
HEADER_LIMIT = 16 << 20
"""The most bytes the ``.h`` or the kernel header may hold."""
HEADER_DIGEST, KERNELS_DIGEST = "header_sha256", "kernels_sha256"
"""Keys of the config's ``export`` section holding the SHA-256 of the ``.h`` and of the kernel
header written with the ``.c``: the ``.c``'s own digest covers them, so the digest covers every
file that is compiled."""
HEADER_PLACEHOLDER = "f" * 64
"""The ``.h`` digest as the generator writes it, before the writer fills in the real one."""

KERNELS = "slimedge_kernels.h"
"""The fixed kernel header every export includes, written beside it (the package's own copy)."""


def kernels_text() -> str:
    """The kernel header, as shipped in this package."""
    return (Path(__file__).with_name(KERNELS)).read_text(encoding="ascii")


def prefix_for(path: str | Path) -> str:
    """The C identifier prefix of an export: the file's stem, with every character that cannot be
    part of an identifier replaced by ``_`` (and ``m_`` in front of a leading digit)."""
    stem = Path(path).stem
    name = re.sub(r"[^A-Za-z0-9_]", "_", stem)
    if not name or name[0].isdigit():
        name = "m_" + name
    return name


_LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r'\\([0-7]{1,3}|.)')


def _unescape(body: str) -> bytes:
    def one(m: re.Match) -> str:
        e = m.group(1)
        return chr(int(e, 8)) if e[0] in "01234567" else e
    return _ESCAPE.sub(one, body).encode("latin-1")


def config_of_text(text: str) -> dict | None:
    """The config JSON of an export's ``.c`` text: its ``PREFIX_config`` string literal (or, in a
    file written before there was one, the tagged comment line); None when it has neither."""
    data = config_bytes(text)
    if data is None:
        return read_config_comment(text)
    return json.loads(data.decode("utf-8"))


def config_bytes(text: str) -> bytes | None:
    """The bytes of the ``.c`` text's ``PREFIX_config`` string (as a compiler stores them), or
    None when it has none."""
    m = re.search(r"^const char \w+_config\[\] =\n((?:[ \t]*\"(?:[^\"\\\n]|\\.)*\"\s*)+);",
                  text, re.MULTILINE)
    if m is None:
        return None
    return b"".join(_unescape(lit) for lit in _LITERAL.findall(m.group(1)))


def read_config_comment(text: str) -> dict | None:
    """The config JSON from the tagged comment line of an older export, or None."""
    start = text.find("/* " + CONFIG_TAG)
    if start < 0:
        return None
    start += 3 + len(CONFIG_TAG)
    end = text.find(" */", start)
    if end < 0:
        return None
    return json.loads(text[start:end])


def resolve(path: str | os.PathLike) -> Path:
    """The ``.c`` of an export: ``path`` itself, or the one slimedge export in a folder."""
    path = Path(path)
    if not path.is_dir():
        return path
    found = []
    for c in sorted(path.glob(f"*{SUFFIX}")):
        try:  # a FIFO or device named *.c is skipped (reading it would block), so is a huge file
            text = read_regular(c, "C source", SOURCE_LIMIT).decode("ascii", errors="replace")
            if config_of_text(text) is not None:
                found.append(c)
        except (OSError, ValueError, RecursionError):
            continue
    if len(found) != 1:
        what = "no slimedge C export" if not found else (
            f"{len(found)} slimedge C exports ({', '.join(p.name for p in found)}); name one")
        raise ModelFileError(f"{path}: a folder holding {what}")
    return found[0]


def read_config(path: str | os.PathLike) -> dict:
    """The model's config JSON stored in a C export (the ``.c``, its ``.h``, or their folder),
    read without compiling. Raises ModelFileError (a ValueError) naming the file."""
    path = resolve(path)
    if path.suffix == HEADER_SUFFIX and path.with_suffix(SUFFIX).is_file():
        path = path.with_suffix(SUFFIX)  # the config is in the .c
    return config_of_bytes(read_source(path), path)


def read_source(path: str | os.PathLike) -> bytes:
    """The bytes of an export's ``.c`` (a regular file of at most :data:`SOURCE_LIMIT` bytes).
    Raises ModelFileError naming it."""
    try:
        return read_regular(path, "C source", SOURCE_LIMIT)
    except UsageError as e:
        raise ModelFileError(str(e)) from None
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read it ({e.strerror or e})") from None


def config_of_bytes(data: bytes, path: str | os.PathLike) -> dict:
    """The checked config of the ``.c`` bytes ``data`` (read from ``path``, named in errors)."""
    text = data.decode("ascii", errors="replace")
    try:
        config = config_of_text(text)
    except (ValueError, RecursionError) as e:
        raise ModelFileError(f"{path}: its slimedge config line is not valid JSON "
                             f"({type(e).__name__})") from None
    if config is not None:
        config = parse_json(json.dumps(config), path)  # nesting and type checks
    if config is None:
        raise ModelFileError(f"{path}: not a slimedge C export (no 'const char PREFIX_config[]' "
                             f"string with the model's config)")
    if not isinstance(config, dict) or not isinstance(config.get("export"), dict) \
            or "prefix" not in config["export"]:
        raise ModelFileError(f"{path}: its slimedge config has no export section naming the "
                             f"C identifier prefix")
    return config


__all__ = ["read_config", "read_source", "config_of_bytes", "resolve", "SOURCE_LIMIT",
           "HEADER_LIMIT", "HEADER_DIGEST", "KERNELS_DIGEST", "HEADER_PLACEHOLDER", "config_bytes",
           "prefix_for", "kernels_text", "KERNELS", "ABI", "CONFIG_TAG",
           "IO_STRUCT_FIELDS"]
