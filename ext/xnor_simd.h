/* XNOR-popcount micro-kernels, one per SIMD path, chosen at run time.
 *
 * The module is compiled for the baseline ISA (no -march=native); each fast path carries its own
 * target attribute and is only called after xnor_cpu_supports() said the CPU has it. On AArch64 the
 * NEON path (VCNT + pairwise widening adds) is chosen when the kernel reports AdvSIMD; elsewhere only
 * the portable scalar path exists.
 *
 * Bit convention (docs/FORMAT.md): uint64 words, element 64*w + j in bit j of word w, bit 1 = -1,
 * padding bits 0 in every operand, so dot(a, b) = K - 2 * popcount(a XOR b) over all words.
 */
#ifndef XNOR_SIMD_H
#define XNOR_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define XNOR_X86 1
#else
#define XNOR_X86 0
#endif

#if defined(__aarch64__)
#include <arm_neon.h>
#define XNOR_ARM 1
#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#endif
#else
#define XNOR_ARM 0
#endif

/* 1 when the compiler built the module's parallel loops with OpenMP (-fopenmp); else they run on one thread. */
#ifdef _OPENMP
#define XNOR_OPENMP 1
#else
#define XNOR_OPENMP 0
#endif

enum { XNOR_SCALAR = 0, XNOR_AVX2 = 1, XNOR_AVX512 = 2, XNOR_NEON = 3 };

/* 1 when the CPU (and the OS, for the wide registers) supports the given path. */
static int xnor_cpu_supports(int path)
{
    if (path == XNOR_SCALAR)
        return 1;
#if XNOR_X86
    __builtin_cpu_init();
    if (path == XNOR_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
    if (path == XNOR_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vpopcntdq")
            && __builtin_cpu_supports("avx512vnni");
#endif
#if XNOR_ARM
    if (path == XNOR_NEON) {
#if defined(__linux__)
        return (getauxval(AT_HWCAP) & HWCAP_ASIMD) != 0; /* AdvSIMD: in every AArch64 Linux kernel's hwcaps */
#else
        return 1; /* macOS and others: AdvSIMD is part of the AArch64 ABI */
#endif
    }
#endif
    return 0;
}

/* Whether the scalar path may use the POPCNT instruction; set once by xnor_init() at import. */
static int xnor_scalar_popcnt = 0;

/* Whether the AVX-512 path's single-row uint8 kernel may expand weight bits with GF2P8AFFINEQB (GFNI) and
 * transpose the pixels with VPERMB (VBMI); set once by xnor_init(), cleared by the C check to test both. */
static int xnor_u8_gfni = 0;

/* The layouts of uint8 rows by table lookup (xnor_u8_lut_tile): TABLE16 for a 16-entry table per 128 bits (the AVX2
 * path's VPSHUFB, the NEON path's TBL) and TABLE64 for 4 tables per register (the AVX-512 path's VPERMB, where the
 * CPU has VBMI). xnor_u8_vbmi is set once by xnor_init(). */
enum { XNOR_U8_LUT_NONE = 0, XNOR_U8_LUT_TABLE16 = 1, XNOR_U8_LUT_TABLE64 = 2 };
static int xnor_u8_vbmi = 0;

static void xnor_init(void)
{
#if XNOR_X86
    __builtin_cpu_init();
    xnor_scalar_popcnt = __builtin_cpu_supports("popcnt");
    xnor_u8_gfni = xnor_cpu_supports(XNOR_AVX512) && __builtin_cpu_supports("gfni")
        && __builtin_cpu_supports("avx512vbmi");
    xnor_u8_vbmi = xnor_cpu_supports(XNOR_AVX512) && __builtin_cpu_supports("avx512vbmi");
#endif
}

/* ------------------------------------------------------------------------------------------------
 * Scalar path: one kernel body, instantiated with the POPCNT instruction and with a portable SWAR
 * popcount (a plain -O3 build turns __builtin_popcountll into a slow library call).
 * ---------------------------------------------------------------------------------------------- */

static inline int xnor_popcount_swar(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
    return (int)((x * 0x0101010101010101ULL) >> 56);
}

/* C[i*ldc + j] = K - 2 popcount(A_i ^ B_j) for i < m, j < n; rows of A and B are lda / ldb words apart. */
#define XNOR_DEFINE_SCALAR_TILE(NAME, ATTR, POP)                                                    \
    ATTR static void NAME(const uint64_t *a, int64_t lda, const uint64_t *b, int64_t ldb,          \
                          int64_t words, int32_t k, int64_t m, int64_t n, int32_t *c, int64_t ldc) \
    {                                                                                               \
        for (int64_t i = 0; i < m; i++) {                                                           \
            const uint64_t *ai = a + i * lda;                                                       \
            int64_t j = 0;                                                                          \
            for (; j + 4 <= n; j += 4) {                                                            \
                const uint64_t *b0 = b + j * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;   \
                int64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                             \
                for (int64_t w = 0; w < words; w++) {                                               \
                    uint64_t x = ai[w];                                                             \
                    s0 += POP(x ^ b0[w]);                                                           \
                    s1 += POP(x ^ b1[w]);                                                           \
                    s2 += POP(x ^ b2[w]);                                                           \
                    s3 += POP(x ^ b3[w]);                                                           \
                }                                                                                   \
                c[i * ldc + j] = k - 2 * (int32_t)s0;                                               \
                c[i * ldc + j + 1] = k - 2 * (int32_t)s1;                                           \
                c[i * ldc + j + 2] = k - 2 * (int32_t)s2;                                           \
                c[i * ldc + j + 3] = k - 2 * (int32_t)s3;                                           \
            }                                                                                       \
            for (; j < n; j++) {                                                                    \
                const uint64_t *bj = b + j * ldb;                                                   \
                int64_t s = 0;                                                                      \
                for (int64_t w = 0; w < words; w++)                                                 \
                    s += POP(ai[w] ^ bj[w]);                                                        \
                c[i * ldc + j] = k - 2 * (int32_t)s;                                                \
            }                                                                                       \
        }                                                                                           \
    }

XNOR_DEFINE_SCALAR_TILE(xnor_tile_swar, , xnor_popcount_swar)
#if XNOR_X86
XNOR_DEFINE_SCALAR_TILE(xnor_tile_popcnt, __attribute__((target("popcnt"))), __builtin_popcountll)
#endif

/* ------------------------------------------------------------------------------------------------
 * AVX2 path: Mula's nibble-lookup popcount (VPSHUFB) summed into 64-bit lanes with VPSADBW.
 * ---------------------------------------------------------------------------------------------- */
#if XNOR_X86
#define XNOR_AVX2_ATTR __attribute__((target("avx2,popcnt")))

XNOR_AVX2_ATTR static inline __m256i xnor_popcnt256(__m256i v)
{
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    __m256i lo = _mm256_and_si256(v, low);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
    __m256i bytes = _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
    return _mm256_sad_epu8(bytes, _mm256_setzero_si256());
}

XNOR_AVX2_ATTR static inline int64_t xnor_hsum256(__m256i v)
{
    __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return _mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1);
}

/* An MR x NR block of dot products; MR, NR are constants at each call site, so the accumulator
 * arrays live in registers. Whole 4-word groups go through AVX2, the last words through POPCNT. */
XNOR_AVX2_ATTR static inline __attribute__((always_inline)) void
xnor_block_avx2(const uint64_t *a, int64_t lda, const uint64_t *b, int64_t ldb, int64_t words,
                int32_t k, int32_t *c, int64_t ldc, const int MR, const int NR)
{
    __m256i acc[2][4];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++)
            acc[i][j] = _mm256_setzero_si256();
    int64_t w = 0;
    for (; w + 4 <= words; w += 4) {
        __m256i va[2], vb[4];
        for (int i = 0; i < MR; i++)
            va[i] = _mm256_loadu_si256((const __m256i *)(a + i * lda + w));
        for (int j = 0; j < NR; j++)
            vb[j] = _mm256_loadu_si256((const __m256i *)(b + j * ldb + w));
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++)
                acc[i][j] = _mm256_add_epi64(acc[i][j], xnor_popcnt256(_mm256_xor_si256(va[i], vb[j])));
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) {
            int64_t s = xnor_hsum256(acc[i][j]);
            for (int64_t t = w; t < words; t++)
                s += __builtin_popcountll(a[i * lda + t] ^ b[j * ldb + t]);
            c[i * ldc + j] = k - 2 * (int32_t)s;
        }
}

XNOR_AVX2_ATTR static void xnor_tile_avx2(const uint64_t *a, int64_t lda, const uint64_t *b, int64_t ldb,
                                          int64_t words, int32_t k, int64_t m, int64_t n, int32_t *c,
                                          int64_t ldc)
{
    int64_t i = 0;
    for (; i + 2 <= m; i += 2) {
        int64_t j = 0;
        for (; j + 4 <= n; j += 4)
            xnor_block_avx2(a + i * lda, lda, b + j * ldb, ldb, words, k, c + i * ldc + j, ldc, 2, 4);
        for (; j < n; j++)
            xnor_block_avx2(a + i * lda, lda, b + j * ldb, ldb, words, k, c + i * ldc + j, ldc, 2, 1);
    }
    for (; i < m; i++) {
        int64_t j = 0;
        for (; j + 4 <= n; j += 4)
            xnor_block_avx2(a + i * lda, lda, b + j * ldb, ldb, words, k, c + i * ldc + j, ldc, 1, 4);
        for (; j < n; j++)
            xnor_block_avx2(a + i * lda, lda, b + j * ldb, ldb, words, k, c + i * ldc + j, ldc, 1, 1);
    }
}

/* ------------------------------------------------------------------------------------------------
 * AVX-512 path: XOR + VPOPCNTQ + add, 8 words per register, accumulators kept across K, the last
 * partial group read with a masked (zeroing) load so padding words XOR to zero.
 * ---------------------------------------------------------------------------------------------- */
#define XNOR_AVX512_ATTR __attribute__((target("avx512f,avx512bw,avx512vl,avx512vpopcntdq,avx512vnni,popcnt")))

/* acc + u (unsigned bytes) . w (signed bytes), in groups of 4, as VPDPBUSD: written as asm because GCC copies
 * every accumulator of the intrinsic's tied operand through another register (32 extra moves and a spill per
 * 4 x 4 block step in the disassembly; the first-layer kernel 19.3 -> 14.3 us, the VNNI ceiling loop +32%). */
XNOR_AVX512_ATTR static inline __m512i xnor_dpbusd(__m512i acc, __m512i u, __m512i w)
{
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(w));
    return acc;
}

/* c[0..3] = k - 2 * (horizontal sums of p, q, r, s): one transposing reduction instead of four. */
XNOR_AVX512_ATTR static inline void xnor_store4_avx512(__m512i p, __m512i q, __m512i r, __m512i s, int32_t k,
                                                       int32_t *c)
{
    /* per 128-bit lane: [p0+p1, q0+q1] and [r0+r1, s0+s1] */
    __m512i pq = _mm512_add_epi64(_mm512_unpacklo_epi64(p, q), _mm512_unpackhi_epi64(p, q));
    __m512i rs = _mm512_add_epi64(_mm512_unpacklo_epi64(r, s), _mm512_unpackhi_epi64(r, s));
    /* lanes [pq0+pq1, pq2+pq3, rs0+rs1, rs2+rs3], then add neighbouring lanes */
    __m512i x = _mm512_add_epi64(_mm512_shuffle_i64x2(pq, rs, 0x88), _mm512_shuffle_i64x2(pq, rs, 0xdd));
    x = _mm512_add_epi64(x, _mm512_shuffle_i64x2(x, x, 0xb1));
    /* lane 0 = [sum p, sum q], lane 2 = [sum r, sum s] */
    __m512i sums = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 4, 5, 0, 1, 4, 5), x);
    __m128i pop = _mm256_castsi256_si128(_mm512_cvtepi64_epi32(sums));
    __m128i dot = _mm_sub_epi32(_mm_set1_epi32(k), _mm_slli_epi32(pop, 1));
    _mm_storeu_si128((__m128i *)c, dot);
}

XNOR_AVX512_ATTR static inline __attribute__((always_inline)) void
xnor_block_avx512(const uint64_t *a, int64_t lda, const uint64_t *b, int64_t ldb, int64_t words,
                  int32_t k, int32_t *c, int64_t ldc, const int MR, const int NR)
{
    __m512i acc[4][8];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++)
            acc[i][j] = _mm512_setzero_si512();
    int64_t w = 0;
    for (; w + 8 <= words; w += 8) {
        __m512i va[4], vb[8];
        for (int i = 0; i < MR; i++)
            va[i] = _mm512_loadu_si512((const void *)(a + i * lda + w));
        for (int j = 0; j < NR; j++)
            vb[j] = _mm512_loadu_si512((const void *)(b + j * ldb + w));
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++)
                acc[i][j] = _mm512_add_epi64(acc[i][j], _mm512_popcnt_epi64(_mm512_xor_si512(va[i], vb[j])));
    }
    if (w < words && words - w <= 4) {
        /* a short tail costs half a 512-bit step in 256-bit registers */
        const __mmask8 tail = (__mmask8)((1u << (words - w)) - 1u);
        __m256i va[4], vb[8];
        for (int i = 0; i < MR; i++)
            va[i] = _mm256_maskz_loadu_epi64(tail, (const void *)(a + i * lda + w));
        for (int j = 0; j < NR; j++)
            vb[j] = _mm256_maskz_loadu_epi64(tail, (const void *)(b + j * ldb + w));
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++)
                acc[i][j] = _mm512_add_epi64(acc[i][j], _mm512_zextsi256_si512(
                    _mm256_popcnt_epi64(_mm256_xor_si256(va[i], vb[j]))));
    } else if (w < words) {
        const __mmask8 tail = (__mmask8)((1u << (words - w)) - 1u);
        __m512i va[4], vb[8];
        for (int i = 0; i < MR; i++)
            va[i] = _mm512_maskz_loadu_epi64(tail, (const void *)(a + i * lda + w));
        for (int j = 0; j < NR; j++)
            vb[j] = _mm512_maskz_loadu_epi64(tail, (const void *)(b + j * ldb + w));
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++)
                acc[i][j] = _mm512_add_epi64(acc[i][j], _mm512_popcnt_epi64(_mm512_xor_si512(va[i], vb[j])));
    }
    for (int i = 0; i < MR; i++) {
        int j = 0;
        for (; j + 4 <= NR; j += 4)
            xnor_store4_avx512(acc[i][j], acc[i][j + 1], acc[i][j + 2], acc[i][j + 3], k, c + i * ldc + j);
        for (; j < NR; j++)
            c[i * ldc + j] = k - 2 * (int32_t)_mm512_reduce_add_epi64(acc[i][j]);
    }
}

XNOR_AVX512_ATTR static void xnor_tile_avx512(const uint64_t *a, int64_t lda, const uint64_t *b, int64_t ldb,
                                              int64_t words, int32_t k, int64_t m, int64_t n, int32_t *c,
                                              int64_t ldc)
{
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) {
        int64_t j = 0;
        for (; j + 4 <= n; j += 4)
            xnor_block_avx512(a + i * lda, lda, b + j * ldb, ldb, words, k, c + i * ldc + j, ldc, 4, 4);
        for (; j < n; j++)
            xnor_block_avx512(a + i * lda, lda, b + j * ldb, ldb, words, k, c + i * ldc + j, ldc, 4, 1);
    }
    for (; i + 2 <= m; i += 2) { /* 2 or 3 rows left: stream B once for two of them */
        int64_t j = 0;
        for (; j + 8 <= n; j += 8)
            xnor_block_avx512(a + i * lda, lda, b + j * ldb, ldb, words, k, c + i * ldc + j, ldc, 2, 8);
        for (; j < n; j++)
            xnor_block_avx512(a + i * lda, lda, b + j * ldb, ldb, words, k, c + i * ldc + j, ldc, 2, 1);
    }
    for (; i < m; i++) {
        int64_t j = 0;
        for (; j + 8 <= n; j += 8)
            xnor_block_avx512(a + i * lda, lda, b + j * ldb, ldb, words, k, c + i * ldc + j, ldc, 1, 8);
        for (; j < n; j++)
            xnor_block_avx512(a + i * lda, lda, b + j * ldb, ldb, words, k, c + i * ldc + j, ldc, 1, 1);
    }
}
#endif /* XNOR_X86 */

/* ------------------------------------------------------------------------------------------------
 * NEON path (AArch64): VCNT gives the popcount of each byte of a 128-bit XOR, VPADAL adds byte pairs
 * into 16-bit lanes, and every XNOR_NEON_CHUNK steps those are folded into 32-bit lanes (a 16-bit lane
 * grows by at most 16 per step). An odd last word goes through the 64-bit VCNT.
 * ---------------------------------------------------------------------------------------------- */
#if XNOR_ARM
#define XNOR_NEON_CHUNK 4000

