"""The event decoder of a continuous model (issue 24): the Python decoder against an independent
float64 reference on synthetic posterior sequences, the exported C decoder's events identical to
Python's on long audio streams (integer and float arithmetic, any chunking), ``model.listen()``
and ``slimedge listen``."""
import json
import subprocess
import sys
from dataclasses import astuple
from pathlib import Path

import numpy as np
import pytest

from helpers import seeded
from slimedge import checkpoint, runtime
from slimedge.errors import UsageError
from slimedge.exporters import export
from slimedge.frontend import Frontend, Standardize, audio
from slimedge.runtime import decoder as dec
from test_audio_c import MF8, clip, clips

LABELS = ["_silence_"] + [str(k) for k in range(10)]
HOP_MS = 20.0
CONFIG = {"head": {"labels": LABELS, "num_classes": 11},
          "stream": {"background": "_silence_", "frame_ms": HOP_MS}}


def synthetic_logits(frames: int, seed: str) -> np.ndarray:
    """Silence with noisy digits of 5-40 frames at random places: logits (frames, 11)."""
    rng = seeded(seed)
    y = rng.normal(0, 1.0, (frames, 11)).astype(np.float32)
    y[:, 0] += 3.0
    t = 0
    while t < frames:
        t += int(rng.integers(3, 40))
        n = int(rng.integers(5, 40))
        y[t:t + n, int(rng.integers(1, 11))] += rng.uniform(2.0, 7.0)
        t += n
    return y


