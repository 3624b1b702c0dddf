"""Reading one WAV file: mono 16-bit PCM (or 32-bit float) at an expected rate, strictly.

:func:`read_wav` parses the RIFF chunks itself (``struct``, no dependency) and accepts PCM
int16 and IEEE float32 mono. Anything else raises :class:`~slimedge.errors.DataError` naming the
file: a rate other than the one asked for (no resampling is done: convert the files first), more
than one channel, 8-bit or 24-bit samples, a truncated or non-RIFF header, no ``data`` chunk,
zero samples, a float WAV holding NaN or infinity.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ..errors import DataError

PCM, IEEE_FLOAT, EXTENSIBLE = 1, 3, 0xFFFE


def read_wav(path: str | Path, *, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """(samples, rate): int16 (n,) for PCM files, float32 (n,) for float files."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise DataError(f"{path}: not a WAV file (no RIFF/WAVE header)")
    fmt, data, pos = None, None, 12
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        body = raw[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            if len(body) < 16:
                raise DataError(f"{path}: truncated fmt chunk")
            fmt = struct.unpack("<HHIIHH", body[:16])
            if fmt[0] == EXTENSIBLE and len(body) >= 26:
                fmt = (struct.unpack("<H", body[24:26])[0], *fmt[1:])
        elif cid == b"data":
            if len(body) < size:
                raise DataError(f"{path}: truncated: the data chunk claims {size} bytes, "
                                f"{len(body)} are there")
            data = body
            break
        pos += 8 + size + (size & 1)
    if fmt is None:
        raise DataError(f"{path}: truncated header (no fmt chunk)")
    if data is None:
        raise DataError(f"{path}: truncated (no data chunk)")
    tag, channels, rate, _, _, bits = fmt
    if channels != 1:
        raise DataError(f"{path}: {channels} channels; slimedge reads mono WAVs (mix down first)")
    if sample_rate is not None and rate != sample_rate:
        raise DataError(f"{path}: sampled at {rate} Hz, the front-end expects {sample_rate} Hz "
                        f"(no resampling is done: convert the file)")
    if tag == PCM and bits == 16:
        x = np.frombuffer(data[:len(data) // 2 * 2], "<i2").astype(np.int16)
    elif tag == IEEE_FLOAT and bits == 32:
        x = np.frombuffer(data[:len(data) // 4 * 4], "<f4").astype(np.float32)
        if not np.isfinite(x).all():
            raise DataError(f"{path}: float samples hold NaN or infinity")
    else:
        kind = "PCM" if tag == PCM else "float" if tag == IEEE_FLOAT else f"format {tag}"
        raise DataError(f"{path}: {bits}-bit {kind} samples; slimedge reads 16-bit PCM or "
                        f"32-bit float WAVs")
    if len(x) == 0:
        raise DataError(f"{path}: no samples")
    return x, rate


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write int16 mono PCM (tests and examples)."""
    x = np.asarray(samples, "<i2")
    fmt = struct.pack("<HHIIHH", PCM, 1, sample_rate, sample_rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" \
        + struct.pack("<I", x.nbytes) + x.tobytes()
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


__all__ = ["read_wav", "write_wav"]
