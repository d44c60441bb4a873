/* ------------------------------------------------------------------------------------------------------------------
 * bnn-workbench C runtime: the kernels this model needs (the BNN_NEED_* switches above select them).
 *
 * Packed bits follow docs/FORMAT.md with 32-bit words: element i of a packed axis is bit i % 32 of word i / 32,
 * a bit is 1 where the value is -1, padding bits are 0, so the +-1 dot product of two packed vectors of k values is
 * k - 2 * popcount(a XOR b). 64-bit targets read two of these words at a time (the popcount of a XOR does not depend
 * on how the words are grouped), 32-bit targets one.
 * ---------------------------------------------------------------------------------------------------------------- */

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <float.h>
#if BNN_NEED_MATH
#include <math.h>
#endif

/* Every float operation is rounded on its own, as NumPy does: no fused multiply-add. gcc fuses across statements
   by default outside ISO modes (-std=gnu*), clang within expressions; both are switched off here (also pass
   -ffp-contract=off where a build system overrides pragmas). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD != 0 && FLT_EVAL_METHOD != -1
#error "bnn: float arithmetic must round to float/double on each operation (FLT_EVAL_METHOD 0): on 32-bit x86 use -msse2 -mfpmath=sse"
#endif

#if defined(__GNUC__)
#define BNN_INLINE __inline__ __attribute__((always_inline))
/* Buffers of the arena change type between ops: no load or store moves across an op boundary. */
#define BNN_BARRIER() __asm__ __volatile__("" ::: "memory")
#else
#define BNN_INLINE
#define BNN_BARRIER() ((void)0)
#endif

/* ------------------------------------------------------------------------------------------------ popcount */

#define BNN_POP_SWAR 1        /* portable bit arithmetic, one word at a time */
#define BNN_POP_HARLEY_SEAL 2 /* carry-save adders over 8 words, then one SWAR count: Cortex-M0/M3/M4/M7/M33 */
#define BNN_POP_TABLE 3       /* a 256-byte table, four lookups per word */
#define BNN_POP_BUILTIN 4     /* __builtin_popcount on 32-bit words: a popcount instruction (x86 POPCNT, RISC-V Zbb) */
#define BNN_POP_BUILTIN64 5   /* __builtin_popcountll on pairs of words: 64-bit targets with a popcount instruction */
#define BNN_POP_NEON 6        /* NEON vcnt on 4 words at a time: AArch64, ARMv7-A with NEON */

#ifndef BNN_POPCOUNT
#if defined(__ARM_NEON) || defined(__ARM_NEON__)
#define BNN_POPCOUNT BNN_POP_NEON
#elif defined(__GNUC__) && defined(__POPCNT__) && UINTPTR_MAX > 0xFFFFFFFFu
#define BNN_POPCOUNT BNN_POP_BUILTIN64
#elif defined(__GNUC__) && (defined(__POPCNT__) || defined(__riscv_zbb))
#define BNN_POPCOUNT BNN_POP_BUILTIN
#elif defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M'
/* no popcount instruction: __builtin_popcount would call a slow libgcc routine */
#define BNN_POPCOUNT BNN_POP_HARLEY_SEAL
#else
#define BNN_POPCOUNT BNN_POP_SWAR
#endif
#endif

#if BNN_POPCOUNT == BNN_POP_NEON
#include <arm_neon.h>
#endif

#if BNN_NEED_POPCOUNT

/* x AND y (bit planes of the first layer) or x XOR y (binary layers), chosen by a constant after inlining */
#define BNN_OP(x, y, use_and) ((use_and) ? ((x) & (y)) : ((x) ^ (y)))

static BNN_INLINE uint32_t bnn_swar32(uint32_t x) {
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0Fu;
    return (x * 0x01010101u) >> 24;
}

/* The words left after a wide loop, one at a time. Written with pointers and a count, not a[i] with i < n: after
   inlining a constant n, gcc -O2 (12.2, arm-none-eabi) misreads the indexed form's trip count and fails a
   -Werror build with "iteration 1073741823 invokes undefined behavior" (784-2048-10 MLP, Cortex-M4). */
