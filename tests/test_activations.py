"""Gate activations from a few primitives (slimedge.activations): piecewise-linear activations are
mul, add and clip in the step IR, so one registered here exports to every format, validates and
runs, with no exporter knowing its name; only sigmoid and tanh are IR ops of their own."""
from pathlib import Path

import numpy as np
import pytest

import reference as ref
from helpers import make_checkpoint, seeded
from slimedge import activations, exporters, formats, ir, runtime
from slimedge.activations import PiecewiseLinear
from test_user_variants import small_data

# registered in one place each: PyTorch's hard sigmoid (z/6 + 1/2) for the gates, hard tanh and
# ReLU6 for the cell; the independent float64 references are the textbook formulas
MINE = {"pt_hardsigmoid": (PiecewiseLinear(1 / 6, 0.5, 0.0, 1.0), "gate",
                           lambda z: np.minimum(np.maximum(z / 6.0 + 0.5, 0.0), 1.0)),
        "hard_tanh": (PiecewiseLinear(lo=-1.0, hi=1.0), "cell",
                      lambda z: np.minimum(np.maximum(z, -1.0), 1.0)),
        "relu6": (PiecewiseLinear(lo=0.0, hi=6.0), "cell", lambda z: np.minimum(np.maximum(z, 0), 6))}
PAIRS = [("pt_hardsigmoid", "hard_tanh"), ("pt_hardsigmoid", "relu6")]


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    for name, (pwl, kind, fn) in MINE.items():
        activations.register(name, pwl, gate=kind == "gate", cell=kind == "cell")
        monkeypatch.setitem(ref.GATE_FN if kind == "gate" else ref.ACT_FN, name, fn)
    yield
    for name in MINE:
        activations.unregister(name)


def test_only_transcendental_activations_are_ir_ops():
    assert set(activations.TRANSCENDENTAL) <= set(ir.OPS) and "clip" in ir.OPS
    assert not set(activations.PIECEWISE) & set(ir.OPS)  # hard_sigmoid, relu: mul, add, clip
    root = Path(__file__).resolve().parents[1] / "slimedge"
    for name in MINE:  # nothing in the library knows the activations registered here
        assert not [p for p in root.rglob("*.py") if name in p.read_text()], name


@pytest.mark.parametrize("gate,act", PAIRS)
def test_the_lowering_is_the_reference(tmp_path, gate, act):
    path, w, extra = make_checkpoint(tmp_path / "m.safetensors", "LSTM0", 3, 6, 2, classes=2,
                                     gate_activation=gate, activation=act)
    g = ir.lower(path)
    assert not {gate, act} & {n.op for n in g.nodes}
    assert sum(n.op == "clip" for n in g.nodes) == 2 * 5  # three gates and two g() per layer
    frames = seeded("pwl", gate, act).normal(size=(30, 2, 3)) * 4
    h0, c0 = seeded("pwl-state").normal(size=(2, 2, 2, 6))
    r = ir.rollout(g, frames, (h0, c0), dtype=np.float64)
    x = (frames - extra["norm.mean"]) / extra["norm.std"]
    out, h, c = ref.sequence("LSTM0", w, x, h0, c0, gate_activation=gate, activation=act)
    want = out @ extra["head.weight"].T + extra["head.bias"]
    for got, ref_ in ((r.y, want), (r.state[0], h), (r.state[1], c)):
        np.testing.assert_allclose(got, ref_, atol=1e-12)


def _exports():
    return [(f.name, q, "litert") for f in formats.FORMATS.values() if f.exportable
            for q in f.quantize] + [("tflite", "none", "tflm"), ("tflite", "int8", "tflm")]


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    return small_data(tmp_path_factory.mktemp("pwl") / "d.npz", m=3)


@pytest.mark.parametrize("gate,act", PAIRS)
@pytest.mark.parametrize("fmt,quantize,compat", _exports())
def test_a_registered_activation_exports_everywhere(tmp_path, npz, gate, act, fmt, quantize,
                                                    compat):
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM0", 3, 8, classes=2,
                                 gate_activation=gate, activation=act)
    opts = {"compat": compat} if fmt == "tflite" else {}
    if quantize != "none":
        opts.update(data=str(npz), accuracy_tolerance=1.0)  # random weights: no accuracy to keep
    out = tmp_path / exporters.default_name("m", fmt, quantize)
    r = exporters.export(path, out, format=fmt, quantize=quantize, **opts)
    assert r.validation.passed, r.validation.describe()
    info = formats.info(r.path)
    assert (info.config["lstm"]["gate_activation"], info.config["lstm"]["activation"]) == (gate, act)
    frames = seeded("pwl-run").normal(size=(12, 3)).astype(np.float32)
    want = ir.rollout(ir.lower(path), frames[:, None], dtype=np.float64).y[:, 0]
    backend = "tflm" if compat == "tflm" else "auto"
    got = runtime.load(r.path, backend=backend).run(frames)
    atol = 1e-4 if quantize == "none" else 0.25
    np.testing.assert_allclose(got, want, atol=atol, rtol=0)
    if fmt == "tflite":
        ops = r.quantization["ops"] if quantize != "none" else formats.info(r.path).export["ops"]
        assert "RELU_0_TO_1" not in ops or compat != "tflm"
        if act == "relu6" and quantize != "dynamic":  # the kernel both targets have, for
            # g(c~) and g(c'); int8: g(c') is on the int16 cell path, where RELU6 has no kernel
            assert ops.get("RELU6", 0) == (2 if quantize == "none" else 1)
