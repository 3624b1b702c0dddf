"""slimedge.metrics: one Evaluation from final logits, and train/runtime evaluate agreeing on it."""
import math

import numpy as np
import pytest

from helpers import run_without_torch
from slimedge import metrics
from slimedge.data import SequenceData


# ---- from_logits ---------------------------------------------------------------------------
def test_from_logits_matches_a_hand_computation():
    logits = [[2.0, 0.0, 0.0],   # predicts 0, true 0
              [0.0, 1.0, 0.0],   # predicts 1, true 2
              [0.0, 0.0, 3.0],   # predicts 2, true 2
              [1.0, 1.0, 0.0]]   # a tie: the first maximum (0) is predicted; true 1
    y = [0, 2, 2, 1]
    ev = metrics.from_logits(logits, y, ["a", "b", "c"])
    assert (ev.n, ev.accuracy) == (4, 0.5)
    assert ev.confusion.tolist() == [[1, 0, 0],
                                     [1, 0, 0],
                                     [0, 1, 1]]
    e = math.e
    ce = [math.log(e ** 2 + 2) - 2, math.log(e + 2) - 0, math.log(e ** 3 + 2) - 3,
          math.log(2 * e + 1) - 1]
    assert ev.loss == pytest.approx(sum(ce) / 4, rel=1e-12)
    assert ev.to_dict() == {"accuracy": 0.5, "loss": ev.loss, "n": 4, "correct": 2,
                            "confusion": ev.confusion.tolist(), "labels": ["a", "b", "c"]}


def test_from_logits_is_stable_for_large_logits_and_empty_input():
    ev = metrics.from_logits(np.array([[1000.0, 0.0], [0.0, 1000.0]]), [0, 0], ["x", "y"])
    assert ev.accuracy == 0.5 and ev.loss == pytest.approx(500.0)  # (0 + 1000) / 2, no overflow
    empty = metrics.from_logits(np.zeros((0, 3)), np.zeros(0, int), ["a", "b", "c"])
    assert empty.n == 0 and math.isnan(empty.accuracy) and math.isnan(empty.loss)
    assert empty.confusion.shape == (3, 3) and not empty.confusion.any()


@pytest.mark.parametrize("logits, y, message", [
    (np.zeros((3, 2)), [0, 1], "N = 2"),
    (np.zeros(3), [0, 1, 1], r"\(N, K\)"),
    (np.zeros((2, 2)), [0, 2], r"\[0, 1\]"),
    (np.zeros((2, 2)), [0, -1], r"\[0, 1\]"),
    (np.zeros((2, 2)), [0.0, 1.0], "integer"),
])
def test_from_logits_refuses_mismatched_input(logits, y, message):
    with pytest.raises(ValueError, match=message):
        metrics.from_logits(logits, y, ["a", "b"])


# ---- evaluate over a split -----------------------------------------------------------------
def _toy_split(lengths=(3, 7, 1, 5, 2, 6, 4), K=3):
    """Sequences labelled by round(|last frame's x0|) % K, two of them mislabelled."""
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(t, 2)).astype(np.float32) for t in lengths]
    y = np.array([int(round(abs(s[-1, 0]))) % K for s in seqs])
    y[[1, 4]] = (y[[1, 4]] + 1) % K
    return SequenceData(np.concatenate(seqs), np.cumsum([0] + list(lengths)), y,
                        [str(k) for k in range(K)]), seqs


def test_evaluate_hands_predict_padded_batches_and_scores_last_frames():
    d, seqs = _toy_split()
    K, seen = 3, []

    def predict(x, lengths):  # logits from each sequence's last frame: class = round(|x0|) % K
        seen.append(lengths.tolist())
        assert x.dtype == np.float32 and x.shape == (len(lengths), lengths.max(), 2)
        assert all(not x[row, t:].any() for row, t in enumerate(lengths))  # zero padding
        last = x[np.arange(len(x)), lengths - 1, 0]
        return np.eye(K)[np.round(np.abs(last)).astype(int) % K] * 5.0

    want = np.array([int(round(abs(s[-1, 0]))) % K for s in seqs])
    expect = metrics.from_logits(np.eye(K)[want] * 5.0, d.y, d.labels)
    by_len = metrics.evaluate(predict, d, d.labels, num_classes=K, batch_size=3)
    assert seen == [[1, 2, 3], [4, 5, 6], [7]]  # sorted by length, 3 at a time
    seen.clear()
    in_order = metrics.evaluate(predict, d, d.labels, num_classes=K, batch_size=3, by_length=False)
    assert seen == [[3, 7, 1], [5, 2, 6], [4]]  # index order
    for ev in (by_len, in_order):
        assert ev.n == 7 and ev.accuracy == expect.accuracy
        assert np.array_equal(ev.confusion, expect.confusion)
        assert ev.loss == pytest.approx(expect.loss, rel=1e-12)
    assert expect.accuracy == 5 / 7  # two mislabelled: the comparison means something


def test_evaluate_refuses_bad_predict_output_and_batch_size():
    d, _ = _toy_split()
    with pytest.raises(ValueError, match=r"expected \(3, 4\)"):
        metrics.evaluate(lambda x, lengths: np.zeros((len(x), 3)), d, d.labels, num_classes=4,
                         batch_size=3)
    with pytest.raises(ValueError, match="batch size"):
        metrics.evaluate(lambda x, lengths: np.zeros((len(x), 3)), d, d.labels, num_classes=3,
                         batch_size=0, by_length=False)


def test_metrics_and_data_import_without_torch():
    code = ("from slimedge import data, metrics\n"
            "assert data.Evaluation is metrics.Evaluation\n"
            "import slimedge.data.fsdd, slimedge.data.mnist, slimedge.data.npz\n"
            "print('ok')")
    assert run_without_torch(code).strip() == "ok"


# ---- train.evaluate and runtime.evaluate: one definition -----------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small LSTM6 trained two epochs on a learnable toy task (class = which feature is large)."""
    pytest.importorskip("torch")
    from slimedge import data
    from slimedge.train import TrainConfig, train

    d = tmp_path_factory.mktemp("metrics")
    rng = np.random.default_rng(1)
    K, seqs, y = 3, [], []
    for k in range(150):
        x = rng.normal(size=(int(rng.integers(3, 10)), 4)).astype(np.float32)
        x[:, k % K] += 1.5
        seqs.append(x)
        y.append(k % K)
    data.save_npz(d / "toy.npz", seqs, y, split=["train"] * 90 + ["val"] * 30 + ["test"] * 30)
    splits = data.load(d / "toy.npz")
    r = train(TrainConfig(variant="LSTM6", data=str(d / "toy.npz"), hidden_size=8, epochs=2,
                          batch_size=8, lr=3e-2), d / "m.safetensors", device="cpu", quiet=True,
              splits=splits)
    return r.output, splits


def test_train_and_runtime_evaluate_agree(trained):
    from slimedge import checkpoint, runtime, train

    path, splits = trained
    ref = train.evaluate(checkpoint.load(path), splits.test)
    assert ref.accuracy > 0.6 and np.count_nonzero(ref.confusion.sum(0)) > 1  # it learnt
    backends = [b for b in ("numpy", "torch") if runtime.backend_module(b).available()]
    assert "numpy" in backends
    for backend in backends:
        got = runtime.evaluate(runtime.load(path, backend, threads=1), splits.test, batch_size=7)
        assert got.accuracy == ref.accuracy and got.n == ref.n == len(splits.test), backend
        assert np.array_equal(got.confusion, ref.confusion), backend
        assert got.loss == pytest.approx(ref.loss, abs=1e-5) and got.labels == ref.labels
