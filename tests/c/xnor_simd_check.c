/* Bit-exactness of every SIMD path of ext/xnor_simd.h against the portable scalar (SWAR) path.
 *
 * Built by tests/test_kernel_paths.py for the host and, with aarch64-linux-gnu-gcc -static, for AArch64
 * (run under qemu-aarch64), so the NEON path is checked on an x86 machine. For each path the CPU
 * supports: the GEMM tile, the panel tile and the uint8 first-layer tiles (packed weights, dword layout, table
 * lookup) on random and worst-case operands, odd shapes and long rows (the NEON 16-bit counters are folded every
 * XNOR_NEON_CHUNK steps).
 * Prints one line per path and exits 1 on the first mismatch, naming path, kernel and shape.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xnor_simd.h"

static uint64_t state = 0x9e3779b97f4a7c15ULL;

static uint64_t next(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

/* rows x words of random (fill 2), all-ones (1) or zero (0) words with the bits beyond k cleared */
static uint64_t *operand(int64_t rows, int64_t words, int64_t k, int fill)
{
    uint64_t *x = malloc((size_t)(rows * words + 1) * sizeof(uint64_t));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t w = 0; w < words; w++) {
            uint64_t v = fill == 2 ? next() : fill == 1 ? ~0ULL : 0;
            int64_t left = k - 64 * w;
            if (left < 64)
                v &= left <= 0 ? 0 : ((1ULL << left) - 1);
            x[r * words + w] = v;
        }
    return x;
}

static const char *name(int path)
{
    return path == XNOR_AVX512 ? "avx512" : path == XNOR_AVX2 ? "avx2" : path == XNOR_NEON ? "neon" : "scalar";
}

static int same(const int32_t *want, const int32_t *got, int64_t m, int64_t n, int64_t ldc, int path,
                const char *kernel, int64_t k)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
            if (want[i * ldc + j] != got[i * ldc + j]) {
                printf("MISMATCH path %s %s m=%lld n=%lld k=%lld at (%lld, %lld): want %d got %d\n", name(path),
                       kernel, (long long)m, (long long)n, (long long)k, (long long)i, (long long)j,
                       want[i * ldc + j], got[i * ldc + j]);
                return 0;
            }
    return 1;
}

/* one GEMM shape: tile and panel tile against the SWAR reference; returns the number of checks */
static int check_gemm(int path, int64_t m, int64_t n, int64_t k, int fill_a, int fill_b)
{
    const int64_t words = (k + 63) / 64, ldc = n + 3;
    uint64_t *a = operand(m, words, k, fill_a), *b = operand(n, words, k, fill_b);
    int32_t *want = calloc((size_t)(m * ldc + 1), sizeof(int32_t));
    int32_t *got = calloc((size_t)(m * ldc + 1), sizeof(int32_t));
    uint64_t *panel = calloc((size_t)(((n + 7) / 8) * 8 * words + 1), sizeof(uint64_t));
    xnor_tile_swar(a, words, b, words, words, (int32_t)k, m, n, want, ldc);
    xnor_tile(path, a, words, b, words, words, (int32_t)k, m, n, got, ldc);
    int ok = same(want, got, m, n, ldc, path, "tile", k);
    xnor_make_panel(b, n, words, panel, 0, (n + 7) / 8);
    memset(got, 0, (size_t)(m * ldc) * sizeof(int32_t));
    xnor_panel_tile(path, a, words, panel, words, (int32_t)k, m, n, got, ldc);
    ok = ok && same(want, got, m, n, ldc, path, "panel tile", k);
    free(a);
    free(b);
    free(want);
    free(got);
    free(panel);
    if (!ok)
        exit(1);
    return 2;
}

