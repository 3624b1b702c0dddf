"""The benchmarks change no tracked file unless asked (issue 25): `python benchmarks/mcu.py`
rewrote BENCHMARKS.md and benchmarks/results/mcu.json. Without --update a benchmark prints its
results (or writes them to --out); --update writes the tracked JSON and BENCHMARKS.md's section.
Each script's --table-only (or --from-json) path is run here: it needs no measurement."""
import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
# script -> (the option that rebuilds the markdown from the JSON, the tracked JSON)
FROM_JSON = {"step_latency": ("--table-only", "step_latency.json"),
             "paper_table": ("--table-only", "paper_table.json"),
             "train_speed": ("--table-only", "train_speed.json"),
             "quantization": ("--from-json", "quantization.json"),
             "serve_load": ("--table-only", "serve_load.json"),
             "many_streams": ("--table-only", "many_streams.json"),
             "triton_serve": ("--table-only", "triton_serve.json"),
             "audio": ("--table-only", "audio.json"),
             "events": ("--table-only", "events.json"),
             "streams": ("--table-only", "streams.json"),
             "search": ("--table-only", "search_m4.json"),
             "search_workers": ("--table-only", "search_workers.json")}


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tracked() -> dict:
    return {p: p.read_bytes() for p in [ROOT / "BENCHMARKS.md", *sorted((BENCH / "results").glob("*"))]}


def test_every_benchmark_that_writes_results_takes_update():
    """Each script naming a results file or BENCHMARKS.md writes through --update / --out."""
    for script in sorted(BENCH.glob("*.py")):
        text = script.read_text()
        writes = re.search(r"\.write_text\(|update_markdown_section\(|\bsave\(", text)
        if script.name == "c_step.py":  # it writes only its harness, in a temporary folder
            continue
        if writes:
            assert "add_output_arguments(" in text and "settle_outputs(" in text, script.name


def script(name: str, tmp_path: Path):
    """The benchmark module, its markdown-from-JSON option, and a copy of its tracked JSON."""
    option, results = FROM_JSON[name]
    if not (BENCH / "results" / results).is_file():
        pytest.skip(f"no {results} committed")
    copy = tmp_path / results
    shutil.copy(BENCH / "results" / results, copy)
    return load(name), option, copy


@pytest.mark.parametrize("name", sorted(FROM_JSON))
def test_without_update_the_tracked_files_stay(name, capsys, tmp_path):
    mod, option, copy = script(name, tmp_path)
    before = tracked()
    mod.main([option])
    out = capsys.readouterr().out
    assert tracked() == before
    assert out.lstrip().startswith("## ")
    # --out: the JSON goes where it is told (--from-json re-derives and writes it), nothing else
    mod.main([option, "--out", str(copy)])
    assert tracked() == before
    assert json.loads(copy.read_text())


@pytest.mark.parametrize("name", sorted(FROM_JSON))
def test_update_writes_the_section(name, tmp_path, monkeypatch):
    mod, option, copy = script(name, tmp_path)
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n")
    for attr in ("BENCHMARKS_MD", "BENCH"):
        if isinstance(getattr(mod, attr, None), Path) and getattr(mod, attr).suffix == ".md":
            monkeypatch.setattr(mod, attr, md)
    if name == "quantization":
        monkeypatch.setattr(mod, "write_section",
                            lambda text: mod.update_markdown_section(md, mod.SECTION, text))
    if name == "step_latency":
        monkeypatch.setattr(mod, "update_benchmarks_md",
                            lambda text: mod.update_markdown_section(md, mod.SECTION, text))
    mod.main([option, "--update", "--out", str(copy)])
    assert md.read_text().count("\n## ") == 1


def test_settle_outputs():
    import argparse

    from slimedge._report import add_output_arguments, settle_outputs

    p = argparse.ArgumentParser()
    add_output_arguments(p, Path("benchmarks/results/x.json"))
    a = p.parse_args([])
    settle_outputs(a, Path("r/x.json"))
    assert (a.out, a.source, a.markdown) == (None, Path("r/x.json"), False)
    a = p.parse_args(["--update"])
    settle_outputs(a, Path("r/x.json"))
    assert (a.out, a.markdown) == (Path("r/x.json"), True)
    a = p.parse_args(["--out", "mine.json"])
    settle_outputs(a, Path("r/x.json"))
    assert (a.out, a.source, a.markdown) == (Path("mine.json"), Path("mine.json"), False)


def test_audio_nested_recipes_parse_and_refuse():
    """benchmarks/audio.py --nested items: AUGMENT[@FRAME_LOSS][+extra][+last], flags in any
    order, each once; anything else stops the run before it trains."""
    parse = load("audio")._recipe
    assert parse("shift,gain@1") == ("shift,gain", 1.0, False, False)
    assert parse("shift,gain@1+extra") == ("shift,gain", 1.0, True, False)
    assert parse("eq+last+extra") == ("eq", 0.0, True, True)
    for bad in ("eq@x", "eq+extra+extra", "eq+best", "eq@1+", "eq@-1", "eq@nan", "eq@inf"):
        with pytest.raises(SystemExit):
            parse(bad)


def test_audio_merge_replaces_runs_of_the_same_variant_and_refuses_mixed_budgets():
    """benchmarks/audio.py --merge: a later part's official runs replace the same variant and
    seed's (the validation pick is made again over all seeds), its leave-one-speaker-out rows the
    same variant's; the settings are the last such part's, and a run left over from other
    settings stops the merge."""
    merge = load("audio").merge
    old, new = {"budget": 1}, {"budget": 2}

    def run(variant, seed, val, test):
        return {"variant": variant, "constants": {}, "seed": seed, "val_accuracy": val,
                "val_loss": 0.1, "test_accuracy": test}
    base = {"settings": old, "official_seeds": [run("LSTM1", 0, 0.99, 0.98),
                                                run("LSTM1", 1, 0.98, 0.97)],
            "loso": [{"variant": "LSTM1", "constants": {}, "mean": 0.7}],
            "sweep": [{"augment": "a"}], "speed": {"x": 1}}
    part = {"settings": new, "official": [run("LSTM1", 0, 0.97, 0.99), run("LSTM1", 1, 0.985, 0.9)],
            "loso": [{"variant": "LSTM1", "constants": {}, "mean": 0.8}], "sweep": [{"augment": "b"}]}
    res = merge([base, part])
    assert res["settings"] == new and [r["mean"] for r in res["loso"]] == [0.8]
    assert sorted((r["seed"], r["test_accuracy"]) for r in res["official_seeds"]) == \
        [(0, 0.99), (1, 0.9)]
    assert [r["seed"] for r in res["official"]] == [1]  # the best validation of the new runs
    assert [r["augment"] for r in res["sweep"]] == ["a", "b"] and res["speed"] == {"x": 1}
    with pytest.raises(SystemExit, match="LSTM1 1"):  # seed 1 of the old budget would be left
        merge([base, {**part, "official": part["official"][:1]}])
    # runs of one budget made one seed per process merge; the inputs stay as they were
    seeds = [{"settings": {**new, "seed": k}, "official": [run("LSTM1", k, 0.9, 0.9)]}
             for k in (0, 1)]
    assert len(merge(seeds)["official_seeds"]) == 2 and len(seeds[0]["official"]) == 1
