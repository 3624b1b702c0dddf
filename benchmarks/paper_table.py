"""The papers' comparison: every SLIM variant and LSTM0, one training budget, two tasks.

    python benchmarks/paper_table.py                      # the full table (see BENCHMARKS.md)
    python benchmarks/paper_table.py --table-only --update  # rewrite BENCHMARKS.md from the JSON
    python benchmarks/paper_table.py --tasks fsdd --variants LSTM0,LSTM6 --fsdd-epochs 2  # a taste
    python benchmarks/paper_table.py --tasks fsdd --seeds 0,1,2 --patience 10   # to convergence
    python benchmarks/paper_table.py --patience 5 --table-only --merge a.json --merge b.json
                                                          # runs made in parts, as one table
    python benchmarks/paper_table.py --tasks mnist-pixels --variants LSTM_C6 --patience 3 \
        --seeds 0,1,2 --constant f=0.99 --workdir px   # a fixed gate set for the run; the
                                                          # runs in --workdir taken or continued

With ``--patience P`` every run trains at a constant learning rate until P epochs pass without a
better validation accuracy (or ``--max-epochs``), once per seed of ``--seeds``; the table then
gives each variant's test accuracy as mean ± standard deviation over the seeds and whether it lies
within 2 points of LSTM0's mean (``benchmarks/results/paper_table_converged.json``, section
"## Paper comparison to convergence").

Each run trains with :func:`slimedge.train.train` (Adam, gradient clipping at 1, the same seed and
settings for every variant), keeps the epoch with the best validation accuracy and reports its test
accuracy, the parameter count and the mean wall time of one training epoch. Results go to
``benchmarks/results/paper_table.json`` after every run (so a partial table survives) and, at the
end, to the "## Paper comparison" section of ``BENCHMARKS.md``.
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

RESULTS = ROOT / "benchmarks" / "results" / "paper_table.json"
RESULTS_CONVERGED = ROOT / "benchmarks" / "results" / "paper_table_converged.json"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
SECTION = "## Paper comparison"
SECTION_CONVERGED = "## Paper comparison to convergence"


def tasks(args) -> dict[str, dict]:
    return {
        "mnist-rows": dict(data="mnist-rows", hidden_size=100, epochs=args.mnist_epochs,
                           batch_size=128, lr=args.lr, schedule="cosine", limit=args.mnist_limit),
        "fsdd": dict(data="fsdd", hidden_size=args.fsdd_hidden, epochs=args.fsdd_epochs,
                     batch_size=32, lr=args.lr, schedule="cosine", limit=None),
        # 784 steps per image: a seeded, stratified subset of every split (--pixels-limit)
        "mnist-pixels": dict(data="mnist-pixels", hidden_size=100, epochs=args.mnist_epochs,
                             batch_size=args.pixels_batch_size, lr=args.pixels_lr or args.lr,
                             schedule="cosine", limit=args.pixels_limit,
                             **({"forget_bias": args.pixels_forget_bias}
                                if args.pixels_forget_bias is not None else {})),
    }


def _command() -> str:
    """The command a reader can run (less --workdir and --out: scratch paths)."""
    return command_line(__file__, sys.argv[1:], ROOT)


def _train_cell(task: str, settings: dict, name: str, seed: int, threads: int, path: str) -> dict:
    """One cell of the grid: ``name`` trained on ``task`` (in whichever process or Ray worker
    the executor gives it; the data are loaded there)."""
    import torch

    from slimedge import variants
    from slimedge.search.trial import load_splits
    from slimedge.train import TrainConfig, train

    torch.set_num_threads(threads)
    splits = load_splits(settings["data"], 0, settings["limit"])
    cfg = TrainConfig(variant=name, seed=seed, threads=threads, **settings)
    r = train(cfg, path, device="cpu", quiet=True, progress=False, splits=splits,
              overwrite=True)  # its scratch folder
    return {"variant": name, "params": r.log["model"]["params"],
            "lstm_params": variants.get(name).num_params(splits.input_size,
                                                         settings["hidden_size"]),
            "test_accuracy": r.test["accuracy"], "best_val_accuracy": r.best["val_accuracy"],
            "best_epoch": r.best["epoch"], "epochs_run": len(r.history),
            "train_seconds_per_epoch": r.log["train_seconds_per_epoch"],
            "final_train_loss": r.history[-1]["train_loss"], "diverged": r.diverged}


def run(args) -> dict:
    """The grid (task x variant), each cell trained once; the cells run on the search's executor
    (:func:`slimedge.search.executor.map_calls`: ``--workers`` local processes, or a Ray cluster
    with ``--backend ray --address``), so the results are written once every cell is done."""
    from slimedge import data, variants
    from slimedge.search.executor import map_calls
    from slimedge.train import TrainConfig

    names = [variants.canonical_name(v) for v in args.variants.split(",")] if args.variants \
        else list(variants.VARIANTS)
    result = {"machine": machine(), "date": _dt.date.today().isoformat(),
              "command": _command(), "workers": args.workers, "backend": args.backend,
              "threads": args.threads, "seed": args.seed, "tasks": {}}
    if args.keep and args.source.exists():  # start from the tasks already measured
        old = json.loads(args.source.read_text())
        result["tasks"].update(old.get("tasks", {}))
        result["commands"] = _commands(old) + [result["command"]]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="paper_table_"))
    earlier = _earlier_runs(args.reuse)
    cells, rows = [], {}
    for task in args.tasks.split(","):
        settings = tasks(args)[task]
        splits = data.load(settings["data"], limit=settings["limit"])
        result["tasks"][task] = {"settings": settings, "data": splits.summary(), "runs": []}
        for name in names:
            cfg = TrainConfig(variant=name, seed=args.seed, threads=args.threads,
                              **{k: v for k, v in settings.items()})
            key = _config_key(cfg.to_dict())
            if key in earlier:  # the same deterministic run, already done (e.g. by zoo.build)
                r, source = earlier[key]
                rows[task, name] = {
                    "variant": name, "params": r.log["model"]["params"],
                    "lstm_params": variants.get(name).num_params(splits.input_size,
                                                                 settings["hidden_size"]),
                    "test_accuracy": r.test["accuracy"],
                    "best_val_accuracy": r.best["val_accuracy"], "best_epoch": r.best["epoch"],
                    "epochs_run": len(r.history),
                    "train_seconds_per_epoch": r.log["train_seconds_per_epoch"],
                    "final_train_loss": r.history[-1]["train_loss"], "diverged": r.diverged,
                    "reused_from": source}
            else:
                cells.append((task, settings, name, args.seed, args.threads,
                              str(workdir / f"{task}_{name}.safetensors")))
    t0 = time.perf_counter()
    for cell, row in zip(cells, map_calls(_train_cell, cells, backend=args.backend,
                                          workers=args.workers, address=args.address)):
        rows[cell[0], cell[2]] = row
    result["grid_wall_seconds"] = time.perf_counter() - t0
    for task in args.tasks.split(","):
        for name in names:
            row = rows[task, name]
            result["tasks"][task]["runs"].append(row)
            print(f"{task:11s} {name:8s} params {row['params']:7,d}  test acc "
                  f"{row['test_accuracy']:.4f}  val {row['best_val_accuracy']:.4f}  "
                  f"{row['train_seconds_per_epoch']:.1f} s/epoch", flush=True)
    save(result, args.out)
    return result


class _Stop(Exception):
    """Raised from train()'s epoch callback: patience ran out."""


