"""Audio front-ends: the registry of kinds and their stream (samples in, frames out, causal).

An audio front-end turns PCM samples into the model's raw frames; it is recorded in a model's
config as the front-end's ``audio`` section, before the per-frame stages::

    "frontend": {"audio": {"kind": "logmel", "sample_rate": 8000, ...},
                 "stages": [{"kind": "standardize"}]}

Kinds (:data:`AUDIO`): ``logmel`` (:mod:`.logmel`, float log-mel / MFCC) and ``microfrontend``
(:mod:`.microfrontend`, integer, TFLite Micro style). Each is a frozen dataclass with
``to_config``/``from_config``, ``window_samples``, ``hop_samples``, ``output_size``,
``state_size``, ``initial_state()`` and ``process(frames, state) -> (features, state)`` over
(T, window) frames. :class:`AudioStream` adds the framing every kind shares: frame t covers
samples [t * hop, t * hop + window); a push of any length returns the frames it completed and
keeps the last ``window - hop`` (or fewer) samples, so any split of a signal into pushes gives
the same frames as one push.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from . import logmel, microfrontend

AUDIO: dict[str, type] = {logmel.KIND: logmel.LogMel, microfrontend.KIND: microfrontend.Micro}
"""Audio front-end kind -> its class."""

DEFAULT = {"kind": "microfrontend", "sample_rate": 8000, "window_ms": 60, "hop_ms": 20,
           "lower_hz": 62.5, "upper_hz": 3750.0}
"""The front-end ``slimedge train --data DIR`` uses unless told otherwise: the microfrontend's
16 kHz configuration (30 ms window, 10 ms hop, 125-7500 Hz) scaled to FSDD's 8 kHz with the same
FFT size: the shipped continuous model's (the shipped raw-audio model turns its noise reduction
off, ``min_signal_remaining`` 1: benchmarks/audio.py)."""

PRESETS = {"logmel": {"kind": "logmel"}, "mfcc": {"kind": "logmel", "dct": 13},
           "microfrontend": DEFAULT}
"""Named starting points for ``--frontend`` (fields set with ``--frontend-option``)."""


def from_config(spec: Mapping):
    """The audio front-end a spec describes; ValueError for an unknown kind or field."""
    if not isinstance(spec, Mapping) or spec.get("kind") not in AUDIO:
        kind = spec.get("kind") if isinstance(spec, Mapping) else spec
        raise ValueError(f"unknown audio front-end {kind!r}; valid: {', '.join(AUDIO)}")
    return AUDIO[spec["kind"]].from_config(spec)


def as_pcm(samples, integer: bool) -> np.ndarray:
    """1-D samples for a front-end: int16 PCM for an integer one (float input in [-1, 1) is
    scaled by 32768, rounded and clipped), float64 in [-1, 1) for a float one (int16 / 32768)."""
    x = np.asarray(samples)
    if integer and x.dtype == np.int16 and x.ndim == 1:  # a stream's usual push: as it is
        return x
    if x.ndim != 1:
        raise ValueError(f"audio samples must be one channel (1-D), got shape {x.shape}")
    is_int = np.issubdtype(x.dtype, np.integer)
    if integer:
        if is_int:
            if x.size and (x.min() < -32768 or x.max() > 32767):
                raise ValueError("integer samples must be int16 PCM (-32768..32767)")
            return x.astype(np.int16)
        if not np.isfinite(x).all():
            raise ValueError("audio samples must be finite")
        return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
    if is_int:
        return x.astype(np.float64) / 32768.0
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError("audio samples must be finite")
    return x


class AudioStream:
    """One audio front-end run on a live signal: :meth:`push` samples, get frames (T, features).
    ``compiled``: run the integer front-end's compiled kernel (:mod:`.micro_fast`; the same
    values; numba compiles it once per process, seconds, so it pays for a server's many pushes
    or training's many clips, not for one clip)."""

    def __init__(self, audio, compiled: bool = False) -> None:
        self.audio, self.compiled = audio, bool(compiled)
        self.integer = isinstance(audio, microfrontend.Micro)
        self.reset()

    def reset(self) -> None:
        self.buffer = np.zeros(0, np.int16 if self.integer else np.float64)
        self.state = self.audio.initial_state()

    def push(self, samples) -> np.ndarray:
        x = np.concatenate([self.buffer, as_pcm(samples, self.integer)])
        W, H = self.audio.window_samples, self.audio.hop_samples
        n = 0 if len(x) < W else 1 + (len(x) - W) // H
        if n == 0:
            self.buffer = x
            return np.zeros((0, self.audio.output_size))
        # frame t is x[t * H : t * H + W] (a read-only view; one frame: a plain slice)
        frames = x[None, :W] if n == 1 else \
            np.lib.stride_tricks.sliding_window_view(x, W)[::H][:n]
        out, self.state = self.audio.process(frames, self.state, self.compiled)
        self.buffer = x[n * H:].copy()
        return np.asarray(out, np.float64)


def features(audio, samples, compiled: bool = False) -> np.ndarray:
    """A whole clip's frames from a fresh state (the same as pushing it in any pieces)."""
    return AudioStream(audio, compiled).push(samples)


__all__ = ["AUDIO", "DEFAULT", "PRESETS", "AudioStream", "as_pcm", "features", "from_config"]
