"""Audio in, digit out: accuracy on raw FSDD through an audio front-end, and the Python front-ends'
speed.

    nice -n 10 .venv/bin/python benchmarks/audio.py [--data ../shared/data/fsdd] [--epochs 12]
        [--augment shift,gain,noise] [--only official|loso|speed] [--update]

* **official**: the dataset's own split (index 0-4 of every speaker is the test set, a stratified
  10% of the rest validation), for the shipped variant (LSTM1, n = 48) and LSTM0 with the same
  budget (size, front-end, training);
* **loso**: leave-one-speaker-out over the five speakers (the held-out speaker's 500 clips are the
  test set; validation is 10% of the other speakers' clips, so nothing about the held-out voice
  picks the epoch): mean and worst fold, for the same two variants;
* **speed**: the Python front-ends on a stream (20 ms pushes) and on whole clips, as real-time
  factors on one core (seconds of audio per second of CPU time);
* ``--sweep "none;shift,gain;..."``: leave-one-speaker-out for each augmentation recipe, for the
  shipped variant (the measurement that chose the shipped recipe, with the LSTM6 model before);
* ``--choice A.json,B.json,...``: no runs; the official split's runs of each candidate (variant,
  size, front-end; one results file each) as the table that chose the shipped one (:func:`choice`).

Training runs the front-end exactly as a stream does (every clip from a fresh state). Prints a
table; ``--update`` writes benchmarks/results/audio.json and BENCHMARKS.md's section.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from slimedge import _report  # noqa: E402
from slimedge.data import audio as wavdata  # noqa: E402
from slimedge.frontend import audio as fe_audio  # noqa: E402
from slimedge.zoo import audio_markdown  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "audio.json"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
HEADING = "## Audio: raw FSDD through the front-end"
#: the shipped raw-audio model's front-end: the default microfrontend with its noise reduction off
#: (min_signal_remaining 1: the estimate still drives PCAN's gain); chosen on validation (choice)
FRONTEND = {**fe_audio.DEFAULT, "min_signal_remaining": 1.0}
SHIPPED = ("LSTM1", {})  # the shipped variant, at SHIPPED_HIDDEN
SHIPPED_HIDDEN = 48
BUDGET = ("epochs", "augment", "copies", "label_smoothing", "frame_loss", "train_extra", "select")
"""A run's training budget: the settings a card records with its figures."""
TTS_DIR = "runs/tts-digits"
"""Where the commands the results print expect ``python -m slimedge tts-digits``'s folder."""
SWEEP = "none;shift,gain,noise;shift,gain,noise,speed;shift,gain,noise,speed,time_mask,freq_mask"


def train_once(data: str, variant: str, constants: dict, args, **split) -> dict:
    from slimedge.train import TrainConfig, train

    cfg = TrainConfig(variant=variant, data=data, constants=constants, hidden_size=args.hidden,
                      epochs=args.epochs, lr=3e-3, schedule="cosine", seed=args.seed,
                      audio=args.frontend, augment=args.augment_recipe,
                      label_smoothing=args.label_smoothing, frame_loss=args.frame_loss,
                      augment_copies=args.copies if args.augment_recipe else 0,
                      train_extra=args.train_extra, select=args.select, **split)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.process_time()
        r = train(cfg, Path(tmp) / "m.safetensors", quiet=True)
        seconds = time.process_time() - t0
        if args.keep and split.get("split") == "fsdd":  # the official split's models, kept
            import shutil
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(r.output, Path(args.keep) / f"{variant}.seed{args.seed}.safetensors")
    params = r.log["model"]["params"]
    return {"variant": variant, "constants": constants, "params": params,
            "seed": args.seed, "val_accuracy": r.best["val_accuracy"],
            "val_loss": r.best["val_loss"], "test_accuracy": r.test["accuracy"],
            "test_n": r.test["n"], "best_epoch": r.best["epoch"], "cpu_seconds": seconds}


