"""The generic ``.npz`` format for your own sequences: load_npz, save_npz, and a file's sha256."""
from __future__ import annotations

import hashlib
import zipfile
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from .._io import check_regular_file, npy_header
from ..errors import DataError
from ..formats import LIMITS
from .sequences import SequenceData
from .splits import (
    DEFAULT_TEST_FRACTION,
    DEFAULT_VAL_FRACTION,
    SPLITS,
    DataSplits,
    make_splits,
    stratified_subset,
)


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
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such data file")
    check_regular_file(path, "data file")  # a FIFO would block the read forever
    _check_members(path)  # before NumPy allocates what a header claims
    try:
        f = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}: {e}); save it "
                        f"with numpy.savez (see the README)") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: a single .npy array, not a .npz archive of X, y (and lengths); "
                        f"save it with numpy.savez")
    with f:
        keys = set(f.files)
        missing = {"X", "y"} - keys
        if missing:
            raise DataError(f"{path}: missing array(s) {', '.join(sorted(missing))}; the .npz "
                             f"needs X, y and, for packed frames, lengths (see the README)")
        try:
            X, y = f["X"], f["y"]
            lengths = f["lengths"] if "lengths" in keys else None
            labels = [str(s) for s in f["labels"]] if "labels" in keys else None
            split = np.asarray(f["split"]).astype(str) if "split" in keys else None
        except ValueError as e:  # object arrays would need pickle
            raise DataError(f"{path}: {e} (store strings as fixed-width unicode arrays)") from None
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error, MemoryError) as e:
            raise DataError(f"{path}: a damaged .npz archive ({type(e).__name__}: {e}); write "
                            f"it again") from None
    name = path.name
    if not np.issubdtype(X.dtype, np.number) or X.dtype.kind == "c":
        raise DataError(f"{path}: X must be a real numeric array, got dtype {X.dtype}")
    y = np.asarray(y).reshape(-1)
    if X.ndim == 3:
        N, T, m = X.shape
        lengths = np.full(N, T) if lengths is None else _int_lengths(path, lengths)
        if len(lengths) != N or np.any(lengths < 1) or np.any(lengths > T):
            raise DataError(f"{path}: lengths must be (N,) = ({N},) with values in [1, {T}]")
        keep = (np.arange(T)[None, :] < lengths[:, None]).reshape(-1)
        frames = X.reshape(N * T, m)[keep]
    elif X.ndim == 2:
        if lengths is None:
            raise DataError(f"{path}: X is 2-D (total_frames, m), so 'lengths' (N,) is required")
        lengths = _int_lengths(path, lengths)
        if np.any(lengths < 1) or lengths.sum() != len(X):
            raise DataError(f"{path}: lengths must be positive and sum to X's {len(X)} frames, "
                             f"got sum {int(lengths.sum())}")
        frames = X
    else:
        raise DataError(f"{path}: X must be (total_frames, m) or (N, T, m), got shape {X.shape}")
    if len(y) != len(lengths):
        raise DataError(f"{path}: y has {len(y)} entries for {len(lengths)} sequences")
    if y.dtype.kind in "US":
        names = sorted(set(y.astype(str)))
        if labels is not None and set(labels) != set(names):
            raise DataError(f"{path}: y's class names differ from 'labels'")
        labels = labels or names
        index = {name: i for i, name in enumerate(labels)}  # one look-up per y, not a scan
        y = np.array([index[s] for s in y.astype(str)], dtype=np.int64)
    elif y.dtype.kind in "iu":
        y = y.astype(np.int64)
        k = int(y.max()) + 1 if len(y) else 0
        if k > LIMITS["classes"]:  # labels "0".."k-1" would be made for every index up to it
            raise DataError(f"{path}: y holds the class index {k - 1:,}, over slimedge's limit of "
                            f"{LIMITS['classes']:,} classes; number the classes 0..K-1")
        if labels is None:
            labels = [str(j) for j in range(k)]
        if y.min() < 0 or k > len(labels):
            raise DataError(f"{path}: y must hold class indices in [0, {len(labels) - 1}]")
    else:
        raise DataError(f"{path}: y must hold integer class indices or strings, got {y.dtype}")
    if len(labels) < 2:
        raise DataError(f"{path}: at least 2 classes are needed, got {len(labels)}")
    if not np.all(np.isfinite(frames)):
        raise DataError(f"{path}: X holds NaN or infinite values")
    data = SequenceData(np.ascontiguousarray(frames), np.concatenate([[0], np.cumsum(lengths)]),
                        y, labels, name)
    source = f"{path} (.npz)"
    # where the file is and what it held, so a model's test split is found again (and a different
    # file of the same name is not silently taken for it)
    where = {"path": str(path.resolve()), "sha256": sha256(path)}
    if split is None:
        splits = make_splits(name, data, split_seed=split_seed, val_fraction=val_fraction,
                             test_fraction=test_fraction, limit=limit, source=source,
                             split_note="seeded stratified split by class")
        splits.info.update(where)
        return splits
    split = split.reshape(-1)
    bad = set(split) - set(SPLITS)
    if len(split) != len(y) or bad:
        raise DataError(f"{path}: 'split' must be (N,) strings among {SPLITS}"
                         + (f", got {sorted(bad)}" if bad else ""))
    parts = [data.subset(np.flatnonzero(split == s)) for s in SPLITS]
    if limit is not None:
        parts = [d.subset(stratified_subset(d.y, limit, split_seed + 1)) for d in parts]
    for s, d in zip(SPLITS, parts):
        d.name = f"{name}:{s}"
        if not len(d):
            raise DataError(f"{path}: the fixed split has no '{s}' sequences")
    info = {"name": name, "source": source, "split_seed": int(split_seed), "val_fraction": None,
            "test_fraction": None, "limit": limit, "split": "fixed by the file's 'split' array",
            **where}
    return DataSplits(name, *parts, info)


