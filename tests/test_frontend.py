"""Front-ends as data (slimedge.frontend): the spec in every checkpoint and export, the float64
reference against an independent formula, old files read as before, and a stage defined in this
file exported to every format with no change to slimedge."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from helpers import make_checkpoint, reference_outputs, seeded
from slimedge import checkpoint, exporters, formats, frontend, ir, runtime
from slimedge.errors import ModelFileError
from slimedge.models import SequenceClassifier
from slimedge.models import frontend as torch_frontend

STANDARD = {"stages": [{"kind": "standardize"}]}


def _new_style(old_path, new_path):
    """The same model as ``old_path`` (an old config: ``normalization``) with a ``frontend`` section."""
    ck = checkpoint.read(old_path)
    config = {k: v for k, v in ck.config.items() if k not in ("normalization", "format")}
    checkpoint.write(new_path, {**config, "frontend": STANDARD}, ck.tensors)
    return new_path


def test_reference_is_the_standardisation(tmp_path):
    path, _, extra = make_checkpoint(tmp_path / "m.safetensors", "LSTM6", 5, 8, classes=3)
    fe = frontend.of_checkpoint(checkpoint.read(path))
    x = seeded("fe", "x").normal(size=(7, 5)) * 3
    want = (x - extra["norm.mean"]) / extra["norm.std"]  # independent: the textbook formula
    np.testing.assert_allclose(fe.reference(x), want, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(fe.reference(fe.typical_input(want)), want, atol=1e-12)
    stream = fe.stream()
    np.testing.assert_array_equal(np.concatenate([stream.push(x[:3]), stream.push(x[3:])]),
                                  fe.reference(x))


def test_the_lowered_stage_computes_the_reference(tmp_path):
    """The step graph's front-end output (Graph.features) is the reference's, and the model's step
    reads it; x, h, c -> y, h', c' stays the graph's contract."""
    path, _, extra = make_checkpoint(tmp_path / "m.safetensors", "LSTM0", 4, 6, classes=2)
    g = ir.lower(path)
    assert (g.inputs, g.outputs) == (("x", "h", "c"), ("y", "h_next", "c_next"))
    assert g.features != "x" and [n.op for n in g.frontend_nodes()] == ["mul", "add"]
    assert all(g.features in n.inputs for n in g.model_nodes() if n.op == "matmul"
               and n.attrs.get("layer") == 0 and n.attrs.get("term") == "W")
    x = seeded("fe", "lower").normal(size=(3, 4)) * 2
    seen = {}
    g.run({"x": x, "h": np.zeros((1, 3, 6)), "c": np.zeros((1, 3, 6))}, dtype=np.float64,
          observe=lambda k, v: seen.setdefault(k, v))
    np.testing.assert_allclose(seen[g.features], (x - extra["norm.mean"]) / extra["norm.std"],
                               atol=1e-13)
    assert "frontend" not in g.config and formats.ModelInfo.from_config(g.config).frontend.kinds \
        == ("standardize",)  # an old config: its exports keep its fields, read the same way


def test_old_and_new_checkpoints_are_the_same_model(tmp_path):
    old, w, extra = make_checkpoint(tmp_path / "old.safetensors", "LSTM6", 5, 8, 2, classes=3)
    new = _new_style(old, tmp_path / "new.safetensors")
    assert "frontend" not in checkpoint.read(old).config
    for fold in (False, True):
        a, b = ir.lower(old, fold_normalization=fold), ir.lower(new, fold_normalization=fold)
        assert [(n.op, n.inputs, n.outputs) for n in a.nodes] == \
               [(n.op, n.inputs, n.outputs) for n in b.nodes]
        assert a.initializers.keys() == b.initializers.keys()
        for k in a.initializers:
            np.testing.assert_array_equal(a.initializers[k], b.initializers[k])
    frames = seeded("fe", "frames").normal(size=(20, 2, 5))
    want, _, _ = reference_outputs("LSTM6", w, extra, frames)
    for p in (old, new):
        got = ir.rollout(ir.lower(p), frames, dtype=np.float64).y
        np.testing.assert_allclose(got, want, atol=1e-9)
        assert formats.info(p).frontend.kinds == ("standardize",)
        torch_model = checkpoint.load(p)
        with torch.no_grad():
            y = torch_model.forward_steps(torch.from_numpy(frames.transpose(1, 0, 2).astype(np.float32)))[0]
        np.testing.assert_allclose(y.numpy().transpose(1, 0, 2), want, atol=1e-4)


