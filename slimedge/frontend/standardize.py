"""The standardisation stage: (x - mean) / std per feature, learned from the training split.

Spec ``{"kind": "standardize"}``; parameters: the checkpoint tensors ``norm.mean`` and ``norm.std``
(m,) (the names checkpoints have always used). The reference and every lowering compute it as
x·s + t with s = 1/std and t = -mean/std (float64 constants, cast by each format). Its lowering
rule for float files: :meth:`Standardize.fold` moves it into the matmuls that read its output,
W·diag(s) and b + W·t, where that is exact enough (:data:`FOLD_MAX_SHIFT`). A file whose input is
integer leaves the stage to its reader and records s and t under
``export.io_quantization.x.normalization`` (:meth:`Standardize.companion`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

KIND = "standardize"
MEAN, STD = "norm.mean", "norm.std"
MIN_STD = 1e-6  # the smallest std training stores (a constant feature gets 1): 1/std fits float32
MAX_MEAN = 1e30  # |mean| above this is no data set's (a corrupted file)
COMPANION_KEY = "normalization"  # its entry in an integer-I/O file's io_quantization.x

# Folding is skipped when some feature's shift |mean/std| exceeds this: raw inputs then sit far
# from zero against their spread (an offset such as temperatures in kelvin), so W'·x and the folded
# bias are large numbers that nearly cancel and float32 loses the digits the unfolded graph keeps
# (mean 1000, std 1: 4.6e-5 per-step error folded against 1.1e-7 unfolded).
FOLD_MAX_SHIFT = 8.0


@dataclass(frozen=True, eq=False)
class Standardize:
    """x·s + t per feature; ``mean`` and ``std`` are None in a spec without its parameters."""

    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    kind = KIND
    description = "input normalisation (x*s + t)"
    # tensors in the raw data's units: no weight limit applies (a std of 1e9, timestamps, is a real
    # feature's; its inverse only gets smaller, and the tensors are checked finite)
    unbounded = (MEAN, STD)

    # ---- the spec ------------------------------------------------------------------------------
    def to_config(self) -> dict:
        return {"kind": KIND}

    @classmethod
    def from_config(cls, spec: Mapping) -> "Standardize":
        extra = sorted(set(spec) - {"kind"})
        if extra:
            raise ValueError(f"unknown fields {extra} for a {KIND} stage")
        return cls()

    def output_size(self, input_size: int) -> int:
        return input_size

    def tensor_shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        return {MEAN: (input_size,), STD: (input_size,)}

    def neutral_tensors(self, input_size: int) -> dict[str, np.ndarray]:
        return {MEAN: np.zeros(input_size), STD: np.ones(input_size)}

    def check(self, tensors: Mapping[str, np.ndarray]) -> None:
        """ValueError when the parameters cannot be a training split's statistics."""
        std, mean = tensors[STD], tensors[MEAN]
        if not (std >= MIN_STD).all():
            raise ValueError(f"tensor {STD} must be positive, at least {MIN_STD:g} (training "
                             f"stores 1 for a constant feature); got {float(std.min()):.3g}, whose "
                             f"inverse overflows float32 or turns every output NaN")
        if float(np.abs(mean).max(initial=0)) > MAX_MEAN:
            raise ValueError(f"tensor {MEAN} holds values over {MAX_MEAN:g} (corrupted?)")

    def bind(self, tensors: Mapping[str, np.ndarray]) -> "Standardize":
        return Standardize(np.asarray(tensors[MEAN], np.float64), np.asarray(tensors[STD], np.float64))

    # ---- the reference -------------------------------------------------------------------------
    @property
    def scale(self) -> np.ndarray:
        return 1.0 / self.std

    @property
    def shift(self) -> np.ndarray:
        return -self.mean / self.std

    def reference(self, x: np.ndarray) -> np.ndarray:
        """float64 x·s + t over the last axis."""
        return np.asarray(x, np.float64) * self.scale + self.shift

    def typical_input(self, z: np.ndarray) -> np.ndarray:
        """Raw frames whose standardised values are ``z``: the training data's scale."""
        return np.asarray(z, np.float64) * self.std + self.mean

    # ---- lowering ------------------------------------------------------------------------------
    def lower(self, bld, x: str) -> str:
        """x·s + t as IR ``mul`` and ``add`` (role "frontend"); returns the output value."""
        shape = bld.g.shapes[x]
        tag = {"role": "frontend", "stage": KIND}
        s = bld.const("norm.scale", self.scale)
        t = bld.const("norm.shift", self.shift)
        x = bld.node("mul", [x, s], "norm.scaled", shape, **tag)
        return bld.node("add", [x, t], "x_norm", shape, **tag)

    @staticmethod
    def fold(g) -> None:
        """Fold this stage's x·s + t into the matmuls that read its result (in place).

        Each ``matmul(x·s + t, W[, b])`` becomes ``matmul(x, W', b')`` with W' = W·diag(s) and
        b' = b + W·t (a matmul without bias gets one). W' keeps W's role, so parameter and MAC
        counts are unchanged; a bias created here is a derived constant (no role), like s and t
        were. Nothing changes when the result feeds anything else or a shift exceeds
        :data:`FOLD_MAX_SHIFT`."""
        nodes = [nd for nd in g.nodes if nd.attrs.get("stage") == KIND]
        if len(nodes) != 2:
            return
        mul, add = nodes
        scale, shift, out = mul.inputs[1], add.inputs[1], add.outputs[0]
        if mul.op != "mul" or add.op != "add" or add.inputs[0] != mul.outputs[0]:
            return
        readers = [nd for nd in g.nodes if out in nd.inputs]
        if not readers or any(nd.op != "matmul" or nd.inputs.index(out) != 0
                              or out in nd.inputs[1:] for nd in readers):
            return
        s, t = g.initializers[scale], g.initializers[shift]
        if np.abs(t).max() > FOLD_MAX_SHIFT:
            return
        for nd in readers:
            w, *bias = nd.inputs[1:]
            W = g.initializers[w]
            g.initializers[w] = W * s
            shifted = W @ t
            if bias:
                g.initializers[bias[0]] = g.initializers[bias[0]] + shifted
            else:
                bias = [_fresh(g, f"{w}.norm_bias")]
                g.initializers[bias[0]] = shifted
            nd.inputs = (mul.inputs[0], w, bias[0])
        g.nodes = [nd for nd in g.nodes if nd is not mul and nd is not add]
        for k in (scale, shift):
            g.initializers.pop(k)
            g.param_roles.pop(k, None)
        for v in (*mul.outputs, out):
            g.shapes.pop(v)

    # ---- outside a file's graph ------------------------------------------------------------------
    def companion(self) -> dict:
        """What an integer-input file records for its reader: s and t in float32."""
        m = self.mean.shape[0]
        s, t = (np.broadcast_to(np.asarray(v, np.float32), (m,)) for v in (self.scale, self.shift))
        return {COMPANION_KEY: {"scale": [float(v) for v in s], "shift": [float(v) for v in t]}}

    @staticmethod
    def from_companion(record: Mapping) -> Callable[[np.ndarray], np.ndarray] | None:
        """The float32 x·s + t an integer-input file's reader applies before quantising x."""
        norm = record.get(COMPANION_KEY)
        if not norm:
            return None
        s, t = np.asarray(norm["scale"], np.float32), np.asarray(norm["shift"], np.float32)
        return lambda x: np.asarray(x, np.float32) * s + t


def _fresh(g, stem: str) -> str:
    name, k = stem, 1
    while name in g.initializers or name in g.shapes:
        k += 1
        name = f"{stem}_{k}"
    return name


def legacy(config: Mapping) -> list[dict]:
    """The stages of a config written before front-ends were data: ``normalization`` {"kind":
    "standard"} (with tensors norm.mean and norm.std) is this stage."""
    return [{"kind": KIND}] if config.get("normalization") else []


__all__ = ["Standardize", "KIND", "MIN_STD", "FOLD_MAX_SHIFT", "legacy"]
