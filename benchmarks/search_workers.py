"""The same search run serially and on 2 local worker processes: wall time ratio (target <= 0.6).

    python benchmarks/search_workers.py            # prints the times
    python benchmarks/search_workers.py --update   # and writes results/search_workers.json + BENCHMARKS.md

A fixed grid (every candidate once: Optuna's brute-force sampler, since the space is no larger
than the trial count; no pruning), so both runs train and measure exactly the same trials, size
model included, each in a fresh folder. The machine's load average is recorded before and after
each run: on a shared machine, the other jobs' load decides how much a second process can gain.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slimedge._report import (  # noqa: E402
    add_output_arguments,
    command_line,
    machine,
    nothing_written,
    settle_outputs,
    update_markdown_section,
)

RESULTS_DIR = ROOT / "benchmarks" / "results"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
HEADING = "## Search: 2 local workers against serial"


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden-sizes", default="8,16,24,32")
    p.add_argument("--variants", default="LSTM6")
    p.add_argument("--limit", type=int, default=300, help="FSDD MFCC sequences per split")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--target", default="cortex-m4")
    add_output_arguments(p, RESULTS_DIR / "search_workers.json")
    args = p.parse_args(argv)
    settle_outputs(args, RESULTS_DIR / "search_workers.json")
    return args


def one(args, workers: int) -> dict:
    from slimedge.cli.commands_search import _space
    from slimedge.search import Budget, run, settings_of

    space = _space(None, args.variants, args.hidden_sizes, "1", [], "int8", "onnx", args.target)
    n = len(args.hidden_sizes.split(",")) * len(args.variants.split(","))
    base = {"data": "fsdd", "limit": args.limit, "epochs": args.epochs, "batch_size": 32,
            "lr": 3e-3, "schedule": "cosine", "seed": 0, "split_seed": 0}
    out = Path(tempfile.mkdtemp(prefix=f"search_workers{workers}_"))
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    s = run(out, settings_of(space, Budget(args.target, {}, 25.0), base, n, prune=False),
            workers=workers)
    wall = time.perf_counter() - t0
    import optuna

    from slimedge.search.study import storage_url

    done = optuna.load_study(study_name="search", storage=storage_url(None, out)).get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return {"workers": workers, "wall_seconds": wall, "trained": s["progress"]["trained"],
            "trials": sorted(t.user_attrs["label"] for t in done),
            "loadavg_before": load0, "loadavg_after": os.getloadavg()[0]}


def markdown(r: dict) -> str:
    a, b = r["runs"]
    return "\n".join([
        HEADING, "",
        f"`{r['command']}` — {r['date']}, {r['machine'].get('cpu', '')} "
        f"({r['machine'].get('cores')} cores shared with other jobs).", "",
        f"The same {a['trained']} trials (a fixed grid: {r['grid']}), size model included, run "
        f"serially and on 2 local worker processes:", "",
        "| workers | wall s | load average before → after |", "|---:|---:|---|",
        *(f"| {x['workers']} | {x['wall_seconds']:.1f} | {x['loadavg_before']:.1f} → "
          f"{x['loadavg_after']:.1f} |" for x in (a, b)), "",
        f"2 workers / serial = {r['ratio']:.2f} (target ≤ 0.6: "
        f"{'met' if r['ratio'] <= 0.6 else 'missed'}). On 2 cores a second worker gains only the "
        f"CPU the other jobs leave: with a load average above the core count, each process gets "
        f"a share of a core, not a core; and each call of the local executor starts a fresh "
        f"process (spawn, imports, data loading: seconds each under this load), the serial run "
        f"none.", ""])


def main(argv=None) -> None:
    args = parse(argv)
    grid = (f"{args.variants} n ∈ {{{args.hidden_sizes}}}, int8, FSDD MFCC {args.limit} "
            f"sequences, {args.epochs} epochs, measured on the {args.target}")
    runs = [one(args, 1), one(args, 2)]
    if runs[0]["trials"] != runs[1]["trials"]:
        raise RuntimeError(f"the two runs trained different trials: {runs}")
    result = {"machine": machine(), "date": _dt.date.today().isoformat(),
              "command": command_line(__file__, sys.argv[1:], ROOT), "grid": grid, "runs": runs,
              "ratio": runs[1]["wall_seconds"] / runs[0]["wall_seconds"]}
    text = markdown(result)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown:
        update_markdown_section(BENCHMARKS_MD, HEADING, text)
    if not args.out and not args.markdown:
        print(nothing_written(RESULTS_DIR / "search_workers.json"))


if __name__ == "__main__":
    main()
