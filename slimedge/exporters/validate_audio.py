"""Export-time validation of a model's audio front-end, beside the model's own (:mod:`.validate`).

Every format records the front-end's spec in the file's config; the file's reader must find the
checkpoint's front-end there (the runtime applies it: :meth:`slimedge.runtime.Model.audio_stream`).
A C export also carries it as C (:mod:`slimedge.exporters.c.emit_audio`), which is run here on a
test signal (:func:`probe_signal`: a rising tone, noise bursts at several levels, silence, a
clipped loud part) pushed in chunks of several sizes, and compared with the Python front-end
(:mod:`slimedge.frontend.audio`) over one whole push:

* the integer microfrontend must give the same integers (``max_abs_diff`` 0);
* a float log-mel / MFCC must agree within :data:`FLOAT_ATOL` (float32 against float64: about
  1.3e-5 measured on FSDD clips);
* the listener (front-end + model step in C, what a firmware calls) must give the model's
  outputs on the C front-end's frames within the model's ``atol``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import AudioValidationError
from ..frontend import Frontend
from ..frontend import audio as audio_frontends

FLOAT_ATOL = 1e-3
"""How far the C log-mel / MFCC may be from the float64 front-end (its features are logs)."""
CHUNKS = (1, 37, 160, 4096)
"""Sample counts per push the C front-end is run with (each from a reset state)."""


@dataclass
class AudioReport:
    kind: str
    frames: int
    max_abs_diff: float      # C front-end against the Python one (0 for the integer front-end)
    atol: float
    listener_max_abs_diff: float | None  # front-end + model in C against the model's step
    where: str               # "C" (the .c computes it) or "companion" (the runtime applies it)

    def to_dict(self) -> dict:
        return asdict(self)


def probe_signal(sample_rate: int, seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """int16 PCM that exercises a front-end's range: a rising tone, noise bursts from -60 to
    0 dBFS, silence, and a clipped tone."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    f = 100 + (sample_rate / 2 - 200) * t / seconds
    x = 0.3 * np.sin(2 * np.pi * np.cumsum(f) / sample_rate)
    q = n // 6
    for k, level in enumerate((1e-3, 1e-2, 0.3, 1.0)):
        x[k * q:(k + 1) * q] += level * rng.normal(size=q)
    x[4 * q:5 * q] = 0.0
    x[5 * q:] = 2.0 * np.sin(2 * np.pi * 440 * t[5 * q:])
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


def check(config: dict, file_config: dict, model, path, *, atol: float) -> AudioReport | None:
    """Check the file's audio front-end against the checkpoint's ``config``; None when the
    model has none. ``model`` is the written file loaded by the runtime."""
    want = Frontend.from_config(config).audio
    if want is None:
        return None
    got = Frontend.from_config(file_config).audio
    if got != want:
        raise AudioValidationError(f"{path}: the file records the audio front-end {got!r}, the "
                                   f"model {want!r}; no file written")
    from ..formats.c import audio as caudio
    if model is None or model.backend != "c":
        return AudioReport(want.kind, 0, 0.0, 0.0, None, "companion")
    if not caudio.has_frontend(model.config):
        raise AudioValidationError(f"{path}: the C export does not carry its audio front-end")
    x = probe_signal(want.sample_rate)
    ref = audio_frontends.features(want, x)
    integer = want.kind == "microfrontend"
    limit = 0.0 if integer else FLOAT_ATOL
    fe, worst = caudio.Frontend(model.session), 0.0
    for chunk in CHUNKS:
        fe.reset()
        frames = np.concatenate([fe.push(x[i:i + chunk]) for i in range(0, len(x), chunk)])
        if frames.shape != ref.shape:
            raise AudioValidationError(f"{path}: the C front-end gave {frames.shape[0]} frames in "
                                       f"pushes of {chunk} samples, Python {ref.shape[0]}; no "
                                       f"file written")
        worst = max(worst, float(np.abs(frames - ref).max(initial=0.0)))
    if worst > limit:
        raise AudioValidationError(f"{path}: the C audio front-end differs from the Python one "
                                   f"by {worst:.3g} (allowed {limit:g}); no file written")
    listener = caudio.Listener(model.session)
    y = np.concatenate([listener.push(x[i:i + 333]) for i in range(0, len(x), 333)])
    stream, want_y = model.stream(), []
    for frame in frames:
        want_y.append(stream.step(frame))
    diff = float(np.abs(y - np.asarray(want_y)).max(initial=0.0))
    if diff > atol:
        raise AudioValidationError(f"{path}: the C listener's outputs differ from the model's "
                                   f"step on the same frames by {diff:.3g} (allowed {atol:g}); "
                                   f"no file written")
    return AudioReport(want.kind, len(ref), worst, limit, diff, "C")


__all__ = ["check", "probe_signal", "AudioReport", "AudioValidationError", "FLOAT_ATOL"]
