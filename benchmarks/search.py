"""A real budgeted search (``slimedge search``) for the shipped model's task, FSDD digits from
13 MFCCs (25 ms frames), under a Cortex-M4 budget; its Pareto front goes to BENCHMARKS.md.

    python benchmarks/search.py                       # the default: see --help; prints the front
    python benchmarks/search.py --update              # and writes results/search_m4.json + BENCHMARKS.md
    python benchmarks/search.py --target cortex-m0plus --flash 16KB --ram 4KB \\
        --max-cycles-per-second "" --quantize int8 --results search_m0plus.json
    python benchmarks/search.py --data ../shared/data/fsdd --split-by fsdd \\
        --frontend-values channels=20,40 --results search_audio_m4.json   # raw audio

With ``--data DIR`` (a folder of WAV files: the shipped raw-audio model's task) each trial trains
on the frames of its own front-end setting (``--frontend-values``), and its device figures are
the C export's listener, front-end + model, per second of audio (slimedge.devices.audio); the
shipped raw-audio model (slimedge/zoo/fsdd_audio.safetensors) is exported and measured the same
way on the same clips. The rule that picks a model from the front is fixed here, before any run
(:data:`RULE`), and its pick is reported.

Each trial trains with the same seed and settings, is exported as C in its quantisation,
scored on the validation split through the exported file itself, and measured on the emulated
device (flash, RAM, cycles per step -> cycles per second at the frame rate). The report says,
per variant, its best feasible trial and whether it is on the front, how many candidates the size
model rejected before training, and how far its predictions were from the measurements.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
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
    settle_outputs,
    write_outputs,
)
from slimedge.frontend import audio as frontends  # noqa: E402
from slimedge.zoo import audio_markdown  # noqa: E402

RESULTS_DIR = ROOT / "benchmarks" / "results"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
DEFAULT_VARIANTS = "LSTM0,LSTM2,LSTM3,LSTM5,LSTM6,LSTM_C6"
RULE = ("among the trials within every limit of the budget, the highest validation accuracy; a "
        "tie goes to fewer cycles per second, then to less flash")
STOPPED_NOTE = (" (first trial's start to last trial's end; the size model's calibration before "
                "it not counted); stopped at ")
SHIPPED_AUDIO = ROOT / "slimedge" / "zoo" / "fsdd_audio.safetensors"


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", default="cortex-m4")
    p.add_argument("--flash", default="32KB", help='"" for no limit')
    p.add_argument("--ram", default="8KB", help='"" for no limit')
    p.add_argument("--max-cycles-per-second", default="4M", help='"" for no limit')
    p.add_argument("--frame-ms", type=float, default=25.0, help="FSDD's MFCC hop: 200 samples at 8 kHz")
    p.add_argument("--variants", default=DEFAULT_VARIANTS)
    p.add_argument("--hidden-sizes", default="8,16,32,64")
    p.add_argument("--quantize", default="none,int8")
    p.add_argument("--constant", default="f=0.5,0.9")
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--limit", type=int, default=600,
                   help="train sequences (FSDD: val and test stay 300); a WAV folder: clips per "
                        "split at most; 0: no cap")
    p.add_argument("--data", default="fsdd", help="fsdd (MFCC frames) or a folder of WAV files (raw audio)")
    p.add_argument("--split-by", default="fsdd", help="a WAV folder's split (as slimedge train)")
    p.add_argument("--frontend-values", action="append", default=[], metavar="KEY=V1,V2",
                   help="a WAV folder: front-end values to search (repeatable)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-prune", dest="prune", action="store_false",
                   help="train every candidate to its last epoch (as slimedge search run)")
    p.add_argument("--backend", default="local")
    p.add_argument("--address", default=None)
    p.add_argument("--workdir", default=None, help="the search's folder (default: a temporary one)")
    p.add_argument("--results", default="search_m4.json",
                   help="the tracked results' file name under benchmarks/results")
    p.add_argument("--stopped", action="store_true",
                   help="report the search in --workdir as far as it got (stopped by hand), "
                        "without running it; the same options as the run")
    p.add_argument("--table-only", action="store_true",
                   help="no search: BENCHMARKS.md's section from the results JSON (--out or the tracked one)")
    p.add_argument("--shipped-only", action="store_true",
                   help="no search: measure the shipped raw-audio model again (after it was "
                        "retrained) into the results JSON's shipped row, as the search's own "
                        "settings measure a trial; the trials stay as they ran")
    add_output_arguments(p, RESULTS_DIR / "search_m4.json")
    args = p.parse_args(argv)
    settle_outputs(args, RESULTS_DIR / args.results)
    return args


def _command() -> str:
    """The command a reader can run (less --workdir and --out: scratch paths)."""
    return command_line(__file__, sys.argv[1:], ROOT)


def run(args) -> dict:
    from slimedge.cli.commands_search import _space
    from slimedge.search import Budget, parse_bytes, parse_count, settings_of
    from slimedge.search import run as run_search

    limits = {k: f(v) for k, f, v in (("flash", parse_bytes, args.flash),
                                      ("ram", parse_bytes, args.ram),
                                      ("cycles_per_second", parse_count,
                                       args.max_cycles_per_second)) if v}
    budget = Budget(args.target, limits, args.frame_ms)
    space = _space(None, args.variants, args.hidden_sizes, "1",
                   [args.constant] if args.constant else [], args.quantize, "onnx", args.target,
                   args.frontend_values)
    base = {"data": args.data, "limit": args.limit or None, "epochs": args.epochs,
            "batch_size": 32, "lr": 3e-3, "schedule": "cosine", "seed": 0, "split_seed": 0}
    audio = Path(args.data).is_dir()
    if audio:
        from slimedge.frontend.audio import DEFAULT

        base.update(data=str(Path(args.data).resolve()), audio=dict(DEFAULT), split=args.split_by)
    out = Path(args.workdir or tempfile.mkdtemp(prefix="search_bench_"))
    t0 = time.time()
    if args.stopped:  # the search in --workdir, as far as it got (trials still running dropped)
        from slimedge.search.study import open_study, storage_url, summary

        study = open_study(storage_url(None, out), "search", settings_of(space, budget, base,
                                                                          args.trials,
                                                                          prune=args.prune))
        s = summary(study)
        times = [t for t in study.get_trials(deepcopy=False) if t.datetime_complete]
        wall = (max(t.datetime_complete for t in times)
                - min(t.datetime_start for t in times)).total_seconds() if times else 0.0
        s["stopped_at"] = (f"{s['progress']['trained']} of {args.trials} trials"
                           + (" (stopped by hand)" if s["progress"]["trained"] < args.trials
                              else " (reported from its study after the run)"))
    else:
        s = run_search(out, settings_of(space, budget, base, args.trials, prune=args.prune),
                       backend=args.backend,
                       workers=args.workers, address=args.address,
                       log=lambda m: print(m, flush=True))
        wall = time.time() - t0
    return {"machine": machine(), "date": _dt.date.today().isoformat(), "command": _command(),
            "wall_seconds": wall, "workers": args.workers, "backend": args.backend,
            "rule": RULE, "summary": s, "analysis": analyse(out, s),
            "shipped": shipped_audio(budget, base, out, space.get("quantize").values())
            if audio else shipped(budget)}


def shipped_audio(budget, base: dict, out: Path, quantize) -> dict:
    """The shipped raw-audio model: its recorded validation accuracy, and its C export's
    listener measured as the search measures a trial (same target, same validation clips), in
    each of the space's quantisation modes."""
    from slimedge import checkpoint
    from slimedge.search.trial import candidate_splits, measure_export

    config = checkpoint.read(SHIPPED_AUDIO).config
    train = config["info"]["train"]
    splits = candidate_splits({}, {**base, "audio": train["audio"]})
    figures = {}
    for q in quantize:
        r = measure_export(SHIPPED_AUDIO, {"quantize": q}, budget, splits,
                           out / "shipped" / q, score=False)
        figures[q] = r["measured"]
    return {"variant": train["variant"], "constants": train["constants"],
            "hidden_size": train["hidden_size"], "frontend": train["audio"],
            "val_accuracy": config["info"]["best"]["val_accuracy"],
            "epochs": config["info"]["best"]["epoch"],
            "training": {k: train[k] for k in ("epochs", "augment", "augment_copies",
                                               "label_smoothing", "frame_loss", "train_extra",
                                               "select")
                         if train.get(k) is not None},
            "figures": figures}


