"""The fixed-point C helpers of the integer step (rescaling, saturation, the tanh table, the DSP
path's byte extract), written into an export only where its step uses them."""
from __future__ import annotations

from . import fixedpoint as fx
from . import source as src


def helpers(prefix: str, used: set[str]) -> list[str]:
    P = prefix
    out = [f"/* The integer step relies on >> of a negative value being an arithmetic shift, as on\n"
           f"   every compiler slimedge knows of (C99 leaves it to the implementation). */\n"
           f"typedef char {P}_arithmetic_shift_check[((-3) >> 1) == -2 ? 1 : -1];\n"]
    if "dsp" in used:
        out.append(f"/* Cores with the DSP extension (Cortex-M4, M7, M33...) take the matmuls two\n"
                   f"   multiply-accumulates at a time (SMLAD); elsewhere the plain C loops run. Both\n"
                   f"   sum the same exact integer products. -DSLIMEDGE_NO_DSP forces the C loops. */\n"
                   f"#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32) && "
                   f"!defined(__ARM_BIG_ENDIAN) \\\n"
                   f"    && defined(__GNUC__) && !defined(SLIMEDGE_NO_DSP)\n"
                   f"#define {P.upper()}_DSP 1\n"
                   f"#include <arm_acle.h>\n#include <string.h>\n"
                   f"/* bytes 1 and 3 of x, sign-extended to int16 (SXTB16 of x rotated by 8) */\n"
                   f"static int32_t {P}_sxtb16_ror8(int32_t x)\n{{\n"
                   f"    int32_t r;\n"
                   f"    __asm__(\"sxtb16 %0, %1, ror #8\" : \"=r\"(r) : \"r\"(x));\n"
                   f"    return r;\n}}\n"
                   f"#else\n#define {P.upper()}_DSP 0\n#endif\n")
    if "rq" in used:
        out.append(f"/* round(v * m / 2^r) in int32: the generator proved |v * m| + 2^(r-1) < 2^31 */\n"
                   f"static int32_t {P}_rq(int32_t v, int32_t m, int r)\n{{\n"
                   f"    return (v * m + ((int32_t)1 << (r - 1))) >> r;\n}}\n")
    if "sat" in used:
        out.append(f"static int32_t {P}_sat(int32_t v, int32_t lo, int32_t hi)\n{{\n"
                   f"    return v < lo ? lo : v > hi ? hi : v;\n}}\n")
    if "rq64" in used:
        out.append(f"/* round(v * m / 2^r) in int64: where the bounds leave int32 too few bits */\n"
                   f"static int64_t {P}_rq64(int64_t v, int64_t m, int r)\n{{\n"
                   f"    return (v * m + ((int64_t)1 << (r - 1))) >> r;\n}}\n")
    if "sat64" in used:
        out.append(f"static int32_t {P}_sat64(int64_t v, int32_t lo, int32_t hi)\n{{\n"
                   f"    return v < lo ? lo : v > hi ? hi : (int32_t)v;\n}}\n")
    if used & {"tanh", "sigmoid"}:
        table = src.array("int16_t", f"{P}_tanh_table", fx.tanh_table(),
                          comment=f"round(32768 tanh(k / 64)), k = 0..{fx.TANH_ENTRIES - 1}, "
                                  f"capped at 32767")
        step, half = fx.TANH_STEP_BITS, 1 << (fx.TANH_STEP_BITS - 1)
        out.append(table)
        top = (fx.TANH_RANGE << fx.Z_FRAC_BITS) - 1
        out.append(f"/* tanh: Q16 in, Q15 out; table with linear interpolation, odd symmetry,\n"
                   f"   no branches: |z| clamps to just under {fx.TANH_RANGE}, where the last entries\n"
                   f"   are already {fx.Q15_MAX} (the value past the table) */\n"
                   f"static inline int32_t {P}_tanh(int32_t z)\n{{\n"
                   f"    const int32_t s = z >> 31; /* 0 or -1 */\n"
                   f"    int32_t t = (z ^ s) - s;\n"
                   f"    t = t < {top} ? t : {top};\n"
                   f"    const int32_t k = t >> {step}, f = t & {(1 << step) - 1};\n"
                   f"    const int32_t a = {P}_tanh_table[k];\n"
                   f"    const int32_t y = a + ((({P}_tanh_table[k + 1] - a) * f + {half}) >> {step});\n"
                   f"    return (y ^ s) - s;\n}}\n")
    if "sigmoid" in used:
        out.append(f"/* sigmoid: Q16 in, Q15 out; (1 + tanh(z / 2)) / 2 */\n"
                   f"static int32_t {P}_sigmoid(int32_t z)\n{{\n"
                   f"    const int32_t y = ({fx.Q15_MAX + 1} + {P}_tanh(z / 2) + 1) >> 1;\n"
                   f"    return y > {fx.Q15_MAX} ? {fx.Q15_MAX} : y;\n}}\n")
    return out


