"""Every code block of README.md runs as written (issue 25), so the README cannot go stale
silently.

Each fenced ``sh`` or ``python`` block runs in a fresh temporary folder holding the files a reader
would have by then (fixtures made here once: the shipped model as ``MODEL.safetensors`` and the
other names the README uses for your own checkpoint, its exports, a ``FRAMES.npy``). Shell blocks
run under ``bash -e`` with ``slimedge`` on the PATH (this checkout's package); Python blocks run
in a fresh interpreter. A block is preceded by an HTML comment when it cannot run as written here,
which the reader sees in the source:

- ``<!-- readme-test: skip: REASON -->``: not run; the reason must be given.
- ``<!-- readme-test: slow -->``: run in the slow tier (``-m slow``; CI runs it).
- ``<!-- readme-test: with "OLD" -> "NEW"; ... -->``: run with these replacements (a 30-epoch
  training as 1 epoch); each OLD must occur in the block.
- ``<!-- readme-test: server ARGS -->``: run while ``slimedge serve ARGS --port 0`` serves from the
  block's folder, with the block's ``127.0.0.1:8000`` pointed at the port it took (the server is
  stopped after the block).

``pip install`` lines are not run here (this environment has every extra): each must install from
a checkout or a built wheel (``.``, ``".[extra]"``, ``dist/...whl``) or name a pinned public
package, which ``test_install.py`` checks in fresh virtual environments.

Figures the README quotes from benchmark runs are checked against ``benchmarks/results/*.json``
at the end of this file.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")
MARK = re.compile(r"^<!-- readme-test: (.*?) -->\s*$")
RUNNABLE = {"sh", "python"}
TIMEOUT_S = 300


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: str | None = None
    slow: bool = False
    replace: list[tuple[str, str]] = field(default_factory=list)
    server: list[str] | None = None

    @property
    def id(self) -> str:
        return f"L{self.line}-{self.lang}"


def blocks(text: str) -> list[Block]:
    """The fenced blocks of a markdown text with the readme-test comment right above each."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m or not m.group(1):
            i += 1
            continue
        j = i + 1
        while not lines[j].startswith("```"):
            j += 1
        b = Block(i + 1, m.group(1), "\n".join(lines[i + 1:j]) + "\n")
        mark = MARK.match(lines[i - 1]) if i else None
        for directive in (mark.group(1).split("; ") if mark else []):
            if directive.startswith("skip:"):
                b.skip = directive[len("skip:"):].strip()
            elif directive == "slow":
                b.slow = True
            elif directive.startswith("server"):
                b.server = directive.split()[1:]
            elif directive.startswith("with "):
                pair = re.fullmatch(r'with "(.*)" -> "(.*)"', directive)
                assert pair, f"README.md:{i}: write a replacement as with \"OLD\" -> \"NEW\""
                b.replace.append((pair.group(1), pair.group(2)))
            else:
                raise AssertionError(f"README.md:{i}: unknown readme-test directive {directive!r}")
        out.append(b)
        i = j + 1
    return out


ALL = blocks(README.read_text())
RUN = [b for b in ALL if b.skip is None and b.lang in RUNNABLE]


def test_every_block_runs_or_says_why_not():
    """A block is run, or marked with the reason it cannot be; no block of another language."""
    assert ALL, "no code blocks found"
    for b in ALL:
        assert b.lang in RUNNABLE, f"README.md:{b.line}: a ```{b.lang} block (sh or python)"
        if b.skip is not None:
            assert len(b.skip.split()) >= 3, f"README.md:{b.line}: say why it cannot run here"
        for old, _ in b.replace:
            assert old in b.code, f"README.md:{b.line}: {old!r} is not in the block"
        if b.server is not None:
            assert "127.0.0.1:8000" in b.code, f"README.md:{b.line}: the block's server address"


PIP = re.compile(r"pip install (.*?)(?:\s+#|\s*&&|$)")
PINNED = r'(?:[\w-]+==[\w.]+|"[\w-]+>=[\w.]+")'
FROM_CHECKOUT = re.compile(rf'^(?:--no-deps )?(?:\.|"\.\[[\w,]+\]"|"dist/[^"]+\.whl(?:\[[\w,]+\])?"'
                           rf'|{PINNED}(?: {PINNED})*)$')


