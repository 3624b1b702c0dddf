"""The shipped raw-audio model's card (slimedge/zoo/fsdd_audio.json and fsdd_audio.md) holds what
issue 23 asks, each figure as the benchmark that measured it recorded it: official-split
accuracy (benchmarks/results/audio_shipped.json), leave-one-speaker-out mean and worst fold for
it and LSTM0 (benchmarks/results/audio.json, recomputed here from the folds), parameters (counted
from the checkpoint), and flash, RAM and instructions per second of audio on the Cortex-M4 for
front-end + model (benchmarks/results/mcu_audio.json, measured on this very checkpoint)."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from slimedge import zoo
from slimedge.zoo import audio_markdown

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def results(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


@pytest.fixture(scope="module")
def card() -> dict:
    return zoo.audio_card()


def test_accuracy_figures_are_the_benchmarks(card):
    off = {r["variant"]: r for r in results("audio_shipped.json")["official"]}
    loso_run = results("audio.json")
    loso = {r["variant"]: r for r in loso_run["loso"]}
    assert card["official_split"]["test_accuracy"] == off[card["variant"]]["test_accuracy"]
    assert card["official_split"]["test_n"] == 250
    assert card["lstm0"]["official_split"] == off["LSTM0"]["test_accuracy"]
    assert card["params"] == off[card["variant"]]["params"]
    assert card["lstm0"]["params"] == off["LSTM0"]["params"]
    for got, variant in ((card["leave_one_speaker_out"], card["variant"]),
                         (card["lstm0"]["leave_one_speaker_out"], "LSTM0")):
        folds = loso[variant]["folds"]
        assert sorted(f["speaker"] for f in folds) == ["george", "jackson", "lucas", "nicolas",
                                                        "yweweler"]
        acc = np.array([f["test_accuracy"] for f in folds], dtype=np.float64)
        assert got["mean"] == pytest.approx(acc.mean(), abs=1e-12)
        assert got["worst"] == acc.min()
        assert got["worst_speaker"] == folds[int(acc.argmin())]["speaker"]
    budget = card["leave_one_speaker_out_budget"]
    assert budget == {k: loso_run["settings"][k] for k in ("epochs", "augment", "copies",
                                                           "label_smoothing", "frame_loss",
                                                           "train_extra", "select")
                      if k in loso_run["settings"]}


def test_parameters_are_the_checkpoints(card):
    """Trainable parameters: the checkpoint's tensors less the input normalisation's."""
    tensors = load_file(str(zoo.audio_model_path()))
    trainable = sum(v.size for k, v in tensors.items() if not k.startswith(("norm.", "frontend.")))
    assert trainable == card["params"]


def test_device_figures_are_the_measured_ones_on_this_checkpoint(card):
    mcu = results("mcu_audio.json")
    assert mcu["model_sha256"] == hashlib.sha256(zoo.audio_model_path().read_bytes()).hexdigest()
    dev = card["cortex_m4"]
    for q, key in (("int8", "int8"), ("float", "none")):
        run = mcu["runs"][key]
        for part in ("frontend", "model", "together"):
            for k in ("instructions", "cycles", "rtf"):
                assert dev[q]["per_second_of_audio"][part][k] == run["per_second_of_audio"][part][k]
            assert dev[q]["flash_bytes"][part] == run["flash_bytes"][part]["total"]
        assert dev[q]["ram_bytes"]["total"] == run["ram_bytes"]["together"]["total"]
    i8 = dev["int8"]
    together = i8["per_second_of_audio"]["together"]
    assert together["cycles"] == pytest.approx(
        i8["per_second_of_audio"]["frontend"]["cycles"] + i8["per_second_of_audio"]["model"]["cycles"])
    assert dev["device_accuracy"] == mcu["device_accuracy"]


def test_the_markdown_card_is_written_from_the_json(card):
    text = (Path(zoo.__file__).parent / "fsdd_audio.md").read_text()
    assert text == audio_markdown.markdown(card)
    for figure in (f"{100 * card['official_split']['test_accuracy']:.1f}%",
                   f"{100 * card['leave_one_speaker_out']['worst']:.1f}%",
                   f"{card['cortex_m4']['int8']['per_second_of_audio']['together']['cycles']:,.0f}",
                   f"{card['cortex_m4']['int8']['ram_bytes']['total']:,} B"):
        assert figure in text, figure


def test_the_readme_quotes_the_measured_device_figures():
    r = results("mcu_audio.json")["runs"]["int8"]
    t = r["per_second_of_audio"]["together"]
    quoted = (f"front-end + model on a Cortex-M4 at 80 MHz: {t['cycles'] / 1e6:.2f} M cycles per "
              f"second of audio ({100 * t['rtf']:.1f}% of the core), "
              f"{r['ram_bytes']['together']['total']:,} B of RAM with the stack, "
              f"{r['flash_bytes']['together']['total']:,} B of flash")
    assert quoted in " ".join((ROOT / "README.md").read_text().split()), quoted


def test_the_readme_quotes_the_augmentation_sweep():
    """The README's leave-one-speaker-out sentence: every mean it quotes for the recipes it
    compares is a row of benchmarks/results/audio_augment.json (10 epochs, 2 copies)."""
    rows = {(r["augment"], r.get("seed", 0)): r["mean"]
            for r in results("audio_augment.json")["sweep"] if r.get("epochs", 10) == 10
            and (r.get("frontend") or {}).get("kind", "microfrontend") == "microfrontend"}
    text = " ".join((ROOT / "README.md").read_text().split())
    quoted = (f"`vtlp` ({100 * rows['shift,gain,noise,vtlp', 0]:.1f}% and "
              f"{100 * rows['shift,gain,noise,vtlp', 1]:.1f}% over two seeds against "
              f"{100 * rows['shift,gain,noise', 0]:.1f}% and "
              f"{100 * rows['shift,gain,noise', 1]:.1f}% without it")
    assert quoted in text, quoted


def test_the_readme_quotes_the_frame_loss_runs_and_the_nested_choice():
    """The README's frame-loss, synthetic-voice and kept-epoch sentences: the
    leave-one-speaker-out means per seed of the shipped variant's recipes are rows of
    benchmarks/results/audio.json's sweep, and the nested means are its nested rows' (recomputed
    here from the inner folds); the shipped model's recipe is the nested choice."""
    res = results("audio.json")
    rows = {}
    for r in res["sweep"]:
        if r["variant"] == "LSTM1" and r.get("epochs") == 30:
            rows.setdefault((r["augment"], r.get("frame_loss", 0), bool(r.get("train_extra")),
                             r.get("select", "val")), []).append((r["seed"], r["mean"]))
    seeds = {k: ", ".join(f"{100 * m:.1f}%" for _, m in sorted(v)[:-1])
             + f" and {100 * sorted(v)[-1][1]:.1f}%" for k, v in rows.items()}
    nested = {rec: 100 * np.mean([a for r in res["nested"]["rows"] if r["recipe"] == rec
                                  for a in r["inner"].values()])
              for rec in res["nested"]["recipes"]}
    text = " ".join((ROOT / "README.md").read_text().split())
    base = "shift,gain,noise,eq"
    for quoted in (f"leave-one-speaker-out from {seeds[base, 0, False, 'val']} (seeds 0, 1, 2) "
                   f"to {seeds[base, 1, False, 'val']}; `stretch` on top gave "
                   f"{seeds[base + ',stretch', 1, False, 'val']}",
                   f"the frame loss alone had the best mean, "
                   f"{nested[base + '@1']:.1f}% against "
                   f"{nested[base + '@0']:.1f}% for the recipe before and "
                   f"{nested[base + ',stretch@1']:.1f}% with `stretch`",
                   f"leave-one-speaker-out from {seeds[base, 1, False, 'val']} (seeds 0, 1, 2) to "
                   f"{seeds[base, 1, True, 'val']}, and the nested choice, where only three real "
                   f"voices train each inner fold, from {nested[base + '@1']:.1f}% to "
                   f"{nested[base + '@1+extra']:.1f}% (every speaker left out preferred them to the "
                   f"frame loss alone)",
                   f"raised leave-one-speaker-out from {seeds[base, 1, True, 'val']} (seeds 0, 1, "
                   f"2) to {seeds[base, 1, True, 'last']}, and the nested choice from "
                   f"{nested[base + '@1+extra']:.1f}% to {nested[base + '@1+extra+last']:.1f}% "
                   f"(the pick for three of the five speakers left out)"):
        assert quoted in text, quoted
    by = {(r["held_out"], r["recipe"]): r["mean"] for r in res["nested"]["rows"]}
    assert all(by[s, base + "@1+extra"] > by[s, base + "@1"] for s, _ in by)
    assert max(nested, key=nested.get) == base + "@1+extra+last"
    picks = list(res["nested"]["picks"].values())
    assert picks.count(base + "@1+extra+last") == 3 and picks.count(base + "@1+extra") == 2
    card = zoo.audio_card()
    assert card["training"]["select"] == "last"
    assert card["training"]["frame_loss"] == 1.0 and "stretch" not in card["training"]["augment"]
    assert card["training"]["train_extra"] == res["settings"]["train_extra"]
    assert card["training"]["train_extra"]["voices"] == 155


