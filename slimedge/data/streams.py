"""Long streams built from labelled clips: what a microphone gives a model that never stops.

:func:`make_stream` lays clips end to end over a background, with a seeded gap between them, each
clip at its own seeded gain, and returns the samples (int16, as the device reads them) with the
ground truth: one :class:`Placed` per clip (its label, first sample, one past its last sample, the
file it came from and its speaker). Everything is drawn from one generator seeded by ``seed``, so a
seed and a list of clips give the same stream everywhere.

Backgrounds (:data:`BACKGROUNDS`), at an RMS level in dBFS (0 dBFS: RMS 1.0, int16 full scale)
drawn uniformly from ``level_db``:

* ``silence``: digital zeros (the clips alone);
* ``white``: Gaussian white noise;
* ``pink``: Gaussian noise shaped to 1/f power (a 1/sqrt(f) amplitude filter in the frequency
  domain), closer to room and fan noise than white;
* a path to a WAV file (mono; resampled to the clips' rate when it has another): a real
  recording, looped from a seeded offset and scaled to the level. :data:`RECORDINGS` names real
  non-speech recordings of the Debian package ``sound-icons`` (GPL-2+; installed by ``.ci/run``,
  not shipped), used when present.

Speaker-disjoint material comes from :func:`split_streams`: the clips are divided by
:func:`~slimedge.data.audio.split_clips` first (``split="speaker"`` or ``"fsdd"``) and each part's
streams are built from its own clips only, so no speaker of the test streams is heard in training
(by construction, not by filtering).

:func:`frame_labels` gives a front-end's per-frame targets: a frame whose window's centre falls in
a clip is labelled with the clip's label over the whole clip (the study in ``facts.md`` found whole-
clip labels beat end-only labels), every other frame with the background class
(:data:`BACKGROUND_LABEL`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError
from . import augment
from .audio import Clip, split_clips
from .wav import read_wav

BACKGROUND_LABEL = "_silence_"
BACKGROUNDS = ("silence", "white", "pink")
FULL_SCALE = 32768.0
SOUND_ICONS = Path("/usr/share/sounds/sound-icons")
RECORDINGS = {"water": str(SOUND_ICONS / "glass-water-1.wav"),
              "canary": str(SOUND_ICONS / "canary-long.wav")}
"""Real non-speech recordings (16 kHz) from the Debian package sound-icons (Brailcom, GPL-2+):
water poured into a glass, a canary's song. ``apt-get install sound-icons``. Held out: benchmarks
only (``benchmarks/events.py``'s background streams), never heard in training."""
TRAIN_RECORDINGS = tuple(str(SOUND_ICONS / f"{name}.wav") for name in (
    "cembalo-1", "cembalo-10", "cembalo-11", "cembalo-12", "cembalo-2", "cembalo-3", "cembalo-6",
    "chord-7", "cockchafer-gentleman-1", "cymbaly-1", "electric-piano-3", "guitar-12",
    "guitar-13", "gummy-cat-2", "klavichord-4", "percussion-10", "percussion-12",
    "percussion-28", "percussion-50", "piano-3", "pipe", "pisk-down-cink", "pisk-down",
    "pisk-up-cink", "pisk-up", "prompt", "trumpet-1", "trumpet-12", "violoncello-7", "xylofon"))
"""The other 30 recordings of sound-icons (instruments, percussion, a beetle, a cat, beeps): the
non-speech backgrounds a continuous model trains on (the kind ``"recordings"`` of
:mod:`slimedge.train_stream`). Disjoint from :data:`RECORDINGS` by construction (checked by a
test), so a benchmark's false alarms on water and the canary are on sounds never trained on."""


@dataclass(frozen=True)
class Placed:
    """One clip in a stream: samples [start, end) hold it."""
    label: str
    start: int
    end: int
    gain_db: float
    path: str
    speaker: str | None = None


@dataclass
class Material:
    """A generated stream: int16 samples and the clips placed in it, in time order."""
    samples: np.ndarray
    sample_rate: int
    placed: list[Placed]
    settings: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate

    def events(self) -> list[tuple[str, float, float]]:
        """(label, start s, end s) per clip: the ground truth in seconds."""
        r = self.sample_rate
        return [(p.label, p.start / r, p.end / r) for p in self.placed]


def _clean(clip: Clip, rate: int) -> np.ndarray:
    x, _ = read_wav(clip.path, sample_rate=rate)
    return x.astype(np.float64) / (FULL_SCALE if x.dtype == np.int16 else 1.0)


def background(kind: str | Path, n: int, rate: int, level_db: float,
               rng: np.random.Generator) -> np.ndarray:
    """``n`` float64 samples of the background ``kind`` at RMS ``level_db`` dBFS."""
    if str(kind) == "silence" or n == 0:
        return np.zeros(n)
    if str(kind) in ("white", "pink"):
        x = rng.standard_normal(n)
        if str(kind) == "pink":
            spectrum = np.fft.rfft(x)
            f = np.arange(len(spectrum), dtype=np.float64)
            f[0] = 1.0  # the mean stays white-scaled (removed below)
            x = np.fft.irfft(spectrum / np.sqrt(f), n)
            x -= x.mean()
    else:
        path = Path(kind)
        if not path.is_file():
            raise DataError(f"background {kind!r}: neither one of {', '.join(BACKGROUNDS)} nor a "
                            f"WAV file")
        rec, rec_rate = read_wav(path)
        rec = resample(rec.astype(np.float64), rec_rate, rate)
        if not np.any(rec):
            raise DataError(f"{path}: the background recording is all zeros")
        start = int(rng.integers(0, len(rec)))
        x = np.resize(np.roll(rec, -start), n)  # looped from a seeded offset
    rms = float(np.sqrt(np.mean(x * x))) or 1.0
    return x * (10.0 ** (level_db / 20.0) / rms)


def resample(x: np.ndarray, rate: int, to: int) -> np.ndarray:
    """``x`` at ``rate`` Hz -> at ``to`` Hz by the FFT (band-limited: what lies above the lower
    rate's Nyquist frequency is dropped). For background recordings, not for the clips."""
    if rate == to:
        return x
    n = max(1, int(round(len(x) * to / rate)))
    spectrum = np.fft.rfft(x)[:n // 2 + 1]
    return np.fft.irfft(spectrum, n) * (n / len(x))


def _draw(rng: np.random.Generator, bounds) -> float:
    lo, hi = (bounds, bounds) if np.isscalar(bounds) else bounds
    if lo > hi:
        raise DataError(f"the range {lo}:{hi} is reversed")
    return float(rng.uniform(lo, hi))


def make_stream(clips: Sequence[Clip], sample_rate: int, *, count: int | None = None,
                seconds: float | None = None, gap_s=(0.3, 1.0), lead_s: float = 0.5,
                background_kind: str | Path = "white", level_db=(-60.0, -40.0),
                gain_db=(-12.0, 6.0), speed=None, seed: int = 0) -> Material:
    """A stream of ``count`` clips drawn (seeded, without replacement until every clip was used)
    from ``clips``, each after a gap uniform in ``gap_s`` seconds (``lead_s`` before the first),
    scaled by a gain uniform in ``gain_db``, over a background at ``level_db`` dBFS. With
    ``count=0`` (or no clips) and ``seconds``: background alone for that long. The stream ends one
    gap after the last clip, or at ``seconds`` when that is longer. ``speed`` (lo, hi): each clip
    resampled by a factor uniform in it (:func:`slimedge.data.augment.waveform`'s ``speed``: tempo
    and pitch together; training material), its place in the stream the resampled length."""
    if count is None and seconds is None:
        raise DataError("make_stream needs count (clips) or seconds")
    if count and not clips:
        raise DataError("make_stream: no clips to place")
    rng = np.random.default_rng([int(seed), 0x5713])
    n_clips = int(count or 0)
    order: list[int] = []
    while len(order) < n_clips:
        order.extend(rng.permutation(len(clips)).tolist())
    order = order[:n_clips]
    pieces, placed, pos = [], [], int(round(lead_s * sample_rate))
    for i in order:
        x = _clean(clips[i], sample_rate)
        if speed is not None:
            x = augment.waveform(x, {"speed": list(speed)}, sample_rate, rng)
        g = _draw(rng, gain_db)
        placed.append(Placed(clips[i].label, pos, pos + len(x), g, str(clips[i].path),
                             clips[i].speaker))
        pieces.append(x * 10.0 ** (g / 20.0))
        pos += len(x) + int(round(_draw(rng, gap_s) * sample_rate))
    total = max(pos if placed else 0, int(round((seconds or 0) * sample_rate)))
    level = _draw(rng, level_db)
    y = background(background_kind, total, sample_rate, level, rng)
    for p, x in zip(placed, pieces):
        y[p.start:p.end] += x
    pcm = np.clip(np.round(y * FULL_SCALE), -32768, 32767).astype(np.int16)
    settings = {"seed": int(seed), "count": n_clips, "seconds": seconds, "gap_s": gap_s,
                "lead_s": lead_s, "background": str(background_kind), "level_db": level,
                "gain_db": gain_db, **({"speed": list(speed)} if speed is not None else {})}
    return Material(pcm, sample_rate, placed, settings)


def split_streams(clips: Sequence[Clip], sample_rate: int, *, split: str = "fsdd",
                  test_speakers: Sequence[str] = (), val_fraction: float = 0.1,
                  split_seed: int = 0, streams: int = 1, count: int = 50, seed: int = 0,
                  **kwargs) -> dict[str, list[Material]]:
    """{"train", "val", "test"}: ``streams`` streams of ``count`` clips each, per part of
    :func:`~slimedge.data.audio.split_clips`, each part's from its own clips only (speaker-
    disjoint when the split is). Stream k of a part is seeded by (seed, part, k)."""
    parts = split_clips(clips, split, test_speakers=test_speakers, val_fraction=val_fraction,
                        seed=split_seed)
    out = {}
    for j, (name, part) in enumerate(parts.items()):
        out[name] = [make_stream(part, sample_rate, count=count if part else 0,
                                 seed=int(np.random.SeedSequence([seed, j, k]).generate_state(1)[0]),
                                 **kwargs)
                     for k in range(streams if part else 0)]
    return out


def frame_span(p: Placed, window: int, hop: int) -> tuple[int, int]:
    """(first, last) frame whose window's centre lies in the clip ``p`` (:func:`frame_labels`'s
    frames of it; last < first for a clip shorter than a hop between two centres)."""
    return (-(-(p.start - window // 2) // hop), (p.end - 1 - window // 2) // hop)


def frame_labels(material: Material, window: int, hop: int, frames: int, labels: Sequence[str],
                 background_label: str = BACKGROUND_LABEL) -> np.ndarray:
    """int64 (frames,): frame j (samples [j*hop, j*hop + window)) is its clip's label index when
    its window's centre lies in the clip, else ``background_label``'s."""
    labels = list(labels)
    if background_label not in labels:
        raise DataError(f"the labels {labels} have no background class {background_label!r}")
    y = np.full(frames, labels.index(background_label), np.int64)
    centre = np.arange(frames) * hop + window // 2
    for p in material.placed:
        if p.label not in labels:
            raise DataError(f"{p.path}: label {p.label!r} is not among {labels}")
        y[(centre >= p.start) & (centre < p.end)] = labels.index(p.label)
    return y


__all__ = ["BACKGROUND_LABEL", "BACKGROUNDS", "RECORDINGS", "TRAIN_RECORDINGS", "resample",
           "Placed", "Material", "background", "make_stream", "split_streams", "frame_span", "frame_labels"]
