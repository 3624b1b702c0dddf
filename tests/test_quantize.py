"""Quantised exports of both formats on real data (FSDD): every --quantize mode, calibration from
real rollouts, the int8 TFLite graph's structure, the tflite-runtime compat form, the CLI."""
import json
import logging

import numpy as np
import pytest

from helpers import make_checkpoint
from slimedge import checkpoint, exporters, formats, ir
from slimedge.exporters import calibration as C
from slimedge.exporters import quantize as Q
from slimedge.exporters import tflite
from slimedge.formats import tflite as tflite_format

pytest.importorskip("torch")
logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization's pre-processing hints


@pytest.fixture(scope="session")
def fsdd_model(tmp_path_factory):
    """A small LSTM0 (n = 24) trained briefly on a stratified 600-sequence FSDD subset."""
    from slimedge import data
    from slimedge.train import TrainConfig, train

    try:
        data.fsdd_path()
    except data.DataPackageMissing as e:
        pytest.skip(str(e))
    out = tmp_path_factory.mktemp("q") / "fsdd.safetensors"
    cfg = TrainConfig(variant="LSTM0", hidden_size=24, epochs=6, lr=1e-2, limit=600,
                      schedule="cosine", threads=1)
    train(cfg, out, progress=False, quiet=True)
    ck = checkpoint.read(out)
    return out, ck, Q.model_data(ck)


@pytest.mark.parametrize("fmt,q", [("tflite", "dynamic"), ("tflite", "int8"),
                                   ("onnx", "dynamic"), ("onnx", "int8")])
def test_every_quantize_mode_on_real_data(tmp_path, fsdd_model, fmt, q):
    path, ck, splits = fsdd_model
    out = tmp_path / f"m.{fmt}"
    r = exporters.export(path, out, format=fmt, quantize=q, calibration_samples=64)
    assert out.is_file() and r.quantize == q and r.validation.passed
    task = r.quantization["task"]
    assert task["split"] == "val" and task["n"] == len(splits["val"])
    assert task["float_accuracy"] > 0.5  # a trained model, so the check means something
    assert task["accuracy_drop"] <= Q.DEFAULT_ACCURACY_TOLERANCE
    assert task["drift"]["steps"] == Q.DRIFT_STEPS
    assert 0.5 < task["drift"]["argmax_agreement"] <= 1.0
    meta = (tflite_format.read_config(out) if fmt == "tflite"
            else formats.read_config(out))
    assert meta["export"]["quantize"] == q
    float_out = tmp_path / f"f.{fmt}"
    exporters.export(path, float_out, format=fmt)
    assert out.stat().st_size < float_out.stat().st_size  # n = 24: scales and metadata weigh in


def test_calibration_uses_real_rollouts(fsdd_model):
    _, ck, splits = fsdd_model
    g = ir.lower(ck)
    train = splits["train"]
    feeds = list(C.rollout_feeds(g, train, samples=16, streams=2, stream_steps=50))
    sub = C._subset(train, 16, 0)
    assert len(feeds) == int(sub.lengths.max()) + 50
    frames = {tuple(np.round(r, 4)) for r in sub.frames}
    assert all(tuple(np.round(r, 4)) in frames for r in feeds[0]["x"])  # training frames
    assert not np.any(feeds[0]["h"]) and np.abs(feeds[5]["h"]).max() > 0.05  # the model's states
    # a step's state is the float model's output of the step before
    out = g.run(feeds[3])
    live = len(feeds[4]["x"])
    np.testing.assert_allclose(feeds[4]["c"], out["c_next"][:, :live], atol=1e-6)
    ranges = C.calibrate(g, train, samples=16)
    assert -1.0 <= ranges["h_next"][0] < 0 < ranges["h_next"][1] <= 1.0
    assert ranges["l0.gate_i"][0] >= 0 and ranges["l0.gate_i"][1] <= 1
    assert set(ranges) >= set(g.shapes)


