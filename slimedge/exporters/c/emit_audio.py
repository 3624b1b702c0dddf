"""The audio front-end in C: a model's streaming stage, PCM samples -> frames -> model step.

A C export of a model whose config records an audio front-end (:mod:`slimedge.frontend.audio`)
carries it in the same ``.c`` and ``.h``, after the step. Its constants are emitted from the
Python front-end's own tables, so nothing is computed at start-up (no libm for the integer one):

* ``microfrontend`` (integer, TFLite Micro style): the Q12 window, the KISS FFT's input order,
  stages and twiddles, the filterbank's bands, the PCAN gain and log tables. Every step is
  integer arithmetic written to match :class:`~slimedge.frontend.microfrontend.Micro` bit for
  bit (C's two's complement wrap where the Python code wraps). Samples are int16 PCM.
* ``logmel`` (float log-mel / MFCC): window, radix-2 FFT twiddles, the mel filterbank's
  non-zero weights and the DCT as float32 constants; float32 arithmetic and ``logf``. Samples
  are float in [-1, 1). Its FFT size must be a power of two.

The API (``PREFIX`` the export's identifier prefix; sizes as macros ``PREFIX_AUDIO_*``), every
state in memory the caller owns:

    PREFIX_audio_state s;  PREFIX_audio_reset(&s);
    int n = PREFIX_audio_push(&s, pcm, count, features);  /* the front-end alone: the n frames
                                      completed, (n, PREFIX_AUDIO_FEATURES) floats */
    PREFIX_listener l;  PREFIX_listener_reset(&l);
    int n = PREFIX_listen(&l, pcm, count, y);   /* front-end + model: the outputs (n, OUTPUT_SIZE)
                                      of the n frames this buffer completed */

At most ``PREFIX_AUDIO_MAX_FRAMES(count)`` frames complete in one call. Frame t covers samples
[t * HOP, t * HOP + WINDOW) of the stream, as in Python: any split of a signal into calls gives
the same frames. A full-integer model's listener keeps the integer state (int8 h, int16 c) and
calls ``PREFIX_quantize_input`` and ``PREFIX_step_q``; the others call ``PREFIX_step``.
"""
from __future__ import annotations

import numpy as np

from ...errors import UsageError
from ...frontend import Frontend, kissfft
from ...frontend import micro_tables as mt
from ...frontend.logmel import LogMel
from ...frontend.microfrontend import Micro
from . import emit_decoder
from . import source as src


def audio_of(config: dict):
    """The audio front-end a model config records (None without one)."""
    return Frontend.from_config(config).audio


def check(config: dict) -> None:
    """UsageError when the config's audio front-end cannot be written in C."""
    a = audio_of(config)
    if isinstance(a, LogMel) and a.n_fft & (a.n_fft - 1):
        raise UsageError(f"the C export's log-mel front-end needs a power-of-two FFT size, got "
                         f"fft_size={a.n_fft}; choose 0 (the next power of two) or a power of two")


def _arr(ctype: str, name: str, values, comment: str = "") -> str:
    return src.array(ctype, name, np.asarray(values), comment=comment)


# ---- the integer microfrontend -------------------------------------------------------------------
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

/* Complex values packed in 32 bits, the real part in the low half (as KISS FFT's int16 pairs):
   the Arm DSP extension works on both halves at once; elsewhere the same arithmetic in C
   (every value wraps to int16 like the C assignment in KISS FFT, every product is exact). */
