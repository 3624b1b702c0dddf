"""TFLite emitter: float graphs against the float64 reference on LiteRT; file structure; int8 forms.

Quantised exports on real data (FSDD) are tested in test_quantize.py.
"""
import json

import numpy as np
import pytest

from helpers import make_checkpoint, reference_outputs, run_without_torch, seeded
from slimedge import integrity, ir, runtime, variants
from slimedge.exporters import tflite
from slimedge.formats import tflite as tflite_format

ALL = list(variants.VARIANTS)


class _litert:
    """A step graph (a file, or its bytes) on the runtime's litert backend: ``run(x, h, c)``."""

    def __init__(self, path_or_bytes) -> None:
        import os
        import tempfile

        if not isinstance(path_or_bytes, (bytes, bytearray)):
            self.model = runtime.load(path_or_bytes, backend="litert", verify=False)
            return
        fd, name = tempfile.mkstemp(suffix=".tflite")
        try:
            with open(fd, "wb") as f:
                f.write(path_or_bytes)
            self.model = runtime.load(name, backend="litert", verify=False)
        finally:
            os.unlink(name)

    def run(self, x, h, c) -> dict:
        arrays = (np.ascontiguousarray(a, np.float32) for a in (x, h, c))
        y, h2, c2 = self.model.step_raw(*arrays)
        return {"y": y.copy(), "h_next": h2.copy(), "c_next": c2.copy()}


def _rollout(runner, frames, h, c):
    ys = []
    for t in range(frames.shape[0]):
        out = runner.run(frames[t], h, c)
        ys.append(out["y"])
        h, c = out["h_next"], out["c_next"]
    return np.stack(ys), h, c


@pytest.mark.parametrize("variant", ALL)
@pytest.mark.parametrize("layers", [1, 2])
def test_float_tflite_matches_reference(tmp_path, variant, layers):
    m, n, B, T = 5, 8, 3, 100
    path, w, extra = make_checkpoint(tmp_path / "m.safetensors", variant, m, n, layers, classes=4)
    info = tflite.emit(path, tmp_path / "m.tflite")
    assert info["quantize"] == "none" and info["tflite_runtime_ok"]
    runner = _litert(tmp_path / "m.tflite")
    frames = seeded("frames", variant).normal(size=(T, B, m))
    h0, c0 = seeded("state", variant).normal(size=(2, layers, B, n)) * 0.5
    ys, h, c = _rollout(runner, frames, h0, c0)
    ry, rh, rc = reference_outputs(variant, w, extra, frames, h0, c0)
    # float32 arithmetic: at most 1e-5, scaled by the cell state's magnitude where that exceeds 1
    # (LSTM4a/LSTM5a's c reaches ~12 over 100 steps: there the IR's own float32 run differs from
    # the float64 reference by 1e-5 in c, and that reaches h and y)
    tol = 1e-5 * max(1.0, np.abs(rc).max())
    for got, want in ((ys, ry), (h, rh), (c, rc)):
        assert np.abs(got - want).max() <= tol, (np.abs(got - want).max(), tol)


@pytest.mark.parametrize("variant", ["LSTM0", "LSTM_C6"])
def test_no_head_and_activations(tmp_path, variant):
    path, w, extra = make_checkpoint(tmp_path / "m.safetensors", variant, 4, 6, 2)
    runner = _litert(tflite.to_bytes(ir.lower(path))[0])
    frames = seeded("f").normal(size=(30, 2, 4))
    ys, _, _ = _rollout(runner, frames, np.zeros((2, 2, 6)), np.zeros((2, 2, 6)))
    ry, _, _ = reference_outputs(variant, w, extra, frames)
    np.testing.assert_allclose(ys, ry, atol=1e-5)
    # hard-sigmoid gates (MUL, ADD, RELU_0_TO_1) and a sigmoid cell activation
    path, w, extra = make_checkpoint(tmp_path / "a.safetensors", variant, 4, 6, 2, classes=3,
                                     gate_activation="hard_sigmoid", activation="sigmoid")
    data, info = tflite.to_bytes(ir.lower(path))
    if variant == "LSTM0":
        assert info["ops"]["RELU_0_TO_1"] == 6
    ys, _, _ = _rollout(_litert(data), frames * 2, np.zeros((2, 2, 6)), np.zeros((2, 2, 6)))
    ry, _, _ = reference_outputs(variant, w, extra, frames * 2, gate_activation="hard_sigmoid",
                                 activation="sigmoid")
    np.testing.assert_allclose(ys, ry, atol=1e-5)


