/* slimedge examples/mcu: a long PCM stream in, events out. A continuous model's C export (one
   whose config names a background class: its .h declares PREFIX_events) runs its front-end, model
   and event decoder in one call per 20 ms buffer (HOP samples), as a microphone's DMA would hand
   them over, and prints one line per event as it fires:

       event: <time in ms> <label> <score per mille> <start in ms>

   time is when the event fired (the end of the frame that fired it), start the decoder's estimate
   of the word's beginning, score the average posterior. The PCM comes from a file of raw 16-bit
   little-endian samples on the host, read buffer by buffer through semihosting (PCM_FILE="path"):
   minutes or hours of audio without flash to hold them. The Makefile (audio.mk, target
   run-events) names the export. State: the detector (front-end window, noise estimates, the
   model's h and c, the decoder's window of posteriors) in .bss. */
#include <stdint.h>

#include SLIMEDGE_MODEL_HEADER
#include "semihost.h"
#include "semihost_file.h"

#define CAT(a, b) a##b
#define XCAT(a, b) CAT(a, b)
#define API(name) XCAT(SLIMEDGE_PREFIX, name)   /* API(_events) -> m_events */
#define SIZE(name) XCAT(SLIMEDGE_UPPER, name)   /* SIZE(_AUDIO_HOP) -> M_AUDIO_HOP */

#define BUFFER SIZE(_AUDIO_HOP)

static API(_detector) detector;
static API(_event) events[SIZE(_AUDIO_MAX_FRAMES)(BUFFER)];

/* a frame's end (fired) or beginning (start) in milliseconds */
static long ms(long frame, int end)
{
    const long sample = frame * SIZE(_AUDIO_HOP) + (end ? SIZE(_AUDIO_WINDOW) : 0);
    return sample * 1000 / SIZE(_AUDIO_SAMPLE_RATE);
}

static void print(const API(_event) *e)
{
    semihost_write_int("event: ", ms(e->frame, 1), " ");
    semihost_write(API(_labels)[e->label]);
    semihost_write_int(" ", (long)(e->score * 1000.0f + 0.5f), "");
    semihost_write_int(" ", ms(e->start, 0), "\n");
}

int main(void)
{
    static API(_audio_sample) pcm[BUFFER];
    long count = 0, samples = 0;
    API(_detector_reset)(&detector);
    const int file = semihost_open(PCM_FILE);
    if (file < 0) {
        semihost_write("cannot open " PCM_FILE "\n");
        return 1;
    }
    for (;;) {
        const int got = semihost_read(file, pcm, sizeof(pcm)) / (int)sizeof(pcm[0]);
        if (got <= 0) break;
        const int n = API(_events)(&detector, pcm, got, events);
        for (int k = 0; k < n; k++) print(&events[k]);
        count += n;
        samples += got;
    }
    semihost_close(file);
    semihost_write_int("samples: ", samples, "\n");
    semihost_write_int("events: ", count, "\n");
    return 0;
}