static inline __attribute__((always_inline)) void
xnor_block_neon(const uint64_t *a, int64_t lda, const uint64_t *b, int64_t ldb, int64_t words, int32_t k,
                int32_t *c, int64_t ldc, const int MR, const int NR)
{
    uint32x4_t acc32[2][4];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++)
            acc32[i][j] = vdupq_n_u32(0);
    int64_t w = 0;
    while (w + 2 <= words) {
        const int64_t stop = words - w > 2 * XNOR_NEON_CHUNK ? w + 2 * XNOR_NEON_CHUNK : words;
        uint16x8_t acc16[2][4];
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++)
                acc16[i][j] = vdupq_n_u16(0);
        for (; w + 2 <= stop; w += 2) {
            uint8x16_t va[2], vb[4];
            for (int i = 0; i < MR; i++)
                va[i] = vreinterpretq_u8_u64(vld1q_u64(a + i * lda + w));
            for (int j = 0; j < NR; j++)
                vb[j] = vreinterpretq_u8_u64(vld1q_u64(b + j * ldb + w));
            for (int i = 0; i < MR; i++)
                for (int j = 0; j < NR; j++)
                    acc16[i][j] = vpadalq_u8(acc16[i][j], vcntq_u8(veorq_u8(va[i], vb[j])));
        }
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++)
                acc32[i][j] = vpadalq_u16(acc32[i][j], acc16[i][j]);
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) {
            int64_t s = (int64_t)vaddvq_u32(acc32[i][j]);
            if (w < words)
                s += vaddv_u8(vcnt_u8(vcreate_u8(a[i * lda + w] ^ b[j * ldb + w])));
            c[i * ldc + j] = k - 2 * (int32_t)s;
        }
}

static void xnor_tile_neon(const uint64_t *a, int64_t lda, const uint64_t *b, int64_t ldb, int64_t words,
                           int32_t k, int64_t m, int64_t n, int32_t *c, int64_t ldc)
{
    int64_t i = 0;
    for (; i + 2 <= m; i += 2) {
        int64_t j = 0;
        for (; j + 4 <= n; j += 4)
            xnor_block_neon(a + i * lda, lda, b + j * ldb, ldb, words, k, c + i * ldc + j, ldc, 2, 4);
        for (; j < n; j++)
            xnor_block_neon(a + i * lda, lda, b + j * ldb, ldb, words, k, c + i * ldc + j, ldc, 2, 1);
    }
    for (; i < m; i++) {
        int64_t j = 0;
        for (; j + 4 <= n; j += 4)
            xnor_block_neon(a + i * lda, lda, b + j * ldb, ldb, words, k, c + i * ldc + j, ldc, 1, 4);
        for (; j < n; j++)
            xnor_block_neon(a + i * lda, lda, b + j * ldb, ldb, words, k, c + i * ldc + j, ldc, 1, 1);
    }
}

/* 64-bit popcount for the uint8 bit-plane loop: VCNT + across-vector add (what GCC and clang make of
 * __builtin_popcountll on AArch64, written out so that no compiler falls back to a library call). */
static inline int xnor_popcount_neon(uint64_t x)
{
    return (int)vaddv_u8(vcnt_u8(vcreate_u8(x)));
}
#endif /* XNOR_ARM */

/* Dispatch one tile of dot products to the given path (already checked against the CPU). */
static void xnor_tile(int path, const uint64_t *a, int64_t lda, const uint64_t *b, int64_t ldb,
                      int64_t words, int32_t k, int64_t m, int64_t n, int32_t *c, int64_t ldc)
{
#if XNOR_X86
    if (path == XNOR_AVX512) {
        xnor_tile_avx512(a, lda, b, ldb, words, k, m, n, c, ldc);
        return;
    }
    if (path == XNOR_AVX2) {
        xnor_tile_avx2(a, lda, b, ldb, words, k, m, n, c, ldc);
        return;
    }
    if (xnor_scalar_popcnt) {
        xnor_tile_popcnt(a, lda, b, ldb, words, k, m, n, c, ldc);
        return;
    }
#endif
#if XNOR_ARM
    if (path == XNOR_NEON) {
        xnor_tile_neon(a, lda, b, ldb, words, k, m, n, c, ldc);
        return;
    }
#endif
    (void)path;
    xnor_tile_swar(a, lda, b, ldb, words, k, m, n, c, ldc);
}

/* The AVX2 panel kernel copies a row of A that sits in segments (a stride-1 convolution's patch: its kernel rows
 * in the bordered input) to one contiguous row first, of at most this many words. */
#define XNOR_AVX2_PATCH_WORDS 1024

/* Where a kernel that compares with per-column thresholds in registers writes its bits: row r in the bytes
 * from bits + r * ldb (the tile's first column, a multiple of 64); thresholds and flip from that column. */
typedef struct {
    const int32_t *thresholds;
    const uint8_t *flip;
    uint8_t *bits;
    int64_t ldb;
    /* AVX-512: the same thresholds as xnor_bits_limits lays them out for the tile (NULL on other paths) */
    const int64_t *limits;
    const uint8_t *flip_bits;
} XnorBitsOut;

/* ------------------------------------------------------------------------------------------------
 * Panel layout of B for the AVX-512 broadcast kernel: rows in groups of 8, word-interleaved,
 * panel[(g * words + w) * 8 + r] = B[8g + r][w] (zero rows pad the last group). One A word broadcast
 * against 8 rows of B fills the 8 lanes with 8 different dot products: no horizontal reduction and no
 * partial last group of words, which is what short reductions (3x3 convs: 9 * ceil(C/64) words) lose
 * most to. A single row of A also streams B in one contiguous pass.
 * ---------------------------------------------------------------------------------------------- */
static void xnor_make_panel(const uint64_t *b, int64_t n, int64_t words, uint64_t *panel, int64_t g0, int64_t g1)
{
    for (int64_t g = g0; g < g1; g++) { /* groups g0 .. g1-1 of (n + 7) / 8 */
        const uint64_t *rows[8];
        for (int64_t r = 0; r < 8; r++)
            rows[r] = 8 * g + r < n ? b + (8 * g + r) * words : NULL;
        uint64_t *dst = panel + g * words * 8;
        if (8 * g + 8 <= n) {
            for (int64_t w = 0; w < words; w++, dst += 8)
                for (int r = 0; r < 8; r++)
                    dst[r] = rows[r][w];
        } else {
            for (int64_t w = 0; w < words; w++, dst += 8)
                for (int r = 0; r < 8; r++)
                    dst[r] = rows[r] ? rows[r][w] : 0;
        }
    }
}

#if XNOR_X86
/* A tile's per-column thresholds t as the AVX-512 panel kernel compares them with its popcounts s (dot = k - 2s):
 * the bit is -1 where dot < t, i.e. s > floor((k - t) / 2), or, flipped, where dot > t, i.e. NOT s > ceil((k - t)
 * / 2) - 1. limits[j] is that bound (INT64_MAX past column n: bit 0) and flip_bits[g] the flips of group g's 8
 * columns, so the kernel's epilogue is one compare and one xor per 8 columns and row. Made once per tile, not once
 * per block of rows. limits: ceil(n / 8) * 8 entries, flip_bits: ceil(n / 8). */
XNOR_AVX512_ATTR static void xnor_bits_limits_avx512(const int32_t *thr, const uint8_t *flip, int32_t k, int64_t n,
                                                     int64_t *limits, uint8_t *flip_bits)
{
    const __m512i kv = _mm512_set1_epi64(k), one = _mm512_set1_epi64(1), never = _mm512_set1_epi64(INT64_MAX);
    for (int64_t g = 0; 8 * g < n; g++) {
        const int64_t col = 8 * g, left = n - col;
        const __mmask8 vm = left >= 8 ? (__mmask8)0xff : (__mmask8)((1u << left) - 1u);
        const __m512i room = _mm512_sub_epi64(kv, _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(vm, thr + col)));
        const __mmask8 fl = (__mmask8)_mm_mask_test_epi8_mask(vm, _mm_maskz_loadu_epi8(vm, flip + col),
                                                              _mm_set1_epi8(-1));
        const __m512i limit = _mm512_mask_blend_epi64(fl, _mm512_srai_epi64(room, 1),
                                                      _mm512_srai_epi64(_mm512_sub_epi64(room, one), 1));
        _mm512_storeu_si512((void *)(limits + col), _mm512_mask_blend_epi64(vm, never, limit));
        flip_bits[g] = (uint8_t)fl;
    }
}
#endif

#if XNOR_X86
/* MR rows of A x NR groups of 8 rows of B; `valid` = how many of the last group's 8 columns exist. A row of
 * A comes in segments of `span` words, `seg` words apart: a GEMM row is one segment (span = words); a
 * stride-1 convolution reads its patch's kernel rows straight from a bordered input (no im2col). */
XNOR_AVX512_ATTR static inline __attribute__((always_inline)) void
xnor_panel_block_avx512(const uint64_t *a, int64_t lda, int64_t seg, int64_t span, const uint64_t *p,
                        int64_t words, int32_t k, int32_t *c, int64_t ldc, const XnorBitsOut *out, int64_t group,
                        int valid, const int MR, const int NR)
{
    __m512i acc[4][4];
    if (words > 0) { /* the first word starts the counts: no zeroing and no add (~2% of a 3 x 3 x 128 patch) */
        __m512i vb[4];
        for (int j = 0; j < NR; j++)
            vb[j] = _mm512_loadu_si512((const void *)(p + j * words * 8));
        for (int i = 0; i < MR; i++) {
            __m512i va = _mm512_set1_epi64((long long)a[i * lda]);
            for (int j = 0; j < NR; j++)
                acc[i][j] = _mm512_popcnt_epi64(_mm512_xor_si512(va, vb[j]));
        }
    } else {
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++)
                acc[i][j] = _mm512_setzero_si512();
    }
    for (int64_t w0 = 0, s0 = 0; w0 < words; w0 += span, s0 += seg)
        for (int64_t e = w0 == 0; e < span; e++) {
            const int64_t w = w0 + e;
            __m512i vb[4];
            for (int j = 0; j < NR; j++)
                vb[j] = _mm512_loadu_si512((const void *)(p + (j * words + w) * 8));
            for (int i = 0; i < MR; i++) {
                __m512i va = _mm512_set1_epi64((long long)a[i * lda + s0 + e]);
                for (int j = 0; j < NR; j++)
                    acc[i][j] = _mm512_add_epi64(acc[i][j], _mm512_popcnt_epi64(_mm512_xor_si512(va, vb[j])));
            }
        }
    if (out) { /* one compare per 8 columns and row (xnor_bits_limits); one byte of output bits per group */
        for (int j = 0; j < NR; j++) {
            const int64_t col = 8 * (group + j);
            const __m512i limit = _mm512_loadu_si512((const void *)(out->limits + col));
            const uint8_t flip = out->flip_bits[group + j];
            for (int i = 0; i < MR; i++) {
                const uint8_t bits = (uint8_t)((uint8_t)_mm512_cmpgt_epi64_mask(acc[i][j], limit) ^ flip);
                uint8_t *dst = out->bits + i * out->ldb + col / 8;
                if (col % 64 == 0) { /* a word's first group clears the word, so its padding bits stay 0 */
                    const uint64_t word = bits;
                    memcpy(dst, &word, sizeof(word));
                } else {
                    *dst = bits;
                }
            }
        }
        return;
    }
    const __m256i kv = _mm256_set1_epi32(k);
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) {
            __m256i dots = _mm256_sub_epi32(kv, _mm256_slli_epi32(_mm512_cvtepi64_epi32(acc[i][j]), 1));
            if (j < NR - 1 || valid == 8)
                _mm256_storeu_si256((__m256i *)(c + i * ldc + 8 * j), dots);
            else
                _mm256_mask_storeu_epi32(c + i * ldc + 8 * j, (__mmask8)((1u << valid) - 1u), dots);
        }
}

/* MR rows of A against columns [0, n) of a panel (group 0 first), dots into c (row stride ldc). */
XNOR_AVX512_ATTR static inline __attribute__((always_inline)) void
xnor_panel_rows_avx512(const uint64_t *a, int64_t lda, int64_t seg, int64_t span, const uint64_t *panel,
                       int64_t words, int32_t k, int64_t n, int32_t *c, int64_t ldc, const XnorBitsOut *out,
                       const int MR)
{
    const int64_t groups = (n + 7) / 8, step = 8 * words;
    const int last = (int)(n - 8 * (groups - 1));
    int64_t g = 0;
    for (; g + 4 <= groups; g += 4)
        xnor_panel_block_avx512(a, lda, seg, span, panel + g * step, words, k, c + 8 * g, ldc, out, g,
                                g + 4 == groups ? last : 8, MR, 4);
    for (; g < groups; g++)
        xnor_panel_block_avx512(a, lda, seg, span, panel + g * step, words, k, c + 8 * g, ldc, out, g,
                                g + 1 == groups ? last : 8, MR, 1);
}

/* m rows x n columns against a panel: dots into c (row stride ldc), or, given `out`, only its bits. */
XNOR_AVX512_ATTR static void xnor_panel_tile_avx512(const uint64_t *a, int64_t lda, int64_t seg, int64_t span,
                                                    const uint64_t *panel, int64_t words, int32_t k, int64_t m,
                                                    int64_t n, int32_t *c, int64_t ldc, const XnorBitsOut *out)
{
    XnorBitsOut rows;
    for (int64_t i = 0; i < m;) {
        const int mr = i + 4 <= m ? 4 : 1;
        if (out) {
            rows = *out;
            rows.bits += i * out->ldb;
        }
        if (mr == 4)
            xnor_panel_rows_avx512(a + i * lda, lda, seg, span, panel, words, k, n, c + i * ldc, ldc,
                                   out ? &rows : NULL, 4);
        else
            xnor_panel_rows_avx512(a + i * lda, lda, seg, span, panel, words, k, n, c + i * ldc, ldc,
                                   out ? &rows : NULL, 1);
        i += mr;
    }
}
#endif /* XNOR_X86 */

#if XNOR_X86
/* Carry-save adder on 256 bits: a + b + c = 2 * hi + lo in every bit position. */
#define XNOR_CSA256(hi, lo, a, b, c)                                                                \
    do {                                                                                            \
        __m256i u_ = _mm256_xor_si256(a, b), c_ = (c);                                              \
        hi = _mm256_or_si256(_mm256_and_si256(a, b), _mm256_and_si256(u_, c_));                     \
        lo = _mm256_xor_si256(u_, c_);                                                              \
    } while (0)

/* Byte-wise popcounts of v, weighted by LUT (the 16-entry nibble table, repeated per 128-bit lane). */
#define XNOR_NIBBLES256(lut, v, low) \
    _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(v, low)), \
                    _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low)))

/* The popcounts of one row of A (contiguous words) XOR one group of 8 panel rows, as two halves of 4 int64
 * lanes (columns 0-3, 4-7). Per half, a Harley-Seal carry-save tree over 8 words keeps ones / twos / fours, so
 * the VPSHUFB popcount runs once per 8 words (on the "eights", added up in bytes: at most 8 a chunk, so 31
 * chunks before they are summed); the rest is counted in bytes once at the end, with tables weighted 1, 2, 4. */
XNOR_AVX2_ATTR static inline __attribute__((always_inline)) void
xnor_panel_counts_avx2(const uint64_t *a, const uint64_t *p, int64_t words, __m256i *counts)
{
    const __m256i low = _mm256_set1_epi8(0x0f);
    const __m256i lut1 = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                          0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i lut2 = _mm256_add_epi8(lut1, lut1), lut4 = _mm256_add_epi8(lut2, lut2);
    for (int h = 0; h < 2; h++) {
        const uint64_t *q = p + 4 * h;
        __m256i ones = _mm256_setzero_si256(), twos = ones, fours = ones, eights = ones, total = ones;
        int64_t w = 0;
#define XNOR_HS_IN(t) \
    _mm256_xor_si256(_mm256_set1_epi64x((long long)a[w + (t)]), _mm256_loadu_si256((const __m256i *)(q + (w + (t)) * 8)))
        for (int chunk = 0; w + 8 <= words; w += 8) {
            __m256i twos_a, twos_b, fours_a, fours_b, carry;
            XNOR_CSA256(twos_a, ones, ones, XNOR_HS_IN(0), XNOR_HS_IN(1));
            XNOR_CSA256(twos_b, ones, ones, XNOR_HS_IN(2), XNOR_HS_IN(3));
            XNOR_CSA256(fours_a, twos, twos, twos_a, twos_b);
            XNOR_CSA256(twos_a, ones, ones, XNOR_HS_IN(4), XNOR_HS_IN(5));
            XNOR_CSA256(twos_b, ones, ones, XNOR_HS_IN(6), XNOR_HS_IN(7));
            XNOR_CSA256(fours_b, twos, twos, twos_a, twos_b);
            XNOR_CSA256(carry, fours, fours, fours_a, fours_b);
            eights = _mm256_add_epi8(eights, XNOR_NIBBLES256(lut1, carry, low));
            if (++chunk == 31) {
                total = _mm256_add_epi64(total, _mm256_sad_epu8(eights, _mm256_setzero_si256()));
                eights = _mm256_setzero_si256();
                chunk = 0;
            }
        }
        /* bytes: at most 8 + 16 + 32 from the tree, 8 per word of the last < 8 words */
        __m256i bytes = _mm256_add_epi8(_mm256_add_epi8(XNOR_NIBBLES256(lut1, ones, low), XNOR_NIBBLES256(lut2, twos, low)),
                                        XNOR_NIBBLES256(lut4, fours, low));
        for (; w < words; w++) {
            const __m256i x = XNOR_HS_IN(0);
            bytes = _mm256_add_epi8(bytes, XNOR_NIBBLES256(lut1, x, low));
        }
#undef XNOR_HS_IN
        total = _mm256_add_epi64(total, _mm256_sad_epu8(eights, _mm256_setzero_si256()));
        counts[h] = _mm256_add_epi64(_mm256_slli_epi64(total, 3), _mm256_sad_epu8(bytes, _mm256_setzero_si256()));
    }
}

