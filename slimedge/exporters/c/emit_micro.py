"""The integer microfrontend in C (TFLite Micro style): one frame of int16 PCM -> its features,
bit for bit :class:`~slimedge.frontend.microfrontend.Micro` (C's two's complement wrap where the
Python code wraps).

Per frame: the Q12 window over sample pairs, the largest magnitude's shift, KISS FFT's real FFT
(:mod:`.emit_kissfft`), the filterbank (64-bit sums), the rounded square root, noise reduction,
PCAN's gain and the log, with the tables of :mod:`slimedge.frontend.micro_tables` as constants.
The square root uses the FPU's VSQRT where a 32-bit Arm core has a single-precision FPU (the
float root is within one of the floor over every uint32, then corrected); elsewhere Newton's
iteration. :func:`generate` gives the .c parts, the stage (:mod:`.emit_audio`) calls
``PREFIX_audio_frame``.
"""
from __future__ import annotations

import numpy as np

from ...errors import UsageError
from ...frontend import micro_tables as mt
from ...frontend.microfrontend import Micro
from . import emit_kissfft
from . import source as src

_MICRO_C = r"""
/* ---- the audio front-end: integer microfrontend ------------------------------------------ */
/* the bit length of x (0 for 0): CLZ where the compiler has it */
static inline int @P@_bits32(uint32_t x)
{
#if defined(__GNUC__)
    return x ? 32 - __builtin_clz(x) : 0;
#else
    int n = 0;
    while (x) { n++; x >>= 1; }
    return n;
#endif
}

/* floor(sqrt(v)). With a single-precision FPU (32-bit Arm): the float root of (float)v is
   within 0.01 of the real one (v rounded to 24 bits, then the root rounded), so its integer
   part is the floor or one off, and one step either way corrects it. Elsewhere Newton's
   iteration from above (from 2^ceil(bits / 2) > sqrt(v), it decreases to the floor of the
   root and stops there) */
#if defined(__GNUC__) && defined(__thumb2__) && defined(__ARM_FP) && (__ARM_FP & 4) \
    && !defined(SLIMEDGE_NO_DSP)
#define @U@_VSQRT 1
#else
#define @U@_VSQRT 0
#endif
static uint32_t @P@_isqrt32(uint32_t v)
{
#if @U@_VSQRT
    float f = (float)v;
    __asm__("vsqrt.f32 %0, %1" : "=t"(f) : "t"(f));
    uint32_t x = (uint32_t)f;
    if ((uint64_t)x * x > v) return x - 1;
    if ((uint64_t)(x + 1) * (x + 1) <= v) return x + 1;
    return x;
#else
    if (v < 2) return v;
    uint32_t x = (uint32_t)1 << ((@P@_bits32(v) + 1) >> 1);
    for (;;) {
        const uint32_t y = (x + v / x) >> 1;
        if (y >= x) return x;
        x = y;
    }
#endif
}

/* floor(sqrt(v)), + 1 when the remainder exceeds the root (TFLM's Sqrt64 rounding, which stops
   at 0xFFFF for a value under 2**32 and at 0xFFFFFFFF above) */
static uint32_t @P@_sqrt64(uint64_t v)
{
    const uint32_t hi = (uint32_t)(v >> 32);
    uint32_t root, cap;
    if (hi == 0) {
        root = @P@_isqrt32((uint32_t)v);
        cap = 0xFFFFu;
    } else {
        /* the top bits' root, then the s low bits of the root one at a time */
        const int s = (32 + @P@_bits32(hi) - 31) / 2;
        root = @P@_isqrt32((uint32_t)(v >> (2 * s))) << s;
        for (uint32_t bit = (uint32_t)1 << (s - 1); bit; bit >>= 1) {
            const uint64_t t = (uint64_t)(root | bit);
            if (t * t <= v) root |= bit;
        }
        cap = 0xFFFFFFFFu;
    }
    if (v - (uint64_t)root * root > root && root != cap) root++;
    return root;
}


/* windowed sample pairs j0..j1 - 1 (from s) into the FFT's input places; returns `bits` or-ed
   with every |w| (the bit length of the or is that of the largest) */
static uint32_t @P@_windowed(const int16_t *s, int j0, int j1, uint32_t *z, uint32_t bits)
{
    for (int j = j0; j < j1; j++, s += 2) {
        const uint32_t x = @P@_pack(s[0], s[1]);  /* one 32-bit load where the compiler sees it */
        const uint32_t win = @P@_window2[j];
#if @U@_DSP
        /* the products' bits 27..12 (>> 12) in each half: one ASR and one PKHBT; |w| per half
           by SSUB16 (its GE flags: w <= 0) and SEL, in one asm so that nothing comes between */
        const int32_t p0 = (@P@_lo(x) * @P@_lo(win)) >> 12, p1 = @P@_hi(x) * @P@_hi(win);
        uint32_t w, a;
        __asm__("pkhbt %0, %1, %2, lsl #4" : "=r"(w) : "r"(p0), "r"(p1));
        __asm__("ssub16 %0, %2, %1\n\tsel %0, %0, %1" : "=&r"(a) : "r"(w), "r"(0) : "cc");
        bits |= a | (a >> 16);
        z[@P@_fft_slot[j]] = w;
#else
        const int32_t w0 = (@P@_lo(x) * @P@_lo(win)) >> 12, w1 = (@P@_hi(x) * @P@_hi(win)) >> 12;
        bits |= (uint32_t)(w0 < 0 ? -w0 : w0) | (uint32_t)(w1 < 0 ? -w1 : w1);
        z[@P@_fft_slot[j]] = @P@_pack(w0, w1);
#endif
    }
    return bits;
}

/* PCAN's gain for a noise estimate (TFLM's WideDynamicFunction) */
static int16_t @P@_gain(uint32_t x)
{
    if (x <= 2) return @P@_gain_lut[x];
    const int interval = @P@_bits32(x);
    const int16_t *lut = @P@_gain_lut + 4 * interval - 6;
    const int32_t frac = (int32_t)((interval < 11 ? x << (11 - interval) : x >> (interval - 11))
                                   & 0x3FF);
    uint32_t r = (uint32_t)(((int32_t)lut[2] * frac) >> 5);
    r += (uint32_t)((int32_t)lut[1] * 32);
    r *= (uint32_t)frac;
    r = (uint32_t)((int32_t)(r + (1u << 14)) >> 15) + (uint32_t)(int32_t)lut[0];
    return (int16_t)r;
}

/* 2**SCALE_SHIFT * ln(v) in fixed point (TFLM's log with its 130-entry correction table) */
static uint32_t @P@_log(uint32_t v)
{
    if (v <= 1) return 0;
    const int integer = @P@_bits32(v) - 1;
    int32_t frac = (int32_t)(v - ((uint32_t)1 << integer));
    frac = integer < 16 ? frac << (16 - integer) : frac >> (integer - 16);
    const int seg = frac >> 9;
    const int32_t c0 = @P@_log_lut[seg], c1 = @P@_log_lut[seg + 1];
    frac = frac + c0 + (((c1 - c0) * (frac - seg * 512)) >> 16);
    const uint32_t log2 = ((uint32_t)integer << 16) + (uint32_t)frac;
    const uint64_t loge = (((uint64_t)45426 * log2 + 32768) >> 16) & 0xFFFFFFFFu;
    return (uint32_t)((((uint64_t)(uint32_t)(loge << @U@_SCALE_SHIFT)) + 32768) >> 16);
}

/* one frame: the WINDOW int16 samples of the ring from `head` -> FEATURES values (0..65535),
   the noise estimate updated */
static void @P@_audio_frame(const int16_t *ring, int head, uint32_t *noise, float *out)
{
    uint32_t z[@U@_NCFFT + 1];
    /* windowed sample pairs (2j, 2j + 1) are complex input j of the FFT, at z[fft_slot[j]];
       WINDOW and HOP are even, so the oldest sample (head) is at an even place of the ring and
       no pair wraps. |w| = 32768 (w = -32768) is left out of the largest magnitude: bit 15 */
    const int wrap = (@U@_AUDIO_WINDOW - head) / 2;
    uint32_t bits = @P@_windowed(ring + head, 0, wrap, z, 0);
    bits = @P@_windowed(ring, wrap, @U@_AUDIO_WINDOW / 2, z, bits);
    for (int j = @U@_AUDIO_WINDOW / 2; j < @U@_NCFFT; j++) z[@P@_fft_slot[j]] = 0;
    const int shift = 15 - @P@_bits32(bits & 0x7FFFu);
    @P@_rfft(z, shift);
    /* filterbank: band c's weighted energies to channel c - 1, its unweighted ones to c. An
       energy is the int32 re^2 + im^2 (it wraps to -2^31 only for re = im = -32768), taken to
       64 bits with its sign as in TFLM: sums modulo 2^64 */
    uint64_t carry = 0;
    const uint16_t *weight = @P@_weights, *unweight = @P@_unweights;
    for (int c = 0; c <= @U@_AUDIO_FEATURES; c++) {
        uint64_t w = carry, u = 0;
        const uint32_t *bin = z + @P@_band_start[c];
        const int width = @P@_band_width[c];
        for (int j = 0; j < width; j++) {
            const int64_t e = @P@_energy(bin[j]);
            w += (uint64_t)(e * (int32_t)weight[j]);
            u += (uint64_t)(e * (int32_t)unweight[j]);
        }
        weight += width;
        unweight += width;
        carry = u;
        if (c == 0) continue;
        /* channel c - 1: noise reduction, PCAN, log */
        const int ch = c - 1;
        const uint32_t s = @P@_sqrt64(w) >> shift;
        const uint32_t smooth = (ch & 1) ? @U@_ODD_SMOOTHING : @U@_EVEN_SMOOTHING;
        const uint32_t up = s << @U@_SMOOTHING_BITS;
        const uint32_t est = (uint32_t)(((uint64_t)up * smooth
                                         + (uint64_t)noise[ch] * (16384u - smooth)) >> 14);
        noise[ch] = est;
        const uint32_t floor_ = (uint32_t)(((uint64_t)s * @U@_MIN_REMAINING) >> 14);
        uint32_t v = (up - (est < up ? est : up)) >> @U@_SMOOTHING_BITS;
        if (v < floor_) v = floor_;
#if @U@_PCAN
        {
            const uint32_t gain = (uint32_t)(int32_t)@P@_gain(est);
            const uint32_t snr = (uint32_t)(((uint64_t)v * gain) >> @U@_SNR_SHIFT);
            v = snr < (2u << 12) ? (snr * snr) >> 20 : (snr >> 6) - 64u;
        }
#endif
#if @U@_LOG
        v = @P@_log(@U@_CORRECT(v));
#endif
        out[ch] = (float)(v < 0xFFFFu ? v : 0xFFFFu);
    }
}
"""


