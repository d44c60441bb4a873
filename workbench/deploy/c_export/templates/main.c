/* main.c: classify image files with {{name}} (an example; Linux, macOS, any hosted C99).
 *
 *   classify IMAGE          the class, its name and the scores of one input: a binary PGM (P5) or PPM (P6) image of
 *                           the model's size, or {{NAME}}_INPUT_BYTES raw bytes in channels-first order
 *   classify --batch FILE   FILE holds inputs back to back (raw); one line per input: class, scores, logits
 *                           (float scores and logits as the hex of their IEEE 754 bits, to compare exactly)
 *   classify --selftest     the exported self-test
 */
#include "{{name}}.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_line(const char *line) { puts(line); }

static unsigned long float_bits(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return (unsigned long)bits;
}

static void print_score({{name}}_score_t score, FILE *out) {
#if {{NAME}}_SCORES_ARE_DOTS
    fprintf(out, " %ld", (long)score);
#else
    fprintf(out, " %08lx", float_bits(score));
#endif
}

/* A PGM/PPM header ("P5"/"P6", width, height, maxval 255): returns the channels of the pixels that follow, or 0. */
static int read_pnm_header(FILE *file, long *width, long *height) {
    char magic[3] = {0};
    long maxval;
    if (fread(magic, 1, 2, file) != 2 || magic[0] != 'P' || (magic[1] != '5' && magic[1] != '6')) return 0;
    if (fscanf(file, "%ld %ld %ld", width, height, &maxval) != 3 || maxval != 255) return 0;
    fgetc(file); /* the one whitespace before the pixels */
    return magic[1] == '5' ? 1 : 3;
}

static int load_input(const char *path, uint8_t *input) {
    static uint8_t pixels[{{NAME}}_INPUT_BYTES];
    FILE *file = fopen(path, "rb");
    long width = 0, height = 0;
    int channels;
    if (!file) {
        perror(path);
        return 1;
    }
    channels = read_pnm_header(file, &width, &height);
    if (channels) {
        long c, i, hw = width * height;
        if (hw * channels != {{NAME}}_INPUT_BYTES || fread(pixels, 1, sizeof pixels, file) != sizeof pixels) {
            fprintf(stderr, "%s: expected a %d-byte image ({{layout}}), got %ldx%ld with %d channel(s)\n", path,
                    {{NAME}}_INPUT_BYTES, width, height, channels);
            fclose(file);
            return 1;
        }
        for (c = 0; c < channels; c++) /* interleaved HWC -> channels-first */
            for (i = 0; i < hw; i++) input[c * hw + i] = pixels[i * channels + c];
    } else {
        rewind(file);
        if (fread(input, 1, {{NAME}}_INPUT_BYTES, file) != {{NAME}}_INPUT_BYTES || fgetc(file) != EOF) {
            fprintf(stderr, "%s: expected a PGM/PPM image or exactly %d raw bytes ({{layout}})\n", path,
                    {{NAME}}_INPUT_BYTES);
            fclose(file);
            return 1;
        }
    }
    fclose(file);
    return 0;
}

static int classify_one(const char *path) {
    static uint8_t input[{{NAME}}_INPUT_BYTES];
    {{name}}_score_t scores[{{NAME}}_NUM_CLASSES];
    float logits[{{NAME}}_NUM_CLASSES];
    int cls, i;
    if (load_input(path, input)) return 1;
    cls = {{name}}_predict(input, scores);
    if (cls < 0) {
        fprintf(stderr, "%s: a NaN reached a sign\n", path);
        return 1;
    }
    {{name}}_logits(scores, logits);
    printf("%s: class %d (%s)\n", path, cls, {{name}}_class_names[cls]);
    for (i = 0; i < {{NAME}}_NUM_CLASSES; i++)
        printf("  %-12s score %-12g logit %g\n", {{name}}_class_names[i], (double)scores[i], (double)logits[i]);
    return 0;
}

static int classify_batch(const char *path) {
    static uint8_t input[{{NAME}}_INPUT_BYTES];
    {{name}}_score_t scores[{{NAME}}_NUM_CLASSES];
    float logits[{{NAME}}_NUM_CLASSES];
    FILE *file = fopen(path, "rb");
    int i;
    if (!file) {
        perror(path);
        return 1;
    }
    while (fread(input, 1, {{NAME}}_INPUT_BYTES, file) == {{NAME}}_INPUT_BYTES) {
        int cls = {{name}}_predict(input, scores);
        {{name}}_logits(scores, logits);
        printf("%d", cls);
        for (i = 0; i < {{NAME}}_NUM_CLASSES; i++) print_score(scores[i], stdout);
        for (i = 0; i < {{NAME}}_NUM_CLASSES; i++) printf(" %08lx", float_bits(logits[i]));
        printf("\n");
    }
    fclose(file);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--selftest") == 0) return {{name}}_selftest(print_line);
    if (argc == 3 && strcmp(argv[1], "--batch") == 0) return classify_batch(argv[2]);
    if (argc == 2 && argv[1][0] != '-') return classify_one(argv[1]);
    fprintf(stderr, "usage: %s IMAGE | --batch FILE | --selftest\n", argv[0]);
    return 2;
}
