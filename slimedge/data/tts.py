"""Synthetic spoken digits from text-to-speech engines: more voices to train on.

A classifier trained on a handful of speakers learns their voices along with the words, and loses
a fifth of its accuracy on a voice it never heard (``benchmarks/audio.py``'s leave-one-speaker-out
rows). Synthetic voices are cheap extra speakers: :func:`synthesize` writes every word of a
vocabulary (the digits by default) in many voices of two engines, as a folder for
``slimedge train --train-extra`` (training split only: they never enter validation or test, so
every accuracy is still measured on real voices).

Engines (Debian packages ``espeak-ng`` and ``flite``, run as programs; nothing in Python speaks):

* espeak-ng, formant synthesis: every accent of :data:`ESPEAK_ACCENTS` with every voice variant
  of :data:`ESPEAK_VARIANTS`, ``renditions`` times, each with a pitch (0-99) and a speed (words per
  minute) drawn from the seed;
* flite, diphone synthesis: the voices of :data:`FLITE_VOICES`, each at the duration stretches of
  :data:`FLITE_STRETCHES` (slower and faster speech).

Each (engine, voice, rendition) is one speaker. Its clips are resampled to ``rate`` (the FFT
resampler of :func:`slimedge.data.streams.resample`), trimmed to the speech (the first and last
10 ms windows within 40 dB of the loudest, with 10 ms kept either side: recorded clips such as
FSDD's are cut as tightly) and peak-normalised to -6 dBFS, then written as int16 WAVs named
``{label}_{speaker}_{rendition}.wav`` (speaker names have no ``_``). ``tts.json`` beside them
records the engines' versions, the seed and every voice's settings: another engine version can
make other samples, so a training run that used the folder names it.

The folder is built under a temporary name and renamed when complete; an existing one is never
written over.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .._io import atomic_dir
from ..errors import DataError, UsageError
from ..frontend.audio import as_pcm
from .streams import resample
from .wav import read_wav, write_wav

DIGITS = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five",
          "6": "six", "7": "seven", "8": "eight", "9": "nine"}
"""The default vocabulary: FSDD's labels and the words said for them."""
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                  "en-gb-x-gbcwmd", "en-029")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "klatt",
                   "klatt2", "klatt3", "croak", "Andy", "Mike", "david", "john", "paul")
ESPEAK_PITCH = (20, 80)  # espeak-ng -p, drawn uniformly per voice
ESPEAK_SPEED = (100, 200)  # espeak-ng -s (words per minute), drawn uniformly per voice
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
FLITE_STRETCHES = (0.8, 1.0, 1.3)
ENGINES = ("espeak-ng", "flite")
TRIM_DB = 40.0  # the speech: 10 ms windows within this many dB of the clip's loudest
PEAK = 0.5  # -6 dBFS
MANIFEST = "tts.json"
SPEAK_TIMEOUT_S = 60  # one word; the engines take well under a second


def voices(renditions: int = 1, seed: int = 0,
           engines: Sequence[str] = ENGINES) -> list[dict]:
    """Every voice :func:`synthesize` speaks with: ``{"speaker", "engine", "command", ...}``,
    the command's word left out. Pitch and speed come from ``seed``."""
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown or not engines:
        raise UsageError((f"unknown text-to-speech engines {unknown}" if unknown else
                          "no text-to-speech engine given") + f"; valid: {', '.join(ENGINES)}")
    if renditions < 1:
        raise UsageError(f"renditions must be at least 1, got {renditions}")
    rng = np.random.default_rng([int(seed), 0x775])
    out = []
    if "espeak-ng" in engines:
        for accent in ESPEAK_ACCENTS:
            for variant in ESPEAK_VARIANTS:
                for r in range(renditions):
                    pitch = int(rng.integers(ESPEAK_PITCH[0], ESPEAK_PITCH[1] + 1))
                    speed = int(rng.integers(ESPEAK_SPEED[0], ESPEAK_SPEED[1] + 1))
                    out.append({"speaker": f"es-{accent}-{variant.lower()}-{r}",
                                "engine": "espeak-ng", "rendition": r, "pitch": pitch,
                                "speed": speed,
                                "command": ["espeak-ng", "-v", f"{accent}+{variant}", "-p",
                                            str(pitch), "-s", str(speed)]})
    if "flite" in engines:
        for voice in FLITE_VOICES:
            for r, stretch in enumerate(FLITE_STRETCHES):
                out.append({"speaker": f"fl-{voice}-{r}", "engine": "flite", "rendition": r,
                            "stretch": stretch,
                            "command": ["flite", "-voice", voice, "--setf",
                                        f"duration_stretch={stretch}"]})
    return out


