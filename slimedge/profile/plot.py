"""The profile as a PNG (matplotlib): latency distributions, and size against latency."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import UsageError

_COLOURS = {"model": "#1f77b4", "lstm0": "#7f7f7f", "torch.onnx": "#d62728"}
_MARKERS = {"onnxruntime": "o", "litert": "s", "torch": "^", "numpy": "D"}
_MORE_MARKERS = "vP*XhpH<>d"  # for backends beyond those, in order of appearance


def _markers(backends) -> dict[str, str]:
    """A marker per backend: the usual ones, then the next free ones for any other."""
    out = {b: m for b, m in _MARKERS.items() if b in backends}
    spare = iter(_MORE_MARKERS)
    for b in backends:
        if b not in out:
            out[b] = next(spare, "o")
    return out


# Where a point's tag may go, in points from the point: nearest first, then further out (with a
# leader line), in eight directions.
_RADII = (5, 16, 30, 46, 64, 86, 110, 140, 175)
_DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1),
               (1, 0.5), (1, -0.5), (-1, 0.5), (-1, -0.5), (0.5, 1), (-0.5, 1), (0.5, -1),
               (-0.5, -1))


def _place_tags(fig, ax, legend, tags: list[tuple[str, tuple[float, float]]]) -> None:
    """Annotate each point of ``ax`` with its tag where the tag's box overlaps no other tag, no
    point's marker and not the legend, and stays inside the axes: the first free place of
    :data:`_RADII` × :data:`_DIRECTIONS` (a leader line from beyond the nearest ring); where
    none is free, the place that overlaps least. Call after the layout is final."""
    fig.canvas.draw()  # the layout, the scales and the legend's place ("best") are now fixed
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    legend.set_loc(tuple(ax.transAxes.inverted().transform(
        legend.get_window_extent(renderer).p0)))  # stays where "best" put it
    pt = fig.dpi / 72.0
    taken = [legend.get_window_extent(renderer)]
    for _, xy in tags:  # each marker (s=60: about 8 points across) is taken
        x, y = ax.transData.transform(xy)
        r = 5 * pt
        taken.append(_bbox(x - r, y - r, x + r, y + r))

    def overlap(box) -> float:
        area = sum(_area(box, t) for t in taken)
        inside = _area(box, frame)
        return area + (box.width * box.height - inside) * 10  # outside the axes: worst

    for tag, xy in tags:
        best = None
        for radius in _RADII:
            for dx, dy in _DIRECTIONS:
                ann = ax.annotate(
                    tag, xy, xytext=(dx * radius, dy * radius), textcoords="offset points",
                    fontsize=6.5, ha="left" if dx > 0 else "right" if dx < 0 else "center",
                    va="bottom" if dy > 0 else "top" if dy < 0 else "center",
                    arrowprops=({"arrowstyle": "-", "color": "0.5", "lw": 0.5}
                                if radius > _RADII[0] else None))
                box = text_extent(ann, renderer)
                cost = overlap(box)
                if best is None or cost < best[0]:
                    if best is not None:
                        best[1].remove()
                    best = (cost, ann, box)
                else:
                    ann.remove()
                if cost == 0:
                    break
            if best[0] == 0:
                break
        taken.append(best[2])


def _bbox(x0: float, y0: float, x1: float, y1: float):
    from matplotlib.transforms import Bbox

    return Bbox([[x0, y0], [x1, y1]])


def text_extent(ann, renderer):
    """An annotation's text box in display units (its leader line left out)."""
    from matplotlib.text import Text

    ann.update_positions(renderer)  # where the offset puts the text now
    return Text.get_window_extent(ann, renderer)


