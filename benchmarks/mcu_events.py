"""Events on a Cortex-M4: front-end + model + event decoder in C (``PREFIX_events``), per second
of audio, on a long stream of FSDD clips (issue 24).

The chain of issue 24 measured on compiled code in unicorn (:mod:`slimedge.devices.audio`):
the feasibility study's integer microfrontend (8 kHz, 60 ms windows every 20 ms, 40 channels),
an LSTM6 of the shipped model's size (n = 64, f = 0.8) with a head of 11 classes
(``_silence_`` and the digits) applied every frame, exported full integer, and the decoder
(integer arithmetic, its default settings). By default the shipped continuous model
(``slimedge/zoo/fsdd_stream.safetensors``: its own front-end, which differs from the one above
only in its upper edge, 3750 Hz); ``--model CKPT`` measures another continuous model,
``--random`` an LSTM6 of the same size with random weights behind the front-end above (cycles,
flash and RAM hardly depend on the weights; the events do: its head is scaled so that they
fire). The stream: ``--clips`` FSDD test clips (index 0-4) joined by
0.3-1.0 s of low noise, pushed in 20 ms buffers. Reports instructions and cycles per second of
audio for the front-end, the model, the decoder and the chain, flash, RAM, and the device's
events against the host build's (equal). Target (issue 24): the chain <= 5 % of an 80 MHz core,
RAM <= 12 KB. ``--update`` writes ``benchmarks/results/mcu_events.json`` and the ``## Events on
a microcontroller`` section of BENCHMARKS.md.

    python benchmarks/mcu_events.py [--clips 40] [--model CKPT | --random] [--update]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slimedge import checkpoint, devices, zoo  # noqa: E402
from slimedge._report import (  # noqa: E402
    add_output_arguments,
    describe,
    machine,
    settle_outputs,
    shown_path,
    write_outputs,
)
from slimedge.data import audio as wavs  # noqa: E402
from slimedge.data.wav import read_wav  # noqa: E402
from slimedge.devices import audio as daudio  # noqa: E402
from slimedge.devices import timing, toolchains  # noqa: E402
from slimedge.exporters import export  # noqa: E402
from slimedge.frontend import Frontend, Standardize  # noqa: E402
from slimedge.frontend import audio as frontends  # noqa: E402
from slimedge.runtime.decoder import Settings  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "mcu_events.json"
BENCH = ROOT / "BENCHMARKS.md"
SECTION = "## Events on a microcontroller"
FSDD = ROOT.parent / "shared" / "data" / "fsdd" / "recordings"
FRONTEND = {"kind": "microfrontend", "sample_rate": 8000, "window_ms": 60, "hop_ms": 20,
            "channels": 40, "upper_hz": 3800.0}
LABELS = ["_silence_"] + [str(k) for k in range(10)]
TARGETS = {"core_fraction": 0.05, "ram_bytes": 12 * 1024}


def random_model(work: Path, pcm: list) -> Path:
    """LSTM6 n = 64 (f = 0.8) with random weights behind the front-end, standardised on the
    stream's features, 11 classes with the silence class: a continuous model's shape."""
    import torch

    from slimedge.models import SequenceClassifier
    fa = frontends.from_config(FRONTEND)
    torch.manual_seed(0)
    m = SequenceClassifier("LSTM6", fa.output_size, 64, len(LABELS),
                           constants={"i": 1.0, "f": 0.8, "o": 1.0},
                           frontend=Frontend((Standardize(),), fa))
    feats = np.concatenate([frontends.features(fa, x) for x in pcm[:10]])
    m.frontend.stage("standardize").set_stats(feats.mean(0), feats.std(0) + 1e-3)
    config, tensors = m.checkpoint_state()
    config["head"]["labels"] = LABELS
    config["stream"] = {"background": "_silence_", "frame_ms": FRONTEND["hop_ms"]}
    # the head sharpened (x 6) so the random posteriors swing and the decoder fires
    return checkpoint.write(work / "continuous.safetensors", config,
                            {k: v.detach().numpy() * (6.0 if k.startswith("head") else 1.0)
                             for k, v in tensors.items()})


def stream(pcm: list) -> np.ndarray:
    rng = np.random.default_rng(0)
    parts = []
    for x in pcm:
        gap = int(rng.uniform(0.3, 1.0) * 8000)
        parts += [x, rng.normal(0, 20, gap).astype(np.int16)]
    return np.concatenate(parts)


def calibration(pcm: list, audio: dict):
    """The int8 export's calibration frames: the features of the clips by the model's audio
    front-end (its config's ``frontend.audio``)."""
    from slimedge.data.sequences import SequenceData
    from slimedge.data.splits import DataSplits
    fa = frontends.from_config(audio)
    seqs = [frontends.features(fa, x).astype(np.float32) for x in pcm]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in seqs])])
    d = SequenceData(np.concatenate(seqs), offsets, np.arange(len(seqs)) % len(LABELS), LABELS)
    return DataSplits("stream-frames", d, d, d)


