"""The checkpoint format (``.safetensors``, what training writes): its row, stepped by the ``numpy``
backend (the step IR's NumPy interpreter) or the ``torch`` backend (the PyTorch model)."""
from __future__ import annotations

from ..table import Backend, Format


def read_config(path) -> dict:
    from ... import checkpoint

    return checkpoint.read_config(path)


def _numpy():
    from . import numpy

    return numpy


def _torch():
    from . import torch

    return torch


FORMAT = Format(
    "safetensors", ".safetensors", read_config,
    runtimes=(Backend("numpy", _numpy, extra="checkpoint", requires=("safetensors",),
                      summary="the step IR's NumPy interpreter, nothing beyond numpy"),
              Backend("torch", _torch, extra="torch", requires=("torch", "safetensors"),
                      summary="the PyTorch model; on CUDA the step replays a CUDA graph")),
    summary="a slimedge checkpoint (weights + config), what training writes")

__all__ = ["FORMAT", "read_config"]