def generate(a: Micro, P: str, U: str) -> list[str]:
    """The .c's constants and functions of the integer microfrontend: the real FFT's
    (:mod:`.emit_kissfft`), then its own, ending with ``P_audio_frame``."""
    t = a.tables
    n = a.fft_size
    fb = t["filterbank"]
    cb = a.correction_bits
    correct = f"((v) << {cb})" if cb >= 0 else f"((v) >> {-cb})"
    snr_shift = a.gain_bits - cb - mt.PCAN_SNR_BITS
    macros = [f"#define {U}_SMOOTHING_BITS {a.smoothing_bits}",
              f"#define {U}_EVEN_SMOOTHING {t['even']}u", f"#define {U}_ODD_SMOOTHING {t['odd']}u",
              f"#define {U}_MIN_REMAINING {t['min_remaining']}u",
              f"#define {U}_PCAN {int(a.pcan)}", f"#define {U}_LOG {int(a.log)}",
              f"#define {U}_SNR_SHIFT {snr_shift}", f"#define {U}_SCALE_SHIFT {a.scale_shift}",
              f"#define {U}_CORRECT(v) ((uint32_t){correct})"]
    if a.window_samples % 2 or a.hop_samples % 2:
        raise UsageError(f"the C export's microfrontend needs an even number of samples per "
                         f"window and hop, got {a.window_samples} and {a.hop_samples}: choose "
                         f"window_ms and hop_ms that give them")
    if n > 1 << 15 or fb.end_index > n // 2:
        raise UsageError(f"the microfrontend's FFT of {n} points is too large for the C export")
    return [
        "/* ---- the audio front-end's constants (from slimedge.frontend.microfrontend) ---- */",
        "\n".join(macros) + "\n",
        *emit_kissfft.generate(n, P, U),
        src.array("uint32_t", f"{P}_window2", emit_kissfft.packed(t["window"].reshape(-1, 2)),
                  comment="Hann window, Q12, by pairs (sample 2j | sample 2j + 1 << 16)"),
        src.array("uint16_t", f"{P}_band_start", fb.starts,
                  comment="filterbank: first bin of each band"),
        src.array("uint16_t", f"{P}_band_width", [len(w) for w in fb.weights], comment="its bins"),
        src.array("uint16_t", f"{P}_weights", np.concatenate(fb.weights), comment="weights, Q12"),
        src.array("uint16_t", f"{P}_unweights", np.concatenate(fb.unweights),
                  comment="unweights, Q12"),
        src.array("int16_t", f"{P}_gain_lut", t["gain_lut"], comment="PCAN gain table"),
        src.array("int32_t", f"{P}_log_lut", t["log_lut"], comment="log2 correction table"),
        _MICRO_C.replace("@P@", P).replace("@U@", U),
    ]


__all__ = ["generate"]
