"""The decoder scored and tuned on labelled streams (issue 24).

A *stream* is ``(pcm, truth)``: 1-D PCM at the model's rate and its ground truth, a list of
``(label, start_s, end_s)`` in time order (any generator that yields these plugs in). The model
runs over each stream once (:func:`outputs`); the decoder's settings are then cheap to vary:

* :func:`score` — one stream's events against its truth: the edit distance between the label
  sequences (sequence accuracy ``1 - distance / N``), misses (a truth no event of its label
  fired for between its start and ``tolerance_s`` after its end), insertions (events matching no
  truth), detection latency (event time - the truth's end, for the matched ones).
* :func:`evaluate` — the sum over streams at one setting (plus false alarms per hour, for
  streams without any truth: background only).
* :func:`tune` — a grid of settings, the best by sequence accuracy, then fewer false alarms and
  insertions, then lower p90 latency; with ``max_false_alarms_per_hour``, settings within that
  budget on the background streams rank before every setting over it (a model whose most
  accurate settings fire on noise is tuned for silence first, as the issue's targets ask).
"""
from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Iterable, Sequence

import numpy as np

from ..errors import UsageError
from .decoder import Decoder, Event, Settings

#: the default grid of :func:`tune` (window_ms, threshold, min_count, refractory_ms)
GRID = {"window_ms": [60.0, 100.0, 200.0, 300.0], "threshold": [0.4, 0.5, 0.6, 0.7, 0.8],
        "min_count": [1, 2, 3, 5], "refractory_ms": [100.0, 200.0, 300.0, 500.0]}
#: how long after a digit's end an event of its label still matches it (seconds)
TOLERANCE_S = 0.3


def outputs(model, streams: Iterable[tuple]) -> list[np.ndarray]:
    """The model's per-frame outputs (frames, K) over each stream's PCM, state never reset
    within a stream (a fresh one per stream)."""
    return [model.audio_stream().push(np.asarray(pcm)) for pcm, _ in streams]


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance between two label sequences (unit costs)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def score(events: Sequence[Event], truth: Sequence[tuple],
          tolerance_s: float = TOLERANCE_S) -> dict:
    """One stream's events against its truth (see the module's docstring)."""
    used = [False] * len(events)
    latencies, misses = [], 0
    for label, start, end in truth:
        hit = next((k for k, e in enumerate(events) if not used[k] and e.label == str(label)
                    and start <= e.time <= end + tolerance_s), None)
        if hit is None:
            misses += 1
        else:
            used[hit] = True
            latencies.append(events[hit].time - end)
    return {"n": len(truth), "events": len(events),
            "edit_distance": edit_distance([str(t[0]) for t in truth], [e.label for e in events]),
            "misses": misses, "insertions": used.count(False), "latencies": latencies}


def evaluate(config: dict, stream_outputs: Sequence[np.ndarray], truths: Sequence[Sequence],
             settings: Settings, tolerance_s: float = TOLERANCE_S) -> dict:
    """The decoder at ``settings`` over every stream: sequence accuracy over the streams with a
    truth, misses, insertions, latency (median, p90, seconds after the digit's end) and false
    alarms per hour over the streams without one (background only)."""
    if len(stream_outputs) != len(truths):
        raise UsageError(f"{len(stream_outputs)} streams' outputs for {len(truths)} truths")
    total = {"n": 0, "edit_distance": 0, "misses": 0, "insertions": 0, "events": 0}
    lat, alarms, background_s = [], 0, 0.0
    for y, truth in zip(stream_outputs, truths):
        d = Decoder(config, settings)
        events = d.push(y)
        if not truth:
            alarms += len(events)
            background_s += len(y) * d.hop
            continue
        s = score(events, truth, tolerance_s)
        for k in total:
            total[k] += s[k]
        lat += s["latencies"]
    n = total["n"]
    return {**settings.as_config(), **total,
            "sequence_accuracy": 1.0 - total["edit_distance"] / n if n else None,
            "latency_median_s": float(np.median(lat)) if lat else None,
            "latency_p90_s": float(np.percentile(lat, 90)) if lat else None,
            "background_hours": background_s / 3600.0,
            "false_alarms": alarms,
            "false_alarms_per_hour": alarms / (background_s / 3600.0) if background_s else None}


def tune(config: dict, stream_outputs: Sequence[np.ndarray], truths: Sequence[Sequence],
         grid: dict | None = None, base: Settings | None = None,
         max_false_alarms_per_hour: float | None = None) -> tuple[Settings, list[dict]]:
    """Every combination of ``grid`` (default :data:`GRID`) over ``base`` (the config's
    settings): the best settings and every row, best first (``max_false_alarms_per_hour``: rows
    within it first; see the module's docstring)."""
    grid = dict(GRID if grid is None else grid)
    base = base if base is not None else Settings.from_config(config)
    keys = sorted(grid)
    rows = []
    for values in itertools.product(*(grid[k] for k in keys)):
        s = replace(base, **dict(zip(keys, values)))
        rows.append(evaluate(config, stream_outputs, truths, s))
    if not rows:
        raise UsageError("the tuning grid is empty")

    def key(r):
        over = (max_false_alarms_per_hour is not None and r["false_alarms_per_hour"] is not None
                and r["false_alarms_per_hour"] > max_false_alarms_per_hour)
        return (over, -(r["sequence_accuracy"] or 0.0), r["false_alarms"], r["insertions"],
                r["latency_p90_s"] if r["latency_p90_s"] is not None else float("inf"))
    rows.sort(key=key)
    best = rows[0]
    return replace(base, **{k: best[k] for k in keys}), rows


__all__ = ["GRID", "TOLERANCE_S", "outputs", "edit_distance", "score", "evaluate", "tune"]
