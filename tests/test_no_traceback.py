"""A user's mistake is a SlimedgeError naming the file and field, never a traceback (issue 22,
item 9)."""
import json

import numpy as np
import pytest

from helpers import make_checkpoint
from slimedge import checkpoint, exporters, integrity, runtime
from slimedge.errors import UsageError


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("tb")
    return make_checkpoint(d / "m.safetensors", "LSTM1", 5, 8, 1, classes=3)[0]


@pytest.mark.parametrize("name", ["mödel.c", 'a"b.c', "a\\b.c"])
def test_c_output_names_it_cannot_include_are_refused_before_writing(ckpt, tmp_path, name):
    with pytest.raises(UsageError, match="file name must be printable ASCII without quotes"):
        exporters.export(ckpt, tmp_path / name, format="c", validate=False)
    assert list(tmp_path.iterdir()) == []


def test_info_null_loads_and_exports(ckpt, tmp_path):
    """`"info": null` is an absent section (the schema's rule), not an AttributeError later."""
    from safetensors.numpy import save_file

    ck = checkpoint.read(ckpt)
    config = {**json.loads(json.dumps(ck.config)), "info": None, "format": checkpoint.FORMAT,
              integrity.KEY: integrity.PLACEHOLDER}
    path = tmp_path / "n.safetensors"
    save_file({k: np.asarray(v, np.float32) for k, v in ck.tensors.items()}, str(path),
              metadata={"slimedge": json.dumps(config)})
    integrity.seal(path)
    runtime.load(path, "numpy").stream().step(np.zeros(5, np.float32))
    exporters.export(path, tmp_path / "n.onnx")


def test_features_with_a_huge_spread_train_into_checkpoints_that_load(tmp_path):
    """Issue 22, item 8: a feature with std above 1e6 (timestamps) trained fully and left a
    checkpoint every later load refused as corrupted (the weight limit read norm.std)."""
    import torch

    from slimedge.data import load_npz
    from slimedge.train import TrainConfig, train

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6, 3)).astype(np.float32)
    X[:, :, 0] = 1.7e9 + rng.standard_normal((40, 6)) * 3e7  # seconds since 1970
    y = (X[:, -1, 1] > 0).astype(np.int64)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    out = tmp_path / "m.safetensors"
    torch.manual_seed(0)
    train(TrainConfig(variant="LSTM1", hidden_size=4, epochs=1, batch_size=8), out,
          device="cpu", progress=False, quiet=True, splits=load_npz(tmp_path / "d.npz"))
    ck = checkpoint.read(out)
    assert float(ck.tensors["norm.std"].max()) > 1e6
    model = runtime.load(out, "numpy")
    assert np.isfinite(model.run(X[0])).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the float rollout overflows, as it should
@pytest.mark.parametrize("fmt", ["c", "tflite"])
def test_an_int8_export_of_a_diverging_model_is_refused_with_the_way_out(tmp_path, fmt):
    """Issue 22, item 9: a relu model whose streamed state reaches inf gave a ValueError
    traceback (C: cannot rescale by inf; TFLite: cannot convert NaN to integer)."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from slimedge.data import load_npz
    from slimedge.errors import QuantizationError

    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM11", 5, 8, 1, classes=3,
                                 activation="relu")
    tensors = load_file(str(path))
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
    save_file({k: v * 30 if k.startswith("layers.") else v for k, v in tensors.items()},
              str(path), metadata=meta)
    integrity.seal(path)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=rng.standard_normal((60, 20, 5)).astype(np.float32),
             y=rng.integers(0, 3, 60))
    with pytest.raises(QuantizationError, match=r"m\.safetensors: the model's streamed state "
                                                   r"diverges.*--quantize none"):
        exporters.export(path, tmp_path / f"m.{fmt}", format=fmt, quantize="int8",
                         data=load_npz(tmp_path / "d.npz"))
    assert not (tmp_path / f"m.{fmt}").exists()
