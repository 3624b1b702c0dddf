import json

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from helpers import run_without_torch
from slimedge import checkpoint
from slimedge.checkpoint import CheckpointError
from slimedge.models import SlimLSTM


def test_round_trip_keeps_weights_config_and_outputs(tmp_path):
    torch.manual_seed(0)
    model = SlimLSTM("LSTM5a", 6, 9, num_layers=2, constants={"f": 0.8},
                     gate_activation="hard_sigmoid", activation="relu").eval()
    path = checkpoint.save(model, tmp_path / "m.safetensors", note="hello")
    ck = checkpoint.read(path)
    assert ck.config["info"] == {"note": "hello"}
    assert ck.lstm["variant"]["constants"]["f"] == 0.8
    assert sorted(ck.layer_terms(1)) == ["U_c", "W_c", "b_c", "b_i", "u_i"]
    loaded = checkpoint.load(path)
    x = torch.randn(2, 15, 6)
    with torch.no_grad():
        assert torch.equal(model(x)[0], loaded(x)[0])
    assert loaded.cells[0].constants == {"f": 0.8, "o": 1.0}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_missing_truncated_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        checkpoint.read(tmp_path / "nope.safetensors")
    model = SlimLSTM("LSTM6", 3, 4)
    good = checkpoint.save(model, tmp_path / "good.safetensors")
    data = good.read_bytes()
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="trunc.safetensors: not a readable"):
        checkpoint.read(trunc)
    text = tmp_path / "notes.safetensors"
    text.write_text("just some text, not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.safetensors"):
        checkpoint.read(text)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a slimedge checkpoint"):
        checkpoint.read(foreign)


def test_inconsistent_tensors_are_rejected(tmp_path):
    cfg = {"kind": "slim_lstm", "lstm": {"variant": {"name": "LSTM6"}, "input_size": 3,
                                         "hidden_size": 4, "num_layers": 1}}
    tensors = {"layers.0.W_c": np.zeros((4, 3)), "layers.0.U_c": np.zeros((4, 4)),
               "layers.0.b_c": np.zeros(5)}
    path = checkpoint.write(tmp_path / "bad.safetensors", cfg, tensors)
    with pytest.raises(CheckpointError, match=r"layers.0.b_c has shape \(5,\), expected \(4,\)"):
        checkpoint.read(path)
    tensors["layers.0.b_c"] = np.zeros(4)
    tensors["layers.0.u_i"] = np.zeros(4)
    path = checkpoint.write(tmp_path / "bad2.safetensors", cfg, tensors)
    with pytest.raises(CheckpointError, match="holds terms"):
        checkpoint.read(path)


def test_read_needs_no_torch(tmp_path):
    path = checkpoint.save(SlimLSTM("LSTM10", 3, 4), tmp_path / "m.safetensors")
    code = ("from slimedge import checkpoint\n"
            f"ck = checkpoint.read({str(path)!r})\n"
            "print(ck.lstm['variant']['name'], sorted(ck.tensors))")
    assert run_without_torch(code).startswith("LSTM10")
    assert json.loads(json.dumps(checkpoint.read(path).config))["format"] == "slimedge/1"


def test_classifier_round_trip(tmp_path):
    from slimedge.models import SequenceClassifier

    torch.manual_seed(3)
    model = SequenceClassifier("LSTM_C6", 5, 8, num_classes=3, num_layers=2,
                               labels=["a", "b", "c"], constants={"f": 0.6}).eval()
    model.set_normalization(torch.randn(5), torch.rand(5) + 0.5)
    path = checkpoint.save(model, tmp_path / "clf.safetensors")
    loaded = checkpoint.load(path)
    assert type(loaded) is SequenceClassifier and loaded.labels == ["a", "b", "c"]
    x = torch.randn(4, 11, 5)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
        steps, _ = loaded.forward_steps(x)
        assert torch.allclose(steps[:, -1], loaded(x))
    assert loaded.spec.constants["f"] == 0.6


def test_written_files_follow_the_umask_and_failed_writes_leave_nothing(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        path = checkpoint.save(SlimLSTM("LSTM6", 3, 4), tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    before = path.read_bytes()
    with pytest.raises(TypeError):  # a tensor safetensors cannot store: the old file survives
        checkpoint.write(path, {"kind": "slim_lstm"}, {"bad": object()})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def _classifier_file(tmp_path):
    from slimedge.models import SequenceClassifier

    torch.manual_seed(0)
    path = checkpoint.save(SequenceClassifier("LSTM6", 5, 8, num_classes=3), tmp_path / "c.safetensors")
    return checkpoint.read(path)


@pytest.mark.parametrize("damage,message", [
    (lambda c, t: c["lstm"].update(num_layers=0), "must be at least 1"),
    (lambda c, t: c["lstm"].update(activation="gelu"), "unknown activation 'gelu'"),
    (lambda c, t: c["lstm"].update(gate_activation="swish"), "unknown gate_activation 'swish'"),
    (lambda c, t: c.update(kind="weird"), "unknown model kind 'weird'"),
    (lambda c, t: t.pop("head.bias"), "tensor head.bias is missing"),
    (lambda c, t: t.update({"head.weight": np.zeros((10, 3), np.float32)}),
     r"head.weight has shape \(10, 3\), expected \(3, 8\)"),
    (lambda c, t: t.update({"norm.std": np.zeros(5, np.float32)}), "norm.std must be positive"),
    (lambda c, t: t["head.bias"].__setitem__(0, np.nan), "head.bias holds NaN"),
    (lambda c, t: t.update({"extra.w": np.zeros(2, np.float32)}), r"unexpected tensors \['extra.w'\]"),
])
def test_damaged_checkpoints_are_refused_by_name(tmp_path, damage, message):
    ck = _classifier_file(tmp_path)
    tensors = {k: v.copy() for k, v in ck.tensors.items()}
    damage(ck.config, tensors)
    bad = checkpoint.write(tmp_path / "bad.safetensors", ck.config, tensors)
    with pytest.raises(CheckpointError, match=message) as e:
        checkpoint.read(bad)
    assert "bad.safetensors" in str(e.value)


def test_config_that_is_not_an_object_is_refused(tmp_path):
    path = tmp_path / "list.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(path), metadata={"slimedge": "[1, 2]"})
    with pytest.raises(CheckpointError, match="unsupported checkpoint format 'list'"):
        checkpoint.read(path)
