/* {{name}}_selftest.c: a known input and the scores the bnn-workbench engine gives it ({{selftest_source}}).
   Leave this file out of a build that does not call {{name}}_selftest(). */
#include "{{name}}.h"

#include <stddef.h>

static const uint8_t {{name}}_selftest_input[{{NAME}}_INPUT_BYTES] = {
{{selftest_input}}
};

static const {{name}}_score_t {{name}}_selftest_expected[{{NAME}}_NUM_CLASSES] = {
{{selftest_expected}}
};

#define {{NAME}}_SELFTEST_CLASS {{selftest_class}}

/* Integer scores must be equal; float scores (a model with float layers) agree to a relative 1e-4, the engine's
   float32 matrix products being summed in another order than the C loops. */
static int {{name}}_same({{name}}_score_t got, {{name}}_score_t want) {
#if {{NAME}}_SCORES_ARE_DOTS
    return got == want;
#else
    double d = (double)got - (double)want, m = want < 0 ? -(double)want : (double)want;
    if (d < 0) d = -d;
    return d <= 1e-4 * (m > 1 ? m : 1);
#endif
}

static char *{{name}}_put_text(char *at, const char *text) {
    while (*text) *at++ = *text++;
    return at;
}

static char *{{name}}_put_int(char *at, long value) {
    char digits[24];
    int n = 0;
    unsigned long v = value < 0 ? 0ul - (unsigned long)value : (unsigned long)value;
    if (value < 0) *at++ = '-';
    do {
        digits[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    while (n) *at++ = digits[--n];
    return at;
}

int {{name}}_selftest(void (*print)(const char *line)) {
    {{name}}_score_t scores[{{NAME}}_NUM_CLASSES];
    char line[160], *at = line;
    int cls = {{name}}_predict({{name}}_selftest_input, scores), same = 0, i, ok;
    for (i = 0; i < {{NAME}}_NUM_CLASSES; i++) same += {{name}}_same(scores[i], {{name}}_selftest_expected[i]);
    ok = cls == {{NAME}}_SELFTEST_CLASS && same == {{NAME}}_NUM_CLASSES;
    if (print) {
        at = {{name}}_put_text(at, "{{name}} selftest: class ");
        at = {{name}}_put_int(at, cls);
        at = {{name}}_put_text(at, " (expected ");
        at = {{name}}_put_int(at, {{NAME}}_SELFTEST_CLASS);
        at = {{name}}_put_text(at, "), ");
        at = {{name}}_put_int(at, same);
        at = {{name}}_put_text(at, " of ");
        at = {{name}}_put_int(at, {{NAME}}_NUM_CLASSES);
        at = {{name}}_put_text(at, ok ? " scores as expected: PASS" : " scores as expected: FAIL");
        *at = '\0';
        print(line);
    }
    return ok ? 0 : 1;
}
