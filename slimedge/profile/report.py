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
    from .._io import write_text

    return write_text(path, json.dumps(to_json(report), indent=2) + "\n")  # atomic


CSV_COLUMNS = ["label", "name", "role", "backend", "device", "format", "quantize", "size_bytes",
               "source_bytes", "params", "macs_per_step", "ops", "load_ms", "first_step_us",
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
        row.update(size_bytes=r.get("size_bytes"), source_bytes=r.get("source_bytes"),
                   params=r.get("params"),
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


def csv_cell(v):
    """A CSV cell a spreadsheet will not run: text starting with = + - @ (or a tab or carriage
    return) gets a leading apostrophe, control characters become spaces; numbers stay numbers."""
    if v is None:
        return ""
    if isinstance(v, (int, float)):
        return v
    text = "".join(" " if (ord(ch) < 32 or ord(ch) == 127) and ch != "\t" else ch for ch in str(v))
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_csv(report: dict, path: str | os.PathLike) -> Path:
    import io

    from .._io import write_text

    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
    w.writeheader()
    for row in rows(report):
        w.writerow({k: csv_cell(v) for k, v in row.items()})
    return write_text(path, buf.getvalue())  # atomic


# ---- tables ------------------------------------------------------------------------------------
def _fmt(v, spec: str = ".1f", none: str = "–") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return none
    return format(v, spec)


def _size(b) -> str:
    """A file size in binary units, as everywhere in slimedge's output (KiB, MiB)."""
    if b is None:
        return "–"
    return f"{b / 1024:.1f} KiB" if b < 2**20 else f"{b / 2**20:.2f} MiB"


def _times(x) -> str:
    return "–" if x is None else f"{x:.2f}×"


STYLE = {"model": "bold", "lstm0": "dim", "torch.onnx": "yellow"}
ELLIPSIS = "…"


def middle(text: str, width: int, keep_end: int = 0) -> str:
    """``text`` in at most ``width`` terminal cells, its middle replaced by an ellipsis when it is
    longer: the start and the end stay, where names differ (the backend and quantisation of a
    configuration, the suffixes of a file: ``fsdd_def…dynamic.onnx``). The end keeps 60% of the
    room, or its last ``keep_end`` characters where they fit beside a 3-character start (the part
    that differs from the other names of a column: :func:`names`)."""
    from rich.cells import cell_len

    if cell_len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:max(width, 0)]
    room = width - 1
    tail = max(room - room * 2 // 5, min(keep_end, room - 3))
    end = ""
    for ch in reversed(text):
        if cell_len(ch + end) > tail:
            break
        end = ch + end
    start = ""
    for ch in text:
        if cell_len(start + ch) + cell_len(end) > room:
            break
        start += ch
    return start + ELLIPSIS + end


class Name:
    """A name in a table cell, shown on one line: when the column is narrower than the name, its
    middle gives way (:func:`middle`), never its end. The text is shown as written (no markup)."""

    def __init__(self, text: str, min_width: int = 12, keep_end: int = 0) -> None:
        self.text, self.min_width, self.keep_end = str(text), min_width, keep_end

    def __rich_measure__(self, console, options):
        from rich.cells import cell_len
        from rich.measure import Measurement

        n = cell_len(self.text)
        return Measurement(min(n, self.min_width), n).clamp(max_width=options.max_width)

    def __rich_console__(self, console, options):
        from rich.text import Text

        yield Text(middle(self.text, options.max_width, self.keep_end), no_wrap=True,
                   overflow="crop")

    def __str__(self) -> str:
        return self.text


def names(texts: list[str]) -> list[Name]:
    """The names of a column as :class:`Name` cells that keep, where they must be shortened, what
    follows the start they all share (``an_exp…LSTM6 onnxruntime``, not ``an_exp…onnxruntime``)."""
    import os.path

    texts = [str(t) for t in texts]
    common = len(os.path.commonprefix(texts)) if len(texts) > 1 else 0
    return [Name(t, keep_end=len(t) - common if common else 0) for t in texts]


def _table(title: str, columns: list[str], caption: str | None = None):
    """A table whose first column (the configuration, a :class:`Name`) takes the room the
    numbers leave, and whose numbers never fold."""
    from rich.table import Table

    t = Table(title=title, caption=caption, caption_justify="left", title_justify="left")
    for k, col in enumerate(columns):
        if k == 0:
            t.add_column(col, justify="left", overflow="fold", ratio=1, min_width=12)
        else:
            t.add_column(col, justify="right", no_wrap=True)
    return t


def tables(report: dict, wide: bool = False) -> list:
    """The report as rich Tables: latency, then size and memory (and k streams, when measured).

    By default the columns a comparison needs, which fit 80 columns (the configuration's label
    folds); ``wide`` adds every statistic (p90, mean ± std, min, max, RTF, load, first step, step
    overhead, ...): give it a console as wide as it needs, about 170 columns."""
    s = report["settings"]
    ok = [r for r in report["results"] if r.get("latency_us")]
    lat_cols = (["configuration", "p50", "p90", "p99", "mean ± std", "min", "max", "steps/s",
                 "RTF", "× LSTM0", "× torch.onnx"] if wide else
                ["configuration", "p50", "p99", "steps/s", "× LSTM0", "× torch.onnx"])
    caption = ("× = the baseline's p50 / this p50, measured in the same run (above 1: faster)."
               + (f" RTF = mean step / {s['frame_ms']:g} ms frame period." if wide else ""))
    lat_t = _table(f"Per-step latency (µs), batch 1, {s['threads']} thread(s): {s['steps']} "
                   f"steps after {s['warmup']} warm-up, interleaved in {s['rounds']} rounds",
                   lat_cols, caption)
    from rich.text import Text

    labels = [r["config"]["label"] for r in report["results"]]
    # whole labels (folded) with --wide; else one line each, shortened from the middle
    shown = dict(zip(labels, [Text(x) for x in labels] if wide else names(labels)))
    for r in ok:
        lat, c = r["latency_us"], r["config"]
        l0, tox = r.get("vs_lstm0") or {}, r.get("vs_torch_onnx") or {}
        cells = {"p50": _fmt(lat["p50"]), "p90": _fmt(lat["p90"]), "p99": _fmt(lat["p99"]),
                 "mean ± std": f"{lat['mean']:.1f} ± {lat['std']:.1f}", "min": _fmt(lat["min"]),
                 "max": _fmt(lat["max"], ".0f"), "steps/s": _fmt(r["steps_per_s"], ",.0f"),
                 "RTF": _fmt(r.get("rtf"), ".4f"), "× LSTM0": _times(l0.get("speedup")),
                 "× torch.onnx": _times(tox.get("speedup"))}
        lat_t.add_row(shown[c["label"]], *(cells[k] for k in lat_cols[1:]), style=STYLE.get(c["role"]))
    has_c = any(r.get("source_bytes") is not None for r in report["results"])
    size_cols = (["configuration", "file", *(["C source"] if has_c else []), "size × LSTM0",
                  "size × torch.onnx", "params", "MACs/step", "ops", "load ms", "1st step µs",
                  "step overhead µs", "peak MiB", "model MiB"] if wide else
                 ["configuration", "file", "× LSTM0", "× torch.onnx", "MACs/step", "peak MiB"])
    c_note = ("file = the file's size; for a C export (c) its compiled code + constants, as "
              "flash holds them")
    caption = (f"{c_note}, and C source its source text. size × = this file / the baseline's. "
               "step overhead = Stream.step p50 - the bare backend call's p50. peak = the worker "
               "process's peak RSS (VmHWM); model = RSS added by loading." if wide else
               f"{c_note}. × = this size / the baseline's; peak = the worker process's peak "
               "RSS. --wide: C source, params, ops, load, first step, overhead.")
    size_t = _table("Size, work and memory", size_cols, caption)
    for r in report["results"]:
        c, mem = r["config"], r.get("memory_mb") or {}
        l0, tox = r.get("vs_lstm0") or {}, r.get("vs_torch_onnx") or {}
        if r.get("error"):
            size_t.add_row(shown[c["label"]], _size(r.get("size_bytes")),
                           *["–"] * (len(size_cols) - 2), style="red")
            continue
        cells = {"C source": _size(r.get("source_bytes")),
                 "size × LSTM0": _times(l0.get("size_ratio")),
                 "size × torch.onnx": _times(tox.get("size_ratio")),
                 "params": _fmt(r["params"], ","), "MACs/step": _fmt(r["macs_per_step"], ","),
                 "ops": _fmt(sum((r.get("ops") or {}).values()), "d"),
                 "load ms": _fmt(r["load_ms"]), "1st step µs": _fmt(r["first_step_us"]),
                 "step overhead µs": _fmt(r.get("stream_overhead_us"), ".2f"),
                 "peak MiB": _fmt(mem.get("peak"), ".0f"), "model MiB": _fmt(mem.get("model"), ".1f")}
        cells["× LSTM0"], cells["× torch.onnx"] = cells["size × LSTM0"], cells["size × torch.onnx"]
        cells["file"] = _size(r["size_bytes"])
        size_t.add_row(shown[c["label"]], *(cells[k] for k in size_cols[1:]), style=STYLE.get(c["role"]))
    out = [lat_t, size_t]
    extra = [r for r in ok if r.get("streams")]
    if extra:
        k = s["streams"]
        t = _table(f"{k} streams stepped together (one StreamBatch call per step)",
                   ["configuration", "call p50 µs", "µs per stream-step", "stream-steps/s"])
        for r in extra:
            st = r["streams"][str(k)]
            t.add_row(shown[r["config"]["label"]], _fmt(st["call_us"]["p50"]),
                      _fmt(st["us_per_stream_step"], ".2f"), _fmt(st["stream_steps_per_s"], ",.0f"),
                      style=STYLE.get(r["config"]["role"]))
        out.append(t)
    return out