def test_the_shipped_model_reads_as_a_standardisation():
    info = formats.info("slimedge/zoo/fsdd_default.safetensors")
    assert "frontend" not in info.config and info.config["normalization"] == {"kind": "standard"}
    assert info.frontend.kinds == ("standardize",)
    assert formats.info("tests/../slimedge/zoo/fsdd_default.safetensors").frontend.to_config() \
        == STANDARD


def test_a_trained_checkpoint_records_its_frontend(tmp_path):
    model = SequenceClassifier("LSTM6", 5, 8, 3)
    model.set_normalization(torch.randn(5), torch.rand(5) + 0.5)
    out = checkpoint.save(model, tmp_path / "m.safetensors")
    ck = checkpoint.read(out)
    assert ck.config["frontend"] == STANDARD and "normalization" not in ck.config
    np.testing.assert_array_equal(ck.tensors["norm.std"], model.frontend.stages[0].std.numpy())
    bare = SequenceClassifier("LSTM6", 5, 8, 3, frontend=frontend.Frontend())
    ck2 = checkpoint.read(checkpoint.save(bare, tmp_path / "bare.safetensors"))
    assert ck2.config["frontend"] == {"stages": []} and "norm.mean" not in ck2.tensors
    assert not ir.lower(ck2).frontend_nodes()


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "c"])
def test_every_export_records_the_frontend(tmp_path, fmt):
    old, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM6", 5, 8, classes=3)
    new = _new_style(old, tmp_path / "new.safetensors")
    suffix = formats.get(fmt).suffix
    a = formats.info(exporters.export(old, tmp_path / f"old{suffix}", format=fmt).path)
    b = formats.info(exporters.export(new, tmp_path / f"new{suffix}", format=fmt).path)
    assert a.config["normalization"] == {"kind": "standard"} and "frontend" not in a.config
    assert b.config["frontend"] == STANDARD and "normalization" not in b.config
    assert a.frontend.kinds == b.frontend.kinds == ("standardize",)


def test_a_malformed_or_unknown_frontend_is_refused(tmp_path):
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM6", 5, 8, classes=3)
    ck = checkpoint.read(path)
    for bad, needle in (({"stages": [{"kind": "logmel"}]}, "unknown front-end stage 'logmel'"),
                        ({"stages": "standardize"}, "list of stages"),
                        ({"stages": [{"kind": "standardize", "eps": 1}]}, "unknown fields")):
        p = tmp_path / "bad.safetensors"
        checkpoint.write(p, {**ck.config, "frontend": bad}, ck.tensors)
        with pytest.raises(ModelFileError, match=needle):
            checkpoint.read(p)
    # a front-end section that asks for no stage: the standardisation's tensors are unexpected
    checkpoint.write(tmp_path / "none.safetensors", {**ck.config, "frontend": {"stages": []}},
                     ck.tensors)
    with pytest.raises(ModelFileError, match="unexpected tensors"):
        checkpoint.read(tmp_path / "none.safetensors")


def test_outside_reads_old_and_new_integer_io_metadata():
    s, t = [2.0, 0.5], [0.25, -1.0]
    record = {"export": {"io_quantization": {"x": {"scale": 0.1, "zero_point": 0,
                                                   "normalization": {"scale": s, "shift": t}}}}}
    x = np.array([[1.0, 2.0]], np.float32)
    want = x * np.float32(s) + np.float32(t)
    for config in ({**record, "normalization": {"kind": "standard"}},  # written before front-ends
                   {**record, "frontend": STANDARD}):
        np.testing.assert_array_equal(frontend.outside(config)(x), want)
    assert frontend.outside({"normalization": {"kind": "standard"}}) is None  # float input
    assert frontend.outside({**record, "frontend": {"stages": []}}) is None