def markdown(r: dict) -> str:
    a = r["run"]
    per = a["per_second_of_audio"]
    lines = [SECTION, "",
             f"`python benchmarks/mcu_events.py --update` ({r['date']}; {describe(r['machine'])}; "
             f"{r['elapsed_s'] / 60:.1f} min). {r['compiler']}, `-O2`, Cortex-M4F in unicorn. "
             f"Front-end: {r['frontend_description']}. Model: {r['model']}, exported full "
             f"integer. Decoder: {r['decoder']}. A stream of {r['clips']} FSDD test clips with "
             f"0.3-1.0 s noise gaps, {a['audio_seconds']:.1f} s, pushed in 20 ms buffers "
             f"through `PREFIX_events`; cycles from the executed instruction mix and the core's "
             f"cycle table, at {timing.CLOCK_NOTE['cortex-m4']}.", "",
             "| part | instr / s of audio | cycles / s | % of the core | flash B | state B |",
             "|---|---:|---:|---:|---:|---:|"]
    for part in ("frontend", "model", "decoder", "chain"):
        p = per[part]
        flash = a["flash_bytes"].get(part, {}).get("total")
        state = a["ram_bytes"].get(part, {}).get("state")
        bold = "**" if part == "chain" else ""
        lines.append(f"| {bold}{part}{bold} | {p['instructions']:,.0f} | {bold}{p['cycles']:,.0f}"
                     f"{bold} | {100 * p['rtf']:.2f} | {'–' if flash is None else f'{flash:,}'} "
                     f"| {'–' if state is None else f'{state:,}'} |")
    ram = a["ram_bytes"]["chain"]
    frac = per["chain"]["rtf"]
    ok = lambda v, lim: "met" if v <= lim else "**missed**"  # noqa: E731
    lines += ["", f"RAM of the chain: {ram['total']:,} B (state {ram['state']:,}, PCM buffer "
              f"{ram['pcm_buffer']}, events {ram['outputs']}, stack {ram['stack']:,}, .data/.bss "
              f"{ram['data_bss']}). decoder = chain − (front-end + model): the table softmax, "
              f"the window's sums, the run and refractory rule. Targets: the chain "
              f"{100 * frac:.2f} % of the core (≤ {100 * r['targets']['core_fraction']:g} %: "
              f"{ok(frac, r['targets']['core_fraction'])}), RAM {ram['total']:,} B "
              f"(≤ {r['targets']['ram_bytes']:,}: {ok(ram['total'], r['targets']['ram_bytes'])}). "
              f"Check: the device's {a['check']['events']['events']} events equal the host "
              f"build's ({'passed' if a['check']['events']['passed'] else 'FAILED'})."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=40, help="test clips in the stream")
    ap.add_argument("--model", type=Path, default=None, help="a continuous model's checkpoint "
                    "(default: the shipped fsdd_stream)")
    ap.add_argument("--random", action="store_true",
                    help="random weights of the shipped size instead of a trained model")
    add_output_arguments(ap, RESULTS)
    args = ap.parse_args(argv)
    settle_outputs(args, RESULTS)
    devices.require("cortex-m4")
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="slimedge-mcu-events-"))
    try:
        test = wavs.split_clips(wavs.scan_wavs(FSDD), "fsdd")["test"][:args.clips]
        pcm = [read_wav(c.path, sample_rate=8000)[0] for c in test]
        ckpt = (random_model(work, pcm) if args.random
                else args.model or zoo.stream_model_path())
        config = checkpoint.read(ckpt).config
        audio = config["frontend"]["audio"]
        c_path = export(ckpt, work / "events.c", format="c", quantize="int8",
                        data=calibration(pcm, audio), accuracy_tolerance=1.0).path
        run = daudio.measure(c_path, "cortex-m4", [stream(pcm)], workdir=work / "dev")
        report = {"date": _dt.date.today().isoformat(), "machine": machine(),
                  "elapsed_s": time.time() - started,
                  "compiler": toolchains.version("arm-none-eabi-gcc"),
                  "frontend": audio,
                  "frontend_description": frontends.from_config(audio).description,
                  "model": ("LSTM6 n = 64, f = 0.8, 11 classes, random weights (the head x 6)"
                            if args.random else shown_path(ckpt, ROOT)),
                  "decoder": ", ".join(f"{k} {v}" for k, v in
                                       Settings.from_config(config).as_config().items()),
                  "clips": len(test), "targets": TARGETS, "run": run}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = markdown(report)
    print(text)
    write_outputs(args, RESULTS, report, text, BENCH, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