def test_file_structure(tmp_path):
    from ai_edge_litert import schema_py_generated as s

    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM0", 13, 32, 2, classes=10)
    g = ir.lower(path)
    tflite.emit(g, tmp_path / "m.tflite")
    data = (tmp_path / "m.tflite").read_bytes()
    assert data[4:8] == b"TFL3"
    m = s.Model.GetRootAs(data, 0)
    assert m.Buffers(0).DataLength() == 0  # buffer 0 is the empty buffer
    base = np.frombuffer(data, np.uint8).ctypes.data
    for k in range(1, m.BuffersLength()):
        buf = m.Buffers(k)
        if buf.DataLength():
            assert (buf.DataAsNumpy().ctypes.data - base) % 16 == 0, k
    sg = m.Subgraphs(0)
    names = lambda idx: [sg.Tensors(i).Name().decode() for i in idx]  # noqa: E731
    assert names(sg.InputsAsNumpy()) == ["x", "h", "c"]
    assert names(sg.OutputsAsNumpy()) == ["y", "h_next", "c_next"]
    x = sg.Tensors(sg.Inputs(0))
    assert list(x.ShapeSignatureAsNumpy()) == [-1, 13]
    assert list(sg.Tensors(sg.Inputs(1)).ShapeSignatureAsNumpy()) == [2, -1, 32]
    assert m.SignatureDefs(0).SignatureKey().decode() == "serving_default"
    meta = tflite_format.read_config(tmp_path / "m.tflite")
    assert meta["lstm"]["variant"]["name"] == "LSTM0"
    assert meta["graph"] == json.loads(g.metadata_json())["graph"]
    assert meta["export"]["quantize"] == "none"
    # the FULLY_CONNECTED weights are (out, in) as in the IR
    fc = [sg.Operators(i) for i in range(sg.OperatorsLength())
          if m.OperatorCodes(sg.Operators(i).OpcodeIndex()).BuiltinCode()
          == s.BuiltinOperator.FULLY_CONNECTED]
    assert sorted(tuple(sg.Tensors(op.Inputs(1)).ShapeAsNumpy()) for op in fc) == \
        sorted(g.matmul_shapes())