# ---- a stage defined here: the seam the audio front-ends will use ---------------------------------
class Gain:
    """y = x · gain, a hyperparameter of the spec (no tensors)."""

    kind = "test_gain"
    description = "a fixed gain"

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = float(gain)

    def to_config(self):
        return {"kind": self.kind, "gain": self.gain}

    @classmethod
    def from_config(cls, spec):
        return cls(spec.get("gain", 1.0))

    def output_size(self, m):
        return m

    def tensor_shapes(self, m):
        return {}

    def neutral_tensors(self, m):
        return {}

    def check(self, tensors):
        pass

    def bind(self, tensors):
        return self

    def reference(self, x):
        return np.asarray(x, np.float64) * self.gain

    def typical_input(self, z):
        return np.asarray(z, np.float64) / self.gain

    def lower(self, bld, x):
        k = bld.const("gain.k", np.array([self.gain]))
        return bld.node("mul", [x, k], "x_gain", bld.g.shapes[x], role="frontend", stage=self.kind)

    def companion(self):
        return {"gain": self.gain}

    @staticmethod
    def from_companion(record):
        g = np.float32(record["gain"])
        return lambda x: np.asarray(x, np.float32) * g


class TorchGain(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.gain = 1.0

    def forward(self, x):
        return x * self.gain

    def tensors(self):
        return {}

    def load_tensors(self, tensors):
        pass


@pytest.fixture
def gain_stage(monkeypatch):
    monkeypatch.setitem(frontend.STAGES, Gain.kind, Gain)
    monkeypatch.setitem(torch_frontend.MODULES, Gain.kind, TorchGain)


def _exports():
    return [(f.name, q) for f in formats.FORMATS.values() if f.exportable for q in f.quantize]


@pytest.fixture(scope="module")
def trained_gain(tmp_path_factory):
    from test_user_variants import train_user_variant

    tmp = tmp_path_factory.mktemp("gain")
    r = train_user_variant(tmp, "LSTM6", epochs=2)
    ck = checkpoint.read(r.output)
    config = {k: v for k, v in ck.config.items() if k != "normalization"}
    config["frontend"] = {"stages": [{"kind": "standardize"}, {"kind": Gain.kind, "gain": 0.5}]}
    path = tmp / "gain.safetensors"
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(frontend.STAGES, Gain.kind, Gain)
        checkpoint.write(path, config, ck.tensors)
    from slimedge import data

    frames = data.load(tmp / "user.npz").test.sequence(0).astype(np.float32)
    return tmp, path, frames, ck


@pytest.mark.parametrize("fmt,quantize", _exports())
def test_a_new_stage_exports_to_every_format(gain_stage, trained_gain, fmt, quantize):
    """A stage registered here lowers, exports, validates and runs in every format and
    quantisation, with no exporter change; the float reference is the textbook formula."""
    tmp, path, frames, ck = trained_gain
    g = ir.lower(path)
    assert [n.attrs["stage"] for n in g.frontend_nodes()] == ["standardize"] * 2 + [Gain.kind]
    x = frames[:3].astype(np.float64)
    mean, std = (ck.tensors[k].astype(np.float64) for k in ("norm.mean", "norm.std"))
    np.testing.assert_allclose(g.frontend.reference(x), (x - mean) / std * 0.5, atol=1e-12)
    want = ir.rollout(g, frames[:, None, :], dtype=np.float64).y[:, 0]
    out = tmp / exporters.default_name(f"gain-{fmt}", fmt, quantize)
    r = exporters.export(path, out, format=fmt, quantize=quantize)
    assert r.validation.passed, r.validation.describe()
    assert formats.info(r.path).frontend.kinds == ("standardize", Gain.kind)
    got = runtime.load(r.path).run(frames)
    if quantize == "none":
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    else:
        assert np.mean(got.argmax(-1) == want.argmax(-1)) >= 0.9


def test_a_new_stage_with_integer_io_leaves_itself_to_the_reader(gain_stage, trained_gain):
    """An integer-I/O TFLite file starts at the front-end's output; each stage records what its
    reader applies, and the runtime applies it."""
    tmp, path, frames, _ = trained_gain
    r = exporters.export(path, tmp / "gain.io.int8.tflite", format="tflite", quantize="int8",
                         io="int")
    assert r.validation.passed, r.validation.describe()
    meta = json.loads(json.dumps(formats.info(r.path).config))
    x = meta["export"]["io_quantization"]["x"]
    assert x["gain"] == 0.5 and len(x["normalization"]["scale"]) == frames.shape[1]
    want = ir.rollout(ir.lower(path), frames[:, None, :], dtype=np.float64).y[:, 0]
    got = runtime.load(r.path).run(frames)
    assert np.mean(got.argmax(-1) == want.argmax(-1)) >= 0.9
