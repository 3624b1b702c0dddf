"""The 16-bit fixed-point real FFT of KISS FFT (``FIXED_POINT=16``), as TFLite Micro's
microfrontend runs it, in integer NumPy over a batch of frames.

Bit for bit the C code's arithmetic: int16 samples and twiddles (Q15), every stage divides by its
radix with ``sround(x * (32767 // p))``, products round with ``(a*b + 2**14) >> 15``, every stored
value wraps to int16 like the C assignment. The complex FFT of n/2 points is factored like
``kf_factor`` (radix 4 first, then 2: the microfrontend's sizes are powers of two) and computed
stage by stage in the order ``kf_work`` recurses; ``kiss_fftr`` then splits it into the n/2 + 1
bins of the real input. Twiddles: ``floor(0.5 + 32767 * cos(phase))`` with the C expressions for
the phase, the cosine correctly rounded (:mod:`.exact`), so the table is the same everywhere.
The output is about the float DFT divided by n.
"""
from __future__ import annotations

from functools import lru_cache
from math import floor

import numpy as np

from . import exact

SAMP_MAX = 32767
_PI = 3.141592653589793  # the double nearest pi (both of KISS FFT's spellings round to it)


def wrap16(x: np.ndarray) -> np.ndarray:
    """int64 values as the int16 a C assignment stores (two's complement wrap), kept in int64."""
    return ((x + 32768) & 0xFFFF) - 32768


def wrap32(x: np.ndarray) -> np.ndarray:
    return ((x + 2**31) & 0xFFFFFFFF) - 2**31


# The butterflies keep C's types: int16 values, int32 products and sums (NumPy's integer
# arithmetic wraps like the two's complement machines the C code runs on).
def _sround(x: np.ndarray) -> np.ndarray:
    """``sround``: int32 (x + 2**14) >> 15, stored as int16."""
    return ((x + np.int32(1 << 14)) >> 15).astype(np.int16)


