"""The ``torch`` backend: the PyTorch model of a ``.safetensors`` checkpoint, one step per call.

On the CPU the binding's NumPy buffers and the tensors the step reads and writes share memory
(``torch.from_numpy``), so a step copies nothing but its results. On CUDA one step per batch size
is captured in a CUDA graph and replayed (inputs copied in, outputs copied out; the session keeps the
graphs of the ``CACHED_SIZES`` most recently used batch sizes, and a binding keeps its own graph
alive); should capture fail,
the step runs eagerly on the GPU and a warning says so. ``threads`` sets ``torch.set_num_threads``,
which is process-wide in PyTorch.
"""
from __future__ import annotations

import importlib.util
import json
import threading
import warnings
from pathlib import Path

from ...errors import UsageError
from ..binding import Buffers, LruCache, sizes

CACHED_SIZES = 4  # batch sizes whose captured CUDA graph a session keeps ready


def available() -> bool:
    return importlib.util.find_spec("torch") is not None


def open(path: Path, *, threads: int | None = None, device: str | None = None) -> "Session":
    return Session(Path(path), threads, device)


class Session:
    def __init__(self, path: Path, threads: int | None, device: str | None) -> None:
        import torch

        from ... import checkpoint, ir
        from ...models import from_checkpoint

        ckpt = checkpoint.read(path)
        self.config = json.loads(ir.lower(ckpt).metadata_json())
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device not in ("cpu", "cuda"):
            raise UsageError(f"the torch backend runs on 'cpu' or 'cuda', not {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise UsageError("device 'cuda' asked for, but torch sees no CUDA device")
        if threads:
            torch.set_num_threads(int(threads))
        self.device = device
        self.detail = f"torch {torch.__version__} on {device}"
        self._module = from_checkpoint(ckpt).to(device).eval()
        self._graphs = LruCache(CACHED_SIZES)  # batch size -> _CudaGraphStep

    @property
    def torch_module(self):
        """The PyTorch model this session steps."""
        return self._module

    def step(self, x, h, c, y_out, h_out, c_out) -> None:
        """One step on tensors: reads x (B, m), h, c (L, B, n); writes into the *_out tensors.
        The model's own ``step`` (the classifier's, or a bare SlimLSTM's) does the work."""
        y, h2, c2 = self._module.step(x, h, c)
        y_out.copy_(y)
        h_out.copy_(h2)
        c_out.copy_(c2)

    def bind(self, batch: int) -> Buffers:
        dims = sizes(self.config)
        if self.device == "cpu":
            return CpuBinding(self, batch, *dims)
        # one captured graph per recently used batch size, shared by that size's bindings
        captured = self._graphs.get(batch, lambda: _CudaGraphStep(self, batch, *dims))
        return CudaBinding(captured, batch, *dims)


class CpuBinding(Buffers):
    def __init__(self, session: Session, batch: int, *dims: int) -> None:
        import torch

        super().__init__(batch, *dims)
        self._torch = torch
        self._step = session.step
        self._args = [tuple(torch.from_numpy(a) for a in arrays) for arrays in self.arrangements()]

    def run(self) -> None:
        with self._torch.inference_mode():
            self._step(*self._args[self.flipped])


class _CudaGraphStep:
    """Device buffers for one batch size and the step captured over them (or eager, if capture
    is not possible); ``run`` is serialised because the buffers are shared."""

    def __init__(self, session: Session, batch: int, *dims: int) -> None:
        import torch

        host = Buffers(batch, *dims)
        self.bufs = [torch.from_numpy(a).to(session.device) for a in
                     (host.x, host.h, host.c, host.y, host.h_next, host.c_next)]
        self.step = lambda: session.step(*self.bufs)
        self.lock = threading.Lock()
        self.graph = None
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.inference_mode(), torch.cuda.stream(side):
                for _ in range(3):  # warm up kernels and allocator before capture
                    self.step()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.inference_mode(), torch.cuda.graph(graph):
                self.step()
            self.graph = graph
        except RuntimeError as e:  # pragma: no cover - needs a GPU
            warnings.warn(f"CUDA graph capture failed ({e}); stepping eagerly on the GPU",
                          RuntimeWarning, stacklevel=3)

    def run(self, host: list) -> None:  # pragma: no cover - needs a GPU
        import torch

        x, h, c, y, h2, c2 = self.bufs
        with self.lock, torch.inference_mode():
            x.copy_(host[0])
            h.copy_(host[1])
            c.copy_(host[2])
            if self.graph is not None:
                self.graph.replay()
            else:
                self.step()
            host[3].copy_(y)  # device-to-host copies wait for the step
            host[4].copy_(h2)
            host[5].copy_(c2)


class CudaBinding(Buffers):  # pragma: no cover - needs a GPU
    def __init__(self, captured: _CudaGraphStep, batch: int, *dims: int) -> None:
        import torch

        super().__init__(batch, *dims)
        self._captured = captured
        self._host = [[torch.from_numpy(a) for a in arrays] for arrays in self.arrangements()]

    def run(self) -> None:
        self._captured.run(self._host[self.flipped])
