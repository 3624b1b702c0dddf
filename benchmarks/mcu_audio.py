"""Audio in, digit out on a Cortex-M4: the integer front-end + the shipped raw-audio model in C,
per second of audio, on FSDD's whole official test split.

The model is the shipped one, slimedge/zoo/fsdd_audio.safetensors (LSTM1, n = 48,
trained on FSDD's official split through the integer microfrontend its config records: 8 kHz,
60 ms windows every 20 ms, 40 channels, the noise estimate (its subtraction off: noise
reduction's min_signal_remaining 1), PCAN, log; ``--model`` names another
audio checkpoint), exported to C full integer (calibrated on the official split's training
clips) and in float. Each export's C stage (``PREFIX_listen``: front-end, input quantisation,
step) runs in unicorn on every test clip, pushed in 20 ms buffers (:mod:`slimedge.devices.audio`):
instructions and cycles per second of audio for the front-end, the model and both, flash, RAM
(state, stack), every output checked against the host build (integer: equal). examples/mcu's
audio firmware then runs under QEMU on the test clips (PCM read through semihosting), its digit
and outputs hash compared with the host build's. Targets (issue 23): integer front-end + model
at 80 MHz <= 4 M cycles per second of audio, RAM <= 12 KB with the stack, flash <= 32 KB.
Prints the tables; ``--update`` writes ``benchmarks/results/mcu_audio.json`` and the
``## Audio on a microcontroller`` section of BENCHMARKS.md.

    python benchmarks/mcu_audio.py [--model PATH] [--clips N] [--firmware-clips N] [--update]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import shutil
import subprocess
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
from slimedge.devices.reference import Export  # noqa: E402
from slimedge.exporters import export  # noqa: E402
from slimedge.frontend import Frontend  # noqa: E402
from slimedge.frontend import audio as frontends  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "mcu_audio.json"
BENCH = ROOT / "BENCHMARKS.md"
SECTION = "## Audio on a microcontroller"
FSDD = ROOT.parent / "shared" / "data" / "fsdd" / "recordings"
MCU = ROOT / "examples" / "mcu"
TARGETS = {"cycles_per_second": 4e6, "ram_bytes": 12 * 1024, "flash_bytes": 32 * 1024}


def audio_model(path: Path, log) -> tuple[dict, object, list]:
    """The audio checkpoint's front-end spec, FSDD's official split through that front-end
    (the training clips calibrate the integer export) and the test clips."""
    model = checkpoint.load(path)
    audio = model.frontend.spec.audio
    if audio is None:
        raise SystemExit(f"{path}: not an audio model (its front-end has no audio section)")
    clips = wavs.scan_wavs(FSDD)
    log(f"front-end over {len(clips)} clips")
    splits = wavs.load_wav_folder(FSDD, audio, split="fsdd")
    return audio.to_config(), splits, wavs.split_clips(clips, "fsdd")["test"]


def logmel_twin(path: Path, spec: dict, work: Path) -> Path:
    """The model behind the float log-mel front-end with the same sample rate, window, hop and
    channels (40 log-mel energies): the same shapes, so its C stage costs what a log-mel model of
    this size costs (the weights read another front-end's features: no accuracy from it)."""
    model = checkpoint.load(path)
    fa = frontends.from_config({"kind": "logmel", "sample_rate": spec["sample_rate"],
                                "window_ms": spec["window_ms"], "hop_ms": spec["hop_ms"],
                                "mel_channels": spec["channels"]})
    model.frontend.spec = Frontend(model.frontend.spec.stages, fa)
    return checkpoint.save(model, work / "logmel-twin.safetensors")


def firmware(c_path: Path, clips: list, work: Path, hop: int) -> dict:
    """examples/mcu's audio firmware (PCM through semihosting) on each clip under QEMU, against
    the host build's outputs in the same 20 ms buffers."""
    build = work / "fw"
    first = subprocess.run(["make", "-C", str(MCU), "-f", "audio.mk", f"MODEL={c_path}",
                            f"BUILD={build}", f"WAV={clips[0].path}", f"PYTHON={sys.executable}",
                            f"{build}/audio-file.elf"], capture_output=True, text=True)
    if first.returncode:
        raise SystemExit(first.stdout + first.stderr)
    pcm = [read_wav(c.path, sample_rate=8000)[0] for c in clips]
    host, _, _ = daudio.host_outputs(Export.read(c_path), pcm, hop)
    agree = correct = 0
    for c, x, want in zip(clips, pcm, host):
        (build / "clip.pcm").write_bytes(np.asarray(x, "<i2").tobytes())
        res = subprocess.run(["qemu-system-arm", "-M", "mps2-an386", "-display", "none",
                              "-monitor", "none", "-serial", "none", "-chardev", "stdio,id=console",
                              "-semihosting-config", "enable=on,target=native,chardev=console",
                              "-kernel", str(build / "audio-file.elf")],
                             capture_output=True, text=True, timeout=120, cwd=MCU)
        out = dict(line.split(": ", 1) for line in res.stdout.splitlines() if ": " in line)
        same = (out.get("outputs hash") == f"0x{daudio.output_hash(want):08x}"
                and out.get("predicted") == str(int(np.argmax(want[-1]))))
        agree += same
        correct += out.get("predicted") == c.label
    return {"clips": len(clips), "equal_to_host": agree, "correct": correct}


def markdown(r: dict) -> str:
    lines = [SECTION, "",
             f"`python benchmarks/mcu_audio.py --update` ({r['date']}; {describe(r['machine'])}; "
             f"{r['elapsed_s'] / 60:.1f} min). {r['compiler']}, `-O2`, Cortex-M4F in unicorn. "
             f"Front-end: {r['frontend_description']}. Model: the shipped raw-audio model "
             f"`{r['model']}` ({r['variant']}, n = {r['hidden_size']}), exported by the "
             f"benchmark. "
             f"{r['clips']} test clips, {r['audio_seconds']:.1f} s of audio, pushed in 20 ms "
             f"buffers; cycles estimated from the executed instruction mix and the core's "
             f"cycle table, at {timing.CLOCK_NOTE['cortex-m4']}.", "",
             "| C export | part | instr / s of audio | cycles / s | % of the core | flash B | "
             "state B | stack B | RAM B |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for q, a in r["runs"].items():
        for part in ("frontend", "model", "together"):
            p = a["per_second_of_audio"][part]
            ram = a["ram_bytes"].get(part, {})
            bold = "**" if part == "together" else ""
            cells = [format(ram[k], ",") if k in ram else "–" for k in ("state", "stack", "total")]
            lines.append(f"| {q} | {bold}{part}{bold} | {p['instructions']:,.0f} | "
                         f"{bold}{p['cycles']:,.0f}{bold} | {100 * p['rtf']:.2f} | "
                         f"{a['flash_bytes'][part]['total']:,} | {' | '.join(cells)} |")
    i = r["runs"]["int8"]
    t = r["targets"]
    ok = lambda v, lim: "met" if v <= lim else "**missed**"  # noqa: E731
    cyc = i["per_second_of_audio"]["together"]["cycles"]
    ram = i["ram_bytes"]["together"]["total"]
    flash = i["flash_bytes"]["together"]["total"]
    lines += ["", "model = together − front-end (the step, the input's normalisation and "
              "quantisation, the outputs' conversion). RAM = the listener's state (window, noise "
              "estimates, h, c) + the PCM buffer + one call's outputs + the stack's high-water "
              f"mark (the front-end's scratch, the FFT's buffer of "
              f"{i['ram_bytes']['frontend']['frontend_scratch_in_stack']:,} B, is in it) + "
              ".data/.bss (0); the model's state is the listener's less the front-end's. "
              "Flash: the image's code and constants (no config JSON). logmel-float: the same "
              "model behind the float log-mel front-end (same rate, window, hop, 40 channels), "
              "float C export, for its cost only (the weights read the microfrontend's features,"
              " so no accuracy from it).", "",
              f"Targets, integer front-end + model: {cyc / 1e6:.2f} M cycles per second of audio "
              f"(≤ {t['cycles_per_second'] / 1e6:g} M: {ok(cyc, t['cycles_per_second'])}), RAM "
              f"{ram:,} B (≤ {t['ram_bytes']:,}: {ok(ram, t['ram_bytes'])}), flash {flash:,} B "
              f"(≤ {t['flash_bytes']:,}: {ok(flash, t['flash_bytes'])}).", "",
              f"Checks: every output of every frame of the {i['check']['frames']:,} frames "
              f"equals the host build's for the integer export (and the device front-end's "
              f"frames equal the Python front-end's); the float export's outputs are within "
              f"{r['runs']['none']['check']['outputs_max_abs_diff_vs_host']:.1e} of the host's. "
              f"Device accuracy (integer export, last frame's class): "
              f"{r['device_accuracy']:.1%} on the {r['clips']} clips. examples/mcu's audio "
              f"firmware under QEMU (PCM through semihosting): {r['firmware']['equal_to_host']} "
              f"of {r['firmware']['clips']} clips give the host build's digit and outputs hash."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=None, help="test clips on the device (all)")
    ap.add_argument("--firmware-clips", type=int, default=None, help="under QEMU (all)")
    ap.add_argument("--model", type=Path, default=None,
                    help="an audio checkpoint (default: the shipped raw-audio model)")
    add_output_arguments(ap, RESULTS)
    args = ap.parse_args(argv)
    settle_outputs(args, RESULTS)
    devices.require("cortex-m4")
    started = time.time()
    log = lambda s: print(f"[{time.time() - started:6.0f} s] {s}", flush=True)  # noqa: E731
    work = Path(tempfile.mkdtemp(prefix="slimedge-mcu-audio-"))
    try:
        ckpt = args.model or zoo.audio_model_path()
        spec, splits, test = audio_model(ckpt, log)
        hop = frontends.from_config(spec).hop_samples
        test = test[:args.clips] if args.clips else test
        pcm = [read_wav(c.path, sample_rate=8000)[0] for c in test]
        runs = {}
        for q in ("int8", "none"):
            log(f"export {q}")
            c_path = export(ckpt, work / f"kws_{q}.c", format="c", quantize=q, data=splits).path
            log(f"{q}: {len(pcm)} clips on the Cortex-M4")
            runs[q] = daudio.measure(c_path, "cortex-m4", pcm, workdir=work / f"dev-{q}")
            if q == "int8":
                fw_clips = test[:args.firmware_clips] if args.firmware_clips else test
                log(f"firmware under QEMU on {len(fw_clips)} clips")
                fw = firmware(c_path, fw_clips, work, hop)
        log(f"float log-mel twin: {len(pcm)} clips on the Cortex-M4")
        twin = export(logmel_twin(ckpt, spec, work), work / "kws_logmel.c", format="c",
                      quantize="none", data=splits).path
        runs["logmel-float"] = daudio.measure(twin, "cortex-m4", pcm, workdir=work / "dev-logmel")
        labels = [c.label for c in test]
        predicted = runs["int8"]["check"]["predicted"]
        report = {"date": _dt.date.today().isoformat(), "machine": machine(),
                  "elapsed_s": time.time() - started,
                  "compiler": toolchains.version("arm-none-eabi-gcc"),
                  "model": shown_path(ckpt, ROOT),
                  "model_sha256": hashlib.sha256(Path(ckpt).read_bytes()).hexdigest(),
                  "variant": runs["int8"]["variant"],
                  "hidden_size": runs["int8"]["hidden_size"], "frontend": spec,
                  "frontend_description": frontends.from_config(spec).description,
                  "clips": len(test), "audio_seconds": runs["int8"]["audio_seconds"],
                  "device_accuracy": float(np.mean([str(p) == lab
                                                    for p, lab in zip(predicted, labels)])),
                  "targets": TARGETS, "runs": runs, "firmware": fw}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = markdown(report)
    print(text)
    write_outputs(args, RESULTS, report, text, BENCH, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
