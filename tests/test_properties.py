"""Property-based tests (hypothesis): random variants, sizes, activations, weights and inputs; the
four implementations (PyTorch, the IR interpreter, ONNX, TFLite) against the float64 reference of
tests/reference.py. Bounded and derandomized, so CI runs the same examples every time."""
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from helpers import make_checkpoint, reference_outputs  # noqa: E402
from slimedge import exporters, extras, formats, runtime, variants  # noqa: E402

SETTINGS = dict(max_examples=12, deadline=None, derandomize=True, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

models = st.fixed_dictionaries({
    "variant": st.sampled_from(sorted(set(variants.VARIANTS) - {"LSTM_C6"})),
    "m": st.integers(1, 6), "n": st.integers(1, 8), "layers": st.integers(1, 2),
    "classes": st.sampled_from([None, 2, 5]), "seed": st.integers(0, 2**16),
    "gate_activation": st.sampled_from(variants.GATE_ACTIVATIONS),
    "activation": st.sampled_from(variants.ACTIVATIONS),
})
inputs = st.fixed_dictionaries({"T": st.integers(1, 8), "B": st.integers(1, 3),
                                "scale": st.sampled_from([0.1, 1.0, 4.0]),
                                "seed": st.integers(0, 2**16)})


def build(d: Path, spec: dict):
    return make_checkpoint(d / "m.safetensors", spec["variant"], spec["m"], spec["n"],
                           spec["layers"], classes=spec["classes"], seed=spec["seed"],
                           gate_activation=spec["gate_activation"], activation=spec["activation"])


def frames_for(spec, inp):
    rng = np.random.default_rng(inp["seed"])
    return (rng.standard_normal((inp["B"], inp["T"], spec["m"])) * inp["scale"]).astype(np.float32)


def check(model, spec, weights, extra, x):
    want, _, _ = reference_outputs(spec["variant"], weights, extra, x.transpose(1, 0, 2),
                                   gate_activation=spec["gate_activation"],
                                   activation=spec["activation"])
    got = model.run(x)  # (B, T, K)
    want = np.asarray(want).transpose(1, 0, 2)
    assert got.shape == want.shape
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, atol=2e-4 * max(1.0, float(np.abs(want).max())),
                               rtol=1e-4)


@settings(**SETTINGS)
@given(spec=models, inp=inputs)
def test_ir_interpreter_matches_reference(spec, inp):
    with tempfile.TemporaryDirectory() as d:
        path, weights, extra = build(Path(d), spec)
        check(runtime.load(path, "numpy"), spec, weights, extra, frames_for(spec, inp))


@pytest.mark.skipif(not extras.installed("torch"), reason="torch not installed")
@settings(**{**SETTINGS, "max_examples": 8})
@given(spec=models, inp=inputs)
def test_pytorch_matches_reference(spec, inp):
    with tempfile.TemporaryDirectory() as d:
        path, weights, extra = build(Path(d), spec)
        check(runtime.load(path, "torch", 1, device="cpu"), spec, weights, extra,
              frames_for(spec, inp))


@pytest.mark.parametrize("fmt,backend", [("onnx", "onnxruntime"), ("tflite", "litert")])
def test_exports_match_reference(fmt, backend):
    if not runtime.backend_module(backend).available():
        pytest.skip(f"{backend} not installed")

    @settings(**{**SETTINGS, "max_examples": 8})
    @given(spec=models, inp=inputs)
    def prop(spec, inp):
        with tempfile.TemporaryDirectory() as d:
            path, weights, extra = build(Path(d), spec)
            out = exporters.export(path, Path(d) / f"m{formats.get(fmt).suffix}", format=fmt,
                                   validate=False)
            check(runtime.load(out.path, backend), spec, weights, extra, frames_for(spec, inp))
    prop()


@settings(**SETTINGS)
@given(cfg=st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
                        lambda kids: st.lists(kids, max_size=3)
                        | st.dictionaries(st.text(max_size=5), kids, max_size=3), max_leaves=12),
       where=st.sampled_from(["lstm", "head", "info", "graph", "export", "kind"]))
def test_schema_never_raises_anything_but_model_file_error(cfg, where):
    """Any JSON value in any section: ModelInfo either parses it or says ModelFileError."""
    base = {"format": "slimedge/1", "kind": "classifier",
            "lstm": {"variant": "LSTM6", "input_size": 3, "hidden_size": 4, "num_layers": 1},
            "head": {"num_classes": 2, "labels": ["a", "b"]}}
    base[where] = cfg
    try:
        formats.ModelInfo.from_config(base, path="f.safetensors")
    except formats.ModelFileError:
        pass
