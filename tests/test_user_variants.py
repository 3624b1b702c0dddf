"""Variants of one's own (``slimedge.variants.define``): every legal combination of terms checked
against the independent reference (tests/reference.py), checkpoints that carry the structure, and
a user variant that trains and exports."""
import dataclasses
import itertools
import json
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch

import reference as ref
from slimedge import checkpoint, data, ir, variants
from slimedge.checkpoint import Checkpoint, CheckpointError
from slimedge.models import SequenceClassifier, SlimLSTM, SlimLSTMCell

# Every non-empty set of terms a slot can hold: (W or not) x (U, u or neither) x (b or not).
FORMS = [w + r + b for w in ("", "W") for r in ("", "U", "u") for b in ("", "b")][1:]
# A gate may instead be fixed (0.5 here; other values in test_fixed_values_...).
GATE_FORMS = FORMS + [0.5]
assert len(FORMS) == 11 and len(set(FORMS)) == 11


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _close(got, want, what, slots, atol=1e-9):
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or not np.all(np.abs(got - want) <= atol):  # NaN fails too
        np.testing.assert_allclose(got, want, atol=atol, rtol=0, err_msg=f"{what} of {slots}")
        raise AssertionError(f"{what} of {slots}: shape {got.shape}, expected {want.shape}")


def _run_graph(g, frames, dtype=np.float64):
    """y per step (T, B, K) from zero state, by Graph.run step after step."""
    L, n, B = g.num_layers, g.hidden_size, frames.shape[1]
    h = c = np.zeros((L, B, n))
    ys = []
    for x in frames:
        out = g.run({"x": x, "h": h, "c": c}, dtype=dtype)
        ys.append(out["y"])
        h, c = out["h_next"], out["c_next"]
    return np.stack(ys)


def _check_combination(slots, rng, *, m=3, n=4, B=2, T=4, layers=1, **acts):
    """One structure: spec costs, config round trip, SlimLSTM / SlimLSTMCell (float64) and the
    step IR run by Graph.run (float64), all against the reference. Returns the graph."""
    spec = variants.define("Combo", **slots)
    sizes = [(m if k == 0 else n, n) for k in range(layers)]
    want_params = sum(ref.num_params_slots(slots, a, b) for a, b in sizes)
    want_macs = sum(ref.macs_slots(slots, a, b) for a, b in sizes)
    assert spec.num_params(m, n) == ref.num_params_slots(slots, m, n), slots
    assert spec.macs_per_step(m, n) == ref.macs_slots(slots, m, n), slots
    cfg = json.loads(json.dumps(spec.to_config()))
    assert variants.from_config(cfg) == spec, slots

    weights = [ref.random_weights_slots(slots, a, b, rng, scale=0.8) for a, b in sizes]
    xs = rng.normal(size=(T, B, m))
    h0, c0 = rng.normal(size=(2, layers, B, n))
    ry, rh, rc = ref.sequence_slots(slots, weights, xs, h0, c0, **acts)

    # PyTorch: the layer over the sequence, and the cell's single step
    model = SlimLSTM(spec, m, n, layers, batch_first=False, **acts).double()
    assert sum(p.numel() for p in model.parameters()) == want_params, slots
    for cell, w in zip(model.cells, weights):
        assert sorted(cell.terms()) == sorted(w), slots
        cell.load_terms({k: torch.from_numpy(v) for k, v in w.items()})
    with torch.no_grad():
        y, (h, c) = model(torch.from_numpy(xs), (torch.from_numpy(h0), torch.from_numpy(c0)))
        h1, c1 = model.cells[0](torch.from_numpy(xs[0]),
                                (torch.from_numpy(h0[0]), torch.from_numpy(c0[0])))
    r1h, r1c = ref.step_slots(slots, weights[0], xs[0], h0[0], c0[0], **acts)
    for what, got, want in (("torch y", y, ry), ("torch h", h, rh), ("torch c", c, rc),
                            ("cell h", h1, r1h), ("cell c", c1, r1c)):
        _close(got.numpy(), want, what, slots)

    # the step IR, from the JSON config alone
    lstm = {"variant": cfg, "input_size": m, "hidden_size": n, "num_layers": layers, **acts}
    tensors = {f"layers.{k}.{name}": v for k, w in enumerate(weights) for name, v in w.items()}
    g = ir.lower(Checkpoint({"kind": "slim_lstm", "lstm": lstm}, tensors))
    assert g.num_params("lstm") == want_params and g.macs_per_step() == want_macs, slots
    h, c, ys = h0, c0, []
    for t in range(T):
        out = g.run({"x": xs[t], "h": h, "c": c}, dtype=np.float64)
        ys.append(out["y"])
        h, c = out["h_next"], out["c_next"]
    _close(np.stack(ys), ry, "graph y", slots)
    _close(h, rh, "graph h", slots)
    _close(c, rc, "graph c", slots)
    return g