def shipped(budget) -> dict | None:
    """The shipped model's recorded validation accuracy and its device figures on the budget's
    target (benchmarks/results/mcu.json, same compiler and emulator), per quantisation."""
    from slimedge import formats, zoo

    info = formats.info(zoo.default_model_path()).config
    mcu = RESULTS_DIR / "mcu.json"
    rows = json.loads(mcu.read_text())["shipped"]["devices"].get(budget.target, []) \
        if mcu.exists() else []
    lstm = info["lstm"]
    return {"variant": lstm["variant"]["name"], "constants": lstm["variant"].get("constants"),
            "hidden_size": lstm["hidden_size"], "val_accuracy": info["info"]["best"]["val_accuracy"],
            "epochs": info["info"]["best"]["epoch"],
            "figures": {r["quantize"]: {
                "flash": r["flash_bytes"]["total"], "ram": r["ram_bytes"]["total"],
                "cycles_per_second": r["cycles_per_step_estimate"]["mean"] * 1000 / budget.frame_ms}
                for r in rows if r.get("role") == "model"}}


def analyse(out: Path, s: dict) -> dict:
    """Per variant: its best feasible trial and whether it is on the front; the size model's
    error on every trained trial."""
    import optuna

    from slimedge.search.study import open_study, storage_url

    study = open_study(storage_url(None, out), s["study"])
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    front = {r["trial"] for r in s["front"]}
    per_variant: dict = {}
    errors: dict = {}
    for t in done:
        feasible = all(v <= 0 for v in t.user_attrs.get("violation", [0.0]))
        v = t.params.get("variant")
        best = per_variant.get(v)
        row = {"trial": t.number, "label": t.user_attrs.get("label"), "val_accuracy": t.values[0],
               "feasible": feasible, "on_front": t.number in front}
        if best is None or (feasible, t.values[0]) > (best["feasible"], best["val_accuracy"]):
            per_variant[v] = row
        for metric, pred in (t.user_attrs.get("predicted") or {}).items():
            measured = t.user_attrs["measured"][metric]
            errors.setdefault(metric, []).append(abs(pred - measured) / measured)
    # a variant whose every trained trial the pruner stopped: its best accuracy when stopped
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,)):
        v, acc = t.params.get("variant"), t.user_attrs.get("val_accuracy_when_pruned")
        if "pruned_at_epoch" not in t.user_attrs or acc is None or \
                (v in per_variant and not per_variant[v].get("pruned_at_epoch")):
            continue
        if v not in per_variant or acc > per_variant[v]["val_accuracy"]:
            per_variant[v] = {"trial": t.number, "label": t.user_attrs.get("label"),
                              "val_accuracy": acc, "feasible": None, "on_front": False,
                              "pruned_at_epoch": t.user_attrs["pruned_at_epoch"]}
    tried = {t.params.get("variant") for t in study.get_trials(deepcopy=False)}
    # RULE: within every limit, the most accurate; then fewer cycles, then less flash
    feasible = [t for t in done if all(v <= 0 for v in t.user_attrs.get("violation", [0.0]))]
    pick = min(feasible, default=None, key=lambda t: (
        -t.values[0], t.user_attrs["measured"].get("cycles_per_second", 0),
        t.user_attrs["measured"]["flash"]))
    return {"picked": None if pick is None else {
                "trial": pick.number, "label": pick.user_attrs.get("label"),
                "val_accuracy": pick.values[0], "measured": pick.user_attrs["measured"]},
            "per_variant": per_variant, "variants_never_trained": sorted(tried - set(per_variant)),
            "size_model_relative_error": {m: {"max": max(e), "mean": sum(e) / len(e), "n": len(e)}
                                          for m, e in errors.items()}}


