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


# ---- the graph onnxruntime is given: bounded before it sees it ----------------------------------
STEP_OPS = frozenset({
    "Add", "Mul", "Sigmoid", "Tanh", "HardSigmoid", "Clip", "Identity", "Gemm", "MatMul",  # float
    "Split", "Squeeze", "Unsqueeze", "Concat", "Gather",  # state layout
    "DynamicQuantizeLinear", "MatMulInteger", "Cast",  # onnxruntime's quantize_dynamic
    "QuantizeLinear", "DequantizeLinear",  # quantize_static (QDQ)
    "LSTM", "Slice", "Sub", "Div", "Constant",  # the torch.onnx baseline (slimedge.baselines)
    "com.microsoft.DynamicQuantizeLSTM",  # ... quantised (its shapes inferred as an LSTM's)
})
"""The operators of every step graph slimedge writes or profiles (``exporters.onnx`` and its
quantisers, the torch.onnx baseline), a domain other than ONNX's own written before the name. None
makes a tensor whose size comes from a tensor's values (ConstantOfShape, Expand, Tile, Range,
Resize, Pad, ...), and none loops; broadcasting, which can square a size, and the sizes in
attributes (an LSTM's ``hidden_size``) are bounded by :data:`TOTAL_FACTOR`."""
ROW_FACTOR = 8
TOTAL_FACTOR = 16
"""At batch 1, every tensor a step computes holds at most ``ROW_FACTOR * (m + layers * n + K) +
P`` elements, P the initializers' (a step graph's largest is a layer's four gates, ``4 n``, or a
weight dequantised), and all of them together ``TOTAL_FACTOR`` times that; more is a graph made
to allocate (two broadcast vectors of 10^5 values make one of 10^10)."""
_ELEMENT_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8,
                  16: 2}  # TensorProto data types: float, uint8, int8, uint16, int16, int32, ...


def check_step_graph(data: bytes, where) -> dict:
    """The file's slimedge config, checked (:func:`..binding.parse_config`); and refuse
    (ModelFileError naming ``where``), before onnxruntime loads it, an ONNX file that
    could make it allocate without bound: an operator no slimedge step graph uses, a subgraph, a
    sparse initializer (made dense on load), or tensors that shape inference at batch 1 finds
    larger than the step graph's sizes allow (:data:`TOTAL_FACTOR`)."""
    import onnx

    from ..binding import parse_config

    try:
        model = onnx.load_from_string(bytes(data))
    except Exception:  # protobuf's DecodeError and others
        raise ModelFileError(f"{where}: not a loadable ONNX model (truncated or another kind of "
                             f"file?)") from None
    config = parse_config(where, {p.key: p.value for p in model.metadata_props}.get(METADATA_KEY),
                          "ONNX model")
    if (config.get("export") or {}).get("state_layout", "layers_first") != "layers_first":
        raise ModelFileError(f"{where}: a Triton repository's model (its state h, c batch first, "
                             f"for Triton's implicit state), not a step graph the runtime steps; "
                             f"load the .onnx export it was made from (the repository's *_python "
                             f"model holds one)")
    graph = model.graph
    for node in graph.node:
        if node.op_type == "Scan" and node.domain in ("", "ai.onnx"):
            raise ModelFileError(f"{where}: a time loop (Scan): a sequence-mode export? the "
                                 f"runtime steps step-mode graphs: export with mode='step'")
        op = f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        if op not in STEP_OPS:
            raise ModelFileError(f"{where}: operator {op} is not one a slimedge step graph uses "
                                 f"(those are {', '.join(sorted(STEP_OPS))}); refused before "
                                 f"onnxruntime loads it (the file is forged or not a slimedge "
                                 f"step graph)")
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS,
                          onnx.AttributeProto.SPARSE_TENSOR, onnx.AttributeProto.SPARSE_TENSORS)
               for a in node.attribute):
            raise ModelFileError(f"{where}: node {node.name or node.op_type!r} holds a subgraph or "
                                 f"a sparse tensor, which no slimedge step graph has")
    if len(graph.sparse_initializer) or len(model.functions):
        raise ModelFileError(f"{where}: sparse initializers or local functions, which no slimedge "
                             f"step graph has (a sparse tensor is made dense on load)")
    m, n, layers, k = (int(config["graph"][key]) for key in
                       ("input_size", "hidden_size", "num_layers", "output_size"))
    # the values the file holds (not the shapes it states: onnxruntime refuses a mismatch)
    params = sum(max(_stored_values(t), 0) for t in graph.initializer)
    bound = ROW_FACTOR * (m + layers * n + k) + params  # a weight dequantised is a params' worth
    total, total_bound = 0, TOTAL_FACTOR * bound
    for value in graph.input:  # batch 1: every symbolic dimension is the batch
        for d in value.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.dim_value = 1
    for value in graph.output:  # outputs as inferred, not as declared
        value.type.tensor_type.ClearField("shape")
    _as_lstm(graph, where)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph
    except Exception as e:  # onnx's InferenceError and others: a graph that does not type-check
        raise ModelFileError(f"{where}: its graph does not type-check "
                             f"({' '.join(str(e).split())[:300]})") from None
    known = {t.name for t in graph.initializer}
    for value in (*inferred.value_info, *inferred.output):
        if value.name in known:
            continue
        dims = value.type.tensor_type.shape.dim
        if not value.type.tensor_type.HasField("shape") or any(
                not d.HasField("dim_value") for d in dims):
            raise ModelFileError(f"{where}: the size of {value.name!r} cannot be inferred from the "
                                 f"graph at batch 1 (a slimedge step graph's sizes all can)")
        size = _product(d.dim_value for d in dims)
        if size > bound:
            raise ModelFileError(f"{where}: {value.name!r} would hold {size:,} values at batch 1, "
                                 f"more than the {bound:,} a step graph of its sizes (m={m}, "
                                 f"n={n}, {layers} layers, K={k}) can need; refused before "
                                 f"onnxruntime allocates it")
        total += size
    if total > total_bound:
        raise ModelFileError(f"{where}: its tensors would hold {total:,} values in all at batch 1, "
                             f"more than the {total_bound:,} a step graph of its sizes can need; "
                             f"refused before onnxruntime allocates them")
    return config