/* m rows x n columns against a panel, rows in segments (span = words: plain rows); dots into c (row stride
 * ldc), or, given `out`, only its bits: per half, dot = k - 2s against 4 thresholds widened to int64, flipped
 * lanes compared as (dot ^ -1) < (t ^ -1). */
XNOR_AVX2_ATTR static void xnor_panel_tile_avx2(const uint64_t *a, int64_t lda, int64_t seg, int64_t span,
                                                const uint64_t *panel, int64_t words, int32_t k, int64_t m, int64_t n,
                                                int32_t *c, int64_t ldc, const XnorBitsOut *out)
{
    uint64_t patch[XNOR_AVX2_PATCH_WORDS];
    const int64_t groups = (n + 7) / 8;
    const __m256i kv = _mm256_set1_epi64x(k);
    for (int64_t i = 0; i < m; i++) {
        const uint64_t *row = a + i * lda;
        if (span < words) {
            for (int64_t w0 = 0, s0 = 0; w0 < words; w0 += span, s0 += seg)
                memcpy(patch + w0, row + s0, (size_t)span * sizeof(uint64_t));
            row = patch;
        }
        for (int64_t g = 0; g < groups; g++) {
            const int valid = n - 8 * g < 8 ? (int)(n - 8 * g) : 8;
            __m256i counts[2];
            xnor_panel_counts_avx2(row, panel + g * 8 * words, words, counts);
            if (!out) {
                int64_t s[8];
                _mm256_storeu_si256((__m256i *)s, counts[0]);
                _mm256_storeu_si256((__m256i *)(s + 4), counts[1]);
                for (int r = 0; r < valid; r++)
                    c[i * ldc + 8 * g + r] = k - 2 * (int32_t)s[r];
                continue;
            }
            int32_t t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            uint64_t f = 0;
            const int32_t *tr = out->thresholds + 8 * g;
            if (valid == 8) {
                memcpy(&f, out->flip + 8 * g, 8);
            } else {
                for (int r = 0; r < valid; r++)
                    t[r] = tr[r], f |= (uint64_t)out->flip[8 * g + r] << (8 * r);
                tr = t;
            }
            unsigned bits = 0;
            for (int h = 0; h < 2; h++) {
                const __m256i flip = _mm256_sub_epi64(_mm256_setzero_si256(),
                                                      _mm256_cvtepu8_epi64(_mm_cvtsi32_si128((int)(uint32_t)(f >> (32 * h)))));
                const __m256i tv = _mm256_xor_si256(_mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)(tr + 4 * h))), flip);
                const __m256i dot = _mm256_xor_si256(_mm256_sub_epi64(kv, _mm256_slli_epi64(counts[h], 1)), flip);
                bits |= (unsigned)_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(tv, dot))) << (4 * h);
            }
            bits &= (1u << valid) - 1u;
            uint8_t *dst = out->bits + i * out->ldb + g;
            if (g % 8 == 0) { /* a word's first group clears the word, so its padding bits stay 0 */
                const uint64_t word = bits;
                memcpy(dst, &word, sizeof(word));
            } else {
                *dst = (uint8_t)bits;
            }
        }
    }
}
#endif /* XNOR_X86 */

/* Dispatch one tile against a panel. The callers use panels on the AVX-512 and AVX2 paths; the portable
 * loop keeps any other path correct. */
static void xnor_panel_tile(int path, const uint64_t *a, int64_t lda, const uint64_t *panel, int64_t words,
                            int32_t k, int64_t m, int64_t n, int32_t *c, int64_t ldc)
{
#if XNOR_X86
    if (path == XNOR_AVX512) {
        xnor_panel_tile_avx512(a, lda, 0, words, panel, words, k, m, n, c, ldc, NULL);
        return;
    }
    if (path == XNOR_AVX2) {
        xnor_panel_tile_avx2(a, lda, 0, words, panel, words, k, m, n, c, ldc, NULL);
        return;
    }
#endif
    (void)path;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            int64_t s = 0;
            for (int64_t w = 0; w < words; w++)
                s += xnor_popcount_swar(a[i * lda + w] ^ panel[((j / 8) * words + w) * 8 + j % 8]);
            c[i * ldc + j] = k - 2 * (int32_t)s;
        }
}

/* 1 when the path has xnor_panel_tile_segments: convolution patches read in place from a bordered input, and
 * thresholds compared in registers (GEMM rows are one segment). */
static int xnor_panel_segments(int path, int64_t words)
{
    return XNOR_X86 && (path == XNOR_AVX512 || (path == XNOR_AVX2 && words <= XNOR_AVX2_PATCH_WORDS));
}

/* The limits and flip_bits of an XnorBitsOut for n columns (xnor_bits_limits_avx512), on the path that reads them:
 * 1 when made, 0 on the other paths (they compare with thresholds and flip themselves). */
static int xnor_bits_limits(int path, const int32_t *thr, const uint8_t *flip, int32_t k, int64_t n, int64_t *limits,
                            uint8_t *flip_bits)
{
#if XNOR_X86
    if (path == XNOR_AVX512) {
        xnor_bits_limits_avx512(thr, flip, k, n, limits, flip_bits);
        return 1;
    }
#endif
    (void)path, (void)thr, (void)flip, (void)k, (void)n, (void)limits, (void)flip_bits;
    return 0;
}

/* A stride-1 convolution's tile rows against a panel without im2col: m output pixels of one output row,
 * row i's patch is kh segments of span = kw * cw words, `seg` words apart, starting at a + i * lda. Only
 * for the paths where xnor_panel_segments says so. Given `out`, the popcounts are compared with its thresholds in
 * registers and only the bits are written (c unused). */
static void xnor_panel_tile_segments(int path, const uint64_t *a, int64_t lda, int64_t seg, int64_t span,
                                     const uint64_t *panel, int64_t words, int32_t k, int64_t m, int64_t n,
                                     int32_t *c, int64_t ldc, const XnorBitsOut *out)
{
#if XNOR_X86
    if (path == XNOR_AVX512)
        xnor_panel_tile_avx512(a, lda, seg, span, panel, words, k, m, n, c, ldc, out);
    else if (path == XNOR_AVX2)
        xnor_panel_tile_avx2(a, lda, seg, span, panel, words, k, m, n, c, ldc, out);
#else
    (void)path, (void)a, (void)lda, (void)seg, (void)span, (void)panel, (void)words, (void)k, (void)m, (void)n;
    (void)c, (void)ldc, (void)out;
#endif
}

/* x (n, h, w, cw) -> out (n, ph, pw, cw) with x at row pt, column pl and zero words (+1 activations) around
 * it: what xnor_im2col reads outside the input. */
static void xnor_border(const uint64_t *x, int64_t n, int64_t h, int64_t w, int64_t cw, int64_t pt, int64_t pl,
                        int64_t ph, int64_t pw, uint64_t *out)
{
    const int64_t row = pw * cw;
    for (int64_t b = 0; b < n; b++)
        for (int64_t y = 0; y < ph; y++) {
            uint64_t *dst = out + (b * ph + y) * row;
            const int64_t sy = y - pt;
            if (sy < 0 || sy >= h) {
                memset(dst, 0, (size_t)row * sizeof(uint64_t));
                continue;
            }
            const int64_t cols = w < pw - pl ? w : pw - pl; /* input columns that land inside */
            memset(dst, 0, (size_t)(pl * cw) * sizeof(uint64_t));
            memcpy(dst + pl * cw, x + (b * h + sy) * w * cw, (size_t)(cols * cw) * sizeof(uint64_t));
            memset(dst + (pl + cols) * cw, 0, (size_t)((pw - pl - cols) * cw) * sizeof(uint64_t));
        }
}

/* ------------------------------------------------------------------------------------------------
 * Thresholds on the int32 dots of a tile, written as packed output bits.
 * ---------------------------------------------------------------------------------------------- */
#define XNOR_DEFINE_THRESHOLD(NAME, ATTR, BITS64)                                                   \
    ATTR static void NAME(const int32_t *dots, int64_t rows, int64_t n, int64_t ldd, int64_t n0,    \
                          const int32_t *thr, const uint8_t *flip, uint64_t *out, int64_t ldo)      \
    {                                                                                               \
        for (int64_t r = 0; r < rows; r++) {                                                        \
            const int32_t *d = dots + r * ldd;                                                      \
            uint64_t *o = out + r * ldo + n0 / 64;                                                  \
            for (int64_t base = 0; base < n; base += 64) {                                          \
                int64_t end = n - base < 64 ? n - base : 64;                                        \
                const int32_t *t = thr + n0 + base;                                                 \
                const uint8_t *f = flip + n0 + base;                                                \
                const int32_t *v = d + base;                                                        \
                uint64_t bits = 0;                                                                  \
                BITS64                                                                              \
                o[base / 64] = bits;                                                                \
            }                                                                                       \
        }                                                                                           \
    }

#define XNOR_THRESHOLD_SCALAR_BITS                                                                  \
    for (int64_t j = 0; j < end; j++)                                                               \
        bits |= (uint64_t)((f[j] && v[j] > t[j]) || (!f[j] && v[j] < t[j])) << j;

XNOR_DEFINE_THRESHOLD(xnor_threshold_scalar, , XNOR_THRESHOLD_SCALAR_BITS)

#if XNOR_X86
/* 16 channels at a time, thresholds and flip flags loaded once for all rows of the tile:
 * bit = (dot < thr where not flipped) | (dot > thr where flipped). */
__attribute__((target("avx512f,avx512bw,avx512vl")))
static void xnor_threshold_avx512(const int32_t *dots, int64_t rows, int64_t n, int64_t ldd, int64_t n0,
                                  const int32_t *thr, const uint8_t *flip, uint64_t *out, int64_t ldo)
{
    for (int64_t base = 0; base < n; base += 16) {
        int64_t left = n - base;
        __mmask16 valid = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        __m512i tv = _mm512_maskz_loadu_epi32(valid, thr + n0 + base);
        __mmask16 fl = _mm_mask_test_epi8_mask(valid, _mm_maskz_loadu_epi8(valid, flip + n0 + base),
                                               _mm_set1_epi8(-1));
        __mmask16 keep = valid & (__mmask16)~fl, flipped = valid & fl;
        int shift = (int)(base % 64);
        uint64_t *o = out + (n0 + base) / 64;
        for (int64_t r = 0; r < rows; r++) {
            __m512i dv = _mm512_maskz_loadu_epi32(valid, dots + r * ldd + base);
            uint64_t bits = (uint64_t)(__mmask16)(_mm512_mask_cmplt_epi32_mask(keep, dv, tv)
                                                  | _mm512_mask_cmpgt_epi32_mask(flipped, dv, tv));
            if (shift == 0)
                o[r * ldo] = bits; /* the first 16 channels of a word start it */
            else
                o[r * ldo] |= bits << shift;
        }
    }
}
#endif

/* Dots of one tile (rows x n, row stride ldd) -> packed output bits. The tile starts at output
 * channel n0, a multiple of 64, so every output word belongs to exactly one tile.
 * flip 0: +1 iff dot >= thr (bit 1 iff dot < thr); flip 1: +1 iff dot <= thr (bit 1 iff dot > thr). */
static void xnor_threshold_pack(int path, const int32_t *dots, int64_t rows, int64_t n, int64_t ldd, int64_t n0,
                                const int32_t *thr, const uint8_t *flip, uint64_t *out, int64_t ldo)
{
#if XNOR_X86
    if (path == XNOR_AVX512) {
        xnor_threshold_avx512(dots, rows, n, ldd, n0, thr, flip, out, ldo);
        return;
    }
#endif
    (void)path;
    xnor_threshold_scalar(dots, rows, n, ldd, n0, thr, flip, out, ldo);
}

/* As xnor_threshold_pack, with thresholds per row position: tile row r (global row row0 + r) compares with
 * thresholds thr + p * ldt, p = (row0 + r) % period, or index[p] when an index is given (distinct rows only) (a 'same'-padded first conv, whose thresholds depend on how
 * many taps fall inside the image). The AVX-512 loop keeps the flip masks out of the row loop. */
#if XNOR_X86
__attribute__((target("avx512f,avx512bw,avx512vl")))
static void xnor_threshold_period_avx512(const int32_t *dots, int64_t rows, int64_t n, int64_t ldd, int64_t n0,
                                         const int32_t *thr, int64_t ldt, int64_t row0, int64_t period,
                                         const int32_t *index, const uint8_t *flip, uint64_t *out, int64_t ldo)
{
    for (int64_t base = 0; base < n; base += 16) {
        int64_t left = n - base;
        __mmask16 valid = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        __mmask16 fl = _mm_mask_test_epi8_mask(valid, _mm_maskz_loadu_epi8(valid, flip + n0 + base),
                                               _mm_set1_epi8(-1));
        __mmask16 keep = valid & (__mmask16)~fl, flipped = valid & fl;
        int shift = (int)(base % 64);
        uint64_t *o = out + (n0 + base) / 64;
        int64_t position = row0 % period;
        for (int64_t r = 0; r < rows; r++) {
            __m512i tv = _mm512_maskz_loadu_epi32(valid, thr + (index ? index[position] : position) * ldt + n0 + base);
            __m512i dv = _mm512_maskz_loadu_epi32(valid, dots + r * ldd + base);
            uint64_t bits = (uint64_t)(__mmask16)(_mm512_mask_cmplt_epi32_mask(keep, dv, tv)
                                                  | _mm512_mask_cmpgt_epi32_mask(flipped, dv, tv));
            if (shift == 0)
                o[r * ldo] = bits;
            else
                o[r * ldo] |= bits << shift;
            if (++position == period)
                position = 0;
        }
    }
}
#endif

static void xnor_threshold_pack_period(int path, const int32_t *dots, int64_t rows, int64_t n, int64_t ldd,
                                       int64_t n0, const int32_t *thr, int64_t ldt, int64_t row0, int64_t period,
                                       const int32_t *index, const uint8_t *flip, uint64_t *out, int64_t ldo)
{
#if XNOR_X86
    if (path == XNOR_AVX512) {
        xnor_threshold_period_avx512(dots, rows, n, ldd, n0, thr, ldt, row0, period, index, flip, out, ldo);
        return;
    }
#endif
    for (int64_t r = 0; r < rows; r++) {
        int64_t position = (row0 + r) % period;
        xnor_threshold_pack(path, dots + r * ldd, 1, n, ldd, n0, thr + (index ? index[position] : position) * ldt,
                            flip, out + r * ldo, ldo);
    }
}

/* ------------------------------------------------------------------------------------------------
 * Packing signs: bit 1 where x < 0 (so 0 and -0.0 are +1). NaN sets *nan and packs as +1.
 * ---------------------------------------------------------------------------------------------- */
#define XNOR_DEFINE_PACK_SCALAR(NAME, T)                                                            \
    static void NAME(const T *x, int64_t rows, int64_t k, uint64_t *out, int64_t words, int *nan)   \
    {                                                                                               \
        int bad = 0;                                                                                \
        for (int64_t r = 0; r < rows; r++) {                                                        \
            const T *xr = x + r * k;                                                                \
            for (int64_t w = 0; w < words; w++) {                                                   \
                int64_t end = k - 64 * w < 64 ? k - 64 * w : 64;                                    \
                uint64_t bits = 0;                                                                  \
                for (int64_t j = 0; j < end; j++) {                                                 \
                    T v = xr[64 * w + j];                                                           \
                    bits |= (uint64_t)(v < 0) << j;                                                 \
                    bad |= (v != v);                                                                \
                }                                                                                   \
                out[r * words + w] = bits;                                                          \
            }                                                                                       \
        }                                                                                           \
        *nan = bad;                                                                                 \
    }

XNOR_DEFINE_PACK_SCALAR(xnor_pack_f32_scalar, float)
XNOR_DEFINE_PACK_SCALAR(xnor_pack_f64_scalar, double)
XNOR_DEFINE_PACK_SCALAR(xnor_pack_i8, int8_t)
XNOR_DEFINE_PACK_SCALAR(xnor_pack_i16, int16_t)
XNOR_DEFINE_PACK_SCALAR(xnor_pack_i32, int32_t)
XNOR_DEFINE_PACK_SCALAR(xnor_pack_i64, int64_t)

#if XNOR_X86
/* LANES values per compare-into-mask (16 floats or 8 doubles); the tail of each row is a masked load
 * (zeros compare as +1). */
