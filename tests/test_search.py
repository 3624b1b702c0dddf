"""slimedge search: the space, the budget and its size model against measured exports, and the
search end to end (a SIGKILL mid-trial and a resume; the front; exporting a front model), on
SQLite (the default), PostgreSQL (a real server started here) and a real local Ray cluster.

Trials are tiny (FSDD capped at a few dozen sequences, 1-2 epochs): these check behaviour, not
accuracy."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from slimedge import checkpoint, data, runtime  # noqa: E402
from slimedge.errors import UsageError  # noqa: E402
from slimedge.search import Budget, SearchSpace, SizeModel, parse_bytes, parse_count  # noqa: E402
from slimedge.search import budget as budget_mod  # noqa: E402
from slimedge.search import study as study_mod  # noqa: E402
from slimedge.search.space import train_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 40
GRACE_S = 8  # a killed worker's trial is taken over this long after its last heartbeat
# the reference recurrence: the fused loop's numba kernels cost ~10 s of compiling per process,
# more than these tiny trials train
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
       "SLIMEDGE_RECURRENCE": "reference"}


def _cli(*args, timeout=300, **kw):
    return subprocess.run([sys.executable, "-m", "slimedge", *map(str, args)], env=ENV,
                          capture_output=True, text=True, timeout=timeout, **kw)


def _search_args(out, *extra):
    return ["search", "run", out, "--target", "cortex-m4", "--variants", "LSTM6",
            "--hidden-sizes", "4,8,12", "--quantize", "none", "--data", "fsdd", "--limit", LIMIT,
            "--epochs", 2, "--no-prune", "--heartbeat-grace", GRACE_S, *extra]


# ---- the space and the budget ------------------------------------------------------------------
def test_sizes_and_rates_parse_and_bad_ones_say_what_was_expected():
    assert parse_bytes("32KB") == 32768 and parse_bytes("8k") == 8192
    assert parse_bytes("1.5KiB") == 1536 and parse_bytes("4096") == 4096
    assert parse_count("4M") == 4e6 and parse_count("250k") == 2.5e5
    with pytest.raises(UsageError, match="--flash: expected a size such as 32KB.*'lots'"):
        parse_bytes("lots", "--flash")
    with pytest.raises(UsageError, match="cannot be limited"):
        Budget("host", {"ram": 1024})
    with pytest.raises(UsageError, match="unknown target 'esp32'"):
        Budget("esp32")


def test_space_checks_every_dimension_and_keeps_constants_only_where_the_gate_is_fixed():
    with pytest.raises(UsageError, match="unknown dimension 'hidden'"):
        SearchSpace.from_dict({"hidden": [8]})
    with pytest.raises(UsageError, match="'quantize': unknown choice 'int4'"):
        SearchSpace.from_dict({"quantize": ["none", "int4"]})
    with pytest.raises(UsageError, match="unknown variant|LSTM99"):
        SearchSpace.from_dict({"variant": ["LSTM99"]})
    space = SearchSpace.from_dict({"variant": ["LSTM0", "LSTM6"], "hidden_size": {"low": 8,
                                   "high": 32, "step": 8}, "constant.f": [0.5, 0.9],
                                   "lr": [1e-3]})
    trial = optuna.trial.FixedTrial({"variant": "LSTM6", "hidden_size": 24, "constant.f": 0.9,
                                     "lr": 1e-3})
    cand = space.suggest(trial)
    assert cand == {"variant": "LSTM6", "hidden_size": 24, "constant.f": 0.9, "lr": 1e-3}
    assert train_settings(cand, {"data": "fsdd"})["constants"] == {"f": 0.9}
    # LSTM0 fixes no gate: the constant is not passed on (TrainConfig would refuse it)
    assert train_settings({**cand, "variant": "LSTM0"}, {})["constants"] == {}
    assert SearchSpace.from_dict(space.to_dict()) == space


def test_the_size_models_features_count_what_a_checkpoint_holds(tmp_path):
    from slimedge.train import TrainConfig, build_model

    splits = data.load("fsdd", limit=LIMIT)
    for variant, n, layers in (("LSTM0", 8, 1), ("LSTM6", 12, 2), ("LSTM3", 5, 1)):
        path = tmp_path / f"{variant}.safetensors"
        checkpoint.save(build_model(TrainConfig(variant=variant, hidden_size=n, num_layers=layers),
                                    splits), path)
        held = sum(int(np.prod(t.shape)) for t in checkpoint.read(path).tensors.values())
        from slimedge import variants

        f = budget_mod.features(variants.get(variant), 13, n, layers, 10)
        assert f["params"] == held, (variant, f, held)
        assert f["units"] == n * layers


def test_the_size_model_predicts_held_out_measured_exports_within_its_margin(tmp_path):
    """Fitted on the smallest and largest models of a space, measured on the emulated
    Cortex-M4; its predictions for sizes between are checked against their measurements."""
    from slimedge.search.trial import calibration_point

    splits = data.load("fsdd", limit=LIMIT)
    budget = Budget("cortex-m4")
    base = {"data": "fsdd", "limit": LIMIT}
    fit_on = [{"variant": v, "hidden_size": n, "quantize": "none"}
              for v in ("LSTM0", "LSTM6") for n in (4, 16, 32)]
    points = [calibration_point(c, base, budget, splits, tmp_path / f"fit{k}")
              for k, c in enumerate(fit_on)]
    model = SizeModel.fit(points)
    for k, c in enumerate({"variant": v, "hidden_size": n, "quantize": "none"}
                          for v in ("LSTM0", "LSTM6") for n in (10, 24)):
        p = calibration_point(c, base, budget, splits, tmp_path / f"held{k}")
        pred = model.predict("none", c["variant"], p["features"])
        assert set(pred) == {"flash", "ram", "cycles_per_second"}
        for metric, (value, margin) in pred.items():
            assert abs(value - p["measured"][metric]) <= margin, (c, metric, value, margin,
                                                                  p["measured"][metric])
        flash = p["measured"]["flash"]
        # a limit the model cannot meet even at the low end of the margin is rejected; one
        # at its measured size never is (no candidate that fits is thrown away)
        v = c["variant"]
        assert model.rejection(Budget("cortex-m4", {"flash": flash}), "none", v,
                               p["features"]) is None
        below = pred["flash"][0] - pred["flash"][1] - 1
        assert "predicted flash" in model.rejection(Budget("cortex-m4", {"flash": below}), "none",
                                                    v, p["features"])


def test_a_host_candidate_is_scored_on_its_exported_file_and_sized_on_disk(tmp_path):
    """--target host: the exported file's bytes are its flash, its step is timed on the runtime,
    and its accuracy is the file's own on the validation split."""
    from slimedge.search.trial import calibration_point, measure_export

    splits = data.load("fsdd", limit=LIMIT)
    budget = Budget("host", {"latency_us": 1e6})
    cand = {"variant": "LSTM6", "hidden_size": 8, "quantize": "dynamic", "format": "tflite"}
    p = calibration_point(cand, {"data": "fsdd", "limit": LIMIT}, budget, splits, tmp_path / "a")
    ckpt = tmp_path / "a" / "model.safetensors"
    r = measure_export(ckpt, cand, budget, splits, tmp_path / "b")
    path = Path(r["export"])
    assert path.suffix == ".tflite"
    assert r["measured"]["flash"] == path.stat().st_size == p["measured"]["flash"]
    assert 0 < r["measured"]["latency_us"] < 1e6
    ev = runtime.evaluate(runtime.load(path), splits.val)
    assert r["val_accuracy"] == ev.accuracy
    assert budget.violations(r["measured"]) == [(r["measured"]["latency_us"] - 1e6) / 1e6]


