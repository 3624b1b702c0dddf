"""slimedge's public face: the names ``import slimedge`` offers (lazily, without torch), each
package's ``__all__``, and the errors, all declared in ``slimedge.errors``."""
import importlib
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import slimedge
from slimedge import errors, exporters, runtime, zoo

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "onnx", "onnxruntime", "ai_edge_litert", "tflite_runtime", "tflite_micro",
         "safetensors", "typer", "rich", "numba", "triton")


def _python(code: str, blocked=()) -> subprocess.CompletedProcess:
    """``code`` in a fresh Python where importing any module in ``blocked`` fails."""
    prelude = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked)
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True,
                          timeout=180, cwd=ROOT)


@pytest.fixture(scope="module")
def shipped_onnx(tmp_path_factory):
    pytest.importorskip("onnx")
    path = tmp_path_factory.mktemp("face") / "fsdd_default.onnx"
    return exporters.export(zoo.default_model_path(), path, format="onnx").path


def test_import_slimedge_imports_nothing_heavy():
    """``import slimedge`` imports no optional package and not even numpy: every name is lazy."""
    out = _python("import slimedge, json\n"
                  f"print(json.dumps(sorted(m for m in {HEAVY + ('numpy',)!r} if m in sys.modules)))\n"
                  "print(json.dumps(sorted(m for m in sys.modules if m.startswith('slimedge'))))")
    assert out.returncode == 0, out.stderr
    heavy, ours = (json.loads(line) for line in out.stdout.splitlines())
    assert heavy == [] and ours == ["slimedge"]


def test_load_and_step_without_torch(shipped_onnx):
    """With torch unimportable: ``import slimedge; slimedge.load(...)`` steps the shipped
    checkpoint on the numpy backend and its ONNX export on onnxruntime, with the outputs of this
    (full) install; ``TrainConfig`` needs no torch; training says which extra brings it."""
    frames = np.random.default_rng(1).normal(size=(20, 13)).astype(np.float32) * 10
    ckpt = zoo.default_model_path()
    want = {"ckpt": runtime.load(ckpt, "numpy").run(frames),
            "onnx": runtime.load(shipped_onnx).run(frames)}
    code = f"""
import json, numpy as np
import slimedge
frames = np.array({frames.tolist()!r}, dtype=np.float32)
out = {{}}
for key, path, backend in (("ckpt", {str(ckpt)!r}, "auto"), ("onnx", {str(shipped_onnx)!r}, "auto")):
    model = slimedge.load(path, backend)
    s = model.stream()
    out[key] = {{"backend": model.backend, "y": [s.step(f).tolist() for f in frames]}}
cfg = slimedge.TrainConfig(variant="LSTM10", hidden_size=16)
out["config"] = cfg.to_dict()["variant"]
out["info"] = slimedge.info(path).variant
try:
    slimedge.train(cfg, "never.safetensors")
except slimedge.SlimedgeError as e:
    out["train"] = str(e)
out["torch"] = sorted(m for m, mod in sys.modules.items() if mod is not None and m.startswith("torch"))
print(json.dumps(out))
"""
    run = _python(code, blocked=("torch",))
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["ckpt"]["backend"] == "numpy" and got["onnx"]["backend"] == "onnxruntime"
    for key in ("ckpt", "onnx"):
        np.testing.assert_allclose(np.array(got[key]["y"]), want[key], rtol=1e-5, atol=1e-5)
    assert got["config"] == "LSTM10" and got["info"] == "LSTM6"
    assert "pip install 'slimedge[train]'" in got["train"]
    assert got["torch"] == []


def test_the_face_names_are_the_library_objects(monkeypatch):
    from slimedge import formats, models, train_config, variants

    assert slimedge.load is runtime.load and slimedge.export is exporters.export
    assert slimedge.info is formats.info and slimedge.ModelInfo is formats.ModelInfo
    assert slimedge.TrainConfig is train_config.TrainConfig
    assert slimedge.SlimLSTM is models.SlimLSTM and slimedge.SlimLSTMCell is models.SlimLSTMCell
    assert slimedge.variants is variants and slimedge.runtime is runtime
    assert slimedge.SlimedgeError is errors.SlimedgeError
    for name in slimedge.__all__:
        assert getattr(slimedge, name) is not None and name in dir(slimedge)
    assert slimedge.data is importlib.import_module("slimedge.data")  # subpackages on first use
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        slimedge.nothing_here  # noqa: B018

    # slimedge.train is the module (as `from slimedge import train` always gave) and trains
    # when called: the call goes to slimedge.train.train, as patched
    import slimedge.train as T

    assert slimedge.train is T and T.TrainConfig is slimedge.TrainConfig
    calls = []
    monkeypatch.setattr(T, "train", lambda *a, **k: calls.append((a, k)) or "trained")
    assert slimedge.train("cfg", "out.safetensors", resume=True) == "trained"
    assert calls == [(("cfg", "out.safetensors"), {"resume": True})]


def _packages():
    root = importlib.import_module("slimedge")
    yield root
    for info in pkgutil.walk_packages(root.__path__, "slimedge."):
        if info.ispkg:
            yield importlib.import_module(info.name)


