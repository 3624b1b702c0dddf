"""``slimedge demo``: the shipped model from checkpoint to deployed files, on one screen.

1. the shipped spoken-digit model (its card: variant, size, accuracy beside LSTM0's);
2. exported to ONNX and TFLite in every quantisation mode, each file validated at export (float:
   against the float64 model step by step; int8: task accuracy and drift on real data);
3. each file's spoken-digit test accuracy through the streaming runtime (``runtime.accuracy``);
4. a short profile beside the baselines (:mod:`slimedge.profile`).

Every file is left in the output folder (default ``./slimedge-demo``), with the profile as JSON,
CSV and PNG, so a new user can pick one up with ``slimedge run`` or their own app.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import UsageError
from .formats import FORMATS as _TABLE
from .formats import QUANTIZE, ModelInfo

FORMATS = ("onnx", "tflite")  # the formats the demo exports to
PROFILE_STEPS = 1000


@dataclass
class DemoResult:
    model: Path
    out: Path
    config: dict
    card: dict | None = None  # the shipped model's card, when the demo runs on it
    exports: list[dict] = field(default_factory=list)
    report: dict | None = None
    elapsed_s: float = 0.0


def run(out: str | os.PathLike = "slimedge-demo", *, model: str | os.PathLike | None = None,
        formats=FORMATS, quantize=QUANTIZE, profile_steps: int = PROFILE_STEPS,
        profile_quantize=("none", "dynamic"), log: Callable[[str], None] = lambda s: None) -> DemoResult:
    """Export, validate, evaluate and profile ``model`` (default: the shipped one) into ``out``."""
    from . import checkpoint, exporters, extras, profile, runtime

    # every package the demo uses, before its first minute of work (it ends with the PNG)
    extras.require("profile", "the demo", "safetensors", "onnx", "flatbuffers", "onnxruntime",
                   "ai_edge_litert", "matplotlib")
    from .data import load_as_recorded

    t0 = time.time()
    card = None
    if model is None:
        from .zoo import card as zoo_card
        from .zoo import default_model_path

        model = default_model_path()
        try:
            card = zoo_card()
        except (FileNotFoundError, ValueError):
            card = None
    model, out = Path(model), Path(out)
    if not model.is_file():
        raise FileNotFoundError(f"{model}: no such model file")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    ckpt = checkpoint.read(model)
    res = DemoResult(model, out, ckpt.config, card)
    log("loading the test data")
    splits = load_as_recorded(ModelInfo.from_config(ckpt.config, path=model).data)
    test = splits["test"]
    stem = model.stem
    files: list[tuple[str, str, Path]] = [("safetensors", "none", model)]
    for fmt in formats:
        for q in quantize:
            path = out / f"{stem}{'' if q == 'none' else '.' + q}{exporters.suffix(fmt)}"
            log(f"exporting {fmt} {q}")
            entry = {"format": fmt, "quantize": q, "path": str(path)}
            opts = {"data": splits} if q != "none" else {}  # quantisers calibrate on it
            try:
                r = exporters.export(ckpt, path, format=fmt, quantize=q, **opts)
            except ValueError as e:  # a failed validation leaves no file: say so, go on
                entry["error"] = str(e)
                res.exports.append(entry)
                continue
            entry.update(size_bytes=r.size_bytes, validation=r.validation.to_dict()
                         if r.validation else None,
                         task=(r.quantization or {}).get("task"))
            files.append((fmt, q, path))
            res.exports.append(entry)
    by_path = {e["path"]: e for e in res.exports}
    for fmt, _, path in files:
        backend = _TABLE[fmt].backends[0]
        log(f"test accuracy of {path.name} on {backend}")
        m = runtime.load(path, backend=backend, threads=1)
        acc = runtime.evaluate(m, test)
        entry = by_path.get(str(path))
        if entry is None:  # the checkpoint itself, the float reference
            entry = {"format": "safetensors", "quantize": "none", "path": str(path),
                     "size_bytes": path.stat().st_size, "validation": None, "task": None}
            res.exports.insert(0, entry)
        entry.update(backend=backend, test_accuracy=acc.accuracy, test_n=acc.n)
    log("profiling beside the baselines")
    # the profile's own exports (the model again, and the baselines) go to a temporary folder
    res.report = profile.run([model], backends=[_TABLE[f].backends[0] for f in formats],
                             quantize=profile_quantize, steps=profile_steps,
                             warmup=min(200, profile_steps), validate=False, log=log)
    profile.write_json(res.report, out / "profile.json")
    profile.write_csv(res.report, out / "profile.csv")
    profile.plot(res.report, out / "profile.png")
    res.elapsed_s = time.time() - t0
    return res


def render(res: DemoResult, console) -> None:
    """The demo's one screen."""
    from rich.table import Table
    from rich.text import Text  # names from metadata: shown as written

    from .profile.report import _size, names

    cfg = res.config
    lstm = cfg["lstm"]
    info = ModelInfo.from_config(cfg, path=res.model)
    variant = info.variant
    data = (info.data or {}).get("name", "?")
    consts = (lstm.get("variant") or {}).get("constants") or {}
    consts = {g: consts[g] for g in "ifo" if g in consts}
    shown = f"{variant} ({', '.join(f'{g} = {v:g}' for g, v in consts.items())})" if consts else variant
    console.print(f"[bold]slimedge demo[/]: {res.model.name}, an {shown} classifier "
                  f"(m = {lstm['input_size']}, n = {lstm['hidden_size']}, "
                  f"{lstm.get('num_layers', 1)} layer) for {data}", highlight=False)
    card = res.card or {}
    if card.get("test_accuracy") is not None and (card.get("lstm0") or {}).get("test_accuracy"):
        l0 = card["lstm0"]
        console.print(f"Model card: {card['params']:,} parameters, test accuracy "
                      f"{100 * card['test_accuracy']:.1f}%; LSTM0 trained with the same budget: "
                      f"{l0['params']:,} parameters, {100 * l0['test_accuracy']:.1f}% "
                      f"(slimedge/zoo/README.md).", highlight=False, soft_wrap=True)
    t = Table(title="Exported, validated, and run through the runtime: accuracy on the test split")
    for col in ("file", "backend", "size", "export check", "accuracy"):
        # in 80 columns a file name keeps up to 22 cells (fsdd_def…dynamic.tflite); the check wraps
        t.add_column(col, justify="left" if col in ("file", "export check") else "right",
                     no_wrap=col != "export check", **({"max_width": 22} if col == "file" else {}))
    shown = names([Path(e["path"]).name for e in res.exports])
    for e, name in zip(res.exports, shown):
        if e.get("error"):
            t.add_row(name, "–", "–", Text(f"failed: {e['error'][:70]}", style="red"), "–")
            continue
        v, task = e.get("validation"), e.get("task")
        if task:
            check = (f"val acc {100 * task['accuracy']:.1f}% vs float "
                     f"{100 * task['float_accuracy']:.1f}%")
        elif v:
            worst = max(v["max_abs_diff"].values())
            check = f"max |diff| {worst:.1e} ≤ {v['atol']:g}"
        else:
            check = "the source model"
        if v is not None and not v.get("passed", True):
            check = f"[red]{check}[/]"
        t.add_row(name, e.get("backend", "–"), _size(e.get("size_bytes")), check,
                  f"{100 * e['test_accuracy']:.1f}%" if e.get("test_accuracy") is not None
                  else "–")
    console.print(t)
    rep = res.report
    if rep:
        console.print(compact_table(rep))
        for note in rep["notes"]:
            console.print(f"note: {note}", style="dim", highlight=False)
    data = (ModelInfo.from_config(res.config, path=res.model).data or {}).get("name")
    try_run = (f"slimedge run {res.out}/{res.model.stem}.tflite"
               + (f" --data {data}" if data else " --input frames.npy"))
    console.print(f"Files in {res.out}/ (the profile too: profile.json, profile.csv, "
                  f"profile.png). Next: [bold]{try_run}[/], [bold]slimedge profile --help[/]; "
                  f"a spoken digit in a WAV file (8 kHz mono): [bold]slimedge run --audio "
                  f"{_sample_wav()}[/]. ({res.elapsed_s:.0f} s)", highlight=False,
                  soft_wrap=True)


