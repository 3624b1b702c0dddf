"""The shipped default model: a small SLIM classifier for spoken digits (FSDD, 13 MFCCs).

Every command that takes an optional model uses :func:`default_model_path` when none is named.
The package also carries the model's exports (``.tflite``, ``.onnx`` and the C sources), so an
install with only the runtime and one interpreter (``pip install ".[litert]"``) steps it with no
torch and no export step: :func:`for_runtime` picks the file an installed backend reads, and
``slimedge.load()`` with no path loads it. ``python -m slimedge.zoo.build --exports-only``
rewrites the exports from the checkpoint (a test checks they compute what it computes). Its model
card (how it was trained, its test accuracy, and LSTM0's at the same budget) is
``README.md`` beside it; :func:`card` returns the same facts as a dict.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

DEFAULT_MODEL = "fsdd_default.safetensors"
CARD = "fsdd_default.json"
AUDIO_MODEL = "fsdd_audio.safetensors"
"""The shipped raw-audio digit model: its config records the integer microfrontend it reads audio
through (``slimedge run --audio FILE.wav`` uses it when no model is named); card
``fsdd_audio.json``, built by ``benchmarks/audio.py --keep``."""
AUDIO_CARD = "fsdd_audio.json"
STREAM_MODEL = "fsdd_stream.safetensors"
"""The shipped continuous digit model (issue 24): LSTM1, n = 48, through the default
microfrontend (20 ms frames; noise reduction on) with the background class ``_silence_``, trained per
frame on generated streams whose state was never reset (``slimedge train --streams``); its head
is read at every frame. Trained on FSDD's official training speakers' clips: CC BY-SA 4.0."""
SAMPLE_WAV = "fsdd_sample_7_jackson_3.wav"
"""One FSDD recording (a "7" by jackson, index 3: the official test split), 8 kHz mono 16-bit, to
try ``slimedge run --audio`` on. Free Spoken Digit Dataset, Zohar Jackson and contributors,
CC BY-SA 4.0 (https://github.com/Jakobovski/free-spoken-digit-dataset), unchanged."""
NAMES = {"fsdd_mfcc": DEFAULT_MODEL, "fsdd_default": DEFAULT_MODEL, "fsdd_audio": AUDIO_MODEL,
         "fsdd_stream": STREAM_MODEL}
"""The shipped checkpoints by name, for any command's MODEL argument (:func:`resolve`):
``fsdd_mfcc`` (alias ``fsdd_default``) the MFCC model, ``fsdd_audio`` the raw-audio model,
``fsdd_stream`` the continuous one."""
# the shipped exports, by format, in the order a runtime-only install looks for them
EXPORTS = {"tflite": "fsdd_default.tflite", "onnx": "fsdd_default.onnx", "c": "fsdd_default.c"}


def _file(name: str) -> Path:
    path = Path(str(resources.files(__name__).joinpath(name)))
    if not path.is_file():
        raise FileNotFoundError(f"the shipped file {name} is missing from {path.parent}; "
                                f"reinstall slimedge or name a model explicitly")
    return path


def default_model_path(format: str | None = None) -> Path:
    """Path of the shipped default model: the ``.safetensors`` checkpoint, or with ``format``
    (``tflite``, ``onnx``, ``c``) its shipped export."""
    if format is None or format == "safetensors":
        return _file(DEFAULT_MODEL)
    if format not in EXPORTS:
        from ..errors import UsageError

        raise UsageError(f"the default model ships as safetensors, {', '.join(EXPORTS)}; "
                         f"not {format!r}")
    return _file(EXPORTS[format])


def resolve(model, audio: bool = False) -> Path:
    """A command's MODEL argument as a path: ``None`` is the shipped default checkpoint (with
    ``audio``, for audio input, the raw-audio model); a shipped model's name (:data:`NAMES`) is
    its checkpoint unless a file of that name exists (a user's file always wins); anything else
    is the path as given."""
    if model is None:
        return _file(AUDIO_MODEL if audio else DEFAULT_MODEL)
    path = Path(model)
    if str(model) in NAMES and not path.exists():
        return _file(NAMES[str(model)])
    return path


def audio_model_path() -> Path:
    """Path of the shipped raw-audio model (8 kHz WAVs in, a digit out)."""
    return _file(AUDIO_MODEL)


def stream_model_path() -> Path:
    """Path of the shipped continuous model (:data:`STREAM_MODEL`)."""
    return _file(STREAM_MODEL)


def sample_wav_path() -> Path:
    """Path of the shipped sample recording (:data:`SAMPLE_WAV`)."""
    return _file(SAMPLE_WAV)


def audio_card() -> dict:
    """The raw-audio model's card: front-end, training, official-split and leave-one-speaker-out
    accuracy beside LSTM0's, and its Cortex-M4 figures (``fsdd_audio.md`` says the same in prose,
    both written by :mod:`slimedge.zoo.audio_markdown`)."""
    return json.loads(_file(AUDIO_CARD).read_text())


def for_runtime(backend: str = "auto") -> Path:
    """The shipped model in a format this install can step: the checkpoint where a backend that
    reads it is installed (it is the source), else the first of ``.tflite``, ``.onnx``, ``.c``
    whose backend is; with a named ``backend``, the first shipped file that backend reads."""
    from .. import formats

    candidates = [(formats.CHECKPOINT, DEFAULT_MODEL)] + [
        (formats.FORMATS[f], name) for f, name in EXPORTS.items()]
    for fmt, name in candidates:
        names = fmt.backends if backend == "auto" else [b for b in fmt.backends if b == backend]
        if any(formats.backend(b).available() for b in names):
            return _file(name)
    from ..errors import MissingDependency

    want = "no backend" if backend == "auto" else f"backend {backend!r}"
    raise MissingDependency(f"{want} that reads the shipped model is installed: pip install "
                            f"'slimedge[litert]' (or onnxruntime)")


def card() -> dict:
    """The default model's card: variant, constants, training budget, accuracies."""
    return json.loads(_file(CARD).read_text())


__all__ = ["default_model_path", "audio_model_path", "stream_model_path", "sample_wav_path", "audio_card",
           "for_runtime", "card", "EXPORTS"]
