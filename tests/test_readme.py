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
    shipped model stands in), its exports, a frames file, and a ``slimedge`` command."""
    from slimedge import exporters
    from slimedge.zoo import default_model_path

    d = tmp_path_factory.mktemp("readme-fixtures")
    src = default_model_path()
    for name in ("MODEL.safetensors", "model.safetensors"):
        shutil.copy(src, d / name)
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
