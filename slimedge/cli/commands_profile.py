"""``slimedge profile`` (host and ``--target``) and ``slimedge demo``."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .. import extras, formats
from .._io import check_writable
from ..errors import UsageError
from ..formats import QUANTIZE
from . import app as _shared  # err_console is set per command (see user_errors)
from .app import (
    BASELINES,
    PROFILE_BACKENDS,
    _choices,
    _given,
    app,
    console,
    fail,
    progress,
    user_errors,
    warn,
)

# ---- profile -----------------------------------------------------------------------------------
TARGETS = ("cortex-m4", "cortex-m0plus", "aarch64")  # slimedge.devices.DEVICES (a test checks)


def _profile_device(models, device, frame_ms, baseline, keep, as_json, json_out,
                    wide: bool = False, audio: Optional[Path] = None) -> None:
    """``profile --target``: the C step on an emulated device (slimedge.profile.device)."""
    from .. import profile
    from ..profile import device as on_device

    on_device.check(device)  # the name and the cross tools, before any work
    with profile.quiet_native_output() as real_err, progress(f"profiling on {device}", real_err) as log:
        report = on_device.run(models or [None], device, frame_ms=frame_ms, baseline=baseline,
                               workdir=keep, audio=audio, log=log)
    if json_out is not None:
        _shared.err_console.print(f"wrote {_shared.shown(profile.write_json(report, json_out))}",
                                  highlight=False, markup=False)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    out = Console(width=max(console.width, 150)) if wide else console
    for t in on_device.tables(report, wide=wide):
        out.print(t)
    for note in report["notes"]:
        out.print(f"note: {note}", style="dim", highlight=False, markup=False)


@app.command("profile")
@user_errors
def profile_cmd(
    ctx: typer.Context,
    models: Optional[list[Path]] = typer.Argument(None, help="Checkpoints (.safetensors; exported here for each backend) or exports (.onnx, .tflite); default: the shipped model. Or a shipped model by name: fsdd_mfcc, fsdd_audio, fsdd_stream."),
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
    wide: bool = typer.Option(False, "--wide", help="Every column (p90, mean ± std, min, max, RTF, load, first step, ...; with --target: cycles, RTF, TFLM arena, code and constants): about 170 characters wide."),
    target: Optional[str] = typer.Option(None, "--target", metavar=_choices(TARGETS), show_default=False, help="Instead: the C export on an emulated device (flash, RAM, instructions per step, RTF), beside LSTM0 and TensorFlow Lite Micro's arena."),
    old_device: Optional[str] = typer.Option(None, "--device", hidden=True, help="Renamed --target."),
    audio: Optional[Path] = typer.Option(None, "--audio", help="With --target, for a model that reads audio: a WAV file or a folder of them (its test split) to run through the export's C front-end and model."),
) -> None:
    """Latency, memory, size and MACs per step, each model beside the standard LSTM."""
    from .. import profile

    for option, path in (("--json-out", json_out), ("--csv", csv_out), ("--plot", plot_out)):
        if path is not None:  # before the measurement, not after it
            check_writable(path, option)
    from .._io import check_distinct  # a report over a model it profiles would replace the model
    from ..zoo import resolve

    models = [resolve(m) for m in models] if models else models  # shipped models by name too

    check_distinct([("--json-out", json_out), ("--csv", csv_out), ("--plot", plot_out)],
                   [("model profiled", m) for m in models or []])
    if old_device is not None:  # --device is a torch device in train and evaluate
        raise UsageError(f"profile's emulated device is --target now (--target {old_device}); "
                         f"--device names a torch device, in train and evaluate")
    if target is not None:
        return _profile_device(models, target, frame_ms, baseline, keep, as_json, json_out, wide,
                               audio)
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
            _shared.err_console.print(f"wrote {_shared.shown(write(report, path))}", highlight=False,
                                      soft_wrap=True, markup=False)
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
    from .. import demo, profile
    from ..zoo import resolve

    # everything the demo needs, before its first minute of work: exporters, both interpreters,
    # matplotlib for the PNG
    extras.require("profile", "slimedge demo")
    with profile.quiet_native_output() as real_err, progress("demo", real_err) as log:
        result = demo.run(out, model=None if model is None else resolve(model),
                          profile_steps=steps, log=log)
    demo.render(result, console)


