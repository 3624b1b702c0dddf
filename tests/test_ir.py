
import numpy as np
import pytest

from helpers import make_checkpoint, reference_outputs, run_without_torch, seeded
from slimedge import ir, variants

ALL = list(variants.VARIANTS)


@pytest.mark.parametrize("variant", ALL)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("head", [False, True])
def test_step_graph_matches_reference(tmp_path, variant, layers, head):
    m, n, B, T = 5, 8, 3, 100
    path, w, extra = make_checkpoint(tmp_path / "m.safetensors", variant, m, n, layers,
                                     classes=4 if head else None)
    g = ir.lower(path)
    frames = seeded("frames", variant).normal(size=(T, B, m))
    h0, c0 = seeded("state", variant).normal(size=(2, layers, B, n)) * 0.5
    r = ir.rollout(g, frames, (h0, c0), dtype=np.float64)
    ys, (h, c) = r.y, r.state
    ry, rh, rc = reference_outputs(variant, w, extra, frames, h0, c0)
    np.testing.assert_allclose(ys, ry, atol=1e-9, rtol=0)
    np.testing.assert_allclose(h, rh, atol=1e-9, rtol=0)
    np.testing.assert_allclose(c, rc, atol=1e-9, rtol=0)
    ys32 = ir.rollout(g, frames.astype(np.float32), (h0.astype(np.float32), c0.astype(np.float32))).y
    np.testing.assert_allclose(ys32, ry, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["LSTM0", "LSTM5", "LSTM_C6", "LSTM3"])
@pytest.mark.parametrize("gate_act,act", [("hard_sigmoid", "sigmoid"), ("sigmoid", "relu")])
def test_activations(tmp_path, variant, gate_act, act):
    path, w, extra = make_checkpoint(tmp_path / "m.safetensors", variant, 4, 6, 2, classes=3,
                                     gate_activation=gate_act, activation=act)
    frames = seeded("f").normal(size=(60, 2, 4)) * 2
    ys = ir.rollout(ir.lower(path), frames, dtype=np.float64).y
    ry, _, _ = reference_outputs(variant, w, extra, frames, gate_activation=gate_act, activation=act)
    np.testing.assert_allclose(ys, ry, atol=1e-9, rtol=0)


@pytest.mark.parametrize("variant", ALL)
@pytest.mark.parametrize("layers", [1, 2])
def test_params_and_macs_agree_with_variants(tmp_path, variant, layers):
    m, n = 13, 64
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", variant, m, n, layers, classes=10)
    g = ir.lower(path)
    spec = variants.get(variant)
    want_p = spec.num_params(m, n) + (layers - 1) * spec.num_params(n, n)
    want_k = spec.macs_per_step(m, n) + (layers - 1) * spec.macs_per_step(n, n)
    assert g.num_params("lstm") == want_p
    assert g.macs_per_step() == want_k
    assert g.num_params("head") == 10 * n + 10 and g.macs_per_step("head") == 10 * n


def _layer_matmuls(g, layer=0):
    return g.matmul_shapes(layer=layer)


