"""Training a continuous model: per-frame outputs with a background class, on generated streams
whose state is never reset.

A continuous model is an ordinary :class:`~slimedge.models.SequenceClassifier` checkpoint whose
labels include the background class ``_silence_`` and whose head is read at every frame; its config
has the section ``"stream": {"background": "_silence_", "frame_ms": <hop>}`` (what a decoder reads).

Each epoch draws ``streams`` fresh training streams (:func:`slimedge.data.streams.make_stream`,
seeded by (seed, epoch, k)) from the training clips of :func:`~slimedge.data.audio.split_clips`,
each over a background drawn in turn from ``backgrounds``: silence / white / pink noise at
``level_db``, or ``"recordings"``: one of the non-speech recordings
:data:`~slimedge.data.streams.TRAIN_RECORDINGS` (seeded; never the benchmarks' held-out
:data:`~slimedge.data.streams.RECORDINGS`) at ``recording_level_db``; it runs each
through the audio front-end from a fresh state exactly as the device does (one long push), and
labels every frame (:func:`~slimedge.data.streams.frame_labels`: a digit over its whole clip, the
background elsewhere; with ``onset_ignore``, the first such fraction of each clip's frames carries
no loss: a digit cannot be named from its first sound, and the background label is wrong there).
``train_extra`` names another folder of clips (e.g. :mod:`slimedge.data.tts`'s voices) drawn into
the training streams beside the training split's (:func:`~slimedge.data.audio.extra_clips` checks
them); validation streams hold the data's own clips only. ``speed`` resamples each training
clip by a factor drawn in (lo, hi) (tempo and pitch together).
``background_streams`` more streams per epoch hold background alone (the same kinds in turn) at
``background_level_db``, louder than under digits: non-speech and loud noise labelled background
with no digit drowned under them. The streams are one batch; training walks them in chunks of ``chunk``
frames (truncated backpropagation through time) carrying the LSTM's state from chunk to chunk and
from epoch to epoch within a stream: the model only ever sees a state that was never reset.

Warm start (``init``): a clip classifier trained on the same front-end with the same variant,
constants and size (e.g. ``zoo/fsdd_audio.safetensors``) gives the LSTM's weights, the input
standardisation and the head's rows of its labels; the background row starts at zero. The init
model's path and SHA-256 are recorded in the checkpoint's ``info.init``.

Validation: ``val_streams`` fixed validation streams (the validation clips, seeded by ``seed``,
over the backgrounds in turn) run from start to end with one state; the metrics are the per-frame
accuracy, the accuracy at the clips' last frames (what a decoder waiting for the end of a digit
sees) and the sequence accuracy of the decoder at ``val_decoder`` (:data:`VAL_DECODER`: the
decoder's defaults when this rule came in; scored by :func:`slimedge.runtime.tune.evaluate` over
the digits that end at least ``tune``'s tolerance before the batch's cut). The best epoch is kept:
with ``select="sequence"`` the highest sequence accuracy (what the benchmark and the user see;
the accuracy at clip ends varies from epoch to epoch much more than the events do), ties to the
accuracy at clip ends, then per frame; with ``select="ends"`` the accuracy at clip ends first.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from . import checkpoint
from .data import audio as wavdata
from .data import streams as streams_mod
from .data.sequences import SequenceData
from .errors import UsageError
from .frontend import Frontend, Standardize
from .frontend import audio as audio_frontends

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - the train extra
    torch = None

BACKGROUND = streams_mod.BACKGROUND_LABEL
RECORDINGS = "recordings"  # the background kind: one of streams.TRAIN_RECORDINGS per stream
IGNORE = -100  # a frame label without loss (torch's cross_entropy ignore_index)
MAX_CLIP_S = 1.0  # about the longest FSDD clip (1.31 s; the mean is 0.44 s)
#: the decoder settings validation scores sequences with: the decoder's defaults when the rule
#: came in, fixed here (and recorded in every checkpoint) so that re-tuning the defaults for a
#: new model does not move the epoch an old recipe keeps
VAL_DECODER = {"window_ms": 200.0, "threshold": 0.5, "min_count": 1, "refractory_ms": 300.0,
               "arithmetic": "int"}
#: the kept epoch's key per ``select``: the validation metrics compared, in order
SELECT = {"sequence": ("sequence_accuracy", "end_accuracy", "frame_accuracy"),
          "ends": ("end_accuracy", "frame_accuracy")}


@dataclass
class StreamTrainConfig:
    data: str
    audio: dict
    variant: str = "LSTM6"
    constants: dict = field(default_factory=lambda: {"f": 0.8})
    hidden_size: int = 64
    split: str = "fsdd"
    test_speakers: list = field(default_factory=list)
    val_fraction: float = 0.1
    split_seed: int = 0
    epochs: int = 10
    streams: int = 16          # training streams per epoch (the batch)
    clips_per_stream: int = 40
    chunk: int = 100           # frames per truncated-BPTT chunk
    val_streams: int = 4
    select: str = "sequence"   # the kept epoch's key: "sequence" or "ends" (the module's docstring)
    val_decoder: dict = field(default_factory=lambda: dict(VAL_DECODER))
    gap_s: tuple = (0.3, 1.0)
    level_db: tuple = (-65.0, -35.0)
    gain_db: tuple = (-18.0, 6.0)
    backgrounds: tuple = ("silence", "white", "pink", "recordings")
    recording_level_db: tuple = (-55.0, -30.0)
    train_extra: str | None = None  # another folder of clips for the training streams only
    init: str | None = None    # a clip classifier to start from (see the module's docstring)
    onset_ignore: float = 0.5  # this fraction of each clip's first frames carries no loss
    speed: tuple | None = (0.9, 1.1)  # each clip resampled by a factor in (lo, hi)
    background_streams: int = 4  # more streams per epoch: background alone, loud
    background_level_db: tuple = (-50.0, -20.0)
    lr: float = 3e-3
    clip: float = 1.0
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.select not in SELECT:
            raise UsageError(f"select: expected one of {', '.join(SELECT)}, got {self.select!r}")
        from .runtime.decoder import Settings

        Settings(**self.val_decoder)  # a bad setting is refused here, before any training


def _frames(audio, m: streams_mod.Material, labels,
            onset_ignore: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The stream's front-end frames and their labels; with ``onset_ignore``, the first such
    fraction of each clip's frames gets the label IGNORE (no loss: nobody can name a digit from
    its first sound, and the background label would be wrong there)."""
    f = audio_frontends.features(audio, m.samples, compiled=True).astype(np.float32)
    y = streams_mod.frame_labels(m, audio.window_samples, audio.hop_samples, len(f), labels)
    if onset_ignore > 0:
        for p in m.placed:
            lo, hi = streams_mod.frame_span(p, audio.window_samples, audio.hop_samples)
            y[max(lo, 0):max(lo, 0) + int(onset_ignore * (hi - lo + 1))] = IGNORE
    return f, y


