"""The command line as a new user meets it: each trap found by trying slimedge as one (issue 14)
reproduced here, and now answered: distinct default names, enforced suffixes, clear refusals,
warnings for ignored options, help with defaults and choices, one meaning per option, readable
output (progress in a log, tables in 80 columns, one size unit, no third-party chatter), and
streams a server can batch in any combination."""
import io
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import typer.main
from rich.console import Console
from typer.testing import CliRunner

from helpers import make_checkpoint
from slimedge import cli, exporters, formats, profile, runtime
from slimedge import data as _data
from slimedge.cli import app
from slimedge.profile.report import _size

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
M, K = 3, 2


def one_line(text: str) -> str:
    return " ".join(text.split())


def files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small .npz data set: 3 features, 2 classes, a fixed split."""
    d = tmp_path_factory.mktemp("habits-data")
    rng = np.random.default_rng(14)
    seqs = [rng.normal(size=(int(rng.integers(3, 9)), M)) + (k % 2) for k in range(48)]
    return _data.save_npz(d / "set.npz", seqs, np.arange(48) % K, labels=["no", "yes"],
                          split=["train", "train", "val", "test"] * 12)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, dataset):
    """A classifier trained one epoch on the data set (it records the data set it came from)."""
    pytest.importorskip("torch")
    d = tmp_path_factory.mktemp("habits-train")
    out = d / "m.safetensors"
    r = runner.invoke(app, ["train", "-o", str(out), "--data", str(dataset), "-n", "4",
                            "--epochs", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture()
def model(tmp_path):
    return make_checkpoint(tmp_path / "model.safetensors", "LSTM6", M, 4, classes=K)[0]


# ---- names, suffixes, refusals ---------------------------------------------------------------
def test_default_names_per_quantisation_never_replace_the_float_file(tmp_path, trained,
                                                                     monkeypatch):
    """`export X -f tflite -q int8` without -o wrote X.tflite, the float file's name, over it."""
    pytest.importorskip("ai_edge_litert")
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["export", str(trained), "-f", "tflite"])
    assert r.exit_code == 0, r.output
    float_bytes = (tmp_path / "m.tflite").read_bytes()
    for q in ("int8", "dynamic"):
        r = runner.invoke(app, ["export", str(trained), "-f", "tflite", "-q", q, "--no-validate"])
        assert r.exit_code == 0, r.output
        assert f"m.{q}.tflite" in r.stdout
    r = runner.invoke(app, ["export", str(trained), "-q", "dynamic", "--no-validate"])
    assert r.exit_code == 0, r.output
    assert files(tmp_path) == ["m.dynamic.onnx", "m.dynamic.tflite", "m.int8.tflite", "m.tflite"]
    assert (tmp_path / "m.tflite").read_bytes() == float_bytes
    assert formats.info(tmp_path / "m.int8.tflite").quantize == "int8"


def test_replacing_another_kind_of_export_is_said(tmp_path, trained):
    out = tmp_path / "a.onnx"
    assert runner.invoke(app, ["export", str(trained), "-o", str(out)]).exit_code == 0
    r = runner.invoke(app, ["export", str(trained), "-o", str(out), "-q", "dynamic",
                            "--no-validate"])
    assert r.exit_code == 0, r.output
    assert "holds a onnx step graph (quantize none) and will be replaced" in one_line(r.stderr)


def test_replacing_a_tflite_file_for_another_interpreter_is_said(tmp_path, trained, monkeypatch):
    """`--compat tflm` exports replaced the LiteRT files of the same name without a word; without
    -o each interpreter's file now has its own name."""
    pytest.importorskip("ai_edge_litert")
    out = tmp_path / "a.tflite"
    assert runner.invoke(app, ["export", str(trained), "-o", str(out), "--no-validate"]).exit_code == 0
    r = runner.invoke(app, ["export", str(trained), "-o", str(out), "--compat", "tflm",
                            "--no-validate"])
    assert r.exit_code == 0, r.output
    assert ("holds a tflite step graph (quantize none, for litert) and will be replaced by a "
            "tflite step graph (quantize none, for tflm)") in one_line(r.stderr)
    r = runner.invoke(app, ["export", str(trained), "-o", str(out), "--compat", "tflm",
                            "--no-validate"])
    assert r.exit_code == 0 and "replaced" not in r.stderr  # the same kind again: no warning
    monkeypatch.chdir(tmp_path)
    for compat in ("litert", "tflm"):
        r = runner.invoke(app, ["export", str(trained), "-f", "tflite", "--compat", compat,
                                "--no-validate"])
        assert r.exit_code == 0 and "replaced" not in r.stderr, r.output
    assert files(tmp_path) == ["a.tflite", "m.tflite", "m.tflm.tflite"]
    assert formats.info(tmp_path / "m.tflm.tflite").export["compat"] == "tflm"