def _area(a, b) -> float:
    """The area two display boxes share."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def plot(report: dict, path: str | os.PathLike) -> Path:
    """A PNG a person can read at a glance: left, each configuration's per-step latency
    distribution (box: p25-p75, line: p50, whiskers: p1-p99); right, each configuration's file
    size and p50 latency, with the baselines in grey (LSTM0) and red (torch.onnx)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    # minor ticks labelled only at 2 and 5 of each decade, so the log axes stay readable
    plain_minor = FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else "")

    res = [r for r in report["results"] if r.get("latency_us")]
    if not res:
        raise UsageError("nothing to plot: no configuration was measured")
    n = len(res)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, max(4.0, 0.42 * n + 1.8)),
                                   gridspec_kw={"width_ratios": [1.25, 1]})
    data = [r["_samples_us"] if "_samples_us" in r else
            np.array([r["latency_us"][k] for k in ("min", "p50", "p90", "p99", "max")])
            for r in res]
    labels = [r["config"]["label"] for r in res]
    pos = np.arange(n)[::-1]
    box = dict(positions=pos, whis=(1, 99), showfliers=False, widths=0.6, patch_artist=True,
               medianprops={"color": "black"})
    try:
        bp = ax1.boxplot(data, orientation="horizontal", **box)  # matplotlib >= 3.10
    except TypeError:
        bp = ax1.boxplot(data, vert=False, **box)
    for patch, r in zip(bp["boxes"], res):
        patch.set_facecolor(_COLOURS.get(r["config"]["role"], "#1f77b4"))
        patch.set_alpha(0.55)
    for y, r in zip(pos, res):
        lat = r["latency_us"]
        ax1.text(lat["p99"], y, f"  {lat['p50']:.1f} µs", va="center", fontsize=8)
    ax1.set_yticks(pos, labels, fontsize=8)
    ax1.set_xscale("log")
    ax1.xaxis.set_major_formatter(plain)
    ax1.xaxis.set_minor_formatter(plain_minor)
    ax1.set_xlabel("per-step latency, µs (log; box p25–p75, line p50, whiskers p1–p99)")
    ax1.set_title("Latency distribution per configuration")
    ax1.grid(axis="x", alpha=0.3, which="both")

    markers = _markers(list(dict.fromkeys(r["config"]["backend"] for r in res)))
    sized = [r for r in res if r.get("size_bytes")]  # a size that could not be measured: no point
    tags = []
    for r in sized:
        c = r["config"]
        ax2.scatter(r["size_bytes"] / 1024, r["latency_us"]["p50"], s=60,
                    marker=markers[c["backend"]],
                    color=_COLOURS.get(c["role"]), alpha=0.8,
                    edgecolors="black" if c["quantize"] != "none" else "none")
        ref = r.get("vs_lstm0") or r.get("vs_torch_onnx")
        tag = c["label"]
        if ref and ref.get("speedup") and ref.get("size_ratio") and c["role"] == "model":
            tag += (f"\n{ref['speedup']:.2f}× faster, {1 / ref['size_ratio']:.1f}× smaller\n"
                    f"than {ref['baseline']}")
        tags.append((tag, (r["size_bytes"] / 1024, r["latency_us"]["p50"])))
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.margins(0.15)  # room around the outer points for their tags
    for axis in (ax2.xaxis, ax2.yaxis):
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(plain_minor)
    ax2.set_xlabel("file size, KiB (log)")  # the unit of every table
    ax2.set_ylabel("p50 latency, µs (log)")
    ax2.set_title("Size and latency against the baselines (lower left is better)")
    ax2.grid(alpha=0.3, which="both")
    handles = [Line2D([], [], marker="o", linestyle="", color=col, label=role)
               for role, col in (("profiled model", _COLOURS["model"]),
                                 ("LSTM0, same path", _COLOURS["lstm0"]),
                                 ("torch.onnx LSTM", _COLOURS["torch.onnx"]))]
    handles += [Line2D([], [], marker=m, linestyle="", color="black", fillstyle="none", label=b)
                for b, m in markers.items()]
    legend = ax2.legend(handles=handles, fontsize=7, loc="best")
    m = report.get("machine", {})
    s = report.get("settings", {})
    fig.suptitle(f"slimedge profile — {m.get('cpu', '')}, {s.get('threads')} thread(s), "
                 f"batch 1, {report.get('date', '')}", fontsize=10)
    fig.tight_layout()
    _place_tags(fig, ax2, legend, tags)
    path = Path(path)
    from .._io import atomic_path

    try:
        with atomic_path(path, suffix=".png") as tmp:  # whole or not at all (a full disk)
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return path
