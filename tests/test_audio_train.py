"""Training on a folder of WAV files through an audio front-end, from the command line; the
augmentations; `run --audio` and `evaluate --data DIR`."""
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import reference as ref
from slimedge import checkpoint, formats
from slimedge.cli import app
from slimedge.data import audio as wavdata
from slimedge.data import augment
from slimedge.data.wav import read_wav, write_wav
from slimedge.errors import UsageError
from slimedge.train_config import TrainConfig

runner = CliRunner()
RATE = 8000
TONES = {"lo": 300.0, "hi": 1800.0}  # a class is a tone: learnable in a few epochs


def _tone_folder(folder: Path, speakers=("ann", "bob", "cid"), per=6) -> Path:
    """{label}_{speaker}_{index}.wav: a tone per label, each speaker with its own level and
    noise, lengths 0.15-0.3 s."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for s, speaker in enumerate(speakers):
        for label, hz in TONES.items():
            for i in range(per):
                n = int(RATE * rng.uniform(0.15, 0.3))
                t = np.arange(n) / RATE
                x = (0.2 + 0.2 * s) * np.sin(2 * np.pi * hz * (1 + 0.02 * s) * t)
                x += 0.01 * rng.standard_normal(n)
                write_wav(folder / f"{label}_{speaker}_{i}.wav",
                          np.round(x * 32767).astype(np.int16), RATE)
    return folder


def _ok(r):
    assert r.exit_code == 0, r.output
    return r.stdout


# ---- training from the command line -------------------------------------------------------------
def test_train_on_a_wav_folder_records_the_frontend_and_the_speaker_split(tmp_path):
    folder = _tone_folder(tmp_path / "wavs")
    out = tmp_path / "m.safetensors"
    _ok(runner.invoke(app, ["train", "--data", str(folder), "--frontend", "mfcc",
                            "--frontend-option", "hop_ms=20", "--test-speakers", "cid",
                            "--variant", "LSTM0", "-n", "8", "--epochs", "6", "--lr", "0.02",
                            "--batch-size", "4", "-o", str(out), "--quiet"]))
    info = formats.info(out)
    # the front-end's every field is in the checkpoint, as given and as defaulted
    assert info.frontend.audio.to_config() == {**wavdata_default("logmel"), "dct": 13,
                                               "hop_ms": 20}
    assert info.data["split"] == "speaker" and info.data["test_speakers"] == ["cid"]
    assert info.data["kind"] == "wav-folder" and info.data["path"] == str(folder.resolve())
    train = json.loads(Path(str(out).replace(".safetensors", ".log.json")).read_text())
    speakers = train["data"]["speakers"]
    assert speakers["train"] == ["ann", "bob"] and speakers["test"] == ["cid"]
    assert set(speakers["val"]) <= {"ann", "bob"}
    assert train["data"]["clips"]["test"] == 2 * 6

    # the frames training read are a fresh stream per clip: the float64 reference of the spec
    fe = info.frontend.audio
    clips = [c for c in wavdata.scan_wavs(folder) if c.speaker == "cid"]
    got = wavdata.clip_frames(clips, fe, ["hi", "lo"])
    for k, c in enumerate(clips):
        x = read_wav(c.path)[0] / 32768.0
        want = ref.logmel(x, RATE, fe.window_samples, fe.hop_samples, fe.n_fft, 40, 60.0,
                          3800.0, 1e-6, 13)
        np.testing.assert_allclose(got.sequence(k), want, rtol=1e-4, atol=1e-4)

    # evaluate (the recorded split: cid's clips) = run --audio file by file (the stream)
    r = json.loads(_ok(runner.invoke(app, ["evaluate", str(out), "--data", str(folder),
                                           "--json"])))
    assert r["n"] == 12 and r["accuracy"] >= 0.9  # two tones: an unheard "speaker" too
    right = 0
    for c in clips:
        one = json.loads(_ok(runner.invoke(app, ["run", str(out), "--audio", str(c.path),
                                                 "--json"])).splitlines()[-1])
        assert abs(sum(one["probabilities"]) - 1) < 1e-5 and one["label"] in TONES
        right += one["label"] == c.label
    assert right / len(clips) == pytest.approx(r["accuracy"])
    line = _ok(runner.invoke(app, ["run", str(out), "--audio", str(clips[0].path)]))
    assert "probability" in line.splitlines()[-1]

    # another folder: every clip is its test set; the runtime agrees with torch
    other = _tone_folder(tmp_path / "other", speakers=("dee",), per=3)
    r2 = json.loads(_ok(runner.invoke(app, ["evaluate", str(out), "--data", str(other),
                                            "--json"])))
    r3 = json.loads(_ok(runner.invoke(app, ["evaluate", str(out), "--data", str(other),
                                            "--backend", "numpy", "--json"])))
    assert r2["n"] == r3["n"] == 6 and r2["accuracy"] == pytest.approx(r3["accuracy"])


def wavdata_default(kind):
    from slimedge.frontend.audio import from_config
    return from_config({"kind": kind}).to_config()


def test_train_with_augmentation_and_the_fsdd_split(tmp_path):
    folder = _tone_folder(tmp_path / "wavs", per=8)
    out = tmp_path / "m.safetensors"
    _ok(runner.invoke(app, ["train", "--data", str(folder), "--split", "fsdd",
                            "--augment", "gain=-6:0,noise=20:30,time_mask", "--augment-copies",
                            "2", "--variant", "LSTM0", "-n", "4", "--epochs", "1",
                            "-o", str(out), "--quiet"]))
    log = json.loads((tmp_path / "m.log.json").read_text())
    # index 0-4 test (2 labels x 3 speakers x 5), the rest train/val; 2 augmented copies each
    assert log["data"]["clips"]["test"] == 30
    assert log["data"]["sizes"]["train"] == 3 * log["data"]["clips"]["train"]
    assert log["config"]["augment"] == {"gain": [-6.0, 0.0], "noise": [20.0, 30.0],
                                        "time_mask": [5.0]}
    assert formats.info(out).frontend.audio.kind == "microfrontend"  # the default


@pytest.mark.parametrize("args,words", [
    (["--split-by", "speaker"], "test speakers"),
    (["--test-speakers", "zed"], "zed"),
    (["--frontend", "wavelet"], "wavelet"),
    (["--frontend-option", "hop_ms=90"], "hop_ms"),
    (["--augment", "reverb"], "reverb"),
    (["--augment", "gain=6:-6"], "reversed"),
    (["--augment", "stretch=0:2"], "out of range"),
    (["--frame-loss", "-1"], "frame loss"),
    (["--frame-loss-from", "1"], "frame loss start"),
])
def test_bad_training_options_are_one_line_errors(tmp_path, args, words):
    folder = _tone_folder(tmp_path / "wavs", per=2)
    r = runner.invoke(app, ["train", "--data", str(folder), "-o", str(tmp_path / "m.safetensors"),
                            "--epochs", "1", "--quiet", *args])
    assert r.exit_code != 0 and words in r.output and "Traceback" not in r.output
    assert not (tmp_path / "m.safetensors").exists()


def test_a_bad_wav_in_the_folder_is_named(tmp_path):
    folder = _tone_folder(tmp_path / "wavs", per=2)
    bad = folder / "lo_bob_9.wav"
    write_wav(bad, np.zeros(100, np.int16), 16000)
    r = runner.invoke(app, ["train", "--data", str(folder), "-o", str(tmp_path / "m.safetensors"),
                            "--epochs", "1", "--quiet"])
    assert r.exit_code != 0 and "lo_bob_9.wav" in r.output and "16000 Hz" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "m.safetensors").exists()


def test_audio_options_need_a_wav_folder():
    with pytest.raises(UsageError, match="folder of WAV files"):
        TrainConfig(data="fsdd", audio={"kind": "logmel"})
    with pytest.raises(UsageError, match="folder of WAV files"):
        TrainConfig(data="fsdd", augment={"gain": [-6, 0]})


def test_run_audio_refuses_a_model_without_an_audio_frontend(tmp_path):
    import helpers
    path = helpers.make_checkpoint(tmp_path / "m.safetensors", "LSTM0", 13, 4, classes=10)[0]
    write_wav(tmp_path / "a.wav", np.zeros(800, np.int16), RATE)
    r = runner.invoke(app, ["run", str(path), "--audio", str(tmp_path / "a.wav")])
    assert r.exit_code != 0 and "no audio front-end" in r.output


# ---- the augmentations, against their definitions ----------------------------------------------
def test_augmentations_do_what_they_say():
    rng = np.random.default_rng(0)
    x = 0.1 * np.sin(np.arange(40000) * 0.3)
    g = augment.waveform(x, {"gain": [-6.0, -6.0]}, RATE, np.random.default_rng(1))
    np.testing.assert_allclose(g, x * 10 ** (-6 / 20))
    s = augment.waveform(x, {"shift": [100.0]}, RATE, np.random.default_rng(1))
    pad = len(s) - len(x)
    assert 0 < pad <= 800 and not s[:pad].any() and np.array_equal(s[pad:], x)
    n = augment.waveform(x, {"noise": [10.0, 10.0]}, RATE, np.random.default_rng(1)) - x
    snr = 10 * np.log10(np.mean(x ** 2) / np.mean(n ** 2))
    assert abs(snr - 10.0) < 0.2
    v = augment.waveform(x, {"speed": [1.25, 1.25]}, RATE, np.random.default_rng(1))
    assert len(v) == 32000
    np.testing.assert_allclose(v[:1000], 0.1 * np.sin(np.arange(1000) * 1.25 * 0.3), atol=2e-3)
    loud = augment.waveform(x * 9, {"gain": [6.0, 6.0]}, RATE, rng)
    assert loud.max() <= 32767 / 32768 and loud.min() >= -1.0
    f = np.arange(60.0).reshape(20, 3)
    fill = np.array([-1.0, -2.0, -3.0])
    m = augment.frames(f, {"time_mask": [4.0], "freq_mask": [1.0]}, fill,
                       np.random.default_rng(3))
    changed = m != f
    assert changed.any() and (changed.sum(axis=1) <= 3).all()
    masked_rows = np.flatnonzero(changed.all(axis=1))
    assert len(masked_rows) <= 8 and (m[masked_rows] == fill).all()
    # the same seed, the same copy
    a = augment.waveform(x, augment.parse("shift,gain,noise,speed"), RATE,
                         np.random.default_rng(5))
    b = augment.waveform(x, augment.parse("shift,gain,noise,speed"), RATE,
                         np.random.default_rng(5))
    assert np.array_equal(a, b)


def test_eq_colours_each_frequency_by_its_drawn_gain():
    """``eq``: two bin-exact tones come out scaled by the gains a separately written response
    gives at their frequencies (the same draws: three amplitudes and phases, in order)."""
    n = 8000
    t = np.arange(n)
    bins = (400, 2600)  # 400 and 2600 Hz at 8 kHz, one second: exact FFT bins
    x = sum(0.2 * np.sin(2 * np.pi * b * t / n) for b in bins)
    y = augment.waveform(x, {"eq": [12.0]}, RATE, np.random.default_rng(7))
    draws = np.random.default_rng(7)
    terms = [(draws.uniform(-12.0, 12.0), k, draws.uniform(0, 2 * np.pi)) for k in (1, 2, 3)]
    for b in bins:
        u = b / (n / 2)  # the tone's frequency over Nyquist
        gain_db = sum(a * np.cos(np.pi * k * u + p) for a, k, p in terms) / 2
        amp = 2 * abs(np.fft.rfft(y)[b]) / n
        assert amp == pytest.approx(0.2 * 10 ** (gain_db / 20), rel=1e-6), b
    np.testing.assert_allclose(augment.waveform(x, {"eq": [0.0]}, RATE,
                                                np.random.default_rng(7)), x, atol=1e-12)


def test_vtlp_warps_the_filterbank_and_the_copies_use_it(tmp_path):
    """``vtlp``: a tone at 1.1 f0 through the front-end warped by 1.1 lands in the channel a tone
    at f0 does unwarped (log-mel), and the augmented copies of a clip are its frames through the
    front-end with edges scaled by the factor (microfrontend, the upper edge below Nyquist)."""
    from slimedge.frontend import audio as fe

    lm = fe.from_config({"kind": "logmel"})
    t = np.arange(4000) / RATE
    for f0 in (300.0, 700.0, 1500.0):
        warped = augment.warp(lm, {"vtlp": [1.1, 1.1]}, np.random.default_rng(0))
        assert (warped.f_min, warped.f_max) == pytest.approx((lm.f_min * 1.1, RATE / 2 - 1))
        plain = fe.features(lm, 0.3 * np.sin(2 * np.pi * f0 * t))[5:].mean(axis=0)
        moved = fe.features(warped, 0.3 * np.sin(2 * np.pi * 1.1 * f0 * t))[5:].mean(axis=0)
        assert abs(int(plain.argmax()) - int(moved.argmax())) <= 1, f0
    folder = _tone_folder(tmp_path / "w", speakers=("ann",), per=1)
    clips = wavdata.scan_wavs(folder)[:2]
    mf = fe.from_config(fe.DEFAULT)
    d = wavdata.clip_frames(clips, mf, sorted({c.label for c in clips}),
                            augment={"vtlp": [0.9, 0.9]}, copies=1)
    want_fe = fe.from_config({**fe.DEFAULT, "lower_hz": fe.DEFAULT["lower_hz"] * 0.9,
                              "upper_hz": fe.DEFAULT["upper_hz"] * 0.9})
    for k, c in enumerate(clips):
        x, _ = read_wav(c.path, sample_rate=RATE)
        np.testing.assert_array_equal(d.sequence(len(clips) + k), fe.features(want_fe, x))
        assert not np.array_equal(d.sequence(k), d.sequence(len(clips) + k))


def test_stretch_resamples_each_sequence_in_time():
    """``stretch``: each sequence of a padded batch becomes r * length frames (halves up), frame t
    being input frame floor(t / r), with r drawn log-uniform in the range; padding stays zero."""
    lengths = np.array([5, 3, 4])
    x = np.zeros((3, 5, 2), np.float32)
    for i, n in enumerate(lengths):
        x[i, :n] = np.arange(n)[:, None] * 10 + i + np.array([0.0, 0.5])
    for r, want in ((2.0, [[0, 0, 1, 1, 2, 2, 3, 3, 4, 4], [0, 0, 1, 1, 2, 2],
                           [0, 0, 1, 1, 2, 2, 3, 3]]),
                    (0.5, [[0, 2, 4], [0, 2], [0, 2]]),
                    (1.0, [[0, 1, 2, 3, 4], [0, 1, 2], [0, 1, 2, 3]])):
        y, n = augment.stretch(x, lengths, [r, r], np.random.default_rng(0))
        assert list(n) == [len(w) for w in want] and y.shape == (3, max(n), 2)
        for i, w in enumerate(want):
            np.testing.assert_array_equal(y[i, :n[i]], x[i, w])
            assert not y[i, n[i]:].any()
    drawn = [augment.stretch(x[:1], lengths[:1], [0.6, 1.7], np.random.default_rng(s))[1][0]
             for s in range(200)]
    assert min(drawn) == 3 and max(drawn) == 8 and sorted(set(drawn)) == list(range(3, 9))
    a = augment.stretch(x, lengths, [0.6, 1.7], np.random.default_rng(4))
    b = augment.stretch(x, lengths, [0.6, 1.7], np.random.default_rng(4))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_stretch_and_the_frame_loss_train_from_the_command_line(tmp_path):
    """``--augment stretch`` alone makes no copies (it is drawn anew each epoch); with
    ``--frame-loss`` the run trains and records both."""
    folder = _tone_folder(tmp_path / "wavs", per=4)
    assert TrainConfig(data=str(folder), augment={"stretch": [0.8, 1.2]}).augment_copies == 0
    assert TrainConfig(data=str(folder), augment=augment.parse("gain,stretch")).augment_copies \
        == augment.DEFAULT_COPIES
    out = tmp_path / "m.safetensors"
    _ok(runner.invoke(app, ["train", "--data", str(folder), "--augment", "stretch=0.7:1.4",
                            "--frame-loss", "1", "--variant", "LSTM1", "-n", "4", "--epochs", "2",
                            "-o", str(out), "--quiet"]))
    log = json.loads((tmp_path / "m.log.json").read_text())
    assert log["config"]["augment"] == {"stretch": [0.7, 1.4]}
    assert log["config"]["augment_copies"] == 0 and log["config"]["frame_loss"] == 1.0
    assert log["data"]["sizes"]["train"] == log["data"]["clips"]["train"]  # no copies
    assert np.isfinite(log["epochs"][-1]["train_loss"])


def test_extra_training_clips_from_the_command_line(tmp_path):
    """``--train-extra DIR``: its clips join the training split (recorded in the log and the
    checkpoint), never validation or test; a folder that is not one or a test speaker among its
    clips is a one-line error with no file left. A continuous model (--streams) draws them into
    its training streams only."""
    folder = _tone_folder(tmp_path / "wavs", per=3)
    extra = _tone_folder(tmp_path / "extra", speakers=("syn",), per=4)
    out = tmp_path / "m.safetensors"
    _ok(runner.invoke(app, ["train", "--data", str(folder), "--test-speakers", "cid",
                            "--train-extra", str(extra), "-n", "4", "--epochs", "1",
                            "-o", str(out), "--quiet"]))
    log = json.loads((tmp_path / "m.log.json").read_text())
    assert log["config"]["train_extra"] == str(extra)
    assert log["data"]["train_extra"] == str(extra.resolve())
    # ann and bob: 12 clips, a stratified validation clip per label; + the 8 extra
    assert log["data"]["clips"] == {"train": 12 - 2 + 8, "val": 2, "test": 6}
    assert formats.info(out).data["train_extra"] == str(extra.resolve())
    for args, words in ((["--train-extra", str(tmp_path / "none")], "not a folder"),
                        (["--test-speakers", "cid", "--train-extra",
                          str(_tone_folder(tmp_path / "leak", speakers=("cid",), per=1))],
                         "also in the test set"),
                        (["--streams", "1", "--select", "last"], "--select"),
                        (["--streams", "1", "--test-speakers", "cid", "--train-extra",
                          str(_tone_folder(tmp_path / "leak2", speakers=("cid",), per=1))],
                         "also in the test set")):
        r = runner.invoke(app, ["train", "--data", str(folder), "--epochs", "1", "--quiet",
                                "-o", str(tmp_path / "x.safetensors"), *args])
        assert r.exit_code != 0 and words in r.output and "Traceback" not in r.output, r.output
        assert not (tmp_path / "x.safetensors").exists()
    stream = tmp_path / "s.safetensors"
    _ok(runner.invoke(app, ["train", "--data", str(folder), "--test-speakers", "cid",
                            "--train-extra", str(extra), "--streams", "1", "--clips-per-stream",
                            "4", "-n", "4", "--epochs", "1", "-o", str(stream), "--quiet"]))
    info = checkpoint.read_config(stream)["info"]
    assert info["train_stream"]["train_extra"] == info["data"]["train_extra"] == str(extra)
    speakers = info["data"]["speakers"]  # the extra voice trains, never validates or tests
    assert speakers["train"] == ["ann", "bob", "syn"] and speakers["test"] == ["cid"]
    assert "syn" not in speakers["val"]


def test_augmentation_recipes_parse_and_refuse():
    assert augment.parse("shift,gain=-12:6") == {"shift": [150.0], "gain": [-12.0, 6.0]}
    assert augment.parse("") == augment.parse("none") == {}
    assert augment.parse("vtlp") == {"vtlp": [0.9, 1.1]}
    assert augment.parse("stretch") == {"stretch": [0.6, 1.7]}
    for bad in ("gain=1", "speed=0:1", "gain=a:b", "pitch", "vtlp=0:1", "stretch=1.2:0.8"):
        with pytest.raises(UsageError):
            augment.parse(bad)


# ---- the shipped raw-audio model --------------------------------------------------------------
def test_one_command_classifies_the_shipped_sample():
    from slimedge import zoo
    r = json.loads(_ok(runner.invoke(app, ["run", "--audio", str(zoo.sample_wav_path()),
                                           "--json"])).splitlines()[-1])
    assert r["model"] == str(zoo.audio_model_path())
    assert r["label"] == "7" and r["probability"] > 0.5


def test_the_audio_models_card_is_what_evaluate_measures():
    """The card's official-split accuracy, recomputed from the recordings (index 0-4 test)."""
    from slimedge import zoo
    fsdd = Path(__file__).parents[2] / "shared" / "data" / "fsdd"
    card = zoo.audio_card()
    r = json.loads(_ok(runner.invoke(app, ["evaluate", str(zoo.audio_model_path()), "--data",
                                           str(fsdd), "--split-by", "fsdd", "--json"])))
    assert r["n"] == card["official_split"]["test_n"] == 250
    assert r["accuracy"] == pytest.approx(card["official_split"]["test_accuracy"], abs=1e-12)
    info = formats.info(zoo.audio_model_path())
    assert info.frontend.audio.to_config() == {**wavdata_default("microfrontend"),
                                               **card["frontend"]}
    assert (info.variant, dict(info.spec.constants)) == (card["variant"], card["constants"])
