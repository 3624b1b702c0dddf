"""The integer audio front-end in the style of TensorFlow Lite Micro's microfrontend.

Spec (``{"kind": "microfrontend", ...}``, every field optional; defaults are the microfrontend's
16 kHz configuration that ``pymicro-features`` runs)::

    sample_rate 16000   window_ms 30   hop_ms 10   channels 40   lower_hz 125   upper_hz 7500
    smoothing_bits 10   even_smoothing 0.025   odd_smoothing 0.06   min_signal_remaining 0.05
    pcan true   pcan_strength 0.95   pcan_offset 80   gain_bits 21   log true   scale_shift 6

Per hop of int16 PCM, with no look-ahead (integer arithmetic throughout; tables from
:mod:`.micro_tables`):

1. window: the last ``window`` samples times the Q12 Hann window (``>> 12``), shifted left so
   the largest magnitude uses 15 bits (``shift = 15 - bitlength(max |w|)``);
2. KISS FFT in 16-bit fixed point (:mod:`.kissfft`), energy re**2 + im**2 per bin;
3. filterbank: Q12 triangular weights summed in 64 bits, rounded integer square root, ``>> shift``;
4. noise reduction: a per-channel estimate (``smoothing_bits`` fraction bits) smoothed with
   ``even/odd_smoothing`` (Q14), subtracted, floored at ``min_signal_remaining`` of the signal;
5. PCAN: gain ``2**gain_bits (estimate + offset) ** -strength`` from a lookup table, then a
   shrink (quadratic below SNR 2, linear above);
6. log: ``round(2**scale_shift ln(x << 3))`` by the integer log2 table; uint16 output.

:meth:`Micro.reference` is that algorithm (integers, in NumPy); :meth:`Micro.describe_float` is
the float64 quantities it approximates (same steps with real numbers), for checking it. State
between pushes: the last ``window - hop`` samples and the noise estimate per channel.
Frames are uint16 as float64 (multiply by ``FEATURE_SCALE`` for pymicro-features' units).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from . import kissfft, micro_fast
from . import micro_tables as mt
from .audio_spec import AudioSpec

KIND = "microfrontend"
FEATURE_SCALE = 0.0390625  # pymicro-features' float output = uint16 value * 1/25.6


def _bitlength(x: np.ndarray) -> np.ndarray:
    """``MostSignificantBit32``: the bit length of each non-negative value (0 for 0)."""
    x = np.asarray(x, np.uint64)
    out = np.zeros(x.shape, np.int64)
    for b in (32, 16, 8, 4, 2, 1):
        big = x >= (np.uint64(1) << np.uint64(b))
        out += np.where(big, b, 0)
        x = np.where(big, x >> np.uint64(b), x)
    return out + (x > 0)


def _rounded_sqrt(n: np.ndarray) -> np.ndarray:
    """TFLM's ``Sqrt64``/``Sqrt32``: floor sqrt, +1 when the remainder exceeds the root (not
    past 0xFFFF for a value under 2**32, 0xFFFFFFFF above)."""
    n = np.asarray(n, np.uint64)
    r = np.floor(np.sqrt(n.astype(np.float64))).astype(np.uint64)
    r = np.where(r * r > n, r - np.uint64(1), r)
    r = np.where((r + np.uint64(1)) * (r + np.uint64(1)) <= n, r + np.uint64(1), r)
    cap = np.where(n >> np.uint64(32) == 0, np.uint64(0xFFFF), np.uint64(0xFFFFFFFF))
    return np.where((n - r * r > r) & (r != cap), r + np.uint64(1), r)


@dataclass(frozen=True, eq=True)
class Micro(AudioSpec):
    sample_rate: int = 16000
    window_ms: int = 30
    hop_ms: int = 10
    channels: int = 40
    lower_hz: float = 125.0
    upper_hz: float = 7500.0
    smoothing_bits: int = 10
    even_smoothing: float = 0.025
    odd_smoothing: float = 0.06
    min_signal_remaining: float = 0.05
    pcan: bool = True
    pcan_strength: float = 0.95
    pcan_offset: float = 80.0
    gain_bits: int = 21
    log: bool = True
    scale_shift: int = 6
    kind = KIND

    @property
    def reduces_noise(self) -> bool:
        """Whether the noise estimate is subtracted (``min_signal_remaining`` below 1); at 1 the
        estimate only drives PCAN's gain."""
        return self.min_signal_remaining < 1

    @property
    def description(self) -> str:
        """The stages this configuration runs, in a few words."""
        stages = ["fixed-point FFT", "filterbank",
                  "noise reduction" if self.reduces_noise else "noise estimate, no subtraction"]
        stages += ["PCAN"] * self.pcan + ["log"] * self.log
        return f"integer microfrontend ({', '.join(stages)})"

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.window_ms <= 0 or self.hop_ms <= 0 or self.channels < 1:
            raise ValueError(f"{KIND}: sample_rate, window_ms, hop_ms, channels must be positive")
        if self.hop_samples > self.window_samples or self.hop_samples < 1:
            raise ValueError(f"{KIND}: hop_ms must give 1..window samples")
        if not 0 <= self.lower_hz < self.upper_hz:
            raise ValueError(f"{KIND}: need 0 <= lower_hz < upper_hz")
        for name in ("even_smoothing", "odd_smoothing", "min_signal_remaining"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{KIND}: {name} must lie in [0, 1]")

    # ---- sizes (to_config, from_config, window/hop in samples: AudioSpec) --------------------
    @property
    def fft_size(self) -> int:
        n = 1
        while n < self.window_samples:
            n <<= 1
        return n

    @property
    def output_size(self) -> int:
        return self.channels

    @property
    def state_size(self) -> int:
        """Numbers kept between pushes: window overlap samples and the noise estimates."""
        return self.window_samples - self.hop_samples + self.channels

    @property
    def correction_bits(self) -> int:
        return int(self.fft_size).bit_length() - 1 - mt.FILTERBANK_BITS // 2

    # ---- the tables ----------------------------------------------------------------------------
    @cached_property
    def tables(self) -> dict:
        fb = mt.filterbank(self.channels, self.lower_hz, self.upper_hz, self.sample_rate,
                           self.fft_size // 2 + 1)
        # dense (bins, channels) weights: band c's weights go to channel c - 1 (c >= 1) and its
        # unweights to channel c (the last band's to none): channel j peaks at band j's centre
        dense = np.zeros((self.fft_size // 2 + 1, self.channels), np.uint64)
        for c in range(self.channels + 1):
            bins = fb.starts[c] + np.arange(len(fb.weights[c]))
            if c >= 1:
                dense[bins, c - 1] = fb.weights[c]
            if c < self.channels:
                dense[bins, c] = fb.unweights[c]
        input_bits = self.smoothing_bits - self.correction_bits
        return {"window": mt.window(self.window_samples), "filterbank": fb, "dense": dense,
                "gain_lut": mt.gain_lut(self.pcan_strength, self.pcan_offset, self.gain_bits,
                                        input_bits),
                "log_lut": mt.log_lut(),
                "even": mt.smoothing_q14(self.even_smoothing),
                "odd": mt.smoothing_q14(self.odd_smoothing),
                "min_remaining": mt.smoothing_q14(self.min_signal_remaining)}

    # ---- the integer algorithm -----------------------------------------------------------------
    def initial_state(self) -> np.ndarray:
        """The noise estimate per channel (uint32 values in int64)."""
        return np.zeros(self.channels, np.int64)

    def spectrum_energy(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Steps 1-3 for int16 frames (T, window): filterbank outputs (T, channels) and shifts."""
        t = self.tables
        w = (np.asarray(frames, np.int64) * t["window"]) >> mt.WINDOW_BITS
        mag = np.where(w == -32768, 0, np.abs(w)).max(axis=1, initial=0)
        shift = 15 - _bitlength(mag)
        x = np.zeros((len(w), self.fft_size), np.int64)
        x[:, :w.shape[1]] = kissfft.wrap16((w & 0xFFFF) << shift[:, None])
        re, im = kissfft.rfft(x)
        energy = ((re * re + im * im) & 0xFFFFFFFF).astype(np.uint64)
        energy = np.where(energy >= 2**31, energy | np.uint64(0xFFFFFFFF00000000), energy)
        fb = t["filterbank"]
        energy[:, :fb.start_index] = 0
        energy[:, fb.end_index:] = 0
        acc = (energy[:, :, None] * t["dense"][None]).sum(axis=1, dtype=np.uint64)
        return (_rounded_sqrt(acc) >> shift[:, None].astype(np.uint64)).astype(np.int64), shift

    def step(self, signal: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Steps 4-6 for one frame's filterbank output (channels,): (features, new estimate)."""
        out, est = self.steps(np.asarray(signal)[None], estimate)
        return out[0], est

    def steps(self, signal: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Steps 4-6 for frames' filterbank outputs (T, channels) from the noise ``estimate``
        before them: (features (T, channels), the estimate after the last frame). Only the
        estimate's recursion runs frame by frame; the rest is elementwise over all frames."""
        t, sb = self.tables, self.smoothing_bits
        s = np.asarray(signal, np.int64) & 0xFFFFFFFF
        smooth = np.where(np.arange(self.channels) % 2 == 0, t["even"], t["odd"])
        keep = (1 << mt.NOISE_REDUCTION_BITS) - smooth
        up = (s << sb) & 0xFFFFFFFF
        pushed = up * smooth
        est = np.empty_like(s)
        e = np.asarray(estimate, np.int64)
        for k in range(len(s)):
            e = ((pushed[k] + e * keep) >> mt.NOISE_REDUCTION_BITS) & 0xFFFFFFFF
            est[k] = e
        floor_ = (s * t["min_remaining"]) >> mt.NOISE_REDUCTION_BITS
        sub = (up - np.minimum(est, up)) >> sb
        s = np.maximum(sub, floor_)
        if self.pcan:
            gain = (self._wide_dynamic(est) & 0xFFFFFFFF).astype(np.uint64)
            shift = np.uint64(self.gain_bits - self.correction_bits - mt.PCAN_SNR_BITS)
            snr = ((s.astype(np.uint64) * gain) >> shift).astype(np.int64) & 0xFFFFFFFF
            small = snr < (2 << mt.PCAN_SNR_BITS)
            s = np.where(small, ((snr * snr) & 0xFFFFFFFF)
                         >> (2 + 2 * mt.PCAN_SNR_BITS - mt.PCAN_OUTPUT_BITS),
                         ((snr >> (mt.PCAN_SNR_BITS - mt.PCAN_OUTPUT_BITS))
                          - (1 << mt.PCAN_OUTPUT_BITS)) & 0xFFFFFFFF)
        if self.log:
            s = self._log(s)
        return np.minimum(s, 0xFFFF), (est[-1] if len(est) else e)

    def _wide_dynamic(self, x: np.ndarray) -> np.ndarray:
        lut = self.tables["gain_lut"]
        interval = _bitlength(x)
        base = np.maximum(4 * interval - 6, 0)
        frac = np.where(interval < 11, x << np.maximum(11 - interval, 0),
                        x >> np.maximum(interval - 11, 0)) & 0x3FF
        r = (lut[np.minimum(base + 2, len(lut) - 1)] * frac) >> 5
        r = kissfft.wrap32(r + lut[np.minimum(base + 1, len(lut) - 1)] * 32)
        r = kissfft.wrap32(r * frac)
        r = (kissfft.wrap32(r + (1 << 14)) >> 15) + lut[base]
        return np.where(x <= 2, lut[np.minimum(x, 2)], kissfft.wrap16(r))

    def _log(self, v: np.ndarray) -> np.ndarray:
        cb, L, S = self.correction_bits, mt.LOG_SCALE_LOG2, mt.LOG_SEGMENTS_LOG2
        v = (v << cb) & 0xFFFFFFFF if cb >= 0 else v >> -cb
        lut = self.tables["log_lut"]
        safe = np.maximum(v, 2)
        integer = _bitlength(safe) - 1
        frac = safe - (np.int64(1) << integer)
        frac = np.where(integer < L, frac << np.maximum(L - integer, 0),
                        frac >> np.maximum(integer - L, 0))
        seg = frac >> (L - S)
        c0, c1 = lut[seg], lut[seg + 1]
        frac = frac + c0 + (((c1 - c0) * (frac - seg * (1 << (L - S)))) >> L)
        log2 = ((integer << L) + frac) & 0xFFFFFFFF
        half = 1 << (L - 1)
        loge = ((mt.LOG_COEFF * log2 + half) >> L) & 0xFFFFFFFF
        out = ((((loge << self.scale_shift) & 0xFFFFFFFF) + half) >> L) & 0xFFFFFFFF
        return np.where(v > 1, out, 0)

    def process(self, frames: np.ndarray, estimate: np.ndarray,
                compiled: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Every step for int16 frames (T, window) from ``estimate``: (T, channels) int64 and the
        estimate after the last frame. ``compiled``: by :mod:`.micro_fast` (the same values,
        compiled once per process) where numba is installed; else :meth:`process_numpy`."""
        if compiled and len(frames) and micro_fast.available():
            return micro_fast.process(self, frames, estimate)
        return self.process_numpy(frames, estimate)

    def process_numpy(self, frames: np.ndarray,
                      estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`process` in NumPy, every frame's steps vectorised over the frames."""
        energy, _ = self.spectrum_energy(frames)
        return self.steps(energy, estimate)

    # ---- the float description -----------------------------------------------------------------
    def describe_float(self, frames: np.ndarray) -> np.ndarray:
        """float64 per step, fresh state: what the integer algorithm computes in fixed point
        (exact Hann, float FFT / fft_size, real weights, real noise estimate, PCAN gain and
        shrink, 2**scale_shift ln). (T, window) int16 frames -> (T, channels)."""
        n, size = self.fft_size, self.window_samples
        hann = 0.5 - 0.5 * np.cos(2 * np.pi * (np.arange(size) + 0.5) / size)
        spec = np.fft.rfft(np.asarray(frames, np.float64) * hann, n) / n
        fb = self.tables["filterbank"]
        mel = lambda f: 1127.0 * np.log1p(f / 700.0)  # noqa: E731
        edges = mel(self.lower_hz) + (mel(self.upper_hz) - mel(self.lower_hz)) \
            * np.arange(self.channels + 2) / (self.channels + 1)
        bins = np.arange(n // 2 + 1) * (0.5 * self.sample_rate / (n // 2))
        m = mel(bins)
        W = np.zeros((n // 2 + 1, self.channels))
        for c in range(self.channels):
            up = (m - edges[c]) / (edges[c + 1] - edges[c])
            down = (edges[c + 2] - m) / (edges[c + 2] - edges[c + 1])
            W[:, c] = np.clip(np.minimum(up, down), 0, None)
        W[:fb.start_index] = 0
        W[fb.end_index:] = 0
        s = np.sqrt((np.abs(spec) ** 2) @ W) * 2 ** (mt.FILTERBANK_BITS / 2)
        smooth = np.where(np.arange(self.channels) % 2 == 0, self.even_smoothing,
                          self.odd_smoothing)
        est, out = np.zeros(self.channels), np.empty_like(s)
        scale = 2.0 ** self.smoothing_bits
        for k, x in enumerate(s):
            est = x * scale * smooth + est * (1 - smooth)
            y = np.maximum(x - np.minimum(est / scale, x), x * self.min_signal_remaining)
            if self.pcan:
                gain = 2.0 ** self.gain_bits * (est / 2 ** (self.smoothing_bits
                                                             - self.correction_bits)
                                                 + self.pcan_offset) ** -self.pcan_strength
                u = y * gain / 2.0 ** (self.gain_bits - self.correction_bits)
                y = np.where(u < 2, u * u / 4, u - 1) * 2 ** mt.PCAN_OUTPUT_BITS
            if self.log:
                v = y * 2 ** self.correction_bits
                y = np.where(v > 1, np.log(np.maximum(v, 1)) * 2 ** self.scale_shift, 0)
            out[k] = np.minimum(y, 0xFFFF)
        return out


__all__ = ["Micro", "KIND", "FEATURE_SCALE"]
