/* slimedge_kernels.h: the fixed kernels every slimedge C export calls (C99).

   One file, the same for every model and written beside every export: the model descriptor and
   its one API, the matrix-vector products (float; int8 with the ARM DSP extension and portable),
   the integer requantisation, and the tanh table with the integer gate functions. A model's .c
   holds only its weights (named arrays) and its step, written as calls to these.

   Linkage. The functions are static inline, no symbols: the small helpers inline anywhere, and
   the two matvecs are always inlined, so each call is specialised to its constant sizes (the
   trip counts and offsets of a loop written out for the model, which the instruction budgets
   of a Cortex-M4 and the vector units of a desktop CPU both need). The tanh table has external
   linkage and is defined in the file of every full-integer model (its .c defines
   SLIMEDGE_KERNELS_S8 before including its header) as a weak symbol: with gcc or clang (ELF,
   Mach-O) a firmware that links several models keeps one copy. Elsewhere it is static: each
   model's file keeps its own. Define SLIMEDGE_KERNELS_STATIC to get that everywhere.

   Integer arithmetic relies on >> of a negative value being an arithmetic shift, as on every
   compiler slimedge knows of (C99 leaves it to the implementation; checked below). */
#ifndef SLIMEDGE_KERNELS_H
#define SLIMEDGE_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLIMEDGE_KERNELS_VERSION 1

/* ---- the model descriptor: one API for every model ------------------------------------------ */

/* One call's arrays. Batched: x (batch, input_size), y (batch, output_size), h, c
   (num_layers, batch, hidden_size). h_next and c_next may be h and c themselves (in place). */
typedef struct {
    int batch;            /* streams (rows) in this call */
    const float *x;       /* (batch, input_size) */
    const float *h;       /* (num_layers, batch, hidden_size) */
    const float *c;       /* (num_layers, batch, hidden_size) */
    float *y;             /* (batch, output_size) */
    float *h_next;        /* like h; may be h itself (in place) */
    float *c_next;        /* like c; may be c itself (in place) */
} slimedge_io;

/* What firmware needs to know of a model, and its step. Every export defines one,
   const slimedge_model PREFIX_model, in flash. */
typedef struct slimedge_model {
    const char *name;                /* the export's identifier prefix */
    int input_size, hidden_size, num_layers, output_size;
    int state_size;                  /* floats of h (and of c) per stream: layers x hidden */
    size_t stack_bytes;              /* an upper bound of the stack one step uses */
    const char *const *labels;       /* output_size names (the indices when it has none) */
    void (*step_io)(const slimedge_io *io);
} slimedge_model;

/* one stream: x (input_size) -> y (output_size); h, c (state_size each) updated in place */
static inline void slimedge_step(const slimedge_model *m, const float *x, float *h, float *c,
                                 float *y)
{
    slimedge_io io;
    io.batch = 1; io.x = x; io.h = h; io.c = c; io.y = y; io.h_next = h; io.c_next = c;
    m->step_io(&io);
}

/* batch streams in one call; h, c updated in place */
static inline void slimedge_step_batch(const slimedge_model *m, int batch, const float *x,
                                       float *h, float *c, float *y)
{
    slimedge_io io;
    io.batch = batch; io.x = x; io.h = h; io.c = c; io.y = y; io.h_next = h; io.c_next = c;
    m->step_io(&io);
}

/* zero the state of batch streams: a fresh start */
static inline void slimedge_reset_batch(const slimedge_model *m, int batch, float *h, float *c)
{
    const size_t size = (size_t)batch * (size_t)m->state_size;
    for (size_t i = 0; i < size; i++) h[i] = c[i] = 0.0f;
}

static inline void slimedge_reset(const slimedge_model *m, float *h, float *c)
{
    slimedge_reset_batch(m, 1, h, c);
}

/* ---- linkage of the kernels' data ---------------------------------------------------------- */
#if !defined(SLIMEDGE_KERNELS_STATIC) && defined(__GNUC__) && (defined(__ELF__) || defined(__APPLE__))
#define SLIMEDGE_KERNEL __attribute__((weak, visibility("hidden")))
#define SLIMEDGE_KERNEL_DATA_DECL extern __attribute__((visibility("hidden")))
#else
#define SLIMEDGE_KERNEL static
#define SLIMEDGE_KERNEL_DATA_DECL static
#endif
#if defined(__GNUC__)
#define SLIMEDGE_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define SLIMEDGE_ALWAYS_INLINE static inline
#endif

/* ---- float kernels -------------------------------------------------------------------------- */

/* a * b + c in one fused multiply-add on cores that have one (Cortex-M4F, M7: VFMA); elsewhere
   a * b + c as written (which the compiler may contract itself) */
#if defined(__GNUC__) && defined(__ARM_FEATURE_FMA) && defined(__ARM_FP) && (__ARM_FP & 4)
#define SLIMEDGE_FMA(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define SLIMEDGE_FMA(a, b, c) ((a) * (b) + (c))
#endif