/* one uint8 shape: u (m x k bytes) against packed weights, the path's tile against the SWAR one */
static int check_u8(int path, int64_t m, int64_t n, int64_t k, int saturate)
{
    const int64_t words = (k + 63) / 64, ldc = n + 1;
    uint8_t *u = malloc((size_t)(m * k + 1));
    for (int64_t t = 0; t < m * k; t++)
        u[t] = saturate ? 255 : (uint8_t)next();
    uint64_t *b = operand(n, words, k, saturate ? 1 : 2);
    int32_t *want = calloc((size_t)(m * ldc + 1), sizeof(int32_t));
    int32_t *got = calloc((size_t)(m * ldc + 1), sizeof(int32_t));
    xnor_u8_tile_swar(u, k, k, b, words, m, n, want, ldc);
    xnor_u8_tile(path, u, k, k, b, words, m, n, got, ldc);
    int ok = same(want, got, m, n, ldc, path, "uint8 tile", k);
    if (ok && k <= 256) { /* the dword kernel of short rows (AVX-512 VNNI; elsewhere the tile above), also from j0 = 16 */
        int8_t *dwords = malloc((size_t)xnor_u8_dwords_size(n, k));
        xnor_make_u8_dwords(b, n, words, k, dwords);
        memset(got, 0, (size_t)(m * ldc) * sizeof(int32_t));
        int64_t j0 = n > 16 ? 16 : 0, npad = (n + 15) / 16 * 16;
        xnor_u8_tile_dwords(path, u, k, k, dwords, npad, 0, b, words, m, j0, got, ldc);
        xnor_u8_tile_dwords(path, u, k, k, dwords, npad, j0, b, words, m, n - j0, got + j0, ldc);
        ok = same(want, got, m, n, ldc, path, "uint8 dword tile", k);
        free(dwords);
    }
    const int format = xnor_u8_lut_format(path); /* table lookup (AVX2 and NEON: TABLE16, AVX-512 VBMI: TABLE64), from j0 = 16 */
    if (ok && format != XNOR_U8_LUT_NONE) {
        uint8_t *lut = malloc((size_t)xnor_u8_lut_size(n, k));
        uint8_t *tables = malloc((size_t)(m * xnor_u8_lut_table_bytes(k)));
        int32_t *totals = malloc((size_t)m * sizeof(int32_t));
        xnor_make_u8_lut(b, n, words, k, format, lut);
        xnor_u8_lut_tables(format, u, k, k, m, tables, totals);
        memset(got, 0, (size_t)(m * ldc) * sizeof(int32_t));
        int64_t j0 = n > 16 ? 16 : 0;
        xnor_u8_lut_tile(format, tables, totals, k, m, lut, 0, j0, got, ldc);
        xnor_u8_lut_tile(format, tables, totals, k, m, lut, j0, n - j0, got + j0, ldc);
        ok = same(want, got, m, n, ldc, path, format == XNOR_U8_LUT_TABLE64 ? "uint8 TABLE64 lookup tile"
                                                                          : "uint8 TABLE16 lookup tile", k);
        free(lut);
        free(tables);
        free(totals);
    }
    free(u);
    free(b);
    free(want);
    free(got);
    if (!ok)
        exit(1);
    return 1;
}

int main(void)
{
    xnor_init();
    static const int64_t ks[] = {1, 63, 64, 65, 127, 128, 129, 576, 1000, 1024, 1152, 4096, 4160};
    static const int64_t ms[] = {1, 2, 3, 5, 8};
    static const int64_t ns[] = {1, 3, 4, 7, 8, 9, 17, 33};
    int paths = 0;
    for (int path = 0; path <= XNOR_NEON; path++) {
        if (!xnor_cpu_supports(path))
            continue;
        int checks = 0;
        for (size_t a = 0; a < sizeof(ks) / sizeof(ks[0]); a++)
            for (size_t b = 0; b < sizeof(ms) / sizeof(ms[0]); b++)
                for (size_t c = 0; c < sizeof(ns) / sizeof(ns[0]); c++)
                    checks += check_gemm(path, ms[b], ns[c], ks[a], 2, 2);
        /* worst cases for the counters: every bit differs / none does, on rows longer than a NEON chunk */
        checks += check_gemm(path, 3, 5, 64 * 8401 - 5, 1, 0);
        checks += check_gemm(path, 2, 9, 64 * 8400, 1, 1);
        checks += check_gemm(path, 2, 4, 64 * 16001 + 7, 2, 2);
        /* the uint8 tile with each single-row kernel this CPU has (AVX-512: mask registers, and GFNI) */
        const int gfni = xnor_u8_gfni;
        for (int g = gfni; g >= 0; g--) {
            xnor_u8_gfni = g;
            for (size_t a = 0; a < sizeof(ks) / sizeof(ks[0]); a++)
                for (size_t b = 0; b < sizeof(ms) / sizeof(ms[0]); b++)
                    for (size_t c = 0; c < sizeof(ns) / sizeof(ns[0]); c++)
                        checks += check_u8(path, ms[b], ns[c] * 2, ks[a], 0);
            checks += check_u8(path, 1, 2048, 784, 0);
            checks += check_u8(path, 1, 48, 1024, 1);
        }
        xnor_u8_gfni = gfni;
        checks += check_u8(path, 3, 17, 5000, 1);
        checks += check_u8(path, 5, 200, 800, 0);  /* the lookups' blocks of 8, 4, 2 and 1 */
        checks += check_u8(path, 2, 40, 9000, 1); /* TABLE16: 16-bit sums flushed to int32 (every 256 pixels) */
        static const int64_t short_ks[] = {3, 4, 5, 27, 31, 32, 33, 255, 256};
        for (size_t a = 0; a < sizeof(short_ks) / sizeof(short_ks[0]); a++) {
            checks += check_u8(path, 5, 33, short_ks[a], 0);
            checks += check_u8(path, 2, 100, short_ks[a], 1);
        }
        printf("path %s: %d checks bit-exact with scalar\n", name(path), checks);
        paths++;
    }
    printf("paths checked: %d\n", paths);
    return 0;
}
