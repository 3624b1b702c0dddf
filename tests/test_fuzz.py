"""Fuzz: mutated model files (one-bit flips, zeroed runs, truncation) of every format. Loaded the
default way, each is a clean error (SlimedgeError naming the file) or gives the original's output;
never a traceback, never a silent NaN or wrong answer. Loaded with ``verify=False`` (the user's
choice), the parsers behind the digest still give a clean error or finite outputs, never an
exception of another type (LiteRT's RuntimeError, a UnicodeDecodeError, a RecursionError)."""

import numpy as np
import pytest

from helpers import make_checkpoint
from slimedge import exporters, runtime
from slimedge.errors import SlimedgeError

MUTATIONS = 24  # per format and mode (seeded: the same files every run)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    ckpt, _, _ = make_checkpoint(d / "m.safetensors", "LSTM4a", 4, 6, 2, classes=3)
    out = {"safetensors": (ckpt, "numpy")}
    for fmt, backend in (("onnx", "onnxruntime"), ("tflite", "litert")):
        if runtime.backend_module(backend).available():
            out[fmt] = (exporters.export(ckpt, d / f"m.{fmt}", format=fmt).path, backend)
    from slimedge.formats.c import toolchain

    if toolchain.have_compiler():
        (d / "c").mkdir()
        out["c"] = (exporters.export(ckpt, d / "c" / "m.c", format="c").path, "c")
    return out


def mutate(data: bytes, rng) -> bytes:
    b = bytearray(data)
    kind = rng.integers(3)
    if kind == 0:  # one bit
        pos = int(rng.integers(len(b)))
        b[pos] ^= 1 << int(rng.integers(8))
    elif kind == 1:  # a zeroed run
        pos = int(rng.integers(len(b)))
        b[pos:pos + int(rng.integers(1, 16))] = bytes(len(b[pos:pos + 16]))[:len(b[pos:pos + 16])]
    else:  # truncated
        b = b[:int(rng.integers(len(b)))]
    return bytes(b)


FRAMES = np.random.default_rng(0).standard_normal((2, 7, 4)).astype(np.float32)


@pytest.mark.parametrize("fmt", ["safetensors", "onnx", "tflite"])
def test_mutated_files_clean_error_or_correct(files, fmt, tmp_path):
    if fmt not in files:
        pytest.skip(f"no backend for {fmt}")
    path, backend = files[fmt]
    want = runtime.load(path, backend).run(FRAMES)
    data = path.read_bytes()
    rng = np.random.default_rng(13)
    outcome = {"error": 0, "correct": 0}
    for i in range(MUTATIONS):
        bad = tmp_path / f"bad{i}{path.suffix}"
        bad.write_bytes(mutate(data, rng))
        try:
            got = runtime.load(bad, backend).run(FRAMES)
        except SlimedgeError as e:
            assert str(bad) in str(e)
            outcome["error"] += 1
            continue
        # loaded: the mutation hit nothing that matters (or it was the digest's key itself)
        np.testing.assert_array_equal(got, want)
        outcome["correct"] += 1
    assert outcome["error"] > 0


@pytest.mark.parametrize("part", ["m.c", "m.h", "slimedge_kernels.h"])
def test_mutated_c_exports_clean_error_or_correct(files, part, tmp_path, monkeypatch):
    """The C format: a mutated .c, .h or kernel header is refused before anything is compiled
    (the .c's digest covers all three), or (the kernel header beside it) not used: this package's
    recorded copy is compiled instead. The unverified route compiles what it is given (a C file is
    a program; see SECURITY.md), so it is not fuzzed."""
    import shutil

    from slimedge.formats.c import toolchain

    if not toolchain.have_compiler():
        pytest.skip("no C compiler")
    monkeypatch.setenv(toolchain.ENV_CACHE, str(tmp_path / "cache"))
    src = files["c"][0]
    want = runtime.load(src, "c").run(FRAMES)
    data = src.with_name(part).read_bytes()
    rng = np.random.default_rng(41)
    outcome = {"error": 0, "correct": 0}
    for i in range(MUTATIONS):
        d = tmp_path / f"bad{i}"
        shutil.copytree(src.parent, d)
        (d / part).write_bytes(mutate(data, rng))
        try:
            got = runtime.load(d / "m.c", "c").run(FRAMES)
        except SlimedgeError as e:
            assert str(d / "m") in str(e) or str(d / part) in str(e), str(e)
            outcome["error"] += 1
            continue
        np.testing.assert_array_equal(got, want)
        outcome["correct"] += 1
    assert outcome["error" if part != "slimedge_kernels.h" else "correct"] == MUTATIONS


@pytest.mark.parametrize("fmt", ["safetensors", "onnx", "tflite"])
def test_mutated_files_unverified_never_crash(files, fmt, tmp_path):
    if fmt not in files:
        pytest.skip(f"no backend for {fmt}")
    path, backend = files[fmt]
    data = path.read_bytes()
    rng = np.random.default_rng(29)
    for i in range(MUTATIONS):
        bad = tmp_path / f"bad{i}{path.suffix}"
        bad.write_bytes(mutate(data, rng))
        try:
            m = runtime.load(bad, backend, verify=False)
            y = m.run(FRAMES)
        except SlimedgeError:
            continue
        assert y.shape == (2, 7, 3)
