"""Synthetic spoken digits (slimedge.data.tts, `slimedge tts-digits`): the voices, the trimming,
and clips that an FSDD-trained model hears as the digits they say."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from slimedge.data import audio as wavdata
from slimedge.data import tts
from slimedge.data.wav import read_wav
from slimedge.errors import UsageError

ZOO = Path(__file__).parents[1] / "slimedge" / "zoo"


def _engines():
    missing = [e for e in tts.ENGINES if shutil.which(e) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (.ci/run installs the Debian packages)")


def test_voices_are_seeded_distinct_and_name_files():
    v = tts.voices(renditions=2, seed=3)
    assert len(v) == 2 * len(tts.ESPEAK_ACCENTS) * len(tts.ESPEAK_VARIANTS) \
        + len(tts.FLITE_VOICES) * len(tts.FLITE_STRETCHES)
    assert v == tts.voices(renditions=2, seed=3) and v != tts.voices(renditions=2, seed=4)
    names = [x["speaker"] for x in v]
    assert len(set(names)) == len(names) and not any("_" in n for n in names)
    es = [x for x in v if x["engine"] == "espeak-ng"]
    assert all(tts.ESPEAK_PITCH[0] <= x["pitch"] <= tts.ESPEAK_PITCH[1]
               and tts.ESPEAK_SPEED[0] <= x["speed"] <= tts.ESPEAK_SPEED[1] for x in es)
    assert len({(x["pitch"], x["speed"]) for x in es}) > len(es) // 2
    with pytest.raises(UsageError, match="unknown text-to-speech engines"):
        tts.voices(engines=["say"])
    with pytest.raises(UsageError, match="no text-to-speech engine given"):
        tts.voices(engines=[])


def test_trim_keeps_the_loud_part_and_a_window_either_side():
    rate, w = 8000, 80
    x = np.zeros(40 * w)
    x[10 * w + 5:20 * w] = 0.3  # windows 10..19 are loud
    x[3 * w:4 * w] = 0.3 * 10 ** (-50 / 20)  # 50 dB down: not speech
    y = tts.trim(x, rate)
    assert len(y) == 12 * w and np.array_equal(y, x[9 * w:21 * w])
    assert tts.normalize(y).max() == pytest.approx(tts.PEAK)
    assert not tts.normalize(np.zeros(5)).any()


def test_synthesize_writes_a_folder_an_fsdd_model_hears(tmp_path):
    _engines()
    from slimedge.runtime import load

    out = tmp_path / "voices"
    rec = tts.synthesize(out, engines=["flite"])
    clips = wavdata.scan_wavs(out)
    assert len(clips) == rec["clips"] == 10 * len(tts.FLITE_VOICES) * len(tts.FLITE_STRETCHES)
    assert json.loads((out / tts.MANIFEST).read_text()) == rec and "flite" in rec["engines"]
    assert {c.label for c in clips} == set(tts.DIGITS)
    for c in clips[::7]:
        x, rate = read_wav(c.path)
        assert rate == 8000 and x.dtype == np.int16 and 0.1 < len(x) / rate < 2.0
        assert abs(int(np.abs(x.astype(np.int32)).max()) - 16384) <= 1  # -6 dBFS
    # the shipped raw-audio model, trained on five human voices only, hears most of these
    # machine voices as the digit they say (chance: 10%)
    model = load(ZOO / "fsdd_audio.safetensors")
    hits = [model.labels[int(model.audio_stream().push(read_wav(c.path)[0])[-1].argmax())]
            == c.label for c in clips]
    assert np.mean(hits) > 0.6
    with pytest.raises(UsageError, match="already exists"):
        tts.synthesize(out, engines=["flite"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["voices"]  # no temporary left
    assert out.stat().st_mode & 0o700 == 0o700  # a folder its owner can list and enter


def test_cli_refuses_a_missing_engine_and_leaves_nothing(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from slimedge.cli import app

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    r = CliRunner().invoke(app, ["tts-digits", str(tmp_path / "v")])
    assert r.exit_code != 0 and "apt-get install espeak-ng flite" in r.output
    assert not (tmp_path / "v").exists()


def test_a_failure_midway_leaves_no_folder(tmp_path, monkeypatch):
    """An engine failing on the third clip: DataError, and neither the folder nor a temporary
    one is left behind."""
    _engines()
    from slimedge.errors import DataError

    calls = []
    real = tts.speak

    def flaky(voice, text, rate, workdir):
        calls.append(text)
        if len(calls) == 3:
            raise DataError(f"{voice['engine']} failed on {text!r}")
        return real(voice, text, rate, workdir)

    monkeypatch.setattr(tts, "speak", flaky)
    with pytest.raises(DataError, match="failed on"):
        tts.synthesize(tmp_path / "voices", engines=["flite"])
    assert list(tmp_path.iterdir()) == []
