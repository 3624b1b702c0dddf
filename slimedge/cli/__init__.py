"""The ``slimedge`` command line: a thin typer app over the library.

Every command turns a library error (bad file, bad option, bad data) into one red line on stderr and
a non-zero exit, never a traceback. Options mean one thing in every command (``-q`` is always
``--quantize``, ``--steps`` always a number of timed or validated steps as the command says, ``--json``
always "print JSON instead of tables"); an option that a command would ignore in the combination
given is named in a yellow warning. Known chatter of third-party libraries (LiteRT's "Created
TensorFlow Lite XNNPACK delegate", onnxruntime's quantisation pre-processing advice) is filtered out
of stderr; everything else on it passes.
"""
from __future__ import annotations  # noqa: I001 - the commands are imported in the order of --help

from . import commands_train, commands_export, commands_run, commands_profile, commands_serve, commands_search  # noqa: F401
from .app import (  # noqa: F401 - the choices the commands offer, shown in --help
    ACTIVATIONS,
    COMPAT,
    GATE_ACTIVATIONS,
    INITS,
    SCHEDULES,
    SPLITS,
    _duration,
    app,
)
from .commands_profile import TARGETS  # noqa: F401 - the emulated devices of profile --target

__all__ = ["app"]