def _sample_wav() -> str:
    """The shipped sample recording's path, as the demo suggests classifying it."""
    from .zoo import sample_wav_path

    try:
        return str(sample_wav_path())
    except FileNotFoundError:
        return "FILE.wav"


def compact_table(report: dict):
    """One line per configuration: the numbers a new user compares."""
    from rich.table import Table

    from .profile.report import _fmt, _size, _times, names

    s = report["settings"]
    t = Table(title=(f"Profile: batch 1, {s['threads']} thread, {s['steps']} steps per "
                     f"configuration, interleaved; × = baseline p50 / this p50 (same run)"),
              title_justify="left")
    # what fits 80 columns (the label folds); profile.csv/json beside it have every number
    for col in ("configuration", "p50 µs", "× LSTM0", "× torch.onnx", "file", "peak MiB"):
        if col == "configuration":
            t.add_column(col, ratio=1, min_width=12)
        else:
            t.add_column(col, justify="right", no_wrap=True)
    style = {"model": "bold", "lstm0": "dim", "torch.onnx": "yellow"}
    measured = [r for r in report["results"] if r.get("latency_us")]
    for r, name in zip(measured, names([r["config"]["label"] for r in measured])):
        l0, tox = r.get("vs_lstm0") or {}, r.get("vs_torch_onnx") or {}
        t.add_row(name, _fmt(r["latency_us"]["p50"]),
                  _times(l0.get("speedup")), _times(tox.get("speedup")), _size(r["size_bytes"]),
                  _fmt((r.get("memory_mb") or {}).get("peak"), ".0f"),
                  style=style.get(r["config"]["role"]))
    return t


__all__ = ["run", "render", "compact_table", "DemoResult"]
