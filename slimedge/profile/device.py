"""``profile --target``: a model's C export measured on a microcontroller or ARM core, beside LSTM0.

For each model (a checkpoint, the shipped one by default, or a C export), :func:`run` exports the
C step in float (``none``, where the device has an FPU) and full integer (``int8``), measures each
on the device (:mod:`slimedge.devices`: flash, RAM, instructions per step, estimated time and
real-time factor, outputs checked against the host build on real test utterances), does the
same for a standard LSTM (LSTM0, random weights, same sizes and head, calibrated on the same
data), and exports the model for TensorFlow Lite Micro to measure the tensor arena the same
model needs there (:mod:`slimedge.devices.tflm`). Ratios: instructions and flash against LSTM0's
in the same quantisation; RAM against the TFLM arena.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

from .. import baselines, devices, formats
from ..devices import tflm as tflm_arena
from ..devices import timing
from ..errors import UsageError
from ..formats.c import read_config as read_c_metadata

DEFAULT_SEQUENCES = 3
QUANTIZE = {"cortex-m4": ("none", "int8"), "cortex-m0plus": ("int8",), "aarch64": ("none", "int8")}


def _splits(info: formats.ModelInfo, where: str):
    from .. import data

    if not info.data or not info.data.get("name"):
        raise UsageError(f"{where} records no data set: profile --target steps real test "
                         f"frames and calibrates the full-integer export on its training split")
    return data.load_as_recorded(info.data)


def _ratio(a, b):
    return a / b if a is not None and b else None


def check(device: str) -> None:
    """The device name and every tool it needs, before any work (UsageError, ToolchainNotFound)."""
    devices.check_device(device)
    devices.require(device)


def run(models: Sequence[str | os.PathLike | None] = (None,), device: str = "cortex-m4", *,
        sequences: int = DEFAULT_SEQUENCES, frame_ms: float = 10.0, opt: str | None = None,
        baseline: str = "lstm", workdir: str | os.PathLike | None = None, validate: bool = True,
        log: Callable[[str], None] = lambda s: None) -> dict:
    """Measure ``models`` (None: the shipped model) on ``device``; returns the report (JSON-able):
    ``device``, ``settings``, ``assumptions``, ``notes`` and ``results`` (one per model, LSTM0 and
    quantisation: the device figures of :func:`slimedge.devices.measure` plus ``role``,
    ``tflm`` and ``vs_lstm0``)."""
    from .. import zoo
    from ..exporters import export

    check(device)
    if baseline not in ("lstm", "none"):
        raise UsageError(f"unknown baseline {baseline!r}; valid: lstm, none")
    if sequences < 1:
        raise UsageError(f"sequences must be at least 1, got {sequences}")
    if not 0 < frame_ms < float("inf"):  # NaN fails too
        raise UsageError(f"frame period must be a positive finite number of ms, got {frame_ms}")
    started = time.time()
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="slimedge-device-") if own else workdir)
    work.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    if not tflm_arena.available():
        notes.append(tflm_arena.MISSING)
    results: list[dict] = []
    try:
        for group, model in enumerate(models or [None]):
            path = Path(model) if model is not None else zoo.default_model_path()
            info = formats.info(path)
            splits = _splits(info, str(path))
            frames = [splits.test.sequence(k) for k in range(min(sequences, len(splits.test)))]
            is_c = formats.by_suffix(path.suffix) is formats.get("c")
            if not is_c and formats.by_suffix(path.suffix) is not formats.CHECKPOINT:
                raise UsageError(f"{path}: profile --target takes a checkpoint or a C export")
            sources = [("model", path, info.config)]
            if baseline == "lstm":
                lstm0 = work / f"g{group}-LSTM0.safetensors"
                like = info.config if is_c else path
                sources.append(("lstm0", baselines.lstm0_checkpoint(like, lstm0), None))
            # a C export is measured as it is, and LSTM0 in its quantisation only
            given_q = read_c_metadata(path)["export"]["quantize"] if is_c else None
            if is_c:
                notes.append(f"{path.name}: a C export, measured as it is; no TFLM arena for it "
                             f"(that needs the checkpoint)")
            for role, src, _ in sources:
                stem = f"g{group}-{role}"
                if role == "model" and is_c:
                    modes = [(given_q, path)]
                else:
                    modes = [(q, None) for q in ([given_q] if is_c else QUANTIZE[device])]
                for q, given in modes:
                    log(f"{role} {q}: exporting")
                    c_path = given or export(src, work / f"{stem}.{q}.c", format="c", quantize=q,
                                             data=splits, validate=validate and role == "model"
                                             ).path
                    log(f"{role} {q}: running on {device}")
                    r = devices.measure(c_path, device, frames, opt=opt, frame_ms=frame_ms,
                                        workdir=work / f"{stem}.{q}.{device}")
                    r.update(role=role, group=group, source=str(src if role == "model" else "LSTM0"))
                    r["tflm"] = None
                    if tflm_arena.available() and not (role == "model" and is_c) and q != "dynamic":
                        log(f"{role} {q}: TFLite Micro arena")
                        r["tflm"] = tflm_arena.arena(src, q, work, stem=stem, data=splits)
                        if r["tflm"].get("arena_error"):
                            notes.append(r["tflm"]["arena_error"])
                    results.append(r)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    _add_ratios(results)
    return {"device": device, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "settings": {"sequences": sequences, "frame_ms": frame_ms, "opt": opt,
                         "baseline": baseline},
            "assumptions": timing.__doc__.split("\n\n", 1)[1].strip(),
            "elapsed_s": time.time() - started, "notes": notes, "results": results}


def _add_ratios(results: list[dict]) -> None:
    for r in results:
        base = next((b for b in results if b["role"] == "lstm0" and b["group"] == r["group"]
                     and b["quantize"] == r["quantize"]), None)
        r["vs_lstm0"] = None if base is None else {
            "instructions": _ratio(r["instructions_per_step"]["mean"],
                                   base["instructions_per_step"]["mean"]),
            "flash": _ratio(r["flash_bytes"]["total"], base["flash_bytes"]["total"]),
            "ram": _ratio(r["ram_bytes"]["total"], base["ram_bytes"]["total"])}
        arena = (r.get("tflm") or {}).get("arena_bytes")
        # only where the stack was measured (a microcontroller), else the ratio flatters
        r["ram_vs_tflm_arena"] = (_ratio(r["ram_bytes"]["total"], arena)
                                  if "stack" in r["ram_bytes"] else None)


def _label(r: dict) -> str:
    return f"{r['variant']} n={r['hidden_size']}" + (" (baseline)" if r["role"] == "lstm0" else "")


def _fmt(v, spec=",.0f"):
    return "–" if v is None else format(v, spec)


def tables(report: dict, wide: bool = False) -> list:
    """Rich tables: the figures per configuration, and how each was checked; in 80 columns, or
    with ``wide`` every column (cycles, RTF, TFLM's arena and RAM/arena, the check's sequences,
    stack and the flash's code and constants: about 150 columns)."""
    from rich.table import Table

    from .report import names  # names from metadata: shown as written, their end kept

    dev = report["device"]
    res = report["results"]
    if not res:
        return []
    t0 = res[0]["time"]
    cyc = "est. cycles" if res[0]["cycles_per_step_estimate"] else "cycles (CPI 1)"
    t = Table(title=f"{res[0]['target']}: the C step per frame, {t0['clock']}",
              caption=f"{t0['basis']}; RTF at {t0['frame_ms']:g} ms frames. ×LSTM0: this "
                      f"model's instructions / LSTM0's (same quantisation). RAM = state + I/O "
                      f"+ stack high-water mark + .data/.bss; TFLM arena: the same model's "
                      f".tflite on TensorFlow Lite Micro (int8: integer I/O)",
              caption_justify="left")
    mcu = "stack" in res[0]["ram_bytes"]
    cols = ["model", "C", "flash B" if mcu else "object B", "RAM B" if mcu else "state+I/O B",
            "instr/step", cyc, "µs/step", "RTF", "×LSTM0", "TFLM arena B", "RAM/arena"]
    keep = set(cols) - ({cyc, "RTF", "TFLM arena B", "RAM/arena"} if not wide else set())
    for col in cols:
        if col in keep:
            t.add_column(col, justify="left" if col in ("model", "C") else "right")
    from rich.text import Text

    labels = [_label(r) for r in res]
    shown = [Text(x) for x in labels] if wide else names(labels)  # whole with --wide
    for r, name in zip(res, shown):
        tf = r.get("tflm") or {}
        cycles = (r["cycles_per_step_estimate"] or {}).get("mean", r["time"]["cycles_per_step"])
        cells = [name, r["quantize"], _fmt(r["flash_bytes"]["total"]),
                 _fmt(r["ram_bytes"]["total"]), _fmt(r["instructions_per_step"]["mean"]),
                 _fmt(cycles), _fmt(r["time"]["us_per_step"], ",.1f"),
                 _fmt(r["time"]["rtf"], ".4f"),
                 _fmt((r.get("vs_lstm0") or {}).get("instructions"), ".2f"),
                 _fmt(tf.get("arena_bytes")), _fmt(r.get("ram_vs_tflm_arena"), ".2f")]
        t.add_row(*[v for col, v in zip(cols, cells) if col in keep],
                  style="dim" if r["role"] == "lstm0" else "bold")
    c = Table(title=f"{dev}: every step checked against the host build "
                    f"({res[0]['check']['host_compiler']}, -O2)",
              caption=f"built with {res[0]['compiler']}: {res[0]['flags']}", caption_justify="left")
    cols = ["model", "C export", "sequences", "frames", "outputs and state", "predicted",
            "stack B", "flash code B", "flash constants B"]
    keep = set(cols) - ({"sequences", "stack B", "flash code B", "flash constants B"}
                        if not wide else set())
    for col in cols:
        if col in keep:
            c.add_column(col, justify="left" if col in ("model", "C export", "outputs and state",
                                                        "predicted") else "right")
    for r, name in zip(res, shown):
        ch = r["check"]
        how = ("equal" if ch["exact"] else
               f"within {max(ch['max_abs_diff'].values()):.1e} (tol {ch['atol']:g})")
        cells = [name, r["quantize"], str(ch["sequences"]), str(ch["frames"]),
                 how if ch["passed"] else "FAILED", " ".join(map(str, ch["predicted"])),
                 _fmt(r["ram_bytes"].get("stack")), _fmt(r["flash_bytes"]["code"]),
                 _fmt(r["flash_bytes"]["constants"])]
        c.add_row(*[v for col, v in zip(cols, cells) if col in keep])
    return [t, c]


__all__ = ["run", "tables", "check", "QUANTIZE", "DEFAULT_SEQUENCES"]