#define XNOR_DEFINE_PACK_AVX512(NAME, T, VEC, LANES, MASK, LOAD, CMP)                               \
    XNOR_AVX512_ATTR static void NAME(const T *x, int64_t rows, int64_t k, uint64_t *out,          \
                                      int64_t words, int *nan)                                      \
    {                                                                                               \
        const VEC zero = (VEC){0};                                                                  \
        MASK bad = 0;                                                                               \
        for (int64_t r = 0; r < rows; r++) {                                                        \
            const T *xr = x + r * k;                                                                \
            for (int64_t w = 0; w < words; w++) {                                                   \
                uint64_t bits = 0;                                                                  \
                for (int q = 0; q < 64 / LANES; q++) {                                              \
                    int64_t start = 64 * w + LANES * q;                                             \
                    if (start >= k)                                                                 \
                        break;                                                                      \
                    MASK valid = k - start >= LANES ? (MASK)~0u : (MASK)((1u << (k - start)) - 1u); \
                    VEC v = LOAD(valid, xr + start);                                                \
                    bits |= (uint64_t)CMP(v, zero, _CMP_LT_OQ) << (LANES * q);                      \
                    bad |= CMP(v, v, _CMP_UNORD_Q);                                                 \
                }                                                                                   \
                out[r * words + w] = bits;                                                          \
            }                                                                                       \
        }                                                                                           \
        *nan = bad != 0;                                                                            \
    }

XNOR_DEFINE_PACK_AVX512(xnor_pack_f32_avx512, float, __m512, 16, __mmask16, _mm512_maskz_loadu_ps,
                        _mm512_cmp_ps_mask)
XNOR_DEFINE_PACK_AVX512(xnor_pack_f64_avx512, double, __m512d, 8, __mmask8, _mm512_maskz_loadu_pd,
                        _mm512_cmp_pd_mask)

/* 8 floats per compare + movemask; the partial last group of a row goes through the scalar loop. */
XNOR_AVX2_ATTR static void xnor_pack_f32_avx2(const float *x, int64_t rows, int64_t k, uint64_t *out,
                                              int64_t words, int *nan)
{
    const __m256 zero = _mm256_setzero_ps();
    int bad = 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * k;
        for (int64_t w = 0; w < words; w++) {
            uint64_t bits = 0;
            for (int q = 0; q < 8; q++) {
                int64_t start = 64 * w + 8 * q;
                if (start >= k)
                    break;
                if (k - start >= 8) {
                    __m256 v = _mm256_loadu_ps(xr + start);
                    bits |= (uint64_t)_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_LT_OQ)) << (8 * q);
                    bad |= _mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
                } else {
                    for (int64_t j = start; j < k; j++) {
                        bits |= (uint64_t)(xr[j] < 0) << (j - 64 * w);
                        bad |= xr[j] != xr[j];
                    }
                }
            }
            out[r * words + w] = bits;
        }
    }
    *nan = bad != 0;
}
#endif /* XNOR_X86 */

static void xnor_pack_f32(int path, const float *x, int64_t rows, int64_t k, uint64_t *out, int64_t words,
                          int *nan)
{
#if XNOR_X86
    if (path == XNOR_AVX512) {
        xnor_pack_f32_avx512(x, rows, k, out, words, nan);
        return;
    }
    if (path == XNOR_AVX2) {
        xnor_pack_f32_avx2(x, rows, k, out, words, nan);
        return;
    }
#endif
    (void)path;
    xnor_pack_f32_scalar(x, rows, k, out, words, nan);
}

static void xnor_pack_f64(int path, const double *x, int64_t rows, int64_t k, uint64_t *out, int64_t words,
                          int *nan)
{
#if XNOR_X86
    if (path == XNOR_AVX512) {
        xnor_pack_f64_avx512(x, rows, k, out, words, nan);
        return;
    }
#endif
    (void)path;
    xnor_pack_f64_scalar(x, rows, k, out, words, nan);
}

/* bits (rows x words) -> int8 -1/+1 (rows x k). */
static void xnor_unpack(const uint64_t *bits, int64_t rows, int64_t words, int64_t k, int8_t *out)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < k; j++)
            out[r * k + j] = (int8_t)(1 - 2 * (int)((bits[r * words + j / 64] >> (j % 64)) & 1u));
}

/* ------------------------------------------------------------------------------------------------
 * Convolution helpers on packed NHWC words.
 * ---------------------------------------------------------------------------------------------- */

/* Patches of output pixels p0 .. p1-1 (flat over N, OH, OW) -> rows of KH*KW*cw words; positions in
 * the padding become zero words, i.e. +1 activations. A kernel row inside the input is kw*cw
 * contiguous words of x, copied in one go. */
static void xnor_im2col(const uint64_t *x, int64_t h, int64_t w, int64_t cw, int64_t kh, int64_t kw,
                        int64_t sh, int64_t sw, int64_t pt, int64_t pl, int64_t oh, int64_t ow,
                        int64_t p0, int64_t p1, uint64_t *out)
{
    const int64_t span = kw * cw;
    uint64_t *dst = out;
    for (int64_t p = p0; p < p1; p++) {
        int64_t b = p / (oh * ow), rem = p % (oh * ow);
        int64_t y0 = (rem / ow) * sh - pt, x0 = (rem % ow) * sw - pl;
        int inside_x = x0 >= 0 && x0 + kw <= w;
        for (int64_t i = 0; i < kh; i++, dst += span) {
            int64_t y = y0 + i;
            if (y < 0 || y >= h) {
                for (int64_t c = 0; c < span; c++)
                    dst[c] = 0;
                continue;
            }
            const uint64_t *row = x + (b * h + y) * w * cw;
            if (inside_x) {
                const uint64_t *src = row + x0 * cw;
                for (int64_t c = 0; c < span; c++)
                    dst[c] = src[c];
                continue;
            }
            for (int64_t j = 0; j < kw; j++) {
                int64_t xx = x0 + j;
                for (int64_t c = 0; c < cw; c++)
                    dst[j * cw + c] = (xx >= 0 && xx < w) ? row[xx * cw + c] : 0;
            }
        }
    }
}

/* 2x2 stride-2 pooling on packed bits: per channel AND (max of +-1) where the mask bit is 0, OR (min,
 * for a channel whose following threshold is flipped) where it is 1. */
static void xnor_pool2x2(const uint64_t *x, int64_t n, int64_t h, int64_t w, int64_t cw,
                         const uint64_t *or_mask, uint64_t *out)
{
    const int64_t oh = h / 2, ow = w / 2;
    for (int64_t b = 0; b < n; b++)
        for (int64_t i = 0; i < oh; i++)
            for (int64_t j = 0; j < ow; j++) {
                const uint64_t *p00 = x + ((b * h + 2 * i) * w + 2 * j) * cw;
                const uint64_t *p01 = p00 + cw, *p10 = p00 + w * cw, *p11 = p10 + cw;
                uint64_t *o = out + ((b * oh + i) * ow + j) * cw;
                for (int64_t c = 0; c < cw; c++) {
                    uint64_t all = p00[c] & p01[c] & p10[c] & p11[c];
                    uint64_t any = p00[c] | p01[c] | p10[c] | p11[c];
                    o[c] = (all & ~or_mask[c]) | (any & or_mask[c]);
                }
            }
}

/* ------------------------------------------------------------------------------------------------
 * uint8 rows against packed -1/+1 rows (the exact first layer on raw pixels):
 * c[i][j] = sum_t u_i[t] * w_j[t] = sum(u_i) - 2 * (sum of u_i[t] where bit t of w_j is 1, i.e. w = -1).
 * Row length k bytes (row stride ldu), weights ceil(k/64) words (row stride ldb), padding bits 0.
 * |c| <= 255 * k, which the caller keeps below 2^31.
 * ---------------------------------------------------------------------------------------------- */
/* Portable and POPCNT paths: bit-planes of the row (plane b = bit b of every pixel), 64 words at a time
 * so that the planes fit on the stack, then sum_b 2^b popcount(plane_b AND w) per weight row. */
#define XNOR_U8_CHUNK 64
#define XNOR_DEFINE_U8_TILE(NAME, ATTR, POP)                                                        \
    ATTR static void NAME(const uint8_t *u, int64_t ldu, int64_t k, const uint64_t *b, int64_t ldb, \
                          int64_t m, int64_t n, int32_t *c, int64_t ldc)                            \
    {                                                                                               \
        const int64_t words = (k + 63) / 64;                                                        \
        uint64_t planes[8][XNOR_U8_CHUNK];                                                          \
        for (int64_t i = 0; i < m; i++) {                                                           \
            const uint8_t *ui = u + i * ldu;                                                        \
            int32_t total = 0;                                                                      \
            for (int64_t t = 0; t < k; t++)                                                         \
                total += ui[t];                                                                     \
            for (int64_t j = 0; j < n; j++)                                                         \
                c[i * ldc + j] = total;                                                             \
            for (int64_t w0 = 0; w0 < words; w0 += XNOR_U8_CHUNK) {                                 \
                const int64_t cw = words - w0 < XNOR_U8_CHUNK ? words - w0 : XNOR_U8_CHUNK;         \
                for (int64_t w = 0; w < cw; w++) {                                                  \
                    const uint8_t *uw = ui + 64 * (w0 + w);                                         \
                    const int64_t end = k - 64 * (w0 + w) < 64 ? k - 64 * (w0 + w) : 64;            \
                    for (int bit = 0; bit < 8; bit++) {                                             \
                        uint64_t plane = 0;                                                         \
                        for (int64_t t = 0; t < end; t++)                                           \
                            plane |= (uint64_t)((uw[t] >> bit) & 1u) << t;                          \
                        planes[bit][w] = plane;                                                     \
                    }                                                                               \
                }                                                                                   \
                for (int64_t j = 0; j < n; j++) {                                                   \
                    const uint64_t *bj = b + j * ldb + w0;                                          \
                    int64_t neg = 0;                                                                \
                    for (int bit = 7; bit >= 0; bit--) {                                            \
                        int64_t s = 0;                                                              \
                        for (int64_t w = 0; w < cw; w++)                                            \
                            s += POP(planes[bit][w] & bj[w]);                                       \
                        neg = 2 * neg + s;                                                          \
                    }                                                                               \
                    c[i * ldc + j] -= 2 * (int32_t)neg;                                             \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
    }

XNOR_DEFINE_U8_TILE(xnor_u8_tile_swar, , xnor_popcount_swar)
#if XNOR_X86
XNOR_DEFINE_U8_TILE(xnor_u8_tile_popcnt, __attribute__((target("popcnt"))), __builtin_popcountll)
#endif
#if XNOR_ARM
XNOR_DEFINE_U8_TILE(xnor_u8_tile_neon, , xnor_popcount_neon)
#endif

#if XNOR_X86
/* 16 vectors of 16 int32 -> one vector of their 16 horizontal sums, in order (a transposing tree). */
XNOR_AVX512_ATTR static inline __m512i xnor_reduce16_epi32(const __m512i v[16])
{
    __m512i x[8], y[4];
    for (int i = 0; i < 8; i++) /* per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] */
        x[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                                _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; i++) /* per lane: the lane sums of v[4i .. 4i+3] */
        y[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(x[2 * i], x[2 * i + 1]),
                                _mm512_unpackhi_epi64(x[2 * i], x[2 * i + 1]));
    __m512i z0 = _mm512_add_epi32(_mm512_shuffle_i32x4(y[0], y[1], 0x88), _mm512_shuffle_i32x4(y[0], y[1], 0xdd));
    __m512i z1 = _mm512_add_epi32(_mm512_shuffle_i32x4(y[2], y[3], 0x88), _mm512_shuffle_i32x4(y[2], y[3], 0xdd));
    return _mm512_add_epi32(_mm512_shuffle_i32x4(z0, z1, 0x88), _mm512_shuffle_i32x4(z0, z1, 0xdd));
}

XNOR_AVX512_ATTR static inline int32_t xnor_u8_sum_avx512(const uint8_t *u, int64_t k)
{
    __m512i acc = _mm512_setzero_si512();
    for (int64_t t = 0; t < k; t += 64) {
        __mmask64 valid = k - t >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (k - t)) - 1);
        acc = _mm512_add_epi64(acc, _mm512_sad_epu8(_mm512_maskz_loadu_epi8(valid, u + t), _mm512_setzero_si512()));
    }
    return (int32_t)_mm512_reduce_add_epi64(acc);
}

/* An MR x NR block (MR * NR = 16, or 1 x 1): each weight word becomes a byte mask (0xff where w = -1)
 * that VPDPBUSD multiplies with 64 pixels at once, accumulating -(sum of u where w = -1). */
XNOR_AVX512_ATTR static inline __attribute__((always_inline)) void
xnor_u8_block_avx512(const uint8_t *u, int64_t ldu, int64_t k, const uint64_t *b, int64_t ldb,
                     const int32_t *totals, int32_t *c, int64_t ldc, const int MR, const int NR)
{
    __m512i acc[16];
    for (int q = 0; q < MR * NR; q++)
        acc[q] = _mm512_setzero_si512();
    for (int64_t t = 0, w = 0; t < k; t += 64, w++) {
        __mmask64 valid = k - t >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (k - t)) - 1);
        __m512i vu[2];
        for (int i = 0; i < MR; i++)
            vu[i] = _mm512_maskz_loadu_epi8(valid, u + i * ldu + t);
        for (int j = 0; j < NR; j++) {
            __m512i neg = _mm512_movm_epi8(_cvtu64_mask64(b[j * ldb + w]));
            for (int i = 0; i < MR; i++)
                acc[i * NR + j] = xnor_dpbusd(acc[i * NR + j], vu[i], neg);
        }
    }
    if (MR * NR == 16) {
        __m512i sums = xnor_reduce16_epi32(acc);
        __m512i tot = MR == 1 ? _mm512_set1_epi32(totals[0])
                              : _mm512_inserti64x4(_mm512_set1_epi32(totals[0]), _mm256_set1_epi32(totals[1]), 1);
        __m512i dots = _mm512_add_epi32(tot, _mm512_add_epi32(sums, sums));
        if (MR == 1) {
            _mm512_storeu_si512((void *)c, dots);
        } else {
            _mm256_storeu_si256((__m256i *)c, _mm512_castsi512_si256(dots));
            _mm256_storeu_si256((__m256i *)(c + ldc), _mm512_extracti64x4_epi64(dots, 1));
        }
    } else {
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++)
                c[i * ldc + j] = totals[i] + 2 * _mm512_reduce_add_epi32(acc[i * NR + j]);
    }
}

/* One row against blocks of 16 weight rows, its pixels loaded once (k <= 1024: at most 16 vectors, the tail
 * zeroed) for all of them: a batch-1 layer (the binary MLP's 784 -> 2048) no longer reloads and re-masks the
 * pixels per block. Returns the columns done (a multiple of 16). PIXELS(v) puts a vector of pixels in the
 * order NEG(word) expands a weight word to bytes (0xff where w = -1). */
#define XNOR_DEFINE_U8_ROW(NAME, ATTR, PIXELS, NEG)                                                          \
    ATTR static int64_t NAME(const uint8_t *u, int64_t k, const uint64_t *b, int64_t ldb, int64_t n,         \
                             int32_t total, int32_t *c)                                                      \
    {                                                                                                        \
        __m512i vu[16];                                                                                      \
        int64_t words = (k + 63) / 64;                                                                       \
        for (int64_t w = 0; w < words; w++) {                                                                \
            int64_t t = 64 * w;                                                                              \
            __mmask64 valid = k - t >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (k - t)) - 1);                 \
            vu[w] = PIXELS(_mm512_maskz_loadu_epi8(valid, u + t));                                           \
        }                                                                                                    \
        __m512i tot = _mm512_set1_epi32(total);                                                              \
        int64_t j = 0;                                                                                       \
        for (; j + 16 <= n; j += 16) {                                                                       \
            __m512i acc[16];                                                                                 \
            for (int q = 0; q < 16; q++)                                                                     \
                acc[q] = _mm512_setzero_si512();                                                             \
            const uint64_t *bj = b + j * ldb;                                                                \
            for (int64_t w = 0; w < words; w++)                                                              \
                for (int q = 0; q < 16; q++)                                                                 \
                    acc[q] = xnor_dpbusd(acc[q], vu[w], NEG(bj[q * ldb + w]));                               \
            __m512i sums = xnor_reduce16_epi32(acc);                                                         \
            _mm512_storeu_si512((void *)(c + j), _mm512_add_epi32(tot, _mm512_add_epi32(sums, sums)));      \
        }                                                                                                    \
        return j;                                                                                            \
    }

/* The mask-register expansion: KMOVQ + VPMOVM2B per (row, word), the pixels as they are. */
XNOR_AVX512_ATTR static inline __m512i xnor_u8_pixels_mask(__m512i v)
{
    return v;
}

XNOR_AVX512_ATTR static inline __m512i xnor_u8_neg_mask(uint64_t word)
{
    return _mm512_movm_epi8(_cvtu64_mask64(word));
}

XNOR_DEFINE_U8_ROW(xnor_u8_row_avx512, XNOR_AVX512_ATTR, xnor_u8_pixels_mask, xnor_u8_neg_mask)

