"""The models a SLIM variant is measured against: what a user would deploy today.

Two baselines, both with the profiled model's input size, hidden size, layers, head and input
normalisation (random weights: latency, memory and size do not depend on the values):

``lstm0_checkpoint``   a standard LSTM (variant LSTM0) as a slimedge checkpoint, so it goes through
                       exactly the same exporters, formats, quantisation and backends as the
                       profiled model (numpy only, no torch);
``torch_onnx_lstm``    ``torch.nn.LSTM`` plus an ``nn.Linear`` head, exported with ``torch.onnx``
                       (the fused ONNX ``LSTM`` operator), the file onnxruntime users run today.
                       Its inputs and outputs follow the step-graph contract (``x`` (batch, m),
                       ``h``, ``c`` (layers, batch, n) -> ``y``, ``h_next``, ``c_next``) and it
                       carries a ``slimedge`` metadata entry with the graph sizes, so the runtime
                       steps it exactly as it steps a slimedge export: the comparison is the
                       graphs, not the wrappers. ``dynamic=True`` quantises it with
                       ``onnxruntime.quantization.quantize_dynamic`` (int8 weights; the fused
                       operator becomes ``DynamicQuantizeLSTM``), as an onnxruntime user would.

Only :func:`torch_onnx_lstm` imports torch (inside the function).
"""
from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from . import checkpoint, formats, frontend, integrity, variants

TORCH_ONNX = "torch.onnx LSTM"  # the label of the torch.onnx baseline in tables and JSON
OPSET = 18


def _source(like) -> tuple[dict, dict[str, np.ndarray], str]:
    """(config, tensors, name) of ``like``: a checkpoint (path or Checkpoint), or the config of
    an exported file (its :class:`~slimedge.formats.ModelInfo` gives the sizes; head and
    normalisation are made up)."""
    if isinstance(like, dict):
        info = formats.ModelInfo.from_config(like)
        m, n, k = info.input_size, info.hidden_size, info.output_size
        tensors = {}
        if "head" in like:
            rng = np.random.default_rng(1)
            tensors["head.weight"] = rng.uniform(-1, 1, (k, n)) / np.sqrt(n)
            tensors["head.bias"] = np.zeros(k)
        tensors.update(frontend.Frontend.from_config(like).neutral_tensors(m))
        lstm = {**like["lstm"], "input_size": m, "hidden_size": n, "num_layers": info.num_layers}
        return {**like, "lstm": lstm}, tensors, "an exported model"
    ckpt = like if isinstance(like, checkpoint.Checkpoint) else checkpoint.read(like)
    return ckpt.config, ckpt.tensors, ckpt.path.name if ckpt.path else "the profiled model"


def _dims(config: dict, tensors: dict) -> dict:
    cfg = config["lstm"]
    head = tensors.get("head.weight")
    n = int(cfg["hidden_size"])
    return {"input_size": int(cfg["input_size"]), "hidden_size": n,
            "num_layers": int(cfg.get("num_layers", 1)),
            "output_size": int(head.shape[0]) if head is not None else n,
            "head": head is not None}


def lstm0_checkpoint(like, path: str | os.PathLike, *, seed: int = 0) -> Path:
    """Write a standard LSTM (LSTM0) checkpoint shaped like ``like`` (random weights).

    ``like``: a checkpoint path or :class:`~slimedge.checkpoint.Checkpoint`, or the slimedge
    config of an exported file (as stored in its metadata)."""
    return random_checkpoint("LSTM0", like, path, seed=seed)


def random_checkpoint(variant, like, path: str | os.PathLike, *, seed: int = 0) -> Path:
    """Write a ``variant`` checkpoint with random weights (uniform ±1/√n, as torch.nn.LSTM
    initialises) and the sizes, head and normalisation of ``like`` (as :func:`lstm0_checkpoint`)."""
    config, src, name = _source(like)
    d = _dims(config, src)
    spec = variants.get(variant)
    rng = np.random.default_rng(seed)
    n, bound = d["hidden_size"], 1.0 / np.sqrt(d["hidden_size"])
    tensors: dict[str, np.ndarray] = {}
    for k in range(d["num_layers"]):
        m = d["input_size"] if k == 0 else n
        for name in spec.term_names():
            term = name.split("_")[0]
            tensors[f"layers.{k}.{name}"] = rng.uniform(-bound, bound, spec.term_shape(term, m, n))
    keep = ("kind", "lstm", "head", "normalization", "frontend")
    out = {key: v for key, v in config.items() if key in keep}
    out["lstm"] = {key: v for key, v in config["lstm"].items()
                   if key in ("input_size", "hidden_size", "num_layers", "gate_activation",
                              "activation", "dropout")}
    out["lstm"]["variant"] = spec.to_config()
    out["info"] = {"baseline": f"{spec.name} with random weights, shaped like {name}"}
    fe = frontend.Frontend.from_config(config)
    for key in ("head.weight", "head.bias", *fe.tensor_shapes(d["input_size"])):
        if key in src:
            tensors[key] = np.asarray(src[key])
    return checkpoint.write(path, out, tensors)