def test_dynamic_batch_and_signature(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM5", 3, 4, 1, classes=2)
    g = ir.lower(path)
    data, _ = tflite.to_bytes(g)
    runner = _litert(data)
    for b in (1, 7, 2):
        x = seeded("x", b).normal(size=(b, 3)).astype(np.float32)
        h = np.zeros((1, b, 4), np.float32)
        got = runner.run(x, h, h)
        want = g.run({"x": x, "h": h, "c": h})
        for k in want:
            np.testing.assert_allclose(got[k], want[k], atol=1e-6)
    sig = Interpreter(model_content=data).get_signature_runner("serving_default")
    x = np.ones((1, 3), np.float32)
    z = np.zeros((1, 1, 4), np.float32)
    out = sig(x=x, h=z, c=z)
    np.testing.assert_allclose(out["y"], g.run({"x": x, "h": z, "c": z})["y"], atol=1e-6)


def _int8_scales(path) -> dict[tuple[int, ...], int]:
    """Shape of each int8 tensor -> how many scales it has."""
    from ai_edge_litert import schema_py_generated as s

    sg = s.Model.GetRootAs(path.read_bytes(), 0).Subgraphs(0)
    return {tuple(sg.Tensors(i).ShapeAsNumpy()): sg.Tensors(i).Quantization().ScaleLength()
            for i in range(sg.TensorsLength()) if sg.Tensors(i).Type() == s.TensorType.INT8}


def test_dynamic_range_int8_weights(tmp_path):
    """Hybrid FULLY_CONNECTED: int8 weights, per channel where a row holds >= 128 weights (U·h at
    n = 128), per tensor for shorter rows (W·x over 13 inputs) and for tflite-runtime."""
    n = 128
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM0", 13, n, 1, classes=10)
    g = ir.lower(path)
    f = tflite.emit(g, tmp_path / "f.tflite")
    d = tflite.emit(g, tmp_path / "d.tflite", quantize="dynamic")
    t = tflite.emit(g, tmp_path / "t.tflite", quantize="dynamic", compat="tflite-runtime")
    assert d["hybrid_per_channel_fully_connected"] and not d["tflite_runtime_ok"]
    assert not t["hybrid_per_channel_fully_connected"] and t["tflite_runtime_ok"]
    assert tflite_format.read_config(tmp_path / "d.tflite")["export"]["tflite_runtime_ok"] is False
    assert _int8_scales(tmp_path / "d.tflite") == {(4 * n, 13): 1, (4 * n, n): 4 * n, (10, n): 10}
    assert set(_int8_scales(tmp_path / "t.tflite").values()) == {1}
    assert d["weight_bytes"] < 0.3 * f["weight_bytes"]
    frames = seeded("frames").normal(size=(50, 4, 13))
    z = np.zeros((1, 4, n))
    ref, _, _ = _rollout(_litert(tmp_path / "f.tflite"), frames, z, z)
    for name in ("d", "t"):
        ys, _, _ = _rollout(_litert(tmp_path / f"{name}.tflite"), frames, z, z)
        err = np.abs(ys - ref).max()
        assert 0 < err < 0.05, (name, err)


def test_short_rows_share_one_scale(tmp_path):
    """Below 128 weights a row, per-channel scales (12 bytes a row) cost more than they are worth:
    a small model's dynamic file is per tensor throughout, and so runs on tflite-runtime too."""
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM6", 13, 64, 1, classes=10)
    d = tflite.emit(path, tmp_path / "d.tflite", quantize="dynamic")
    assert not d["per_channel"] and d["tflite_runtime_ok"]
    assert set(_int8_scales(tmp_path / "d.tflite").values()) == {1}


def test_bad_options(tmp_path):
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM0", 3, 4)
    with pytest.raises(ValueError, match="quantize"):
        tflite.emit(path, tmp_path / "m.tflite", quantize="int4")
    with pytest.raises(ValueError, match="compat"):
        tflite.emit(path, tmp_path / "m.tflite", compat="tf1")
    with pytest.raises(ValueError, match="calibration"):
        tflite.emit(path, tmp_path / "m.tflite", quantize="int8")
    with pytest.raises(ValueError, match="TFLite"):
        tflite_format.read_config(path)


def test_writing_needs_no_torch(tmp_path):
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM5", 3, 4, classes=2)
    code = ("from slimedge.exporters import tflite\n"
            f"print(tflite.emit({str(path)!r}, {str(tmp_path / 'm.tflite')!r})['quantize'])")
    assert run_without_torch(code).strip() == "none"


def test_read_config_errors_name_the_file(tmp_path, monkeypatch):
    from slimedge.errors import ModelFileError
    from slimedge.exporters.tflite import flatbuffer

    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM6", 3, 4, classes=2)
    g = ir.lower(path)
    data, info = tflite.to_bytes(g)
    good = tmp_path / "good.tflite"
    good.write_bytes(data)
    assert tflite_format.read_config(good)["export"] == info
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[:len(data) // 3])
    bad_json = tmp_path / "json.tflite"
    text = integrity.dumps({**json.loads(g.metadata_json()), "export": info}).encode()
    assert data.count(text) == 1
    bad_json.write_bytes(data.replace(text, b"X" + text[1:]))
    monkeypatch.setattr(flatbuffer, "METADATA_NAME", "other")
    foreign = tmp_path / "foreign.tflite"
    foreign.write_bytes(tflite.to_bytes(g)[0])
    for f, why in ((path, "not a TFLite model"), (cut, "truncated or damaged"),
                   (foreign, "not a slimedge export"), (bad_json, "not valid JSON")):
        with pytest.raises(ModelFileError, match=why) as e:
            tflite_format.read_config(f)
        assert str(e.value).startswith(f"{f}: ")


def test_reading_back_needs_neither_litert_nor_torch(tmp_path):
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM5", 3, 4, classes=2)
    tflite.emit(path, tmp_path / "m.tflite")
    code = ("from slimedge.formats.tflite import read_config\n"
            "from slimedge.formats.tflite import litert\n"
            f"print(read_config({str(tmp_path / 'm.tflite')!r})['export']['format'])")
    assert run_without_torch(code, also=("ai_edge_litert",)).strip() == "tflite"