/* The same single row without mask registers (the mask path issues one KMOVQ per (row, word), and this core
 * runs about one a cycle): each weight word is broadcast to the 8 lanes and GF2P8AFFINEQB, with the matrix
 * of lane L selecting bit L of every byte, makes byte 8L + j 0xff where weight bit 8j + L is 1. The pixels
 * are transposed to that order once per call (VPERMB: byte 8L + j <- pixel 8j + L), so each (row, word) costs
 * a broadcast load, GF2P8AFFINEQB and VPDPBUSD: (1, 2048, 784) 8.4 -> 7.1 us best call in C. */
#define XNOR_AVX512_GFNI_ATTR \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512vpopcntdq,avx512vnni,avx512vbmi,gfni,popcnt")))
static const uint8_t xnor_u8_transpose_bytes[64] = {
    0, 8,  16, 24, 32, 40, 48, 56, 1, 9,  17, 25, 33, 41, 49, 57, 2, 10, 18, 26, 34, 42, 50, 58,
    3, 11, 19, 27, 35, 43, 51, 59, 4, 12, 20, 28, 36, 44, 52, 60, 5, 13, 21, 29, 37, 45, 53, 61,
    6, 14, 22, 30, 38, 46, 54, 62, 7, 15, 23, 31, 39, 47, 55, 63};

/* VPERMB: byte 8L + j <- byte 8j + L */
XNOR_AVX512_GFNI_ATTR static inline __m512i xnor_u8_pixels_gfni(__m512i v)
{
    return _mm512_permutexvar_epi8(_mm512_loadu_si512((const void *)xnor_u8_transpose_bytes), v);
}

/* GF2P8AFFINEQB of the broadcast word; lane L's matrix selects bit L of each byte into all 8 bits */
XNOR_AVX512_GFNI_ATTR static inline __m512i xnor_u8_neg_gfni(uint64_t word)
{
    const __m512i select = _mm512_set_epi64((long long)0x8080808080808080ULL, 0x4040404040404040LL,
                                            0x2020202020202020LL, 0x1010101010101010LL, 0x0808080808080808LL,
                                            0x0404040404040404LL, 0x0202020202020202LL, 0x0101010101010101LL);
    return _mm512_gf2p8affine_epi64_epi8(_mm512_set1_epi64((long long)word), select, 0);
}

XNOR_DEFINE_U8_ROW(xnor_u8_row_gfni_avx512, XNOR_AVX512_GFNI_ATTR, xnor_u8_pixels_gfni, xnor_u8_neg_gfni)

XNOR_AVX512_ATTR static void xnor_u8_tile_avx512(const uint8_t *u, int64_t ldu, int64_t k, const uint64_t *b,
                                                 int64_t ldb, int64_t m, int64_t n, int32_t *c, int64_t ldc)
{
    int64_t i = 0;
    int32_t totals[2];
    for (; i + 2 <= m; i += 2) {
        totals[0] = xnor_u8_sum_avx512(u + i * ldu, k);
        totals[1] = xnor_u8_sum_avx512(u + (i + 1) * ldu, k);
        int64_t j = 0;
        for (; j + 8 <= n; j += 8)
            xnor_u8_block_avx512(u + i * ldu, ldu, k, b + j * ldb, ldb, totals, c + i * ldc + j, ldc, 2, 8);
        for (; j < n; j++) {
            xnor_u8_block_avx512(u + i * ldu, ldu, k, b + j * ldb, ldb, totals, c + i * ldc + j, ldc, 1, 1);
            xnor_u8_block_avx512(u + (i + 1) * ldu, ldu, k, b + j * ldb, ldb, totals + 1, c + (i + 1) * ldc + j,
                                 ldc, 1, 1);
        }
    }
    for (; i < m; i++) {
        totals[0] = xnor_u8_sum_avx512(u + i * ldu, k);
        int64_t j = k > 1024      ? 0
                  : xnor_u8_gfni ? xnor_u8_row_gfni_avx512(u + i * ldu, k, b, ldb, n, totals[0], c + i * ldc)
                                 : xnor_u8_row_avx512(u + i * ldu, k, b, ldb, n, totals[0], c + i * ldc);
        for (; j + 16 <= n; j += 16)
            xnor_u8_block_avx512(u + i * ldu, ldu, k, b + j * ldb, ldb, totals, c + i * ldc + j, ldc, 1, 16);
        for (; j < n; j++)
            xnor_u8_block_avx512(u + i * ldu, ldu, k, b + j * ldb, ldb, totals, c + i * ldc + j, ldc, 1, 1);
    }
}
#endif /* XNOR_X86 */

/* ------------------------------------------------------------------------------------------------
 * uint8 rows by table lookup: a dense first layer (784 pixels -> 2048) at any batch, on AVX-512 and AVX2.
 *
 * The kernels above expand every weight bit to a byte (per row: one GF2P8AFFINEQB or VPMOVM2B per 64 weights
 * beside the VPDPBUSD, so a single row runs at half the VPDPBUSD rate at best; or once, as the dword layout,
 * which then reads 8x the bytes of the packed weights). Here the expansion is done on the pixels instead, once
 * per row: for each group of 4 pixels, the 16 sums of its subsets, split in low and high nibbles (at most
 * 4 * 15 = 60, a byte). A weight row's 4 bits of that group index the table, so S = sum of the pixels where
 * w = -1 is a sum of lookups, and dot = total - 2 S, exact. (As the LUT kernels of T-MAC and bitnet.cpp, for
 * binary weights and exact 8-bit activations.)
 *
 * VPERMB (AVX-512 VBMI) looks up 64 at once (16 rows x 4 groups) in a register of 4 groups' tables, and
 * VPDPBUSD adds each row's 4 lookups into its dword (times 1 for the low nibbles, 16 for the high ones): 256
 * MACs per two VPERMB and two VPDPBUSD. VPSHUFB (AVX2) looks up 32 (16 rows x 2 groups: a table per 128-bit
 * lane), TBL (NEON) 16; their lookups add up in bytes for 4 groups, then in 16-bit lanes (low + 16 high) for 16
 * widenings, then in int32. Measured with (1, 2048, 784), a bound call: AVX-512 13.5 -> 6.7 us at batch 1 and
 * 6.6 -> 4.8 us a row at batch 64 (the dword kernel before); AVX2 68 -> 15 us at batch 1.
 *
 * The weights' layout, made once (xnor_make_u8_lut), the same size in both: per block of 16 weight rows and
 * quad of 16 pixels, 64 bytes. In TABLE64 (for VPERMB) byte 4d + p holds the nibble of row d for the quad's group
 * p, plus 16p (which table); in TABLE16 (VPSHUFB, TBL) byte 16p + d holds it. A row's tables, the same for both.
 * ---------------------------------------------------------------------------------------------- */

/* Bytes of the layout of n weight rows over k pixels, and of one row's tables. */
static inline int64_t xnor_u8_lut_size(int64_t n, int64_t k)
{
    return (n + 15) / 16 * ((k + 15) / 16) * 64;
}

static inline int64_t xnor_u8_lut_table_bytes(int64_t k)
{
    return (k + 15) / 16 * 128;
}

/* The layout format the path runs uint8 rows by table lookup on (a path the CPU has), or XNOR_U8_LUT_NONE. */
static int xnor_u8_lut_format(int path)
{
    if (XNOR_X86 && path == XNOR_AVX512)
        return xnor_u8_vbmi ? XNOR_U8_LUT_TABLE64 : XNOR_U8_LUT_NONE;
    return (XNOR_X86 && path == XNOR_AVX2) || (XNOR_ARM && path == XNOR_NEON) ? XNOR_U8_LUT_TABLE16 : XNOR_U8_LUT_NONE;
}

static void xnor_make_u8_lut(const uint64_t *b, int64_t n, int64_t words, int64_t k, int format, uint8_t *lut)
{
    const int64_t quads = (k + 15) / 16;
    for (int64_t j = 0; j < (n + 15) / 16; j++)
        for (int64_t q = 0; q < quads; q++)
            for (int d = 0; d < 16; d++)
                for (int p = 0; p < 4; p++) {
                    const int64_t row = 16 * j + d, bit = 16 * q + 4 * p;
                    uint8_t nibble = 0; /* rows past n and pixels past k: no bit set */
                    if (row < n && bit < 64 * words)
                        nibble = (uint8_t)((b[row * words + bit / 64] >> (bit % 64)) & 15);
                    uint8_t *quad = lut + (j * quads + q) * 64;
                    if (format == XNOR_U8_LUT_TABLE64)
                        quad[4 * d + p] = (uint8_t)(nibble | (p << 4));
                    else
                        quad[16 * p + d] = nibble;
                }
}

#if XNOR_X86
/* The tables of m rows (both formats), row i's at tables + i * xnor_u8_lut_table_bytes(k): per quad of pixels 64
 * bytes of low-nibble sums, byte 16p + s the sum over subset s of group p's pixels (VPSHUFB of 8 pixels at a time,
 * once per pixel of a group), then 64 of high-nibble sums; totals[i] the row's pixel sum. */
XNOR_AVX2_ATTR static void xnor_u8_lut_tables_avx2(const uint8_t *u, int64_t ldu, int64_t k, int64_t m,
                                                   uint8_t *tables, int32_t *totals)
{
    const __m256i low = _mm256_set1_epi8(0x0f);
    __m256i pick[4]; /* lane L, byte s: pixel 4L + i of the 8 where bit i of s is set, else 0x80 (zero) */
    for (int i = 0; i < 4; i++) {
        uint8_t bytes[32];
        for (int L = 0; L < 2; L++)
            for (int t = 0; t < 16; t++)
                bytes[16 * L + t] = (uint8_t)((t >> i) & 1 ? 4 * L + i : 0x80);
        pick[i] = _mm256_loadu_si256((const __m256i *)bytes);
    }
    const int64_t pairs = 2 * ((k + 15) / 16), row_bytes = xnor_u8_lut_table_bytes(k);
    for (int64_t i = 0; i < m; i++) {
        int64_t sum = 0;
        for (int64_t g = 0; g < pairs; g++) {
            const int64_t t = 8 * g, left = k - t;
            uint64_t eight = 0;
            if (left > 0)
                memcpy(&eight, u + i * ldu + t, left >= 8 ? 8 : (size_t)left);
            sum += _mm_cvtsi128_si64(_mm_sad_epu8(_mm_cvtsi64_si128((long long)eight), _mm_setzero_si128()));
            const __m256i v = _mm256_set1_epi64x((long long)eight);
            const __m256i lo = _mm256_and_si256(v, low), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
            __m256i tlo = _mm256_shuffle_epi8(lo, pick[0]), thi = _mm256_shuffle_epi8(hi, pick[0]);
            for (int b = 1; b < 4; b++) {
                tlo = _mm256_add_epi8(tlo, _mm256_shuffle_epi8(lo, pick[b]));
                thi = _mm256_add_epi8(thi, _mm256_shuffle_epi8(hi, pick[b]));
            }
            uint8_t *dst = tables + i * row_bytes + 128 * (g / 2) + 32 * (g % 2);
            _mm256_storeu_si256((__m256i *)dst, tlo);
            _mm256_storeu_si256((__m256i *)(dst + 64), thi);
        }
        totals[i] = (int32_t)sum;
    }
}

/* The 16-bit sums of rows 0-7 (wa: even groups in lane 0, odd in lane 1) and 8-15 (wb) added into sums[16]. */
XNOR_AVX2_ATTR static inline void xnor_u8_lut_flush_avx2(__m256i wa, __m256i wb, int32_t *sums)
{
    const __m256i rows0 = _mm256_add_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(wa)),
                                           _mm256_cvtepu16_epi32(_mm256_extracti128_si256(wa, 1)));
    const __m256i rows8 = _mm256_add_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(wb)),
                                           _mm256_cvtepu16_epi32(_mm256_extracti128_si256(wb, 1)));
    _mm256_storeu_si256((__m256i *)sums, _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)sums), rows0));
    _mm256_storeu_si256((__m256i *)(sums + 8), _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(sums + 8)), rows8));
}

/* NB blocks of 16 weight rows (from block jb of a TABLE16 layout) against one row's tables: dots total - 2 S into c, the first
 * `cols` of them. Bytes hold 2 quads of lookups (4 * 60), words 16 widenings (16 * (240 + 16 * 240) < 2^16). */
XNOR_AVX2_ATTR static inline __attribute__((always_inline)) void
xnor_u8_lut_blocks_avx2(const uint8_t *tables, int64_t quads, const uint8_t *lut, int64_t jb, int32_t total,
                        int32_t *c, int64_t cols, const int NB)
{
    const __m256i weights = _mm256_set1_epi16(0x1001); /* byte pairs (1, 16): low + 16 * high */
    __m256i lo[2], hi[2], wa[2], wb[2];
    int32_t sums[2][16];
    for (int b = 0; b < NB; b++) {
        lo[b] = hi[b] = wa[b] = wb[b] = _mm256_setzero_si256();
        memset(sums[b], 0, sizeof(sums[b]));
    }
    for (int64_t q = 0, widened = 0; q < quads; q++) {
        for (int h = 0; h < 2; h++) { /* groups 2h, 2h + 1 of the quad */
            const __m256i tlo = _mm256_loadu_si256((const __m256i *)(tables + 128 * q + 32 * h));
            const __m256i thi = _mm256_loadu_si256((const __m256i *)(tables + 128 * q + 64 + 32 * h));
            for (int b = 0; b < NB; b++) {
                const __m256i index = _mm256_loadu_si256((const __m256i *)(lut + ((jb + b) * quads + q) * 64 + 32 * h));
                lo[b] = _mm256_add_epi8(lo[b], _mm256_shuffle_epi8(tlo, index));
                hi[b] = _mm256_add_epi8(hi[b], _mm256_shuffle_epi8(thi, index));
            }
        }
        if (q % 2 == 0 && q + 1 < quads)
            continue; /* bytes: 2 quads of lookups */
        for (int b = 0; b < NB; b++) {
            wa[b] = _mm256_add_epi16(wa[b], _mm256_maddubs_epi16(_mm256_unpacklo_epi8(lo[b], hi[b]), weights));
            wb[b] = _mm256_add_epi16(wb[b], _mm256_maddubs_epi16(_mm256_unpackhi_epi8(lo[b], hi[b]), weights));
            lo[b] = hi[b] = _mm256_setzero_si256();
        }
        if (++widened < 16 && q + 1 < quads)
            continue;
        widened = 0;
        for (int b = 0; b < NB; b++) {
            xnor_u8_lut_flush_avx2(wa[b], wb[b], sums[b]);
            wa[b] = wb[b] = _mm256_setzero_si256();
        }
    }
    for (int b = 0; b < NB; b++)
        for (int r = 0; r < 16 && 16 * b + r < cols; r++)
            c[16 * b + r] = total - 2 * sums[b][r];
}

XNOR_AVX2_ATTR static void xnor_u8_lut_tile_avx2(const uint8_t *tables, const int32_t *totals, int64_t k, int64_t m,
                                                 const uint8_t *lut, int64_t j0, int64_t n, int32_t *c, int64_t ldc)
{
    const int64_t quads = (k + 15) / 16, blocks = (n + 15) / 16, jb = j0 / 16;
    for (int64_t b = 0; b < blocks;) {
        const int nb = blocks - b >= 2 ? 2 : 1;
        for (int64_t i = 0; i < m; i++) {
            const uint8_t *t = tables + i * xnor_u8_lut_table_bytes(k);
            int32_t *ci = c + i * ldc + 16 * b;
            if (nb == 2)
                xnor_u8_lut_blocks_avx2(t, quads, lut, jb + b, totals[i], ci, n - 16 * b, 2);
            else
                xnor_u8_lut_blocks_avx2(t, quads, lut, jb + b, totals[i], ci, n - 16 * b, 1);
        }
        b += nb;
    }
}
#endif /* XNOR_X86 */

#if XNOR_X86
#define XNOR_AVX512_VBMI_ATTR \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512vpopcntdq,avx512vnni,avx512vbmi,popcnt")))

/* NB blocks of 16 weight rows (from block jb of the layout) against one row's tables: dots total - 2 S into c,
 * the first `cols` of them (a last partial block is stored masked). Two accumulators a block, NB blocks at once:
 * 2 * NB chains, enough to hide VPDPBUSD's latency at NB = 8. */
XNOR_AVX512_VBMI_ATTR static inline __attribute__((always_inline)) void
xnor_u8_lut_blocks_avx512(const uint8_t *tables, int64_t quads, const uint8_t *lut, int64_t jb, __m512i total,
                          int32_t *c, int64_t cols, const int NB)
{
    const __m512i one = _mm512_set1_epi8(1), sixteen = _mm512_set1_epi8(16);
    __m512i lo[8], hi[8];
    for (int b = 0; b < NB; b++)
        lo[b] = hi[b] = _mm512_setzero_si512();
    for (int64_t q = 0; q < quads; q++) {
        const __m512i tlo = _mm512_loadu_si512((const void *)(tables + 128 * q));
        const __m512i thi = _mm512_loadu_si512((const void *)(tables + 128 * q + 64));
        for (int b = 0; b < NB; b++) {
            const __m512i index = _mm512_loadu_si512((const void *)(lut + ((jb + b) * quads + q) * 64));
            lo[b] = xnor_dpbusd(lo[b], _mm512_permutexvar_epi8(index, tlo), one);
            hi[b] = xnor_dpbusd(hi[b], _mm512_permutexvar_epi8(index, thi), sixteen);
        }
    }
    for (int b = 0; b < NB; b++) {
        const __m512i s = _mm512_add_epi32(lo[b], hi[b]);
        const __m512i dots = _mm512_sub_epi32(total, _mm512_add_epi32(s, s));
        const int64_t left = cols - 16 * b;
        if (left >= 16)
            _mm512_storeu_si512((void *)(c + 16 * b), dots);
        else
            _mm512_mask_storeu_epi32(c + 16 * b, (__mmask16)((1u << left) - 1), dots);
    }
}

