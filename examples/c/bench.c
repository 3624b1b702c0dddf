/* bench.c: the bare C step of a slimedge C export, timed in a loop (no Python): prints the best
   mean time per step over several rounds, in microseconds. Built by `make bench` like main.c. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include SLIMEDGE_MODEL_HEADER

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define FN(name) CAT(SLIMEDGE_PREFIX, name)
#define SIZE(name) CAT(SLIMEDGE_PREFIX_UPPER, name)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    static float x[SIZE(_INPUT_SIZE)], h[SIZE(_STATE_SIZE)], c[SIZE(_STATE_SIZE)],
        y[SIZE(_OUTPUT_SIZE)];
    const double seconds = argc > 1 ? atof(argv[1]) : 1.0;  /* total time to spend */
    const int rounds = 10;
    double best = 1e30, sink = 0.0;
    long steps = 1;

    for (int i = 0; i < SIZE(_INPUT_SIZE); i++) x[i] = 0.01f * (float)(i % 7);
    FN(_reset)(h, c);
    for (long n = 1;; n *= 2) {  /* how many steps make one round of seconds / rounds */
        const double t0 = now();
        for (long s = 0; s < n; s++) FN(_step)(x, h, c, y);
        const double dt = now() - t0;
        if (dt > 0.01 * seconds) {
            steps = (long)(seconds / rounds / (dt / (double)n)) + 1;
            break;
        }
    }
    for (int r = 0; r < rounds; r++) {
        const double t0 = now();
        for (long s = 0; s < steps; s++) {
            x[s % SIZE(_INPUT_SIZE)] += 1e-3f;  /* a new frame each step */
            FN(_step)(x, h, c, y);
        }
        const double dt = (now() - t0) / (double)steps;
        if (dt < best) best = dt;
        sink += (double)y[0];
    }
    printf("%.4f us per step (best of %d rounds of %ld steps; checksum %g)\n", best * 1e6, rounds,
           steps, sink);
    return 0;
}