def _material(clips, cfg: StreamTrainConfig, rate: int, seed_parts, k: int,
              train: bool = True):
    """Stream ``k`` of an epoch (``train``; validation's: no speed change); from ``k =
    cfg.streams`` on, training's background-only streams."""
    seed = int(np.random.SeedSequence(list(seed_parts) + [k]).generate_state(1)[0])
    kind, level = cfg.backgrounds[k % len(cfg.backgrounds)], cfg.level_db
    if kind == RECORDINGS:
        pick = np.random.default_rng([seed, 0xB6]).integers(len(streams_mod.TRAIN_RECORDINGS))
        kind, level = streams_mod.TRAIN_RECORDINGS[pick], cfg.recording_level_db
    if train and k >= cfg.streams:  # longer than a digit stream (the batch is cut to the shortest)
        seconds = cfg.clips_per_stream * (MAX_CLIP_S + max(cfg.gap_s)) + 1.0
        return streams_mod.make_stream([], rate, count=0, seconds=seconds, background_kind=kind,
                                       level_db=cfg.background_level_db, seed=seed)
    return streams_mod.make_stream(clips, rate, count=cfg.clips_per_stream, gap_s=cfg.gap_s,
                                   background_kind=kind, level_db=level,
                                   gain_db=cfg.gain_db, speed=cfg.speed if train else None,
                                   seed=seed)


def _batch(pairs):
    T = min(len(f) for f, _ in pairs)  # the batch's streams cut to the shortest
    return (np.stack([f[:T] for f, _ in pairs]), np.stack([y[:T] for _, y in pairs]))


