"""The runtime's ``c`` backend: C exports stream like the numpy backend, batches equal single
streams, threads share one model, folders and prebuilt libraries load, bad input is refused."""
import ctypes
import os
import shutil
import threading

import numpy as np
import pytest

from helpers import environ, in_threads, make_checkpoint, seeded
from slimedge import integrity, ir, runtime, variants
from slimedge.exporters import c as cx
from slimedge.formats.c import reader as c_reader
from slimedge.formats.c import toolchain
from slimedge.runtime import InputError

M, N, K = 5, 8, 4

# batched rows (the blocked kernel) against one stream (the per-stream code): float32 rounding
# of the same sums in another order; int8 weights: the same integer sums, rescaled in another order
BLOCKED_ATOL = {"none": 1e-5, "dynamic": 2e-4}


@pytest.fixture(scope="session", autouse=True)
def c_backend(tmp_path_factory):
    """One library cache for the session, -Werror builds."""
    assert "c" in runtime.BACKENDS
    env = {toolchain.ENV_CACHE: str(tmp_path_factory.getbasetemp() / "slimedge-cache"),
           toolchain.ENV_CFLAGS: " ".join([*toolchain.DEFAULT_CFLAGS, "-Wall", "-Wextra",
                                           "-pedantic", "-Werror"])}
    with environ(env):
        yield


class Models:
    """Per (variant, quantize): the checkpoint on the numpy backend and its C export."""

    def __init__(self, root) -> None:
        self.root, self.cache = root, {}

    def get(self, variant, quantize="none", layers=2):
        key = (variant, quantize, layers)
        if key not in self.cache:
            d = self.root / f"{variant}-{quantize}-{layers}"
            d.mkdir()
            ckpt, _, _ = make_checkpoint(d / "m.safetensors", variant, M, N, layers, classes=K)
            path = d / "m.c"
            if quantize == "none":
                cx.write(ir.lower(ckpt, fold_normalization=True), path)
            else:
                cx.write_int8_weights(ir.lower(ckpt), path, splits=None, options=None)
            self.cache[key] = (runtime.load(ckpt, "numpy"), runtime.load(path, "c", threads=1))
        return self.cache[key]


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    return Models(tmp_path_factory.mktemp("runtime-c"))


@pytest.mark.parametrize("variant", list(variants.VARIANTS))
def test_stream_and_batch_match_the_numpy_backend(models, variant):
    ref, model = models.get(variant)
    assert model.backend == "c" and model.session.detail.startswith("C export (none)")
    frames = seeded("frames", variant).normal(size=(40, 3, M)).astype(np.float32)
    s, r = model.stream(), ref.stream()
    ys = np.stack([s.step(f) for f in frames[:, 0]])
    np.testing.assert_allclose(ys, np.stack([r.step(f) for f in frames[:, 0]]), atol=1e-5, rtol=0)
    np.testing.assert_allclose(s.state[1], r.state[1], atol=1e-5, rtol=0)
    b, rb = model.streams(3), ref.streams(3)
    got = np.stack([b.step(f) for f in frames])
    np.testing.assert_allclose(got, np.stack([rb.step(f) for f in frames]), atol=1e-5, rtol=0)
    # row 0 of the batch is the single stream, up to float32 rounding: a batch runs the blocked
    # kernel (its sums in another order), one stream the per-stream code
    np.testing.assert_allclose(got[:, 0], ys, atol=BLOCKED_ATOL["none"], rtol=0)
    np.testing.assert_array_equal(model.run(frames[:, 0]), ys)


