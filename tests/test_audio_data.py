"""Raw audio data: the strict WAV reader, a folder of clips with labels and speakers, the
speaker-disjoint and FSDD splits, and frames through an audio front-end."""
import struct
from pathlib import Path

import numpy as np
import pytest

from slimedge.data import audio as wavdata
from slimedge.data.wav import read_wav, write_wav
from slimedge.errors import DataError
from slimedge.frontend.audio import features
from slimedge.frontend.logmel import LogMel

FSDD = Path(__file__).parents[2] / "shared" / "data" / "fsdd" / "recordings"
SPEAKERS = ["george", "jackson", "lucas", "nicolas", "yweweler"]


def _wav(path, *, tag=1, channels=1, rate=8000, bits=16, data=b"\x01\x00\x02\x00", size=None):
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * channels * bits // 8,
                      channels * bits // 8, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" \
        + struct.pack("<I", len(data) if size is None else size) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


# ---- one WAV file ----------------------------------------------------------------------------
def test_reads_fsdd_and_round_trips(tmp_path):
    x, rate = read_wav(FSDD / "3_jackson_7.wav", sample_rate=8000)
    assert rate == 8000 and x.dtype == np.int16 and len(x) > 1000
    write_wav(tmp_path / "a.wav", x, 8000)
    y, _ = read_wav(tmp_path / "a.wav")
    assert np.array_equal(x, y)
    f = _wav(tmp_path / "f.wav", tag=3, bits=32, data=np.array([0.5, -0.25], "<f4").tobytes())
    assert read_wav(f)[0].tolist() == [0.5, -0.25]


