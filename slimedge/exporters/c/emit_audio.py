"""The audio front-end in C: a model's streaming stage, PCM samples -> frames -> model step.

A C export of a model whose config records an audio front-end (:mod:`slimedge.frontend.audio`)
carries it in the same ``.c`` and ``.h``, after the step. Its constants are emitted from the
Python front-end's own tables, so nothing is computed at start-up (no libm for the integer one).
One frame's computation (``PREFIX_audio_frame``) is the front-end's own module's:

* ``microfrontend`` (integer, TFLite Micro style, :mod:`.emit_micro` with KISS FFT's real FFT
  from :mod:`.emit_kissfft`): bit for bit :class:`~slimedge.frontend.microfrontend.Micro`.
  Samples are int16 PCM.
* ``logmel`` (float log-mel / MFCC, :mod:`.emit_logmel`): float32 arithmetic and ``logf``.
  Samples are float in [-1, 1). Its FFT size must be a power of two.

This module writes what they share: the framing of the stream into windows (a ring), the
listener that steps the model on each frame, and the header's declarations.

The API (``PREFIX`` the export's identifier prefix; sizes as macros ``PREFIX_AUDIO_*``), every
state in memory the caller owns:

    PREFIX_audio_state s;  PREFIX_audio_reset(&s);
    int n = PREFIX_audio_push(&s, pcm, count, features);  /* the front-end alone: the n frames
                                      completed, (n, PREFIX_AUDIO_FEATURES) floats */
    PREFIX_listener l;  PREFIX_listener_reset(&l);
    int n = PREFIX_listen(&l, pcm, count, y);   /* front-end + model: the outputs (n, OUTPUT_SIZE)
                                      of the n frames this buffer completed */

At most ``PREFIX_AUDIO_MAX_FRAMES(count)`` frames complete in one call. Frame t covers samples
[t * HOP, t * HOP + WINDOW) of the stream, as in Python: any split of a signal into calls gives
the same frames. A full-integer model's listener keeps the integer state (int8 h, int16 c) and
calls ``PREFIX_quantize_input`` and ``PREFIX_step_q``; the others call ``PREFIX_step``.
"""
from __future__ import annotations

from ...errors import UsageError
from ...frontend import Frontend
from ...frontend.logmel import LogMel
from ...frontend.microfrontend import Micro
from . import emit_decoder, emit_logmel, emit_micro
from . import source as src


def audio_of(config: dict):
    """The audio front-end a model config records (None without one)."""
    return Frontend.from_config(config).audio


def check(config: dict) -> None:
    """UsageError when the config's audio front-end cannot be written in C."""
    a = audio_of(config)
    if isinstance(a, LogMel) and a.n_fft & (a.n_fft - 1):
        raise UsageError(f"the C export's log-mel front-end needs a power-of-two FFT size, got "
                         f"fft_size={a.n_fft}; choose 0 (the next power of two) or a power of two")


