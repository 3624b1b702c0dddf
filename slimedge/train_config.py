"""What a training run depends on: :class:`TrainConfig`, JSON-able, stored in the run's log and
checkpoints, and checked in full when it is made (before any data is read).

This module imports no torch: a config can be built, checked and stored anywhere
(``slimedge.TrainConfig``); :func:`slimedge.train.train` runs it.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from . import formats, variants
from .data.splits import DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION
from .errors import UsageError
from .variants import ACTIVATIONS, GATE_ACTIVATIONS, INITS

SCHEDULES = ("constant", "cosine")
"""Learning-rate schedules: constant, or cosine from ``lr`` down to 0 over the epochs."""
SELECTS = ("val", "last")
"""Which epoch's weights a run keeps: the best on validation (accuracy, ties to the lower loss),
or the last (with a schedule that ends at a low rate; validation still reported each epoch)."""


@dataclass
class TrainConfig:
    """Everything a run depends on (JSON-able; stored in the log and the checkpoints)."""

    # a catalogue name or alias, a registered name, or a VariantSpec (slimedge.variants.define);
    # a variant outside the catalogue is kept as its spec, so its structure travels in to_dict()
    variant: "str | variants.VariantSpec" = "LSTM6"
    data: str = "fsdd"
    hidden_size: int = 64
    num_layers: int = 1
    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-3
    schedule: str = "constant"
    clip: float = 1.0
    dropout: float = 0.0
    label_smoothing: float = 0.0  # cross-entropy's targets: 1 - ls on the label, ls spread evenly
    # beside the last step's loss, this weight times the mean cross-entropy of the label at every
    # step from this fraction of each sequence on (0: the last step's alone)
    frame_loss: float = 0.0
    frame_loss_from: float = 0.5
    select: str = "val"  # the kept epoch: SELECTS
    seed: int = 0
    split_seed: int = 0
    val_fraction: float = DEFAULT_VAL_FRACTION
    test_fraction: float = DEFAULT_TEST_FRACTION
    limit: int | None = None
    gate_activation: str = "sigmoid"
    activation: str = "tanh"
    constants: dict[str, float] = field(default_factory=dict)
    init: str = "pytorch"
    forget_bias: float | None = None  # b_f's initial value where the variant learns one
    input_only_cell: bool = False
    threads: int = 1
    flush_denormals: bool = False
    # a folder of WAV files (``data`` a directory): the audio front-end's spec (None: the default,
    # slimedge.frontend.audio.DEFAULT), how the folder is split, and the training augmentations
    audio: dict | None = None
    split: str = "random"
    test_speakers: list[str] = field(default_factory=list)
    augment: dict = field(default_factory=dict)
    augment_copies: int = 0
    # another folder of WAV clips for the training split only (e.g. slimedge.data.tts's voices)
    train_extra: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.variant, Mapping):  # a spec's config, as to_dict() stores one
            self.variant = variants.from_config(self.variant)
        if isinstance(self.variant, variants.VariantSpec):
            if variants.VARIANTS.get(self.variant.name) == self.variant:  # a catalogue row as is
                self.variant = self.variant.name
        elif "=" in str(self.variant):  # written inline: "Mine:i=W,f=W,o=W,c=WUb"
            self.variant = variants.parse(self.variant)
        else:
            self.variant = variants.canonical_name(self.variant)
            if self.variant not in variants.VARIANTS:  # registered: keep the structure itself
                self.variant = variants.get(self.variant)
        self.constants = {str(k): float(v) for k, v in (self.constants or {}).items()}
        for name, value, low in (("hidden size", self.hidden_size, 1), ("layers", self.num_layers, 1),
                                 ("epochs", self.epochs, 1), ("batch size", self.batch_size, 1),
                                 ("threads", self.threads, 1)):
            if int(value) < low:
                raise UsageError(f"{name} must be at least {low}, got {value}")
        # stated caps, before anything is allocated (formats.LIMITS: what a model file may hold)
        for name, value, cap in (("hidden size", self.hidden_size, formats.LIMITS["hidden_size"]),
                                 ("layers", self.num_layers, formats.LIMITS["num_layers"]),
                                 ("threads", self.threads, formats.LIMITS["threads"])):
            if int(value) > cap:
                raise UsageError(f"{name} is {int(value):,}, over slimedge's limit of {cap:,}")
        # every float setting a finite number (NaN passes any comparison test), before any data
        for name, value in (("learning rate", self.lr), ("gradient clip", self.clip),
                            ("dropout", self.dropout), ("label smoothing", self.label_smoothing),
                            ("frame loss", self.frame_loss),
                            ("frame loss start", self.frame_loss_from),
                            ("val fraction", self.val_fraction),
                            ("test fraction", self.test_fraction),
                            *((f"gate constant {k}", v) for k, v in self.constants.items()),
                            *((("forget bias", self.forget_bias),)
                              if self.forget_bias is not None else ())):
            try:
                finite = math.isfinite(float(value))
            except (TypeError, ValueError):
                finite = False
            if not finite:
                raise UsageError(f"{name} must be a finite number, got {value!r}")
        if self.forget_bias is not None:
            self.forget_bias = float(self.forget_bias)
        if not self.lr > 0:
            raise UsageError(f"learning rate must be positive, got {self.lr}")
        if self.clip < 0:
            raise UsageError(f"gradient clip must be >= 0 (0 = off), got {self.clip}")
        if not 0 <= self.dropout < 1:
            raise UsageError(f"dropout must lie in [0, 1), got {self.dropout}")
        if not 0 <= self.label_smoothing < 1:
            raise UsageError(f"label smoothing must lie in [0, 1), got {self.label_smoothing}")
        if self.frame_loss < 0:
            raise UsageError(f"frame loss must be >= 0 (0 = off), got {self.frame_loss}")
        if not 0 <= self.frame_loss_from < 1:
            raise UsageError(f"frame loss start must lie in [0, 1), got {self.frame_loss_from}")
        if self.schedule not in SCHEDULES:
            raise UsageError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.select not in SELECTS:
            raise UsageError(f"unknown epoch selection {self.select!r}; valid: "
                             f"{', '.join(SELECTS)}")
        # fail on bad choices and constants before any data is read
        for what, value, valid in (("gate activation", self.gate_activation, GATE_ACTIVATIONS),
                                   ("activation", self.activation, ACTIVATIONS),
                                   ("init", self.init, INITS)):
            if value not in valid:
                raise UsageError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
        variants.get(self.variant, constants=self.constants, input_only_cell=self.input_only_cell)
        self._check_audio()

    def _check_audio(self) -> None:
        """The WAV-folder settings: a known front-end, split and augmentations; none of them
        for a data set of frames."""
        from .data import augment
        from .data.audio import SPLITS as WAV_SPLITS
        from .frontend import audio

        self.test_speakers = [str(s) for s in (self.test_speakers or [])]
        if self.test_speakers and self.split == "random":
            self.split = "speaker"  # --test-speakers alone says how to split
        if self.split not in WAV_SPLITS or self.split == "all":
            raise UsageError(f"a training split must be one of random, speaker, fsdd; got "
                             f"{self.split!r}")
        if self.split == "speaker" and not self.test_speakers:
            raise UsageError("a speaker split needs the test speakers (--test-speakers a,b)")
        self.augment = augment.check(self.augment)
        if int(self.augment_copies) < 0:
            raise UsageError(f"augment copies must be >= 0, got {self.augment_copies}")
        if not self.augment_copies and any(k not in augment.EPOCH for k in self.augment):
            self.augment_copies = augment.DEFAULT_COPIES  # per-epoch ones alone: no copies
        folder = isinstance(self.data, (str, os.PathLike)) and Path(self.data).is_dir()
        if not folder:
            given = [what for what, v in (("an audio front-end", self.audio),
                                          ("a split other than random", self.split != "random"),
                                          ("augmentations", self.augment),
                                          ("extra training clips", self.train_extra)) if v]
            if given:
                raise UsageError(f"{', '.join(given)} apply to a folder of WAV files; "
                                 f"{self.data} is not one")
            return
        if self.train_extra is not None:
            self.train_extra = str(self.train_extra)
            if not Path(self.train_extra).is_dir():
                raise UsageError(f"extra training clips: {self.train_extra} is not a folder")
        try:
            self.audio = audio.from_config(self.audio or audio.DEFAULT).to_config()
        except ValueError as e:
            raise UsageError(f"audio front-end: {e}") from None

    def to_dict(self) -> dict:
        d = {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)
             if f.name != "variant"}
        spec = isinstance(self.variant, variants.VariantSpec)
        return {"variant": self.variant.to_config() if spec else self.variant, **d}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def lr_at(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (0-based): a pure function, so resume needs no
        scheduler state."""
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / self.epochs))
        return self.lr


