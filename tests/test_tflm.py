"""TensorFlow Lite Micro as a target: export(compat="tflm") validated on TFLM's own interpreter,
its tensor arena, what is refused, integer I/O, and the tflm runtime backend."""
import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import make_checkpoint, seeded
from slimedge import data, formats, ir, runtime, variants, zoo
from slimedge.errors import ModelFileError, UsageError
from slimedge.exporters import export, tflite
from slimedge.exporters.calibration import stream_frames
from slimedge.exporters.tflite.emitter import IncompatibleTarget
from slimedge.formats import tflite as tflite_format
from slimedge.formats.tflite import micro

M, N, K = 5, 8, 3


def test_tflite_micro_is_installed():
    """A declared dependency of the dev extra: every test here needs it, and none skips."""
    assert micro.available() and "tflm" in runtime.available_backends()
    assert formats.get("tflite").backends == ("litert", "tflm")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A small labelled data set (m = 5, 3 classes, a fixed split) for int8 calibration and the
    task check of random-weight models."""
    rng = seeded("tflm-data")
    seqs = [rng.normal(size=(int(rng.integers(6, 11)), M)).astype(np.float32) for _ in range(24)]
    split = ["train"] * 12 + ["val"] * 6 + ["test"] * 6
    return str(data.save_npz(tmp_path_factory.mktemp("tflm") / "syn.npz", seqs,
                             [k % K for k in range(24)], split=split))


def _ops(path) -> dict:
    return tflite_format.read_config(path)["export"]["ops"]


@pytest.mark.parametrize("gates", ["sigmoid", "hard_sigmoid"])
@pytest.mark.parametrize("variant", list(variants.VARIANTS))
def test_every_variant_validates_on_tflm_or_is_refused(tmp_path, synthetic, variant, gates):
    """Float and int8 files validate on TFLite Micro (its interpreter ran them: the result says so,
    with the arena it took); dynamic is refused before anything is written."""
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", variant, M, N, 1, classes=K,
                                 gate_activation=gates)
    f = export(path, tmp_path / "f.tflite", format="tflite", compat="tflm")
    assert f.validation.passed and f.validation.atol == 1e-5  # the float file's per-step error
    assert f.target["interpreter"].startswith("tflite-micro") and f.target["arena_bytes"] > 0
    assert "RELU_0_TO_1" not in _ops(f.path)
    hard = sum(n.op == "hard_sigmoid" for n in ir.lower(path).nodes)  # none where folded (LSTM3)
    assert _ops(f.path).get("MINIMUM", 0) == hard and (hard > 0) <= (gates == "hard_sigmoid")
    q = export(path, tmp_path / "q.tflite", format="tflite", quantize="int8", compat="tflm",
               data=synthetic, accuracy_tolerance=1.0)  # random weights: no accuracy to keep
    assert q.validation.passed and q.target["arena_bytes"] > 0
    assert "RELU_0_TO_1" not in _ops(q.path) and "MINIMUM" not in _ops(q.path)
    # on TFLM, over 1,000 closed-loop steps, the int8 file picks the float model's class (a wrong
    # kernel or gate would be near chance, 1/3)
    assert q.quantization["task"]["drift"]["argmax_agreement"] >= 0.8
    with pytest.raises(IncompatibleTarget, match=r"--quantize int8.*--quantize none"):
        export(path, tmp_path / "d.tflite", format="tflite", quantize="dynamic", compat="tflm",
               data=synthetic)
    assert not (tmp_path / "d.tflite").exists()


def test_wide_two_layer_int8_with_per_channel_weights(tmp_path, synthetic):
    """n = 128: U·h rows hold 128 weights, so they get per-channel scales; two layers, hard sigmoid."""
    path, _, _ = make_checkpoint(tmp_path / "w.safetensors", "LSTM0", M, 128, 2, classes=K,
                                 gate_activation="hard_sigmoid")
    q = export(path, tmp_path / "w.tflite", format="tflite", quantize="int8", compat="tflm",
               data=synthetic, accuracy_tolerance=1.0)
    meta = tflite_format.read_config(q.path)["export"]
    assert meta["per_channel"] and meta["compat"] == "tflm" and q.validation.passed
    assert q.quantization["task"]["drift"]["argmax_agreement"] >= 0.8
    assert q.target["arena_bytes"] > q.target["arena_used_bytes"] > 0


def test_what_tflm_cannot_run_is_refused_with_its_reason(tmp_path):
    """LiteRT-compat files TFLM has no kernels for: the tflm backend refuses them naming the op and
    what to export instead; the format's runner validates such files on LiteRT, not TFLM."""
    hs, _, _ = make_checkpoint(tmp_path / "hs.safetensors", "LSTM0", M, N, classes=K,
                               gate_activation="hard_sigmoid")
    sg, _, _ = make_checkpoint(tmp_path / "sg.safetensors", "LSTM0", M, N, classes=K)
    litert_hs = export(hs, tmp_path / "hs.tflite", format="tflite").path
    assert "RELU_0_TO_1" in _ops(litert_hs)
    assert formats.get("tflite").validators(tflite_format.read_config(litert_hs)) == ("litert",)
    with pytest.raises(ModelFileError, match=r"RELU_0_TO_1.*compat='tflm'"):
        runtime.load(litert_hs, "tflm")
    dyn = tmp_path / "dyn.tflite"
    tflite.emit(sg, dyn, quantize="dynamic")
    with pytest.raises(ModelFileError, match=r"FLOAT32 with filter type: INT8.*--quantize int8"):
        runtime.load(dyn, "tflm")
    # the same models written for TFLM run there
    assert runtime.load(export(hs, tmp_path / "hs2.tflite", compat="tflm", format="tflite").path,
                        "tflm").session.arena["arena_bytes"] > 0