def test_int8_tflite_graph(tmp_path, fsdd_model):
    from ai_edge_litert import schema_py_generated as s

    _, ck, splits = fsdd_model
    g = ir.lower(ck)
    ranges = C.calibrate(g, splits["train"], samples=32)
    names = {v: k for k, v in vars(s.TensorType).items() if not k.startswith("_")}
    ops = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    for state_bits, want in ((8, {"INT8"}), (16, {"INT8", "INT16"})):
        data, info = tflite.to_bytes(g, quantize="int8", ranges=ranges, state_bits=state_bits)
        m = s.Model.GetRootAs(data, 0)
        sg = m.Subgraphs(0)
        types = {names[sg.Tensors(i).Type()] for i in range(sg.TensorsLength())}
        assert want <= types and "FLOAT32" in types  # float I/O and the input normalisation
        for k in range(sg.OperatorsLength()):
            op = sg.Operators(k)
            code = ops[m.OperatorCodes(op.OpcodeIndex()).BuiltinCode()]
            out = sg.Tensors(op.Outputs(0))
            if code == "LOGISTIC" and out.Type() == s.TensorType.INT8:  # the spec's fixed scale
                assert out.Quantization().Scale(0) == pytest.approx(1 / 256)
                assert out.Quantization().ZeroPoint(0) == -128
            if code == "TANH" and out.Type() == s.TensorType.INT8:
                assert out.Quantization().Scale(0) == pytest.approx(1 / 128)
                assert out.Quantization().ZeroPoint(0) == 0
            if code == "FULLY_CONNECTED":
                assert sg.Tensors(op.Inputs(1)).Type() == s.TensorType.INT8
                assert out.Type() in (s.TensorType.INT8, s.TensorType.INT16)
        meta = json.loads(g.metadata_json())
        assert info["activations"] == ("int8" if state_bits == 8 else "int8, cell-state path int16")
        assert meta["lstm"] == tflite_format.read_config(data)["lstm"]
        f = tmp_path / f"int8_{state_bits}.tflite"
        f.write_bytes(data)
        acc = Q.accuracy(Q.step_function(g, f), splits["val"])
        assert acc >= Q.accuracy(Q.step_function(g), splits["val"]) - 0.05


def test_tflite_runtime_compat_is_per_tensor(tmp_path, fsdd_model):
    from ai_edge_litert import schema_py_generated as s

    path, _, _ = fsdd_model
    r = exporters.export(path, tmp_path / "t.tflite", format="tflite", quantize="dynamic",
                         compat="tflite-runtime")
    meta = tflite_format.read_config(tmp_path / "t.tflite")["export"]
    assert meta["compat"] == "tflite-runtime" and meta["tflite_runtime_ok"] is True
    assert r.quantization["hybrid_per_channel_fully_connected"] is False
    m = s.Model.GetRootAs((tmp_path / "t.tflite").read_bytes(), 0)
    sg = m.Subgraphs(0)
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        if t.Type() == s.TensorType.INT8:
            assert t.Quantization().ScaleLength() == 1
    # this model's rows are short (n < 128): one scale per tensor by default as well
    exporters.export(path, tmp_path / "p.tflite", format="tflite", quantize="dynamic")
    assert tflite_format.read_config(tmp_path / "p.tflite")["export"]["tflite_runtime_ok"] is True


def test_quantizing_needs_real_data(tmp_path):
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM0", 13, 8, classes=10)
    with pytest.raises(ValueError, match="real data"):
        exporters.export(path, tmp_path / "m.tflite", format="tflite", quantize="int8")
    assert not (tmp_path / "m.tflite").exists()
    with pytest.raises(ValueError, match="step"):
        Q.quantize(path, tmp_path / "m.onnx", format="onnx", quantize="dynamic", mode="sequence")


def test_misspelt_option_is_a_usage_error(tmp_path):
    from slimedge.errors import UsageError

    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM0", 13, 8, classes=10)
    for call in (lambda **kw: Q.quantize(path, tmp_path / "m.onnx", format="onnx",
                                         quantize="int8", **kw),
                 lambda **kw: exporters.export(path, tmp_path / "m.tflite", format="tflite",
                                               quantize="int8", **kw)):
        with pytest.raises(UsageError, match="'calibraton_samples'") as e:
            call(calibraton_samples=32)
        assert all(f"{k}" in str(e.value) for k in ("calibration_samples", "state_bits", "scope"))
    with pytest.raises(UsageError, match="quantize='int4' is not offered"):
        Q.quantize(path, tmp_path / "m.onnx", format="onnx", quantize="int4")
    assert Q.QuantizeOptions.of(scope="all") == Q.QuantizeOptions(scope="all")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_failed_task_check_keeps_no_file(tmp_path, fsdd_model):
    path, _, _ = fsdd_model
    with pytest.raises(Q.QuantizationError, match="tolerance"):
        # a negative tolerance cannot be met: the file must not be left behind
        exporters.export(path, tmp_path / "m.tflite", format="tflite", quantize="dynamic",
                         accuracy_tolerance=-1.0)
    assert not (tmp_path / "m.tflite").exists()
    assert not list(tmp_path.iterdir())


def test_cli_export_quantized(tmp_path, fsdd_model):
    from typer.testing import CliRunner

    from slimedge.cli import app

    path, _, _ = fsdd_model
    out = tmp_path / "m.tflite"
    res = CliRunner().invoke(app, ["export", str(path), "-o", str(out), "--quantize", "int8",
                                   "--calibration-samples", "32", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["quantize"] == "int8" and d["quantization"]["calibration"]["sequences"] == 32
    assert d["quantization"]["task"]["passed"]
    res = CliRunner().invoke(app, ["export", str(path), "-f", "onnx", "--compat", "tflite-runtime"])
    assert res.exit_code == 2 and "--compat" in res.output
