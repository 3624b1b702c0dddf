"""Atomic file output: every file slimedge writes appears whole or not at all.

A writer gets a fresh temporary name beside the target (so the final rename stays on one file
system) and creates the file; it gets the permissions the user's umask gives a new file, and is renamed
over the target only when the writer returns; on any error the temporary file is removed and an
existing target is left untouched.

A process killed while it writes (SIGKILL, a power cut) cannot remove its temporary file or
folder; the name holds the writing process's host and PID (``.NAME.HOST-PID-RANDOM.tmp``), so the
next write beside the same target removes those of this host's processes that are gone. (The
command line turns SIGTERM into a normal exit, which removes its own.)
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import secrets
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import DataError, Locked, UsageError

_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _temp_prefix(path: Path) -> str:
    """The start of this process's temporary names beside ``path``; old ones of dead processes
    are removed first (see the module's docstring)."""
    mine = f".{path.name}.{_HOST}-"
    for old in path.parent.glob(f"{glob.escape(mine)}*-*.tmp*"):
        pid = old.name[len(mine):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    old.unlink()
    return f"{mine}{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block succeeds.

    ``suffix`` is appended to the temporary name for writers that insist on a file extension.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{_temp_prefix(path)}{secrets.token_hex(4)}.tmp{suffix}"
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
    suffix from ``companions``, such as a C header, or a fixed file name from it), over their
    targets. On any error nothing
    reaches the targets and the folder is removed. For writers that make several files or insist
    on the file's own name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        tmp = folder / path.name
        yield tmp
        beside = lambda p, s: p.with_suffix(s) if s.startswith(".") else p.with_name(s)  # noqa: E731
        for made, target in [*((beside(tmp, s), beside(path, s)) for s in companions),
                             (tmp, path)]:
            if made.exists():
                os.chmod(made, 0o666 & ~_umask())
                os.replace(made, target)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``path``; when the block succeeds, give it the
    permissions the umask gives a new folder and rename it to ``path``, which must not exist
    (UsageError). On any error the folder and what was written in it are removed."""
    path = Path(path)
    if path.exists():
        raise UsageError(f"{path}: already exists; give a new folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        os.rename(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


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


# ---- outputs vs inputs, locks, regular files ----------------------------------------------------
def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Do ``a`` and ``b`` name one file (through symlinks, hard links, ``..``)? A path that does not
    exist yet is compared by its resolved name."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
        return os.path.realpath(a) == os.path.realpath(b)
    except (OSError, ValueError):
        return False


def check_distinct(outputs, inputs) -> None:
    """Refuse (UsageError) an output path that is one of the command's inputs, or another of its
    outputs: ``outputs`` and ``inputs`` are ``(what, path)`` pairs (path None: not given)."""
    outputs = [(w, Path(p)) for w, p in outputs if p is not None]
    inputs = [(w, Path(p)) for w, p in inputs if p is not None]
    for i, (what, out) in enumerate(outputs):
        for other, src in inputs:
            if same_file(out, src):
                raise UsageError(f"{what} {out}: it is the {other} ({src}); writing there would "
                                 f"replace it. Give another file name")
        for other, out2 in outputs[i + 1:]:
            if same_file(out, out2):
                raise UsageError(f"{what} {out} and {other} {out2} are one file; give each its "
                                 f"own name")


@contextmanager
def locked(path: str | os.PathLike, what: str = "output") -> Iterator[Path]:
    """Hold an exclusive lock on ``path``'s lock file (``.NAME.lock`` beside it) for the block; a
    second process asking for it is refused at once (:class:`Locked`) rather than mixing its
    files with the first's. The lock is the kernel's (``flock``): it dies with its process, so a
    killed run leaves nothing that blocks the next (a stale lock file is simply reused)."""
    path = Path(path)
    lock = path.parent / f".{path.name}.lock"
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield lock
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise Locked(f"{what} {path}: another slimedge process is writing it now (lock "
                         f"{lock}); wait for it to finish, or choose another file name") from None
        try:  # the file locked is still the one at that name (not one a finishing run removed)
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


def check_regular_file(path: str | os.PathLike, what: str = "file") -> Path:
    """``path`` is a regular file (through symlinks): a FIFO, device or socket would block a read
    or never end, a folder is no file; raises UsageError naming it (FileNotFoundError when absent)."""
    import stat

    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such {what}") from None
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
                else "a device or socket")
        raise UsageError(f"{path}: {kind}, not a regular {what}; slimedge reads files only")
    return path


def npy_header(f, where: str, size: int | None = None):
    """Read a ``.npy`` header from the open binary file ``f``: (shape, dtype, fortran); refuses a
    header whose array is larger than the bytes that follow (``size``: those bytes, when known), so
    a forged header never makes NumPy allocate terabytes. Raises DataError (a ValueError) naming ``where``."""
    import numpy as np

    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        shape, fortran, dtype = (fmt.read_array_header_1_0(f) if version == (1, 0)
                                 else fmt.read_array_header_2_0(f))
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as e:
        raise DataError(f"{where}: not a readable .npy array ({e})") from None
    count = 1
    for d in shape:
        count *= int(d)
    nbytes = count * dtype.itemsize
    if size is not None and nbytes > size - f.tell():
        raise DataError(f"{where}: its header claims a {shape} {dtype} array ({nbytes:,} bytes), "
                        f"more than the {max(size - f.tell(), 0):,} bytes the file holds "
                        f"(truncated or forged)")
    return shape, dtype, fortran


def read_regular(path: str | os.PathLike, what: str = "file", limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path``, checked on the open file itself (a FIFO, device or
    socket is refused without blocking, UsageError; a file swapped in after a check cannot slip
    through), and refused (UsageError) when it holds more than ``limit`` bytes."""
    import stat

    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such {what}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO (named pipe)"
                    if stat.S_ISFIFO(st.st_mode) else "a device or socket")
            raise UsageError(f"{path}: {kind}, not a regular {what}; slimedge reads files only")
        if limit is not None and st.st_size > limit:
            raise UsageError(f"{path}: {st.st_size:,} bytes, more than the {limit:,} a {what} may "
                             f"hold")
        data = f.read() if limit is None else f.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise UsageError(f"{path}: more than the {limit:,} bytes a {what} may hold")
    return data
