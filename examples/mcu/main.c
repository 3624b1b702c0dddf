/* slimedge examples/mcu: stream one utterance's frames, stored as a constant array (frames.h,
   written by frames.py), through a slimedge C export and print the predicted digit.

   The firmware is the same for every model: it calls the kernel header's one API on the
   model's descriptor (slimedge_reset, slimedge_step on a const slimedge_model) and reads the
   sizes and labels from it. The Makefile names the export by macros:
     SLIMEDGE_MODEL_HEADER  the export's header file, as a string ("model.h")
     SLIMEDGE_MODEL         its descriptor (PREFIX_model: model.c -> model_model)
     STATE_CAPACITY, OUTPUT_CAPACITY  the room for the state and output (the model's sizes,
                            PREFIX_STATE_SIZE and PREFIX_OUTPUT_SIZE; checked at start)
   Every export has the float API used here; a full-integer one computes in integers inside. */
#include <stdint.h>

#include SLIMEDGE_MODEL_HEADER
#include "frames.h"
#include "semihost.h"

static float h[STATE_CAPACITY], c[STATE_CAPACITY], y[OUTPUT_CAPACITY];

int main(void)
{
    const slimedge_model *const model = &SLIMEDGE_MODEL;
    if (model->input_size != FRAMES_INPUT_SIZE || model->state_size > STATE_CAPACITY
            || model->output_size > OUTPUT_CAPACITY) {
        semihost_write("frames.h does not fit this model (input size), or the model is larger "
                       "than STATE_CAPACITY / OUTPUT_CAPACITY\n");
        return 1;
    }
    slimedge_reset(model, h, c);
    for (int t = 0; t < FRAMES_COUNT; t++)
        slimedge_step(model, frames[t], h, c, y);
    int best = 0;
    for (int k = 1; k < model->output_size; k++)
        if (y[k] > y[best]) best = k;
    semihost_write_int("frames: ", FRAMES_COUNT, "\n");
    semihost_write("predicted: ");
    semihost_write(model->labels[best]);
    semihost_write("\n");
    semihost_write_int("expected: ", FRAMES_LABEL, "\n");
    return 0;
}