def _since_best(epochs: list[dict]) -> int:
    """Epochs since the best validation accuracy so far (the first epoch counts as a best)."""
    return len(epochs) - max(k + 1 for k, r in enumerate(epochs) if r["best"] or k == 0)


def _stops_at(epochs: list[dict], patience: int, cap: int) -> int | None:
    """After how many of these epochs a run with this patience and cap stops (None: not yet)."""
    return next((j for j in range(1, len(epochs) + 1)
                 if _since_best(epochs[:j]) >= patience or j >= cap), None)


def _recorded(path: Path, cfg) -> list[dict] | None:
    """The epochs of the run at ``path`` (``--workdir``) where its training state and log agree
    and its config is ``cfg``'s but for the cap of epochs, else None."""
    from slimedge import checkpoint
    from slimedge.train import side_paths

    _, state_path, log_path = side_paths(path)
    if not (state_path.is_file() and log_path.is_file()):
        return None
    state = checkpoint.read(state_path).config.get("info", {}).get("train_state")
    log = json.loads(log_path.read_text())
    if not state or state["history"] != log.get("epochs") or \
            _config_key({**state["config"], "epochs": 1}) != _config_key({**cfg.to_dict(), "epochs": 1}):
        return None
    return state["history"]


def _config_key(config: dict) -> str:
    """A run's training config as TrainConfig reads it (a setting added since a log was written
    takes its default), for comparing runs."""
    from slimedge.train import TrainConfig

    return json.dumps(TrainConfig.from_dict(config).to_dict(), sort_keys=True)