def test_the_readme_quotes_the_shipped_models_accuracy():
    """The README's paragraph on the shipped raw-audio model: its official split (and the seeds
    validation did not pick) and leave-one-speaker-out, and LSTM0's, as the card and the
    benchmark's runs record them."""
    card = zoo.audio_card()
    shipped = results("audio_shipped.json")
    picked = {o["variant"]: o["seed"] for o in shipped["official"]}
    assert picked[card["variant"]] == card["training"]["seed"]
    others = {v: [f"{100 * r['test_accuracy']:.1f}%" for r in sorted(
        shipped["official_seeds"], key=lambda r: r["seed"]) if r["variant"] == v
        and r["seed"] != picked[v]] for v in picked}
    lo, l0 = card["leave_one_speaker_out"], card["lstm0"]["leave_one_speaker_out"]
    text = " ".join((ROOT / "README.md").read_text().split())
    quoted = (f"The model measures {100 * card['official_split']['test_accuracy']:.1f}% on the "
              f"official split ({' and '.join(others[card['variant']])} for the seeds validation "
              f"did not pick), leave-one-speaker-out {100 * lo['mean']:.1f}% mean, worst fold "
              f"{100 * lo['worst']:.1f}% ({lo['worst_speaker']}); LSTM0 at the same budget "
              f"(n = 48, the same front-end) {100 * card['lstm0']['official_split']:.1f}% "
              f"({' and '.join(others['LSTM0'])} for the other seeds) and "
              f"{100 * l0['mean']:.1f}% (worst {100 * l0['worst']:.1f}%)")
    assert quoted in text, quoted