@pytest.mark.parametrize("quantize", ["none", "dynamic"])
def test_sixteen_streams_in_a_batch_equal_sixteen_single_streams(models, quantize):
    """Each row is its stream's own: a batch (the blocked kernel) equals single streams (the
    per-stream code) up to float32 rounding of sums taken in another order, with streams reset
    and added on the way; a stream's rows do not depend on the batch around it (bit for bit,
    tests/test_export_c.py)."""
    _, model = models.get("LSTM0", quantize)
    frames = seeded("sixteen").normal(size=(30, 16, M)).astype(np.float32)
    batch, singles = model.streams(16), [model.stream() for _ in range(16)]
    for t, f in enumerate(frames):
        if t == 10:
            batch.reset([3, 7])
            singles[3].reset()
            singles[7].reset()
        ys = batch.step(f)
        np.testing.assert_allclose(ys, np.stack([s.step(x) for s, x in zip(singles, f)]),
                                   atol=BLOCKED_ATOL[quantize], rtol=0)
    i = batch.add(singles[5].state)
    assert i == 16
    extra = model.stream()
    extra.state = singles[5].state
    f = np.concatenate([frames[0], frames[1][:1]])
    np.testing.assert_allclose(batch.step(f)[16], extra.step(frames[1][0]),
                               atol=BLOCKED_ATOL[quantize], rtol=0)


def test_threads_share_one_model(models):
    """8 threads stepping their own streams and batches on one Model: exactly the serial result."""
    _, model = models.get("LSTM5")
    frames = [seeded("thread", i).normal(size=(200, 4, M)).astype(np.float32) for i in range(8)]

    def work(i):
        b, s = model.streams(4), model.stream()
        return np.stack([b.step(f) for f in frames[i]]), np.stack([s.step(f[0]) for f in frames[i]])

    serial = [work(i) for i in range(8)]
    results = in_threads(work, 8)
    for got, want in zip(results, serial):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_bad_input_is_refused_and_leaves_the_state(models):
    _, model = models.get("LSTM11")
    s = model.stream()
    s.step(np.ones(M, np.float32))
    before = s.state
    for frame, message in [(np.zeros(M + 1, np.float32), "expected shape"),
                           (np.array([0, 1, np.nan, 0, 0], np.float32), "finite"),
                           (np.array(["a"] * M), "expected a float")]:
        with pytest.raises(InputError, match=message):
            s.step(frame)
    np.testing.assert_array_equal(s.state[0], before[0])
    with pytest.raises(InputError, match="frames: expected shape"):
        model.streams(2).step(np.ones((3, M)))
    with pytest.raises(ValueError, match="CPU only"):
        runtime.load(model.path, "c", device="cuda")


def test_folder_and_prebuilt_library(models, tmp_path):
    _, model = models.get("LSTM6")
    d = tmp_path / "export"
    d.mkdir()
    for suffix in (".c", ".h"):
        shutil.copy(model.path.with_suffix(suffix), d / f"digits{suffix}")
    from_dir = runtime.load(d)  # a renamed pair: the build gives the header its included name
    assert from_dir.backend == "c" and "compiled" in from_dir.session.detail
    frames = seeded("dir").normal(size=(12, M)).astype(np.float32)
    np.testing.assert_array_equal(from_dir.run(frames), model.run(frames))
    # a library built beside the sealed export (the compiler in place needs the header under its
    # own name), used when the user allows prebuilt libraries
    integrity.seal(d / "digits.c")
    shutil.copy(model.path.with_suffix(".h"), d / "m.h")
    toolchain.compile_library(d / "digits.c", d / f"digits{toolchain.library_suffix()}")
    assert "compiled" in runtime.load(d / "digits.c", "c").session.detail  # not allowed
    with environ({toolchain.ENV_PREBUILT: "1"}):
        pre = runtime.load(d / "digits.c", "c")
    assert "prebuilt" in pre.session.detail
    np.testing.assert_allclose(pre.run(frames), model.run(frames), atol=1e-6, rtol=0)


