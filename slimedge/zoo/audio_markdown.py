"""The shipped raw-audio model's card on the device, and its markdown: the Cortex-M4 figures of
``slimedge/zoo/fsdd_audio.json`` come from ``benchmarks/results/mcu_audio.json`` (the run of
``benchmarks/mcu_audio.py`` on that very checkpoint), and ``slimedge/zoo/fsdd_audio.md`` is
written from the JSON card alone, so each figure has one source (a test checks both).

    python -m slimedge.zoo.audio_markdown [--write]

Prints the markdown card; ``--write`` rewrites the card's ``cortex_m4`` section and the
markdown (run from a checkout: the figures are the benchmarks'). ``benchmarks/audio.py --card``
writes the accuracy part of the card.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from .. import _io

ROOT = Path(__file__).resolve().parents[2]

MCU = ROOT / "benchmarks" / "results" / "mcu_audio.json"
CARD = ROOT / "slimedge" / "zoo" / "fsdd_audio.json"
CARD_MD = ROOT / "slimedge" / "zoo" / "fsdd_audio.md"
MODEL = ROOT / "slimedge" / "zoo" / "fsdd_audio.safetensors"
PARTS = ("frontend", "model", "together")


def device_section(mcu: dict) -> dict:
    """The card's ``cortex_m4`` entry from mcu_audio.json: per second of audio (instructions,
    cycles, share of the core) for the front-end, the model and both, flash and RAM, for the
    full-integer export (the float export's totals beside it)."""
    def run(q: str) -> dict:
        a = mcu["runs"][q]
        return {"per_second_of_audio": {p: {k: a["per_second_of_audio"][p][k]
                                            for k in ("instructions", "cycles", "rtf")}
                                        for p in PARTS},
                "flash_bytes": {p: a["flash_bytes"][p]["total"] for p in PARTS},
                "ram_bytes": {"state": a["ram_bytes"]["together"]["state"],
                              "stack": a["ram_bytes"]["together"]["stack"],
                              "total": a["ram_bytes"]["together"]["total"]}}
    i8 = mcu["runs"]["int8"]
    return {"source": "benchmarks/results/mcu_audio.json (python benchmarks/mcu_audio.py)",
            "date": mcu["date"], "model": mcu["model"], "compiler": mcu["compiler"],
            "flags": i8["flags"], "clock": i8["clock"], "basis": i8["basis"],
            "clips": mcu["clips"], "audio_seconds": mcu["audio_seconds"],
            "device_accuracy": mcu["device_accuracy"],
            "int8": run("int8"), "float": run("none"),
            "int8_equal_to_host_frames": i8["check"]["frames"],
            "firmware_equal_to_host": f"{mcu['firmware']['equal_to_host']} of "
                                      f"{mcu['firmware']['clips']} clips"}


def extra_words(extra: dict | str) -> str:
    """A run's extra training clips in words: benchmarks/audio.py's record of ``--train-extra``,
    or the folder as a recipe names it."""
    if isinstance(extra, str):
        return f"the extra training clips of {extra} (`python -m slimedge tts-digits {extra}`)"
    if "tts" in extra:
        return (f"{extra['clips']:,} synthetic training clips in {extra['voices']} voices "
                f"(`slimedge tts-digits`: {', '.join(extra['tts'].values())})")
    return f"{extra['clips']:,} extra training clips"


def budget_words(b: dict) -> str:
    """A clip classifier's training budget in words, for the card and the benchmarks' tables:
    ``epochs``, ``augment`` (a recipe's names, comma-separated) and its ``copies``, and where
    given ``label_smoothing``, ``frame_loss``, ``train_extra`` (:func:`extra_words`) and
    ``select`` (``"last"``: the last epoch kept, not the best on validation)."""
    return (f"{b['epochs']} epochs, augmentation `{b['augment'] or 'none'}`"
            + (f" ({b['copies']} copies)" if b["augment"] and b.get("copies") else "")
            + (f", label smoothing {b['label_smoothing']:g}" if b.get("label_smoothing") else "")
            + (f", frame loss {b['frame_loss']:g}" if b.get("frame_loss") else "")
            + (", the last epoch kept" if b.get("select") == "last" else "")
            + (f", {extra_words(b['train_extra'])}" if b.get("train_extra") else ""))


def recipe_budget(train: dict) -> dict:
    """A clip classifier's recipe (TrainConfig fields, as a checkpoint's ``info.train`` records
    them) in the fields :func:`budget_words` takes."""
    return {"epochs": train["epochs"],
            "augment": ",".join(sorted(train.get("augment") or {})) or "none",
            "copies": train.get("augment_copies", 0),
            "label_smoothing": train.get("label_smoothing") or 0,
            "frame_loss": train.get("frame_loss") or 0, "train_extra": train.get("train_extra"),
            "select": train.get("select", "val")}


def markdown(card: dict) -> str:
    """The model card in markdown, every figure from the JSON card."""
    off, loso, l0 = card["official_split"], card["leave_one_speaker_out"], card["lstm0"]
    dev = card["cortex_m4"]
    fe = card["frontend"]
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    met = lambda ok: "met" if ok else "not met"  # noqa: E731
    lines = [
        f"# Model card: `{card['model']}` (the shipped raw-audio digit model)", "",
        f"{card['variant']} (n = {card['training']['hidden']}"
        + (f", constants {', '.join(f'{k} = {v:g}' for k, v in card['constants'].items())}"
           if card["constants"] else "") + ") + a linear head over "
        f"{len(card['labels'])} digits, {card['params']:,} parameters, {card['bytes']:,} bytes. "
        f"Input: {card['input']}. Front-end: {fe['kind']}, {fe['sample_rate']} Hz, "
        f"{fe['window_ms']:g} ms window, {fe['hop_ms']:g} ms hop, {fe['lower_hz']:g}-"
        f"{fe['upper_hz']:g} Hz.", "",
        "## Accuracy", "",
        "| | official split | leave-one-speaker-out mean | worst fold | parameters |",
        "|---|---:|---:|---:|---:|",
        f"| **{card['variant']}** (this model) | **{pct(off['test_accuracy'])}** | "
        f"{pct(loso['mean'])} | {pct(loso['worst'])} ({loso['worst_speaker']}) | "
        f"{card['params']:,} |",
        f"| LSTM0, same budget | {pct(l0['official_split'])} | "
        f"{pct(l0['leave_one_speaker_out']['mean'])} | "
        f"{pct(l0['leave_one_speaker_out']['worst'])} "
        f"({l0['leave_one_speaker_out']['worst_speaker']}) | {l0['params']:,} |", "",
        f"- **Official split**: {off['rule']} ({off['test_n']} clips). Training: "
        f"{budget_words(card['training'])}, seed {card['training']['seed']}.",
        f"- **Leave-one-speaker-out**: each of the five speakers held out in turn (its 500 "
        f"clips the test set), budget {budget_words(card['leave_one_speaker_out_budget'])}. This "
        f"measures an unheard voice.",
        f"- **Against issue 23's targets**: official split >= 97.5% "
        f"({met(off['test_accuracy'] >= 0.975)}), LSTM0 >= 98.5% "
        f"({met(l0['official_split'] >= 0.985)}); leave-one-speaker-out mean >= 80% and no fold "
        f"below 70% ({met(loso['mean'] >= 0.8 and loso['worst'] >= 0.7)}).",
        f"- **Selection**: {card['selection']}.",
        f"- **Check**: `{card['check']}`.", "",
        "## On a Cortex-M4 (front-end + model in C)", "",
        f"`{dev['source']}`, {dev['date']}: {dev['compiler']}, `{dev['flags']}`, in unicorn; "
        f"{dev['clips']} official test clips ({dev['audio_seconds']:.1f} s of audio) in 20 ms "
        f"buffers; {dev['basis']}, at {dev['clock']}.", "",
        "| C export | part | instructions / s of audio | cycles / s | % of the core | flash B |",
        "|---|---|---:|---:|---:|---:|"]
    for q in ("int8", "float"):
        for p in PARTS:
            s = dev[q]["per_second_of_audio"][p]
            lines.append(f"| {q} | {p} | {s['instructions']:,.0f} | {s['cycles']:,.0f} | "
                         f"{100 * s['rtf']:.2f} | {dev[q]['flash_bytes'][p]:,} |")
    i8 = dev["int8"]["ram_bytes"]
    fl = dev["float"]["ram_bytes"]
    lines += ["", f"RAM (front-end + model, state + PCM buffer + outputs + stack): int8 "
              f"{i8['total']:,} B (state {i8['state']:,}, stack {i8['stack']:,}); float "
              f"{fl['total']:,} B. The integer export's outputs equal the host build's on all "
              f"{dev['int8_equal_to_host_frames']:,} frames; accuracy on the device "
              f"{pct(dev['device_accuracy'])}; examples/mcu's audio firmware under QEMU: "
              f"{dev['firmware_equal_to_host']} give the host's digit and outputs hash.", "",
              "## Data and licence", "",
              f"{card['data']}. Weights: {card['license']}. Rebuild: `{card['reproduce']}`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true",
                    help="rewrite slimedge/zoo/fsdd_audio.json's cortex_m4 and fsdd_audio.md")
    args = ap.parse_args(argv)
    if not MCU.is_file():
        raise SystemExit(f"{MCU}: not there (run from a checkout of slimedge)")
    mcu = json.loads(MCU.read_text())
    if mcu.get("model_sha256") != hashlib.sha256(MODEL.read_bytes()).hexdigest():
        raise SystemExit(f"{MCU.name} was not measured on {MODEL.name} (its model_sha256 "
                         f"differs): rerun python benchmarks/mcu_audio.py --update")
    card = {**json.loads(CARD.read_text()), "cortex_m4": device_section(mcu)}
    text = markdown(card)
    print(text)
    if args.write:
        _io.write_text(CARD, json.dumps(card, indent=2) + "\n")
        _io.write_text(CARD_MD, text)
        print(f"wrote {CARD.relative_to(ROOT)} and {CARD_MD.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