@pytest.mark.parametrize("name, says", [
    ("m.pb", "a onnx export must end in .onnx (slimedge tells model files by their suffix), e.g. m.onnx"),
    ("m.int8", "e.g. m.int8.onnx"),
    ("model", "e.g. model.onnx"),
])
def test_export_suffix_is_the_formats(tmp_path, model, name, says):
    """`export -o X.pb` wrote ONNX into a .pb file that nothing reads back."""
    r = runner.invoke(app, ["export", str(model), "-o", str(tmp_path / name)])
    assert r.exit_code == 2 and says in one_line(r.stderr), r.output
    assert files(tmp_path) == ["model.safetensors"]


def test_export_takes_a_checkpoint(tmp_path, model):
    """`export X.onnx -o Y.tflite` said 'not a readable .safetensors checkpoint ... header too
    large'."""
    onnx_file = exporters.export(model, tmp_path / "m.onnx").path
    for args in (["-o", str(tmp_path / "y.tflite")], []):
        r = runner.invoke(app, ["export", str(onnx_file), *args])
        assert r.exit_code == 2
        assert ("m.onnx: export takes a checkpoint (.safetensors), and this is a onnx file"
                in one_line(r.stderr))
        assert "header" not in r.stderr
    with pytest.raises(ValueError, match="export takes a checkpoint"):
        exporters.export(onnx_file, tmp_path / "z.tflite", format="tflite")
    assert files(tmp_path) == ["m.onnx", "model.safetensors"]


def test_train_output_must_be_a_checkpoint_name(tmp_path, monkeypatch):
    """`train -o a.pt` wrote a checkpoint that `run a.pt` then refused."""
    monkeypatch.setattr(_data, "load", lambda *a, **k: pytest.fail("data loaded"))
    r = runner.invoke(app, ["train", "-o", str(tmp_path / "a.pt"), "--epochs", "1"])
    assert r.exit_code == 2
    assert "a.pt: a checkpoint is a .safetensors file" in one_line(r.stderr)
    assert "name it a.safetensors" in r.stderr
    assert files(tmp_path) == []


