"""A Triton model repository for one model: the onnxruntime backend with implicit state, and a
Python-backend model that steps the slimedge runtime, both behind Triton's sequence batcher.

    repo/
      NAME/                     onnxruntime backend (a full Triton server)
        config.pbtxt            sequence batcher, oldest strategy; state h, c kept by Triton
        1/model.onnx            the step graph with its state batch first: h, c (B, layers, n)
      NAME_python/              Python backend (any Triton, the one nvidia-pytriton bundles too)
        config.pbtxt            sequence batcher, oldest strategy; control inputs START, END, CORRID
        1/model.py              slimedge.triton_server.python_model: one Stream per correlation id
        1/NAME.onnx|.tflite|.c  the export it steps (with --format)

Triton's implicit state keeps, per sequence, the tensors named by the config's ``state`` entries
and starts them at zero on a sequence's START; its dims exclude the batch, which comes first, so
the ONNX file here is the step graph with a Transpose on each state input and output (the
exported step graph's state is (layers, B, n)). The two states are listed in sorted name order,
inputs and outputs alike (Triton pairs several states by sorted name). The Python backend cannot
carry implicit state (Triton accepts the config and passes nothing), so its model keeps a
:class:`~slimedge.runtime.Stream` per correlation id and steps every request of a batch in one
``Model.step_streams`` call.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import formats, integrity
from .._io import _umask
from ..errors import UsageError
from ..formats import METADATA_KEY

VERSION = "1"
MODEL_PY = "from slimedge.triton_server.python_model import TritonPythonModel  # noqa: F401\n"
DEFAULT_MAX_BATCH = 256
DEFAULT_MAX_SEQUENCES = 1024
DEFAULT_IDLE_S = 60.0
DEFAULT_QUEUE_DELAY_US = 500
_NAME = re.compile(r"[^A-Za-z0-9_.-]")
STATE_LAYOUT = "batch_first"  # the Triton ONNX file's export.state_layout (h, c: (B, layers, n))


@dataclass(frozen=True)
class Sequencing:
    """The sequence batcher's settings, the same in both models.

    ``max_batch``: requests (one per sequence) stepped in one call; ``max_sequences``: sequences
    one instance serves at once (the oldest strategy's candidates; more wait in a backlog until
    one ends); ``idle_s``: a sequence without a request for this long is dropped (its state
    freed); ``queue_delay_us``: how long the batcher waits to fill a batch."""

    max_batch: int = DEFAULT_MAX_BATCH
    max_sequences: int = DEFAULT_MAX_SEQUENCES
    idle_s: float = DEFAULT_IDLE_S
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US

    def check(self) -> "Sequencing":
        for name in ("max_batch", "max_sequences", "queue_delay_us"):
            if int(getattr(self, name)) < (0 if name == "queue_delay_us" else 1):
                raise UsageError(f"triton {name} must be at least "
                                 f"{0 if name == 'queue_delay_us' else 1}, got {getattr(self, name)}")
        if not 0 < float(self.idle_s) <= 24 * 3600:
            raise UsageError(f"triton idle_s must be in (0, 86400] seconds, got {self.idle_s}")
        return self

    def batcher(self, body: str) -> str:
        """The ``sequence_batching`` block around ``body`` (control inputs or states)."""
        return (f"sequence_batching {{\n"
                f"  max_sequence_idle_microseconds: {int(self.idle_s * 1e6)}\n"
                f"  oldest {{\n"
                f"    max_candidate_sequences: {int(self.max_sequences)}\n"
                f"    max_queue_delay_microseconds: {int(self.queue_delay_us)}\n"
                f"  }}\n{body}}}\n")


def model_name(stem: str) -> str:
    """A Triton model name (a folder name) from a model file's stem."""
    name = _NAME.sub("_", stem).strip(".") or "model"
    return name


def _tensor(name: str, dims) -> str:
    return (f"  {{\n    name: \"{name}\"\n    data_type: TYPE_FP32\n"
            f"    dims: [ {', '.join(str(int(d)) for d in dims)} ]\n  }}")


def _io(info: formats.ModelInfo) -> str:
    return (f"input [\n{_tensor('x', [info.input_size])}\n]\n"
            f"output [\n{_tensor('y', [info.output_size])}\n]\n")


