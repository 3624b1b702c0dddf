"""What every audio front-end's spec shares: its JSON form and its framing in samples.

An audio front-end kind is a frozen dataclass of plain fields (int, float, bool, str) that
inherits :class:`AudioSpec`: ``to_config()`` is ``{"kind": KIND, **fields}``; ``from_config``
accepts a subset of the fields (the rest keep their defaults) and raises ValueError for an unknown
field or a value of the wrong type. Frames are ``window_ms`` long every ``hop_ms``, in samples
``ms * sample_rate // 1000``.
"""
from __future__ import annotations

from dataclasses import asdict, fields
from typing import Mapping


class AudioSpec:
    kind: str

    def to_config(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    @classmethod
    def from_config(cls, spec: Mapping):
        types = {f.name: f.type for f in fields(cls)}
        extra = sorted(set(spec) - set(types) - {"kind"})
        if extra:
            raise ValueError(f"unknown fields {extra} for a {cls.kind} front-end; valid: "
                             f"{sorted(types)}")
        values = {k: v for k, v in spec.items() if k != "kind"}
        for k, v in values.items():
            want = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}[
                types[k] if isinstance(types[k], str) else types[k].__name__]
            if not isinstance(v, want) or (isinstance(v, bool) and bool not in want):
                raise ValueError(f"{cls.kind} front-end: {k} must be {types[k]}, got {v!r}")
        return cls(**values)

    @property
    def window_samples(self) -> int:
        return int(self.window_ms * self.sample_rate // 1000)

    @property
    def hop_samples(self) -> int:
        return int(self.hop_ms * self.sample_rate // 1000)


__all__ = ["AudioSpec"]