def test_every_package_all_is_public_and_resolves():
    """Every package's ``__all__`` names things it has, none private, none listed twice; the
    package faces stay small (what the README teaches, not the internals)."""
    pytest.importorskip("torch")
    sizes = {}
    for pkg in _packages():
        names = getattr(pkg, "__all__", None)
        assert names is not None, f"{pkg.__name__} has no __all__"
        assert len(set(names)) == len(names), pkg.__name__
        for name in names:
            assert hasattr(pkg, name), f"{pkg.__name__}.__all__ names {name!r}, which it lacks"
            assert not name.startswith("_") or name == "__version__", (pkg.__name__, name)
        sizes[pkg.__name__] = len(names)
    assert sizes["slimedge"] <= 12 and sizes["slimedge.runtime"] <= 10
    assert sizes["slimedge.data"] <= 8 and sizes["slimedge.models"] <= 3
    assert sizes["slimedge.exporters"] <= 4


def test_every_error_is_declared_in_errors_under_a_kind():
    """Each class of ``errors.__all__`` is a SlimedgeError, declared in slimedge.errors; each
    keeps the built-in bases callers catch; the modules that defined them still offer them."""
    kinds = (errors.UsageError, errors.DataError, errors.ModelFileError, errors.MissingDependency)
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.SlimedgeError) and cls.__module__ == "slimedge.errors"
    for cls, builtin in [(errors.UsageError, ValueError), (errors.DataError, ValueError),
                         (errors.ModelFileError, ValueError), (errors.CheckpointError, ValueError),
                         (errors.IntegrityError, ValueError), (errors.InputError, ValueError),
                         (errors.MissingDependency, ImportError),
                         (errors.DataPackageMissing, ImportError),
                         (errors.UnknownVariantError, KeyError),
                         (errors.UnknownVariantError, ValueError),
                         (errors.ToolchainNotFound, RuntimeError),
                         (errors.CompilerNotFound, ValueError), (errors.CompileError, ValueError),
                         (errors.DeviceError, RuntimeError), (errors.ProfileError, ValueError),
                         (errors.QuantizationError, ValueError),
                         (errors.ExportValidationError, ValueError),
                         (errors.TrainingDiverged, ValueError), (errors.Locked, ValueError),
                         (errors.IncompatibleTarget, ValueError)]:
        assert issubclass(cls, builtin), (cls, builtin)
    assert issubclass(errors.CheckpointError, errors.ModelFileError)
    assert issubclass(errors.IntegrityError, errors.ModelFileError)
    assert issubclass(errors.InputError, errors.UsageError)
    assert issubclass(errors.DataPackageMissing, errors.MissingDependency)
    assert all(issubclass(getattr(errors, n), errors.SlimedgeError) for n in errors.__all__)
    assert {k.__name__ for k in kinds} <= set(errors.__all__)
    assert str(errors.UnknownVariantError("no variant 'x'")) == "no variant 'x'"  # not quoted
    old = {"slimedge.runtime": ["InputError", "ModelFileError"], "slimedge.integrity":
           ["IntegrityError"], "slimedge.checkpoint": ["CheckpointError"], "slimedge.data":
           ["DataPackageMissing"], "slimedge.variants": ["UnknownVariantError"],
           "slimedge.exporters": ["ExportValidationError"], "slimedge.exporters.quantize":
           ["QuantizationError"], "slimedge.exporters.tflite.emitter": ["IncompatibleTarget"],
           "slimedge.profile": ["ProfileError"], "slimedge.profile.worker": ["ProfileError"],
           "slimedge.devices": ["DeviceError", "ToolchainNotFound"], "slimedge._io": ["Locked"],
           "slimedge.devices.toolchains": ["DeviceError", "ToolchainNotFound"]}
    for module, names in old.items():
        for name in names:
            assert getattr(importlib.import_module(module), name) is getattr(errors, name)
    pytest.importorskip("torch")
    from slimedge import train

    assert train.TrainingDiverged is errors.TrainingDiverged


def test_no_error_class_outside_errors():
    """No library module defines an exception class of its own: a class statement whose bases
    name an Exception/Error."""
    found = []
    for path in sorted((ROOT / "slimedge").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "slimedge/errors.py":
            continue
        for m in re.finditer(r"^class (\w+)\(([^)]*)\):", path.read_text(), re.M):
            bases = m.group(2)
            if re.search(r"(Error|Exception|Missing|NotFound|Locked|Diverged)\b", bases):
                found.append(f"{rel}: class {m.group(1)}({bases})")
    # model_info.py's _Bad is a private signal, caught inside the module and never raised to users
    assert [f for f in found if "class _" not in f] == []


@pytest.mark.parametrize("backend", ["litert", "tflm", "c"])
def test_cpu_only_backends_refuse_a_device_naming_the_valid_one(backend, tmp_path):
    fmt = {"litert": "tflite", "tflm": "tflite", "c": "c"}[backend]
    if not runtime.backend_module(backend).available():
        pytest.skip(f"backend {backend} is not installed here")
    path = exporters.export(zoo.default_model_path(), tmp_path / f"m.{fmt}", format=fmt,
                            validate=False, **({"compat": "tflm"} if backend == "tflm" else {}))
    with pytest.raises(errors.UsageError, match=rf"{backend} backend runs on the CPU only, not on "
                                                r"'cuda'; valid: 'cpu'"):
        runtime.load(path.path, backend, device="cuda")
