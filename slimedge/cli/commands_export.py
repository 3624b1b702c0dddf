"""``slimedge export``: a checkpoint to ONNX, TFLite or C, validated before it is kept."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .. import formats
from ..errors import DataError, SlimedgeError, UsageError
from ..formats import QUANTIZE
from . import app as _shared  # err_console is set per command (see user_errors)
from .app import (
    COMPAT,
    _choices,
    _ignored,
    app,
    console,
    fail,
    user_errors,
    warn,
)


# ---- export ------------------------------------------------------------------------------------
@app.command("export")
@user_errors
def export_cmd(
    ctx: typer.Context,
    model: Optional[Path] = typer.Argument(None, help="A checkpoint (*.safetensors); default: the shipped model. Or a shipped model by name: fsdd_mfcc, fsdd_audio, fsdd_stream."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="The file to write, ending in the format's suffix; default: the model's name, the mode and interpreter where not the default, the quantisation and the format's suffix (model.int8.tflite, model.tflm.int8.tflite), in the current directory."),
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
    triton: Optional[Path] = typer.Option(None, "--triton", metavar="DIR", show_default=False, help="Write a Triton model repository in DIR instead of one file: MODEL/ (onnxruntime backend, h and c kept by the sequence batcher as implicit state) and MODEL_python/ (Python backend stepping the slimedge runtime on the --format file, one stream per correlation id)."),
    triton_max_sequences: int = typer.Option(1024, "--triton-max-sequences", min=1, help="--triton: streams one model instance serves at once (the sequence batcher's candidates); a stream beyond them waits until one ends."),
) -> None:
    """Export a model to ONNX, TFLite or C; the file is validated against the model before it is kept."""
    from .. import exporters
    from ..zoo import resolve

    path = resolve(model)
    kind = formats.by_suffix(path.suffix)
    if kind is not None and kind is not formats.CHECKPOINT:
        raise UsageError(f"{path}: export takes a checkpoint ({formats.CHECKPOINT.suffix}), and "
                         f"this is a {kind.name} file; export the checkpoint it was made from")
    if quantize not in QUANTIZE:  # before anything reads the checkpoint
        raise UsageError(f"unknown quantize {quantize!r}; valid: {', '.join(QUANTIZE)}")
    if no_validate:
        _ignored(ctx, [("atol", "--atol"), ("validation_steps", "--validation-steps")],
                 "--no-validate runs no validation")
    if triton is not None:
        _triton(path, triton, format or "onnx", mode, quantize, compat, output, no_validate, atol,
                validation_steps, data, calibration_samples, as_json, triton_max_sequences)
        return
    _ignored(ctx, [("triton_max_sequences", "--triton-max-sequences")],
             "it sets the model repository of --triton DIR")
    if format is None:
        named = formats.by_suffix(output.suffix) if output is not None else None
        format = named.name if named is not None and named.exportable else "onnx"
    if quantize == "none":
        _ignored(ctx, [("data", "--data")], "it calibrates and checks quantised files "
                                       "(--quantize dynamic or int8)")
        data = None
    source = path
    if quantize != "none" and data is None:  # the checkpoint read once, for this and the export
        source = exporters.as_checkpoint(path)
        if not (formats.ModelInfo.from_config(source.config, path=path).data or {}).get("name"):
            raise UsageError(f"{path}: --quantize {quantize} calibrates and checks on real data, "
                             f"and this checkpoint records no data set: pass --data NAME or "
                             f"FILE.npz")
    if output is None:
        # each kind its own name: the mode and a TFLite file's interpreter (m.tflm.int8.tflite)
        stem = (path.stem + (".sequence" if mode == "sequence" else "")
                + (f".{compat}" if format == "tflite" and compat != "litert" else ""))
        output = Path(exporters.default_name(stem, format, quantize))
    _warn_replacing(output, format, mode, quantize,
                    compat if format == "tflite" else None)
    try:
        result = exporters.export(source, output, format=format, mode=mode, quantize=quantize,
                                  atol=atol, validate=not no_validate,
                                  validation_steps=validation_steps, data=data,
                                  **_quantize_options(format, quantize, calibration_samples, compat))
    except exporters.ExportValidationError as e:
        if not as_json:
            _print_validation(e.report, _shared.err_console)
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
    from ..profile.report import _size

    s = result.summary
    head = s["macs_per_step"] - s.get("lstm_macs_per_step", s["macs_per_step"])
    macs = (f"{s['macs_per_step']:,} MACs per step"
            + (f" (LSTM {s['lstm_macs_per_step']:,} + head {head:,})" if head else ""))
    console.print(f"wrote {_shared.shown(result.path)} ({_size(result.size_bytes)}): {result.format} "
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
    a = result.audio
    if a is not None:
        console.print(f"audio front-end ({a.kind}): in C, {a.frames} frames of a test signal "
                      f"{'equal to' if a.atol == 0 else f'within {a.max_abs_diff:.1e} of'} the "
                      f"Python one in any push size; front-end + model (PREFIX_listen) checked"
                      if a.where == "C" else
                      f"audio front-end ({a.kind}): a companion the file's config records (the "
                      f"runtime applies it: audio_stream())", highlight=False, soft_wrap=True)
    arena = (result.target or {}).get("arena_bytes")
    if arena:
        console.print(f"ran on {result.target['interpreter']}: tensor arena {arena:,} bytes "
                      f"({result.target['arena_used_bytes']:,} held after allocation)",
                      highlight=False, soft_wrap=True)


def _triton(path: Path, folder: Path, format: str, mode: str, quantize: str, compat: str,
            output: Optional[Path], no_validate: bool, atol: Optional[float],
            validation_steps: int, data: Optional[str], samples: Optional[int],
            as_json: bool, max_sequences: int) -> None:
    """``export --triton DIR``: a Triton model repository (:mod:`slimedge.triton_server`)."""
    from .. import triton_server

    if output is not None:
        raise UsageError("--triton DIR writes a model repository (its files named by Triton's "
                         "layout); drop -o/--output")
    if mode != "step":
        raise UsageError("--triton serves step graphs (Triton's sequence batcher steps each "
                         "stream); drop --mode sequence")
    options = _quantize_options(format, quantize, samples, compat)
    if atol is not None:
        options["atol"] = atol
    if data is not None:
        options["data"] = data
    repo = triton_server.write(path, folder, format=format, quantize=quantize,
                               validate=not no_validate, validation_steps=validation_steps,
                               sequencing=triton_server.Sequencing(max_sequences=max_sequences),
                               **options)
    if as_json:
        sys.stdout.write(json.dumps(repo.to_dict(), indent=2) + "\n")
        return
    checked = "" if no_validate else ", validated against the model"
    console.print(f"wrote a Triton model repository in {repo.root}{checked}:\n"
                  f"  {repo.onnx_model.name}/ onnxruntime backend, h and c as implicit state "
                  f"(a full Triton server)\n"
                  f"  {repo.python_model.name}/ Python backend, slimedge runtime on "
                  f"{repo.exports['python'].path.name} (needs slimedge in Triton's Python)",
                  highlight=False, soft_wrap=True, markup=False)


def _warn_replacing(output: Path, format: str, mode: str, quantize: str,
                    compat: Optional[str] = None) -> None:
    """A named output that holds another kind of export (float vs int8, step vs sequence, a
    TFLite file for another interpreter) is replaced only with a warning saying what it held
    (default names never collide)."""
    if not output.is_file():
        return
    try:
        old = formats.info(output)
    except (SlimedgeError, OSError):
        return  # not a model file we can read: the suffix checks decide
    if old.is_checkpoint:
        return
    was = _export_kind(old.format, old.export.get("mode", "step"), old.quantize,
                       old.export.get("compat", "litert") if old.format == "tflite" else None)
    now = _export_kind(format, mode, quantize, compat or "litert" if format == "tflite" else None)
    if was != now:
        warn(f"{output} holds {was} and will be replaced by {now}; without -o each kind gets its "
             f"own name")


def _export_kind(format: str, mode: str, quantize: str, compat: Optional[str]) -> str:
    """``a tflite step graph (quantize int8, for tflm)``: what tells two exports apart."""
    return (f"a {format} {mode} graph (quantize {quantize}"
            + (f", for {compat}" if compat is not None else "") + ")")


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