/* Block groups outside, rows inside: a group's layout (8 blocks of 784 pixels: 25 KB) stays in L1 for all rows. */
XNOR_AVX512_VBMI_ATTR static void xnor_u8_lut_tile_avx512(const uint8_t *tables, const int32_t *totals, int64_t k,
                                                          int64_t m, const uint8_t *lut, int64_t j0, int64_t n,
                                                          int32_t *c, int64_t ldc)
{
    const int64_t quads = (k + 15) / 16, blocks = (n + 15) / 16, jb = j0 / 16;
    for (int64_t b = 0; b < blocks;) {
        const int nb = blocks - b >= 8 ? 8 : blocks - b >= 4 ? 4 : 1;
        for (int64_t i = 0; i < m; i++) {
            const uint8_t *t = tables + i * xnor_u8_lut_table_bytes(k);
            const __m512i total = _mm512_set1_epi32(totals[i]);
            int32_t *ci = c + i * ldc + 16 * b;
            if (nb == 8)
                xnor_u8_lut_blocks_avx512(t, quads, lut, jb + b, total, ci, n - 16 * b, 8);
            else if (nb == 4)
                xnor_u8_lut_blocks_avx512(t, quads, lut, jb + b, total, ci, n - 16 * b, 4);
            else
                xnor_u8_lut_blocks_avx512(t, quads, lut, jb + b, total, ci, n - 16 * b, 1);
        }
        b += nb;
    }
}
#endif /* XNOR_X86 */

#if XNOR_ARM
/* The tables of m rows (as xnor_u8_lut_tables_avx2), with TBL on 8 pixels at a time. */
static void xnor_u8_lut_tables_neon(const uint8_t *u, int64_t ldu, int64_t k, int64_t m, uint8_t *tables,
                                    int32_t *totals)
{
    uint8x16_t pick[2][4]; /* for group L of 8 pixels, byte s: pixel 4L + i where bit i of s is set, else 0xff (0) */
    for (int L = 0; L < 2; L++)
        for (int i = 0; i < 4; i++) {
            uint8_t bytes[16];
            for (int t = 0; t < 16; t++)
                bytes[t] = (uint8_t)((t >> i) & 1 ? 4 * L + i : 0xff);
            pick[L][i] = vld1q_u8(bytes);
        }
    const int64_t pairs = 2 * ((k + 15) / 16), row_bytes = xnor_u8_lut_table_bytes(k);
    for (int64_t i = 0; i < m; i++) {
        int64_t sum = 0;
        for (int64_t g = 0; g < pairs; g++) {
            const int64_t t = 8 * g, left = k - t;
            uint8_t eight[16] = {0};
            if (left > 0)
                memcpy(eight, u + i * ldu + t, left >= 8 ? 8 : (size_t)left);
            const uint8x16_t v = vld1q_u8(eight);
            sum += vaddlvq_u8(v);
            const uint8x16_t lo = vandq_u8(v, vdupq_n_u8(0x0f)), hi = vshrq_n_u8(v, 4);
            uint8_t *dst = tables + i * row_bytes + 128 * (g / 2) + 32 * (g % 2);
            for (int L = 0; L < 2; L++) {
                uint8x16_t tlo = vqtbl1q_u8(lo, pick[L][0]), thi = vqtbl1q_u8(hi, pick[L][0]);
                for (int b = 1; b < 4; b++) {
                    tlo = vaddq_u8(tlo, vqtbl1q_u8(lo, pick[L][b]));
                    thi = vaddq_u8(thi, vqtbl1q_u8(hi, pick[L][b]));
                }
                vst1q_u8(dst + 16 * L, tlo);
                vst1q_u8(dst + 64 + 16 * L, thi);
            }
        }
        totals[i] = (int32_t)sum;
    }
}

/* One block of 16 weight rows (block jb) against one row's tables: per quad the 4 groups' lookups add up in bytes
 * (4 * 60), then in 16-bit lanes (low + 16 * high, 16 quads: 16 * 4080 < 2^16), then in 32-bit lanes. */
static void xnor_u8_lut_block_neon(const uint8_t *tables, int64_t quads, const uint8_t *lut, int64_t jb, int32_t total,
                                   int32_t *c, int64_t cols)
{
    uint16x8_t w0 = vdupq_n_u16(0), w1 = w0;
    uint32x4_t s[4] = {vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0)};
    for (int64_t q = 0, widened = 0; q < quads; q++) {
        uint8x16_t lo = vdupq_n_u8(0), hi = lo;
        for (int p = 0; p < 4; p++) {
            const uint8x16_t index = vld1q_u8(lut + (jb * quads + q) * 64 + 16 * p);
            lo = vaddq_u8(lo, vqtbl1q_u8(vld1q_u8(tables + 128 * q + 16 * p), index));
            hi = vaddq_u8(hi, vqtbl1q_u8(vld1q_u8(tables + 128 * q + 64 + 16 * p), index));
        }
        w0 = vmlal_u8(vaddw_u8(w0, vget_low_u8(lo)), vget_low_u8(hi), vdup_n_u8(16));
        w1 = vmlal_u8(vaddw_u8(w1, vget_high_u8(lo)), vget_high_u8(hi), vdup_n_u8(16));
        if (++widened < 16 && q + 1 < quads)
            continue;
        widened = 0;
        s[0] = vaddw_u16(s[0], vget_low_u16(w0));
        s[1] = vaddw_u16(s[1], vget_high_u16(w0));
        s[2] = vaddw_u16(s[2], vget_low_u16(w1));
        s[3] = vaddw_u16(s[3], vget_high_u16(w1));
        w0 = w1 = vdupq_n_u16(0);
    }
    int32_t sums[16];
    for (int r = 0; r < 4; r++)
        vst1q_s32(sums + 4 * r, vreinterpretq_s32_u32(s[r]));
    for (int r = 0; r < 16 && r < cols; r++)
        c[r] = total - 2 * sums[r];
}

static void xnor_u8_lut_tile_neon(const uint8_t *tables, const int32_t *totals, int64_t k, int64_t m,
                                  const uint8_t *lut, int64_t j0, int64_t n, int32_t *c, int64_t ldc)
{
    const int64_t quads = (k + 15) / 16, blocks = (n + 15) / 16, jb = j0 / 16;
    for (int64_t b = 0; b < blocks; b++)
        for (int64_t i = 0; i < m; i++)
            xnor_u8_lut_block_neon(tables + i * xnor_u8_lut_table_bytes(k), quads, lut, jb + b, totals[i],
                                   c + i * ldc + 16 * b, n - 16 * b);
}
#endif /* XNOR_ARM */

/* m rows' tables for a layout of that format, on its path (xnor_u8_lut_format). */
static void xnor_u8_lut_tables(int format, const uint8_t *u, int64_t ldu, int64_t k, int64_t m, uint8_t *tables,
                               int32_t *totals)
{
    (void)format; /* the same tables for both */
#if XNOR_X86
    xnor_u8_lut_tables_avx2(u, ldu, k, m, tables, totals);
#elif XNOR_ARM
    xnor_u8_lut_tables_neon(u, ldu, k, m, tables, totals);
#else
    (void)u; (void)ldu; (void)k; (void)m; (void)tables; (void)totals;
#endif
}

/* Dots of m rows (their tables) against columns j0 .. j0 + n of the layout (j0 a multiple of 16) into c (row
 * stride ldc), for a layout of that format: the same exact dots as xnor_u8_tile. */
static void xnor_u8_lut_tile(int format, const uint8_t *tables, const int32_t *totals, int64_t k, int64_t m,
                             const uint8_t *lut, int64_t j0, int64_t n, int32_t *c, int64_t ldc)
{
#if XNOR_X86
    if (format == XNOR_U8_LUT_TABLE64)
        xnor_u8_lut_tile_avx512(tables, totals, k, m, lut, j0, n, c, ldc);
    else
        xnor_u8_lut_tile_avx2(tables, totals, k, m, lut, j0, n, c, ldc);
#elif XNOR_ARM
    (void)format;
    xnor_u8_lut_tile_neon(tables, totals, k, m, lut, j0, n, c, ldc);
#else
    (void)format; (void)tables; (void)totals; (void)k; (void)m; (void)lut; (void)j0; (void)n; (void)c; (void)ldc;
#endif
}

#if XNOR_X86
/* 32 weight bits -> 32 bytes, 0xff (int8 -1) where the bit is 1 (w = -1), 0 elsewhere. */
XNOR_AVX2_ATTR static inline __m256i xnor_bits_to_bytes_avx2(uint32_t bits)
{
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i select = _mm256_set1_epi64x(0x8040201008040201LL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), spread);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, select), select);
}

/* 32 bytes of row u from byte t (zeros past k). */
XNOR_AVX2_ATTR static inline __m256i xnor_u8_load32_avx2(const uint8_t *u, int64_t t, int64_t k)
{
    if (k - t >= 32)
        return _mm256_loadu_si256((const __m256i *)(u + t));
    uint8_t tail[32] = {0};
    for (int64_t q = 0; q < k - t; q++)
        tail[q] = u[t + q];
    return _mm256_loadu_si256((const __m256i *)tail);
}

/* An MR x NR block of uint8 rows x weight rows: per 32 pixels, each weight's bits become a byte mask of
 * -1 (VPSHUFB + compare) that VPMADDUBSW multiplies with the pixels (pairs of -u, at least -510 in int16),
 * VPMADDWD widens to int32: acc = -(sum of u where w = -1); dot = sum(u) + 2 * acc. */
XNOR_AVX2_ATTR static inline __attribute__((always_inline)) void
xnor_u8_block_avx2(const uint8_t *u, int64_t ldu, int64_t k, const uint64_t *b, int64_t ldb, const int32_t *totals,
                   int32_t *c, int64_t ldc, const int MR, const int NR)
{
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[2][4];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++)
            acc[i][j] = _mm256_setzero_si256();
    for (int64_t t = 0; t < k; t += 32) {
        __m256i vu[2];
        for (int i = 0; i < MR; i++)
            vu[i] = xnor_u8_load32_avx2(u + i * ldu, t, k);
        for (int j = 0; j < NR; j++) {
            __m256i neg = xnor_bits_to_bytes_avx2((uint32_t)(b[j * ldb + t / 64] >> (t % 64)));
            for (int i = 0; i < MR; i++)
                acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(_mm256_maddubs_epi16(vu[i], neg), ones));
        }
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) {
            __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc[i][j]), _mm256_extracti128_si256(acc[i][j], 1));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
            c[i * ldc + j] = totals[i] + 2 * _mm_cvtsi128_si32(s);
        }
}

XNOR_AVX2_ATTR static void xnor_u8_tile_avx2(const uint8_t *u, int64_t ldu, int64_t k, const uint64_t *b,
                                             int64_t ldb, int64_t m, int64_t n, int32_t *c, int64_t ldc)
{
    int32_t totals[2];
    int64_t i = 0;
    for (; i < m; i += 2) {
        const int rows = m - i >= 2 ? 2 : 1;
        for (int r = 0; r < rows; r++) {
            int32_t total = 0;
            for (int64_t t = 0; t < k; t++)
                total += u[(i + r) * ldu + t];
            totals[r] = total;
        }
        int64_t j = 0;
        if (rows == 2) {
            for (; j + 4 <= n; j += 4)
                xnor_u8_block_avx2(u + i * ldu, ldu, k, b + j * ldb, ldb, totals, c + i * ldc + j, ldc, 2, 4);
            for (; j < n; j++)
                xnor_u8_block_avx2(u + i * ldu, ldu, k, b + j * ldb, ldb, totals, c + i * ldc + j, ldc, 2, 1);
        } else {
            for (; j + 4 <= n; j += 4)
                xnor_u8_block_avx2(u + i * ldu, ldu, k, b + j * ldb, ldb, totals, c + i * ldc + j, ldc, 1, 4);
            for (; j < n; j++)
                xnor_u8_block_avx2(u + i * ldu, ldu, k, b + j * ldb, ldb, totals, c + i * ldc + j, ldc, 1, 1);
        }
    }
}
#endif /* XNOR_X86 */

/* Dispatch: AVX-512 (with VNNI) and AVX2 (VPMADDUBSW) have their own kernels; scalar runs the bit-plane loop
 * (with the POPCNT instruction when the CPU has it). */
static void xnor_u8_tile(int path, const uint8_t *u, int64_t ldu, int64_t k, const uint64_t *b, int64_t ldb,
                         int64_t m, int64_t n, int32_t *c, int64_t ldc)
{
#if XNOR_X86
    if (path == XNOR_AVX512) {
        xnor_u8_tile_avx512(u, ldu, k, b, ldb, m, n, c, ldc);
        return;
    }
    if (path == XNOR_AVX2) {
        xnor_u8_tile_avx2(u, ldu, k, b, ldb, m, n, c, ldc);
        return;
    }
    if (xnor_scalar_popcnt) {
        xnor_u8_tile_popcnt(u, ldu, k, b, ldb, m, n, c, ldc);
        return;
    }
#endif
#if XNOR_ARM
    if (path == XNOR_NEON) {
        xnor_u8_tile_neon(u, ldu, k, b, ldb, m, n, c, ldc);
        return;
    }
#endif
    (void)path;
    xnor_u8_tile_swar(u, ldu, k, b, ldb, m, n, c, ldc);
}

/* Patches of NCHW uint8 images as rows (n*oh*ow, kh*kw*c) in (kh, kw, c) order, 0 outside the image: each
 * image is first laid out channels-last with its zero border in `pad` (hp x wp x c bytes and 16 more, hp >=
 * pt + h and every window inside), so a patch is kh straight copies of kw*c bytes with no bounds checks. Copies
 * of up to 16 bytes copy 16 (the bytes past the span are overwritten by the next copy, in ascending order; only
 * the very last one is exact): the byte loop of a 9-byte span took 5.7 us of a 32 x 32 x 3 image's 6.9. */
static void xnor_im2col_u8(const uint8_t *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                           int64_t sh, int64_t sw, int64_t pt, int64_t pl, int64_t oh, int64_t ow, uint8_t *pad,
                           int64_t hp, int64_t wp, uint8_t *out)
{
    int64_t span = kw * c, k = kh * span;
    const uint8_t *end = out + n * oh * ow * k;
    for (int64_t b = 0; b < n; b++) {
        const uint8_t *src = x + b * c * h * w;
        for (int64_t i = 0; i < hp * wp * c; i++)
            pad[i] = 0;
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t y = 0; y < h; y++)
                for (int64_t col = 0; col < w; col++)
                    pad[((y + pt) * wp + col + pl) * c + ch] = src[(ch * h + y) * w + col];
        uint8_t *dst = out + b * oh * ow * k;
        for (int64_t r = 0; r < oh; r++)
            for (int64_t q = 0; q < ow; q++, dst += k)
                for (int64_t i = 0; i < kh; i++) {
                    const uint8_t *row = pad + ((r * sh + i) * wp + q * sw) * c;
                    if (span <= 16 && dst + i * span + 16 <= end)
                        memcpy(dst + i * span, row, 16);
                    else
                        memcpy(dst + i * span, row, (size_t)span);
                }
    }
}

/* ------------------------------------------------------------------------------------------------
 * uint8 rows against short weight rows (a first convolution: K = KH*KW*C, 27 for 3x3x3) on AVX-512 VNNI.
 * The weights are laid out once as signed bytes, 4 taps of 16 output channels per 64-byte vector:
 * dwords[((g * npad) + j) * 4 + e] = +1 / -1 for tap 4g + e of channel j, 0 past k or past n (npad = n
 * rounded up to 16). One VPDPBUSD multiplies 4 pixels of a row (broadcast) with those 4 taps of 16 channels
 * and adds into 16 exact int32 dots, so a dot costs ceil(k/4) / 16 instructions with no mask expansion and no
 * horizontal reduction (the 64-byte kernel above fills 27 of 64 bytes per VPDPBUSD at k = 27 and then pays a
 * transposing reduction per 16 dots).
 * ---------------------------------------------------------------------------------------------- */
static inline int64_t xnor_u8_dwords_size(int64_t n, int64_t k)
{
    return ((k + 3) / 4) * ((n + 15) / 16) * 16 * 4;
}

