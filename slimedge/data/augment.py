"""Augmentations of a training clip: on the waveform before the audio front-end, and SpecAugment-
style masks on its frames after it.

An augmentation recipe is a dict of named augmentations and their parameters, recorded in the
training config (``TrainConfig.augment``); :func:`parse` reads the command line's form
``shift,gain,noise`` (each with its default parameters, :data:`DEFAULTS`) or
``gain=-12:6,noise=20:40`` (a range given). Every augmentation draws from one seeded generator, so
a recipe, a seed and a clip give the same copy everywhere.

Waveform (float in [-1, 1), before the front-end; an integer front-end rounds the result to int16):

* ``shift`` (ms): ``max`` ms of silence put before the clip, uniform in [0, max] (where a word
  starts in the window differs from one recording to another);
* ``gain`` (dB): a gain uniform in [lo, hi] (a speaker nearer or farther from the microphone);
  the result is clipped to [-1, 1);
* ``noise`` (dB): white noise at an SNR uniform in [lo, hi] over the clip's own mean power;
* ``speed``: resampling by a factor uniform in [lo, hi] (linear interpolation): tempo and pitch
  change together, the cheap form of vocal-tract-length perturbation;
* ``eq`` (dB): a random smooth colouring of the spectrum (another microphone and room): the clip's
  spectrum times ``10 ** (g(f) / 20)`` with ``g`` half the sum of three cosines over 0..Nyquist
  (1, 2 and 3 half-periods, random phases) whose amplitudes are uniform in [-max, max] dB.

Front-end:

* ``vtlp``: vocal-tract-length perturbation as a filterbank warp: the front-end's band edges
  (microfrontend ``lower_hz``/``upper_hz``, log-mel ``f_min``/``f_max``) scaled by a factor
  uniform in [lo, hi] (on a 0.025 grid; the upper edge kept below Nyquist), the spectrum's
  formants thus moved against the channels with the tempo left alone.

Frames (after the front-end, before the standardisation; masked values become the training set's
per-feature mean, which the standardisation maps to 0):

* ``time_mask`` (frames): two masks of up to ``max`` consecutive frames;
* ``freq_mask`` (channels): two masks of up to ``max`` consecutive features.

Per epoch (in the training loop, on every training sequence, clean clips and copies alike, drawn
anew each epoch from the epoch's seed):

* ``stretch``: the frames resampled in time by a factor drawn log-uniform in [lo, hi], each output
  frame the nearest earlier input frame: a word said slower or faster with its spectrum left
  alone (``speed`` moves both). Speakers differ most in how long they hold a digit (FSDD's "two"
  lasts a median 0.30 s for one speaker and 0.51 s for another); a classifier that learned the
  training voices' durations mistakes a new voice's slow "two" for "zero".
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..errors import UsageError

DEFAULTS: dict[str, tuple[float, ...]] = {
    "shift": (150.0,), "gain": (-24.0, 6.0), "noise": (10.0, 40.0), "speed": (0.9, 1.1),
    "time_mask": (5.0,), "freq_mask": (4.0,), "vtlp": (0.9, 1.1), "eq": (10.0,),
    "stretch": (0.6, 1.7)}
"""Each augmentation's parameters when the command line names it without any."""
WAVEFORM = ("shift", "gain", "noise", "speed", "eq")
FRAMES = ("time_mask", "freq_mask")
FRONTEND = ("vtlp",)
EPOCH = ("stretch",)
VTLP_STEP = 0.025  # warp factors on this grid: a few front-ends, each built (and its tables) once
MASKS = 2  # masks of each kind per clip
DEFAULT_COPIES = 4  # augmented copies of each training clip when a recipe gives none


def parse(text: str) -> dict[str, list[float]]:
    """``"shift,gain=-12:6"`` -> ``{"shift": [150.0], "gain": [-12.0, 6.0]}``; ``""``/``none`` ->
    ``{}``. UsageError names a bad item."""
    out: dict[str, list[float]] = {}
    for item in (x.strip() for x in str(text).split(",")):
        if not item or item == "none":
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if name not in DEFAULTS:
            raise UsageError(f"unknown augmentation {name!r}; valid: {', '.join(DEFAULTS)}")
        try:
            params = [float(v) for v in value.split(":")] if sep else list(DEFAULTS[name])
        except ValueError:
            raise UsageError(f"augmentation {item!r}: its parameters are numbers separated by "
                             f"':' (e.g. gain=-12:6)") from None
        out[name] = params
    return check(out)


