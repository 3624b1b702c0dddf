"""A target's budget (flash, RAM, cycles per second, host latency) and the size model that
rejects a candidate before training.

The size model is linear least squares on features known before any weight exists (parameter
count, MACs per step, state units, activations), fitted per quantisation mode and variant from
*measured* exports: models of the space's variants with initial weights at its smallest, middle
and largest sizes, exported and compiled for
the target and measured in its emulator (the same code path a trained trial takes). Its margin is
the largest absolute residual of the fit times :data:`MARGIN_FACTOR` plus :data:`MARGIN_FLOOR`, and
never under :data:`MARGIN_RELATIVE` of the prediction (the compiler's code for a step changes with
the hidden size, so flash is not exactly linear in the parameters: about 8% off at worst measured);
a candidate is rejected only when its prediction minus that margin is over the budget, so a model
that could fit is never thrown away on a guess. Every trained trial records the prediction beside
the measured value (``predicted`` / ``measured`` in its attributes).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..errors import UsageError

TARGETS = ("cortex-m4", "cortex-m0plus", "aarch64", "host")
# the metrics each kind of target measures (and may limit)
METRICS = {"device": ("flash", "ram", "cycles_per_second"), "host": ("flash", "latency_us")}
UNITS = {"flash": "B", "ram": "B", "cycles_per_second": "cycles/s", "latency_us": "µs/step"}
MARGIN_FACTOR = 1.5
MARGIN_FLOOR = {"flash": 64.0, "ram": 32.0, "cycles_per_second": 0.0, "latency_us": 0.0}
# the features each metric is fitted on (all known from the candidate and the data's shape)
FEATURES = {"flash": ("params",), "ram": ("units",),
            "cycles_per_second": ("macs", "activations")}
MARGIN_RELATIVE = 0.10  # and never under 10% of the prediction (code size moves with n: -O2 unrolls)

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]?)(i?[bB]?)\s*$")
_POWERS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_DECIMAL = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}


def parse_bytes(text: str, what: str = "size") -> int:
    """``32KB``, ``32K``, ``32KiB`` -> 32768 (a kilobyte of memory is 1,024 bytes); ``512`` -> 512."""
    m = _SIZE.match(str(text))
    if not m:
        raise UsageError(f"{what}: expected a size such as 32KB, 8K or 4096, got {text!r}")
    return int(float(m.group(1)) * _POWERS[m.group(2).lower()])


def parse_count(text: str, what: str = "count") -> float:
    """``4M`` -> 4e6, ``250k`` -> 2.5e5 (decimal prefixes: a rate, not memory)."""
    m = _SIZE.match(str(text))
    if not m or m.group(3):
        raise UsageError(f"{what}: expected a number such as 4M, 250k or 1e6, got {text!r}")
    return float(m.group(1)) * _DECIMAL[m.group(2).lower()]


@dataclass(frozen=True)
class Budget:
    """What a model must fit: ``limits`` maps a metric of :data:`METRICS` to its ceiling."""

    target: str = "cortex-m4"
    limits: Mapping[str, float] = field(default_factory=dict)
    frame_ms: float = 10.0  # frames per second = 1000 / frame_ms (cycles per second from per step)

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise UsageError(f"unknown target {self.target!r}; valid: {', '.join(TARGETS)}")
        valid = self.metrics
        for k, v in self.limits.items():
            if k not in valid:
                raise UsageError(f"target {self.target} limits {', '.join(valid)}; "
                                 f"{k} cannot be limited there")
            if not (v > 0 and math.isfinite(v)):
                raise UsageError(f"the {k} limit must be a positive number, got {v}")
        if not (self.frame_ms > 0 and math.isfinite(self.frame_ms)):
            raise UsageError(f"frame period must be positive, got {self.frame_ms} ms")

    @property
    def kind(self) -> str:
        return "host" if self.target == "host" else "device"

    @property
    def metrics(self) -> tuple[str, ...]:
        return METRICS[self.kind]

    def violations(self, measured: Mapping[str, float]) -> list[float]:
        """Per limit, measured minus ceiling, relative to the ceiling (<= 0: within)."""
        return [(measured[k] - v) / v for k, v in sorted(self.limits.items())]

    def to_dict(self) -> dict:
        return {"target": self.target, "limits": dict(self.limits), "frame_ms": self.frame_ms}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Budget":
        return cls(d["target"], dict(d.get("limits") or {}), float(d.get("frame_ms", 10.0)))


def features(spec, input_size: int, hidden_size: int, num_layers: int, classes: int) -> dict:
    """What the size model reads: parameters (LSTM layers, head, input normalisation), MACs per
    step (the same parts), state units, and the activations computed per step."""
    params = macs = 0
    learned_gates = sum(g not in spec.constants for g in ("i", "f", "o"))
    for k in range(num_layers):
        m = input_size if k == 0 else hidden_size
        params += spec.num_params(m, hidden_size)
        macs += spec.macs_per_step(m, hidden_size)
    params += hidden_size * classes + classes + 2 * input_size
    macs += hidden_size * classes
    # sigmoid per learned gate, tanh of c~ and of c: per unit and layer
    return {"params": params, "macs": macs, "units": num_layers * hidden_size,
            "activations": num_layers * hidden_size * (learned_gates + 2)}


@dataclass
class SizeModel:
    """Per (quantize, variant, metric): coefficients over ``[1, *FEATURES[metric]]`` and a
    margin. Within one variant, MACs are quadratic and activations linear in the hidden size, so
    three sizes determine the cycles' fit; flash and RAM are linear in parameters and units."""

    fits: dict = field(default_factory=dict)   # "int8/LSTM6/flash" -> {"coef": [..], "margin": x}
    points: list = field(default_factory=list)  # the measurements it was fitted on

    @classmethod
    def fit(cls, points: list[dict]) -> "SizeModel":
        """``points``: {"quantize", "variant", "features": {...}, "measured": {metric: value}}
        each; one fit per quantisation mode, variant and metric."""
        fits = {}
        for q, v in sorted({(p["quantize"], p["variant"]) for p in points}):
            rows = [p for p in points if (p["quantize"], p["variant"]) == (q, v)]
            for metric, names in FEATURES.items():
                rows_m = [p for p in rows if metric in p["measured"]]
                if not rows_m:
                    continue
                X = np.array([[1.0, *(p["features"][n] for n in names)] for p in rows_m])
                y = np.array([p["measured"][metric] for p in rows_m], dtype=float)
                coef, *_ = np.linalg.lstsq(X, y, rcond=None)
                resid = float(np.max(np.abs(X @ coef - y)))
                fits[f"{q}/{v}/{metric}"] = {
                    "coef": coef.tolist(), "features": list(names),
                    "margin": MARGIN_FACTOR * resid + MARGIN_FLOOR[metric],
                    "max_residual": resid, "points": len(y)}
        return cls(fits, points)

    def predict(self, quantize: str, variant: str,
                feats: Mapping[str, float]) -> dict[str, tuple[float, float]]:
        """metric -> (prediction, margin), for the metrics fitted for ``quantize`` and
        ``variant`` (none for a variant it was not fitted on)."""
        out = {}
        for key, f in self.fits.items():
            q, v, metric = key.split("/")
            if (q, v) == (quantize, variant):
                x = np.array([1.0, *(feats[n] for n in f["features"])])
                value = float(x @ np.array(f["coef"]))
                out[metric] = (value, max(float(f["margin"]), MARGIN_RELATIVE * abs(value)))
        return out

    def rejection(self, budget: Budget, quantize: str, variant: str,
                  feats: Mapping[str, float]) -> str | None:
        """Why the candidate cannot fit (its prediction minus the margin over a limit), or None."""
        pred = self.predict(quantize, variant, feats)
        for metric, limit in sorted(budget.limits.items()):
            if metric in pred and pred[metric][0] - pred[metric][1] > limit:
                p, m = pred[metric]
                return (f"predicted {metric} {p:,.0f} ± {m:,.0f} {UNITS[metric]} > limit "
                        f"{limit:,.0f}")
        return None

    def to_dict(self) -> dict:
        return {"fits": self.fits, "points": self.points}

    @classmethod
    def from_dict(cls, d: Mapping) -> "SizeModel":
        return cls(dict(d["fits"]), list(d.get("points", [])))


__all__ = ["Budget", "SizeModel", "features", "parse_bytes", "parse_count", "TARGETS", "METRICS"]