@pytest.mark.parametrize("c", FORMS)
@pytest.mark.parametrize("i", GATE_FORMS)
def test_every_combination_matches_reference(i, c):
    """All 12 x 12 x 12 x 11 = 19,008 structures: this (i, c) pair with every f and o."""
    rng = _rng("all", i, c)
    for f, o in itertools.product(GATE_FORMS, GATE_FORMS):
        _check_combination({"i": i, "f": f, "o": o, "c": c}, rng)


@pytest.mark.parametrize("c", FORMS)
def test_fixed_values_layers_and_activations(c):
    """Fixed gates of 1.0 (no multiply), f = 0 (c' = i ⊙ c~, also when that is a constant) and
    0.25, two layers, and the other activations, with every cell form."""
    rng = _rng("fixed", c)
    for k, (i, f, o) in enumerate(itertools.product((1.0, "b", "Wu"), (0.0, 1.0, "Ub"),
                                                    (1.0, 0.25, "ub"))):
        slots = {"i": i, "f": f, "o": o, "c": c}
        acts = ({"gate_activation": "hard_sigmoid", "activation": "relu"} if k % 2
                else {"gate_activation": "sigmoid", "activation": "sigmoid"})
        g = _check_combination(slots, rng, layers=2, **acts)
        for layer in (0, 1):
            for gate in "ifo":
                if slots[gate] == 1.0:  # a gate fixed at 1.0 costs nothing
                    assert f"l{layer}.const_{gate}" not in g.initializers, slots


# ---- define: what a user may write -------------------------------------------------------------
def test_define_builds_the_structure():
    spec = variants.define("MyLSTM", i="Wb", f="bW", o=0.5, c="WUb", summary="mine")
    assert spec.slot("i").terms == spec.slot("f").terms == {"W", "b"}
    assert spec.constants == {"o": 0.5} and spec.summary == "mine"
    assert spec.describe() == {"i": "W x + b", "f": "W x + b", "o": "0.5", "c": "W x + U h + b"}
    assert spec.term_names() == ["W_i", "W_f", "W_c", "U_c", "b_i", "b_f", "b_c"]
    assert spec.num_params(28, 100) == 3 * 2800 + 100 * 100 + 300
    assert spec.with_constants({"o": 0.75}).constants == {"o": 0.75}
    assert variants.get(spec) is spec  # a spec is accepted wherever a name is


@pytest.mark.parametrize("slots,match", [
    ({"i": "WUu"}, r"MyLSTM: input gate 'i': 'WUu' has both a full \(U\) and a point-wise \(u\)"),
    ({"c": 0.5}, r"cell candidate 'c': the cell candidate needs terms"),
    ({"c": ""}, r"cell candidate 'c': no terms"),
    ({"f": ""}, r"forget gate 'f': no terms: give letters from 'WUub'"),
    ({"i": 0.0}, r"a fixed i gate of 0 is not a model: the cell state c would never change"),
    ({"o": 0}, r"a fixed o gate of 0 is not a model: h would always be 0"),
    ({"f": 1.5}, r"constant for gate 'f' must lie in \[0, 1\], got 1.5"),
    ({"f": -0.1}, r"constant for gate 'f' must lie in \[0, 1\]"),
    ({"o": float("nan")}, r"constant for gate 'o' must lie in \[0, 1\], got nan"),
    ({"i": "Wx"}, r"input gate 'i': unknown term\(s\) 'x' in 'Wx'"),
    ({"o": "WbW"}, r"output gate 'o': term\(s\) W given twice"),
    ({"f": True}, r"forget gate 'f': give terms as letters from 'WUub' or a constant"),
    ({"i": ["W"]}, r"input gate 'i': give terms as letters"),
])
def test_define_refuses_what_is_not_a_variant(slots, match):
    with pytest.raises(ValueError, match=match):
        variants.define("MyLSTM", **{"i": "Wb", "f": "Wb", "o": "Wb", "c": "WUb", **slots})


