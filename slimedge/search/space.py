"""The declared search space: named dimensions, each a list of choices or a numeric range.

A space is JSON-able data (``{"variant": ["LSTM0", "LSTM6"], "hidden_size": [8, 16, 32], ...}``)
and :meth:`SearchSpace.suggest` asks an Optuna trial for one value per dimension. Dimensions:

    variant        catalogue names, aliases, or inline specs ("Mine:i=W,f=W,o=W,c=WUb")
    hidden_size    ints (a list, or {"low": 8, "high": 64, "step": 8})
    num_layers     ints
    constant.G     values of the fixed gate G (f, i, o); used only where the variant fixes G
    frontend.K     values of the audio front-end's field K (window_ms, hop_ms, channels, ...),
                   over the base's front-end (data a folder of WAV files): each value changes
                   the frames the model reads and the front-end the device runs; give choices
                   (the size model is fitted per front-end setting)
    quantize       none | dynamic | int8
    format         c (the only format a device runs) | onnx | tflite (host latency)
    any other name a field of :class:`~slimedge.train_config.TrainConfig` (lr, batch_size,
                   schedule, ...): a new training setting such as a front-end parameter becomes
                   searchable by adding it to TrainConfig, with no change here

A dimension with one choice is a fixed setting (it is still recorded in every trial).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .. import variants
from ..errors import UsageError
from ..train_config import TrainConfig

QUANTIZE = ("none", "dynamic", "int8")
FORMATS = ("c", "onnx", "tflite")
CONSTANT = "constant."
FRONTEND = "frontend."
# what the trial itself settles (everything else is a TrainConfig field)
OWN = ("quantize", "format")


def _train_fields() -> set[str]:
    return {f.name for f in dataclasses.fields(TrainConfig)} - {"constants", "data", "epochs",
                                                                 "seed", "split_seed", "limit",
                                                                 "threads"}


@dataclass(frozen=True)
class Dimension:
    name: str
    choices: tuple | None = None  # categorical
    low: float | None = None      # or a range
    high: float | None = None
    step: float | None = None
    log: bool = False

    def suggest(self, trial) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if all(float(v).is_integer() for v in (self.low, self.high, self.step or 1)):
            return trial.suggest_int(self.name, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step,
                                   log=self.log)

    def values(self) -> list:
        """Every value the dimension can take (a range: its ends; for the size model's grid)."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]

    def to_json(self):
        if self.choices is not None:
            return list(self.choices)
        d = {"low": self.low, "high": self.high}
        d.update({k: v for k, v in (("step", self.step), ("log", self.log)) if v})
        return d


def _dimension(name: str, value: Any) -> Dimension:
    if isinstance(value, Mapping):
        unknown = set(value) - {"low", "high", "step", "log"}
        if unknown or "low" not in value or "high" not in value:
            raise UsageError(f"search space {name!r}: a range is {{\"low\": .., \"high\": .., "
                             f"\"step\": .., \"log\": ..}}, got {json.dumps(value)}")
        low, high = value["low"], value["high"]
        if not (isinstance(low, (int, float)) and isinstance(high, (int, float))
                and math.isfinite(low) and math.isfinite(high) and low <= high):
            raise UsageError(f"search space {name!r}: low <= high, both finite numbers; got "
                             f"{low!r}, {high!r}")
        return Dimension(name, low=low, high=high, step=value.get("step"),
                         log=bool(value.get("log", False)))
    choices = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    if not choices:
        raise UsageError(f"search space {name!r}: no choices")
    if len(set(map(json.dumps, choices))) != len(choices):
        raise UsageError(f"search space {name!r}: a choice is listed twice: {list(choices)}")
    return Dimension(name, choices=choices)


@dataclass(frozen=True)
class SearchSpace:
    dimensions: tuple[Dimension, ...] = field(default_factory=tuple)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SearchSpace":
        dims = tuple(_dimension(str(k), v) for k, v in d.items())
        space = cls(dims)
        space.check()
        return space

    @classmethod
    def from_file(cls, path: str | Path) -> "SearchSpace":
        try:
            d = json.loads(Path(path).read_text())
        except json.JSONDecodeError as e:
            raise UsageError(f"{path}: not JSON ({e})") from None
        if not isinstance(d, dict):
            raise UsageError(f"{path}: a search space is a JSON object of dimensions, got "
                             f"{type(d).__name__}")
        return cls.from_dict(d)

    def to_dict(self) -> dict:
        return {d.name: d.to_json() for d in self.dimensions}

    def get(self, name: str) -> Dimension | None:
        return next((d for d in self.dimensions if d.name == name), None)

    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    def check(self) -> None:
        """Every dimension known and every choice valid, before any trial."""
        fields = _train_fields()
        for d in self.dimensions:
            if d.name.startswith(CONSTANT):
                gate = d.name[len(CONSTANT):]
                if gate not in ("i", "f", "o"):
                    raise UsageError(f"search space {d.name!r}: gates are i, f, o; got {gate!r}")
            elif d.name.startswith(FRONTEND):
                key = d.name[len(FRONTEND):]
                if key not in _frontend_fields():
                    raise UsageError(f"search space {d.name!r}: not a field of an audio "
                                     f"front-end; valid: {', '.join(sorted(_frontend_fields()))}")
            elif d.name not in (*OWN, *fields):
                raise UsageError(f"search space: unknown dimension {d.name!r}; valid: "
                                 f"{', '.join(sorted((*OWN, *fields)))}, constant.f (i, o), "
                                 f"frontend.FIELD")
        for name, valid in (("quantize", QUANTIZE), ("format", FORMATS)):
            d = self.get(name)
            for v in (d.values() if d else ()):
                if v not in valid:
                    raise UsageError(f"search space {name!r}: unknown choice {v!r}; valid: "
                                     f"{', '.join(valid)}")
        for v in (self.get("variant").values() if self.get("variant") else ()):
            spec_of(v)

    def suggest(self, trial) -> dict:
        """One candidate: every dimension's value, as the trial's parameters."""
        return {d.name: d.suggest(trial) for d in self.dimensions}


def _frontend_fields() -> set[str]:
    from ..frontend.audio import AUDIO

    return {f.name for cls in AUDIO.values() for f in dataclasses.fields(cls)} | {"kind"}


def frontend_settings(candidate: Mapping[str, Any]) -> dict:
    """The candidate's front-end fields (``{"hop_ms": 20}`` of ``frontend.hop_ms``)."""
    return {k[len(FRONTEND):]: v for k, v in candidate.items() if k.startswith(FRONTEND)}


def spec_of(variant: Any) -> variants.VariantSpec:
    """The spec of a catalogue name, alias, or inline spec ("Mine:i=W,f=W,o=W,c=WUb")."""
    return variants.parse(variant) if "=" in str(variant) else variants.get(variant)


def train_settings(candidate: Mapping[str, Any], base: Mapping[str, Any]) -> dict:
    """The TrainConfig keyword arguments of ``candidate`` over ``base`` (data, epochs, seed, ...):
    its gate constants kept only where the variant fixes that gate."""
    out = dict(base)
    out.update({k: v for k, v in candidate.items()
                if k not in OWN and not k.startswith((CONSTANT, FRONTEND))})
    fe = frontend_settings(candidate)
    if fe:
        from ..frontend.audio import DEFAULT

        out["audio"] = {**(base.get("audio") or DEFAULT), **fe}
    fixed = spec_of(out.get("variant", TrainConfig.variant)).constants
    out["constants"] = {k[len(CONSTANT):]: float(v) for k, v in candidate.items()
                        if k.startswith(CONSTANT) and k[len(CONSTANT):] in fixed}
    return out


def effective(candidate: Mapping[str, Any]) -> dict:
    """The candidate less the gate constants its variant does not fix (they change nothing)."""
    fixed = spec_of(candidate.get("variant", TrainConfig.variant)).constants
    return {k: v for k, v in candidate.items()
            if not k.startswith(CONSTANT) or k[len(CONSTANT):] in fixed}


def candidate_label(candidate: Mapping[str, Any]) -> str:
    """A short name: ``LSTM6 n=16 L1 f=0.9 int8``."""
    parts = [str(candidate.get("variant", TrainConfig.variant)),
             f"n={candidate.get('hidden_size', TrainConfig.hidden_size)}"]
    if candidate.get("num_layers", 1) != 1:
        parts.append(f"L{candidate['num_layers']}")
    spec = spec_of(candidate.get("variant", TrainConfig.variant))
    parts += [f"{k[len(CONSTANT):]}={v:g}" for k, v in candidate.items()
              if k.startswith(CONSTANT) and k[len(CONSTANT):] in spec.constants]
    parts.append(str(candidate.get("quantize", "none")))
    if candidate.get("format", "c") != "c":
        parts.append(str(candidate["format"]))
    parts += [f"{k.removeprefix(FRONTEND)}={v}" for k, v in candidate.items()
              if k not in ("variant", "hidden_size", "num_layers", *OWN)
              and not k.startswith(CONSTANT)]
    return " ".join(parts)


__all__ = ["SearchSpace", "Dimension", "spec_of", "effective", "train_settings", "candidate_label",
           "frontend_settings", "QUANTIZE", "FORMATS", "FRONTEND"]
