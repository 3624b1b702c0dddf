"""Checkpoints: one ``.safetensors`` file, the model's JSON config in its header metadata.

Layout (all tensors float32, under the papers' names):

    layers.<k>.<term>_<slot>   e.g. ``layers.0.W_c``, ``layers.1.u_i``   (one per term of layer k)
    head.weight, head.bias     a linear head, when the model has one
    norm.mean, norm.std        the front-end's tensors, as its stages name them (the
                               standardisation learned from the training split)

Header metadata key ``slimedge`` holds the config: ``{"format": "slimedge/1", "kind": ...,
"lstm": {variant, input_size, hidden_size, num_layers, gate_activation, activation, dropout},
"frontend": {"stages": [...]}, ...}`` (:mod:`slimedge.frontend`; an older file's
``normalization`` field reads as the standardisation stage); models with a head add their own
keys. :func:`read` and :func:`write` need only numpy and
safetensors (no torch), so exporters and the runtime can use them; :func:`save` and :func:`load`
work with PyTorch modules. Nothing is ever unpickled.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from . import activations, extras, frontend, integrity
from ._io import atomic_path
from .errors import CheckpointError, ModelFileError
from .formats import METADATA_KEY, ModelInfo, parse_json

WEIGHT_LIMIT = 1e6  # |weight| above this is no trained model's, and overflows float32 logits

FORMAT = "slimedge/1"


@dataclass
class Checkpoint:
    """A checkpoint's config and tensors as NumPy arrays (no torch needed)."""

    config: dict
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    path: Path | None = None

    @property
    def kind(self) -> str:
        return self.config.get("kind", "slim_lstm")

    @property
    def lstm(self) -> dict:
        return self.config["lstm"]

    def layer_terms(self, k: int) -> dict[str, np.ndarray]:
        """Layer k's weights under the papers' names (``W_c``, ``u_i``, ...)."""
        prefix = f"layers.{k}."
        return {name[len(prefix):]: t for name, t in self.tensors.items() if name.startswith(prefix)}


def write(path: str | os.PathLike, config: Mapping[str, Any],
          tensors: Mapping[str, np.ndarray]) -> Path:
    """Write atomically: a temporary file beside ``path``, then a rename. The file is sealed with
    its integrity digest (:mod:`slimedge.integrity`), checked when it is read."""
    extras.require("checkpoint", f"writing the checkpoint {path}", "safetensors")
    from safetensors import SafetensorError
    from safetensors.numpy import save_file

    config = {"format": FORMAT, **config, integrity.KEY: integrity.PLACEHOLDER}
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        try:
            save_file(arrays, str(tmp), metadata={METADATA_KEY: integrity.dumps(config)})
        except SafetensorError as e:  # a full disk, a vanished folder: the OS's error, named
            raise OSError(f"{path}: cannot write the checkpoint ({e})") from None
        integrity.seal(tmp)
    return Path(path)


def read_config(path: str | os.PathLike) -> dict:
    """The config in a checkpoint's header, without reading its tensors (CheckpointError when the
    file is missing, truncated, foreign or not a slimedge checkpoint)."""
    return _read(Path(path), tensors=False).config


def read(path: str | os.PathLike, *, verify: bool = True) -> Checkpoint:
    """Read a checkpoint without torch; a missing, truncated or foreign file raises CheckpointError,
    a corrupted one (its integrity digest does not match) IntegrityError unless ``verify=False``."""
    ckpt = _read(Path(path), tensors=True)  # a truncated or foreign file is named as such
    if verify:
        integrity.verify(path)
    _check(ckpt)
    return ckpt


def _read(path: Path, *, tensors: bool) -> Checkpoint:
    extras.require("checkpoint", f"reading the checkpoint {path}", "safetensors")
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}
    except MemoryError:
        raise CheckpointError(f"{path}: its header claims tensors larger than memory "
                              f"(forged or corrupted)") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable .safetensors checkpoint "
                              f"(truncated or another kind of file): {e}") from None
    if METADATA_KEY not in meta:
        raise CheckpointError(f"{path}: a .safetensors file, but not a slimedge checkpoint "
                              f"(no '{METADATA_KEY}' entry in its header metadata)")
    try:
        config = parse_json(meta[METADATA_KEY], path)
    except ModelFileError as e:
        if "not a JSON object" in str(e):
            got = type(json.loads(meta[METADATA_KEY])).__name__
            raise CheckpointError(f"{path}: unsupported checkpoint format {got!r} (expected "
                                  f"{FORMAT!r} with an 'lstm' section)") from None
        raise CheckpointError(str(e)) from None
    if config.get("format") != FORMAT or not isinstance(config.get("lstm"), dict):
        raise CheckpointError(f"{path}: unsupported checkpoint format {config.get('format')!r} "
                              f"(expected {FORMAT!r} with an 'lstm' section)")
    config.pop(integrity.KEY, None)  # the file's digest, not the model's: checked by read()
    try:
        ModelInfo.from_config(config, path=path)  # the schema: types, sizes, strings
    except ModelFileError as e:
        raise CheckpointError(str(e)) from None
    return Checkpoint(config=config, tensors=arrays, path=path)


