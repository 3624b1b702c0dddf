"""The shipped continuous model and its decoder on generated streams: events against the truth.

    nice -n 10 python benchmarks/events.py [--model M.safetensors] [--streams 2] [--clips 40]
        [--background-s 120] [--only official,loso,lstm0,candidates] [--jobs 2]
        [--loso-epochs N] [--candidates LSTM3:64,LSTM1:48,...]
        [--clip-from CKPT] [--stream-extra DIR] [--keep DIR]
        [--update | --table-only]

For the shipped continuous model (``slimedge/zoo/fsdd_stream.safetensors``) and its decoder at the
settings it runs with by default (the config's "decoder" section over
:data:`slimedge.runtime.decoder.DEFAULTS`, integer arithmetic), through the runtime
(``model.audio_stream()`` then :class:`~slimedge.runtime.decoder.Decoder`, one state per stream,
never reset). Sets (:func:`slimedge.runtime.tune.evaluate` scores each):

* ``test``: streams of the official split's test clips (index 0-4: speakers heard in training,
  clips not) joined by 0.3-1.0 s gaps over white or pink noise at -60..-40 dBFS (the noise
  floor), gains -12..+6 dB: sequence accuracy (1 - edit distance / N), misses, insertions,
  detection latency (event time - the digit's end, median and p90);
* ``background``: white and pink noise at -50..-30 dBFS and the real non-speech recordings
  (:data:`slimedge.data.streams.RECORDINGS`: water, a canary) at -40..-20 dBFS, no digit: false
  alarms per hour.

Two more parts train their models here (``--only``; ``--jobs`` trainings at once, one thread
each), each with the shipped models' recipes as their checkpoints record them: a clip classifier
with the shipped raw-audio model's (``zoo/fsdd_audio.safetensors``: info.train; its front-end
the continuous model's; its extra training clips, ``train_extra``, read from where it names them:
``python -m slimedge tts-digits runs/tts-digits`` first) on the part's split, then a
continuous model with the shipped continuous model's (info.train_stream) warm-started from it;
the decoder is then tuned on that split's validation streams as ``--tune`` tunes the shipped one
(same grid, same false-alarm budget):

* ``loso``: leave-one-speaker-out, one such pair per held-out speaker (``split="speaker"``: none of
  the speaker's clips in training or validation, the init included), scored on streams of the
  held-out speaker's clips (as many streams and clips as ``test``'s, same gaps, noises and gains)
  and on the background streams; ``--loso-epochs`` trains the continuous models for fewer epochs
  than the recipe's (the table says so);
* ``lstm0``: the same pair with LSTM0 (no gate fixed, n alike) on the official split, scored like
  the shipped model: LSTM0 at the same budget;
* ``candidates``: the same pair for each of ``--candidates`` (``VARIANT:N[:k=v]``, default
  :data:`CANDIDATES`) on the official split, reporting the tuned decoder's validation figures
  too: the measurement that chose the shipped model's variant and size (the best validation
  sequence accuracy; a tie goes to fewer parameters).

``--clip-from CKPT`` takes the clip classifiers' recipe from another checkpoint's info.train;
``--stream-extra DIR`` draws DIR's clips (``slimedge tts-digits``'s voices) into the continuous
models' training streams (``StreamTrainConfig.train_extra``), never their validation streams;
``--keep DIR`` keeps both checkpoints of every trained pair. A run of some parts keeps the other
parts of the results file it updates.

Targets (issue 24): sequence accuracy >= 95 %, >= 85 % mean over leave-one-speaker-out, <= 1 false
alarm per hour, latency p90 <= 150 ms. Prints a table; ``--update`` writes
benchmarks/results/events.json and BENCHMARKS.md's section.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slimedge import _report, checkpoint, runtime, zoo  # noqa: E402
from slimedge.data import audio as wavdata  # noqa: E402
from slimedge.data import streams  # noqa: E402
from slimedge.runtime import tune  # noqa: E402
from slimedge.runtime.decoder import Settings  # noqa: E402
from slimedge.zoo import audio_markdown  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "events.json"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
HEADING = "## Events: the continuous model and its decoder on streams"
NOISES = ("white", "pink")
PARTS = ("official", "loso", "lstm0", "candidates")
#: the variants and sizes ``--only candidates`` compares by default (within the Cortex-M4 budget)
CANDIDATES = "LSTM6:64:f=0.8,LSTM3:64,LSTM3:80,LSTM1:48,LSTM1:56"


def sets(clips, rate: int, *, n_streams: int, count: int, background_s: float, seed: int,
         part: str = "test", split: dict | None = None):
    """(name, background, [Material]) per set: ``part``'s digits (the split's "test" or "val"
    clips; ``split``: :func:`~slimedge.data.streams.split_streams`'s split arguments, default
    the official split) over each noise floor, then background alone (each noise, each
    recording)."""
    split = split or {"split": "fsdd"}
    for j, bg in enumerate(NOISES):
        yield part, bg, streams.split_streams(
            clips, rate, **split, streams=n_streams, count=count, seed=seed * 10 + j,
            background_kind=bg, level_db=(-60.0, -40.0))[part]
    kinds = [(bg, bg, (-50.0, -30.0)) for bg in NOISES]
    kinds += [(name, path, (-40.0, -20.0)) for name, path in streams.RECORDINGS.items()]
    for j, (name, kind, level) in enumerate(kinds):
        yield "background", name, [streams.make_stream([], rate, count=0, seconds=background_s,
                                                       background_kind=kind, level_db=level,
                                                       seed=seed * 100 + j)]


def measure(model, config: dict, settings: Settings, clips, rate: int, **kw) -> tuple:
    """The rows (one per set) and the pooled test streams' figures (latency percentiles over
    every matched digit)."""
    rows, pooled = [], ([], [])
    for name, bg, materials in sets(clips, rate, **kw):
        data = [(m.samples, m.events()) for m in materials]
        outs = tune.outputs(model, data)
        r = tune.evaluate(config, outs, [t for _, t in data], settings)
        if name != "background":
            pooled[0].extend(outs)
            pooled[1].extend(t for _, t in data)
        rows.append({"set": name, "background": bg, "streams": len(materials),
                     "seconds": sum(m.seconds for m in materials), **{k: r[k] for k in (
                         "n", "events", "edit_distance", "misses", "insertions",
                         "sequence_accuracy", "latency_median_s", "latency_p90_s",
                         "false_alarms", "false_alarms_per_hour")}})
        print(row_line(rows[-1]), flush=True)
    return rows, tune.evaluate(config, *pooled, settings)


def _f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def row_line(r: dict) -> str:
    return (f"| {r['set']} | {r['background']} | {r['seconds']:.0f} | {r['n']} | "
            f"{_f(r['sequence_accuracy'], '.3f')} | {r['misses'] if r['n'] else '-'} | "
            f"{r['insertions'] if r['n'] else '-'} | "
            f"{_f(r['latency_median_s'] and r['latency_median_s'] * 1000, '.0f')} | "
            f"{_f(r['latency_p90_s'] and r['latency_p90_s'] * 1000, '.0f')} | "
            f"{r['false_alarms'] if not r['n'] else '-'} | "
            f"{_f(r['false_alarms_per_hour'], '.1f')} |")


def _decoder(d: dict) -> str:
    return (f"window {d['window_ms']:g} ms, threshold {d['threshold']:g}, min count "
            f"{d['min_count']}, refractory {d['refractory_ms']:g} ms, {d['arithmetic']}")


def _total_cells(t: dict) -> str:
    return (f"{t['sequence_accuracy']:.3f} | {t['misses']} | {t['insertions']} | "
            f"{_f(t['latency_p90_s'] and t['latency_p90_s'] * 1000, '.0f')} | "
            f"{t['false_alarms']} | {t['false_alarms_per_hour']:.1f}")


def markdown(res: dict) -> str:
    commands = res.get("commands") or {"official": res["command"]}
    lines = [HEADING, "", *(_official(res) if "totals" in res else []), "Commands:", "", "```",
             *commands.values(), "```"]
    lines += _trained(res) + _candidates(res)
    return "\n".join(lines)


def _variant(r: dict, size: bool = False) -> str:
    """A trained row's model, e.g. 'LSTM6 n=64 f=0.8' (its hidden size with ``size``)."""
    return (r["variant"] + (f" n={r['hidden_size']}" if size else "")
            + "".join(f" {k}={v:g}" for k, v in r["constants"].items()))


