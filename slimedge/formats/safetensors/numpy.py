"""The ``numpy`` backend: the step IR's NumPy interpreter on a ``.safetensors`` checkpoint.

No dependency beyond numpy and safetensors. Each step is one :meth:`slimedge.ir.Graph.run` over
the graph lowered once at open (weights cast to float32 once, then reused).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...errors import UsageError
from ..binding import Buffers, sizes


def available() -> bool:
    return True


def open(path: Path, *, threads: int | None = None, device: str | None = None) -> "Session":
    return Session(Path(path), threads, device)


class Session:
    """``threads`` is not used: NumPy's BLAS threads are set by its environment variables."""

    def __init__(self, path: Path, threads: int | None, device: str | None) -> None:
        from ... import ir

        if device not in (None, "cpu"):
            raise UsageError(f"the numpy backend runs on the CPU only, not on {device!r}")
        self.graph = ir.lower(path)  # CheckpointError names a bad file
        self.config = json.loads(self.graph.metadata_json())
        self.device, self.detail = "cpu", f"numpy {np.__version__}"
        self.graph.run({"x": np.zeros((1, self.graph.input_size), np.float32),  # casts weights once
                        "h": np.zeros((self.graph.num_layers, 1, self.graph.hidden_size), np.float32),
                        "c": np.zeros((self.graph.num_layers, 1, self.graph.hidden_size), np.float32)})

    def bind(self, batch: int) -> "Binding":
        return Binding(self.graph, batch, *sizes(self.config))


class Binding(Buffers):
    def __init__(self, graph, batch: int, *dims: int) -> None:
        super().__init__(batch, *dims)
        self._run = graph.run

    def run(self) -> None:
        out = self._run({"x": self.x, "h": self.h, "c": self.c})
        np.copyto(self.y, out["y"])
        np.copyto(self.h_next, out["h_next"])
        np.copyto(self.c_next, out["c_next"])