def test_options_are_checked(tmp_path, synthetic):
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM0", M, N, classes=K)
    out = tmp_path / "m.tflite"
    with pytest.raises(UsageError, match="unknown io 'integer'"):
        export(path, out, format="tflite", quantize="int8", compat="tflm", io="integer",
               data=synthetic)
    with pytest.raises(UsageError, match="unknown quantisation option 'iio'"):
        export(path, out, format="tflite", quantize="int8", compat="tflm", iio="int",
               data=synthetic)
    with pytest.raises(UsageError, match="needs quantize='int8'"):
        tflite.emit(path, out, compat="tflm", io="int")
    with pytest.raises(UsageError, match="TFLite int8 files, not onnx"):
        export(path, tmp_path / "m.onnx", format="onnx", quantize="int8", io="int", data=synthetic)
    with pytest.raises(UsageError, match="unknown compat target 'tflm2'"):
        export(path, out, format="tflite", compat="tflm2")
    assert not out.exists()


# ---- the shipped model ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    d = tmp_path_factory.mktemp("shipped")
    src = zoo.default_model_path()
    files = {"float": export(src, d / "f.tflite", format="tflite", compat="tflm"),
             "int8": export(src, d / "q.tflite", format="tflite", quantize="int8", compat="tflm"),
             "int8 io": export(src, d / "qi.tflite", format="tflite", quantize="int8",
                               compat="tflm", io="int")}
    return files, data.load_as_recorded(formats.info(src).data)


def test_shipped_int8_on_tflm_within_a_point_of_float(shipped):
    files, splits = shipped
    acc = {k: runtime.evaluate(runtime.load(r.path, "tflm"), splits["test"]).accuracy
           for k, r in files.items()}
    assert acc["float"] > 0.9 and abs(acc["float"] - acc["int8"]) <= 0.01, acc
    assert acc["int8 io"] == acc["int8"]
    for r in files.values():
        assert r.target["interpreter"].startswith("tflite-micro")
        assert r.target["arena_bytes"] >= r.target["arena_used_bytes"] > 1000
    task = files["int8"].quantization["task"]  # judged on TFLM at export
    assert task["passed"] and task["float_accuracy"] - task["accuracy"] <= 0.02
    assert files["int8 io"].target["arena_bytes"] < files["int8"].target["arena_bytes"]


@pytest.mark.parametrize("kind", ["float", "int8"])
def test_the_arena_figure_is_what_tflm_needs(shipped, kind):
    """An interpreter with exactly the recorded arena runs the file; 16 bytes less, it cannot
    (each in a fresh process: too small an arena may crash TFLM outright)."""
    files, _ = shipped
    r = files[kind]
    code = ("import sys, numpy as np\n"
            "from tflite_micro.python.tflite_micro import runtime\n"
            "it = runtime.Interpreter.from_file(sys.argv[1], arena_size=int(sys.argv[2]))\n"
            "it.set_input(np.zeros((1, 13), np.float32), 0)\n"
            "it.invoke()\nprint('ran')\n")

    def runs(arena):
        p = subprocess.run([sys.executable, "-c", code, str(r.path), str(arena)],
                           capture_output=True, text=True, timeout=60)
        return p.returncode == 0 and "ran" in p.stdout
    arena = r.target["arena_bytes"]
    assert runs(arena) and not runs(arena - micro.ARENA_STEP)