def _candidates(res: dict) -> list[str]:
    rows = res.get("candidates")
    if not rows:
        return []
    best = max(rows, key=lambda r: (r["validation"]["sequence_accuracy"], -r["params"]))
    lines = ["", "Choosing the continuous model (`--only candidates`): per candidate, a clip "
             "classifier and a continuous model trained as the LSTM0 row's (the shipped recipes, "
             "the official split, the candidate's variant and size), the decoder tuned on "
             "validation streams within 1 false alarm per hour; the pick is the best validation "
             "sequence accuracy, a tie to fewer params (**bold**); the test columns only "
             "report. A candidate's cost on the Cortex-M4 grows with its multiply-adds per "
             "frame (about its params): "
             "`python benchmarks/mcu_events.py --model CKPT` measures one.", "",
             "| candidate | params | val. sequence acc. | val. false alarms | decoder | test "
             "sequence acc. | misses | insertions | latency p90 ms | false alarms | per hour |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        v = r["validation"]
        acc = f"{v['sequence_accuracy']:.3f}"
        lines.append(f"| {_variant(r, size=True)} | {r['params']:,} | {f'**{acc}**' if r is best else acc} | "
                     f"{v['false_alarms']} | {_decoder(r['decoder'])} | "
                     f"{_total_cells(r['totals'])} |")
    return lines


def _official(res: dict) -> list[str]:
    t = res["totals"]
    d = res["decoder"]
    lines = [
             f"Model: `{res['model']}`, decoder at its defaults ({_decoder(d)}); one state per "
             f"stream. Test streams: the official split's test clips, gaps 0.3-1.0 s over white "
             f"or pink noise at -60..-40 dBFS, gains -12..+6 dB. Background streams: noise at "
             f"-50..-30 dBFS, the sound-icons recordings (water, canary; never in training: "
             f"`slimedge.data.streams.RECORDINGS` vs `TRAIN_RECORDINGS`) at -40..-20 dBFS, no "
             f"digit. Latency: event time - the digit's end (matched events: right label, "
             f"between the digit's start and 0.3 s after its end). Machine: "
             f"{_report.describe(res['machine'])}; {res['date']}.", "",
             "| set | background | seconds | digits | sequence acc. | misses | insertions | "
             "latency median ms | latency p90 ms | false alarms | per hour |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [row_line(r) for r in res["rows"]]
    lines += ["", f"All test streams: sequence accuracy {t['sequence_accuracy']:.3f} (target "
              f">= 0.95), latency p90 {t['latency_p90_s'] * 1000:.0f} ms (target <= 150 ms); "
              f"all background: {t['false_alarms']} false alarms in {t['background_hours']:.3f} h"
              f" = {t['false_alarms_per_hour']:.1f} per hour (target <= 1; one alarm in this "
              f"much audio is {1 / t['background_hours']:.1f} per hour).", ""]
    return lines


def _streams(r: dict) -> str:
    s = r["settings"]
    return (f"{s['streams']} streams of {s['clips']} clips per noise, "
            f"{2 * s['streams'] * s['clips']} digits")


def _trained(res: dict) -> list[str]:
    lines = []
    trained = [r for r in ([res["lstm0"]] if "lstm0" in res else []) +
               (res["loso"]["folds"] if "loso" in res else [])]
    if trained:
        cr = trained[0].get("clip_recipe")
        lines += ["", "Models trained by the benchmark (`--only loso,lstm0`): a clip classifier "
                  + (f"with the recipe of {trained[0]['clip_from']} (`--clip-from`)"
                     if trained[0].get("clip_from") else
                     "with the shipped raw-audio model's recipe at the time of the run")
                  + (f" ({audio_markdown.budget_words(cr)})" if cr else "")
                  + ", then a continuous model with the shipped one's"
                  + (f" (and {trained[0]['stream_extra']}'s clips in its training streams, "
                     f"`--stream-extra`)" if trained[0].get("stream_extra") else "")
                  + " warm-started from it, on the row's split; the decoder tuned on "
                  "that split's validation streams under the same false-alarm budget as the "
                  "shipped one's (1 per hour: none in the validation background, "
                  f"{trained[0]['settings']['background_s']:g} s of each kind). Test streams as "
                  f"above ({_streams(trained[0])}) of the "
                  "official split's test clips (LSTM0) or of the held-out speaker's clips "
                  "(leave-one-speaker-out: none of that speaker's clips in either model's "
                  "training or validation); background streams as above, "
                  f"{trained[0]['settings']['background_s']:g} s each.", "",
                  "| model | split | epochs (best) | decoder | digits | sequence acc. | misses | "
                  "insertions | latency p90 ms | false alarms | per hour |",
                  "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in trained:
            split = ("official" if r["split"]["split"] == "fsdd" else
                     "held out: " + ",".join(r["split"]["test_speakers"]))
            lines.append(f"| {_variant(r)} | {split} | {r['epochs']} ({r['best_epoch']}) | "
                         f"{_decoder(r['decoder'])} | {r['totals']['n']} | "
                         f"{_total_cells(r['totals'])} |")
        if "loso" in res:
            lines += ["", f"Leave-one-speaker-out mean sequence accuracy: "
                      f"{res['loso']['mean_sequence_accuracy']:.3f} (target >= 0.85)."]
    return lines


#: the grid --tune searches (:data:`slimedge.runtime.tune.GRID` with higher thresholds)
TUNE_GRID = {"window_ms": [60.0, 100.0, 200.0, 300.0],
             "threshold": [0.5, 0.6, 0.7, 0.8, 0.85, 0.9], "min_count": [1, 2, 3, 5],
             "refractory_ms": [100.0, 300.0, 500.0]}


def tune_on_validation(model, config: dict, clips, rate: int, *, n_streams: int, count: int,
                       background_s: float, seed: int, budget: float, split: dict | None = None,
                       show: int = 8) -> tuple[Settings, dict]:
    """The decoder's settings tuned on streams of the split's validation clips and on
    background alone (other seeds than the benchmark's), within ``budget`` false alarms per
    hour: prints the best ``show`` rows (the official split's: what
    :data:`slimedge.runtime.decoder.DEFAULTS` records) and returns the best settings and their
    validation figures."""
    data = [(m.samples, m.events()) for _, _, ms in sets(
        clips, rate, n_streams=n_streams, count=count, background_s=background_s, seed=seed,
        part="val", split=split) for m in ms]
    best, rows = tune.tune(config, tune.outputs(model, data), [t for _, t in data], TUNE_GRID,
                           max_false_alarms_per_hour=budget)
    for r in rows[:show]:
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()})
    print("best:", best.as_config())
    return best, rows[0]


def recipes(clip_from: str | None = None) -> tuple[dict, dict]:
    """The shipped models' training recipes, as their checkpoints record them: the clip
    classifier's (:class:`slimedge.train_config.TrainConfig` fields; from the checkpoint
    ``clip_from`` instead where given) and the continuous model's
    (:class:`slimedge.train_stream.StreamTrainConfig` fields)."""
    clip = checkpoint.read_config(clip_from or zoo.audio_model_path())["info"]["train"]
    stream = checkpoint.read_config(zoo.stream_model_path())["info"]["train_stream"]
    return clip, stream


def train_pair(data: str, variant: str, constants: dict, split: dict, workdir: Path,
               clip_recipe: dict, stream_recipe: dict, epochs: int | None = None,
               hidden_size: int | None = None) -> Path:
    """A clip classifier, then a continuous model warm-started from it, both on ``split`` with
    the given recipes (:func:`recipes`) but ``variant`` and ``constants`` (and the continuous
    model's ``epochs`` when given), both of the continuous recipe's hidden size (or
    ``hidden_size``) and front-end (the clip recipe's may differ: a warm start needs the same):
    the continuous checkpoint's path."""
    from slimedge.train import train
    from slimedge.train_config import TrainConfig
    from slimedge.train_stream import StreamTrainConfig, train_stream

    common = {"data": data, "variant": variant, "constants": constants,
              "hidden_size": hidden_size or stream_recipe["hidden_size"],
              "audio": stream_recipe["audio"], **split}
    clip = workdir / "clip.safetensors"
    train(TrainConfig.from_dict({**clip_recipe, **common}), clip, quiet=True)
    out = workdir / "stream.safetensors"
    cfg = {**stream_recipe, **common, "init": str(clip)}
    train_stream(StreamTrainConfig(**{**cfg, **({"epochs": epochs} if epochs else {})}), out,
                 say=lambda *a: None)
    return out


def trained_run(job: dict) -> dict:
    """One trained part's model (:func:`train_pair`), its decoder tuned on its split's
    validation streams, scored on its split's test streams and on background (:func:`measure`):
    the row of the results. Runs in a worker process."""
    import torch

    torch.set_num_threads(1)
    clips = wavdata.scan_wavs(job["data"])
    clip_recipe, stream_recipe = recipes(job.get("clip_from"))
    if job.get("stream_extra"):
        stream_recipe = {**stream_recipe, "train_extra": job["stream_extra"]}
    t0 = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        path = train_pair(job["data"], job["variant"], job["constants"], job["split"],
                          Path(tmp), clip_recipe, stream_recipe, job.get("epochs"),
                          job.get("hidden_size"))
        if job.get("keep"):  # both checkpoints, e.g. to ship the continuous one
            Path(job["keep"]).mkdir(parents=True, exist_ok=True)
            for name in ("clip", "stream"):
                shutil.copyfile(Path(tmp) / f"{name}.safetensors",
                                Path(job["keep"]) / f"{job['name']}.{name}.safetensors")
        train_s = time.process_time() - t0
        model, config = runtime.load(path), checkpoint.read_config(path)
        rate = config["frontend"]["audio"]["sample_rate"]
        kw = {k: job[k] for k in ("n_streams", "count", "background_s")}
        settings, val = tune_on_validation(model, config, clips, rate, seed=job["seed"] + 1000,
                                           budget=1.0, split=job["split"], show=0, **kw)
        rows, pooled = measure(model, config, settings, clips, rate, seed=job["seed"],
                               split=job["split"], **kw)
        best = config["info"]["best"]
        params = sum(p.numel() for p in checkpoint.load(path).parameters())
    return {"name": job["name"], "variant": job["variant"], "constants": job["constants"],
            "hidden_size": config["lstm"]["hidden_size"],
            "split": job["split"], "epochs": job.get("epochs") or stream_recipe["epochs"],
            "settings": {"streams": job["n_streams"], "clips": job["count"],
                         "background_s": job["background_s"], "seed": job["seed"]},
            "best_epoch": best["epoch"], "train_cpu_s": train_s, "params": params,
            "clip_recipe": _summary(clip_recipe),
            "stream_extra": stream_recipe.get("train_extra"), "clip_from": job.get("clip_from"),
            "decoder": settings.as_config(), "rows": rows,
            "validation": {k: val[k] for k in ("n", "sequence_accuracy", "misses", "insertions",
                                               "false_alarms", "false_alarms_per_hour")},
            "totals": totals(rows, pooled)}


def _summary(r: dict) -> dict:
    """A clip classifier's recipe (:func:`recipes`' first) in the few fields the table states
    (:func:`slimedge.zoo.audio_markdown.recipe_budget`)."""
    return audio_markdown.recipe_budget(r)


def totals(rows: list[dict], pooled: dict) -> dict:
    """The test streams pooled (``pooled``: :func:`measure`'s) and false alarms summed over the
    background rows."""
    bg = [r for r in rows if not r["n"]]
    hours = sum(r["seconds"] for r in bg) / 3600.0
    alarms = sum(r["false_alarms"] for r in bg)
    return {**{k: pooled[k] for k in ("n", "edit_distance", "sequence_accuracy", "misses",
                                      "insertions", "latency_median_s", "latency_p90_s")},
            "false_alarms": alarms, "background_hours": hours,
            "false_alarms_per_hour": alarms / hours}


def parse_candidates(text: str) -> list[tuple[str, int, dict]]:
    """``VARIANT:N[:k=v...]`` items, comma-separated -> (variant, hidden size, constants); a
    malformed item raises ValueError (argparse's error for ``--candidates``)."""
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        variant, n, *consts = item.split(":")
        out.append((variant, int(n), {k: float(v) for k, v in (c.split("=") for c in consts)}))
    return out


def trained_parts(parts: list[str], args, clips) -> dict:
    """``loso`` and ``lstm0`` (see the module's docstring), ``args.jobs`` trainings at once."""
    common = {"data": args.data, "n_streams": args.streams, "count": args.clips,
              "background_s": args.background_s, "seed": args.seed,
              "stream_extra": args.stream_extra, "clip_from": args.clip_from, "keep": args.keep}
    jobs = []
    if "lstm0" in parts:
        jobs.append({**common, "name": "lstm0", "variant": "LSTM0", "constants": {},
                     "split": {"split": "fsdd"}})
    if "candidates" in parts:
        jobs += [{**common, "name": f"candidate-{v}-{n}", "variant": v, "constants": c,
                  "hidden_size": n, "split": {"split": "fsdd"}}
                 for v, n, c in args.candidates]
    if "loso" in parts:
        stream_recipe = recipes()[1]
        variant, constants = stream_recipe["variant"], stream_recipe["constants"]
        jobs += [{**common, "name": f"loso-{s}", "variant": variant, "constants": constants,
                  "split": {"split": "speaker", "test_speakers": [s]}, "epochs": args.loso_epochs}
                 for s in sorted({c.speaker for c in clips if c.speaker})]
    with ProcessPoolExecutor(args.jobs) as pool:
        done = list(pool.map(trained_run, jobs))
    for r in done:
        t = r["totals"]
        print(f"{r['name']}: sequence accuracy {t['sequence_accuracy']:.3f}, false alarms "
              f"{t['false_alarms']}, latency p90 {_f(t['latency_p90_s'], '.3f')} s", flush=True)
    out = {}
    if "lstm0" in parts:
        out["lstm0"] = next(r for r in done if r["name"] == "lstm0")
    if "candidates" in parts:
        out["candidates"] = [r for r in done if r["name"].startswith("candidate-")]
    if "loso" in parts:
        folds = [r for r in done if r["name"].startswith("loso-")]
        out["loso"] = {"folds": folds, "mean_sequence_accuracy": float(np.mean(
            [r["totals"]["sequence_accuracy"] for r in folds]))}
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "fsdd" / "recordings"))
    ap.add_argument("--model", default=None, help="a continuous checkpoint [default: the zoo's]")
    ap.add_argument("--streams", type=int, default=2, help="test streams per noise")
    ap.add_argument("--clips", type=int, default=40, help="clips per test stream")
    ap.add_argument("--background-s", type=float, default=120.0,
                    help="seconds of each background-only stream")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--tune", action="store_true",
                    help="no benchmark: tune the decoder on validation streams (prints)")
    ap.add_argument("--table-only", action="store_true",
                    help="no runs: the section from the JSON")
    ap.add_argument("--only", default="official",
                    help=f"the parts to run, some of {','.join(PARTS)} (see the docstring)")
    ap.add_argument("--jobs", type=int, default=1, help="trainings at once (loso, lstm0)")
    ap.add_argument("--candidates", default=CANDIDATES, type=parse_candidates,
                    help="the candidates part's VARIANT:N[:k=v] items [default: %(default)s]")
    ap.add_argument("--keep", default=None, metavar="DIR",
                    help="keep the trained parts' checkpoints there (NAME.clip.safetensors, "
                         "NAME.stream.safetensors)")
    ap.add_argument("--clip-from", default=None, metavar="CKPT",
                    help="the trained parts' clip classifiers take this checkpoint's recipe "
                         "(info.train) [default: the zoo's raw-audio model's]")
    ap.add_argument("--stream-extra", default=None, metavar="DIR",
                    help="the trained parts' continuous models also hear these clips in their "
                         "training streams (e.g. runs/tts-digits) [default: the recipe's]")
    ap.add_argument("--loso-epochs", type=int, default=None,
                    help="the loso parts' continuous models' epochs [default: the recipe's]")
    _report.add_output_arguments(ap, RESULTS)
    args = ap.parse_args(argv)
    _report.settle_outputs(args, RESULTS)
    if args.table_only:
        return _report.publish(args, None, RESULTS, BENCHMARKS_MD, HEADING, markdown)
    path = Path(args.model) if args.model else zoo.stream_model_path()
    model = runtime.load(path)
    config = checkpoint.read_config(path)
    settings = Settings.from_config(config)
    rate = config["frontend"]["audio"]["sample_rate"]
    clips = wavdata.scan_wavs(args.data)
    if args.tune:
        return tune_on_validation(model, config, clips, rate, n_streams=args.streams,
                                  count=args.clips, background_s=args.background_s,
                                  seed=args.seed + 1000, budget=1.0)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        ap.error(f"--only: expected some of {','.join(PARTS)}, got {args.only!r}")
    res = (json.loads(args.source.read_text()) if args.out is not None and args.source.exists()
           and set(parts) != set(PARTS) else {})  # the parts not run are kept
    if "official" in parts:
        rows, pooled = measure(model, config, settings, clips, rate, n_streams=args.streams,
                               count=args.clips, background_s=args.background_s, seed=args.seed)
        name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        res.update({"model": str(name), "decoder": settings.as_config(), "rows": rows,
                    "totals": totals(rows, pooled)})
        res["settings"] = {"streams": args.streams, "clips": args.clips,
                           "background_s": args.background_s, "seed": args.seed}
    res.update(trained_parts([p for p in parts if p != "official"], args, clips))
    res.update({"machine": _report.machine(), "date": time.strftime("%Y-%m-%d")})
    res.setdefault("commands", {})[",".join(parts)] = "nice -n 10 " + _report.command_line(
        __file__, sys.argv[1:] if argv is None else argv, ROOT)
    print(markdown(res))
    _report.write_outputs(args, RESULTS, res, markdown(res), BENCHMARKS_MD, HEADING)


if __name__ == "__main__":
    main()
