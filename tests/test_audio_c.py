"""The audio front-end exported with the model: in C (bit-exact integer microfrontend, float
log-mel within FLOAT_ATOL, the listener = front-end + step), validated on export, and
``model.audio_stream()`` on every backend against the NumPy reference."""
import wave
from pathlib import Path

import numpy as np
import pytest

from helpers import seeded
from slimedge import checkpoint, runtime
from slimedge.errors import AudioValidationError, UsageError
from slimedge.exporters import export
from slimedge.exporters.c import emit_audio, emit_micro
from slimedge.exporters.validate_audio import FLOAT_ATOL, probe_signal
from slimedge.formats.c import audio as caudio
from slimedge.frontend import Frontend, Standardize, audio

FSDD = Path(__file__).parents[2] / "shared" / "data" / "fsdd" / "recordings"
MF8 = {"kind": "microfrontend", "sample_rate": 8000, "upper_hz": 3800.0}
SPECS = {
    "mf8": MF8,
    # pymicro-features' configuration (16 kHz, 30 ms / 10 ms)
    "mf16": {"kind": "microfrontend"},
    # a 256-point FFT (radix 4, 4, 4, 2), 32 channels, 10 ms hops
    "mf8-256": {"kind": "microfrontend", "sample_rate": 8000, "window_ms": 25, "hop_ms": 10,
                "channels": 32, "lower_hz": 100.0, "upper_hz": 3600.0},
    # without PCAN and log: the noise-reduced filterbank energies themselves
    "mf8-plain": {**MF8, "pcan": False, "log": False},
    "logmel": {"kind": "logmel"},
    "mfcc": {"kind": "logmel", "dct": 13, "window": "hamming", "hop_ms": 20},
}


def clip(name: str) -> np.ndarray:
    with wave.open(str(FSDD / name)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)


def clips(count: int) -> list[np.ndarray]:
    """``count`` FSDD clips spread over every speaker and digit (a fixed, seeded choice)."""
    names = sorted(p.name for p in FSDD.glob("*.wav"))
    pick = seeded("audio-c-clips").choice(len(names), count, replace=False)
    return [clip(names[k]) for k in sorted(pick)]


def for_rate(x: np.ndarray, rate: int) -> np.ndarray:
    """An 8 kHz clip at ``rate`` (sample repeat: the tests need signals, not fidelity)."""
    return np.repeat(x, rate // 8000)


def audio_model(d: Path, spec: dict, n: int = 8, seed: int = 0) -> Path:
    """A random LSTM0 classifier reading ``spec``'s frames, standardised with one clip's
    statistics (its inputs then have unit scale), saved as a checkpoint."""
    import torch

    from slimedge.models import SequenceClassifier
    fa = audio.from_config(spec)
    torch.manual_seed(seed)
    model = SequenceClassifier("LSTM0", fa.output_size, n, 10, frontend=Frontend((Standardize(),), fa))
    feats = audio.features(fa, for_rate(clip("3_jackson_7.wav"), fa.sample_rate))
    model.frontend.stage("standardize").set_stats(feats.mean(0), feats.std(0) + 1e-3)
    return checkpoint.save(model, d / "m.safetensors")


def feature_splits(spec: dict, count: int = 12):
    """A small labelled data set of the front-end's frames (int8 calibration)."""
    from slimedge.data.sequences import SequenceData
    from slimedge.data.splits import DataSplits
    fa = audio.from_config(spec)
    seqs = [audio.features(fa, for_rate(x, fa.sample_rate)).astype(np.float32)
            for x in clips(count)]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in seqs])])
    d = SequenceData(np.concatenate(seqs), offsets, np.arange(count) % 10, [str(k) for k in range(10)])
    return DataSplits("fsdd-frames", d, d, d)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """spec name -> a validated C export of a random model with that front-end (on the c backend)."""
    cache = {}

    def get(name: str):
        if name not in cache:
            d = tmp_path_factory.mktemp(name)
            r = export(audio_model(d, SPECS[name]), d / "m.c", format="c")
            cache[name] = (r, runtime.load(r.path, backend="c"))
        return cache[name]
    return get