def _check_members(path: Path) -> None:
    """Every member's .npy header against its size in the archive: a forged header (an array
    of terabytes) or a damaged archive is a DataError naming the file, before any allocation."""
    try:
        with zipfile.ZipFile(path) as z:
            members = z.infolist()
            if len(members) > LIMITS["npz_members"]:
                raise DataError(f"{path}: {len(members):,} members in the archive, more than the "
                                f"{LIMITS['npz_members']} a data file may hold")
            total = sum(i.file_size for i in members)
            if total > LIMITS["npz_bytes"]:
                raise DataError(f"{path}: its arrays decompress to {total:,} bytes, more than the "
                                f"{LIMITS['npz_bytes']:,} a data file may hold")
            for info in members:
                if info.file_size > 16 << 20 and \
                        info.file_size > LIMITS["npz_ratio"] * max(info.compress_size, 1):
                    raise DataError(f"{path}: array {info.filename!r} decompresses to "
                                    f"{info.file_size:,} bytes from {info.compress_size:,} (more "
                                    f"than {LIMITS['npz_ratio']}:1: a zip bomb?); save real data "
                                    f"with numpy.savez or savez_compressed")
            for info in members:
                if not info.filename.endswith(".npy"):
                    continue
                with z.open(info) as member:
                    try:
                        npy_header(member, f"{path}: array {info.filename[:-4]!r}", info.file_size)
                    except ValueError as e:
                        raise DataError(str(e)) from None
    except DataError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}: {e}); an empty, "
                        f"truncated or damaged archive? save it with numpy.savez") from None


def _int_lengths(path: Path, lengths) -> np.ndarray:
    lengths = np.asarray(lengths).reshape(-1)
    if lengths.dtype.kind not in "iu":
        raise DataError(f"{path}: lengths must be integers, got dtype {lengths.dtype}")
    return lengths.astype(np.int64)


def sha256(path: Path) -> str:
    """The file's SHA-256 as hex, read in 1 MiB blocks."""
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