def converge(args) -> dict:
    """Every variant to convergence (early stopping on validation accuracy), once per seed."""
    import numpy as np
    import torch

    from slimedge import checkpoint, data, variants
    from slimedge.cli.commands_train import _parse_constants
    from slimedge.train import TrainConfig, evaluate, side_paths, train

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(args.flush_denormal)
    names = [variants.canonical_name(v) for v in args.variants.split(",")] if args.variants \
        else list(variants.VARIANTS)
    seeds = [int(s) for s in args.seeds.split(",")]
    result = {"machine": machine(), "date": _dt.date.today().isoformat(), "command": _command(),
              "threads": args.threads, "seeds": seeds, "patience": args.patience,
              "max_epochs": args.max_epochs, "tasks": {}}
    # the tasks and variants already in --out stay (runs made in parts build one table)
    earlier = json.loads(args.source.read_text()) if args.source.exists() else None
    constants = _parse_constants(args.constant)
    for name in names:  # every variant has these fixed gates: refused before any training
        try:
            TrainConfig(variant=name, constants=constants)
        except ValueError as e:
            raise SystemExit(f"--constant: {e}") from None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="paper_converged_"))
    for task in args.tasks.split(","):
        settings = {**tasks(args)[task], "schedule": "constant", "epochs": args.max_epochs}
        if earlier and task in earlier["tasks"]:  # before any training
            _same_settings(task, earlier["tasks"][task]["settings"], settings)
        splits = data.load(settings["data"], limit=settings["limit"])
        entry = {"settings": settings, "data": splits.summary(), "variants": [],
                 "patience": args.patience, "seeds": seeds, "command": _command(),
                 "flush_denormal": args.flush_denormal}
        result["tasks"][task] = entry
        # a row with its own gate constants is named by them: "LSTM6 f=0.96"
        suffix = "".join(f" {g}={v!r}" for g, v in constants.items())
        for name in names:
            runs = []
            label = name + suffix
            for seed in seeds:
                cfg = TrainConfig(variant=name, seed=seed, threads=args.threads,
                                  constants=constants, **settings)
                path = workdir / f"{task}_{label.replace(' ', '_')}_s{seed}.safetensors"
                log_path = side_paths(path)[2]
                # this run's epochs from an earlier call: finished under this patience and cap,
                # taken as they are; not yet, continued; else (none, or past where this
                # patience stops) trained from the start
                done = _recorded(path, cfg)
                stop = _stops_at(done, args.patience, args.max_epochs) if done else None
                if done and stop == len(done):
                    stopped = _since_best(done) >= args.patience
                else:
                    resume = bool(done) and stop is None
                    seen = list(done) if resume else []

                    def on_epoch(row, seen=seen):
                        seen.append(row)
                        if _since_best(seen) >= args.patience:
                            raise _Stop

                    try:
                        train(cfg, path, resume=resume, overwrite=not resume, device="cpu",
                              quiet=True, progress=False, splits=splits, on_epoch=on_epoch)
                        stopped = False
                    except _Stop:
                        stopped = True
                log = json.loads(log_path.read_text())
                test = evaluate(checkpoint.load(path), splits.test)
                runs.append({"seed": seed, "test_accuracy": test.accuracy,
                             "best_val_accuracy": log["best"]["val_accuracy"],
                             "best_epoch": log["best"]["epoch"], "epochs_run": len(log["epochs"]),
                             "early_stopped": stopped,
                             "train_seconds_per_epoch": float(np.mean(
                                 [r["train_seconds"] for r in log["epochs"]]))})
                print(f"{task:11s} {label:8s} seed {seed}  test acc {test.accuracy:.4f}  best epoch "
                      f"{runs[-1]['best_epoch']}/{runs[-1]['epochs_run']}", flush=True)
            entry["variants"].append(_summarise({
                "variant": label, **({"constants": constants} if constants else {}),
                "params": variants.get(name).num_params(
                    splits.input_size, settings["hidden_size"]), "runs": runs}))
            save(merge(json.loads(json.dumps(earlier)), result) if earlier else result, args.out)
    return result