def check(recipe: Mapping) -> dict[str, list[float]]:
    """The recipe with each augmentation's parameters checked (count, order, range)."""
    out = {}
    for name, params in dict(recipe or {}).items():
        if name not in DEFAULTS:
            raise UsageError(f"unknown augmentation {name!r}; valid: {', '.join(DEFAULTS)}")
        p = [float(v) for v in (params if isinstance(params, (list, tuple)) else [params])]
        want = len(DEFAULTS[name])
        if len(p) != want or not all(np.isfinite(p)):
            raise UsageError(f"augmentation {name} takes {want} number(s), got {params!r}")
        if want == 2 and p[0] > p[1]:
            raise UsageError(f"augmentation {name}: the range {p[0]}:{p[1]} is reversed")
        if (name in ("speed", "vtlp", "stretch") and p[0] <= 0) or (want == 1 and p[0] < 0):
            raise UsageError(f"augmentation {name}: {params!r} out of range")
        out[name] = p
    return out


def waveform(x: np.ndarray, recipe: Mapping, sample_rate: int,
             rng: np.random.Generator) -> np.ndarray:
    """float64 samples in [-1, 1) -> an augmented copy (the recipe's waveform augmentations)."""
    x = np.asarray(x, np.float64)
    if "speed" in recipe:
        lo, hi = recipe["speed"]
        r = rng.uniform(lo, hi)
        n = max(2, int(round(len(x) / r)))
        x = np.interp(np.arange(n) * r, np.arange(len(x)), x)
    if "eq" in recipe:
        x = _colour(x, recipe["eq"][0], rng)
    if "gain" in recipe:
        x = x * 10.0 ** (rng.uniform(*recipe["gain"]) / 20.0)
    if "shift" in recipe:
        n = int(rng.uniform(0, recipe["shift"][0]) * sample_rate / 1000)
        x = np.concatenate([np.zeros(n), x])
    if "noise" in recipe:
        power = float(np.mean(x * x)) or 1e-10
        snr = rng.uniform(*recipe["noise"])
        x = x + rng.standard_normal(len(x)) * np.sqrt(power / 10.0 ** (snr / 10.0))
    return np.clip(x, -1.0, 32767 / 32768)


def _colour(x: np.ndarray, max_db: float, rng: np.random.Generator) -> np.ndarray:
    """``x`` through a random smooth frequency response (``eq``): see the module's docstring."""
    spectrum = np.fft.rfft(x)
    f = np.linspace(0.0, 1.0, len(spectrum))  # 0 .. Nyquist
    g = sum(rng.uniform(-max_db, max_db) * np.cos(np.pi * k * f + rng.uniform(0, 2 * np.pi))
            for k in (1, 2, 3)) / 2
    return np.fft.irfft(spectrum * 10.0 ** (g / 20.0), len(x))


def warp(audio, recipe: Mapping, rng: np.random.Generator):
    """The front-end ``audio`` with its band edges warped (``vtlp``), or itself."""
    if "vtlp" not in recipe:
        return audio
    import dataclasses

    a = round(rng.uniform(*recipe["vtlp"]) / VTLP_STEP) * VTLP_STEP
    lo, hi = ("lower_hz", "upper_hz") if hasattr(audio, "lower_hz") else ("f_min", "f_max")
    top = 0.5 * audio.sample_rate - 1.0
    return dataclasses.replace(audio, **{lo: round(getattr(audio, lo) * a, 6),
                                         hi: round(min(getattr(audio, hi) * a, top), 6)})


def frames(f: np.ndarray, recipe: Mapping, fill: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """(T, m) frames -> a copy with the recipe's time and feature masks (set to ``fill``)."""
    f = np.array(f)
    T, m = f.shape
    for _ in range(MASKS if "time_mask" in recipe else 0):
        w = int(rng.integers(0, int(recipe["time_mask"][0]) + 1))
        if 0 < w < T:
            s = int(rng.integers(0, T - w + 1))
            f[s:s + w] = fill
    for _ in range(MASKS if "freq_mask" in recipe else 0):
        w = int(rng.integers(0, int(recipe["freq_mask"][0]) + 1))
        if 0 < w < m:
            s = int(rng.integers(0, m - w + 1))
            f[:, s:s + w] = fill[s:s + w]
    return f


def stretch(x: np.ndarray, lengths: np.ndarray, factors: Sequence[float],
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A zero-padded batch (B, T, m) and its lengths -> each sequence stretched in time
    (``stretch``: a factor r drawn log-uniform in ``factors``; r * length frames, rounded half
    up, at least one; output frame t is input frame floor(t / r)), zero-padded again, and the
    new lengths."""
    lo, hi = factors
    r = np.exp(rng.uniform(np.log(lo), np.log(hi), len(lengths)))
    new = np.maximum(1, np.floor(lengths * r + 0.5)).astype(np.int64)
    out = np.zeros((len(lengths), int(new.max()), x.shape[2]), x.dtype)
    for i, (n, k) in enumerate(zip(new, lengths)):
        out[i, :n] = x[i, np.minimum((np.arange(n) / r[i]).astype(np.int64), k - 1)]
    return out, new


__all__ = ["DEFAULTS", "parse", "check", "waveform", "warp", "frames", "stretch"]
