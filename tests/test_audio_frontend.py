"""Audio front-ends (log-mel/MFCC and the integer microfrontend): against an independent float64
reference (tests/reference.py) and pymicro-features, streaming in any chunks, their tables, and
their spec in configs and checkpoints."""
import hashlib
import wave
from pathlib import Path

import numpy as np
import pytest

import reference as ref
from slimedge.frontend import Frontend, audio, exact, kissfft, micro_tables
from slimedge.frontend.logmel import LogMel
from slimedge.frontend.microfrontend import FEATURE_SCALE, Micro

FSDD = Path(__file__).parents[2] / "shared" / "data" / "fsdd" / "recordings"
CLIPS = ("3_jackson_7.wav", "0_george_2.wav", "8_yweweler_31.wav")
MF8 = {"kind": "microfrontend", "sample_rate": 8000, "upper_hz": 3800.0}

# TFLite Micro's log2 correction table (log_lut.c), as published
TFLM_LOG_LUT = [
    0, 224, 442, 654, 861, 1063, 1259, 1450, 1636, 1817, 1992, 2163, 2329, 2490, 2646, 2797, 2944,
    3087, 3224, 3358, 3487, 3611, 3732, 3848, 3960, 4068, 4172, 4272, 4368, 4460, 4549, 4633, 4714,
    4791, 4864, 4934, 5001, 5063, 5123, 5178, 5231, 5280, 5326, 5368, 5408, 5444, 5477, 5507, 5533,
    5557, 5578, 5595, 5610, 5622, 5631, 5637, 5640, 5641, 5638, 5633, 5626, 5615, 5602, 5586, 5568,
    5547, 5524, 5498, 5470, 5439, 5406, 5370, 5332, 5291, 5249, 5203, 5156, 5106, 5054, 5000, 4944,
    4885, 4825, 4762, 4697, 4630, 4561, 4490, 4416, 4341, 4264, 4184, 4103, 4020, 3935, 3848, 3759,
    3668, 3575, 3481, 3384, 3286, 3186, 3084, 2981, 2875, 2768, 2659, 2549, 2437, 2323, 2207, 2090,
    1971, 1851, 1729, 1605, 1480, 1353, 1224, 1094, 963, 830, 695, 559, 421, 282, 142, 0, 0]


def clip(name: str) -> np.ndarray:
    with wave.open(str(FSDD / name)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)


def at_16k(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """An FSDD clip as 16 kHz int16 (sample repeat) with noise after it (PCAN and the noise
    estimate then see speech and a noise floor)."""
    noise = np.random.default_rng(seed).normal(0, 800, 6000)
    return np.concatenate([np.repeat(x, 2), noise]).clip(-32768, 32767).astype(np.int16)


def pymicro(x16: np.ndarray) -> np.ndarray:
    from pymicro_features import MicroFrontend
    mf, b, i, out = MicroFrontend(), x16.tobytes(), 0, []
    while len(b) - i >= 320:
        o = mf.process_samples(b[i:])
        i += o.samples_read * 2
        if o.features:
            out.append(o.features)
    return np.array(out) / FEATURE_SCALE


# ---- log-mel / MFCC ----------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [{}, {"dct": 13}, {"window": "hamming", "fft_size": 512,
                                                   "mel_channels": 24, "f_min": 0.0,
                                                   "f_max": 4000.0, "hop_ms": 20}])
def test_logmel_matches_the_float64_reference(spec):
    fe = LogMel.from_config({"kind": "logmel", **spec})
    for name in CLIPS:
        x = clip(name)
        got = audio.features(fe, x)
        want = ref.logmel(x / 32768.0, 8000, fe.window_samples, fe.hop_samples, fe.n_fft,
                          fe.mel_channels, fe.f_min, fe.f_max, fe.log_floor, fe.dct, fe.window)
        assert got.shape == want.shape and got.shape[0] == 1 + (len(x) - fe.window_samples) \
            // fe.hop_samples
        assert np.abs(got - want).max() < 1e-9


