"""The ``slimedge`` command line: a thin typer app over the library.

Every command turns a library error (bad file, bad option, bad data) into one red line on stderr and
a non-zero exit, never a traceback.
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__, formats, variants
from ._io import check_writable
from .errors import SlimedgeError, UsageError
from .runtime import BACKENDS as _BACKENDS

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="SLIM LSTM variants: train, export to ONNX/TFLite, run and profile.")
console = Console()
err_console = Console(stderr=True)


# Errors a user can cause: slimedge's own (a bad file, option, frame or data set; their messages
# name it), and the operating system's about the user's files (missing, not permitted, disk full).
# Anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (SlimedgeError, OSError)


def fail(message: str, code: int = 2) -> None:
    """One red line on stderr (the message shown as it is: no markup read from it), then exit."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def user_errors(fn: Callable) -> Callable:
    """Decorator: a user error becomes one message and exit code 2."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except USER_ERRORS as e:
            fail(str(e))
    return wrapper


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
        t.add_column(col, justify=just)
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


@app.command("train")
@user_errors
def train_cmd(
    output: Path = typer.Option(..., "--output", "-o", help="Best checkpoint (.safetensors); the "
                                "training state (.state.safetensors) and JSON log (.log.json) go beside it."),
    variant: str = typer.Option("LSTM6", "--variant", "-v", help="A variant name or alias (see `slimedge variants`)."),
    data: str = typer.Option("fsdd", "--data", "-d", help="fsdd, mnist-rows, mnist-pixels, or a .npz file (see README)."),
    hidden_size: int = typer.Option(64, "--hidden-size", "-n", help="Hidden size n."),
    layers: int = typer.Option(1, "--layers", help="Number of stacked SLIM layers."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs in total [default: 10; with --resume: the run's own]."),
    batch_size: int = typer.Option(32, "--batch-size", help="Mini-batch size."),
    lr: float = typer.Option(3e-3, "--lr", help="Adam learning rate."),
    schedule: str = typer.Option("constant", "--schedule", help="Learning-rate schedule: constant or cosine."),
    clip: float = typer.Option(1.0, "--clip", help="Gradient-norm clip (0 = off)."),
    dropout: float = typer.Option(0.0, "--dropout", help="Dropout between layers."),
    seed: int = typer.Option(0, "--seed", help="Seed for weights, batch order and dropout."),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the train/val/test split."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Cap every split at N sequences (a stratified subset), for quick runs."),
    gate_activation: str = typer.Option("sigmoid", "--gate-activation", help="σ: sigmoid or hard_sigmoid."),
    activation: str = typer.Option("tanh", "--activation", help="g: tanh, sigmoid or relu."),
    constant: list[str] = typer.Option([], "--constant", help="A fixed gate's value, GATE=VALUE (repeatable), e.g. f=0.5."),
    init: str = typer.Option("pytorch", "--init", help="pytorch or paper (the authors' initialisation)."),
    input_only_cell: bool = typer.Option(False, "--input-only-cell", help="LSTM_C6 only: c~ = g(W_c x + b_c)."),
    threads: int = typer.Option(1, "--threads", help="Torch CPU threads (fixed, for reproducible runs)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run recorded beside -o with its own settings (only --epochs is taken from the command line)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no per-epoch lines."),
) -> None:
    """Train a SLIM classifier: validation each epoch, the best checkpoint kept, resumable."""
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
                  highlight=False, soft_wrap=True)


@app.command("evaluate")
@user_errors
def evaluate_cmd(
    model: Optional[Path] = typer.Argument(None, help="A checkpoint; default: the shipped model."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="fsdd, mnist-rows, mnist-pixels or a .npz file; default: the model's training data."),
    split: str = typer.Option("test", "--split", help="train, val or test."),
    split_seed: Optional[int] = typer.Option(None, "--split-seed", help="Default: the seed the model was trained with."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Cap every split at N sequences."),
    device: str = typer.Option("cpu", "--device", help="auto, cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    backend: Optional[str] = typer.Option(None, "--backend", "-b", help=f"Evaluate through the streaming runtime with this backend (auto, {', '.join(_BACKENDS)}); exported files always go through it."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Threads of the runtime backend, or of torch for a checkpoint (default 1 there, so training's numbers repeat exactly)."),
) -> None:
    """Accuracy and confusion matrix of a model (a checkpoint or an exported file) on a data split."""
    from .data import SPLITS
    from .train import evaluate_checkpoint
    from .zoo import default_model_path

    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    path = model if model is not None else default_model_path()
    if backend is not None or formats.for_path(path) is not formats.CHECKPOINT:
        ev, meta = _evaluate_runtime(path, data, split, split_seed, limit, backend or "auto",
                                     threads)
    else:
        ev, meta = evaluate_checkpoint(path, data, split, split_seed=split_seed, limit=limit,
                                       device=device, threads=threads or 1)
    if as_json:
        sys.stdout.write(json.dumps({**meta, **ev.to_dict()}, indent=2) + "\n")
        return
    t = Table(title=f"{meta['variant']} on {meta['data']['name']} ({split}, {ev.n} sequences): "
                    f"rows = true class, columns = predicted")
    t.add_column("true", justify="right")
    for label in ev.labels:
        t.add_column(label, justify="right")
    t.add_column("recall", justify="right")
    for k, label in enumerate(ev.labels):
        row = ev.confusion[k]
        cells = [(f"[bold]{v}[/]" if j == k else (str(v) if v else "[dim]0[/]"))
                 for j, v in enumerate(row)]
        recall = f"{row[k] / row.sum():.3f}" if row.sum() else "–"
        t.add_row(label, *cells, recall)
    console.print(t)
    console.print(f"accuracy {ev.accuracy:.4f} ({int(ev.confusion.trace())}/{ev.n}), "
                  f"mean cross-entropy {ev.loss:.4f}; model {path}", highlight=False, soft_wrap=True)


# ---- export ------------------------------------------------------------------------------------
@app.command("export")
@user_errors
def export_cmd(
    model: Optional[Path] = typer.Argument(None, help="A checkpoint; default: the shipped model."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="The file to write; default: the model's name with the format's suffix, in the current directory."),
    format: Optional[str] = typer.Option(None, "--format", "-f", help=f"{', '.join(formats.exportable())}; default: from -o's suffix, else onnx."),
    mode: str = typer.Option("step", "--mode", help="step (one time step: x, h, c -> y, h_next, c_next) or sequence (a whole sequence, time symbolic)."),
    quantize: str = typer.Option("none", "--quantize", "-q", help=f"{', '.join(formats.QUANTIZE)}."),
    atol: Optional[float] = typer.Option(None, "--atol", help="Largest difference allowed per output in validation (default 1e-5 for float graphs)."),
    steps: int = typer.Option(100, "--steps", min=1, help="Validation rollout length in time steps."),
    no_validate: bool = typer.Option(False, "--no-validate", help="Skip running the file against the source model."),
    calibration_samples: Optional[int] = typer.Option(None, "--calibration-samples", min=1, help="int8: training sequences whose float rollouts calibrate the activation ranges (default 128)."),
    compat: str = typer.Option("litert", "--compat", help="TFLite target interpreter: litert, or tflite-runtime (per-tensor weight scales, which that old interpreter computes correctly)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON instead of a table."),
) -> None:
    """Export a model to ONNX or TFLite; the file is validated against the model before it is kept."""
    from . import exporters
    from .zoo import default_model_path

    path = model if model is not None else default_model_path()
    if format is None:
        named = formats.by_suffix(output.suffix) if output is not None else None
        format = named.name if named is not None and named.exportable else "onnx"
    if output is None:
        output = Path(exporters.default_name(path.stem + (".sequence" if mode == "sequence" else ""),
                                             format, quantize))
    try:
        result = exporters.export(path, output, format=format, mode=mode, quantize=quantize,
                                  atol=atol, validate=not no_validate, validation_steps=steps,
                                  **_quantize_options(format, quantize, calibration_samples, compat))
    except exporters.ExportValidationError as e:
        if not as_json:
            _print_validation(e.report, err_console)
        fail(str(e), code=1)
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return
    if result.validation is not None:
        _print_validation(result.validation, console)
    s = result.summary
    console.print(f"wrote {result.path} ({result.size_bytes / 1024:.1f} KiB): {result.format} "
                  f"{result.mode} graph, {s['params']:,} parameters, "
                  f"{s['macs_per_step']:,} MACs per step"
                  + ("" if result.validation else " (not validated)"),
                  highlight=False, soft_wrap=True)
    task = (result.quantization or {}).get("task")
    if task:
        d = task["drift"]
        console.print(f"{result.quantize} on the task: {task['split']} accuracy "
                      f"{100 * task['accuracy']:.2f}% vs float {100 * task['float_accuracy']:.2f}% "
                      f"(drop {100 * task['accuracy_drop']:+.2f} points, tolerance "
                      f"{100 * task['tolerance']:.1f}); {d['steps']}-step drift: h "
                      f"{d['max_abs_h_next']:.3g}, c {d['max_abs_c_next']:.3g}, same argmax "
                      f"{100 * d['argmax_agreement']:.1f}% of steps", highlight=False, soft_wrap=True)


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
        ok = diff <= report.atol and drift <= report.drift_atol
        t.add_row(name, f"{diff:.2e}", f"{report.atol:.0e}", f"{drift:.2e}",
                  f"{report.drift_atol:.0e}", f"{report.max_abs_ref[name]:.3g}",
                  "[green]ok[/]" if ok else "[bold red]FAIL[/]")
    out.print(t)



# ---- run (the streaming runtime) ----------------------------------------------------------------
def _load_runtime_model(path: Path, backend: str, threads: Optional[int]):
    from . import runtime

    m = runtime.load(path, backend, threads)
    err_console.print(f"{path}: backend {m.backend} ({m.backend_reason}; {m.session.detail})",
                      style="dim", highlight=False, soft_wrap=True)
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
                      limit: Optional[int], backend: str, threads: Optional[int]):
    from . import runtime

    m = _load_runtime_model(path, backend, threads)
    splits, part = _runtime_split(m, path, data, split, split_seed, limit)
    ev = runtime.evaluate(m, part)
    return ev, {"data": splits.summary(), "split": split, "model": str(path),
                "variant": m.variant, "backend": m.backend}


@app.command("run")
@user_errors
def run_cmd(
    model: Optional[Path] = typer.Argument(None, help="An exported .onnx or .tflite file, or a checkpoint; default: the shipped model."),
    input: Optional[Path] = typer.Option(None, "--input", "-i", help="Frames to stream, a .npy array (T, m): prints each frame's output."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="A data set (fsdd, mnist-rows, mnist-pixels or a .npz file): prints accuracy."),
    split: str = typer.Option("test", "--split", help="train, val or test (with --data)."),
    split_seed: Optional[int] = typer.Option(None, "--split-seed", help="Default: the seed the model was trained with."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Cap every split at N sequences."),
    backend: str = typer.Option("auto", "--backend", "-b", help=f"auto, {', '.join(_BACKENDS)}."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Backend threads (default: the backend's own)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Stream frames through a model with the runtime, one step per frame."""
    import time

    import numpy as np

    from . import runtime
    from .zoo import default_model_path

    if (input is None) == (data is None):
        raise UsageError("give exactly one of --input FILE.npy (print each frame's output) and "
                         "--data NAME (print accuracy)")
    path = model if model is not None else default_model_path()
    m = _load_runtime_model(path, backend, threads)
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
        console.print(f"accuracy {ev.accuracy:.4f} ({result['correct']}/{ev.n}) on "
                      f"{result['data']} {split} through {m.backend}; {frames:,} frames in "
                      f"{seconds:.2f} s", highlight=False, soft_wrap=True)
        return
    try:
        with open(input, "rb") as f:
            if f.read(6) != b"\x93NUMPY":
                raise UsageError(f"{input}: not a .npy file (no NumPy header); save frames with "
                                 f"numpy.save as a (T, {m.input_size}) array")
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
    top = outputs.argmax(-1)
    names = [m.labels[k] if m.labels and k < len(m.labels) else str(k) for k in top]
    if as_json:
        sys.stdout.write(json.dumps({"model": str(path), "backend": m.backend,
                                     "labels": m.labels, "top": names,
                                     "outputs": outputs.tolist()}) + "\n")
        return
    for t, (name, out) in enumerate(zip(names, outputs)):
        shown = " ".join(f"{v:8.4f}" for v in out[:12]) + (" ..." if len(out) > 12 else "")
        sys.stdout.write(f"{t:5d}  {name:>8s}  {shown}\n")

