"""A folder of WAV clips as a labelled data set: labels, speakers, speaker-disjoint splits, and the
frames an audio front-end makes of each clip.

:func:`scan_wavs` lists the clips of a folder: with a ``labels.csv`` manifest (columns ``path``,
``label`` and optionally ``speaker``; paths relative to the folder), exactly its rows; otherwise
every ``*.wav`` below it, the label being the file name's prefix before the first ``_`` and, for
names shaped like the Free Spoken Digit Dataset's ``{digit}_{speaker}_{index}.wav``, the second
field the speaker and the third the index. :func:`split_clips` divides them:

* ``"random"``: seeded, stratified by label (``val_fraction``, ``test_fraction``);
* ``"speaker"``: the clips of ``test_speakers`` are the test set (no speaker in two sets), the
  validation set a seeded, stratified ``val_fraction`` of the other speakers' clips;
* ``"fsdd"``: the dataset's own rule, index 0-4 test, a stratified ``val_fraction`` of the rest;
* ``"all"``: every clip is the test set (evaluating a model on a folder it was not trained on).

A second folder, ``train_extra``, adds its clips to the training split only, whatever the split:
more voices to learn from (e.g. the synthetic ones :mod:`slimedge.data.tts` makes) that never
enter validation or test. Its labels must be the data's own, and none of its speakers may be a
test speaker.

:func:`clip_frames` runs an audio front-end (:mod:`slimedge.frontend.audio`) over every clip from
a fresh state, exactly as a stream would, into :class:`~slimedge.data.sequences.SequenceData`;
:func:`load_wav_folder` does it all into :class:`~slimedge.data.splits.DataSplits`.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError
from . import augment as augment_mod
from .sequences import SequenceData
from .splits import DataSplits, stratified_split, stratified_subset
from .wav import read_wav

MANIFEST = "labels.csv"
SPLITS = ("random", "speaker", "fsdd", "all")
FSDD_TEST_INDICES = range(5)
COMPILE_FROM_CLIPS = 500  # clips (copies included) from which the compiled front-end is used
_FSDD_NAME = re.compile(r"^([^_]+)_([^_]+)_(\d+)$")


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str
    speaker: str | None = None
    index: int | None = None


def scan_wavs(folder: str | Path) -> list[Clip]:
    """The clips of ``folder`` (its ``labels.csv`` rows, or every WAV file's name), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder of WAV files")
    manifest = folder / MANIFEST
    if manifest.exists():
        return _read_manifest(manifest)
    clips = []
    for p in sorted(folder.rglob("*.wav")):
        label, _, rest = p.stem.partition("_")
        m = _FSDD_NAME.match(p.stem)
        speaker, index = (m.group(2), int(m.group(3))) if m else (rest.split("_")[0] or None, None)
        if not label or not rest:
            raise DataError(f"{p}: no label in its name (expected LABEL_..., e.g. "
                            f"3_jackson_7.wav), and {folder} has no {MANIFEST}")
        clips.append(Clip(p, label, speaker, index))
    if not clips:
        raise DataError(f"{folder}: no .wav files")
    return clips


def _read_manifest(manifest: Path) -> list[Clip]:
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise DataError(f"{manifest}: needs a header with the columns path and label "
                        f"(and optionally speaker)")
    clips = []
    for k, row in enumerate(rows, start=2):
        if not row.get("path") or not row.get("label"):
            raise DataError(f"{manifest}, line {k}: empty path or label")
        m = _FSDD_NAME.match(Path(row["path"]).stem)
        clips.append(Clip(manifest.parent / row["path"], row["label"].strip(),
                          (row.get("speaker") or "").strip() or None,
                          int(m.group(3)) if m else None))
    return clips


def split_clips(clips: Sequence[Clip], split: str = "random", *,
                test_speakers: Sequence[str] = (), val_fraction: float = 0.1,
                test_fraction: float = 0.1, seed: int = 0) -> dict[str, list[Clip]]:
    """{"train", "val", "test"}: lists of clips, by one of :data:`SPLITS`."""
    labels = sorted({c.label for c in clips})
    y = np.array([labels.index(c.label) for c in clips])
    idx = np.arange(len(clips))
    if split == "random":
        va, te, tr = stratified_split(y, [val_fraction, test_fraction], seed)
        return _pick(clips, tr, va, te)
    if split == "all":
        return _pick(clips, [], [], idx)
    if split == "speaker":
        if not test_speakers:
            raise DataError("split 'speaker' needs test_speakers")
        known = {c.speaker for c in clips}
        missing = sorted(set(test_speakers) - known)
        if missing or None in known:
            raise DataError(f"speakers {missing} are not in the data" if missing else
                            "some clips have no speaker (name them {label}_{speaker}_... or "
                            "give a speaker column in labels.csv)")
        test = np.array([c.speaker in set(test_speakers) for c in clips])
    elif split == "fsdd":
        if any(c.index is None for c in clips):
            raise DataError("split 'fsdd' needs FSDD names ({digit}_{speaker}_{index}.wav)")
        test = np.array([c.index in FSDD_TEST_INDICES for c in clips])
    else:
        raise DataError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    rest = idx[~test]
    va, tr = stratified_split(y[rest], [val_fraction], seed)
    return _pick(clips, rest[tr], rest[va], idx[test])


def _pick(clips, tr, va, te) -> dict[str, list[Clip]]:
    return {name: [clips[i] for i in sorted(part)] for name, part in
            (("train", tr), ("val", va), ("test", te))}


def clip_frames(clips: Sequence[Clip], audio, labels: Sequence[str], name: str = "", *,
                augment: dict | None = None, copies: int = 0, seed: int = 0) -> SequenceData:
    """Every clip through the audio front-end ``audio`` from a fresh state (as a stream on the
    device would run it). With an ``augment`` recipe (:mod:`.augment`), ``copies`` augmented
    copies of every clip follow the clean clips, drawn from ``seed``. A clip shorter than one
    frame raises DataError naming it."""
    from ..frontend.audio import as_pcm, features
    recipe = augment_mod.check(augment or {})
    # the compiled integer front-end pays its compilation (seconds) back over many clips only
    compiled = len(clips) * (1 + int(copies)) >= COMPILE_FROM_CLIPS
    frames, lengths, ys = [], [], []
    waves = []
    for c in clips:
        x, _ = read_wav(c.path, sample_rate=audio.sample_rate)
        f = features(audio, x, compiled)
        if len(f) == 0:
            raise DataError(f"{c.path}: {len(x)} samples, shorter than one frame "
                            f"({audio.window_samples} samples)")
        frames.append(f.astype(np.float32))
        lengths.append(len(f))
        ys.append(list(labels).index(c.label))
        waves.append(x)
    if copies and recipe and clips:
        rng = np.random.default_rng([int(seed), 0x4A5D])
        fill = np.concatenate(frames).astype(np.float64).mean(axis=0)
        wave_aug = any(k in recipe for k in augment_mod.WAVEFORM)
        fe_aug = any(k in recipe for k in augment_mod.FRONTEND)
        for _ in range(int(copies)):
            for k, x in enumerate(waves):
                if wave_aug or fe_aug:
                    y = augment_mod.waveform(as_pcm(x, integer=False), recipe, audio.sample_rate,
                                             rng) if wave_aug else x
                    f = features(augment_mod.warp(audio, recipe, rng), y, compiled)
                    if len(f) == 0:  # a copy sped up below one frame: keep the clean frames
                        f = frames[k]
                else:
                    f = frames[k]
                f = augment_mod.frames(f, recipe, fill, rng)
                frames.append(f.astype(np.float32))
                lengths.append(len(f))
                ys.append(ys[k])
    if not frames:
        return SequenceData(np.zeros((0, audio.output_size), np.float32), np.zeros(1, np.int64),
                            np.zeros(0, np.int64), list(labels), name)
    return SequenceData(np.concatenate(frames), np.concatenate([[0], np.cumsum(lengths)]),
                        np.array(ys), list(labels), name)


def _parts(folder, split, test_speakers, val_fraction, test_fraction, seed, limit,
           train_extra=None):
    """(labels, {"train", "val", "test"}: clips), ``limit`` clips per split at most, then the
    clips of ``train_extra`` added to the training split."""
    clips = scan_wavs(folder)
    labels = sorted({c.label for c in clips})
    parts = split_clips(clips, split, test_speakers=test_speakers, val_fraction=val_fraction,
                        test_fraction=test_fraction, seed=seed)
    if limit is not None:
        parts = {k: [v[i] for i in stratified_subset(
            np.array([labels.index(c.label) for c in v]), limit, seed)] for k, v in parts.items()}
    if train_extra:
        parts["train"] = parts["train"] + extra_clips(train_extra, labels, parts, folder)
    return labels, parts


def extra_clips(folder, labels: Sequence[str], parts: dict, data) -> list[Clip]:
    """The clips of ``folder`` for the training split: DataError for a folder that is the data
    folder or inside it (its clips are the data's already), a clip of the data's, a label the
    data does not have, or a speaker of the test set (the split would no longer be
    speaker-disjoint)."""
    here, there = Path(folder).resolve(), Path(data).resolve()
    if here == there or there in here.parents:
        raise DataError(f"{folder}: the extra training clips are the data's own folder or inside "
                        f"it ({data}); keep them in a folder of their own")
    extra = scan_wavs(folder)
    own = {c.path.resolve() for v in parts.values() for c in v}
    both = [c for c in extra if c.path.resolve() in own]
    if both:
        raise DataError(f"{folder}: {len(both)} clips are also the data's, e.g. "
                        f"{both[0].path.name}; extra training clips must be other recordings")
    unknown = sorted({c.label for c in extra} - set(labels))
    if unknown:
        bad = next(c for c in extra if c.label in unknown)
        raise DataError(f"{folder}: labels {unknown} are not the data's (valid: "
                        f"{', '.join(labels)}), e.g. {bad.path.name}")
    shared = sorted({c.speaker for c in extra if c.speaker}
                    & {c.speaker for c in parts["test"] if c.speaker})
    if shared:
        raise DataError(f"{folder}: speakers {shared} are also in the test set; extra training "
                        f"clips must come from other speakers")
    return extra


def split_clips_of(info: dict, name: str) -> list[Clip]:
    """The clips of split ``name`` of the data :func:`load_wav_folder` described in ``info``
    (its ``DataSplits.info``): the same clips, in the same order, as its frames."""
    return _parts(info["path"], info["split"], info["test_speakers"], info["val_fraction"],
                  info["test_fraction"] if info["test_fraction"] is not None else 0.1,
                  info["split_seed"], info["limit"], info.get("train_extra"))[1][name]


def load_wav_folder(folder: str | Path, audio, *, split: str = "random",
                    test_speakers: Sequence[str] = (), val_fraction: float = 0.1,
                    test_fraction: float = 0.1, seed: int = 0,
                    limit: int | None = None, augment: dict | None = None,
                    copies: int = 0, augment_seed: int = 0,
                    train_extra: str | Path | None = None) -> DataSplits:
    """A folder of WAVs as train/val/test frames through ``audio`` (an audio front-end or its
    spec). ``limit`` keeps a seeded, stratified ``limit`` clips per split (quick runs). The
    training split gets the clips of ``train_extra`` (another folder; after ``limit``) and
    ``copies`` augmented copies of each clip (``augment``, a recipe of :mod:`.augment`, drawn from
    ``augment_seed``); validation and test stay clean."""
    from ..frontend.audio import from_config
    if isinstance(audio, dict):
        audio = from_config(audio)
    labels, parts = _parts(folder, split, test_speakers, val_fraction, test_fraction, seed, limit,
                           train_extra)
    data = {k: clip_frames(v, audio, labels, f"{Path(folder).name}/{k}",
                           **({"augment": augment, "copies": copies, "seed": augment_seed}
                              if k == "train" else {}))
            for k, v in parts.items()}
    for k, v in parts.items():
        if not v and split != "all":
            raise DataError(f"{folder}: the {k} split is empty (split {split!r}); use more data "
                            f"or other speakers / fractions")
    info = {"name": Path(folder).name, "path": str(Path(folder).resolve()), "kind": "wav-folder",
            "split": split, "test_speakers": list(test_speakers), "split_seed": int(seed),
            "val_fraction": float(val_fraction),
            "test_fraction": float(test_fraction) if split == "random" else None,
            "limit": limit, "source": str(folder),
            "train_extra": str(Path(train_extra).resolve()) if train_extra else None,
            "frontend": {"audio": audio.to_config()},
            "speakers": {k: sorted({c.speaker for c in v if c.speaker}) for k, v in parts.items()},
            "clips": {k: len(v) for k, v in parts.items()}}
    if copies and augment:
        info["augment"] = {"recipe": augment_mod.check(augment), "copies": int(copies)}
    return DataSplits(Path(folder).name, data["train"], data["val"], data["test"], info)


__all__ = ["Clip", "scan_wavs", "split_clips", "clip_frames", "load_wav_folder", "split_clips_of",
           "SPLITS"]