def reference(y: np.ndarray, window: int, threshold: float, min_count: int, refractory: int,
              integer: bool):
    """The decoder as specified, written independently: the softmax of exp(-k / 32) rounded to
    Q15 (k the float32 distance below the top logit in 1/32 steps), the averages by cumulative
    sums, then the run / refractory rule. Events (index, frame, start, score)."""
    k = np.floor((y.max(1, keepdims=True) - y) * np.float32(32)).astype(np.float64)
    e = np.floor(32768 * np.exp(-np.minimum(k, 4000) / 32) + 0.5).astype(np.int64)
    s = e.sum(1, keepdims=True)
    p = e / s
    if integer:
        p = (255 * e + s // 2) // s
        thr = max(1, int(np.floor(threshold * 255 + 0.5)))
    else:
        thr = threshold
    c = np.concatenate([np.zeros((1, p.shape[1]), p.dtype), np.cumsum(p, 0)])
    events, run_label, run, fired, last = [], -1, 0, False, None
    for t in range(len(p)):
        lo = max(0, t - window + 1)
        avg = (c[t + 1] - c[lo]) // (t + 1 - lo) if integer else (c[t + 1] - c[lo]) / (t + 1 - lo)
        best = 1 + int(np.argmax(avg[1:]))
        if avg[best] >= thr:
            if best != run_label:
                run_label, run, fired, run_start = best, 0, False, t
            run += 1
        else:
            run_label, run, fired = -1, 0, False
        if run >= min_count and not fired and (last is None or t - last >= refractory):
            fired, last = True, t
            hits = [j for j in range(lo, t + 1) if p[j, best] >= thr]
            start = hits[0] if hits else run_start
            events.append((best, t, start, avg[best] / 255 if integer else avg[best]))
    return events


@pytest.mark.parametrize("arithmetic", ["int", "float"])
@pytest.mark.parametrize("knobs", [(200, 0.6, 3, 300), (100, 0.5, 1, 0), (500, 0.4, 5, 1000)])
def test_decoder_matches_reference(arithmetic, knobs):
    window_ms, threshold, min_count, refractory_ms = knobs
    y = synthetic_logits(6000, f"decoder-{arithmetic}-{knobs}")
    d = dec.Decoder(CONFIG, window_ms=window_ms, threshold=threshold, min_count=min_count,
                    refractory_ms=refractory_ms, arithmetic=arithmetic)
    got = []
    for k in range(0, len(y), 77):  # pushed in pieces: the state carries over
        got += d.push(y[k:k + 77])
    want = reference(y, int(window_ms / HOP_MS), threshold, min_count,
                     int(refractory_ms / HOP_MS), arithmetic == "int")
    assert len(want) > 20
    assert [(e.index, e.frame, e.start_frame) for e in got] == [w[:3] for w in want]
    np.testing.assert_allclose([e.score for e in got], [w[3] for w in want], rtol=1e-5)
    assert all(e.label != "_silence_" for e in got)
    e = got[0]
    assert e.time == pytest.approx(e.frame * HOP_MS / 1000 + HOP_MS / 1000)
    assert e.start == pytest.approx(e.start_frame * HOP_MS / 1000)


def test_decoder_never_fires_background():
    y = np.zeros((500, 11), np.float32)
    y[:, 0] = 20.0  # silence, certain
    assert dec.decode(CONFIG, y, threshold=1e-3) == []
    unknown = {**CONFIG, "head": {"labels": LABELS[:10] + ["_unknown_"]}}
    y = np.zeros((500, 11), np.float32)
    y[:, 10] = 20.0  # unknown, certain
    assert dec.decode(unknown, y) == []


def test_decoder_settings_errors():
    with pytest.raises(UsageError, match="not a continuous one"):
        dec.Decoder({"head": {"labels": LABELS}})
    with pytest.raises(UsageError, match="threshold"):
        dec.Decoder(CONFIG, threshold=1.5)
    with pytest.raises(UsageError, match="unknown setting"):
        dec.Settings.from_config({"decoder": {"windw_ms": 3}})
    with pytest.raises(UsageError, match="expected outputs"):
        dec.Decoder(CONFIG).push(np.zeros((3, 4), np.float32))


def continuous_model(path, arithmetic: str, threshold: float):
    """A random LSTM0 with an mf8 front-end and the silence class, its head sharpened so the
    posteriors swing; the decoder section as given."""
    import torch

    from slimedge.models import SequenceClassifier
    fa = audio.from_config(MF8)
    torch.manual_seed(1)
    m = SequenceClassifier("LSTM0", fa.output_size, 16, 11, frontend=Frontend((Standardize(),), fa))
    feats = audio.features(fa, clip("3_jackson_7.wav"))
    m.frontend.stage("standardize").set_stats(feats.mean(0), feats.std(0) + 1e-3)
    config, tensors = m.checkpoint_state()
    tensors = {k: v.detach().numpy() * (6.0 if k.startswith("head") else 1.0)
               for k, v in tensors.items()}
    config["head"]["labels"] = LABELS
    config["stream"] = {"background": "_silence_", "frame_ms": fa.hop_samples * 1000 / fa.sample_rate}
    config["decoder"] = {"threshold": threshold, "arithmetic": arithmetic, "min_count": 2,
                         "window_ms": 100.0, "refractory_ms": 200.0}
    return checkpoint.write(path, config, tensors)


@pytest.fixture(scope="module", params=["int", "float"])
def models(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"continuous-{request.param}")
    ckpt = continuous_model(d / "m.safetensors", request.param, 0.35)
    export(ckpt, d / "m.c", format="c")
    return ckpt, d / "m.c"


def long_stream(count: int) -> np.ndarray:
    rng = seeded("decoder-stream")
    parts = []
    for x in clips(count):
        parts += [x, (rng.normal(0, 30, int(rng.integers(2400, 8000)))).astype(np.int16)]
    return np.concatenate(parts)


def test_c_events_identical_to_python(models):
    ckpt, cfile = models
    pcm = long_stream(60)  # about a minute
    py = runtime.load(ckpt).listen()
    c = runtime.load(cfile, backend="c").listen()
    assert (py.where, c.where) == ("python", "C")
    rng = seeded("decoder-chunks")
    got_py, got_c, k = [], [], 0
    while k < len(pcm):
        n = int(rng.integers(1, 3000))
        got_py += py.push(pcm[k:k + n])
        got_c += c.push(pcm[k:k + n])
        k += n
    assert len(got_py) > 20
    if models[0].parent.name.startswith("continuous-int"):
        assert got_c == got_py  # integer posteriors: the same events to the bit
    else:  # float: the models' outputs differ in their last bits (NumPy, C with -ffast-math)
        assert [e[:4] + e[5:] for e in map(astuple, got_c)] == \
            [e[:4] + e[5:] for e in map(astuple, got_py)]
        np.testing.assert_allclose([e.score for e in got_c], [e.score for e in got_py], rtol=1e-5)
    # the decoder's arithmetic: the C model's outputs through the Python decoder, the same
    # events as the C decoder's to the bit, in either arithmetic
    from slimedge.formats.c.audio import Listener
    m = runtime.load(cfile, backend="c")
    assert dec.Decoder(m.config).push(Listener(m.session).push(pcm)) == got_c
    other = runtime.load(cfile, backend="c").listen(threshold=0.3)  # other knobs: Python's
    assert other.where == "python"


def write_wav(path, pcm: np.ndarray):
    import wave
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.tobytes())
    return path