def test_install_lines_name_what_installs():
    """`pip install "slimedge[litert]"` failed as written: slimedge is on no public index. Every
    install command in a README block installs from a checkout or a wheel, or pins a public
    package."""
    seen = 0
    for b in ALL:
        for line in b.code.splitlines():
            for m in PIP.finditer(line):
                seen += 1
                assert FROM_CHECKOUT.match(m.group(1).strip()), f"README.md:{b.line}: {line}"
    assert seen >= 4
    assert not FROM_CHECKOUT.match('"slimedge[litert]"')


def test_the_parser_sees_markers():
    text = ('x\n<!-- readme-test: skip: it needs a board -->\n```sh\nflash\n```\n'
            '<!-- readme-test: slow; with "30" -> "1" -->\n```python\nprint(30)\n```\n```sh\nls\n```\n')
    a, b, c = blocks(text)
    assert (a.skip, a.code, b.slow, b.replace, c.skip) == ("it needs a board", "flash\n", True,
                                                          [("30", "1")], None)


# ---- the folder a reader has ------------------------------------------------------------------
@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    """What a reader has at hand: their checkpoint under the names the README gives it (the
    shipped model stands in), its exports, a frames file, their continuous model (the shipped
    one), the shipped raw-audio model under its file name, and a stream WAV (the shipped sample
    three times over pink noise), and a ``slimedge`` command."""
    from slimedge import exporters
    from slimedge.data import audio, streams, wav
    from slimedge.zoo import audio_model_path, default_model_path, sample_wav_path, stream_model_path

    d = tmp_path_factory.mktemp("readme-fixtures")
    src = default_model_path()
    for name in ("MODEL.safetensors", "model.safetensors"):
        shutil.copy(src, d / name)
    shutil.copy(stream_model_path(), d / "continuous.safetensors")
    shutil.copy(audio_model_path(), d / "fsdd_audio.safetensors")
    m = streams.make_stream([audio.Clip(sample_wav_path(), "7", "jackson")], 8000, count=3,
                            background_kind="pink", level_db=(-55.0, -45.0), seed=1)
    wav.write_wav(d / "stream.wav", m.samples, 8000)
    for name, fmt, q in [("model.onnx", "onnx", "none"), ("model.tflite", "tflite", "none"),
                         ("MODEL.tflite", "tflite", "none"), ("MODEL.int8.tflite", "tflite", "int8")]:
        exporters.export(src, d / name, format=fmt, quantize=q, validate=False)
    rng = np.random.default_rng(25)
    np.save(d / "FRAMES.npy", rng.normal(size=(20, 13)).astype(np.float32))
    bin_ = d / ".bin"
    bin_.mkdir()
    shim = bin_ / "slimedge"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m slimedge "$@"\n')
    shim.chmod(0o755)
    return d


def _run(block: Block, fixtures: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    work = tmp_path / "work"
    shutil.copytree(fixtures, work)
    shared = ROOT.parent / "shared"  # ../shared beside the checkout, as the README's paths say
    if shared.is_dir():
        (tmp_path / "shared").symlink_to(shared)
    code = "".join(line for line in block.code.splitlines(keepends=True)
                   if not line.startswith("pip install "))
    for old, new in block.replace:
        code = code.replace(old, new)
    env = {**os.environ, "PATH": f"{work / '.bin'}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "80", "MPLBACKEND": "Agg"}
    if block.lang == "sh":
        cmd = ["bash", "-e", "-o", "pipefail", "-c", code]
    else:
        cmd = [sys.executable, "-c", code]
    if block.server is None:
        return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    server = subprocess.Popen([sys.executable, "-m", "slimedge", "serve", *block.server,
                               "--port", "0"], cwd=work, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()  # "serving MODEL on http://127.0.0.1:PORT ..."
        assert " on " in line, f"README.md:{block.line}: no server: {line!r} {server.stderr.read()}"
        address = line.split(" on ")[1].split()[0].split("//")[1]
        cmd[-1] = code.replace("127.0.0.1:8000", address)
        return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    finally:
        server.terminate()
        server.communicate(timeout=30)


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id, marks=[pytest.mark.slow] if b.slow
                                                else []) for b in RUN])
def test_readme_block_runs(block, fixtures, tmp_path):
    r = _run(block, fixtures, tmp_path)
    assert r.returncode == 0, (f"README.md:{block.line} ({block.lang}) failed with "
                               f"{r.returncode}:\n{block.code}\n--- stdout\n{r.stdout[-3000:]}"
                               f"\n--- stderr\n{r.stderr[-3000:]}")


