"""A continuous model on generated streams: per-frame accuracy at the true clip spans.

    nice -n 10 .venv/bin/python benchmarks/streams.py [--model M.safetensors] [--streams 4]
        [--clips 50] [--update | --table-only]

For the shipped continuous model (``slimedge/zoo/fsdd_stream.safetensors``) by default: streams
of the official split's test clips (index 0-4, speakers heard in training, clips not) and of its
validation clips, one set per background (silence, white and pink noise at -60..-40 dBFS), gaps
0.3-1.0 s, gains -12..+6 dB, each stream run with one state from start to end. Reported per set:

* ``frame_accuracy``: argmax = the frame's label (the clip's over its frames, ``_silence_``
  elsewhere), over every frame;
* ``end_accuracy``: argmax at each clip's last frame = its digit (what a decoder waiting for the
  digit's end reads; the feasibility study's LSTM0 read 91% there);
* ``span_accuracy``: the mean probability over each clip's frames has its digit as argmax;
* ``background_digit_frames``: the fraction of background frames whose argmax is a digit (what a
  decoder's threshold and minimum count must reject).

The decoder's own figures (sequence accuracy, false alarms per hour, latency) are the decoder's
benchmark; these are its inputs. Prints a table; ``--update`` writes
benchmarks/results/streams.json and BENCHMARKS.md's section.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slimedge import _report, checkpoint, formats, zoo  # noqa: E402
from slimedge.data import audio as wavdata  # noqa: E402
from slimedge.data import streams  # noqa: E402
from slimedge.frontend.audio import features  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "streams.json"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
HEADING = "## Streams: the continuous model per frame"
BACKGROUNDS = ("silence", "white", "pink")


def measure(model, audio, clips, *, n_streams: int, count: int, background: str,
            seed: int) -> dict:
    import torch

    labels = list(model.labels)
    bg = labels.index(streams.BACKGROUND_LABEL)
    tot = {"frames": 0, "frame_right": 0, "ends": 0, "end_right": 0, "span_right": 0,
           "bg_frames": 0, "bg_digit": 0}
    for k in range(n_streams):
        m = streams.make_stream(clips, audio.sample_rate, count=count, background_kind=background,
                                level_db=(-60, -40), seed=seed * 1000 + k)
        f = features(audio, m.samples, compiled=True).astype(np.float32)
        y = streams.frame_labels(m, audio.window_samples, audio.hop_samples, len(f), labels)
        with torch.no_grad():
            p = torch.softmax(model.forward_steps(torch.from_numpy(f[None]))[0], -1)[0].numpy()
        pred = p.argmax(1)
        tot["frames"] += len(y)
        tot["frame_right"] += int((pred == y).sum())
        tot["bg_frames"] += int((y == bg).sum())
        tot["bg_digit"] += int(((y == bg) & (pred != bg)).sum())
        for c in m.placed:
            lo, hi = streams.frame_span(c, audio.window_samples, audio.hop_samples)
            if hi >= len(y) or hi < lo:
                continue
            want = labels.index(c.label)
            tot["ends"] += 1
            tot["end_right"] += int(pred[hi] == want)
            tot["span_right"] += int(p[lo:hi + 1].mean(0).argmax() == want)
    return {"background": background, "streams": n_streams, "clips": tot["ends"],
            "seconds": tot["frames"] * audio.hop_samples / audio.sample_rate,
            "frame_accuracy": tot["frame_right"] / tot["frames"],
            "end_accuracy": tot["end_right"] / tot["ends"],
            "span_accuracy": tot["span_right"] / tot["ends"],
            "background_digit_frames": tot["bg_digit"] / tot["bg_frames"]}


def markdown(res: dict) -> str:
    lines = [HEADING, "", f"Model: `{res['model']}`; streams of clips joined by 0.3-1.0 s gaps over each "
             f"background at -60..-40 dBFS, gains -12..+6 dB, one state per stream. Machine: "
             f"{_report.describe(res['machine'])}; {res['date']}.", "",
             "Command: `nice -n 10 .venv/bin/python benchmarks/streams.py --update`", "",
             f"Training (from the checkpoint): {res.get('training', '')}", "",
             "| clips | background | clips placed | frame acc. | at clip end | span mean | "
             "background frames read as a digit |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in res["rows"]:
        lines.append(f"| {r['split']} | {r['background']} | {r['clips']} | "
                     f"{r['frame_accuracy']:.3f} | {r['end_accuracy']:.3f} | "
                     f"{r['span_accuracy']:.3f} | {r['background_digit_frames']:.3f} |")
    return "\n".join(lines)


CARD = ROOT / "slimedge" / "zoo" / "fsdd_stream.json"


def write_card(res: dict) -> None:
    """The shipped continuous model's card: what it is, how it was trained, its licence, and the
    per-frame figures of ``res`` (this benchmark's results)."""
    from slimedge import _io

    path = zoo.stream_model_path()
    cfg = checkpoint.read_config(path)
    info = cfg.get("info") or {}
    card = {"model": path.name, "bytes": path.stat().st_size, "labels": cfg["head"]["labels"],
            "stream": cfg["stream"], "frontend": cfg["frontend"]["audio"],
            "variant": cfg["lstm"]["variant"]["name"],
            "constants": cfg["lstm"]["variant"]["constants"],
            "hidden_size": cfg["lstm"]["hidden_size"], "training": res.get("training"),
            "train_stream": info.get("train_stream"), "speakers": info["data"]["speakers"],
            "per_frame": res["rows"], "measured": {"date": res["date"],
                                                   "command": "python benchmarks/streams.py"},
            "licence": "CC BY-SA 4.0 (the weights): trained on the Free Spoken Digit Dataset, "
                       "Zohar Jackson and contributors, CC BY-SA 4.0 "
                       "(https://github.com/Jakobovski/free-spoken-digit-dataset)"}
    _io.write_text(CARD, json.dumps(card, indent=2) + "\n")
    print(f"wrote {CARD}")


def _kept(recipe: dict) -> str:
    """What a continuous model's training kept its epoch by (StreamTrainConfig.select; before
    the field existed, the accuracy at clip ends)."""
    if recipe.get("select", "ends") == "ends":
        return "accuracy at clip ends"
    d = recipe["val_decoder"]
    return (f"sequence accuracy of the decoder at {d['window_ms']:g} ms, {d['threshold']:g}, "
            f"{d['min_count']}, {d['refractory_ms']:g} ms")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "fsdd" / "recordings"))
    ap.add_argument("--model", default=None, help="a continuous checkpoint [default: the zoo's]")
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--clips", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--table-only", action="store_true",
                    help="no runs: BENCHMARKS.md's section from the JSON")
    ap.add_argument("--card", action="store_true",
                    help="no runs: write slimedge/zoo/fsdd_stream.json from the tracked results")
    _report.add_output_arguments(ap, RESULTS)
    args = ap.parse_args(argv)
    _report.settle_outputs(args, RESULTS)
    if args.card:
        return write_card(json.loads(Path(args.source).read_text()))
    if args.table_only:
        return _report.publish(args, None, RESULTS, BENCHMARKS_MD, HEADING, markdown)
    path = Path(args.model) if args.model else zoo.stream_model_path()
    model = checkpoint.load(path)
    audio = formats.info(path).frontend.audio
    parts = wavdata.split_clips(wavdata.scan_wavs(args.data), "fsdd")
    rows = []
    for split in ("test", "val"):
        for j, bg in enumerate(BACKGROUNDS):
            r = measure(model, audio, parts[split], n_streams=args.streams, count=args.clips,
                        background=bg, seed=args.seed * 10 + j + (0 if split == "test" else 5))
            rows.append({"split": split, **r})
            print(f"{split:5s} {bg:8s} frames {r['frame_accuracy']:.3f}  ends "
                  f"{r['end_accuracy']:.3f}  spans {r['span_accuracy']:.3f}  background read as "
                  f"digit {r['background_digit_frames']:.3f}", flush=True)
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    info = checkpoint.read_config(path).get("info") or {}
    t, best = info.get("train_stream") or {}, info.get("best") or {}
    init = info.get("init") or {}
    training = (f"{t.get('variant')} {t.get('constants')} n={t.get('hidden_size')}"
                + (f", warm-started from {init['path']} (sha256 {init['sha256'][:16]})"
                   if init else "") +
                f", {t.get('epochs')} epochs of {t.get('streams')} fresh streams x "
                f"{t.get('clips_per_stream')} clips (backgrounds {', '.join(t['backgrounds'])}"
                f"; speed {t.get('speed')}; first {t.get('onset_ignore', 0):g} of each clip "
                f"without loss) and {t.get('background_streams', 0)} background-only streams, "
                f"{t.get('chunk')}-frame chunks, state never reset; kept epoch "
                f"{best.get('epoch')} (best {_kept(t)} on {t.get('val_streams')} validation "
                f"streams)") if t else "not recorded"
    res = {"training": training, "machine": _report.machine(),
           "date": time.strftime("%Y-%m-%d"), "model": str(name),
           "settings": {"streams": args.streams, "clips": args.clips, "seed": args.seed},
           "rows": rows}
    text = markdown(res)
    print(text)
    _report.write_outputs(args, RESULTS, res, text, BENCHMARKS_MD, HEADING)


if __name__ == "__main__":
    main()