def test_op_census_per_variant(tmp_path):
    m, n = 13, 64

    def graph(variant):
        return ir.lower(make_checkpoint(tmp_path / f"{variant}.safetensors", variant, m, n)[0])

    # LSTM0: one packed matmul for x (4 slots) and one for h (4 slots)
    assert sorted(_layer_matmuls(graph("LSTM0"))) == [(4 * n, m), (4 * n, n)]
    # LSTM6's recurrence holds exactly one n×n matmul; the fixed gates 1.0 emit no multiply
    g6 = graph("LSTM6")
    assert sorted(_layer_matmuls(g6)) == [(n, m), (n, n)]
    assert g6.census().get("mul", 0) == 1  # only f = 0.4 times c
    assert "sigmoid" not in g6.census()
    # LSTM10, LSTM11, LSTM_C6: no n×n matmul at all, only W_c x
    for v in ("LSTM10", "LSTM11", "LSTM_C6"):
        assert _layer_matmuls(graph(v)) == [(n, m)], v
    # LSTM3's gates read no input and no state: constants, no sigmoid at all
    g3 = graph("LSTM3")
    assert "sigmoid" not in g3.census()
    consts = [k for k in g3.initializers if k.startswith("l0.gate_")]
    assert sorted(consts) == ["l0.gate_f", "l0.gate_i", "l0.gate_o"]
    # LSTM1: the gates' matmul reads h only (no x term), x feeds only the cell
    assert sorted(_layer_matmuls(graph("LSTM1"))) == [(n, m), (4 * n, n)]
    # LSTM4a: one sigmoid (i), the fixed o = 1 emits nothing
    g4a = graph("LSTM4a")
    assert g4a.census()["sigmoid"] == 1
    assert g4a.census()["mul"] == 3  # u_i ⊙ h, 0.96 · c, i ⊙ c~


def test_fixed_gate_zero_and_custom_constants(tmp_path):
    from slimedge import checkpoint
    path, w, extra = make_checkpoint(tmp_path / "m.safetensors", "LSTM_C6", 3, 4)
    ck = checkpoint.read(path)
    ck.config["lstm"]["variant"]["constants"] = {"f": 0.0, "o": 0.5}
    checkpoint.write(path, ck.config, ck.tensors)
    g = ir.lower(path)
    frames = seeded("z").normal(size=(20, 2, 3))
    ys = ir.rollout(g, frames, dtype=np.float64).y
    ry, _, _ = reference_outputs("LSTM_C6", w, extra, frames, constants={"f": 0.0, "o": 0.5})
    np.testing.assert_allclose(ys, ry, atol=1e-9, rtol=0)
    assert g.census()["mul"] == 2  # u_c ⊙ h and 0.5 · g(c'); f = 0 drops f ⊙ c


def test_lowering_needs_no_torch(tmp_path):
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM5", 3, 4, classes=2)
    code = ("import numpy as np\nfrom slimedge import ir\n"
            f"g = ir.lower({str(path)!r})\n"
            "print(ir.rollout(g, np.zeros((3, 1, 3), np.float32)).y.shape)")
    assert run_without_torch(code).strip() == "(3, 1, 2)"


@pytest.mark.parametrize("variant", ALL)
@pytest.mark.parametrize("layers", [1, 2])
def test_fold_normalization(tmp_path, variant, layers):
    """The normalisation folded into layer 0's input matmul(s): same outputs, two fewer nodes,
    the same parameter and MAC counts; a checkpoint without normalisation is left as it is."""
    m, n, B, T = 5, 8, 3, 100
    path, w, extra = make_checkpoint(tmp_path / "m.safetensors", variant, m, n, layers, classes=4)
    g, f = ir.lower(path), ir.lower(path, fold_normalization=True)
    assert len(f.nodes) == len(g.nodes) - 2 and not f.frontend_nodes() and g.frontend_nodes()
    assert not any(k.startswith("norm.") for k in f.initializers)
    # x is read by matmuls alone, and only by layer 0's
    readers = [nd for nd in f.nodes if "x" in nd.inputs]
    assert readers and all(nd.op == "matmul" and nd.attrs["layer"] == 0 and len(nd.inputs) == 3
                           for nd in readers)
    for role in ("lstm", "head", None):
        assert f.num_params(role) == g.num_params(role) and f.macs_per_step(role) == g.macs_per_step(role)
    frames = seeded("frames", variant).normal(size=(T, B, m)) * 3
    h0, c0 = seeded("state", variant).normal(size=(2, layers, B, n)) * 0.5
    r = ir.rollout(f, frames, (h0, c0), dtype=np.float64)
    ys, (h, c) = r.y, r.state
    ry, rh, rc = reference_outputs(variant, w, extra, frames, h0, c0)
    for got, want in ((ys, ry), (h, rh), (c, rc)):
        np.testing.assert_allclose(got, want, atol=1e-9, rtol=0)
    bare, _, _ = make_checkpoint(tmp_path / "b.safetensors", variant, m, n, layers)
    assert ir.lower(bare, fold_normalization=True).census() == ir.lower(bare).census()


