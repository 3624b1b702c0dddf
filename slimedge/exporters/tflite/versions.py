"""TFLite operator versions: TensorFlow's op_version.cc rules for the ops slimedge writes.

A TFLite file names a version for each operator code, and a runtime refuses at load a version its
kernels do not register, instead of running an int8 or int16 kernel it does not have. The version
follows from the op's tensor types, its quantisation and options, by the rules of TensorFlow's
``tensorflow/lite/tools/versioning/op_version.cc`` (``GetBuiltinOperatorVersion``, with the
per-channel and "input quantized" facts from ``op_signature.cc``), transcribed here for the ops
the emitter writes. As in ``UpdateOpVersion``, an operator code shared by several ops takes the
highest version any of them needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class Operand:
    """What the version rules look at in one input or output tensor."""

    type: str                        # TensorType name: "FLOAT32", "INT8", "INT16", "INT32", ...
    scales: tuple[float, ...] = ()   # its quantisation scales (empty: none)
    quantized: bool = False          # has a quantization table at all
    shape: tuple[int, ...] = ()
    axis: int = 0                    # quantized dimension

    @property
    def per_channel(self) -> bool:
        """More than one scale, one per slice along the quantized dimension."""
        return (len(self.scales) > 1 and len(self.shape) > self.axis
                and len(self.scales) == self.shape[self.axis])


def _fully_connected(i: Sequence[Operand], o: Sequence[Operand], opts: Any) -> int:
    a, w, out = i[0].type, i[1].type, o[0].type
    if (a, w, out) == ("FLOAT32", "INT8", "FLOAT32") and i[1].per_channel:
        return 12
    if (a, w, out) == ("INT16", "INT8", "INT16") and getattr(opts, "quantizedBiasType", 0):
        return 11
    if (a, w, out) == ("INT16", "INT16", "INT16"):
        return 7
    if len(i) == 2:  # no bias
        return 6
    if getattr(opts, "keepNumDims", False):
        return 5
    if (a, w, out) == ("INT8", "INT8", "INT8"):
        return 4
    if (a, w, out) == ("FLOAT32", "INT8", "FLOAT32"):  # hybrid
        return 9 if getattr(opts, "asymmetricQuantizeInputs", False) else 3
    if getattr(opts, "weightsFormat", 0):  # SHUFFLED4x16INT8
        return 2
    return 1


def _mul(i: Sequence[Operand], o: Sequence[Operand], opts: Any) -> int:
    quantized = i[0].quantized or i[1].quantized
    if i[0].type == "INT16" and not quantized:
        return 7
    if i[0].type == "INT64":
        return 5
    if i[0].type == "INT16":
        return 4
    if i[0].scales and i[1].scales and o[0].scales and \
            i[0].scales[0] * i[1].scales[0] / o[0].scales[0] >= 1.0:
        return 3
    return 2 if i[0].type == "INT8" else 1


def _add(i: Sequence[Operand], o: Sequence[Operand], opts: Any) -> int:
    if i[0].type == "INT16" and not i[0].quantized:
        return 5
    if i[0].type == "INT64":
        return 4
    if i[0].type == "INT16" and o[0].type == "INT16" and opts is not None \
            and not getattr(opts, "potScaleInt16", True):
        return 3
    return 2 if i[0].type == "INT8" else 1


def _logistic_tanh(i, o, opts) -> int:
    if i[0].type == "INT16" and o[0].type == "INT16":
        return 3
    return 2 if i[0].type == "INT8" else 1


def _relu(i, o, opts) -> int:
    if i[0].type == "INT16":
        return 3
    return 2 if i[0].type in ("INT8", "UINT8") else 1


def _split(i, o, opts) -> int:  # input 0 is the axis, input 1 the tensor
    return {"INT16": 4, "INT32": 3, "INT8": 2}.get(i[1].type, 1)


def _split_v(i, o, opts) -> int:
    return 2 if i[0].type == "INT8" else 1


def _unpack(i, o, opts) -> int:
    if i[0].type in ("INT8", "UINT8"):
        return 2
    if i[0].type == "BOOL":
        return 3
    if i[0].type == "INT16" and o[0].type == "INT16":
        return 4
    return 1


def _pack(i, o, opts) -> int:
    if i[0].type == "INT8":
        return 2
    if i[0].type == "INT16" and o[0].type == "INT16":
        return 3
    return 4 if i[0].type == "UINT32" else 1


def _quantize(i, o, opts) -> int:
    if "INT4" in (i[0].type, o[0].type):
        return 4
    if o[0].per_channel:
        return 3
    return 2 if o[0].type == "INT16" else 1


def _dequantize(i, o, opts) -> int:
    if i[0].type == "INT4":
        return 6
    if i[0].type in ("INT16", "FLOAT16"):
        return 3
    if i[0].type == "INT8":
        return 5 if i[0].per_channel else 2
    return 1


def _maximum_minimum(i, o, opts) -> int:  # broadcasting beyond 4-D (3) never written here
    if i[0].type == "INT16" and o[0].type == "INT16":
        return 4
    return 2 if i[0].type == "INT8" else 1


RULES: dict[str, Callable[[Sequence[Operand], Sequence[Operand], Any], int]] = {
    "FULLY_CONNECTED": _fully_connected,
    "MUL": _mul,
    "ADD": _add,
    "LOGISTIC": _logistic_tanh,
    "TANH": _logistic_tanh,
    "RELU": _relu,
    "RELU6": _relu,  # one case with RELU in op_version.cc
    "SPLIT": _split,
    "SPLIT_V": _split_v,
    "UNPACK": _unpack,
    "PACK": _pack,
    "QUANTIZE": _quantize,
    "DEQUANTIZE": _dequantize,
    "MINIMUM": _maximum_minimum,  # a clip with no kernel of its own (float)
    "MAXIMUM": _maximum_minimum,
}
"""op code -> its version rule. Ops without a rule here (RESHAPE, RELU_0_TO_1, RELU_N1_TO_1) are version 1 in
every form slimedge writes them (op_version.cc's default case)."""


def op_version(code: str, inputs: Sequence[Operand], outputs: Sequence[Operand],
               options: Any = None) -> int:
    """The version an operator needs, by op_version.cc's rule for ``code``."""
    rule = RULES.get(code)
    return rule(inputs, outputs, options) if rule is not None else 1


__all__ = ["Operand", "RULES", "op_version"]
