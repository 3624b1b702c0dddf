"""What a training run keeps on disk, and reads back to resume: the paths of its three files, the
training state file (the model, Adam's moments as ``optim.*`` tensors, the run's progress in
``info.train_state``), what the best checkpoint records of its run, and the JSON log.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from . import _io, checkpoint
from . import data as _data
from .train_config import TrainConfig, side_paths

OPTIM_PREFIX = "optim."


# ---- optimizer state in a checkpoint -----------------------------------------------------------
def optim_tensors(model, optimizer) -> tuple[dict[str, torch.Tensor], int]:
    out, step = {}, 0
    for name, p in model.named_parameters():
        st = optimizer.state.get(p)
        if not st:
            continue
        out[f"{OPTIM_PREFIX}{name}.exp_avg"] = st["exp_avg"]
        out[f"{OPTIM_PREFIX}{name}.exp_avg_sq"] = st["exp_avg_sq"]
        step = int(st["step"])
    return out, step


def load_optim(model, optimizer, tensors: Mapping[str, np.ndarray], step: int, path) -> None:
    if step == 0:
        return
    state = {}
    for k, (name, p) in enumerate(model.named_parameters()):
        moments = {}
        for m in ("exp_avg", "exp_avg_sq"):
            key = f"{OPTIM_PREFIX}{name}.{m}"
            if key not in tensors or tuple(tensors[key].shape) != tuple(p.shape):
                raise checkpoint.CheckpointError(f"{path}: optimizer tensor {key} is missing or "
                                                 f"has the wrong shape")
            moments[m] = torch.as_tensor(np.array(tensors[key]), dtype=p.dtype, device=p.device)
        state[k] = {"step": torch.tensor(float(step)), **moments}
    sd = optimizer.state_dict()
    optimizer.load_state_dict({"state": state, "param_groups": sd["param_groups"]})


def run_info(config: TrainConfig, splits: _data.DataSplits, best: dict, history: list) -> dict:
    return {"data": {k: splits.info.get(k) for k in ("name", "split_seed", "val_fraction",
                                                     "test_fraction", "limit", "path", "sha256",
                                                     "kind", "split", "test_speakers",
                                                     "train_extra")
                     if k in splits.info},
            "train": {k: v for k, v in config.to_dict().items() if k not in ("data",)},
            "epochs_trained": len(history), "best": best}


def save_state(model, optimizer, path, config, epoch, history, best) -> None:
    cfg, tensors = model.checkpoint_state()
    optim, step = optim_tensors(model, optimizer)
    cfg = {**cfg, "info": {"train_state": {"config": config.to_dict(), "epoch": epoch,
                                           "history": history, "best": best, "adam_step": step}}}
    arrays = {k: v.detach().cpu().numpy() for k, v in {**tensors, **optim}.items()}
    checkpoint.write(path, cfg, arrays)


def read_state(state_path: Path,
               config: TrainConfig | None) -> tuple[checkpoint.Checkpoint, TrainConfig, dict]:
    """The state file to resume from: (its checkpoint, the run's config with ``config.epochs`` if
    given, its progress: ``epoch``, ``history``, ``best``, ``adam_step``)."""
    if not state_path.is_file():
        raise FileNotFoundError(f"nothing to resume: {state_path} does not exist (train "
                                f"without --resume first, with the same -o)")
    ckpt = checkpoint.read(state_path)
    ts = (ckpt.config.get("info") or {}).get("train_state")
    if not ts:
        raise checkpoint.CheckpointError(f"{state_path}: not a training state file")
    epochs = ts["config"]["epochs"] if config is None else config.epochs
    return ckpt, TrainConfig.from_dict({**ts["config"], "epochs": epochs}), ts


def write_json(path: Path, obj) -> None:
    _io.write_text(path, json.dumps(obj, indent=2) + "\n")


__all__ = ["side_paths", "read_state", "save_state", "run_info", "write_json", "optim_tensors",
           "load_optim", "OPTIM_PREFIX"]
