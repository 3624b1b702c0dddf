"""KISS FFT's 16-bit fixed-point real FFT in C (``FIXED_POINT=16``), for the integer
microfrontend (:mod:`.emit_micro`): the arithmetic of :mod:`slimedge.frontend.kissfft` bit for bit.

Complex values are int16 pairs packed in a ``uint32_t`` (the real part in the low half). Where
the compiler targets the Arm DSP extension (Cortex-M4/M7/M33: ``__ARM_FEATURE_DSP``, unless
``SLIMEDGE_NO_DSP``) both halves go through one instruction: packed adds (SADD16, SASX, ...),
the complex product by SMLSD/SMLADX, the stage's division by SMLABB/SMLATT (the imaginary half
times 2k, so that one PKHTB packs both roundings), the split's HALF_OF by SHADD16/SHSUB16.
Elsewhere the same arithmetic in portable C. The stages are emitted one call each with their
constants (radix, m, twiddle stride), the first one shifting its inputs (the window's
normalisation), so the compiler specialises every loop.

:func:`generate` gives the constants (the input order, the twiddles) and the functions, the
last ``PREFIX_rfft(z, shift)``: NCFFT packed complex values in the FFT's input order -> the
NCFFT + 1 bins of the real FFT, in place.
"""
from __future__ import annotations

import numpy as np

from ...frontend import kissfft
from . import source as src

_KISS_C = r"""
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
   place over f[0], f[m], ...; twiddles t1.. The first stage (`first`, a constant where it is
   inlined) shifts its inputs, and skips its products: its m is 1, so every twiddle is
   twiddles[0] = (32767, 0), and C_MUL by it is sround(d * 32767) per half, which is d itself
   for |d| <= 16383, where the stage's division leaves every value */
@U@_INLINE uint32_t @P@_twiddled(uint32_t d, uint32_t t, const int first)
{
    return first ? d : @P@_cmul(d, t);
}
@U@_INLINE void @P@_bfly2(uint32_t *f, const int m, uint32_t t1, const int first, int shift)
{
    uint32_t x0 = f[0], x1 = f[m];
    if (first) { x0 = @P@_shl(x0, shift); x1 = @P@_shl(x1, shift); }
    const uint32_t a = @P@_div(x0, 16383);
    const uint32_t t = @P@_twiddled(@P@_div(x1, 16383), t1, first);
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
    const uint32_t s0 = @P@_twiddled(@P@_div(x1, 8191), t1, first);
    const uint32_t s1 = @P@_twiddled(@P@_div(x2, 8191), t2, first);
    const uint32_t s2 = @P@_twiddled(@P@_div(x3, 8191), t3, first);
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

/* kiss_fftr: the real FFT of the NCFFT complex values in z (in the complex FFT's input order,
   each << shift first) -> bins 0..NCFFT in z (NCFFT + 1 values): the complex FFT, then its
   split, in place (each pair k, NCFFT - k read before it is written) */
static void @P@_rfft(uint32_t *z, int shift)
{
    @P@_cfft(z, shift);
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
"""


def packed(t: np.ndarray) -> np.ndarray:
    """(n, 2) int16 values as n uint32: the real part in the low half."""
    t = np.asarray(t, np.int64)
    return (t[:, 0] & 0xFFFF) | ((t[:, 1] & 0xFFFF) << 16)


def generate(n_fft: int, P: str, U: str) -> list[str]:
    """The .c parts of the n_fft-point real FFT (n_fft a power of two): ``U_NCFFT``, the input
    order ``P_fft_slot`` (complex input j, samples 2j and 2j + 1, goes to z[slot[j]]), the
    twiddles, and ``P_rfft``."""
    ncfft = n_fft // 2
    perm, stages = kissfft._plan(ncfft)
    slot = np.empty(ncfft, np.int64)
    slot[perm] = np.arange(ncfft)
    calls = "\n".join(f"    @P@_radix{p}(z, {m}, {f}, {int(k == 0)}, shift);"
                      for k, (p, m, f) in enumerate(stages))
    return [
        f"#define {U}_NCFFT {ncfft}\n",
        src.array("uint16_t", f"{P}_fft_slot", slot, comment="where complex input j starts the FFT"),
        src.array("uint32_t", f"{P}_twiddles", packed(kissfft.twiddles(ncfft)),
                  comment="complex twiddles, Q15 (re | im << 16)"),
        src.array("uint32_t", f"{P}_super_twiddles", packed(kissfft.super_twiddles(n_fft)),
                  comment="the real FFT's twiddles, Q15 (re | im << 16)"),
        _KISS_C.replace("@STAGES@", calls).replace("@P@", P).replace("@U@", U),
    ]


__all__ = ["generate", "packed"]
