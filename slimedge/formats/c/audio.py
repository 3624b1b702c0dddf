"""A C export's audio front-end and listener, run through ctypes (see
:mod:`slimedge.exporters.c.emit_audio` for the C API).

:class:`Frontend` pushes PCM through ``PREFIX_audio_push`` (frames out, the front-end alone);
:class:`Listener` through ``PREFIX_listen`` (front-end + model step: the outputs a firmware gets).
Both keep their C state in a buffer of the size the library reports, so a push of any length,
in any split, continues the same stream. Samples: int16 PCM for the integer microfrontend
(float input in [-1, 1) is scaled like :func:`slimedge.frontend.audio.as_pcm`), float32 for
log-mel.
"""
from __future__ import annotations

import ctypes

import numpy as np

from ...errors import ModelFileError
from ...frontend import Frontend as Spec
from ...frontend.audio import as_pcm
from ..binding import sizes


def has_frontend(config: dict) -> bool:
    """The C export carries its audio front-end (written by this version)."""
    return bool((config.get("export") or {}).get("audio_frontend"))


class _Stage:
    push_name = ""
    bytes_name = ""
    reset_name = ""

    def __init__(self, session) -> None:
        config, lib, prefix = session.config, session.lib, session.prefix
        if not has_frontend(config):
            raise ModelFileError(f"{session.path}: this C export has no audio front-end in C "
                                 f"(re-export it with this version of slimedge)")
        self.audio = Spec.from_config(config).audio
        self.integer = self.audio.kind == "microfrontend"
        self._session = session  # keeps the library loaded
        size = ctypes.c_size_t.in_dll(lib, f"{prefix}_{self.bytes_name}").value
        self._state = ctypes.create_string_buffer(size)
        self._push = getattr(lib, f"{prefix}_{self.push_name}")
        self._push.restype = ctypes.c_int
        self._reset = getattr(lib, f"{prefix}_{self.reset_name}")
        self._reset.restype = None
        self.width = self._width(session)
        self.reset()

    def _width(self, session) -> int:
        raise NotImplementedError

    def reset(self) -> None:
        self._reset(self._state)

    def push(self, samples) -> np.ndarray:
        """Samples (1-D) -> (frames, width) float32: features or the model's outputs."""
        x = as_pcm(samples, self.integer)
        x = np.ascontiguousarray(x, np.int16 if self.integer else np.float32)
        hop = self.audio.hop_samples
        out = np.empty(((len(x) + hop - 1) // hop, self.width), np.float32)
        n = self._push(self._state, x.ctypes.data_as(ctypes.c_void_p), ctypes.c_int(len(x)),
                       out.ctypes.data_as(ctypes.c_void_p))
        return out[:n]


class Frontend(_Stage):
    """The C front-end alone: ``push(pcm)`` -> the frames it completes (frames, features)."""

    push_name, bytes_name, reset_name = "audio_push", "audio_state_bytes", "audio_reset"

    def _width(self, session) -> int:
        return self.audio.output_size


class CEvent(ctypes.Structure):
    """``PREFIX_event``."""
    _fields_ = [("label", ctypes.c_int32), ("frame", ctypes.c_int32), ("start", ctypes.c_int32),
                ("score", ctypes.c_float)]


def has_decoder(config: dict) -> bool:
    """The C export carries a continuous model's event decoder (``PREFIX_events``)."""
    return bool((config.get("export") or {}).get("decoder"))


class Detector(_Stage):
    """The C front-end, the model's step and the event decoder (``PREFIX_events``): ``push(pcm)``
    -> the events fired, as (label index, frame, start frame, score) tuples."""

    push_name, bytes_name, reset_name = "events", "detector_bytes", "detector_reset"

    def __init__(self, session) -> None:
        if not has_decoder(session.config):
            raise ModelFileError(f"{session.path}: this C export has no event decoder (a "
                                 f"continuous model's, exported by this version of slimedge)")
        super().__init__(session)

    def _width(self, session) -> int:
        return 0

    def push(self, samples) -> list[tuple[int, int, int, float]]:
        x = as_pcm(samples, self.integer)
        x = np.ascontiguousarray(x, np.int16 if self.integer else np.float32)
        hop = self.audio.hop_samples
        out = (CEvent * max(1, (len(x) + hop - 1) // hop))()
        n = self._push(self._state, x.ctypes.data_as(ctypes.c_void_p), ctypes.c_int(len(x)), out)
        return [(e.label, e.frame, e.start, e.score) for e in out[:n]]


class Listener(_Stage):
    """The C front-end and the model's step: ``push(pcm)`` -> outputs (frames, output_size)."""

    push_name, bytes_name, reset_name = "listen", "listener_bytes", "listener_reset"

    def _width(self, session) -> int:
        return sizes(session.config)[-1]


__all__ = ["Frontend", "Listener", "Detector", "CEvent", "has_frontend", "has_decoder"]
