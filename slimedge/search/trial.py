"""One candidate through the whole pipeline: trained, exported, scored on validation data, and
measured on the target (the emulated device, or the host's runtime).

:func:`measure_export` is the part a model takes once it exists (trained, or random weights for
the size model's calibration); :func:`run_candidate` trains first, reporting each epoch's
validation accuracy to ``on_epoch`` (where the search's pruner decides).
"""
from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from .. import data as _data
from .budget import Budget, features
from .space import frontend_settings, spec_of, train_settings

MEASURE_SEQUENCES = 2   # validation utterances stepped on the device (the host build checks each)
LATENCY_STEPS = 200      # host: steps timed per candidate (the median is kept)


@functools.lru_cache(maxsize=4)
def load_splits(data: str, split_seed: int, limit: int | None) -> _data.DataSplits:
    return _data.load(data, split_seed=split_seed, limit=limit)


# the TrainConfig fields that decide the data a candidate trains on
DATA_FIELDS = ("data", "split_seed", "val_fraction", "test_fraction", "limit", "audio", "split",
               "test_speakers", "augment", "augment_copies", "seed", "train_extra")


@functools.lru_cache(maxsize=4)
def _load(key: str) -> _data.DataSplits:
    from ..train import TrainConfig
    from ..train import load_splits as train_splits

    return train_splits(TrainConfig(**json.loads(key)))


def candidate_splits(candidate: Mapping, base: Mapping) -> _data.DataSplits:
    """The data ``candidate`` trains on over ``base``, as ``slimedge train`` loads it (a folder of
    WAV files through the candidate's front-end); the last few kept in memory."""
    from ..train import TrainConfig

    d = TrainConfig(**train_settings(candidate, base)).to_dict()
    return _load(json.dumps({k: d[k] for k in DATA_FIELDS}, sort_keys=True))


def candidate_features(candidate: Mapping, base: Mapping, splits: _data.DataSplits) -> dict:
    s = train_settings(candidate, base)
    return features(spec_of(s.get("variant", "LSTM6")), splits.input_size,
                    int(s.get("hidden_size", 64)), int(s.get("num_layers", 1)),
                    len(splits.labels))


def variant_name(candidate: Mapping) -> str:
    """The size model's key for the candidate's variant (its canonical name) and front-end
    setting (``LSTM6@hop_ms=20,window_ms=60``: the front-end's code and state are fitted apart)."""
    name = spec_of(candidate.get("variant", "LSTM6")).name
    fe = frontend_settings(candidate)
    return name + ("@" + ",".join(f"{k}={v}" for k, v in sorted(fe.items())) if fe else "")


def _audio_measurement(path: Path, budget: Budget, splits: _data.DataSplits,
                       workdir: Path) -> dict:
    """A C export that listens to audio on the device: front-end + model per second of audio
    (:mod:`slimedge.devices.audio`) over the first validation clips."""
    from ..data.audio import split_clips_of
    from ..data.wav import read_wav
    from ..devices import audio as device_audio

    clips = [read_wav(c.path)[0] for c in split_clips_of(splits.info, "val")[:MEASURE_SEQUENCES]]
    r = device_audio.measure(path, budget.target, clips, workdir=workdir / budget.target)
    together = r["per_second_of_audio"]["together"]
    return {"measured": {"flash": float(r["flash_bytes"]["together"]["total"]),
                         "ram": float(r["ram_bytes"]["together"]["total"]),
                         "cycles_per_second": float(together["cycles"])},
            "instructions_per_second": float(together["instructions"]),
            "frontend_cycles_per_second":
                float(r["per_second_of_audio"]["frontend"]["cycles"])}


def _host_latency_us(path: Path, input_size: int) -> float:
    from .. import runtime

    stream = runtime.load(path, threads=1).stream()
    frame = np.random.default_rng(0).standard_normal(input_size).astype(np.float32)
    for _ in range(20):
        stream.step(frame)
    times = []
    for _ in range(LATENCY_STEPS):
        t0 = time.perf_counter()
        stream.step(frame)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e6)