def engine_versions(engines: Sequence[str] = ENGINES) -> dict[str, str]:
    """Each engine's version line; UsageError naming the Debian package of a missing one."""
    missing = [e for e in engines if shutil.which(e) is None]
    if missing:
        raise UsageError(f"text-to-speech engines not installed: {', '.join(missing)} (Debian: "
                         f"apt-get install {' '.join(missing)})")
    out = {}
    for e in engines:
        lines = [ln.strip() for ln in subprocess.run([e, "--version"], capture_output=True,
                                                     text=True).stdout.splitlines() if ln.strip()]
        line = next((ln for ln in lines if "version" in ln.lower()),  # flite's second line
                    lines[0] if lines else "unknown")
        out[e] = line.split("  ")[0]  # espeak-ng's: "... 1.51  Data at: /usr/lib/..."
    return out


def speak(voice: Mapping, text: str, rate: int, workdir: Path) -> np.ndarray:
    """``text`` in ``voice`` as float64 samples at ``rate`` Hz, trimmed and normalised."""
    wav = workdir / "say.wav"
    wav.unlink(missing_ok=True)  # never the last clip again
    cmd = list(voice["command"])
    cmd += ["-w", str(wav), text] if voice["engine"] == "espeak-ng" else ["-t", text, "-o", str(wav)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=SPEAK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise DataError(f"{voice['engine']} took over {SPEAK_TIMEOUT_S} s on {text!r} "
                        f"({' '.join(cmd)})") from None
    if done.returncode != 0 or not wav.exists():
        raise DataError(f"{voice['engine']} failed on {text!r} ({' '.join(cmd)}): "
                        f"{done.stderr.strip() or done.returncode}")
    x, got = read_wav(wav)
    return normalize(trim(resample(as_pcm(x, integer=False), got, rate), rate))


def trim(x: np.ndarray, rate: int) -> np.ndarray:
    """``x`` cut to its speech: from the first to the last 10 ms window within :data:`TRIM_DB`
    of the loudest one, 10 ms kept either side."""
    w = max(1, rate // 100)
    n = len(x) // w
    if n == 0:
        return x
    energy = (x[:n * w].reshape(n, w) ** 2).mean(axis=1)
    loud = np.flatnonzero(energy >= energy.max() * 10.0 ** (-TRIM_DB / 10.0))
    return x[max(0, (loud[0] - 1) * w):min(len(x), (loud[-1] + 2) * w)]


def normalize(x: np.ndarray) -> np.ndarray:
    """``x`` scaled to a peak of :data:`PEAK` (silence left as it is)."""
    peak = float(np.abs(x).max(initial=0.0))
    return x * (PEAK / peak) if peak > 0 else x


def synthesize(out: str | Path, *, words: Mapping[str, str] = DIGITS, rate: int = 8000,
               renditions: int = 1, seed: int = 0, engines: Sequence[str] = ENGINES) -> dict:
    """Write every word of ``words`` (label -> text) in every voice of :func:`voices` to the new
    folder ``out`` (see the module's docstring); return its ``tts.json`` record."""
    out = Path(out)
    if out.exists():  # before any engine runs (atomic_dir checks again when it starts)
        raise UsageError(f"{out}: already exists; give a new folder")
    for label in words:
        if not label or "_" in label or "/" in label:
            raise UsageError(f"label {label!r}: labels name the files, so no '_' or '/'")
    if not 1000 <= int(rate) <= 192000:
        raise UsageError(f"sample rate must lie in 1000..192000 Hz, got {rate}")
    engines = list(dict.fromkeys(engines))  # each once
    table = voices(renditions, seed, engines)  # checks the engines' names first
    versions = engine_versions(engines)
    record = {"engines": versions, "seed": int(seed), "rate": int(rate),
              "renditions": int(renditions), "words": dict(words),
              "clips": len(table) * len(words),
              "voices": table}
    with atomic_dir(out) as tmp, tempfile.TemporaryDirectory() as work:
        for voice in table:
            for label, text in words.items():
                x = speak(voice, text, rate, Path(work))
                write_wav(tmp / f"{label}_{voice['speaker']}_{voice['rendition']}.wav",
                          as_pcm(x, integer=True), rate)
        (tmp / MANIFEST).write_text(json.dumps(record, indent=1) + "\n")
    return record


__all__ = ["DIGITS", "ENGINES", "ESPEAK_ACCENTS", "ESPEAK_VARIANTS", "FLITE_VOICES",
           "FLITE_STRETCHES", "voices", "engine_versions", "speak", "trim", "normalize",
           "synthesize"]