# ---- figures quoted from benchmark runs -------------------------------------------------------
def test_microcontroller_figures_are_the_results_files():
    """The README's aarch64 row, n = 128 sentence and firmware sizes had gone stale: every figure
    of its microcontroller section is now the one in benchmarks/results/mcu.json."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("bench_mcu", ROOT / "benchmarks" / "mcu.py")
    mcu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mcu)
    r = json.loads((ROOT / "benchmarks" / "results" / "mcu.json").read_text())
    text = " ".join(README.read_text().split())
    table = "\n".join(mcu.shipped_table(r["shipped"]))
    assert table in README.read_text(), f"regenerate the README's table:\n{table}"
    m4 = {x["quantize"]: x for x in r["shipped"]["devices"]["cortex-m4"] if x["role"] == "model"}
    m0 = next(x for x in r["shipped"]["devices"]["cortex-m0plus"] if x["role"] == "model")
    q, opt = m4["int8"], r["shipped"]["opt_levels"]
    n64 = {x["variant"]: x["runs"]["cortex-m4/int8"] for x in r["variants"] if x["hidden_size"] == 64}
    lstm6_128 = next(x["runs"]["cortex-m4/int8"] for x in r["variants"]
                     if x["hidden_size"] == 128 and x["variant"] == "LSTM6")

    def k(v):
        return f"{v:,.0f}"

    def ratio(run):
        return f"{run['vs_lstm0']['instructions']:.2f}"

    quoted = [
        f"RAM, {k(q['ram_bytes']['stack'])} bytes are stack",
        f"its flash is {k(q['flash_bytes']['code'])} bytes of code and "
        f"{k(q['flash_bytes']['constants'])} of constants",
        f"`-Os` / `-O3` give {k(opt['cortex-m4 -Os']['flash_bytes']['total'])} / "
        f"{k(opt['cortex-m4 -O3']['flash_bytes']['total'])} bytes of flash and "
        f"{k(opt['cortex-m4 -Os']['instructions_per_step']['mean'])} / "
        f"{k(opt['cortex-m4 -O3']['instructions_per_step']['mean'])} instructions on the M4",
        f"| {k(q['flash_bytes']['total'])} B | reached |",
        f"| {k(q['ram_bytes']['total'])} B | reached |",
        f"| {k(q['instructions_per_step']['mean'])} (SMLAD",
        f"| {k(m0['instructions_per_step']['mean'])} "
        f"({m0['instructions_per_step']['mean'] / q['instructions_per_step']['mean']:.1f}× the M4's",
        f"| {ratio(q)} (M4 integer), {ratio(m4['none'])} (M4 float), {ratio(m0)} (M0+) |",
        f"| {q['ram_vs_tflm_arena']:.2f} (integer, M4), {m0['ram_vs_tflm_arena']:.2f} (M0+); "
        f"float {m4['none']['ram_vs_tflm_arena']:.2f} |",
        f"from {ratio(n64['LSTM_C6'])}× LSTM0's instructions (LSTM_C6, "
        f"{k(n64['LSTM_C6']['instructions_per_step']['mean'])}) and {ratio(n64['LSTM10'])}× "
        f"(LSTM10) to {ratio(n64['LSTM1'])}× (LSTM1)",
        f"at n = 128, LSTM6 needs {k(lstm6_128['flash_bytes']['total'])} bytes of flash and "
        f"{k(lstm6_128['instructions_per_step']['mean'])} instructions ({ratio(lstm6_128)}×)",
    ]
    stale = [s for s in quoted if s not in text]
    assert not stale, "README.md no longer quotes benchmarks/results/mcu.json:\n" + "\n".join(stale)


def _results(name: str) -> dict:
    import json

    return json.loads((ROOT / "benchmarks" / "results" / name).read_text())


def _stale(quoted: list[str], name: str) -> None:
    """Each of ``quoted`` (built from ``benchmarks/results/NAME``) must be in the README, as written
    there (whitespace folded)."""
    text = " ".join(README.read_text().split())
    stale = [q for q in quoted if " ".join(q.split()) not in text]
    assert not stale, f"README.md no longer quotes benchmarks/results/{name}:\n" + "\n".join(stale)


WORDS = dict(enumerate("zero one two three four five six seven eight nine ten eleven twelve".split()))


def _times(r: float) -> str:
    return f"{r:.2f}×" if r < 10 else f"{r:.1f}×"


def test_paper_comparison_figures_are_the_results_file():
    """"How close to LSTM0 they come": every accuracy, and which variants come within 2 points,
    from benchmarks/results/paper_table_converged.json."""
    r = _results("paper_table_converged.json")["tasks"]

    def acc(v, sd=False):
        return f"{100 * v['test_accuracy_mean']:.1f}" + (
            f" ± {100 * v['test_accuracy_std']:.1f}" if sd else "")

    quoted = []
    for task, n in (("mnist-rows", 100), ("fsdd", 64)):
        vs = [v for v in r[task]["variants"] if not v.get("constants")]
        l0, rest = vs[0], vs[1:]
        assert l0["variant"] == "LSTM0" and r[task]["settings"]["hidden_size"] == n
        near = [v for v in rest if v["test_accuracy_mean"] >= l0["test_accuracy_mean"] - 0.02]
        far = sorted((v for v in rest if v not in near), key=lambda v: -v["test_accuracy_mean"])
        if task == "mnist-rows":
            quoted.append(f"MNIST row by row (n = {n}): LSTM0 {acc(l0, True)}; within 2 points: "
                          + ", ".join(f"{v['variant']} {acc(v)}" for v in near) + "; not: "
                          + ", ".join(f"{v['variant']} {acc(v)}" for v in far) + ".")
        else:
            quoted.append(f"FSDD (n = {n}): LSTM0 {acc(l0, True)}; within 2 points: "
                          + ", ".join(v["variant"] for v in near) + f"; not: the other {WORDS[len(far)]}.")
    px = r["mnist-pixels"]
    vs = {v["variant"]: v for v in px["variants"]}
    plain = [v for v in px["variants"] if not v.get("constants") and v["variant"] != "LSTM0"]
    assert all(v["test_accuracy_mean"] < vs["LSTM0"]["test_accuracy_mean"] - 0.02 for v in plain)
    above = sorted((v for v in plain if v["test_accuracy_mean"] >= 0.12),
                   key=lambda v: -v["test_accuracy_mean"])
    chance = len(plain) - len(above)
    c6 = vs["LSTM_C6 f=0.99"]

    def per_epoch(v):
        return np.mean([run["train_seconds_per_epoch"] for run in v["runs"]])

    quoted += [
        f"({px['data']['limit']:,} images, b_f = {px['settings']['forget_bias']:g}",
        f"LSTM0 {acc(vs['LSTM0'], True)}; none of the {WORDS[len(plain) + 1]} within 2 points ("
        + ", ".join(f"{v['variant']} {acc(v)}" for v in above)
        + f", the other {WORDS[chance]} at chance)",
        f"reached {acc(c6, True)} with {c6['params']} parameters at "
        f"{per_epoch(c6) / per_epoch(vs['LSTM0']):.2f}× LSTM0's time per epoch",
    ]
    _stale(quoted, "paper_table_converged.json")


def test_training_speed_figures_are_the_results_file():
    """The training-speed ratios per shape, the repeat runs' ranges and the page-fault figures,
    from benchmarks/results/train_speed.json."""
    r = _results("train_speed.json")
    quoted = []
    for k, shape in enumerate(r["shapes"]):
        m = shape["models"]
        dims = ", ".join(str(shape[x]) for x in ("T", "batch", "m", "n"))
        quoted.append(("(T, batch, m, n) = " if k == 0 else "") + f"({dims}) " + ", ".join(
            f"{v} {_times(m[v]['ratio'])}" for v in ("LSTM0", "LSTM6", "LSTM10", "LSTM11", "LSTM_C6")))
    ranges = re.search(r"this run and three of that command gave (.*?): LSTM0's", r["notes"][0])
    quoted.append(f"(over four runs on {r['date']}: {ranges.group(1)})")
    t, c6 = r["shapes"][1]["models"]["torch.nn.LSTM"], r["shapes"][1]["models"]["LSTM_C6"]
    assert r["shapes"][1]["T"] == 784
    quoted += [f"torch.nn.LSTM spends {100 * t['system_ms'] / t['ms']:.0f}% of its step on them, "
               f"{t['system_ms']:.0f} of {t['ms']:.0f} ms",
               f"torch.nn.LSTM's step less its page faults is {t['ms'] - t['system_ms']:.0f} ms), "
               f"and LSTM_C6 would still be {(t['ms'] - t['system_ms']) / c6['ms']:.1f}× ahead"]
    _stale(quoted, "train_speed.json")


def test_c_backend_figures_are_the_results_file():
    """"The `c` backend, measured" and the C export's int8 accuracy, from
    benchmarks/results/step_latency.json (its targets, this run's and the run before's)."""
    r = _results("step_latency.json")
    t = {x["key"]: x for x in r["targets"]}
    before = {x["key"]: x for x in r["earlier_runs"][0]["targets"]}
    shipped = {x["config"]["label"]: x for x in r["shipped"]["results"]}
    bare = {x["config"]["label"]: x["latency_us"]["p50"] for x in r["bare_c"]}
    lit, ort = t["shipped_step_c_vs_litert_none"], t["shipped_step_c_vs_onnxruntime_none"]
    c = shipped["LSTM6 c"]
    acc = t["shipped_int8_accuracy"]

    def x(key, d=2):
        return f"{t[key]['ratio']:.{d}f}×"

    def was(key, d=2):
        return f"{before[key]['ratio']:.{d}f}×"

    l6, c6, l0 = ("bare_LSTM6_512_vs_torch_onnx", "bare_LSTM_C6_512_vs_torch_onnx",
                  "bare_LSTM0_512_dyn_vs_float")
    quoted = [
        f"(`python benchmarks/step_latency.py`, {r['date'][:10]},",
        f"takes {lit['fast_us']:.2f} µs on `c` against {lit['slow_us']:.2f} µs on LiteRT and "
        f"{ort['slow_us']:.2f} µs on onnxruntime: **{x(lit['key'])} and {x(ort['key'])}** "
        f"({was(lit['key'])}, {was(ort['key'])}; target ≥ {lit['goal']:g}×)",
        f"the C step itself takes {bare['shipped c none']:.2f} µs, the bare backend call (ctypes "
        f"around it) {c['bare_us']['p50']:.2f} µs, and `Stream.step`'s own work the other "
        f"{c['stream_overhead_us']:.2f} µs",
        f"LSTM6 at n = 512 takes {t[l6]['fast_us']:.1f} µs against {t[l6]['slow_us']:.0f} µs for "
        f"the torch.onnx LSTM's bare onnxruntime call: **{x(l6, 1)}** ({was(l6, 1)}; target ≥ "
        f"{t[l6]['goal']:g}×); LSTM_C6 {t[c6]['fast_us']:.2f} µs: **{x(c6, 0)}** ({was(c6, 0)}; "
        f"target ≥ {t[c6]['goal']:g}×)",
        f"**{x(l0)}** faster than float ({was(l0)}; target ≥ {t[l0]['goal']:g}×): "
        f"{t[l0]['fast_us']:.0f} vs {t[l0]['slow_us']:.0f} µs",
        f"they gain {bare['LSTM0 n64 c none'] / bare['LSTM0 n64 c dynamic']:.2f}×",
        f"scores **{100 * acc['int8']:.2f} %** on the test split against {100 * acc['float']:.2f} % "
        f"in float C and in the checkpoint (+{acc['delta_points']:.2f} points",
        f"one of the {acc['sequences']} test sequences is {100 / acc['sequences']:.2f} points",
        f"test accuracy {100 * acc['int8']:.2f}% (float {100 * acc['float']:.2f}%)",
    ]
    _stale(quoted, "step_latency.json")


def test_serving_figures_are_the_results_file():
    """The server's capacity, CPU per chunk and memory per idle stream, from
    benchmarks/results/serve_load.json (this run and the earlier ones it records)."""
    r = _results("serve_load.json")
    runs = [*r["earlier_runs"], {"capacity_streams": r["capacity_streams"],
                                 "p99_ms_at_capacity": next(
                                     lv["p99_ms"] for lv in r["levels"]
                                     if lv["streams"] == r["capacity_streams"])}]
    caps = [f"{x['capacity_streams']:,}" for x in runs]
    p99 = [x["p99_ms_at_capacity"] for x in runs]
    level = next(lv for lv in r["levels"] if lv["streams"] == r["capacity_streams"])
    us = level["us_per_chunk"]
    total = sum(us.values())
    quoted = [
        f"{WORDS[len(runs)]} runs found {', '.join(caps[:-1])} and {caps[-1]} streams (p99 "
        f"{min(p99):.0f}–"
        f"{max(p99):.0f} ms there",
        f"at {r['capacity_streams']} streams {total:.0f} µs of CPU per 100 ms chunk, "
        f"{100 * us['backend_step_streams'] / total:.0f}% of it the backend",
        f"(the load generator's {us['generator']:.0f} µs included); "
        f"{r['idle_memory']['kb_per_idle_stream']:.1f} KB per idle stream",
    ]
    _stale(quoted, "serve_load.json")


def test_serving_audio_figures_are_the_results_file():
    """The server's capacity with audio in and events out, its p99 there, where the CPU went and
    the earlier run's capacity, from benchmarks/results/serve_load_audio.json."""
    r = _results("serve_load_audio.json")
    cap = r["capacity_streams"]
    level = next(lv for lv in r["levels"] if lv["streams"] == cap)
    failed = next(lv["streams"] for lv in r["levels"] if lv["streams"] > cap)
    us = level["us_per_chunk"]
    (earlier,) = r["earlier_runs"]
    _stale([f"(load average {r['loadavg_before'].split()[0]} before the run) the server carried "
            f"{cap:,} streams at p99 {level['p99_ms']:.0f} ms, and {failed:,} failed",
            f"at {cap:,} streams: {us['frontend']:.0f} µs in the front-ends",
            f"{us['server_python_other']:.0f} µs in the rest of the server's Python",
            f"and {us['backend_step_streams']:.0f} µs in the backend",
            f"(load average {earlier['loadavg_before'].split()[0]}), carried "
            f"{earlier['capacity_streams']:,} streams"],
           "serve_load_audio.json")


