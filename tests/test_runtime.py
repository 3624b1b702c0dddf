"""The streaming runtime: every backend against the float64 reference, streams, batches, threads."""
import os
import warnings

import numpy as np
import pytest

from helpers import in_threads, make_checkpoint, reference_outputs, run_without_torch, seeded
from slimedge import exporters, runtime, variants, zoo
from slimedge.runtime import InputError, ModelFileError

ALL = list(variants.VARIANTS)
SUFFIX = {"onnxruntime": ".onnx", "litert": ".tflite", "tflm": ".tflite", "c": ".c", "torch": ".safetensors",
          "numpy": ".safetensors"}
# the backends installed here; the parametrised tests below run on these only, so a backend that
# failed to install would drop its tests silently (here and in test_runtime_cli.py, which imports
# this list): test_every_backend_is_installed_under_ci says so
BACKENDS = [b for b in runtime.BACKENDS if runtime.backend_module(b).available()]
M, N, K = 5, 8, 4  # small sizes keep the suite fast


def test_every_backend_is_installed_under_ci():
    """Under CI (SLIMEDGE_NO_SKIPS=1) every backend is installed: a missing one fails here
    instead of its parametrised tests quietly not existing. Elsewhere a missing one skips."""
    missing = [b for b in runtime.BACKENDS if b not in BACKENDS]
    assert set(runtime.BACKENDS) == {"onnxruntime", "litert", "tflm", "c", "torch", "numpy"}
    if missing and os.environ.get("SLIMEDGE_NO_SKIPS") == "1":
        pytest.fail(f"SLIMEDGE_NO_SKIPS=1 but backend(s) {', '.join(missing)} not installed: "
                    f"their runtime tests would not run")
    if missing:
        pytest.skip(f"backend(s) not installed: {', '.join(missing)}")


def export_file(ckpt, suffix, out=None, **kw):
    """``ckpt`` exported as ``suffix`` beside it (the checkpoint itself for .safetensors)."""
    from slimedge import exporters

    if suffix == ".safetensors":
        return ckpt
    out = out or ckpt.with_name(ckpt.stem + kw.get("tag", "") + suffix)
    kw.pop("tag", None)
    fmt = suffix[1:]
    try:
        exporters.export(ckpt, out, format=fmt, validate=False, **kw)
    except ValueError as e:  # the TFLite writer before export() knew it
        if fmt != "tflite" or "not available" not in str(e):
            raise
        from slimedge.exporters import tflite
        tflite.emit(ckpt, out, **kw)
    return out


class Files:
    """Checkpoints and their exports, made once per test session."""

    def __init__(self, root):
        self.root, self.cache = root, {}

    def get(self, variant, layers=2, classes=K, suffix=".safetensors", **kw):
        key = (variant, layers, classes, suffix)
        if key not in self.cache:
            d = self.root / f"{variant}-{layers}-{classes}"
            d.mkdir(exist_ok=True)
            ck = ("ckpt", variant, layers, classes)
            if ck not in self.cache:
                self.cache[ck] = make_checkpoint(d / "m.safetensors", variant, M, N, layers,
                                                 classes=classes)
            self.cache[key] = export_file(self.cache[ck][0], suffix)
        path = self.cache[key]
        _, w, extra = self.cache[("ckpt", variant, layers, classes)]
        return path, w, extra


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    return Files(tmp_path_factory.mktemp("runtime"))


def load(files, backend, variant="LSTM0", layers=2, classes=K, **kw):
    path, w, extra = files.get(variant, layers, classes, SUFFIX[backend])
    return runtime.load(path, backend, threads=1, **kw), w, extra