def test_integer_io_equals_float_io_after_dequantisation(shipped):
    files, splits = shipped
    fio, iio = files["int8"].path, files["int8 io"].path
    meta = tflite_format.read_config(iio)["export"]
    assert meta["io"] == "int" and meta["float_ops"] == "none" and "DEQUANTIZE" not in meta["ops"]
    q = meta["io_quantization"]
    assert {k: q[k]["dtype"] for k in q} == {"x": "int8", "h": "int8", "c": "int16", "y": "int8",
                                             "h_next": "int8", "c_next": "int16"}
    assert len(q["x"]["normalization"]["scale"]) == 13 and q["h"] == q["h_next"]
    mi = micro.MicroInterpreter(iio.read_bytes())
    for name, d in zip(micro.INPUTS + micro.OUTPUTS, mi.inputs + mi.outputs):
        p = d["quantization_parameters"]  # the file's tensors are what the metadata says
        assert np.dtype(d["dtype"]) == np.dtype(q[name]["dtype"])
        assert (float(p["scales"][0]), int(p["zero_points"][0])) == \
            (q[name]["scale"], q[name]["zero_point"])
    # a device never converts floats: no float tensor in the file
    from ai_edge_litert import schema_py_generated as s
    model = s.ModelT.InitFromObj(s.Model.GetRootAs(iio.read_bytes(), 0))
    assert not any(t.type in (s.TensorType.FLOAT32, s.TensorType.FLOAT16)
                   for t in model.subgraphs[0].tensors)
    frames = stream_frames(splits["test"], 300, 1)[:, 0]
    for backend in ("tflm", "litert"):  # each converts at its boundary as QUANTIZE does inside
        a, b = runtime.load(fio, backend).stream(), runtime.load(iio, backend).stream()
        for x in frames:
            np.testing.assert_array_equal(a.step(x), b.step(x))
        for sa, sb in zip(a.state, b.state):
            np.testing.assert_array_equal(sa, sb)


# ---- the tflm runtime backend --------------------------------------------------------------------
def test_tflm_backend_steps_like_litert(shipped):
    files, splits = shipped
    path = files["float"].path
    tm, lm = runtime.load(path, "tflm"), runtime.load(path, "litert")
    assert tm.backend == "tflm" and "batch 1" in tm.session.detail
    assert tm.session.arena["arena_bytes"] == files["float"].target["arena_bytes"]
    frames = stream_frames(splits["test"], 60, 3)
    st, sl = tm.stream(), lm.stream()
    bt, bl = tm.streams(3), lm.streams(3)
    for x in frames:
        np.testing.assert_allclose(st.step(x[0]), sl.step(x[0]), atol=2e-5)
        np.testing.assert_allclose(bt.step(x), bl.step(x), atol=2e-5)
    np.testing.assert_allclose(bt.stream_state(0)[1], st.state[1], atol=1e-6)  # row 0 = the stream
    before = st.state
    for bad in (np.full(13, np.nan, np.float32), np.zeros(12, np.float32), np.array(["a"] * 13)):
        with pytest.raises(runtime.InputError):
            st.step(bad)
    for was, now in zip(before, st.state):
        np.testing.assert_array_equal(was, now)


def test_cli_export_prints_the_arena_and_refuses_dynamic(tmp_path):
    from slimedge.cli import app

    cli = CliRunner()
    r = cli.invoke(app, ["export", "--compat", "tflm", "-o", str(tmp_path / "m.tflite")])
    assert r.exit_code == 0, r.output
    assert "tflite-micro" in r.output and "tensor arena" in r.output
    r = cli.invoke(app, ["export", "--compat", "tflm", "-o", str(tmp_path / "m.tflite"), "--json"])
    assert json.loads(r.stdout)["target"]["arena_bytes"] > 0
    r = cli.invoke(app, ["export", "--compat", "tflm", "-q", "dynamic",
                         "-o", str(tmp_path / "d.tflite")])
    assert r.exit_code == 2 and "--quantize int8" in r.output
    assert not (tmp_path / "d.tflite").exists()