#if defined(__GNUC__)
typedef float slimedge_f32x8 __attribute__((vector_size(32)));
#endif

/* where W[i][j] lies in a slimedge_matvec_f32 weight array: blocks of eight rows stored column
   by column (the eight rows' weights of input j side by side), the last rows % 8 rows row-major
   after them */
#define SLIMEDGE_F32_INDEX(i, j, rows, cols) \
    ((i) < (rows) / 8 * 8 ? (size_t)(i) / 8 * 8 * (size_t)(cols) + (size_t)(j) * 8 + (size_t)(i) % 8 \
                          : (size_t)(i) * (size_t)(cols) + (size_t)(j))

/* y[i] = bias[i] + sum_j W[i][j] x[j], i < rows: W laid out as SLIMEDGE_F32_INDEX says, bias may
   be NULL (zero), and may be y itself (y += W x). Eight rows at a time: each input element is
   loaded once and scales eight contiguous weights into eight sums that stay in registers (on a
   Cortex-M4F eight FP registers and VFMAs; on a desktop CPU one vector FMA). Always inlined:
   called with constant sizes, the compiler specialises each call. */
SLIMEDGE_ALWAYS_INLINE void slimedge_matvec_f32(const float *x, int cols, const float *w,
                                                int rows, const float *bias, float *y)
{
    int i = 0;
    const float *wp = w;
#if defined(__GNUC__) && !(defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M')
    /* a desktop CPU: 64 rows (eight blocks) at a time, each input element loaded once for eight
       vector multiply-adds, one per block (eight independent chains) */
    for (; i + 64 <= rows; i += 64, wp += 64 * (size_t)cols) {
        slimedge_f32x8 acc[8] = {{0.0f}, {0.0f}, {0.0f}, {0.0f}, {0.0f}, {0.0f}, {0.0f}, {0.0f}};
        for (int j = 0; j < cols; j++) {
            const float v = x[j];
            for (int b = 0; b < 8; b++) {
                slimedge_f32x8 wv;
                memcpy(&wv, wp + (size_t)b * 8 * (size_t)cols + 8 * (size_t)j, sizeof wv);
                acc[b] += wv * v;
            }
        }
        for (int b = 0; b < 8; b++) {
            float a[8];
            memcpy(a, &acc[b], sizeof a);
            for (int r = 0; r < 8; r++)
                y[i + 8 * b + r] = bias ? a[r] + bias[i + 8 * b + r] : a[r];
        }
    }
#endif
    for (; i + 8 <= rows; i += 8) {
#if defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M'
        /* a microcontroller: eight named sums, eight FP registers */
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, a4 = 0.0f, a5 = 0.0f, a6 = 0.0f,
              a7 = 0.0f;
        for (int j = 0; j < cols; j++, wp += 8) {
            const float v = x[j];
            a0 = SLIMEDGE_FMA(wp[0], v, a0); a1 = SLIMEDGE_FMA(wp[1], v, a1);
            a2 = SLIMEDGE_FMA(wp[2], v, a2); a3 = SLIMEDGE_FMA(wp[3], v, a3);
            a4 = SLIMEDGE_FMA(wp[4], v, a4); a5 = SLIMEDGE_FMA(wp[5], v, a5);
            a6 = SLIMEDGE_FMA(wp[6], v, a6); a7 = SLIMEDGE_FMA(wp[7], v, a7);
        }
        const float a[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
#elif defined(__GNUC__)
        /* a desktop CPU: the eight sums as one vector (gcc and clang vector types), each input
           element broadcast to a multiply-add */
        slimedge_f32x8 acc[8] = {{0.0f}, {0.0f}, {0.0f}, {0.0f}, {0.0f}, {0.0f}, {0.0f}, {0.0f}};
        slimedge_f32x8 wv;  /* eight independent chains of multiply-adds */
        int j = 0;
        for (; j + 8 <= cols; j += 8, wp += 64) {
            for (int u = 0; u < 8; u++) {
                memcpy(&wv, wp + 8 * u, sizeof wv);
                acc[u] += wv * x[j + u];
            }
        }
        for (; j < cols; j++, wp += 8) {
            memcpy(&wv, wp, sizeof wv);
            acc[0] += wv * x[j];
        }
        acc[0] += acc[1] + (acc[2] + acc[3]) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        float a[8];
        memcpy(a, &acc[0], sizeof a);
#else
        float a[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        for (int j = 0; j < cols; j++, wp += 8)
            for (int r = 0; r < 8; r++) a[r] += wp[r] * x[j];
#endif
        for (int r = 0; r < 8; r++) y[i + r] = bias ? a[r] + bias[i + r] : a[r];
    }
    for (int rest = rows - i; rest > 0; rest--, i++, wp += cols) {
        float a0 = 0.0f;
        for (int j = 0; j < cols; j++) a0 = SLIMEDGE_FMA(wp[j], x[j], a0);
        y[i] = bias ? a0 + bias[i] : a0;
    }
}

/* Streams stepped together (PREFIX_step_io with batch > 1): on a desktop CPU the step runs on
   blocks of streams. Float weights: every array of the block lane-major, element i of stream s at
   [i * lanes + s] (the block's streams across the vector lanes), each matmul one call of
   slimedge_matmat_f32 per block (each weight read once per block), each element-wise loop over
   whole vectors of streams; x, h and c are transposed in (slimedge_lanes_in) and y and the new
   h and c out (slimedge_lanes_out) once per call. Microcontrollers (M profile), or
   -DSLIMEDGE_NO_BLOCKED, step a batch one stream at a time (no block scratch on a small stack). */
#if !(defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M') && !defined(SLIMEDGE_NO_BLOCKED)
#define SLIMEDGE_BLOCKED 1
#else
#define SLIMEDGE_BLOCKED 0
#endif

#if SLIMEDGE_BLOCKED
/* slimedge_matmat_f32's streams per vector: sixteen where the CPU has 512-bit vectors, else
   eight; SLIMEDGE_MM_VECTORS such vectors per register tile. A block's lanes are a multiple of
   SLIMEDGE_MM_LANES * SLIMEDGE_MM_VECTORS (16 or 32). */
#if defined(__AVX512F__)
#define SLIMEDGE_MM_LANES 16
#define SLIMEDGE_MM_VECTORS 2  /* 32 vector registers: 8 rows x 2 vectors of sums */
#if defined(__GNUC__)
#include <immintrin.h>
#define SLIMEDGE_T16 1  /* 16 x 16 transposes in registers */
#endif
#else
#define SLIMEDGE_MM_LANES 8
#define SLIMEDGE_MM_VECTORS 1
#endif
#ifndef SLIMEDGE_T16
#define SLIMEDGE_T16 0
#endif

#if SLIMEDGE_T16
/* d[i * ldd + s] = a[s * lda + i] for i < cols and s < rows (both at most 16): rows (masked)
   loads, four rounds of shuffles (pairs of floats, of doubles, then of 128-bit quarters twice),
   cols (masked) stores; nothing outside those rows and columns is read or written */
SLIMEDGE_ALWAYS_INLINE void slimedge_t16(const float *a, size_t lda, float *d, size_t ldd,
                                         int rows, int cols)
{
    __m512 r[16], t[16];
    const __mmask16 in = (__mmask16)((1u << cols) - 1u), out = (__mmask16)((1u << rows) - 1u);
    for (int k = 0; k < 16; k++)
        r[k] = k >= rows ? _mm512_setzero_ps()
               : cols == 16 ? _mm512_loadu_ps(a + (size_t)k * lda)
               : _mm512_maskz_loadu_ps(in, a + (size_t)k * lda);
    for (int k = 0; k < 16; k += 2) {
        t[k] = _mm512_unpacklo_ps(r[k], r[k + 1]);
        t[k + 1] = _mm512_unpackhi_ps(r[k], r[k + 1]);
    }
#define SLIMEDGE_PD(f, a_, b_) _mm512_castpd_ps(f(_mm512_castps_pd(a_), _mm512_castps_pd(b_)))
    for (int k = 0; k < 16; k += 4) {  /* r[k + m]: rows k..k+3 of column 4q + m in quarter q */
        r[k] = SLIMEDGE_PD(_mm512_unpacklo_pd, t[k], t[k + 2]);
        r[k + 1] = SLIMEDGE_PD(_mm512_unpackhi_pd, t[k], t[k + 2]);
        r[k + 2] = SLIMEDGE_PD(_mm512_unpacklo_pd, t[k + 1], t[k + 3]);
        r[k + 3] = SLIMEDGE_PD(_mm512_unpackhi_pd, t[k + 1], t[k + 3]);
    }
#undef SLIMEDGE_PD
    for (int m = 0; m < 4; m++) {
        t[m] = _mm512_shuffle_f32x4(r[m], r[4 + m], 0x88);
        t[4 + m] = _mm512_shuffle_f32x4(r[m], r[4 + m], 0xdd);
        t[8 + m] = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0x88);
        t[12 + m] = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0xdd);
    }
    for (int m = 0; m < 4; m++) {  /* r[c]: column c */
        r[m] = _mm512_shuffle_f32x4(t[m], t[8 + m], 0x88);
        r[8 + m] = _mm512_shuffle_f32x4(t[m], t[8 + m], 0xdd);
        r[4 + m] = _mm512_shuffle_f32x4(t[4 + m], t[12 + m], 0x88);
        r[12 + m] = _mm512_shuffle_f32x4(t[4 + m], t[12 + m], 0xdd);
    }
    for (int c = 0; c < cols; c++) {
        if (rows == 16) _mm512_storeu_ps(d + (size_t)c * ldd, r[c]);
        else _mm512_mask_storeu_ps(d + (size_t)c * ldd, out, r[c]);
    }
}
#endif