def test_a_broken_source_is_refused_naming_the_file(models, tmp_path):
    _, model = models.get("LSTM0")
    text = model.path.read_text()
    bad = tmp_path / "half.c"
    bad.write_text(text[:len(text) // 2])
    with pytest.raises(ValueError, match=r"half\.c"):
        runtime.load(bad, "c")
    (tmp_path / "foreign.c").write_text("int x;\n")
    with pytest.raises(ValueError, match=r"foreign\.c: not a slimedge C export"):
        runtime.load(tmp_path / "foreign.c", "c")


# ---- the library the backend loads: cache, concurrency, prebuilt libraries -----------------------
def test_cache_is_keyed_by_source_and_safe_under_concurrent_builds(models, tmp_path, monkeypatch):
    monkeypatch.setenv(toolchain.ENV_CACHE, str(tmp_path / "cache"))
    path = models.get("LSTM4")[1].path
    results, errors = [], []

    def build():
        try:
            results.append(toolchain.build(path))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    lib = results[0]
    assert [p.name for p in lib.parent.iterdir()] == [lib.name]  # no temporary left behind
    stamp = lib.stat().st_mtime_ns
    assert toolchain.build(path) == lib and lib.stat().st_mtime_ns == stamp  # found, not rebuilt
    ctypes.CDLL(str(lib))
    monkeypatch.setenv(toolchain.ENV_CFLAGS, "-O1 -Werror")  # other flags: another library
    assert toolchain.build(path) != lib


def test_prebuilt_library_is_used_only_when_it_matches(models, tmp_path):
    """A library beside the .c is loaded when its embedded config (weights digest included) is
    the .c's; another model's library under that name (same prefix, other weights) is not."""
    a, b = models.get("LSTM5a")[1].path, models.get("LSTM5a", layers=1)[1].path
    lib_name = a.with_suffix(toolchain.library_suffix()).name
    for folder, built_from, want in (("good", a, "prebuilt"), ("stale", b, "compiled")):
        d = tmp_path / folder
        d.mkdir()
        for p in (a, a.with_suffix(".h")):
            shutil.copy(p, d / p.name)
        integrity.seal(d / a.name)
        src = tmp_path / f"src-{folder}"
        src.mkdir()
        for p in (built_from, built_from.with_suffix(".h")):
            shutil.copy(p, src / p.name)
        integrity.seal(src / a.name)
        toolchain.compile_library(src / a.name, d / lib_name)
        with environ({toolchain.ENV_PREBUILT: "1"}):
            model = runtime.load(d / a.name, "c")
        assert model.session.detail.split(", ")[1].split()[0] == want, model.session.detail
        assert toolchain.embedded_config(model.session.lib, "m") == c_reader.read_config(d / a.name)


def test_loading_a_model_leaves_the_process_floating_point_state_alone(models, tmp_path):
    """A library linked with -ffast-math carries gcc's crtfastmath.o, which sets flush-to-zero
    for the whole process that loads it: numpy (and the app) would then lose every subnormal.
    The backend's libraries are linked without it; checked in a fresh process, and for the
    examples' `make lib`."""
    from helpers import run_without_torch

    _, model = models.get("LSTM6")
    code = ("import numpy as np\nfrom slimedge import runtime\n"
            f"m = runtime.load({str(model.path)!r}, 'c')\n"
            "m.stream().step(np.zeros(m.input_size, np.float32))\n"
            "print(bool(np.float32(1e-40) * np.float32(1.0) != 0))")
    assert run_without_torch(code).strip() == "True"
    make = shutil.which("make")
    assert make, "make is needed for examples/c"
    src = tmp_path / "m.c"
    shutil.copy(model.path, src)
    shutil.copy(model.path.with_suffix(".h"), tmp_path / "m.h")
    shutil.copy(model.path.with_name(c_reader.KERNELS), tmp_path / c_reader.KERNELS)  # third file
    root = os.path.join(os.path.dirname(__file__), "..", "examples", "c")
    import subprocess
    subprocess.run([make, "-s", "-C", root, "lib", f"MODEL={src}"], check=True, capture_output=True)
    code = ("import ctypes, numpy as np\n"
            f"ctypes.CDLL({str(tmp_path / 'm.so')!r})\n"
            "print(bool(np.float32(1e-40) * np.float32(1.0) != 0))")
    assert run_without_torch(code).strip() == "True"
