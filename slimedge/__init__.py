"""slimedge: SLIM LSTM variants from PyTorch training to quantized ONNX/TFLite step graphs and C step
code, and a streaming runtime.

The names a user needs, each imported on first use (PEP 562), so ``import slimedge`` imports
neither torch nor onnx nor any interpreter, and an app that only steps exported files needs none
of them::

    import slimedge

    model = slimedge.load("model.tflite")               # runtime.load: a Model to stream through
    y = model.stream().step(frame)
    slimedge.info("model.onnx").variant                 # a ModelInfo of any model file, no interpreter
    slimedge.export("m.safetensors", "m.int8.tflite", format="tflite", quantize="int8")
    slimedge.train(slimedge.TrainConfig(variant="LSTM6", data="fsdd"), "m.safetensors")
    layer = slimedge.SlimLSTM("LSTM6", input_size=13, hidden_size=64)    # torch.nn.LSTM-like
    slimedge.variants.get("LSTM10").num_params(13, 64)
    except slimedge.SlimedgeError: ...                   # every error a user can cause

``slimedge.train`` is the module :mod:`slimedge.train`, and calling it trains
(``slimedge.train.train``). The subpackages (``slimedge.runtime``, ``slimedge.data``, ...) are
imported on first use too.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# name -> (module, attribute in it; None: the module itself)
_FACE = {
    "load": ("slimedge.runtime", "load"),
    "export": ("slimedge.exporters", "export"),
    "train": ("slimedge.train", None),
    "TrainConfig": ("slimedge.train_config", "TrainConfig"),
    "SlimLSTM": ("slimedge.models", "SlimLSTM"),
    "SlimLSTMCell": ("slimedge.models", "SlimLSTMCell"),
    "variants": ("slimedge.variants", None),
    "runtime": ("slimedge.runtime", None),
    "info": ("slimedge.formats", "info"),
    "ModelInfo": ("slimedge.formats", "ModelInfo"),
    "SlimedgeError": ("slimedge.errors", "SlimedgeError"),
}
# the other public modules, also reachable as attributes (imported on first use)
_SUBMODULES = ("checkpoint", "data", "devices", "errors", "exporters", "extras", "formats",
               "integrity", "ir", "metrics", "models", "profile", "train_config", "zoo")

__all__ = ["load", "export", "train", "TrainConfig", "SlimLSTM", "SlimLSTMCell", "variants",
           "runtime", "info", "ModelInfo", "SlimedgeError", "__version__"]

if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from . import runtime, train, variants
    from .errors import SlimedgeError
    from .exporters import export
    from .formats import ModelInfo, info
    from .models import SlimLSTM, SlimLSTMCell
    from .runtime import load
    from .train_config import TrainConfig


def __getattr__(name: str):
    if name in _FACE:
        module, attr = _FACE[name]
        value = importlib.import_module(module)
        if attr is not None:
            value = getattr(value, attr)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_FACE, *_SUBMODULES})
