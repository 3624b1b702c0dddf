"""What every ``slimedge`` command shares: the typer app, choices, errors as one red line, warnings,
progress lines and the filter for third-party chatter on stderr.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import select
import sys
import threading
import time
from typing import Callable, Iterator

import typer
from rich.console import Console
from rich.markup import escape

from .. import __version__, formats, train_config, variants
from ..errors import SlimedgeError
from ..runtime import BACKENDS as _RUNTIME_BACKENDS

# rich_markup_mode=None: click's plain help, which shows every default and choice as written
# (rich's help read "[default: ...]" in a help text as markup and dropped it)
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="SLIM LSTM variants: train, export to ONNX/TFLite/C, run and profile.")
console = Console()
err_console = Console(stderr=True)

# choices shown in --help (the library checks every value and names the valid ones)
SPLITS = ("train", "val", "test")
SCHEDULES = train_config.SCHEDULES
GATE_ACTIVATIONS = variants.GATE_ACTIVATIONS
ACTIVATIONS = variants.ACTIVATIONS
INITS = variants.INITS
TORCH_DEVICES = ("auto", "cpu", "cuda")
COMPAT = formats.tflite.COMPAT
BASELINES = ("lstm", "none")
RUN_BACKENDS = ("auto", *dict.fromkeys([*_RUNTIME_BACKENDS,
                                        *(b for f in formats.FORMATS.values() for b in f.backends)]))
PROFILE_BACKENDS = (*RUN_BACKENDS[1:], "torch-cuda")


def _choices(values) -> str:
    return "[" + "|".join(values) + "]"


# Errors a user can cause: slimedge's own (a bad file, option, frame or data set; their messages
# name it), and the operating system's about the user's files (missing, not permitted, disk full).
# Anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (SlimedgeError, OSError)


# control characters (an ANSI escape in a file name or a model's metadata) shown, never obeyed
# (C0 with newline and tab: a path holding a newline must not start a line of its own; DEL, C1
# such as the one-byte CSI 0x9b, and the bidi overrides and other invisible format characters
# that reorder or hide what a line shows)
_CONTROL = {i: f"\\x{i:02x}" for i in (*range(32), *range(127, 160))}
_CONTROL.update({ord("\n"): "\\n", ord("\t"): "\\t"})
_CONTROL.update({i: f"\\u{i:04x}" for i in (0x061c, 0x200b, 0x200c, 0x200d, 0x200e, 0x200f,
                                            *range(0x202a, 0x202f), *range(0x2060, 0x2070),
                                            0xfeff)})


def shown(text) -> str:
    """``text`` as one line for the terminal: control characters (newlines included) written as
    escapes. For every path, name or metadata string a command prints."""
    return str(text).translate(_CONTROL)


def fail(message, code: int = 2) -> None:
    """One red line on stderr (the message shown as it is: no markup read from it, control
    characters written as escapes), then exit. An error carrying a tool's output (a compiler's)
    has it below, each line indented and shown the same way."""
    output = getattr(message, "output", "")
    text = message.message if output else str(message)
    err_console.print(f"[bold red]error:[/] {escape(shown(text))}", highlight=False, soft_wrap=True)
    for line in output.splitlines():
        err_console.print(f"  {shown(line)}", highlight=False, soft_wrap=True, markup=False)
    raise typer.Exit(code)


def warn(message: str) -> None:
    """One yellow line on stderr: an option ignored, or a file replaced."""
    err_console.print(f"[yellow]warning:[/] {escape(shown(message))}",
                      highlight=False, soft_wrap=True)


def _given(ctx: typer.Context, name: str) -> bool:
    """Was the parameter ``name`` (its Python name) given on the command line?"""
    source = ctx.get_parameter_source(name)
    # click's ParameterSource (typer vendors click in recent releases: compared by name)
    return getattr(source, "name", None) in ("COMMANDLINE", "ENVIRONMENT")


def _ignored(ctx: typer.Context, names: list[tuple[str, str]], why: str) -> None:
    """Warn once for the options in ``names`` ((python name, --option) pairs) given but unused."""
    given = [opt for name, opt in names if _given(ctx, name)]
    if given:
        warn(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} ignored: {why}")


# ---- third-party chatter ----------------------------------------------------------------------
CHATTER = (
    re.compile(rb"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.\s*$"),
    re.compile(rb"^WARNING:root:Please consider (to run )?pre-?processing before quantization"),
)
_CHATTER_PREFIXES = (b"INFO: Created TensorFlow Lite", b"WARNING:root:Please consider")
_CHATTER_LOG = re.compile(r"^Please consider (to run )?pre-?processing before quantization")


class _DropChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _CHATTER_LOG.match(str(record.msg))


def _is_chatter(line: bytes) -> bool:
    return any(p.match(line) for p in CHATTER)


def _forward(read_fd: int, write_fd: int, done: threading.Event) -> None:
    """Copy the pipe to the real stderr without the chatter lines; a partial line goes on at once
    unless it may still become one of them (a progress spinner is not held back). Ends at the
    pipe's end, or once ``done`` is set and the pipe is empty: a child process that outlives the
    command (multiprocessing's resource tracker) holds the pipe open until this process exits."""
    pending = b""
    while True:
        try:
            if not select.select([read_fd], [], [], 0.05)[0]:
                if done.is_set():
                    break
                continue
            chunk = os.read(read_fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        out = b"".join(line + b"\n" for line in lines if not _is_chatter(line))
        if pending and not any(p.startswith(pending[:len(p)]) for p in _CHATTER_PREFIXES):
            out, pending = out + pending, b""
        if out:
            with contextlib.suppress(OSError):
                os.write(write_fd, out)
    if pending and not _is_chatter(pending):
        with contextlib.suppress(OSError):
            os.write(write_fd, pending)


@contextlib.contextmanager
def quiet_chatter() -> Iterator[None]:
    """Drop known third-party chatter from stderr: Python log records (onnxruntime.quantization's
    advice) by a filter on the root logger, and native libraries' lines (LiteRT's XNNPACK INFO) by
    passing fd 2 through a filtering pipe. Everything else reaches stderr as before."""
    root = logging.getLogger()
    drop = _DropChatter()
    root.addFilter(drop)
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2: the log filter alone
        try:
            yield
        finally:
            root.removeFilter(drop)
        return
    read_fd, write_fd = os.pipe()
    done = threading.Event()
    thread = threading.Thread(target=_forward, args=(read_fd, saved, done), daemon=True)
    thread.start()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer here closes: the thread sees its end
        done.set()  # or, where a child still holds it, drains it and stops
        thread.join(timeout=2.0)
        with contextlib.suppress(OSError):
            os.close(read_fd)
        os.close(saved)
        root.removeFilter(drop)


_STDERR_TTY = False  # whether stderr was a terminal when the command started


def user_errors(fn: Callable) -> Callable:
    """Decorator: a user error becomes one message and exit code 2; third-party chatter is
    filtered out of stderr while the command runs."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        global _STDERR_TTY, err_console
        # whether stderr is a terminal, decided before fd 2 becomes the filtering pipe: colours,
        # the training bar and spinners stay as they were
        _STDERR_TTY = Console(stderr=True).is_terminal
        err_console = Console(stderr=True, force_terminal=_STDERR_TTY or None)
        try:
            with quiet_chatter():
                return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except USER_ERRORS as e:
            fail(e)
    return wrapper


@contextlib.contextmanager
def progress(title: str, file=None) -> Iterator[Callable[[str], None]]:
    """A ``log(message)`` for long work: a spinner on a terminal; otherwise (a log file, CI) one
    line per message with the seconds elapsed, so a silent minute never looks like a hang."""
    t0 = time.perf_counter()
    if _STDERR_TTY:
        out = Console(file=file, stderr=file is None, force_terminal=True)
        with out.status(title, spinner="dots") as status:
            yield status.update
        return
    out = Console(file=file, stderr=file is None, soft_wrap=True)
    last = [None]

    def log(message: str) -> None:
        if message != last[0]:
            last[0] = message
            out.print(f"[{time.perf_counter() - t0:6.1f} s] {message}", style="dim",
                      highlight=False, markup=False)
    log(title)
    yield log


def _duration(seconds: float) -> str:
    """A duration readable at any scale: 850 µs, 12.3 ms, 4.56 s."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def _version(value: bool) -> None:
    if value:
        console.print(f"slimedge {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """SLIM LSTM variants: train, export to ONNX/TFLite/C, run and profile."""