#define BNN_POP_TAIL(total, a, b, i, n, use_and)                                                   \
    do {                                                                                           \
        const uint32_t *pa_ = (a) + (i), *pb_ = (b) + (i);                                         \
        int32_t left_;                                                                             \
        for (left_ = (n) - (i); left_ > 0; left_--, pa_++, pb_++)                                  \
            total += bnn_swar32(BNN_OP(*pa_, *pb_, use_and));                                      \
    } while (0)

#if BNN_POPCOUNT == BNN_POP_NEON

static BNN_INLINE uint32_t bnn_pop2(const uint32_t *a, const uint32_t *b, int32_t n, int use_and) {
    uint32x4_t acc = vdupq_n_u32(0);
    uint32_t total;
    int32_t i = 0;
    while (n - i >= 4) {
        /* per-byte counts add up to at most 8 * 31 < 256 before they are widened */
        int32_t blocks = (n - i) / 4 > 31 ? 31 : (n - i) / 4;
        uint8x16_t bytes = vdupq_n_u8(0);
        for (; blocks > 0; blocks--, i += 4) {
            uint32x4_t x = vld1q_u32(a + i), y = vld1q_u32(b + i);
            uint32x4_t v = use_and ? vandq_u32(x, y) : veorq_u32(x, y);
            bytes = vaddq_u8(bytes, vcntq_u8(vreinterpretq_u8_u32(v)));
        }
        acc = vpadalq_u16(acc, vpaddlq_u8(bytes));
    }
    total = vgetq_lane_u32(acc, 0) + vgetq_lane_u32(acc, 1) + vgetq_lane_u32(acc, 2) + vgetq_lane_u32(acc, 3);
    BNN_POP_TAIL(total, a, b, i, n, use_and);
    return total;
}

#elif BNN_POPCOUNT == BNN_POP_BUILTIN64

static BNN_INLINE uint32_t bnn_pop2(const uint32_t *a, const uint32_t *b, int32_t n, int use_and) {
    uint32_t total = 0;
    int32_t i = 0;
    for (; i + 2 <= n; i += 2) {
        uint64_t x, y;
        memcpy(&x, a + i, sizeof x); /* one unaligned 64-bit load */
        memcpy(&y, b + i, sizeof y);
        total += (uint32_t)__builtin_popcountll(BNN_OP(x, y, use_and));
    }
    if (i < n) total += (uint32_t)__builtin_popcount(BNN_OP(a[i], b[i], use_and));
    return total;
}

#elif BNN_POPCOUNT == BNN_POP_BUILTIN

static BNN_INLINE uint32_t bnn_pop2(const uint32_t *a, const uint32_t *b, int32_t n, int use_and) {
    uint32_t total = 0;
    int32_t i;
    for (i = 0; i < n; i++) total += (uint32_t)__builtin_popcount(BNN_OP(a[i], b[i], use_and));
    return total;
}

#elif BNN_POPCOUNT == BNN_POP_TABLE

static const uint8_t bnn_pop_table[256] = {
#define BNN_T2(n) n, n + 1, n + 1, n + 2
#define BNN_T4(n) BNN_T2(n), BNN_T2(n + 1), BNN_T2(n + 1), BNN_T2(n + 2)
#define BNN_T6(n) BNN_T4(n), BNN_T4(n + 1), BNN_T4(n + 1), BNN_T4(n + 2)
    BNN_T6(0), BNN_T6(1), BNN_T6(1), BNN_T6(2)
#undef BNN_T2
#undef BNN_T4
#undef BNN_T6
};

static BNN_INLINE uint32_t bnn_pop2(const uint32_t *a, const uint32_t *b, int32_t n, int use_and) {
    uint32_t total = 0;
    int32_t i;
    for (i = 0; i < n; i++) {
        uint32_t x = BNN_OP(a[i], b[i], use_and);
        total += (uint32_t)bnn_pop_table[x & 0xFFu] + bnn_pop_table[(x >> 8) & 0xFFu] + bnn_pop_table[(x >> 16) & 0xFFu] +
                 bnn_pop_table[x >> 24];
    }
    return total;
}

#elif BNN_POPCOUNT == BNN_POP_HARLEY_SEAL