#if defined(__ARM_FEATURE_SIMD32) && defined(__ARM_FEATURE_DSP) && !defined(SLIMEDGE_NO_DSP)
#include <arm_acle.h>
#define @U@_DSP 1
#else
#define @U@_DSP 0
#endif
static inline int32_t @P@_lo(uint32_t z) { return (int16_t)(uint16_t)z; }
static inline int32_t @P@_hi(uint32_t z) { return (int16_t)(uint16_t)(z >> 16); }
static inline uint32_t @P@_pack(int32_t lo, int32_t hi)
{
    return (uint32_t)(uint16_t)lo | ((uint32_t)(uint16_t)hi << 16);
}
#if @U@_DSP
/* PKHTB: bits 31..16 of `top` above bits 30..15 of `low` */
static inline uint32_t @P@_pkhtb15(uint32_t top, int32_t low)
{
    uint32_t r;
    __asm__("pkhtb %0, %1, %2, asr #15" : "=r"(r) : "r"(top), "r"(low));
    return r;
}
/* PKHBT: the low half of `low` below the top half of `top` */
static inline uint32_t @P@_pkhbt(uint32_t low, uint32_t top)
{
    uint32_t r;
    __asm__("pkhbt %0, %1, %2" : "=r"(r) : "r"(low), "r"(top));
    return r;
}
#endif
/* (re >> 15, im >> 15) packed: bits 31..16 of im << 1 are those of im >> 15 (one PKHTB) */
static inline uint32_t @P@_pack_q15(int32_t re, int32_t im)
{
#if @U@_DSP
    return @P@_pkhtb15((uint32_t)im << 1, re);
#else
    return ((uint32_t)(re >> 15) & 0xFFFFu) | (((uint32_t)im << 1) & 0xFFFF0000u);
#endif
}
static inline uint32_t @P@_add(uint32_t a, uint32_t b)
{
#if @U@_DSP
    return (uint32_t)__sadd16((int32_t)a, (int32_t)b);
#else
    return @P@_pack(@P@_lo(a) + @P@_lo(b), @P@_hi(a) + @P@_hi(b));
#endif
}
static inline uint32_t @P@_sub(uint32_t a, uint32_t b)
{
#if @U@_DSP
    return (uint32_t)__ssub16((int32_t)a, (int32_t)b);
#else
    return @P@_pack(@P@_lo(a) - @P@_lo(b), @P@_hi(a) - @P@_hi(b));
#endif
}
/* a + (-i) b: (a.re + b.im, a.im - b.re) */
static inline uint32_t @P@_add_mi(uint32_t a, uint32_t b)
{
#if @U@_DSP
    return (uint32_t)__ssax((int32_t)a, (int32_t)b);
#else
    return @P@_pack(@P@_lo(a) + @P@_hi(b), @P@_hi(a) - @P@_lo(b));
#endif
}
/* a + i b: (a.re - b.im, a.im + b.re) */
static inline uint32_t @P@_add_i(uint32_t a, uint32_t b)
{
#if @U@_DSP
    return (uint32_t)__sasx((int32_t)a, (int32_t)b);
#else
    return @P@_pack(@P@_lo(a) - @P@_hi(b), @P@_hi(a) + @P@_lo(b));
#endif
}
/* C_MUL with sround: a * t, Q15 */
static inline uint32_t @P@_cmul(uint32_t a, uint32_t t)
{
#if @U@_DSP
    const int32_t re = __smlsd((int32_t)a, (int32_t)t, 1 << 14);
    const int32_t im = __smladx((int32_t)a, (int32_t)t, 1 << 14);
#else
    const int32_t re = @P@_lo(a) * @P@_lo(t) - @P@_hi(a) * @P@_hi(t) + (1 << 14);
    const int32_t im = @P@_lo(a) * @P@_hi(t) + @P@_hi(a) * @P@_lo(t) + (1 << 14);
#endif
    return @P@_pack_q15(re, im);
}
/* C_FIXDIV: both halves times k = 32767 / p, with sround. On the DSP the imaginary half is
   multiplied by 2k (+ 2^15): its bits 31..16 are those of im * k + 2^14 >> 15 */
static inline uint32_t @P@_div(uint32_t z, int32_t k)
{
#if @U@_DSP
    const int32_t kk = (int32_t)((uint32_t)k | ((uint32_t)(2 * k) << 16));
    return @P@_pkhtb15((uint32_t)__smlatt((int32_t)z, kk, 1 << 15),
                       __smlabb((int32_t)z, kk, 1 << 14));
#else
    return @P@_pack_q15(@P@_lo(z) * k + (1 << 14), @P@_hi(z) * k + (1 << 14));
#endif
}
/* C_FIXDIV of the conjugate (re, -im), -im wrapping to int16 as in KISS FFT */
static inline uint32_t @P@_div_conj(uint32_t z, int32_t k)
{
#if @U@_DSP
    const int32_t kk = (int32_t)((uint32_t)k | ((uint32_t)(2 * k) << 16));
    const int32_t neg = __ssub16(0, (int32_t)z);
    return @P@_pkhtb15((uint32_t)__smlatt(neg, kk, 1 << 15), __smlabb((int32_t)z, kk, 1 << 14));
#else
    return @P@_div(@P@_pack(@P@_lo(z), -@P@_hi(z)), k);
#endif
}
/* ((a.re + b.re) >> 1, (a.im + b.im) >> 1) and ((a.re - b.re) >> 1, (b.im - a.im) >> 1): the
   real FFT's HALF_OF, exact in 17 bits */
