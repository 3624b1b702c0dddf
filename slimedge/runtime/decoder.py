"""Events from a continuous model's per-frame outputs: what was said, and when.

A *continuous* model is a classifier whose head runs every frame and whose labels include a
background class (its config: ``"stream": {"background": "_silence_", "frame_ms": hop}``; an
``"_unknown_"`` label, when present, is background too). This decoder turns its per-frame outputs
into events, as TFLite Micro's RecognizeCommands does, with the usual knobs (the config's section
``"decoder"``, :data:`DEFAULTS` where absent)::

    window_ms      the moving average of the posteriors over the last window_ms of frames
    threshold      an average at or above it (in [0, 1]) makes its class a candidate
    min_count      frames in a row the same candidate must lead before it fires
    refractory_ms  no event within refractory_ms after the previous one (suppression)
    arithmetic     "int": posteriors quantised to 0..255, an integer running sum and an integer
                   division (what a microcontroller runs); "float": float32 sums

Frame by frame, the outputs (logits) become posteriors through a softmax without libm or double
precision (a Cortex-M4's FPU is single precision): each logit's distance below the largest, in
float32 and in steps of 1/32, indexes a table of ``round(32768 * exp(-step / 32))`` (:data:`EXP`);
a class's posterior is its entry over the entries' sum, as the integer ``(255 * e + sum / 2) /
sum`` or the float32 ``e / sum``. The
window keeps the last ``W = max(1, round(window_ms / hop_ms))`` posteriors (fewer at the start:
the average divides by the frames it holds); the leading non-background class of the average is
the candidate; a candidate at or above the threshold for ``min_count`` frames in a row fires once
(its run must break before it fires again), unless the previous event is less than the
refractory time ago. An event's ``start`` estimates the digit's beginning: the oldest frame in the
window whose own posterior for the class reaches the threshold.

The arithmetic is written out step by step, in the order the exported C performs it
(:mod:`slimedge.exporters.c.emit_decoder`): the same outputs give the same events, to the bit.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..errors import UsageError

#: the decoder's defaults (where the model's config has no "decoder" section, or lacks a key):
#: tuned for the shipped continuous model (``slimedge/zoo/fsdd_stream.safetensors``) on streams
#: of the official split's validation clips and on background alone, the most accurate settings
#: with no false alarm in an hour of it (``python benchmarks/events.py --tune --background-s 900``;
#: their test figures:
#: benchmarks/results/events.json). A model tuned otherwise records its own "decoder" section.
DEFAULTS = {"window_ms": 200.0, "threshold": 0.5, "min_count": 2, "refractory_ms": 500.0,
            "arithmetic": "int"}
#: labels a decoder never fires besides the config's background
UNKNOWN = "_unknown_"
LEVELS = 255  # the integer arithmetic's posterior scale: q = round(p * 255)
EXP_STEPS = 32  # the softmax table's steps per unit of logit
#: round(32768 * exp(-k / 32)), k = 0, 1, ... up to the first zero
EXP = np.array([int(math.floor(32768 * math.exp(-k / EXP_STEPS) + 0.5)) for k in range(1024)
                if k == 0 or 32768 * math.exp(-(k - 1) / EXP_STEPS) >= 0.5], np.int64)


@dataclass(frozen=True)
class Settings:
    """The decoder's knobs (see the module's docstring)."""

    window_ms: float = DEFAULTS["window_ms"]
    threshold: float = DEFAULTS["threshold"]
    min_count: int = DEFAULTS["min_count"]
    refractory_ms: float = DEFAULTS["refractory_ms"]
    arithmetic: str = DEFAULTS["arithmetic"]

    def __post_init__(self) -> None:
        if self.arithmetic not in ("int", "float"):
            raise UsageError(f"decoder arithmetic: expected 'int' or 'float', got "
                             f"{self.arithmetic!r}")
        if not 0.0 < float(self.threshold) <= 1.0:
            raise UsageError(f"decoder threshold: expected a probability in (0, 1], got "
                             f"{self.threshold}")
        if int(self.min_count) < 1:
            raise UsageError(f"decoder min_count: expected at least 1, got {self.min_count}")
        if float(self.window_ms) <= 0 or float(self.refractory_ms) < 0:
            raise UsageError(f"decoder window_ms must be > 0 and refractory_ms >= 0, got "
                             f"{self.window_ms} and {self.refractory_ms}")

    @classmethod
    def from_config(cls, config: dict, **overrides) -> "Settings":
        """The config's "decoder" section over the defaults, then the overrides not None."""
        known = set(DEFAULTS)
        section = dict(config.get("decoder") or {})
        bad = sorted(set(section) - known) + sorted(set(overrides) - known)
        if bad:
            raise UsageError(f"decoder: unknown setting(s) {bad}; expected {sorted(known)}")
        section.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**section)

    def as_config(self) -> dict:
        return asdict(self)

    def frames(self, hop_ms: float) -> tuple[int, int]:
        """(window, refractory) in frames of hop_ms."""
        return (max(1, int(round(self.window_ms / hop_ms))),
                int(round(self.refractory_ms / hop_ms)))

    @property
    def threshold_q(self) -> int:
        """The threshold on the integer scale (at least 1: a zero average never fires)."""
        return max(1, int(math.floor(float(self.threshold) * LEVELS + 0.5)))


