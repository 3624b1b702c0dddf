"""The microfrontend's integer algorithm compiled with numba, frame by frame: the same arithmetic
as :mod:`.microfrontend` and :mod:`.kissfft` (NumPy), bit for bit, for a stream pushed in small
chunks (one 20 ms push is one frame; NumPy's per-call overhead made that about 25x real time).

Used by :meth:`Micro.process <slimedge.frontend.microfrontend.Micro.process>` when asked
(``compiled=True``) and numba is installed (the ``train`` extra, or ``pip install numba``;
``SLIMEDGE_NO_NUMBA=1`` turns it off); the NumPy
code stays the reference, and ``tests/test_audio_frontend.py`` checks the two agree on every
value. The kernel compiles once per process (a few seconds), on first use.

Every C type is kept: int16 values wrap like a C assignment (:func:`_w16`), int32 sums and
products like two's complement (:func:`_w32`), the filterbank accumulates in uint64.
"""
from __future__ import annotations

import functools
import os

import numpy as np

from . import kissfft
from . import micro_tables as mt


def available() -> bool:
    """Whether the compiled kernel can be used (numba importable, not turned off)."""
    return not os.environ.get("SLIMEDGE_NO_NUMBA") and _numba_installed()


@functools.cache
def _numba_installed() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _kernel():
    import numba

    jit = numba.njit(cache=False, nogil=True)

    @jit
    def w16(x):
        return ((x + 32768) & 0xFFFF) - 32768

    @jit
    def w32(x):
        return ((x + 2147483648) & 0xFFFFFFFF) - 2147483648

    @jit
    def sround(x):  # int32 (x + 2**14) >> 15, stored as int16
        return w16(w32(w32(x) + 16384) >> 15)

    @jit
    def fixdiv(x, p):
        return sround(x * (32767 // p))

    @jit
    def bitlength(x):
        n = 0
        while x > 0:
            x >>= 1
            n += 1
        return n

    @jit
    def cfft(re, im, perm, stage_p, stage_m, stage_f, tw, tmp_r, tmp_i):
        n = re.shape[0]
        for j in range(n):
            tmp_r[j] = re[perm[j]]
            tmp_i[j] = im[perm[j]]
        for j in range(n):
            re[j] = tmp_r[j]
            im[j] = tmp_i[j]
        for s in range(stage_p.shape[0]):
            p, m, fs = stage_p[s], stage_m[s], stage_f[s]
            for j in range(n):
                re[j] = fixdiv(re[j], p)
                im[j] = fixdiv(im[j], p)
            for a in range(n // (p * m)):
                b = a * p * m
                for k in range(m):
                    if p == 2:
                        t0, t1 = tw[k * fs, 0], tw[k * fs, 1]
                        r0, i0 = re[b + k], im[b + k]
                        r1, i1 = re[b + m + k], im[b + m + k]
                        tr = sround(r1 * t0 - i1 * t1)
                        ti = sround(r1 * t1 + i1 * t0)
                        re[b + k], im[b + k] = w16(r0 + tr), w16(i0 + ti)
                        re[b + m + k], im[b + m + k] = w16(r0 - tr), w16(i0 - ti)
                    else:
                        f0r, f0i = re[b + k], im[b + k]
                        r1, i1 = re[b + m + k], im[b + m + k]
                        r2, i2 = re[b + 2 * m + k], im[b + 2 * m + k]
                        r3, i3 = re[b + 3 * m + k], im[b + 3 * m + k]
                        a1, a2, a3 = k * fs, 2 * k * fs, 3 * k * fs
                        s0r = sround(r1 * tw[a1, 0] - i1 * tw[a1, 1])
                        s0i = sround(r1 * tw[a1, 1] + i1 * tw[a1, 0])
                        s1r = sround(r2 * tw[a2, 0] - i2 * tw[a2, 1])
                        s1i = sround(r2 * tw[a2, 1] + i2 * tw[a2, 0])
                        s2r = sround(r3 * tw[a3, 0] - i3 * tw[a3, 1])
                        s2i = sround(r3 * tw[a3, 1] + i3 * tw[a3, 0])
                        s5r, s5i = w16(f0r - s1r), w16(f0i - s1i)
                        f0r, f0i = w16(f0r + s1r), w16(f0i + s1i)
                        s3r, s3i = w16(s0r + s2r), w16(s0i + s2i)
                        s4r, s4i = w16(s0r - s2r), w16(s0i - s2i)
                        re[b + k], im[b + k] = w16(f0r + s3r), w16(f0i + s3i)
                        re[b + m + k], im[b + m + k] = w16(s5r + s4i), w16(s5i - s4r)
                        re[b + 2 * m + k], im[b + 2 * m + k] = w16(f0r - s3r), w16(f0i - s3i)
                        re[b + 3 * m + k], im[b + 3 * m + k] = w16(s5r - s4i), w16(s5i + s4r)

    @jit
    def process(frames, estimate, window, shift_bits, perm, stage_p, stage_m, stage_f, tw, st,
                start_index, end_index, ch_ptr, ch_bin, ch_w, smooth, min_remaining, sb,
                pcan, gain_lut, pcan_shift, log, log_lut, cb, scale_shift):
        T, W = frames.shape
        C = estimate.shape[0]
        nfft = 1
        while nfft < W:
            nfft <<= 1
        ncfft = nfft // 2
        out = np.empty((T, C), np.int64)
        e = estimate.copy()
        x = np.zeros(nfft, np.int64)
        re = np.empty(ncfft, np.int64)
        im = np.empty(ncfft, np.int64)
        tmp_r = np.empty(ncfft, np.int64)
        tmp_i = np.empty(ncfft, np.int64)
        outr = np.zeros(ncfft + 1, np.int64)
        outi = np.zeros(ncfft + 1, np.int64)
        energy = np.zeros(ncfft + 1, np.uint64)
        NRB = 14
        L, S = 16, 7
        for t in range(T):
            # 1. window, then the shift that gives the largest magnitude 15 bits
            mag = 0
            for i in range(W):
                v = (np.int64(frames[t, i]) * window[i]) >> shift_bits
                x[i] = v
                a = 0 if v == -32768 else abs(v)
                if a > mag:
                    mag = a
            shift = 15 - bitlength(mag)
            for i in range(W):
                x[i] = w16((x[i] & 0xFFFF) << shift)
            # 2. the real FFT (kiss_fftr)
            for j in range(ncfft):
                re[j] = x[2 * j]
                im[j] = x[2 * j + 1]
            cfft(re, im, perm, stage_p, stage_m, stage_f, tw, tmp_r, tmp_i)
            dr, di = fixdiv(re[0], 2), fixdiv(im[0], 2)
            outr[0], outr[ncfft] = w16(dr + di), w16(dr - di)
            outi[0], outi[ncfft] = 0, 0
            for k in range(1, ncfft // 2 + 1):
                fpk_r, fpk_i = fixdiv(re[k], 2), fixdiv(im[k], 2)
                fpnk_r, fpnk_i = fixdiv(re[ncfft - k], 2), fixdiv(w16(-im[ncfft - k]), 2)
                f1r, f1i = w16(fpk_r + fpnk_r), w16(fpk_i + fpnk_i)
                f2r, f2i = w16(fpk_r - fpnk_r), w16(fpk_i - fpnk_i)
                s0, s1 = st[k - 1, 0], st[k - 1, 1]
                twr = sround(f2r * s0 - f2i * s1)
                twi = sround(f2r * s1 + f2i * s0)
                outr[k], outi[k] = w16((f1r + twr) >> 1), w16((f1i + twi) >> 1)
                outr[ncfft - k] = w16((f1r - twr) >> 1)
                outi[ncfft - k] = w16((twi - f1i) >> 1)
            # 3. energy (int32, as uint64 two's complement), filterbank, rounded square root
            for b in range(ncfft + 1):
                if b < start_index or b >= end_index:
                    energy[b] = np.uint64(0)
                else:
                    v = (outr[b] * outr[b] + outi[b] * outi[b]) & 0xFFFFFFFF
                    if v >= 2147483648:
                        v = v - 4294967296
                    energy[b] = np.uint64(v) if v >= 0 else \
                        np.uint64(0xFFFFFFFFFFFFFFFF) - np.uint64(-v - 1)
            for c in range(C):
                acc = np.uint64(0)
                for q in range(ch_ptr[c], ch_ptr[c + 1]):
                    acc += energy[ch_bin[q]] * ch_w[q]
                r = np.uint64(np.floor(np.sqrt(np.float64(acc))))
                if r * r > acc:
                    r -= np.uint64(1)
                if (r + np.uint64(1)) * (r + np.uint64(1)) <= acc:
                    r += np.uint64(1)
                cap = np.uint64(0xFFFF) if (acc >> np.uint64(32)) == np.uint64(0) \
                    else np.uint64(0xFFFFFFFF)
                if acc - r * r > r and r != cap:
                    r += np.uint64(1)
                s = np.int64(r >> np.uint64(shift)) & 0xFFFFFFFF
                # 4. noise reduction
                sm = smooth[c]
                up = (s << sb) & 0xFFFFFFFF
                e[c] = ((up * sm + e[c] * ((1 << NRB) - sm)) >> NRB) & 0xFFFFFFFF
                est = e[c]
                floor_ = (s * min_remaining) >> NRB
                sub = (up - min(est, up)) >> sb
                s = max(sub, floor_)
                # 5. PCAN
                if pcan:
                    n = gain_lut.shape[0]
                    if est <= 2:
                        g = gain_lut[est]
                    else:
                        interval = bitlength(est)
                        base = max(4 * interval - 6, 0)
                        if interval < 11:
                            frac = (est << (11 - interval)) & 0x3FF
                        else:
                            frac = (est >> (interval - 11)) & 0x3FF
                        g = (gain_lut[min(base + 2, n - 1)] * frac) >> 5
                        g = w32(g + gain_lut[min(base + 1, n - 1)] * 32)
                        g = w32(g * frac)
                        g = w16((w32(g + 16384) >> 15) + gain_lut[base])
                    gain = np.uint64(g & 0xFFFFFFFF)
                    snr = np.int64((np.uint64(s) * gain) >> np.uint64(pcan_shift)) & 0xFFFFFFFF
                    if snr < (2 << 12):
                        s = ((snr * snr) & 0xFFFFFFFF) >> (2 + 2 * 12 - 6)
                    else:
                        s = ((snr >> (12 - 6)) - (1 << 6)) & 0xFFFFFFFF
                # 6. log
                if log:
                    v = ((s << cb) & 0xFFFFFFFF) if cb >= 0 else (s >> -cb)
                    if v > 1:
                        integer = bitlength(v) - 1
                        frac = v - (np.int64(1) << integer)
                        if integer < L:
                            frac = frac << (L - integer)
                        else:
                            frac = frac >> (integer - L)
                        seg = frac >> (L - S)
                        c0, c1 = log_lut[seg], log_lut[seg + 1]
                        frac = frac + c0 + (((c1 - c0) * (frac - seg * (1 << (L - S)))) >> L)
                        log2 = ((integer << L) + frac) & 0xFFFFFFFF
                        half = 1 << (L - 1)
                        loge = ((45426 * log2 + half) >> L) & 0xFFFFFFFF
                        s = ((((loge << scale_shift) & 0xFFFFFFFF) + half) >> L) & 0xFFFFFFFF
                    else:
                        s = 0
                out[t, c] = min(s, 0xFFFF)
        return out, e

    return process


@functools.cache
def _constants(spec) -> tuple:
    """The kernel's tables for a :class:`~.microfrontend.Micro` spec (hashable, frozen)."""
    t = spec.tables
    n = spec.fft_size // 2
    perm, stages = kissfft._plan(n)
    dense = t["dense"]
    ptr, bins, ws = [0], [], []
    for c in range(spec.channels):
        nz = np.flatnonzero(dense[:, c])
        bins += nz.tolist()
        ws += dense[nz, c].tolist()
        ptr.append(len(bins))
    smooth = np.where(np.arange(spec.channels) % 2 == 0, t["even"], t["odd"]).astype(np.int64)
    fb = t["filterbank"]
    assert (mt.NOISE_REDUCTION_BITS, mt.LOG_SCALE_LOG2, mt.LOG_SEGMENTS_LOG2, mt.LOG_COEFF,
            mt.PCAN_SNR_BITS, mt.PCAN_OUTPUT_BITS) == (14, 16, 7, 45426, 12, 6)
    return (np.asarray(t["window"], np.int64), mt.WINDOW_BITS, np.asarray(perm, np.int64),
            np.array([s[0] for s in stages], np.int64), np.array([s[1] for s in stages], np.int64),
            np.array([s[2] for s in stages], np.int64),
            kissfft.twiddles(n).astype(np.int64), kissfft.super_twiddles(spec.fft_size).astype(
                np.int64), int(fb.start_index), int(fb.end_index), np.array(ptr, np.int64),
            np.array(bins, np.int64), np.array(ws, np.uint64), smooth, int(t["min_remaining"]),
            int(spec.smoothing_bits), bool(spec.pcan), np.asarray(t["gain_lut"], np.int64),
            int(spec.gain_bits - spec.correction_bits - mt.PCAN_SNR_BITS), bool(spec.log),
            np.asarray(t["log_lut"], np.int64), int(spec.correction_bits), int(spec.scale_shift))


def process(spec, frames: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`Micro.process` compiled: int16 frames (T, window), the noise estimate (channels,)
    -> (T, channels) int64 features and the estimate after the last frame."""
    frames, estimate = np.asarray(frames), np.asarray(estimate)
    # contiguous and writeable (a read-only view would compile a second specialisation)
    if frames.dtype != np.int16 or not (frames.flags.c_contiguous and frames.flags.writeable):
        frames = np.array(frames, np.int16, order="C")
    if estimate.dtype != np.int64 or not (estimate.flags.c_contiguous
                                          and estimate.flags.writeable):
        estimate = np.array(estimate, np.int64, order="C")
    return _kernel()(frames, estimate, *_constants(spec))


__all__ = ["available", "process"]
