"""The front-end stages as PyTorch modules, built from the same spec as :mod:`slimedge.frontend`.

Training and the torch runtime run a model's front-end through these; the spec, the float64
reference and the lowering live in :mod:`slimedge.frontend` (no torch there). A new stage kind is
one module class here, registered in :data:`MODULES` under the kind its spec names.
"""
from __future__ import annotations

import torch
from torch import nn

from ..frontend import Frontend, standardize


class Standardize(nn.Module):
    """(x - mean) / std per feature; the statistics are buffers (set from the training split)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("std", torch.ones(size))

    @torch.no_grad()
    def set_stats(self, mean, std) -> None:
        """Per-feature mean and std (std below ``MIN_STD`` is taken as 1: a constant feature)."""
        mean = torch.as_tensor(mean, dtype=self.mean.dtype).reshape(-1)
        std = torch.as_tensor(std, dtype=self.std.dtype).reshape(-1)
        size = self.mean.numel()
        if mean.numel() != size or std.numel() != size:
            raise ValueError(f"normalisation needs {size} features, got mean {mean.numel()} and "
                             f"std {std.numel()}")
        self.mean.copy_(mean)
        self.std.copy_(torch.where(std < standardize.MIN_STD, torch.ones_like(std), std))

    def fit(self, data) -> None:
        """The statistics of ``data`` (a :class:`~slimedge.data.SequenceData`, its valid frames)."""
        self.set_stats(*data.feature_stats())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def tensors(self) -> dict[str, torch.Tensor]:
        return {standardize.MEAN: self.mean, standardize.STD: self.std}

    @torch.no_grad()
    def load_tensors(self, tensors) -> None:
        self.mean.copy_(torch.as_tensor(tensors[standardize.MEAN]))
        self.std.copy_(torch.as_tensor(tensors[standardize.STD]))


MODULES: dict[str, type[nn.Module]] = {standardize.KIND: Standardize}
"""Stage kind -> its PyTorch module (constructed with the stage's input size)."""


class FrontendModule(nn.Module):
    """A :class:`~slimedge.frontend.Frontend` spec as modules, stage after stage."""

    def __init__(self, spec: Frontend, input_size: int) -> None:
        super().__init__()
        # the spec without parameters (an audio front-end, data only, is kept)
        self.spec = Frontend(tuple(type(s)() for s in spec.stages), spec.audio)
        mods, m = [], int(input_size)
        for s in spec.stages:
            mods.append(MODULES[s.kind](m))
            m = s.output_size(m)
        self.stages = nn.ModuleList(mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for s in self.stages:
            x = s(x)
        return x

    def fit(self, data) -> None:
        """Set every stage's data-derived parameters from the training split ``data`` (stages
        without any have no ``fit``)."""
        for m in self.stages:
            if hasattr(m, "fit"):
                m.fit(data)

    def stage(self, kind: str) -> nn.Module | None:
        """The first stage of ``kind``, or None."""
        return next((m for s, m in zip(self.spec.stages, self.stages) if s.kind == kind), None)

    def config(self) -> dict:
        return self.spec.to_config()

    def tensors(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for m in self.stages:
            out.update(m.tensors())
        return out

    def load_tensors(self, tensors) -> None:
        for m in self.stages:
            m.load_tensors(tensors)


__all__ = ["FrontendModule", "Standardize", "MODULES"]
