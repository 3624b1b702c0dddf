"""Classifier evaluation: an :class:`Evaluation` from final logits and labels, and over a split.

NumPy only (no torch), so the runtime, the exporters and training share one definition of
accuracy, loss and confusion matrix:

    from_logits(logits, y, labels)                  (N, K) logits at each sequence's end, y (N,)
                                                    -> Evaluation
    evaluate(predict, split, labels, num_classes=K) calls ``predict(x, lengths)`` on padded
                                                    batches of a SequenceData, then from_logits

``predict`` maps a zero-padded float32 batch ``x`` (B, T_max, m) and ``lengths`` (B,) to the
logits (B, K) at each sequence's last valid frame. Its callers:

    slimedge.train.evaluate     the PyTorch model: ``model(x, lengths)`` (it masks the padding)
    slimedge.runtime.evaluate   an exported file: ``model.run(x)[arange(B), lengths - 1]``
                                (in index order, ``by_length=False``: see below)

A caller that has a step function ``run(feeds) -> {"y", "h_next", "c_next"}`` with
``run.state_shape == (layers, n)`` (as the quantisation check has) steps each batch from a zero
state and keeps every row's ``y`` at its last frame::

    def predict(x, lengths):                      # x (B, T_max, m), lengths (B,)
        L, n = run.state_shape
        h = c = np.zeros((L, len(x), n), np.float32)
        last = np.zeros((len(x), K), np.float32)
        for t in range(x.shape[1]):
            out = run({"x": np.ascontiguousarray(x[:, t]), "h": h, "c": c})
            h, c = out["h_next"], out["c_next"]
            ends = lengths == t + 1
            last[ends] = out["y"][ends]
        return last

    acc = metrics.evaluate(predict, d, d.labels, num_classes=K, batch_size=1).accuracy

With the default ``by_length=True`` the batches are the split's sequences sorted by length
(stable), ``batch_size`` at a time: the batches the quantisation check has always stepped, so a
quantizer that picks one activation scale per call (onnxruntime's dynamic quantisation) sees the
same rows together as before.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from .errors import UsageError

EVAL_BATCH_SIZE = 256


@dataclass
class Evaluation:
    """A classifier's results on a data split (:func:`from_logits`): by ``slimedge.train.evaluate``
    (PyTorch) and ``slimedge.runtime.evaluate`` (an exported file) alike."""

    accuracy: float
    loss: float  # mean cross-entropy of the outputs at each sequence's last step
    n: int
    confusion: np.ndarray  # (K, K): rows = true class, columns = predicted
    labels: list[str]

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "loss": self.loss, "n": self.n,
                "correct": int(np.trace(self.confusion)), "confusion": self.confusion.tolist(),
                "labels": self.labels}


def from_logits(logits, y, labels: Sequence[str]) -> Evaluation:
    """The Evaluation of final logits (N, K) against true classes ``y`` (N,) in [0, K).

    Accuracy = share of rows whose argmax (the first, on ties) is ``y``; loss = the mean
    cross-entropy of softmax(logits), computed in float64; confusion (K, K) counts rows by (true,
    predicted). With no rows, accuracy and loss are NaN and the confusion matrix is zeros."""
    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y).reshape(-1)
    if logits.ndim != 2 or len(logits) != len(y):
        raise UsageError(f"logits must be (N, K) with N = {len(y)} labels, got {logits.shape}")
    if y.dtype.kind not in "iu":
        raise UsageError(f"labels y must be integer class indices, got dtype {y.dtype}")
    n, k = logits.shape
    y = y.astype(np.int64)
    if n and (y.min() < 0 or y.max() >= k):
        raise UsageError(f"labels y must lie in [0, {k - 1}] for {k} logits per row")
    confusion = np.zeros((k, k), np.int64)
    if not n:
        return Evaluation(float("nan"), float("nan"), 0, confusion, list(labels))
    np.add.at(confusion, (y, logits.argmax(-1)), 1)
    top = logits.max(-1)
    loss = top + np.log(np.exp(logits - top[:, None]).sum(-1)) - logits[np.arange(n), y]
    return Evaluation(float(np.trace(confusion)) / n, float(loss.sum()) / n, n, confusion,
                      list(labels))


def _index_batches(split, batch_size: int, by_length: bool) -> Iterator[np.ndarray]:
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    if by_length:
        from .data.sequences import batches  # here: slimedge.data imports this module

        yield from batches(split, batch_size)
        return
    n = len(split)
    yield from (np.arange(s, min(n, s + batch_size)) for s in range(0, n, batch_size))


def evaluate(predict: Callable[[np.ndarray, np.ndarray], np.ndarray], split,
             labels: Sequence[str], *, num_classes: int, batch_size: int = EVAL_BATCH_SIZE,
             by_length: bool = True) -> Evaluation:
    """Evaluate a classifier on ``split`` (a :class:`slimedge.data.SequenceData`).

    ``predict(x, lengths)`` gets a zero-padded float32 batch (B, T_max, m) and its lengths (B,)
    and returns the (B, num_classes) logits at each sequence's last frame. Batches hold
    ``batch_size`` sequences: sorted by length (stable) when ``by_length`` (little padding),
    else in index order. Padding cannot change a result; the batch's composition can only where
    ``predict`` itself depends on it (a dynamically quantised ONNX graph)."""
    parts, ys = [], []
    for idx in _index_batches(split, batch_size, by_length):
        x, lengths, y = split.batch(idx)
        logits = np.asarray(predict(x, lengths))
        if logits.shape != (len(idx), num_classes):
            raise UsageError(f"predict returned shape {logits.shape} for a batch of {len(idx)}; "
                             f"expected ({len(idx)}, {num_classes})")
        parts.append(logits.astype(np.float64))
        ys.append(y)
    logits = np.concatenate(parts) if parts else np.zeros((0, num_classes))
    y = np.concatenate(ys) if ys else np.zeros(0, np.int64)
    return from_logits(logits, y, labels)


__all__ = ["Evaluation", "from_logits", "evaluate"]
