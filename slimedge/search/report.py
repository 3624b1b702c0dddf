"""The search's results: the front as a table, JSON, CSV and a plot; every trial as CSV.

Files (in the search's folder, each written to a temporary file and renamed):
``front.json`` (the summary: settings, counts, the front, the size model's fits), ``front.csv``
(one row per front model), ``trials.csv`` (every trial: its state, outcome, parameters and
values) and ``front.png`` (validation accuracy against each
budget metric, the front marked).
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from .. import _io
from .budget import UNITS

HEADS = {"val_accuracy": "val acc", "flash": "flash B", "ram": "RAM B",
         "cycles_per_second": "cycles/s", "latency_us": "µs/step"}


def _fmt(metric: str, v) -> str:
    if v is None:
        return "–"
    return f"{v:.4f}" if metric == "val_accuracy" else f"{v:,.0f}" if v >= 100 else f"{v:,.2f}"


def table(summary: dict):
    from rich.table import Table
    from rich.text import Text

    s = summary["settings"]
    b = s["budget"]
    limits = ", ".join(f"{k} ≤ {v:,.0f} {UNITS[k]}" for k, v in sorted(b["limits"].items()))
    p = summary["progress"]
    t = Table(title=f"Pareto front on {b['target']}" + (f" ({limits})" if limits else ""),
              caption=f"{p['trained']} trained ({p['pruned_at_epoch']} pruned early, "
                      f"{p['error']} failed), {p['rejected']} rejected before training by the "
                      f"size model, {p['duplicate_of']} repeats skipped; scored on the validation "
                      f"split of {s['base']['data']}", caption_justify="left")
    t.add_column("trial", justify="right")
    t.add_column("model")
    for m in summary["objectives"]:
        t.add_column(HEADS[m], justify="right")
    for r in summary["front"]:
        t.add_row(str(r["trial"]), Text(str(r["label"])),
                  *(_fmt(m, r[m]) for m in summary["objectives"]))
    return t


def _csv(summary: dict) -> str:
    buf = io.StringIO()
    cols = ["trial", "label", *summary["objectives"], "checkpoint", "export", "host"]
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in summary["front"]:
        w.writerow(r)
    return buf.getvalue()


def trials_csv(summary: dict, study) -> str:
    trials = study.get_trials(deepcopy=False)
    params = list(dict.fromkeys(k for t in trials for k in t.params))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["trial", "state", "outcome", "label", *params, *summary["objectives"],
                "retry_of"])
    for t in trials:
        a = t.user_attrs
        outcome = next((f"{k}: {a[k]}" for k in ("rejected", "pruned_at_epoch", "duplicate_of",
                                                  "error") if k in a), "")
        w.writerow([t.number, t.state.name, outcome, a.get("label", ""),
                    *(t.params.get(k, "") for k in params),
                    *(t.values or [""] * len(summary["objectives"])),
                    t.system_attrs.get("failed_trial", "")])
    return buf.getvalue()


def plot(summary: dict, study, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    metrics = summary["objectives"][1:]
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    on_front = {r["trial"] for r in summary["front"]}
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    for ax, (k, m) in zip(axes[0], enumerate(metrics, 1)):
        for t in done:
            front_ = t.number in on_front
            feasible = all(v <= 0 for v in t.user_attrs.get("violation", [0.0]))
            ax.scatter(t.values[k], t.values[0], s=36 if front_ else 14,
                       c="C3" if front_ else ("C0" if feasible else "0.7"),
                       marker="o" if feasible else "x", zorder=3 if front_ else 2)
        limit = summary["settings"]["budget"]["limits"].get(m)
        if limit:
            ax.axvline(limit, color="0.4", ls="--", lw=1)
        ax.set_xlabel(f"{m} ({UNITS[m]})")
        ax.set_ylabel("validation accuracy")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{summary['study']}: red = Pareto front, grey x = over budget", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    _io.write_bytes(path, buf.getvalue())


def write(summary: dict, study, out: Path) -> dict[str, Path]:
    out = Path(out)
    paths = {"json": out / "front.json", "csv": out / "front.csv", "trials": out / "trials.csv",
             "plot": out / "front.png"}
    _io.write_text(paths["json"], json.dumps(summary, indent=2, default=str) + "\n")
    _io.write_text(paths["csv"], _csv(summary))
    _io.write_text(paths["trials"], trials_csv(summary, study))
    plot(summary, study, paths["plot"])
    return paths


__all__ = ["table", "write", "plot"]