def measure_export(checkpoint: Path, candidate: Mapping, budget: Budget,
                   splits: _data.DataSplits, workdir: Path, *, score: bool = True) -> dict:
    """Export ``checkpoint`` as the candidate says (format, quantize), validate it (export
    does), score it on the validation split through the runtime (the exported file itself:
    quantisation's loss counts), and measure it on the budget's target."""
    from .. import devices, runtime
    from ..exporters import export

    quantize = candidate.get("quantize", "none")
    fmt = "c" if budget.kind == "device" else candidate.get("format", "onnx")
    suffix = {"c": ".c", "onnx": ".onnx", "tflite": ".tflite"}[fmt]
    path = export(checkpoint, workdir / f"model.{quantize}{suffix}", format=fmt,
                  quantize=quantize, data=splits).path
    out: dict = {"export": str(path)}
    if score:
        ev = runtime.evaluate(runtime.load(path, threads=1), splits.val)
        out.update(val_accuracy=float(ev.accuracy), val_loss=float(ev.loss))
    if budget.kind == "device" and (splits.info.get("frontend") or {}).get("audio"):
        out.update(_audio_measurement(path, budget, splits, workdir))
    elif budget.kind == "device":
        frames = [splits.val.sequence(k) for k in range(min(MEASURE_SEQUENCES, len(splits.val)))]
        r = devices.measure(path, budget.target, frames, frame_ms=budget.frame_ms,
                            workdir=workdir / budget.target)
        if not r["check"]["passed"]:  # a device step that differs from the host's: a real bug
            raise RuntimeError(f"{path}: the {budget.target} build's outputs differ from the "
                               f"host build's: {r['check']}")
        cycles = (r["cycles_per_step_estimate"] or {}).get("mean", r["time"]["cycles_per_step"])
        out["measured"] = {"flash": float(r["flash_bytes"]["total"]),
                           "ram": float(r["ram_bytes"]["total"]),
                           "cycles_per_second": float(cycles) * 1000.0 / budget.frame_ms}
        out["instructions_per_step"] = float(r["instructions_per_step"]["mean"])
    else:
        files = [path, *path.parent.glob(path.stem + ".*")]
        out["measured"] = {"flash": float(sum(f.stat().st_size for f in set(files))),
                           "latency_us": _host_latency_us(path, splits.input_size)}
    return out


def run_candidate(candidate: Mapping, base: Mapping, budget: Budget, splits: _data.DataSplits,
                  workdir: Path, on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train the candidate (``base``: data, epochs, seed, ...), then :func:`measure_export`
    its best epoch. Returns the measurements plus ``checkpoint`` and ``train_seconds``."""
    from ..train import TrainConfig, train

    config = TrainConfig(**train_settings(candidate, base))
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt = workdir / "model.safetensors"
    t0 = time.perf_counter()
    result = train(config, ckpt, splits=splits, quiet=True, progress=False, overwrite=True,
                   device="cpu", on_epoch=on_epoch)
    out = measure_export(result.output, candidate, budget, splits, workdir)
    out.update(checkpoint=str(result.output), train_seconds=time.perf_counter() - t0,
               best_epoch=result.best["epoch"], torch_val_accuracy=result.best["val_accuracy"])
    return out


def calibration_point(candidate: Mapping, base: Mapping, budget: Budget,
                      splits: _data.DataSplits, workdir: Path) -> dict:
    """One measurement for the size model: the candidate with its initial (untrained) weights."""
    from .. import checkpoint
    from ..train import TrainConfig, build_model

    config = TrainConfig(**train_settings(candidate, base))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "model.safetensors"
    checkpoint.save(build_model(config, splits), path)
    r = measure_export(path, candidate, budget, splits, workdir, score=False)
    return {"quantize": candidate.get("quantize", "none"), "variant": variant_name(candidate),
            "candidate": dict(candidate),
            "features": candidate_features(candidate, base, splits), "measured": r["measured"]}


__all__ = ["run_candidate", "measure_export", "calibration_point", "candidate_features",
           "variant_name",
           "load_splits", "candidate_splits"]