def test_define_accepts_a_fixed_forget_gate_of_zero():
    assert variants.define("Reset", i="Wb", f=0, o=1, c="Wb").constants == {"f": 0.0, "o": 1.0}


@pytest.mark.parametrize("name", ["LSTM6", "lstm0", "c6", "", " padded", 7])
def test_define_refuses_catalogue_names_and_bad_names(name):
    with pytest.raises(ValueError, match="catalogue|non-empty string"):
        variants.define(name, i="b", f="b", o="b", c="Wb")


def test_register_makes_a_name_known():
    spec = variants.define("RegMine", i="W", f="W", o="W", c="WUb")
    with pytest.raises(variants.UnknownVariantError, match="RegMine"):
        variants.get("RegMine")
    variants.register(spec)
    try:
        assert variants.get("regmine") is spec and variants.canonical_name(" REGMINE ") == "RegMine"
        assert variants.get("RegMine", constants=None) == spec
        variants.register(spec)  # the same spec again: fine
        other = variants.define("RegMine", i="b", f="b", o="b", c="Wb")
        with pytest.raises(ValueError, match="replace=True"):
            variants.register(other)
        assert variants.register(other, replace=True) is other and variants.get("RegMine") is other
        with pytest.raises(variants.UnknownVariantError) as e:
            variants.get("nothing")
        assert "registered: RegMine" in str(e.value)
        with pytest.raises(ValueError, match="catalogue"):
            variants.register(dataclasses.replace(spec, name="LSTM_6"))
        assert len(variants.VARIANTS) == 12 and "RegMine" not in variants.VARIANTS
    finally:
        variants.unregister("RegMine")
    with pytest.raises(variants.UnknownVariantError):
        variants.get("RegMine")


# ---- configs carry the structure ---------------------------------------------------------------
def test_any_spec_round_trips_through_json_unregistered():
    spec = variants.define("Roundy", i="Wu", f=0.3, o="U", c="b", summary="odd")
    cfg = json.loads(json.dumps(spec.to_config()))
    assert cfg["slots"] == {"i": "Wu", "f": 0.3, "o": "U", "c": "b"}
    assert variants.from_config(cfg) == spec and variants.from_config(json.dumps(cfg)) == spec
    assert variants.from_config(cfg).summary == "odd"
    # constants in the config override the fixed gates' values (as edited configs do)
    assert variants.from_config({**cfg, "constants": {"f": 0.9}}).constants == {"f": 0.9}
    with pytest.raises(ValueError, match="not a fixed gate"):
        variants.from_config({**cfg, "constants": {"i": 0.9}})
    with pytest.raises(ValueError, match="output gate 'o'.*both a full"):
        variants.from_config({**cfg, "slots": {**cfg["slots"], "o": "Uu"}})
    with pytest.raises(ValueError, match="must give each of i, f, o, c"):
        variants.from_config({**cfg, "slots": {"i": "W"}})


def test_catalogue_configs_old_and_new():
    for name in variants.VARIANTS:
        spec = variants.get(name)
        cfg = json.loads(json.dumps(spec.to_config()))
        assert variants.from_config(cfg) == spec
        assert variants.from_config({"name": name}) == spec  # the older, name-only config
    old = {"name": "LSTM_C6", "constants": {"f": 0.7}, "input_only_cell": True}
    spec = variants.from_config(old)
    assert spec == variants.get("c6", constants={"f": 0.7}, input_only_cell=True)
    assert spec.to_config()["slots"] == {"i": 1.0, "f": 0.7, "o": 1.0, "c": "Wb"}
    assert variants.from_config(spec.to_config()) == spec
    # a config that names a catalogue row must hold that row's structure
    bad = {**variants.get("LSTM6").to_config(), "slots": {"i": 1.0, "f": 0.4, "o": 1.0, "c": "Wb"}}
    with pytest.raises(ValueError, match="catalogue's LSTM6 but its slots"):
        variants.from_config(bad)


def test_input_only_cell_is_a_slot_replacement_not_a_name():
    c6 = variants.get("LSTM_C6")
    assert c6.input_only_reading == {"c": variants.SlotSpec(frozenset("Wb"))}
    harsh = c6.with_input_only_cell()
    assert harsh.num_params(28, 100) == 28 * 100 + 100 and harsh.slot("c").letters == "Wb"
    assert harsh.with_input_only_cell() is harsh
    # the reading travels with the data, not the name
    renamed = dataclasses.replace(c6, name="MyC6")
    assert renamed.with_input_only_cell().slot("c").letters == "Wb"
    assert variants.from_config(json.loads(json.dumps(renamed.to_config()))) == renamed
    with pytest.raises(ValueError, match="LSTM_C6 only"):
        variants.define("Mine", i="b", f="b", o="b", c="Wub").with_input_only_cell()
    model = SlimLSTM("c6", 28, 100, input_only_cell=True)
    assert model.num_params() == 28 * 100 + 100
    assert variants.from_config(model.config()["variant"]) == harsh