/* a carry-save adder: h:l = a + b + c, bit by bit */
#define BNN_CSA(h, l, a, b, c)      \
    do {                            \
        uint32_t u_ = (a) ^ (b);    \
        h = ((a) & (b)) | (u_ & (c)); \
        l = u_ ^ (c);               \
    } while (0)

static BNN_INLINE uint32_t bnn_pop2(const uint32_t *a, const uint32_t *b, int32_t n, int use_and) {
    uint32_t total = 0, ones = 0, twos = 0, fours = 0, eights, twos_a, twos_b, fours_a, fours_b;
    int32_t i = 0;
    /* short rows (a small conv's patch) are cheaper one word at a time: the adders pay off from 16 words */
    if (n >= 16) {
        for (; i + 8 <= n; i += 8) {
            BNN_CSA(twos_a, ones, ones, BNN_OP(a[i], b[i], use_and), BNN_OP(a[i + 1], b[i + 1], use_and));
            BNN_CSA(twos_b, ones, ones, BNN_OP(a[i + 2], b[i + 2], use_and), BNN_OP(a[i + 3], b[i + 3], use_and));
            BNN_CSA(fours_a, twos, twos, twos_a, twos_b);
            BNN_CSA(twos_a, ones, ones, BNN_OP(a[i + 4], b[i + 4], use_and), BNN_OP(a[i + 5], b[i + 5], use_and));
            BNN_CSA(twos_b, ones, ones, BNN_OP(a[i + 6], b[i + 6], use_and), BNN_OP(a[i + 7], b[i + 7], use_and));
            BNN_CSA(fours_b, twos, twos, twos_a, twos_b);
            BNN_CSA(eights, fours, fours, fours_a, fours_b);
            total += bnn_swar32(eights);
        }
        total = 8 * total + 4 * bnn_swar32(fours) + 2 * bnn_swar32(twos) + bnn_swar32(ones);
    }
    BNN_POP_TAIL(total, a, b, i, n, use_and);
    return total;
}

#else /* BNN_POP_SWAR */

static BNN_INLINE uint32_t bnn_pop2(const uint32_t *a, const uint32_t *b, int32_t n, int use_and) {
    uint32_t total = 0;
    int32_t i = 0;
#if UINTPTR_MAX > 0xFFFFFFFFu
    for (; i + 2 <= n; i += 2) {
        uint64_t x, y;
        memcpy(&x, a + i, sizeof x);
        memcpy(&y, b + i, sizeof y);
        x = BNN_OP(x, y, use_and);
        x = x - ((x >> 1) & 0x5555555555555555u);
        x = (x & 0x3333333333333333u) + ((x >> 2) & 0x3333333333333333u);
        x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Fu;
        total += (uint32_t)((x * 0x0101010101010101u) >> 56);
    }
#endif
    BNN_POP_TAIL(total, a, b, i, n, use_and);
    return total;
}

#endif

#if BNN_NEED_POP_XOR
static uint32_t bnn_pop_xor(const uint32_t *a, const uint32_t *b, int32_t n) { return bnn_pop2(a, b, n, 0); }
#endif
#if BNN_NEED_POP_AND
static uint32_t bnn_pop_and(const uint32_t *a, const uint32_t *b, int32_t n) { return bnn_pop2(a, b, n, 1); }
#endif

#endif /* BNN_NEED_POPCOUNT */

/* ------------------------------------------------------------------------------------------------ layer outputs */

#if BNN_NEED_OUTPUT

#define BNN_OUT_BITS 0   /* sign bits: +1 iff dot >= thr (flip 0) or dot <= thr (flip 1) */
#define BNN_OUT_REAL 1   /* double: dot * scale + shift, as the engine (float64) */
#define BNN_OUT_AFFINE 2 /* float: a * (ps * dot + po * wsum) + b, the first layer on uint8 input, as the engine */
#define BNN_OUT_DOTS 3   /* int32: the dot products themselves (the last layer's scores) */

