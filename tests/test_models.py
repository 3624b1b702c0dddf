import zlib

import numpy as np
import pytest
import torch

import reference as ref
from slimedge import variants
from slimedge.models import SlimLSTM, SlimLSTMCell

ALL = list(variants.VARIANTS)


def _set_random(model, variant, rng, input_only_cell=False):
    """Random weights at PyTorch's init scale (larger ones make the recurrence chaotic, so float32
    rounding would grow exponentially over the 50 steps)."""
    for cell in model.cells:
        w = ref.random_weights(variant, cell.input_size, cell.hidden_size, rng,
                               scale=1.5 / np.sqrt(cell.hidden_size), input_only_cell=input_only_cell)
        cell.load_terms({name: torch.from_numpy(v) for name, v in w.items()})


def _weights(model):
    return [{k: v.detach().double().numpy() for k, v in cell.terms().items()} for cell in model.cells]


@pytest.mark.parametrize("variant", ALL)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("m,n", [(3, 5), (13, 16)])
def test_sequence_matches_float64_reference(variant, layers, m, n):
    rng = np.random.default_rng(zlib.crc32(f"{variant}-{layers}-{m}-{n}".encode()))
    B, T = 4, 50
    model = SlimLSTM(variant, m, n, layers).double()
    _set_random(model, variant, rng)
    xs = rng.normal(size=(B, T, m))
    h0, c0 = rng.normal(size=(2, layers, B, n)) * 0.5
    with torch.no_grad():
        y, (h, c) = model(torch.from_numpy(xs), (torch.from_numpy(h0), torch.from_numpy(c0)))
    ry, rh, rc = ref.sequence(variant, _weights(model), xs.transpose(1, 0, 2), h0, c0)
    np.testing.assert_allclose(y.numpy(), ry.transpose(1, 0, 2), atol=1e-6, rtol=0)
    np.testing.assert_allclose(h.numpy(), rh, atol=1e-6, rtol=0)
    np.testing.assert_allclose(c.numpy(), rc, atol=1e-6, rtol=0)
    # float32, same weights and inputs (c can grow to ~10 under fixed gates: relative 1e-5 too)
    model32 = model.float()
    with torch.no_grad():
        y32, (h32, c32) = model32(torch.from_numpy(xs).float(),
                                  (torch.from_numpy(h0).float(), torch.from_numpy(c0).float()))
    np.testing.assert_allclose(y32.numpy(), ry.transpose(1, 0, 2), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(c32.numpy(), rc, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant,gate_act,act", [
    ("LSTM0", "hard_sigmoid", "sigmoid"), ("LSTM5", "hard_sigmoid", "relu"),
    ("LSTM11", "sigmoid", "relu"), ("LSTM_C6", "hard_sigmoid", "sigmoid"),
    ("LSTM3", "sigmoid", "sigmoid"), ("LSTM5a", "hard_sigmoid", "tanh"),
])
def test_activations_match_reference(variant, gate_act, act):
    rng = np.random.default_rng(7)
    model = SlimLSTM(variant, 6, 8, 2, gate_activation=gate_act, activation=act).double()
    _set_random(model, variant, rng)
    xs = rng.normal(size=(3, 60, 6)) * 2
    with torch.no_grad():
        y, (h, c) = model(torch.from_numpy(xs))
    ry, rh, rc = ref.sequence(variant, _weights(model), xs.transpose(1, 0, 2),
                              gate_activation=gate_act, activation=act)
    np.testing.assert_allclose(y.numpy(), ry.transpose(1, 0, 2), atol=1e-6, rtol=0)
    np.testing.assert_allclose(c.numpy(), rc, atol=1e-6, rtol=0)


def test_custom_constants_and_c6_input_only_cell():
    rng = np.random.default_rng(3)
    model = SlimLSTM("LSTM_C6", 4, 6, constants={"f": 0.8, "i": 0.5},
                     input_only_cell=True).double()
    assert model.num_params() == 4 * 6 + 6
    _set_random(model, "LSTM_C6", rng, input_only_cell=True)
    xs = rng.normal(size=(2, 55, 4))
    with torch.no_grad():
        y, _ = model(torch.from_numpy(xs))
    ry, _, _ = ref.sequence("LSTM_C6", _weights(model), xs.transpose(1, 0, 2),
                            constants={"f": 0.8, "i": 0.5}, input_only_cell=True)
    np.testing.assert_allclose(y.numpy(), ry.transpose(1, 0, 2), atol=1e-6, rtol=0)