# ---- a user variant through checkpoints and the IR ---------------------------------------------
WX_GATES = dict(i="W", f="W", o="W", c="WUb")  # gates σ(W x), no bias; a full cell


def _user_classifier(spec, m=4, n=6, k=3, layers=2):
    torch.manual_seed(0)
    model = SequenceClassifier(spec, m, n, k, layers, labels=["a", "b", "c"])
    model.set_normalization(np.linspace(-1, 1, m), np.linspace(0.5, 2, m))
    return model.eval()


def test_user_checkpoint_reads_loads_and_lowers(tmp_path):
    spec = variants.define("WxGates", **WX_GATES, summary="gates read the input only")
    model = _user_classifier(spec)
    path = checkpoint.save(model, tmp_path / "wx.safetensors")
    ck = checkpoint.read(path)
    assert ck.lstm["variant"]["slots"] == {"i": "W", "f": "W", "o": "W", "c": "WUb"}
    assert sorted(ck.layer_terms(1)) == sorted(spec.term_names())
    loaded = checkpoint.load(path)
    assert loaded.spec == spec and isinstance(loaded.lstm.cells[0], SlimLSTMCell)
    x = torch.from_numpy(_rng("x").normal(size=(2, 30, 4)).astype(np.float32))
    with torch.no_grad():
        want, _ = model.forward_steps(x)
        got, _ = loaded.forward_steps(x)
    assert torch.equal(want, got)
    g = ir.lower(path)
    assert g.num_params("lstm") == spec.num_params(4, 6) + spec.num_params(6, 6)
    ys = _run_graph(g, x.numpy().transpose(1, 0, 2))
    np.testing.assert_allclose(ys.transpose(1, 0, 2), want.numpy(), atol=1e-5, rtol=0)
    # a checkpoint whose slots contradict the catalogue name it gives is refused
    bad = dict(ck.config, lstm={**ck.lstm, "variant": {**ck.lstm["variant"], "name": "LSTM0"}})
    checkpoint.write(tmp_path / "bad.safetensors", bad, ck.tensors)
    with pytest.raises(CheckpointError, match="catalogue's LSTM0 but its slots"):
        checkpoint.read(tmp_path / "bad.safetensors")