def _frontend_text(s: dict) -> str:
    """The base front-end's window and hop, and the front-end values searched."""
    audio = s["settings"]["base"]["audio"]
    searched = {k.split(".", 1)[1]: v for k, v in s["settings"]["space"].items()
                if k.startswith("frontend.")}
    fixed = ", ".join(f"{k} {audio[k]}" for k in ("window_ms", "hop_ms", "channels")
                      if k not in searched)
    return fixed + "".join(f", {k} searched over {v}" for k, v in searched.items())


def markdown(result: dict) -> str:
    s = result["summary"]
    b = s["settings"]["budget"]
    p = s["progress"]
    lim = ", ".join(f"{k} ≤ {v:,.0f}" for k, v in sorted(b["limits"].items()))
    base = s["settings"]["base"]
    audio = base.get("audio")
    if audio:
        cap = f" capped at {base['limit']} clips per split" if base.get("limit") else ""
        data_text = (f"FSDD raw audio ({base.get('split')} split{cap}, through the integer "
                     f"microfrontend: {_frontend_text(s)}; {base['epochs']} epochs per trial, no "
                     f"augmentation, validation split only; device figures: the C export's "
                     f"listener, front-end + model, per second of audio), budget {lim}.")
    else:
        data_text = (f"FSDD MFCC digits ({base['limit']} training sequences, {base['epochs']} "
                     f"epochs per trial, validation split only), budget {lim} at "
                     f"{b['frame_ms']:g} ms frames.")
    lines = [f"## Search{' (raw audio)' if audio else ''}: which model fits a {b['target']}", "",
             f"`{result['command']}` — {result['date']}, {result['machine'].get('cpu', '')} "
             f"({result['machine'].get('cores')} cores shared with other jobs: load average "
             f"{result['machine'].get('loadavg', [0])[0]:.1f} as it ended), "
             f"{result['workers']} {result['backend']} workers, {result['wall_seconds'] / 60:.1f} "
             f"min wall{STOPPED_NOTE + s['stopped_at'] if s.get('stopped_at') else ''}.", "",
             data_text + f" {p['trained']} trials trained "
             f"({p['pruned_at_epoch']} stopped early by the pruner), {p['rejected']} candidates "
             f"rejected before training by the size model, {p['duplicate_of']} repeats skipped.",
             "", "| trial | model | val acc | flash B | RAM B | cycles/s |",
             "|---:|---|---:|---:|---:|---:|"]
    for r in s["front"]:
        lines.append(f"| {r['trial']} | {r['label']} | {r['val_accuracy']:.4f} | "
                     f"{r['flash']:,.0f} | {r['ram']:,.0f} | {r['cycles_per_second']:,.0f} |")
    a = result["analysis"]
    lines += ["", "Where each variant landed (its best trial):", "",
              "| variant | best trial | val acc | within budget | on the front |",
              "|---|---|---:|---|---|"]
    for v, r in sorted(a["per_variant"].items()):
        within = ({True: "yes", False: "no"}[r["feasible"]] if r["feasible"] is not None else
                  f"stopped by the pruner at epoch {r['pruned_at_epoch']} (not measured)")
        lines.append(f"| {v} | {r['label']} | {r['val_accuracy']:.4f} | {within} | "
                     f"{'yes' if r['on_front'] else 'no'} |")
    if a["variants_never_trained"]:
        lines.append(f"\nNever trained (rejected or not sampled): "
                     f"{', '.join(map(str, a['variants_never_trained']))}.")
    err = ", ".join(f"{m} {e['mean'] * 100:.1f}% mean / {e['max'] * 100:.1f}% max"
                    for m, e in sorted(a["size_model_relative_error"].items()))
    lines += ["", f"Size model (fitted on exports with initial weights) against the trained "
                  f"trials' measurements: {err}."]
    if result.get("rule"):
        pk = a.get("picked")
        lines += ["", f"Rule for picking the model, fixed before the search: {result['rule']}. "
                      + (f"It picks trial {pk['trial']} ({pk['label']}, validation accuracy "
                         f"{pk['val_accuracy']:.4f})." if pk else "No trial is within the budget.")]
    sh = result.get("shipped")
    if sh:
        figs = "; ".join(f"{q}: {f['flash']:,.0f} B flash, "
                         + (f"{f['ram']:,.0f} B RAM, " if "ram" in f else "")
                         + f"{f['cycles_per_second']:,.0f} cycles/s"
                         for q, f in sorted(sh["figures"].items()))
        beats = [r for r in s["front"] for q, f in sh["figures"].items()
                 if r["val_accuracy"] > sh["val_accuracy"] and r["flash"] <= f["flash"]
                 and r["cycles_per_second"] <= f["cycles_per_second"]]
        tr = sh.get("training")
        own = (audio_markdown.budget_words(audio_markdown.recipe_budget(tr))
               if tr else "on the full training split")
        consts = ", ".join(f"{k}={v:g}" for k, v in (sh["constants"] or {}).items())
        fe = (f", front-end: {frontends.from_config(sh['frontend']).description}"
              if sh.get("frontend") else "")
        lines += ["", f"The shipped model ({sh['variant']} n={sh['hidden_size']}"
                      f"{', ' + consts if consts else ''}{fe}; "
                      f"{figs}) has validation accuracy {sh['val_accuracy']:.4f} (its own training "
                      f"run, the zoo's: "
                      + (f"epoch {sh['epochs']} kept, " if (tr or {}).get("select") != "last"
                         else "") + f"{own}"
                      + (f"; measured {sh['date']} with `--shipped-only`" if sh.get("date")
                         else "") + "). "
                      + (f"Front models that beat it at equal or smaller flash and cycles: "
                         f"{', '.join(str(r['trial']) for r in beats)}." if beats else
                         f"No front model beats it at equal or smaller flash and cycles. The "
                         f"trials trained {base['epochs']} epochs on "
                         f"{'at most ' + str(base['limit']) if base.get('limit') else 'all the'} "
                         f"training clips without augmentation, the shipped model {own}; the "
                         f"front's best validation accuracy is "
                         f"{max((r['val_accuracy'] for r in s['front']), default=0):.4f}.")]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    args = parse(argv)
    if args.table_only:
        result = json.loads(args.source.read_text())
        args.out = None if args.out == args.source else args.out
    elif args.shipped_only:
        from slimedge.search import Budget

        result = json.loads(args.source.read_text())
        st = result["summary"]["settings"]
        if not st["base"].get("audio"):
            raise SystemExit(f"--shipped-only: {args.source.name} is not a raw-audio search "
                             f"(--results search_audio_m4.json or search_audio_m0plus.json)")
        budget = Budget(st["budget"]["target"], st["budget"]["limits"], st["budget"]["frame_ms"])
        with tempfile.TemporaryDirectory(prefix="search_bench_") as out:
            result["shipped"] = shipped_audio(budget, st["base"], Path(out),
                                              st["space"]["quantize"])
        result["shipped"]["date"] = _dt.date.today().isoformat()
    else:
        result = run(args)
    text = markdown(result)
    print(text)
    write_outputs(args, RESULTS_DIR / args.results, result, text, BENCHMARKS_MD,
                  text.splitlines()[0])


if __name__ == "__main__":
    main()