/* The activations of a block of streams (float weights). tanh(x) = x P(x^2) / Q(x^2), |x| clamped
   to 8.5 (tanh(8.5) is 1 within 9e-8): a rational approximation fitted for slimedge (weighted
   least squares toward the least largest error on [0, 8.5]), max |error| 3.3e-7 in float32
   (glibc's tanhf: 6e-8). Plain arithmetic, one division: a loop of them vectorises whole on any
   compiler, without the C library's vector functions (on AVX-512 about 1.6x as fast as glibc's
   vector tanhf); odd, and within [-1, 1]. sigmoid(x) = (1 + tanh(x / 2)) / 2: max |error| 2e-7,
   within [0, 1]. */
static inline float slimedge_tanh_block(float x)
{
    x = x < -8.5f ? -8.5f : x > 8.5f ? 8.5f : x;
    const float t = x * x;
    const float p = ((((2.027755394e-11f * t - 1.353121881e-08f) * t + 9.506256902e-06f) * t
                      + 2.946025459e-03f) * t + 1.294236928e-01f) * t + 9.999998212e-01f;
    const float q = ((2.316467144e-04f * t + 2.386553958e-02f) * t + 4.627564251e-01f) * t + 1.0f;
    const float y = x * p / q;
    return y < -1.0f ? -1.0f : y > 1.0f ? 1.0f : y;
}