/* What a layer with +-1 weights makes of its integer dot products, one per output channel. */
typedef struct {
    int32_t mode;         /* BNN_OUT_* */
    int32_t count;        /* output channels */
    const int32_t *thr;   /* BITS: per channel, after `base` (per position class of a first conv) */
    const uint8_t *flip;  /* BITS: per channel */
    const float *scale;   /* REAL */
    const float *shift;   /* REAL */
    const double *a;      /* AFFINE */
    const double *b;      /* AFFINE */
    const int32_t *wsum;  /* AFFINE: sum of the +-1 weights over the taps inside the image, after `base` */
    double ps, po;        /* AFFINE: the preprocessing, x = ps * u + po */
} bnn_out_t;

#if BNN_NEED_BINARY_CONV || BNN_NEED_INPUT_CONV
/* Where position `pos` of a layer's output starts. */
static void *bnn_row(const bnn_out_t *out, void *y, int32_t pos) {
    switch (out->mode) {
    case BNN_OUT_BITS:
        return (uint32_t *)y + (size_t)pos * (size_t)((out->count + 31) >> 5);
    case BNN_OUT_REAL:
        return (double *)y + (size_t)pos * (size_t)out->count;
    case BNN_OUT_AFFINE:
        return (float *)y + (size_t)pos * (size_t)out->count;
    default:
        return (int32_t *)y + (size_t)pos * (size_t)out->count;
    }
}
#endif

/* Output channel o of one position from its dot product d; `acc` gathers the bits of one output word. */
static BNN_INLINE void bnn_put(const bnn_out_t *out, void *dst, int32_t base, int32_t o, int32_t d, uint32_t *acc) {
    switch (out->mode) {
    case BNN_OUT_BITS: {
        int32_t t = out->thr[base + o];
        uint32_t minus = out->flip[o] ? (uint32_t)(d > t) : (uint32_t)(d < t);
        *acc |= minus << (o & 31);
        if ((o & 31) == 31 || o == out->count - 1) {
            ((uint32_t *)dst)[o >> 5] = *acc;
            *acc = 0;
        }
        break;
    }
    case BNN_OUT_REAL: {
        double z = (double)d * (double)out->scale[o];
        ((double *)dst)[o] = z + (double)out->shift[o];
        break;
    }
    case BNN_OUT_AFFINE: {
        double t1 = out->ps * (double)d;
        double t2 = out->po * (double)out->wsum[base + o];
        double dx = t1 + t2;
        double z = out->a[o] * dx;
        ((float *)dst)[o] = (float)(z + out->b[o]);
        break;
    }
    default:
        ((int32_t *)dst)[o] = d;
    }
}

#endif /* BNN_NEED_OUTPUT */

#if BNN_NEED_GEOMETRY
/* A convolution or pooling window over an NHWC map: input h x w, c channels (cw packed words per position). */
typedef struct {
    int32_t h, w, c, cw, kh, kw, stride, top, left, oh, ow;
} bnn_geom_t;
#endif

/* ------------------------------------------------------------------------------------------------ binary layers */

#if BNN_NEED_BINARY_DENSE
/* x: nwords packed words; w: count rows of nwords words; k: the bit count of the dot product. */
static void bnn_binary_dense(const uint32_t *x, int32_t nwords, int32_t k, const uint32_t *w, const bnn_out_t *out,
                             void *y) {
    uint32_t acc = 0;
    int32_t o;
    for (o = 0; o < out->count; o++, w += nwords) {
        int32_t pop = (int32_t)bnn_pop_xor(x, w, nwords);
        bnn_put(out, y, 0, o, (k - pop) - pop, &acc);
    }
}
#endif

#if BNN_NEED_BINARY_CONV
/* Binary convolution of packed NHWC bits, padded with +1 (all-zero words); w: (count, kh, kw, cw) words;
   k = kh * kw * c, the same at every position. patch: kh * kw * cw words of scratch. */
