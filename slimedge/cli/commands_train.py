"""``slimedge variants``, ``train``, ``evaluate`` and ``tts-digits``."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from .. import extras, formats, variants
from ..data import augment as _augment
from ..data import tts as _tts
from ..errors import UsageError
from . import app as _shared  # err_console is set per command (see user_errors)
from .app import (
    ACTIVATIONS,
    GATE_ACTIVATIONS,
    INITS,
    RUN_BACKENDS,
    SCHEDULES,
    SPLITS,
    TORCH_DEVICES,
    _choices,
    _ignored,
    app,
    console,
    fail,
    user_errors,
    warn,
)


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
                 ("label_smoothing", "--label-smoothing"), ("frame_loss", "--frame-loss"),
                 ("frame_loss_from", "--frame-loss-from"), ("select", "--select"),
                 ("seed", "--seed"),
                 ("split_seed", "--split-seed"), ("limit", "--limit"),
                 ("gate_activation", "--gate-activation"), ("activation", "--activation"),
                 ("constant", "--constant"), ("init", "--init"), ("forget_bias", "--forget-bias"),
                 ("input_only_cell", "--input-only-cell"), ("threads", "--threads"),
                 ("flush_denormals", "--flush-denormals"), ("frontend", "--frontend"),
                 ("frontend_option", "--frontend-option"), ("split_by", "--split-by"),
                 ("test_speakers", "--test-speakers"), ("augment", "--augment"),
                 ("augment_copies", "--augment-copies"), ("train_extra", "--train-extra")]


def _audio_spec(frontend: Optional[str], options: list[str]) -> Optional[dict]:
    """``--frontend NAME`` and ``--frontend-option KEY=VALUE`` -> an audio front-end's spec (None
    when neither is given: the default for a WAV folder)."""
    from ..frontend.audio import DEFAULT, PRESETS

    if frontend is None and not options:
        return None
    if frontend is not None and frontend not in PRESETS:
        raise UsageError(f"unknown front-end {frontend!r}; valid: {', '.join(PRESETS)}")
    spec = dict(PRESETS[frontend] if frontend else DEFAULT)
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--frontend-option takes KEY=VALUE (e.g. hop_ms=20), got {item!r}")
        spec[key.strip()] = _option_value(value.strip())
    return spec


def _option_value(text: str):
    """A front-end option's value as JSON would type it: int, float, true/false, else a string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@app.command("train")