def _commands(d: dict, default: str | None = None) -> list[str]:
    """A result's or task's commands: its ``commands``, or its one ``command`` (files written
    before the list was kept), or ``default`` where it has neither."""
    return d.get("commands", [d.get("command", default)])


def _summarise(row: dict) -> dict:
    """A variant's row: mean and sample standard deviation of its runs' test accuracy."""
    import numpy as np

    acc = np.array([x["test_accuracy"] for x in row["runs"]])
    return {**row, "test_accuracy_mean": float(acc.mean()),
            "test_accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0}


def _same_settings(task: str, a: dict, b: dict) -> None:
    """One table holds one task's runs under one set of settings."""
    differ = sorted(k for k in {*a, *b} if a.get(k) != b.get(k))
    if differ:
        raise SystemExit(f"{task}: the results to merge were trained with other settings "
                         f"({', '.join(differ)}): write them to another --out")


def merge(base: dict, other: dict) -> dict:
    """``other``'s tasks and variants into ``base``: a variant run again with the same seeds
    replaces the old row, with other seeds its runs join the row's; the commands of both are
    kept."""
    from slimedge import variants

    base["commands"] = list(dict.fromkeys([*_commands(base), *_commands(other)]))
    base["date"] = max(base["date"], other["date"])
    for result in (base, other):  # files written before these were recorded per task
        for entry in result["tasks"].values():
            for key in ("command", "patience", "seeds"):
                entry.setdefault(key, result[key])
    for task, entry in other["tasks"].items():
        mine = base["tasks"].setdefault(task, {**entry, "variants": []})
        _same_settings(task, mine["settings"], entry["settings"])
        rows = {r["variant"]: r for r in mine["variants"]}
        for r in entry["variants"]:
            old = rows.get(r["variant"])
            seeds = {x["seed"] for x in old["runs"]} if old else set()
            if old and not seeds & {x["seed"] for x in r["runs"]}:  # other seeds: one row
                r = _summarise({**r, "runs": sorted(old["runs"] + r["runs"],
                                                    key=lambda x: x["seed"])})
                mine["seeds"] = sorted(seeds | {x["seed"] for x in r["runs"]})
            rows[r["variant"]] = r
        mine["variants"] = [rows[v] for v in variants.VARIANTS if v in rows] + \
            [r for v, r in rows.items() if v not in variants.VARIANTS]
        mine["commands"] = list(dict.fromkeys([*_commands(mine), *_commands(entry)]))
    return base


def _init_words(settings: dict) -> str:
    b = settings.get("forget_bias")
    return "PyTorch default init" + (f" and b_f = {b:g} where a variant learns it"
                                     if b is not None else "")


def markdown_converged(result: dict) -> str:
    m = result["machine"]
    commands = _commands(result)
    lines = [SECTION_CONVERGED, "",
             "Every variant trained until a number of epochs (the patience) passed without a "
             "better validation accuracy, or to a cap of epochs, at a constant learning rate, "
             "once per seed; test accuracy of each run's best-validation epoch, mean ± standard "
             "deviation over the seeds. Params: the SLIM layer alone. A best epoch marked * is "
             "from a run that reached the cap before its patience ran out (it may not have "
             "converged).", "",
             f"- Machine: {m['cpu']}, {m['cores']} cores, {result['threads']} thread; "
             f"date {result['date']}",
             *(f"- Command: `{c}`" for c in commands),
             "- s / epoch: the mean wall-clock training time of an epoch in these runs, on a "
             "machine shared with other jobs: a record of the cost, not a speed comparison "
             "(that is the \"Training speed\" section)",
             *(f"- Note: {t}" for t in result.get("notes", [])), ""]
    for task, entry in result["tasks"].items():
        s = entry["settings"]
        rows = entry["variants"]
        ref = next((r for r in rows if r["variant"] == "LSTM0"), None)
        seeds = entry.get("seeds", result["seeds"])
        lines += [f"### {task}", "",
                  f"Patience {entry.get('patience', result['patience'])} epochs, cap "
                  f"{s['epochs']}, seeds {', '.join(map(str, seeds))}"
                  + (", denormals flushed to zero" if entry.get("flush_denormal") else "")
                  + "; " + "; ".join(f"`{c}`" for c in _commands(entry, result["command"])) + ".", "",
                  f"n = {s['hidden_size']}, one layer, batch {s['batch_size']}, Adam lr {s['lr']}, "
                  f"gradient-norm clip 1, {_init_words(s)}, σ = sigmoid, g = tanh. Data: train "
                  + " / ".join(f"{k} {v:,}" for k, v in entry["data"]["sizes"].items()).removeprefix(
                      "train ") + " sequences.", "",
                  "| variant | params | test acc (mean ± sd) | Δ vs LSTM0 (points) | within 2 points "
                  "| best epochs | s / epoch |", "|---|---:|---:|---:|---|---:|---:|"]
        for r in rows:
            delta = 100 * (r["test_accuracy_mean"] - ref["test_accuracy_mean"]) if ref else None
            within = "–" if delta is None or r is ref else ("yes" if delta >= -2.0 else "**no**")
            epochs = ", ".join(f"{x['best_epoch']}" + ("" if x["early_stopped"] else "*")
                               for x in r["runs"])
            sec = sum(x["train_seconds_per_epoch"] for x in r["runs"]) / len(r["runs"])
            lines.append(f"| {r['variant']} | {r['params']:,} | {100 * r['test_accuracy_mean']:.1f}"
                         f" ± {100 * r['test_accuracy_std']:.1f} | "
                         + (f"{delta:+.1f}" if delta is not None else "–")
                         + f" | {within} | {epochs} | {sec:.2f} |")
        if ref:
            below = [r["variant"] for r in rows if r is not ref
                     and r["test_accuracy_mean"] < ref["test_accuracy_mean"] - 0.02]
            lines += ["", "More than 2 points below LSTM0's mean: "
                      + (", ".join(below) if below else "none") + "."]
        lines.append("")
    return "\n".join(lines)


def _torch_lstm_classifier(input_size: int, hidden_size: int, num_classes: int, num_layers: int):
    """The standard LSTM as a PyTorch user trains it today: torch.nn.LSTM (its fused kernel) and a
    linear head on the last valid step; a timing reference only."""
    import torch

    class TorchLSTM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
            self.head = torch.nn.Linear(hidden_size, num_classes)

        def forward(self, x, lengths=None):
            if lengths is not None:
                x = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                            enforce_sorted=False)
            _, (h, _) = self.lstm(x)
            return self.head(h[-1])

    return TorchLSTM()


