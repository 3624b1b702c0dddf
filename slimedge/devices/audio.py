"""A C export's audio stage on a Cortex-M: the front-end alone and front-end + model, run in
unicorn on the compiled code, per second of audio, checked against the host build.

Three images of the same export are cross-compiled (:func:`slimedge.devices.cortexm.build`, each
with only what its entry reaches): the front-end (``PREFIX_audio_push``), the model's step (the
export's step function) and the listener (``PREFIX_listen``: front-end + input quantisation +
step, what a firmware calls once per audio buffer). Each clip is pushed in buffers of ``buffer``
samples (default one hop) from a zero state through the front-end image and the listener image:

* **instructions and cycles** per second of audio: the sums over every call divided by the
  audio's duration. The front-end's are measured on its own image; the model's are the
  listener's minus the front-end's (its step, the input's normalisation and quantisation and the
  output's conversion); cycles as in :mod:`.timing` (the executed instruction mix against the
  core's cycle table), at the target's assumed clock (80 MHz for the Cortex-M4): real-time
  factor = cycles per second of audio / clock.
* **flash**: each image's code and constants (the model's config JSON and labels excluded).
* **RAM**: the listener's state (``sizeof(PREFIX_listener)``: the window's samples, the noise
  estimates, h and c), the PCM buffer and the outputs one call writes, the stack's high-water
  mark over every call (the front-end's scratch, ``PREFIX_AUDIO_SCRATCH_BYTES``, the FFT's
  buffer, lives there: reported beside it, not added), and ``.data`` + ``.bss``. The model's
  state is the listener's less the front-end's.
* **check**: every output of every frame against the host build of the same ``.c``
  (:class:`~.reference.HostReference`, -O2 without fast math) pushed the same way: equal bit for
  bit for the integer microfrontend with a full-integer model; within ``atol`` otherwise. The
  front-end image's frames are checked against the Python front-end (equal for the integer one).
"""
from __future__ import annotations

import ctypes
import os
import tempfile
from types import SimpleNamespace
from typing import Sequence

import numpy as np

from ..errors import UsageError
from ..formats.c import audio as caudio
from ..frontend import Frontend
from ..frontend.audio import as_pcm
from ..frontend.audio import features as python_features
from . import cortexm, timing, toolchains
from .reference import Export, HostReference

FLOAT_ATOL = 1e-3  # a float front-end (logf, FFT rounding) + model on the device against the host


def _host_listener(host: HostReference, export: Export):
    session = SimpleNamespace(config=export.config, lib=host.lib, prefix=export.prefix,
                              path=export.path)
    return caudio.Listener(session)


def output_hash(outputs: np.ndarray) -> int:
    """FNV-1a (32-bit) over the float32 bytes of every output of every frame, in order: what
    examples/mcu's audio firmware prints."""
    h = 2166136261
    for b in np.ascontiguousarray(outputs, np.float32).tobytes():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def host_outputs(export: Export, pcm_clips, buffer: int) -> tuple[list[np.ndarray], str, list[int]]:
    """The host build's (-O2, no fast math) listener outputs for each clip pushed in
    ``buffer``-sample calls from a zero state; the compiler; the sizes of the C front-end's
    state and of the listener."""
    with HostReference(export) as host:
        listener = _host_listener(host, export)
        want = []
        for x in pcm_clips:
            listener.reset()
            want.append(np.concatenate([listener.push(x[i:i + buffer])
                                        for i in range(0, len(x), buffer)]))
        # the structs hold only 8-, 16- and 32-bit integers and floats: the same size on the
        # host as on a 32-bit Arm core
        sizes = [ctypes.c_size_t.in_dll(host.lib, f"{export.prefix}_{k}").value
                 for k in ("audio_state_bytes", "listener_bytes")]
        return want, host.compiler, sizes


def _header_macro(export: Export, name: str) -> int | None:
    """An integer macro of the export's header (None when it has none)."""
    import re
    text = export.path.with_suffix(".h").read_text(encoding="ascii", errors="replace")
    m = re.search(rf"^#define {re.escape(name)} (\d+)\s*$", text, re.M)
    return int(m.group(1)) if m else None