def test_cli_listen(models, tmp_path):
    ckpt, _ = models
    pcm = long_stream(6)
    wav = write_wav(tmp_path / "s.wav", pcm)
    want = runtime.load(ckpt).listen().push(pcm)
    assert want
    cmd = [sys.executable, "-m", "slimedge", "listen", str(ckpt)]
    out = subprocess.run(cmd + [str(wav), "--json"], capture_output=True, text=True, check=True)
    got = [json.loads(line) for line in out.stdout.splitlines()]
    assert got == [e.as_dict() for e in want]
    out = subprocess.run(cmd + ["-"], input=pcm.tobytes(), capture_output=True, check=True)
    lines = out.stdout.decode().splitlines()
    assert len(lines) == len(want) and lines[0].split()[1] == want[0].label
    bad = subprocess.run(cmd + [str(wav), "--threshold", "2"], capture_output=True, text=True)
    assert bad.returncode != 0 and "threshold" in bad.stderr and "Traceback" not in bad.stderr


needs_m4 = pytest.mark.skipif(not __import__("slimedge.devices", fromlist=["available"])
                              .available("cortex-m4"), reason="the cortex-m4 tools are not installed")


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory):
    """The continuous model exported to C full integer (calibrated on mf8 frames)."""
    from test_audio_c import feature_splits
    d = tmp_path_factory.mktemp("continuous-int8")
    ckpt = continuous_model(d / "m.safetensors", "int", 0.35)
    return export(ckpt, d / "m.c", format="c", quantize="int8", data=feature_splits(MF8),
                  accuracy_tolerance=1.0).path


@needs_m4
def test_the_whole_chain_on_the_cortex_m4(int8_export):
    """PREFIX_events of a full-integer export in unicorn: the host build's events bit for bit,
    and the decoder's share of the cycles measured."""
    from slimedge.devices import audio as daudio
    path = int8_export
    pcm = long_stream(4)
    r = daudio.measure(path, "cortex-m4", [pcm])
    ev = r["check"]["events"]
    assert ev["passed"] and ev["exact"] and ev["events"] >= 3
    # the host's events are the Python decoder's on the same export
    m = runtime.load(path, backend="c")
    assert ev["events"] == len(m.listen().push(pcm))
    per = r["per_second_of_audio"]
    assert per["chain"]["cycles"] == pytest.approx(per["together"]["cycles"] + per["decoder"]["cycles"])
    assert 0 < per["decoder"]["cycles"] < per["model"]["cycles"]
    assert r["ram_bytes"]["decoder"]["state"] > 5 * 11  # the window of quantised posteriors


@needs_m4
def test_the_events_firmware_prints_the_hosts_events(int8_export, tmp_path):
    """examples/mcu/events.c under QEMU on a 20-second stream read through semihosting: one line
    per event, the same events as model.listen() on the host build of the same export."""
    path = int8_export
    pcm = long_stream(20)
    wav = write_wav(tmp_path / "stream.wav", pcm)
    want = runtime.load(path, backend="c").listen().push(pcm)
    assert len(want) >= 5
    mcu = Path(__file__).resolve().parent.parent / "examples" / "mcu"
    res = subprocess.run(["make", "-C", str(mcu), "-f", "audio.mk", "run-events", f"MODEL={path}",
                          f"WAV={wav}", f"BUILD={tmp_path / 'b'}", f"PYTHON={sys.executable}"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    got = [line.split()[1:] for line in res.stdout.splitlines() if line.startswith("event: ")]
    fa = audio.from_config(MF8)
    hop, win = fa.hop_samples, fa.window_samples
    assert got == [[str((e.frame * hop + win) * 1000 // 8000), e.label,
                    str(int(np.floor(np.float32(e.score) * np.float32(1000) + np.float32(0.5)))),
                    str(e.start_frame * hop * 1000 // 8000)] for e in want]
    assert f"samples: {len(pcm)}" in res.stdout and f"events: {len(want)}" in res.stdout
