"""Activation functions as data: piecewise-linear ones as clip(a·z + b, lo, hi), the rest by name.

The lowering (:mod:`slimedge.ir`) writes a piecewise-linear activation from IR primitives — a
``mul`` by a, an ``add`` of b (each only when it does something) and one ``clip(lo, hi)`` — so
every exporter that implements ``clip`` (and ``mul``/``add``) takes a new one with no change.
Only the transcendental ones (:data:`TRANSCENDENTAL`: sigmoid, tanh) are IR ops of their own, one
row per exporter. :func:`register` adds a piecewise-linear activation in one place; it is then a
valid ``gate_activation`` (σ) or ``activation`` (g) of any checkpoint and export. (Training runs
through PyTorch modules whose fused kernels know the built-in activations only:
:data:`slimedge.variants.GATE_ACTIVATIONS` and :data:`slimedge.variants.ACTIVATIONS`.)

No torch is imported here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

TRANSCENDENTAL = ("sigmoid", "tanh")
"""The activations that are IR ops (and an exporter row each)."""


@dataclass(frozen=True)
class PiecewiseLinear:
    """clip(scale·z + shift, lo, hi); ``lo``/``hi`` None for no bound on that side."""

    scale: float = 1.0
    shift: float = 0.0
    lo: float | None = None
    hi: float | None = None

    def __post_init__(self) -> None:
        for v in (self.scale, self.shift, *(b for b in (self.lo, self.hi) if b is not None)):
            if not math.isfinite(v):
                raise ValueError(f"a piecewise-linear activation needs finite numbers, got {v}")
        if self.lo is None and self.hi is None:
            raise ValueError("a piecewise-linear activation needs lo or hi (else it is affine)")
        if self.lo is not None and self.hi is not None and not self.lo < self.hi:
            raise ValueError(f"lo must be below hi, got {self.lo} and {self.hi}")

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """The reference, in ``z``'s dtype, in the order the lowering computes it."""
        z = np.asarray(z)
        if self.scale != 1.0:
            z = z * self.scale
        if self.shift != 0.0:
            z = z + self.shift
        return np.clip(z, self.lo, self.hi).astype(z.dtype, copy=False)

    @property
    def bound(self) -> float:
        """The largest |output| (inf without both bounds)."""
        if self.lo is None or self.hi is None:
            return math.inf
        return max(abs(self.lo), abs(self.hi))


PIECEWISE: dict[str, PiecewiseLinear] = {
    "hard_sigmoid": PiecewiseLinear(0.2, 0.5, 0.0, 1.0),  # Keras': clip(0.2 z + 0.5, 0, 1)
    "relu": PiecewiseLinear(lo=0.0),
}
"""name -> its piecewise-linear definition (built-in and registered)."""

_GATE = ["sigmoid", "hard_sigmoid"]  # valid σ: bounded to [0, 1]
_CELL = ["tanh", "sigmoid", "relu"]  # valid g


def register(name: str, definition: PiecewiseLinear, *, gate: bool = False,
             cell: bool = False) -> PiecewiseLinear:
    """Add a piecewise-linear activation under ``name``, valid as a gate activation σ (``gate``)
    and/or as the cell activation g (``cell``); returns its definition."""
    if name in TRANSCENDENTAL or name in PIECEWISE and PIECEWISE[name] != definition:
        raise ValueError(f"activation {name!r} is already defined")
    if not (gate or cell):
        raise ValueError("register the activation for gates, the cell, or both")
    PIECEWISE[name] = definition
    for flag, names in ((gate, _GATE), (cell, _CELL)):
        if flag and name not in names:
            names.append(name)
    return definition


def unregister(name: str) -> None:
    """Remove an activation :func:`register` added (tests)."""
    if name in ("hard_sigmoid", "relu"):
        raise ValueError(f"{name!r} is built in")
    PIECEWISE.pop(name, None)
    for names in (_GATE, _CELL):
        if name in names:
            names.remove(name)


def gate_activations() -> tuple[str, ...]:
    return tuple(_GATE)


def cell_activations() -> tuple[str, ...]:
    return tuple(_CELL)


def function(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The NumPy function of activation ``name`` (constant folding, references)."""
    if name == "sigmoid":
        return lambda z: 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh
    return PIECEWISE[name]


def bound(name: str) -> float:
    """The largest |output| of activation ``name`` (inf when unbounded)."""
    return 1.0 if name in TRANSCENDENTAL else PIECEWISE[name].bound


__all__ = ["PiecewiseLinear", "PIECEWISE", "TRANSCENDENTAL", "register", "unregister",
           "gate_activations", "cell_activations", "function", "bound"]
