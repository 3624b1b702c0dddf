"""Generated streams (slimedge.data.streams): the ground truth is where the clips are (found again
by cross-correlating each clip with the stream), a seed gives one stream, backgrounds have the
level and spectrum asked for, and split streams are speaker-disjoint by construction."""
from pathlib import Path

import numpy as np
import pytest

from slimedge.data import audio as wavdata
from slimedge.data import streams
from slimedge.data.wav import read_wav, write_wav
from slimedge.errors import DataError

FSDD = Path(__file__).parents[2] / "shared" / "data" / "fsdd" / "recordings"
RATE = 8000


@pytest.fixture(scope="module")
def clips():
    return [c for c in wavdata.scan_wavs(FSDD) if c.index is not None and c.index < 3]


@pytest.mark.parametrize("kind", ["silence", "white", "pink"])
def test_ground_truth_is_where_each_clip_correlates_best(clips, kind):
    m = streams.make_stream(clips, RATE, count=12, background_kind=kind, level_db=-45,
                            gain_db=(-12, 6), seed=3)
    y = m.samples.astype(np.float64)
    assert len(m.placed) == 12
    for p in m.placed:
        x, _ = read_wav(p.path, sample_rate=RATE)
        x = x.astype(np.float64)
        assert p.end - p.start == len(x)
        lo, hi = max(0, p.start - 4000), min(len(y), p.end + 4000)
        # normalised cross-correlation over every lag in a 0.5 s margin each side
        seg = y[lo:hi]
        corr = np.correlate(seg, x, "valid")
        energy = np.sqrt(np.convolve(seg * seg, np.ones(len(x)), "valid")) + 1e-9
        lag = int(np.argmax(corr / energy))
        assert lo + lag == p.start, (p, lo + lag)
        if kind == "silence":  # the gain as recorded: the clip times 10^(g/20), int16-rounded
            g = float(np.dot(y[p.start:p.end], x) / np.dot(x, x))
            assert 20 * np.log10(g) == pytest.approx(p.gain_db, abs=0.01)
    ends = [p.end for p in m.placed]
    starts = [p.start for p in m.placed]
    gaps = (np.array(starts[1:]) - np.array(ends[:-1])) / RATE
    assert gaps.min() >= 0.3 - 1e-3 and gaps.max() <= 1.0 + 1e-3
    assert m.events()[0] == (m.placed[0].label, m.placed[0].start / RATE, m.placed[0].end / RATE)


def test_a_seed_gives_one_stream(clips):
    a = streams.make_stream(clips, RATE, count=8, background_kind="pink", seed=11)
    b = streams.make_stream(clips, RATE, count=8, background_kind="pink", seed=11)
    c = streams.make_stream(clips, RATE, count=8, background_kind="pink", seed=12)
    assert np.array_equal(a.samples, b.samples) and a.placed == b.placed
    assert a.placed != c.placed


def test_every_clip_is_used_before_one_repeats(clips):
    m = streams.make_stream(clips[:7], RATE, count=14, seed=0)
    paths = [p.path for p in m.placed]
    assert sorted(paths[:7]) == sorted(str(c.path) for c in clips[:7]) == sorted(paths[7:])


@pytest.mark.parametrize("kind", ["white", "pink"])
def test_noise_level_and_spectrum(kind):
    rng = np.random.default_rng(0)
    x = streams.background(kind, 2 ** 18, RATE, -30.0, rng)
    assert 10 * np.log10(np.mean(x * x)) == pytest.approx(-30.0, abs=1e-9)
    # Welch-style average periodogram; the slope of log power over log frequency: 0 white, -1 pink
    seg = x.reshape(-1, 1024) * np.hanning(1024)
    psd = (np.abs(np.fft.rfft(seg, axis=1)) ** 2).mean(axis=0)
    f = np.fft.rfftfreq(1024, 1 / RATE)
    band = (f > 50) & (f < 3500)
    slope = np.polyfit(np.log10(f[band]), np.log10(psd[band]), 1)[0]
    assert slope == pytest.approx(0.0 if kind == "white" else -1.0, abs=0.1)


def test_a_recording_is_looped_at_the_level(tmp_path, clips):
    rec = (np.sin(np.arange(3000) * 0.05) * 8000).astype(np.int16)
    write_wav(tmp_path / "hum.wav", rec, RATE)
    x = streams.background(tmp_path / "hum.wav", 10000, RATE, -20.0,
                           np.random.default_rng(1))
    assert 10 * np.log10(np.mean(x * x)) == pytest.approx(-20.0, abs=1e-9)
    # periodic with the recording's length (looped), shape preserved
    assert np.allclose(x[:7000], x[3000:10000])
    k = int(np.argmax(np.correlate(np.tile(rec, 2).astype(float), x[:3000], "valid")))
    assert np.allclose(x[:3000] / x[:3000].std(), np.roll(rec, -k)[:3000] / rec.std(), atol=1e-9)
    with pytest.raises(DataError, match="neither one of"):
        streams.background(tmp_path / "none.wav", 10, RATE, -20.0, np.random.default_rng(1))


def test_background_alone_for_a_time(clips):
    m = streams.make_stream(clips, RATE, count=0, seconds=3.0, background_kind="white",
                            level_db=-40, seed=0)
    assert m.placed == [] and len(m.samples) == 3 * RATE
    assert 10 * np.log10(np.mean((m.samples / 32768.0) ** 2)) == pytest.approx(-40, abs=0.1)


