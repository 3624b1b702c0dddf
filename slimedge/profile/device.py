"""``profile --target``: a model's C export measured on a microcontroller or ARM core, beside LSTM0.

For each model (a checkpoint, the shipped one by default, or a C export), :func:`run` exports the
C step in float (``none``, where the device has an FPU) and full integer (``int8``), measures each
on the device (:mod:`slimedge.devices`: flash, RAM, instructions per step, estimated time and
real-time factor, outputs checked against the host build on real test utterances), does the
same for a standard LSTM (LSTM0, random weights, same sizes and head, calibrated on the same
data), and exports the model for TensorFlow Lite Micro to measure the tensor arena the same
model needs there (:mod:`slimedge.devices.tflm`). Ratios: instructions and flash against LSTM0's
in the same quantisation; RAM against the TFLM arena.

A model that reads audio (its config records an audio front-end) is also measured as a firmware
runs it: PCM through the export's C front-end and model (:mod:`slimedge.devices.audio`), per
second of audio, the front-end and the model separately and together (``audio`` in its
results). The PCM comes from ``audio`` (a WAV file, or a folder of them: its test split's
clips, FSDD's official one where the names allow), else from the folder the model's data record
names; the model's frames are the Python front-end's on those clips, and a full-integer export
is calibrated on the folder's training clips when the model's data set cannot be loaded.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

from .. import baselines, devices, formats
from ..devices import audio as devices_audio
from ..devices import tflm as tflm_arena
from ..devices import timing
from ..errors import DataError, UsageError
from ..formats.c import read_config as read_c_metadata
from ..frontend import Frontend

DEFAULT_SEQUENCES = 3
QUANTIZE = {"cortex-m4": ("none", "int8"), "cortex-m0plus": ("int8",), "aarch64": ("none", "int8")}


def _splits(info: formats.ModelInfo, where: str):
    from .. import data

    if not info.data or not info.data.get("name"):
        raise UsageError(f"{where} records no data set: profile --target steps real test "
                         f"frames and calibrates the full-integer export on its training split")
    return data.load_as_recorded(info.data, audio=info.frontend.audio)


AUDIO_CALIBRATION_CLIPS = 100  # training clips through the front-end, to calibrate int8


def _audio_inputs(info: formats.ModelInfo, given: str | os.PathLike | None, fa, sequences: int,
                  where: str):
    """(PCM clips to measure, DataSplits to calibrate on or None, what they are) for a model
    that reads audio through ``fa``."""
    from ..data import audio as wavs
    from ..data.splits import DataSplits
    from ..data.wav import read_wav

    recorded = (info.data or {}).get("source")
    source = Path(given) if given is not None else Path(str(recorded or ""))
    if given is None and (not recorded or not source.is_dir()):
        raise UsageError(f"{where} reads audio: give --audio (a WAV file, or a folder of them) "
                         f"to measure its front-end and model on the device")
    if source.is_file():
        pcm = [read_wav(source, sample_rate=fa.sample_rate)[0]]
        return pcm, None, f"{source.name}"
    if not source.is_dir():
        raise UsageError(f"--audio {source}: no such file or folder")
    clips = wavs.scan_wavs(source)
    split = "fsdd" if all(c.index is not None for c in clips) else "random"
    parts = wavs.split_clips(clips, split)
    test = parts["test"][:sequences]
    labels = sorted({c.label for c in clips})
    train = parts["train"][::max(1, len(parts["train"]) // AUDIO_CALIBRATION_CLIPS)]
    data = {k: wavs.clip_frames(v, fa, labels, f"{source.name}/{k}")
            for k, v in (("train", train), ("val", parts["val"][:20] or parts["test"][:20]),
                         ("test", test))}
    splits = DataSplits(source.name, data["train"], data["val"], data["test"])
    pcm = [read_wav(c.path, sample_rate=fa.sample_rate)[0] for c in test]
    return pcm, splits, f"{len(test)} test clips of {source} ({split} split)"


def _ratio(a, b):
    return a / b if a is not None and b else None


def check(device: str) -> None:
    """The device name and every tool it needs, before any work (UsageError, ToolchainNotFound)."""
    devices.check_device(device)
    devices.require(device)


def run(models: Sequence[str | os.PathLike | None] = (None,), device: str = "cortex-m4", *,
        sequences: int = DEFAULT_SEQUENCES, frame_ms: float = 10.0, opt: str | None = None,
        baseline: str = "lstm", workdir: str | os.PathLike | None = None, validate: bool = True,
        audio: str | os.PathLike | None = None, log: Callable[[str], None] = lambda s: None) -> dict:
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
            path = zoo.resolve(model)
            info = formats.info(path)
            fa = Frontend.from_config(info.config).audio
            clips = None
            if fa is None:
                splits = _splits(info, str(path))
                frames = [splits.test.sequence(k) for k in range(min(sequences, len(splits.test)))]
            else:
                clips, calibration, what = _audio_inputs(info, audio, fa, sequences, str(path))
                try:
                    splits = _splits(info, str(path))
                except (UsageError, DataError):
                    splits = calibration
                notes.append(f"{path.name}: PCM from {what}; front-end + model per second of "
                             f"audio in its audio rows")
                frames = [devices_audio.python_features(fa, x) for x in clips]
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
                    r = devices.measure(c_path, device, frames, opt=opt,
                                        frame_ms=fa.hop_ms if fa is not None else frame_ms,
                                        workdir=work / f"{stem}.{q}.{device}")
                    if clips is not None and role == "model" and device != "aarch64":
                        log(f"{role} {q}: front-end + model on {device}")
                        r["audio"] = devices_audio.measure(
                            c_path, device, clips, opt=opt or devices_audio.cortexm.DEFAULT_OPT,
                            workdir=work / f"{stem}.{q}.{device}.audio")
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
                         "baseline": baseline, "audio": None if audio is None else str(audio)},
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
    return [t, c] + audio_tables(report)


def audio_tables(report: dict) -> list:
    """Per model that reads audio: front-end, model and both per second of audio (instructions,
    cycles, share of the core at the assumed clock), flash and RAM (state, stack, total)."""
    from rich.table import Table
    from rich.text import Text

    out = []
    for r in report["results"]:
        a = r.get("audio")
        if not a:
            continue
        fe = a["frontend"]
        t = Table(title=f"{_label(r)} {r['quantize']}: audio in ({fe['kind']}, {fe['sample_rate']} "
                        f"Hz, {fe['window_ms']:g}/{fe['hop_ms']:g} ms), per second of audio",
                  caption=f"{a['basis']}, {a['clock']}; % core = cycles / clock. model = "
                          f"together - front-end (its step, the input's quantisation). RAM: "
                          f"state + PCM buffer ({a['buffer_samples']} samples) + outputs + stack "
                          f"(with the front-end's scratch, "
                          f"{a['ram_bytes']['frontend'].get('frontend_scratch_in_stack')} B). "
                          f"{a['check']['clips']} clips, {a['audio_seconds']:.1f} s; outputs "
                          f"{'equal to' if a['check']['exact'] else 'within tolerance of'} the "
                          f"host build's", caption_justify="left")
        for col in ("part", "instr/s", "cycles/s", "% core", "flash B", "state B", "stack B",
                    "RAM B"):  # the front-end's scratch is in its stack (caption)
            t.add_column(col, justify="left" if col == "part" else "right")
        ram = a["ram_bytes"]
        for part in ("frontend", "model", "together"):
            p = a["per_second_of_audio"][part]
            rb = ram.get(part, {})
            t.add_row(Text({"frontend": "front-end"}.get(part, part)), _fmt(p["instructions"]),
                      _fmt(p["cycles"]), _fmt(100 * p["rtf"], ".2f"),
                      _fmt(a["flash_bytes"][part]["total"]), _fmt(rb.get("state")),
                      _fmt(rb.get("stack")), _fmt(rb.get("total")),
                      style="bold" if part == "together" else None)
        out.append(t)
    return out


__all__ = ["run", "tables", "check", "QUANTIZE", "DEFAULT_SEQUENCES"]
