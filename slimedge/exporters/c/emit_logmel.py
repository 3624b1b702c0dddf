"""The float log-mel / MFCC front-end in C: window, radix-2 FFT twiddles, the mel filterbank's
non-zero weights and the DCT as float32 constants; float32 arithmetic and ``logf``, within
``FLOAT_ATOL`` of :class:`~slimedge.frontend.logmel.LogMel`. Samples are float in [-1, 1); the
FFT size must be a power of two (:func:`slimedge.exporters.c.emit_audio.check`).
:func:`generate` gives the .c parts; the stage (:mod:`.emit_audio`) calls ``PREFIX_audio_frame``.
"""
from __future__ import annotations

import numpy as np

from ...frontend.logmel import LogMel
from . import source as src

_LOGMEL_C = r"""
/* ---- the audio front-end: float log-mel / MFCC ------------------------------------------- */
/* one frame: the WINDOW samples of the ring from `head` -> FEATURES values */
static void @P@_audio_frame(const float *ring, int head, float *out)
{
    float re[@U@_NFFT], im[@U@_NFFT];
    for (int j = 0; j < @U@_NFFT; j++) {
        const int i = @P@_bitrev[j];
        int at = head + i;
        if (at >= @U@_AUDIO_WINDOW) at -= @U@_AUDIO_WINDOW;
        re[j] = i < @U@_AUDIO_WINDOW ? ring[at] * @P@_window[i] : 0.0f;
        im[j] = 0.0f;
    }
    for (int len = 2; len <= @U@_NFFT; len <<= 1) {
        const int half = len >> 1, stride = @U@_NFFT / len;
        for (int g = 0; g < @U@_NFFT; g += len)
            for (int k = 0; k < half; k++) {
                const float wr = @P@_cos[k * stride], wi = -@P@_sin[k * stride];
                const int a = g + k, b = a + half;
                const float tr = re[b] * wr - im[b] * wi, ti = re[b] * wi + im[b] * wr;
                re[b] = re[a] - tr; im[b] = im[a] - ti;
                re[a] += tr; im[a] += ti;
            }
    }
    float mel[@U@_MEL];
    int at = 0;
    for (int c = 0; c < @U@_MEL; c++) {
        float e = 0.0f;
        for (int j = 0; j < @P@_mel_width[c]; j++, at++) {
            const int k = @P@_mel_start[c] + j;
            e += (re[k] * re[k] + im[k] * im[k]) * @P@_mel_weights[at];
        }
        mel[c] = logf(e > @U@_LOG_FLOOR ? e : @U@_LOG_FLOOR);
    }
#if @U@_DCT
    for (int d = 0; d < @U@_AUDIO_FEATURES; d++) {
        float s = 0.0f;
        for (int c = 0; c < @U@_MEL; c++) s += mel[c] * @P@_dct[c * @U@_AUDIO_FEATURES + d];
        out[d] = s;
    }
#else
    for (int c = 0; c < @U@_MEL; c++) out[c] = mel[c];
#endif
}
"""


def generate(a: LogMel, P: str, U: str) -> list[str]:
    t = a.tables
    n = a.n_fft
    bits = n.bit_length() - 1
    rev = np.array([int(format(j, f"0{bits}b")[::-1], 2) if bits else 0 for j in range(n)])
    k = np.arange(n // 2)
    fb = t["filterbank"]  # (bins, channels)
    starts, widths, weights = [], [], []
    for c in range(a.mel_channels):
        nz = np.flatnonzero(fb[:, c])
        lo, hi = (int(nz[0]), int(nz[-1]) + 1) if len(nz) else (0, 0)
        starts.append(lo)
        widths.append(hi - lo)
        weights.extend(fb[lo:hi, c].tolist())
    macros = [f"#define {U}_NFFT {n}", f"#define {U}_MEL {a.mel_channels}",
              f"#define {U}_DCT {int(bool(a.dct))}",
              f"#define {U}_LOG_FLOOR {src.c_float(a.log_floor)}"]
    c = [
        "/* ---- the audio front-end's constants (from slimedge.frontend.logmel) ---- */",
        "\n".join(macros) + "\n",
        src.array("float", f"{P}_window", t["window"], comment=f"{a.window} window"),
        src.array("uint16_t", f"{P}_bitrev", rev, comment="FFT input order (bit reversal)"),
        src.array("float", f"{P}_cos", np.cos(2 * np.pi * k / n), comment="cos(2 pi k / NFFT)"),
        src.array("float", f"{P}_sin", np.sin(2 * np.pi * k / n), comment="sin(2 pi k / NFFT)"),
        src.array("uint16_t", f"{P}_mel_start", starts, comment="mel filterbank: first bin of each channel"),
        src.array("uint16_t", f"{P}_mel_width", widths, comment="its bins"),
        src.array("float", f"{P}_mel_weights", weights or [0.0], comment="its weights"),
    ]
    if a.dct:
        c.append(src.array("float", f"{P}_dct", t["dct"], comment="orthonormal DCT-II (MEL, FEATURES)"))
    c.append(_LOGMEL_C.replace("@P@", P).replace("@U@", U))
    return c


__all__ = ["generate"]
