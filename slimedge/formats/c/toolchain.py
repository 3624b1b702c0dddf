"""The host C toolchain for C exports: find a compiler, build a shared library, cache it, load it.

* **Compiler**: ``$CC`` when set (it may carry arguments, e.g. ``"ccache gcc"``), else the first
  of ``cc``, ``gcc``, ``clang`` on ``PATH``. None: :class:`CompilerNotFound` (a ValueError) saying
  to install gcc or clang, or to export with ``--no-validate`` (writing the files needs no
  compiler).
* **Flags**: ``$SLIMEDGE_CFLAGS`` when set, else ``-O3 -march=native -ffast-math`` (without
  ``-march=native`` where the compiler refuses it); always ``-std=c99 -fPIC``; linked
  ``-shared`` with ``-lm`` and no other flag, so the library never carries gcc's ``crtfastmath.o``
  (which would set the loading process to flush denormals to zero).
* **Renamed files**: a ``.c``/``.h`` pair renamed together still builds (the header beside the
  ``.c`` is given the name the source includes).
* **Kernels**: the export's ``slimedge_kernels.h`` beside it is compiled with it (the package's
  own copy where it is missing).
* **Cache**: one library per (source, header, kernel header, compiler, flags, machine), named by
  the SHA-256 of those, in ``$SLIMEDGE_CACHE`` or ``~/.cache/slimedge/c``. The source is copied into a private
  temporary folder, compiled there and renamed into the cache in one step, so two processes
  compiling one model at once both end with a whole library, and an edit to the file during a
  build cannot leave a library that does not match its key.
* **Prebuilt**: a shared library beside the ``.c`` with the same stem (``model.so``; ``.dylib`` on
  macOS, ``.dll`` on Windows) is loaded instead of compiling, when its embedded config equals the
  ``.c``'s (which includes a digest of the weights).
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from ...errors import CompileError, CompilerNotFound
from . import reader as src

DEFAULT_CFLAGS = ("-O3", "-march=native", "-ffast-math")
REQUIRED_CFLAGS = ("-std=c99", "-fPIC")  # then linked with -shared alone
LIBS = ("-lm",)
CANDIDATES = ("cc", "gcc", "clang")
ENV_CC, ENV_CFLAGS, ENV_CACHE = "CC", "SLIMEDGE_CFLAGS", "SLIMEDGE_CACHE"
COMPILE_TIMEOUT_S = 300


def library_suffix() -> str:
    return {"darwin": ".dylib", "win32": ".dll"}.get(sys.platform, ".so")


def find_compiler() -> list[str]:
    """The compiler command (a list: ``$CC`` may hold arguments)."""
    env = os.environ.get(ENV_CC, "").strip()
    if env:
        cmd = shlex.split(env)
        if shutil.which(cmd[0]) is None:
            raise CompilerNotFound(f"${ENV_CC}={env!r}, but {cmd[0]!r} is not an executable on "
                                   f"PATH; install gcc or clang, fix ${ENV_CC}, or export with "
                                   f"--no-validate (the C files need no compiler to be written)")
        return cmd
    for name in CANDIDATES:
        if shutil.which(name):
            return [name]
    raise CompilerNotFound("no C compiler found (looked for $CC, then cc, gcc and clang on PATH): "
                           "install gcc or clang (e.g. apt-get install gcc), or export with "
                           "--no-validate to write the C files without compiling them")


def have_compiler() -> bool:
    try:
        find_compiler()
        return True
    except CompilerNotFound:
        return False


_identity: dict[tuple[str, ...], str] = {}
_lock = threading.Lock()


def compiler_identity(cmd: list[str]) -> str:
    """The compiler's resolved path and first ``--version`` line (part of the cache key)."""
    key = tuple(cmd)
    with _lock:
        if key not in _identity:
            try:
                out = subprocess.run([*cmd, "--version"], capture_output=True, text=True,
                                     timeout=60).stdout.strip().splitlines()
            except (OSError, subprocess.TimeoutExpired) as e:
                raise CompilerNotFound(f"the C compiler {' '.join(cmd)!r} does not run: {e}") from None
            _identity[key] = f"{shutil.which(cmd[0])} {out[0] if out else ''}"
        return _identity[key]


def user_cflags() -> list[str] | None:
    env = os.environ.get(ENV_CFLAGS)
    return shlex.split(env) if env is not None and env.strip() else None


def cache_dir() -> Path:
    env = os.environ.get(ENV_CACHE, "").strip()
    return Path(env) / "c" if env else Path.home() / ".cache" / "slimedge" / "c"