# ---- profile -----------------------------------------------------------------------------------
@app.command("profile")
@user_errors
def profile_cmd(
    models: Optional[list[Path]] = typer.Argument(None, help="Checkpoints (.safetensors; exported here for each backend) or exports (.onnx, .tflite); default: the shipped model."),
    backend: list[str] = typer.Option([], "--backend", "-b", help="onnxruntime, litert, torch, numpy or torch-cuda (repeatable); default: every installed one, and torch-cuda when a GPU is present."),
    quantize: list[str] = typer.Option([], "--quantize", "-q", help=f"{', '.join(formats.QUANTIZE)} for checkpoints' exports (repeatable) [default: none]."),
    threads: int = typer.Option(1, "--threads", "-t", min=1, help="Backend threads."),
    steps: int = typer.Option(2000, "--steps", "-n", min=1, help="Timed steps per configuration."),
    warmup: int = typer.Option(200, "--warmup", "-w", min=0, help="Untimed steps before timing."),
    rounds: int = typer.Option(20, "--rounds", min=1, help="The steps are split into this many rounds, each visiting every configuration in turn."),
    streams: int = typer.Option(1, "--streams", "-k", min=1, help="Also time k streams stepped together (StreamBatch)."),
    frame_ms: float = typer.Option(10.0, "--frame-ms", help="Frame period for the real-time factor, in ms."),
    baseline: str = typer.Option("lstm", "--baseline", help="lstm: add LSTM0 through the same path and torch.nn.LSTM via torch.onnx on onnxruntime; none: no baselines."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full report as JSON."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write one row per configuration as CSV."),
    plot_out: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG: latency distributions, and size/latency against the baselines."),
    keep: Optional[Path] = typer.Option(None, "--keep", help="Keep the exported files in this folder."),
) -> None:
    """Latency, memory, size and MACs per step, each model beside the standard LSTM."""
    from . import profile

    for option, path in (("--json", json_out), ("--csv", csv_out), ("--plot", plot_out)):
        if path is not None:  # before the measurement, not after it
            check_writable(path, option)
    with profile.quiet_native_output() as real_err, \
            Console(file=real_err, stderr=True).status("profiling", spinner="dots") as status:
        report = profile.run(models or [None], backends=backend or None,
                             quantize=quantize or ["none"], baseline=baseline, threads=threads,
                             steps=steps, warmup=warmup, rounds=rounds, streams=streams,
                             frame_ms=frame_ms, workdir=keep, log=status.update)
    out = console if console.is_terminal else Console(width=170)
    for t in profile.tables(report):
        out.print(t)
    for note in report["notes"]:
        style = "yellow" if note == profile.NO_GPU else "dim"
        out.print(f"note: {note}", style=style, highlight=False)
    m = report["machine"]
    out.print(f"{m['cpu']}, {m['cores']} cores; {report['elapsed_s']:.0f} s", style="dim",
              highlight=False)
    for path, write in ((json_out, profile.write_json), (csv_out, profile.write_csv),
                        (plot_out, profile.plot)):
        if path is not None:
            out.print(f"wrote {write(report, path)}", highlight=False)
    if not any(r.get("latency_us") for r in report["results"]):
        fail("no configuration could be measured (see the notes above)", 1)


# ---- demo --------------------------------------------------------------------------------------
@app.command("demo")
@user_errors
def demo_cmd(
    out: Path = typer.Option(Path("slimedge-demo"), "--out", "-o", help="Folder for the exported files and the profile."),
    model: Optional[Path] = typer.Option(None, "--model", help="A classifier checkpoint; default: the shipped model."),
    steps: int = typer.Option(1000, "--steps", min=1, help="Timed steps per configuration in the profile."),
) -> None:
    """The shipped model exported to ONNX and TFLite in every quantisation, validated, its test
    accuracy through the runtime, and a short profile beside the standard LSTM."""
    from . import demo, profile

    with profile.quiet_native_output() as real_err:
        status_console = Console(file=real_err, stderr=True)
        with status_console.status("demo", spinner="dots") as status:
            result = demo.run(out, model=model, profile_steps=steps, log=status.update)
    demo.render(result, console if console.is_terminal else Console(width=130))


if __name__ == "__main__":  # pragma: no cover
    app()
