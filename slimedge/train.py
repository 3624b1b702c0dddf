"""Training and evaluation of a :class:`~slimedge.models.SequenceClassifier` on a data set.

One run writes three files beside each other (``OUT`` = ``model.safetensors``):

    model.safetensors        the best model so far (highest validation accuracy; ties go to the
                             lower validation loss; with ``select="last"`` the last epoch's), a
                             plain checkpoint; after the last epoch its test metrics are added to
                             the config's ``info``
    model.state.safetensors  the last finished epoch: model, Adam's moments (``optim.*`` tensors)
                             and the run's progress in ``info.train_state``; ``resume=True`` picks
                             up from it and continues exactly as an uninterrupted run would
    model.log.json           the settings, data splits, and per-epoch metrics and wall times

Determinism: the initial weights come from ``seed``; epoch e's batch order and dropout come from
(seed, e) alone; torch runs on ``threads`` threads (1 by default). So two runs with one seed on
one machine give identical weights, and so does a run that stopped and resumed. (CUDA kernels are
not bitwise deterministic; the guarantee is for the CPU.) With ``flush_denormals`` the run takes
float32 values below the normal range as zero (x86; ``torch.set_flush_denormal``): in the backward
of long sequences gradients decay into that range, where arithmetic is slow (torch.nn.LSTM's
training step at T = 784 took 5× the time with them, ``benchmarks/train_speed.py``); the weights
then differ from a run without it in the last bits.

The settings are :class:`~slimedge.train_config.TrainConfig` (no torch: ``train_config.py``); what
a run keeps on disk and resumes from is ``train_state.py``. Called, this module is :func:`train`:
``slimedge.train(TrainConfig(...), "m.safetensors")`` is ``slimedge.train.train(...)``.
"""
from __future__ import annotations

import math
import os
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import extras
from .errors import MissingDependency, TrainingDiverged, UsageError

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # say which extra, not only "No module named 'torch'"
    raise MissingDependency(f"training needs torch ({e}): {extras.hint('train')} (install "
                            f"torch==2.13.0 first for the CPU wheel)") from None

from . import _io, checkpoint, formats, metrics
from . import data as _data
from .data import augment as _augment
from .frontend import Frontend, Standardize
from .frontend import audio as audio_frontends
from .metrics import Evaluation
from .models import SequenceClassifier
from .train_config import SCHEDULES as SCHEDULES  # the schedules TrainConfig takes
from .train_config import TrainConfig, check_new_run
from .train_state import load_optim, read_state, run_info, save_state, side_paths, write_json

EVAL_BATCH_SIZE = 256
LOG_EVERY_S = 10.0  # progress lines when not on a terminal (a log, CI): one per this many seconds


def resolve_device(name: str = "auto") -> torch.device:
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise UsageError(f"unknown device {name!r}; valid: auto, cpu, cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0])


class _TorchSettings:
    """Set torch's intra-op thread count (and, with ``flush_denormals``, flush denormals to zero)
    for a block, then restore them."""

    def __init__(self, n: int, flush_denormals: bool = False) -> None:
        self.n, self.old, self.flush, self.was_flushing = int(n), None, flush_denormals, None

    def __enter__(self):
        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)
        if self.flush:
            self.was_flushing = flushing_denormals()
            torch.set_flush_denormal(True)

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)
        if self.flush and not self.was_flushing:
            torch.set_flush_denormal(False)


def flushing_denormals() -> bool:
    """Whether torch's CPU arithmetic flushes denormals to zero now (torch has no getter: float32's
    smallest denormal, 2^-149, times one stays itself unless it does)."""
    return bool(torch.tensor(2.0 ** -149) * 1.0 == 0)


def load_splits(config: TrainConfig) -> _data.DataSplits:
    """The data a config trains on: a named data set, a .npz file, or a folder of WAV files
    through the config's audio front-end (split and augmented as it says)."""
    return _data.load(config.data, split_seed=config.split_seed,
                      val_fraction=config.val_fraction, test_fraction=config.test_fraction,
                      limit=config.limit, audio=config.audio,
                      wav={"split": config.split, "test_speakers": config.test_speakers,
                           "augment": config.augment, "copies": config.augment_copies,
                           "augment_seed": config.seed, "train_extra": config.train_extra})


