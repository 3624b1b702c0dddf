"""Reporting: the ratios to the baselines, JSON and CSV files, and the rich tables.

``speedup`` = the baseline's p50 / this p50 (above 1: faster) and ``size_ratio`` = this file /
the baseline's file, both from the same run (:func:`add_ratios`); :func:`write_json` and
:func:`write_csv` write the report, one row per configuration; :func:`tables` shows it.
"""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

from .measure import STAT_KEYS


# ---- ratios ------------------------------------------------------------------------------------
def _ratio(num, den) -> float | None:
    if num is None or den is None or not den:
        return None
    return float(num) / float(den)


def _find(results: list[dict], **want) -> dict | None:
    for r in results:
        if all(r["config"].get(k) == v for k, v in want.items()) and r.get("latency_us"):
            return r
    return None


def add_ratios(results: list[dict]) -> None:
    """Each result's ratios to the baselines measured in the same run (in place).

    ``vs_lstm0``: the LSTM0 of the same group, backend, device and quantisation;
    ``vs_torch_onnx``: torch.onnx's LSTM on onnxruntime, the int8-weight one for quantised
    configurations when it was profiled. ``speedup`` = baseline p50 / this p50; ``size_ratio`` =
    this file's bytes / the baseline's; ``memory_ratio`` = this peak RSS / the baseline's.
    """
    for r in results:
        c = r["config"]
        refs = {
            "vs_lstm0": _find(results, role="lstm0", group=c["group"], backend=c["backend"],
                              device=c["device"], quantize=c["quantize"]),
            "vs_torch_onnx": (_find(results, role="torch.onnx", group=c["group"],
                                    quantize="dynamic" if c["quantize"] != "none" else "none")
                              or _find(results, role="torch.onnx", group=c["group"],
                                       quantize="none")),
        }
        for key, ref in refs.items():
            if ref is None or ref is r or not r.get("latency_us"):
                r[key] = None
                continue
            r[key] = {
                "baseline": ref["config"]["label"],
                "same_backend": ref["config"]["backend"] == c["backend"],
                "speedup": _ratio(ref["latency_us"]["p50"], r["latency_us"]["p50"]),
                "size_ratio": _ratio(r["size_bytes"], ref["size_bytes"]),
                "params_ratio": _ratio(r["params"], ref["params"]),
                "macs_ratio": _ratio(r["macs_per_step"], ref["macs_per_step"]),
                "memory_ratio": _ratio((r.get("memory_mb") or {}).get("peak"),
                                       (ref.get("memory_mb") or {}).get("peak")),
            }


# ---- files -------------------------------------------------------------------------------------
def to_json(report: dict) -> dict:
    """The report without the per-step samples (those are for :func:`plot`)."""
    out = dict(report)
    out["results"] = [{k: v for k, v in r.items() if not k.startswith("_")}
                      for r in report["results"]]
    return out


def write_json(report: dict, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(report), indent=2) + "\n")
    return path


CSV_COLUMNS = ["label", "name", "role", "backend", "device", "format", "quantize", "size_bytes",
               "params", "macs_per_step", "ops", "load_ms", "first_step_us",
               *[f"{k}_us" for k in STAT_KEYS], "count", "steps_per_s", "rtf", "bare_p50_us",
               "stream_overhead_us", "memory_after_imports_mb", "memory_loaded_mb",
               "memory_peak_mb", "speedup_vs_lstm0", "size_ratio_vs_lstm0",
               "speedup_vs_torch_onnx", "size_ratio_vs_torch_onnx", "error"]


def rows(report: dict) -> list[dict]:
    """One flat row per configuration (the CSV's rows)."""
    out = []
    for r in report["results"]:
        c, lat, mem = r["config"], r.get("latency_us") or {}, r.get("memory_mb") or {}
        row = {k: c.get(k) for k in ("label", "name", "role", "backend", "device", "format",
                                     "quantize")}
        row.update(size_bytes=r.get("size_bytes"), params=r.get("params"),
                   macs_per_step=r.get("macs_per_step"),
                   ops=" ".join(f"{k}:{v}" for k, v in (r.get("ops") or {}).items()),
                   load_ms=r.get("load_ms"), first_step_us=r.get("first_step_us"),
                   count=lat.get("count"), steps_per_s=r.get("steps_per_s"), rtf=r.get("rtf"),
                   bare_p50_us=(r.get("bare_us") or {}).get("p50"),
                   stream_overhead_us=r.get("stream_overhead_us"),
                   memory_after_imports_mb=mem.get("after_imports"),
                   memory_loaded_mb=mem.get("loaded"), memory_peak_mb=mem.get("peak"),
                   error=r.get("error"))
        for k in STAT_KEYS:
            row[f"{k}_us"] = lat.get(k)
        for key, name in (("vs_lstm0", "lstm0"), ("vs_torch_onnx", "torch_onnx")):
            ref = r.get(key) or {}
            row[f"speedup_vs_{name}"] = ref.get("speedup")
            row[f"size_ratio_vs_{name}"] = ref.get("size_ratio")
        out.append(row)
    return out


