"""ONNX quantizers: int8 step graphs written by onnxruntime's quantisation tools.

The two rows of the ONNX format's quantizers (:data:`slimedge.formats.FORMATS`), with the
signature every quantizer has (``options``: a :class:`~slimedge.exporters.quantize.QuantizeOptions`;
``splits``: the model's data set)::

    dynamic(graph, path, *, mode, splits, options) -> dict
        onnxruntime ``quantize_dynamic``: int8 weights on MatMul (per channel with
        ``per_channel``), activations quantised on the fly; the step graph's Gemms are rewritten
        to MatMul + Add first (onnxruntime's dynamic quantizer skips Gemm)
    int8(graph, path, *, mode, splits, options) -> dict
        onnxruntime ``quantize_static``, QDQ format, int8 weights (symmetric) and int8
        activations (asymmetric), MinMax-calibrated on the float model's real rollouts of the
        training split (:mod:`slimedge.exporters.calibration`); ``scope`` picks what is quantised

Both start from the unfolded float graph (one ONNX node per IR op, the input normalisation kept),
and tag the file's ``slimedge`` metadata with what they did. The task-level check is the caller's
(:func:`slimedge.exporters.quantize.quantize`).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .. import integrity, ir
from ..errors import UsageError
from . import calibration

SCOPES = {"all": None, "matmul": ["Gemm", "MatMul"]}
"""``scope`` -> the op types ``quantize_static`` quantises (None: every op it can)."""


def _float_onnx(graph: ir.Graph, tmpdir: str, *, matmul: bool) -> str:
    """The float step graph as ONNX in ``tmpdir`` (unfused: one node per IR op); with ``matmul``
    every plain Gemm(a, W, b, transB=1) becomes MatMul(a, W^T) + Add(b)."""
    import onnx
    from onnx import numpy_helper

    from . import onnx as onnx_exporter

    model = onnx_exporter.build(graph, mode="step", optimize=False)  # one ONNX node per IR op
    if matmul:
        g = model.graph
        inits = {i.name: i for i in g.initializer}
        nodes = []
        for node in g.node:
            if node.op_type != "Gemm":
                nodes.append(node)
                continue
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
                nodes.append(node)
                continue
            a, w, *b = node.input
            wt = numpy_helper.to_array(inits[w])
            if attrs.get("transB", 0):
                wt = wt.T
            name = f"{w}.T" if attrs.get("transB", 0) else w
            if name not in inits:
                t = numpy_helper.from_array(np.ascontiguousarray(wt), name)
                g.initializer.append(t)
                inits[name] = t
            out = node.output[0]
            mm = out + ".matmul" if b else out
            nodes.append(onnx.helper.make_node("MatMul", [a, name], [mm], name=f"{out}.matmul"))
            if b:
                nodes.append(onnx.helper.make_node("Add", [mm, b[0]], [out], name=f"{out}.bias"))
        del g.node[:]
        g.node.extend(nodes)
        used = {i for n in g.node for i in n.input}
        keep = [i for i in g.initializer if i.name in used]
        del g.initializer[:]
        g.initializer.extend(keep)
    path = os.path.join(tmpdir, "float.onnx")
    onnx.save_model(model, path, save_as_external_data=False)
    return path


def _tag_onnx(path, info: dict) -> None:
    """Merge ``info`` into the ``export`` section of the file's slimedge metadata."""
    import onnx

    model = onnx.load(os.fspath(path))
    props = {p.key: p.value for p in model.metadata_props}
    meta = json.loads(props.get("slimedge", "{}"))
    meta["export"] = {**meta.get("export", {}), **info}
    props["slimedge"] = integrity.dumps(meta)
    onnx.helper.set_model_props(model, props)
    onnx.save_model(model, os.fspath(path), save_as_external_data=False)
    integrity.seal(path)  # a file written here loads checked, as an exported one does


def _step_only(mode: str) -> None:
    if mode != "step":
        raise UsageError(f"quantised ONNX exports are step graphs; mode={mode!r} is not supported")


def dynamic(graph: ir.Graph, path, *, mode: str, splits, options) -> dict:
    """int8 weights, activations quantised per call (see the module docstring); needs no data."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _step_only(mode)
    per_channel = options.per_channel
    with tempfile.TemporaryDirectory(dir=Path(path).parent) as tmp:  # beside the output
        src = _float_onnx(graph, tmp, matmul=True)
        quantize_dynamic(src, os.fspath(path), weight_type=QuantType.QInt8, per_channel=per_channel)
    info = {"format": "onnx", "mode": "step", "quantize": "dynamic",
            "weights": "int8 symmetric" + (" per channel" if per_channel else ""),
            "activations": "float32, quantised per call by DynamicQuantizeLinear"}
    _tag_onnx(path, info)
    return info


def int8(graph: ir.Graph, path, *, mode: str, splits, options) -> dict:
    """Static QDQ, calibrated on ``splits["train"]``. ``options.scope="matmul"`` quantises the
    Gemms (weights and their input activations, x and h) and keeps the element-wise gate and
    cell-state arithmetic float; ``scope="all"`` lets onnxruntime quantise every op it can (Add,
    Mul, Sigmoid, ...), the cell state included."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    _step_only(mode)
    scope, per_channel, samples = options.scope, options.per_channel, options.calibration_samples
    if scope not in SCOPES:
        raise UsageError(f"unknown scope {scope!r}; valid: {', '.join(SCOPES)}")
    reader = calibration.reader(graph, splits["train"], samples=samples, seed=options.seed)
    with tempfile.TemporaryDirectory(dir=Path(path).parent) as tmp:  # beside the output
        src = _float_onnx(graph, tmp, matmul=False)
        quantize_static(src, os.fspath(path), reader, quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=SCOPES[scope],
                        per_channel=per_channel, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    info = {"format": "onnx", "mode": "step", "quantize": "int8", "quant_format": "QDQ",
            "weights": "int8 symmetric" + (" per channel" if per_channel else ""),
            "activations": "int8 asymmetric, MinMax over real rollouts" + (
                "; only the Gemm inputs (x, h): element-wise gate/cell-state ops stay float"
                if scope == "matmul" else "; every op onnxruntime quantises, cell state included"),
            "scope": scope,
            "calibration": {"split": "train",
                            "sequences": min(samples or 10**9, len(splits["train"])),
                            "steps": len(reader.feeds)}}
    _tag_onnx(path, info)
    return info


__all__ = ["dynamic", "int8", "SCOPES"]
