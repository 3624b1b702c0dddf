"""The integer front-end's compiled kernel (slimedge.frontend.micro_fast) computes exactly what its
NumPy code computes: every value and the noise estimate, on full-scale, silent, tiny and random
frames, from a fresh and a carried-over state, for several specs; and a stream using it gives
the NumPy stream's frames whatever the pushes."""
import numpy as np
import pytest

from slimedge.frontend import audio, micro_fast

SPECS = [
    {"kind": "microfrontend", "sample_rate": 8000, "window_ms": 60, "hop_ms": 20,
     "lower_hz": 62.5, "upper_hz": 3750.0},
    {"kind": "microfrontend", "sample_rate": 8000, "upper_hz": 3800.0},
    {"kind": "microfrontend"},
    {"kind": "microfrontend", "sample_rate": 8000, "upper_hz": 3800.0, "pcan": False},
    {"kind": "microfrontend", "sample_rate": 8000, "upper_hz": 3800.0, "log": False,
     "channels": 13, "smoothing_bits": 8},
]


def _frames(W, rng):
    sine = np.sin(np.arange(W) * 0.3)[None] * np.array([[3], [700], [32767]])
    return np.concatenate([
        rng.integers(-32768, 32768, (40, W)), rng.integers(-40, 40, (20, W)),
        np.zeros((4, W), int), np.full((3, W), -32768), np.full((3, W), 32767),
        sine.astype(int), rng.integers(-1, 2, (5, W)) * 32767]).astype(np.int16)


@pytest.mark.skipif(not micro_fast.available(), reason="numba is not installed")
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()
                                                               if k != "kind") or "16k")
def test_the_compiled_kernel_is_the_numpy_code_bit_for_bit(spec):
    fe = audio.from_config(spec)
    rng = np.random.default_rng(len(str(spec)))
    frames = _frames(fe.window_samples, rng)
    for estimate in (np.zeros(fe.channels, np.int64), rng.integers(0, 2 ** 26, fe.channels),
                     np.full(fe.channels, 2 ** 32 - 1)):
        want, want_e = fe.process_numpy(frames, estimate)
        got, got_e = fe.process(frames, estimate, compiled=True)
        assert got.dtype == want.dtype and np.array_equal(got, want)
        assert np.array_equal(got_e, want_e)


@pytest.mark.skipif(not micro_fast.available(), reason="numba is not installed")
def test_a_compiled_stream_pushed_in_20_ms_gives_the_numpy_frames():
    fe = audio.from_config(SPECS[0])
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(8000) * 2000 * np.sin(np.arange(8000) / 900.0)).astype(np.int16)
    want = audio.features(fe, x)
    s = audio.AudioStream(fe, compiled=True)
    got = np.concatenate([s.push(x[i:i + 160]) for i in range(0, len(x), 160)])
    assert np.array_equal(got, want) and len(want) == 1 + (8000 - 480) // 160