# ---- the stage: framing, the listener ------------------------------------------------------------
_STAGE_C = r"""
/* ---- the streaming stage: samples -> frames -> model step ---------------------------------- */
const size_t @P@_audio_state_bytes = sizeof(@P@_audio_state);
const size_t @P@_listener_bytes = sizeof(@P@_listener);

void @P@_audio_reset(@P@_audio_state *s)
{
    memset(s, 0, sizeof(*s));
}

/* Takes up to `count` samples into the window (a ring: the oldest at `head`); returns how many
   it took. The window is full (a frame is due) when fill reaches WINDOW. */
static int @P@_audio_take(@P@_audio_state *s, const @P@_audio_sample *pcm, int count)
{
    int take = @U@_AUDIO_WINDOW - (int)s->fill;
    if (take > count) take = count;
    int at = (int)s->head + (int)s->fill;
    if (at >= @U@_AUDIO_WINDOW) at -= @U@_AUDIO_WINDOW;
    const int first = take < @U@_AUDIO_WINDOW - at ? take : @U@_AUDIO_WINDOW - at;
    memcpy(s->samples + at, pcm, (size_t)first * sizeof(*pcm));
    memcpy(s->samples, pcm + first, (size_t)(take - first) * sizeof(*pcm));
    s->fill += take;
    return take;
}

/* after a frame: the oldest HOP samples leave the window */
static void @P@_audio_slide(@P@_audio_state *s)
{
    s->head += @U@_AUDIO_HOP;
    if (s->head >= @U@_AUDIO_WINDOW) s->head -= @U@_AUDIO_WINDOW;
    s->fill = @U@_AUDIO_WINDOW - @U@_AUDIO_HOP;
}

int @P@_audio_push(@P@_audio_state *s, const @P@_audio_sample *pcm, int count, float *features)
{
    int frames = 0;
    while (count > 0) {
        const int took = @P@_audio_take(s, pcm, count);
        pcm += took; count -= took;
        if (s->fill < @U@_AUDIO_WINDOW) break;
        @P@_audio_frame(s->samples, (int)s->head, @NOISE@features + (size_t)frames * @U@_AUDIO_FEATURES);
        @P@_audio_slide(s);
        frames++;
    }
    return frames;
}

void @P@_listener_reset(@P@_listener *l)
{
    memset(l, 0, sizeof(*l));
}

int @P@_listen(@P@_listener *l, const @P@_audio_sample *pcm, int count, float *y)
{
    int frames = 0;
    while (count > 0) {
        const int took = @P@_audio_take(&l->audio, pcm, count);
        pcm += took; count -= took;
        if (l->audio.fill < @U@_AUDIO_WINDOW) break;
        float x[@U@_AUDIO_FEATURES];
        @P@_audio_frame(l->audio.samples, (int)l->audio.head, @LNOISE@x);
        @P@_audio_slide(&l->audio);
        @STEP@
        frames++;
    }
    return frames;
}
"""

_STEP_FLOAT = "@P@_step(x, l->h, l->c, y + (size_t)frames * @U@_OUTPUT_SIZE);"
_STEP_INT = ("{\n"
             "            int8_t xq[@U@_INPUT_SIZE];\n"
             "            int32_t yq[@U@_OUTPUT_SIZE];\n"
             "            @P@_quantize_input(x, xq);\n"
             "            @P@_step_q(xq, l->hq, l->cq, yq);\n"
             "            for (int i = 0; i < @U@_OUTPUT_SIZE; i++)\n"
             "                y[(size_t)frames * @U@_OUTPUT_SIZE + i] = (float)yq[i] * @U@_Y_SCALE;\n"
             "        }")


