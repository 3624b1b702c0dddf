"""The ``slimedge`` command line: a thin typer app over the library.

Every command turns a library error (bad file, bad option, bad data) into one red line on stderr and
a non-zero exit, never a traceback. Options mean one thing in every command (``-q`` is always
``--quantize``, ``--steps`` always a number of timed or validated steps as the command says, ``--json``
always "print JSON instead of tables"); an option that a command would ignore in the combination
given is named in a yellow warning. Known chatter of third-party libraries (LiteRT's "Created
TensorFlow Lite XNNPACK delegate", onnxruntime's quantisation pre-processing advice) is filtered out
of stderr; everything else on it passes.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__, extras, formats, variants
from ._io import check_writable
from .errors import DataError, SlimedgeError, UsageError
from .formats import QUANTIZE
from .runtime import BACKENDS as _RUNTIME_BACKENDS

# rich_markup_mode=None: click's plain help, which shows every default and choice as written
# (rich's help read "[default: ...]" in a help text as markup and dropped it)
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="SLIM LSTM variants: train, export to ONNX/TFLite, run and profile.")
console = Console()
err_console = Console(stderr=True)

# choices shown in --help (the library checks every value and names the valid ones)
SPLITS = ("train", "val", "test")
SCHEDULES = ("constant", "cosine")
GATE_ACTIVATIONS = variants.GATE_ACTIVATIONS
ACTIVATIONS = variants.ACTIVATIONS
INITS = ("pytorch", "paper")
DEVICES = ("auto", "cpu", "cuda")
COMPAT = ("litert", "tflite-runtime", "tflm")
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
_CONTROL = {i: f"\\x{i:02x}" for i in (*range(32), 127) if chr(i) not in "\n\t"}


def fail(message: str, code: int = 2) -> None:
    """One red line on stderr (the message shown as it is: no markup read from it, control
    characters written as escapes), then exit."""
    err_console.print(f"[bold red]error:[/] {escape(str(message).translate(_CONTROL))}",
                      highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    """One yellow line on stderr: an option ignored, or a file replaced."""
    err_console.print(f"[yellow]warning:[/] {escape(str(message).translate(_CONTROL))}",
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


def _forward(read_fd: int, write_fd: int) -> None:
    """Copy the pipe to the real stderr without the chatter lines; a partial line goes on at once
    unless it may still become one of them (a progress spinner is not held back)."""
    pending = b""
    while True:
        try:
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
    thread = threading.Thread(target=_forward, args=(read_fd, saved), daemon=True)
    thread.start()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer here closes: the thread sees its end
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
            fail(str(e))
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
    """SLIM LSTM variants: train, export to ONNX/TFLite, run and profile."""


@app.command("variants")
@user_errors
def variants_cmd(
    input_size: int = typer.Option(28, "--input-size", "-m", min=1, help="Input size m."),
    hidden_size: int = typer.Option(100, "--hidden-size", "-n", min=1, help="Hidden size n."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """The variant catalogue: gate forms, parameters and MACs per step, and ratios to LSTM0."""
    rows = variants.table(input_size, hidden_size)
    if as_json:
        sys.stdout.write(json.dumps({"input_size": input_size, "hidden_size": hidden_size,
                                     "variants": rows}, indent=2) + "\n")
        return
    t = Table(title=f"SLIM LSTM variants, one layer, m = {input_size}, n = {hidden_size}")
    for col, just in [("variant", "left"), ("gates i, f, o", "left"), ("cell c~", "left"),
                      ("params", "right"), ("× LSTM0", "right"), ("MACs/step", "right"),
                      ("× LSTM0", "right")]:
        t.add_column(col, justify=just, overflow="fold", no_wrap=just == "right")
    for r in rows:
        f = r["forms"]
        gates = f["i"] if f["i"] == f["f"] == f["o"] else f"{f['i']}; {f['f']}; {f['o']}"
        t.add_row(r["name"], gates, f["c"], f"{r['params']:,}", f"{r['params_ratio_to_lstm0']:.3f}",
                  f"{r['macs_per_step']:,}", f"{r['macs_ratio_to_lstm0']:.3f}")
    console.print(t)
    console.print("Fixed gate constants are defaults; set them per model (never trained). "
                  "MACs count W·x, U·h and u⊙h.", style="dim")


# ---- train / evaluate ------------------------------------------------------------------------
def _parse_constants(items: list[str]) -> dict[str, float]:
    """``["f=0.5", "i=1"]`` -> ``{"f": 0.5, "i": 1.0}``."""
    out = {}
    for item in items:
        gate, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[gate.strip()] = float(value)
        except ValueError:
            raise UsageError(f"--constant takes GATE=VALUE (e.g. f=0.5), got {item!r}") from None
    return out


# the options of `train` that --resume does not read (the run's own settings are used)
_RUN_SETTINGS = [("variant", "--variant"), ("data", "--data"), ("hidden_size", "--hidden-size"),
                 ("layers", "--layers"), ("batch_size", "--batch-size"), ("lr", "--lr"),
                 ("schedule", "--schedule"), ("clip", "--clip"), ("dropout", "--dropout"),
                 ("seed", "--seed"), ("split_seed", "--split-seed"), ("limit", "--limit"),
                 ("gate_activation", "--gate-activation"), ("activation", "--activation"),
                 ("constant", "--constant"), ("init", "--init"),
                 ("input_only_cell", "--input-only-cell"), ("threads", "--threads")]


@app.command("train")
@user_errors
def train_cmd(
    ctx: typer.Context,
    output: Path = typer.Option(..., "--output", "-o", help="Best checkpoint (*.safetensors); the training state (.state.safetensors) and JSON log (.log.json) go beside it."),
    variant: str = typer.Option("LSTM6", "--variant", "-v", help="A variant name or alias (see `slimedge variants`)."),
    data: str = typer.Option("fsdd", "--data", "-d", metavar="NAME|FILE.npz", help="fsdd, mnist-rows, mnist-pixels, or a .npz file (see README)."),
    hidden_size: int = typer.Option(64, "--hidden-size", "-n", help="Hidden size n."),
    layers: int = typer.Option(1, "--layers", help="Number of stacked SLIM layers."),
    epochs: Optional[int] = typer.Option(None, "--epochs", show_default=False, help="Epochs in total [default: 10; with --resume: the run's own]."),
    batch_size: int = typer.Option(32, "--batch-size", help="Mini-batch size."),
    lr: float = typer.Option(3e-3, "--lr", help="Adam learning rate."),
    schedule: str = typer.Option("constant", "--schedule", metavar=_choices(SCHEDULES), help="Learning-rate schedule."),
    clip: float = typer.Option(1.0, "--clip", help="Gradient-norm clip (0 = off)."),
    dropout: float = typer.Option(0.0, "--dropout", help="Dropout between layers."),
    seed: int = typer.Option(0, "--seed", help="Seed for weights, batch order and dropout."),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the train/val/test split."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Cap every split at N sequences (a stratified subset), for quick runs."),
    gate_activation: str = typer.Option("sigmoid", "--gate-activation", metavar=_choices(GATE_ACTIVATIONS), help="σ of the gates."),
    activation: str = typer.Option("tanh", "--activation", metavar=_choices(ACTIVATIONS), help="g of the cell."),
    constant: list[str] = typer.Option([], "--constant", metavar="GATE=VALUE", show_default=False, help="A fixed gate's value (repeatable), e.g. f=0.5."),
    init: str = typer.Option("pytorch", "--init", metavar=_choices(INITS), help="pytorch, or paper (the authors' initialisation)."),
    input_only_cell: bool = typer.Option(False, "--input-only-cell", help="LSTM_C6 only: c~ = g(W_c x + b_c)."),
    threads: int = typer.Option(1, "--threads", help="Torch CPU threads (fixed, for reproducible runs)."),
    device: str = typer.Option("auto", "--device", metavar=_choices(DEVICES), help="Where torch trains (cuda:N for one GPU)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run recorded beside -o with its own settings (only --epochs is taken from the command line)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar and no per-epoch lines."),
) -> None:
    """Train a SLIM classifier: validation each epoch, the best checkpoint kept, resumable."""
    if output.suffix != formats.CHECKPOINT.suffix and not output.is_dir():  # before torch
        raise UsageError(f"{output}: a checkpoint is a {formats.CHECKPOINT.suffix} file (`run` and "
                         f"`export` tell files by their suffix); name it "
                         f"{output.with_suffix(formats.CHECKPOINT.suffix).name}")
    extras.require("train", "slimedge train", "torch", "safetensors")
    if resume:
        _ignored(ctx, _RUN_SETTINGS, "--resume continues the run with its own settings (only --epochs "
                                "is read); start a new run with another -o to change them")
    from .train import TrainConfig, train

    config = TrainConfig(variant=variant, data=data, hidden_size=hidden_size, num_layers=layers,
                         epochs=10 if epochs is None else epochs, batch_size=batch_size, lr=lr, schedule=schedule, clip=clip,
                         dropout=dropout, seed=seed, split_seed=split_seed, limit=limit,
                         gate_activation=gate_activation, activation=activation,
                         constants=_parse_constants(constant), init=init,
                         input_only_cell=input_only_cell, threads=threads)
    try:
        result = train(None if resume and epochs is None else config, output, resume=resume,
                       device=device, quiet=quiet, console=err_console)
    except KeyboardInterrupt:
        fail(f"interrupted; the last finished epoch is saved: continue with "
             f"`slimedge train -o {output} --resume`", 130)
    console.print(f"test accuracy {result.test['accuracy']:.4f} (best epoch "
                  f"{result.best['epoch']}) -> {result.output}; log {result.log_path}",
                  highlight=False, soft_wrap=True, markup=False)


@app.command("evaluate")
@user_errors
def evaluate_cmd(
    ctx: typer.Context,
    model: Optional[Path] = typer.Argument(None, help="A checkpoint or an exported file; default: the shipped model."),
    data: Optional[str] = typer.Option(None, "--data", "-d", metavar="NAME|FILE.npz", help="fsdd, mnist-rows, mnist-pixels or a .npz file; default: the model's training data."),
    split: str = typer.Option("test", "--split", metavar=_choices(SPLITS), help="The split to evaluate."),
    split_seed: Optional[int] = typer.Option(None, "--split-seed", help="Default: the seed the model was trained with."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Cap every split at N sequences."),
    device: str = typer.Option("cpu", "--device", metavar=_choices(DEVICES), help="Where torch evaluates a checkpoint (also the torch backend's device)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    backend: Optional[str] = typer.Option(None, "--backend", "-b", metavar=_choices(RUN_BACKENDS), show_default=False, help="Evaluate through the streaming runtime on this backend [default: exported files always go through it (auto); a checkpoint through PyTorch, or the numpy backend where torch is not installed]."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Threads of the runtime backend, or of torch for a checkpoint (default 1 there, so training's numbers repeat exactly)."),
) -> None:
    """Accuracy and confusion matrix of a model (a checkpoint or an exported file) on a data split."""
    from .zoo import default_model_path

    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    path = model if model is not None else default_model_path()
    is_checkpoint = formats.for_path(path) is formats.CHECKPOINT
    if is_checkpoint and backend is None and not extras.installed("torch"):
        backend = "numpy"  # the same numbers through the runtime, no torch needed
        err_console.print("torch is not installed: evaluating the checkpoint on the runtime's "
                          "numpy backend", style="dim", highlight=False)
    if backend is not None or not is_checkpoint:
        if backend != "torch":
            _ignored(ctx, [("device", "--device")], "it applies to torch (a checkpoint without "
                                               "--backend, or --backend torch)")
        ev, meta = _evaluate_runtime(path, data, split, split_seed, limit, backend or "auto",
                                     threads, device if backend == "torch" else None)
    else:
        from .train import evaluate_checkpoint

        ev, meta = evaluate_checkpoint(path, data, split, split_seed=split_seed, limit=limit,
                                       device=device, threads=threads or 1)
    if as_json:
        sys.stdout.write(json.dumps({**meta, **ev.to_dict()}, indent=2) + "\n")
        return
    t = Table(title=f"{escape(str(meta['variant']))} on {escape(str(meta['data']['name']))} ({split}, {ev.n} sequences): "
                    f"rows = true class, columns = predicted")
    t.add_column("true", justify="right", overflow="fold")
    for label in ev.labels:
        t.add_column(escape(label), justify="right", overflow="fold")
    t.add_column("recall", justify="right", no_wrap=True)
    for k, label in enumerate(ev.labels):
        row = ev.confusion[k]
        cells = [(f"[bold]{v}[/]" if j == k else (str(v) if v else "[dim]0[/]"))
                 for j, v in enumerate(row)]
        recall = f"{row[k] / row.sum():.3f}" if row.sum() else "–"
        t.add_row(escape(label), *cells, recall)
    console.print(t)
    console.print(f"accuracy {ev.accuracy:.4f} ({int(ev.confusion.trace())}/{ev.n}), "
                  f"mean cross-entropy {ev.loss:.4f}; model {path}", highlight=False, soft_wrap=True, markup=False)


# ---- export ------------------------------------------------------------------------------------
@app.command("export")
@user_errors
def export_cmd(
    ctx: typer.Context,
    model: Optional[Path] = typer.Argument(None, help="A checkpoint (*.safetensors); default: the shipped model."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="The file to write, ending in the format's suffix; default: the model's name, the quantisation and the format's suffix (model.int8.tflite), in the current directory."),
    format: Optional[str] = typer.Option(None, "--format", "-f", metavar=_choices(formats.exportable()), show_default=False, help="[default: from -o's suffix, else onnx]"),
    mode: str = typer.Option("step", "--mode", metavar=_choices(formats.MODES), help="step (one time step: x, h, c -> y, h_next, c_next) or sequence (a whole sequence, time symbolic)."),
    quantize: str = typer.Option("none", "--quantize", "-q", metavar=_choices(QUANTIZE), help="none (float32), dynamic (int8 weights) or int8 (int8 weights and activations)."),
    atol: Optional[float] = typer.Option(None, "--atol", show_default=False, help="Largest difference allowed per output in validation [default: 1e-5 for float graphs]."),
    validation_steps: int = typer.Option(100, "--validation-steps", min=1, help="Validation rollout length in time steps."),
    no_validate: bool = typer.Option(False, "--no-validate", help="Skip running the file against the source model."),
    data: Optional[str] = typer.Option(None, "--data", "-d", metavar="NAME|FILE.npz", show_default=False, help="Data set to calibrate and check a quantised file on [default: the one the checkpoint records]; e.g. the .npz it was trained on, moved."),
    calibration_samples: Optional[int] = typer.Option(None, "--calibration-samples", min=1, show_default=False, help="int8: training sequences whose float rollouts calibrate the activation ranges [default: 128]."),
    compat: str = typer.Option("litert", "--compat", metavar=_choices(COMPAT), help="TFLite target interpreter: litert; tflite-runtime (per-tensor weight scales, which that old interpreter computes correctly); or tflm (TensorFlow Lite Micro: only its ops, validated on it, no dynamic)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON instead of a table."),
) -> None:
    """Export a model to ONNX or TFLite; the file is validated against the model before it is kept."""
    from . import exporters
    from .zoo import default_model_path

    path = model if model is not None else default_model_path()
    kind = formats.by_suffix(path.suffix)
    if kind is not None and kind is not formats.CHECKPOINT:
        raise UsageError(f"{path}: export takes a checkpoint ({formats.CHECKPOINT.suffix}), and "
                         f"this is a {kind.name} file; export the checkpoint it was made from")
    if quantize not in QUANTIZE:  # before anything reads the checkpoint
        raise UsageError(f"unknown quantize {quantize!r}; valid: {', '.join(QUANTIZE)}")
    if format is None:
        named = formats.by_suffix(output.suffix) if output is not None else None
        format = named.name if named is not None and named.exportable else "onnx"
    if no_validate:
        _ignored(ctx, [("atol", "--atol"), ("validation_steps", "--validation-steps")],
                 "--no-validate runs no validation")
    if quantize == "none":
        _ignored(ctx, [("data", "--data")], "it calibrates and checks quantised files "
                                       "(--quantize dynamic or int8)")
        data = None
    elif data is None and not (formats.info(path).data or {}).get("name"):
        raise UsageError(f"{path}: --quantize {quantize} calibrates and checks on real data, and "
                         f"this checkpoint records no data set: pass --data NAME or FILE.npz")
    if output is None:
        output = Path(exporters.default_name(path.stem + (".sequence" if mode == "sequence" else ""),
                                             format, quantize))
    _warn_replacing(output, format, mode, quantize)
    try:
        result = exporters.export(path, output, format=format, mode=mode, quantize=quantize,
                                  atol=atol, validate=not no_validate,
                                  validation_steps=validation_steps, data=data,
                                  **_quantize_options(format, quantize, calibration_samples, compat))
    except exporters.ExportValidationError as e:
        if not as_json:
            _print_validation(e.report, err_console)
        fail(str(e), code=1)
    except (DataError, FileNotFoundError) as e:
        if quantize == "none" or data is not None:
            raise
        # the recorded data set is gone (moved, or another machine): say how to point at it
        fail(f"{e} (the data set {path} records for calibration; give it with --data NAME or "
             f"FILE.npz)")
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return
    if result.validation is not None:
        _print_validation(result.validation, console)
    from .profile.report import _size

    s = result.summary
    head = s["macs_per_step"] - s.get("lstm_macs_per_step", s["macs_per_step"])
    macs = (f"{s['macs_per_step']:,} MACs per step"
            + (f" (LSTM {s['lstm_macs_per_step']:,} + head {head:,})" if head else ""))
    console.print(f"wrote {result.path} ({_size(result.size_bytes)}): {result.format} "
                  f"{result.mode} graph{'' if result.quantize == 'none' else ', ' + result.quantize}"
                  f", {s['params']:,} parameters, {macs}"
                  + ("" if result.validation else " (not validated)"),
                  highlight=False, soft_wrap=True, markup=False)
    task = (result.quantization or {}).get("task")
    if task:
        d = task["drift"]
        change = 100 * (task["accuracy"] - task["float_accuracy"])
        console.print(f"{result.quantize} on the task: {task['split']} accuracy "
                      f"{100 * task['accuracy']:.2f}% vs float {100 * task['float_accuracy']:.2f}% "
                      f"({change:+.2f} points; a loss of up to {100 * task['tolerance']:.1f} is "
                      f"tolerated); {d['steps']}-step drift: h "
                      f"{d['max_abs_h_next']:.3g}, c {d['max_abs_c_next']:.3g}, same argmax "
                      f"{100 * d['argmax_agreement']:.1f}% of steps", highlight=False, soft_wrap=True)
    arena = (result.target or {}).get("arena_bytes")
    if arena:
        console.print(f"ran on {result.target['interpreter']}: tensor arena {arena:,} bytes "
                      f"({result.target['arena_used_bytes']:,} held after allocation)",
                      highlight=False, soft_wrap=True)


def _warn_replacing(output: Path, format: str, mode: str, quantize: str) -> None:
    """A named output that holds another kind of export (float vs int8, step vs sequence) is
    replaced only with a warning saying what it held (default names never collide)."""
    if not output.is_file():
        return
    try:
        old = formats.info(output)
    except (SlimedgeError, OSError):
        return  # not a model file we can read: the suffix checks decide
    was = (old.format, old.export.get("mode", "step"), old.quantize)
    if old.is_checkpoint or was == (format, mode, quantize):
        return
    warn(f"{output} holds a {was[0]} {was[1]} graph (quantize {was[2]}) and will be replaced by "
         f"a {format} {mode} graph (quantize {quantize}); without -o each kind gets its own name")


def _quantize_options(format: str, quantize: str, samples: Optional[int], compat: str) -> dict:
    """The export options of --calibration-samples and --compat (each where it means something)."""
    opts: dict = {}
    if samples is not None:
        if quantize != "int8":
            raise UsageError("--calibration-samples applies to --quantize int8 only")
        opts["calibration_samples"] = samples
    if compat != "litert":
        if format != "tflite":
            raise UsageError("--compat applies to --format tflite only")
        opts["compat"] = compat
    return opts


def _print_validation(report, out: Console) -> None:
    out.print(f"validation of the {report.mode} graph against the float64 model: {report.steps} "
              f"steps x {report.batch} streams, {report.frames}", highlight=False, soft_wrap=True)
    t = Table()
    for col in ("output", "max |diff|/step", "atol", "drift", "drift atol", "max |ref|", ""):
        t.add_column(col, justify="left" if col == "output" else "right")
    for name, diff in report.max_abs_diff.items():
        drift = report.drift[name]
        ok = diff <= report.atol and drift <= report.drift_limit(name)
        t.add_row(name, f"{diff:.2e}", f"{report.atol:.0e}", f"{drift:.2e}",
                  f"{report.drift_limit(name):.1e}", f"{report.max_abs_ref[name]:.3g}",
                  "[green]ok[/]" if ok else "[bold red]FAIL[/]")
    out.print(t)


# ---- run (the streaming runtime) ----------------------------------------------------------------
def _load_runtime_model(path: Path, backend: str, threads: Optional[int],
                        device: Optional[str] = None, verify: bool = True):
    from . import runtime

    m = runtime.load(path, backend, threads, device=device, verify=verify)
    err_console.print(f"{path}: backend {m.backend} ({m.backend_reason}; {m.session.detail})",
                      style="dim", highlight=False, soft_wrap=True, markup=False)
    return m


def _runtime_split(model, path: Path, data: Optional[str], split: str,
                   split_seed: Optional[int], limit: Optional[int]):
    """The data split to evaluate ``model`` on: by default the data set, split seed, fractions and
    limit it was trained with, as its config records them (as ``evaluate`` does for checkpoints)."""
    from . import data as _data

    if split not in _data.SPLITS:
        raise UsageError(f"unknown split {split!r}; valid: {', '.join(_data.SPLITS)}")
    # every export carries its checkpoint's record of the data it was trained on
    splits = _data.load_as_recorded(model.info.data, data, split_seed=split_seed, limit=limit)
    return splits, splits[split]


def _evaluate_runtime(path: Path, data: Optional[str], split: str, split_seed: Optional[int],
                      limit: Optional[int], backend: str, threads: Optional[int],
                      device: Optional[str] = None):
    from . import runtime

    m = _load_runtime_model(path, backend, threads, device)
    splits, part = _runtime_split(m, path, data, split, split_seed, limit)
    ev = runtime.evaluate(m, part)
    return ev, {"data": splits.summary(), "split": split, "model": str(path),
                "variant": m.variant, "backend": m.backend}


def _softmax(outputs):
    import numpy as np

    z = outputs - outputs.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


SHOWN_CLASSES = 10  # `run --input` shows every class's probability up to this many classes


@app.command("run")
@user_errors
def run_cmd(
    ctx: typer.Context,
    model: Optional[Path] = typer.Argument(None, help="An exported .onnx or .tflite file, or a checkpoint; default: the shipped model."),
    input: Optional[Path] = typer.Option(None, "--input", "-i", metavar="FILE.npy", help="Frames to stream, a .npy array (T, m): prints each frame's top class and probabilities."),
    data: Optional[str] = typer.Option(None, "--data", "-d", metavar="NAME|FILE.npz", help="A data set (fsdd, mnist-rows, mnist-pixels or a .npz file): prints accuracy."),
    split: str = typer.Option("test", "--split", metavar=_choices(SPLITS), help="The split to run (with --data)."),
    split_seed: Optional[int] = typer.Option(None, "--split-seed", help="Default: the seed the model was trained with (with --data)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Cap every split at N sequences (with --data)."),
    backend: str = typer.Option("auto", "--backend", "-b", metavar=_choices(RUN_BACKENDS), help="The runtime backend."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, show_default=False, help="Backend threads [default: the backend's own]."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Load the model even when its bytes do not match the integrity digest it records (a corrupted file: at your own risk)."),
) -> None:
    """Stream frames through a model with the runtime, one step per frame."""
    import numpy as np

    from . import runtime
    from .zoo import default_model_path

    if (input is None) == (data is None):
        raise UsageError("give exactly one of --input FILE.npy (print each frame's output) and "
                         "--data NAME (print accuracy)")
    if input is not None:
        _ignored(ctx, [("split", "--split"), ("split_seed", "--split-seed"), ("limit", "--limit")],
                 "they choose the --data split, and --input streams a file")
    path = model if model is not None else default_model_path()
    m = _load_runtime_model(path, backend, threads, verify=not no_verify)
    if data is not None:
        splits, part = _runtime_split(m, path, data, split, split_seed, limit)
        t0 = time.perf_counter()
        ev = runtime.evaluate(m, part)
        seconds = time.perf_counter() - t0
        frames = int(part.lengths.sum())
        result = {"model": str(path), "backend": m.backend, "data": splits.info.get("name", data),
                  "split": split, "accuracy": ev.accuracy, "correct": int(ev.confusion.trace()),
                  "n": ev.n, "loss": ev.loss, "frames": frames, "seconds": seconds}
        if as_json:
            sys.stdout.write(json.dumps(result, indent=2) + "\n")
            return
        per_frame = f", {_duration(seconds / frames)} per frame" if frames else ""
        console.print(f"accuracy {ev.accuracy:.4f} ({result['correct']}/{ev.n}) on "
                      f"{result['data']} {split} through {m.backend}; {frames:,} frames in "
                      f"{_duration(seconds)}{per_frame} (sequences stepped in batches)",
                      highlight=False, soft_wrap=True, markup=False)
        return
    from ._io import check_regular_file, npy_header

    check_regular_file(input, ".npy file")  # a FIFO would block forever
    try:
        with open(input, "rb") as f:
            if f.read(6) != b"\x93NUMPY":
                raise UsageError(f"{input}: not a .npy file (no NumPy header); save frames with "
                                 f"numpy.save as a (T, {m.input_size}) array")
            f.seek(0)  # the header's size against the file's, before NumPy allocates it
            npy_header(f, str(input), os.fstat(f.fileno()).st_size)
        frames = np.load(input, allow_pickle=False)
    except (OSError, ValueError) as e:
        msg = str(e) if str(e).startswith(str(input)) else f"{input}: not a readable .npy array: {e}"
        raise UsageError(msg) from None
    if frames.ndim == 1 and frames.shape[0] == m.input_size:
        frames = frames[None]
    if frames.ndim != 2 or frames.shape[1] != m.input_size:
        raise UsageError(f"{input}: expected frames of shape (T, {m.input_size}), got "
                         f"{frames.shape}")
    s = m.stream()
    outputs = np.zeros((len(frames), m.output_size), np.float32)
    for t, frame in enumerate(frames):
        try:
            outputs[t] = s.step(frame)
        except runtime.InputError as e:
            raise UsageError(f"{input}, frame {t}: {e}") from None
    classifier = m.labels is not None
    labels = m.labels or [str(k) for k in range(m.output_size)]
    top = outputs.argmax(-1)
    names = [labels[k] if k < len(labels) else str(k) for k in top]
    probs = _softmax(outputs.astype(np.float64)) if classifier else None
    if as_json:
        sys.stdout.write(json.dumps({"model": str(path), "backend": m.backend,
                                     "labels": m.labels, "top": names,
                                     "outputs": outputs.tolist(),
                                     "probabilities": None if probs is None else
                                     probs.astype(np.float32).tolist()}) + "\n")
        return
    _print_frames(outputs, probs, labels, names, top)


def _print_frames(outputs, probs, labels, names, top) -> None:
    """One line per frame under a header: the top class, its probability and every class's
    (a classifier's softmax), or the raw outputs (a model without a head)."""
    width = max(5, *(len(str(x)) for x in labels[:SHOWN_CLASSES]))
    if probs is None:  # no head: y is the top layer's h
        k = min(len(labels), 8)
        header = "frame  " + " ".join(f"{'y' + str(j):>8s}" for j in range(k))
        rows = (" ".join(f"{v:8.4f}" for v in out[:k]) + (" ..." if out.size > k else "")
                for out in outputs)
        lines = [f"{t:5d}  {r}" for t, r in enumerate(rows)]
    else:
        many = len(labels) > SHOWN_CLASSES
        shown = [] if many else labels
        header = (f"frame  {'top':>{width}s}  p(top)  "
                  + ("(probabilities of the 3 likeliest)" if many else
                     " ".join(f"{str(x)[:width]:>{width}s}" for x in shown)))
        lines = []
        for t, (name, p, k) in enumerate(zip(names, probs, top)):
            if many:
                best = p.argsort()[::-1][:3]
                rest = "  ".join(f"{labels[j]} {p[j]:.3f}" for j in best)
            else:
                rest = " ".join(f"{v:>{width}.3f}" for v in p)
            lines.append(f"{t:5d}  {str(name)[:width]:>{width}s}  {p[k]:6.3f}  {rest}")
    sys.stdout.write(header.rstrip() + "\n" + "".join(line + "\n" for line in lines))


# ---- profile -----------------------------------------------------------------------------------
DEVICES = ("cortex-m4", "cortex-m0plus", "aarch64")  # slimedge.devices.DEVICES (a test checks)


def _profile_device(models, device, frame_ms, baseline, keep, as_json, json_out) -> None:
    """``profile --device``: the C step on an emulated device (slimedge.profile.device)."""
    from . import profile
    from .profile import device as on_device

    on_device.check(device)  # the name and the cross tools, before any work
    with profile.quiet_native_output() as real_err, progress(f"profiling on {device}", real_err) as log:
        report = on_device.run(models or [None], device, frame_ms=frame_ms, baseline=baseline,
                               workdir=keep, log=log)
    if json_out is not None:
        err_console.print(f"wrote {profile.write_json(report, json_out)}", highlight=False)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    out = Console(width=max(console.width, 150))
    for t in on_device.tables(report):
        out.print(t)
    for note in report["notes"]:
        out.print(f"note: {note}", style="dim", highlight=False, markup=False)


@app.command("profile")
@user_errors
def profile_cmd(
    ctx: typer.Context,
    models: Optional[list[Path]] = typer.Argument(None, help="Checkpoints (.safetensors; exported here for each backend) or exports (.onnx, .tflite); default: the shipped model."),
    backend: list[str] = typer.Option([], "--backend", "-b", metavar=_choices(PROFILE_BACKENDS), show_default=False, help="Repeatable [default: every installed one, and torch-cuda when a GPU is present]."),
    quantize: list[str] = typer.Option([], "--quantize", "-q", metavar=_choices(QUANTIZE), show_default=False, help="Modes to export checkpoints in (repeatable) [default: none]; an export is profiled as it is."),
    threads: int = typer.Option(1, "--threads", "-t", min=1, help="Backend threads."),
    steps: int = typer.Option(2000, "--steps", min=1, help="Timed steps per configuration."),
    warmup: int = typer.Option(200, "--warmup", "-w", min=0, help="Untimed steps before timing."),
    rounds: int = typer.Option(20, "--rounds", min=1, help="The steps are split into this many rounds, each visiting every configuration in turn."),
    streams: int = typer.Option(1, "--streams", "-k", min=1, help="Also time k streams stepped together (StreamBatch)."),
    frame_ms: float = typer.Option(10.0, "--frame-ms", help="Frame period for the real-time factor, in ms."),
    baseline: str = typer.Option("lstm", "--baseline", metavar=_choices(BASELINES), help="lstm: add LSTM0 through the same path and torch.nn.LSTM via torch.onnx on onnxruntime; none: no baselines."),
    as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON instead of tables."),
    json_out: Optional[Path] = typer.Option(None, "--json-out", metavar="FILE", help="Write the full report as JSON."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", metavar="FILE", help="Write one row per configuration as CSV."),
    plot_out: Optional[Path] = typer.Option(None, "--plot", metavar="FILE.png", help="Write a PNG: latency distributions, and size/latency against the baselines."),
    keep: Optional[Path] = typer.Option(None, "--keep", metavar="DIR", help="Keep the exported files in this folder."),
    wide: bool = typer.Option(False, "--wide", help="Every column (p90, mean ± std, min, max, RTF, load, first step, ...): about 170 characters wide."),
    device: Optional[str] = typer.Option(None, "--device", metavar=_choices(DEVICES), show_default=False, help="Instead: the C export on an emulated device (flash, RAM, instructions per step, RTF), beside LSTM0 and TensorFlow Lite Micro's arena."),
) -> None:
    """Latency, memory, size and MACs per step, each model beside the standard LSTM."""
    from . import profile

    for option, path in (("--json-out", json_out), ("--csv", csv_out), ("--plot", plot_out)):
        if path is not None:  # before the measurement, not after it
            check_writable(path, option)
    from ._io import check_distinct  # a report over a model it profiles would replace the model

    check_distinct([("--json-out", json_out), ("--csv", csv_out), ("--plot", plot_out)],
                   [("model profiled", m) for m in models or []])
    if device is not None:
        return _profile_device(models, device, frame_ms, baseline, keep, as_json, json_out)
    if plot_out is not None:
        extras.require("profile", "--plot", "matplotlib")
    files = [Path(m) for m in models or []]
    if not files or any(formats.by_suffix(m.suffix) is formats.CHECKPOINT for m in files):
        extras.require("checkpoint", "profiling a checkpoint", "safetensors")
    exports = [m for m in files if formats.by_suffix(m.suffix) not in (None, formats.CHECKPOINT)]
    if exports and _given(ctx, "quantize"):
        if len(exports) == len(files):
            warn("--quantize is ignored: it sets the modes checkpoints are exported in, and "
                 f"{', '.join(str(m) for m in exports)} {'is' if len(exports) == 1 else 'are'} "
                 f"already exported (profiled as quantised at export)")
        else:
            warn(f"--quantize applies to the checkpoints only; {', '.join(map(str, exports))} "
                 f"{'is' if len(exports) == 1 else 'are'} profiled as exported")
    with profile.quiet_native_output() as real_err, progress("profiling", real_err) as log:
        report = profile.run(models or [None], backends=backend or None,
                             quantize=quantize or ["none"], baseline=baseline, threads=threads,
                             steps=steps, warmup=warmup, rounds=rounds, streams=streams,
                             frame_ms=frame_ms, workdir=keep, log=log)
    for path, write in ((json_out, profile.write_json), (csv_out, profile.write_csv),
                        (plot_out, profile.plot)):
        if path is not None:
            err_console.print(f"wrote {write(report, path)}", highlight=False, soft_wrap=True, markup=False)
    if as_json:
        sys.stdout.write(json.dumps(profile.to_json(report), indent=2) + "\n")
    else:
        out = Console(width=max(console.width, 170)) if wide else console
        for t in profile.tables(report, wide=wide):
            out.print(t)
        for note in report["notes"]:
            style = "yellow" if note == profile.NO_GPU else "dim"
            out.print(f"note: {note}", style=style, highlight=False, markup=False)
        m = report["machine"]
        out.print(f"{m['cpu']}, {m['cores']} cores; {report['elapsed_s']:.0f} s", style="dim",
                  highlight=False)
    if not any(r.get("latency_us") for r in report["results"]):
        fail("no configuration could be measured (see the notes above)", 1)


# ---- demo --------------------------------------------------------------------------------------
@app.command("demo")
@user_errors
def demo_cmd(
    out: Path = typer.Option(Path("slimedge-demo"), "--output", "--out", "-o", metavar="DIR", help="Folder for the exported files and the profile."),
    model: Optional[Path] = typer.Option(None, "--model", show_default=False, help="A classifier checkpoint [default: the shipped model]."),
    steps: int = typer.Option(1000, "--steps", min=1, help="Timed steps per configuration in the profile."),
) -> None:
    """The shipped model exported to ONNX and TFLite in every quantisation, validated, its test
    accuracy through the runtime, and a short profile beside the standard LSTM."""
    from . import demo, profile

    # everything the demo needs, before its first minute of work: exporters, both interpreters,
    # matplotlib for the PNG
    extras.require("profile", "slimedge demo")
    with profile.quiet_native_output() as real_err, progress("demo", real_err) as log:
        result = demo.run(out, model=model, profile_steps=steps, log=log)
    demo.render(result, console)


if __name__ == "__main__":  # pragma: no cover
    app()