def test_observe_sees_every_value(tmp_path):
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM0", 3, 4, 2, classes=2, norm=True)
    g = ir.lower(path)
    feeds = {"x": np.ones((2, 3)), "h": np.zeros((2, 2, 4)), "c": np.zeros((2, 2, 4))}
    seen = {}
    out = g.run(feeds, observe=lambda name, v: seen.setdefault(name, v))
    assert set(seen) == set(g.shapes) and not set(seen) & set(g.initializers)
    assert list(seen)[:3] == ["x", "h", "c"] and seen["x"].dtype == np.float32
    for k, v in out.items():
        assert seen[k] is v


def test_rollout_of_any_step_function(tmp_path):
    """One loop for every stepper: padded batches by lengths, recorded states and feeds, outputs
    written into the caller's buffer, a step function that owns and returns its buffers."""
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM5", 3, 4, 2, classes=2)
    g = ir.lower(path)
    frames = seeded("r").normal(size=(6, 3, 3)).astype(np.float32)
    full = ir.rollout(g, frames, record=("y", "h_next", "c_next"), states=True, feeds=True)
    assert full.y.shape == (6, 3, 2) and full.outputs["c_next"].shape == (6, 2, 3, 4)
    assert full.h.shape == (6, 2, 3, 4) and not full.h[0].any()
    np.testing.assert_array_equal(full.h[1:], full.outputs["h_next"][:-1])
    np.testing.assert_array_equal(full.state[1], full.outputs["c_next"][-1])
    assert len(full.feeds) == 6 and np.array_equal(full.feeds[2]["x"], frames[2])
    # padded rows: each row as if run alone on its own length
    lengths = np.array([6, 2, 4])
    padded = ir.rollout(g, frames, lengths=lengths, feeds=True)
    assert [len(f["x"]) for f in padded.feeds] == [3, 3, 2, 2, 1, 1]
    for b, n in enumerate(lengths):
        alone = ir.rollout(g, frames[:n, b:b + 1])
        np.testing.assert_allclose(padded.y[:n, b], alone.y[:, 0], atol=1e-6)
        assert not padded.y[n:, b].any()
        np.testing.assert_allclose(padded.state[0][:, b], alone.state[0][:, 0], atol=1e-6)
        np.testing.assert_allclose(padded.at_end(lengths)[b], alone.y[-1, 0], atol=1e-6)
    # a binding-like step: preallocated buffers, the state handed back without a copy
    bufs = {k: np.zeros(s, np.float32) for k, s in
            (("h", (2, 3, 4)), ("c", (2, 3, 4)), ("y", (3, 2)))}
    copies = []

    def step(f):
        for k in ("h", "c"):
            if f[k] is not bufs[k]:
                copies.append(k)
                np.copyto(bufs[k], f[k])
        r = g.run({"x": f["x"], "h": bufs["h"], "c": bufs["c"]})
        bufs["y"][:], bufs["h"][:], bufs["c"][:] = r["y"], r["h_next"], r["c_next"]
        return {"y": bufs["y"], "h_next": bufs["h"], "c_next": bufs["c"]}
    ys = np.zeros((3, 6, 2), np.float32)  # batch first, as the runtime's Model.run returns
    r = ir.rollout(step, frames, (bufs["h"], bufs["c"]), out={"y": ys.swapaxes(0, 1)})
    assert copies == [] and r.state[0] is bufs["h"]
    np.testing.assert_allclose(ys, full.y.swapaxes(0, 1), atol=1e-6)
    with pytest.raises(ValueError, match="initial state"):
        ir.rollout(step, frames)