def pushed(stage, x: np.ndarray, chunk) -> np.ndarray:
    """``x`` pushed into ``stage`` (reset first) in pieces of ``chunk`` samples (an int, or a
    seeded generator's random sizes 1..3,000)."""
    stage.reset()
    out, i = [], 0
    while i < len(x):
        k = chunk if isinstance(chunk, int) else int(chunk.integers(1, 3000))
        out.append(stage.push(x[i:i + k]))
        i += k
    return np.concatenate(out)


# ---- the C front-end against the Python one ----------------------------------------------------
@pytest.mark.parametrize("name", ["mf8", "mf16", "mf8-256", "mf8-plain"])
def test_c_microfrontend_is_bit_exact_with_python(exported, name):
    """Over FSDD clips (and the validation's test signal), every frame of the C microfrontend
    equals the Python one's integers, in chunks of 1, 37, 160, 4,096 and random sizes."""
    r, model = exported(name)
    assert r.audio.where == "C" and r.audio.max_abs_diff == 0.0 and r.audio.frames > 50
    fa = audio.from_config(SPECS[name])
    fe = caudio.Frontend(model.session)
    rng = seeded("chunks", name)
    signals = [for_rate(x, fa.sample_rate) for x in clips(60 if name == "mf8" else 12)]
    frames = 0
    for k, x in enumerate(signals + [probe_signal(fa.sample_rate, seed=3)]):
        want = audio.features(fa, x)
        for chunk in ((1, 37, 160, 4096)[k % 4], rng):
            got = pushed(fe, x, chunk)
            assert got.shape == want.shape and np.array_equal(got, want), (name, k, chunk)
        frames += len(want)
    assert frames > (1500 if name == "mf8" else 300)
    fe.reset()
    assert fe.push(np.zeros(fa.window_samples - 1, np.int16)).shape == (0, fa.output_size)
    assert fe.push(np.zeros(1, np.int16)).shape == (1, fa.output_size)


def test_the_c_ffts_first_stage_may_skip_its_products():
    """The C FFT's first stage (m = 1: every twiddle is twiddles[0]) skips C_MUL (emit_kissfft):
    for every int16 value, KISS FFT's division by the radix then the product by twiddles[0] give
    the division alone."""
    from slimedge.frontend import kissfft
    x = np.arange(-32768, 32768).astype(np.int16)
    for n in (64, 128, 256):
        assert kissfft.twiddles(n)[0].tolist() == [32767, 0]
        assert kissfft._plan(n)[1][0][1] == 1  # the innermost stage's m
    t = kissfft.twiddles(256)[0]
    for p in (2, 4):
        d = kissfft._fixdiv(x, p)
        re, im = kissfft._cmul(d, d, t[0], t[1])
        assert np.array_equal(re, d) and np.array_equal(im, d)


@pytest.mark.parametrize("name", ["logmel", "mfcc"])
def test_c_logmel_is_within_its_tolerance(exported, name):
    """The float32 C log-mel / MFCC against the float64 front-end: within FLOAT_ATOL over FSDD
    clips in any chunking (measured about 1.3e-5)."""
    r, model = exported(name)
    assert r.audio.where == "C" and r.audio.max_abs_diff <= FLOAT_ATOL
    fa = audio.from_config(SPECS[name])
    fe = caudio.Frontend(model.session)
    rng = seeded("chunks", name)
    worst = 0.0
    for k, x in enumerate(clips(30)):
        want = audio.features(fa, x)
        got = pushed(fe, x, (1, 37, 4096)[k % 3] if k % 2 else rng)
        assert got.shape == want.shape
        worst = max(worst, np.abs(got - want).max())
    assert 0 < worst <= FLOAT_ATOL


def test_the_listener_is_the_frontend_then_the_model(exported):
    """PREFIX_listen (one call per buffer: front-end + step) gives, in any chunking, the outputs
    of the model stepped on the C front-end's frames."""
    _, model = exported("mf8")
    fe, li = caudio.Frontend(model.session), caudio.Listener(model.session)
    x = clips(3)[1]
    want = model.run(pushed(fe, x, 4096))
    for chunk in (1, 160, 999):
        assert np.array_equal(pushed(li, x, chunk), want), chunk


