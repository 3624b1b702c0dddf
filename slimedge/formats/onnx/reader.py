"""Reading an ONNX file's slimedge config from its metadata_props (the ``onnx`` package, no
interpreter)."""
from __future__ import annotations

import os

from ...errors import ModelFileError
from ..model_info import METADATA_KEY, parse_json


def read_config(path_or_model) -> dict:
    """The ``slimedge`` config JSON stored in a file's (or a ModelProto's) metadata_props; a file
    that is not a slimedge ONNX export raises ModelFileError naming it."""
    import onnx

    where = "ONNX model" if isinstance(path_or_model, onnx.ModelProto) else os.fspath(path_or_model)
    try:
        model = path_or_model if isinstance(path_or_model, onnx.ModelProto) else onnx.load(
            os.fspath(path_or_model), load_external_data=False)
    except Exception:  # onnx raises protobuf's DecodeError and others for a foreign file
        raise ModelFileError(f"{where}: not a loadable ONNX model (truncated or another kind of "
                             f"file?)") from None
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise ModelFileError(f"{where}: a valid ONNX model, but not a slimedge export (no "
                             f"'{METADATA_KEY}' entry in metadata_props)")
    return parse_json(props[METADATA_KEY], where)


# ---- external data, found with a bare protobuf walk (no onnx package needed) --------------------
# the messages that can hold a TensorProto, and in which fields (onnx.proto3):
# Model 7 graph, 25 functions; Graph 1 node, 5 initializer, 15 sparse_initializer; Node 5 attribute;
# Attribute 5 t, 6 g, 10 tensors, 11 graphs, 22 sparse_tensor, 23 sparse_tensors; Function 7 node;
# SparseTensor 1 values, 2 indices; Tensor 13 external_data, 14 data_location (1 = EXTERNAL)
_CHILDREN = {"model": {7: "graph", 25: "function"}, "graph": {1: "node", 5: "tensor", 15: "sparse"},
             "node": {5: "attribute"}, "function": {7: "node"}, "sparse": {1: "tensor", 2: "tensor"},
             "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse",
                           23: "sparse"}}
_MAX_NESTING = 64


def _varint(b, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(b) or shift > 63:
            raise ValueError("truncated varint")
        byte = b[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7


def _uses_external_data(b, start: int, end: int, kind: str, depth: int) -> bool:
    if depth > _MAX_NESTING:
        raise ValueError("nested too deeply")
    at = start
    while at < end:
        key, at = _varint(b, at)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(b, at)
            if kind == "tensor" and field == 14 and value == 1:
                return True
        elif wire == 2:
            n, at = _varint(b, at)
            if at + n > end:
                raise ValueError("a field runs past its message")
            if kind == "tensor" and field == 13:
                return True
            child = _CHILDREN.get(kind, {}).get(field)
            if child and _uses_external_data(b, at, at + n, child, depth + 1):
                return True
            at += n
        elif wire == 1:
            at += 8
        elif wire == 5:
            at += 4
        else:
            raise ValueError(f"wire type {wire}")
    if at != end:
        raise ValueError("a field runs past its message")
    return False


def check_no_external_data(data: bytes, where) -> None:
    """Refuse (ModelFileError naming ``where``) an ONNX file whose tensors keep their data in other
    files: those files are not covered by the file's digest, and a slimedge export never has
    any. A file the walk cannot parse is left to the interpreter's own error."""
    try:
        external = _uses_external_data(memoryview(data), 0, len(data), "model", 0)
    except (ValueError, IndexError):
        return
    if external:
        raise ModelFileError(f"{where}: its tensors keep their data in external files, which its "
                             f"integrity digest does not cover (a slimedge export holds all its "
                             f"weights); refused")