static inline float slimedge_sigmoid_block(float x)
{
    return 0.5f + 0.5f * slimedge_tanh_block(0.5f * x);
}

/* Into a block: dst[i * lanes + s] = src[s * ld + i] for the streams s < nb, zero for the lanes
   past them, i < n. */
SLIMEDGE_ALWAYS_INLINE void slimedge_lanes_in(int nb, const float *src, size_t ld, int n,
                                              int lanes, float *dst)
{
    int s = 0;
#if SLIMEDGE_T16
    /* sixteen streams at a time, each read from start to end (sixteen sequential reads) */
    for (; s + 16 <= nb; s += 16)
        for (int i = 0; i < n; i += 16)
            slimedge_t16(src + (size_t)s * ld + (size_t)i, ld, dst + (size_t)i * (size_t)lanes + s,
                         (size_t)lanes, 16, n - i < 16 ? n - i : 16);
#endif
    for (int i = 0; i < n; i++)
        for (int t = s; t < lanes; t++)
            dst[(size_t)i * (size_t)lanes + t] = t < nb ? src[(size_t)t * ld + (size_t)i] : 0.0f;
}

/* Out of a block: dst[s * ld + i] = src[i * lanes + s] for the streams s < nb, i < n. */
SLIMEDGE_ALWAYS_INLINE void slimedge_lanes_out(int nb, const float *src, int n, int lanes,
                                               float *dst, size_t ld)
{
    int s = 0;
#if SLIMEDGE_T16
    /* sixteen streams at a time, each written from start to end */
    for (; s + 16 <= nb; s += 16)
        for (int i = 0; i < n; i += 16)
            slimedge_t16(src + (size_t)i * (size_t)lanes + s, (size_t)lanes,
                         dst + (size_t)s * ld + (size_t)i, ld, n - i < 16 ? n - i : 16, 16);
#endif
    for (; s < nb; s++)
        for (int r = 0; r < n; r++) dst[(size_t)s * ld + (size_t)r] = src[(size_t)r * (size_t)lanes + s];
}

/* y[i][s] = bias[i] + sum_j W[i][j] x[j][s] + sum_j W2[i][j] x2[j][s] for i < rows and the
   block's lanes s < lanes, every array lane-major (x[j][s] at x[j * lanes + s]); x2, W2 none
   where cols2 is 0 (W x + b + U h in one call); bias may be NULL (zero); W and W2 laid out as
   SLIMEDGE_F32_INDEX says. Eight rows of sums for SLIMEDGE_MM_VECTORS vectors of streams stay in
   registers, each weight broadcast to one multiply-add per vector; the last rows % 8 rows
   together, their inputs split in two halves (even and odd j) of independent sums. Every lane
   runs the same instructions, so a stream's result does not depend on its place in the block. */
