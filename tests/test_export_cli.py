"""`slimedge export`: a validation table on success; bad input gives one clear line, a non-zero
exit and no output file."""
import json

import onnx
import pytest
from typer.testing import CliRunner

from helpers import make_checkpoint
from slimedge.cli import app

runner = CliRunner()


@pytest.fixture()
def model(tmp_path):
    return make_checkpoint(tmp_path / "model.safetensors", "LSTM6", 5, 8, 2, classes=3)[0]


def files(d):
    return sorted(p.name for p in d.iterdir())


def test_export_prints_table_and_writes(tmp_path, model):
    out = tmp_path / "out" / "m.onnx"
    r = runner.invoke(app, ["export", str(model), "--format", "onnx", "-o", str(out)])
    assert r.exit_code == 0, r.output
    for word in ("y", "h_next", "c_next", "max |diff|", "1e-05", "100 steps", "wrote"):
        assert word in r.stdout
    onnx.checker.check_model(onnx.load(out), full_check=True)
    r = runner.invoke(app, ["export", str(model), "--mode", "sequence", "--validation-steps", "150",
                            "--json", "-o", str(tmp_path / "s.onnx")])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["mode"] == "sequence" and res["validation"]["steps"] == 150
    assert res["validation"]["passed"] and max(res["validation"]["max_abs_diff"].values()) < 1e-5


def test_default_output_name_and_no_validate(tmp_path, model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["export", str(model), "--no-validate"])
    assert r.exit_code == 0, r.output
    assert "not validated" in r.stdout and (tmp_path / "model.onnx").is_file()
    r = runner.invoke(app, ["export", str(model), "--mode", "sequence"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "model.sequence.onnx").is_file()


def test_validation_failure_exits_nonzero_and_leaves_no_file(tmp_path, model):
    out = tmp_path / "m.onnx"
    r = runner.invoke(app, ["export", str(model), "--atol", "1e-12", "-o", str(out)])
    assert r.exit_code == 1
    assert "validation failed" in r.stderr and "FAIL" in r.stderr and "no file written" in r.stderr
    assert files(tmp_path) == ["model.safetensors"]


@pytest.mark.parametrize("args,needle", [
    (["--format", "coreml"], "unknown format 'coreml'"),
    (["--mode", "batch"], "unknown mode 'batch'"),
    (["--quantize", "int4"], "unknown quantize 'int4'"),
    (["--atol", "-1"], "atol must be positive"),
])
def test_bad_options(tmp_path, model, args, needle):
    r = runner.invoke(app, ["export", str(model), "-o", str(tmp_path / "m.onnx"), *args])
    assert r.exit_code == 2, r.output
    assert needle in r.stderr and "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1
    assert files(tmp_path) == ["model.safetensors"]


def test_unknown_option(tmp_path, model):
    r = runner.invoke(app, ["export", str(model), "-o", str(tmp_path / "m.onnx"), "--bogus"])
    assert r.exit_code == 2 and "--bogus" in r.output
    assert files(tmp_path) == ["model.safetensors"]


def test_missing_and_wrong_kind_of_file(tmp_path, model):
    out = tmp_path / "m.onnx"
    missing = tmp_path / "nope.safetensors"
    r = runner.invoke(app, ["export", str(missing), "-o", str(out)])
    assert r.exit_code == 2 and str(missing) in r.stderr and "no such" in r.stderr
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a checkpoint")
    r = runner.invoke(app, ["export", str(text), "-o", str(out)])
    assert r.exit_code == 2 and str(text) in r.stderr and "Traceback" not in r.output
    # an ONNX file is not a model to export
    assert runner.invoke(app, ["export", str(model), "-o", str(out)]).exit_code == 0
    r = runner.invoke(app, ["export", str(out), "-o", str(tmp_path / "again.onnx")])
    assert r.exit_code == 2 and str(out) in r.stderr
    assert files(tmp_path) == ["m.onnx", "model.safetensors", "notes.txt"]


def test_bad_output_paths(tmp_path, model):
    r = runner.invoke(app, ["export", str(model), "-o", str(tmp_path)])
    assert r.exit_code == 2 and "is a directory" in r.stderr
    r = runner.invoke(app, ["export", str(model), "-o", str(model)])
    assert r.exit_code == 2 and "refusing to overwrite" in r.stderr
    assert files(tmp_path) == ["model.safetensors"]


def test_no_model_and_no_shipped_default(tmp_path, monkeypatch):
    import slimedge.zoo

    real = slimedge.zoo._file  # its own message, for a shipped file that is not there
    monkeypatch.setattr(slimedge.zoo, "_file", lambda name: real("missing_" + name))
    r = runner.invoke(app, ["export", "-o", str(tmp_path / "m.onnx")])
    assert r.exit_code == 2 and "name a model explicitly" in r.stderr
    assert files(tmp_path) == []


def test_output_suffix_of_another_format_is_refused(tmp_path):
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM6", 3, 4)
    r = runner.invoke(app, ["export", str(path), "-f", "tflite", "-o", str(tmp_path / "m.onnx")])
    assert r.exit_code == 2
    assert "the suffix .onnx is for onnx files, and this is a tflite export" in " ".join(r.output.split())
    assert not (tmp_path / "m.onnx").exists()
