"""`slimedge run` and `slimedge evaluate` on exported files, through the streaming runtime."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import make_checkpoint, reference_outputs, seeded
from slimedge import data as _data
from slimedge import runtime
from slimedge.cli import app
from test_runtime import BACKENDS, SUFFIX, export_file

runner = CliRunner()
M, N, K = 4, 6, 3


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("runcli")
    ckpt, w, extra = make_checkpoint(d / "m.safetensors", "LSTM5", M, N, 1, classes=K)
    out = {s: export_file(ckpt, s) for s in dict.fromkeys(SUFFIX.values())}  # every backend's
    # a data set of 40 sequences labelled by the reference's prediction, 10 of them relabelled
    rng = seeded("cli-data")
    seqs = [rng.normal(size=(int(rng.integers(3, 12)), M)).astype(np.float32) for _ in range(40)]
    y = np.array([int(reference_outputs("LSTM5", w, extra, s[:, None])[0][-1, 0].argmax())
                  for s in seqs])
    y[:10] = (y[:10] + 1) % K
    other = [rng.normal(size=(5, M)).astype(np.float32) for _ in range(12)]  # train, val
    _data.save_npz(d / "set.npz", other + seqs, np.concatenate([np.arange(12) % K, y]),
                   labels=["a", "b", "c"], split=["train", "val"] * 6 + ["test"] * 40)
    return out, d / "set.npz", (w, extra)


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_input_prints_each_frame(model_files, backend, tmp_path):
    files, _, (w, extra) = model_files
    frames = seeded("cli-frames").normal(size=(7, M)).astype(np.float32)
    np.save(tmp_path / "f.npy", frames)
    path = files[SUFFIX[backend]]
    r = runner.invoke(app, ["run", str(path), "--input", str(tmp_path / "f.npy"), "--backend",
                            backend, "--threads", "1", "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    ry, _, _ = reference_outputs("LSTM5", w, extra, frames[:, None])
    np.testing.assert_allclose(got["outputs"], ry[:, 0], atol=1e-5)
    assert got["backend"] == backend and len(got["top"]) == 7
    r = runner.invoke(app, ["run", str(path), "-i", str(tmp_path / "f.npy"), "-b", backend])
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()  # a header, then one line per frame
    assert len(lines) == 8 and lines[0].split()[:3] == ["frame", "top", "p(top)"]
    assert lines[1].split()[0] == "0" and lines[1].split()[1] == got["top"][0]
    assert f"backend {backend}" in r.stderr


@pytest.mark.parametrize("suffix", [".onnx", ".tflite", ".safetensors"])
def test_run_data_prints_accuracy(model_files, suffix):
    files, data, _ = model_files
    if suffix == ".tflite" and "litert" not in BACKENDS:
        pytest.skip("LiteRT not installed")
    r = runner.invoke(app, ["run", str(files[suffix]), "--data", str(data), "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert (got["accuracy"], got["correct"], got["n"]) == (0.75, 30, 40)
    r = runner.invoke(app, ["run", str(files[suffix]), "--data", str(data)])
    assert r.exit_code == 0 and "accuracy 0.7500 (30/40)" in r.stdout


@pytest.mark.skipif("torch" not in BACKENDS, reason="torch not installed")
def test_evaluate_exported_file_matches_checkpoint(model_files):
    files, data, _ = model_files
    results = {}
    for suffix, extra in [(".safetensors", []), (".onnx", []), (".tflite", []),
                          (".safetensors", ["--backend", "numpy"])]:
        r = runner.invoke(app, ["evaluate", str(files[suffix]), "--data", str(data), "--json",
                                *extra])
        assert r.exit_code == 0, r.output
        results[suffix + "".join(extra)] = json.loads(r.stdout)
    ref = results[".safetensors"]  # the PyTorch evaluation
    assert ref["accuracy"] == 0.75
    for key, got in results.items():
        assert got["accuracy"] == ref["accuracy"] and got["confusion"] == ref["confusion"], key
        assert got["loss"] == pytest.approx(ref["loss"], abs=1e-5), key
    r = runner.invoke(app, ["evaluate", str(files[".onnx"]), "--data", str(data)])
    assert r.exit_code == 0 and "accuracy 0.7500 (30/40)" in r.stdout


def test_run_user_errors(model_files, tmp_path):
    files, data, _ = model_files
    onnx = str(files[".onnx"])
    np.save(tmp_path / "bad.npy", np.ones((3, M + 1)))
    np.save(tmp_path / "nan.npy", np.array([[0.0] * M, [np.nan] * M]))
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    (tmp_path / "text.npy").write_text("0.1 0.2 0.3 0.4\n")
    for args, message in [
        (["run", onnx, "-i", str(tmp_path / "text.npy")], "text.npy: not a .npy file"),
        (["run", onnx], "exactly one of --input"),
        (["run", onnx, "-i", str(tmp_path / "bad.npy"), "-d", str(data)], "exactly one of"),
        (["run", onnx, "-i", str(tmp_path / "bad.npy")], "expected frames of shape (T, 4)"),
        (["run", onnx, "-i", str(tmp_path / "nan.npy")], "frame 1: frame: expected finite"),
        (["run", onnx, "-i", str(tmp_path / "none.npy")], "none.npy"),
        (["run", str(tmp_path / "junk.onnx"), "-d", str(data)], "junk.onnx: not a loadable ONNX"),
        (["run", onnx, "-d", str(data), "-b", "numpy"], "backend 'numpy' reads .safetensors"),
        (["run", onnx, "-d", str(data), "--split", "dev"], "unknown split 'dev'"),
        (["run", onnx, "-d", "nosuchset"], "unknown data set"),
    ]:
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        assert message in " ".join(r.output.split()), (args, r.output)


def test_shipped_model_exports_reach_the_card_accuracy(tmp_path):
    """The default model's exported files reach its card's test accuracy through every backend."""
    from slimedge import checkpoint, zoo

    try:
        ckpt, card = zoo.default_model_path(), zoo.card()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    want = card["test_accuracy"]
    rec = checkpoint.read(ckpt).config["info"]["data"]  # the split it was trained and tested on
    try:
        splits = _data.load(rec["name"], split_seed=rec.get("split_seed") or 0,
                            val_fraction=rec.get("val_fraction") or _data.DEFAULT_VAL_FRACTION,
                            test_fraction=rec.get("test_fraction") or _data.DEFAULT_TEST_FRACTION,
                            limit=rec.get("limit"))
    except _data.DataPackageMissing as e:
        pytest.skip(str(e))
    n = len(splits.test)
    for backend in BACKENDS:
        path = export_file(ckpt, SUFFIX[backend], out=tmp_path / f"default{SUFFIX[backend]}")
        ev = runtime.evaluate(runtime.load(path, backend, threads=1), splits.test)
        # float graphs: the card's accuracy, give or take one near-tie sequence
        assert ev.n == n and ev.accuracy >= want - 1.0 / n - 1e-12, (backend, ev.accuracy, want)
    r = runner.invoke(app, ["run", "--data", rec["name"], "--json"])  # the default model
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["n"] == n


def test_shipped_models_by_name(tmp_path, monkeypatch):
    """A shipped model's name stands for its checkpoint in any MODEL argument; with no model,
    audio input (--audio, --data DIR) takes the raw-audio model; a user's file of that name wins."""
    from slimedge import zoo

    wav = str(zoo.sample_wav_path())
    by_name = runner.invoke(app, ["run", "fsdd_audio", "--audio", wav, "--json"])
    by_path = runner.invoke(app, ["run", str(zoo.audio_model_path()), "--audio", wav, "--json"])
    default = runner.invoke(app, ["run", "--audio", wav, "--json"])
    assert by_name.exit_code == by_path.exit_code == default.exit_code == 0, by_name.output
    want = json.loads(by_path.stdout)
    assert json.loads(by_name.stdout) == json.loads(default.stdout) == want and want["label"] == "7"
    folder = tmp_path / "wavs"
    folder.mkdir()
    (folder / "7_jackson_3.wav").write_bytes(zoo.sample_wav_path().read_bytes())
    r = runner.invoke(app, ["evaluate", "--data", str(folder), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["model"] == str(zoo.audio_model_path())
    r = runner.invoke(app, ["evaluate", "fsdd_mfcc", "--json", "--limit", "20"])
    assert r.exit_code == 0 and json.loads(r.stdout)["model"] == str(zoo.default_model_path())
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fsdd_audio").write_bytes(b"not a model")  # the user's own file, not the zoo's
    r = runner.invoke(app, ["run", "fsdd_audio", "--audio", wav])
    assert r.exit_code != 0 and "fsdd_audio" in r.output and "Traceback" not in r.output
    assert zoo.resolve(None) == zoo.default_model_path()
    assert zoo.resolve("fsdd_stream") == zoo.stream_model_path()