def _run(b: cortexm.Build, fn: str, state_bytes: int, pcm_clips, width: int, hop: int,
         buffer: int, sample_dtype) -> tuple[list[np.ndarray], dict]:
    """Push each clip in ``buffer``-sample calls of ``fn`` (state, pcm, count, out) from a zero
    state of ``state_bytes``: the outputs per clip (frames, width) and the summed counts."""
    mach = cortexm.Machine(b)
    r0 = mach._a.UC_ARM_REG_R0
    state = mach.alloc(state_bytes)
    pcm = mach.alloc(buffer * np.dtype(sample_dtype).itemsize)
    max_frames = (buffer + hop - 1) // hop
    out = mach.alloc(max_frames * width * 4)
    instructions = cycles = calls = 0
    outs = []
    for x in pcm_clips:
        mach.write(state, np.zeros(state_bytes, np.uint8))
        got = []
        for i in range(0, len(x), buffer):
            piece = np.ascontiguousarray(x[i:i + buffer], sample_dtype)
            mach.write(pcm, piece)
            n, cyc = mach.call(fn, state, pcm, len(piece), out)
            instructions += n
            cycles += cyc
            calls += 1
            frames = mach.uc.reg_read(r0)
            got.append(mach.read(out, np.float32, frames * width).reshape(frames, width))
        outs.append(np.concatenate(got) if got else np.zeros((0, width), np.float32))
    ram = {"state": state_bytes, "pcm_buffer": buffer * np.dtype(sample_dtype).itemsize,
           "outputs": max_frames * width * 4, "stack": mach.stack_high_water(),
           "data_bss": b.static_ram}
    ram["total"] = sum(ram.values())
    return outs, {"instructions": instructions, "cycles": cycles, "calls": calls, "ram": ram}


def _events(export: Export, device: str, wd, opt: str, pcm, hop: int, buffer: int,
            sample_dtype) -> dict:
    """A continuous model's whole chain, ``PREFIX_events`` (front-end + model + decoder), on the
    device and on the host: the events per clip as (label, frame, start, score) tuples, the
    device's counts and RAM, the image's flash."""
    P = export.prefix
    b = cortexm.build(export, device, wd, opt=opt, function=f"{P}_events")
    with HostReference(export) as host:
        session = SimpleNamespace(config=export.config, lib=host.lib, prefix=P, path=export.path)
        det = caudio.Detector(session)
        state_bytes = ctypes.c_size_t.in_dll(host.lib, f"{P}_detector_bytes").value
        want = []
        for x in pcm:
            det.reset()
            want.append([e for i in range(0, len(x), buffer) for e in det.push(x[i:i + buffer])])
    # an event is 16 bytes: int32 label, frame, start and a float32 score (4 "outputs" wide)
    outs, counts = _run(b, f"{P}_events", state_bytes, pcm, 4, hop, buffer, sample_dtype)
    got = []
    for o in outs:
        ints = o.view(np.int32)
        got.append([(int(r[0]), int(r[1]), int(r[2]), float(s)) for r, s in zip(ints, o[:, 3])])
    return {"device": got, "host": want, "counts": counts, "flash": b.flash}