def _key(parts: list[bytes]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()


def _sources(c_path: Path) -> tuple[bytes, Path, bytes | None]:
    try:
        c_text = c_path.read_bytes()
    except OSError as e:
        raise FileNotFoundError(f"{c_path}: cannot read the C source ({e.strerror})") from None
    h_path = c_path.with_suffix(".h")
    return c_text, h_path, (h_path.read_bytes() if h_path.is_file() else None)


def included_header(c_text: bytes, default: str) -> str:
    """The header file name an export's source includes (``#include "NAME"``)."""
    m = re.search(rb'^#include "([^"/\\\\]+)"', c_text, re.MULTILINE)
    return m.group(1).decode("utf-8", "replace") if m else default


def compile_library(c_path: str | os.PathLike, out: str | os.PathLike, *,
                    flags: list[str] | None = None, cc: list[str] | None = None,
                    extra: tuple[str, ...] = (), name: str | os.PathLike | None = None) -> list[str]:
    """Compile ``c_path`` (its header beside it) into the shared library ``out``; returns the
    command used. Raises :class:`CompileError` with the compiler's messages, naming the file
    as ``name`` (default: ``c_path``)."""
    cc = cc or find_compiler()
    own = flags is None and user_cflags() is None
    flags = list(flags) if flags is not None else (user_cflags() or list(DEFAULT_CFLAGS))
    obj = Path(out).with_suffix(".o")
    # Compiled and linked in two steps: linked with -ffast-math, gcc adds crtfastmath.o to the
    # library, which switches the whole process that loads it to flush denormals to zero
    # (numpy and everything else in the app would then compute differently).
    # the kernel header: beside the source first (a quoted #include looks there), else the
    # package's own copy
    kernels = f"-I{Path(__file__).parent}"
    compile_cmd = lambda fl: [*cc, *fl, *REQUIRED_CFLAGS, *extra, kernels, "-c", "-o",
                              os.fspath(obj), os.fspath(c_path)]
    cmd = compile_cmd(flags)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
    if res.returncode != 0 and own and "-march=native" in flags:
        # some compilers (or targets) refuse -march=native: the same without it
        flags = [f for f in flags if f != "-march=native"]
        cmd = compile_cmd(flags)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
    if res.returncode == 0:
        link = [*cc, "-shared", "-o", os.fspath(out), os.fspath(obj), *LIBS]
        res = subprocess.run(link, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
        cmd = [*cmd, "&&", *link]
        obj.unlink(missing_ok=True)
    if res.returncode != 0:
        raise CompileError(f"{name or c_path}: the C compiler failed ({' '.join(cmd)}):\n"
                           f"{(res.stderr or res.stdout).strip()[-4000:]}")
    return cmd


def build(c_path: str | os.PathLike) -> Path:
    """The shared library of the export ``c_path``, from the cache or compiled into it now."""
    c_path = Path(c_path)
    c_text, h_path, h_text = _sources(c_path)
    k_path = c_path.with_name(src.KERNELS)  # the kernel header beside it, else the package's
    k_text = k_path.read_bytes() if k_path.is_file() else src.kernels_text().encode("ascii")
    cc = find_compiler()
    flags = user_cflags() or list(DEFAULT_CFLAGS)
    key = _key([c_text, h_text or b"", k_text, compiler_identity(cc).encode(), " ".join(flags).encode(),
                f"{platform.system()} {platform.machine()} {sys.platform}".encode(),
                str(src.ABI).encode()])
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # an unwritable home: a private cache for this process
        folder = Path(tempfile.mkdtemp(prefix="slimedge-c-"))
    lib = folder / f"{src.prefix_for(c_path)}-{key[:32]}{library_suffix()}"
    if lib.is_file():
        return lib
    with tempfile.TemporaryDirectory(prefix=".build-", dir=folder) as tmp:
        work = Path(tmp)
        (work / c_path.name).write_bytes(c_text)
        if h_text is not None:  # under the name the .c includes (the pair may have been renamed)
            (work / included_header(c_text, h_path.name)).write_bytes(h_text)
        (work / src.KERNELS).write_bytes(k_text)
        out = work / lib.name
        compile_library(work / c_path.name, out, cc=cc, name=c_path)
        os.replace(out, lib)  # atomic: another process may have put the same library there
    return lib


def prebuilt(c_path: Path) -> Path | None:
    """The shared library beside the ``.c`` (same stem), if there is one."""
    lib = c_path.with_suffix(library_suffix())
    return lib if lib.is_file() else None


def embedded_config(lib: ctypes.CDLL, prefix: str) -> dict | None:
    """The config JSON a compiled export carries (``PREFIX_config``), or None."""
    try:
        first = ctypes.c_char.in_dll(lib, f"{prefix}_config")
    except ValueError:
        return None
    try:
        return json.loads(ctypes.string_at(ctypes.addressof(first)).decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def load(c_path: str | os.PathLike, config: dict, *, allow_prebuilt: bool = True) -> tuple[ctypes.CDLL, str]:
    """The export's shared library loaded with ctypes, and where it came from.

    A prebuilt library beside the file is used when its embedded config equals ``config`` (the
    ``.c``'s own); otherwise the library is built (or found) in the cache.
    """
    c_path = Path(c_path)
    prefix = config["export"]["prefix"]
    lib_path = prebuilt(c_path) if allow_prebuilt else None
    if lib_path is not None:
        lib = ctypes.CDLL(os.fspath(lib_path.resolve()))
        if embedded_config(lib, prefix) == config:
            return lib, f"prebuilt {lib_path}"
        lib_path = None  # a stale or foreign library: compile the source instead
    lib_path = build(c_path)
    lib = ctypes.CDLL(os.fspath(lib_path))
    return lib, f"compiled {lib_path}"


def describe() -> str:
    """The compiler and flags in use, in words (``"gcc ... -O3 -march=native -ffast-math"``)."""
    cc = find_compiler()
    return f"{compiler_identity(cc)}; {' '.join(user_cflags() or DEFAULT_CFLAGS)}"


__all__ = ["find_compiler", "have_compiler", "build", "load", "compile_library", "prebuilt",
           "cache_dir", "describe", "library_suffix", "CompilerNotFound", "CompileError",
           "DEFAULT_CFLAGS", "embedded_config"]
