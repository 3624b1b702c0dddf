"""TFLite operator versions: every (op, types) form slimedge writes carries the version TensorFlow's
rules give it, so a runtime without that kernel refuses the file at load.

The table below is transcribed from TensorFlow's ``tensorflow/lite/tools/versioning/op_version.cc``
(``GetBuiltinOperatorVersion``; the per-channel and "input quantized" facts as
``op_signature.cc`` derives them), independently of ``slimedge.exporters.tflite.versions``.
"""
import pytest

from helpers import make_checkpoint
from slimedge import ir, variants
from slimedge.exporters import tflite
from slimedge.exporters.tflite import versions

s = pytest.importorskip("ai_edge_litert.schema_py_generated")

F, I8, I16 = "FLOAT32", "INT8", "INT16"
# (op, signature) -> version; the signatures (see _signature): FULLY_CONNECTED (input, weight,
# output, bias?, per-channel weight?); MUL (input, output, rescale s1*s2/s_out >= 1?); the others
# (first data input, output)
OP_VERSION = {
    # FULLY_CONNECTED: hybrid per channel 12 > no bias 6 > int8 4 > hybrid 3 > float 1
    ("FULLY_CONNECTED", (F, F, F, True, False)): 1,
    ("FULLY_CONNECTED", (F, F, F, False, False)): 6,
    ("FULLY_CONNECTED", (F, I8, F, True, False)): 3,
    ("FULLY_CONNECTED", (F, I8, F, False, False)): 6,
    ("FULLY_CONNECTED", (F, I8, F, True, True)): 12,
    ("FULLY_CONNECTED", (F, I8, F, False, True)): 12,
    ("FULLY_CONNECTED", (I8, I8, I8, True, False)): 4,
    ("FULLY_CONNECTED", (I8, I8, I8, True, True)): 4,      # per channel: no rule of its own
    ("FULLY_CONNECTED", (I8, I8, I8, False, False)): 6,
    ("FULLY_CONNECTED", (I8, I8, I8, False, True)): 6,
    ("FULLY_CONNECTED", (I16, I8, I16, True, False)): 1,   # 16x8, no quantized_bias_type
    ("FULLY_CONNECTED", (I16, I8, I16, True, True)): 1,
    ("FULLY_CONNECTED", (I16, I8, I16, False, False)): 6,
    ("FULLY_CONNECTED", (I16, I8, I16, False, True)): 6,
    # MUL: int16 (quantised inputs) 4 > rescale >= 1 3 > int8 2 > float 1
    ("MUL", (F, F, False)): 1,
    ("MUL", (I8, I8, False)): 2,
    ("MUL", (I8, I8, True)): 3,
    ("MUL", (I16, I16, False)): 4,
    ("MUL", (I16, I16, True)): 4,
    # ADD: int16 with pot_scale_int16 false 3 > int8 2 > float 1
    ("ADD", (F, F)): 1, ("ADD", (I8, I8)): 2, ("ADD", (I16, I16)): 3,
    ("LOGISTIC", (F, F)): 1, ("LOGISTIC", (I8, I8)): 2, ("LOGISTIC", (I16, I16)): 3,
    ("TANH", (F, F)): 1, ("TANH", (I8, I8)): 2, ("TANH", (I16, I16)): 3,
    ("RELU", (F, F)): 1, ("RELU", (I8, I8)): 2, ("RELU", (I16, I16)): 3,
    ("RELU_0_TO_1", (F, F)): 1, ("RELU_0_TO_1", (I8, I8)): 1, ("RELU_0_TO_1", (I16, I16)): 1,
    ("SPLIT", (F, F)): 1, ("SPLIT", (I8, I8)): 2, ("SPLIT", (I16, I16)): 4,
    ("SPLIT_V", (F, F)): 1, ("SPLIT_V", (I8, I8)): 2, ("SPLIT_V", (I16, I16)): 1,
    ("UNPACK", (F, F)): 1, ("UNPACK", (I8, I8)): 2, ("UNPACK", (I16, I16)): 4,
    ("PACK", (F, F)): 1, ("PACK", (I8, I8)): 2, ("PACK", (I16, I16)): 3,
    ("RESHAPE", (F, F)): 1, ("RESHAPE", (I8, I8)): 1, ("RESHAPE", (I16, I16)): 1,
    # QUANTIZE: to int16 2, else 1 (from float, or a requantisation)
    ("QUANTIZE", (F, I8)): 1, ("QUANTIZE", (I8, I8)): 1, ("QUANTIZE", (I16, I8)): 1,
    ("QUANTIZE", (F, I16)): 2, ("QUANTIZE", (I8, I16)): 2, ("QUANTIZE", (I16, I16)): 2,
    # DEQUANTIZE: int16 3 > int8 2
    ("DEQUANTIZE", (I8, F)): 2, ("DEQUANTIZE", (I16, F)): 3,
}


