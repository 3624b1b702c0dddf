"""The shipped continuous model and its decoder on generated streams: events against the truth.

    nice -n 10 python benchmarks/events.py [--model M.safetensors] [--streams 2] [--clips 40]
        [--background-s 120] [--update | --table-only]

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

Targets (issue 24): sequence accuracy >= 95 %, <= 1 false alarm per hour, latency p90 <= 150 ms.
Prints a table; ``--update`` writes benchmarks/results/events.json and BENCHMARKS.md's section.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slimedge import _report, checkpoint, runtime, zoo  # noqa: E402
from slimedge.data import audio as wavdata  # noqa: E402
from slimedge.data import streams  # noqa: E402
from slimedge.runtime import tune  # noqa: E402
from slimedge.runtime.decoder import Settings  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "events.json"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
HEADING = "## Events: the continuous model and its decoder on streams"
NOISES = ("white", "pink")


def sets(clips, rate: int, *, n_streams: int, count: int, background_s: float, seed: int,
         part: str = "test"):
    """(name, background, [Material]) per set: ``part``'s digits (the split's "test" or "val"
    clips) over each noise floor, then background alone (each noise, each recording)."""
    for j, bg in enumerate(NOISES):
        yield part, bg, streams.split_streams(
            clips, rate, split="fsdd", streams=n_streams, count=count, seed=seed * 10 + j,
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


def markdown(res: dict) -> str:
    t = res["totals"]
    d = res["decoder"]
    lines = [HEADING, "",
             f"Model: `{res['model']}`, decoder at its defaults (window {d['window_ms']:g} ms, "
             f"threshold {d['threshold']:g}, min count {d['min_count']}, refractory "
             f"{d['refractory_ms']:g} ms, {d['arithmetic']}); one state per "
             f"stream. Test streams: the official split's test clips, gaps 0.3-1.0 s over white "
             f"or pink noise at -60..-40 dBFS, gains -12..+6 dB. Background streams: noise at "
             f"-50..-30 dBFS, the sound-icons recordings (water, canary) at -40..-20 dBFS, no "
             f"digit. Latency: event time - the digit's end (matched events: right label, "
             f"between the digit's start and 0.3 s after its end). Machine: "
             f"{_report.describe(res['machine'])}; {res['date']}.", "",
             f"Command: `{res['command']}`", "",
             "| set | background | seconds | digits | sequence acc. | misses | insertions | "
             "latency median ms | latency p90 ms | false alarms | per hour |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [row_line(r) for r in res["rows"]]
    lines += ["", f"All test streams: sequence accuracy {t['sequence_accuracy']:.3f} (target "
              f">= 0.95), latency p90 {t['latency_p90_s'] * 1000:.0f} ms (target <= 150 ms); "
              f"all background: {t['false_alarms']} false alarms in {t['background_hours']:.3f} h"
              f" = {t['false_alarms_per_hour']:.1f} per hour (target <= 1; one alarm in this "
              f"much audio is {1 / t['background_hours']:.1f} per hour)."]
    return "\n".join(lines)


#: the grid --tune searches (:data:`slimedge.runtime.tune.GRID` with higher thresholds)
TUNE_GRID = {"window_ms": [60.0, 100.0, 200.0, 300.0],
             "threshold": [0.5, 0.6, 0.7, 0.8, 0.85, 0.9], "min_count": [1, 2, 3, 5],
             "refractory_ms": [100.0, 300.0, 500.0]}


def tune_on_validation(model, config: dict, clips, rate: int, *, n_streams: int, count: int,
                       background_s: float, seed: int, budget: float) -> None:
    """The decoder's settings tuned on streams of the official split's validation clips and on
    background alone (other seeds than the benchmark's), within ``budget`` false alarms per
    hour: prints the best rows (what :data:`slimedge.runtime.decoder.DEFAULTS` records)."""
    data = [(m.samples, m.events()) for _, _, ms in sets(
        clips, rate, n_streams=n_streams, count=count, background_s=background_s, seed=seed,
        part="val") for m in ms]
    best, rows = tune.tune(config, tune.outputs(model, data), [t for _, t in data], TUNE_GRID,
                           max_false_alarms_per_hour=budget)
    for r in rows[:8]:
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()})
    print("best:", best.as_config())


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
    rows, pooled = measure(model, config, settings, clips, rate, n_streams=args.streams,
                           count=args.clips, background_s=args.background_s, seed=args.seed)
    bg = [r for r in rows if not r["n"]]
    hours = sum(r["seconds"] for r in bg) / 3600.0
    alarms = sum(r["false_alarms"] for r in bg)
    totals = {**{k: pooled[k] for k in ("n", "edit_distance", "sequence_accuracy", "misses",
                                        "insertions", "latency_median_s", "latency_p90_s")},
              "false_alarms": alarms,
              "background_hours": hours, "false_alarms_per_hour": alarms / hours}
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    res = {"model": str(name), "decoder": settings.as_config(), "machine": _report.machine(),
           "date": time.strftime("%Y-%m-%d"),
           "command": "nice -n 10 " + _report.command_line(__file__, sys.argv[1:] if argv is None
                                                           else argv, ROOT),
           "settings": {"streams": args.streams, "clips": args.clips,
                        "background_s": args.background_s, "seed": args.seed},
           "rows": rows, "totals": totals}
    print(markdown(res))
    _report.write_outputs(args, RESULTS, res, markdown(res), BENCHMARKS_MD, HEADING)


if __name__ == "__main__":
    main()