def test_resume_warns_about_the_settings_it_ignores(tmp_path, dataset):
    pytest.importorskip("torch")
    out = tmp_path / "r.safetensors"
    base = ["train", "-o", str(out), "--data", str(dataset), "-n", "4", "--quiet"]
    assert runner.invoke(app, [*base, "--epochs", "1"]).exit_code == 0
    r = runner.invoke(app, ["train", "-o", str(out), "--resume", "--epochs", "2", "--lr", "0.5",
                            "--hidden-size", "9", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "warning: --hidden-size, --lr are ignored: --resume continues the run with its own" in (
        one_line(r.stderr))
    log = json.loads(out.with_name("r.log.json").read_text())
    assert log["config"]["lr"] == 3e-3 and log["config"]["hidden_size"] == 4
    r = runner.invoke(app, ["train", "-o", str(out), "--resume", "--epochs", "3", "--quiet"])
    assert r.exit_code == 0 and "warning" not in r.stderr


def test_train_onto_an_existing_run_needs_resume_or_overwrite(tmp_path, dataset):
    """A second `train -o runs/mine.safetensors` replaced the first run's checkpoint, state and
    log without a word."""
    pytest.importorskip("torch")
    from slimedge.train import TrainConfig, train

    out = tmp_path / "r.safetensors"
    base = ["train", "-o", str(out), "--data", str(dataset), "-n", "4", "--quiet", "--epochs", "1"]
    assert runner.invoke(app, base).exit_code == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["r.log.json", "r.safetensors", "r.state.safetensors"]
    r = runner.invoke(app, [*base, "--seed", "3"])
    assert r.exit_code == 2
    assert (f"{out}: a run is there already (r.safetensors, r.state.safetensors, r.log.json); "
            "continue it with --resume, replace it with --overwrite, or choose another output"
            ) in one_line(r.stderr)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    r = runner.invoke(app, [*base, "--resume", "--overwrite"])
    assert r.exit_code == 2 and "give one of them" in r.stderr
    config = TrainConfig(data=str(dataset), hidden_size=4, epochs=1, seed=3)
    with pytest.raises(ValueError, match="continue it with resume=True, replace it with "
                                         "overwrite=True"):
        train(config, out, quiet=True)
    r = runner.invoke(app, [*base, "--seed", "3", "--overwrite"])
    assert r.exit_code == 0, r.output
    log = json.loads((tmp_path / "r.log.json").read_text())
    assert log["config"]["seed"] == 3 and len(log["epochs"]) == 1
    assert (tmp_path / "r.safetensors").read_bytes() != before["r.safetensors"]


def test_export_data_points_calibration_at_a_moved_file(tmp_path, dataset, trained):
    """int8 calibration needs the data set the checkpoint records; after moving the .npz there
    was no way to point at it."""
    pytest.importorskip("onnxruntime")
    ckpt = tmp_path / "m.safetensors"
    ckpt.write_bytes(trained.read_bytes())
    moved = tmp_path / "elsewhere" / "set.npz"
    moved.parent.mkdir()
    moved.write_bytes(dataset.read_bytes())
    original = dataset.with_name("set.moved-away.npz")
    os.replace(dataset, original)  # the recorded path no longer exists
    try:
        args = ["export", str(ckpt), "-q", "int8", "--no-validate", "-o", str(tmp_path / "q.onnx")]
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and "Traceback" not in r.output
        assert "give it with --data NAME or FILE.npz" in one_line(r.stderr)
        assert not (tmp_path / "q.onnx").exists()
        r = runner.invoke(app, [*args, "--data", str(moved)])
        assert r.exit_code == 0, r.output
        assert formats.info(tmp_path / "q.onnx").quantize == "int8"
    finally:
        os.replace(original, dataset)


def test_quantising_without_any_data_set_says_pass_data(tmp_path, model):
    r = runner.invoke(app, ["export", str(model), "-q", "int8", "-o", str(tmp_path / "q.onnx")])
    assert r.exit_code == 2
    assert "records no data set: pass --data NAME or FILE.npz" in one_line(r.stderr)


@pytest.mark.parametrize("args, warning", [
    (["--no-validate", "--atol", "1e-3", "--validation-steps", "7"],
     "--atol, --validation-steps are ignored: --no-validate runs no validation"),
    (["--data", "fsdd"], "--data is ignored: it calibrates and checks quantised files"),
])
def test_export_warns_about_ignored_options(tmp_path, model, args, warning):
    r = runner.invoke(app, ["export", str(model), "-o", str(tmp_path / "m.onnx"), *args])
    assert r.exit_code == 0, r.output
    assert warning in one_line(r.stderr)


def test_run_warns_that_split_options_do_not_apply_to_input(tmp_path, model):
    np.save(tmp_path / "f.npy", np.zeros((2, M), np.float32))
    r = runner.invoke(app, ["run", str(model), "-i", str(tmp_path / "f.npy"), "--split", "val",
                            "--limit", "3"])
    assert r.exit_code == 0, r.output
    assert "--split, --limit are ignored" in one_line(r.stderr)


def test_profile_warns_that_quantize_does_not_apply_to_an_export(tmp_path, model):
    pytest.importorskip("onnxruntime")
    onnx_file = exporters.export(model, tmp_path / "m.onnx").path
    r = runner.invoke(app, ["profile", str(onnx_file), "-q", "int8", "-b", "onnxruntime",
                            "--baseline", "none", "--steps", "5", "--warmup", "0", "--rounds",
                            "1", "--json"])
    assert r.exit_code == 0, r.output
    assert "--quantize is ignored" in one_line(r.stderr) and "already exported" in r.stderr
    report = json.loads(r.stdout)  # --json: the report on stdout, as in every command
    assert [x["config"]["quantize"] for x in report["results"]] == ["none"]


# ---- help and option names ---------------------------------------------------------------------
def test_help_shows_defaults_and_choices():
    r = runner.invoke(app, ["export", "--help"], terminal_width=100)
    text = one_line(r.stdout)
    assert "[none|dynamic|int8]" in text and "[default: none]" in text
    assert "[step|sequence]" in text and "[default: step]" in text
    assert "[default: from -o's suffix, else onnx]" in text
    assert "<bool>" not in r.stdout and "<str>" not in r.stdout
    r = runner.invoke(app, ["train", "--help"], terminal_width=100)
    text = one_line(r.stdout)
    assert "[default: 10; with --resume: the run's own]" in text
    assert "[constant|cosine]" in text and "[default: 64]" in text
    r = runner.invoke(app, ["profile", "--help"], terminal_width=100)
    assert "[default: 2000" in one_line(r.stdout)


def _options():
    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        for p in command.params:
            if getattr(p, "opts", None) and p.opts[0].startswith("-"):
                yield name, p


def test_short_options_and_names_mean_one_thing_everywhere():
    """-q was --quiet in train but --quantize in export and profile; -n --hidden-size in train
    but --steps in profile; --steps the validation length in export; --json a flag except in
    profile, where it took a file."""
    longs_of: dict[str, set] = {}
    for _, p in _options():
        longs = [o for o in p.opts if o.startswith("--")]
        for short in (o for o in p.opts if not o.startswith("--")):
            longs_of.setdefault(short, set()).add(longs[0])
    clashes = {s: ls for s, ls in longs_of.items() if len(ls) > 1}
    assert clashes == {}
    assert longs_of["-q"] == {"--quantize"} and longs_of["-n"] == {"--hidden-size"}
    for command, p in _options():
        if "--json" in p.opts:
            assert p.is_flag, command
        if "--steps" in p.opts:
            assert command in ("profile", "demo"), command  # timed steps, nothing else


# ---- missing packages, found before the work ---------------------------------------------------
def _without(monkeypatch, *modules):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in modules else real(name, *a))


def test_profile_plot_checks_matplotlib_before_measuring(monkeypatch, tmp_path, model):
    _without(monkeypatch, "matplotlib")
    monkeypatch.setattr(profile, "run", lambda *a, **k: pytest.fail("measured"))
    r = runner.invoke(app, ["profile", str(model), "--plot", str(tmp_path / "p.png")])
    assert r.exit_code == 2
    assert "--plot needs matplotlib" in r.stderr and "slimedge[profile]" in r.stderr


def test_demo_checks_its_packages_before_any_work(monkeypatch, tmp_path):
    from slimedge import demo

    _without(monkeypatch, "matplotlib")
    monkeypatch.setattr(demo, "run", lambda *a, **k: pytest.fail("started"))
    r = runner.invoke(app, ["demo", "-o", str(tmp_path / "d")])
    assert r.exit_code == 2 and "slimedge demo needs matplotlib" in r.stderr
    assert "pip install 'slimedge[profile]'" in r.stderr


def test_train_checks_torch_before_any_work(monkeypatch, tmp_path):
    _without(monkeypatch, "torch")
    monkeypatch.setattr(_data, "load", lambda *a, **k: pytest.fail("data loaded"))
    r = runner.invoke(app, ["train", "-o", str(tmp_path / "m.safetensors")])
    assert r.exit_code == 2 and "slimedge train needs torch" in r.stderr
    assert "pip install 'slimedge[train]'" in r.stderr


# ---- output ------------------------------------------------------------------------------------
def _fake_report(labels):
    lat = {"count": 100, "mean": 123456.7, "std": 9876.5, "min": 1.2, "p50": 12345.6,
           "p90": 23456.7, "p99": 123456.7, "max": 999999.0}
    results = []
    for k, label in enumerate(labels):
        results.append({
            "config": {"label": label, "role": ("model", "lstm0", "torch.onnx")[k % 3],
                       "backend": "onnxruntime", "quantize": "dynamic"},
            "latency_us": lat, "steps_per_s": 1234567.0, "rtf": 12.3456, "size_bytes": 123_456_789,
            "params": 12_345_678, "macs_per_step": 12_345_678, "ops": {"MatMul": 12, "Add": 40},
            "load_ms": 12345.6, "first_step_us": 123456.7, "stream_overhead_us": 123.45,
            "memory_mb": {"peak": 12345.0, "model": 1234.5},
            "vs_lstm0": {"speedup": 12.34, "size_ratio": 12.34},
            "vs_torch_onnx": {"speedup": 12.34, "size_ratio": 12.34},
            "streams": {"64": {"call_us": {"p50": 12345.6}, "us_per_stream_step": 123.45,
                               "stream_steps_per_s": 1234567.0}}})
    results.append({"config": {"label": "LSTM6 litert int8", "role": "model"}, "error": "failed",
                    "size_bytes": None})
    return {"settings": {"threads": 1, "steps": 2000, "warmup": 200, "rounds": 20,
                         "frame_ms": 10.0, "streams": 64}, "results": results}


def _render(tables, width: int) -> str:
    out = Console(width=width, record=True, file=io.StringIO())
    for t in tables:
        out.print(t)
    return out.export_text()


def _names_lose_only_their_middle(text: str, labels: list[str]) -> None:
    """Each row's first cell is a label, whole or shortened from the middle (its start and end
    kept: fsdd_def…dynamic.onnx), never cut at the end (empty: a row's second line)."""
    cells = [line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│ ")]
    assert any(cells)
    for cell in cells:
        head, cut, tail = cell.partition("…")
        if cut:
            assert any(label.startswith(head) and label.endswith(tail) for label in labels), cell
        else:
            assert cell == "" or cell in labels, cell


def test_profile_tables_fit_80_columns_and_wide_shows_everything():
    """At 80 columns the tables were cut to unreadable cells; in a log forced to 170."""
    labels = ["fsdd_default onnxruntime dynamic",
              "torch.onnx LSTM [fsdd_default#2] onnxruntime dynamic",
              "LSTM0 [fsdd_default] litert int8"]
    report = _fake_report(labels)
    text = _render(profile.tables(report), 80)
    assert max(map(len, text.splitlines())) <= 80
    _names_lose_only_their_middle(text, [r["config"]["label"] for r in report["results"]])
    for word in ("p50", "p99", "× LSTM0", "× torch.onnx", "MACs/step", "peak MiB", "1,234,567"):
        assert word in text
    wide = _render(profile.tables(report, wide=True), 170)
    assert "…" not in wide
    for word in ("p90", "mean ± std", "RTF", "load ms", "step overhead µs", "model MiB"):
        assert word in wide


def test_one_size_unit():
    assert _size(1536) == "1.5 KiB" and _size(3 * 2**20) == "3.00 MiB"


def test_export_output_in_kib_with_the_heads_macs(tmp_path, model):
    r = runner.invoke(app, ["export", str(model), "-o", str(tmp_path / "m.onnx")])
    assert r.exit_code == 0, r.output
    text = one_line(r.stdout)
    s = exporters.export(model, tmp_path / "again.onnx", validate=False).summary
    assert re.search(r"\(\d+\.\d KiB\)", text) and " KB" not in text
    assert (f"{s['macs_per_step']:,} MACs per step (LSTM {s['lstm_macs_per_step']:,} + head "
            f"{s['macs_per_step'] - s['lstm_macs_per_step']:,})") in text


def test_quantisation_says_a_gain_is_a_gain(tmp_path, model, monkeypatch):
    """'drop -1.00 points' was printed for a gain of one point."""
    from slimedge.exporters.quantize import TaskReport

    drift = {"steps": 1000, "max_abs_h_next": 0.1, "max_abs_c_next": 0.2,
             "argmax_agreement": 0.99}
    rep = TaskReport("onnx", "int8", 0.90, 0.91, 0.02, "val", 100, drift, {})
    assert "+1.00 points" in rep.describe() and "drop" not in rep.describe()
    real = exporters.export

    def export(*a, **k):
        result = real(model, tmp_path / "f.onnx", validate=False)
        result.quantize, result.quantization = "int8", {"task": rep.to_dict()}
        return result
    monkeypatch.setattr(exporters, "export", export)
    r = runner.invoke(app, ["export", str(model), "-q", "int8", "-d", "fsdd",
                            "-o", str(tmp_path / "q.onnx")])
    assert r.exit_code == 0, r.output
    text = one_line(r.stdout)
    assert "91.00% vs float 90.00% (+1.00 points; a loss of up to 2.0 is tolerated)" in text
    assert "drop" not in text


def test_run_prints_headers_probabilities_and_readable_times(tmp_path, model, dataset):
    np.save(tmp_path / "f.npy", np.random.default_rng(0).normal(size=(4, M)).astype(np.float32))
    r = runner.invoke(app, ["run", str(model), "-i", str(tmp_path / "f.npy"), "--json"])
    got = json.loads(r.stdout)
    p = np.array(got["probabilities"])
    assert p.shape == (4, K) and np.allclose(p.sum(1), 1, atol=1e-6)
    assert [str(k) for k in p.argmax(1)] == got["top"]
    r = runner.invoke(app, ["run", str(model), "-i", str(tmp_path / "f.npy")])
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["frame", "top", "p(top)", "0", "1"] and len(lines) == 5
    frame, top, ptop, *ps = lines[1].split()
    assert float(ptop) == max(map(float, ps)) and top == got["top"][0]
    r = runner.invoke(app, ["run", str(model), "--data", str(dataset)])
    assert r.exit_code == 0, r.output
    assert "0.00 s" not in r.stdout and "per frame" in r.stdout
    assert cli._duration(0.0004) == "400 µs" and cli._duration(0.0123) == "12.3 ms"


def test_no_gpu_note_only_where_a_gpu_backend_could_run(tmp_path, model):
    """'no GPU found' was printed for a .tflite-only run, which no GPU backend reads."""
    pytest.importorskip("ai_edge_litert")
    from slimedge.profile.plan import NO_GPU, plan

    tfl = exporters.export(model, tmp_path / "m.tflite", format="tflite").path
    configs, notes, _ = plan([tfl], backends=None, baseline="none", workdir=tmp_path / "w")
    assert configs and NO_GPU not in notes


def _python_m(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "slimedge", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "80"})


def test_profile_in_a_log_shows_progress_and_fits_80_columns(tmp_path, model):
    """Not on a terminal, profile printed nothing for 20 s, then tables forced to 170 columns."""
    pytest.importorskip("onnxruntime")
    out = _python_m("profile", str(model), "-b", "onnxruntime", "--baseline", "none", "--steps",
                    "20", "--warmup", "0", "--rounds", "2")
    assert out.returncode == 0, out.stderr
    progress = [line for line in out.stderr.splitlines() if re.match(r"^\[\s*\d+\.\d s\] ", line)]
    assert len(progress) >= 3, out.stderr
    assert any("export" in line for line in progress)
    assert max(map(len, out.stdout.splitlines())) <= 80 and "…" not in out.stdout


def test_third_party_chatter_is_filtered(tmp_path, trained, dataset):
    """LiteRT's 'Created TensorFlow Lite XNNPACK delegate' and onnxruntime's pre-processing
    advice reached the user; the library drops LiteRT's line too now (the first run below)."""
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("onnxruntime")
    tfl = exporters.export(trained, tmp_path / "m.tflite", format="tflite").path
    np.save(tmp_path / "f.npy", np.zeros((3, M), np.float32))
    code = ("import numpy as np; from slimedge import runtime; "
            f"runtime.load({str(tfl)!r}).stream().step(np.zeros({M}))")
    raw = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert raw.returncode == 0 and "XNNPACK" not in raw.stderr  # the library is quiet too
    out = _python_m("run", str(tfl), "-i", str(tmp_path / "f.npy"))
    assert out.returncode == 0, out.stderr
    assert "XNNPACK" not in out.stderr and "backend litert" in out.stderr
    out = _python_m("export", str(trained), "-q", "int8", "--no-validate",
                    "-o", str(tmp_path / "q.onnx"), "--data", str(dataset))
    assert out.returncode == 0, out.stderr
    assert "pre-processing" not in out.stderr and "Please consider" not in out.stderr


def test_the_chatter_filter_ends_with_the_command_though_a_child_holds_stderr(capfd):
    """A child process that outlives the command (multiprocessing's resource tracker, started by
    `search run`'s workers) keeps the filtering pipe open: the command waited 2 s at its end for
    the pipe's end. The filter now drains the pipe and stops; what the command wrote still gets
    through, its chatter still does not."""
    from slimedge.cli.app import quiet_chatter

    before = set(threading.enumerate())
    with quiet_chatter():
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nstill shown\n")
    try:
        # the filter's thread ended, while the child still holds the pipe
        assert set(threading.enumerate()) - before == set() and child.poll() is None
    finally:
        child.kill()
        child.wait()
    err = capfd.readouterr().err
    assert "still shown" in err and "XNNPACK" not in err


# ---- training output ---------------------------------------------------------------------------
def test_training_bar_and_log_lines(tmp_path, dataset, monkeypatch):
    """The bar showed 'loss nan' before the first batch; a log showed nothing within an epoch;
    log.json and export disagreed on MACs per step (one counted the head)."""
    pytest.importorskip("torch")
    from slimedge import train as T

    splits = _data.load(dataset)
    config = T.TrainConfig(variant="LSTM6", hidden_size=4, epochs=1, batch_size=4)
    term = Console(file=io.StringIO(), force_terminal=True, width=120)
    res = T.train(config, tmp_path / "a.safetensors", splits=splits, console=term)
    shown = term.file.getvalue()
    assert "loss –" in shown and "nan" not in shown
    monkeypatch.setattr(T, "LOG_EVERY_S", 0.0)
    log = Console(file=io.StringIO(), width=120)  # not a terminal
    T.train(config, tmp_path / "b.safetensors", splits=splits, console=log)
    assert re.search(r"epoch 1/1: batch 1/\d+, loss \d+\.\d{4} acc", log.file.getvalue())
    summary = exporters.export(res.output, tmp_path / "a.onnx", validate=False).summary
    model = res.log["model"]
    assert model["macs_per_step"] == summary["macs_per_step"]
    assert model["lstm_macs_per_step"] == summary["lstm_macs_per_step"]


# ---- streams a server can keep -----------------------------------------------------------------
def loaded_as(model, tmp_path, suffix):
    """The checkpoint ``model`` exported to ``suffix`` (as is for .safetensors) and loaded."""
    if suffix == ".tflite":
        pytest.importorskip("ai_edge_litert")
    if suffix == ".onnx":
        pytest.importorskip("onnxruntime")
    path = model if suffix == ".safetensors" else exporters.export(
        model, tmp_path / f"m{suffix}", format=formats.by_suffix(suffix).name).path
    return runtime.load(path)


@pytest.mark.parametrize("suffix, atol", [(".onnx", 1e-6), (".tflite", 1e-6),
                                          (".safetensors", 2e-5)])
def test_step_streams_batches_any_streams_in_any_order(tmp_path, model, suffix, atol):
    """StreamBatch.remove(i) shifts later indices, so a server had to track positions:
    Model.step_streams batches any list of Stream objects instead."""
    m = loaded_as(model, tmp_path, suffix)
    rng = np.random.default_rng(7)
    together = {k: m.stream() for k in range(6)}
    alone = {k: m.stream() for k in range(6)}
    for step in range(25):
        if step == 10:  # a client leaves, another comes: nothing to renumber
            del together[2], alone[2]
            together[9], alone[9] = m.stream(), m.stream()
        ready = [k for k in rng.permutation(list(together)) if rng.random() < 0.7]
        frames = rng.normal(size=(len(ready), M)).astype(np.float32)
        ys = m.step_streams([together[k] for k in ready], frames)
        for row, k in enumerate(ready):
            np.testing.assert_allclose(ys[row], alone[k].step(frames[row]), atol=atol)
    for k in together:
        for a, b in zip(together[k].state, alone[k].state):
            np.testing.assert_allclose(a, b, atol=atol)
        assert together[k].steps == alone[k].steps
    s = together[0]
    with pytest.raises(ValueError, match="appears twice"):
        m.step_streams([s, s], np.zeros((2, M)))
    with pytest.raises(runtime.InputError, match=r"expected shape \(1, 3\)"):
        m.step_streams([s], np.zeros((2, M)))
    other = runtime.load(m.path)
    with pytest.raises(ValueError, match="of another model"):
        m.step_streams([other.stream()], np.zeros((1, M)))
    assert m.step_streams([], np.zeros((0, M))).shape == (0, K)


@pytest.mark.parametrize("suffix", [".onnx", ".safetensors"])
def test_step_streams_many_is_steps_of_step_streams(tmp_path, model, suffix):
    """A server's tick: several frames per stream in one call, stream j taking its first
    counts[j] (a prefix of the streams at each step), each stream's state gathered and
    scattered once; the same bits as one step_streams call per step (the same batch sizes),
    and the states, step counts and zero rows past a stream's count as that leaves them."""
    m = loaded_as(model, tmp_path, suffix)
    rng = np.random.default_rng(11)
    many, once = [m.stream() for _ in range(7)], [m.stream() for _ in range(7)]
    for tick, counts in enumerate(([4] * 7, [5, 5, 3, 3, 3, 1, 0], [2, 1, 1, 0, 0, 0, 0])):
        frames = rng.normal(size=(max(counts), 7, M)).astype(np.float32)
        ys = m.step_streams_many(many, frames, counts)
        for i in range(max(counts)):
            width = sum(c > i for c in counts)
            want = m.step_streams(once[:width], frames[i, :width])
            np.testing.assert_array_equal(ys[i, :width], want, err_msg=f"tick {tick} step {i}")
            assert not ys[i, width:].any()
        for a, b in zip(many, once):
            np.testing.assert_array_equal(a.state[0], b.state[0])
            np.testing.assert_array_equal(a.state[1], b.state[1])
            assert a.steps == b.steps
    assert many[0].steps == 4 + 5 + 2 and many[6].steps == 4
    with pytest.raises(ValueError, match="not increasing"):
        m.step_streams_many(many[:2], np.zeros((2, 2, M)), [1, 2])
    with pytest.raises(runtime.InputError, match=r"expected shape \(steps, 2, 3\)"):
        m.step_streams_many(many[:2], np.zeros((2, M)))


def test_profile_device_is_renamed_target(tmp_path):
    """One meaning per option name: --device is a torch device (train, evaluate); profile's
    emulated device is --target, and the old spelling is refused with the new one named."""
    res = runner.invoke(app, ["profile", "--device", "cortex-m4"])
    assert res.exit_code != 0
    assert "--target cortex-m4" in one_line(res.output)


def test_profile_target_tables_fit_80_columns_and_wide_shows_everything():
    """`profile --device` (now --target) printed 144-column tables, unreadable at 80."""
    from slimedge.profile import device as on_device

    shipped = json.loads((ROOT / "benchmarks" / "results" / "mcu.json").read_text())["shipped"]
    rows = []
    for dev, rs in shipped["devices"].items():
        for r in rs:
            ch = {"host_compiler": "gcc", "atol": 1e-4, "sequences": 3,
                  "predicted": [7, 3, 1], **r["check"]}
            rows.append({**r, "check": ch, "target": dev, "hidden_size": 64,
                         "compiler": "arm-none-eabi-gcc 13.2"})
        report = {"device": dev, "results": [r for r in rows if r["target"] == dev]}
        text = _render(on_device.tables(report), 80)
        assert max(map(len, text.splitlines())) <= 80, text
        _names_lose_only_their_middle(text, [on_device._label(r) for r in report["results"]])
        for word in ("LSTM6", "(baseline)", "instr/step", "µs/step", "×LSTM0",
                     "RAM B" if dev != "aarch64" else "state+I/O B", "outputs and state"):
            assert word in text, (dev, word)
        wide = _render(on_device.tables(report, wide=True), 150)
        assert "…" not in wide
        for word in ("RTF", "TFLM arena B", "RAM/arena", "flash code B", "flash constants B",
                     "sequences"):
            assert word in wide