# ---- equivalence: stream == run == reference, per backend and variant -------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", ALL)
def test_stream_matches_run_and_reference(files, backend, variant):
    model, w, extra = load(files, backend, variant)
    T = 40
    frames = seeded("frames", variant).normal(size=(T, M)).astype(np.float32)
    s = model.stream()
    ys = np.stack([s.step(f) for f in frames])
    ry, rh, rc = reference_outputs(variant, w, extra, frames[:, None])
    np.testing.assert_allclose(ys, ry[:, 0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(s.state[0], rh[:, 0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(s.state[1], rc[:, 0], atol=1e-5, rtol=0)
    run, (h, c) = model.run(frames, return_state=True)
    np.testing.assert_array_equal(run, ys)  # same backend call, batch 1: identical
    np.testing.assert_array_equal(h, s.state[0])
    # from a non-zero state, set through the state property
    h0, c0 = (seeded("state", variant).normal(size=(2, N, 2)).transpose(0, 2, 1) * 0.5
              ).astype(np.float32)
    s.state = (h0, c0)
    ys2 = np.stack([s.step(f) for f in frames[:10]])
    ry2, _, _ = reference_outputs(variant, w, extra, frames[:10, None], h0[:, None], c0[:, None])
    np.testing.assert_allclose(ys2, ry2[:, 0], atol=1e-5, rtol=0)
    np.testing.assert_array_equal(model.run(frames[:10], state=(h0, c0)), ys2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant,layers,classes", [("LSTM6", 1, None), ("LSTM11", 3, 3)])
def test_without_head_and_deeper(files, backend, variant, layers, classes):
    model, w, extra = load(files, backend, variant, layers, classes)
    assert model.output_size == (classes or N) and model.num_layers == layers
    frames = seeded("f2").normal(size=(25, M))
    ys = np.stack([model.stream().step(f) for f in frames[:1]] +
                  [y for y in model.run(frames)[1:]])
    ry, _, _ = reference_outputs(variant, w, extra, frames[:, None])
    np.testing.assert_allclose(ys, ry[:, 0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_run_equals_single_runs(files, backend):
    model, w, extra = load(files, backend, "LSTM5")
    xs = seeded("batch").normal(size=(3, 20, M)).astype(np.float32)
    out, (h, c) = model.run(xs, return_state=True)
    assert out.shape == (3, 20, K) and h.shape == (2, 3, N)
    for b in range(3):
        one, (hb, cb) = model.run(xs[b], return_state=True)
        np.testing.assert_allclose(out[b], one, atol=1e-6, rtol=0)
        np.testing.assert_allclose(h[:, b], hb, atol=1e-6, rtol=0)
    ry, _, _ = reference_outputs("LSTM5", w, extra, xs.transpose(1, 0, 2))
    np.testing.assert_allclose(out, ry.transpose(1, 0, 2), atol=1e-5, rtol=0)


# ---- many streams ------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", ["LSTM0", "LSTM10"])
def test_stream_batch_with_staggered_resets_equals_separate_streams(files, backend, variant):
    model, _, _ = load(files, backend, variant)
    k, T = 16, 30
    frames = seeded("sb", variant).normal(size=(T, k, M)).astype(np.float32)
    batch = model.streams(k)
    singles = [model.stream() for _ in range(k)]
    for t in range(T):
        resets = [i for i in range(k) if t and (t + i) % (3 + i % 5) == 0]
        batch.reset(resets)
        for i in resets:
            singles[i].reset()
        ys = batch.step(frames[t])
        want = np.stack([s.step(frames[t, i]) for i, s in enumerate(singles)])
        np.testing.assert_allclose(ys, want, atol=1e-6, rtol=0, err_msg=f"step {t}")
    for i in range(k):
        np.testing.assert_allclose(batch.stream_state(i)[1], singles[i].state[1], atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stream_batch_add_remove_and_move_states(files, backend):
    model, _, _ = load(files, backend, "LSTM4a")
    rng = seeded("addremove")
    batch = model.streams(3)
    singles = [model.stream() for _ in range(3)]

    def step():
        frames = rng.normal(size=(len(batch), M)).astype(np.float32)
        ys = batch.step(frames)
        want = np.stack([s.step(f) for s, f in zip(singles, frames)]) if singles else ys
        np.testing.assert_allclose(ys, want, atol=1e-6, rtol=0)

    for _ in range(4):
        step()
    gone = batch.remove(1)  # later streams move down
    np.testing.assert_allclose(gone[0], singles[1].state[0], atol=1e-6)
    moved = singles.pop(1)
    step()
    assert batch.add() == 2  # a fresh stream
    singles.append(model.stream())
    step()
    assert batch.add(moved.state) == 3  # a stream moved in from a single Stream, mid-sequence
    singles.append(moved)
    for _ in range(3):
        step()
    batch.reset()
    for s in singles:
        s.reset()
    step()
    for i in (3, 0, 0, 0):
        batch.remove(i)
        singles.pop(i)
    assert len(batch) == 0
    assert batch.step(np.zeros((0, M), np.float32)).shape == (0, K)
    batch.add()
    singles.append(model.stream())
    step()


@pytest.mark.parametrize("backend", BACKENDS)
def test_streams_coming_and_going_keep_no_binding_per_size(files, backend):
    """A batch grown to 40 streams one add() at a time and shrunk again holds only the binding it
    steps; LiteRT keeps interpreters for a few recent batch sizes, not one per size ever used."""
    import gc
    import weakref

    from slimedge.formats.tflite import litert

    model, _, _ = load(files, backend, "LSTM0")
    rng = seeded("churn")
    early = model.stream()  # its batch-1 binding outlives the cache's batch-1 interpreter
    frames = rng.normal(size=(5, M)).astype(np.float32)
    batch = model.streams(0)
    seen, interpreters = [], []
    for k in list(range(1, 41)) + list(range(39, 1, -1)):
        if k > len(batch):
            batch.add()
        else:
            batch.remove(int(rng.integers(len(batch))))
        assert len(batch) == k
        batch.step(rng.normal(size=(k, M)).astype(np.float32))
        seen.append(weakref.ref(batch._b))
        if backend == "litert":
            interpreters.append(weakref.ref(batch._b._interpreter))
            assert len(model.session._by_batch) <= litert.CACHED_SIZES
    gc.collect()
    assert [r() for r in seen if r() is not None] == [batch._b]
    if backend == "litert":
        alive = {id(r()) for r in interpreters if r() is not None}
        assert len(alive) <= litert.CACHED_SIZES + 1  # + the batch-1 one that `early` holds
        assert id(early._b._interpreter) in alive
        # the most recent sizes, least recent first; batch size 1 is gone, yet `early` steps on
        assert model.session._by_batch.keys() == [5, 4, 3, 2][-litert.CACHED_SIZES:]
    late = model.stream()  # a fresh batch-1 binding (on LiteRT: a new interpreter)
    ys_early = np.stack([early.step(f) for f in frames])
    ys_late = np.stack([late.step(f) for f in frames])
    np.testing.assert_array_equal(ys_early, ys_late)
    # the batch still steps exactly like separate streams after all the copying
    singles = [model.stream() for _ in range(len(batch))]
    for i, s in enumerate(singles):
        s.state = batch.stream_state(i)
    f2 = rng.normal(size=(len(batch), M)).astype(np.float32)
    np.testing.assert_allclose(batch.step(f2), np.stack([s.step(f) for s, f in zip(singles, f2)]),
                               atol=1e-6, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_threads_share_one_model(files, backend):
    """8 threads, each with its own streams on one Model, give exactly the serial results."""
    model, _, _ = load(files, backend, "LSTM0")
    T = 40
    frames = [seeded("thread", i).normal(size=(T, M)).astype(np.float32) for i in range(8)]
    batch_frames = seeded("thread-batch").normal(size=(T, 4, M)).astype(np.float32)

    def work(i):
        s = model.stream()
        if i % 2:
            return np.stack([s.step(f) for f in frames[i]])
        b = model.streams(4)  # half the threads step a StreamBatch too
        ys = np.stack([s.step(f) for f in frames[i]])
        return ys, np.stack([b.step(f) for f in batch_frames])

    serial = [work(i) for i in range(8)]
    results = in_threads(work, 8)
    for i in range(8):
        if i % 2:
            np.testing.assert_array_equal(results[i], serial[i])
        else:
            np.testing.assert_array_equal(results[i][0], serial[i][0])
            np.testing.assert_array_equal(results[i][1], serial[i][1])


# ---- the model's facts, state, the bare call ---------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_model_facts(files, backend):
    model, _, _ = load(files, backend, "LSTM6")
    assert (model.input_size, model.output_size, model.hidden_size, model.num_layers) == (M, K, N, 2)
    assert model.state_shape == (2, N)
    assert model.labels == [str(k) for k in range(K)]
    assert model.backend == backend and model.variant == "LSTM6"
    assert model.config["graph"]["input_size"] == M
    assert backend in repr(model)
    s = model.stream()
    h, c = s.state
    assert h.shape == c.shape == (2, N) and h.dtype == np.float32 and not h.any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_state_is_a_copy_and_resumes(files, backend, tmp_path):
    model, _, _ = load(files, backend, "LSTM1")
    frames = seeded("resume").normal(size=(20, M)).astype(np.float32)
    s = model.stream()
    for f in frames[:10]:
        s.step(f)
    saved = s.state
    saved[0][:] = 99.0  # a copy: changing it changes nothing
    saved = s.state
    np.savez(tmp_path / "state.npz", h=saved[0], c=saved[1])
    rest = [s.step(f) for f in frames[10:]]
    s.reset()
    assert not s.state[0].any()
    other = model.stream()
    z = np.load(tmp_path / "state.npz")
    other.state = (z["h"], z["c"])
    np.testing.assert_array_equal([other.step(f) for f in frames[10:]], rest)
    np.testing.assert_array_equal(model.run(frames)[10:], rest)


def test_state_resumes_in_another_process(files, tmp_path):
    import subprocess
    import sys

    path, _, _ = files.get("LSTM5a", suffix=".onnx" if "onnxruntime" in BACKENDS else ".safetensors")
    model = runtime.load(path)
    frames = seeded("proc").normal(size=(12, M)).astype(np.float32)
    s = model.stream()
    for f in frames[:6]:
        s.step(f)
    np.savez(tmp_path / "s.npz", h=s.state[0], c=s.state[1], frames=frames[6:])
    want = np.stack([s.step(f) for f in frames[6:]])
    code = (f"import numpy as np; from slimedge import runtime; z = np.load({str(tmp_path / 's.npz')!r});"
            f"s = runtime.load({str(path)!r}).stream(); s.state = (z['h'], z['c']);"
            f"np.save({str(tmp_path / 'out.npy')!r}, np.stack([s.step(f) for f in z['frames']]))")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_step_raw_is_the_bare_backend_call(files, backend):
    model, _, _ = load(files, backend, "LSTM0")
    x = seeded("raw").normal(size=(1, M)).astype(np.float32)
    h = c = np.zeros((2, 1, N), np.float32)
    y, h1, c1 = model.step_raw(x, h, c)
    s = model.stream()
    np.testing.assert_array_equal(y[0], s.step(x[0]))
    np.testing.assert_array_equal(h1[:, 0], s.state[0])
    y3, _, _ = model.step_raw(np.repeat(x, 3, 0), np.zeros((2, 3, N), np.float32),
                              np.zeros((2, 3, N), np.float32))
    np.testing.assert_allclose(y3, np.repeat(y, 3, 0), atol=1e-6)


# ---- robustness ---------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_frames_are_refused_and_leave_the_state(files, backend):
    model, _, _ = load(files, backend, "LSTM0")
    frames = seeded("robust").normal(size=(6, M)).astype(np.float32)
    s, ref = model.stream(), model.stream()
    for f in frames[:3]:
        s.step(f)
        ref.step(f)
    before = s.state
    bad = [
        (np.zeros(M + 1, np.float32), rf"expected shape \({M},\), got \({M + 1},\)"),
        (np.zeros((1, M), np.float32), rf"expected shape \({M},\), got \(1, {M}\)"),
        (np.float32(1.0), r"got \(\)"),
        (np.array(["a"] * M), "expected a float .* got dtype <U1"),
        (np.ones(M, bool), "got dtype bool"),
        (np.ones(M, complex), "got dtype complex128"),
        (np.array([0, 1, np.nan, 0, 0], np.float32), "finite values, got nan at index 2"),
        (np.array([0, 0, 0, 0, -np.inf]), "finite values, got -inf at index 4"),
        (np.array([0, 0, 1e39, 0, 0]), "finite values, got inf at index 2"),  # > float32 max
        ([0.0] * (M - 1), rf"got \({M - 1},\)"),
        (None, r"got \(\)"),
    ]
    for frame, message in bad:
        with pytest.raises(InputError, match=message):
            s.step(frame)
        np.testing.assert_array_equal(s.state[0], before[0])
        np.testing.assert_array_equal(s.state[1], before[1])
    # integers and float64 are converted; a list works too
    np.testing.assert_array_equal(s.step(frames[3].astype(np.float64)), ref.step(frames[3]))
    np.testing.assert_array_equal(s.step(list(frames[4])), ref.step(frames[4]))
    ints = np.arange(M, dtype=np.uint8)
    np.testing.assert_array_equal(s.step(ints), ref.step(ints.astype(np.float32)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_states_batches_and_sequences_are_refused(files, backend):
    model, _, _ = load(files, backend, "LSTM11")
    s = model.stream()
    s.step(np.ones(M, np.float32))
    before = s.state
    z = np.zeros((2, N), np.float32)
    for value, message in [((z[0], z), rf"state h: expected shape \(2, {N}\), got \({N},\)"),
                           ((z, np.zeros((2, 1, N))), r"state c: expected shape"),
                           (z, r"state h: expected shape \(2, 8\), got \(8,\)"),
                           (5, r"a pair \(h, c\)"), ((z, z, z), r"a pair \(h, c\)"),
                           ((z, z.astype(str)), "state c: expected a float"),
                           ((z + np.nan, z), "state h: expected finite")]:
        with pytest.raises(InputError, match=message):
            s.state = value
        np.testing.assert_array_equal(s.state[0], before[0])
    b = model.streams(3)
    with pytest.raises(InputError, match=rf"expected shape \(3, {M}\).*got \({M},\)"):
        b.step(np.ones(M))
    with pytest.raises(InputError, match="finite"):
        b.step(np.full((3, M), np.nan))
    # float32 frames are copied as they are, others converted: either way a non-finite frame is
    # named, and a float64 beyond float32's range is refused without a warning
    f32, f64 = np.zeros((3, M), np.float32), np.zeros((3, M))
    f32[2, 0], f64[1, 2] = np.inf, 1e39
    with pytest.raises(InputError, match=r"got inf at index \(2, 0\)"):
        b.step(f32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match=r"got inf at index \(1, 2\)"):
            b.step(f64)
    with pytest.raises(IndexError, match="out of range"):
        b.reset(3)
    with pytest.raises(InputError, match=r"state h: expected shape \(2, 3, 8\)"):
        b.state = (z, z)
    with pytest.raises(InputError, match=r"sequence: expected shape \(T, 5\) or \(B, T, 5\)"):
        model.run(np.ones((4, M + 1)))
    with pytest.raises(InputError, match="sequence: expected finite values, got nan at index"):
        model.run(np.full((4, M), np.nan))
    assert not b.state[0].any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_and_foreign_files(files, backend, tmp_path):
    path, _, _ = files.get("LSTM0", suffix=SUFFIX[backend])
    data = path.read_bytes()
    for name, content in [("half", data[:len(data) // 2]), ("most", data[:int(len(data) * 0.99)]),
                          ("empty", b""), ("foreign", seeded("junk").bytes(3000)),
                          ("text", b"hello, I am not a model\n")]:
        bad = tmp_path / f"{name}{SUFFIX[backend]}"
        bad.write_bytes(content)
        with pytest.raises(ValueError, match=str(bad).replace(".", r"\.")):
            runtime.load(bad, backend)


def test_file_errors_name_the_file(files, tmp_path):
    with pytest.raises(ModelFileError, match="nothere.onnx: no such model file"):
        runtime.load(tmp_path / "nothere.onnx")
    (tmp_path / "m.pt").write_bytes(b"x")
    with pytest.raises(ModelFileError, match=r"m\.pt: unknown model file type '\.pt'"):
        runtime.load(tmp_path / "m.pt")
    path, _, _ = files.get("LSTM0")
    with pytest.raises(ValueError, match="unknown backend 'tensorflow'; valid: auto, onnxruntime"):
        runtime.load(path, "tensorflow")
    with pytest.raises(ValueError, match=r"backend 'onnxruntime' reads \.onnx files, not "
                                         r"\.safetensors"):
        runtime.load(path, "onnxruntime")
    with pytest.raises(ValueError, match="threads must be at least 1"):
        runtime.load(path, threads=0)


@pytest.mark.skipif("onnxruntime" not in BACKENDS, reason="onnxruntime not installed")
def test_onnx_without_metadata_or_in_sequence_mode(files, tmp_path):
    import onnx

    from slimedge import exporters

    path, _, _ = files.get("LSTM0", suffix=".onnx")
    m = onnx.load(path)
    del m.metadata_props[:]
    onnx.save(m, tmp_path / "bare.onnx")
    with pytest.raises(ModelFileError, match=r"bare\.onnx: a valid ONNX model, but not a slimedge "
                                             r"export \(no 'slimedge' entry"):
        runtime.load(tmp_path / "bare.onnx")
    ckpt, _, _ = files.get("LSTM0")
    exporters.export(ckpt, tmp_path / "seq.onnx", format="onnx", mode="sequence", validate=False)
    with pytest.raises(ModelFileError, match=r"seq\.onnx: .*sequence-mode export"):
        runtime.load(tmp_path / "seq.onnx")


# ---- LiteRT specifics ---------------------------------------------------------------------------
needs_litert = pytest.mark.skipif("litert" not in BACKENDS, reason="LiteRT not installed")


@needs_litert
def test_tflite_metadata_reader(files):
    import json

    from slimedge.formats.tflite import litert

    path, _, _ = files.get("LSTM0", suffix=".tflite")
    meta = litert.read_metadata(path.read_bytes())
    config = json.loads(meta["slimedge"])
    assert config["graph"]["hidden_size"] == N
    with pytest.raises(ModelFileError, match="no 'TFL3' file identifier"):
        litert.read_metadata(b"\0" * 64)
    data = path.read_bytes()
    for keep in (12, 200, len(data) // 3):
        with pytest.raises(ModelFileError):
            litert.read_metadata(data[:keep])


def _dynamic_tflite(files, per_channel):
    from slimedge.exporters import tflite

    ckpt, _, _ = files.get("LSTM0")
    out = ckpt.with_name(f"dyn-{per_channel}.tflite")
    tflite.emit(ckpt, out, quantize="dynamic", compat="litert" if per_channel else "tflite-runtime")
    return out


@needs_litert
def test_hybrid_per_channel_refused_on_old_tflite_runtime(files, monkeypatch):
    """tflite-runtime mis-computes per-channel hybrid FULLY_CONNECTED: such files are refused on
    it (simulated: LiteRT's interpreter standing in for it), per-tensor ones run."""
    from ai_edge_litert import interpreter

    from slimedge.exporters.tflite import qparams
    from slimedge.formats.tflite import litert

    monkeypatch.setattr(qparams, "PER_CHANNEL_MIN_ROW", 1)  # per channel even for these short rows
    per_channel, per_tensor = _dynamic_tflite(files, True), _dynamic_tflite(files, False)
    monkeypatch.setattr(litert, "_interpreter_module", lambda: (interpreter, "tflite_runtime"))
    with pytest.raises(ModelFileError, match=r"dyn-True\.tflite: uses hybrid FULLY_CONNECTED "
                                             r"with per-channel int8 weights.*ai-edge-litert"):
        runtime.load(per_channel, "litert")
    runtime.load(per_tensor, "litert").stream().step(np.ones(M))
    # the graph itself shows it, even without the exporter's flag
    it = interpreter.Interpreter(model_path=str(per_channel))
    with pytest.raises(ModelFileError, match="per-channel"):
        litert.refuse_on_tflite_runtime(per_channel, it, {})


@needs_litert
def test_quantized_tflite_runs_close_to_float(files):
    _, w, extra = files.get("LSTM0")
    model = runtime.load(_dynamic_tflite(files, True))
    frames = seeded("q").normal(size=(30, M))
    ry, _, _ = reference_outputs("LSTM0", w, extra, frames[:, None])
    s = model.stream()
    ys = np.stack([s.step(f) for f in frames])
    assert np.abs(ys - ry[:, 0]).max() < 0.05
    np.testing.assert_array_equal(model.run(frames), ys)


# ---- choosing the backend -------------------------------------------------------------------------
def test_auto_picks_by_file_type_and_says_so(files, caplog, monkeypatch):
    import logging

    monkeypatch.delenv(runtime.ENV_BACKEND, raising=False)
    caplog.set_level(logging.INFO, logger="slimedge.runtime")
    for suffix, want in [(".safetensors", "numpy"), (".onnx", "onnxruntime"), (".tflite", "litert")]:
        if want not in BACKENDS:
            continue
        path, _, _ = files.get("LSTM0", suffix=suffix)
        model = runtime.load(path)
        assert model.backend == want and model.backend_reason.startswith("auto")
        assert f"backend {want} (auto" in caplog.text
    if "torch" in BACKENDS:
        monkeypatch.setenv(runtime.ENV_BACKEND, "torch")
        path, _, _ = files.get("LSTM0")
        model = runtime.load(path)
        assert model.backend == "torch" and "SLIMEDGE_BACKEND" in model.backend_reason
        if "onnxruntime" in BACKENDS:  # the override does not apply to a file torch cannot read
            assert runtime.load(files.get("LSTM0", suffix=".onnx")[0]).backend == "onnxruntime"
    assert set(runtime.available_backends()) == set(BACKENDS)


def test_importing_the_runtime_does_not_import_torch(files):
    """With torch blocked, the runtime imports, and steps an ONNX, a TFLite and a checkpoint."""
    paths = {s: str(files.get("LSTM6", suffix=s)[0])
             for s in (".onnx", ".tflite", ".safetensors")}
    code = f"""
import numpy as np
import slimedge.runtime as rt
for path, want in [({paths['.onnx']!r}, "onnxruntime"), ({paths['.tflite']!r}, "litert"),
                   ({paths['.safetensors']!r}, "numpy")]:
    m = rt.load(path)
    assert m.backend == want, (path, m.backend)
    y = m.stream().step(np.ones({M}, np.float32))
    assert y.shape == ({K},) and np.isfinite(y).all()
assert sys.modules["torch"] is None
print("ok")
"""
    assert run_without_torch(code).strip() == "ok"


def test_star_import_gives_every_public_name():
    """``from slimedge.runtime import *`` works: every name in ``__all__`` exists."""
    missing = [name for name in runtime.__all__ if not hasattr(runtime, name)]
    assert not missing
    code = ("from slimedge.runtime import *\n"
            "assert Evaluation.__name__ == 'Evaluation' and callable(evaluate)\n"
            "print('ok')")
    assert run_without_torch(code).strip() == "ok"


# ---- accuracy on a data set -----------------------------------------------------------------------
def test_evaluate_counts_the_last_frame_of_each_sequence(files):
    from slimedge.data import SequenceData

    path, w, extra = files.get("LSTM0")
    model = runtime.load(path)
    rng = seeded("acc")
    seqs = [rng.normal(size=(t, M)).astype(np.float32) for t in (3, 7, 5, 9, 2)]
    last = [reference_outputs("LSTM0", w, extra, s[:, None])[0][-1, 0] for s in seqs]
    y = np.array([int(np.argmax(v)) for v in last])
    y[1] = (y[1] + 1) % K  # one wrong label
    data = SequenceData(np.concatenate(seqs), np.cumsum([0] + [len(s) for s in seqs]), y,
                        [str(k) for k in range(K)])
    ev = runtime.evaluate(model, data, batch_size=2)
    assert (ev.accuracy, ev.n, int(ev.confusion.trace())) == (0.8, 5, 4)
    logits = np.stack(last)
    ce = np.log(np.exp(logits).sum(-1)) - logits[np.arange(5), y]
    assert ev.loss == pytest.approx(ce.mean(), abs=1e-5)
    assert ev.to_dict()["correct"] == 4 and ev.labels == [str(k) for k in range(K)]


# ---- quantised exports ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def quantized(files, tmp_path_factory):
    """LSTM0 exported with every quantisation of both formats, calibrated on a tiny data set."""
    from slimedge import data, exporters

    d = tmp_path_factory.mktemp("quantized")
    rng = seeded("qdata")
    seqs = [rng.normal(size=(10, M)).astype(np.float32) for _ in range(60)]
    data.save_npz(d / "q.npz", seqs, np.arange(60) % K,
                  split=["train"] * 40 + ["val"] * 10 + ["test"] * 10)
    splits = data.load(d / "q.npz")
    ckpt, w, extra = files.get("LSTM0")
    out = {}
    for fmt in ("onnx", "tflite"):
        for q in ("dynamic", "int8"):
            # random weights and labels: the task check says nothing here, the streams do
            out[fmt, q] = exporters.export(ckpt, d / f"{q}.{fmt}", format=fmt, quantize=q,
                                           validate=False, data=splits,
                                           accuracy_tolerance=1.0).path
    return out, w, extra


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
@pytest.mark.parametrize("quantize", ["dynamic", "int8"])
def test_quantized_exports_stream_like_float_ones(quantized, fmt, quantize):
    backend = {"onnx": "onnxruntime", "tflite": "litert"}[fmt]
    if backend not in BACKENDS:
        pytest.skip(f"{backend} not installed")
    files_q, w, extra = quantized
    model = runtime.load(files_q[fmt, quantize], threads=1)
    assert model.backend == backend and model.config["export"]["quantize"] == quantize
    frames = seeded("qframes").normal(size=(30, M)).astype(np.float32)
    s = model.stream()
    ys = np.stack([s.step(f) for f in frames])
    ry, _, _ = reference_outputs("LSTM0", w, extra, frames[:, None])
    assert np.abs(ys - ry[:, 0]).max() < 0.05
    np.testing.assert_array_equal(model.run(frames), ys)
    # streams in a batch stay independent, even with very different input scales
    k = 16
    fb = seeded("qbatch").normal(size=(20, k, M)).astype(np.float32) * np.linspace(0.1, 5, k)[:, None]
    batch, singles = model.streams(k), [model.stream() for _ in range(k)]
    for t in range(20):
        if t == 7:
            batch.reset([2, 9])
            singles[2].reset()
            singles[9].reset()
        want = np.stack([s.step(fb[t, i]) for i, s in enumerate(singles)])
        np.testing.assert_allclose(batch.step(fb[t]), want, atol=1e-6, rtol=0, err_msg=f"step {t}")


def test_litert_says_nothing_to_library_users(tmp_path):
    """LiteRT's native XNNPACK INFO line does not reach a library user's stderr; the step does."""
    r = exporters.export(zoo.default_model_path(), tmp_path / "m.tflite", format="tflite")
    code = (f"import numpy as np\nfrom slimedge import runtime\n"
            f"m = runtime.load({str(r.path)!r}, backend='litert')\n"
            f"print(m.stream().step(np.zeros(m.input_size, np.float32)).argmax())")
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().isdigit(), out.stderr
    assert "XNNPACK" not in out.stderr and out.stderr.strip() == ""