@dataclass(frozen=True)
class Event:
    """One detection: ``label`` (its class ``index``), ``time`` in seconds when it fired (the end
    of the frame that fired it), ``start`` in seconds (the estimated beginning), ``score`` (the
    average posterior that fired it, in [0, 1]); ``frame`` and ``start_frame`` the frame
    indices."""

    label: str
    index: int
    time: float
    start: float
    score: float
    frame: int
    start_frame: int

    def as_dict(self) -> dict:
        return {"label": self.label, "time": round(self.time, 4), "start": round(self.start, 4),
                "score": round(float(self.score), 4)}


def timing(config: dict) -> tuple[float, float, float]:
    """(hop, window, rate) of a model's frames in seconds/Hz: frame t covers [t * hop,
    t * hop + window) of the stream (its audio front-end's, else the stream section's hop)."""
    audio = (config.get("frontend") or {}).get("audio")
    if audio:
        from ..frontend import Frontend
        a = Frontend.from_config(config).audio
        return a.hop_samples / a.sample_rate, a.window_samples / a.sample_rate, a.sample_rate
    hop = float((config.get("stream") or {}).get("frame_ms", 0)) / 1000.0
    if hop <= 0:
        raise UsageError("the model's config records neither an audio front-end nor "
                         "stream.frame_ms: the decoder cannot time its frames")
    return hop, hop, 1.0 / hop


def background_indices(config: dict) -> list[int]:
    """The classes a decoder never fires: the config's stream background and "_unknown_"."""
    labels = list((config.get("head") or {}).get("labels") or [])
    stream = config.get("stream") or {}
    if "background" not in stream:
        raise UsageError("the model is not a continuous one: its config has no "
                         "\"stream\": {\"background\": ...} section (a per-frame model with a "
                         "background class)")
    bg = stream["background"]
    if bg not in labels:
        raise UsageError(f"the config's stream background {bg!r} is not one of the model's "
                         f"labels {labels}")
    return [i for i, name in enumerate(labels) if name in (bg, UNKNOWN)]


def exp_entries(y: np.ndarray) -> np.ndarray:
    """One frame's outputs (K,) -> their softmax table entries (see the module's docstring); or
    several frames' (n, K), row by row."""
    y = np.asarray(y, np.float32)
    d = (y.max(axis=-1, keepdims=True) - y) * np.float32(EXP_STEPS)  # float32, >= 0
    idx = np.where(d < np.float32(len(EXP) - 1), d, np.float32(len(EXP) - 1)).astype(np.int64)
    return EXP[idx]