static void xnor_make_u8_dwords(const uint64_t *b, int64_t n, int64_t words, int64_t k, int8_t *dwords)
{
    int64_t npad = (n + 15) / 16 * 16, groups = (k + 3) / 4;
    for (int64_t g = 0; g < groups; g++)
        for (int64_t j = 0; j < npad; j++)
            for (int64_t e = 0; e < 4; e++) {
                int64_t t = 4 * g + e;
                int8_t v = 0;
                if (t < k && j < n)
                    v = (int8_t)((b[j * words + t / 64] >> (t % 64)) & 1 ? -1 : 1);
                dwords[(g * npad + j) * 4 + e] = v;
            }
}

#if XNOR_X86
/* One 4-tap group: R rows' broadcast pixels `four` against NB blocks of 16 channels of the layout at wg. */
XNOR_AVX512_ATTR static inline __attribute__((always_inline)) void
xnor_u8_dword_group_avx512(const __m512i *four, const int8_t *wg, __m512i *acc, const int R, const int NB)
{
    for (int q = 0; q < NB; q++) {
        const __m512i wv = _mm512_loadu_si512((const void *)(wg + 64 * q));
        for (int i = 0; i < R; i++)
            acc[i * NB + q] = xnor_dpbusd(acc[i * NB + q], four[i], wv);
    }
}

/* The exact dots of R rows x NB blocks of 16 channels into acc[i * NB + q] (R * NB accumulators in registers);
 * wcol: the dword layout from the block's first channel on. A row's 4-byte groups are broadcast straight from
 * memory (a load, no shuffle: a permute per group and row took port 5 from VPDPBUSD); the last group of a row
 * whose k is not a multiple of 4 is a masked load, so no byte past the row is read. */
XNOR_AVX512_ATTR static inline __attribute__((always_inline)) void
xnor_u8_dword_dots_avx512(const uint8_t *u, int64_t ldu, int64_t k, const int8_t *wcol, int64_t npad, __m512i *acc,
                          const int R, const int NB)
{
    for (int q = 0; q < R * NB; q++)
        acc[q] = _mm512_setzero_si512();
    const int64_t full = k / 4, step = npad * 4;
    __m512i four[4];
    for (int64_t g = 0; g < full; g++) {
        for (int i = 0; i < R; i++) {
            int32_t v;
            memcpy(&v, u + i * ldu + 4 * g, 4);
            four[i] = _mm512_set1_epi32(v);
        }
        xnor_u8_dword_group_avx512(four, wcol + g * step, acc, R, NB);
    }
    if (k % 4) {
        const __mmask16 tail = (__mmask16)((1u << (k % 4)) - 1u);
        for (int i = 0; i < R; i++)
            four[i] = _mm512_broadcastd_epi32(_mm_maskz_loadu_epi8(tail, u + i * ldu + 4 * full));
        xnor_u8_dword_group_avx512(four, wcol + full * step, acc, R, NB);
    }
}

/* R rows x NB blocks of 16 channels of exact dots stored as int32 (the last `left` channels of the block). */
XNOR_AVX512_ATTR static inline __attribute__((always_inline)) void
xnor_u8_dword_block_avx512(const uint8_t *u, int64_t ldu, int64_t k, const int8_t *wcol, int64_t npad, int32_t *c,
                           int64_t ldc, int64_t left, const int R, const int NB)
{
    __m512i acc[16];
    xnor_u8_dword_dots_avx512(u, ldu, k, wcol, npad, acc, R, NB);
    for (int i = 0; i < R; i++)
        for (int q = 0; q < NB; q++) {
            int64_t rest = left - 16 * q;
            __mmask16 keep = rest >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rest) - 1u);
            _mm512_mask_storeu_epi32(c + i * ldc + 16 * q, keep, acc[i * NB + q]);
        }
}

/* The dots of xnor_u8_dword_block_avx512 compared with thresholds in registers, into packed bits: channels
 * j .. j + 16 * NB (j a multiple of 16; with NB = 4 a multiple of 64) of row i go to out + i * ldo, bit (j % 64)
 * on. Flipped lanes: bit = dot > thr = (~dot < ~thr), so one compare of dot ^ f with thr ^ f (f = -1 there):
 * f and the valid lanes `in` come from the caller, and row i's thresholds from rows[i]: the caller's `held`
 * (thr ^ f in registers) where rows[i] is `loaded`, else loaded and flipped here (a row at the image border). */
XNOR_AVX512_ATTR static inline __attribute__((always_inline)) void
xnor_u8_dword_thr_block_avx512(const uint8_t *u, int64_t ldu, int64_t k, const int8_t *dwords, int64_t npad,
                               int64_t j, const __mmask16 *in, const __m512i *f, const __m512i *held,
                               const int32_t *loaded, const int32_t *const *rows, uint64_t *out, int64_t ldo,
                               const int R, const int NB)
{
    __m512i acc[16];
    xnor_u8_dword_dots_avx512(u, ldu, k, dwords + j * 4, npad, acc, R, NB);
    for (int i = 0; i < R; i++) {
        uint64_t word = 0;
        const int shared = rows[i] == loaded;
        for (int q = 0; q < NB; q++) {
            const __m512i tv = shared ? held[q]
                                      : _mm512_xor_si512(_mm512_maskz_loadu_epi32(in[q], rows[i] + 16 * q), f[q]);
            uint64_t bits = (uint64_t)_mm512_mask_cmplt_epi32_mask(in[q], _mm512_xor_si512(acc[i * NB + q], f[q]), tv);
            word |= bits << (16 * q);
        }
        uint64_t *o = out + i * ldo + j / 64;
        int shift = (int)(j % 64);
        if (shift == 0)
            *o = word; /* the first 16 (or 64) channels of a word start it */
        else
            *o |= word << shift;
    }
}

/* Channels j .. j + 16 * NB (`left` of them exist) of all m rows of a tile, 4 rows at a time (16 accumulators:
 * the VPDPBUSD latency x throughput is 10), flip loaded once. Row i (global row0 + i) meets thresholds row
 * (index ? index[p] : p), p = (row0 + i) % period kept as a counter (no division per row), or row 0 when period
 * is 0; the last row's thr ^ f stays in registers, reloaded only when it changes (a 'same'-padded conv's
 * interior positions share one). */
XNOR_AVX512_ATTR static inline __attribute__((always_inline)) void
xnor_u8_dword_thr_cols_avx512(const uint8_t *u, int64_t ldu, int64_t k, const int8_t *dwords, int64_t npad,
                              int64_t j, int64_t left, int64_t m, const int32_t *thr, int64_t ldt, int64_t row0,
                              int64_t period, const int32_t *index, const uint8_t *flip, uint64_t *out, int64_t ldo,
                              const int NB)
{
    __m512i f[4], held[4];
    __mmask16 in[4];
    const int32_t *loaded = thr + j;
    for (int q = 0; q < NB; q++) {
        int64_t rest = left - 16 * q;
        in[q] = rest >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rest) - 1u);
        f[q] = _mm512_sub_epi32(_mm512_setzero_si512(),
                                _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(in[q], flip + j + 16 * q)));
        held[q] = _mm512_xor_si512(_mm512_maskz_loadu_epi32(in[q], loaded + 16 * q), f[q]);
    }
    int64_t position = period ? row0 % period : 0;
    for (int64_t i = 0; i < m; i += 4) {
        const int count = i + 4 <= m ? 4 : (int)(m - i);
        const int32_t *rows[4] = {loaded, loaded, loaded, loaded};
        for (int r = 0; r < count; r++) {
            if (period) {
                rows[r] = thr + (index ? index[position] : position) * ldt + j;
                position = position + 1 == period ? 0 : position + 1;
            }
        }
        if (rows[count - 1] != loaded) {
            loaded = rows[count - 1];
            for (int q = 0; q < NB; q++)
                held[q] = _mm512_xor_si512(_mm512_maskz_loadu_epi32(in[q], loaded + 16 * q), f[q]);
        }
        if (count == 4) {
            xnor_u8_dword_thr_block_avx512(u + i * ldu, ldu, k, dwords, npad, j, in, f, held, loaded, rows,
                                           out + i * ldo, ldo, 4, NB);
        } else {
            for (int r = 0; r < count; r++)
                xnor_u8_dword_thr_block_avx512(u + (i + r) * ldu, ldu, k, dwords, npad, j, in, f, held, loaded,
                                               rows + r, out + (i + r) * ldo, ldo, 1, NB);
        }
    }
}

/* The fused tile: m rows x channels j0 .. j0 + n (j0 a multiple of 64, n <= 256) compared with thresholds
 * (thresholds and flip indexed by channel from 0) into packed output rows out (row i at out + i * ldo). */
XNOR_AVX512_ATTR static void xnor_u8_dword_thr_tile_avx512(const uint8_t *u, int64_t ldu, int64_t k,
                                                           const int8_t *dwords, int64_t npad, int64_t j0,
                                                           int64_t m, int64_t n, const int32_t *thr, int64_t ldt,
                                                           int64_t row0, int64_t period, const int32_t *index,
                                                           const uint8_t *flip, uint64_t *out, int64_t ldo)
{
    int64_t j = j0, end = j0 + n;
    for (; j + 64 <= end; j += 64)
        xnor_u8_dword_thr_cols_avx512(u, ldu, k, dwords, npad, j, 64, m, thr, ldt, row0, period, index, flip, out,
                                      ldo, 4);
    for (; j < end; j += 16)
        xnor_u8_dword_thr_cols_avx512(u, ldu, k, dwords, npad, j, end - j, m, thr, ldt, row0, period, index, flip,
                                      out, ldo, 1);
}

/* An m x n tile (n <= 256) of exact dots c[i * ldc + j] = u_i . w_{j0 + j}; rows of k bytes, ldu apart:
 * 4 rows x 4 blocks of 16 channels (16 accumulators), single rows for the last ones, single blocks for the last
 * channels. */
XNOR_AVX512_ATTR static void xnor_u8_dword_tile_avx512(const uint8_t *u, int64_t ldu, int64_t k,
                                                       const int8_t *dwords, int64_t npad, int64_t j0, int64_t m,
                                                       int64_t n, int32_t *c, int64_t ldc)
{
    for (int64_t i = 0; i < m;) {
        const uint8_t *row = u + i * ldu;
        int64_t j = 0;
        if (i + 4 <= m) {
            for (; j + 64 <= n; j += 64)
                xnor_u8_dword_block_avx512(row, ldu, k, dwords + (j0 + j) * 4, npad, c + i * ldc + j, ldc, 64, 4, 4);
            for (; j < n; j += 16)
                xnor_u8_dword_block_avx512(row, ldu, k, dwords + (j0 + j) * 4, npad, c + i * ldc + j, ldc, n - j, 4, 1);
            i += 4;
        } else {
            for (; j + 64 <= n; j += 64)
                xnor_u8_dword_block_avx512(row, ldu, k, dwords + (j0 + j) * 4, npad, c + i * ldc + j, ldc, 64, 1, 4);
            for (; j < n; j += 16)
                xnor_u8_dword_block_avx512(row, ldu, k, dwords + (j0 + j) * 4, npad, c + i * ldc + j, ldc, n - j, 1, 1);
            i += 1;
        }
    }
}
#endif

#define XNOR_U8_DWORD_AVX2_MAX_K 256 /* the AVX2 dword kernel's int16 pair sums are exact up to here */

#if XNOR_X86
/* ------------------------------------------------------------------------------------------------
 * The same dword layout on AVX2: one VPMADDUBSW multiplies 4 pixels of a row (broadcast) with 4 taps of 8
 * channels into 16 int16 pair sums (each at most 2 * 255 in size), added in int16: with k <= 256 a lane sums
 * at most 64 of them (64 * 510 < 2^15), so the accumulators are exact; one VPMADDWD at the end widens the
 * pairs to 8 int32 dots. Two rows x 4 blocks of 8 channels keep 8 accumulators in registers.
 * ---------------------------------------------------------------------------------------------- */
/* Row i's pixels as 4-byte groups px[i * 64 + g] (zero bytes past k): the broadcasts read no byte past the row. */
static inline void xnor_u8_dword_pixels(const uint8_t *u, int64_t ldu, int64_t k, int rows, int32_t *px)
{
    for (int i = 0; i < rows; i++) {
        int64_t g = 0;
        for (; 4 * g + 4 <= k; g++)
            memcpy(px + i * 64 + g, u + i * ldu + 4 * g, 4);
        if (4 * g < k) {
            uint8_t four[4] = {0, 0, 0, 0};
            for (int64_t t = 4 * g; t < k; t++)
                four[t - 4 * g] = u[i * ldu + t];
            memcpy(px + i * 64 + g, four, 4);
        }
    }
}

/* The exact dots of R rows (pixels px) x NB blocks of 8 channels (wcol: the layout from the first one) as int32. */
XNOR_AVX2_ATTR static inline __attribute__((always_inline)) void
xnor_u8_dword_dots_avx2(const int32_t *px, int64_t k, const int8_t *wcol, int64_t npad, __m256i *acc, const int R,
                        const int NB)
{
    __m256i sums[8];
    for (int q = 0; q < R * NB; q++)
        sums[q] = _mm256_setzero_si256();
    const int64_t groups = (k + 3) / 4;
    for (int64_t g = 0; g < groups; g++) {
        const int8_t *wg = wcol + g * npad * 4;
        __m256i four[2];
        for (int i = 0; i < R; i++)
            four[i] = _mm256_set1_epi32(px[i * 64 + g]);
        for (int q = 0; q < NB; q++) {
            __m256i wv = _mm256_loadu_si256((const __m256i *)(wg + 32 * q));
            for (int i = 0; i < R; i++)
                sums[i * NB + q] = _mm256_add_epi16(sums[i * NB + q], _mm256_maddubs_epi16(four[i], wv));
        }
    }
    const __m256i ones = _mm256_set1_epi16(1);
    for (int q = 0; q < R * NB; q++)
        acc[q] = _mm256_madd_epi16(sums[q], ones);
}

/* The last `left` (< 8) or all 8 lanes. */
XNOR_AVX2_ATTR static inline __m256i xnor_lanes_avx2(int64_t left)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(left < 8 ? left : 8)), lane);
}

XNOR_AVX2_ATTR static inline __attribute__((always_inline)) void
xnor_u8_dword_block_avx2(const int32_t *px, int64_t k, const int8_t *wcol, int64_t npad, int32_t *c, int64_t ldc,
                         int64_t left, const int R, const int NB)
{
    __m256i acc[8];
    xnor_u8_dword_dots_avx2(px, k, wcol, npad, acc, R, NB);
    for (int i = 0; i < R; i++)
        for (int q = 0; q < NB; q++) {
            if (left - 8 * q >= 8)
                _mm256_storeu_si256((__m256i *)(c + i * ldc + 8 * q), acc[i * NB + q]);
            else
                _mm256_maskstore_epi32(c + i * ldc + 8 * q, xnor_lanes_avx2(left - 8 * q), acc[i * NB + q]);
        }
}

/* As xnor_u8_dword_thr_block_avx512, 8 channels per block: bit = dot < thr, or dot > thr where flipped, as
 * (dot ^ f) < (thr ^ f) with f = -1 on flipped channels. Channels j .. j + 8 * NB (j a multiple of 8). */
XNOR_AVX2_ATTR static inline __attribute__((always_inline)) void
xnor_u8_dword_thr_block_avx2(const int32_t *px, int64_t k, const int8_t *dwords, int64_t npad, int64_t j,
                             int64_t left, const int32_t *thr, int64_t ldt, int64_t row0, int64_t period,
                             const int32_t *index, const uint8_t *flip, uint64_t *out, int64_t ldo, const int R,
                             const int NB)
{
    __m256i acc[8], f[4], in[4];
    xnor_u8_dword_dots_avx2(px, k, dwords + j * 4, npad, acc, R, NB);
    for (int q = 0; q < NB; q++) {
        const int64_t rest = left - 8 * q < 8 ? left - 8 * q : 8;
        uint64_t flags = 0;
        memcpy(&flags, flip + j + 8 * q, (size_t)rest);
        in[q] = xnor_lanes_avx2(rest);
        f[q] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)flags)));
    }
    for (int i = 0; i < R; i++) {
        const int64_t position = period ? (row0 + i) % period : 0;
        const int32_t *tr = thr + (index ? index[position] : position) * ldt + j;
        uint64_t word = 0;
        for (int q = 0; q < NB; q++) {
            const __m256i tv = _mm256_xor_si256(_mm256_maskload_epi32(tr + 8 * q, in[q]), f[q]);
            const __m256i below = _mm256_and_si256(in[q], _mm256_cmpgt_epi32(tv, _mm256_xor_si256(acc[i * NB + q], f[q])));
            word |= (uint64_t)(uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(below)) << (8 * q);
        }
        uint64_t *o = out + i * ldo + j / 64;
        const int shift = (int)(j % 64);
        if (shift == 0)
            *o = word; /* the first channels of a word start it */
        else
            *o |= word << shift;
    }
}