def onnx_config(name: str, info: formats.ModelInfo, seq: Sequencing) -> str:
    """config.pbtxt of the onnxruntime-backend model: h and c as implicit state."""
    dims = f"[ {info.num_layers}, {info.hidden_size} ]"
    states = []
    for s in ("c", "h"):  # sorted by name, inputs and outputs alike
        states.append(f"    {{\n      input_name: \"{s}\"\n      output_name: \"{s}_next\"\n"
                      f"      data_type: TYPE_FP32\n      dims: {dims}\n"
                      f"      initial_state {{\n        name: \"zero_{s}\"\n"
                      f"        data_type: TYPE_FP32\n        dims: {dims}\n"
                      f"        zero_data: true\n      }}\n    }}")
    body = "  state [\n" + ",\n".join(states) + "\n  ]\n"
    return (f"name: \"{name}\"\nbackend: \"onnxruntime\"\nmax_batch_size: {int(seq.max_batch)}\n"
            + seq.batcher(body) + _io(info)
            + "instance_group [\n  {\n    count: 1\n    kind: KIND_CPU\n  }\n]\n")


def python_config(name: str, info: formats.ModelInfo, seq: Sequencing, model_file: str,
                  backend: str, threads: int = 1) -> str:
    """config.pbtxt of the Python-backend model: the controls its model reads per request."""
    controls = []
    for tensor, kind in (("START", "CONTROL_SEQUENCE_START"), ("END", "CONTROL_SEQUENCE_END")):
        controls.append(f"    {{\n      name: \"{tensor}\"\n      control [\n        {{\n"
                        f"          kind: {kind}\n          int32_false_true: [ 0, 1 ]\n"
                        f"        }}\n      ]\n    }}")
    controls.append("    {\n      name: \"CORRID\"\n      control [\n        {\n"
                    "          kind: CONTROL_SEQUENCE_CORRID\n          data_type: TYPE_UINT64\n"
                    "        }\n      ]\n    }")
    body = "  control_input [\n" + ",\n".join(controls) + "\n  ]\n"
    params = "".join(f"parameters {{\n  key: \"{k}\"\n  value: {{\n    string_value: \"{v}\"\n  }}\n}}\n"
                     for k, v in (("slimedge_model", model_file), ("slimedge_backend", backend),
                                  ("slimedge_threads", int(threads)),
                                  ("slimedge_idle_s", repr(float(seq.idle_s)))))
    return (f"name: \"{name}\"\nbackend: \"python\"\nmax_batch_size: {int(seq.max_batch)}\n"
            + seq.batcher(body) + _io(info)
            + "instance_group [\n  {\n    count: 1\n    kind: KIND_CPU\n  }\n]\n" + params)


