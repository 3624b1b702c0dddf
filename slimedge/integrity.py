"""The integrity digest of a model file: one definition for every format.

Every file slimedge writes (checkpoint, training state, ONNX, TFLite, C export) carries, in its
slimedge config JSON, the key :data:`KEY` whose value is 64 hex digits: the SHA-256 of the file's
own bytes with those 64 digits read as zeros. Since the config lies in the file verbatim in every
format (a safetensors header, ONNX ``metadata_props``, a TFLite metadata buffer, the ``.c``'s config
comment), sealing a file is writing it with the placeholder, hashing it and writing the digest over
the placeholder (same length: no offset moves); checking it is the reverse. It covers everything:
weights, graph, metadata. A one-bit flip anywhere changes the digest or (in the key or digest
itself) makes the file look unsealed while its weights are intact.

Checking fails closed: a file without the key (written before there was one), with the
placeholder, or whose digest entry does not parse is an :class:`IntegrityError`
(:class:`UnsealedError` for the first two) naming the file and the way to load it anyway
(``$SLIMEDGE_ALLOW_UNSEALED=1``, ``verify=False``); a mismatch is an :class:`IntegrityError`
naming the file; ``runtime.load(..., verify=False)`` and the command line's ``--no-verify`` load
it anyway. Every writer seals what it writes (the format writers too, not only export).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import IntegrityError, ModelFileError, UnsealedError

KEY = "file_sha256"
PLACEHOLDER = "0" * 64
ENV_ALLOW_UNSEALED = "SLIMEDGE_ALLOW_UNSEALED"
"""Set to 1, files that record no digest (written before there was one) load unchecked."""
# the key and its value as they appear in the file: in plain JSON, or JSON inside a JSON string
# (a safetensors header escapes the quotes)
_PATTERN = re.compile(rb'"' + KEY.encode() + rb'\\?"\s*:\s*\\?"([0-9a-f]{64})\\?"')
# the key followed by anything: a value that is not 64 hex digits (a flipped bit in the digest)
# must not make the file look unsealed (that would turn the check off without a word)
_LOOSE = re.compile(rb'"' + KEY.encode() + rb'\\?"\s*:')


def dumps(config: dict, **options) -> str:
    """``config`` as the JSON a writer stores in a file it then seals (``json.dumps`` with
    ``options``, keys sorted): its digest entry first, and every other occurrence of the key's
    name (a label or a name that holds it) written with its underscore escaped (``\\u005f``, the
    same string once parsed), so the file holds exactly one digest entry whatever its strings
    say."""
    rest = json.dumps({k: v for k, v in config.items() if k != KEY}, sort_keys=True, **options)
    rest = rest.replace(KEY, KEY.replace("_", "\\u005f"))
    if KEY not in config:
        return rest
    head = json.dumps({KEY: config[KEY]}, **options)[:-1]
    return head + ("}" if rest == "{}" else ", " + rest[1:])


def _find(data: bytes, where) -> re.Match | None:
    found = list(_PATTERN.finditer(data))
    if len(found) > 1:
        raise IntegrityError(f"{where}: {len(found)} '{KEY}' entries in the file; cannot tell which "
                             f"is its digest (the file is damaged or forged)")
    if not found and _LOOSE.search(data):
        raise IntegrityError(f"{where}: corrupted: its '{KEY}' entry is not 64 hexadecimal digits, "
                             f"so the file cannot be checked; get the file again (or load it "
                             f"anyway with --no-verify / verify=False, at your own risk)")
    return found[0] if found else None


def _digest(data: bytes, m: re.Match) -> str:
    a, b = m.span(1)
    return hashlib.sha256(data[:a] + PLACEHOLDER.encode() + data[b:]).hexdigest()


def seal(path: str | os.PathLike) -> str:
    """Write the file's digest over its placeholder (or its old digest); returns the digest.
    ModelFileError when the file has no digest entry (its writer left the config out)."""
    path = Path(path)
    data = path.read_bytes()
    m = _find(data, path)
    if m is None:
        raise ModelFileError(f"{path}: no '{KEY}' entry to seal (a writer that drops the config)")
    digest = _digest(data, m)
    a, b = m.span(1)
    with open(path, "r+b") as f:
        f.seek(a)
        f.write(digest.encode())
    return digest


def recorded(path: str | os.PathLike) -> str | None:
    """The digest the file records, or None when it records none."""
    m = _find(Path(path).read_bytes(), path)
    return None if m is None else m.group(1).decode()


def recorded_bytes(data: bytes, where="the file") -> str | None:
    """:func:`recorded` of bytes already read."""
    m = _find(data, where)
    return None if m is None else m.group(1).decode()


_state = threading.local()


@contextmanager
def unchecked() -> Iterator[None]:
    """In this block (this thread), :func:`verify` checks nothing: loading a file anyway."""
    old = getattr(_state, "off", False)
    _state.off = True
    try:
        yield
    finally:
        _state.off = old


def checking() -> bool:
    """Whether :func:`verify` checks files in this thread now (False inside :func:`unchecked`)."""
    return not getattr(_state, "off", False)


def verify(path: str | os.PathLike) -> bool:
    """Check the file against the digest it records: True when it matches, False when it records
    none (an older file) or inside :func:`unchecked`; IntegrityError naming the file when it does
    not match, or when its digest entry does not parse."""
    if getattr(_state, "off", False):
        return False
    path = Path(path)
    return verify_bytes(path.read_bytes(), path)


def verify_bytes(data: bytes, where) -> bool:
    """:func:`verify` on bytes already read (``where`` names them in errors), for a reader that
    must use exactly the bytes it checked (the C backend compiles them)."""
    if getattr(_state, "off", False):
        return False
    path = where
    m = _find(data, path)
    want = None if m is None else m.group(1).decode()
    if want is None or want == PLACEHOLDER:  # fail closed: no digest, no check, no load
        if os.environ.get(ENV_ALLOW_UNSEALED, "").strip() == "1":
            return False
        what = "is the placeholder" if want else "missing"
        raise UnsealedError(f"{path}: records no integrity digest ('{KEY}' {what}: "
                            f"written by an older slimedge, by a format's writer directly, or "
                            f"damaged), so it cannot be checked; export it again, or load it "
                            f"anyway if you trust it: {ENV_ALLOW_UNSEALED}=1 (any command), "
                            f"--no-verify (slimedge run) or verify=False")
    if _digest(data, m) != want:
        raise IntegrityError(f"{path}: corrupted: its bytes do not match the SHA-256 digest it "
                             f"records; get the file again (or load it anyway with --no-verify / "
                             f"verify=False, at your own risk)")
    return True


__all__ = ["dumps", "seal", "verify", "verify_bytes", "checking", "recorded", "recorded_bytes", "unchecked"]
