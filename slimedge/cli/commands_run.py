"""``slimedge run``: a model through the streaming runtime, frame by frame or on a data split."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError
from . import app as _shared  # err_console is set per command (see user_errors)
from .app import (
    RUN_BACKENDS,
    SPLITS,
    _choices,
    _duration,
    _ignored,
    app,
    console,
    user_errors,
)


# ---- run (the streaming runtime) ----------------------------------------------------------------
def _load_runtime_model(path: Path, backend: str, threads: Optional[int],
                        device: Optional[str] = None, verify: bool = True):
    from .. import runtime

    m = runtime.load(path, backend, threads, device=device, verify=verify)
    _shared.err_console.print(f"{_shared.shown(path)}: backend {m.backend} ({m.backend_reason}; "
                              f"{m.session.detail})",
                              style="dim", highlight=False, soft_wrap=True, markup=False)
    return m


def _is_dir(data: Optional[str]) -> bool:
    """Whether ``--data`` names a folder (of WAV files: data for a model that reads audio)."""
    return data is not None and Path(data).is_dir()


def wav_split(recorded: Optional[dict], data: Optional[str], split_by: Optional[str],
              test_speakers: Optional[str]) -> Optional[dict]:
    """How a folder of WAVs given to ``evaluate``/``run`` is split: ``--split-by`` and
    ``--test-speakers`` as given; without them, as the model records for the folder it was trained
    on, and every clip as the test set for any other folder. None when ``data`` is no folder."""
    speakers = [t.strip() for t in (test_speakers or "").split(",") if t.strip()]
    if not _is_dir(data):
        if split_by is not None or speakers:
            raise UsageError("--split-by and --test-speakers apply to a folder of WAV files "
                             "given with --data DIR")
        return None
    if split_by is None and not speakers:
        trained_on = (recorded or {}).get("path")
        same = trained_on is not None and Path(trained_on).resolve() == Path(data).resolve()
        return {} if same else {"split": "all"}
    return {"split": split_by or "speaker", "test_speakers": speakers}


def _runtime_split(model, path: Path, data: Optional[str], split: str,
                   split_seed: Optional[int], limit: Optional[int], wav: Optional[dict] = None):
    """The data split to evaluate ``model`` on: by default the data set, split seed, fractions and
    limit it was trained with, as its config records them (as ``evaluate`` does for checkpoints).
    A folder of WAVs goes through the model's audio front-end, split as ``wav`` says."""
    from .. import data as _data

    if split not in _data.SPLITS:
        raise UsageError(f"unknown split {split!r}; valid: {', '.join(_data.SPLITS)}")
    # every export carries its checkpoint's record of the data it was trained on
    splits = _data.load_as_recorded(model.info.data, data, split_seed=split_seed, limit=limit,
                                    audio=model.info.frontend.audio, wav=wav)
    if not len(splits[split]):
        raise UsageError(f"the {split} split of {data} is empty (every clip of a folder the "
                         f"model was not trained on is its test split)")
    return splits, splits[split]


def _evaluate_runtime(path: Path, data: Optional[str], split: str, split_seed: Optional[int],
                      limit: Optional[int], backend: str, threads: Optional[int],
                      device: Optional[str] = None, split_by: Optional[str] = None,
                      test_speakers: Optional[str] = None):
    from .. import runtime

    m = _load_runtime_model(path, backend, threads, device)
    splits, part = _runtime_split(m, path, data, split, split_seed, limit,
                                  wav_split(m.info.data, data, split_by, test_speakers))
    ev = runtime.evaluate(m, part)
    return ev, {"data": splits.summary(), "split": split, "model": str(path),
                "variant": m.variant, "backend": m.backend}


def _softmax(outputs):
    import numpy as np

    z = outputs - outputs.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


SHOWN_CLASSES = 10  # `run --input` shows every class's probability up to this many classes