def _header(a, P: str, U: str, integer_model: bool) -> str:
    micro = isinstance(a, Micro)
    sample = "int16_t" if micro else "float"
    noise = f"    uint32_t noise[{U}_AUDIO_FEATURES];  /* the noise estimate per channel */\n" \
        if micro else ""
    model_state = (f"    int8_t hq[{U}_STATE_SIZE];   /* the model's integer state */\n"
                   f"    int16_t cq[{U}_STATE_SIZE];\n") if integer_model else \
        (f"    float h[{U}_STATE_SIZE];     /* the model's state */\n"
         f"    float c[{U}_STATE_SIZE];\n")
    what = ("int16 PCM" if micro else "float PCM in [-1, 1)")
    scratch = 4 * (a.fft_size // 2 + 1) if micro else 4 * (2 * a.n_fft + a.mel_channels)
    return src.join([
        f"/* ---- the audio front-end: {a.description} ----\n"
        f"   Samples are {what} at {U}_AUDIO_SAMPLE_RATE Hz; a frame of {U}_AUDIO_WINDOW samples\n"
        f"   every {U}_AUDIO_HOP gives {U}_AUDIO_FEATURES features, the model's input. State lives\n"
        f"   in the caller's memory; zero it with the reset functions. */",
        f"#define {U}_AUDIO_SAMPLE_RATE {a.sample_rate}",
        f"#define {U}_AUDIO_WINDOW {a.window_samples}",
        f"#define {U}_AUDIO_HOP {a.hop_samples}",
        f"#define {U}_AUDIO_FEATURES {a.output_size}",
        f"#define {U}_AUDIO_INTEGER {int(micro)}",
        "/* the front-end's scratch per frame, on the stack (the FFT's buffer) */",
        f"#define {U}_AUDIO_SCRATCH_BYTES {scratch}",
        "/* the most frames one call with `count` samples completes */",
        f"#define {U}_AUDIO_MAX_FRAMES(count) (((count) + {U}_AUDIO_HOP - 1) / {U}_AUDIO_HOP)\n",
        f"typedef {sample} {P}_audio_sample;",
        f"typedef struct {{\n    {P}_audio_sample samples[{U}_AUDIO_WINDOW];  /* the window, a ring "
        f"*/\n    int32_t fill, head;  /* samples in it, where the oldest is */\n{noise}}} "
        f"{P}_audio_state;",
        f"typedef struct {{\n    {P}_audio_state audio;\n{model_state}}} {P}_listener;",
        f"extern const size_t {P}_audio_state_bytes, {P}_listener_bytes;  /* their sizes */\n",
        f"void {P}_audio_reset({P}_audio_state *s);",
        "/* the front-end alone: the frames `count` samples complete -> features (frames, "
        "FEATURES) */",
        f"int {P}_audio_push({P}_audio_state *s, const {P}_audio_sample *pcm, int count, "
        f"float *features);",
        f"void {P}_listener_reset({P}_listener *l);",
        "/* front-end + model: one call per audio buffer; the outputs of the frames it completes\n"
        "   -> y (frames, OUTPUT_SIZE); returns the number of frames */",
        f"int {P}_listen({P}_listener *l, const {P}_audio_sample *pcm, int count, float *y);\n",
    ])


def generate(config: dict, prefix: str, *, integer_model: bool) -> tuple[str, str] | None:
    """(text for the end of the .c, declarations for the .h) of the config's audio front-end, or
    None when the model reads frames."""
    a = audio_of(config)
    if a is None:
        return None
    check(config)
    P, U = prefix, prefix.upper()
    if isinstance(a, Micro):
        c = emit_micro.generate(a, P, U)
        noise, lnoise = "s->noise, ", "l->audio.noise, "
    else:
        c = emit_logmel.generate(a, P, U)
        noise = lnoise = ""
    step = _STEP_INT if integer_model else _STEP_FLOAT
    stage = (_STAGE_C.replace("@STEP@", step).replace("@NOISE@", noise)
             .replace("@LNOISE@", lnoise).replace("@P@", P).replace("@U@", U))
    return src.join(["#include <string.h>", *c, stage]), _header(a, P, U, integer_model)


def attach(c_text: str, h_text: str, config: dict, prefix: str, *,
           integer_model: bool) -> tuple[str, str]:
    """The export's ``.c`` and ``.h`` with the audio front-end (unchanged without one)."""
    got = generate(config, prefix, integer_model=integer_model)
    if got is None:
        return c_text, h_text
    c_part, h_part = got
    decoder = emit_decoder.generate(config, prefix)  # a continuous model's: PREFIX_events
    if decoder is not None:
        c_part, h_part = c_part + decoder[0], h_part + decoder[1]
    close = "#ifdef __cplusplus\n}\n#endif\n"
    at = h_text.rfind(close)
    if at < 0:
        raise AssertionError("the generated header has no closing extern \"C\" block")
    return c_text + "\n" + c_part, h_text[:at] + h_part + "\n" + h_text[at:]


__all__ = ["attach", "generate", "check", "audio_of"]
