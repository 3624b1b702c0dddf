"""The house's rules, checked as facts: the runtime imports no exporter, one export reads each of
its inputs once, and a format or a backend is one module plus its row."""
import json
import subprocess
import sys
import textwrap
from collections import Counter

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import make_checkpoint, seeded
from slimedge import checkpoint, data, exporters, formats, runtime, zoo


# ---- one export reads each input once --------------------------------------------------------
def _count_calls(monkeypatch, counts: Counter, module, name: str, key: str) -> None:
    real = getattr(module, name)

    def counted(*args, **kwargs):
        counts[key] += 1
        return real(*args, **kwargs)
    monkeypatch.setattr(module, name, counted)


def test_one_int8_tflite_export_reads_loads_and_opens_each_once(tmp_path, monkeypatch):
    """``slimedge export -f tflite -q int8`` of the shipped model: the checkpoint read once, its
    data set loaded once, the written file opened once on LiteRT (the one interpreter it is
    validated on), though calibration, the task check and validation all use them."""
    from slimedge.cli import app
    from slimedge.formats.tflite import litert, tflm

    counts: Counter = Counter()
    _count_calls(monkeypatch, counts, checkpoint, "_read", "checkpoint reads")
    _count_calls(monkeypatch, counts, data, "load_as_recorded", "data set loads")
    _count_calls(monkeypatch, counts, litert, "open", "litert opens")
    _count_calls(monkeypatch, counts, tflm, "open", "tflm opens")
    out = tmp_path / "m.int8.tflite"
    res = CliRunner().invoke(app, ["export", "-f", "tflite", "-q", "int8", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.is_file()
    assert counts == {"checkpoint reads": 1, "data set loads": 1, "litert opens": 1}


# ---- the runtime imports no exporter ---------------------------------------------------------
def test_runtime_loads_exports_without_importing_exporters(tmp_path):
    """Loading and stepping a .c, a .tflite and an .onnx export imports nothing from
    slimedge.exporters, nor the step IR, the checkpoint reader or training."""
    model = zoo.default_model_path()
    files = [exporters.export(model, tmp_path / f"m.{f}", format=f).path
             for f in ("c", "tflite", "onnx")]
    code = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from slimedge import runtime
        for path in {[str(f) for f in files]!r}:
            m = runtime.load(path)
            y = m.stream().step(np.ones(m.input_size, np.float32))
            assert np.isfinite(y).all()
        bad = ("slimedge.exporters", "slimedge.ir", "slimedge.checkpoint", "slimedge.train")
        print(json.dumps(sorted(k for k in sys.modules if k.startswith(bad))))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


# ---- a format, and a backend, are one module plus a row ----------------------------------------
TOY = r'''
"""A toy format: the step graph as .npz (initializers, nodes, config), stepped by the step IR."""
import json
from pathlib import Path

import numpy as np

from slimedge import ir
from slimedge.formats import Backend, Format
from slimedge.formats.binding import Buffers, sizes


def write(graph, path, *, mode="step", **options):
    """A JSON header line (the config, the nodes, each weight's shape), then the weights' bytes."""
    nodes = [{"op": n.op, "inputs": n.inputs, "outputs": n.outputs, "attrs": n.attrs}
             for n in graph.nodes]
    config = json.loads(graph.metadata_json())
    config["export"] = {"format": "toy", "mode": mode, "quantize": "none"}
    weights = {k: np.asarray(v, np.float32) for k, v in graph.initializers.items()}
    meta = {"nodes": nodes, "shapes": graph.shapes, "config": config,
            "weights": {k: list(v.shape) for k, v in weights.items()}}
    Path(path).write_bytes(json.dumps(meta).encode() + b"\n"
                           + b"".join(v.tobytes() for v in weights.values()))


def _meta(path):
    head, _, body = Path(path).read_bytes().partition(b"\n")
    meta, weights, at = json.loads(head), {}, 0
    for k, shape in meta["weights"].items():
        n = int(np.prod(shape, dtype=np.int64))
        weights[k] = np.frombuffer(body, np.float32, n, at).reshape(shape)
        at += 4 * n
    return meta, weights


def read_config(path):
    return _meta(path)[0]["config"]


def available():
    return True


def open(path, *, threads=None, device=None):
    return Session(Path(path))


class Session:
    device, detail = "cpu", "the toy backend"

    def __init__(self, path):
        meta, weights = _meta(path)
        self.config = meta["config"]
        nodes = [ir.Node(d["op"], tuple(d["inputs"]), tuple(d["outputs"]), d["attrs"])
                 for d in meta["nodes"]]
        shapes = {k: tuple(v) for k, v in meta["shapes"].items()}
        self.graph = ir.Graph(nodes=nodes, initializers=weights, shapes=shapes, config=self.config)

    def bind(self, batch):
        return Binding(self.graph, batch, *sizes(self.config))


class Binding(Buffers):
    def __init__(self, graph, batch, *dims):
        super().__init__(batch, *dims)
        self._graph = graph

    def run(self):
        out = self._graph.run({"x": self.x, "h": self.h, "c": self.c})
        for k in ("y", "h_next", "c_next"):
            np.copyto(getattr(self, k), out[k])


FORMAT = Format("toy", ".toy", read_config, runtimes=(Backend("toystep", lambda: _self()),),
                exporter=lambda: _self(), summary="a toy format")


def _self():
    import sys
    return sys.modules[__name__]
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy module on the path and its row registered, here and in the processes slimedge
    starts ($SLIMEDGE_FORMATS); the table restored afterwards."""
    (tmp_path / "toyfmt.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv(formats.ENV_FORMATS, "toyfmt")
    monkeypatch.setattr(formats, "FORMATS", dict(formats.FORMATS))
    import toyfmt

    formats.register(toyfmt.FORMAT)
    yield toyfmt
    sys.modules.pop("toyfmt", None)


def test_a_toy_format_is_exported_loaded_and_profiled(tmp_path, toy):
    from slimedge import profile

    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM6", 5, 8, classes=3)
    r = exporters.export(path, tmp_path / "m.toy", format="toy")  # validated through the runtime
    assert r.validation.passed and r.format == "toy"
    m = runtime.load(r.path)
    assert m.backend == "toystep" and "toystep" in runtime.BACKENDS
    frames = seeded("toy").normal(size=(20, 5)).astype(np.float32)
    ref = runtime.load(path, backend="numpy").run(frames)
    np.testing.assert_allclose(m.run(frames), ref, atol=1e-6)
    report = profile.run([r.path], backends=["toystep"], baseline="none", steps=20, warmup=2,
                         rounds=1, validate=False)
    (result,) = report["results"]
    assert result["config"]["backend"] == "toystep" and result["latency_us"]["count"] > 0


def test_a_toy_backend_for_an_existing_format(tmp_path, toy, monkeypatch):
    """A second backend for checkpoints: its row entry added to the safetensors row; the runtime
    takes it by name, lists it, and steps the checkpoint with it."""
    import dataclasses

    from slimedge.formats import Backend
    from slimedge.formats.safetensors import numpy as numpy_backend

    row = formats.get("safetensors")
    formats.register(dataclasses.replace(row, runtimes=(
        *row.runtimes, Backend("irstep", lambda: numpy_backend, summary="toy"))))
    path, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM10", 5, 8, classes=3)
    assert "irstep" in runtime.BACKENDS and "irstep" in runtime.available_backends()
    m = runtime.load(path, backend="irstep")
    frames = seeded("irstep").normal(size=(10, 5)).astype(np.float32)
    np.testing.assert_allclose(m.run(frames), runtime.load(path, backend="numpy").run(frames))
    assert m.backend == "irstep"