def test_bad_search_input_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "s"
    r = _cli("search", "run", out, "--variants", "LSTM6,LSTM99", "--flash", "32KB")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "LSTM99" in r.stderr, r.stderr
    r = _cli("search", "run", out, "--flash", "many")
    assert r.returncode == 2 and "--flash" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()
    for args in (["front", out], ["export", out, "--trial", 0, "-o", tmp_path / "m.c"],
                 ["front", out, "--storage", "postgresql+psycopg://u@127.0.0.1:1/nothing"]):
        r = _cli("search", *args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert ("no search here" in r.stderr or "cannot open the study storage" in r.stderr)
    assert not out.exists()  # reading a search never creates one


# ---- end to end on SQLite: kill, resume, front, export ------------------------------------------
def _schema_ready(db: Path) -> bool:
    """Whether the search has finished creating its SQLite storage's tables (Optuna writes its
    version row last); read without writing, as a second RDBStorage would create them too."""
    import sqlite3

    if not db.exists():
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return con.execute("SELECT count(*) FROM version_info").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def _trials(url, name="search"):
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


def _check_recovered(url, killed: int, sizes: list[int]) -> None:
    """The killed trial failed and was queued again exactly once; its candidate, like every
    other (its hidden size), trained exactly once; nothing else failed or is left running. The
    retry completes, or, when the candidate was already trained again by the time it ran (a
    replaced local worker reruns its call), it is skipped as a duplicate of that trial."""
    ts = {t.number: t for t in _trials(url)}
    assert ts[killed].state == optuna.trial.TrialState.FAIL
    assert [n for n, t in ts.items() if t.state == optuna.trial.TrialState.FAIL] == [killed]
    retries = [t for t in ts.values() if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].params == ts[killed].params
    retry = retries[0]
    if retry.state != optuna.trial.TrialState.COMPLETE:
        assert retry.state == optuna.trial.TrialState.PRUNED, retry.state
        twin = ts[retry.user_attrs["duplicate_of"]]
        assert twin.state == optuna.trial.TrialState.COMPLETE and twin.params == retry.params
    complete = [t for t in ts.values() if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.params["hidden_size"] for t in complete) == sizes
    assert not [t for t in ts.values() if t.state == optuna.trial.TrialState.RUNNING]


@pytest.mark.slow
def test_a_search_killed_mid_trial_resumes_with_no_trial_lost_or_run_twice(tmp_path):
    out = tmp_path / "s"
    url = f"sqlite:///{(out / 'study.db').resolve()}"
    args = _search_args(out, "--trials", 3, "--workers", 1, "--flash", "64KB")
    proc = subprocess.Popen([sys.executable, "-m", "slimedge", *map(str, args)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    killed = None
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.3)
            if not _schema_ready(out / "study.db"):  # opening it now would race its creation
                continue
            try:
                ts = _trials(url)
            except Exception:  # the study is not created yet
                continue
            done = [t for t in ts if t.state == optuna.trial.TrialState.COMPLETE]
            running = [t for t in ts if t.state == optuna.trial.TrialState.RUNNING
                       and "quantize" in t.params]
            if done and running:
                os.killpg(proc.pid, signal.SIGKILL)
                killed = running[0].number
                break
    finally:
        if proc.poll() is None and killed is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert killed is not None, proc.stdout.read().decode()[-2000:]
    time.sleep(GRACE_S + 1)  # its heartbeat goes stale
    r = _cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    _check_recovered(url, killed, [4, 8, 12])
    complete = [t for t in _trials(url) if t.state == optuna.trial.TrialState.COMPLETE]
    trained_dirs = sorted(p.name for p in (out / "trials").iterdir()
                          if (p / "model.safetensors").exists())
    assert sorted(f"{t.number:05d}" for t in complete) == [d for d in trained_dirs
                                                           if int(d) != killed]

    # the front: non-dominated, written as JSON and CSV, each with its checkpoint
    summary = json.loads((out / "front.json").read_text())
    front = summary["front"]
    assert front and (out / "front.png").stat().st_size > 0
    assert (out / "front.csv").read_text().count("\n") == len(front) + 1
    vals = {t.number: t.values for t in complete}
    for row in front:  # no complete trial dominates a front row
        v = vals[row["trial"]]
        assert not any(w[0] >= v[0] and all(a <= b for a, b in zip(w[1:], v[1:])) and w != v
                       for w in vals.values())
    # one command exports a front model; the file scores what the search recorded, on val
    best = front[0]
    r = _cli("search", "export", out, "--trial", best["trial"], "-o", tmp_path / "best.c")
    assert r.returncode == 0, r.stderr
    splits = data.load("fsdd", limit=LIMIT)
    ev = runtime.evaluate(runtime.load(tmp_path / "best.c"), splits.val)
    assert ev.accuracy == best["val_accuracy"]
    r = _cli("search", "export", out, "--trial", killed, "-o", tmp_path / "x.c")
    assert r.returncode == 2 and "has no model" in r.stderr


@pytest.mark.slow
def test_a_killed_local_worker_process_is_replaced_and_no_trial_is_lost_or_run_twice(tmp_path):
    """``search run --workers 2``: one of its worker processes is SIGKILLed mid-trial; the
    command still succeeds (the worker is started again), the killed trial is queued again once
    its heartbeat is stale and runs once, and every candidate trains exactly once."""
    out = tmp_path / "s"
    url = f"sqlite:///{(out / 'study.db').resolve()}"
    # 150 epochs (not the helper's 2): a short trial can end between two polls, and a poll (a
    # fresh storage on the SQLite file) is slow on a loaded machine (CI once saw none running)
    args = _search_args(out, "--trials", 4, "--workers", 2, "--hidden-sizes", "4,8,12,16",
                        "--flash", "64KB", "--epochs", 150)
    proc = subprocess.Popen([sys.executable, "-m", "slimedge", *map(str, args)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    killed = None
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and killed is None:
            time.sleep(0.05)
            if not _schema_ready(out / "study.db"):
                continue
            try:
                ts = _trials(url)
            except Exception:  # the study is not created yet
                continue
            running = [t for t in ts if t.state == optuna.trial.TrialState.RUNNING
                       and "quantize" in t.params and ":" in t.user_attrs.get("worker", "")]
            if running:
                pid = int(running[0].user_attrs["worker"].rsplit(":", 1)[1])
                assert pid != proc.pid  # a worker process, not the command
                os.kill(pid, signal.SIGKILL)
                killed = running[0].number
        output, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert killed is not None, "no worker ran a trial: " + output.decode()[-3000:]
    assert proc.returncode == 0, output.decode()[-3000:]
    _check_recovered(url, killed, [4, 8, 12, 16])


# ---- raw audio: front-end settings searched, the device runs front-end + model --------------------
def test_a_raw_audio_search_tries_frontend_settings_and_measures_frontend_plus_model(tmp_path):
    """--data DIR: each trial trains on the frames of its own front-end setting (recorded in its
    checkpoint), and its device figures are the listener's (front-end + model per second of
    audio) on the first validation clips, as slimedge.devices.audio measures the export."""
    from slimedge.data import audio as wavdata
    from slimedge.data.wav import read_wav
    from slimedge.devices import audio as device_audio
    from slimedge.frontend import Frontend
    from test_audio_train import _tone_folder

    folder = _tone_folder(tmp_path / "wavs", per=4)
    out = tmp_path / "s"
    r = _cli("search", "run", out, "--target", "cortex-m4", "--data", folder, "--variants",
             "LSTM6", "--hidden-sizes", "4", "--quantize", "int8", "--frontend-values",
             "channels=8,16", "--frontend-option", "hop_ms=30", "--epochs", 1, "--trials", 2,
             "--workers", 1, "--no-prune", "--flash", "32KB", "--ram", "12KB")
    assert r.returncode == 0, r.stderr[-3000:]
    complete = [t for t in _trials(f"sqlite:///{out / 'study.db'}")
                if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.params["frontend.channels"] for t in complete) == [8, 16]
    flash = {}
    for t in complete:
        channels = t.params["frontend.channels"]
        audio = Frontend.from_config(checkpoint.read(t.user_attrs["checkpoint"]).config).audio
        assert (audio.kind, audio.channels, audio.hop_ms) == ("microfrontend", channels, 30)
        splits = data.load(folder, audio=audio)  # the default random split, as the search's
        val = wavdata.split_clips_of(splits.info, "val")
        clips = [read_wav(c.path)[0] for c in val]
        # the split's clips are the frames' clips, in order
        for k, x in enumerate(clips):
            np.testing.assert_array_equal(
                splits.val.sequence(k), device_audio.python_features(audio, x).astype(np.float32))
        m = device_audio.measure(t.user_attrs["export"], "cortex-m4", clips[:2])
        seconds = sum(len(x) for x in clips[:2]) / 8000
        assert t.user_attrs["measured"] == {
            "flash": m["flash_bytes"]["together"]["total"],
            "ram": m["ram_bytes"]["together"]["total"],
            "cycles_per_second": pytest.approx(m["per_second_of_audio"]["together"]["cycles"])}
        assert m["per_second_of_audio"]["together"]["cycles"] * seconds > \
            m["per_second_of_audio"]["frontend"]["cycles"] * seconds > 0
        assert t.values[1:] == [t.user_attrs["measured"][k]
                                for k in ("flash", "ram", "cycles_per_second")]
        flash[channels] = t.user_attrs["measured"]["flash"]
    assert flash[16] > flash[8]  # the filterbank's tables and the wider input layer


def test_frontend_dimensions_are_checked_before_any_work(tmp_path):
    with pytest.raises(UsageError, match="'frontend.chanels': not a field of an audio front-end"):
        SearchSpace.from_dict({"frontend.chanels": [8]})
    out = tmp_path / "s"
    r = _cli("search", "run", out, "--data", "fsdd", "--frontend-values", "channels=8,16")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "WAV files" in r.stderr, r.stderr
    assert not out.exists()


# ---- PostgreSQL: one study, two workers --------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL's server is not installed (Debian package postgresql; "
                    ".ci/run installs it)")
    return found[-1].parent


@pytest.fixture
def postgres():
    """A real PostgreSQL server in a temporary folder, on a free port, as a non-root user."""
    bindir = _pg_bin()
    root = os.geteuid() == 0
    d = Path(tempfile.mkdtemp(prefix="slimedge-pg-"))
    os.chmod(d, 0o755)
    pgdata = d / "data"
    as_user = []
    if root:  # initdb refuses root: run the server as Debian's postgres user
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(d, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def run(*cmd):
        subprocess.run([*as_user, *map(str, cmd)], check=True, capture_output=True, timeout=120)
    run(bindir / "initdb", "-D", pgdata, "-A", "trust", "-U", "slimedge", "--no-sync")
    run(bindir / "pg_ctl", "-D", pgdata, "-l", d / "log", "-w", "-o",
        f"-p {port} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        run(bindir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "slimedge", "search")
        yield f"postgresql+psycopg://slimedge@127.0.0.1:{port}/search"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(pgdata), "-m", "immediate",
                        "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_on_one_postgresql_study_lose_nothing_when_one_is_killed(tmp_path,
                                                                             postgres):
    """``search run`` (one worker) and ``search worker`` (a second process joining through the
    database); the second is SIGKILLed mid-trial: the first takes its trial over once its
    heartbeat is stale, and every candidate trains exactly once."""
    # trials long enough (12 epochs each) that the first worker is still at work when the second
    # has started (its imports take seconds) and taken one
    args = _search_args(tmp_path / "a", "--trials", 6, "--workers", 1, "--storage", postgres,
                        "--hidden-sizes", "4,8,12,16,20,24", "--epochs", 12)
    first = subprocess.Popen([sys.executable, "-m", "slimedge", *map(str, args)], env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
    second = killed = None
    try:
        deadline = time.time() + 300
        while time.time() < deadline and first.poll() is None and killed is None:
            time.sleep(0.2)
            try:
                st = optuna.load_study(study_name="search", storage=postgres)
            except Exception:  # not created yet
                continue
            if second is None:
                if study_mod.SIZE_MODEL_KEY in st.user_attrs:
                    second = subprocess.Popen(
                        [sys.executable, "-m", "slimedge", "search", "worker", tmp_path / "b",
                         "--storage", postgres], env=ENV, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, start_new_session=True)
                continue
            mine = [t for t in st.get_trials(deepcopy=False)
                    if t.state == optuna.trial.TrialState.RUNNING
                    and t.user_attrs.get("worker", "").endswith(f":{second.pid}")]
            if mine:
                os.killpg(second.pid, signal.SIGKILL)
                killed = mine[0].number
        out, _ = first.communicate(timeout=300)
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            if p is not None:
                p.wait()
    assert killed is not None, "the second worker never ran a trial: " + out.decode()[-3000:]
    assert first.returncode == 0, out.decode()[-3000:]
    _check_recovered(postgres, killed, [4, 8, 12, 16, 20, 24])
    ts = _trials(postgres)
    # a third worker joining the finished study finds nothing left to do
    r = _cli("search", "worker", tmp_path / "c", "--storage", postgres)
    assert r.returncode == 0 and "ran 0 trial(s)" in r.stdout, r.stderr[-2000:]
    assert len(_trials(postgres)) == len(ts)


# ---- Ray: a real local cluster (a head and one more node), started and stopped here -----------
@pytest.fixture(scope="module")
def ray_cluster():
    """``ray start --head`` and a second ``ray start --address`` node, each in its own session
    (``--block``: stopping it stops the processes it started, and nothing else)."""
    pytest.importorskip("ray")
    ray = str(Path(sys.executable).parent / "ray")
    port = _free_port()
    tmp = Path(tempfile.mkdtemp(prefix="slimedge-ray-"))
    env = {**ENV, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--block", "--disable-usage-stats", f"--temp-dir={tmp}"]
    procs = [subprocess.Popen([ray, "start", "--head", f"--port={port}", "--num-cpus=1",
                               "--include-dashboard=false", *common], env=env,
                              stdout=open(tmp / "head.log", "w"), stderr=subprocess.STDOUT,
                              start_new_session=True)]
    address = f"127.0.0.1:{port}"
    try:
        probe = ("import ray; ray.init(address=%r, log_to_driver=False); "
                 "print(int(ray.cluster_resources().get('CPU', 0)))" % address)
        up = False
        for _ in range(60):
            r = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                               text=True, timeout=120)
            if r.returncode == 0:
                up = True
                break
            time.sleep(1)
        assert up, (tmp / "head.log").read_text()[-2000:]
        procs.append(subprocess.Popen([ray, "start", f"--address={address}", "--num-cpus=1",
                                       *common], env=env, stdout=open(tmp / "node.log", "w"),
                                      stderr=subprocess.STDOUT, start_new_session=True))
        for _ in range(60):
            r = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                               text=True, timeout=120)
            if r.returncode == 0 and r.stdout.strip() == "2":
                break
            time.sleep(1)
        else:
            pytest.fail(f"the second Ray node did not join: {r.stdout} {r.stderr[-1000:]}")
        yield address
    finally:
        # SIGTERM to `ray start` itself: it drains and stops its processes in about 2 s (sent
        # to the whole group, its processes die under it and it waits out a 30 s drain)
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15  # one grace period for both nodes, not one each
        for p in reversed(procs):
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:  # whatever is left of the node's session
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.slow
def test_the_same_search_runs_on_a_ray_cluster(tmp_path, ray_cluster):
    out = tmp_path / "r"
    r = _cli(*_search_args(out, "--trials", 2, "--workers", 2, "--backend", "ray",
                           "--address", ray_cluster, "--hidden-sizes", "4,8"))
    assert r.returncode == 0, r.stderr[-3000:]
    ts = _trials(f"sqlite:///{(out / 'study.db').resolve()}")
    complete = [t for t in ts if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.params["hidden_size"] for t in complete) == [4, 8]
    # run by Ray's worker processes (one per node's CPU), not by the command's own process
    workers = {t.user_attrs["worker"] for t in complete}
    assert len(workers) == 2, workers
    assert json.loads((out / "front.json").read_text())["front"]


@pytest.mark.slow
def test_paper_tables_grid_runs_on_the_executor_with_the_results_of_a_serial_run(tmp_path,
                                                                                  monkeypatch):
    """benchmarks/paper_table.py's cells on two spawned worker processes train exactly what
    they train one after another in this process (each run is deterministic)."""
    import importlib

    from slimedge.search.executor import map_calls

    monkeypatch.setenv("SLIMEDGE_RECURRENCE", "reference")
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    paper_table = importlib.import_module("paper_table")
    settings = {"data": "fsdd", "hidden_size": 4, "epochs": 1, "batch_size": 16, "lr": 3e-3,
                "schedule": "constant", "limit": LIMIT}
    cells = [("fsdd", settings, v, 0, 1, str(tmp_path / f"{v}_{k}.safetensors"))
             for k, v in enumerate(("LSTM0", "LSTM6"))]
    parallel = map_calls(paper_table._train_cell, cells, workers=2)
    serial = [paper_table._train_cell(*c[:-1], c[-1].replace(".safetensors", "_s.safetensors"))
              for c in cells]
    keys = ("variant", "params", "test_accuracy", "best_val_accuracy", "final_train_loss")
    assert [{k: r[k] for k in keys} for r in parallel] == [{k: r[k] for k in keys} for r in serial]


# ---- the local executor: long-lived worker processes ---------------------------------------------
def _worker_info() -> dict:
    import torch

    return {"pid": os.getpid(), "torch_threads": torch.get_num_threads(),
            "omp": os.environ.get("OMP_NUM_THREADS")}


def _die_once(marker: str) -> int:
    """SIGKILLs its own process the first time (the marker records it), returns its pid after."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_local_workers_take_call_after_call_with_their_share_of_the_cores():
    """Two processes for every call of both maps (torch imported and data loaded once each, not
    once per call), none of them this one; each with the threads its share of the cores allows;
    both ended when the pool closes."""
    from slimedge.search import executor

    threads = executor.threads_per_worker(2)
    assert threads == max(1, len(os.sched_getaffinity(0)) // 2)
    with executor.pool("local", 2) as p:
        first = p.map(_worker_info, [()] * 5)
        second = p.map(_worker_info, [()] * 3)
    pids = {r["pid"] for r in first + second}
    assert len(pids) == 2 and os.getpid() not in pids, pids
    assert {r["pid"] for r in second} <= {r["pid"] for r in first}
    assert all(r["torch_threads"] == threads and r["omp"] == str(threads) for r in first + second)
    deadline = time.time() + 30
    while not all(map(_gone, pids)) and time.time() < deadline:
        time.sleep(0.1)
    assert all(map(_gone, pids))


def test_a_local_worker_killed_mid_call_is_replaced_and_its_call_runs_again(tmp_path):
    from slimedge.search import executor

    markers = [str(tmp_path / f"{k}") for k in range(3)]
    with executor.pool("local", 2) as p:
        pids = p.map(_die_once, [(m,) for m in markers])
        again = p.map(_worker_info, [()] * 2)
    # every call ran to its end in a process other than the one that died for it, and the pool
    # went on: the next map runs one call in each slot, one of them the process that returned
    # the last result (a slot whose process died may be started again only when next needed)
    assert all(os.path.exists(m) for m in markers) and len(pids) == 3
    assert os.getpid() not in pids and len(again) == 2
    assert {r["pid"] for r in again} & set(pids)
    # a worker killed while idle, between two maps, is replaced too
    with executor.pool("local", 2) as p:
        idle = {r["pid"] for r in p.map(_worker_info, [()] * 2)}
        for pid in idle:
            os.kill(pid, signal.SIGKILL)
        while not all(map(_gone, idle)):  # reaped by the pool's own thread
            time.sleep(0.05)
        after = {r["pid"] for r in p.map(_worker_info, [()] * 2)}
    assert after and not after & idle


def test_on_sqlite_a_trial_state_change_waits_for_the_one_before_it(tmp_path):
    """Two workers on one SQLite study both took the same queued retry (SQLite ignores Optuna's
    FOR UPDATE): it trained twice at once. A state change now holds a lock beside the database
    from its read to its commit: the second worker reads the first's change and is refused."""
    import threading

    import filelock

    url = f"sqlite:///{tmp_path / 's.db'}"
    mine = study_mod._storage(url)
    study = optuna.create_study(study_name="x", storage=mine)
    study.enqueue_trial({"n": 1})
    (waiting,) = study.get_trials(deepcopy=False)
    assert waiting.state == optuna.trial.TrialState.WAITING
    other = filelock.FileLock(mine.state_lock)  # another worker, in the middle of its change
    other.acquire()
    taken = []
    t = threading.Thread(target=lambda: taken.append(mine.set_trial_state_values(
        waiting._trial_id, optuna.trial.TrialState.RUNNING)))
    t.start()
    t.join(0.5)
    assert t.is_alive()  # waits
    # the other worker's change: it takes the trial
    assert optuna.storages.RDBStorage(url).set_trial_state_values(
        waiting._trial_id, optuna.trial.TrialState.RUNNING)
    other.release()
    t.join(30)
    assert taken == [False]  # this one sees it running, and leaves it


@pytest.mark.filterwarnings("ignore::UserWarning")  # heartbeat without optimize; experimental
def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_failed_and_queued_again(
        tmp_path):
    """Optuna never finds a running trial with no heartbeat stale: a worker killed between the
    trial's creation and its first beat left it running for ever, and the search waited for it.
    A worker adopts such a trial once the grace is over (one beat, marked), so it goes stale."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="x", storage=study_mod._storage(url, grace_s=2),
                                directions=["maximize"])
    orphan = study.ask({"n": optuna.distributions.IntDistribution(1, 4)})  # its worker "died"
    time.sleep(2.5)
    optuna.storages.fail_stale_trials(study)
    assert study.get_trials()[0].state == optuna.trial.TrialState.RUNNING  # Optuna alone: stuck
    study_mod._adopt_silent_trials(study, 2)
    assert "worker" in study.get_trials()[0].user_attrs
    time.sleep(3.5)  # its one beat goes stale
    optuna.storages.fail_stale_trials(study)
    ts = study.get_trials()
    assert ts[0].number == orphan.number and ts[0].state == optuna.trial.TrialState.FAIL
    (retry,) = [t for t in ts if t.system_attrs.get("failed_trial") == orphan.number]
    assert retry.state == optuna.trial.TrialState.WAITING and retry.params == ts[0].params


def test_two_askers_of_one_model_train_it_once_and_a_failed_holder_hands_it_on(tmp_path):
    """Workers asking at the same moment can be given the same candidate (seen: two trainings
    of LSTM6 n=24 and none of n=16 in a 2-worker grid search). Eight trials claim one model at
    once: exactly one trains it and the seven others name that one; another model is free; once
    the holder failed (its worker died) the claim passes to exactly one of two retries."""
    import threading

    from slimedge.search import claims

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="x", storage=study_mod._storage(url))
    trials = [study.ask() for _ in range(8)]
    model = {"variant": "LSTM6", "hidden_size": 24, "quantize": "int8"}
    gate = threading.Barrier(len(trials))
    got: dict[int, int | None] = {}

    def ask(t):
        gate.wait()
        got[t.number] = claims.claim(url, study, t.number, model)

    threads = [threading.Thread(target=ask, args=(t,)) for t in trials]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [n for n, holder in got.items() if holder is None]
    assert len(got) == 8 and len(winners) == 1, got
    assert {h for n, h in got.items() if n != winners[0]} == {winners[0]}
    assert claims.claim(url, study, trials[0].number, {**model, "hidden_size": 16}) is None
    assert claims.claim(url, study, winners[0], model) is None  # its own claim, asked again
    study.tell(winners[0], state=optuna.trial.TrialState.FAIL)
    retries = [study.ask(), study.ask()]
    first, second = (claims.claim(url, study, r.number, model) for r in retries)
    assert first is None and second == retries[0].number
