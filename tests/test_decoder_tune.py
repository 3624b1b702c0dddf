"""Scoring and tuning the decoder on labelled streams (slimedge.runtime.tune): hand-counted
cases, and a grid search that finds settings the synthetic streams reward."""
import numpy as np
import pytest

from helpers import seeded
from slimedge.runtime import tune
from slimedge.runtime.decoder import Decoder, Event, Settings
from test_decoder import CONFIG, HOP_MS


def ev(label, time):
    return Event(label, int(label) + 1, time, time - 0.3, 0.9, 0, 0)


def test_score_counts_by_hand():
    truth = [("1", 0.0, 0.5), ("2", 1.0, 1.5), ("3", 2.0, 2.5)]
    # 1 on time, 2 twice (one insertion), 3 missed, a 7 nowhere near a digit
    events = [ev("1", 0.45), ev("2", 1.6), ev("2", 1.7), ev("7", 3.5)]
    s = tune.score(events, truth, tolerance_s=0.3)
    assert (s["misses"], s["insertions"], s["events"]) == (1, 2, 4)
    assert s["edit_distance"] == 2  # 1 2 3 -> 1 2 2 7: a substitution and an insertion
    assert s["latencies"] == pytest.approx([-0.05, 0.1])
    assert tune.edit_distance("kitten", "sitting") == 3


def labelled_stream(seed: str, digits: int):
    """Synthetic logits: silence, then digits of 0.3-0.6 s (a class raised over noise) with
    0.3-1.0 s gaps; the truth in seconds."""
    rng = seeded(seed)
    hop = HOP_MS / 1000
    frames = []
    truth = []
    t = 0
    for _ in range(digits):
        gap = int(rng.uniform(0.3, 1.0) / hop)
        n = int(rng.uniform(0.3, 0.6) / hop)
        k = int(rng.integers(0, 10))
        y = rng.normal(0, 1.5, (gap + n, 11)).astype(np.float32)
        y[:, 0] += 2.5
        y[gap:, k + 1] += 4.0
        y[gap:, 0] -= 2.5
        frames.append(y)
        truth.append((str(k), (t + gap) * hop, (t + gap + n) * hop))
        t += gap + n
    return np.concatenate(frames), truth


def test_tune_finds_settings_the_streams_reward():
    streams = [labelled_stream(f"tune-{k}", 25) for k in range(3)]
    background = seeded("tune-bg").normal(0, 1.5, (3000, 11)).astype(np.float32)
    background[:, 0] += 2.5
    outs = [y for y, _ in streams] + [background]
    truths = [t for _, t in streams] + [[]]
    bad = Settings(window_ms=20.0, threshold=0.3, min_count=1, refractory_ms=0.0)
    poor = tune.evaluate(CONFIG, outs, truths, bad)
    grid = {"window_ms": [20.0, 100.0], "threshold": [0.3, 0.6], "min_count": [1, 3],
            "refractory_ms": [0.0, 300.0]}
    best, rows = tune.tune(CONFIG, outs, truths, grid)
    assert len(rows) == 16 and rows[0]["sequence_accuracy"] == max(r["sequence_accuracy"] for r in rows)
    top = tune.evaluate(CONFIG, outs, truths, best)
    assert top == rows[0]
    assert top["sequence_accuracy"] >= 0.95 > poor["sequence_accuracy"]
    assert top["false_alarms"] * 100 < poor["false_alarms"]
    assert top["false_alarms_per_hour"] == pytest.approx(top["false_alarms"] / top["background_hours"])
    assert top["background_hours"] == pytest.approx(3000 * HOP_MS / 1000 / 3600)
    # the rows are the decoder's own counts
    d = Decoder(CONFIG, best)
    assert top["events"] == sum(len(Decoder(CONFIG, best).push(y)) for y in outs[:3])
    assert d.settings == best


def test_a_false_alarm_budget_ranks_quiet_settings_first():
    """The most accurate settings fire on the background: with a budget of false alarms per
    hour, the best row is the most accurate of those within it."""
    streams = [labelled_stream(f"budget-{k}", 20) for k in range(2)]
    background = seeded("budget-bg").normal(0, 1.5, (3000, 11)).astype(np.float32)
    background[:, 0] += 1.0  # a weak background class: low thresholds fire on the noise
    outs = [y for y, _ in streams] + [background]
    truths = [t for _, t in streams] + [[]]
    grid = {"window_ms": [20.0, 100.0], "threshold": [0.3, 0.6, 0.9], "min_count": [1, 3],
            "refractory_ms": [0.0, 300.0]}
    _, free = tune.tune(CONFIG, outs, truths, grid)
    assert free[0]["false_alarms"] > 0  # else this test shows nothing
    best, rows = tune.tune(CONFIG, outs, truths, grid, max_false_alarms_per_hour=0.0)
    quiet = [r for r in rows if r["false_alarms"] == 0]
    assert quiet and rows[0]["false_alarms"] == 0
    assert rows[0]["sequence_accuracy"] == max(r["sequence_accuracy"] for r in quiet)
    assert tune.evaluate(CONFIG, outs, truths, best) == rows[0]
