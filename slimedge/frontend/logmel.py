"""The float log-mel / MFCC audio front-end: windowed power spectrum, mel filterbank, log, DCT.

Spec (``{"kind": "logmel", ...}``; every field optional, defaults in brackets):
``sample_rate`` [8000] Hz; ``window_ms`` [25] and ``hop_ms`` [10] (samples =
``ms * sample_rate // 1000``); ``fft_size`` [0: the next power of two >= the window];
``window`` ["hann": periodic Hann, or "hamming", "rect"]; ``mel_channels`` [40];
``f_min`` [60] and ``f_max`` [3800] Hz; ``log_floor`` [1e-6]; ``dct`` [0: log-mel out; k > 0:
the first k orthonormal DCT-II coefficients (MFCCs)].

Per frame of ``window`` samples (float, int16 PCM scaled by 1/32768), with no look-ahead and no
statistics over a clip: ``P = |rfft(x * w, fft_size)|**2`` (bins k at ``k * sample_rate /
fft_size`` Hz), mel energies ``E = P @ F`` with HTK mel triangles (``2595 log10(1 + f / 700)``,
``mel_channels + 2`` edges equally spaced in mel between ``f_min`` and ``f_max``, peak 1, no
area normalisation), ``log(max(E, log_floor))``, then optionally ``@ DCT``. Frame t covers
samples [t * hop, t * hop + window): the first after ``window`` samples, then one per hop.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .audio_spec import AudioSpec

KIND = "logmel"
WINDOWS = ("hann", "hamming", "rect")


def mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


@dataclass(frozen=True)
class LogMel(AudioSpec):
    sample_rate: int = 8000
    window_ms: float = 25
    hop_ms: float = 10
    fft_size: int = 0
    window: str = "hann"
    mel_channels: int = 40
    f_min: float = 60.0
    f_max: float = 3800.0
    log_floor: float = 1e-6
    dct: int = 0
    kind = KIND

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.mel_channels < 1 or self.window_samples < 2:
            raise ValueError(f"{KIND}: sample_rate, mel_channels and the window must be positive")
        if not 1 <= self.hop_samples <= self.window_samples:
            raise ValueError(f"{KIND}: hop_ms must give 1..window samples")
        if self.fft_size and self.fft_size < self.window_samples:
            raise ValueError(f"{KIND}: fft_size {self.fft_size} is shorter than the window "
                             f"({self.window_samples} samples)")
        if self.window not in WINDOWS:
            raise ValueError(f"{KIND}: window must be one of {WINDOWS}, got {self.window!r}")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(f"{KIND}: need 0 <= f_min < f_max <= sample_rate / 2")
        if not self.log_floor > 0:
            raise ValueError(f"{KIND}: log_floor must be positive")
        if not 0 <= self.dct <= self.mel_channels:
            raise ValueError(f"{KIND}: dct must lie in 0..mel_channels")

    @property
    def description(self) -> str:
        what = f"{self.dct} MFCCs" if self.dct else f"{self.mel_channels} log-mel energies"
        return f"{what} ({self.window_ms} ms {self.window} window, {self.hop_ms} ms hop)"

    # ---- sizes (to_config, from_config, window/hop in samples: AudioSpec) --------------------
    @property
    def n_fft(self) -> int:
        n = self.fft_size or 1 << (self.window_samples - 1).bit_length()
        return int(n)

    @property
    def output_size(self) -> int:
        return self.dct or self.mel_channels

    @property
    def state_size(self) -> int:
        """Numbers kept between pushes: the window overlap (samples)."""
        return self.window_samples - self.hop_samples

    # ---- the constants -------------------------------------------------------------------------
    @cached_property
    def tables(self) -> dict:
        n, size = self.n_fft, self.window_samples
        k = np.arange(size)
        w = {"hann": 0.5 - 0.5 * np.cos(2 * np.pi * k / size),
             "hamming": 0.54 - 0.46 * np.cos(2 * np.pi * k / size),
             "rect": np.ones(size)}[self.window]
        hz = np.arange(n // 2 + 1) * self.sample_rate / n
        edges = mel_to_hz(np.linspace(mel(self.f_min), mel(self.f_max), self.mel_channels + 2))
        lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
        fb = np.maximum(0.0, np.minimum((hz - lo) / (mid - lo), (hi - hz) / (hi - mid))).T
        out = {"window": w, "filterbank": fb}
        if self.dct:
            M = self.mel_channels
            j = np.arange(M)
            d = np.cos(np.pi / M * (j[None, :] + 0.5) * np.arange(self.dct)[:, None])
            d *= np.sqrt(2.0 / M)
            d[0] /= np.sqrt(2.0)
            out["dct"] = d.T  # (M, k)
        return out

    # ---- the computation -----------------------------------------------------------------------
    def initial_state(self) -> None:
        return None

    def process(self, frames: np.ndarray, state=None,
                compiled: bool = False) -> tuple[np.ndarray, None]:
        """float64 (T, window) samples -> (T, output_size) features (no state besides the
        overlap, which the stream keeps; ``compiled`` changes nothing here)."""
        t = self.tables
        x = np.asarray(frames, np.float64) * t["window"]
        # frame by frame and without BLAS, so a frame's value does not depend on how many
        # frames one push brought (a batched FFT or matmul may round differently)
        spec = np.stack([np.fft.rfft(row, self.n_fft) for row in x]) if len(x) else \
            np.zeros((0, self.n_fft // 2 + 1), complex)
        power = spec.real ** 2 + spec.imag ** 2
        y = np.log(np.maximum(np.einsum("tk,kc->tc", power, t["filterbank"]), self.log_floor))
        if self.dct:
            y = np.einsum("tc,cd->td", y, t["dct"])
        return y, None


__all__ = ["LogMel", "KIND", "mel", "mel_to_hz"]
