import subprocess
import sys

import numpy as np
import pytest

from helpers import make_checkpoint, reference_outputs, seeded
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
    ys, (h, c) = ir.rollout(g, frames, dtype=np.float64, state=(h0, c0))
    ry, rh, rc = reference_outputs(variant, w, extra, frames, h0, c0)
    np.testing.assert_allclose(ys, ry, atol=1e-9, rtol=0)
    np.testing.assert_allclose(h, rh, atol=1e-9, rtol=0)
    np.testing.assert_allclose(c, rc, atol=1e-9, rtol=0)
    ys32, _ = ir.rollout(g, frames.astype(np.float32), state=(h0.astype(np.float32), c0.astype(np.float32)))
    np.testing.assert_allclose(ys32, ry, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["LSTM0", "LSTM5", "LSTM_C6", "LSTM3"])
@pytest.mark.parametrize("gate_act,act", [("hard_sigmoid", "sigmoid"), ("sigmoid", "relu")])
def test_activations(tmp_path, variant, gate_act, act):
    path, w, extra = make_checkpoint(tmp_path / "m.safetensors", variant, 4, 6, 2, classes=3,
                                     gate_activation=gate_act, activation=act)
    frames = seeded("f").normal(size=(60, 2, 4)) * 2
    ys, _ = ir.rollout(ir.lower(path), frames, dtype=np.float64)
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
    ys, _ = ir.rollout(g, frames, dtype=np.float64)
    ry, _, _ = reference_outputs("LSTM_C6", w, extra, frames, constants={"f": 0.0, "o": 0.5})
    np.testing.assert_allclose(ys, ry, atol=1e-9, rtol=0)
    assert g.census()["mul"] == 2  # u_c ⊙ h and 0.5 · g(c'); f = 0 drops f ⊙ c


def test_lowering_needs_no_torch(tmp_path):
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM5", 3, 4, classes=2)
    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpy as np\nfrom slimedge import ir\n"
            f"g = ir.lower({str(path)!r})\n"
            "print(ir.rollout(g, np.zeros((3, 1, 3), np.float32))[0].shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(3, 1, 2)"


@pytest.mark.parametrize("variant", ALL)
@pytest.mark.parametrize("layers", [1, 2])
def test_fold_normalization(tmp_path, variant, layers):
    """The normalisation folded into layer 0's input matmul(s): same outputs, two fewer nodes,
    the same parameter and MAC counts; a checkpoint without normalisation is left as it is."""
    m, n, B, T = 5, 8, 3, 100
    path, w, extra = make_checkpoint(tmp_path / "m.safetensors", variant, m, n, layers, classes=4)
    g, f = ir.lower(path), ir.lower(path, fold_normalization=True)
    assert len(f.nodes) == len(g.nodes) - 2 and not any(nd.attrs.get("role") == "norm" for nd in f.nodes)
    assert not any(k.startswith("norm.") for k in f.initializers)
    # x is read by matmuls alone, and only by layer 0's
    readers = [nd for nd in f.nodes if "x" in nd.inputs]
    assert readers and all(nd.op == "matmul" and nd.attrs["layer"] == 0 and len(nd.inputs) == 3
                           for nd in readers)
    for role in ("lstm", "head", None):
        assert f.num_params(role) == g.num_params(role) and f.macs_per_step(role) == g.macs_per_step(role)
    frames = seeded("frames", variant).normal(size=(T, B, m)) * 3
    h0, c0 = seeded("state", variant).normal(size=(2, layers, B, n)) * 0.5
    ys, (h, c) = ir.rollout(f, frames, dtype=np.float64, state=(h0, c0))
    ry, rh, rc = reference_outputs(variant, w, extra, frames, h0, c0)
    for got, want in ((ys, ry), (h, rh), (c, rc)):
        np.testing.assert_allclose(got, want, atol=1e-9, rtol=0)
    bare, _, _ = make_checkpoint(tmp_path / "b.safetensors", variant, m, n, layers)
    assert ir.lower(bare, fold_normalization=True).census() == ir.lower(bare).census()
