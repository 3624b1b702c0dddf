"""A model stepped on live audio: PCM chunks in, one output per completed frame out.

    model = runtime.load("model.safetensors")     # its config records an audio front-end
    s = model.audio_stream()
    ys = s.push(pcm_chunk)                        # int16 or float [-1, 1), any length -> (n, K)

The audio front-end (:mod:`slimedge.frontend.audio`, recorded in the model's config) runs here in
NumPy, exactly as in training; each frame it completes is one :meth:`Stream.step
<slimedge.runtime.streams.Stream.step>` of the model on its backend (which applies the per-frame
stages, e.g. the standardisation, inside the file's graph). On the ``c`` backend, a C export that
carries its front-end runs it in C instead: ``PREFIX_listen``, front-end and step in one call,
as a firmware does (:mod:`slimedge.formats.c.audio`). ONNX and TFLite files hold the model's step
only: the front-end is a companion their config records and this class applies. State: the
front-end's (sample overlap, noise estimates) and the model's (h, c); :meth:`reset` clears both.
``compiled=True`` runs the integer front-end's compiled kernel (numba, compiled once per process:
for servers and long streams; the same values) where the front-end runs in NumPy.
"""
from __future__ import annotations

import numpy as np

from ..errors import UsageError
from ..frontend import Frontend
from ..frontend.audio import AudioStream as FrontendStream


class AudioStream:
    """One stream of audio through a model: :meth:`push` samples, get the outputs (n, K) of the
    n frames they completed (n may be 0)."""

    def __init__(self, model, compiled: bool = False) -> None:
        fe = Frontend.from_config(model.config)
        if fe.audio is None:
            raise UsageError(f"{model.path}: its config records no audio front-end (the model "
                             f"reads frames of {model.input_size} features: use model.stream())")
        if fe.audio.output_size != model.input_size:
            raise UsageError(f"{model.path}: its audio front-end makes {fe.audio.output_size} "
                             f"features per frame, the model reads {model.input_size}")
        self.model, self.audio = model, fe.audio
        self.listener = None
        if model.backend == "c":
            from ..formats.c import audio as caudio
            if caudio.has_frontend(model.config):
                self.listener = caudio.Listener(model.session)
        self.frontend = FrontendStream(fe.audio, compiled)
        self.stream = model.stream()

    @property
    def where(self) -> str:
        """Where the front-end runs: "C" (the export's own) or "numpy"."""
        return "numpy" if self.listener is None else "C"

    @property
    def sample_rate(self) -> int:
        return self.audio.sample_rate

    def push(self, samples) -> np.ndarray:
        """Samples (1-D int16 PCM, or float in [-1, 1)) -> the outputs of the frames completed."""
        if self.listener is not None:
            return self.listener.push(samples)
        frames = self.frontend.push(samples)
        out = np.empty((len(frames), self.model.output_size), np.float32)
        for k, frame in enumerate(frames.astype(np.float32)):
            out[k] = self.stream.step(frame)
        return out

    def reset(self) -> None:
        if self.listener is not None:
            self.listener.reset()
        self.frontend.reset()
        self.stream.reset()


class EventStream:
    """A continuous model listening: :meth:`push` PCM chunks, get the events
    (:class:`~slimedge.runtime.decoder.Event`) they fired. The model's audio stream feeds the
    decoder (:mod:`slimedge.runtime.decoder`, its settings the config's "decoder" section with
    the overrides given). On the ``c`` backend, an export that carries the decoder with the same
    settings runs it in C (``PREFIX_events``: front-end, model and decoder, as a firmware does);
    the events are the same."""

    def __init__(self, model, compiled: bool = False, **overrides) -> None:
        from . import decoder as dec
        self.decoder = dec.Decoder(model.config, **overrides)
        self.detector = None
        if model.backend == "c":
            from ..formats.c import audio as caudio
            exported = (model.config.get("export") or {}).get("decoder")
            if exported and dec.Settings(**exported) == self.decoder.settings:
                self.detector = caudio.Detector(model.session)
        self.audio = None if self.detector is not None else AudioStream(model, compiled)
        self.sample_rate = (self.detector.audio if self.audio is None else self.audio.audio
                            ).sample_rate

    @property
    def where(self) -> str:
        """Where the decoder runs: "C" (the export's own) or "python"."""
        return "python" if self.detector is None else "C"

    def push(self, samples) -> list:
        """Samples (1-D int16 PCM, or float in [-1, 1)) -> the events fired, in order."""
        if self.detector is None:
            return self.decoder.push(self.audio.push(samples))
        d = self.decoder
        return [d.event(label, frame, start, score)
                for label, frame, start, score in self.detector.push(samples)]

    def reset(self) -> None:
        self.decoder.reset()
        (self.audio or self.detector).reset()


__all__ = ["AudioStream", "EventStream"]
