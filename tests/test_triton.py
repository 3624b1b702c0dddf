"""``export --triton``: a Triton model repository, checked as far as this machine can run it.

- Every generated ``config.pbtxt`` is parsed by Triton's own model-config protobuf (tritonclient's
  ``model_config_pb2``, in the Triton environment ``make triton-env`` makes), field by field.
- The onnxruntime-backend model (a full Triton server is a container, not installable here) is
  stepped on onnxruntime as Triton's sequence batcher would: batches of whichever sequences have a
  request, each sequence's h and c kept between requests (implicit state) and zeroed on START;
  every output equals a local ``Stream``'s on the same frames.
- The Python-backend model runs on the real ``tritonserver`` that nvidia-pytriton bundles, on free
  loopback ports: a real gRPC client streams 64 interleaved sequences (correlation ids), restarts
  them with START mid-way, and every output is bit-equal to a local ``Stream`` of the same file
  (onnxruntime with one thread both sides: a row does not depend on its batch); the C export too.
"""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from helpers import make_checkpoint, seeded  # noqa: E402
from slimedge import runtime, triton_server, zoo  # noqa: E402
from slimedge.errors import UsageError  # noqa: E402
from slimedge.triton_server import bundled  # noqa: E402
from slimedge.triton_server.python_model import Sequences  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def triton_python() -> Path:
    try:
        return bundled.env_python()
    except ImportError as e:  # MissingDependency
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """The shipped model (ONNX for the Python backend) and a 2-layer model (its C export)."""
    root = tmp_path_factory.mktemp("triton") / "repo"
    digits = triton_server.write(zoo.default_model_path(), root, name="digits")
    ckpt, _, _ = make_checkpoint(root.parent / "two.safetensors", "LSTM6", 5, 12, layers=2,
                                 classes=3)
    two = triton_server.write(ckpt, root, name="two", format="c")
    return {"root": root, "digits": digits, "two": two}


