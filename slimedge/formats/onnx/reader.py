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