def write_csv(report: dict, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for row in rows(report):
            w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return path


# ---- tables ------------------------------------------------------------------------------------
def _fmt(v, spec: str = ".1f", none: str = "–") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return none
    return format(v, spec)


def _size(b) -> str:
    if b is None:
        return "–"
    return f"{b / 1024:.1f} KB" if b < 2**20 else f"{b / 2**20:.2f} MB"


def _times(x) -> str:
    return "–" if x is None else f"{x:.2f}×"


def tables(report: dict) -> list:
    """The report as rich Tables, side by side per configuration: latency, then size and memory."""
    from rich.table import Table

    s = report["settings"]
    style = {"model": "bold", "lstm0": "dim", "torch.onnx": "yellow"}
    ok = [r for r in report["results"] if r.get("latency_us")]
    lat_t = Table(title=(f"Per-step latency (µs), batch 1, {s['threads']} thread(s): "
                         f"{s['steps']} steps after {s['warmup']} warm-up, interleaved in "
                         f"{s['rounds']} rounds"),
                  caption=("× = the baseline's p50 / this p50, measured in the same run (above 1:"
                           f" faster). RTF = mean step / {s['frame_ms']:g} ms frame period."),
                  caption_justify="left")
    for col in ("configuration", "p50", "p90", "p99", "mean ± std", "min", "max", "steps/s",
                "RTF", "× LSTM0", "× torch.onnx"):
        lat_t.add_column(col, justify="left" if col == "configuration" else "right",
                         no_wrap=col != "configuration")
    for r in ok:
        lat, c = r["latency_us"], r["config"]
        l0, tox = r.get("vs_lstm0") or {}, r.get("vs_torch_onnx") or {}
        lat_t.add_row(c["label"], _fmt(lat["p50"]), _fmt(lat["p90"]), _fmt(lat["p99"]),
                      f"{lat['mean']:.1f} ± {lat['std']:.1f}", _fmt(lat["min"]),
                      _fmt(lat["max"], ".0f"), _fmt(r["steps_per_s"], ",.0f"),
                      _fmt(r.get("rtf"), ".4f"), _times(l0.get("speedup")),
                      _times(tox.get("speedup")), style=style.get(c["role"]))
    size_t = Table(title="Size, work, load and memory",
                   caption=("size × = this file / the baseline's. step overhead = Stream.step p50 "
                            "- the bare backend call's p50. peak = the worker process's peak RSS "
                            "(VmHWM); model = RSS added by loading."), caption_justify="left")
    for col in ("configuration", "file", "size × LSTM0", "size × torch.onnx", "params", "MACs/step",
                "ops", "load ms", "1st step µs", "step overhead µs", "peak MB", "model MB"):
        size_t.add_column(col, justify="left" if col == "configuration" else "right",
                          no_wrap=col != "configuration")
    for r in report["results"]:
        c, mem = r["config"], r.get("memory_mb") or {}
        l0, tox = r.get("vs_lstm0") or {}, r.get("vs_torch_onnx") or {}
        if r.get("error"):
            size_t.add_row(c["label"], _size(r.get("size_bytes")), *["–"] * 10, style="red")
            continue
        size_t.add_row(c["label"], _size(r["size_bytes"]), _times(l0.get("size_ratio")),
                       _times(tox.get("size_ratio")), _fmt(r["params"], ","),
                       _fmt(r["macs_per_step"], ","), _fmt(sum((r.get("ops") or {}).values()), "d"),
                       _fmt(r["load_ms"]), _fmt(r["first_step_us"]),
                       _fmt(r.get("stream_overhead_us"), ".2f"), _fmt(mem.get("peak"), ".0f"),
                       _fmt(mem.get("model"), ".1f"), style=style.get(c["role"]))
    out = [lat_t, size_t]
    extra = [r for r in ok if r.get("streams")]
    if extra:
        k = s["streams"]
        t = Table(title=f"{k} streams stepped together (one StreamBatch call per step)")
        for col in ("configuration", "call p50 µs", "µs per stream-step", "stream-steps/s"):
            t.add_column(col, justify="left" if col == "configuration" else "right")
        for r in extra:
            st = r["streams"][str(k)]
            t.add_row(r["config"]["label"], _fmt(st["call_us"]["p50"]),
                      _fmt(st["us_per_stream_step"], ".2f"), _fmt(st["stream_steps_per_s"], ",.0f"),
                      style=style.get(r["config"]["role"]))
        out.append(t)
    return out