@pytest.mark.parametrize("variant", ALL)
def test_parameters_are_exactly_the_spec(variant):
    m, n = 28, 100
    cell = SlimLSTMCell(variant, m, n)
    assert sum(p.numel() for p in cell.parameters()) == variants.get(variant).num_params(m, n)
    terms = cell.terms()
    assert sorted(terms) == sorted(variants.get(variant).term_names())
    shapes = {"W": (n, m), "U": (n, n), "u": (n,), "b": (n,)}
    for name, t in terms.items():
        assert tuple(t.shape) == shapes[name[0]], name
    two = SlimLSTM(variant, m, n, num_layers=2)
    assert two.num_params() == (variants.get(variant).num_params(m, n)
                                + variants.get(variant).num_params(n, n))


@pytest.mark.parametrize("variant", ALL)
def test_gradients_reach_every_parameter_and_constants_are_not_parameters(variant):
    torch.manual_seed(0)
    model = SlimLSTM(variant, 5, 7, num_layers=2)
    names = {n for n, _ in model.named_parameters()}
    assert not any("const" in n for n in names)
    y, (h, c) = model(torch.randn(3, 20, 5))
    (y.square().sum() + c.sum()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name
    for cell in model.cells:
        for value in cell.constants.values():
            assert isinstance(value, float)


def test_lstm0_reproduces_torch_nn_lstm():
    torch.manual_seed(1)
    for batch_first in (True, False):
        lstm = torch.nn.LSTM(9, 12, num_layers=2, batch_first=batch_first).double()
        model = SlimLSTM.from_torch_lstm(lstm).double()
        x = torch.randn(4, 30, 9, dtype=torch.float64)
        if not batch_first:
            x = x.transpose(0, 1)
        h0, c0 = torch.randn(2, 2, 4, 12, dtype=torch.float64)
        with torch.no_grad():
            a, (ha, ca) = lstm(x, (h0, c0))
            b, (hb, cb) = model(x, (h0, c0))
        for p, q in [(a, b), (ha, hb), (ca, cb)]:
            assert torch.allclose(p, q, atol=1e-6, rtol=0)


def test_cell_step_equals_sequence_step_and_unbatched_input():
    torch.manual_seed(2)
    model = SlimLSTM("LSTM5", 4, 6).double()
    x = torch.randn(3, 10, 4, dtype=torch.float64)
    with torch.no_grad():
        y, (h, c) = model(x)
        hs, cs = torch.zeros(3, 6, dtype=torch.float64), torch.zeros(3, 6, dtype=torch.float64)
        for t in range(10):
            hs, cs = model.cells[0](x[:, t], (hs, cs))
        y1, (h1, c1) = model(x[1])  # unbatched (T, m)
    assert torch.allclose(hs, h[0], atol=1e-12) and torch.allclose(cs, c[0], atol=1e-12)
    assert torch.allclose(y1, y[1], atol=1e-12) and h1.shape == (1, 6)


def test_padding_cannot_change_results():
    torch.manual_seed(4)
    model = SlimLSTM("LSTM11", 3, 5, num_layers=2).double().eval()
    lengths = torch.tensor([7, 12, 3])
    seqs = [torch.randn(int(L), 3, dtype=torch.float64) for L in lengths]
    padded = torch.zeros(3, 12, 3, dtype=torch.float64)
    for k, s in enumerate(seqs):
        padded[k, : len(s)] = s + 0  # padding stays zero
    padded[0, 7:] = 99.0  # garbage in the padding must not matter
    with torch.no_grad():
        y, (h, c) = model(padded, lengths=lengths)
        for k, s in enumerate(seqs):
            ys, (hs, cs) = model(s.unsqueeze(0))
            L = len(s)
            assert torch.allclose(y[k, :L], ys[0], atol=1e-12)
            assert torch.all(y[k, L:] == 0)
            assert torch.allclose(h[:, k], hs[:, 0], atol=1e-12)
            assert torch.allclose(c[:, k], cs[:, 0], atol=1e-12)


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(5)
    model = SlimLSTM("LSTM6", 4, 8, num_layers=2, dropout=0.5)
    x = torch.randn(2, 6, 4)
    model.train()
    a, _ = model(x)
    b, _ = model(x)
    assert not torch.allclose(a, b)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x)[0], model(x)[0])


