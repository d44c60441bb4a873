/* {{name}}.h: the API of the binary neural network "{{title}}", exported by bnn-workbench ({{source}}).
 *
 * C99, no heap, no recursion; not reentrant (one static arena of {{NAME}}_ARENA_BYTES bytes, in {{name}}.c).
 * See docs/DEPLOY.md of bnn-workbench for how to build it into a project.
 */
#ifndef {{NAME}}_H
#define {{NAME}}_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One input: uint8 raw values, channels-first ({{layout}}), {{NAME}}_INPUT_BYTES bytes, any alignment. */
{{input_macros}}
#define {{NAME}}_INPUT_BYTES {{input_bytes}}
#define {{NAME}}_NUM_CLASSES {{num_classes}}
/* The static arena: activations of every layer, buffers reused between layers (sizes planned at export). */
#define {{NAME}}_ARENA_BYTES {{arena_bytes}}
/* Bytes of the constant weights and thresholds (flash). */
#define {{NAME}}_WEIGHT_BYTES {{weight_bytes}}
/* predict() returns this when a NaN reached a sign (float layers only). */
#define {{NAME}}_ERROR_NAN (-1)

/* {{scores_doc}} */
#define {{NAME}}_SCORES_ARE_DOTS {{scores_are_dots}}
typedef {{score_type}} {{name}}_score_t;

/* Runs the network on one input: writes {{NAME}}_NUM_CLASSES scores (scores may be NULL) and returns the predicted
   class, the argmax of the logits as numpy.argmax (the first of equal maxima), or {{NAME}}_ERROR_NAN. */
int {{name}}_predict(const uint8_t *input, {{name}}_score_t *scores);

/* The logits (float32, the engine's Engine.logits bit for bit) of scores from {{name}}_predict. */
void {{name}}_logits(const {{name}}_score_t *scores, float *logits);

/* The class names, {{NAME}}_NUM_CLASSES of them. */
extern const char *const {{name}}_class_names[{{NAME}}_NUM_CLASSES];

/* The self-test ({{name}}_selftest.c): runs a known input exported with its expected scores; prints one line
   through print (may be NULL) and returns 0 when the class and every score are as expected. */
int {{name}}_selftest(void (*print)(const char *line));

#ifdef __cplusplus
}
#endif

#endif /* {{NAME}}_H */