def parse_configs(paths) -> list[dict]:
    """Each config.pbtxt through Triton's ModelConfig protobuf, as a dict (in the Triton env)."""
    code = ("import json, sys\nfrom google.protobuf import json_format, text_format\n"
            "from tritonclient.grpc import model_config_pb2 as pb\nout = []\n"
            "for p in sys.argv[1:]:\n"
            "    m = text_format.Parse(open(p).read(), pb.ModelConfig())\n"
            "    out.append(json_format.MessageToDict(m, preserving_proto_field_name=True))\n"
            "print(json.dumps(out))\n")
    r = subprocess.run([str(triton_python()), "-c", code, *map(str, paths)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_configs_parse_with_tritons_model_config(repo):
    d, t = repo["digits"], repo["two"]
    onnx_d, py_d, onnx_t, py_t = parse_configs([d.onnx_model / "config.pbtxt",
                                                d.python_model / "config.pbtxt",
                                                t.onnx_model / "config.pbtxt",
                                                t.python_model / "config.pbtxt"])
    assert onnx_d["name"] == "digits" and onnx_d["backend"] == "onnxruntime"
    assert py_d["name"] == "digits_python" and py_d["backend"] == "python"
    for cfg, (m, k) in ((onnx_d, (13, 10)), (py_d, (13, 10)), (onnx_t, (5, 3)), (py_t, (5, 3))):
        assert cfg["max_batch_size"] == 256
        assert cfg["input"] == [{"name": "x", "data_type": "TYPE_FP32", "dims": [str(m)]}]
        assert cfg["output"] == [{"name": "y", "data_type": "TYPE_FP32", "dims": [str(k)]}]
        sb = cfg["sequence_batching"]
        assert sb["oldest"]["max_candidate_sequences"] == 1024
        assert sb["max_sequence_idle_microseconds"] == "60000000"
    for cfg, dims in ((onnx_d, ["1", "64"]), (onnx_t, ["2", "12"])):
        states = cfg["sequence_batching"]["state"]
        assert [(s["input_name"], s["output_name"]) for s in states] == [("c", "c_next"),
                                                                          ("h", "h_next")]
        for s in states:
            assert s["dims"] == dims and s["data_type"] == "TYPE_FP32"
            assert s["initial_state"] == [{"name": f"zero_{s['input_name']}", "dims": dims,
                                           "data_type": "TYPE_FP32", "zero_data": True}]
        assert "control_input" not in cfg["sequence_batching"]
    for cfg, file in ((py_d, "digits.onnx"), (py_t, "two.c")):
        # proto3 leaves an enum's default out of the dict: CONTROL_SEQUENCE_START is kind 0
        controls = {c["name"]: {"kind": "CONTROL_SEQUENCE_START", **c["control"][0]}
                    for c in cfg["sequence_batching"]["control_input"]}
        assert controls == {
            "START": {"kind": "CONTROL_SEQUENCE_START", "int32_false_true": [0, 1]},
            "END": {"kind": "CONTROL_SEQUENCE_END", "int32_false_true": [0, 1]},
            "CORRID": {"kind": "CONTROL_SEQUENCE_CORRID", "data_type": "TYPE_UINT64"}}
        params = {k: v["string_value"] for k, v in cfg["parameters"].items()}
        assert params == {"slimedge_model": file, "slimedge_backend": "auto",
                          "slimedge_threads": "1", "slimedge_idle_s": "60.0"}
        assert (Path(repo["root"]) / cfg["name"] / "1" / file).is_file()
    # the Python backend's model.py imports the class Triton looks for
    assert "TritonPythonModel" in (d.python_model / "1" / "model.py").read_text()


def batcher_rollout(onnx_path, frames, restarts, rng):
    """Step the Triton ONNX file as the sequence batcher would: each call a random subset of the
    sequences with a request pending (one request each), h and c per sequence kept between its
    requests and zeroed on START (its first request, and each step in ``restarts``)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    shapes = {i.name: i.shape for i in sess.get_inputs()}
    k, T, _ = frames.shape
    layers, n = shapes["h"][1:]
    state = {}
    step = np.zeros(k, int)
    ys = np.zeros((k, T, sess.get_outputs()[0].shape[1]), np.float32)
    calls = 0
    while (step < T).any():
        pending = np.flatnonzero(step < T)
        batch = rng.choice(pending, size=rng.integers(1, len(pending) + 1), replace=False)
        for j in batch:
            if step[j] == 0 or step[j] in restarts:
                state[j] = (np.zeros((layers, n), np.float32),) * 2
        x = np.stack([frames[j, step[j]] for j in batch])
        h = np.stack([state[j][0] for j in batch])
        c = np.stack([state[j][1] for j in batch])
        y, h_next, c_next = sess.run(["y", "h_next", "c_next"], {"x": x, "h": h, "c": c})
        for r, j in enumerate(batch):
            ys[j, step[j]] = y[r]
            state[j] = (h_next[r], c_next[r])
            step[j] += 1
        calls += 1
    return ys, shapes, calls


def local_streams(model, frames, restarts=()):
    """Each sequence on its own local Stream, reset at each step of ``restarts``."""
    k, T, _ = frames.shape
    out = np.zeros((k, T, model.output_size), np.float32)
    for j in range(k):
        s = model.stream()
        for t in range(T):
            if t in restarts:
                s.reset()
            out[j, t] = s.step(frames[j, t])
    return out


@pytest.mark.parametrize("which", ["digits", "two"])
def test_onnx_model_with_implicit_state_equals_local_streams(repo, which):
    r = repo[which]
    if which == "digits":  # the Python-backend model's file: the step graph the ONNX wraps
        model = runtime.load(r.python_model / "1" / "digits.onnx", backend="onnxruntime",
                             threads=1)
    else:
        model = runtime.load(r.python_model / "1" / "two.c", backend="c")
    rng = seeded("triton-onnx", which)
    frames = rng.normal(size=(24, 30, model.input_size)).astype(np.float32)
    got, shapes, calls = batcher_rollout(r.onnx_model / "1" / "model.onnx", frames, {17}, rng)
    assert shapes["h"] == shapes["c"] == ["batch", model.num_layers, model.hidden_size]
    assert calls < 24 * 30 / 2  # batches of several sequences, not one by one
    want = local_streams(model, frames, {17})
    if which == "digits":  # the same ONNX ops, one thread: bit-equal
        np.testing.assert_array_equal(got, want)
    else:  # the C export: another implementation, float32 rounding apart
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)


def test_sequences_per_correlation_id():
    """The Python-backend model's core without Triton: START, END, errors, idle, order."""
    model = runtime.load(zoo.default_model_path().with_suffix(".onnx"), backend="onnxruntime",
                         threads=1)
    now = [0.0]
    seqs = Sequences(model, idle_s=5.0, clock=lambda: now[0])
    rng = seeded("sequences")
    f = rng.normal(size=(4, 13)).astype(np.float32)
    ref = {j: model.stream() for j in (7, 8)}
    out = seqs.step([7, 8], [1, 1], [0, 0], [f[0][None], f[1][None]])
    assert np.array_equal(out[0], ref[7].step(f[0])) and np.array_equal(out[1], ref[8].step(f[1]))
    # two requests of one sequence in one call are stepped in order; 9 never started
    out = seqs.step([7, 7, 9], [0, 0, 0], [0, 1, 0], [f[2], f[3], f[0]])
    assert np.array_equal(out[0], ref[7].step(f[2])) and np.array_equal(out[1], ref[7].step(f[3]))
    assert "sequence 9: no state" in out[2]
    assert set(seqs.streams) == {8}  # 7 ended
    out = seqs.step([8, 8], [0, 0], [0, 0], [np.zeros(12, np.float32), np.full(13, np.nan)])
    assert "shape (12,)" in out[0] and "(1, 13)" in out[0] and "NaN" in out[1]
    # START with a refused frame: a fresh state all the same; END with one: dropped all the same
    out = seqs.step([5, 6], [1, 1], [0, 1], [np.full(13, np.inf), np.zeros(5)])
    assert "NaN or inf" in out[0] and "shape (5,)" in out[1] and set(seqs.streams) == {5, 8}
    out = seqs.step([5], [0], [1], [f[1]])
    assert np.array_equal(out[0], model.stream().step(f[1])) and set(seqs.streams) == {8}
    ref[8].reset()  # START on a live sequence starts it again from the zero state
    out = seqs.step([8], [1], [0], [f[2]])
    assert np.array_equal(out[0], ref[8].step(f[2]))
    now[0] = 10.0  # 8 idle past 5 s: dropped at the next call
    out = seqs.step([8], [0], [0], [f[0]])
    assert "sequence 8: no state" in out[0] and len(seqs) == 0


def test_the_runtime_refuses_the_triton_onnx_with_a_clear_error(repo):
    from slimedge.errors import ModelFileError

    with pytest.raises(ModelFileError, match="a Triton repository's model .* batch first"):
        runtime.load(repo["two"].onnx_model / "1" / "model.onnx", backend="onnxruntime")


def test_write_refuses_existing_model_folders_and_bad_options(repo, tmp_path):
    with pytest.raises(UsageError, match="already exists"):
        triton_server.write(zoo.default_model_path(), repo["root"], name="digits")
    with pytest.raises(UsageError, match="threads"):
        triton_server.write(zoo.default_model_path(), tmp_path / "r", threads=0)
    with pytest.raises(UsageError, match="max_batch"):
        triton_server.write(zoo.default_model_path(), tmp_path / "r",
                     sequencing=triton_server.Sequencing(max_batch=0))
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


BAD_REQUESTS = """
import json, sys
import numpy as np
import tritonclient.grpc as g
from tritonclient.utils import InferenceServerException

c = g.InferenceServerClient(sys.argv[1])
def send(frame, **seq):
    x = g.InferInput("x", list(frame.shape), "FP32")
    x.set_data_from_numpy(frame.astype(np.float32))
    try:
        c.infer("digits_python", [x], **seq)
        return "ok"
    except InferenceServerException as e:
        return e.message()
out = {"nan": send(np.full((1, 13), np.nan), sequence_id=991, sequence_start=True),
       "after_nan": send(np.zeros((1, 13)), sequence_id=991, sequence_end=True),
       "no_start": send(np.zeros((1, 13)), sequence_id=992),
       "wrong_shape": send(np.zeros((1, 12)), sequence_id=993, sequence_start=True)}
print(json.dumps(out))
"""


def bad_requests(url: str) -> dict:
    """The error replies to a NaN frame, a sequence without START and a wrong-sized frame."""
    r = subprocess.run([str(triton_python()), "-c", BAD_REQUESTS, url], capture_output=True,
                       text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


@pytest.mark.slow
def test_bundled_tritonserver_streams_equal_local_streams(repo, tmp_path):
    """64 interleaved sequences on the real server over gRPC, restarted with START at step 20."""
    triton_python()
    digits = runtime.load(repo["digits"].python_model / "1" / "digits.onnx",
                          backend="onnxruntime", threads=1)
    two = runtime.load(repo["two"].python_model / "1" / "two.c", backend="c")
    rng = seeded("triton-server")
    runs = {"digits_python": (digits, rng.normal(size=(64, 30, 13)), [20]),
            "two_python": (two, rng.normal(size=(16, 12, 5)), [])}
    log = tmp_path / "tritonserver.log"
    with bundled.Server(repo["root"], list(runs), log=log) as server:
        results = {}
        for name, (_, frames, restarts) in runs.items():
            np.save(tmp_path / f"{name}.npy", frames.astype(np.float32))
            r = subprocess.run([str(triton_python()), "-m", "slimedge.triton_server.client",
                                "--url", server.grpc_url, "--model", name,
                                "--frames", str(tmp_path / f"{name}.npy"),
                                "--out", str(tmp_path / f"{name}.npz"),
                                "--restart-at", ",".join(map(str, restarts))],
                               cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr[-3000:]
            results[name] = np.load(tmp_path / f"{name}.npz")
        errors = bad_requests(server.grpc_url)
        code = server.stop()
    assert code == 0, log.read_text()[-3000:]
    for name, (model, frames, restarts) in runs.items():
        got = results[name]
        assert got["errors"].size == 0, got["errors"]
        want = local_streams(model, frames.astype(np.float32), set(restarts))
        if model.backend == "c":  # batched rows: the blocked kernel, up to float32 rounding
            np.testing.assert_allclose(got["y"], want, atol=1e-5, rtol=0)
        else:
            np.testing.assert_array_equal(got["y"], want)
        assert (got["latency_s"] > 0).all()
    # a NaN frame is refused by the model, alone: the next request of its sequence steps
    assert "sequence 991: input x holds NaN or inf" in errors["nan"], errors
    assert errors["after_nan"] == "ok", errors
    # Triton itself refuses a sequence without START and a frame of the wrong size
    assert "START" in errors["no_start"], errors
    assert "[1,12]" in errors["wrong_shape"].replace(" ", ""), errors
    # without the restart the outputs after step 20 would differ: START did reset the state
    assert not np.array_equal(local_streams(digits, runs["digits_python"][1].astype(np.float32)),
                              results["digits_python"]["y"])


def test_cli_export_triton(tmp_path):
    from typer.testing import CliRunner

    from slimedge.cli import app

    runner = CliRunner()
    # --compat is the TFLite file's option alone (the ONNX export does not take it)
    r = runner.invoke(app, ["export", "--triton", str(tmp_path / "repo"), "--format", "tflite",
                            "--compat", "tflite-runtime", "--triton-max-sequences", "4096",
                            "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert Path(got["python_model"]).name == "fsdd_default_python"
    assert got["exports"]["python"]["format"] == "tflite"
    assert got["exports"]["onnx"]["validation"]["max_abs_diff"]
    assert (tmp_path / "repo" / "fsdd_default" / "1" / "model.onnx").is_file()
    assert (tmp_path / "repo" / "fsdd_default_python" / "1" / "fsdd_default.tflite").is_file()
    for model in ("fsdd_default", "fsdd_default_python"):
        assert "max_candidate_sequences: 4096" in (tmp_path / "repo" / model /
                                                   "config.pbtxt").read_text()
    for args, message in ((["-o", str(tmp_path / "m.onnx")], "drop -o"),
                          (["--mode", "sequence"], "drop --mode sequence"),
                          ([], "already exists")):
        r = runner.invoke(app, ["export", "--triton", str(tmp_path / "repo"), *args])
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_readme_quotes_the_benchmark_results():
    """The README's Triton figures are the ones in benchmarks/results/triton_serve.json."""
    r = json.loads((ROOT / "benchmarks" / "results" / "triton_serve.json").read_text())
    levels = {x["streams"]: x for x in r["levels"]}
    text = " ".join((ROOT / "README.md").read_text().split())
    rates = ", ".join(f"{levels[k]['stream_steps_per_s']:,.0f}" for k in (16, 64))
    cpu = ", ".join(f"{levels[k]['server_cpu_us_per_request']:.0f}" for k in (16, 64))
    quoted = [f"{rates} and {levels[256]['stream_steps_per_s']:,.0f} stream-steps/s for 16, 64 "
              f"and 256 lockstep streams",
              f"with {cpu} and {levels[256]['server_cpu_us_per_request']:.0f} µs of server CPU",
              f"(load average {float(r['loadavg_before'].split()[0]):.0f})"]
    stale = [q for q in quoted if q not in text]
    assert not stale, "README.md no longer quotes triton_serve.json:\n" + "\n".join(stale)
    lo = min(x["in_process_us_per_stream_step"] for x in levels.values())
    hi = max(x["in_process_us_per_stream_step"] for x in levels.values())
    assert f"takes {lo:.0f}–{hi:.0f} µs a stream-step" in text
    ratios = [x["served_over_in_process"] * 100 for x in levels.values()]
    assert f"{min(ratios):.0f}–{max(ratios):.0f} % of `step_streams`" in text
