"""The same search run serially and on 2 local worker processes: wall time ratio (target <= 0.6).

    python benchmarks/search_workers.py            # prints the times
    python benchmarks/search_workers.py --update   # and writes results/search_workers.json + BENCHMARKS.md

Each grid is fixed (every candidate once: Optuna's brute-force sampler, since the space is no
larger than the trial count; no pruning), so both runs train and measure exactly the same trials,
size model included, each in a fresh folder. Each run is the command a user runs, ``slimedge
search run``, timed from its start to its exit. Two grids (:data:`GRIDS`): ``small``, trials of
well under a second, where what every process pays once decides; ``full``, the whole FSDD
training split, trials of several seconds. The machine's load average is recorded before and
after each run: on a shared machine, the other jobs' load decides how much a second process gains.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import shutil
import subprocess
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
    publish,
    settle_outputs,
)

RESULTS_DIR = ROOT / "benchmarks" / "results"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
HEADING = "## Search: 2 local workers against serial"
# name -> hidden sizes, FSDD MFCC sequences per split (None: all), epochs per trial, variants
# (None: --variants); "wide" is a search of 40 candidates, the size the 60-minute target
# names, over five catalogue variants
GRIDS = {"small": ("8,16,24,32", 300, 3, None),
         "full": ("8,16,24,32,40,48,56,64", None, 40, None),
         "wide": ("8,16,24,32,40,48,56,64", None, 40, "LSTM6,LSTM_C6,LSTM10,LSTM3,LSTM4a")}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--grids", default=",".join(GRIDS), help=f"of {', '.join(GRIDS)}")
    p.add_argument("--variants", default="LSTM6")
    p.add_argument("--target", default="cortex-m4")
    p.add_argument("--table-only", action="store_true",
                   help="no runs: BENCHMARKS.md's section from the results JSON (--out or the "
                        "tracked one)")
    p.add_argument("--once-per-process", action="store_true", help=argparse.SUPPRESS)
    add_output_arguments(p, RESULTS_DIR / "search_workers.json")
    args = p.parse_args(argv)
    args.grids = args.grids.split(",")
    if not set(args.grids) <= set(GRIDS):
        p.error(f"--grids: of {', '.join(GRIDS)}, got {','.join(args.grids)}")
    settle_outputs(args, RESULTS_DIR / "search_workers.json")
    return args


def one(args, grid: str, workers: int) -> dict:
    """``slimedge search run`` with ``workers`` workers, as a user runs it (its own process:
    imports, the size model, the trials, the report, the exits), timed from the outside; the
    study's trial times split the wall time into before the first trial, the trials, and after."""
    import optuna

    from slimedge.search.study import storage_url

    sizes, limit, epochs, names = GRIDS[grid]
    names = names or args.variants
    out = Path(tempfile.mkdtemp(prefix=f"search_workers{workers}_")) / "s"
    n = len(sizes.split(",")) * len(names.split(","))
    command = [sys.executable, "-m", "slimedge", "search", "run", str(out), "--target",
               args.target, "--variants", names, "--hidden-sizes", sizes,
               "--layers", "1", "--quantize", "int8", "--frame-ms", "25", "--data", "fsdd",
               *(["--limit", str(limit)] if limit else []), "--epochs", str(epochs),
               "--trials", str(n), "--no-prune", "--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    load0 = os.getloadavg()[0]
    t0 = time.time()
    r = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.time() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{r.stderr[-3000:]}")
    trials = optuna.load_study(study_name="search", storage=storage_url(None, out)).get_trials(
        deepcopy=False)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    first = min(t.datetime_start.timestamp() for t in trials) - t0
    last = max(t.datetime_complete.timestamp() for t in trials) - t0
    shutil.rmtree(out.parent, ignore_errors=True)
    return {"workers": workers, "wall_seconds": wall, "trained": len(done),
            "before_first_trial_seconds": first, "trials_seconds": last - first,
            "after_last_trial_seconds": wall - last,
            "trial_seconds": sorted(t.duration.total_seconds() for t in done),
            "trials": sorted(t.user_attrs["label"] for t in done),
            "loadavg_before": load0, "loadavg_after": os.getloadavg()[0]}


def measure(args, grid: str) -> dict:
    sizes, limit, epochs, names = GRIDS[grid]
    runs = [one(args, grid, 1), one(args, grid, 2)]
    if runs[0]["trials"] != runs[1]["trials"]:
        raise RuntimeError(f"the two runs trained different trials: {runs}")
    return {"name": grid, "grid": f"{names or args.variants} n ∈ {{{sizes}}}, int8, FSDD MFCC "
                                  f"{f'{limit} sequences per split' if limit else 'all of it'}, "
                                  f"{epochs} epochs, measured on the {args.target}",
            "runs": runs, "ratio": runs[1]["wall_seconds"] / runs[0]["wall_seconds"]}


def markdown(r: dict) -> str:
    lines = [
        HEADING, "",
        f"`{r['command']}` — {r['date']}, {r['machine'].get('cpu', '')} "
        f"({r['machine'].get('cores')} cores shared with other jobs).", "",
        "The same trials (a fixed grid), size model included, run by `slimedge search run` "
        "serially (`--workers 1`: in the command's process) and on 2 local worker processes "
        "(`--workers 2`), each timed as a user waits for it: from the command's start to its "
        "exit. Before the first trial: imports, process starts and the size model's "
        "calibration exports; after the last: the report and the processes' exits.", "",
        "| grid | workers | wall s | before the first trial s | trials s | after the last s | "
        "each trial s | load average before → after |",
        "|---|---:|---:|---:|---:|---:|---|---|"]
    for g in r["grids"]:
        lines += [f"| {g['name']} | {x['workers']} | {x['wall_seconds']:.1f} | "
                  f"{x['before_first_trial_seconds']:.1f} | {x['trials_seconds']:.1f} | "
                  f"{x['after_last_trial_seconds']:.1f} | "
                  f"{', '.join(f'{t:.1f}' for t in x['trial_seconds'])} | "
                  f"{x['loadavg_before']:.1f} → {x['loadavg_after']:.1f} |" for x in g["runs"]]
    lines += [""]
    for g in r["grids"]:
        lines += [f"- **{g['name']}** ({g['grid']}): 2 workers / serial = {g['ratio']:.2f} "
                  f"(target ≤ 0.6: {'met' if g['ratio'] <= 0.6 else 'missed'})."]
    loads = [x[k] for g in r["grids"] for x in g["runs"] for k in ("loadavg_before",
                                                                    "loadavg_after")]
    cores = r["machine"].get("cores") or 1
    if max(loads) >= 1:
        lines += ["", f"The machine's load average was {min(loads):.1f} to {max(loads):.1f} on "
                      f"{cores} cores (a one-minute average: it carries the previous run's own "
                      f"processes as well as other jobs'). Where other jobs run, a second worker "
                      f"gains only the share of the cores they leave; the ratio varies from run "
                      f"to run with it."]
    lines += ["", once_per_process(r), ""]
    return "\n".join(lines)


def once_per_process(r: dict) -> str:
    f = r["once_per_process"]
    return (f"What a process pays once, measured in a fresh one (the small grid's candidates): "
            f"importing torch and the search {f['import_seconds']:.1f} s; the first size-model "
            f"export {f['first_export_seconds']:.1f} s against {f['next_export_seconds']:.1f} s "
            f"for the next (the first full-integer C export computes the exhaustive error bound "
            f"of its fixed-point tanh and sigmoid); the first trial {f['first_trial_seconds']:.1f} "
            f"s against {f['next_trial_seconds']:.1f} s for the next (numba compiles the fused "
            f"loop's kernels). Each worker process pays these once, as the serial command does, "
            f"and the two pay them at the same time: the second core gains only on the trials "
            f"themselves and the size model's exports. With trials of well under a second "
            f"(small) those costs are most of the wall time; with trials of seconds (full) the "
            f"trials are.")


def _once_per_process_child() -> None:
    """Run in a fresh process (``--once-per-process``): prints the JSON :func:`once_per_process`
    reads."""
    import json

    t = time.perf_counter()
    import torch  # noqa: F401

    from slimedge.cli.commands_search import _space
    from slimedge.search import Budget, runner
    from slimedge.search import trial as trial_mod
    out = {"import_seconds": time.perf_counter() - t}
    sizes, limit, epochs, _ = GRIDS["small"]
    cands = runner.calibration_candidates(
        _space(None, "LSTM6", sizes, "1", [], "int8", "onnx", "cortex-m4"))
    base = {"data": "fsdd", "limit": limit, "epochs": epochs, "batch_size": 32, "lr": 3e-3,
            "schedule": "cosine", "seed": 0, "split_seed": 0}
    budget = Budget("cortex-m4", {}, 25.0)
    work = Path(tempfile.mkdtemp(prefix="search_workers_once_"))
    splits = trial_mod.candidate_splits(cands[0], base)
    for key, (k, c) in zip(("first_export_seconds", "next_export_seconds"), enumerate(cands)):
        t = time.perf_counter()
        trial_mod.calibration_point(c, base, budget, splits, work / f"c{k}")
        out[key] = time.perf_counter() - t
    for key, (k, c) in zip(("first_trial_seconds", "next_trial_seconds"), enumerate(cands)):
        t = time.perf_counter()
        trial_mod.run_candidate(c, base, budget, splits, work / f"t{k}")
        out[key] = time.perf_counter() - t
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))


def measure_once_per_process() -> dict:
    import json

    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, __file__, "--once-per-process"], env=env,
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    args = parse(argv)
    if args.once_per_process:
        return _once_per_process_child()
    if args.table_only:
        publish(args, None, RESULTS_DIR / "search_workers.json", BENCHMARKS_MD, HEADING, markdown)
        return
    result = {"machine": machine(), "date": _dt.date.today().isoformat(),
              "command": command_line(__file__, sys.argv[1:] if argv is None else argv, ROOT),
              "grids": [measure(args, g) for g in args.grids],
              "once_per_process": measure_once_per_process()}
    print(markdown(result))
    publish(args, result, RESULTS_DIR / "search_workers.json", BENCHMARKS_MD, HEADING, markdown)


if __name__ == "__main__":
    main()