def test_split_streams_are_speaker_disjoint(clips):
    parts = streams.split_streams(clips, RATE, split="speaker", test_speakers=["george"],
                                  streams=2, count=10, seed=5, background_kind="silence")
    spk = {k: {p.speaker for m in v for p in m.placed} for k, v in parts.items()}
    assert spk["test"] == {"george"}
    assert "george" not in spk["train"] | spk["val"] and len(spk["train"]) == 4
    a, b = parts["train"]
    assert a.placed != b.placed  # two streams of one part differ


def test_frame_labels_cover_each_clip(clips):
    m = streams.make_stream(clips, RATE, count=6, seed=2, background_kind="silence")
    labels = [streams.BACKGROUND_LABEL] + [str(d) for d in range(10)]
    window, hop = 480, 160
    frames = (len(m.samples) - window) // hop + 1
    y = streams.frame_labels(m, window, hop, frames, labels)
    for j in range(frames):  # one frame at a time, written out
        c = j * hop + window / 2
        inside = [p for p in m.placed if p.start <= c < p.end]
        assert y[j] == (labels.index(inside[0].label) if inside else 0)
    with pytest.raises(DataError, match="no background class"):
        streams.frame_labels(m, window, hop, frames, labels[1:])


def test_frame_span_is_the_labelled_frames(clips):
    m = streams.make_stream(clips, RATE, count=5, seed=4, background_kind="silence")
    window, hop = 480, 160
    frames = (len(m.samples) - window) // hop + 1
    y = streams.frame_labels(m, window, hop, frames, [streams.BACKGROUND_LABEL] +
                             [str(d) for d in range(10)])
    for p in m.placed:
        lo, hi = streams.frame_span(p, window, hop)
        assert y[lo - 1] == 0 and y[hi + 1] == 0 and (y[lo:hi + 1] != 0).all()


@pytest.mark.parametrize("name", sorted(streams.RECORDINGS))
def test_a_real_recording_as_background(name, clips, tmp_path):
    """The installed sound-icons recordings (16 kHz) as an 8 kHz background: at the level asked,
    and the recording itself (a float64 band-limited reference made here by zeroing the FFT above
    4 kHz at 16 kHz, then taking every other sample)."""
    path = Path(streams.RECORDINGS[name])
    if not path.is_file():
        pytest.skip(f"{path}: Debian's sound-icons is not installed (.ci/run installs it)")
    rec, rate = read_wav(path)
    assert rate == 16000
    x = streams.background(path, 3 * RATE, RATE, -35.0, np.random.default_rng(0))
    assert 10 * np.log10(np.mean(x * x)) == pytest.approx(-35.0, abs=1e-9)
    n = len(rec) - len(rec) % 2  # an even length: 8 kHz is every other sample
    write_wav(tmp_path / "even.wav", rec[:n], rate)
    x = streams.background(tmp_path / "even.wav", 3 * RATE, RATE, -35.0,
                           np.random.default_rng(0))
    spec = np.fft.fft(rec[:n].astype(np.float64))
    f = np.abs(np.fft.fftfreq(n, 1 / rate))
    spec[f >= RATE / 2] = 0
    ref = np.real(np.fft.ifft(spec))[::2]
    ref = ref / np.sqrt(np.mean(ref * ref)) * 10 ** (-35 / 20)
    k = int(np.argmax(np.correlate(np.tile(ref, 2), x[:len(ref)], "valid")))
    a, b = x[:len(ref)], np.roll(ref, -k)  # the level is over the 3 s asked for, not one loop
    assert np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)) > 0.9999
    m = streams.make_stream(clips, RATE, count=4, background_kind=path, level_db=-40, seed=1)
    assert m.settings["background"] == str(path) and len(m.placed) == 4


def test_the_training_recordings_are_the_other_sound_icons():
    """What a continuous model trains on (TRAIN_RECORDINGS) and what the benchmarks hold out
    (RECORDINGS) are disjoint, and together they are every WAV of the installed sound-icons (no
    recording left unused, none named that is not there)."""
    held_out = set(streams.RECORDINGS.values())
    train = set(streams.TRAIN_RECORDINGS)
    assert len(train) == len(streams.TRAIN_RECORDINGS) == 30 and not train & held_out
    installed = {str(p) for p in streams.SOUND_ICONS.glob("*.wav")}
    if not installed:
        pytest.skip(f"{streams.SOUND_ICONS}: Debian's sound-icons is not installed (.ci/run "
                    f"installs it)")
    assert train | held_out == installed


def test_speed_resamples_each_clip_and_places_the_resampled_length(clips):
    """make_stream(speed=(lo, hi)): each placed clip is its WAV read at another tempo, its length
    len/r for one factor r in [lo, hi]; checked against a linear interpolation written here, at
    the factor found from the placed length, over silence (so the stream holds the clip alone)."""
    m = streams.make_stream(clips, RATE, count=6, background_kind="silence", gain_db=0.0,
                            speed=(0.8, 1.25), seed=4)
    factors = []
    for p in m.placed:
        x, _ = read_wav(p.path, sample_rate=RATE)
        x = x.astype(np.float64)
        n = p.end - p.start
        r = len(x) / n
        assert 0.8 - 0.01 <= r <= 1.25 + 0.01
        t = np.arange(n) * r  # at this r the reference may differ from the drawn one by < 1/n
        k = np.minimum(t.astype(int), len(x) - 2)
        ref = x[k] + (t - k) * (x[k + 1] - x[k])
        got = m.samples[p.start:p.end].astype(np.float64)
        assert np.corrcoef(got, ref)[0, 1] > 0.99
        factors.append(r)
    assert max(factors) - min(factors) > 0.1  # a factor per clip, not one for the stream
    plain = streams.make_stream(clips, RATE, count=6, background_kind="silence", seed=4)
    assert "speed" not in plain.settings and m.settings["speed"] == [0.8, 1.25]