static void bnn_binary_conv(const uint32_t *x, const bnn_geom_t *g, int32_t k, const uint32_t *w,
                            const bnn_out_t *out, void *y, uint32_t *patch) {
    int32_t n = g->kh * g->kw * g->cw, oy, ox, i, j, c, o;
    for (oy = 0; oy < g->oh; oy++) {
        for (ox = 0; ox < g->ow; ox++) {
            uint32_t *p = patch, acc = 0;
            const uint32_t *wo = w;
            void *dst = bnn_row(out, y, oy * g->ow + ox);
            for (i = 0; i < g->kh; i++) {
                int32_t yy = oy * g->stride - g->top + i;
                for (j = 0; j < g->kw; j++) {
                    int32_t xx = ox * g->stride - g->left + j;
                    if (yy >= 0 && yy < g->h && xx >= 0 && xx < g->w) {
                        const uint32_t *src = x + ((size_t)yy * (size_t)g->w + (size_t)xx) * (size_t)g->cw;
                        for (c = 0; c < g->cw; c++) *p++ = src[c];
                    } else {
                        for (c = 0; c < g->cw; c++) *p++ = 0;
                    }
                }
            }
            for (o = 0; o < out->count; o++, wo += n) {
                int32_t pop = (int32_t)bnn_pop_xor(patch, wo, n);
                bnn_put(out, dst, 0, o, (k - pop) - pop, &acc);
            }
        }
    }
}
#endif

/* ------------------------------------------------------------------------------------------------ first layer */

#if BNN_NEED_PLANES
/* The exact dot product of uint8 values u with +-1 weights from the 8 bit planes of u (pw words each):
   dot(u, w) = sum(u) - 2 * sum_b 2^b popcount(plane_b AND w), the bits of w being 1 where w = -1. */
static BNN_INLINE int32_t bnn_planes_dot(const uint32_t *planes, int32_t pw, const uint32_t *w, int32_t sum) {
    int32_t b, neg = 0;
    for (b = 7; b >= 0; b--) neg = 2 * neg + (int32_t)bnn_pop_and(planes + (size_t)b * (size_t)pw, w, pw);
    return (sum - neg) - neg;
}

/* The same for k <= 32 values kept as integers: one weight word, a masked add per value (cheaper than 8 planes). */
static BNN_INLINE int32_t bnn_small_dot(const int32_t *values, int32_t k, uint32_t w, int32_t sum) {
    int32_t t, neg = 0;
    for (t = 0; t < k; t++) neg += values[t] & -(int32_t)((w >> t) & 1u);
    return (sum - neg) - neg;
}

/* Sets bit t of the 8 planes from the value v (planes zeroed before). */
static BNN_INLINE void bnn_plane_set(uint32_t *planes, int32_t pw, int32_t t, uint32_t v) {
    uint32_t *p = planes + (t >> 5);
    int32_t shift = t & 31, b;
    for (b = 0; b < 8; b++, p += pw) *p |= ((v >> b) & 1u) << shift;
}
#endif

#if BNN_NEED_INPUT_DENSE
/* First dense layer on uint8 input u of k values; w: count rows of pw = ceil(k / 32) words. */
static void bnn_input_dense(const uint8_t *u, int32_t k, const uint32_t *w, int32_t pw, const bnn_out_t *out, void *y,
                            uint32_t *planes) {
    int32_t t, o, sum = 0, *values = (int32_t *)planes; /* k <= 32: the values themselves */
    uint32_t acc = 0;
    for (t = 0; t < 8 * pw; t++) planes[t] = 0;
    for (t = 0; t < k; t++) {
        sum += u[t];
        if (k <= 32) {
            values[t] = u[t];
        } else {
            bnn_plane_set(planes, pw, t, u[t]);
        }
    }
    for (o = 0; o < out->count; o++, w += pw) {
        int32_t d = k <= 32 ? bnn_small_dot(values, k, *w, sum) : bnn_planes_dot(planes, pw, w, sum);
        bnn_put(out, y, 0, o, d, &acc);
    }
}
#endif

#if BNN_NEED_INPUT_CONV
/* First convolution on a uint8 CHW image, padded with 0; w: count rows of pw words over the (kh, kw, c) patch.
   Thresholds (bits) or weight sums (affine) depend on which taps fall inside the image: position class
   rows[oy] * ncols + cols[ox] (rows, cols NULL: one class). */
