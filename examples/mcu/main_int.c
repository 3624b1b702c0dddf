/* slimedge examples/mcu, integer only: stream one utterance's int8 frames (frames_q.h, written
   by `frames.py --integer`: the export's own PREFIX_quantize_input run on the host) through a
   full-integer C export's PREFIX_step_q and print the predicted digit. No floating point at
   all: built for a Cortex-M3 (no FPU) with soft-float, and no float code is linked (the
   export's float wrappers are never called, so --gc-sections drops them).

   The Makefile names the export by macros (PREFIX: the export's identifier prefix):
     SLIMEDGE_MODEL_HEADER  the export's header file, as a string ("model_q.h")
     STEP_Q, RESET_Q        PREFIX_step_q, PREFIX_reset_q: int8 x and h, int16 c, int32 y
     LABELS                 PREFIX_labels
     STATE_SIZE, OUTPUT_SIZE  PREFIX_STATE_SIZE, PREFIX_OUTPUT_SIZE
     INPUT_SIZE             PREFIX_INPUT_SIZE (checked against frames_q.h at compile time) */
#include <stdint.h>

#include SLIMEDGE_MODEL_HEADER
#include "frames_q.h"
#include "semihost.h"

/* compiled only when frames_q.h was written for this model (C99's static assertion) */
typedef char frames_q_h_is_for_another_model[INPUT_SIZE == FRAMES_INPUT_SIZE ? 1 : -1];

static int8_t hq[STATE_SIZE];
static int16_t cq[STATE_SIZE];
static int32_t yq[OUTPUT_SIZE];

int main(void)
{
    RESET_Q(hq, cq);
    for (int t = 0; t < FRAMES_COUNT; t++)
        STEP_Q(frames_q[t], hq, cq, yq);
    int best = 0;  /* yq is y in fixed point (one scale for all): its argmax is y's */
    for (int k = 1; k < OUTPUT_SIZE; k++)
        if (yq[k] > yq[best]) best = k;
    semihost_write_int("frames: ", FRAMES_COUNT, "\n");
    semihost_write("predicted: ");
    semihost_write(LABELS[best]);
    semihost_write("\n");
    semihost_write_int("expected: ", FRAMES_LABEL, "\n");
    return 0;
}
