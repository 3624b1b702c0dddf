"""Labelled variable-length sequences (:class:`SequenceData`), padded batches and batch order."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from ..errors import DataError


@dataclass
class SequenceData:
    """Labelled sequences stored packed: ``frames`` (total_frames, m), sequence k being
    ``frames[offsets[k]:offsets[k+1]]``; ``y`` (N,) class indices into ``labels``."""

    frames: np.ndarray
    offsets: np.ndarray
    y: np.ndarray
    labels: list[str]
    name: str = ""

    def __post_init__(self) -> None:
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        self.y = np.asarray(self.y, dtype=np.int64)
        if self.frames.ndim != 2:
            raise DataError(f"{self.name}: frames must be (total_frames, m), got {self.frames.shape}")
        if self.offsets.ndim != 1 or len(self.offsets) != len(self.y) + 1 or self.offsets[0] != 0 \
                or self.offsets[-1] != len(self.frames) or np.any(np.diff(self.offsets) < 1):
            raise DataError(f"{self.name}: lengths must be positive and sum to the number of "
                             f"frames ({len(self.frames)})")
        if len(self.y) and (self.y.min() < 0 or self.y.max() >= len(self.labels)):
            raise DataError(f"{self.name}: labels y must lie in [0, {len(self.labels) - 1}]")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def input_size(self) -> int:
        return int(self.frames.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sequence(self, k: int) -> np.ndarray:
        """Sequence k as float32 (T_k, m)."""
        return np.asarray(self.frames[self.offsets[k]:self.offsets[k + 1]], dtype=np.float32)

    def _frame_index(self, idx: np.ndarray) -> np.ndarray:
        lengths = self.lengths[idx]
        if len(idx) and np.all(lengths == lengths[0]):  # fixed length: no Python loop
            return (self.offsets[idx][:, None] + np.arange(lengths[0])).ravel()
        if not len(idx):
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([np.arange(self.offsets[k], self.offsets[k + 1]) for k in idx])

    def subset(self, idx: Sequence[int] | np.ndarray) -> "SequenceData":
        idx = np.asarray(idx, dtype=np.int64)
        lengths = self.lengths[idx]
        return SequenceData(self.frames[self._frame_index(idx)],
                            np.concatenate([[0], np.cumsum(lengths)]), self.y[idx], self.labels,
                            self.name)

    def batch(self, idx: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Zero-padded float32 (B, T_max, m), lengths (B,), y (B,) for the sequences ``idx``."""
        idx = np.asarray(idx, dtype=np.int64)
        lengths = self.lengths[idx]
        t_max = int(lengths.max())
        if np.all(lengths == t_max):
            x = self.frames[self._frame_index(idx)].reshape(len(idx), t_max, -1)
            return x.astype(np.float32), lengths, self.y[idx]
        x = np.zeros((len(idx), t_max, self.input_size), dtype=np.float32)
        for row, k in enumerate(idx):
            x[row, :lengths[row]] = self.frames[self.offsets[k]:self.offsets[k + 1]]
        return x, lengths, self.y[idx]

    def feature_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature mean and std over every frame (float64 accumulation)."""
        f = np.asarray(self.frames, dtype=np.float64)
        return f.mean(axis=0), f.std(axis=0)


def collate(sequences: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Pad a list of (T_k, m) arrays to float32 (B, T_max, m) with zeros; returns (x, lengths)."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    x = np.zeros((len(sequences), int(lengths.max()), sequences[0].shape[-1]), dtype=np.float32)
    for row, s in enumerate(sequences):
        x[row, :len(s)] = s
    return x, lengths


def batches(data: SequenceData, batch_size: int, *, shuffle: bool = False, seed: int = 0,
            bucket: int = 50) -> Iterator[np.ndarray]:
    """Index arrays of mini-batches.

    Without ``shuffle``: the sequences sorted by length (stable), cut into batches, so evaluation
    pads little and is reproducible. With ``shuffle``: a permutation drawn from ``seed``, cut into
    chunks of ``bucket`` batches, each chunk sorted by length (less padding), and the batch order
    shuffled again; everything depends on ``seed`` alone. Padding never changes a result (the model
    masks it), only how much work is wasted.
    """
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}")
    n, lengths = len(data), data.lengths
    if not shuffle:
        order = np.argsort(lengths, kind="stable")
        yield from (order[s:s + batch_size] for s in range(0, n, batch_size))
        return
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    out = []
    chunk = batch_size * max(1, bucket)
    for s in range(0, n, chunk):
        part = perm[s:s + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        out.extend(part[j:j + batch_size] for j in range(0, len(part), batch_size))
    for k in rng.permutation(len(out)):
        yield out[k]
