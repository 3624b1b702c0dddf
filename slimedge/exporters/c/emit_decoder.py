"""The event decoder in C, for a continuous model's export (one with an audio front-end and a
``"stream"`` config section): the arithmetic of :mod:`slimedge.runtime.decoder`, step for step,
so the same outputs give the same events. Its settings (the config's ``"decoder"`` section over
the defaults) are compiled in as macros ``PREFIX_DECODER_*``.

    PREFIX_detector d;  PREFIX_detector_reset(&d);
    PREFIX_event ev[PREFIX_AUDIO_MAX_FRAMES(count)];
    int n = PREFIX_events(&d, pcm, count, ev);   /* front-end + model + decoder: the n events
                                                    this buffer fired */
    PREFIX_decoder k;  PREFIX_decoder_reset(&k);
    int fired = PREFIX_decode(&k, y, &ev[0]);    /* the decoder alone: one frame's outputs */

An event: ``label`` (the class index), ``frame`` (the frame that fired it: time
``(frame * HOP + WINDOW) / SAMPLE_RATE`` s), ``start`` (the estimated first frame: time
``start * HOP / SAMPLE_RATE``), ``score`` (the average posterior, in [0, 1]).
"""
from __future__ import annotations

import numpy as np

from ...runtime.decoder import EXP, EXP_STEPS, LEVELS, Settings, background_indices, timing
from . import source as src

_DECODER_C = r"""
/* ---- the event decoder: softmax, moving average, threshold, run, suppression --------------- */
/* IEEE arithmetic in this part whatever the flags (-ffast-math would reorder the sums, use
   reciprocals and fused multiply-adds): the Python decoder performs the same operations */
#if defined(__clang__)
#pragma float_control(precise, on, push)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("no-fast-math", "fp-contract=off")
#endif
const size_t @P@_detector_bytes = sizeof(@P@_detector);

@TABLE@
static const uint8_t @P@_decoder_candidate[@U@_OUTPUT_SIZE] = { @CAND@ };

void @P@_decoder_reset(@P@_decoder *d)
{
    memset(d, 0, sizeof(*d));  /* the zero state is the start: no run, no event yet */
}

int @P@_decode(@P@_decoder *d, const float *y, @P@_event *ev)
{
    const int32_t t = d->frame++;
    /* the posteriors: exp(-(max - y) in 1/32 steps) from the table, over their sum */
    int32_t e[@U@_OUTPUT_SIZE], total = 0;
    float top = y[0];
    for (int k = 1; k < @U@_OUTPUT_SIZE; k++) if (y[k] > top) top = y[k];
    for (int k = 0; k < @U@_OUTPUT_SIZE; k++) {
        const float d = (top - y[k]) * (float)@STEPS@;
        e[k] = @P@_decoder_exp[d < (float)(@N@ - 1) ? (int)d : @N@ - 1];
        total += e[k];
    }
    const int W = @U@_DECODER_WINDOW;
    const int slot = d->filled < W ? (d->head + d->filled) % W : d->head;
    for (int k = 0; k < @U@_OUTPUT_SIZE; k++) {
#if @U@_DECODER_INTEGER
        const int32_t q = (@LEVELS@ * e[k] + total / 2) / total;
        d->sums[k] += q - (int32_t)d->ring[slot][k];
        d->ring[slot][k] = (uint8_t)q;
#else
        d->ring[slot][k] = (float)e[k] / (float)total;
#endif
    }
    if (d->filled < W) d->filled++;
    else d->head = (d->head + 1) % W;
    const int n = d->filled;
#if @U@_DECODER_INTEGER
    int32_t avg[@U@_OUTPUT_SIZE];
    for (int k = 0; k < @U@_OUTPUT_SIZE; k++) avg[k] = d->sums[k] / n;
    const int32_t thr = @U@_DECODER_THRESHOLD_Q;
#else
    float avg[@U@_OUTPUT_SIZE];
    for (int k = 0; k < @U@_OUTPUT_SIZE; k++) {
        float s = d->ring[d->head][k];
        for (int j = 1; j < n; j++) s += d->ring[(d->head + j) % W][k];
        avg[k] = s / (float)n;
    }
    const float thr = @U@_DECODER_THRESHOLD;
#endif
    int best = -1;
    for (int k = 0; k < @U@_OUTPUT_SIZE; k++)
        if (@P@_decoder_candidate[k] && (best < 0 || avg[k] > avg[best])) best = k;
    if (avg[best] >= thr) {  /* run_label: the leading class + 1 (0: no run) */
        if (best + 1 == d->run_label) d->run++;
        else { d->run_label = best + 1; d->run = 1; d->run_start = t; d->fired = 0; }
    } else {
        d->run_label = 0; d->run = 0; d->fired = 0;
    }
    /* last: the frame of the previous event + 1 (0: none yet) */
    if (d->run < @U@_DECODER_MIN_COUNT || d->fired
        || (d->last > 0 && t + 1 - d->last < @U@_DECODER_REFRACTORY)) return 0;
    d->fired = 1;
    d->last = t + 1;
    int32_t start = d->run_start;
    for (int j = 0; j < n; j++)
        if (d->ring[(d->head + j) % W][best] >= thr) { start = t - n + 1 + j; break; }
    ev->label = best;
    ev->frame = t;
    ev->start = start;
#if @U@_DECODER_INTEGER
    ev->score = (float)avg[best] / (float)@LEVELS@;
#else
    ev->score = avg[best];
#endif
    return 1;
}

void @P@_detector_reset(@P@_detector *d)
{
    @P@_listener_reset(&d->listener);
    @P@_decoder_reset(&d->decoder);
}

int @P@_events(@P@_detector *d, const @P@_audio_sample *pcm, int count, @P@_event *events)
{
    int n = 0;
    while (count > 0) {  /* at most one frame completes per HOP samples */
        const int take = count < @U@_AUDIO_HOP ? count : @U@_AUDIO_HOP;
        float y[@U@_OUTPUT_SIZE];
        if (@P@_listen(&d->listener, pcm, take, y)) n += @P@_decode(&d->decoder, y, events + n);
        pcm += take;
        count -= take;
    }
    return n;
}
#if defined(__clang__)
#pragma float_control(pop)
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif
"""