/* Channels j0 .. j0 + n of R rows (pixels px, global row row0 on) compared into the bits at out: 32 at a time. */
XNOR_AVX2_ATTR static inline __attribute__((always_inline)) void
xnor_u8_dword_thr_rows_avx2(const int32_t *px, int64_t k, const int8_t *dwords, int64_t npad, int64_t j0, int64_t n,
                            const int32_t *thr, int64_t ldt, int64_t row0, int64_t period, const int32_t *index,
                            const uint8_t *flip, uint64_t *out, int64_t ldo, const int R)
{
    int64_t j = j0, end = j0 + n;
    for (; j + 32 <= end; j += 32)
        xnor_u8_dword_thr_block_avx2(px, k, dwords, npad, j, 32, thr, ldt, row0, period, index, flip, out, ldo, R, 4);
    for (; j < end; j += 8)
        xnor_u8_dword_thr_block_avx2(px, k, dwords, npad, j, end - j, thr, ldt, row0, period, index, flip, out, ldo,
                                     R, 1);
}

XNOR_AVX2_ATTR static void xnor_u8_dword_thr_tile_avx2(const uint8_t *u, int64_t ldu, int64_t k,
                                                       const int8_t *dwords, int64_t npad, int64_t j0, int64_t m,
                                                       int64_t n, const int32_t *thr, int64_t ldt, int64_t row0,
                                                       int64_t period, const int32_t *index, const uint8_t *flip,
                                                       uint64_t *out, int64_t ldo)
{
    int32_t px[2 * 64];
    for (int64_t i = 0; i < m; i += 2) {
        const int rows = i + 2 <= m ? 2 : 1;
        xnor_u8_dword_pixels(u + i * ldu, ldu, k, rows, px);
        if (rows == 2)
            xnor_u8_dword_thr_rows_avx2(px, k, dwords, npad, j0, n, thr, ldt, row0 + i, period, index, flip,
                                        out + i * ldo, ldo, 2);
        else
            xnor_u8_dword_thr_rows_avx2(px, k, dwords, npad, j0, n, thr, ldt, row0 + i, period, index, flip,
                                        out + i * ldo, ldo, 1);
    }
}

/* Channels j0 .. j0 + n of R rows (pixels px) as exact int32 dots into c: 32 at a time. */
XNOR_AVX2_ATTR static inline __attribute__((always_inline)) void
xnor_u8_dword_rows_avx2(const int32_t *px, int64_t k, const int8_t *dwords, int64_t npad, int64_t j0, int64_t n,
                        int32_t *c, int64_t ldc, const int R)
{
    int64_t j = 0;
    for (; j + 32 <= n; j += 32)
        xnor_u8_dword_block_avx2(px, k, dwords + (j0 + j) * 4, npad, c + j, ldc, 32, R, 4);
    for (; j < n; j += 8)
        xnor_u8_dword_block_avx2(px, k, dwords + (j0 + j) * 4, npad, c + j, ldc, n - j, R, 1);
}

XNOR_AVX2_ATTR static void xnor_u8_dword_tile_avx2(const uint8_t *u, int64_t ldu, int64_t k, const int8_t *dwords,
                                                   int64_t npad, int64_t j0, int64_t m, int64_t n, int32_t *c,
                                                   int64_t ldc)
{
    int32_t px[2 * 64];
    for (int64_t i = 0; i < m; i += 2) {
        const int rows = i + 2 <= m ? 2 : 1;
        xnor_u8_dword_pixels(u + i * ldu, ldu, k, rows, px);
        if (rows == 2)
            xnor_u8_dword_rows_avx2(px, k, dwords, npad, j0, n, c + i * ldc, ldc, 2);
        else
            xnor_u8_dword_rows_avx2(px, k, dwords, npad, j0, n, c + i * ldc, ldc, 1);
    }
}
#endif

/* 1 when the path runs the dword kernel of uint8 rows (AVX-512 VNNI any k, AVX2 short rows), given the layout. */
static int xnor_u8_dwords_path(int path, int64_t k)
{
    return XNOR_X86 && (path == XNOR_AVX512 || (path == XNOR_AVX2 && k <= XNOR_U8_DWORD_AVX2_MAX_K));
}

/* Rows longer than this (a dense first layer: 784 pixels) read 8x the bytes of the packed weights from the dword
 * layout: worth it only from XNOR_U8_DWORD_MIN_ROWS rows a tile, which share each load (784 -> 2048 on AVX-512:
 * 1 row 21 -> 34 us, 8 rows 159 -> 155 us, 64 rows 1384 -> 1117 us); a single row keeps its packed-weight kernel. */
#define XNOR_U8_DWORD_SHORT_K 256
#define XNOR_U8_DWORD_MIN_ROWS 8

/* 1 when a tile of m rows runs the dword kernel, given the layout. */
static int xnor_u8_dwords_tile(int path, int64_t k, int64_t m, const int8_t *dwords)
{
    return dwords != NULL && xnor_u8_dwords_path(path, k) && (k <= XNOR_U8_DWORD_SHORT_K || m >= XNOR_U8_DWORD_MIN_ROWS);
}

/* 1 when a call of uint8 rows x n columns runs by table lookup (xnor_u8_lut_tile), given the layout of its path's
 * format (or NULL), with enough columns to pay for each row's tables (784 pixels: the lookup and the packed-weight kernel cross
 * at ~100 columns). */
#define XNOR_U8_LUT_MIN_COLS 128
static int xnor_u8_lut_call(int64_t n, const uint8_t *lut)
{
    return lut != NULL && n >= XNOR_U8_LUT_MIN_COLS;
}

/* 1 when the fused dword + threshold tile ran (AVX-512 or AVX2 with the dword layout), 0 when the caller must run
 * the tile and the threshold pass itself. */
static int xnor_u8_tile_dwords_threshold(int path, const uint8_t *u, int64_t ldu, int64_t k, const int8_t *dwords,
                                         int64_t npad, int64_t j0, int64_t m, int64_t n, const int32_t *thr,
                                         int64_t ldt, int64_t row0, int64_t period, const int32_t *index,
                                         const uint8_t *flip, uint64_t *out, int64_t ldo)
{
#if XNOR_X86
    if (!xnor_u8_dwords_tile(path, k, m, dwords))
        return 0;
    if (path == XNOR_AVX512) {
        xnor_u8_dword_thr_tile_avx512(u, ldu, k, dwords, npad, j0, m, n, thr, ldt, row0, period, index, flip, out,
                                      ldo);
        return 1;
    }
    if (path == XNOR_AVX2) {
        xnor_u8_dword_thr_tile_avx2(u, ldu, k, dwords, npad, j0, m, n, thr, ldt, row0, period, index, flip, out, ldo);
        return 1;
    }
#endif
    (void)path; (void)u; (void)ldu; (void)k; (void)dwords; (void)npad; (void)j0; (void)m; (void)n; (void)thr;
    (void)ldt; (void)row0; (void)period; (void)index; (void)flip; (void)out; (void)ldo;
    return 0;
}

/* The dword kernel where the path has it (AVX-512 VNNI, AVX2) and the weights were laid out for it; else xnor_u8_tile
 * on the packed weights b (columns j0 ..): both give the same exact dots. */
static void xnor_u8_tile_dwords(int path, const uint8_t *u, int64_t ldu, int64_t k, const int8_t *dwords,
                                int64_t npad, int64_t j0, const uint64_t *b, int64_t ldb, int64_t m, int64_t n,
                                int32_t *c, int64_t ldc)
{
#if XNOR_X86
    if (xnor_u8_dwords_tile(path, k, m, dwords) && path == XNOR_AVX512) {
        xnor_u8_dword_tile_avx512(u, ldu, k, dwords, npad, j0, m, n, c, ldc);
        return;
    }
    if (xnor_u8_dwords_tile(path, k, m, dwords) && path == XNOR_AVX2) {
        xnor_u8_dword_tile_avx2(u, ldu, k, dwords, npad, j0, m, n, c, ldc);
        return;
    }
#endif
    (void)dwords;
    (void)npad;
    xnor_u8_tile(path, u, ldu, k, b + j0 * ldb, ldb, m, n, c, ldc);
}

/* ------------------------------------------------------------------------------------------------
 * The ceiling: how many XOR + popcount bit pairs a path's instructions can do per second on this core,
 * measured on data in L1 (XNOR_PEAK_WORDS words streamed against 4 operands held in registers, several
 * independent accumulators). Benchmarks report kernels and networks as a share of it. Each pass of
 * xnor_peak() does XNOR_PEAK_PAIRS word pairs (64 binary MACs each) on every path; the returned checksum
 * keeps the compiler from dropping the work.
 * ---------------------------------------------------------------------------------------------- */
#define XNOR_PEAK_WORDS 256
#define XNOR_PEAK_PAIRS (4 * XNOR_PEAK_WORDS)

#define XNOR_DEFINE_PEAK_SCALAR(NAME, ATTR, POP)                                                    \
    ATTR static int64_t NAME(const uint64_t *buf, int64_t passes)                                  \
    {                                                                                               \
        uint64_t a0 = buf[XNOR_PEAK_WORDS], a1 = buf[XNOR_PEAK_WORDS + 1];                          \
        uint64_t a2 = buf[XNOR_PEAK_WORDS + 2], a3 = buf[XNOR_PEAK_WORDS + 3];                      \
        int64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                                     \
        for (int64_t p = 0; p < passes; p++)                                                        \
            for (int64_t w = 0; w < XNOR_PEAK_WORDS; w++) {                                         \
                uint64_t x = buf[w];                                                                \
                s0 += POP(x ^ a0);                                                                  \
                s1 += POP(x ^ a1);                                                                  \
                s2 += POP(x ^ a2);                                                                  \
                s3 += POP(x ^ a3);                                                                  \
            }                                                                                       \
        return s0 + s1 + s2 + s3;                                                                   \
    }

XNOR_DEFINE_PEAK_SCALAR(xnor_peak_swar, , xnor_popcount_swar)
#if XNOR_X86
XNOR_DEFINE_PEAK_SCALAR(xnor_peak_popcnt, __attribute__((target("popcnt"))), __builtin_popcountll)

/* 4 zmm operands (8 words each, so 4 x 8 lanes) against 8-word groups of the stream: XOR + VPOPCNTQ + add. */
XNOR_AVX512_ATTR static int64_t xnor_peak_avx512(const uint64_t *buf, int64_t passes)
{
    __m512i va[4], acc[4];
    for (int j = 0; j < 4; j++) {
        va[j] = _mm512_loadu_si512((const void *)(buf + XNOR_PEAK_WORDS + 8 * j));
        acc[j] = _mm512_setzero_si512();
    }
    for (int64_t p = 0; p < passes; p++)
        for (int64_t w = 0; w < XNOR_PEAK_WORDS; w += 8) {
            __m512i x = _mm512_loadu_si512((const void *)(buf + w));
            for (int j = 0; j < 4; j++)
                acc[j] = _mm512_add_epi64(acc[j], _mm512_popcnt_epi64(_mm512_xor_si512(x, va[j])));
        }
    return _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(acc[0], acc[1]), _mm512_add_epi64(acc[2], acc[3])));
}

/* 4 ymm operands against 4-word groups, through the Harley-Seal tree of the AVX2 panel kernel (VPSHUFB
 * popcount once per 8 inputs), two independent trees. */
XNOR_AVX2_ATTR static int64_t xnor_peak_avx2(const uint64_t *buf, int64_t passes)
{
    __m256i va[4];
    for (int j = 0; j < 4; j++)
        va[j] = _mm256_loadu_si256((const __m256i *)(buf + XNOR_PEAK_WORDS + 4 * j));
    __m256i ones[2], twos[2], fours[2], total[2];
    for (int t = 0; t < 2; t++)
        ones[t] = twos[t] = fours[t] = total[t] = _mm256_setzero_si256();
    for (int64_t p = 0; p < passes; p++)
        for (int64_t w = 0; w < XNOR_PEAK_WORDS; w += 8) {
            __m256i x[2] = {_mm256_loadu_si256((const __m256i *)(buf + w)),
                            _mm256_loadu_si256((const __m256i *)(buf + w + 4))};
            for (int t = 0; t < 2; t++) { /* 8 inputs per tree: the two stream vectors against 4 operands */
                __m256i twos_a, twos_b, fours_a, fours_b, eights;
                XNOR_CSA256(twos_a, ones[t], ones[t], _mm256_xor_si256(x[0], va[2 * t]),
                            _mm256_xor_si256(x[1], va[2 * t]));
                XNOR_CSA256(twos_b, ones[t], ones[t], _mm256_xor_si256(x[0], va[2 * t + 1]),
                            _mm256_xor_si256(x[1], va[2 * t + 1]));
                XNOR_CSA256(fours_a, twos[t], twos[t], twos_a, twos_b);
                XNOR_CSA256(twos_a, ones[t], ones[t], _mm256_xor_si256(x[0], va[(2 * t + 2) % 4]),
                            _mm256_xor_si256(x[1], va[(2 * t + 2) % 4]));
                XNOR_CSA256(twos_b, ones[t], ones[t], _mm256_xor_si256(x[0], va[(2 * t + 3) % 4]),
                            _mm256_xor_si256(x[1], va[(2 * t + 3) % 4]));
                XNOR_CSA256(fours_b, twos[t], twos[t], twos_a, twos_b);
                XNOR_CSA256(eights, fours[t], fours[t], fours_a, fours_b);
                total[t] = _mm256_add_epi64(total[t], xnor_popcnt256(eights));
            }
        }
    int64_t sum = 0;
    for (int t = 0; t < 2; t++)
        sum += 8 * xnor_hsum256(total[t]) + 4 * xnor_hsum256(xnor_popcnt256(fours[t]))
             + 2 * xnor_hsum256(xnor_popcnt256(twos[t])) + xnor_hsum256(xnor_popcnt256(ones[t]));
    return sum;
}

/* The uint8 first layer's ceiling: VPDPBUSD of 64 streamed pixels (bytes) with 8 byte masks held in
 * registers, two stream vectors at a time into 16 independent accumulators (more than its latency x throughput,
 * 5 x 2); 16384 8-bit MACs per pass. */
#define XNOR_VNNI_PEAK_MACS (64 * (XNOR_PEAK_WORDS / 8) * 8)
XNOR_AVX512_ATTR static int64_t xnor_peak_vnni(const uint64_t *buf, int64_t passes)
{
    __m512i masks[8], acc[16];
    for (int j = 0; j < 8; j++)
        masks[j] = _mm512_movm_epi8(_cvtu64_mask64(buf[XNOR_PEAK_WORDS + j]));
    for (int j = 0; j < 16; j++)
        acc[j] = _mm512_setzero_si512();
    for (int64_t p = 0; p < passes; p++)
        for (int64_t w = 0; w < XNOR_PEAK_WORDS; w += 16) {
            const __m512i u0 = _mm512_loadu_si512((const void *)(buf + w));
            const __m512i u1 = _mm512_loadu_si512((const void *)(buf + w + 8));
            for (int j = 0; j < 8; j++) {
                acc[j] = xnor_dpbusd(acc[j], u0, masks[j]);
                acc[8 + j] = xnor_dpbusd(acc[8 + j], u1, masks[j]);
            }
        }
    for (int j = 1; j < 16; j++)
        acc[0] = _mm512_add_epi32(acc[0], acc[j]);
    return _mm512_reduce_add_epi32(acc[0]);
}
#endif /* XNOR_X86 */

#if XNOR_ARM
/* 4 q-register operands against 2-word groups: VEOR + VCNT + VPADAL, folded into 32 bits every pass. */
static int64_t xnor_peak_neon(const uint64_t *buf, int64_t passes)
{
    uint8x16_t va[4];
    uint32x4_t acc32[4];
    for (int j = 0; j < 4; j++) {
        va[j] = vreinterpretq_u8_u64(vld1q_u64(buf + XNOR_PEAK_WORDS + 2 * j));
        acc32[j] = vdupq_n_u32(0);
    }
    for (int64_t p = 0; p < passes; p++) {
        uint16x8_t acc16[4];
        for (int j = 0; j < 4; j++)
            acc16[j] = vdupq_n_u16(0);
        for (int64_t w = 0; w < XNOR_PEAK_WORDS; w += 2) {
            uint8x16_t x = vreinterpretq_u8_u64(vld1q_u64(buf + w));
            for (int j = 0; j < 4; j++)
                acc16[j] = vpadalq_u8(acc16[j], vcntq_u8(veorq_u8(x, va[j])));
        }
        for (int j = 0; j < 4; j++)
            acc32[j] = vpadalq_u16(acc32[j], acc16[j]);
    }
    int64_t sum = 0;
    for (int j = 0; j < 4; j++)
        sum += vaddvq_u32(acc32[j]);
    return sum;
}
#endif /* XNOR_ARM */

/* `passes` (even) passes of XNOR_PEAK_PAIRS word pairs of the path's ceiling loop over buf (XNOR_PEAK_WORDS
 * + 32 words). The AVX2 loop does two passes' work per turn of its own loop. */
static int64_t xnor_peak(int path, const uint64_t *buf, int64_t passes)
{
#if XNOR_X86
    if (path == XNOR_AVX512)
        return xnor_peak_avx512(buf, passes);
    if (path == XNOR_AVX2)
        return xnor_peak_avx2(buf, passes / 2);
    if (xnor_scalar_popcnt)
        return xnor_peak_popcnt(buf, passes);
#endif
#if XNOR_ARM
    if (path == XNOR_NEON)
        return xnor_peak_neon(buf, passes);
#endif
    (void)path;
    return xnor_peak_swar(buf, passes);
}

#endif /* XNOR_SIMD_H */