def _fixdiv(x: np.ndarray, p: int) -> np.ndarray:
    return _sround(x.astype(np.int32) * np.int32(SAMP_MAX // p))


def _cmul(ar, ai, br, bi):
    ar, ai = ar.astype(np.int32), ai.astype(np.int32)
    return _sround(ar * br - ai * bi), _sround(ar * bi + ai * br)


def factors(n: int) -> list[tuple[int, int]]:
    """``kf_factor``: [(radix, remaining length), ...] for an n-point complex FFT."""
    out, p, floor_sqrt = [], 4, floor(n ** 0.5)
    while True:
        while n % p:
            p = {4: 2, 2: 3}.get(p, p + 2)
            if p > floor_sqrt:
                p = n
        n //= p
        out.append((p, n))
        if n <= 1:
            return out


@lru_cache(maxsize=None)
def twiddles(n: int) -> np.ndarray:
    """The n complex twiddles (n, 2) of an n-point forward FFT (``kiss_fft_alloc``), as int32."""
    out = np.empty((n, 2), np.int32)
    for i in range(n):
        phase = -2 * _PI * i / n
        out[i] = (floor(0.5 + SAMP_MAX * exact.cos(phase)), floor(0.5 + SAMP_MAX * exact.sin(phase)))
    return out


@lru_cache(maxsize=None)
def super_twiddles(nfft: int) -> np.ndarray:
    """The nfft/4 twiddles (., 2) of ``kiss_fftr_alloc`` for a real FFT of nfft points."""
    ncfft = nfft // 2
    out = np.empty((ncfft // 2, 2), np.int32)
    for i in range(ncfft // 2):
        phase = -_PI * ((i + 1) / ncfft + 0.5)
        out[i] = (floor(0.5 + SAMP_MAX * exact.cos(phase)), floor(0.5 + SAMP_MAX * exact.sin(phase)))
    return out


@lru_cache(maxsize=None)
def _plan(n: int) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """The input order ``kf_work`` leaves in its output before the butterflies, and the stages
    (radix p, m, twiddle stride), innermost first."""
    fs = factors(n)

    def order(idx, level):
        p, m = fs[level]
        if m == 1:
            return list(idx)
        return [j for k in range(p) for j in order(idx[k::p], level + 1)]
    stages = [(p, m, n // (p * m)) for p, m in reversed(fs)]
    return np.asarray(order(list(range(n)), 0)), stages


def cfft(re: np.ndarray, im: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``kiss_fft`` (forward, fixed point) over the last axis of int16 arrays."""
    n = re.shape[-1]
    perm, stages = _plan(n)
    tw = twiddles(n)
    re, im = re[..., perm].copy(), im[..., perm].copy()
    lead = re.shape[:-1]
    for p, m, fstride in stages:
        shape = (*lead, n // (p * m), p, m)
        r, i = re.reshape(shape), im.reshape(shape)
        r, i = _fixdiv(r, p), _fixdiv(i, p)
        k = np.arange(m)
        if p == 2:
            t = tw[k * fstride]
            tr, ti = _cmul(r[..., 1, :], i[..., 1, :], t[:, 0], t[:, 1])
            out_r = np.stack([r[..., 0, :] + tr, r[..., 0, :] - tr], -2)
            out_i = np.stack([i[..., 0, :] + ti, i[..., 0, :] - ti], -2)
        elif p == 4:
            t1, t2, t3 = tw[k * fstride], tw[2 * k * fstride], tw[3 * k * fstride]
            s0r, s0i = _cmul(r[..., 1, :], i[..., 1, :], t1[:, 0], t1[:, 1])
            s1r, s1i = _cmul(r[..., 2, :], i[..., 2, :], t2[:, 0], t2[:, 1])
            s2r, s2i = _cmul(r[..., 3, :], i[..., 3, :], t3[:, 0], t3[:, 1])
            f0r, f0i = r[..., 0, :], i[..., 0, :]
            s5r, s5i = f0r - s1r, f0i - s1i
            f0r, f0i = f0r + s1r, f0i + s1i
            s3r, s3i = s0r + s2r, s0i + s2i
            s4r, s4i = s0r - s2r, s0i - s2i
            out_r = np.stack([f0r + s3r, s5r + s4i, f0r - s3r, s5r - s4i], -2)
            out_i = np.stack([f0i + s3i, s5i - s4r, f0i - s3i, s5i + s4r], -2)
        else:
            raise ValueError(f"a {n}-point FFT needs radix {p}; the microfrontend's FFT sizes are "
                             f"powers of two")
        re, im = out_r.reshape(*lead, n), out_i.reshape(*lead, n)
    return re, im


def rfft(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``kiss_fftr``: int16 frames (..., nfft) -> (real, imag) (..., nfft/2 + 1), int16 values
    in int64."""
    x = np.asarray(x).astype(np.int16)
    nfft = x.shape[-1]
    ncfft = nfft // 2
    tr, ti = cfft(x[..., 0::2], x[..., 1::2])
    out_r = np.zeros((*x.shape[:-1], ncfft + 1), np.int64)
    out_i = np.zeros_like(out_r)
    dr, di = _fixdiv(tr[..., 0], 2), _fixdiv(ti[..., 0], 2)
    out_r[..., 0], out_r[..., ncfft] = dr + di, dr - di
    k = np.arange(1, ncfft // 2 + 1)
    fpk_r, fpk_i = _fixdiv(tr[..., k], 2), _fixdiv(ti[..., k], 2)
    fpnk_r, fpnk_i = _fixdiv(tr[..., ncfft - k], 2), _fixdiv(-ti[..., ncfft - k], 2)
    f1r, f1i = fpk_r + fpnk_r, fpk_i + fpnk_i
    f2r, f2i = fpk_r - fpnk_r, fpk_i - fpnk_i
    st = super_twiddles(nfft)
    twr, twi = _cmul(f2r, f2i, st[:, 0], st[:, 1])
    f1r, f1i, twr, twi = (v.astype(np.int32) for v in (f1r, f1i, twr, twi))
    out_r[..., k] = ((f1r + twr) >> 1).astype(np.int16)  # HALF_OF in int, stored as int16
    out_i[..., k] = ((f1i + twi) >> 1).astype(np.int16)
    out_r[..., ncfft - k] = ((f1r - twr) >> 1).astype(np.int16)
    out_i[..., ncfft - k] = ((twi - f1i) >> 1).astype(np.int16)
    return out_r, out_i


__all__ = ["rfft", "cfft", "factors", "twiddles", "super_twiddles", "wrap16"]