# ---- export validation ------------------------------------------------------------------------------
def test_export_refuses_a_c_frontend_that_is_not_bit_exact(tmp_path, monkeypatch):
    """A C microfrontend one rounding off (the window's Q12 shift by one) fails validation and no
    file is left; a log-mel with an FFT size C cannot run is refused before writing."""
    path = audio_model(tmp_path, MF8)
    broken = emit_micro._MICRO_C.replace("@P@_lo(win)) >> 12", "@P@_lo(win)) >> 13")
    assert broken != emit_micro._MICRO_C
    monkeypatch.setattr(emit_micro, "_MICRO_C", broken)
    with pytest.raises(AudioValidationError, match="differs from the Python one"):
        export(path, tmp_path / "bad.c", format="c")
    assert not list(tmp_path.glob("bad*"))
    monkeypatch.undo()
    odd = audio_model(tmp_path, {"kind": "logmel", "fft_size": 300})
    with pytest.raises(UsageError, match="power-of-two FFT size"):
        export(odd, tmp_path / "odd.c", format="c")
    assert not list(tmp_path.glob("odd*"))


def test_a_c_export_without_audio_is_unchanged(tmp_path):
    """A model that reads frames gets no front-end in its C files (and no audio in its config)."""
    from helpers import make_checkpoint
    path, _, _ = make_checkpoint(tmp_path / "p.safetensors", "LSTM0", 5, 4, classes=3)
    r = export(path, tmp_path / "p.c", format="c")
    assert r.audio is None and "audio" not in (tmp_path / "p.h").read_text()
    assert emit_audio.generate(checkpoint.read(path).config, "p", integer_model=False) is None


# ---- the runtime takes audio on every backend ----------------------------------------------------
def _backends():
    out = [("onnx", "none", "onnxruntime"), ("tflite", "none", "litert"),
           ("tflite", "none", "tflm"), ("tflite", "int8", "tflm"), ("c", "none", "c"),
           ("c", "int8", "c")]
    return out


@pytest.mark.parametrize("fmt,quantize,backend", _backends())
def test_audio_stream_on_every_backend(tmp_path, fmt, quantize, backend):
    """``model.audio_stream()`` on each backend against the float64-front-end reference: the
    numpy backend on the checkpoint, stepped on the Python front-end's frames. Float files
    within 1e-5 (the C export's integer front-end is exact); int8 files equal their own
    backend's steps on the same frames (the quantisation's error is the export's, validated
    there) and pick the reference's class on most frames."""
    path = audio_model(tmp_path, MF8)
    opts = {"compat": "tflm"} if backend == "tflm" else {}
    if quantize == "int8":
        opts.update(data=feature_splits(MF8), accuracy_tolerance=1.0)
    r = export(path, tmp_path / f"m.{fmt}", format=fmt, quantize=quantize, **opts)
    m = runtime.load(r.path, backend=backend)
    assert m.info.frontend.audio == audio.from_config(MF8)
    assert r.audio.where == ("C" if fmt == "c" else "companion")
    fa = audio.from_config(MF8)
    x = clips(2)[0]
    feats = audio.features(fa, x).astype(np.float32)
    ref = runtime.load(path, backend="numpy").run(feats)
    s = m.audio_stream()
    assert s.where == ("C" if fmt == "c" else "numpy")
    got = pushed(s, x, seeded("chunks", backend))
    assert got.shape == ref.shape
    if quantize == "none":
        assert np.abs(got - ref).max() < 1e-5
    else:
        assert np.abs(got - m.run(feats)).max() < 1e-6
        assert np.mean(got.argmax(1) == ref.argmax(1)) >= 0.8


def test_slimedge_export_says_where_the_frontend_is(tmp_path):
    """The CLI's export reports the front-end's check: in C (bit-exact), or a companion."""
    from typer.testing import CliRunner

    from slimedge.cli import app
    model = audio_model(tmp_path, MF8)
    for fmt, out, words in (("c", "m.c", "in C, "), ("onnx", "m.onnx", "a companion")):
        r = CliRunner().invoke(app, ["export", str(model), "-f", fmt, "-o", str(tmp_path / out)])
        assert r.exit_code == 0, r.output
        line = next(s for s in r.output.splitlines() if s.startswith("audio front-end"))
        assert "(microfrontend)" in line and words in line
        assert fmt != "c" or "equal to the Python one" in line