static void bnn_input_conv(const uint8_t *u, const bnn_geom_t *g, const uint32_t *w, int32_t pw, const uint16_t *rows,
                           const uint16_t *cols, int32_t ncols, const bnn_out_t *out, void *y, uint32_t *planes) {
    int32_t oy, ox, i, j, c, t, o, k = g->kh * g->kw * g->c, *values = (int32_t *)planes; /* k <= 32: the values */
    for (oy = 0; oy < g->oh; oy++) {
        for (ox = 0; ox < g->ow; ox++) {
            int32_t sum = 0, base = rows ? ((int32_t)rows[oy] * ncols + (int32_t)cols[ox]) * out->count : 0;
            uint32_t acc = 0;
            const uint32_t *wo = w;
            void *dst = bnn_row(out, y, oy * g->ow + ox);
            for (t = 0; t < (k <= 32 ? 32 : 8 * pw); t++) planes[t] = 0;
            for (i = 0, t = 0; i < g->kh; i++) {
                int32_t yy = oy * g->stride - g->top + i;
                for (j = 0; j < g->kw; j++) {
                    int32_t xx = ox * g->stride - g->left + j;
                    int inside = yy >= 0 && yy < g->h && xx >= 0 && xx < g->w;
                    for (c = 0; c < g->c; c++, t++) {
                        if (inside) {
                            uint32_t v = u[((size_t)c * (size_t)g->h + (size_t)yy) * (size_t)g->w + (size_t)xx];
                            sum += (int32_t)v;
                            if (k <= 32) {
                                values[t] = (int32_t)v;
                            } else {
                                bnn_plane_set(planes, pw, t, v);
                            }
                        }
                    }
                }
            }
            for (o = 0; o < out->count; o++, wo += pw) {
                int32_t d = k <= 32 ? bnn_small_dot(values, k, *wo, sum) : bnn_planes_dot(planes, pw, wo, sum);
                bnn_put(out, dst, base, o, d, &acc);
            }
        }
    }
}
#endif

/* ------------------------------------------------------------------------------------------------ bits plumbing */

#if BNN_NEED_POOL_BITS
/* Max pooling of packed NHWC bits: AND of the window (the max of +-1 is -1 only if all are -1), OR in the
   channels of `use_or` (cw words, NULL: none) whose following threshold is flipped. */
static void bnn_pool_bits(const uint32_t *x, const bnn_geom_t *g, const uint32_t *use_or, uint32_t *y) {
    int32_t oy, ox, i, j, c;
    for (oy = 0; oy < g->oh; oy++) {
        for (ox = 0; ox < g->ow; ox++) {
            for (c = 0; c < g->cw; c++) {
                uint32_t all = 0xFFFFFFFFu, any = 0;
                for (i = 0; i < g->kh; i++) {
                    for (j = 0; j < g->kw; j++) {
                        size_t at = ((size_t)(oy * g->stride + i) * (size_t)g->w + (size_t)(ox * g->stride + j));
                        uint32_t v = x[at * (size_t)g->cw + (size_t)c];
                        all &= v;
                        any |= v;
                    }
                }
                *y++ = use_or ? (all & ~use_or[c]) | (any & use_or[c]) : all;
            }
        }
    }
}
#endif

#if BNN_NEED_PREPROCESS
/* uint8 CHW input -> float32 NHWC, x = u * s + o in float32 (h = w = 1 for a vector). */
static void bnn_preprocess(const uint8_t *u, int32_t c, int32_t h, int32_t w, float s, float o, float *y) {
    int32_t ch, i, hw = h * w;
    for (ch = 0; ch < c; ch++) {
        for (i = 0; i < hw; i++) {
            float t = (float)u[(size_t)ch * (size_t)hw + (size_t)i] * s;
            y[(size_t)i * (size_t)c + (size_t)ch] = t + o;
        }
    }
}
#endif

#if BNN_NEED_ADD_MIXED
/* A shortcut adding float32 and float64 activations: float64, as NumPy promotes. */
static void bnn_add_mixed(const float *a, const double *b, double *y, int32_t n) {
    int32_t i;
    for (i = 0; i < n; i++) y[i] = (double)a[i] + b[i];
}
#endif

#if BNN_NEED_FLOAT_ARGMAX
/* The first index of the largest value, NaN counting as the largest, as numpy.argmax. */
static int bnn_argmax(const float *v, int32_t n) {
    int32_t i, best = 0;
    for (i = 1; i < n && v[best] == v[best]; i++) {
        if (v[i] != v[i] || v[i] > v[best]) best = i;
    }
    return (int)best;
}
#endif
