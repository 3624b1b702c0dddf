"""``slimedge search``: run a budgeted search (``run``), join one as another worker (``worker``),
show its front (``front``) and export a model from it (``export``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .. import extras, variants
from ..errors import UsageError
from .app import _choices, app, console, progress, user_errors

search_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="Which model fits my device? A budgeted search (Optuna).")
app.add_typer(search_app, name="search")

TARGETS = ("cortex-m4", "cortex-m0plus", "aarch64", "host")
BACKENDS = ("local", "ray")
DEFAULT_QUANTIZE = {"cortex-m4": "none,int8", "cortex-m0plus": "int8", "aarch64": "none,int8",
                    "host": "none,dynamic"}


def _list(text: str, kind=str, what: str = "list") -> list:
    items = [s.strip() for s in str(text).split(",") if s.strip()]
    try:
        return [kind(s) for s in items]
    except ValueError:
        raise UsageError(f"{what}: expected comma-separated {kind.__name__} values, got "
                         f"{text!r}") from None


def _space(space_file, variants_, hidden, layers, constants, quantize, formats_, target,
           frontend_values=()):
    from ..search import SearchSpace

    if space_file is not None:
        return SearchSpace.from_file(space_file)
    d = {"variant": _list(variants_, str, "--variants") if variants_ else list(variants.VARIANTS),
         "hidden_size": _list(hidden, int, "--hidden-sizes"),
         "num_layers": _list(layers, int, "--layers"),
         "quantize": _list(quantize or DEFAULT_QUANTIZE[target], str, "--quantize")}
    if target == "host":
        d["format"] = _list(formats_, str, "--format")
    for item in constants:
        gate, sep, values = item.partition("=")
        if not sep:
            raise UsageError(f"--constant takes GATE=V1,V2 (e.g. f=0.5,0.9), got {item!r}")
        d[f"constant.{gate.strip()}"] = _list(values, float, "--constant")
    for item in frontend_values:
        key, sep, values = item.partition("=")
        if not sep:
            raise UsageError(f"--frontend-values takes KEY=V1,V2 (e.g. hop_ms=20,30), got "
                             f"{item!r}")
        d[f"frontend.{key.strip()}"] = [_number(v) for v in _list(values, str,
                                                                  "--frontend-values")]
    return SearchSpace.from_dict(d)


def _number(text: str):
    """``20`` -> 20, ``62.5`` -> 62.5, ``true`` -> True; anything else as written."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _run_options(study: str, storage: Optional[str], out: Path):
    from ..search.study import storage_url

    return storage_url(storage, out, existing=True), study


