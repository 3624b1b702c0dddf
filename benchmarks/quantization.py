"""Quantisation report: size, weight bytes and test accuracy per format and mode, on spoken digits.

For the shipped model (when ``slimedge.zoo`` has it) and for every variant trained on FSDD, each
checkpoint is exported float / dynamic / int8 to ONNX and TFLite through ``slimedge.exporters``
(int8 calibrated on 128 training sequences' float rollouts; every quantised file passes the
export-time task check), then every file is run on the FSDD *test* split, one stream per call.

Weight bytes: ONNX, the bytes of every initializer (int8 weights with their scales and zero points,
biases); TFLite, the bytes of every constant buffer (``weight_buffers``) and, beside it, the
quantisation parameters stored with those constants (``qparams``: TFLite keeps a float32 scale and
an int64 zero point per output channel). Whole file sizes are reported beside them.

Variant models come from ``--models DIR`` (``fsdd_<VARIANT>.safetensors``, e.g. paper_table.py's
``--workdir --keep``) or are trained here briefly (``--epochs``, n = 64, one layer, cosine lr 3e-3,
seed 0); the report says which. ``--update`` writes ``benchmarks/results/quantization.json`` and the
``## Quantisation`` section of BENCHMARKS.md.

    python benchmarks/quantization.py [--variants LSTM0,LSTM6] [--epochs 10] [--models DIR]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slimedge import checkpoint, exporters, formats, ir, variants  # noqa: E402
from slimedge._report import (  # noqa: E402
    add_output_arguments,
    describe,
    machine,
    nothing_written,
    settle_outputs,
    update_markdown_section,
)
from slimedge.exporters import quantize as Q  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "quantization.json"
BENCH = ROOT / "BENCHMARKS.md"
SECTION = "## Quantisation"
FORMATS = ("onnx", "tflite")
MODES = formats.QUANTIZE
MAX_DROP = 0.01      # acceptance: at most 1.0 accuracy point lost
MAX_WEIGHT_RATIO = 0.3


def onnx_weight_bytes(path: Path) -> dict:
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    total = sum(numpy_helper.to_array(t).nbytes for t in m.graph.initializer)
    return {"weight_buffers": int(total), "qparams": 0, "weights_total": int(total)}


def tflite_weight_bytes(path: Path) -> dict:
    from ai_edge_litert import schema_py_generated as s

    data = path.read_bytes()
    m = s.Model.GetRootAs(data, 0)
    sg = m.Subgraphs(0)
    buffers = qparams = 0
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        n = m.Buffers(t.Buffer()).DataLength() if t.Buffer() else 0
        if not n or (t.Type() == s.TensorType.INT32 and t.Quantization() is None):
            continue  # no data, or a shape/axis operand (an int32 bias carries a quantisation)
        buffers += n
        q = t.Quantization()
        if q is not None:
            qparams += 4 * q.ScaleLength() + 8 * q.ZeroPointLength()
    return {"weight_buffers": int(buffers), "qparams": int(qparams),
            "weights_total": int(buffers + qparams)}


def test_accuracy(graph, path, fmt, split) -> float:
    run = Q.step_function(graph) if path is None else Q.step_function(graph, path, fmt)
    return Q.accuracy(run, split)


def measure(name: str, ckpt_path: Path, work: Path, samples: int) -> dict:
    ck = checkpoint.read(ckpt_path)
    g = ir.lower(ck)
    splits = Q.model_data(ck)
    test = splits["test"]
    row = {"model": name, "variant": ck.lstm["variant"]["name"],
           "constants": ck.lstm["variant"].get("constants"),
           "hidden_size": g.hidden_size, "layers": g.num_layers, "params": g.num_params(),
           "ir_float_test_accuracy": test_accuracy(g, None, None, test), "formats": {}}
    for fmt in FORMATS:
        out = {}
        for mode in MODES:
            path = work / f"{name}.{mode}.{fmt}"
            t0 = time.perf_counter()
            opts = {"calibration_samples": samples} if mode == "int8" else {}
            try:
                r = exporters.export(ckpt_path, path, format=fmt, quantize=mode, **opts)
            except ValueError as e:  # a failed task check or validation: recorded, not hidden
                out[mode] = {"error": str(e)}
                continue
            wb = (onnx_weight_bytes if fmt == "onnx" else tflite_weight_bytes)(path)
            entry = {"file_bytes": path.stat().st_size, **wb,
                     "test_accuracy": test_accuracy(g, path, fmt, test),
                     "export_seconds": round(time.perf_counter() - t0, 2)}
            if r.quantization:
                task = r.quantization.get("task", {})
                entry["val_accuracy_drop"] = task.get("accuracy_drop")
                entry["drift_1000"] = {k: task["drift"][k] for k in
                                       ("max_abs_h_next", "max_abs_c_next", "max_abs_y",
                                        "argmax_agreement")} if task else None
                entry["activations"] = r.quantization.get("activations")
                entry["weights"] = r.quantization.get("weights")
            out[mode] = entry
        f = out.get("none", {})
        for mode in ("dynamic", "int8"):
            e = out.get(mode, {})
            if "error" in e or "error" in f:
                continue
            e["test_accuracy_drop"] = f["test_accuracy"] - e["test_accuracy"]
            e["weight_ratio"] = e["weight_buffers"] / f["weight_buffers"]
            e["weight_ratio_with_qparams"] = e["weights_total"] / f["weights_total"]
            e["meets_accuracy"] = e["test_accuracy_drop"] <= MAX_DROP + 1e-12
            # judged with the scales and zero points counted: they are bytes the file spends on weights
            e["meets_weight_bytes"] = e["weight_ratio_with_qparams"] <= MAX_WEIGHT_RATIO
        row["formats"][fmt] = out
        print(f"{name} {fmt}: " + ", ".join(
            f"{m} {100 * out[m]['test_accuracy']:.2f}% {out[m]['file_bytes']}B"
            if "error" not in out[m] else f"{m} FAILED" for m in MODES), flush=True)
    return row


def train_variant(variant: str, out: Path, epochs: int, hidden: int) -> Path:
    from slimedge.train import TrainConfig, train

    train(TrainConfig(variant=variant, hidden_size=hidden, epochs=epochs, schedule="cosine",
                      lr=3e-3, seed=0, split_seed=0, threads=1), out, progress=False, quiet=True,
          overwrite=True)  # its work folder: a run not reused is trained again
    return out


def markdown(report: dict) -> str:
    lines = [SECTION, "",
             f"Measured {report['date']} on {report['machine']}, command `{report['command']}`. "
             f"{report['models_note']} Test accuracy on the FSDD test split ({report['test_n']} "
             "utterances, one stream per call); every quantised file also passed the export-time "
             "check (validation accuracy within 2 points of float, plus a reported 1,000-step drift). "
             "Weight bytes: ONNX initializers (scales and zero points included); TFLite constant "
             "buffers, with the per-channel scale/zero-point bytes in brackets.", "",
             "| model | format | float acc | dynamic acc (Δ) | int8 acc (Δ) | file B float / dyn / int8 "
             "| weight B float / dyn / int8 | weights ÷ float, scales included (dyn, int8) |",
             "|---|---|---|---|---|---|---|---|"]

    def acc(e, f):
        if "error" in e:
            return "failed"
        return f"{100 * e['test_accuracy']:.2f} ({100 * (e['test_accuracy'] - f['test_accuracy']):+.2f})"

    def wb(e, fmt):
        if "error" in e:
            return "–"
        return f"{e['weight_buffers']:,}" + (f" [{e['qparams']:,}]" if fmt == "tflite" and e["qparams"] else "")  # noqa: E501

    for row in report["models"]:
        for fmt in FORMATS:
            o = row["formats"][fmt]
            f, d, q = o["none"], o["dynamic"], o["int8"]
            ratio = ", ".join(f"{e.get('weight_ratio_with_qparams', float('nan')):.2f}" for e in (d, q))
            lines.append(f"| {row['model']} | {fmt} | {100 * f['test_accuracy']:.2f} | {acc(d, f)} | "
                         f"{acc(q, f)} | {f['file_bytes']:,} / "
                         f"{d.get('file_bytes', '–'):,} / {q.get('file_bytes', '–'):,} | "
                         f"{wb(f, fmt)} / {wb(d, fmt)} / {wb(q, fmt)} | {ratio} |")
    lines += ["", "Modes: ONNX dynamic = onnxruntime `quantize_dynamic` (int8 weights per tensor; "
              "activations quantised per call); ONNX int8 = `quantize_static` QDQ, MinMax over real "
              "rollouts, scope `matmul` (the Gemms and their inputs x, h are int8; the element-wise "
              "gate and cell-state ops stay float). TFLite dynamic = hybrid FULLY_CONNECTED (int8 "
              "weights, per output channel where a row holds at least 128 weights, else one scale "
              "per tensor; float activations); TFLite int8 = integer activations, int8 with "
              "the cell-state path (c, f⊙c, i⊙c̃, c', g(c')) in int16; the input normalisation runs in "
              "float before the first QUANTIZE.", ""]
    lines += report["acceptance_lines"] + [""]
    return "\n".join(lines)


def acceptance(report: dict) -> list[str]:
    shipped = [r for r in report["models"] if r["model"] == "shipped"]
    rows = shipped or []
    out = ["**Acceptance (shipped model: ≤ 1.0 point lost, int8 weight bytes ≤ 0.3× float):**"]
    if not rows:
        out.append("- the shipped model was not available when this ran (no `slimedge.zoo` default "
                   "model); the variant rows above stand in for it.")
        rows = report["models"]
    for row in rows:
        for fmt in FORMATS:
            for mode in ("dynamic", "int8"):
                e = row["formats"][fmt][mode]
                if "error" in e:
                    out.append(f"- {row['model']} {fmt} {mode}: FAILED to export: {e['error']}")
                    continue
                ok_a, ok_w = e["meets_accuracy"], e["meets_weight_bytes"]
                if row["model"] != "shipped" and ok_a and ok_w:
                    continue
                delta = 100 * -e["test_accuracy_drop"] + 0.0
                out.append(f"- {row['model']} {fmt} {mode}: Δacc {delta:+.2f} points "
                           f"({'ok' if ok_a else 'MISSES'}), weights {e['weight_ratio_with_qparams']:.2f}× "
                           f"float, scales and zero points included ({'ok' if ok_w else 'MISSES'}; "
                           f"{e['weight_ratio']:.2f}× without them)")
    out += ["", "Why some variants above spend more than 0.3× on weights: `dynamic` quantises only matrix weights in both "  # noqa: E501
            "runtimes; point-wise vectors u, biases and the normalisation stay float32, so a variant "
            "whose matrices are small (LSTM10/11/C6 hold only W_c, 64×13) keeps most of its bytes; "
            "ONNX int8 (QDQ, scope `matmul`) likewise leaves the element-wise constants float. "
            "TFLite stores a float32 scale and an int64 zero point per output channel beside "
            "per-channel int8 weights (12 bytes per channel, in brackets in the weight-bytes "
            "column), so slimedge gives a weight per-channel scales only where its rows hold at "
            "least 128 weights; int8 TFLite quantises the u vectors and biases too."]
    return out


def write_section(text: str) -> None:
    update_markdown_section(BENCH, SECTION, text)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", default="", help="comma-separated; default: all; 'none': only the shipped model")  # noqa: E501
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--models", type=Path, default=None, help="reuse fsdd_<VARIANT>.safetensors here")
    p.add_argument("--calibration-samples", type=int, default=Q.DEFAULT_CALIBRATION_SAMPLES)
    p.add_argument("--no-shipped", action="store_true")
    add_output_arguments(p, RESULTS)
    p.add_argument("--no-markdown", action="store_true", help="with --update: not BENCHMARKS.md")
    p.add_argument("--from-json", action="store_true",
                   help="only the markdown from the JSON (--out, else the tracked one)")
    a = p.parse_args(argv)
    settle_outputs(a, RESULTS)
    if a.from_json:
        report = json.loads(a.source.read_text())
        report["acceptance_lines"] = acceptance(report)
        _finish(a, report)
        return
    logging.disable(logging.WARNING)  # onnxruntime.quantization's pre-processing hints
    names = [v.strip() for v in a.variants.split(",") if v.strip()] or list(variants.VARIANTS)
    if a.variants.strip().lower() == "none":  # the shipped model only
        names = []
    work = Path(tempfile.mkdtemp(prefix="quant_report_"))
    models, trained, reused = [], [], []
    if not a.no_shipped:
        try:
            from slimedge.zoo import default_model_path
            models.append(("shipped", default_model_path()))
        except (ImportError, FileNotFoundError) as e:
            print(f"no shipped model: {e}", flush=True)
    for v in names:
        src = a.models / f"fsdd_{v}.safetensors" if a.models else None
        if src is not None and src.is_file():
            models.append((v, src))
            reused.append(v)
        else:
            t0 = time.perf_counter()
            models.append((v, train_variant(v, work / f"fsdd_{v}.safetensors", a.epochs, a.hidden)))
            trained.append(v)
            print(f"trained {v} in {time.perf_counter() - t0:.0f}s", flush=True)
    rows = [measure(name, path, work, a.calibration_samples) for name, path in models]
    note = []
    if trained:
        note.append(f"Variants trained here for this report (FSDD, n = {a.hidden}, one layer, "
                    f"{a.epochs} epochs, Adam 3e-3 cosine, seed 0; not the paper-table runs): "
                    f"{', '.join(trained)}.")
    if reused:
        note.append(f"Reused checkpoints from {a.models}: {', '.join(reused)} (the FSDD runs "
                    f"`python benchmarks/paper_table.py --workdir DIR` leaves in DIR: n = 64, "
                    f"30 epochs, the paper table's budget).")
    report = {"date": _dt.date.today().isoformat(),
              "machine": describe(machine()),
              "command": "python benchmarks/quantization.py" + (f" {' '.join(argv or sys.argv[1:])}"
                                                                if (argv or sys.argv[1:]) else ""),
              "models_note": " ".join(note), "calibration_samples": a.calibration_samples,
              "test_n": len(Q.model_data(checkpoint.read(models[0][1]))["test"]),
              "models": rows}
    report["acceptance_lines"] = acceptance(report)
    _finish(a, report)
    print("\n".join(report["acceptance_lines"]))


def _finish(a, report: dict) -> None:
    """The JSON to --out (--update: the tracked file) and the section to BENCHMARKS.md with
    --update; else the section printed."""
    if a.out is not None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {a.out}")
    if a.markdown:
        write_section(markdown(report))
    else:
        print(markdown(report))
        if a.out is None:
            print(nothing_written(RESULTS))


if __name__ == "__main__":
    main()