SLIMEDGE_ALWAYS_INLINE void slimedge_matmat_f32(int lanes, const float *x, int cols,
                                                const float *w, const float *x2, int cols2,
                                                const float *w2, int rows, const float *bias,
                                                float *y)
{
    const int full = rows / 8 * 8, rest = rows - full;
#if defined(__GNUC__)
    typedef float lanes_t __attribute__((vector_size(4 * SLIMEDGE_MM_LANES)));
    enum { V = SLIMEDGE_MM_VECTORS, L = SLIMEDGE_MM_LANES };
    /* a vector of the block's lanes from or to memory (one unaligned load or store) */
#define SLIMEDGE_LD(dst, p) memcpy(&(dst), (p), sizeof(lanes_t))
#define SLIMEDGE_ST(p, src) memcpy((p), &(src), sizeof(lanes_t))
    /* input j's vectors of streams (V of them), times each row's weight wr(r), into acc[r] */
#define SLIMEDGE_MM_STEP(xs, j, nr, wr, acc) do { \
        lanes_t xv_[V]; \
        for (int v = 0; v < V; v++) \
            SLIMEDGE_LD(xv_[v], (xs) + (size_t)(j) * (size_t)lanes + g + v * L); \
        for (int r = 0; r < (nr); r++) { \
            const float w_ = (wr); \
            for (int v = 0; v < V; v++) (acc)[r][v] += w_ * xv_[v]; \
        } \
    } while (0)
    for (int g = 0; g < lanes; g += V * L) {  /* V vectors of streams at a time */
        for (int i = 0; i < full; i += 8) {
            const float *wp = w + (size_t)i * (size_t)cols;
            const float *wq = cols2 ? w2 + (size_t)i * (size_t)cols2 : w;
            lanes_t acc[8][V];
            for (int r = 0; r < 8; r++)
                for (int v = 0; v < V; v++) acc[r][v] = (lanes_t){0.0f} + (bias ? bias[i + r] : 0.0f);
            for (int j = 0; j < cols; j++) SLIMEDGE_MM_STEP(x, j, 8, wp[8 * (size_t)j + r], acc);
            for (int j = 0; j < cols2; j++) SLIMEDGE_MM_STEP(x2, j, 8, wq[8 * (size_t)j + r], acc);
            for (int r = 0; r < 8; r++)
                for (int v = 0; v < V; v++)
                    SLIMEDGE_ST(y + (size_t)(i + r) * (size_t)lanes + g + v * L, acc[r][v]);
        }
        if (rest) {  /* the last rows, row-major: even and odd inputs in separate sums */
            const float *wp = w + (size_t)full * (size_t)cols;
            const float *wq = cols2 ? w2 + (size_t)full * (size_t)cols2 : w;
            lanes_t even[7][V], odd[7][V];
            for (int r = 0; r < rest; r++)
                for (int v = 0; v < V; v++) even[r][v] = odd[r][v] = (lanes_t){0.0f};
            int j = 0;
            for (; j + 2 <= cols; j += 2) {
                SLIMEDGE_MM_STEP(x, j, rest, wp[(size_t)r * (size_t)cols + (size_t)j], even);
                SLIMEDGE_MM_STEP(x, j + 1, rest, wp[(size_t)r * (size_t)cols + (size_t)j + 1], odd);
            }
            if (j < cols) SLIMEDGE_MM_STEP(x, j, rest, wp[(size_t)r * (size_t)cols + (size_t)j], even);
            for (j = 0; j + 2 <= cols2; j += 2) {
                SLIMEDGE_MM_STEP(x2, j, rest, wq[(size_t)r * (size_t)cols2 + (size_t)j], even);
                SLIMEDGE_MM_STEP(x2, j + 1, rest, wq[(size_t)r * (size_t)cols2 + (size_t)j + 1], odd);
            }
            if (j < cols2) SLIMEDGE_MM_STEP(x2, j, rest, wq[(size_t)r * (size_t)cols2 + (size_t)j], even);
            for (int r = 0; r < rest; r++)
                for (int v = 0; v < V; v++) {
                    lanes_t a = even[r][v] + odd[r][v] + (bias ? bias[full + r] : 0.0f);
                    SLIMEDGE_ST(y + (size_t)(full + r) * (size_t)lanes + g + v * L, a);
                }
        }
    }
#undef SLIMEDGE_MM_STEP
#undef SLIMEDGE_LD
#undef SLIMEDGE_ST
#else
    (void)full; (void)rest;
    for (int i = 0; i < rows; i++)
        for (int s = 0; s < lanes; s++) {
            float a = bias ? bias[i] : 0.0f;
            for (int j = 0; j < cols; j++)
                a = SLIMEDGE_FMA(w[SLIMEDGE_F32_INDEX(i, j, rows, cols)], x[(size_t)j * (size_t)lanes + s], a);
            for (int j = 0; j < cols2; j++)
                a = SLIMEDGE_FMA(w2[SLIMEDGE_F32_INDEX(i, j, rows, cols2)],
                                 x2[(size_t)j * (size_t)lanes + s], a);
            y[(size_t)i * (size_t)lanes + s] = a;
        }
#endif
}
#endif /* SLIMEDGE_BLOCKED */

/* ---- integer kernels ------------------------------------------------------------------------ */
#define SLIMEDGE_Z_FRAC_BITS 16      /* pre-activations: int32 Q16 */
#define SLIMEDGE_GATE_FRAC_BITS 15   /* gate and tanh outputs: int16 Q15 */
#define SLIMEDGE_Z_LIMIT 1073741823  /* |pre-activation| clamp (2^30 - 1): two add in int32 */
#define SLIMEDGE_TANH_ENTRIES 513    /* tanh table: k / 64 for k = 0..512 */