@app.command("run")
@user_errors
def run_cmd(
    ctx: typer.Context,
    model: Optional[Path] = typer.Argument(None, help="An exported .onnx or .tflite file, or a checkpoint; default: the shipped model (with --audio or --data DIR: the shipped raw-audio model). Or a shipped model by name: fsdd_mfcc, fsdd_audio, fsdd_stream."),
    input: Optional[Path] = typer.Option(None, "--input", "-i", metavar="FILE.npy", help="Frames to stream, a .npy array (T, m): prints each frame's top class and probabilities."),
    audio: Optional[Path] = typer.Option(None, "--audio", "-a", metavar="FILE.wav", help="A WAV file (mono, 16-bit PCM or float, at the model's rate) through the model's audio front-end: prints the recognised class and its probability."),
    data: Optional[str] = typer.Option(None, "--data", "-d", metavar="NAME|FILE.npz|DIR", help="A data set (fsdd, mnist-rows, mnist-pixels, a .npz file, or a folder of WAV files for a model that reads audio): prints accuracy."),
    split_by: Optional[str] = typer.Option(None, "--split-by", metavar="random|speaker|fsdd|all", show_default=False, help="With --data DIR: how the folder is split [default: as the model was trained, for its training folder; all (every clip is test) for another]."),
    test_speakers: Optional[str] = typer.Option(None, "--test-speakers", metavar="A,B", show_default=False, help="With --data DIR: these speakers' clips are the test split."),
    split: str = typer.Option("test", "--split", metavar=_choices(SPLITS), help="The split to run (with --data)."),
    split_seed: Optional[int] = typer.Option(None, "--split-seed", help="Default: the seed the model was trained with (with --data)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Cap every split at N sequences (with --data)."),
    backend: str = typer.Option("auto", "--backend", "-b", metavar=_choices(RUN_BACKENDS), help="The runtime backend."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, show_default=False, help="Backend threads [default: the backend's own]."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Load the model even when its bytes do not match the integrity digest it records (a corrupted file: at your own risk)."),
) -> None:
    """Stream frames (or a WAV file, or a data set) through a model with the runtime, one step per
    frame."""
    import numpy as np

    from .. import runtime
    from ..zoo import resolve

    if sum(x is not None for x in (input, data, audio)) != 1:
        raise UsageError("give exactly one of --input FILE.npy (print each frame's output), "
                         "--audio FILE.wav (print the recognised class) and --data NAME|DIR "
                         "(print accuracy)")
    if data is None:
        _ignored(ctx, [("split", "--split"), ("split_seed", "--split-seed"), ("limit", "--limit"),
                       ("split_by", "--split-by"), ("test_speakers", "--test-speakers")],
                 "they choose the --data split, and --input/--audio stream a file")
    # with no model: the shipped one that reads what was given (audio, or frames)
    path = resolve(model, audio=audio is not None or _is_dir(data))
    m = _load_runtime_model(path, backend, threads, verify=not no_verify)
    if audio is not None:
        _run_audio(m, path, audio, as_json)
        return
    if data is not None:
        splits, part = _runtime_split(m, path, data, split, split_seed, limit,
                                      wav_split(m.info.data, data, split_by, test_speakers))
        t0 = time.perf_counter()
        ev = runtime.evaluate(m, part)
        seconds = time.perf_counter() - t0
        frames = int(part.lengths.sum())
        result = {"model": str(path), "backend": m.backend, "data": splits.info.get("name", data),
                  "split": split, "accuracy": ev.accuracy, "correct": int(ev.confusion.trace()),
                  "n": ev.n, "loss": ev.loss, "frames": frames, "seconds": seconds}
        if as_json:
            sys.stdout.write(json.dumps(result, indent=2) + "\n")
            return
        per_frame = f", {_duration(seconds / frames)} per frame" if frames else ""
        console.print(f"accuracy {ev.accuracy:.4f} ({result['correct']}/{ev.n}) on "
                      f"{result['data']} {split} through {m.backend}; {frames:,} frames in "
                      f"{_duration(seconds)}{per_frame} (sequences stepped in batches)",
                      highlight=False, soft_wrap=True, markup=False)
        return
    from .._io import check_regular_file, npy_header

    check_regular_file(input, ".npy file")  # a FIFO would block forever
    try:
        with open(input, "rb") as f:
            if f.read(6) != b"\x93NUMPY":
                raise UsageError(f"{input}: not a .npy file (no NumPy header); save frames with "
                                 f"numpy.save as a (T, {m.input_size}) array")
            f.seek(0)  # the header's size against the file's, before NumPy allocates it
            npy_header(f, str(input), os.fstat(f.fileno()).st_size)
        frames = np.load(input, allow_pickle=False)
    except (OSError, ValueError) as e:
        msg = str(e) if str(e).startswith(str(input)) else f"{input}: not a readable .npy array: {e}"
        raise UsageError(msg) from None
    if frames.ndim == 1 and frames.shape[0] == m.input_size:
        frames = frames[None]
    if frames.ndim != 2 or frames.shape[1] != m.input_size:
        raise UsageError(f"{input}: expected frames of shape (T, {m.input_size}), got "
                         f"{frames.shape}")
    s = m.stream()
    outputs = np.zeros((len(frames), m.output_size), np.float32)
    for t, frame in enumerate(frames):
        try:
            outputs[t] = s.step(frame)
        except runtime.InputError as e:
            raise UsageError(f"{input}, frame {t}: {e}") from None
    classifier = m.labels is not None
    labels = m.labels or [str(k) for k in range(m.output_size)]
    top = outputs.argmax(-1)
    names = [labels[k] if k < len(labels) else str(k) for k in top]
    probs = _softmax(outputs.astype(np.float64)) if classifier else None
    if as_json:
        sys.stdout.write(json.dumps({"model": str(path), "backend": m.backend,
                                     "labels": m.labels, "top": names,
                                     "outputs": outputs.tolist(),
                                     "probabilities": None if probs is None else
                                     probs.astype(np.float32).tolist()}) + "\n")
        return
    _print_frames(outputs, probs, labels, names, top)


def _run_audio(m, path: Path, wav: Path, as_json: bool) -> None:
    """One WAV file through the model's audio front-end and the model, as a stream from a fresh
    state: the class after the last frame and its probability."""
    import numpy as np

    from .._io import check_regular_file
    from ..data.wav import read_wav

    fe = m.info.frontend.audio
    if fe is None:
        raise UsageError(f"{path}: the model reads frames of {m.input_size} features, not audio "
                         f"(its config records no audio front-end): stream frames with --input "
                         f"FILE.npy, or train a model on WAV files (slimedge train --data DIR)")
    check_regular_file(wav, "WAV file")  # a FIFO would block forever
    samples, rate = read_wav(wav, sample_rate=fe.sample_rate)
    outputs = m.audio_stream().push(samples)
    if not len(outputs):
        raise UsageError(f"{wav}: {len(samples)} samples, shorter than one frame of the model's "
                         f"front-end ({fe.window_samples} samples)")
    labels = m.labels or [str(k) for k in range(m.output_size)]
    p = _softmax(outputs[-1].astype(np.float64))
    k = int(p.argmax())
    result = {"file": str(wav), "model": str(path), "backend": m.backend, "label": labels[k],
              "probability": float(p[k]), "frames": len(outputs),
              "seconds": len(samples) / rate, "labels": labels,
              "probabilities": p.astype(np.float32).tolist()}
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    sys.stdout.write(f"{labels[k]}  (probability {p[k]:.3f}; {wav.name}, "
                     f"{result['seconds']:.2f} s, {len(outputs)} frames)\n")


def _print_frames(outputs, probs, labels, names, top) -> None:
    """One line per frame under a header: the top class, its probability and every class's
    (a classifier's softmax), or the raw outputs (a model without a head)."""
    width = max(5, *(len(str(x)) for x in labels[:SHOWN_CLASSES]))
    if probs is None:  # no head: y is the top layer's h
        k = min(len(labels), 8)
        header = "frame  " + " ".join(f"{'y' + str(j):>8s}" for j in range(k))
        rows = (" ".join(f"{v:8.4f}" for v in out[:k]) + (" ..." if out.size > k else "")
                for out in outputs)
        lines = [f"{t:5d}  {r}" for t, r in enumerate(rows)]
    else:
        many = len(labels) > SHOWN_CLASSES
        shown = [] if many else labels
        header = (f"frame  {'top':>{width}s}  p(top)  "
                  + ("(probabilities of the 3 likeliest)" if many else
                     " ".join(f"{str(x)[:width]:>{width}s}" for x in shown)))
        lines = []
        for t, (name, p, k) in enumerate(zip(names, probs, top)):
            if many:
                best = p.argsort()[::-1][:3]
                rest = "  ".join(f"{labels[j]} {p[j]:.3f}" for j in best)
            else:
                rest = " ".join(f"{v:>{width}.3f}" for v in p)
            lines.append(f"{t:5d}  {str(name)[:width]:>{width}s}  {p[k]:6.3f}  {rest}")
    sys.stdout.write(header.rstrip() + "\n" + "".join(line + "\n" for line in lines))




# ---- listen (a continuous model's events on a long signal) ---------------------------------------
LISTEN_CHUNK = 4096  # samples read and pushed at a time (stdin: as they arrive)


from ..runtime.decoder import DEFAULTS as _DECODER  # noqa: E402  (the help's defaults)


@app.command("listen")
@user_errors
def listen_cmd(
    model: Path = typer.Argument(..., help="A continuous model (a checkpoint or a C export with an audio front-end and a background class), or fsdd_stream: the shipped one."),
    source: str = typer.Argument(..., metavar="FILE.wav|-", help="A WAV file at the model's rate, or - for raw 16-bit little-endian mono PCM on stdin at the model's rate."),
    window_ms: Optional[float] = typer.Option(None, "--window-ms", show_default=False, help=f"The moving average's length [default: the model's decoder section, else {_DECODER['window_ms']:g}]."),
    threshold: Optional[float] = typer.Option(None, "--threshold", show_default=False, help=f"The average posterior that makes a class a candidate [default: the model's, else {_DECODER['threshold']:g}]."),
    min_count: Optional[int] = typer.Option(None, "--min-count", show_default=False, help=f"Frames in a row a candidate must lead before it fires [default: the model's, else {_DECODER['min_count']}]."),
    refractory_ms: Optional[float] = typer.Option(None, "--refractory-ms", show_default=False, help=f"No event within this time after the previous one [default: the model's, else {_DECODER['refractory_ms']:g}]."),
    arithmetic: Optional[str] = typer.Option(None, "--arithmetic", metavar="int|float", show_default=False, help=f"The decoder's arithmetic [default: the model's, else {_DECODER['arithmetic']}]."),
    backend: str = typer.Option("auto", "--backend", "-b", metavar=_choices(RUN_BACKENDS), help="The runtime backend."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines, one per event."),
) -> None:
    """Events on a long signal: one line per digit (or command) a continuous model detects, with
    its time, as the samples arrive."""
    import numpy as np

    from .._io import check_regular_file
    from ..data.wav import read_wav
    from ..zoo import resolve

    m = _load_runtime_model(resolve(model), backend, None)
    s = m.listen(window_ms=window_ms, threshold=threshold, min_count=min_count,
                 refractory_ms=refractory_ms, arithmetic=arithmetic)
    if source == "-":
        chunks = _stdin_pcm()
    else:
        check_regular_file(Path(source), "WAV file")
        samples, _ = read_wav(source, sample_rate=s.sample_rate)
        chunks = (samples[k:k + LISTEN_CHUNK] for k in range(0, len(samples), LISTEN_CHUNK))
    for chunk in chunks:
        for e in s.push(np.asarray(chunk)):
            if as_json:
                sys.stdout.write(json.dumps(e.as_dict()) + "\n")
            else:
                sys.stdout.write(f"{e.time:9.3f}  {e.label}  (start {e.start:.3f} s, score "
                                 f"{e.score:.3f})\n")
            sys.stdout.flush()


def _stdin_pcm():
    """Raw int16 little-endian PCM from stdin, chunk by chunk as it arrives (an odd byte waits
    for its pair)."""
    import numpy as np
    stream, rest = sys.stdin.buffer, b""
    while True:
        data = stream.read1(2 * LISTEN_CHUNK) if hasattr(stream, "read1") else stream.read(2 * LISTEN_CHUNK)
        if not data:
            break
        data = rest + data
        cut = len(data) - len(data) % 2
        rest = data[cut:]
        if cut:
            yield np.frombuffer(data[:cut], "<i2").astype(np.int16)
