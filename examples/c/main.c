/* stream.c's source: stream frames from a text file through a slimedge C export and print the
   predicted label of every sequence (or of every frame with -f). See README.md for the format.

   Built by the Makefile against one export, named by three macros:
     SLIMEDGE_MODEL_HEADER  the export's header file, as a string ("model.h")
     SLIMEDGE_PREFIX        its identifier prefix (model -> model_step, model_labels, ...)
     SLIMEDGE_PREFIX_UPPER  the same in capitals (MODEL_INPUT_SIZE, ...) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include SLIMEDGE_MODEL_HEADER

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define FN(name) CAT(SLIMEDGE_PREFIX, name)
#define SIZE(name) CAT(SLIMEDGE_PREFIX_UPPER, name)

#define INPUT_SIZE SIZE(_INPUT_SIZE)
#define OUTPUT_SIZE SIZE(_OUTPUT_SIZE)
#define STATE_SIZE SIZE(_STATE_SIZE)
#define MAX_LINE 65536

static int argmax(const float *y)
{
    int best = 0;
    for (int k = 1; k < OUTPUT_SIZE; k++)
        if (y[k] > y[best]) best = k;
    return best;
}

/* the frame on one line: INPUT_SIZE numbers separated by spaces, tabs or commas */
static int parse_frame(const char *line, float *x)
{
    const char *p = line;
    for (int k = 0; k < INPUT_SIZE; k++) {
        char *end;
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        x[k] = strtof(p, &end);
        if (end == p) return 0;
        p = end;
    }
    while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\r' || *p == '\n') p++;
    return *p == '\0';
}

static int blank(const char *line)
{
    for (; *line; line++)
        if (*line != ' ' && *line != '\t' && *line != '\r' && *line != '\n') return 0;
    return 1;
}

int main(int argc, char **argv)
{
    static char line[MAX_LINE];
    float x[INPUT_SIZE], h[STATE_SIZE], c[STATE_SIZE], y[OUTPUT_SIZE];
    const char *path = NULL;
    int per_frame = 0;
    long seq = 0, t = 0, lineno = 0;
    FILE *in;

    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "-f") == 0) per_frame = 1;
        else if (strcmp(argv[a], "-h") == 0 || strcmp(argv[a], "--help") == 0) {
            printf("usage: %s [-f] [FILE]\n  frames from FILE (or stdin): %d numbers per line, a "
                   "blank line between sequences\n  prints 'SEQUENCE FRAMES LABEL' per sequence, "
                   "or 'SEQUENCE FRAME LABEL' per frame with -f\n", argv[0], INPUT_SIZE);
            return 0;
        } else if (path == NULL) path = argv[a];
        else { fprintf(stderr, "%s: one input file at most\n", argv[0]); return 2; }
    }
    in = path ? fopen(path, "r") : stdin;
    if (in == NULL) { perror(path); return 2; }

    FN(_reset)(h, c);
    for (;;) {
        const int got = fgets(line, sizeof line, in) != NULL;
        lineno += got;
        if (got && strchr(line, '\n') == NULL && !feof(in)) {
            fprintf(stderr, "line %ld: longer than %d characters\n", lineno, MAX_LINE - 1);
            return 2;
        }
        if (!got || blank(line)) {  /* the end of a sequence */
            if (t > 0 && !per_frame) printf("%ld %ld %s\n", seq, t, FN(_labels)[argmax(y)]);
            if (t > 0) seq++;
            t = 0;
            FN(_reset)(h, c);
            if (!got) break;
            continue;
        }
        if (line[0] == '#') continue;
        if (!parse_frame(line, x)) {
            fprintf(stderr, "line %ld: expected %d numbers\n", lineno, INPUT_SIZE);
            return 2;
        }
        FN(_step)(x, h, c, y);
        if (per_frame) printf("%ld %ld %s\n", seq, t, FN(_labels)[argmax(y)]);
        t++;
    }
    if (ferror(in)) { perror(path ? path : "stdin"); return 2; }
    if (in != stdin) fclose(in);
    return 0;
}