KINDS = ("slim_lstm", "classifier")  # slim_lstm: layers only; classifier: + head and front-end
TRAINING_STATE_PREFIX = "optim."     # Adam's moments in a resumable training state


def _check(ckpt: Checkpoint) -> None:
    """The config is one slimedge can build, and the tensors are exactly the ones it names, in the
    spec's shapes, all finite (std positive)."""
    from . import variants

    where = ckpt.path
    try:
        ModelInfo.from_config(ckpt.config, path=where)  # the schema (a Checkpoint made in memory)
    except ModelFileError as e:
        raise CheckpointError(str(e)) from None
    cfg = ckpt.lstm
    try:
        spec = variants.from_config(cfg["variant"])
        n, layers = int(cfg["hidden_size"]), int(cfg.get("num_layers", 1))
        m0 = int(cfg["input_size"])
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{where}: bad 'lstm' config: {e}") from None
    if min(n, layers, m0) < 1:
        raise CheckpointError(f"{where}: input_size, hidden_size and num_layers must be at least 1, "
                              f"got {m0}, {n}, {layers}")
    for key, valid, default in (("gate_activation", activations.gate_activations(), "sigmoid"),
                                ("activation", activations.cell_activations(), "tanh")):
        if cfg.get(key, default) not in valid:
            raise CheckpointError(f"{where}: unknown {key} {cfg.get(key)!r}; valid: {', '.join(valid)}")
    kind = ckpt.kind
    if kind not in KINDS:
        raise CheckpointError(f"{where}: unknown model kind {kind!r}; valid: {', '.join(KINDS)}")
    expected = {}
    if kind == "classifier":
        try:
            k_out = int(ckpt.config["head"]["num_classes"])
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"{where}: a classifier needs head.num_classes in its config: "
                                  f"{e!r}") from None
        expected = {"head.weight": (k_out, n), "head.bias": (k_out,)}
    fe = frontend.Frontend.from_config(ckpt.config)  # ModelInfo checked the section
    if fe.audio is not None and fe.audio.output_size != m0:
        raise CheckpointError(f"{where}: its audio front-end makes {fe.audio.output_size} "
                              f"features per frame, the model reads {m0}")
    fe_tensors = fe.tensor_shapes(m0)
    expected.update(fe_tensors)
    for name, shape in expected.items():
        if name not in ckpt.tensors:
            raise CheckpointError(f"{where}: tensor {name} is missing (a {kind} needs it)")
        if tuple(ckpt.tensors[name].shape) != shape:
            raise CheckpointError(f"{where}: tensor {name} has shape "
                                  f"{tuple(ckpt.tensors[name].shape)}, expected {shape}")
    extra = [t for t in ckpt.tensors if not t.startswith(("layers.", TRAINING_STATE_PREFIX))
             and t not in expected]
    if extra:
        raise CheckpointError(f"{where}: unexpected tensors {sorted(extra)} for a {kind}")
    for name, t in ckpt.tensors.items():
        if not np.isfinite(t).all():
            raise CheckpointError(f"{where}: tensor {name} holds NaN or infinite values")
        if (t.size and not name.startswith(TRAINING_STATE_PREFIX) and name not in fe.unbounded()
                and float(np.abs(t).max()) > WEIGHT_LIMIT):
            raise CheckpointError(f"{where}: tensor {name} holds values up to "
                                  f"{float(np.abs(t).max()):.3g}, over {WEIGHT_LIMIT:g}: no trained "
                                  f"model's, and its outputs would overflow float32 (corrupted?)")
    try:
        fe.check(ckpt.tensors)
    except ValueError as e:
        raise CheckpointError(f"{where}: {e}") from None
    for k in range(layers):
        m = m0 if k == 0 else n
        got = ckpt.layer_terms(k)
        want = {f"{t}_{s}": spec.term_shape(t, m, n) for t in variants.TERMS
                for s in spec.slots_with(t)}
        if set(got) != set(want):
            raise CheckpointError(f"{where}: layer {k} ({spec.name}) holds terms {sorted(got)}, "
                                  f"expected {sorted(want)}")
        for name, shape in want.items():
            if tuple(got[name].shape) != shape:
                raise CheckpointError(f"{where}: tensor layers.{k}.{name} has shape "
                                      f"{tuple(got[name].shape)}, expected {shape}")


def save(model, path: str | os.PathLike, **info: Any) -> Path:
    """Save a slimedge PyTorch model (``SlimLSTM`` or a model with a head); ``info`` lands in the
    config under ``"info"`` (metrics, data set, training settings, ...)."""
    config, tensors = model.checkpoint_state()
    if info:
        config = {**config, "info": {**(config.get("info") or {}), **info}}
    return write(path, config, {k: v.detach().cpu().numpy() for k, v in tensors.items()})


def load(path: str | os.PathLike):
    """Load a checkpoint as a PyTorch module (in eval mode) of the kind its config names."""
    from .models import from_checkpoint

    return from_checkpoint(read(path))


__all__ = ["save", "load", "read", "Checkpoint", "CheckpointError"]