def measure(path: str | os.PathLike, device: str, clips: Sequence[np.ndarray], *,
            opt: str = cortexm.DEFAULT_OPT, buffer: int | None = None, atol: float = FLOAT_ATOL,
            workdir: str | os.PathLike | None = None) -> dict:
    """The audio stage of the C export ``path`` on ``device`` over ``clips`` (1-D PCM at the
    front-end's rate): per second of audio, front-end, model and both; flash; RAM; the check
    against the host build. Raises DeviceError when the device's outputs differ."""
    toolchains.require(device)
    export = Export.read(path)
    if not caudio.has_frontend(export.config):
        raise UsageError(f"{export.path.name}: not a C export with an audio front-end (export a "
                         f"model that reads audio with this version of slimedge)")
    fa = Frontend.from_config(export.config).audio
    integer_fe = fa.kind == "microfrontend"
    exact = integer_fe and export.integer
    hop = fa.hop_samples
    buffer = int(buffer or hop)
    sample_dtype = np.int16 if integer_fe else np.float32
    pcm = [np.asarray(as_pcm(x, integer_fe), sample_dtype) for x in clips]
    seconds = sum(len(x) for x in pcm) / fa.sample_rate
    P = export.prefix
    own = workdir is None
    tmp = tempfile.TemporaryDirectory(prefix="slimedge-audio-") if own else None
    try:
        wd = tmp.name if own else workdir
        b_fe = cortexm.build(export, device, wd, opt=opt, function=f"{P}_audio_push")
        b_model = cortexm.build(export, device, wd, opt=opt)
        b_all = cortexm.build(export, device, wd, opt=opt, function=f"{P}_listen")
        want, compiler, sizes = host_outputs(export, pcm, buffer)
        feats, fe = _run(b_fe, f"{P}_audio_push", sizes[0], pcm, fa.output_size, hop, buffer,
                         sample_dtype)
        outs, both = _run(b_all, f"{P}_listen", sizes[1], pcm, export.k, hop, buffer,
                          sample_dtype)
        events = _events(export, device, wd, opt, pcm, hop, buffer, sample_dtype) \
            if caudio.has_decoder(export.config) else None
    finally:
        if tmp is not None:
            tmp.cleanup()
    fe_diff = max(float(np.abs(f - python_features(fa, x)).max(initial=0.0))
                  for f, x in zip(feats, pcm))
    y_diff = max(float(np.abs(g.astype(np.float64) - w).max(initial=0.0))
                 for g, w in zip(outs, want))
    frames = sum(len(w) for w in want)
    passed = (fe_diff == 0.0 and y_diff == 0.0) if exact else (y_diff <= atol)
    check = {"clips": len(pcm), "frames": frames, "exact": exact,
             "frontend_max_abs_diff_vs_python": fe_diff, "outputs_max_abs_diff_vs_host": y_diff,
             "atol": None if exact else atol, "passed": bool(passed),
             "predicted": [int(np.argmax(g[-1])) if len(g) else -1 for g in outs],
             "host_predicted": [int(np.argmax(w[-1])) if len(w) else -1 for w in want],
             "hashes": [output_hash(g) for g in outs],
             "host_compiler": compiler}
    if events is not None:
        # the decoder's events: bit for bit where the outputs are; else the same labels and frames
        key = (lambda e: e) if exact else (lambda e: e[:3])
        same = [list(map(key, e)) for e in events["device"]] == \
            [list(map(key, e)) for e in events["host"]]
        check["events"] = {"events": sum(len(e) for e in events["host"]), "exact": exact,
                           "passed": bool(same)}
        if not same:
            raise toolchains.DeviceError(f"{export.path.name} on {device}: the decoder's events "
                                         f"differ from the host build's")
    if not passed:
        raise toolchains.DeviceError(
            f"{export.path.name} on {device}: the audio stage's outputs differ from the host "
            f"build's by {y_diff:.3g} (front-end vs Python {fe_diff:.3g})"
            f"{'; the integer path must be equal' if exact else f', tolerance {atol}'}")
    clock = timing.CLOCK_HZ[device]

    def per_second(ins: float, cyc: float) -> dict:
        return {"instructions": ins / seconds, "cycles": cyc / seconds,
                "cpi": cyc / ins if ins else None, "rtf": cyc / seconds / clock,
                "us_per_frame": cyc / frames / clock * 1e6}
    model_ins, model_cyc = both["instructions"] - fe["instructions"], both["cycles"] - fe["cycles"]
    scratch = _header_macro(export, f"{P.upper()}_AUDIO_SCRATCH_BYTES")
    for ram in (fe["ram"], both["ram"]):
        ram["frontend_scratch_in_stack"] = scratch
    model_ram = {"state": both["ram"]["state"] - fe["ram"]["state"]}
    per = {"frontend": per_second(fe["instructions"], fe["cycles"]),
           "model": per_second(model_ins, model_cyc),
           "together": per_second(both["instructions"], both["cycles"])}
    flash = {"frontend": b_fe.flash, "model": b_model.flash, "together": b_all.flash}
    rams = {"frontend": fe["ram"], "model": model_ram, "together": both["ram"]}
    if events is not None:  # the whole chain: front-end + model + decoder (PREFIX_events)
        ev = events["counts"]
        per["decoder"] = per_second(ev["instructions"] - both["instructions"],
                                    ev["cycles"] - both["cycles"])
        per["chain"] = per_second(ev["instructions"], ev["cycles"])
        flash["chain"] = events["flash"]
        rams["decoder"] = {"state": ev["ram"]["state"] - both["ram"]["state"]}
        ev["ram"]["frontend_scratch_in_stack"] = scratch
        rams["chain"] = ev["ram"]
    return {
        "device": device, "target": cortexm.TARGETS[device].summary, "file": export.path.name,
        "variant": export.variant, "hidden_size": export.n, "quantize": export.quantize,
        "frontend": fa.to_config(), "compiler": toolchains.version("arm-none-eabi-gcc"),
        "flags": " ".join([*cortexm.TARGETS[device].cflags, opt]),
        "clock_hz": clock, "clock": timing.CLOCK_NOTE[device],
        "basis": "cycles from the executed instruction mix and the core's TRM cycle table",
        "audio_seconds": seconds, "buffer_samples": buffer, "frames": frames,
        "per_second_of_audio": per,
        "flash_bytes": flash,
        "ram_bytes": rams,
        "check": check,
    }


__all__ = ["measure", "host_outputs", "output_hash", "python_features", "FLOAT_ATOL"]