class Decoder:
    """Per-frame outputs in (:meth:`push`), events out; state across calls (:meth:`reset`)."""

    def __init__(self, config: dict, settings: Settings | None = None, **overrides) -> None:
        self.settings = settings if settings is not None else Settings.from_config(config,
                                                                                    **overrides)
        if settings is not None and overrides:
            self.settings = replace(settings, **{k: v for k, v in overrides.items()
                                                 if v is not None})
        self.labels = list((config.get("head") or {}).get("labels") or [])
        self.background = background_indices(config)
        self.hop, self.win, _ = timing(config)
        self.W, self.R = self.settings.frames(self.hop * 1000.0)
        self.candidates = [k for k in range(len(self.labels)) if k not in self.background]
        self.integer = self.settings.arithmetic == "int"
        self.thr_q = self.settings.threshold_q
        self.thr_f = np.float32(self.settings.threshold)
        self.reset()

    def reset(self) -> None:
        K = len(self.labels)
        self.ring = np.zeros((self.W, K), np.int64 if self.integer else np.float32)
        self.sums = np.zeros(K, np.int64)
        self.filled = self.head = self.frame = 0
        self.run_label, self.run, self.run_start, self.fired, self.last = -1, 0, 0, False, -1

    def push(self, outputs) -> list[Event]:
        """Outputs (n, K) of n consecutive frames -> the events they fire, in order."""
        y = np.asarray(outputs, np.float32)
        if y.ndim != 2 or y.shape[1] != len(self.labels):
            raise UsageError(f"decoder: expected outputs (frames, {len(self.labels)}), got "
                             f"{y.shape}")
        # each frame's posteriors, all frames at once (elementwise: the same values one by one)
        e = exp_entries(y)
        total = e.sum(axis=1, keepdims=True)
        if self.integer:
            posteriors = (LEVELS * e + total // 2) // total
        else:
            posteriors = e.astype(np.float32) / total.astype(np.float32)
        events = []
        for p in posteriors:
            event = self._frame(p)
            if event is not None:
                events.append(event)
        return events

    def _frame(self, p: np.ndarray) -> Event | None:
        """One frame, its posteriors ``p`` (integer 0..255 or float32) given."""
        W, t = self.W, self.frame
        self.frame += 1
        # the window: a ring, the oldest at head once full
        slot = (self.head + self.filled) % W if self.filled < W else self.head
        if self.integer:
            self.sums += p - self.ring[slot]
        self.ring[slot] = p
        if self.filled < W:
            self.filled += 1
        else:
            self.head = (self.head + 1) % W
        n = self.filled
        order = [(self.head + j) % W for j in range(n)]  # oldest first
        if self.integer:
            avg = self.sums // n
            thr = self.thr_q
        else:
            s = self.ring[order[0]].copy()
            for j in order[1:]:
                s += self.ring[j]
            avg = s / np.float32(n)
            thr = self.thr_f
        avg = avg.tolist()   # exact (int64, float32 -> Python int, float): compared as they are
        best = max(self.candidates, key=avg.__getitem__)   # the first of the largest
        if avg[best] >= thr:
            if best == self.run_label:
                self.run += 1
            else:
                self.run_label, self.run, self.run_start, self.fired = best, 1, t, False
        else:
            self.run_label, self.run, self.fired = -1, 0, False
        if (self.run < self.settings.min_count or self.fired
                or (self.last >= 0 and t - self.last < self.R)):
            return None
        self.fired, self.last = True, t
        start = self.run_start
        for j, at in enumerate(order):
            if self.ring[at][best] >= thr:
                start = t - n + 1 + j
                break
        score = (np.float32(avg[best]) / np.float32(LEVELS)) if self.integer else avg[best]
        return self.event(best, t, start, score)

    def event(self, index: int, frame: int, start: int, score) -> Event:
        """The event of class ``index`` fired at ``frame``, started at ``start_frame``."""
        return Event(self.labels[index], int(index), frame * self.hop + self.win,
                     start * self.hop, float(np.float32(score)), int(frame), int(start))


def decode(config: dict, outputs, **overrides) -> list[Event]:
    """The events of one whole sequence of per-frame outputs (n, K), from a fresh decoder."""
    return Decoder(config, **overrides).push(outputs)


__all__ = ["DEFAULTS", "Settings", "Event", "Decoder", "decode", "exp_entries", "EXP", "timing",
           "background_indices"]
