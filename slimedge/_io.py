"""Atomic file output: every file slimedge writes appears whole or not at all.

A writer gets a fresh temporary name beside the target (so the final rename stays on one file
system) and creates the file; it gets the permissions the user's umask gives a new file, and is renamed
over the target only when the writer returns; on any error the temporary file is removed and an
existing target is left untouched.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import UsageError


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block succeeds.

    ``suffix`` is appended to the temporary name for writers that insist on a file extension.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp{suffix}"
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # some writers (safetensors) create files 0600
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_files(path: str | os.PathLike, companions: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield ``path``'s name inside a fresh temporary folder beside it; when the block succeeds,
    move the file there, and each companion the writer made beside it (the same stem with a
    suffix from ``companions``, such as a C header), over their targets. On any error nothing
    reaches the targets and the folder is removed. For writers that make several files or insist
    on the file's own name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        tmp = folder / path.name
        yield tmp
        for made, target in [*((tmp.with_suffix(s), path.with_suffix(s)) for s in companions),
                             (tmp, path)]:
            if made.exists():
                os.chmod(made, 0o666 & ~_umask())
                os.replace(made, target)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_writable(path: str | os.PathLike, what: str = "") -> None:
    """Fail now, before minutes of work, if ``path`` cannot be written later: it is a directory, or
    its folder is not one, cannot be created, or takes no new file. Probed for real (a folder made
    and a file created, then both removed), since permission bits do not tell for root or for a
    read-only file system."""
    path = Path(path)
    what = f"{what} " if what else ""
    if path.is_dir():
        raise UsageError(f"{what}{path}: is a directory; give a file name")
    parent = path.parent
    missing, top = [], parent
    while not top.exists() and top != top.parent:
        missing.append(top)
        top = top.parent
    if not top.is_dir():
        raise UsageError(f"{what}{path}: cannot write there, {top} is not a directory")
    made = []
    try:
        for d in reversed(missing):
            d.mkdir()
            made.append(d)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UsageError(f"{what}{path}: cannot write there ({e.strerror or e})") from None
    finally:
        for d in reversed(made):
            with contextlib.suppress(OSError):
                d.rmdir()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