@user_errors
def train_cmd(
    ctx: typer.Context,
    output: Path = typer.Option(..., "--output", "-o", help="Best checkpoint (*.safetensors); the training state (.state.safetensors) and JSON log (.log.json) go beside it."),
    variant: str = typer.Option("LSTM6", "--variant", "-v", help="A variant name or alias (see `slimedge variants`)."),
    data: str = typer.Option("fsdd", "--data", "-d", metavar="NAME|FILE.npz|DIR", help="fsdd, mnist-rows, mnist-pixels, a .npz file, or a folder of WAV files (labels from the names LABEL_SPEAKER_INDEX.wav or a labels.csv; see README)."),
    frontend: Optional[str] = typer.Option(None, "--frontend", metavar="logmel|mfcc|microfrontend", show_default=False, help="With a WAV folder: the audio front-end the model reads audio through (recorded in the checkpoint) [default: microfrontend, 8 kHz, 60 ms window, 20 ms hop]."),
    frontend_option: list[str] = typer.Option([], "--frontend-option", metavar="KEY=VALUE", show_default=False, help="A front-end field (repeatable), e.g. hop_ms=20, mel_channels=32, sample_rate=16000."),
    split_by: str = typer.Option("random", "--split-by", "--split", metavar="random|speaker|fsdd", help="With a WAV folder: random (stratified), speaker (--test-speakers are the test set) or fsdd (index 0-4 test)."),
    test_speakers: Optional[str] = typer.Option(None, "--test-speakers", metavar="A,B", show_default=False, help="With a WAV folder: these speakers' clips are the test set (implies --split-by speaker)."),
    augment: Optional[str] = typer.Option(None, "--augment", metavar="RECIPE", show_default=False, help="With a WAV folder: training augmentations, e.g. shift,gain,noise or gain=-12:6,speed=0.9:1.1 (shift, gain, noise, speed, eq, time_mask, freq_mask, vtlp, and stretch drawn anew each epoch; see slimedge.data.augment)."),
    augment_copies: int = typer.Option(0, "--augment-copies", min=0, help="Augmented copies of each training clip [0 with --augment: 4]."),
    train_extra: Optional[Path] = typer.Option(None, "--train-extra", metavar="DIR", show_default=False, help="With a WAV folder: another folder of WAV clips (the same labels, no test speaker) added to the training split only (with --streams: drawn into the training streams), e.g. synthetic voices from `slimedge tts-digits`."),
    hidden_size: int = typer.Option(64, "--hidden-size", "-n", help="Hidden size n."),
    layers: int = typer.Option(1, "--layers", help="Number of stacked SLIM layers."),
    epochs: Optional[int] = typer.Option(None, "--epochs", show_default=False, help="Epochs in total [default: 10; with --resume: the run's own]."),
    batch_size: int = typer.Option(32, "--batch-size", help="Mini-batch size."),
    lr: float = typer.Option(3e-3, "--lr", help="Adam learning rate."),
    schedule: str = typer.Option("constant", "--schedule", metavar=_choices(SCHEDULES), help="Learning-rate schedule."),
    clip: float = typer.Option(1.0, "--clip", help="Gradient-norm clip (0 = off)."),
    dropout: float = typer.Option(0.0, "--dropout", help="Dropout between layers."),
    label_smoothing: float = typer.Option(0.0, "--label-smoothing", metavar="LS", help="Cross-entropy against targets 1 - LS on the label, LS spread over all classes (0 = off)."),
    frame_loss: float = typer.Option(0.0, "--frame-loss", metavar="W", help="Add W times the mean cross-entropy of the label at every step from --frame-loss-from of each sequence on, beside the last step's (0 = off)."),
    frame_loss_from: float = typer.Option(0.5, "--frame-loss-from", metavar="F", help="With --frame-loss: the fraction of each sequence after which every step carries the label."),
    select: str = typer.Option("val", "--select", metavar="val|last", help="The epoch whose weights the checkpoint keeps: the best on validation (accuracy, ties to the lower loss), or the last (with --schedule cosine, a low rate at the end); validation is reported each epoch either way."),
    seed: int = typer.Option(0, "--seed", help="Seed for weights, batch order and dropout."),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the train/val/test split."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Cap every split at N sequences (a stratified subset), for quick runs."),
    gate_activation: str = typer.Option("sigmoid", "--gate-activation", metavar=_choices(GATE_ACTIVATIONS), help="σ of the gates."),
    activation: str = typer.Option("tanh", "--activation", metavar=_choices(ACTIVATIONS), help="g of the cell."),
    constant: list[str] = typer.Option([], "--constant", metavar="GATE=VALUE", show_default=False, help="A fixed gate's value (repeatable), e.g. f=0.5."),
    init: str = typer.Option("pytorch", "--init", metavar=_choices(INITS), help="pytorch, or paper (the authors' initialisation)."),
    forget_bias: Optional[float] = typer.Option(None, "--forget-bias", show_default=False, help="b_f's initial value where the variant learns one (LSTM0/1/3/5/11); 1 helps long sequences leave chance early [default: as --init sets it]."),
    input_only_cell: bool = typer.Option(False, "--input-only-cell", help="LSTM_C6 only: c~ = g(W_c x + b_c)."),
    threads: int = typer.Option(1, "--threads", help="Torch CPU threads (fixed, for reproducible runs)."),
    flush_denormals: bool = typer.Option(False, "--flush-denormals", help="Take float32 values below the normal range as zero (x86): long sequences (T in the hundreds) train several times faster; the weights change in the last bits."),
    device: str = typer.Option("auto", "--device", metavar=_choices(TORCH_DEVICES), help="Where torch trains (cuda:N for one GPU)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run recorded beside -o with its own settings (only --epochs is taken from the command line)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start a new run at -o, replacing the run there (its checkpoint, training state and log); without it or --resume an existing run is refused."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar and no per-epoch lines."),
    streams: int = typer.Option(0, "--streams", min=0, help="With a WAV folder: train a continuous model instead (per-frame outputs with the background class _silence_, for `listen`) on this many generated streams per epoch, its state never reset (see slimedge.train_stream)."),
    clips_per_stream: int = typer.Option(40, "--clips-per-stream", min=1, help="With --streams: clips in each generated training stream."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", metavar="MODEL.safetensors", show_default=False, help="With --streams: start from this clip classifier of the same front-end, variant, constants and size (its LSTM, standardisation and label rows; e.g. the zoo's fsdd_audio)."),
) -> None:
    """Train a SLIM classifier: validation each epoch, the best checkpoint kept, resumable."""
    if streams and select != "val":
        raise UsageError("--select keeps a clip classifier's epoch; a continuous model (--streams) "
                         "keeps the epoch of the best validation streams")
    if streams:
        return _train_streams(output, variant, data, frontend, frontend_option, split_by,
                              test_speakers, hidden_size, epochs, lr, seed, split_seed,
                              _parse_constants(constant), threads, streams, clips_per_stream,
                              init_from, train_extra, overwrite, quiet)
    if init_from is not None:
        raise UsageError("--init-from starts a continuous model (--streams N) from a clip "
                         "classifier; without --streams it has no use")
    if output.suffix != formats.CHECKPOINT.suffix and not output.is_dir():  # before torch
        raise UsageError(f"{output}: a checkpoint is a {formats.CHECKPOINT.suffix} file (`run` and "
                         f"`export` tell files by their suffix); name it "
                         f"{output.with_suffix(formats.CHECKPOINT.suffix).name}")
    from ..train_config import check_new_run

    check_new_run(output, resume, overwrite, ("--resume", "--overwrite"))  # before torch
    extras.require("train", "slimedge train", "torch", "safetensors")
    if resume:
        _ignored(ctx, _RUN_SETTINGS, "--resume continues the run with its own settings (only --epochs "
                                "is read); start a new run with another -o to change them")
    from ..train import TrainConfig, train

    config = TrainConfig(variant=variant, data=data, hidden_size=hidden_size, num_layers=layers,
                         epochs=10 if epochs is None else epochs, batch_size=batch_size, lr=lr, schedule=schedule, clip=clip,
                         dropout=dropout, label_smoothing=label_smoothing, frame_loss=frame_loss,
                         frame_loss_from=frame_loss_from, select=select, seed=seed, split_seed=split_seed, limit=limit,
                         gate_activation=gate_activation, activation=activation,
                         constants=_parse_constants(constant), init=init,
                         forget_bias=forget_bias, input_only_cell=input_only_cell, threads=threads,
                         flush_denormals=flush_denormals,
                         audio=_audio_spec(frontend, frontend_option), split=split_by,
                         test_speakers=[t.strip() for t in (test_speakers or "").split(",")
                                        if t.strip()],
                         augment=_augment.parse(augment or ""), augment_copies=augment_copies,
                         train_extra=str(train_extra) if train_extra else None)
    spec = variants.get(config.variant)
    if forget_bias is not None and not resume and not spec.has("f", "b"):
        warn(f"--forget-bias is ignored: {spec.name} learns no b_f")
    try:
        result = train(None if resume and epochs is None else config, output, resume=resume,
                       overwrite=overwrite, device=device, quiet=quiet, console=_shared.err_console)
    except KeyboardInterrupt:
        fail(f"interrupted; the last finished epoch is saved: continue with "
             f"`slimedge train -o {output} --resume`", 130)
    console.print(f"test accuracy {result.test['accuracy']:.4f} (best epoch "
                  f"{result.best['epoch']}) -> {result.output}; log {result.log_path}",
                  highlight=False, soft_wrap=True, markup=False)


@app.command("tts-digits")
@user_errors
def tts_digits_cmd(
    output: Path = typer.Argument(..., metavar="DIR", help="A new folder for the clips (an existing one is refused)."),
    rate: int = typer.Option(8000, "--rate", help="Sample rate of the WAVs (the model's front-end's)."),
    renditions: int = typer.Option(1, "--renditions", min=1, help="espeak-ng voices per accent and variant, each with its own pitch and speed."),
    seed: int = typer.Option(0, "--seed", help="Seed of the pitches and speeds."),
    engines: str = typer.Option(",".join(_tts.ENGINES), "--engines", metavar="A,B", help="Text-to-speech engines to use (Debian packages of the same names)."),
) -> None:
    """Write spoken digits in synthetic voices (espeak-ng, flite) for `train --train-extra`."""
    record = _tts.synthesize(output, rate=rate, renditions=renditions, seed=seed,
                             engines=[e.strip() for e in engines.split(",") if e.strip()])
    console.print(f"{record['clips']} clips in {len(record['voices'])} voices -> {output} "
                  f"({', '.join(record['engines'].values())})", highlight=False,
                  soft_wrap=True, markup=False)


def _train_streams(output, variant, data, frontend, frontend_option, split_by, test_speakers,
                   hidden_size, epochs, lr, seed, split_seed, constants, threads, streams,
                   clips_per_stream, init_from, train_extra, overwrite, quiet) -> None:
    """``train --streams N``: a continuous model (:mod:`slimedge.train_stream`)."""
    from ..frontend.audio import DEFAULT

    if output.suffix != formats.CHECKPOINT.suffix:
        raise UsageError(f"{output}: a checkpoint is a {formats.CHECKPOINT.suffix} file; name it "
                         f"{output.with_suffix(formats.CHECKPOINT.suffix).name}")
    if not Path(data).is_dir():
        raise UsageError(f"--streams trains on a folder of WAV clips; --data {data} is not one")
    if output.exists() and not overwrite:
        raise UsageError(f"{output} exists; pass --overwrite to replace it")
    if init_from is not None and not init_from.is_file():
        raise UsageError(f"--init-from {init_from}: no such file")
    extras.require("train", "slimedge train --streams", "torch", "safetensors")
    from ..train_stream import StreamTrainConfig, train_stream

    speakers = [t.strip() for t in (test_speakers or "").split(",") if t.strip()]
    cfg = StreamTrainConfig(data=str(data), audio=_audio_spec(frontend, frontend_option) or
                            dict(DEFAULT), variant=variant, constants=constants,
                            hidden_size=hidden_size, split="speaker" if speakers else split_by,
                            test_speakers=speakers, split_seed=split_seed,
                            epochs=10 if epochs is None else epochs, streams=streams,
                            clips_per_stream=clips_per_stream, lr=lr, seed=seed, threads=threads,
                            init=None if init_from is None else str(init_from),
                            train_extra=None if train_extra is None else str(train_extra))
    log = train_stream(cfg, output, say=(lambda *a: None) if quiet else
                       (lambda line: _shared.err_console.print(line, markup=False,
                                                               highlight=False)))
    best = log["best"]
    seq = best.get("sequence_accuracy")
    console.print(f"best epoch {best['epoch']}: validation streams, sequence accuracy "
                  f"{'-' if seq is None else f'{seq:.4f}'}, accuracy at clip ends "
                  f"{best['end_accuracy']:.4f}, per frame {best['frame_accuracy']:.4f} -> {output}",
                  highlight=False, soft_wrap=True, markup=False)


@app.command("evaluate")
@user_errors
def evaluate_cmd(
    ctx: typer.Context,
    model: Optional[Path] = typer.Argument(None, help="A checkpoint or an exported file; default: the shipped model (with --data DIR: the shipped raw-audio model). Or a shipped model by name: fsdd_mfcc, fsdd_audio, fsdd_stream."),
    data: Optional[str] = typer.Option(None, "--data", "-d", metavar="NAME|FILE.npz|DIR", help="fsdd, mnist-rows, mnist-pixels, a .npz file or a folder of WAV files (a model that reads audio); default: the model's training data."),
    split: str = typer.Option("test", "--split", metavar=_choices(SPLITS), help="The split to evaluate."),
    split_by: Optional[str] = typer.Option(None, "--split-by", metavar="random|speaker|fsdd|all", show_default=False, help="With --data DIR: how the folder is split [default: as the model was trained, for its training folder; all (every clip is test) for another]."),
    test_speakers: Optional[str] = typer.Option(None, "--test-speakers", metavar="A,B", show_default=False, help="With --data DIR: these speakers' clips are the test split."),
    split_seed: Optional[int] = typer.Option(None, "--split-seed", help="Default: the seed the model was trained with."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Cap every split at N sequences."),
    device: str = typer.Option("cpu", "--device", metavar=_choices(TORCH_DEVICES), help="Where torch evaluates a checkpoint (also the torch backend's device)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    backend: Optional[str] = typer.Option(None, "--backend", "-b", metavar=_choices(RUN_BACKENDS), show_default=False, help="Evaluate through the streaming runtime on this backend [default: exported files always go through it (auto); a checkpoint through PyTorch, or the numpy backend where torch is not installed]."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Threads of the runtime backend, or of torch for a checkpoint (default 1 there, so training's numbers repeat exactly)."),
) -> None:
    """Accuracy and confusion matrix of a model (a checkpoint or an exported file) on a data split."""
    from ..zoo import resolve
    from .commands_run import _is_dir

    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    path = resolve(model, audio=_is_dir(data))
    is_checkpoint = formats.for_path(path) is formats.CHECKPOINT
    if is_checkpoint and backend is None and not extras.installed("torch"):
        backend = "numpy"  # the same numbers through the runtime, no torch needed
        _shared.err_console.print("torch is not installed: evaluating the checkpoint on the runtime's "
                          "numpy backend", style="dim", highlight=False)
    if backend is not None or not is_checkpoint:
        if backend != "torch":
            _ignored(ctx, [("device", "--device")], "it applies to torch (a checkpoint without "
                                               "--backend, or --backend torch)")
        from .commands_run import _evaluate_runtime  # exports go through the runtime

        ev, meta = _evaluate_runtime(path, data, split, split_seed, limit, backend or "auto",
                                     threads, device if backend == "torch" else None,
                                     split_by, test_speakers)
    else:
        from ..train import evaluate_checkpoint
        from .commands_run import wav_split

        folder = data is not None and Path(data).is_dir()  # its record read only then
        wav = wav_split(formats.info(path).data if folder else None, data, split_by,
                        test_speakers)
        ev, meta = evaluate_checkpoint(path, data, split, split_seed=split_seed, limit=limit,
                                       device=device, threads=threads or 1, wav=wav)
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