def _as_lstm(graph, where) -> None:
    """Each com.microsoft DynamicQuantizeLSTM (unknown to onnx's shape inference) becomes an LSTM
    of its ``hidden_size`` and ``direction`` on the same X: the same output shapes. Its weights
    become shape-only graph inputs (nothing is allocated: the graph is only inferred)."""
    from onnx import TensorProto, helper

    for k, node in enumerate(graph.node):
        if node.op_type != "DynamicQuantizeLSTM":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if not isinstance(attrs.get("hidden_size"), int):
            raise ModelFileError(f"{where}: DynamicQuantizeLSTM {node.name!r} states no "
                                 f"hidden_size")
        h, dirs = attrs["hidden_size"], 2 if attrs.get("direction") == b"bidirectional" else 1
        w, r = f"{node.name}.W.shape", f"{node.name}.R.shape"
        graph.input.extend([helper.make_tensor_value_info(w, TensorProto.FLOAT, [dirs, 4 * h, 1]),
                            helper.make_tensor_value_info(r, TensorProto.FLOAT, [dirs, 4 * h, h])])
        lstm = helper.make_node("LSTM", [node.input[0], w, r], list(node.output), name=node.name,
                                hidden_size=h, direction=attrs.get("direction", b"forward"))
        graph.node[k].CopyFrom(lstm)


def _product(dims) -> int:
    out = 1
    for d in dims:
        if d < 0:
            return -1
        out *= int(d)
    return out


def _stored_values(t) -> int:
    """How many values an initializer's data holds (raw bytes or a typed field)."""
    if t.HasField("raw_data"):
        size = _ELEMENT_BYTES.get(t.data_type)
        return len(t.raw_data) // size if size and len(t.raw_data) % size == 0 else -1
    # typed fields; float16, int8 and the like are stored one per int32_data entry
    return max(len(t.float_data), len(t.int32_data), len(t.int64_data), len(t.double_data),
               len(t.uint64_data), len(t.string_data))