def batch_first_state(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Write the ONNX step graph ``src`` with its state batch first (Triton's implicit state):
    inputs h, c and outputs h_next, c_next (B, layers, n) around the graph's (layers, B, n)."""
    import onnx
    from onnx import helper

    model = onnx.load_model(os.fspath(src), load_external_data=False)
    g = model.graph

    def rename(old: str, new: str) -> None:
        for node in g.node:
            for i, v in enumerate(node.input):
                if v == old:
                    node.input[i] = new
            for i, v in enumerate(node.output):
                if v == old:
                    node.output[i] = new

    first, last = [], []
    for s in ("h", "c"):
        inner_in, inner_out = f"{s}_layers_first", f"{s}_next_layers_first"
        rename(s, inner_in)
        rename(f"{s}_next", inner_out)
        first.append(helper.make_node("Transpose", [s], [inner_in], perm=[1, 0, 2],
                                      name=f"{s}_to_layers_first"))
        last.append(helper.make_node("Transpose", [inner_out], [f"{s}_next"], perm=[1, 0, 2],
                                     name=f"{s}_next_to_batch_first"))
        for vi in (*g.input, *g.output):
            if vi.name in (s, f"{s}_next"):  # (layers, batch, n) -> (batch, layers, n)
                dims = vi.type.tensor_type.shape.dim
                old = [type(d)() for d in dims]
                for o, d in zip(old, dims):
                    o.CopyFrom(d)
                dims[0].CopyFrom(old[1])
                dims[1].CopyFrom(old[0])
    nodes = [*first, *g.node, *last]
    del g.node[:]
    g.node.extend(nodes)
    for prop in model.metadata_props:  # the config says so: the runtime refuses this layout
        if prop.key == METADATA_KEY:
            config = json.loads(prop.value)
            config.setdefault("export", {})["state_layout"] = STATE_LAYOUT
            prop.value = json.dumps(config, sort_keys=True)
    onnx.checker.check_model(model, full_check=True)
    onnx.save_model(model, os.fspath(dst), save_as_external_data=False)
    integrity.seal(dst)  # the slimedge config stays in the file, with this file's digest


def _place(folder: Path, target: Path) -> None:
    """Move a finished model folder into the repository (never over an existing one)."""
    for p in folder.rglob("*"):
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~_umask())
    os.chmod(folder, 0o777 & ~_umask())
    os.rename(folder, target)


@dataclass
class Repository:
    """What :func:`write` put in a repository: the two model folders and the exports inside."""

    root: Path
    onnx_model: Path          # NAME/: the onnxruntime backend's model
    python_model: Path        # NAME_python/: the Python backend's model
    exports: dict             # "onnx" and "python": the ExportResult of each file written

    def to_dict(self) -> dict:
        return {"root": str(self.root), "onnx_model": str(self.onnx_model),
                "python_model": str(self.python_model),
                "exports": {k: v.to_dict() for k, v in self.exports.items()}}


def write(model, root: str | os.PathLike, *, format: str = "onnx", quantize: str = "none",
          name: str | None = None, backend: str = "auto", threads: int = 1,
          sequencing: Sequencing | None = None, validate: bool = True,
          **export_options) -> Repository:
    """Write a Triton model repository for ``model`` (a checkpoint path or Checkpoint) in
    ``root``: ``NAME/`` for the onnxruntime backend and ``NAME_python/`` for the Python backend,
    whose file is exported in ``format`` (onnx, tflite or c) and stepped on the slimedge runtime
    backend ``backend`` with ``threads`` threads (1: a row's result does not depend on the batch
    it was stepped in, and the server's other threads keep the rest of the cores). Every file
    is exported and validated as :func:`slimedge.exporters.export` does. ``root`` may exist (a
    repository serving other models); the two model folders must not. Each folder is built
    beside its place and moved there whole: nothing partial is left."""
    from .. import exporters

    seq = (sequencing or Sequencing()).check()
    if not 1 <= int(threads) <= formats.LIMITS["threads"]:
        raise UsageError(f"threads must be at least 1 and at most {formats.LIMITS['threads']}, "
                         f"got {threads}")
    fmt = formats.get(format)
    if not fmt.exportable or "step" not in fmt.modes:
        raise UsageError(f"--format {format}: the Python-backend model steps an exported step "
                         f"graph; valid: {', '.join(formats.exportable())}")
    if backend != "auto" and format not in [f.name for f in formats.FORMATS.values()
                                            if backend in f.backends]:
        raise UsageError(f"backend {backend!r} does not read {fmt.suffix} files")
    ckpt = exporters.as_checkpoint(model)
    name = model_name(name or (ckpt.path.stem if ckpt.path is not None else "model"))
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root}: a Triton model repository is a folder, and this is a file")
    targets = {"onnx": root / name, "python": root / f"{name}_python"}
    for t in targets.values():
        if t.exists():
            raise UsageError(f"{t}: already exists; remove it or choose another --triton folder "
                             f"(a model folder is never overwritten)")
    root.mkdir(parents=True, exist_ok=True)
    info = formats.ModelInfo.from_config(ckpt.config, path=ckpt.path)
    results = {}
    with tempfile.TemporaryDirectory(prefix=f".{name}.", suffix=".tmp", dir=root) as tmp:
        tmp = Path(tmp)
        step = exporters.export(ckpt, tmp / f"{name}.onnx", format="onnx", quantize=quantize,
                                validate=validate, **{k: v for k, v in export_options.items()
                                                      if k != "compat"})  # TFLite's option
        results["onnx"] = step
        a = tmp / "onnx"
        (a / VERSION).mkdir(parents=True)
        batch_first_state(step.path, a / VERSION / "model.onnx")
        (a / "config.pbtxt").write_text(onnx_config(name, info, seq))
        b = tmp / "python"
        (b / VERSION).mkdir(parents=True)
        file = f"{name}{fmt.suffix}"
        if format == "onnx":
            shutil.copy2(step.path, b / VERSION / file)
            results["python"] = dataclasses.replace(step)
        else:
            results["python"] = exporters.export(ckpt, b / VERSION / file, format=format,
                                                 quantize=quantize, validate=validate,
                                                 **export_options)
        (b / VERSION / "model.py").write_text(MODEL_PY)
        (b / "config.pbtxt").write_text(python_config(f"{name}_python", info, seq, file,
                                                      backend, threads))
        _place(a, targets["onnx"])
        try:
            _place(b, targets["python"])
        except BaseException:
            shutil.rmtree(targets["onnx"], ignore_errors=True)
            raise
    for key, r in results.items():  # the files as they lie in the repository now
        r.path = targets[key] / VERSION / (file if key == "python" else "model.onnx")
        r.size_bytes = r.path.stat().st_size
    return Repository(root, targets["onnx"], targets["python"], results)