@search_app.command("run")
@user_errors
def run_cmd(
    out: Path = typer.Argument(..., help="The search's folder: its study (SQLite, unless --storage), trials' checkpoints and exports, front.json/.csv/.png."),
    target: str = typer.Option("cortex-m4", "--target", "-t", metavar=_choices(TARGETS), help="The emulated device the models are measured on, or host (runtime latency)."),
    flash: Optional[str] = typer.Option(None, "--flash", help="Flash budget, e.g. 32KB (1 KB = 1,024 B)."),
    ram: Optional[str] = typer.Option(None, "--ram", help="RAM budget, e.g. 8KB."),
    max_cycles: Optional[str] = typer.Option(None, "--max-cycles-per-second", help="Cycles per second of audio/frames, e.g. 4M (cycles per step x frames per second)."),
    max_latency: Optional[float] = typer.Option(None, "--max-latency-us", help="host: the step's median latency on the runtime, µs."),
    max_size: Optional[str] = typer.Option(None, "--max-file-size", help="host: the exported file's size, e.g. 64KB."),
    frame_ms: float = typer.Option(10.0, "--frame-ms", help="Frame period: frames per second = 1000 / this."),
    space_file: Optional[Path] = typer.Option(None, "--space", help="A JSON search space (see slimedge.search.space); replaces the options below."),
    variants_: Optional[str] = typer.Option(None, "--variants", help="Comma-separated variants [default: the whole catalogue]."),
    hidden: str = typer.Option("8,16,32,64", "--hidden-sizes", help="Hidden sizes to try."),
    layers: str = typer.Option("1", "--layers", help="Layer counts to try."),
    constant: list[str] = typer.Option([], "--constant", metavar="GATE=V1,V2", show_default=False, help="Values to try for a fixed gate (repeatable), e.g. f=0.5,0.9; used where the variant fixes that gate."),
    quantize: Optional[str] = typer.Option(None, "--quantize", show_default=False, help="Quantisation modes to try [default: none,int8; cortex-m0plus: int8; host: none,dynamic]."),
    formats_: str = typer.Option("onnx,tflite", "--format", help="host: export formats to try (a device runs the C export)."),
    data: str = typer.Option("fsdd", "--data", "-d", metavar="NAME|FILE.npz|DIR", help="The data set (scored on its validation split only), or a folder of WAV files (through --frontend; measured on the device with its front-end, per second of audio)."),
    frontend: Optional[str] = typer.Option(None, "--frontend", metavar="logmel|mfcc|microfrontend", show_default=False, help="With a WAV folder: the audio front-end (as slimedge train) [default: microfrontend]."),
    frontend_option: list[str] = typer.Option([], "--frontend-option", metavar="KEY=VALUE", show_default=False, help="With a WAV folder: a front-end field fixed for every trial (repeatable)."),
    frontend_values: list[str] = typer.Option([], "--frontend-values", metavar="KEY=V1,V2", show_default=False, help="With a WAV folder: values to try for a front-end field (repeatable), e.g. hop_ms=20,30."),
    split_by: str = typer.Option("random", "--split-by", metavar="random|speaker|fsdd", help="With a WAV folder: how it is split (as slimedge train)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Cap every split at N sequences."),
    epochs: int = typer.Option(10, "--epochs", help="Epochs per trial."),
    batch_size: int = typer.Option(32, "--batch-size", help="Mini-batch size."),
    lr: float = typer.Option(3e-3, "--lr", help="Adam learning rate."),
    schedule: str = typer.Option("cosine", "--schedule", help="Learning-rate schedule."),
    seed: int = typer.Option(0, "--seed", help="Every trial's training seed."),
    trials: int = typer.Option(20, "--trials", "-n", min=1, help="Trials to train (over every worker; rejected ones are not counted)."),
    startup_trials: int = typer.Option(10, "--startup-trials", min=0, help="Random trials before the sampler (TPE) models the front."),
    prune: bool = typer.Option(True, "--prune/--no-prune", help="Stop a trial whose validation accuracy is under the median of earlier trials at the same epoch."),
    workers: int = typer.Option(2, "--workers", "-w", min=1, help="Worker processes (local) or Ray tasks."),
    backend: str = typer.Option("local", "--backend", metavar=_choices(BACKENDS), help="local processes, or a Ray cluster (the cluster extra)."),
    address: Optional[str] = typer.Option(None, "--address", help="--backend ray: the cluster's address (ray start --head prints it)."),
    storage: Optional[str] = typer.Option(None, "--storage", help="The study's database URL (postgresql://... for workers on many machines) [default: sqlite in OUT]."),
    study: str = typer.Option("search", "--study", help="The study's name in the storage."),
    grace: float = typer.Option(60.0, "--heartbeat-grace", help="Seconds a trial's heartbeat may be silent before its worker is taken for dead and the trial queued again."),
) -> None:
    """Search variants, sizes, gate constants and quantisation for the most accurate models that
    fit a target's budget; print the Pareto front. The same command resumes a killed search."""
    extras.require("search", "slimedge search", "optuna")
    extras.require("train", "slimedge search", "torch", "safetensors")
    from ..search import Budget, parse_bytes, parse_count, run, settings_of

    if target not in TARGETS:
        raise UsageError(f"unknown target {target!r}; valid: {', '.join(TARGETS)}")
    if target != "host":
        extras.require("devices", f"slimedge search --target {target}", "unicorn", "elftools")
        from .. import devices

        devices.require(target)
    limits = {}
    if flash is not None:
        limits["flash"] = parse_bytes(flash, "--flash")
    if max_size is not None:
        limits["flash"] = parse_bytes(max_size, "--max-file-size")
    if ram is not None:
        limits["ram"] = parse_bytes(ram, "--ram")
    if max_cycles is not None:
        limits["cycles_per_second"] = parse_count(max_cycles, "--max-cycles-per-second")
    if max_latency is not None:
        limits["latency_us"] = float(max_latency)
    budget = Budget(target, limits, frame_ms)
    space = _space(space_file, variants_, hidden, layers, constant, quantize, formats_, target,
                   frontend_values)
    base = {"data": data, "limit": limit, "epochs": epochs, "batch_size": batch_size, "lr": lr,
            "schedule": schedule, "seed": seed, "split_seed": 0}
    if Path(data).is_dir():
        from ..frontend.audio import DEFAULT
        from .commands_train import _audio_spec

        base.update(audio=_audio_spec(frontend, frontend_option) or dict(DEFAULT),
                    split=split_by)
    elif frontend or frontend_option or frontend_values or split_by != "random":
        raise UsageError(f"--frontend, --frontend-option, --frontend-values and --split-by "
                         f"apply to a folder of WAV files; {data} is not one")
    from ..train_config import TrainConfig

    TrainConfig(**{k: v for k, v in base.items()})  # every setting checked before any work
    from ..search.runner import calibration_candidates
    from ..search.space import train_settings

    for c in calibration_candidates(space):  # each front-end setting too
        TrainConfig(**train_settings(c, base))
    settings = settings_of(space, budget, base, trials, prune=prune, startup_trials=startup_trials,
                           grace_s=grace)
    with progress(f"search on {target}: {trials} trials, {workers} worker(s)") as log:
        s = run(out, settings, study_name=study, storage=storage, backend=backend,
                workers=workers, address=address, log=log)
    _show(s, out)


