"""A variant defined in this file (gates σ(W x), no bias; a full cell) trains one epoch, exports to
every format in every quantisation the format offers, validates, and runs on every runtime backend
that reads each file, with no change to slimedge: the variant is only data."""
import numpy as np
import pytest
import torch

from slimedge import checkpoint, data, exporters, formats, runtime, variants
from slimedge.errors import ModelFileError, UsageError
from test_user_variants import WX_GATES, train_user_variant

MINE = variants.define("WxGates", **WX_GATES, summary="gates from the input alone")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mine")
    r = train_user_variant(tmp, MINE, epochs=1)
    frames = data.load(tmp / "user.npz").test.sequence(0).astype(np.float32)
    with torch.no_grad():
        want = r.model.forward_steps(torch.from_numpy(frames[None]))[0][0].numpy()
    return tmp, r.output, frames, want


def _exports():
    """(format, quantize) for every row export writes and every mode it offers."""
    return [(f.name, q) for f in formats.FORMATS.values() if f.exportable for q in f.quantize]


def test_the_variant_is_not_in_the_catalogue():
    assert MINE.name not in variants.VARIANTS and MINE.slots["i"].terms == {"W"}
    assert "b_i" not in MINE.term_names() and "U_c" in MINE.term_names()


@pytest.mark.parametrize("fmt,quantize", _exports())
def test_exports_validate_and_run_on_every_backend(trained, fmt, quantize):
    tmp, ckpt, frames, want = trained
    out = tmp / exporters.default_name(f"mine-{fmt}", fmt, quantize)
    r = exporters.export(ckpt, out, format=fmt, quantize=quantize)
    assert r.validation.passed, r.validation.describe()
    if quantize != "none":
        assert r.quantization["task"]["accuracy_drop"] <= 0.02
    assert formats.info(r.path).variant == "WxGates"
    readers = [b for b in formats.get(fmt).backends if b in runtime.available_backends()]
    assert readers, f"no installed backend reads {fmt}"
    for backend in readers:
        if backend == "tflm" and quantize == "dynamic":  # no hybrid kernels on a microcontroller
            with pytest.raises(ModelFileError, match="TensorFlow Lite Micro cannot run it"):
                runtime.load(r.path, backend=backend)
            continue
        got = runtime.load(r.path, backend=backend).run(frames)
        if quantize == "none":
            np.testing.assert_allclose(got, want, atol=1e-4, rtol=0, err_msg=backend)
        else:  # int8 weights or activations: the decisions hold on nearly every frame
            agree = np.mean(got.argmax(-1) == want.argmax(-1))
            assert agree >= 0.9 and np.abs(got - want).max() < 1.0, (backend, agree)


@pytest.mark.parametrize("backend", formats.CHECKPOINT.backends)
def test_the_checkpoint_runs_on_every_backend(trained, backend):
    _, ckpt, frames, want = trained
    got = runtime.load(ckpt, backend=backend).run(frames)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert checkpoint.read(ckpt).lstm["variant"]["slots"]["i"] == "W"


def test_int8_tflite_of_a_state_that_never_leaves_zero(tmp_path):
    """A cell of u ⊙ h alone: from the zero state h and c stay 0, calibration sees a zero range;
    the int8 file still validates (a floor on the activation scale keeps the int32 biases finite)."""
    spec = variants.define("StaysZero", i="Wb", f="Wb", o="Wb", c="u")
    r = train_user_variant(tmp_path, spec, name="zero")
    with np.errstate(invalid="raise"):  # the symptom was an invalid cast of the int32 bias
        res = exporters.export(r.output, tmp_path / "z.int8.tflite", format="tflite",
                               quantize="int8")
    assert res.validation.passed


def test_an_inline_variant_trains_from_the_command_line(tmp_path):
    """``--variant "NAME:i=...,f=...,o=...,c=..."``: a user variant from a shell, no Python."""
    from typer.testing import CliRunner

    from slimedge.cli import app
    from test_user_variants import small_data

    assert variants.parse("Mine:i=W,f=W,o=W,c=WUb") == variants.define("Mine", **WX_GATES)
    assert variants.get("i=Wb,f=0.5,o=1,c=Wub").constants == {"f": 0.5, "o": 1.0}
    for bad, why in [("i=W,f=W,o=W", "no c given"), ("i=W,f=W,o=W,c=WUb,i=U", "once each"),
                     ("i=WUu,f=W,o=W,c=WUb", "both a full"), ("x=W,f=W,o=W,c=W", "once each")]:
        with pytest.raises(UsageError, match=why):
            variants.parse(bad)
    npz = small_data(tmp_path / "d.npz", per_class=20)
    out = tmp_path / "inline.safetensors"
    res = CliRunner().invoke(app, ["train", "--variant", "Mine:i=W,f=W,o=W,c=WUb", "--data",
                                   str(npz), "--hidden-size", "6", "--epochs", "1", "--quiet",
                                   "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert checkpoint.read(out).lstm["variant"]["slots"] == {"i": "W", "f": "W", "o": "W",
                                                             "c": "WUb"}
    res = CliRunner().invoke(app, ["train", "--variant", "i=W,f=W", "--data", str(npz),
                                   "-o", str(tmp_path / "x.safetensors")])
    assert res.exit_code == 2 and "no o, c given" in res.output