def by_validation(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Official-split runs of one or more seeds -> (the run with the best validation accuracy,
    then lower validation loss, per variant in first-seen order; every run). The test split
    plays no part in the choice."""
    best: dict = {}
    for r in rows:
        name = _name(r)
        if name not in best or ((r["val_accuracy"], -r.get("val_loss", 0.0))
                                > (best[name]["val_accuracy"], -best[name].get("val_loss", 0.0))):
            best[name] = r
    return list(best.values()), rows


def choice(paths: list[str]) -> dict:
    """The candidates for the shipped model, one results file each (official-split runs of one
    variant, size and front-end over some seeds; LSTM0's runs are left out: the shipped model is
    a SLIM variant): per candidate its runs and mean validation accuracy; the pick is the best
    mean validation accuracy, a tie to fewer params. The test split plays no part."""
    cands = []
    for p in paths:
        res = json.loads(Path(p).read_text())
        rows = [r for r in res.get("official_seeds", res.get("official", []))
                if r["variant"] != "LSTM0"]
        if not rows:
            raise SystemExit(f"--choice {p}: no official-split run of a SLIM variant")
        cands.append({"variant": rows[0]["variant"], "constants": rows[0]["constants"],
                      "hidden": res["settings"]["hidden"], "params": rows[0]["params"],
                      "frontend": res["settings"]["frontend"],
                      "runs": [{k: r[k] for k in ("seed", "val_accuracy", "test_accuracy")}
                               for r in rows],
                      "mean_val_accuracy": float(np.mean([r["val_accuracy"] for r in rows]))})
    pick = max(cands, key=lambda c: (c["mean_val_accuracy"], -c["params"]))
    return {"candidates": cands, "pick": cands.index(pick)}


def _variant_arg(text: str) -> tuple[str, dict]:
    """``--variants``' item: ``LSTM6:f=0.8`` -> ("LSTM6", {"f": 0.8})."""
    name, *consts = text.split(":")
    try:
        return name, {k: float(v) for k, v in (c.split("=") for c in consts)}
    except ValueError:
        raise SystemExit(f"--variants: {text!r} is not VARIANT[:gate=value...]") from None


def _noise_reduction(spec: dict) -> str:
    """The microfrontend's noise reduction in a word: on, or off (min_signal_remaining 1)."""
    return "on" if fe_audio.from_config(spec).reduces_noise else "off"


def loso(data: str, variant: str, constants: dict, args) -> dict:
    speakers = sorted({c.speaker for c in wavdata.scan_wavs(data)})
    folds = [{"speaker": s, **train_once(data, variant, constants, args, split="speaker",
                                         test_speakers=[s])} for s in speakers]
    for f in folds:
        print(f"  {variant} loso {f['speaker']}: {f['test_accuracy']:.3f}", flush=True)
    acc = [f["test_accuracy"] for f in folds]
    return {"variant": variant, "constants": constants, "params": folds[0]["params"],
            "mean": float(np.mean(acc)), "worst": float(np.min(acc)),
            "worst_speaker": folds[int(np.argmin(acc))]["speaker"], "folds": folds}


def _recipe(text: str) -> tuple[str, float, bool, bool]:
    """``--nested``' item: ``shift,gain@1+extra+last`` -> ("shift,gain", 1.0, True, True): an
    augmentation recipe, the frame loss (0 when no ``@``), whether the ``--train-extra`` clips
    join the training split (``+extra``) and whether the last epoch is kept instead of the best
    on validation (``+last``)."""
    body, *flags = text.split("+")
    aug, _, fl = body.partition("@")
    if set(flags) - {"extra", "last"} or len(set(flags)) < len(flags):
        raise SystemExit(f"--nested: {text!r} is not AUGMENT[@FRAME_LOSS][+extra][+last]")
    try:
        weight = float(fl or 0)
    except ValueError:
        weight = float("nan")
    if not (math.isfinite(weight) and weight >= 0):
        raise SystemExit(f"--nested: {text!r} is not AUGMENT[@FRAME_LOSS][+extra][+last] "
                         f"(a frame loss is a number >= 0)")
    return aug, weight, "extra" in flags, "last" in flags


def nested(data: str, recipes: list[str], args) -> dict:
    """The training recipe chosen where the held-out speaker plays no part: for each speaker
    held out, each recipe's leave-one-speaker-out over the other four (trained on three, tested
    on the fourth; the held-out speaker's files are not in the folder the runs read); the pick
    for that speaker is the recipe with the best mean over those inner folds. A recipe ending in
    ``+extra`` trains with ``args.train_extra``'s clips too (other voices than the five); one
    with ``+last`` keeps each run's last epoch (``TrainConfig.select``)."""
    import os

    from slimedge.data import augment

    clips = wavdata.scan_wavs(data)
    speakers = sorted({c.speaker for c in clips})
    rows, extra, select = [], args.train_extra, args.select
    for text in recipes:  # every recipe checked before anything trains
        aug, _, with_extra, _ = _recipe(text)
        augment.parse(aug)
        if with_extra and not extra:
            raise SystemExit(f"--nested: {text!r} needs --train-extra DIR")
    for outer in speakers:
        with tempfile.TemporaryDirectory() as tmp:
            for c in clips:
                if c.speaker != outer:
                    os.symlink(Path(c.path).resolve(), Path(tmp) / Path(c.path).name)
            for text in recipes:
                aug, args.frame_loss, with_extra, last = _recipe(text)
                args.augment_recipe = augment.parse(aug)
                args.train_extra = extra if with_extra else None
                args.select = "last" if last else select
                inner = {s: train_once(tmp, *SHIPPED, args, split="speaker",
                                       test_speakers=[s])["test_accuracy"]
                         for s in speakers if s != outer}
                rows.append({"held_out": outer, "recipe": text, "inner": inner,
                             "mean": float(np.mean(list(inner.values())))})
                print(f"  held out {outer}, {text}: inner mean {rows[-1]['mean']:.3f}", flush=True)
    args.train_extra, args.select = extra, select
    return {"recipes": recipes, "rows": rows, "picks": _picks(rows), "seed": args.seed,
            "select": select,
            "epochs": args.epochs, "copies": args.copies,
            "label_smoothing": args.label_smoothing, "train_extra": _extra_record(extra)}


def _overall(rows: list[dict]) -> dict:
    """Per recipe, its mean over every inner fold of every speaker held out."""
    return {rec: float(np.mean([a for r in rows if r["recipe"] == rec
                                for a in r["inner"].values()]))
            for rec in dict.fromkeys(r["recipe"] for r in rows)}


def _picks(rows: list[dict]) -> dict:
    """Per speaker held out, the recipe with the best mean over its inner folds."""
    return {o: max((r for r in rows if r["held_out"] == o), key=lambda r: r["mean"])["recipe"]
            for o in sorted({r["held_out"] for r in rows})}


def speed(data: str, clips: int = 40) -> dict:
    """Real-time factors of the Python front-ends: whole clips, and 20 ms pushes."""
    paths = [c.path for c in wavdata.scan_wavs(data)][:clips]
    from slimedge.data.wav import read_wav
    waves = [read_wav(p)[0] for p in paths]
    seconds_audio = sum(len(w) for w in waves) / 8000
    out = {}
    fe_audio.features(fe_audio.from_config(FRONTEND), waves[0], compiled=True)  # compile once
    for name, spec, compiled in (("microfrontend (numpy)", FRONTEND, False),
                                 ("microfrontend (compiled)", FRONTEND, True),
                                 ("logmel", {"kind": "logmel"}, False),
                                 ("mfcc", {"kind": "logmel", "dct": 13}, False)):
        audio = fe_audio.from_config(spec)
        row = {}
        for mode, chunk in (("whole_clip", None), ("push_20ms", 160)):
            t0 = time.process_time()
            for w in waves:
                s = fe_audio.AudioStream(audio, compiled)
                for i in range(0, len(w), chunk or len(w)):
                    s.push(w[i:i + (chunk or len(w))])
            row[mode] = seconds_audio / (time.process_time() - t0)
        out[name] = row
        print(f"  {name}: {row['whole_clip']:.0f}x real time per whole clip, "
              f"{row['push_20ms']:.0f}x in 20 ms pushes", flush=True)
    return {"clips": len(waves), "audio_seconds": seconds_audio, "real_time_factor": out}


def _extra_record(folder: str | None) -> dict | None:
    """What ``--train-extra`` added: the folder's clips and, for a ``tts-digits`` folder, its
    engines, voices and seed (recorded in its tts.json)."""
    if not folder:
        return None
    from slimedge.data import tts

    rec = {"clips": len(wavdata.scan_wavs(folder))}
    made = Path(folder) / tts.MANIFEST
    if made.is_file():
        m = json.loads(made.read_text())
        rec.update({"tts": m["engines"], "voices": len(m["voices"]),
                    "renditions": m["renditions"], "seed": m["seed"]})
    return rec


def _extra_short(extra: dict | None) -> str:
    """``--train-extra``'s record in a table cell."""
    if not extra:
        return "–"
    return f"{extra['voices']} tts voices" if "tts" in extra else f"{extra['clips']:,} clips"


def _name(row: dict) -> str:
    """A run's variant with its fixed gates, e.g. 'LSTM6 f=0.8'."""
    return row["variant"] + "".join(f" {g}={v}" for g, v in row["constants"].items())


def _short(spec: dict) -> str:
    """An audio front-end's spec in a few words: its kind, window and hop."""
    f = fe_audio.from_config(spec)
    return (f"{f.kind} {f.window_ms:g}/{f.hop_ms:g} ms"
            + ("" if getattr(f, "reduces_noise", True) else ", noise reduction off"))


def _table(title: str, header: str, rows: list[str]) -> list[str]:
    """A titled markdown table: the header's columns, the first left-aligned, then the rows."""
    n = header.count("|") - 1
    return [title, "", header, "|---|" + "---:|" * (n - 1), *rows, ""]


def _budget(a: dict) -> str:
    """A run's augmentation, label smoothing, frame loss and extra clips as command-line
    options (the extra clips as the folder ``python -m slimedge tts-digits`` made)."""
    return ((f" --copies {a['copies']} --augment {a['augment']}" if a["augment"] else "")
            + (f" --label-smoothing {a['label_smoothing']:g}" if a.get("label_smoothing") else "")
            + (f" --frame-loss {a['frame_loss']:g}" if a.get("frame_loss") else "")
            + (f" --train-extra {TTS_DIR}" if a.get("train_extra") else "")
            + (" --select last" if a.get("select") == "last" else ""))


def markdown(res: dict) -> str:
    a = res["settings"]
    seeds = ",".join(str(x) for x in sorted({r.get("seed", a["seed"])
                                             for r in res.get("official_seeds", [])}
                                            or {a["seed"]}))
    lines = [HEADING, "",
             f"Raw FSDD (five speakers, 8 kHz) through the front-end `{json.dumps(a['frontend'])}`"
             f", one layer, n = {a['hidden']}, Adam 3e-3 cosine, seed {a['seed']} (official "
             f"split: seeds {seeds}), {audio_markdown.budget_words(a)}"
             + (f" (`python -m slimedge tts-digits {TTS_DIR}`; training split only)"
                if a.get("train_extra") else "")
             + ". "
             f"Machine: {_report.describe(res['machine'])}; {res['date']} (a loaded machine: "
             f"2 cores shared with other jobs).", "",
             "```",
             f"nice -n 10 .venv/bin/python benchmarks/audio.py --only official --seeds "
             f"{seeds} --hidden {a['hidden']} --epochs {a['epochs']}{_budget(a)} --keep DIR "
             f"--out O.json   # both variants; the shipped model is "
             f"DIR/{SHIPPED[0]}.seedS.safetensors of the reported seed",
             f"nice -n 10 .venv/bin/python benchmarks/audio.py --only loso --variants shipped "
             f"--hidden {a['hidden']} --epochs {a['epochs']}{_budget(a)} --out A.json   # and "
             f"--variants LSTM0 --out B.json",
             "nice -n 10 .venv/bin/python benchmarks/audio.py --only speed --out S.json",
             f"nice -n 10 .venv/bin/python benchmarks/audio.py --nested 'RECIPE@FRAME_LOSS"
             f"[+extra][+last]' --epochs {a['epochs']} --copies {a['copies']} --label-smoothing "
             f"{a.get('label_smoothing', 0):g} [--train-extra {TTS_DIR}] --out N.json"
             "   # one per recipe, merged",
             "nice -n 10 .venv/bin/python benchmarks/audio.py --sweep RECIPE --epochs E --copies C "
             "[--seed S] [--label-smoothing LS] [--frame-loss W] [--train-extra DIR] "
             "[--frontend JSON] --out W.json   # a sweep row",
             f"nice -n 10 .venv/bin/python benchmarks/audio.py --only official --variants "
             f"{SHIPPED[0]} --hidden {SHIPPED_HIDDEN} --seeds 0,1,2 --frontend JSON --out C.json"
             "   # a candidate "
             "(also --variants LSTM6:f=0.8 --hidden 64; the same budget as above)",
             "python benchmarks/audio.py --merge O.json,A.json,B.json,S.json,W.json --choice "
             "C1.json,C2.json,C3.json,C4.json --update",
             "```", "",
             "(The sweep rows state their own settings; `benchmarks/results/audio_augment.json` "
             "keeps them too.) "
             "Targets (issue 23): official split shipped ≥ 97.5%, LSTM0 ≥ 98.5%; leave-one-"
             "speaker-out mean ≥ 80%, no fold below 70%.", ""]
    if "official" in res or "loso" in res:
        lines += ["| variant | params | official split (index 0-4 test) | LOSO mean | LOSO worst "
                  "fold |", "|---|---:|---:|---:|---:|"]
        for k, row in enumerate(res.get("official") or res.get("loso")):
            off = (res.get("official") or [None] * 9)[k]
            lo = (res.get("loso") or [None] * 9)[k]
            lines.append(f"| {_name(row)} | {row['params']:,} | "
                         + (f"{off['test_accuracy']:.1%}" if off else "–") + " | "
                         + (f"{lo['mean']:.1%} | {lo['worst']:.1%} ({lo['worst_speaker']})"
                            if lo else "– | –") + " |")
        lines.append("")
    if "choice" in res:
        ch = res["choice"]
        lines += _table("Choosing the shipped model (`--choice`): each candidate's official-split "
                        "runs, seeds 0, 1, 2 at the budget above without the frame loss (the "
                        "choice came first); the pick (**bold**) is the best "
                        "mean validation accuracy, a tie to fewer params; the test column only "
                        "reports. Noise reduction off is `min_signal_remaining` 1 (the noise "
                        "estimate still drives PCAN's gain).",
                        "| candidate | params | noise reduction | validation per seed | mean "
                        "validation | official split per seed |",
                        [f"| {_name(c)} n={c['hidden']} | {c['params']:,} | "
                         f"{_noise_reduction(c['frontend'])} | "
                         + ", ".join(f"{r['val_accuracy']:.1%}" for r in c["runs"]) + " | "
                         + (f"**{c['mean_val_accuracy']:.2%}**" if k == ch["pick"] else
                            f"{c['mean_val_accuracy']:.2%}") + " | "
                         + ", ".join(f"{r['test_accuracy']:.1%}" for r in c["runs"]) + " |"
                         for k, c in enumerate(ch["candidates"])])
    seeds = res.get("official_seeds", [])
    if len(seeds) > len(res.get("official", [])):
        chosen = {(_name(r), r.get("seed")) for r in res["official"]}
        lines += _table("Official split, every seed (each variant's reported run is the one with "
                        "the best validation accuracy, then the lower validation loss; the test "
                        "split played no part in the choice):",
                        "| variant | seed | validation | official split | kept epoch | reported |",
                        [f"| {_name(o)} | {o.get('seed', 0)} | {o['val_accuracy']:.1%} | "
                         f"{o['test_accuracy']:.1%} | {o['best_epoch']} | "
                         f"{'yes' if (_name(o), o.get('seed')) in chosen else ''} |"
                         for o in sorted(seeds, key=lambda o: (_name(o), o.get("seed", 0)))])
    if "sweep" in res:
        lines += _table("Augmentation and front-end sweep (leave-one-speaker-out, the shipped "
                        "variant when each ran; copies: "
                        "augmented copies of each training clip, `none` trains on the clean clips "
                        "only; a second seed moves a fold by up to 5-10 points):",
                        "| variant | front-end | augmentation | label smoothing | frame loss | "
                        "extra clips | kept epoch | seed | epochs | copies | LOSO mean | "
                        "worst fold |",
                        [f"| {_name(r)} | {_short(r.get('frontend', FRONTEND))} | "
                         f"`{r['augment'] or 'none'}` | {r.get('label_smoothing', 0):g} | "
                         f"{r.get('frame_loss', 0):g} | "
                         f"{_extra_short(r.get('train_extra'))} | "
                         f"{'last' if r.get('select') == 'last' else 'best val.'} | "
                         f"{r.get('seed', 0)} | {r.get('epochs', 10)} | "
                         f"{r.get('copies', 2 if r['augment'] not in ('', 'none') else 0)} | "
                         f"{r['mean']:.1%} | {r['worst']:.1%} ({r['worst_speaker']}) |"
                         for r in res["sweep"]])
    if "nested" in res:
        n = res["nested"]
        held = sorted(n["picks"])
        overall = _overall(n["rows"])
        shipped = max(overall, key=overall.get)
        mean = {(r["held_out"], r["recipe"]): r["mean"] for r in n["rows"]}
        bold = lambda x, yes: f"**{x:.1%}**" if yes else f"{x:.1%}"  # noqa: E731
        lines += _table("The training recipe, chosen without the held-out speaker (`--nested`): "
                        "for each speaker held out, each recipe's leave-one-speaker-out over the "
                        "other four (trained on three, tested on the fourth), the mean over those "
                        f"four folds; seed {n['seed']}, {n['epochs']} epochs, {n['copies']} "
                        f"copies, label smoothing {n['label_smoothing']:g}; a recipe is "
                        "`AUGMENTATION@FRAME_LOSS`, and `+extra` adds the synthetic voices of "
                        f"`python -m slimedge tts-digits {TTS_DIR}` to every training split; "
                        "**bold**: the pick for that speaker, and in "
                        "the last column the recipe shipped (the best mean over all twenty "
                        "folds):",
                        "| recipe | " + " | ".join(f"without {s}" for s in held)
                        + " | all folds |",
                        [f"| `{rec}` | " + " | ".join(bold(mean[s, rec], n["picks"][s] == rec)
                                                      for s in held)
                         + f" | {bold(overall[rec], rec == shipped)} |" for rec in n["recipes"]])
    if "speed" in res:
        lines += _table("Python front-ends, real time per core (seconds of audio per CPU second, "
                        "40 FSDD clips, a fresh stream per clip; compiled: "
                        "`AudioStream(compiled=True)`, numba, the same values as NumPy; target "
                        "≥ 500× in 20 ms pushes):", "| front-end | whole clip | 20 ms pushes |",
                        [f"| {name} | {r['whole_clip']:.0f}× | {r['push_20ms']:.0f}× |"
                         for name, r in res["speed"]["real_time_factor"].items()])
    return "\n".join(lines)


def card(res: dict, model: Path, loso_res: dict | None = None) -> dict:
    """The shipped raw-audio model's card (slimedge/zoo/fsdd_audio.json) from a run's results
    and its kept official-split checkpoint; the leave-one-speaker-out figures from ``loso_res``
    (another run's results, its budget recorded) or the same run."""
    from slimedge import formats

    info = formats.info(model)
    off = {r["variant"]: r for r in res["official"]}
    loso_res = loso_res or res
    loso = {r["variant"]: r for r in loso_res.get("loso", [])}
    name = info.variant
    nested_means = ", ".join(f"{rec} {m:.1%}" for rec, m in
                             _overall(loso_res["nested"]["rows"]).items()) \
        if "nested" in loso_res else "not run"
    out_seeds = sorted({r.get("seed", 0) for r in res.get("official_seeds", res["official"])})
    out = {"model": "fsdd_audio.safetensors", "bytes": model.stat().st_size,
           "variant": name, "constants": dict(info.spec.constants),
           "params": off[name]["params"],
           "input": "8 kHz mono 16-bit PCM, through the integer microfrontend recorded in the "
                    "checkpoint (frontend.audio): 60 ms window, 20 ms hop, 40 channels, noise "
                    f"reduction {_noise_reduction(res['settings']['frontend'])}",
           "frontend": res["settings"]["frontend"], "labels": info.labels,
           "training": {**{k: res["settings"].get(k, 0.0) for k in ("hidden", *BUDGET)},
                        "seed": off[name].get("seed", res["settings"]["seed"]),
                        "seeds_run": out_seeds},
           "selection": ("the variant, size and front-end by the official split's validation "
                         "accuracy (10% of the training clips), the mean over seeds 0, 1, 2, "
                         "among LSTM6 f=0.8 n=64 (the model before) and LSTM1 n=48, each with the "
                         "microfrontend's noise reduction on and off (benchmarks/results/"
                         "audio.json: choice); the noise-reduction-off front-end was tried after "
                         "an LSTM1 clip classifier trained with it for the continuous model had "
                         "scored well, on test clips too; the augmentation from the leave-one-"
                         "speaker-out sweep (shift, gain, noise), eq and label smoothing 0.1 "
                         "from exploratory runs with the model before; the frame loss, then "
                         "the synthetic voices of `slimedge tts-digits` (training split only)"
                         + (", then keeping the last epoch instead of the best on validation"
                            if res["settings"].get("select") == "last" else "")
                         + ", each as the recipe with the best mean over twenty leave-one-speaker-"
                         "out folds of four speakers, each of the five left out in turn "
                         f"(benchmarks/results/audio.json: nested: {nested_means}); the "
                         "checkpoint is the "
                         + ("last epoch" if res["settings"].get("select") == "last" else
                            "epoch with the best validation accuracy")
                         + ", and of the seeds run the one with the best validation accuracy"),
           "val_accuracy": off[name]["val_accuracy"],
           "official_split": {"test_accuracy": off[name]["test_accuracy"],
                              "test_n": off[name]["test_n"],
                              "rule": "FSDD's own: index 0-4 of every speaker is the test set"},
           "leave_one_speaker_out": {k: loso[name][k] for k in ("mean", "worst",
                                                                 "worst_speaker")}
           if name in loso else None,
           "leave_one_speaker_out_budget": {k: loso_res["settings"][k] for k in BUDGET
                                            if k in loso_res["settings"]},
           "lstm0": {"params": off["LSTM0"]["params"],
                     "official_split": off["LSTM0"]["test_accuracy"],
                     "leave_one_speaker_out": {k: loso["LSTM0"][k] for k in
                                               ("mean", "worst", "worst_speaker")}
                     if "LSTM0" in loso else None} if "LSTM0" in off else None,
           "data": "Free Spoken Digit Dataset, five speakers (george, jackson, lucas, nicolas, "
                   "yweweler), 2,500 recordings; Zohar Jackson and contributors, CC BY-SA 4.0",
           "license": "CC BY-SA 4.0 (the weights, trained on FSDD)",
           "reproduce": ((f"python -m slimedge tts-digits {TTS_DIR}, then "
                          if res["settings"].get("train_extra") else "")
                         + f"nice -n 10 .venv/bin/python benchmarks/audio.py --only official "
                         f"--variants shipped,LSTM0 --seeds "
                         f"{','.join(str(x) for x in out_seeds)} --hidden "
                         f"{res['settings']['hidden']} --epochs "
                         f"{res['settings']['epochs']}{_budget(res['settings'])} --keep DIR "
                         f"--out RESULTS.json, then --merge RESULTS.json --card "
                         f"DIR/{name}.seed{off[name].get('seed', 0)}.safetensors --loso-from "
                         f"benchmarks/results/audio.json"),
           "check": "slimedge evaluate slimedge/zoo/fsdd_audio.safetensors --data "
                    "../shared/data/fsdd --split-by fsdd",
           "date": res["date"]}
    return out


def merge(parts: list[dict]) -> dict:
    """Results files merged in order (``--merge``): a later part's official-split runs replace
    the earlier runs of the same variant and seed (other seeds add to them: the validation
    choice is made again), its leave-one-speaker-out rows those of the same variant, its sweep
    rows add, its nested rows add (other recipes, the same budget), its speed and choice
    replace. The settings (the official and leave-one-speaker-out runs' budget), machine and date
    are the last part's that has such runs; a run left from a part of other settings stops the
    merge."""
    import copy

    parts = copy.deepcopy(parts)
    res = parts[0]
    origin = {(_name(r), r.get("seed")): res["settings"]
              for r in res.get("official_seeds", res.get("official", []))}
    origin.update({("loso", _name(r)): res["settings"] for r in res.get("loso", [])})
    for other in parts[1:]:
        if "official" in other:
            runs = {(_name(r), r.get("seed")): r
                    for r in res.get("official_seeds", res.get("official", []))}
            for r in other.get("official_seeds", other["official"]):
                runs[_name(r), r.get("seed")] = r
                origin[_name(r), r.get("seed")] = other["settings"]
            res["official"], res["official_seeds"] = by_validation(list(runs.values()))
        if "loso" in other:
            rows = {_name(r): r for r in res.get("loso", [])}
            for r in other["loso"]:
                rows[_name(r)] = r
                origin["loso", _name(r)] = other["settings"]
            res["loso"] = list(rows.values())
        if "official" in other or "loso" in other:  # their budget, machine and date
            res.update({k: other[k] for k in ("settings", "machine", "date") if k in other})
        if "sweep" in other:
            res["sweep"] = res.get("sweep", []) + other["sweep"]
        if "nested" in other and "nested" in res:  # other recipes, the same budget
            n = res["nested"]
            n["recipes"] += [r for r in other["nested"]["recipes"] if r not in n["recipes"]]
            n["rows"] += other["nested"]["rows"]
            n["picks"] = _picks(n["rows"])
        elif "nested" in other:
            res["nested"] = other["nested"]
        for key in ("speed", "choice"):
            if key in other:
                res[key] = other[key]
    def budget(settings: dict) -> dict:  # the seed is each run's own; "val" by default
        return {**{k: v for k, v in settings.items() if k != "seed"},
                "select": settings.get("select", "val")}
    mixed = sorted(" ".join(map(str, k)) for k, v in origin.items()
                   if budget(v) != budget(res["settings"]))
    if mixed:
        raise SystemExit(f"--merge: runs of other settings than the last part's are left "
                         f"({', '.join(mixed)}); merge parts that replace them")
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "fsdd"))
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=SHIPPED_HIDDEN)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--augment", default="", help="a recipe of slimedge.data.augment")
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--frame-loss", type=float, default=0.0,
                    help="the label's cross-entropy at every step of each clip's second half, "
                         "this weight beside the last step's (TrainConfig.frame_loss)")
    ap.add_argument("--train-extra", default=None, metavar="DIR",
                    help="more training clips (TrainConfig.train_extra), e.g. the synthetic "
                         "voices of `python -m slimedge tts-digits DIR`: every run's training "
                         "split gets them; validation and test stay real voices")
    ap.add_argument("--select", default="val", choices=("val", "last"),
                    help="the epoch each run keeps: the best on validation, or the last "
                         "(TrainConfig.select)")
    ap.add_argument("--only", choices=("official", "loso", "speed"), action="append")
    ap.add_argument("--sweep", default=None, metavar="R1;R2;...",
                    help="leave-one-speaker-out per augmentation recipe ('none' for none)")
    ap.add_argument("--nested", default=None, metavar="R1;R2;...",
                    help="choose among training recipes (AUGMENT[@FRAME_LOSS][+extra][+last]) without the "
                         "held-out speaker: leave-one-speaker-out over the other four, per "
                         "speaker held out")
    ap.add_argument("--variants", default="shipped,LSTM0",
                    help="shipped, or VARIANT[:gate=value...] (e.g. LSTM6:f=0.8), comma-separated")
    ap.add_argument("--frontend", default=None, metavar="JSON",
                    help="another audio front-end's spec [default: the shipped model's]")
    ap.add_argument("--seeds", default=None, metavar="S1,S2,...",
                    help="official split: one run per seed, each variant's best by validation "
                         "reported (every run kept in the results) [default: --seed]")
    ap.add_argument("--keep", default=None, metavar="DIR",
                    help="keep the official split's checkpoints here (VARIANT.seedS.safetensors)")
    ap.add_argument("--merge", default=None, metavar="A.json,B.json",
                    help="no runs: merge these results (e.g. one process per variant)")
    ap.add_argument("--card", default=None, metavar="MODEL",
                    help="write slimedge/zoo/fsdd_audio.json for this kept official checkpoint "
                         "(then benchmarks/mcu_audio.py --update and python -m "
                         "slimedge.zoo.audio_markdown --write add its Cortex-M4 figures)")
    ap.add_argument("--choice", default=None, metavar="A.json,B.json",
                    help="the candidates' official-split results, one file each: the table that "
                         "chose the shipped model (recorded in these results)")
    ap.add_argument("--loso-from", default=None, metavar="JSON",
                    help="with --card: the leave-one-speaker-out figures from these results")
    _report.add_output_arguments(ap, RESULTS)
    ap.add_argument("--table-only", action="store_true",
                    help="no runs: the markdown of the results JSON (--out, or the tracked one)")
    args = ap.parse_args(argv)
    _report.settle_outputs(args, RESULTS)
    from slimedge.data import augment
    args.frontend = json.loads(args.frontend) if args.frontend else FRONTEND
    todo = args.only or ["official", "loso", "speed"]
    runs = [SHIPPED if v == "shipped" else _variant_arg(v) for v in args.variants.split(",")]
    res: dict = {"machine": _report.machine(), "date": time.strftime("%Y-%m-%d"),
                 "settings": {"frontend": args.frontend, "hidden": args.hidden,
                              "epochs": args.epochs, "seed": args.seed, "augment": args.augment,
                              "copies": args.copies, "label_smoothing": args.label_smoothing,
                              "frame_loss": args.frame_loss,
                              "train_extra": _extra_record(args.train_extra),
                              "select": args.select}}
    if args.table_only:
        res = json.loads(Path(args.source).read_text())
        print(markdown(res))
        if args.markdown:
            _report.update_markdown_section(BENCHMARKS_MD, HEADING, markdown(res))
        return
    if args.merge:
        res = merge([json.loads(Path(p).read_text()) for p in args.merge.split(",")])
        todo = [t for t in (args.only or []) if t == "speed"]
    elif args.sweep is not None:
        res["sweep"] = []
        for recipe in args.sweep.split(";"):
            args.augment_recipe = augment.parse(recipe)
            print(f"sweep: {recipe or 'none'}", flush=True)
            r = loso(args.data, *SHIPPED, args)
            res["sweep"].append({"augment": recipe, "frontend": args.frontend,
                                 "seed": args.seed, "epochs": args.epochs,
                                 "label_smoothing": args.label_smoothing,
                                 "frame_loss": args.frame_loss,
                                 "train_extra": _extra_record(args.train_extra),
                                 "select": args.select,
                                 "copies": args.copies if args.augment_recipe else 0, **r})
            print(f"  mean {r['mean']:.3f} worst {r['worst']:.3f}", flush=True)
        todo = []
    elif args.nested is not None:
        res["nested"] = nested(args.data, args.nested.split(";"), args)
        todo = []
    args.augment_recipe = augment.parse(args.augment)
    if "official" in todo:
        runs_by_seed, seed0 = [], args.seed
        for seed in [int(x) for x in (args.seeds or str(args.seed)).split(",")]:
            args.seed = seed
            runs_by_seed += [train_once(args.data, v, c, args, split="fsdd") for v, c in runs]
        args.seed = seed0
        res["official"], res["official_seeds"] = by_validation(runs_by_seed)
        for r in res["official"]:
            print(f"official {r['variant']}: {r['test_accuracy']:.3f}", flush=True)
    if "loso" in todo:
        res["loso"] = [loso(args.data, v, c, args) for v, c in runs]
        for r in res["loso"]:
            print(f"loso {r['variant']}: mean {r['mean']:.3f} worst {r['worst']:.3f} "
                  f"({r['worst_speaker']})", flush=True)
    if "speed" in todo:
        res["speed"] = speed(args.data)
    if args.choice:
        res["choice"] = choice(args.choice.split(","))
    print(markdown(res))
    if args.out:
        from slimedge import _io
        _io.write_text(args.out, json.dumps(res, indent=2) + "\n")
    if args.markdown:
        _report.update_markdown_section(BENCHMARKS_MD, HEADING, markdown(res))
    if args.card:
        from slimedge import _io
        new = card(res, Path(args.card), json.loads(Path(args.loso_from).read_text())
                   if args.loso_from else None)
        # the card's device figures come from another benchmark (mcu_audio.py): kept as they
        # are; python -m slimedge.zoo.audio_markdown --write refreshes them and the markdown
        old = json.loads(audio_markdown.CARD.read_text()) if audio_markdown.CARD.is_file() else {}
        if "cortex_m4" in old:
            new["cortex_m4"] = old["cortex_m4"]
        _io.write_text(audio_markdown.CARD, json.dumps(new, indent=2) + "\n")
        print(f"wrote {audio_markdown.CARD.relative_to(ROOT)}; then python -m "
              f"slimedge.zoo.audio_markdown --write (its device figures and markdown card)")


if __name__ == "__main__":
    main()