@torch.no_grad()
def stream_metrics(model, frames: np.ndarray, targets: np.ndarray, ends: list[int],
                   config: dict | None = None, truths: list | None = None,
                   decoder_settings: dict | None = None) -> dict:
    """Per-frame accuracy and cross-entropy of ``model`` run over whole streams (B, T, m) with
    one state, and the accuracy at the frames ``ends`` (flat indices b*T + t); with ``config``
    (a continuous model's checkpoint config) and ``truths`` (per stream, (label, start s, end s)),
    also the decoder's sequence accuracy, misses and insertions at ``decoder_settings`` (default:
    :data:`VAL_DECODER`)."""
    model.eval()
    logits, _ = model.forward_steps(torch.from_numpy(frames))
    K = logits.shape[-1]
    flat = logits.reshape(-1, K)
    y = torch.from_numpy(targets.reshape(-1))
    pred = flat.argmax(1)
    out = {"frame_accuracy": float((pred == y).float().mean()),
           "loss": float(F.cross_entropy(flat, y)),
           "end_accuracy": float((pred[ends] == y[ends]).float().mean()) if ends else None}
    if truths is not None:
        from .runtime import decoder, tune

        settings = decoder.Settings(**(decoder_settings or VAL_DECODER))
        r = tune.evaluate(config, list(logits.numpy()), truths, settings)
        out.update({"sequence_accuracy": r["sequence_accuracy"], "misses": r["misses"],
                    "insertions": r["insertions"]})
    return out


def _end_frames(materials, audio, T: int) -> list[int]:
    """Flat indices of each clip's last labelled frame (whose window centre is in the clip)."""
    out = []
    for b, m in enumerate(materials):
        for p in m.placed:
            t = streams_mod.frame_span(p, audio.window_samples, audio.hop_samples)[1]
            if 0 <= t < T:
                out.append(b * T + t)
    return out


def _key(metrics: dict, select: str) -> list[float]:
    """An epoch's validation metrics in the order ``select`` compares them (a metric without
    material, e.g. no digit in the validation streams, ranks lowest)."""
    return [-1.0 if metrics[k] is None else metrics[k] for k in SELECT[select]]


def _truths(materials, audio, T: int) -> list[list[tuple]]:
    """Per stream, the digits (label, start s, end s) that end at least the scoring tolerance
    before the batch's cut at frame T (a decoder may fire up to then)."""
    from .runtime import tune

    limit = (T - 1) * audio.hop_samples / audio.sample_rate - tune.TOLERANCE_S
    return [[e for e in m.events() if e[2] <= limit] for m in materials]


