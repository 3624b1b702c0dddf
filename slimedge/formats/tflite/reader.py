"""Reading a .tflite file's metadata with struct alone (no interpreter).

:func:`read_metadata` walks the flatbuffer by hand (the few tables on the way to the Metadata
entries), so the ``litert`` and ``tflm`` backends, the profiler and :mod:`slimedge.formats` read a
model's config without importing an interpreter; :func:`read_config` is the format table's reader.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

from ...errors import ModelFileError
from ..model_info import LIMITS, METADATA_KEY, parse_json

FILE_IDENTIFIER = b"TFL3"

# ---- the Metadata entries of a TFLite flatbuffer, read with struct alone ------------------------
# Model table fields: 0 version, 1 operator_codes, 2 subgraphs, 3 description, 4 buffers,
# 5 metadata_buffer, 6 metadata, 7 signature_defs; Metadata: 0 name, 1 buffer;
# Buffer: 0 data, 1 offset, 2 size (offset/size: data stored after the flatbuffer, for > 2 GB).


def read_metadata(buf: bytes) -> dict[str, bytes]:
    """name -> bytes of every Metadata entry; ModelFileError if ``buf`` is not a TFLite model."""
    if len(buf) < 8 or buf[4:8] != FILE_IDENTIFIER:
        raise ModelFileError("not a TFLite model (no 'TFL3' file identifier; truncated or another "
                             "kind of file?)")
    try:
        model = _u32(buf, 0)
        buffers = _vector(buf, _field(buf, model, 4))
        out, copied = {}, 0
        entries = _vector(buf, _field(buf, model, 6))
        if len(entries) > LIMITS["tflite_metadata"]:
            raise ModelFileError(f"a TFLite model with {len(entries):,} Metadata entries, more than "
                                 f"the {LIMITS['tflite_metadata']:,} slimedge reads (forged?)")
        for meta in entries:
            name_at = _field(buf, meta, 0)
            name = _string(buf, name_at) if name_at is not None else ""
            at = _field(buf, meta, 1)
            index = _u32(buf, at) if at is not None else 0
            out[name] = _buffer_bytes(buf, buffers[index])
            copied += len(out[name])
            if copied > len(buf):  # entries sharing one large buffer: a copy each would add up
                raise ModelFileError(f"a TFLite model whose Metadata entries hold more bytes "
                                     f"({copied:,}) than the file ({len(buf):,}); forged?")
        return out
    except (struct.error, IndexError):
        raise ModelFileError(f"a truncated or damaged TFLite model (its flatbuffer points past "
                             f"the end of its {len(buf)} bytes)") from None


def read_config(path: str | os.PathLike | bytes) -> dict:
    """The slimedge config JSON stored in a .tflite file (or its bytes), without an interpreter.

    Raises ModelFileError naming the file when it is not a TFLite model, is truncated, has no
    ``slimedge`` Metadata entry, or that entry is not a JSON object."""
    if isinstance(path, (bytes, bytearray, memoryview)):
        where, data = "TFLite model", bytes(path)
    else:
        where = os.fspath(path)
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise ModelFileError(f"{where}: cannot read it ({e.strerror or e})") from None
    try:
        entries = read_metadata(data)
    except ModelFileError as e:
        raise ModelFileError(f"{where}: {e}") from None
    if METADATA_KEY not in entries:
        raise ModelFileError(f"{where}: a valid TFLite model, but not a slimedge export (no "
                             f"'{METADATA_KEY}' entry in its metadata)")
    return parse_json(entries[METADATA_KEY], where)


def _u32(b: bytes, at: int) -> int:
    return struct.unpack_from("<I", b, at)[0]


def _field(b: bytes, table: int, index: int) -> int | None:
    vtable = table - struct.unpack_from("<i", b, table)[0]
    slot = 4 + 2 * index
    if slot >= struct.unpack_from("<H", b, vtable)[0]:
        return None
    off = struct.unpack_from("<H", b, vtable + slot)[0]
    return table + off if off else None


def _vector(b: bytes, at: int | None) -> list[int]:
    """The table positions of a vector of tables (empty when the field is absent)."""
    if at is None:
        return []
    start = at + _u32(b, at)
    n = _u32(b, start)
    if start + 4 + 4 * n > len(b):
        raise IndexError("vector runs past the end of the file")
    return [start + 4 + 4 * k + _u32(b, start + 4 + 4 * k) for k in range(n)]


def _string(b: bytes, at: int) -> str:
    start = at + _u32(b, at)
    n = _u32(b, start)
    if start + 4 + n > len(b):
        raise IndexError("string runs past the end of the file")
    return b[start + 4:start + 4 + n].decode("utf-8", errors="replace")


def _buffer_bytes(b: bytes, table: int) -> bytes:
    at = _field(b, table, 0)
    if at is not None:
        start = at + _u32(b, at)
        n = _u32(b, start)
        if start + 4 + n > len(b):
            raise IndexError("buffer runs past the end of the file")
        return bytes(b[start + 4:start + 4 + n])
    off_at, size_at = _field(b, table, 1), _field(b, table, 2)
    if off_at is None or size_at is None:
        return b""
    off, size = struct.unpack_from("<Q", b, off_at)[0], struct.unpack_from("<Q", b, size_at)[0]
    if off + size > len(b):
        raise IndexError("buffer runs past the end of the file")
    return bytes(b[off:off + size])


__all__ = ["read_metadata", "read_config", "FILE_IDENTIFIER"]
