"""Seeded, stratified train / val / test splits (:class:`DataSplits`) and how they are made."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import DataError
from .sequences import SequenceData

SPLITS = ("train", "val", "test")
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_TEST_FRACTION = 0.1


def stratified_split(y: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split indices so that every class is divided in the given fractions (the last part takes
    the remainder); seeded and deterministic; each part sorted."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        start = 0
        for p, frac in enumerate(fractions):
            take = int(round(frac * len(idx)))
            parts[p].append(idx[start:start + take])
            start += take
        parts[-1].append(idx[start:])
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, dtype=np.int64) for p in parts]


def stratified_subset(y: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """At most ``limit`` indices, classes in proportion (seeded); all of them if fewer."""
    if limit >= len(y):
        return np.arange(len(y))
    (idx, _) = stratified_split(y, [limit / len(y)], seed)
    if len(idx) > limit:  # per-class rounding can overshoot by a few
        idx = np.sort(np.random.default_rng(seed).choice(idx, limit, replace=False))
    return idx


@dataclass
class DataSplits:
    """A data set's train / val / test splits and how they were made."""

    name: str
    train: SequenceData
    val: SequenceData
    test: SequenceData
    info: dict = field(default_factory=dict)

    def __getitem__(self, split: str) -> SequenceData:
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        return getattr(self, split)

    @property
    def input_size(self) -> int:
        return self.train.input_size

    @property
    def labels(self) -> list[str]:
        return self.train.labels

    def summary(self) -> dict:
        return {**self.info, "sizes": {s: len(self[s]) for s in SPLITS},
                "input_size": self.input_size, "num_classes": len(self.labels)}


def make_splits(name: str, data: SequenceData, *, split_seed: int, val_fraction: float,
                 test_fraction: float, fixed_test: SequenceData | None = None,
                 limit: int | None = None, source: str = "", split_note: str = "") -> DataSplits:
    for what, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < frac < 1.0:
            raise DataError(f"{what} must lie in (0, 1), got {frac}")
    if fixed_test is None:
        if val_fraction + test_fraction >= 1.0:
            raise DataError("val_fraction + test_fraction must be below 1")
        test_idx, val_idx, train_idx = stratified_split(data.y, [test_fraction, val_fraction],
                                                        split_seed)
        train, val, test = data.subset(train_idx), data.subset(val_idx), data.subset(test_idx)
    else:
        val_idx, train_idx = stratified_split(data.y, [val_fraction], split_seed)
        train, val, test = data.subset(train_idx), data.subset(val_idx), fixed_test
    if limit is not None:
        if limit < 1:
            raise DataError(f"limit must be at least 1, got {limit}")
        train, val, test = (d.subset(stratified_subset(d.y, limit, split_seed + 1))
                            for d in (train, val, test))
    for s, d in zip(SPLITS, (train, val, test)):
        d.name = f"{name}:{s}"
        if not len(d):
            raise DataError(f"{name}: the {s} split is empty; use more data or other fractions")
    info = {"name": name, "source": source, "split_seed": int(split_seed),
            "val_fraction": float(val_fraction),
            "test_fraction": None if fixed_test is not None else float(test_fraction),
            "limit": limit, "split": split_note}
    return DataSplits(name, train, val, test, info)