def _show(s: dict, out: Path) -> None:
    from ..search import report

    console.print(report.table(s))
    console.print(f"front: {out / 'front.json'}, {out / 'front.csv'}, {out / 'front.png'}; "
                  f"every trial: {out / 'trials.csv'}. Export one: slimedge search export "
                  f"{out} --trial N -o FILE", highlight=False, soft_wrap=True, markup=False)


@search_app.command("worker")
@user_errors
def worker_cmd(
    out: Path = typer.Argument(..., help="This machine's folder for its trials' files."),
    storage: str = typer.Option(..., "--storage", help="The study's database URL, as the search that started it used."),
    study: str = typer.Option("search", "--study", help="The study's name."),
) -> None:
    """Join a search started elsewhere (its settings and size model come from the storage)."""
    extras.require("search", "slimedge search worker", "optuna")
    from ..search.study import open_study, storage_url, work
    from ..search.study import progress as counts

    url = storage_url(storage, out)
    open_study(url, study)  # exists, and is a slimedge search
    out.mkdir(parents=True, exist_ok=True)
    r = work(url, study, str(out))
    console.print(f"worker ran {r['trials_run']} trial(s); study: "
                  f"{json.dumps(counts(open_study(url, study)))}", highlight=False, markup=False)


@search_app.command("front")
@user_errors
def front_cmd(
    out: Path = typer.Argument(..., help="The search's folder."),
    storage: Optional[str] = typer.Option(None, "--storage", help="The study's database URL [default: sqlite in OUT]."),
    study: str = typer.Option("search", "--study", help="The study's name."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """The Pareto front of a search so far (rewrites front.json/.csv/.png and trials.csv)."""
    extras.require("search", "slimedge search front", "optuna")
    import sys

    from ..search import report
    from ..search.study import open_study, summary

    url, name = _run_options(study, storage, out)
    st = open_study(url, name)
    s = summary(st)
    report.write(s, st, out)
    if as_json:
        sys.stdout.write(json.dumps(s, indent=2, default=str) + "\n")
        return
    _show(s, out)


@search_app.command("export")
@user_errors
def export_cmd(
    out: Path = typer.Argument(..., help="The search's folder."),
    trial: int = typer.Option(..., "--trial", help="The trial to export (a row of the front)."),
    output: Path = typer.Option(..., "--output", "-o", help="The file to write (.c, .onnx, .tflite: the format; or .safetensors for the checkpoint)."),
    storage: Optional[str] = typer.Option(None, "--storage", help="The study's database URL [default: sqlite in OUT]."),
    study: str = typer.Option("search", "--study", help="The study's name."),
) -> None:
    """Export a trial's model in the quantisation it was measured in (its checkpoint as trained)."""
    extras.require("search", "slimedge search export", "optuna")
    from .. import _io, formats
    from ..exporters import export
    from ..search.study import open_study, trial_by_number

    url, name = _run_options(study, storage, out)
    t = trial_by_number(open_study(url, name), trial)
    ckpt = t.user_attrs.get("checkpoint")
    if ckpt is None:
        raise UsageError(f"trial {trial} has no model ({t.state.name.lower()}"
                         + (f": {t.user_attrs['rejected']}" if "rejected" in t.user_attrs else "")
                         + ")")
    if not Path(ckpt).is_file():
        raise UsageError(f"trial {trial}'s checkpoint {ckpt} is not on this machine (trained on "
                         f"{t.user_attrs.get('host')})")
    fmt = formats.for_path(output)
    if fmt is formats.CHECKPOINT:
        _io.check_distinct([("-o", output)], [("the trial's checkpoint", ckpt)])
        _io.write_bytes(output, Path(ckpt).read_bytes())
        written = output
    else:
        written = export(ckpt, output, format=fmt.name, quantize=t.params.get("quantize", "none")).path
    console.print(f"trial {trial} ({t.user_attrs.get('label')}) -> {written}",
                  highlight=False, markup=False, soft_wrap=True)