def _signature(sg, op, code: str):
    types = {v: k for k, v in vars(s.TensorType).items() if not k.startswith("_")}
    t = lambda i: sg.Tensors(i)  # noqa: E731
    ty = lambda i: types[t(i).Type()]  # noqa: E731
    ins, outs = list(op.InputsAsNumpy()), list(op.OutputsAsNumpy())
    if code == "FULLY_CONNECTED":
        w = t(ins[1])
        nscales = w.Quantization().ScaleLength() if w.Quantization() else 0
        per_channel = nscales > 1 and nscales == w.Shape(0)
        return ty(ins[0]), ty(ins[1]), ty(outs[0]), len(ins) == 3, per_channel
    if code == "MUL":
        sc = [t(i).Quantization().Scale(0) if t(i).Quantization() and t(i).Quantization().ScaleLength()
              else 0.0 for i in (ins[0], ins[1], outs[0])]
        return ty(ins[0]), ty(outs[0]), bool(all(sc) and sc[0] * sc[1] / sc[2] >= 1.0)
    data = ins[1] if code == "SPLIT" else ins[0]  # SPLIT's input 0 is the axis
    return ty(data), ty(outs[0])


def _check(data: bytes, seen: set) -> None:
    m = s.Model.GetRootAs(data, 0)
    sg = m.Subgraphs(0)
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    want: dict[int, int] = {}
    for k in range(sg.OperatorsLength()):
        op = sg.Operators(k)
        code = names[m.OperatorCodes(op.OpcodeIndex()).BuiltinCode()]
        key = (code, _signature(sg, op, code))
        assert key in OP_VERSION, f"slimedge writes {key}: add it to the table from op_version.cc"
        seen.add(key)
        want[op.OpcodeIndex()] = max(want.get(op.OpcodeIndex(), 1), OP_VERSION[key])
    for index, version in want.items():  # one code per op, at the highest version its ops need
        oc = m.OperatorCodes(index)
        assert oc.Version() == version, (names[oc.BuiltinCode()], oc.Version(), version)


def _ranges(g: ir.Graph) -> dict:
    # a structure test: any ranges give every value a quantisation (the fixed-output ops keep theirs)
    return {v: (-2.0, 2.0) for v in g.shapes}


def test_every_written_form_has_its_op_version(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    seen: set = set()
    for variant in variants.VARIANTS:
        for gates, act, n in (("sigmoid", "tanh", 8), ("hard_sigmoid", "sigmoid", 128)):
            path, _, _ = make_checkpoint(tmp_path / f"{variant}{n}.safetensors", variant, 5, n, 2,
                                         classes=3, gate_activation=gates, activation=act)
            g = ir.lower(path)
            files = [tflite.to_bytes(ir.lower(path, fold_normalization=True))[0],
                     tflite.to_bytes(g, quantize="dynamic")[0],
                     tflite.to_bytes(g, quantize="dynamic", per_channel=False)[0]]
            for state_bits, act_bits in ((8, 8), (16, 8), (8, 16)):
                files.append(tflite.to_bytes(g, quantize="int8", ranges=_ranges(g),
                                             state_bits=state_bits, act_bits=act_bits)[0])
            for data in files:
                _check(data, seen)
                Interpreter(model_content=data)  # LiteRT has a kernel of every version written
    # the forms whose version is not 1 are all exercised
    for key in [("FULLY_CONNECTED", (F, F, F, False, False)), ("FULLY_CONNECTED", (F, I8, F, True, True)),
                ("FULLY_CONNECTED", (F, I8, F, True, False)), ("FULLY_CONNECTED", (I8, I8, I8, True, False)),
                ("MUL", (I16, I16, False)), ("ADD", (I16, I16)), ("LOGISTIC", (I16, I16)),
                ("TANH", (I8, I8)), ("UNPACK", (I16, I16)), ("PACK", (I16, I16)), ("SPLIT", (I8, I8)),
                ("QUANTIZE", (F, I16)), ("DEQUANTIZE", (I16, F)), ("RELU_0_TO_1", (I8, I8))]:
        assert key in seen, key


@pytest.mark.parametrize("key", sorted(OP_VERSION, key=str))
def test_version_rules_match_the_table(key):
    """slimedge's rules against the table, for every row (also the forms no file holds now)."""
    code, sig = key
    if code == "FULLY_CONNECTED":
        a, w, o, bias, per_channel = sig
        scales = (0.1, 0.2) if per_channel else (0.1,) if w == I8 else ()
        ins = [versions.Operand(a, (0.1,) if a != F else (), a != F),
               versions.Operand(w, scales, bool(scales), (2, 4))]
        ins += [versions.Operand("INT32")] if bias else []
        outs = [versions.Operand(o, (0.1,) if o != F else (), o != F)]
        opts = s.FullyConnectedOptionsT()
    elif code == "MUL":
        a, o, rescale = sig
        q = a != F
        ins = [versions.Operand(a, (2.0 if rescale else 0.1,) if q else (), q)] * 2
        outs = [versions.Operand(o, (0.5,) if q else (), q)]
        opts = s.MulOptionsT()
    else:
        a, o = sig
        ins = [versions.Operand(a, (0.1,) if a != F else (), a != F)]
        if code == "SPLIT":
            ins = [versions.Operand("INT32")] + ins
        outs = [versions.Operand(o, (0.1,) if o != F else (), o != F)]
        opts = s.AddOptionsT() if code == "ADD" else None
        if code == "ADD":
            opts.potScaleInt16 = False
            ins = ins * 2
    assert versions.op_version(code, ins, outs, opts) == OP_VERSION[key]