TORCH_LSTM = "torch.nn.LSTM"


def timing(args, result: dict) -> None:
    """Training-step time per variant, measured round-robin (every variant once per round, the
    median over rounds), so a machine whose load drifts slows all variants alike. Per task: one
    fixed set of ``--timing-batches`` training batches (drawn from epoch 1's order), forward +
    backward + clip + Adam; scaled to a whole epoch by the number of batches."""
    import time

    import numpy as np
    import torch
    import torch.nn.functional as F

    from slimedge import data
    from slimedge.train import TrainConfig, build_model

    torch.set_num_threads(args.threads)
    for task in args.tasks.split(","):
        entry = result["tasks"][task]
        settings = entry["settings"]
        splits = data.load(settings["data"], limit=settings["limit"])
        order = list(data.batches(splits.train, settings["batch_size"], shuffle=True, seed=0))
        pick = np.random.default_rng(0).choice(len(order), min(args.timing_batches, len(order)),
                                               replace=False)
        batches = []
        for k in sorted(pick):
            x, lengths, y = splits.train.batch(order[k])
            lt = None if lengths.min() == x.shape[1] else torch.from_numpy(lengths)
            batches.append((torch.from_numpy(x), lt, torch.from_numpy(y)))
        models = {}
        for r in entry["runs"]:
            cfg = TrainConfig(variant=r["variant"], seed=args.seed, threads=args.threads,
                              **settings)
            model = build_model(cfg, splits).train()
            models[r["variant"]] = (model, torch.optim.Adam(model.parameters(), lr=1e-4))
        ref = _torch_lstm_classifier(splits.input_size, settings["hidden_size"],
                                     len(splits.labels), settings.get("layers", 1)).train()
        models[TORCH_LSTM] = (ref, torch.optim.Adam(ref.parameters(), lr=1e-4))
        times = {v: [] for v in models}
        for _ in range(args.timing_rounds):
            for v, (model, opt) in models.items():
                t0 = time.perf_counter()
                for x, lt, y in batches:
                    loss = F.cross_entropy(model(x, lt), y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    opt.step()
                times[v].append(time.perf_counter() - t0)
        scale = len(order) / len(batches)
        for r in entry["runs"]:
            r["timed_seconds_per_epoch"] = float(np.median(times[r["variant"]]) * scale)
        entry["timing"] = {"rounds": args.timing_rounds, "batches": len(batches),
                           "batches_per_epoch": len(order),
                           "torch_nn_lstm_seconds_per_epoch": float(np.median(times[TORCH_LSTM]) * scale)}
        print(f"{task}: " + ", ".join(f"{r['variant']} {r['timed_seconds_per_epoch']:.1f}"
                                      for r in entry["runs"]) + " s/epoch", flush=True)


def _earlier_runs(dirs) -> dict:
    """Finished runs' logs (``*.log.json`` with test metrics) by their exact training config (as
    TrainConfig reads it: a setting added since the log was written takes its default)."""
    from types import SimpleNamespace


    found = {}
    for d in dirs or []:
        for log_path in sorted(Path(d).glob("*.log.json")):
            log = json.loads(log_path.read_text())
            if "test" not in log:
                continue
            r = SimpleNamespace(log=log, test=log["test"], best=log["best"], history=log["epochs"],
                                diverged=log.get("diverged", False))
            found[_config_key(log["config"])] = (r, str(log_path))
    return found


def save(result: dict, path: Path | None) -> None:
    """Write the results JSON (atomically); None (neither --update nor --out): nowhere."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, path)


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [SECTION, "",
             "Every variant of the catalogue and the standard LSTM (LSTM0), trained with one "
             "budget per task by `benchmarks/paper_table.py`; test accuracy of the epoch with the "
             "best validation accuracy. Parameter counts are the trained parameters: the "
             "SLIM layer plus the linear head (10n + 10). Time per training epoch (forward + "
             f"backward + Adam, PyTorch eager on the CPU, {result['threads']} thread): *runs* = "
             "the mean over the training runs themselves, which ran one after another on a "
             "shared machine whose load changed, so compare them loosely; *interleaved* = the "
             "median of round-robin timings of one fixed set of batches, every variant once per "
             "round, scaled to an epoch: the fairer comparison between variants.", "",
             f"- Machine: {m['cpu']}, {m['cores']} cores (shared with other work, so timings "
             f"are noisy), Python {m['python']}, "
             f"torch {m.get('torch') or m.get('versions', {}).get('torch')}",
             f"- Date: {result['date']}",
             *(f"- Note: {t}" for t in result.get("notes", [])),
             *(f"- Command: `{c}`" for c in _commands(result)),
             "- Reproduce everything from scratch: `python benchmarks/paper_table.py` "
             "(training is deterministic on one machine and thread count; `--reuse DIR` only "
             "skips runs whose exact settings were already trained, e.g. by "
             "`python -m slimedge.zoo.build`, which trains the FSDD runs with this budget)", ""]
    for task, entry in result["tasks"].items():
        s, d = entry["settings"], entry["data"]
        sizes = d["sizes"]
        lines += [f"### {task}", "",
                  f"Budget: hidden size n = {s['hidden_size']}, one layer, {s['epochs']} epochs, "
                  f"batch {s['batch_size']}, Adam lr {s['lr']} with a {s['schedule']} schedule, "
                  f"gradient-norm clip 1, seed {result['seed']}, {_init_words(s)}, "
                  f"σ = sigmoid, g = tanh. Data: train {sizes['train']:,} / val "
                  f"{sizes['val']:,} / test {sizes['test']:,} sequences ({d['split']}).", ""]
        runs = entry["runs"]
        ref = next((r for r in runs if r["variant"] == "LSTM0"), None)
        lines += ["| variant | params | × LSTM0 | test acc | Δ vs LSTM0 (points) | best val acc "
                  "| best epoch | s / epoch (runs) | s / epoch (interleaved) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in runs:
            ratio = f"{r['params'] / ref['params']:.3f}" if ref else "–"
            delta = f"{100 * (r['test_accuracy'] - ref['test_accuracy']):+.1f}" if ref else "–"
            flag = " (diverged)" if r["diverged"] else ""
            lines.append(f"| {r['variant']}{flag} | {r['params']:,} | {ratio} | "
                         f"{r['test_accuracy']:.4f} | {delta} | {r['best_val_accuracy']:.4f} | "
                         f"{r['best_epoch']} | {r['train_seconds_per_epoch']:.1f} | "
                         + (f"{r['timed_seconds_per_epoch']:.1f} |"
                            if "timed_seconds_per_epoch" in r else "– |"))
        if ref:
            worse = [r["variant"] for r in runs
                     if r["variant"] != "LSTM0" and r["test_accuracy"] < ref["test_accuracy"] - 0.02]
            lines += ["", "More than 2 points below LSTM0 at this budget: "
                      + (", ".join(worse) if worse else "none") + "."]
            timed = [r for r in runs if "timed_seconds_per_epoch" in r and r is not ref]
            if timed and "timed_seconds_per_epoch" in ref:
                rel = sorted((r["timed_seconds_per_epoch"] / ref["timed_seconds_per_epoch"],
                              r["variant"]) for r in timed)
                note = (" In eager PyTorch the per-step Python and kernel-launch overhead, "
                        "not the arithmetic, dominates at these sizes, so fewer parameters buy "
                        "little training time here." if rel[0][0] > 0.7 else "")
                lines += ["", f"Interleaved epoch time relative to LSTM0: from {rel[0][0]:.2f}× "
                          f"({rel[0][1]}) to {rel[-1][0]:.2f}× ({rel[-1][1]})." + note]
                tl = (entry.get("timing") or {}).get("torch_nn_lstm_seconds_per_epoch")
                if tl:
                    faster = [r["variant"] for r in timed + [ref] if r["timed_seconds_per_epoch"] < tl]
                    lines += ["", f"The standard LSTM as PyTorch users train it, `torch.nn.LSTM` "
                              f"(its fused CPU kernel) with the same head, timed in the same rounds: "
                              f"{tl:.1f} s / epoch. Faster than it: "
                              + (", ".join(faster) if faster else "none") + "."]
        lines.append("")
    lines += ["The budget is small (the whole table trains in about half an hour on one CPU "
              "thread): the numbers compare the variants at equal, short training, not at "
              "convergence, and one seed cannot separate variants a point or two apart (on "
              "FSDD's 300 test utterances one utterance is 0.33 points). The shipped default "
              "model was chosen from FSDD runs with this same budget; see "
              "[its model card](slimedge/zoo/README.md).", ""]
    return "\n".join(lines)


def update_benchmarks_md(text: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) only our section; other sections stay as they are."""
    update_markdown_section(path, SECTION, text)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", default="mnist-rows,fsdd")
    p.add_argument("--variants", default="", help="comma-separated; default: all 12")
    p.add_argument("--mnist-epochs", type=int, default=3)
    p.add_argument("--mnist-limit", type=int, default=None,
                   help="cap every MNIST split at this many images (default: all)")
    p.add_argument("--fsdd-epochs", type=int, default=30)
    p.add_argument("--fsdd-hidden", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", default="0", help="with --patience: comma-separated seeds")
    p.add_argument("--patience", type=int, default=0,
                   help="train to convergence: stop after this many epochs without a better "
                        "validation accuracy (0: the fixed budget of --*-epochs)")
    p.add_argument("--max-epochs", type=int, default=100, help="with --patience: the cap")
    p.add_argument("--pixels-limit", type=int, default=3000,
                   help="mnist-pixels: cap every split at this many images")
    p.add_argument("--pixels-batch-size", type=int, default=128, help="mnist-pixels: batch size")
    p.add_argument("--pixels-lr", type=float, default=None, help="mnist-pixels: lr (default --lr)")
    p.add_argument("--pixels-forget-bias", type=float, default=None,
                   help="mnist-pixels: b_f's initial value where a variant learns one")
    p.add_argument("--constant", action="append", default=[], metavar="GATE=VALUE",
                   help="with --patience: this value for the variants' fixed gate (repeatable); "
                        "their rows are named by it, e.g. 'LSTM6 f=0.96'")
    p.add_argument("--flush-denormal", action="store_true",
                   help="torch.set_flush_denormal(True) while training (with --patience): long "
                        "sequences' backward slows several-fold on denormals")
    p.add_argument("--merge", action="append", default=[], type=Path, metavar="JSON",
                   help="with --patience --table-only: merge these results into --out first")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workers", type=int, default=1,
                   help="the fixed-budget grid: cells trained at once (local processes or Ray tasks)")
    p.add_argument("--backend", default="local", choices=("local", "ray"),
                   help="the grid's executor (slimedge.search.executor); ray: the cluster extra")
    p.add_argument("--address", default=None, help="--backend ray: the cluster's address")
    p.add_argument("--workdir", default=None,
                   help="where the checkpoints go (default: a temp dir); with --patience a run "
                        "this directory holds with the same config is taken as it is where this "
                        "patience and cap would have stopped it, else continued")
    add_output_arguments(p, RESULTS)
    p.add_argument("--reuse", action="append", default=[], metavar="DIR",
                   help="take a run from DIR's *.log.json when its training config is identical "
                        "(training is deterministic, so it is the same run); repeatable")
    p.add_argument("--keep", action="store_true",
                   help="keep the tasks already in the JSON (--out, else the tracked one) "
                        "that this call does not run")
    p.add_argument("--no-markdown", action="store_true", help="with --update: not BENCHMARKS.md")
    p.add_argument("--timing-rounds", type=int, default=5,
                   help="rounds of the interleaved step timing after training (0 = none)")
    p.add_argument("--timing-batches", type=int, default=10, help="batches per timing round")
    p.add_argument("--timing-only", action="store_true",
                   help="only (re)do the interleaved timing of the runs in the JSON")
    p.add_argument("--table-only", action="store_true",
                   help="only the BENCHMARKS.md section, from the JSON (--out, else the tracked one)")
    args = p.parse_args(argv)
    if args.constant and args.patience <= 0:
        p.error("--constant is for the converged table: give --patience too")
    tracked = RESULTS_CONVERGED if args.patience > 0 else RESULTS
    settle_outputs(args, tracked)
    if args.patience > 0:
        result = json.loads(args.source.read_text()) if args.table_only else converge(args)
        for extra in args.merge:
            result = merge(result, json.loads(extra.read_text()))
        if args.merge:
            save(result, args.out)
        _finish(args, tracked, SECTION_CONVERGED, markdown_converged(result))
        return
    result = json.loads(args.source.read_text()) if args.table_only or args.timing_only \
        else run(args)
    if args.timing_only:
        result["commands"] = [*_commands(result), _command()]
    if args.timing_rounds and not args.table_only:
        timing(args, result)
        save(result, args.out)
    _finish(args, tracked, SECTION, markdown(result))


def _finish(args, tracked: Path, section: str, text: str) -> None:
    """The BENCHMARKS.md section written with --update, else printed."""
    if args.markdown:
        update_markdown_section(BENCHMARKS_MD, section, text)
        return
    print(text)
    if args.out is None:
        print(nothing_written(tracked))


if __name__ == "__main__":
    main()