def torch_onnx_lstm(like, path: str | os.PathLike, *, dynamic: bool = False,
                    seed: int = 0) -> Path:
    """Export ``torch.nn.LSTM`` + head shaped like ``like`` with ``torch.onnx`` to ``path``."""
    import onnx
    import torch
    from torch import nn

    from .models.frontend import FrontendModule

    config, src, _ = _source(like)
    d = _dims(config, src)
    m, n, layers, k = d["input_size"], d["hidden_size"], d["num_layers"], d["output_size"]
    torch.manual_seed(seed)

    class Step(nn.Module):
        """One time step of nn.LSTM (a length-1 sequence) and the head, on the step contract."""

        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(m, n, layers)
            self.head = nn.Linear(n, k) if d["head"] else nn.Identity()
            self.frontend = FrontendModule(frontend.Frontend.from_config(config), m)
            self.frontend.load_tensors({k: torch.as_tensor(np.asarray(v, np.float32))
                                        for k, v in src.items()})

        def forward(self, x, h, c):
            x = self.frontend(x)
            out, (h_next, c_next) = self.lstm(x.unsqueeze(0), (h, c))
            return self.head(out[0]), h_next, c_next

    model = Step().eval()
    example = (torch.zeros(2, m), torch.zeros(layers, 2, n), torch.zeros(layers, 2, n))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "lstm.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            # torch warns about exporting LSTM with batch 2; h and c are inputs, so batch is free
            warnings.simplefilter("ignore")
            torch.onnx.export(model, example, str(raw), dynamo=False, opset_version=OPSET,
                              input_names=["x", "h", "c"], output_names=["y", "h_next", "c_next"],
                              dynamic_axes={"x": {0: "batch"}, "h": {1: "batch"},
                                            "c": {1: "batch"}, "y": {0: "batch"},
                                            "h_next": {1: "batch"}, "c_next": {1: "batch"}})
        if dynamic:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quant = Path(tmp) / "lstm.int8.onnx"
            logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))
            quantize_dynamic(str(raw), str(quant), weight_type=QuantType.QInt8)
            raw = quant
        proto = onnx.load(str(raw))
    census: dict[str, int] = {}
    for node in proto.graph.node:
        census[node.op_type] = census.get(node.op_type, 0) + 1
    params = sum(int(np.prod(t.dims)) for t in proto.graph.initializer
                 if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT8,
                                    onnx.TensorProto.UINT8) and len(t.dims) >= 1
                 and int(np.prod(t.dims)) > 1)
    lstm_params = sum(4 * n * ((m if j == 0 else n) + n) + 8 * n for j in range(layers))
    head_params = (n * k + k) if d["head"] else 0
    lstm_macs = sum(4 * n * ((m if j == 0 else n) + n) for j in range(layers))
    graph = {"census": dict(sorted(census.items())), "params": lstm_params + head_params,
             "lstm_params": lstm_params, "head_params": head_params,
             "macs_per_step": lstm_macs + (n * k if d["head"] else 0),
             "lstm_macs_per_step": lstm_macs, "input_size": m, "hidden_size": n,
             "num_layers": layers, "output_size": k, "initializer_elements": params}
    meta = {"format": "slimedge/1", "kind": "baseline",
            "lstm": {"variant": {"name": TORCH_ONNX}, "input_size": m, "hidden_size": n,
                     "num_layers": layers},
            "baseline": {"name": TORCH_ONNX, "torch": torch.__version__, "opset": OPSET,
                         "quantize": "dynamic" if dynamic else "none"},
            "graph": graph,
            "export": {"format": "onnx", "mode": "step",
                       "quantize": "dynamic" if dynamic else "none", "exporter": "torch.onnx"},
            integrity.KEY: integrity.PLACEHOLDER}
    props = {p.key: p.value for p in proto.metadata_props}
    props["slimedge"] = integrity.dumps(meta)
    onnx.helper.set_model_props(proto, props)
    tmp_path = path.with_name(f".{path.name}.tmp")
    onnx.save_model(proto, str(tmp_path), save_as_external_data=False)
    integrity.seal(tmp_path)  # loads checked, as every file slimedge writes
    os.replace(tmp_path, path)
    return path


__all__ = ["lstm0_checkpoint", "random_checkpoint", "torch_onnx_lstm", "TORCH_ONNX"]
