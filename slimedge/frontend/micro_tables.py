"""The microfrontend's integer tables, computed once from its spec without libm.

TensorFlow Lite Micro builds these at start-up (``*_util.c``) with float32/float64 arithmetic and
libm; here the same expressions run in NumPy float32/float64 (IEEE, the same on every platform)
with the libm calls replaced by correctly rounded ones (:mod:`.exact`), so every machine, and the
C code that embeds them as constants, gets the same integers. Tables (all Python ints / int64):

* ``window``: Hann in Q12, ``floor(4096 * (0.5 - 0.5 cos(2 pi (i + 0.5) / size)) + 0.5)``.

Where the float steps are float32 and where float64 follows the microfrontend as compiled in
``pymicro-features`` 2.0.2 (found by comparing its tables: a float32 cosf and log1pf).
* ``filterbank``: for each of ``channels + 1`` bands its first FFT bin, its bins' weights and
  unweights (Q12, ``weight + unweight ~ 4096``): band c's weighted energies go to channel c, its
  unweighted ones to channel c - 1 (triangles on the mel scale ``1127 ln(1 + f / 700)``).
* ``gain_lut``: PCAN's gain 2**gain_bits * (x + offset) ** -strength, as TFLM's 125-entry
  piecewise-quadratic table over the bit length of the noise estimate.
* ``log_lut``: the 130-entry log2 correction table (round(65536 (log2(1 + i/128) - i/128))).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext
from math import floor

import numpy as np

from . import exact

WINDOW_BITS = 12
FILTERBANK_BITS = 12
NOISE_REDUCTION_BITS = 14
PCAN_SNR_BITS = 12
PCAN_OUTPUT_BITS = 6
WIDE_DYNAMIC_BITS = 32
LOG_SEGMENTS_LOG2 = 7
LOG_SCALE_LOG2 = 16
LOG_COEFF = 45426  # round(2**16 * ln 2)

f32 = np.float32


def window(size: int) -> np.ndarray:
    """The Hann window in Q12, evaluated in float32 like the microfrontend as built in
    ``pymicro-features`` (cosf of a float32 phase; a float64 cos moves one coefficient of the
    480-point window by one)."""
    arg = f32(np.float64(np.pi) * 2.0 / np.float64(f32(size)))
    out = np.empty(size, np.int64)
    for i in range(size):
        c = f32(exact.cosf(f32(arg * f32(i + 0.5))))
        value = f32(f32(0.5) - f32(0.5) * c)
        out[i] = floor(np.float64(value * f32(1 << WINDOW_BITS)) + 0.5)
    return out


def _mel(freq) -> np.float32:
    """``FreqToMel(float)`` in float32 throughout: 1127 * log1pf(freq / 700), which is what the
    microfrontend as built in ``pymicro-features`` computes (a float64 log1p moves three
    filterbank weights by one)."""
    return f32(f32(1127.0) * f32(exact.log1pf(f32(f32(freq) / f32(700.0)))))


@dataclass(frozen=True)
class Filterbank:
    starts: np.ndarray   # (channels + 1,) first FFT bin of each band
    weights: list        # per band: int64 array of Q12 weights (its width)
    unweights: list
    start_index: int     # the first bin used (DC excluded)
    end_index: int       # one past the last bin used


def filterbank(channels: int, lower: float, upper: float, sample_rate: int,
               spectrum_size: int) -> Filterbank:
    n = channels + 1
    mel_low, mel_hi = _mel(lower), _mel(upper)
    spacing = f32(f32(mel_hi - mel_low) / f32(n))
    centers = [f32(mel_low + f32(spacing * f32(i + 1))) for i in range(n)]
    hz_per_sbin = f32(0.5 * sample_rate / np.float64(f32(f32(spectrum_size) - f32(1))))
    start_index = int(1.5 + np.float64(f32(f32(lower) / hz_per_sbin)))
    starts, widths, chan_start = [], [], start_index
    for c in range(n):
        freq = chan_start
        while _mel(f32(f32(freq) * hz_per_sbin)) <= centers[c]:
            freq += 1
        starts.append(chan_start)
        widths.append(freq - chan_start)
        chan_start = freq
    weights, unweights, end_index = [], [], 0
    for c in range(n):
        denom = mel_low if c == 0 else centers[c - 1]
        w, u = [], []
        for j in range(widths[c]):
            mel = _mel(f32(f32(starts[c] + j) * hz_per_sbin))
            value = f32(f32(centers[c] - mel) / f32(centers[c] - denom))
            w.append(floor(np.float64(value * f32(1 << FILTERBANK_BITS)) + 0.5))
            u.append(floor((1.0 - np.float64(value)) * (1 << FILTERBANK_BITS) + 0.5))
        weights.append(np.asarray(w, np.int64))
        unweights.append(np.asarray(u, np.int64))
        end_index = max(end_index, starts[c] + widths[c])
    if end_index >= spectrum_size:
        raise ValueError(f"the filterbank's upper band limit {upper} Hz reaches past the "
                         f"spectrum's last bin at {sample_rate // 2} Hz: lower it")
    return Filterbank(np.asarray(starts), weights, unweights, start_index, end_index)


def _gain(x: int, input_bits: int, strength: float, offset: float, gain_bits: int) -> int:
    """TFLM's ``PcanGainLookupFunction``, its powf correctly rounded."""
    x_f = f32(f32(x) / f32(1 << input_bits))
    g = f32(f32(1 << gain_bits) * f32(exact.powf(float(f32(x_f + f32(offset))), -float(f32(strength)))))
    if g > 0x7FFF:
        return 0x7FFF
    return int(f32(g + f32(0.5)))