# ---- model -------------------------------------------------------------------------------------
def build_model(config: TrainConfig, splits: _data.DataSplits) -> SequenceClassifier:
    """A fresh classifier for the data (weights from ``config.seed``), its front-end fitted on the
    training split (the standardisation: its per-feature mean and std)."""
    torch.manual_seed(config.seed)
    audio = (splits.info.get("frontend") or {}).get("audio")
    frontend = Frontend((Standardize(),), audio_frontends.from_config(audio)) if audio else \
        Frontend((Standardize(),))
    model = SequenceClassifier(config.variant, splits.input_size, config.hidden_size,
                               len(splits.labels), config.num_layers, config.dropout,
                               labels=splits.labels, gate_activation=config.gate_activation,
                               activation=config.activation, constants=config.constants or None,
                               init=config.init, forget_bias=config.forget_bias,
                               input_only_cell=config.input_only_cell, frontend=frontend)
    model.frontend.fit(splits.train)
    return model


def _to_torch(batch, device):
    x, lengths, y = batch
    x = torch.from_numpy(x).to(device)
    y = torch.from_numpy(y).to(device)
    # all sequences full length: no masking needed (same numbers, less work)
    lt = None if int(lengths.min()) == x.shape[1] else torch.from_numpy(lengths).to(device)
    return x, lt, y