def test_tflite_weight_scale_figures_are_the_results_file():
    """The shipped model's TFLite accuracy and int8 weight bytes under per-tensor scales, from
    benchmarks/results/quantization.json."""
    r = _results("quantization.json")
    (shipped,) = [m for m in r["models"] if m["model"] == "shipped"]
    tfl = shipped["formats"]["tflite"]
    assert tfl["dynamic"]["test_accuracy"] == tfl["int8"]["test_accuracy"]
    _stale([f"per-tensor scales keep the test accuracy ({100 * tfl['int8']['test_accuracy']:.1f}% "
            f"dynamic and int8) and the int8 files' weight bytes, scales included, at "
            f"{tfl['int8']['weight_ratio_with_qparams']:.2f}× of the float file's"],
           "quantization.json")


def test_tflm_table_is_measured(tmp_path):
    """The README's TFLite Micro table of the shipped model (its sizes had gone stale): each
    row's file size (KiB), test accuracy on TFLM and arena, measured here on fresh exports."""
    pytest.importorskip("tflite_micro")
    from slimedge import data, exporters, formats, runtime, zoo
    from slimedge.devices import tflm
    from slimedge.profile.report import _size

    model = zoo.default_model_path()
    test = data.load_as_recorded(formats.info(model).data).test
    rows = []
    for name, q, opts in (("float", "none", {}), ("int8", "int8", {}),
                          ('int8, `io="int"`', "int8", {"io": "int"})):
        path = tmp_path / f"m{len(rows)}.tflite"
        exporters.export(model, path, format="tflite", quantize=q, compat="tflm", validate=False,
                         **opts)
        arena = tflm.measure(path)
        acc = runtime.evaluate(runtime.load(path, backend="tflm"), test)
        assert acc.n == 300
        rows.append(f"| {name} | {_size(path.stat().st_size)} | {100 * acc.accuracy:.1f}% | "
                    f"{arena['arena_bytes']:,} B | {arena['arena_used_bytes']:,} B |")
    table = "\n".join(rows)
    assert table in README.read_text(), f"the README's TFLM table is now:\n{table}"


def test_decoder_defaults_are_the_decoders():
    """The decoder's defaults the README states (section "Audio: events on a continuous stream")
    are slimedge.runtime.decoder.DEFAULTS."""
    from slimedge.runtime.decoder import DEFAULTS

    text = " ".join(README.read_text().split())
    m = re.search(r"section holds them \(defaults ([\d.]+) ms, ([\d.]+), (\d+), ([\d.]+) ms, "
                  r"(\w+)", text)
    assert m, "README.md: the decoder's defaults are no longer stated as expected"
    assert (float(m[1]), float(m[2]), int(m[3]), float(m[4]), m[5]) == (
        DEFAULTS["window_ms"], DEFAULTS["threshold"], DEFAULTS["min_count"],
        DEFAULTS["refractory_ms"], DEFAULTS["arithmetic"])