def train_stream(cfg: StreamTrainConfig, output: str | Path, *, say=print) -> dict:
    """Train a continuous model to ``output``; returns the log (also written beside it as
    ``.log.json``)."""
    from .models import SequenceClassifier

    if torch is None:
        raise UsageError("training needs torch (the train extra)")
    out = Path(output)
    audio = audio_frontends.from_config(cfg.audio)
    cfg = replace(cfg, audio=audio.to_config())  # recorded whole: every setting, not just the given
    rate = audio.sample_rate
    clips = wavdata.scan_wavs(cfg.data)
    labels = sorted({c.label for c in clips} | {BACKGROUND})
    parts = wavdata.split_clips(clips, cfg.split, test_speakers=cfg.test_speakers,
                                val_fraction=cfg.val_fraction, seed=cfg.split_seed)
    if cfg.train_extra:  # in the training streams only: validation hears the data's voices
        parts["train"] = parts["train"] + wavdata.extra_clips(
            cfg.train_extra, [x for x in labels if x != BACKGROUND], parts, cfg.data)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    val_m = [_material(parts["val"], cfg, rate, [cfg.seed, 0xEA1], k, train=False)
             for k in range(cfg.val_streams)]
    val_x, val_y = _batch([_frames(audio, m, labels) for m in val_m])
    val_ends = _end_frames(val_m, audio, val_x.shape[1])
    val_truths = _truths(val_m, audio, val_x.shape[1])

    model = SequenceClassifier(cfg.variant, audio.output_size, cfg.hidden_size, len(labels), 1,
                               0.0, labels=labels, constants=cfg.constants,
                               frontend=Frontend((Standardize(),), audio))
    init = _warm_start(model, cfg) if cfg.init else None
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    state = None
    history, best = [], None
    stream_cfg = {"background": BACKGROUND, "frame_ms": audio.hop_samples * 1000 / rate}
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        mats = [_material(parts["train"], cfg, rate, [cfg.seed, epoch], k)
                for k in range(cfg.streams + cfg.background_streams)]
        x, y = _batch([_frames(audio, m, labels, cfg.onset_ignore) for m in mats])
        if epoch == 0 and init is None:  # the standardisation from the first epoch's streams
            model.frontend.fit(SequenceData(x.reshape(-1, x.shape[-1]),
                                            np.array([0, x.shape[0] * x.shape[1]]),
                                            np.zeros(1, np.int64), labels))
        lr = cfg.lr * 0.5 * (1 + np.cos(np.pi * epoch / cfg.epochs))  # cosine
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        loss_sum, n = 0.0, 0
        for s in range(0, x.shape[1], cfg.chunk):
            xb = torch.from_numpy(x[:, s:s + cfg.chunk])
            yb = torch.from_numpy(y[:, s:s + cfg.chunk])
            logits, state = model.forward_steps(xb, state)
            state = tuple(t.detach() for t in state)  # carried on, never reset
            loss = F.cross_entropy(logits.reshape(-1, len(labels)), yb.reshape(-1),
                                   ignore_index=IGNORE)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            counted = int((yb != IGNORE).sum())
            loss_sum += float(loss.detach()) * counted
            n += counted
        config, tensors = model.checkpoint_state()
        config = {**config, "stream": stream_cfg}
        val = stream_metrics(model, val_x, val_y, val_ends, config, val_truths, cfg.val_decoder)
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / n,
               "train_frames": n, "seconds": time.perf_counter() - t0, **val}
        row["best"] = best is None or _key(val, cfg.select) > _key(best, cfg.select)
        if row["best"]:
            best = dict(row)
            config = {**config,
                      "info": {"train_stream": _jsonable(asdict(cfg)), "best": best,
                               **({"init": init} if init else {}),
                               "data": {"path": str(cfg.data), "split": cfg.split,
                                        "train_extra": cfg.train_extra,
                                        "speakers": {k: sorted({c.speaker for c in v
                                                                if c.speaker})
                                                     for k, v in parts.items()}}}}
            checkpoint.write(out, config, {k: v.detach().cpu().numpy()
                                           for k, v in tensors.items()})
        history.append(row)
        say(f"epoch {epoch + 1}/{cfg.epochs} train loss {row['train_loss']:.4f}  val frames "
            f"{val['frame_accuracy']:.4f} ends {val['end_accuracy']:.4f} sequence "
            f"{val['sequence_accuracy'] or 0:.4f}  {row['seconds']:.1f} s"
            + ("  best" if row["best"] else ""))
    log = {"config": _jsonable(asdict(cfg)), "epochs": history, "best": best}
    out.with_suffix(".log.json").write_text(json.dumps(log, indent=1))
    return log


def _warm_start(model, cfg: StreamTrainConfig) -> dict:
    """Copy the clip classifier ``cfg.init`` into ``model`` (see the module's docstring); returns
    its path and SHA-256 for the checkpoint. A model of another front-end, variant, constants or
    size, or without the stream's labels, is refused (UsageError naming both sides)."""
    from .models import SequenceClassifier

    path = Path(cfg.init)
    ckpt = checkpoint.read(path)
    if ckpt.config.get("kind") != "classifier":
        raise UsageError(f"--init-from {path}: expected a classifier checkpoint, got kind "
                         f"{ckpt.config.get('kind')!r}")
    src = SequenceClassifier.from_checkpoint(ckpt)
    want, got = model.checkpoint_state()[0], src.checkpoint_state()[0]
    for key, name in (("frontend", "front-end"), ("lstm", "LSTM (variant, constants, size)")):
        if want[key] != got[key]:
            raise UsageError(f"--init-from {path}: its {name} differs from the one trained: "
                             f"{json.dumps(got[key], sort_keys=True)} vs "
                             f"{json.dumps(want[key], sort_keys=True)}")
    missing = [k for k in model.labels if k != BACKGROUND and k not in src.labels]
    if missing:
        raise UsageError(f"--init-from {path}: its labels {src.labels} lack {missing}")
    with torch.no_grad():
        model.lstm.load_state_dict(src.lstm.state_dict())
        model.frontend.load_state_dict(src.frontend.state_dict())
        model.head.weight.zero_()
        model.head.bias.zero_()
        for j, label in enumerate(model.labels):
            if label in src.labels:
                model.head.weight[j] = src.head.weight[src.labels.index(label)]
                model.head.bias[j] = src.head.bias[src.labels.index(label)]
    return {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _jsonable(d):
    return json.loads(json.dumps(d, default=list))


__all__ = ["StreamTrainConfig", "train_stream", "stream_metrics"]