typedef char slimedge_arithmetic_shift_check[((-3) >> 1) == -2 ? 1 : -1];

/* round(v * m / 2^r) in int32: the generator proved |v * m| + 2^(r-1) < 2^31 */
static inline int32_t slimedge_rq(int32_t v, int32_t m, int r)
{
    return (v * m + ((int32_t)1 << (r - 1))) >> r;
}

static inline int32_t slimedge_sat(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* round(v * m / 2^r) in int64: where the bounds leave int32 too few bits */
static inline int64_t slimedge_rq64(int64_t v, int64_t m, int r)
{
    return (v * m + ((int64_t)1 << (r - 1))) >> r;
}

static inline int32_t slimedge_sat64(int64_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : v > hi ? hi : (int32_t)v;
}

/* round(32768 tanh(k / 64)), k = 0..512, capped at 32767 */
SLIMEDGE_KERNEL_DATA_DECL const int16_t slimedge_tanh_table[SLIMEDGE_TANH_ENTRIES];

/* tanh: Q16 in, Q15 out; the table with linear interpolation, odd symmetry, no branches: |z|
   clamps to just under 8, where the last entries are already 32767 (the value past the table).
   Max |error| 4.7e-5 over every input. */
static inline int32_t slimedge_tanh_q15(int32_t z)
{
    const int32_t s = z >> 31; /* 0 or -1 */
    int32_t t = (z ^ s) - s;
    t = t < 524287 ? t : 524287;
    const int32_t k = t >> 10, f = t & 1023;
    const int32_t a = slimedge_tanh_table[k];
    const int32_t y = a + (((slimedge_tanh_table[k + 1] - a) * f + 512) >> 10);
    return (y ^ s) - s;
}

/* sigmoid: Q16 in, Q15 out; (1 + tanh(z / 2)) / 2. Max |error| 4.2e-5. */
static inline int32_t slimedge_sigmoid_q15(int32_t z)
{
    const int32_t y = (32768 + slimedge_tanh_q15(z / 2) + 1) >> 1;
    return y > 32767 ? 32767 : y;
}

/* Cores with the DSP extension (Cortex-M4, M7, M33...) take the int8 matvecs two
   multiply-accumulates at a time (SMLAD); elsewhere the plain C loops run. Both sum the same
   exact integer products. -DSLIMEDGE_NO_DSP forces the C loops. */
#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32) && !defined(__ARM_BIG_ENDIAN) \
    && defined(__GNUC__) && !defined(SLIMEDGE_NO_DSP)
#define SLIMEDGE_DSP 1
#include <arm_acle.h>
#include <string.h>
/* bytes 1 and 3 of x, sign-extended to int16 (SXTB16 of x rotated by 8) */
SLIMEDGE_ALWAYS_INLINE int32_t slimedge_sxtb16_ror8(int32_t x)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
#else
#define SLIMEDGE_DSP 0
#endif

/* slimedge_matvec_s8's flags */
#define SLIMEDGE_RESCALE32 0  /* rescale in int32 (slimedge_rq): the generator proved it fits */
#define SLIMEDGE_RESCALE64 1  /* rescale in int64 (slimedge_rq64) */
#define SLIMEDGE_SATURATE 2   /* clamp each result to +-SLIMEDGE_Z_LIMIT (else proved inside) */

#define SLIMEDGE_MATVEC_S8_SCRATCH(cols_pad) (4 * (size_t)(cols_pad))  /* bytes */

/* Matrix-vector product of int8 weights and an int8 vector, rescaled per row to Q16:
     y[i] = rescale(sum_j W[i][j] x[j], mult[i], shift) + bias[i]          i < rows
   W is row-major, each row padded with zeros from cols to cols_pad (a multiple of 4). bias may
   be NULL. flags:
   SLIMEDGE_RESCALE32 or _RESCALE64, optionally | SLIMEDGE_SATURATE. scratch:
   SLIMEDGE_MATVEC_S8_SCRATCH(cols_pad) bytes, int32-aligned. With the ARM DSP extension two
   multiply-accumulates run per SMLAD on SXTB16-extended pairs, three rows sharing each load of
   x; elsewhere x is widened to int32 once and two rows share each load of it (a loop the
   compiler vectorises on a desktop CPU). Both sum the same exact products.
   Always inlined: called with constant sizes and flags, the compiler specialises each call
   (trip counts and offsets become constants), as a loop written out for the model would be. */
SLIMEDGE_ALWAYS_INLINE void slimedge_matvec_s8(const int8_t *x, int cols, int cols_pad,
                                               const int8_t *w, int rows, const int32_t *mult,
                                               int shift, const int32_t *bias, int flags,
                                               int32_t *y, int32_t *scratch)
{
    int i = 0;
#define SLIMEDGE_OUT(k) do { \
        const int32_t b_ = bias ? bias[i + (k)] : 0; \
        if (flags & SLIMEDGE_RESCALE64) { \
            const int64_t v_ = slimedge_rq64(a##k, mult[i + (k)], shift) + b_; \
            y[i + (k)] = (flags & SLIMEDGE_SATURATE) \
                ? slimedge_sat64(v_, -SLIMEDGE_Z_LIMIT, SLIMEDGE_Z_LIMIT) : (int32_t)v_; \
        } else { \
            const int32_t v_ = slimedge_rq(a##k, mult[i + (k)], shift) + b_; \
            y[i + (k)] = (flags & SLIMEDGE_SATURATE) \
                ? slimedge_sat(v_, -SLIMEDGE_Z_LIMIT, SLIMEDGE_Z_LIMIT) : v_; \
        } \
    } while (0)
#if SLIMEDGE_DSP
    /* x as int16 pairs: (x0, x2), (x1, x3) of every 4 inputs; zeros past cols */
    const int groups = cols_pad / 4;
    for (int g = 0; g < groups; g++) {
        int32_t v;
        if (4 * g + 4 <= cols) {
            memcpy(&v, x + 4 * g, 4);
        } else {
            int8_t b4[4];
            for (int u = 0; u < 4; u++) b4[u] = (int8_t)(4 * g + u < cols ? x[4 * g + u] : 0);
            memcpy(&v, b4, 4);
        }
        scratch[2 * g] = __sxtb16(v);
        scratch[2 * g + 1] = slimedge_sxtb16_ror8(v);
    }
#define SLIMEDGE_MAC(k, at) memcpy(&wv, wr + (k) * cols_pad + (at), 4); \
    a##k = __smlad(__sxtb16(wv), lo2, a##k); a##k = __smlad(slimedge_sxtb16_ror8(wv), hi2, a##k)
    /* rows3 rather than i + 3 <= rows: arm-none-eabi-gcc 12.2 at -O2 loses i's range after that
       loop and, for rows a multiple of 3 (48, 192: LSTM1 n = 48), flags the remainder loop below
       with -Waggressive-loop-optimizations, an error under -Werror */
    const int rows3 = rows - rows % 3;
    for (; i < rows3; i += 3) {
        const int8_t *wr = w + (size_t)i * (size_t)cols_pad;
        int32_t a0 = 0, a1 = 0, a2 = 0, lo2, hi2, wv;
        const int32_t *p = scratch;
        int g = 0;
        for (; g + 4 <= groups; g += 4, p += 8, wr += 16) { /* four groups of 4 inputs a turn */
            lo2 = p[0]; hi2 = p[1]; SLIMEDGE_MAC(0, 0); SLIMEDGE_MAC(1, 0); SLIMEDGE_MAC(2, 0);
            lo2 = p[2]; hi2 = p[3]; SLIMEDGE_MAC(0, 4); SLIMEDGE_MAC(1, 4); SLIMEDGE_MAC(2, 4);
            lo2 = p[4]; hi2 = p[5]; SLIMEDGE_MAC(0, 8); SLIMEDGE_MAC(1, 8); SLIMEDGE_MAC(2, 8);
            lo2 = p[6]; hi2 = p[7]; SLIMEDGE_MAC(0, 12); SLIMEDGE_MAC(1, 12); SLIMEDGE_MAC(2, 12);
        }
        for (; g < groups; g++, p += 2, wr += 4) {
            lo2 = p[0]; hi2 = p[1]; SLIMEDGE_MAC(0, 0); SLIMEDGE_MAC(1, 0); SLIMEDGE_MAC(2, 0);
        }
        SLIMEDGE_OUT(0); SLIMEDGE_OUT(1); SLIMEDGE_OUT(2);
    }
    for (; i < rows; i++) {
        const int8_t *wr = w + (size_t)i * (size_t)cols_pad;
        int32_t a0 = 0, lo2, hi2, wv;
        const int32_t *p = scratch;
        for (int g = 0; g < groups; g++, p += 2, wr += 4) {
            lo2 = p[0]; hi2 = p[1]; SLIMEDGE_MAC(0, 0);
        }
        SLIMEDGE_OUT(0);
    }
#undef SLIMEDGE_MAC
#else
    /* x widened to int32 words (one load each, with an immediate offset, on ARMv6-M); zeros past
       cols meet the rows' zero padding */
    for (int j = 0; j < cols_pad; j++) scratch[j] = j < cols ? x[j] : 0;
    for (; i + 2 <= rows; i += 2) {
        const int8_t *wr = w + (size_t)i * (size_t)cols_pad;
        int32_t a0 = 0, a1 = 0;
        for (int j = 0; j < cols_pad; j += 4) {
            int32_t v;
            v = scratch[j]; a0 += (int32_t)wr[j] * v; a1 += (int32_t)wr[cols_pad + j] * v;
            v = scratch[j + 1]; a0 += (int32_t)wr[j + 1] * v; a1 += (int32_t)wr[cols_pad + j + 1] * v;
            v = scratch[j + 2]; a0 += (int32_t)wr[j + 2] * v; a1 += (int32_t)wr[cols_pad + j + 2] * v;
            v = scratch[j + 3]; a0 += (int32_t)wr[j + 3] * v; a1 += (int32_t)wr[cols_pad + j + 3] * v;
        }
        SLIMEDGE_OUT(0); SLIMEDGE_OUT(1);
    }
    for (; i < rows; i++) {
        const int8_t *wr = w + (size_t)i * (size_t)cols_pad;
        int32_t a0 = 0;
        for (int j = 0; j < cols_pad; j += 4) {
            a0 += (int32_t)wr[j] * scratch[j]; a0 += (int32_t)wr[j + 1] * scratch[j + 1];
            a0 += (int32_t)wr[j + 2] * scratch[j + 2]; a0 += (int32_t)wr[j + 3] * scratch[j + 3];
        }
        SLIMEDGE_OUT(0);
    }
#endif
#undef SLIMEDGE_OUT
}

/* ==== definitions: in the file of each model that uses them ================================= */

#if defined(SLIMEDGE_KERNELS_S8) && !defined(SLIMEDGE_KERNELS_S8_DEFINED)
#define SLIMEDGE_KERNELS_S8_DEFINED 1
SLIMEDGE_KERNEL const int16_t slimedge_tanh_table[SLIMEDGE_TANH_ENTRIES] = {
    0, 512, 1024, 1535, 2045, 2555, 3063, 3570, 4075, 4578, 5079, 5577, 6073, 6566, 7056, 7542,
    8025, 8505, 8980, 9452, 9919, 10382, 10840, 11294, 11743, 12186, 12625, 13058, 13486, 13909, 14326, 14737,
    15143, 15542, 15936, 16324, 16706, 17082, 17452, 17816, 18173, 18525, 18870, 19209, 19542, 19869, 20189, 20504,
    20813, 21115, 21411, 21702, 21986, 22265, 22538, 22804, 23066, 23321, 23571, 23815, 24054, 24287, 24516, 24738,
    24956, 25168, 25376, 25578, 25776, 25969, 26157, 26340, 26519, 26694, 26864, 27029, 27191, 27348, 27502, 27651,
    27797, 27938, 28076, 28211, 28341, 28469, 28592, 28713, 28830, 28944, 29055, 29163, 29268, 29370, 29470, 29566,
    29660, 29751, 29840, 29926, 30010, 30091, 30170, 30247, 30322, 30394, 30465, 30533, 30600, 30664, 30727, 30788,
    30847, 30904, 30960, 31014, 31067, 31118, 31167, 31215, 31262, 31307, 31351, 31394, 31435, 31476, 31515, 31553,
    31589, 31625, 31659, 31693, 31726, 31757, 31788, 31817, 31846, 31874, 31901, 31928, 31953, 31978, 32002, 32025,
    32048, 32070, 32091, 32112, 32132, 32151, 32170, 32188, 32206, 32223, 32240, 32256, 32271, 32287, 32301, 32316,
    32329, 32343, 32356, 32368, 32381, 32392, 32404, 32415, 32426, 32436, 32447, 32456, 32466, 32475, 32484, 32493,
    32501, 32509, 32517, 32525, 32532, 32540, 32547, 32553, 32560, 32566, 32573, 32579, 32584, 32590, 32596, 32601,
    32606, 32611, 32616, 32620, 32625, 32629, 32634, 32638, 32642, 32646, 32649, 32653, 32657, 32660, 32663, 32667,
    32670, 32673, 32676, 32678, 32681, 32684, 32686, 32689, 32691, 32694, 32696, 32698, 32700, 32702, 32704, 32706,
    32708, 32710, 32712, 32714, 32715, 32717, 32718, 32720, 32721, 32723, 32724, 32726, 32727, 32728, 32729, 32731,
    32732, 32733, 32734, 32735, 32736, 32737, 32738, 32739, 32740, 32741, 32741, 32742, 32743, 32744, 32745, 32745,
    32746, 32747, 32747, 32748, 32749, 32749, 32750, 32750, 32751, 32751, 32752, 32752, 32753, 32753, 32754, 32754,
    32755, 32755, 32755, 32756, 32756, 32757, 32757, 32757, 32758, 32758, 32758, 32759, 32759, 32759, 32759, 32760,
    32760, 32760, 32760, 32761, 32761, 32761, 32761, 32762, 32762, 32762, 32762, 32762, 32762, 32763, 32763, 32763,
    32763, 32763, 32763, 32764, 32764, 32764, 32764, 32764, 32764, 32764, 32764, 32765, 32765, 32765, 32765, 32765,
    32765, 32765, 32765, 32765, 32765, 32765, 32766, 32766, 32766, 32766, 32766, 32766, 32766, 32766, 32766, 32766,
    32766, 32766, 32766, 32766, 32766, 32766, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767
};

#endif /* SLIMEDGE_KERNELS_S8 */

#ifdef __cplusplus
}
#endif

#endif /* SLIMEDGE_KERNELS_H */