def test_user_checkpoint_reads_in_another_process_without_registration(tmp_path):
    spec = variants.define("WxGates", **WX_GATES)
    model = _user_classifier(spec)
    path = checkpoint.save(model, tmp_path / "wx.safetensors")
    x = _rng("x2").normal(size=(5, 1, 4)).astype(np.float32)
    with torch.no_grad():
        want = model.forward_steps(torch.from_numpy(x.transpose(1, 0, 2)))[0][0].numpy()
    code = (
        "import sys, numpy as np\n"
        "from slimedge import checkpoint, ir\n"
        f"g = ir.lower(checkpoint.read({str(path)!r}))\n"
        "h = c = np.zeros((2, 1, 6), np.float32)\n"
        "ys = []\n"
        f"for x in np.load({str(tmp_path / 'x.npy')!r}):\n"
        "    out = g.run({'x': x, 'h': h, 'c': c})\n"
        "    ys.append(out['y']); h, c = out['h_next'], out['c_next']\n"
        "ys = np.stack(ys)\n"
        "assert 'torch' not in sys.modules, 'reading and lowering imported torch'\n"
        "import torch\n"
        f"m = checkpoint.load({str(path)!r})\n"
        "with torch.no_grad():\n"
        f"    t = m.forward_steps(torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r})"
        ".transpose(1, 0, 2)))[0][0].numpy()\n"
        "np.save(sys.argv[1], np.stack([ys[:, 0], t]))\n"
        "print(m.spec.name, m.spec.describe()['i'])\n")
    np.save(tmp_path / "x.npy", x)
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out.npy")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["WxGates", "W", "x"]
    ys, t = np.load(tmp_path / "out.npy")
    np.testing.assert_allclose(ys, want, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(t, want)


def test_defining_and_reading_variants_needs_no_torch():
    code = ("import sys, json; from slimedge import variants as v\n"
            "s = v.define('NoTorch', i='Wb', f='u', o=0.5, c='Wub')\n"
            "assert v.from_config(json.loads(json.dumps(s.to_config()))) == s\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- training a user variant, and what comes after ---------------------------------------------
def small_data(path, m=3, per_class=40, seed=0):
    """A two-class .npz: short sequences whose frames sit around +0.8 or -0.8."""
    rng = np.random.default_rng(seed)
    seqs, ys = [], []
    for k in range(2 * per_class):
        y = k % 2
        seqs.append(rng.normal(size=(int(rng.integers(5, 12)), m)) + (0.8 if y else -0.8))
        ys.append(y)
    return data.save_npz(path, seqs, ys, labels=["neg", "pos"])


def train_user_variant(tmp_path, spec, *, epochs=1, hidden_size=8, name="user"):
    """Train ``spec`` (a VariantSpec or a registered name) for ``epochs`` on small data; returns
    the TrainResult (its ``output`` is the best checkpoint, which records the data file)."""
    from slimedge.train import TrainConfig, train

    npz = small_data(tmp_path / f"{name}.npz")
    config = TrainConfig(variant=spec, data=str(npz), hidden_size=hidden_size, epochs=epochs,
                         batch_size=16, lr=1e-2)
    return train(config, tmp_path / f"{name}.safetensors", device="cpu", quiet=True)


def test_user_variant_trains_resumes_exports_and_runs(tmp_path):
    from slimedge import runtime
    from slimedge.exporters import export
    from slimedge.train import TrainConfig, train

    spec = variants.define("WxGates", **WX_GATES)
    r = train_user_variant(tmp_path, spec)
    ck = checkpoint.read(r.output)
    assert ck.lstm["variant"] == spec.to_config()
    assert ck.config["info"]["train"]["variant"] == spec.to_config()
    assert r.model.spec == spec and r.log["model"]["params"] == spec.num_params(3, 8) + 2 * 8 + 2
    # the run resumes in a process where the variant is known only from its state file
    r2 = train(TrainConfig(epochs=2), r.output, resume=True, device="cpu", quiet=True)
    assert [row["epoch"] for row in r2.history] == [1, 2] and r2.model.spec == spec
    # exports, validates against the float64 IR, and runs
    result = export(r2.output, tmp_path / "m.onnx")
    assert result.validation.passed
    frames = data.load(tmp_path / "user.npz").test.sequence(0)
    with torch.no_grad():
        want = r2.model.forward_steps(torch.from_numpy(frames[None].astype(np.float32)))[0][0]
    got = runtime.load(tmp_path / "m.onnx").run(frames)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5, rtol=0)


def test_registered_variant_trains_from_the_cli(tmp_path):
    from typer.testing import CliRunner

    from slimedge.cli import app

    spec = variants.register(variants.define("CliMine", i="Wb", f=0.5, o="u", c="Wub"))
    try:
        npz = small_data(tmp_path / "d.npz", per_class=20)
        out = tmp_path / "cli.safetensors"
        res = CliRunner().invoke(app, ["train", "--variant", "climine", "--data", str(npz),
                                       "--hidden-size", "6", "--epochs", "1", "--quiet", "-o", str(out)])
        assert res.exit_code == 0, res.output
        assert checkpoint.read(out).lstm["variant"] == spec.to_config()
        res = CliRunner().invoke(app, ["train", "--variant", "climine", "--constant", "f=0.8",
                                       "--data", str(npz), "--hidden-size", "6", "--epochs", "1", "--quiet",
                                       "-o", str(out), "--overwrite"])  # a new run over the first
        assert res.exit_code == 0, res.output
        assert checkpoint.read(out).lstm["variant"]["constants"] == {"f": 0.8}
        for bad, says in ((["--constant", "o=0.5"], "gate 'o' is not a fixed gate"),
                          (["--constant", "f=2"], "must lie in [0, 1]"),
                          (["--input-only-cell"], "LSTM_C6 only")):  # one line, no traceback
            res = CliRunner().invoke(app, ["train", "--variant", "CliMine", "--data", str(npz),
                                           *bad, "-o", str(tmp_path / "no.safetensors")])
            assert res.exit_code == 2 and says in res.output
            assert "Traceback" not in res.output and not (tmp_path / "no.safetensors").exists()
    finally:
        variants.unregister("CliMine")
