/* slimedge examples/mcu: stream one utterance's frames, stored as a constant array (frames.h,
   written by frames.py), through a slimedge C export and print the predicted digit.

   Built by the Makefile against one export, named by three macros (as examples/c):
     SLIMEDGE_MODEL_HEADER  the export's header file, as a string ("model.h")
     SLIMEDGE_PREFIX        its identifier prefix (model -> model_step, model_labels, ...)
     SLIMEDGE_PREFIX_UPPER  the same in capitals (MODEL_INPUT_SIZE, ...)
   Every export has the float functions used here (PREFIX_reset, PREFIX_step); a full-integer
   one computes in integers inside them. */
#include <stdint.h>

#include SLIMEDGE_MODEL_HEADER
#include "frames.h"
#include "semihost.h"

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define FN(name) CAT(SLIMEDGE_PREFIX, name)
#define SIZE(name) CAT(SLIMEDGE_PREFIX_UPPER, name)

#if SIZE(_INPUT_SIZE) != FRAMES_INPUT_SIZE
#error "frames.h was written for another input size than the model's"
#endif

static float h[SIZE(_STATE_SIZE)], c[SIZE(_STATE_SIZE)], y[SIZE(_OUTPUT_SIZE)];

static void put_int(const char *before, long v, const char *after)
{
    char buf[64], digits[24];
    int n = 0, k = 0;
    for (const char *p = before; *p && n < 20; p++) buf[n++] = *p;
    unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;
    do { digits[k++] = (char)('0' + u % 10); u /= 10; } while (u);
    if (v < 0) buf[n++] = '-';
    while (k) buf[n++] = digits[--k];
    for (const char *p = after; *p && n < 62; p++) buf[n++] = *p;
    buf[n] = 0;
    semihost_write(buf);
}

int main(void)
{
    FN(_reset)(h, c);
    for (int t = 0; t < FRAMES_COUNT; t++)
        FN(_step)(frames[t], h, c, y);
    int best = 0;
    for (int k = 1; k < SIZE(_OUTPUT_SIZE); k++)
        if (y[k] > y[best]) best = k;
    put_int("frames: ", FRAMES_COUNT, "\n");
    semihost_write("predicted: ");
    semihost_write(FN(_labels)[best]);
    semihost_write("\n");
    put_int("expected: ", FRAMES_LABEL, "\n");
    return 0;
}