@pytest.mark.parametrize("kind,make,words", [
    ("rate", lambda p: _wav(p, rate=16000), "16000 Hz"),
    ("stereo", lambda p: _wav(p, channels=2), "2 channels"),
    ("8-bit", lambda p: _wav(p, bits=8, data=b"\x80\x81"), "8-bit"),
    ("header", lambda p: p.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt \x10\x00"), "truncated"),
    ("not riff", lambda p: p.write_bytes(b"ID3\x03" + bytes(40)), "not a WAV"),
    ("empty", lambda p: _wav(p, data=b""), "no samples"),
    ("short data", lambda p: _wav(p, size=1000), "truncated"),
    ("nan", lambda p: _wav(p, tag=3, bits=32, data=np.array([0.1, np.nan], "<f4").tobytes()),
     "NaN"),
])
def test_bad_wavs_name_the_file_and_the_problem(tmp_path, kind, make, words):
    p = tmp_path / f"bad {kind}.wav"
    make(p)
    with pytest.raises(DataError) as e:
        read_wav(p, sample_rate=8000)
    assert str(p) in str(e.value) and words in str(e.value)


# ---- a folder --------------------------------------------------------------------------------
def test_fsdd_folder_labels_speakers_and_indices():
    clips = wavdata.scan_wavs(FSDD)
    assert len(clips) == 2500
    assert sorted({c.speaker for c in clips}) == SPEAKERS
    assert sorted({c.label for c in clips}) == [str(d) for d in range(10)]
    c = next(c for c in clips if c.path.name == "7_lucas_12.wav")
    assert (c.label, c.speaker, c.index) == ("7", "lucas", 12)


def test_manifest_and_name_prefix_labels(tmp_path):
    for name in ("yes_a1.wav", "no_b2.wav"):
        _wav(tmp_path / name)
    assert [(c.label, c.speaker) for c in wavdata.scan_wavs(tmp_path)] == [("no", "b2"),
                                                                          ("yes", "a1")]
    (tmp_path / "sub").mkdir()
    _wav(tmp_path / "sub" / "x.wav")
    (tmp_path / "labels.csv").write_text("path,label,speaker\nsub/x.wav,up,ann\nyes_a1.wav,yes,\n")
    clips = wavdata.scan_wavs(tmp_path)
    assert [(c.path.name, c.label, c.speaker) for c in clips] == [("x.wav", "up", "ann"),
                                                                 ("yes_a1.wav", "yes", None)]
    (tmp_path / "labels.csv").write_text("file,class\nx.wav,up\n")
    with pytest.raises(DataError, match="path and label"):
        wavdata.scan_wavs(tmp_path)


def test_splits_fsdd_rule_and_speaker_disjoint():
    clips = wavdata.scan_wavs(FSDD)
    p = wavdata.split_clips(clips, "fsdd")
    assert len(p["test"]) == 250 and {c.index for c in p["test"]} == set(range(5))
    assert all(c.index >= 5 for c in p["train"] + p["val"])
    assert len(p["train"]) + len(p["val"]) == 2250
    p = wavdata.split_clips(clips, "speaker", test_speakers=["lucas", "george"])
    assert {c.speaker for c in p["test"]} == {"lucas", "george"} and len(p["test"]) == 1000
    assert not {c.speaker for c in p["train"] + p["val"]} & {"lucas", "george"}
    assert np.bincount([int(c.label) for c in p["val"]]).tolist() == [15] * 10  # stratified, 10%
    with pytest.raises(DataError, match="theo"):
        wavdata.split_clips(clips, "speaker", test_speakers=["theo"])
    with pytest.raises(DataError, match="unknown split"):
        wavdata.split_clips(clips, "by-day")


def test_load_wav_folder_gives_sequences_through_the_frontend():
    spec = {"kind": "logmel", "dct": 13}
    s = wavdata.load_wav_folder(FSDD, spec, split="speaker", test_speakers=["nicolas"], limit=20)
    assert (len(s.train), len(s.val), len(s.test)) == (20, 20, 20)
    assert s.input_size == 13 and s.labels == [str(d) for d in range(10)]
    assert s.info["frontend"]["audio"]["dct"] == 13 and s.info["speakers"]["test"] == ["nicolas"]
    # the frames are the front-end's on the clip (fresh state each)
    clips = wavdata.split_clips(wavdata.scan_wavs(FSDD), "speaker", test_speakers=["nicolas"])
    first = s.test.sequence(0)
    matches = [c for c in clips["test"] if len(features(LogMel(dct=13), read_wav(c.path)[0]))
               == len(first) and c.label == s.labels[s.test.y[0]]]
    assert any(np.allclose(features(LogMel(dct=13), read_wav(c.path)[0]), first, atol=1e-5)
               for c in matches)


def test_a_clip_shorter_than_a_frame_is_named(tmp_path):
    write_wav(tmp_path / "1_ann_0.wav", np.zeros(50, np.int16), 8000)
    with pytest.raises(DataError, match="1_ann_0.wav.*shorter than one frame"):
        wavdata.load_wav_folder(tmp_path, {"kind": "logmel"}, split="random", val_fraction=0,
                                test_fraction=0)


def _tone_clips(folder, speakers, labels=("0", "1"), n=2):
    folder.mkdir()
    t = np.arange(1600) / 8000
    for s in speakers:
        for lab in labels:
            for k in range(n):
                write_wav(folder / f"{lab}_{s}_{k}.wav",
                          (8000 * np.sin(2 * np.pi * (300 + 200 * int(lab) + 7 * k) * t))
                          .astype(np.int16), 8000)
    return folder


def test_train_extra_joins_the_training_split_only(tmp_path):
    data = _tone_clips(tmp_path / "data", ["ann", "bob", "cid"], n=4)
    extra = _tone_clips(tmp_path / "extra", ["syn"], n=3)
    spec = {"kind": "logmel"}
    plain = wavdata.load_wav_folder(data, spec, split="speaker", test_speakers=["cid"])
    more = wavdata.load_wav_folder(data, spec, split="speaker", test_speakers=["cid"],
                                   train_extra=extra, augment={"gain": [-6, 6]}, copies=1)
    # validation and test: the same clips, the same frames; training: + 6 extra clips, and each
    # of them gets its augmented copy like the data's own
    for k in ("val", "test"):
        assert np.array_equal(getattr(plain, k).frames, getattr(more, k).frames)
    assert len(more.train) == 2 * (len(plain.train) + 6)
    assert more.info["train_extra"] == str(extra.resolve())
    assert "syn" in more.info["speakers"]["train"] and "syn" not in more.info["speakers"]["val"]
    got = wavdata.split_clips_of(more.info, "train")  # the record gives the same clips back
    assert [c.path.name for c in got][-6:] == sorted(p.name for p in extra.glob("*.wav"))
    with pytest.raises(DataError, match=r"speakers \['cid'\] are also in the test set"):
        wavdata.load_wav_folder(data, spec, split="speaker", test_speakers=["cid"],
                                train_extra=_tone_clips(tmp_path / "leak", ["cid"]))
    inside = _tone_clips(data / "syn", ["syn"])  # inside the data folder: the data's already
    with pytest.raises(DataError, match="data's own folder or inside it"):
        wavdata.load_wav_folder(data, spec, split="speaker", test_speakers=["cid"], train_extra=inside)
    with pytest.raises(DataError, match="data's own folder or inside it"):
        wavdata.load_wav_folder(data, spec, split="speaker", test_speakers=["cid"], train_extra=data)
    import shutil
    shutil.rmtree(inside)
    again = tmp_path / "again"
    again.mkdir()
    (again / "labels.csv").write_text("path,label\n" + "".join(
        f"{p},{p.name[0]}\n" for p in sorted(data.glob("*_ann_*.wav"))))
    with pytest.raises(DataError, match="8 clips are also the data's"):
        wavdata.load_wav_folder(data, spec, split="speaker", test_speakers=["cid"], train_extra=again)
    with pytest.raises(DataError, match=r"labels \['7'\] are not the data's.*7_syn_0.wav"):
        wavdata.load_wav_folder(data, spec, split="speaker", test_speakers=["cid"],
                                train_extra=_tone_clips(tmp_path / "other", ["syn"], ("1", "7")))
