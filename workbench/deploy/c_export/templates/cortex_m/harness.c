/* harness.c: runs {{name}} on an emulated Cortex-M board (QEMU, semihosting) or a real one under a debugger.
 *
 * Reads inputs back to back from the host file BNN_INPUTS, writes to BNN_RESULTS the self-test line, one line per
 * input (class, scores, logits as the hex of their float32 bits: the format of main.c --batch) and a last line
 *   #stats images=N stack=BYTES ticks_min=T ticks_max=T ticks_total=T clock_hz=HZ
 * ticks: SysTick (the core clock, HZ) around each {{name}}_predict() call; under `qemu-system-arm -icount shift=0`
 * one emulated instruction takes 1 ns, so ticks * 1e9 / HZ counts emulated instructions (not silicon cycles).
 * stack: the deepest stack use of one predict() call, measured by painting the free RAM before it.
 */
#include <stdint.h>

#include "semihost.h"
#include "{{name}}.h"

#ifndef BNN_INPUTS
#define BNN_INPUTS "images.bin"
#endif
#ifndef BNN_RESULTS
#define BNN_RESULTS "results.txt"
#endif
#ifndef BNN_CLOCK_HZ
#define BNN_CLOCK_HZ 25000000
#endif
#define BNN_PAINT 0xA5A5A5A5u

#define BNN_SYST ((volatile uint32_t *)0xE000E010u) /* CTRL, LOAD, VAL */
#define BNN_ICSR (*(volatile uint32_t *)0xE000ED04u)

extern uint32_t __bss_end;
void bnn_systick(void);

static volatile uint32_t bnn_wraps;
static int32_t bnn_results = -1;
static char bnn_line[64 + 24 * 2 * {{NAME}}_NUM_CLASSES];
static uint8_t bnn_input[{{NAME}}_INPUT_BYTES];

void bnn_systick(void) { bnn_wraps++; }

static void bnn_start_ticks(void) {
    BNN_SYST[1] = 0xFFFFFFu;
    BNN_SYST[2] = 0;
    BNN_SYST[0] = 7; /* enable, interrupt on wrap, core clock */
}

static uint64_t bnn_ticks(void) {
    uint32_t wraps, value, pending;
    __asm__ __volatile__("cpsid i" ::: "memory");
    value = BNN_SYST[2];
    pending = BNN_ICSR & (1u << 26); /* PENDSTSET: wrapped, handler not run yet */
    wraps = bnn_wraps;
    __asm__ __volatile__("cpsie i" ::: "memory");
    if (pending && value > 0x800000u) wraps++;
    return ((uint64_t)wraps << 24) + (0xFFFFFFu - value);
}

static uint32_t *bnn_sp(void) {
    uint32_t *sp;
    __asm__ __volatile__("mov %0, sp" : "=r"(sp));
    return sp;
}

static char *bnn_put_text(char *at, const char *text) {
    while (*text) *at++ = *text++;
    return at;
}

static char *bnn_put_uint(char *at, uint64_t v) {
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v);
    while (n) *at++ = digits[--n];
    return at;
}

static char *bnn_put_int(char *at, int32_t v) {
    if (v < 0) {
        *at++ = '-';
        return bnn_put_uint(at, (uint64_t)(-(int64_t)v));
    }
    return bnn_put_uint(at, (uint64_t)v);
}

static char *bnn_put_hex(char *at, uint32_t v) {
    int i;
    for (i = 7; i >= 0; i--) *at++ = "0123456789abcdef"[(v >> (4 * i)) & 15u];
    return at;
}

static uint32_t bnn_bits(float value) {
    union {
        float f;
        uint32_t u;
    } pun;
    pun.f = value;
    return pun.u;
}

static void bnn_emit(char *end) {
    *end++ = '\n';
    bnn_write(bnn_results, bnn_line, (int32_t)(end - bnn_line));
}

static void bnn_print(const char *line) { bnn_emit(bnn_put_text(bnn_line, line)); }

int main(void) {
    {{name}}_score_t scores[{{NAME}}_NUM_CLASSES];
    float logits[{{NAME}}_NUM_CLASSES];
    uint64_t total = 0, least = ~(uint64_t)0, most = 0;
    uint32_t stack = 0, *sp, *p;
    int32_t inputs = bnn_open(BNN_INPUTS, 1), count, n, i;
    int failed;
    bnn_results = bnn_open(BNN_RESULTS, 5);
    if (inputs < 0 || bnn_results < 0) {
        bnn_write0("harness: cannot open " BNN_INPUTS " or " BNN_RESULTS " on the host\n");
        return 2;
    }
    failed = {{name}}_selftest(bnn_print);
    count = bnn_flen(inputs) / {{NAME}}_INPUT_BYTES;
    bnn_start_ticks();
    for (n = 0; n < count; n++) {
        uint64_t start, ticks;
        char *at = bnn_line;
        int cls;
        if (bnn_read(inputs, bnn_input, {{NAME}}_INPUT_BYTES) != 0) return 2;
        if (n == 0) { /* paint the free RAM below this frame, then find how deep predict() went */
            sp = bnn_sp();
            for (p = &__bss_end; p < sp - 32; p++) *p = BNN_PAINT;
        }
        start = bnn_ticks();
        cls = {{name}}_predict(bnn_input, scores);
        ticks = bnn_ticks() - start;
        if (n == 0) {
            for (p = &__bss_end; p < sp && *p == BNN_PAINT; p++) {
            }
            stack = (uint32_t)((uintptr_t)sp - (uintptr_t)p);
        }
        total += ticks;
        least = ticks < least ? ticks : least;
        most = ticks > most ? ticks : most;
        {{name}}_logits(scores, logits);
        at = bnn_put_int(at, cls);
        for (i = 0; i < {{NAME}}_NUM_CLASSES; i++) {
            *at++ = ' ';
#if {{NAME}}_SCORES_ARE_DOTS
            at = bnn_put_int(at, scores[i]);
#else
            at = bnn_put_hex(at, bnn_bits(scores[i]));
#endif
        }
        for (i = 0; i < {{NAME}}_NUM_CLASSES; i++) {
            *at++ = ' ';
            at = bnn_put_hex(at, bnn_bits(logits[i]));
        }
        bnn_emit(at);
    }
    {
        char *at = bnn_put_text(bnn_line, "#stats images=");
        at = bnn_put_uint(at, (uint64_t)count);
        at = bnn_put_text(at, " stack=");
        at = bnn_put_uint(at, stack);
        at = bnn_put_text(at, " ticks_min=");
        at = bnn_put_uint(at, count ? least : 0);
        at = bnn_put_text(at, " ticks_max=");
        at = bnn_put_uint(at, most);
        at = bnn_put_text(at, " ticks_total=");
        at = bnn_put_uint(at, total);
        at = bnn_put_text(at, " clock_hz=");
        at = bnn_put_uint(at, BNN_CLOCK_HZ);
        bnn_emit(at);
    }
    bnn_close(inputs);
    bnn_close(bnn_results);
    return failed;
}