def gain_lut(strength: float, offset: float, gain_bits: int, input_bits: int) -> np.ndarray:
    """TFLM's 125-entry PCAN gain table (index 5 is unused by the lookup; it is 0 here)."""
    lut = np.zeros(4 * WIDE_DYNAMIC_BITS - 3, np.int64)
    lut[0] = _gain(0, input_bits, strength, offset, gain_bits)
    lut[1] = _gain(1, input_bits, strength, offset, gain_bits)
    for interval in range(2, WIDE_DYNAMIC_BITS + 1):
        x0 = 1 << (interval - 1)
        x1 = x0 + (x0 >> 1)
        x2 = x0 + (x0 - 1) if interval == WIDE_DYNAMIC_BITS else 2 * x0
        y0, y1, y2 = (_gain(x, input_bits, strength, offset, gain_bits) for x in (x0, x1, x2))
        a1 = 4 * (y1 - y0) - (y2 - y0)
        a2 = (y2 - y0) - a1
        k = 4 * interval - 6
        lut[k:k + 3] = ((y0 + 32768) % 65536 - 32768, (a1 + 32768) % 65536 - 32768,
                        (a2 + 32768) % 65536 - 32768)
    return lut


def log_lut() -> np.ndarray:
    """round(2**16 (log2(1 + i / 128) - i / 128)) for i = 0..128, then a 0 (130 entries)."""
    out = []
    with localcontext() as ctx:
        ctx.prec = 40
        ln2 = Decimal(2).ln()
        for i in range(1 << LOG_SEGMENTS_LOG2 | 1):
            x = Decimal(i) / (1 << LOG_SEGMENTS_LOG2)
            v = ((1 + x).ln() / ln2 - x) * (1 << LOG_SCALE_LOG2)
            out.append(int(v.to_integral_value()))
    return np.asarray(out + [0], np.int64)


def smoothing_q14(value: float) -> int:
    """A float32 smoothing coefficient in Q14, truncated like TFLM's conversion."""
    return int(f32(f32(value) * f32(1 << NOISE_REDUCTION_BITS)))


__all__ = ["window", "filterbank", "Filterbank", "gain_lut", "log_lut", "smoothing_q14"]
