"""The shipped default model: a small SLIM classifier for spoken digits (FSDD, 13 MFCCs).

Every command that takes an optional model uses :func:`default_model_path` when none is named.
Its model card (how it was trained, its test accuracy, and LSTM0's at the same budget) is
``README.md`` beside it; :func:`card` returns the same facts as a dict.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

DEFAULT_MODEL = "fsdd_default.safetensors"
CARD = "fsdd_default.json"


def _file(name: str) -> Path:
    path = Path(str(resources.files(__name__).joinpath(name)))
    if not path.is_file():
        raise FileNotFoundError(f"the shipped file {name} is missing from {path.parent}; "
                                f"reinstall slimedge or name a model explicitly")
    return path


def default_model_path() -> Path:
    """Path of the shipped default model (a ``.safetensors`` checkpoint)."""
    return _file(DEFAULT_MODEL)


def card() -> dict:
    """The default model's card: variant, constants, training budget, accuracies."""
    return json.loads(_file(CARD).read_text())


__all__ = ["default_model_path", "card"]