def test_shape_errors_are_named():
    model = SlimLSTM("LSTM6", 4, 8, num_layers=2)
    with pytest.raises(ValueError, match=r"m = 4, got shape \(2, 5, 3\)"):
        model(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match=r"h_0 must have shape \(2, 2, 8\), got \(1, 2, 8\)"):
        model(torch.randn(2, 5, 4), (torch.zeros(1, 2, 8), torch.zeros(1, 2, 8)))
    with pytest.raises(ValueError, match="lengths must lie in"):
        model(torch.randn(2, 5, 4), lengths=torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"x must be \(batch, 4\)"):
        model.cells[0](torch.randn(2, 3))
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        SlimLSTM("LSTM6", 4, 8, activation="gelu")
    with pytest.raises(ValueError, match="LSTM7"):
        SlimLSTM("LSTM7", 4, 8)


def test_paper_initialisation():
    torch.manual_seed(6)
    cell = SlimLSTMCell("LSTM5", 10, 16, init="paper")
    t = cell.terms()
    assert torch.all(t["b_i"] == 0) and torch.all(t["b_c"] == 0)
    U = t["U_c"].double()
    assert torch.allclose(U @ U.T, torch.eye(16, dtype=torch.float64), atol=1e-5)
    us = torch.stack([t["u_i"], t["u_f"], t["u_o"]]).double()  # columns of one orthogonal matrix
    assert torch.allclose(us @ us.T, torch.eye(3, dtype=torch.float64), atol=1e-5)
    limit = (6 / (10 + 16)) ** 0.5
    assert t["W_c"].abs().max() <= limit


@pytest.mark.parametrize("init", ["pytorch", "paper"])
@pytest.mark.parametrize("variant", ["LSTM0", "LSTM3", "LSTM11", "LSTM2", "LSTM10", "LSTM5a",
                                     "LSTM_C6"])
def test_forget_bias_sets_b_f_only(variant, init):
    torch.manual_seed(3)
    plain = SlimLSTM(variant, 3, 5, num_layers=2, init=init)
    torch.manual_seed(3)
    biased = SlimLSTM(variant, 3, 5, num_layers=2, init=init, forget_bias=1.5)
    learns_b_f = variants.get(variant).has("f", "b")
    for a, b in zip(plain.cells, biased.cells):
        ta, tb = a.terms(), b.terms()
        assert ("b_f" in tb) == learns_b_f
        for name in ta:
            if name == "b_f":
                assert torch.all(tb[name] == 1.5)
            else:  # everything else as the init made it
                assert torch.equal(ta[name], tb[name]), name


@pytest.mark.parametrize("slots", [
    {"i": "Wb", "f": "W", "o": "Wub", "c": "WU"},     # W slots with a bias only in part
    {"i": "W", "f": "Ub", "o": 0.5, "c": "Wb"},       # gate biases without W, a W gate without b
    {"i": "b", "f": "u", "o": "WU", "c": "ub"},       # a cell without W
])
def test_user_variants_train_every_parameter(slots):
    spec = variants.define("Mine", **slots)
    torch.manual_seed(0)
    model = SlimLSTM(spec, 5, 7, num_layers=2)
    assert model.num_params() == spec.num_params(5, 7) + spec.num_params(7, 7)
    assert sorted(model.cells[1].terms()) == sorted(spec.term_names())
    y, (h, c) = model(torch.randn(3, 20, 5), lengths=torch.tensor([20, 9, 4]))
    (y.square().sum() + c.sum()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name