@torch.no_grad()
def evaluate(model: SequenceClassifier, data: _data.SequenceData, *,
             batch_size: int = EVAL_BATCH_SIZE, device: str | torch.device = "cpu") -> Evaluation:
    """Accuracy, mean cross-entropy and the confusion matrix of ``model`` on ``data``.

    Batches are the sequences sorted by length (stable), so the result is reproducible."""
    if data.input_size != model.lstm.input_size:
        raise UsageError(f"the model takes {model.lstm.input_size} features per step, "
                         f"the data {data.name} has {data.input_size}")
    if data.num_classes > model.num_classes:
        raise UsageError(f"the data {data.name} has {data.num_classes} classes, "
                         f"the model {model.num_classes}")
    device = torch.device(device)
    was_training = model.training
    model.eval()

    def predict(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        # all sequences full length: no masking needed (same numbers, less work)
        lt = None if int(lengths.min()) == x.shape[1] else torch.from_numpy(lengths).to(device)
        return model(torch.from_numpy(x).to(device), lt).cpu().numpy()

    try:
        return metrics.evaluate(predict, data, list(model.labels), num_classes=model.num_classes,
                                batch_size=batch_size)
    finally:
        model.train(was_training)


def _markup_escape(text: str) -> str:
    """``text`` shown as written in a rich line with markup (a file name with ``[/]``)."""
    from rich.markup import escape

    return escape(str(text))


# ---- the loop ----------------------------------------------------------------------------------
@dataclass
class TrainResult:
    output: Path
    state_path: Path
    log_path: Path
    history: list[dict]
    best: dict
    test: dict
    model: SequenceClassifier
    log: dict
    diverged: bool = False


def _console():
    from rich.console import Console

    return Console(stderr=True)


def train(config: TrainConfig | None, output: str | os.PathLike, *, resume: bool = False,
          overwrite: bool = False, device: str = "auto", progress: bool = True, quiet: bool = False,
          splits: _data.DataSplits | None = None, console=None,
          on_epoch: Callable[[dict], None] | None = None) -> TrainResult:
    """Train, validating each epoch and keeping the best checkpoint at ``output`` (with
    ``config.select == "last"``, the last epoch's).

    With ``resume``, the settings come from ``output``'s state file (only ``config.epochs`` is
    taken from the argument, to train longer; pass ``config=None`` to keep the run's own) and
    training continues after its last finished epoch. A new run never starts over another
    one's files (the checkpoint, state or log at ``output``) unless ``overwrite`` says to: a
    :class:`UsageError` names both ways on. ``splits`` overrides loading
    ``config.data`` (tests, benchmarks).
    """
    extras.require("train", "training", "torch", "safetensors", "rich")  # before any work
    if Path(output).suffix != formats.CHECKPOINT.suffix and not Path(output).is_dir():
        # `run a.pt` would refuse it (a folder: check_writable below says so)
        raise UsageError(f"{output}: a checkpoint is a {formats.CHECKPOINT.suffix} file; name it "
                         f"{Path(output).with_suffix(formats.CHECKPOINT.suffix).name}")
    out, state_path, log_path = side_paths(output)
    for path in (out, state_path, log_path):  # not after an epoch of training
        _io.check_writable(path)
    dev = resolve_device(device)
    console = console or _console()
    say = (lambda *a, **k: None) if quiet else console.print
    start_epoch, history, best, step = 0, [], None, 0

    if config is None and not resume:
        raise UsageError("a TrainConfig is needed unless resuming")
    if resume:
        ckpt, config, ts = read_state(state_path, config)
        start_epoch, history, best, step = ts["epoch"], ts["history"], ts["best"], ts["adam_step"]

    # the data file is an input: -o, the state or the log over it would replace the data set
    _io.check_distinct([("-o", out), ("training state", state_path), ("training log", log_path)],
                       [("--data file", config.data if isinstance(config.data, (str, os.PathLike))
                         and Path(config.data).suffix else None)])
    check_new_run(output, resume, overwrite)  # after those: a data file named as -o says so
    # one run per output at a time: a second `train -o` of the same file is refused, not mixed in
    with _io.locked(out, "train -o"), _TorchSettings(config.threads, config.flush_denormals):
        if splits is None:
            splits = load_splits(config)
        if resume:
            model = SequenceClassifier.from_checkpoint(ckpt).train()
        else:
            model = build_model(config, splits)
        model.to(dev)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        if resume:
            load_optim(model, optimizer, ckpt.tensors, step, state_path)
        params = sum(p.numel() for p in model.parameters())
        log = {"config": config.to_dict(), "data": splits.summary(),
               # MACs as export counts them: the whole step (the head's too), and the LSTM's part
               "model": {"variant": model.spec.name, "constants": model.spec.constants,
                         "params": params,
                         "macs_per_step": model.lstm.macs_per_step() + model.head.weight.numel(),
                         "lstm_macs_per_step": model.lstm.macs_per_step()},
               "device": str(dev), "threads": config.threads, "torch": torch.__version__,
               "epochs": history, "best": best}
        say(f"[bold]{model.spec.name}[/] n={config.hidden_size} layers={config.num_layers} "
            f"params={params:,} on {_markup_escape(splits.name)}: train {len(splits.train)}, "
            f"val {len(splits.val)}, test {len(splits.test)}; device {dev}"
            + (f"; resuming after epoch {start_epoch}" if resume else ""), highlight=False,
            soft_wrap=True)
        if overwrite:  # the old run's files go once the new one is set up (no mix if it diverges)
            for path in (out, state_path, log_path):
                path.unlink(missing_ok=True)
        diverged = False
        kept = "best" if config.select == "val" else "kept"  # the kept epoch, in words
        for epoch in range(start_epoch, config.epochs):
            row = _train_epoch(model, optimizer, splits, config, epoch, dev, progress and not quiet,
                               console)
            val = evaluate(model, splits.val, device=dev)
            row.update(val_loss=val.loss, val_accuracy=val.accuracy)
            row["seconds"] = time.perf_counter() - row.pop("_t0")
            improved = best is None or config.select == "last" or (
                (val.accuracy, -val.loss) > (best["val_accuracy"], -best["val_loss"]))
            diverged = not math.isfinite(row["train_loss"])
            row["best"] = bool(improved and not diverged)
            if row["best"]:
                best = {"epoch": epoch + 1, "val_accuracy": val.accuracy, "val_loss": val.loss}
                checkpoint.save(model, out, **run_info(config, splits, best, history + [row]))
            history.append(row)
            if not diverged:  # never leave NaN weights to resume from
                save_state(model, optimizer, state_path, config, epoch + 1, history, best)
            log.update(epochs=history, best=best)
            write_json(log_path, log)
            say(f"epoch {epoch + 1}/{config.epochs}  train loss {row['train_loss']:.4f} "
                f"acc {row['train_accuracy']:.4f}  val loss {val.loss:.4f} acc {val.accuracy:.4f}"
                f"  {row['seconds']:.1f} s" + (f"  [green]{kept}[/]" if row["best"] else ""),
                highlight=False)
            if on_epoch:
                on_epoch(row)
            if diverged:
                say("[yellow]the training loss is not finite: stopping (lower --lr?)[/]")
                break
        if best is None:
            raise TrainingDiverged("training diverged in the first epoch; no checkpoint written "
                               "(try a lower --lr)")
        best_model = checkpoint.load(out).to(dev)
        test = evaluate(best_model, splits.test, device=dev)
        info = run_info(config, splits, best, history)
        info["test"] = {"accuracy": test.accuracy, "loss": test.loss, "n": test.n}
        checkpoint.save(best_model, out, **info)
        log.update(test=test.to_dict(), diverged=diverged,
                   seconds_total=float(sum(r["seconds"] for r in history)),
                   train_seconds_per_epoch=float(np.mean([r["train_seconds"] for r in history])))
        write_json(log_path, log)
        say(f"{kept} epoch {best['epoch']}: val acc "
            f"{best['val_accuracy']:.4f}; test acc {test.accuracy:.4f} -> {out}", highlight=False,
            soft_wrap=True)
    return TrainResult(out, state_path, log_path, history, best, test.to_dict(), best_model.cpu(),
                       log, diverged)


def sequence_loss(model: SequenceClassifier, x: torch.Tensor, lengths: torch.Tensor | None,
                  y: torch.Tensor, config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch's training loss and its last-step logits: the cross-entropy (with the config's
    label smoothing) of each sequence's label at its last step, plus ``frame_loss`` times its
    mean over every step from ``frame_loss_from`` of each sequence's length on (the word heard
    in part already names it: no step may lean on the end alone)."""
    if not config.frame_loss:
        logits = model(x, lengths)
        return F.cross_entropy(logits, y, label_smoothing=config.label_smoothing), logits
    steps, _ = model.forward_steps(x, lengths=lengths)  # (B, T, K)
    n = lengths if lengths is not None else torch.full_like(y, steps.shape[1])
    last = torch.arange(len(y), device=steps.device), n - 1
    t = torch.arange(steps.shape[1], device=steps.device)[None, :]
    mask = ((t >= (n[:, None] * config.frame_loss_from).long()) & (t < n[:, None])).float()
    each = F.cross_entropy(steps.transpose(1, 2), y[:, None].expand(-1, steps.shape[1]),
                           reduction="none", label_smoothing=config.label_smoothing)  # (B, T)
    return (each[last].mean() + config.frame_loss * (each * mask).sum() / mask.sum(),
            steps[last])


def _train_epoch(model, optimizer, splits, config: TrainConfig, epoch: int, dev, show: bool,
                 console) -> dict:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    t0 = time.perf_counter()
    eseed = _epoch_seed(config.seed, epoch)
    torch.manual_seed(eseed)  # dropout
    lr = config.lr_at(epoch)
    for group in optimizer.param_groups:
        group["lr"] = lr
    model.train()
    train = splits.train
    order = list(_data.batches(train, config.batch_size, shuffle=True, seed=eseed))
    loss_sum, correct, seen = 0.0, 0, 0
    columns = [TextColumn(f"epoch {epoch + 1}/{config.epochs}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]} acc {task.fields[acc]}"),
               TimeElapsedColumn(), TimeRemainingColumn()]
    # not on a terminal (a log, CI): no bar, but a line every LOG_EVERY_S seconds
    lines = show and not console.is_terminal
    last_line = t0
    with Progress(*columns, console=console, transient=True, disable=not show or lines) as bar:
        task = bar.add_task("train", total=len(order), loss="–", acc="–")  # no batch seen yet
        for done, idx in enumerate(order, 1):
            x, lengths, y = train.batch(idx)
            if "stretch" in config.augment:  # per epoch: drawn from the epoch's seed and batch
                x, lengths = _augment.stretch(x, lengths, config.augment["stretch"],
                                              np.random.default_rng([eseed, done]))
            loss, logits = sequence_loss(model, *_to_torch((x, lengths, y), dev), config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            b = len(idx)
            loss_sum += loss.item() * b
            correct += int((logits.argmax(1) == y).sum())
            seen += b
            bar.update(task, advance=1, loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
            if lines and time.perf_counter() - last_line >= LOG_EVERY_S:
                last_line = time.perf_counter()
                console.print(f"epoch {epoch + 1}/{config.epochs}: batch {done}/{len(order)}, "
                              f"loss {loss_sum / seen:.4f} acc {correct / seen:.4f}, "
                              f"{last_line - t0:.0f} s", highlight=False)
            if not math.isfinite(loss_sum):
                break
    return {"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / seen,
            "train_accuracy": correct / seen, "train_seconds": time.perf_counter() - t0,
            "_t0": t0}


def evaluate_checkpoint(model_path: str | os.PathLike, data: str | None = None, split: str = "test", *,
                        split_seed: int | None = None, limit: int | None = None,
                        device: str = "cpu", threads: int = 1,
                        wav: dict | None = None) -> tuple[Evaluation, dict]:
    """Evaluate a checkpoint on a split of a data set. The split seed, fractions and ``limit``
    default to those the model was trained with, as recorded in its checkpoint, so ``test`` is its
    test set. Torch runs on ``threads`` threads (1, as in training), so the numbers repeat
    exactly."""
    model = checkpoint.load(model_path)
    info = formats.info(model_path)
    splits = _data.load_as_recorded(info.data, data, split_seed=split_seed, limit=limit,
                                    audio=info.frontend.audio, wav=wav)
    dev = resolve_device(device)
    with _TorchSettings(threads):
        ev = evaluate(model.to(dev), splits[split], device=dev)
    return ev, {"data": splits.summary(), "split": split, "model": str(model_path),
                "variant": model.spec.name}


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`train`: ``slimedge.train(config, path)``. The package offers
    the name ``train``, and importing this module sets the package's attribute ``train`` to the
    module, so the module itself is what that name gives, whichever was imported first."""

    def __call__(self, *args, **kwargs) -> TrainResult:
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["TrainConfig", "TrainResult", "train", "evaluate", "evaluate_checkpoint", "side_paths"]