static inline uint32_t @P@_half_add(uint32_t a, uint32_t b)
{
#if @U@_DSP
    return (uint32_t)__shadd16((int32_t)a, (int32_t)b);
#else
    return @P@_pack((@P@_lo(a) + @P@_lo(b)) >> 1, (@P@_hi(a) + @P@_hi(b)) >> 1);
#endif
}
static inline uint32_t @P@_half_sub_conj(uint32_t a, uint32_t b)
{
#if @U@_DSP
    return (uint32_t)__shsub16((int32_t)@P@_pkhbt(a, b), (int32_t)@P@_pkhbt(b, a));
#else
    return @P@_pack((@P@_lo(a) - @P@_lo(b)) >> 1, (@P@_hi(b) - @P@_hi(a)) >> 1);
#endif
}
/* re^2 + im^2 as the int32 KISS FFT's energy computes it (wrapping), as int32 */
static inline int32_t @P@_energy(uint32_t z)
{
#if @U@_DSP
    return __smuad((int32_t)z, (int32_t)z);
#else
    return (int32_t)((uint32_t)(@P@_lo(z) * @P@_lo(z)) + (uint32_t)(@P@_hi(z) * @P@_hi(z)));
#endif
}

#if defined(__GNUC__)
#define @U@_INLINE static inline __attribute__((always_inline))
#else
#define @U@_INLINE static inline
#endif
/* both halves << shift, each wrapping to 16 bits */
@U@_INLINE uint32_t @P@_shl(uint32_t z, int shift)
{
#if @U@_DSP
    return @P@_pkhbt(z << shift, (z & 0xFFFF0000u) << shift);
#else
    return ((z & 0xFFFF0000u) << shift) | ((z << shift) & 0xFFFFu);
#endif
}

/* The butterflies of the fixed-point complex FFT (KISS FFT, FIXED_POINT=16), radix 2 and 4, in
   place over f[0], f[m], ...; twiddles t1.. The first stage shifts its inputs (`first`, a
   constant where it is inlined) */
@U@_INLINE void @P@_bfly2(uint32_t *f, const int m, uint32_t t1, const int first, int shift)
{
    uint32_t x0 = f[0], x1 = f[m];
    if (first) { x0 = @P@_shl(x0, shift); x1 = @P@_shl(x1, shift); }
    const uint32_t a = @P@_div(x0, 16383);
    const uint32_t t = @P@_cmul(@P@_div(x1, 16383), t1);
    f[0] = @P@_add(a, t);
    f[m] = @P@_sub(a, t);
}
@U@_INLINE void @P@_bfly4(uint32_t *f, const int m, uint32_t t1, uint32_t t2, uint32_t t3,
                           const int first, int shift)
{
    uint32_t x0 = f[0], x1 = f[m], x2 = f[2 * m], x3 = f[3 * m];
    if (first) {
        x0 = @P@_shl(x0, shift); x1 = @P@_shl(x1, shift);
        x2 = @P@_shl(x2, shift); x3 = @P@_shl(x3, shift);
    }
    const uint32_t a = @P@_div(x0, 8191);
    const uint32_t s0 = @P@_cmul(@P@_div(x1, 8191), t1);
    const uint32_t s1 = @P@_cmul(@P@_div(x2, 8191), t2);
    const uint32_t s2 = @P@_cmul(@P@_div(x3, 8191), t3);
    const uint32_t s5 = @P@_sub(a, s1), f0 = @P@_add(a, s1);
    const uint32_t s3 = @P@_add(s0, s2), s4 = @P@_sub(s0, s2);
    f[0] = @P@_add(f0, s3);
    f[m] = @P@_add_mi(s5, s4);
    f[2 * m] = @P@_sub(f0, s3);
    f[3 * m] = @P@_add_i(s5, s4);
}
/* One stage over groups of p m values, twiddle stride fs: twiddle by twiddle (k), each loaded
   once per stage; a stage of one group loops over k alone */
