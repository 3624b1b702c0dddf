/* slimedge examples/mcu: audio in, digit out. PCM samples go through a slimedge C export's own
   front-end and model, PREFIX_listen, one call per 20 ms buffer (HOP samples), as a microphone's
   DMA would hand them over; the last frame's best output is the digit printed.

   The PCM comes from a constant array in flash (pcm.h, written by pcm.py from a WAV file), or,
   built with PCM_FILE="path", from a file of raw 16-bit little-endian samples on the host, read
   buffer by buffer through semihosting. Besides the digit it prints the number of frames and a
   hash of every output of every frame (FNV-1a over their float32 bits): the host build of the
   same export gives the same hash (slimedge.devices.audio), the integer path bit for bit.

   The Makefile (audio.mk) names the export by macros: SLIMEDGE_MODEL_HEADER (its header, as a
   string), SLIMEDGE_PREFIX (its identifier prefix, m for m.c) and SLIMEDGE_UPPER (the same in
   capitals, for its size macros). State: the listener (front-end window, noise estimates, the
   model's h and c) in .bss; nothing else is kept between buffers. */
#include <stdint.h>
#include <string.h>

#include SLIMEDGE_MODEL_HEADER
#include "semihost.h"
#include "semihost_file.h"
#ifndef PCM_FILE
#include "pcm.h"
#endif

#define CAT(a, b) a##b
#define XCAT(a, b) CAT(a, b)
#define API(name) XCAT(SLIMEDGE_PREFIX, name)   /* API(_listen) -> m_listen */
#define SIZE(name) XCAT(SLIMEDGE_UPPER, name)   /* SIZE(_AUDIO_HOP) -> M_AUDIO_HOP */

#define BUFFER SIZE(_AUDIO_HOP)
#define OUTPUTS SIZE(_OUTPUT_SIZE)

static API(_listener) listener;
static float y[SIZE(_AUDIO_MAX_FRAMES)(BUFFER) * OUTPUTS];
static float last[OUTPUTS];
static uint32_t hash = 2166136261u;
static long frames;

static void put(const char *before, const char *text)
{
    semihost_write(before);
    semihost_write(text);
    semihost_write("\n");
}

static const char *decimal(long v, char *buf)
{
    char tmp[24];
    int n = 0, k = 0;
    unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;
    do { tmp[k++] = (char)('0' + u % 10); u /= 10; } while (u);
    if (v < 0) buf[n++] = '-';
    while (k) buf[n++] = tmp[--k];
    buf[n] = 0;
    return buf;
}

static const char *hex32(uint32_t v, char *buf)
{
    buf[0] = '0';
    buf[1] = 'x';
    for (int k = 0; k < 8; k++) buf[2 + k] = "0123456789abcdef"[(v >> (28 - 4 * k)) & 0xF];
    buf[10] = 0;
    return buf;
}

/* one buffer of samples through the front-end and the model */
static void listen(const API(_audio_sample) *pcm, int count)
{
    const int n = API(_listen)(&listener, pcm, count, y);
    for (int f = 0; f < n; f++) {
        const unsigned char *bytes = (const unsigned char *)(y + f * OUTPUTS);
        for (unsigned k = 0; k < OUTPUTS * sizeof(float); k++) hash = (hash ^ bytes[k]) * 16777619u;
    }
    if (n > 0) memcpy(last, y + (n - 1) * OUTPUTS, sizeof(last));
    frames += n;
}

int main(void)
{
    char buf[24];
    long expected = -1;
    API(_listener_reset)(&listener);
#ifdef PCM_FILE
    static API(_audio_sample) pcm[BUFFER];
    const int file = semihost_open(PCM_FILE);
    if (file < 0) {
        put("cannot open ", PCM_FILE);
        return 1;
    }
    for (;;) {
        const int got = semihost_read(file, pcm, sizeof(pcm)) / (int)sizeof(pcm[0]);
        if (got <= 0) break;
        listen(pcm, got);
    }
    semihost_close(file);
#else
    for (long i = 0; i < PCM_COUNT; i += BUFFER)
        listen(pcm + i, PCM_COUNT - i < BUFFER ? (int)(PCM_COUNT - i) : BUFFER);
    expected = PCM_LABEL;
#endif
    int best = 0;
    for (int k = 1; k < OUTPUTS; k++)
        if (last[k] > last[best]) best = k;
    put("frames: ", decimal(frames, buf));
    put("predicted: ", frames ? API(_labels)[best] : "(no frame)");
    if (expected >= 0) put("expected: ", decimal(expected, buf));
    put("outputs hash: ", hex32(hash, buf));
    return 0;
}