def test_logmel_takes_int16_or_float_the_same():
    fe, x = LogMel(dct=13), clip(CLIPS[0])
    assert np.array_equal(audio.features(fe, x), audio.features(fe, x / 32768.0))


# ---- streaming -------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [{"kind": "logmel", "dct": 13}, MF8, {"kind": "microfrontend"}])
def test_any_chunking_gives_the_frames_of_one_push(spec):
    fe = Frontend.from_config({"frontend": {"audio": spec, "stages": []}})
    x = clip(CLIPS[1])
    x = at_16k(x) if fe.sample_rate == 16000 else x
    whole = fe.stream().push(x)
    assert len(whole) == 1 + (len(x) - fe.samples_per_frame) // fe.samples_per_hop
    for chunk in (1, 37, 4096):
        s = fe.stream()
        parts = [s.push(x[i:i + chunk]) for i in range(0, len(x), chunk)]
        assert all(p.shape[1] == whole.shape[1] for p in parts)
        assert np.array_equal(np.concatenate(parts), whole), chunk
    # no look-ahead: the frames of a prefix are the first frames of the whole
    n = len(x) // 2
    assert np.array_equal(fe.stream().push(x[:n]), whole[:1 + (n - fe.samples_per_frame)
                                                         // fe.samples_per_hop])


def test_the_microfrontend_keeps_state_between_pushes_and_reset_forgets_it():
    fe = Frontend.from_config({"frontend": {"audio": MF8, "stages": []}})
    a, b = clip(CLIPS[0]), clip(CLIPS[1])
    s = fe.stream()
    s.push(a)
    after = s.push(b)
    s.reset()
    fresh = s.push(b)
    assert not np.array_equal(after[:len(fresh)], fresh)  # the noise estimate carried over
    assert np.array_equal(fresh, fe.stream().push(b))


# ---- the microfrontend against pymicro-features and its float description -------------------
def test_microfrontend_is_bit_exact_with_pymicro_features_given_libms_tables(monkeypatch):
    """pymicro-features' tables come from its libm (float32 cosf, log1pf); with those values
    the integer algorithm here gives its output bit for bit."""
    pytest.importorskip("pymicro_features")
    monkeypatch.setattr(exact, "cosf", lambda v: float(np.cos(np.float32(v))))
    monkeypatch.setattr(exact, "log1pf", lambda v: float(np.log1p(np.float32(v))))
    fe = Micro()
    for seed, name in enumerate(CLIPS):
        x16 = at_16k(clip(name), seed)
        want, got = pymicro(x16), audio.features(fe, x16)
        assert len(want) > 40 and np.array_equal(got[:len(want)], want)


def test_microfrontend_with_its_own_tables_nearly_matches_pymicro_features():
    """The correctly rounded tables differ from that libm's in two filterbank weights (by 1):
    almost every output is still identical."""
    pytest.importorskip("pymicro_features")
    fe, same, total = Micro(), 0, 0
    for seed, name in enumerate(CLIPS):
        x16 = at_16k(clip(name), seed)
        want = pymicro(x16)
        got = audio.features(fe, x16)[:len(want)]
        same += int((got == want).sum())
        total += want.size
        assert np.abs(got - want).max() <= 64
    assert same / total > 0.995


@pytest.mark.parametrize("spec", [MF8, {"kind": "microfrontend"}])
def test_microfrontend_follows_its_float64_description(spec):
    fe = Micro.from_config(spec)
    for seed, name in enumerate(CLIPS):
        x = clip(name) if fe.sample_rate == 8000 else at_16k(clip(name), seed)
        got = audio.features(fe, x)
        want = ref.micro_float(x.astype(np.float64), fe.sample_rate, fe.window_samples,
                               fe.hop_samples, fe.channels, fe.lower_hz, fe.upper_hz)
        frames = np.lib.stride_tricks.sliding_window_view(x, fe.window_samples)[::fe.hop_samples]
        assert np.abs(fe.describe_float(frames) - want).max() < 1e-6 * (1 + np.abs(want).max())
        err = np.abs(got - want)
        # the output is 64 ln(.) (a unit is 1.6% of the level). Most values agree within one;
        # where the noise estimate nearly cancels the signal, or the level is low, the 16-bit
        # FFT's rounding is a large part of what is left (measured: q95 up to 33 overall, q99
        # up to 13 where the float value is >= 300)
        loud = want >= 300
        assert np.median(err) <= 1 and np.quantile(err, 0.95) <= 40
        assert loud.mean() > 0.3 and np.quantile(err[loud], 0.99) <= 16


# ---- tables ----------------------------------------------------------------------------------
def test_log_table_is_tflms():
    assert micro_tables.log_lut().tolist() == TFLM_LOG_LUT


def test_tables_are_fixed_integers():
    """The default tables' digest: a change to how a table is computed shows here (and would
    change every exported device's features)."""
    fe = Micro()
    t = fe.tables
    fb = t["filterbank"]
    blob = np.concatenate([t["window"], t["dense"].astype(np.int64).ravel(), t["gain_lut"],
                           t["log_lut"], [t["even"], t["odd"], t["min_remaining"],
                                          fb.start_index, fb.end_index]]).astype("<i8")
    assert (t["even"], t["odd"], t["min_remaining"]) == (409, 983, 819)
    assert (fb.start_index, fb.end_index, len(t["window"]), fe.fft_size) == (5, 241, 480, 512)
    assert hashlib.sha256(blob.tobytes()).hexdigest()[:16] == DIGEST


DIGEST = "9cb1e625cb51ef95"


def test_tables_against_float64_formulas():
    fe = Micro.from_config(MF8)
    t = fe.tables
    size = fe.window_samples
    hann = 4096 * (0.5 - 0.5 * np.cos(2 * np.pi * (np.arange(size) + 0.5) / size))
    assert np.abs(t["window"] - hann).max() <= 1
    fb = t["filterbank"]
    for w, u in zip(fb.weights, fb.unweights):
        assert np.all(np.abs(w + u - 4096) <= 1)
    x = np.array([0, 1, 2, 100, 5000, 2**20, 2**31])
    gain = 2.0 ** fe.gain_bits * (x / 2.0 ** (fe.smoothing_bits - fe.correction_bits)
                                  + fe.pcan_offset) ** -fe.pcan_strength
    assert np.abs(fe._wide_dynamic(x) - np.minimum(gain, 32767)).max() / 32767 < 2e-3


def test_fixed_point_fft_is_the_dft_over_n():
    rng = np.random.default_rng(3)
    for n in (256, 512):  # complex 128 = 4*4*4*2, 256 = 4**4
        x = rng.integers(-20000, 20000, (4, n))
        re, im = kissfft.rfft(x)
        f = np.fft.rfft(x) / n
        assert max(np.abs(re - f.real).max(), np.abs(im - f.imag).max()) <= 4
    assert kissfft.factors(128) == [(4, 32), (4, 8), (4, 2), (2, 1)]


# ---- the spec --------------------------------------------------------------------------------
def test_spec_round_trips_and_is_checked():
    for spec in ({"kind": "logmel"}, MF8):
        fe = Frontend.from_config({"frontend": {"audio": spec, "stages": [{"kind": "standardize"}]}})
        again = Frontend.from_config({"frontend": fe.to_config()})
        assert again.audio == fe.audio and again.to_config() == fe.to_config()
    fe = Frontend.from_config({"frontend": {"audio": MF8, "stages": []}})
    assert (fe.samples_per_frame, fe.samples_per_hop, fe.sample_rate) == (240, 80, 8000)
    assert fe.state_size == 240 - 80 + 40
    lm = Frontend.from_config({"frontend": {"audio": {"kind": "logmel"}, "stages": []}})
    assert (lm.samples_per_frame, lm.samples_per_hop, lm.state_size) == (200, 80, 120)
    assert "audio" not in Frontend.from_config({"normalization": {"kind": "standard"}}).to_config()
    for bad in ({"kind": "logmel", "mel_bands": 3}, {"kind": "nope"}, {"kind": "logmel", "dct": "13"},
                {"kind": "microfrontend", "pcan": 1}, {"kind": "logmel", "mel_channels": 4.0},
                {"kind": "logmel", "f_max": 5000.0}, {"kind": "microfrontend", "hop_ms": 40}):
        with pytest.raises(ValueError):
            Frontend.from_config({"frontend": {"audio": bad, "stages": []}})


def test_checkpoint_records_the_audio_frontend(tmp_path):
    from slimedge import checkpoint, formats
    from slimedge.frontend import Standardize
    from slimedge.models import SequenceClassifier
    spec = Frontend((Standardize(),), LogMel(dct=13))
    model = SequenceClassifier("LSTM0", 13, 8, 10, frontend=spec)
    path = checkpoint.save(model, tmp_path / "m.safetensors")
    info = formats.info(path)
    assert info.frontend.audio == LogMel(dct=13) and info.frontend.kinds == ("standardize",)
    assert checkpoint.load(path).frontend.spec.audio == LogMel(dct=13)
    wrong = SequenceClassifier("LSTM0", 12, 8, 10, frontend=spec)
    with pytest.raises(ValueError, match="audio front-end makes 13"):
        checkpoint.read(checkpoint.save(wrong, tmp_path / "w.safetensors"))


# ---- the runtime takes audio -------------------------------------------------------------------
@pytest.mark.parametrize("spec", [{"kind": "logmel", "dct": 13}, MF8])
def test_audio_stream_steps_the_model_on_the_frontends_frames(tmp_path, spec):
    import torch

    from slimedge import checkpoint, runtime
    from slimedge.frontend import Standardize
    from slimedge.models import SequenceClassifier
    fa = audio.from_config(spec)
    torch.manual_seed(0)
    model = SequenceClassifier("LSTM0", fa.output_size, 8, 10,
                               frontend=Frontend((Standardize(),), fa))
    x = clip(CLIPS[0])
    feats = audio.features(fa, x)
    # a training split's statistics, so the model sees unit-scale inputs
    model.frontend.stage("standardize").set_stats(feats.mean(0), feats.std(0))
    path = checkpoint.save(model, tmp_path / "m.safetensors")
    m = runtime.load(path, backend="numpy")
    want = m.run(feats.astype(np.float32))
    for chunk in (1, 37, 4096):
        s = m.audio_stream()
        got = np.concatenate([s.push(x[i:i + chunk]) for i in range(0, len(x), chunk)])
        assert got.shape == want.shape and np.allclose(got, want, atol=1e-5), chunk
    s.reset()
    assert np.allclose(s.push(x / 32768.0), want, atol=1e-4)  # float PCM
    plain = SequenceClassifier("LSTM0", 13, 8, 10)
    with pytest.raises(ValueError, match="no audio front-end"):
        runtime.load(checkpoint.save(plain, tmp_path / "p.safetensors"), backend="numpy") \
            .audio_stream()


def test_an_onnx_export_keeps_the_audio_frontend_for_its_runtime(tmp_path):
    """ONNX (like every format) holds the model's step; the audio front-end's spec travels in
    the file's config and the runtime applies it (a companion, not part of the graph)."""
    pytest.importorskip("onnxruntime")
    from slimedge import checkpoint, runtime
    from slimedge.exporters import export
    from slimedge.frontend import Standardize
    from slimedge.models import SequenceClassifier
    fa = audio.from_config(MF8)
    x = clip(CLIPS[2])
    feats = audio.features(fa, x)
    model = SequenceClassifier("LSTM0", 40, 8, 10, frontend=Frontend((Standardize(),), fa))
    model.frontend.stage("standardize").set_stats(feats.mean(0), feats.std(0))
    path = checkpoint.save(model, tmp_path / "m.safetensors")
    m = runtime.load(export(path, tmp_path / "m.onnx").path)
    assert m.info.frontend.audio == fa
    s = m.audio_stream()
    got = np.concatenate([s.push(x[i:i + 500]) for i in range(0, len(x), 500)])
    want = runtime.load(path, backend="numpy").run(feats.astype(np.float32))
    assert np.abs(got - want).max() < 1e-5