def present(config: dict) -> bool:
    """A continuous model whose export carries the decoder: an audio front-end and a stream
    section naming its background class."""
    return bool((config.get("frontend") or {}).get("audio")) and \
        "background" in (config.get("stream") or {})


def _header(config: dict, s: Settings, P: str, U: str) -> str:
    hop, _, _ = timing(config)
    W, R = s.frames(hop * 1000.0)
    integer = s.arithmetic == "int"
    ring = "uint8_t" if integer else "float"
    sums = f"    int32_t sums[{U}_OUTPUT_SIZE];      /* the window's sums per class */\n" \
        if integer else ""
    return src.join([
        f"/* ---- the event decoder (window {s.window_ms:g} ms, threshold {s.threshold:g}, "
        f"min_count {s.min_count}, refractory {s.refractory_ms:g} ms, {s.arithmetic}) ---- */",
        f"#define {U}_DECODER_WINDOW {W}        /* frames averaged */",
        f"#define {U}_DECODER_REFRACTORY {R}    /* frames after an event without another */",
        f"#define {U}_DECODER_MIN_COUNT {int(s.min_count)}",
        f"#define {U}_DECODER_INTEGER {int(integer)}",
        f"#define {U}_DECODER_THRESHOLD {float(s.threshold)!r}f",
        f"#define {U}_DECODER_THRESHOLD_Q {s.threshold_q}  /* on the 0..{LEVELS} scale */\n",
        f"typedef struct {{\n    int32_t label;  /* the class index */\n    int32_t frame;  /* the "
        f"frame that fired it */\n    int32_t start;  /* the estimated first frame */\n    float "
        f"score;    /* the average posterior that fired it */\n}} {P}_event;",
        f"typedef struct {{\n    {ring} ring[{U}_DECODER_WINDOW][{U}_OUTPUT_SIZE];  /* the last "
        f"posteriors */\n{sums}    int32_t filled, head, frame, run_label, run, run_start, fired, "
        f"last;  /* all zero: the start */\n}} {P}_decoder;",
        f"typedef struct {{\n    {P}_listener listener;\n    {P}_decoder decoder;\n}} "
        f"{P}_detector;",
        f"extern const size_t {P}_detector_bytes;\n",
        f"void {P}_decoder_reset({P}_decoder *d);",
        "/* the decoder alone: one frame's outputs -> 1 with an event in *ev, else 0 */",
        f"int {P}_decode({P}_decoder *d, const float *y, {P}_event *ev);",
        f"void {P}_detector_reset({P}_detector *d);",
        "/* front-end + model + decoder, one call per audio buffer: the events it fired (at most\n"
        "   AUDIO_MAX_FRAMES(count)) -> events; returns their number */",
        f"int {P}_events({P}_detector *d, const {P}_audio_sample *pcm, int count, "
        f"{P}_event *events);\n",
    ])


def generate(config: dict, prefix: str) -> tuple[str, str] | None:
    """(text for the end of the .c, declarations for the .h), or None for a model that is not a
    continuous one with an audio front-end."""
    if not present(config):
        return None
    s = Settings.from_config(config)
    labels = list(config["head"]["labels"])
    bg = set(background_indices(config))
    P, U = prefix, prefix.upper()
    cand = ", ".join("0" if k in bg else "1" for k in range(len(labels)))
    table = src.array("uint16_t", f"{P}_decoder_exp", EXP.astype(np.uint16),
                      comment="round(32768 * exp(-k / 32))")
    c = (_DECODER_C.replace("@TABLE@", table).replace("@STEPS@", str(EXP_STEPS))
         .replace("@N@", str(len(EXP))).replace("@CAND@", cand).replace("@LEVELS@", str(LEVELS))
         .replace("@P@", P).replace("@U@", U))
    return c, _header(config, s, P, U)


__all__ = ["generate", "present"]