@U@_INLINE void @P@_radix2(uint32_t *z, const int m, const int fs, const int first, int shift)
{
    for (int k = 0; k < m; k++) {
        const uint32_t t1 = @P@_twiddles[k * fs];
        if (2 * m == @U@_NCFFT)
            @P@_bfly2(z + k, m, t1, first, shift);
        else
            for (uint32_t *f = z + k; f < z + @U@_NCFFT; f += 2 * m)
                @P@_bfly2(f, m, t1, first, shift);
    }
}
@U@_INLINE void @P@_radix4(uint32_t *z, const int m, const int fs, const int first, int shift)
{
    for (int k = 0; k < m; k++) {
        const uint32_t t1 = @P@_twiddles[k * fs], t2 = @P@_twiddles[2 * k * fs];
        const uint32_t t3 = @P@_twiddles[3 * k * fs];
        if (4 * m == @U@_NCFFT)
            @P@_bfly4(z + k, m, t1, t2, t3, first, shift);
        else
            for (uint32_t *f = z + k; f < z + @U@_NCFFT; f += 4 * m)
                @P@_bfly4(f, m, t1, t2, t3, first, shift);
    }
}

/* the complex FFT over z, already in its input order, its inputs << shift first: the stages
   innermost first */
static void @P@_cfft(uint32_t *z, int shift)
{
@STAGES@
}

/* windowed sample pairs j0..j1 - 1 (from s) into the FFT's input places; returns `bits` or-ed
   with every |w| (the bit length of the or is that of the largest) */