__all__ = ["TrainConfig", "SCHEDULES"]


# ---- a run's files ---------------------------------------------------------------------------
def side_paths(output: str | os.PathLike) -> tuple[Path, Path, Path]:
    """(best checkpoint, training state, JSON log) for an output path."""
    out, suffix = Path(output), formats.CHECKPOINT.suffix
    stem = out.name[:-len(suffix)] if out.name.endswith(suffix) else out.name
    return out, out.with_name(f"{stem}.state{suffix}"), out.with_name(stem + ".log.json")


def check_new_run(output: str | os.PathLike, resume: bool, overwrite: bool,
                  flags: tuple[str, str] = ("resume=True", "overwrite=True")) -> None:
    """Refuse to start a run over another one's files unless asked to: ``resume`` continues it,
    ``overwrite`` starts over (``flags``: how the caller spells the two, e.g. the CLI's)."""
    if resume and overwrite:
        raise UsageError(f"{flags[0]} continues the run at {output} and {flags[1]} replaces it: "
                         f"give one of them")
    if resume or overwrite:
        return
    there = [p.name for p in side_paths(output) if p.is_file()]
    if there:
        raise UsageError(f"{output}: a run is there already ({', '.join(there)}); continue it with "
                         f"{flags[0]}, replace it with {flags[1]}, or choose another output")

