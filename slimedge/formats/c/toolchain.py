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
* **What is compiled**: only bytes the sealed ``.c`` covers. The ``.c`` is read once and checked
  against its digest; its config records the SHA-256 of its ``.h`` and of the kernel header
  (``export.header_sha256``, ``export.kernels_sha256``), and those files are compiled only when
  they match (the kernel header: this package's copy when it is the recorded one, else the
  export's own). The checked bytes are copied into a private build folder and compiled there;
  nothing is read again from the export's folder. An export recording no header digests (an
  older slimedge's) is refused, naming ``--no-verify`` / ``verify=False``, which compile the
  files beside the ``.c`` as they are.
* **Cache**: ``$SLIMEDGE_CACHE/c`` or ``~/.cache/slimedge/c``, created 0700 and refused
  (:class:`CacheError`) when it is owned by another user or open to others (a library in it runs
  in this process). One library per (source, header, kernel header, source name, compiler
  identity, flags, the CPU ``-march=native`` targets, machine, ABI), named by the SHA-256 of
  those and by the SHA-256 of its own bytes, which is checked before it is loaded: a damaged
  entry is removed and rebuilt. Built in a temporary folder inside the cache and renamed into it
  in one step, so two processes compiling one model at once both end with a whole library.
* **Prebuilt**: a shared library beside the ``.c`` with the same stem (``model.so``; ``.dylib``
  on macOS, ``.dll`` on Windows) runs its own code, so it is used only when
  ``$SLIMEDGE_C_PREBUILT=1`` and then only when the ``.c`` is sealed and the library's bytes hold
  the ``.c``'s whole config (its digest included). It is checked as bytes, never loaded to find
  out, and the checked bytes are what is loaded (a copy in the private cache, named by their
  hash).
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import platform
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import NamedTuple

from ... import integrity
from ..._io import read_regular
from ...errors import CacheError, CompileError, CompilerNotFound, IntegrityError, ModelFileError, UsageError
from . import reader as src

log = logging.getLogger("slimedge.runtime")

DEFAULT_CFLAGS = ("-O3", "-march=native", "-ffast-math")
REQUIRED_CFLAGS = ("-std=c99", "-fPIC")  # then linked with -shared alone
LIBS = ("-lm",)
CANDIDATES = ("cc", "gcc", "clang")
ENV_CC, ENV_CFLAGS, ENV_CACHE = "CC", "SLIMEDGE_CFLAGS", "SLIMEDGE_CACHE"
ENV_PREBUILT = "SLIMEDGE_C_PREBUILT"
LIBRARY_LIMIT = 1 << 30  # bytes of a shared library read to be hashed
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


def included_header(c_text: bytes, default: str) -> str:
    """The header file name an export's source includes (``#include "NAME"``)."""
    m = re.search(rb'^#include "([^"/\\\\]+)"', c_text, re.MULTILINE)
    return m.group(1).decode("utf-8", "replace") if m else default


def compile_object(c_path: str | os.PathLike, obj: str | os.PathLike, *,
                   flags: list[str] | None = None, cc: list[str] | None = None,
                   extra: tuple[str, ...] = (), name: str | os.PathLike | None = None,
                   own_kernels: bool = True) -> tuple[list[str], list[str]]:
    """Compile ``c_path`` (its header beside it) into the object file ``obj`` with the backend's
    flags (``flags``, else ``$SLIMEDGE_CFLAGS``, else :data:`DEFAULT_CFLAGS`); returns the
    command used and the flags it ended with. Raises :class:`CompileError` with the compiler's
    messages, naming the file as ``name`` (default: ``c_path``)."""
    cc = cc or find_compiler()
    own = flags is None and user_cflags() is None
    flags = list(flags) if flags is not None else (user_cflags() or list(DEFAULT_CFLAGS))
    # the kernel header: beside the source first (a quoted #include looks there), else the
    # package's own copy
    # (``own_kernels=False``: only the files beside the source, as the cache's builds copy them)
    kernels = [f"-I{Path(__file__).parent}"] if own_kernels else []
    compile_cmd = lambda fl: [*cc, *fl, *REQUIRED_CFLAGS, *extra, *kernels, "-c", "-o",
                              os.fspath(obj), os.fspath(c_path)]
    cmd = compile_cmd(flags)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
    if res.returncode != 0 and own and "-march=native" in flags:
        # some compilers (or targets) refuse -march=native: the same without it
        flags = [f for f in flags if f != "-march=native"]
        cmd = compile_cmd(flags)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
    if res.returncode != 0:
        raise CompileError(f"{name or c_path}: the C compiler failed ({' '.join(cmd)}):\n"
                           f"{(res.stderr or res.stdout).strip()[-4000:]}")
    return cmd, flags


def compile_library(c_path: str | os.PathLike, out: str | os.PathLike, *,
                    flags: list[str] | None = None, cc: list[str] | None = None,
                    extra: tuple[str, ...] = (), name: str | os.PathLike | None = None,
                    own_kernels: bool = True) -> list[str]:
    """Compile ``c_path`` (its header beside it) into the shared library ``out``; returns the
    command used. Raises :class:`CompileError` with the compiler's messages, naming the file
    as ``name`` (default: ``c_path``)."""
    cc = cc or find_compiler()
    obj = Path(out).with_suffix(".o")
    # Compiled and linked in two steps: linked with -ffast-math, gcc adds crtfastmath.o to the
    # library, which switches the whole process that loads it to flush denormals to zero
    # (numpy and everything else in the app would then compute differently).
    cmd, _ = compile_object(c_path, obj, flags=flags, cc=cc, extra=extra, name=name,
                            own_kernels=own_kernels)
    link = [*cc, "-shared", "-o", os.fspath(out), os.fspath(obj), *LIBS]
    res = subprocess.run(link, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
    obj.unlink(missing_ok=True)
    cmd = [*cmd, "&&", *link]
    if res.returncode != 0:
        raise CompileError(f"{name or c_path}: the C compiler failed ({' '.join(cmd)}):\n"
                           f"{(res.stderr or res.stdout).strip()[-4000:]}")
    return cmd


def object_sizes(obj: str | os.PathLike) -> dict:
    """Bytes of an ELF object file that a program image holds: ``code`` (``.text*``) and
    ``constants`` (``.rodata*`` and ``.data*``: read-only data, and initialised data stored in
    flash and copied to RAM), and their ``total``. Needs pyelftools."""
    from elftools.elf.elffile import ELFFile

    sizes = {"code": 0, "constants": 0}
    with open(obj, "rb") as f:
        for s in ELFFile(f).iter_sections():
            if s.name.startswith(".text"):
                sizes["code"] += int(s["sh_size"])
            elif s.name.startswith((".rodata", ".data")):
                sizes["constants"] += int(s["sh_size"])
    sizes["total"] = sizes["code"] + sizes["constants"]
    return sizes


class Sources(NamedTuple):
    """The bytes compiled into an export's library: read once, checked, then copied by the build
    (never read again from the export's folder)."""

    c: bytes
    h: bytes | None
    kernels: bytes


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _companion(path: Path, what: str) -> bytes | None:
    """The bytes of a file beside the ``.c`` (None when there is none); a FIFO or a file over
    :data:`~.reader.HEADER_LIMIT` is refused naming it."""
    if not os.path.lexists(path):
        return None
    try:
        return read_regular(path, what, src.HEADER_LIMIT)
    except UsageError as e:
        raise ModelFileError(str(e)) from None
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read the {what} ({e.strerror or e})") from None


def sources(c_path: str | os.PathLike, c_bytes: bytes | None = None, config: dict | None = None, *,
            check: bool | None = None) -> Sources:
    """The bytes to compile for the export ``c_path``: its ``.c`` (``c_bytes`` when already read),
    its ``.h`` and the kernel header.

    Checked (``check``; default: unless inside :func:`slimedge.integrity.unchecked`): the ``.c``
    against its own digest, and the ``.h`` and kernel header against the digests its config
    records (``export.header_sha256``, ``export.kernels_sha256``), so nothing is compiled that the
    ``.c``'s digest does not cover. The kernel header is this package's copy when it is the one
    recorded, else the export's own when that is. An export that records no header digests
    (written before there were any) is refused, naming the option that loads it anyway.
    Unchecked: the files beside the ``.c`` as they are (the package's kernel header where it has
    none)."""
    c_path = Path(c_path)
    if c_bytes is None:
        c_bytes = src.read_source(c_path)
    if config is None:
        config = src.config_of_bytes(c_bytes, c_path)
    check = integrity.checking() if check is None else check
    h_path, k_path = c_path.with_suffix(src.HEADER_SUFFIX), c_path.with_name(src.KERNELS)
    h = _companion(h_path, "C header")
    beside = _companion(k_path, "kernel header")
    own = src.kernels_text().encode("ascii")
    if not check:
        return Sources(c_bytes, h, beside if beside is not None else own)
    integrity.verify_bytes(c_bytes, c_path)
    export = config["export"]
    want_h, want_k = export.get(src.HEADER_DIGEST), export.get(src.KERNELS_DIGEST)
    if not (isinstance(want_h, str) and isinstance(want_k, str)):
        raise IntegrityError(
            f"{c_path}: its config records no digest of the headers compiled with it "
            f"('export.{src.HEADER_DIGEST}', 'export.{src.KERNELS_DIGEST}'; written by an older "
            f"slimedge), so they cannot be checked before they are compiled and run; export it "
            f"again, or load it anyway with --no-verify / verify=False if you trust its folder")
    if h is None:
        raise ModelFileError(f"{h_path}: missing: the C export {c_path} is compiled with its "
                             f"header; copy the .h with the .c")
    if _sha(h) != want_h:
        raise IntegrityError(f"{h_path}: corrupted: the header does not match the digest its "
                             f"source records ('export.{src.HEADER_DIGEST}' in {c_path}); get the "
                             f"files again (or load them anyway with --no-verify / verify=False, "
                             f"at your own risk)")
    for kernels in (own, beside):
        if kernels is not None and _sha(kernels) == want_k:
            return Sources(c_bytes, h, kernels)
    raise IntegrityError(f"{k_path}: the kernel header is {'missing' if beside is None else 'not the one'} "
                         f"the export was written with ('export.{src.KERNELS_DIGEST}' in {c_path}) "
                         f"and this slimedge's own differs; copy the export's {src.KERNELS} with "
                         f"it (or load it anyway with --no-verify / verify=False, at your own risk)")


_cpu: list[str] = []


def target_cpu(flags: list[str]) -> str:
    """What ``-march=native`` (or ``-mcpu``/``-mtune=native``) compiles for: this machine's CPU
    model and feature flags (empty when the flags name no native target). Part of the cache key,
    so a cache shared by machines (a network home) never hands one a library with instructions
    its CPU lacks."""
    if not any(f.endswith("=native") for f in flags):
        return ""
    with _lock:
        if not _cpu:
            lines = []
            try:
                with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                    for line in f:
                        name = line.split(":", 1)[0].strip()
                        if name in ("vendor_id", "model name", "cpu family", "model", "flags",
                                    "Features", "CPU implementer", "CPU part", "isa"):
                            if line not in lines:
                                lines.append(line)
                        elif not line.strip() and lines:
                            break  # the first processor is enough
            except OSError:
                pass
            _cpu.append("".join(lines) or f"{platform.machine()} {platform.processor()}")
        return _cpu[0]


def _private(folder: Path) -> Path:
    """``folder`` is a private folder of this user: a directory owned by the user, closed to
    everyone else (CacheError otherwise: a library in it is loaded into the process)."""
    st = os.stat(folder)
    if not stat.S_ISDIR(st.st_mode):
        raise CacheError(f"{folder}: the C library cache is not a folder; set ${ENV_CACHE} to a "
                         f"private folder")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise CacheError(f"{folder}: the C library cache belongs to another user (uid "
                         f"{st.st_uid}); its libraries would run in this process, so it is not "
                         f"used. Set ${ENV_CACHE} to a folder of your own")
    if os.name == "posix" and st.st_mode & 0o077:
        raise CacheError(f"{folder}: the C library cache is open to other users (mode "
                         f"{stat.S_IMODE(st.st_mode):o}); its libraries would run in this "
                         f"process, so it must be private: chmod 700 {folder}, or set "
                         f"${ENV_CACHE} to another folder")
    return folder


_fallback: list[Path] = []


def private_cache() -> Path:
    """The library cache folder (:func:`cache_dir`), created 0700 and checked to be private; where
    it cannot be created (an unwritable home), a private temporary folder for this process."""
    folder = cache_dir()
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        with _lock:
            if not _fallback:
                _fallback.append(Path(tempfile.mkdtemp(prefix="slimedge-c-")))
            return _fallback[0]
    return _private(folder)


def _entry(folder: Path, key: str) -> Path | None:
    """The cache's library for ``key`` when its bytes still hash to the digest in its name; a
    damaged entry (truncated, bit-flipped) is removed, to be rebuilt."""
    for lib in sorted(folder.glob(f"{key}-*{library_suffix()}")):
        digest = lib.name[len(key) + 1:-len(library_suffix())]
        try:
            if _sha(read_regular(lib, "cached library", LIBRARY_LIMIT)) == digest:
                return lib
        except (OSError, UsageError):
            pass
        lib.unlink(missing_ok=True)
    return None


def _stage(work: Path, c_path: Path, srcs: Sources) -> Path:
    """The checked bytes written into the folder ``work`` to be compiled there: the ``.c`` under
    its name, the ``.h`` under the name the ``.c`` includes (the pair may have been renamed), the
    kernel header; returns the ``.c``'s path there."""
    (work / c_path.name).write_bytes(srcs.c)
    if srcs.h is not None:
        (work / included_header(srcs.c, c_path.with_suffix(src.HEADER_SUFFIX).name)).write_bytes(srcs.h)
    (work / src.KERNELS).write_bytes(srcs.kernels)
    return work / c_path.name


def compiled_size(c_path: str | os.PathLike, srcs: Sources | None = None) -> dict:
    """What the export's compiled code occupies (its flash on a device): the ``code`` and
    ``constants`` bytes (and their ``total``) of its object file, compiled as :func:`build`
    compiles it (same compiler and flags), every function and constant of the file counted (the
    weights, the labels, the config JSON); also the ``compiler`` and ``flags``. Raises
    :class:`CompileError` when the object is not an ELF file (pyelftools reads it)."""
    from elftools.common.exceptions import ELFError

    c_path = Path(c_path)
    srcs = srcs if srcs is not None else sources(c_path)
    cc = find_compiler()
    with tempfile.TemporaryDirectory(prefix="slimedge-size-") as tmp:
        work = Path(tmp)
        obj = work / "step.o"
        _, flags = compile_object(_stage(work, c_path, srcs), obj, cc=cc, name=c_path,
                                  own_kernels=False)
        try:
            sizes = object_sizes(obj)
        except ELFError as e:
            raise CompileError(f"{c_path}: the compiled object is not an ELF file ({e}); its "
                               f"size is read from ELF sections") from None
    return {**sizes, "compiler": compiler_identity(cc), "flags": " ".join(flags)}


def build(c_path: str | os.PathLike, srcs: Sources | None = None) -> Path:
    """The shared library of the export ``c_path``, from the cache or compiled into it now.

    ``srcs``: the bytes to compile (default: :func:`sources`, checked). The library is named by
    the SHA-256 of everything that went into it (the three files, the source's name, the
    compiler's identity, the flags, the target CPU of ``-march=native``, the machine, the ABI)
    and by the SHA-256 of its own bytes, checked before it is used."""
    c_path = Path(c_path)
    srcs = srcs if srcs is not None else sources(c_path)
    cc = find_compiler()
    flags = user_cflags() or list(DEFAULT_CFLAGS)
    key = _key([srcs.c, srcs.h if srcs.h is not None else b"\0none", srcs.kernels,
                c_path.name.encode("utf-8", "surrogateescape"), compiler_identity(cc).encode(),
                "\0".join(flags).encode(), target_cpu(flags).encode(),
                f"{platform.system()} {platform.machine()} {sys.platform}".encode(),
                str(src.ABI).encode()])
    folder = private_cache()
    lib = _entry(folder, key)
    if lib is not None:
        return lib
    with tempfile.TemporaryDirectory(prefix=".build-", dir=folder) as tmp:
        work = Path(tmp)
        out = work / f"lib{library_suffix()}"
        compile_library(_stage(work, c_path, srcs), out, cc=cc, name=c_path, own_kernels=False)
        lib = folder / f"{key}-{_sha(out.read_bytes())}{library_suffix()}"
        os.replace(out, lib)  # atomic: another process may have put the same library there
    return lib


def prebuilt(c_path: Path) -> Path | None:
    """The shared library beside the ``.c`` (same stem), if there is one."""
    lib = c_path.with_suffix(library_suffix())
    return lib if os.path.lexists(lib) else None


def _use_prebuilt(c_path: Path, srcs: Sources, check: bool) -> Path | None:
    """A private copy of the prebuilt library beside the ``.c``, checked without loading it: used
    only when ``$SLIMEDGE_C_PREBUILT=1`` and its bytes hold the ``.c``'s whole config (which
    holds the ``.c``'s digest, and that the digests of the headers; checked: the ``.c`` must be
    sealed). The checked bytes are what is loaded (copied into the private cache under their
    hash), so the file cannot change between check and load."""
    lib = prebuilt(c_path)
    if lib is None:
        return None
    if os.environ.get(ENV_PREBUILT, "").strip() != "1":
        log.info("%s: not loaded (a prebuilt library runs its own code; set $%s=1 to use libraries "
                 "built from the sealed export beside it)", lib, ENV_PREBUILT)
        return None
    raw = src.config_bytes(srcs.c.decode("ascii", errors="replace"))
    if raw is None or (check and integrity.recorded_bytes(srcs.c) in (None, integrity.PLACEHOLDER)):
        log.info("%s: not loaded (its source %s is not a sealed export)", lib, c_path)
        return None
    try:
        data = read_regular(lib, "shared library", LIBRARY_LIMIT)
    except UsageError as e:
        raise ModelFileError(str(e)) from None
    if raw + b"\0" not in data:
        log.info("%s: not loaded (built from another source than %s)", lib, c_path)
        return None
    folder = private_cache()
    copy = folder / f"prebuilt-{_sha(data)}{library_suffix()}"
    if _entry(folder, "prebuilt") != copy:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".prebuilt-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, copy)
    return copy


def load(c_path: str | os.PathLike, config: dict, *, allow_prebuilt: bool = True) -> tuple[ctypes.CDLL, str]:
    """The export's shared library loaded with ctypes, and where it came from.

    The ``.c`` is read once; checked (unless inside :func:`slimedge.integrity.unchecked`), it must
    match its digest and the headers the digests it records (:func:`sources`), before anything is
    compiled or loaded. A prebuilt library beside the file is used when allowed (see
    :func:`_use_prebuilt`; never opened to find out); otherwise the library is built (or found,
    checked) in the private cache.
    """
    c_path = Path(c_path)
    c_bytes = src.read_source(c_path)
    if src.config_of_bytes(c_bytes, c_path) != config:
        raise ModelFileError(f"{c_path}: the file changed while it was being loaded; load it again")
    check = integrity.checking()
    srcs = sources(c_path, c_bytes, config, check=check)
    lib_path = _use_prebuilt(c_path, srcs, check) if allow_prebuilt else None
    if lib_path is not None:
        return ctypes.CDLL(os.fspath(lib_path)), f"prebuilt {prebuilt(c_path)}"
    lib_path = build(c_path, srcs)
    return ctypes.CDLL(os.fspath(lib_path)), f"compiled {lib_path}"


def embedded_config(lib: ctypes.CDLL, prefix: str) -> dict | None:
    """The config JSON a loaded library carries (``PREFIX_config``), or None. (The backend never
    loads a library to read this: see :func:`load`.)"""
    try:
        first = ctypes.c_char.in_dll(lib, f"{prefix}_config")
    except ValueError:
        return None
    try:
        return json.loads(ctypes.string_at(ctypes.addressof(first)).decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def describe() -> str:
    """The compiler and flags in use, in words (``"gcc ... -O3 -march=native -ffast-math"``)."""
    cc = find_compiler()
    return f"{compiler_identity(cc)}; {' '.join(user_cflags() or DEFAULT_CFLAGS)}"


__all__ = ["find_compiler", "have_compiler", "build", "load", "sources", "Sources", "private_cache",
           "target_cpu", "ENV_PREBUILT", "compile_library", "compile_object", "compiled_size",
           "object_sizes", "prebuilt",
           "cache_dir", "describe", "library_suffix", "CompilerNotFound", "CompileError",
           "DEFAULT_CFLAGS", "embedded_config"]