static uint32_t @P@_windowed(const int16_t *s, int j0, int j1, uint32_t *z, uint32_t bits)
{
    for (int j = j0; j < j1; j++, s += 2) {
        uint32_t x;
        memcpy(&x, s, sizeof(x));
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
    @P@_cfft(z, shift);
    /* the real FFT's split, in place (each pair k, NCFFT - k read before it is written) */
    {
        const uint32_t dc = @P@_div(z[0], 16383);
        z[0] = @P@_pack(@P@_lo(dc) + @P@_hi(dc), 0);
        z[@U@_NCFFT] = @P@_pack(@P@_lo(dc) - @P@_hi(dc), 0);
        for (int k = 1; k <= @U@_NCFFT / 2; k++) {
            const int nk = @U@_NCFFT - k;
            const uint32_t pk = @P@_div(z[k], 16383), pnk = @P@_div_conj(z[nk], 16383);
            const uint32_t f1 = @P@_add(pk, pnk);
            const uint32_t tw = @P@_cmul(@P@_sub(pk, pnk), @P@_super_twiddles[k - 1]);
            z[k] = @P@_half_add(f1, tw);
            z[nk] = @P@_half_sub_conj(f1, tw);
        }
    }
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


def _packed(t: np.ndarray) -> np.ndarray:
    """(n, 2) int16 values as n uint32: the real part in the low half."""
    t = np.asarray(t, np.int64)
    return (t[:, 0] & 0xFFFF) | ((t[:, 1] & 0xFFFF) << 16)


def _micro(a: Micro, P: str, U: str) -> tuple[list[str], list[str]]:
    """(the .c's constants and functions, the .h's macros) of the integer microfrontend."""
    t = a.tables
    n = a.fft_size
    ncfft = n // 2
    perm, stages = kissfft._plan(ncfft)
    slot = np.empty(ncfft, np.int64)
    slot[perm] = np.arange(ncfft)  # complex input j (samples 2j, 2j+1) goes to position slot[j]
    fb = t["filterbank"]
    cb = a.correction_bits
    correct = f"((v) << {cb})" if cb >= 0 else f"((v) >> {-cb})"
    snr_shift = a.gain_bits - cb - mt.PCAN_SNR_BITS
    macros = [f"#define {U}_NCFFT {ncfft}", f"#define {U}_SMOOTHING_BITS {a.smoothing_bits}",
              f"#define {U}_EVEN_SMOOTHING {t['even']}u", f"#define {U}_ODD_SMOOTHING {t['odd']}u",
              f"#define {U}_MIN_REMAINING {t['min_remaining']}u",
              f"#define {U}_PCAN {int(a.pcan)}", f"#define {U}_LOG {int(a.log)}",
              f"#define {U}_SNR_SHIFT {snr_shift}", f"#define {U}_SCALE_SHIFT {a.scale_shift}",
              f"#define {U}_CORRECT(v) ((uint32_t){correct})"]
    if a.window_samples % 2 or a.hop_samples % 2:
        raise UsageError(f"the C export's microfrontend needs an even number of samples per "
                         f"window and hop, got {a.window_samples} and {a.hop_samples}: choose "
                         f"window_ms and hop_ms that give them")
    if n > 1 << 15 or fb.end_index > ncfft:
        raise UsageError(f"the microfrontend's FFT of {n} points is too large for the C export")
    c = [
        "/* ---- the audio front-end's constants (from slimedge.frontend.microfrontend) ---- */",
        "\n".join(macros) + "\n",
        _arr("uint32_t", f"{P}_window2", _packed(t["window"].reshape(-1, 2)),
             "Hann window, Q12, by pairs (sample 2j | sample 2j + 1 << 16)"),
        _arr("uint16_t", f"{P}_fft_slot", slot, "where complex input j starts the FFT"),
        _arr("uint32_t", f"{P}_twiddles", _packed(kissfft.twiddles(ncfft)),
             "complex twiddles, Q15 (re | im << 16)"),
        _arr("uint32_t", f"{P}_super_twiddles", _packed(kissfft.super_twiddles(n)),
             "the real FFT's twiddles, Q15 (re | im << 16)"),
        _arr("uint16_t", f"{P}_band_start", fb.starts, "filterbank: first bin of each band"),
        _arr("uint16_t", f"{P}_band_width", [len(w) for w in fb.weights], "its bins"),
        _arr("uint16_t", f"{P}_weights", np.concatenate(fb.weights), "weights, Q12"),
        _arr("uint16_t", f"{P}_unweights", np.concatenate(fb.unweights), "unweights, Q12"),
        _arr("int16_t", f"{P}_gain_lut", t["gain_lut"], "PCAN gain table"),
        _arr("int32_t", f"{P}_log_lut", t["log_lut"], "log2 correction table"),
        _MICRO_C.replace("@STAGES@", "\n".join(
            f"    @P@_radix{p}(z, {m}, {f}, {int(k == 0)}, shift);"
            for k, (p, m, f) in enumerate(stages)))
        .replace("@P@", P).replace("@U@", U),
    ]
    return c, []


# ---- the float log-mel / MFCC ----------------------------------------------------------------------
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


def _logmel(a: LogMel, P: str, U: str) -> tuple[list[str], list[str]]:
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
        _arr("float", f"{P}_window", t["window"], f"{a.window} window"),
        _arr("uint16_t", f"{P}_bitrev", rev, "FFT input order (bit reversal)"),
        _arr("float", f"{P}_cos", np.cos(2 * np.pi * k / n), "cos(2 pi k / NFFT)"),
        _arr("float", f"{P}_sin", np.sin(2 * np.pi * k / n), "sin(2 pi k / NFFT)"),
        _arr("uint16_t", f"{P}_mel_start", starts, "mel filterbank: first bin of each channel"),
        _arr("uint16_t", f"{P}_mel_width", widths, "its bins"),
        _arr("float", f"{P}_mel_weights", weights or [0.0], "its weights"),
    ]
    if a.dct:
        c.append(_arr("float", f"{P}_dct", t["dct"], "orthonormal DCT-II (MEL, FEATURES)"))
    c.append(_LOGMEL_C.replace("@P@", P).replace("@U@", U))
    return c, []


# ---- the stage: framing, the listener ------------------------------------------------------------
_STAGE_C = r"""
/* ---- the streaming stage: samples -> frames -> model step ---------------------------------- */
const size_t @P@_audio_state_bytes = sizeof(@P@_audio_state);
const size_t @P@_listener_bytes = sizeof(@P@_listener);

void @P@_audio_reset(@P@_audio_state *s)
{
    memset(s, 0, sizeof(*s));
}

/* Takes up to `count` samples into the window (a ring: the oldest at `head`); returns how many
   it took. The window is full (a frame is due) when fill reaches WINDOW. */
static int @P@_audio_take(@P@_audio_state *s, const @P@_audio_sample *pcm, int count)
{
    int take = @U@_AUDIO_WINDOW - (int)s->fill;
    if (take > count) take = count;
    int at = (int)s->head + (int)s->fill;
    if (at >= @U@_AUDIO_WINDOW) at -= @U@_AUDIO_WINDOW;
    const int first = take < @U@_AUDIO_WINDOW - at ? take : @U@_AUDIO_WINDOW - at;
    memcpy(s->samples + at, pcm, (size_t)first * sizeof(*pcm));
    memcpy(s->samples, pcm + first, (size_t)(take - first) * sizeof(*pcm));
    s->fill += take;
    return take;
}

/* after a frame: the oldest HOP samples leave the window */
static void @P@_audio_slide(@P@_audio_state *s)
{
    s->head += @U@_AUDIO_HOP;
    if (s->head >= @U@_AUDIO_WINDOW) s->head -= @U@_AUDIO_WINDOW;
    s->fill = @U@_AUDIO_WINDOW - @U@_AUDIO_HOP;
}

int @P@_audio_push(@P@_audio_state *s, const @P@_audio_sample *pcm, int count, float *features)
{
    int frames = 0;
    while (count > 0) {
        const int took = @P@_audio_take(s, pcm, count);
        pcm += took; count -= took;
        if (s->fill < @U@_AUDIO_WINDOW) break;
        @P@_audio_frame(s->samples, (int)s->head, @NOISE@features + (size_t)frames * @U@_AUDIO_FEATURES);
        @P@_audio_slide(s);
        frames++;
    }
    return frames;
}

void @P@_listener_reset(@P@_listener *l)
{
    memset(l, 0, sizeof(*l));
}

int @P@_listen(@P@_listener *l, const @P@_audio_sample *pcm, int count, float *y)
{
    int frames = 0;
    while (count > 0) {
        const int took = @P@_audio_take(&l->audio, pcm, count);
        pcm += took; count -= took;
        if (l->audio.fill < @U@_AUDIO_WINDOW) break;
        float x[@U@_AUDIO_FEATURES];
        @P@_audio_frame(l->audio.samples, (int)l->audio.head, @LNOISE@x);
        @P@_audio_slide(&l->audio);
        @STEP@
        frames++;
    }
    return frames;
}
"""

_STEP_FLOAT = "@P@_step(x, l->h, l->c, y + (size_t)frames * @U@_OUTPUT_SIZE);"
_STEP_INT = ("{\n"
             "            int8_t xq[@U@_INPUT_SIZE];\n"
             "            int32_t yq[@U@_OUTPUT_SIZE];\n"
             "            @P@_quantize_input(x, xq);\n"
             "            @P@_step_q(xq, l->hq, l->cq, yq);\n"
             "            for (int i = 0; i < @U@_OUTPUT_SIZE; i++)\n"
             "                y[(size_t)frames * @U@_OUTPUT_SIZE + i] = (float)yq[i] * @U@_Y_SCALE;\n"
             "        }")


def _header(a, P: str, U: str, integer_model: bool) -> str:
    micro = isinstance(a, Micro)
    sample = "int16_t" if micro else "float"
    noise = f"    uint32_t noise[{U}_AUDIO_FEATURES];  /* the noise estimate per channel */\n" \
        if micro else ""
    model_state = (f"    int8_t hq[{U}_STATE_SIZE];   /* the model's integer state */\n"
                   f"    int16_t cq[{U}_STATE_SIZE];\n") if integer_model else \
        (f"    float h[{U}_STATE_SIZE];     /* the model's state */\n"
         f"    float c[{U}_STATE_SIZE];\n")
    what = ("int16 PCM" if micro else "float PCM in [-1, 1)")
    scratch = 4 * (a.fft_size // 2 + 1) if micro else 4 * (2 * a.n_fft + a.mel_channels)
    return src.join([
        f"/* ---- the audio front-end: {a.description} ----\n"
        f"   Samples are {what} at {U}_AUDIO_SAMPLE_RATE Hz; a frame of {U}_AUDIO_WINDOW samples\n"
        f"   every {U}_AUDIO_HOP gives {U}_AUDIO_FEATURES features, the model's input. State lives\n"
        f"   in the caller's memory; zero it with the reset functions. */",
        f"#define {U}_AUDIO_SAMPLE_RATE {a.sample_rate}",
        f"#define {U}_AUDIO_WINDOW {a.window_samples}",
        f"#define {U}_AUDIO_HOP {a.hop_samples}",
        f"#define {U}_AUDIO_FEATURES {a.output_size}",
        f"#define {U}_AUDIO_INTEGER {int(micro)}",
        "/* the front-end's scratch per frame, on the stack (the FFT's buffer) */",
        f"#define {U}_AUDIO_SCRATCH_BYTES {scratch}",
        "/* the most frames one call with `count` samples completes */",
        f"#define {U}_AUDIO_MAX_FRAMES(count) (((count) + {U}_AUDIO_HOP - 1) / {U}_AUDIO_HOP)\n",
        f"typedef {sample} {P}_audio_sample;",
        f"typedef struct {{\n    {P}_audio_sample samples[{U}_AUDIO_WINDOW];  /* the window, a ring "
        f"*/\n    int32_t fill, head;  /* samples in it, where the oldest is */\n{noise}}} "
        f"{P}_audio_state;",
        f"typedef struct {{\n    {P}_audio_state audio;\n{model_state}}} {P}_listener;",
        f"extern const size_t {P}_audio_state_bytes, {P}_listener_bytes;  /* their sizes */\n",
        f"void {P}_audio_reset({P}_audio_state *s);",
        "/* the front-end alone: the frames `count` samples complete -> features (frames, "
        "FEATURES) */",
        f"int {P}_audio_push({P}_audio_state *s, const {P}_audio_sample *pcm, int count, "
        f"float *features);",
        f"void {P}_listener_reset({P}_listener *l);",
        "/* front-end + model: one call per audio buffer; the outputs of the frames it completes\n"
        "   -> y (frames, OUTPUT_SIZE); returns the number of frames */",
        f"int {P}_listen({P}_listener *l, const {P}_audio_sample *pcm, int count, float *y);\n",
    ])


def generate(config: dict, prefix: str, *, integer_model: bool) -> tuple[str, str] | None:
    """(text for the end of the .c, declarations for the .h) of the config's audio front-end, or
    None when the model reads frames."""
    a = audio_of(config)
    if a is None:
        return None
    check(config)
    P, U = prefix, prefix.upper()
    if isinstance(a, Micro):
        c, _ = _micro(a, P, U)
        noise, lnoise = "s->noise, ", "l->audio.noise, "
    else:
        c, _ = _logmel(a, P, U)
        noise = lnoise = ""
    step = _STEP_INT if integer_model else _STEP_FLOAT
    stage = (_STAGE_C.replace("@STEP@", step).replace("@NOISE@", noise)
             .replace("@LNOISE@", lnoise).replace("@P@", P).replace("@U@", U))
    return src.join(["#include <string.h>", *c, stage]), _header(a, P, U, integer_model)


def attach(c_text: str, h_text: str, config: dict, prefix: str, *,
           integer_model: bool) -> tuple[str, str]:
    """The export's ``.c`` and ``.h`` with the audio front-end (unchanged without one)."""
    got = generate(config, prefix, integer_model=integer_model)
    if got is None:
        return c_text, h_text
    c_part, h_part = got
    decoder = emit_decoder.generate(config, prefix)  # a continuous model's: PREFIX_events
    if decoder is not None:
        c_part, h_part = c_part + decoder[0], h_part + decoder[1]
    close = "#ifdef __cplusplus\n}\n#endif\n"
    at = h_text.rfind(close)
    if at < 0:
        raise AssertionError("the generated header has no closing extern \"C\" block")
    return c_text + "\n" + c_part, h_text[:at] + h_part + "\n" + h_text[at:]


__all__ = ["attach", "generate", "check", "audio_of"]
