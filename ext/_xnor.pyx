# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled XNOR-popcount kernels: sign packing, GEMM, convolution, thresholds and pooling.

The public, validating API is ``workbench.deploy.kernels``; the functions here check only what keeps memory
access in bounds (dtypes and shapes through typed memoryviews, shape agreement), then release the GIL.
Work is split into tiles of MT rows x NT output channels that OpenMP threads take in turn; every
output element (and every packed output word) belongs to one tile, so results do not depend on the
thread count.
"""
from cython.parallel cimport prange, threadid
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint64_t, uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

import math

import numpy as np

cdef extern from "xnor_simd.h" nogil:
    int XNOR_SCALAR, XNOR_AVX2, XNOR_AVX512, XNOR_NEON, XNOR_OPENMP
    int xnor_cpu_supports(int path)
    void xnor_init()
    void xnor_tile(int path, const uint64_t *a, int64_t lda, const uint64_t *b, int64_t ldb,
                   int64_t words, int32_t k, int64_t m, int64_t n, int32_t *c, int64_t ldc)
    void xnor_threshold_pack(int path, const int32_t *dots, int64_t rows, int64_t n, int64_t ldd, int64_t n0,
                             const int32_t *thr, const uint8_t *flip, uint64_t *out, int64_t ldo)
    void xnor_threshold_pack_period(int path, const int32_t *dots, int64_t rows, int64_t n, int64_t ldd,
                                    int64_t n0, const int32_t *thr, int64_t ldt, int64_t row0, int64_t period,
                                    const int32_t *index, const uint8_t *flip, uint64_t *out, int64_t ldo)
    void xnor_pack_f32(int path, const float *x, int64_t rows, int64_t k, uint64_t *out, int64_t words, int *nan)
    void xnor_pack_f64(int path, const double *x, int64_t rows, int64_t k, uint64_t *out, int64_t words, int *nan)
    void xnor_pack_i8(const int8_t *x, int64_t rows, int64_t k, uint64_t *out, int64_t words, int *nan)
    void xnor_pack_i16(const int16_t *x, int64_t rows, int64_t k, uint64_t *out, int64_t words, int *nan)
    void xnor_pack_i32(const int32_t *x, int64_t rows, int64_t k, uint64_t *out, int64_t words, int *nan)
    void xnor_pack_i64(const int64_t *x, int64_t rows, int64_t k, uint64_t *out, int64_t words, int *nan)
    void xnor_unpack(const uint64_t *bits, int64_t rows, int64_t words, int64_t k, int8_t *out)
    void xnor_im2col(const uint64_t *x, int64_t h, int64_t w, int64_t cw, int64_t kh, int64_t kw,
                     int64_t sh, int64_t sw, int64_t pt, int64_t pl, int64_t oh, int64_t ow,
                     int64_t p0, int64_t p1, uint64_t *out)
    void xnor_pool2x2(const uint64_t *x, int64_t n, int64_t h, int64_t w, int64_t cw, const uint64_t *or_mask,
                      uint64_t *out)
    void xnor_make_panel(const uint64_t *b, int64_t n, int64_t words, uint64_t *panel, int64_t g0, int64_t g1)
    ctypedef struct XnorBitsOut:
        const int32_t *thresholds
        const uint8_t *flip
        uint8_t *bits
        int64_t ldb
        const int64_t *limits
        const uint8_t *flip_bits
    int xnor_bits_limits(int path, const int32_t *thr, const uint8_t *flip, int32_t k, int64_t n, int64_t *limits,
                         uint8_t *flip_bits)
    int xnor_panel_segments(int path, int64_t words)
    void xnor_panel_tile_segments(int path, const uint64_t *a, int64_t lda, int64_t seg, int64_t span,
                                  const uint64_t *panel, int64_t words, int32_t k, int64_t m, int64_t n,
                                  int32_t *c, int64_t ldc, const XnorBitsOut *out)
    void xnor_border(const uint64_t *x, int64_t n, int64_t h, int64_t w, int64_t cw, int64_t pt, int64_t pl,
                     int64_t ph, int64_t pw, uint64_t *out)
    void xnor_panel_tile(int path, const uint64_t *a, int64_t lda, const uint64_t *panel, int64_t words,
                         int32_t k, int64_t m, int64_t n, int32_t *c, int64_t ldc)
    void xnor_u8_tile(int path, const uint8_t *u, int64_t ldu, int64_t k, const uint64_t *b, int64_t ldb,
                      int64_t m, int64_t n, int32_t *c, int64_t ldc)
    void xnor_im2col_u8(const uint8_t *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                        int64_t sh, int64_t sw, int64_t pt, int64_t pl, int64_t oh, int64_t ow, uint8_t *pad,
                        int64_t hp, int64_t wp, uint8_t *out)
    int xnor_u8_tile_dwords_threshold(int path, const uint8_t *u, int64_t ldu, int64_t k, const int8_t *dwords,
                                      int64_t npad, int64_t j0, int64_t m, int64_t n, const int32_t *thr,
                                      int64_t ldt, int64_t row0, int64_t period, const int32_t *index,
                                      const uint8_t *flip, uint64_t *out, int64_t ldo)
    int64_t xnor_u8_dwords_size(int64_t n, int64_t k)
    int xnor_u8_dwords_path(int path, int64_t k)
    void xnor_make_u8_dwords(const uint64_t *b, int64_t n, int64_t words, int64_t k, int8_t *dwords)
    void xnor_u8_tile_dwords(int path, const uint8_t *u, int64_t ldu, int64_t k, const int8_t *dwords,
                             int64_t npad, int64_t j0, const uint64_t *b, int64_t ldb, int64_t m, int64_t n,
                             int32_t *c, int64_t ldc)
    int XNOR_U8_LUT_MIN_COLS, XNOR_U8_LUT_NONE, XNOR_U8_LUT_TABLE16, XNOR_U8_LUT_TABLE64
    int64_t xnor_u8_lut_size(int64_t n, int64_t k)
    int64_t xnor_u8_lut_table_bytes(int64_t k)
    int xnor_u8_lut_format(int path)
    int xnor_u8_lut_call(int64_t n, const uint8_t *lut)
    void xnor_make_u8_lut(const uint64_t *b, int64_t n, int64_t words, int64_t k, int format, uint8_t *lut)
    void xnor_u8_lut_tables(int format, const uint8_t *u, int64_t ldu, int64_t k, int64_t m, uint8_t *tables,
                            int32_t *totals)
    void xnor_u8_lut_tile(int format, const uint8_t *tables, const int32_t *totals, int64_t k, int64_t m,
                          const uint8_t *lut, int64_t j0, int64_t n, int32_t *c, int64_t ldc)
    int XNOR_PEAK_WORDS, XNOR_PEAK_PAIRS, XNOR_VNNI_PEAK_MACS
    int64_t xnor_peak(int path, const uint64_t *buf, int64_t passes)
    int64_t xnor_peak_vnni(const uint64_t *buf, int64_t passes)

xnor_init()

SCALAR = XNOR_SCALAR
AVX2 = XNOR_AVX2
AVX512 = XNOR_AVX512
NEON = XNOR_NEON
# False when the module was built without OpenMP (setup.py: BNN_WORKBENCH_OPENMP=0, or a compiler whose
# -fopenmp does not link, as Apple's clang): every call then runs on one thread, whatever it asks for.
OPENMP = bool(XNOR_OPENMP)
# The formats of uint8 rows by table lookup (make_u8_lut) that this CPU's paths run (AVX2 and NEON: TABLE16, AVX-512
# with VBMI: TABLE64), and the fewest columns a call runs them for.
U8_LUT_TABLE16, U8_LUT_TABLE64 = XNOR_U8_LUT_TABLE16, XNOR_U8_LUT_TABLE64
U8_LUT_FORMATS = tuple(sorted({xnor_u8_lut_format(p) for p in (XNOR_AVX512, XNOR_AVX2, XNOR_NEON) if xnor_cpu_supports(p)}
                              - {XNOR_U8_LUT_NONE}))
U8_LUT_MIN_COLS = XNOR_U8_LUT_MIN_COLS

# Tile sizes: MT rows of A (or output pixels) x NT rows of B (output channels, a multiple of 64 so
# that packed output words never straddle two tiles).
DEF MT = 64
DEF NT = 256
DEF NT_GROUPS = 32  # NT / 8: groups of 8 output channels in a tile
# Word pairs (64 binary MACs each) of work per thread below which more threads do not pay.
DEF MIN_WORK = 65536
# A uint8 row against a weight word (64 MACs on 8-bit values) costs about as much as this many word pairs.
DEF U8_WORD_COST = 8
DEF LUT_TABLE_BYTES = 1 << 20  # uint8 rows by table lookup: the tables made at once (chunks of MT rows, or all)
# Rows of A from which re-laying B out as a panel (make_panel) in every call pays on the AVX-512 path.
DEF PANEL_MIN_ROWS = 32

ctypedef fused packable:
    float
    double
    int8_t
    int16_t
    int32_t
    int64_t


def cpu_supports(int path):
    """Whether this CPU (and OS) can run the given SIMD path."""
    return bool(xnor_cpu_supports(path))


MAX_THREADS = 256  # a bound on the per-thread scratch buffers a call allocates (far above any core count here)


cdef int _thread_count(int threads) except -1:
    """The thread count a call may use: ValueError below 1 (OpenMP would corrupt or end the process), at most
    MAX_THREADS (threads=10**6 once sized a 61 GiB scratch buffer)."""
    if threads < 1:
        raise ValueError(f"threads: expected a positive thread count, got {threads}")
    if not XNOR_OPENMP:
        return 1
    return threads if threads < MAX_THREADS else MAX_THREADS


_PEAK_BUFFER = np.random.default_rng(0).integers(0, 2 ** 63, XNOR_PEAK_WORDS + 32, dtype=np.uint64)


def peak_loop(int path, int64_t passes):
    """Run `passes` (even) passes of the path's in-L1 XOR + popcount ceiling loop; returns the binary MACs done.

    The caller times it (workbench.deploy.timing.ceiling): a pure instruction-throughput figure for this core
    and path, which kernels and networks are reported as a share of."""
    _check(passes >= 2 and passes % 2 == 0, "peak_loop: passes must be even and at least 2")
    cdef uint64_t[::1] view = _PEAK_BUFFER
    cdef int64_t checksum
    with nogil:
        checksum = xnor_peak(path, &view[0], passes)
    if checksum < 0:  # never: it keeps the work observable
        raise RuntimeError("peak_loop: negative checksum")
    return passes * XNOR_PEAK_PAIRS * 64


def vnni_peak_loop(int64_t passes):
    """Run `passes` passes of the in-L1 VPDPBUSD loop (the uint8 first layer's instruction on the AVX-512
    path); returns the 8-bit MACs done. Needs the AVX-512 path (VNNI)."""
    _check(xnor_cpu_supports(XNOR_AVX512), "vnni_peak_loop: this CPU has no AVX-512 VNNI path")
    _check(passes >= 1, "vnni_peak_loop: passes must be at least 1")
    cdef uint64_t[::1] view = _PEAK_BUFFER
    cdef int64_t checksum
    with nogil:
        checksum = xnor_peak_vnni(&view[0], passes)
    if checksum == 1:  # keeps the work observable (any value is fine)
        return passes * XNOR_VNNI_PEAK_MACS + 0
    return passes * XNOR_VNNI_PEAK_MACS


def _check(bint ok, str message):
    if not ok:
        raise ValueError(message)


def pack_rows(packable[:, ::1] x, uint64_t[:, ::1] out, int path):
    """Sign bits of each row of x into out (rows x ceil(k/64)); returns True if x holds a NaN."""
    cdef int64_t rows = x.shape[0], k = x.shape[1], words = (k + 63) // 64
    cdef int nan = 0
    _check(out.shape[0] == rows and out.shape[1] == words, "pack_rows: output shape does not match the input")
    if rows == 0 or words == 0:
        return False
    with nogil:
        if packable is float:
            xnor_pack_f32(path, &x[0, 0], rows, k, &out[0, 0], words, &nan)
        elif packable is double:
            xnor_pack_f64(path, &x[0, 0], rows, k, &out[0, 0], words, &nan)
        elif packable is int8_t:
            xnor_pack_i8(&x[0, 0], rows, k, &out[0, 0], words, &nan)
        elif packable is int16_t:
            xnor_pack_i16(&x[0, 0], rows, k, &out[0, 0], words, &nan)
        elif packable is int32_t:
            xnor_pack_i32(&x[0, 0], rows, k, &out[0, 0], words, &nan)
        else:
            xnor_pack_i64(&x[0, 0], rows, k, &out[0, 0], words, &nan)
    return bool(nan)


def unpack_rows(const uint64_t[:, ::1] bits, int64_t k, int8_t[:, ::1] out):
    """-1/+1 int8 values of the first k bits of each row."""
    cdef int64_t rows = bits.shape[0], words = bits.shape[1]
    _check(words == (k + 63) // 64 and out.shape[0] == rows and out.shape[1] == k,
           "unpack_rows: shapes do not match k")
    if rows == 0 or k == 0:
        return
    with nogil:
        xnor_unpack(&bits[0, 0], rows, words, k, &out[0, 0])


cdef struct Im2col:
    # Convolution rows of A: the patches of packed NHWC input x, gathered tile by tile (xnor_im2col).
    const uint64_t *x           # input words (N, H, W, cw); NULL when it has none
    int64_t h, w, cw            # input height, width, words per pixel
    int64_t kh, kw              # kernel height and width
    int64_t sh, sw              # strides
    int64_t pt, pl              # padding above and left of the input (zero words: +1 activations)
    int64_t oh, ow              # output height and width
    uint64_t *patches           # one buffer of MT patches per thread, `patch_stride` words apart
    int64_t patch_stride
    # Or, for a stride-1 convolution on a path that reads patches in place (xnor_panel_segments): the input
    # with its zero border (N, ph, pw, cw), every window inside it; NULL: gather patches (xnor_im2col).
    const uint64_t *bordered
    int64_t ph, pw


ctypedef struct KernelCall:
    # One tiled kernel call, filled by a def function below and run by _drive.
    int path                    # XNOR_SCALAR, XNOR_AVX2 or XNOR_AVX512 (already checked against the CPU)
    int threads                 # threads asked for; _drive runs _team_size(...) of them
    int64_t m                   # rows of A (GEMM rows or output pixels)
    int64_t n                   # rows of B (output channels)
    int64_t words               # words per row of A and of B
    int32_t k                   # bits per row (uint8 rows: bytes per row)

    # A: one of (a or u is NULL when k == 0: the rows are empty and every dot is 0 on any path)
    const uint64_t *a           # packed rows, `words` apart
    const uint8_t *u            # uint8 rows, k bytes apart (xnor_u8_tile)
    const Im2col *conv          # convolution patches

    # B
    const uint64_t *b           # packed rows, `words` apart; NULL when words == 0
    const uint64_t *panel       # B in make_panel's layout, or NULL (not read for uint8 rows)
    const int8_t *u8_dwords     # uint8 rows only: B in make_u8_dwords' layout (AVX-512 VNNI), or NULL
    int64_t u8_npad             # its channels, n rounded up to 16
    const uint8_t *u8_lut       # uint8 rows only: B in make_u8_lut's layout of the path's format, or NULL
    const uint8_t *u8_tables    # set by _drive when the call runs by table lookup: tables and pixel sums of
    const int32_t *u8_totals    # rows u8_row0 ..
    int64_t u8_row0

    # Output: dots, or dots compared with thresholds into packed bits when `thresholds` is set
    int32_t *dots               # m x n int32
    const int32_t *thresholds   # n per-column thresholds, or NULL
    const uint8_t *flip         # n flags: 0 = +1 iff dot >= threshold, 1 = +1 iff dot <= threshold
    uint64_t *bits              # m x bit_words packed output
    int64_t bit_words
    int32_t *scratch            # one MT x NT block of dots per thread, for the thresholds
    int64_t thr_period          # 0: one threshold per column; P: row r compares with thresholds[(r % P) * n + j]
    const int32_t *thr_index    # or, when set (P entries), with thresholds[thr_index[r % P] * n + j]


cdef KernelCall _new_call(int path, int threads, int64_t m, int64_t n, int64_t words, int32_t k) noexcept nogil:
    """A KernelCall of that size with every operand and output NULL, for the caller to fill."""
    cdef KernelCall call
    memset(&call, 0, sizeof(call))
    call.path = path
    call.threads = threads
    call.m = m
    call.n = n
    call.words = words
    call.k = k
    return call


cdef object _threshold_output(KernelCall *call, const int32_t *thresholds, const uint8_t *flip, uint64_t *bits,
                              int64_t bit_words, bint scratch=True):
    """Send the call's dots through the thresholds into `bits`; returns the per-thread scratch array (None without
    `scratch`: tiles that compare in registers need none), which the caller keeps alive until the call has run."""
    call.thresholds = thresholds
    call.flip = flip
    call.bits = bits
    call.bit_words = bit_words
    if not scratch:
        return None
    blocks = np.empty((call.threads, MT * NT), dtype=np.int32)
    cdef int32_t[:, ::1] view = blocks
    call.scratch = &view[0, 0]
    return blocks


cdef int _team_size(int64_t m, int64_t n, int64_t words, int threads) noexcept nogil:
    """No more threads than tiles, and one per MIN_WORK word pairs at most: forking and joining a team
    costs microseconds, and far more when the cores are busy with other processes."""
    cdef int64_t tasks = ((m + MT - 1) // MT) * ((n + NT - 1) // NT)
    cdef int64_t useful = (m * n * (words if words > 0 else 1)) // MIN_WORK
    if useful < tasks:
        tasks = useful if useful > 1 else 1
    return <int>tasks if threads > tasks else threads


def team_size(int64_t m, int64_t n, int64_t words, int threads):
    """The number of threads a GEMM (or conv: m = output pixels, words = KH*KW*ceil(C/64)) will use."""
    threads = _thread_count(threads)
    return _team_size(m, n, words, threads)


cdef inline void _run_tile(const KernelCall *call, int64_t t, int tid) noexcept nogil:
    """Tile t of a call on thread tid: its rows of A from `a`, `u` or (gathered into the thread's patch buffer)
    `conv`, B from `panel` when given, else `b`; its dots go straight to `dots` or, with thresholds, through
    the thread's scratch block into `bits`."""
    cdef const Im2col *conv = call.conv
    cdef int64_t words = call.words, n = call.n, k = call.k
    cdef int64_t tn = (n + NT - 1) // NT
    cdef bint thresholded = call.thresholds != NULL
    cdef int64_t ldc = NT if thresholded else n
    cdef int64_t i0 = (t // tn) * MT, j0 = (t % tn) * NT
    cdef int64_t mm = call.m - i0 if call.m - i0 < MT else MT
    cdef int64_t nn = n - j0 if n - j0 < NT else NT
    cdef const uint64_t *rows
    cdef uint64_t *patches
    cdef int32_t *dots
    # (conv2d never sets per-position thresholds, thr_period: only the uint8 first layer has them)
    if conv != NULL and conv.bordered != NULL:  # per-column thresholds compared in registers: no dots block
        _direct_conv_tile(call, i0, mm, j0, nn, NULL if thresholded else call.dots + i0 * n + j0, ldc)
        return
    if conv != NULL:
        patches = conv.patches + tid * conv.patch_stride
        xnor_im2col(conv.x, conv.h, conv.w, conv.cw, conv.kh, conv.kw, conv.sh, conv.sw, conv.pt, conv.pl,
                    conv.oh, conv.ow, i0, i0 + mm, patches)
        rows = patches
    else:
        rows = call.a + i0 * words
    if (thresholded and call.u8_tables == NULL and call.u != NULL and call.u8_dwords != NULL
            and xnor_u8_tile_dwords_threshold(call.path, call.u + i0 * k, k, k, call.u8_dwords, call.u8_npad, j0, mm, nn, call.thresholds,
            n, i0, call.thr_period, call.thr_index, call.flip, call.bits + i0 * call.bit_words, call.bit_words)):
        return  # thresholds compared in registers: no dots block
    cdef XnorBitsOut out
    cdef int64_t limits[NT]
    cdef uint8_t flip_bits[NT_GROUPS]
    if (thresholded and not call.thr_period and call.panel != NULL and call.u == NULL
            and xnor_panel_segments(call.path, words)):  # compared in registers: no dots block
        out = _bits_out(call, i0, j0, nn, limits, flip_bits)
        xnor_panel_tile_segments(call.path, rows, words, 0, words, call.panel + j0 * words, words, <int32_t>k, mm,
                                 nn, NULL, 0, &out)
        return
    dots = call.scratch + tid * MT * NT if thresholded else call.dots + i0 * n + j0
    if call.u8_tables != NULL:
        xnor_u8_lut_tile(xnor_u8_lut_format(call.path),
                         call.u8_tables + (i0 - call.u8_row0) * xnor_u8_lut_table_bytes(k),
                         call.u8_totals + (i0 - call.u8_row0), k, mm, call.u8_lut, j0, nn, dots, ldc)
    elif call.u != NULL and call.u8_dwords != NULL:
        xnor_u8_tile_dwords(call.path, call.u + i0 * k, k, k, call.u8_dwords, call.u8_npad, j0, call.b, words,
                            mm, nn, dots, ldc)
    elif call.u != NULL:
        xnor_u8_tile(call.path, call.u + i0 * k, k, k, call.b + j0 * words, words, mm, nn, dots, ldc)
    elif call.panel != NULL:  # column j0 (a multiple of 8) starts group j0 / 8, i.e. word j0 * words
        xnor_panel_tile(call.path, rows, words, call.panel + j0 * words, words, <int32_t>k, mm, nn, dots, ldc)
    else:
        xnor_tile(call.path, rows, words, call.b + j0 * words, words, words, <int32_t>k, mm, nn, dots, ldc)
    if thresholded:
        _threshold_tile(call, dots, i0, mm, j0, nn)


cdef inline void _threshold_tile(const KernelCall *call, const int32_t *dots, int64_t i0, int64_t mm, int64_t j0,
                                 int64_t nn) noexcept nogil:
    """A tile's dots block (row stride NT) compared with the thresholds into the packed output bits."""
    if call.thr_period:  # thresholds per output position (a 'same'-padded first layer)
        xnor_threshold_pack_period(call.path, dots, mm, nn, NT, j0, call.thresholds, call.n, i0, call.thr_period,
                                   call.thr_index, call.flip, call.bits + i0 * call.bit_words, call.bit_words)
    else:
        xnor_threshold_pack(call.path, dots, mm, nn, NT, j0, call.thresholds, call.flip,
                            call.bits + i0 * call.bit_words, call.bit_words)


cdef inline XnorBitsOut _bits_out(const KernelCall *call, int64_t i0, int64_t j0, int64_t nn, int64_t *limits,
                                  uint8_t *flip_bits) noexcept nogil:
    """Where the kernels that compare in registers write the bits of the tile at row i0, column j0, and its nn
    thresholds laid out once for the tile where the path wants them so (xnor_bits_limits, into the caller's
    limits[NT] and flip_bits[NT_GROUPS])."""
    cdef XnorBitsOut out
    out.thresholds = call.thresholds + j0
    out.flip = call.flip + j0
    out.ldb = call.bit_words * 8
    out.bits = <uint8_t *>(call.bits + i0 * call.bit_words) + j0 // 8
    out.limits = NULL
    out.flip_bits = NULL
    if xnor_bits_limits(call.path, out.thresholds, out.flip, <int32_t>call.k, nn, limits, flip_bits):
        out.limits = limits
        out.flip_bits = flip_bits
    return out


cdef inline void _direct_conv_tile(const KernelCall *call, int64_t i0, int64_t mm, int64_t j0, int64_t nn,
                                   int32_t *dots, int64_t ldc) noexcept nogil:
    """Output pixels i0 .. i0+mm of a stride-1 convolution straight from the bordered input, one run of
    pixels of one output row at a time: consecutive pixels' windows are cw words apart, their kernel rows
    pw * cw words apart. Without `dots` the kernel compares with the thresholds into the output bits."""
    cdef const Im2col *conv = call.conv
    cdef int64_t plane = conv.oh * conv.ow, p = i0, run, b, y, x0
    cdef int64_t limits[NT]
    cdef uint8_t flip_bits[NT_GROUPS]
    cdef XnorBitsOut out
    cdef XnorBitsOut *bits_out = NULL
    if dots == NULL:
        out = _bits_out(call, i0, j0, nn, limits, flip_bits)
        bits_out = &out
    while p < i0 + mm:
        b = p // plane
        y = (p % plane) // conv.ow
        x0 = p % conv.ow
        run = conv.ow - x0 if conv.ow - x0 < i0 + mm - p else i0 + mm - p
        xnor_panel_tile_segments(call.path, conv.bordered + ((b * conv.ph + y) * conv.pw + x0) * conv.cw, conv.cw,
                                 conv.pw * conv.cw, conv.kw * conv.cw, call.panel + j0 * call.words, call.words,
                                 <int32_t>call.k, run, nn, dots + (p - i0) * ldc if dots != NULL else NULL, ldc,
                                 bits_out)
        p += run
        if bits_out != NULL:
            out.bits += run * out.ldb


cdef void _drive(const KernelCall *call) noexcept nogil:
    """Run all tiles of a call (_run_tiles). uint8 rows with make_u8_lut's layout run by table lookup: their
    tables are made here, for up to LUT_TABLE_BYTES of rows at a time, each chunk's rows then run as tiles
    (should the memory not be there, the tiles run without tables, on the packed weights)."""
    cdef int64_t tn = (call.n + NT - 1) // NT
    cdef KernelCall lookup
    cdef int64_t row_bytes, chunk, r0, rows
    cdef uint8_t *memory
    cdef uint8_t *tables
    if xnor_u8_lut_call(call.n, call.u8_lut):
        row_bytes = xnor_u8_lut_table_bytes(call.k)
        chunk = LUT_TABLE_BYTES // row_bytes // MT * MT
        chunk = MT if chunk < MT else chunk
        chunk = call.m if chunk > call.m else chunk
        memory = <uint8_t *>malloc(chunk * (row_bytes + 4) + 64)
        if memory != NULL:
            tables = memory + ((64 - (<uintptr_t>memory & 63)) & 63)  # on cache lines, as the kernel reads them
            lookup = call[0]
            lookup.u8_tables = tables
            lookup.u8_totals = <int32_t *>(tables + chunk * row_bytes)
            r0 = 0
            while r0 < call.m:
                rows = call.m - r0 if call.m - r0 < chunk else chunk
                xnor_u8_lut_tables(xnor_u8_lut_format(call.path), call.u + r0 * call.k, call.k, call.k, rows, tables,
                                   <int32_t *>lookup.u8_totals)
                lookup.u8_row0 = r0
                _run_tiles(&lookup, rows, (r0 // MT) * tn, ((r0 + rows + MT - 1) // MT) * tn)
                r0 += chunk
            free(memory)
            return
    _run_tiles(call, call.m, 0, ((call.m + MT - 1) // MT) * tn)


cdef void _run_tiles(const KernelCall *call, int64_t rows, int64_t t0, int64_t t1) noexcept nogil:
    """Tiles t0 .. t1 - 1 of a call (`rows` rows, which size the team): on a team of threads taking tiles
    dynamically, or, when the call gets one thread, in a plain loop (no OpenMP region to open and close: a
    batch-1 layer of a few microseconds would pay for it)."""
    cdef int64_t t
    cdef int threads = _team_size(rows, call.n, call.words * U8_WORD_COST if call.u != NULL else call.words,
                                  call.threads)
    if threads <= 1:
        for t in range(t0, t1):
            _run_tile(call, t, 0)
        return
    for t in prange(t0, t1, num_threads=threads, schedule="dynamic"):
        _run_tile(call, t, threadid())


def aligned_zeros(int64_t count, dtype):
    """A zeroed 1-D array of `count` items whose data starts on a 64-byte cache line: the kernels' 512-bit loads
    of a weights' layout never split a line (split loads cost the batch-1 GEMV (1, 2048, 2048) ~40%; NumPy
    aligns large arrays to 16 bytes only)."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.zeros(count * itemsize + 64, dtype=np.uint8)
    start = (-raw.ctypes.data) % 64
    return raw[start:start + count * itemsize].view(dtype)


def make_panel(const uint64_t[:, ::1] b, int threads=1):
    """B (n x words) in the broadcast kernels' layout (AVX-512, AVX2): groups of 8 rows, word-interleaved, 1-D.
    A large B is laid out by `threads` threads, each taking an equal range of groups."""
    threads = _thread_count(threads)
    cdef int64_t n = b.shape[0], words = b.shape[1], groups = (n + 7) // 8, t, per
    panel = aligned_zeros(groups * 8 * words, np.uint64)
    cdef uint64_t[::1] view = panel
    if n == 0 or words == 0:
        return panel
    if n * words < MIN_WORK:
        threads = 1
    per = (groups + threads - 1) // threads
    with nogil:
        for t in prange(threads, num_threads=threads, schedule="static"):
            xnor_make_panel(&b[0, 0], n, words, &view[0], t * per, min((t + 1) * per, groups))
    return panel


cdef const uint64_t *_panel_of(object panel, int64_t n, int64_t words) except? NULL:
    """The data of a make_panel result for B (n x words), checked, or NULL for None."""
    if panel is None:
        return NULL
    cdef const uint64_t[::1] view = panel
    _check(view.shape[0] == ((n + 7) // 8) * 8 * words, "panel: length does not match B")
    return &view[0] if view.shape[0] else NULL


def _auto_panel(const uint64_t[:, ::1] b, int64_t m, int path, panel, int threads):
    """The panel to use: the given one, or one made now on the AVX-512 or AVX2 path when M rows amortise it."""
    if panel is not None or (path != XNOR_AVX512 and path != XNOR_AVX2) or m < PANEL_MIN_ROWS:
        return panel
    return make_panel(b, _team_size(m, b.shape[0], b.shape[1], threads))


def gemm(const uint64_t[:, ::1] a, const uint64_t[:, ::1] b, int32_t k, int32_t[:, ::1] out,
         int path, int threads, panel=None):
    """out = K - 2 popcount(a_i ^ b_j): -1/+1 dot products of rows of A and rows of B (or of its panel)."""
    threads = _thread_count(threads)
    cdef int64_t m = a.shape[0], n = b.shape[0], words = a.shape[1]
    _check(b.shape[1] == words and words == (k + 63) // 64 and out.shape[0] == m and out.shape[1] == n,
           "gemm: shapes do not match")
    if m == 0 or n == 0:
        return
    panel = _auto_panel(b, m, path, panel, threads)
    cdef KernelCall call = _new_call(path, threads, m, n, words, k)
    call.a = &a[0, 0] if words else NULL
    call.b = &b[0, 0] if words else NULL
    call.panel = _panel_of(panel, n, words)
    call.dots = &out[0, 0]
    with nogil:
        _drive(&call)


def gemm_threshold(const uint64_t[:, ::1] a, const uint64_t[:, ::1] b, int32_t k,
                   const int32_t[::1] thresholds, const uint8_t[::1] flip, uint64_t[:, ::1] out,
                   int path, int threads, panel=None):
    """Dot products compared with per-column thresholds, written as packed bits (m x ceil(n/64))."""
    threads = _thread_count(threads)
    cdef int64_t m = a.shape[0], n = b.shape[0], words = a.shape[1]
    _check(b.shape[1] == words and words == (k + 63) // 64 and thresholds.shape[0] == n
           and flip.shape[0] == n and out.shape[0] == m and out.shape[1] == (n + 63) // 64,
           "gemm_threshold: shapes do not match")
    if m == 0 or n == 0:
        return
    panel = _auto_panel(b, m, path, panel, threads)
    cdef KernelCall call = _new_call(path, threads, m, n, words, k)
    call.a = &a[0, 0] if words else NULL
    call.b = &b[0, 0] if words else NULL
    call.panel = _panel_of(panel, n, words)
    scratch = _threshold_output(&call, &thresholds[0], &flip[0], &out[0, 0], out.shape[1])
    with nogil:
        _drive(&call)


cdef int _check_layout_of(const uint64_t[:, ::1] b, int64_t k, str name) except -1:
    """A layout of uint8 weights is made from B (n x ceil(k/64) words) of k bits."""
    _check(b.shape[1] == (k + 63) // 64 and k >= 0, f"{name}: k does not match the words of B")
    return 0


def make_u8_dwords(const uint64_t[:, ::1] b, int64_t k):
    """B (n x ceil(k/64) words, k bits) as signed bytes for the dword kernel of short uint8 rows (AVX-512 VNNI,
    AVX2 up to k = 256; xnor_make_u8_dwords: 4 taps of 16 channels per 64 bytes), 1-D int8."""
    _check_layout_of(b, k, "make_u8_dwords")
    dwords = aligned_zeros(max(xnor_u8_dwords_size(b.shape[0], k), 1), np.int8)
    cdef int8_t[::1] view = dwords
    if b.shape[0] and k:
        xnor_make_u8_dwords(&b[0, 0], b.shape[0], b.shape[1], k, &view[0])
    return dwords


cdef class U8Lookup:
    """make_u8_lut's layouts of uint8 weights B (n rows over k pixels), one per format asked for (by default
    those this CPU's paths run), made and held once: a call takes its path's, where it was made."""
    cdef readonly dict layouts  # format -> 1-D uint8, 64-byte aligned
    cdef readonly int64_t n, k
    cdef const uint8_t *data[3]  # by format; NULL where not made

    def __init__(self, const uint64_t[:, ::1] b, int64_t k, formats):
        cdef uint8_t[::1] view
        _check_layout_of(b, k, "make_u8_lut")
        self.n, self.k, self.layouts = b.shape[0], k, {}
        memset(self.data, 0, sizeof(self.data))
        for format in formats:
            _check(format in (XNOR_U8_LUT_TABLE16, XNOR_U8_LUT_TABLE64), f"make_u8_lut: unknown format {format}")
            self.layouts[format] = aligned_zeros(max(xnor_u8_lut_size(self.n, k), 1), np.uint8)
            view = self.layouts[format]
            if self.n and k:
                xnor_make_u8_lut(&b[0, 0], self.n, b.shape[1], k, format, &view[0])
                self.data[format] = &view[0]

    cdef const uint8_t *of(self, int path) noexcept nogil:
        """The layout a call on `path` runs by table lookup on, or NULL."""
        return self.data[xnor_u8_lut_format(path)]

    cdef int use(self, KernelCall *call, int64_t n, int64_t k) except -1:
        """Point a uint8 call of B (n x k) at its path's layout."""
        _check(n == self.n and k == self.k, "lut: made for other weights")
        call.u8_lut = self.of(call.path)
        return 0


def make_u8_lut(const uint64_t[:, ::1] b, int64_t k, formats=None):
    """B (n x ceil(k/64) words, k bits) as 4-bit table indices for uint8 rows by table lookup (xnor_make_u8_lut:
    per 16 rows and 16 pixels, 64 bytes, half a byte per weight), as a U8Lookup in `formats` (default
    U8_LUT_FORMATS, every one this CPU runs)."""
    return U8Lookup(b, k, U8_LUT_FORMATS if formats is None else formats)


cdef int _use_dwords(KernelCall *call, object dwords, int64_t n, int64_t k) except -1:
    """Point a uint8 call at make_u8_dwords' layout of B (checked against n and k), on the paths that use it."""
    if dwords is None or not xnor_u8_dwords_path(call.path, k) or n == 0 or k == 0:
        return 0
    cdef const int8_t[::1] view = dwords
    _check(view.shape[0] == xnor_u8_dwords_size(n, k), "dwords: length does not match B")
    call.u8_dwords = &view[0]
    call.u8_npad = (n + 15) // 16 * 16
    return 0


def gemm_uint8(const uint8_t[:, ::1] u, const uint64_t[:, ::1] b, int32_t[:, ::1] out, int path, int threads,
               dwords=None, U8Lookup lut=None):
    """out = exact dot products of uint8 rows of u (m x k) with the -1/+1 rows of B (n x ceil(k/64)); with
    `dwords` (make_u8_dwords of B) the AVX-512 and AVX2 paths run the dword kernel, with `lut` (make_u8_lut of
    B) the paths that run its format run by table lookup."""
    threads = _thread_count(threads)
    cdef int64_t m = u.shape[0], k = u.shape[1], n = b.shape[0], words = b.shape[1]
    _check(words == (k + 63) // 64 and 255 * k < 2 ** 31 and out.shape[0] == m and out.shape[1] == n,
           "gemm_uint8: shapes do not match")
    if m == 0 or n == 0:
        return
    cdef KernelCall call = _new_call(path, threads, m, n, words, <int32_t>k)
    call.u = &u[0, 0] if k else NULL
    call.b = &b[0, 0] if words else NULL
    call.dots = &out[0, 0]
    _use_dwords(&call, dwords, n, k)
    if lut is not None:
        lut.use(&call, n, k)
    with nogil:
        _drive(&call)


cdef bint _all_below(const int32_t *values, int64_t count, int64_t bound) noexcept nogil:
    """0 <= values[i] < bound for every i: a C loop (NumPy's min and max of a memoryview cost ~4 us a call)."""
    cdef int64_t i
    cdef bint inside = True
    for i in range(count):
        inside &= 0 <= values[i] < bound
    return inside


def gemm_uint8_threshold(const uint8_t[:, ::1] u, const uint64_t[:, ::1] b, const int32_t[::1] thresholds,
                         const uint8_t[::1] flip, uint64_t[:, ::1] out, int path, int threads, int64_t period=0,
                         dwords=None, thr_index=None, U8Lookup lut=None):
    """gemm_uint8 compared with per-column thresholds, written as packed bits (m x ceil(n/64)).

    period P > 0: `thresholds` holds P rows of n (flattened) and row i of u is compared with row i % P, as the
    im2col rows of a 'same'-padded first layer, whose thresholds vary with how many taps fall in the image.
    thr_index (P int32): row i is compared with thresholds row thr_index[i % P] instead (its distinct rows
    only: a 3x3 'same' conv has 9 kinds of position, not OH*OW)."""
    U8Gemm(b, u.shape[1], thresholds, flip, period, dwords, thr_index, lut)(u, out, path, threads)


cdef class U8Gemm:
    """gemm_uint8_threshold with its weights, thresholds (per column or per row position, with their index),
    flips and dword and lookup layouts checked and held once: a call pays only for its rows and output (the six memoryviews
    and checks cost ~2 us, a tenth of a batch-1 first conv)."""
    cdef object keep  # the arrays the pointers below point into
    cdef const uint64_t *b
    cdef const int32_t *thr
    cdef const uint8_t *fl
    cdef const int32_t *index
    cdef object dwords
    cdef U8Lookup lut
    cdef readonly int64_t n, k  # outputs, and bytes per row
    cdef int64_t words, period

    def __init__(self, const uint64_t[:, ::1] b, int64_t k, const int32_t[::1] thresholds, const uint8_t[::1] flip,
                 int64_t period=0, dwords=None, thr_index=None, U8Lookup lut=None):
        cdef int64_t n = b.shape[0], words = b.shape[1], rows_of_thr = period if period else 1
        cdef const int32_t[::1] index
        self.index = NULL
        if thr_index is not None:
            index = thr_index
            _check(period > 0 and index.shape[0] == period and thresholds.shape[0] % n == 0 and thresholds.shape[0] > 0,
                   "gemm_uint8_threshold: thr_index does not match the period")
            rows_of_thr = thresholds.shape[0] // n
            _check(_all_below(&index[0], period, rows_of_thr), "gemm_uint8_threshold: thr_index out of range")
            self.index = &index[0]
        _check(k >= 0 and words == (k + 63) // 64 and 255 * k < 2 ** 31 and period >= 0
               and thresholds.shape[0] == n * rows_of_thr and flip.shape[0] == n,
               "gemm_uint8_threshold: shapes do not match")
        if dwords is not None:
            _check(len(dwords) == xnor_u8_dwords_size(n, k), "dwords: length does not match B")
        _check(lut is None or (lut.n == n and lut.k == k), "lut: made for other weights")
        self.keep = (b, thresholds, flip, thr_index)
        self.b = &b[0, 0] if words and n else NULL
        self.thr = &thresholds[0] if n else NULL
        self.fl = &flip[0] if n else NULL
        self.dwords = dwords
        self.lut = lut
        self.n, self.k, self.words, self.period = n, k, words, period

    def __call__(self, const uint8_t[:, ::1] u, uint64_t[:, ::1] out, int path, int threads):
        """Rows u (m x k) into out (m x ceil(n/64)) on `path` with up to `threads` threads."""
        threads = _thread_count(threads)
        _check(u.shape[1] == self.k and out.shape[0] == u.shape[0] and out.shape[1] == (self.n + 63) // 64,
               "gemm_uint8_threshold: shapes do not match")
        if u.shape[0] == 0 or self.n == 0:
            return
        scratch = np.empty((threads, MT * NT), dtype=np.int32)
        cdef int32_t[:, ::1] view = scratch
        self.run(&u[0, 0] if self.k else NULL, u.shape[0], &out[0, 0], &view[0, 0], path, threads)

    cdef int run(self, const uint8_t *u, int64_t m, uint64_t *out, int32_t *scratch, int path,
                 int threads) except -1:
        """__call__ on pointers: m rows of k bytes, out m x ceil(n/64) words, scratch threads x MT x NT int32 (tiles
        that compare a block of dots: paths without the dword kernel)."""
        if m == 0 or self.n == 0:
            return 0
        cdef KernelCall call = _new_call(path, threads, m, self.n, self.words, <int32_t>self.k)
        call.u = u
        call.b = self.b
        _threshold_output(&call, self.thr, self.fl, out, (self.n + 63) // 64, False)
        call.scratch = scratch
        call.thr_period = self.period
        call.thr_index = self.index
        _use_dwords(&call, self.dwords, self.n, self.k)
        if self.lut is not None:
            self.lut.use(&call, self.n, self.k)
        with nogil:
            _drive(&call)
        return 0


cdef class InputConv:
    """A network's first convolution on uint8 images (N, C, H, W) into packed bits (N, OH, OW, words), held once:
    its im2col geometry and its U8Gemm over weights packed along the whole (KH, KW, C) patch. Bit for bit
    im2col_uint8 then gemm_uint8_threshold; ConvNet runs it without a Python call."""
    cdef U8Gemm gemm
    cdef int64_t c, h, w, kh, kw, sh, sw, pt, pl, oh, ow, hp, wp

    def __init__(self, U8Gemm gemm, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh,
                 int64_t sw, int64_t pt, int64_t pl, int64_t oh, int64_t ow):
        _check(gemm.k == kh * kw * c and c > 0 and h > 0 and w > 0 and kh > 0 and kw > 0 and sh > 0 and sw > 0
               and pt >= 0 and pl >= 0 and oh > 0 and ow > 0, "InputConv: the geometry does not match the weights")
        self.gemm = gemm
        self.c, self.h, self.w, self.kh, self.kw, self.sh, self.sw = c, h, w, kh, kw, sh, sw
        self.pt, self.pl, self.oh, self.ow = pt, pl, oh, ow
        # the padded channels-last image holds every window (as im2col_uint8)
        self.hp = max((oh - 1) * sh + kh, pt + h)
        self.wp = max((ow - 1) * sw + kw, pl + w)

    @property
    def input_shape(self):
        """(C, H, W) of one image."""
        return self.c, self.h, self.w

    @property
    def output_shape(self):
        """(OH, OW, words) of one image's output."""
        return self.oh, self.ow, (self.gemm.n + 63) // 64

    cdef object buffers(self, int64_t nb, int threads):
        """New (cols, pad, scratch) arrays for a call of nb images."""
        return (np.empty((nb * self.oh * self.ow, self.gemm.k), dtype=np.uint8),
                np.empty(self.hp * self.wp * self.c + 16, dtype=np.uint8),  # + xnor_im2col_u8's 16-byte copies
                np.empty((threads, MT * NT), dtype=np.int32))

    cdef int run(self, const uint8_t *x, int64_t nb, uint64_t *out, object buffers, int path,
                 int threads) except -1:
        """nb images at x into out (nb x OH x OW x words), with buffers() of at least nb images and threads."""
        cdef uint8_t[:, ::1] cols = buffers[0]
        cdef uint8_t[::1] pad = buffers[1]
        cdef int32_t[:, ::1] scratch = buffers[2]
        if nb == 0:
            return 0
        with nogil:
            xnor_im2col_u8(x, nb, self.c, self.h, self.w, self.kh, self.kw, self.sh, self.sw, self.pt, self.pl,
                           self.oh, self.ow, &pad[0], self.hp, self.wp, &cols[0, 0])
        return self.gemm.run(&cols[0, 0], nb * self.oh * self.ow, out, &scratch[0, 0], path, threads)

    def __call__(self, const uint8_t[:, :, :, ::1] x, uint64_t[:, :, :, ::1] out, int path, int threads):
        """Images x (N, C, H, W) into out (N, OH, OW, words)."""
        threads = _thread_count(threads)
        _check(x.shape[1] == self.c and x.shape[2] == self.h and x.shape[3] == self.w and out.shape[0] == x.shape[0]
               and (out.shape[1], out.shape[2], out.shape[3]) == self.output_shape, "InputConv: shapes do not match")
        if x.shape[0]:
            self.run(&x[0, 0, 0, 0], x.shape[0], &out[0, 0, 0, 0], self.buffers(x.shape[0], threads), path, threads)


cdef class Conv2d:
    """A binary convolution with its weights (and their panel), thresholds and geometry checked and held once: a
    call pays only for its input and output (conv2d's eight memoryviews and a scratch block cost ~2 us a call; a
    batch-1 VGG-small conv takes 60-130 us). A call runs the GEMM tiles over the patches of packed words:
    gathered per tile (im2col), or, at stride 1 on the paths that can, read in place from the input with a zero
    border. Its output is int32 (N, OH, OW, O) without thresholds, else packed uint64 (N, OH, OW, ceil(O/64))."""
    cdef object weights, panel, thresholds, flip  # what the pointers below point into
    cdef const uint64_t *b
    cdef const uint64_t *panel_data
    cdef const int32_t *thr
    cdef const uint8_t *fl
    cdef int64_t o, kh, kw, cw, sh, sw, pt, pl, row_words
    cdef int32_t k_total

    def __init__(self, const uint64_t[:, :, :, ::1] weights, int32_t c, int64_t stride_h, int64_t stride_w,
                 int64_t pad_top, int64_t pad_left, thresholds=None, flip=None, panel=None):
        cdef int64_t o = weights.shape[0], kh = weights.shape[1], kw = weights.shape[2], cw = weights.shape[3]
        _check(cw == (c + 63) // 64 and c >= 0 and stride_h > 0 and stride_w > 0 and pad_top >= 0 and pad_left >= 0
               and kh > 0 and kw > 0 and kh * kw * c < 2 ** 31, "conv2d: shapes do not match")
        cdef const int32_t[::1] thr_view
        cdef const uint8_t[::1] flip_view
        self.o, self.kh, self.kw, self.cw = o, kh, kw, cw
        self.sh, self.sw, self.pt, self.pl = stride_h, stride_w, pad_top, pad_left
        self.row_words = kh * kw * cw
        self.k_total = <int32_t>(kh * kw * c)
        self.weights = weights
        self.b = &weights[0, 0, 0, 0] if self.row_words and o else NULL
        if thresholds is not None:
            _check(flip is not None and len(thresholds) == o and len(flip) == o,
                   "conv2d: thresholds or output words do not match")
            thr_view, flip_view = thresholds, flip
            self.thresholds, self.flip = thr_view, flip_view
            self.thr = &thr_view[0] if o else NULL
            self.fl = &flip_view[0] if o else NULL
        self.panel = panel
        self.panel_data = _panel_of(panel, o, self.row_words) if self.row_words else NULL

    def __call__(self, x, out, int path, int threads):
        """Convolve x (N, H, W, cw) into out on `path` with up to `threads` threads; the weights' panel is used
        on the paths that have a panel kernel (made now from 32 output pixels when none was given)."""
        self.run(x, out, path, threads)

    cdef bint needs_border(self, int64_t h, int64_t w, int64_t oh, int64_t ow):
        """Whether an input (h, w) with output (oh, ow) needs a bordered copy for its windows to be read in place."""
        return not (self.pt == 0 and self.pl == 0 and oh - 1 + self.kh <= h and ow - 1 + self.kw <= w)

    cdef object bordered_buffer(self, int64_t nb, int64_t h, int64_t w, int64_t oh, int64_t ow):
        """A new array for run's bordered copy of an input (nb, h, w) with output (oh, ow), or None where the
        input needs no border."""
        if not self.needs_border(h, w, oh, ow):
            return None
        return np.empty((nb, oh - 1 + self.kh, ow - 1 + self.kw, self.cw), dtype=np.uint64)

    cdef int run(self, const uint64_t[:, :, :, ::1] x, object out, int path, int threads,
                 object bordered=None) except -1:
        """__call__ for BitBody, which calls it without a Python call per layer; `bordered`, from
        bordered_buffer for this input, saves allocating the border copy."""
        threads = _thread_count(threads)
        cdef int64_t nb = x.shape[0], cw = self.cw, o = self.o, kh = self.kh, kw = self.kw, row_words = self.row_words
        cdef int64_t oh = out.shape[1], ow = out.shape[2], m = nb * oh * ow
        _check(x.shape[3] == cw and out.shape[0] == nb, "conv2d: shapes do not match")
        cdef int32_t[:, :, :, ::1] dense_out
        cdef uint64_t[:, :, :, ::1] bits_out
        if self.thresholds is None:
            dense_out = out
            _check(dense_out.shape[3] == o, "conv2d: output channels do not match")
        else:
            bits_out = out
            _check(bits_out.shape[3] == (o + 63) // 64, "conv2d: thresholds or output words do not match")
        if m == 0 or o == 0:
            return 0
        panel = self.panel if path == XNOR_AVX512 or path == XNOR_AVX2 else None
        if row_words and panel is None:
            panel = _auto_panel(np.asarray(self.weights).reshape(o, row_words), m, path, None, threads)
        cdef Im2col conv
        memset(&conv, 0, sizeof(conv))
        cdef uint64_t[:, :, :, ::1] bordered_view
        cdef int64_t ph = oh - 1 + kh, pw = ow - 1 + kw
        if self.sh == 1 and self.sw == 1 and row_words and panel is not None and xnor_panel_segments(path, row_words):
            # every window inside one array: the input itself when it needs no border, else a bordered copy
            if not self.needs_border(x.shape[1], x.shape[2], oh, ow):
                conv.bordered = &x[0, 0, 0, 0]
                conv.ph = x.shape[1]
                conv.pw = x.shape[2]
            else:
                if bordered is None:
                    bordered = np.empty((nb, ph, pw, cw), dtype=np.uint64)
                bordered_view = bordered
                _check(bordered_view.shape[0] == nb and bordered_view.shape[1] == ph and bordered_view.shape[2] == pw
                       and bordered_view.shape[3] == cw, "conv2d: the bordered buffer does not match")
                with nogil:
                    xnor_border(&x[0, 0, 0, 0], nb, x.shape[1], x.shape[2], cw, self.pt, self.pl, ph, pw,
                                &bordered_view[0, 0, 0, 0])
                conv.bordered = &bordered_view[0, 0, 0, 0]
                conv.ph = ph
                conv.pw = pw
        cdef uint64_t[:, ::1] patch_view
        if conv.bordered == NULL:  # im2col: windows reaching outside the input read zero words (+1), any OH/OW
            patches = np.empty((threads, max(MT * row_words, 1)), dtype=np.uint64)
            patch_view = patches
            conv.patches = &patch_view[0, 0]
            conv.patch_stride = patch_view.shape[1]
        conv.x = &x[0, 0, 0, 0] if x.size else NULL
        conv.h = x.shape[1]
        conv.w = x.shape[2]
        conv.cw = cw
        conv.kh = kh
        conv.kw = kw
        conv.sh = self.sh
        conv.sw = self.sw
        conv.pt = self.pt
        conv.pl = self.pl
        conv.oh = oh
        conv.ow = ow
        cdef KernelCall call = _new_call(path, threads, m, o, row_words, self.k_total)
        call.conv = &conv
        call.b = self.b
        call.panel = (self.panel_data if panel is self.panel else _panel_of(panel, o, row_words)) if row_words else NULL
        if self.thresholds is None:
            call.dots = &dense_out[0, 0, 0, 0]
        else:  # gathered tiles compare a block of dots; in-place ones compare in registers
            scratch = _threshold_output(&call, self.thr, self.fl, &bits_out[0, 0, 0, 0], bits_out.shape[3],
                                        conv.bordered == NULL)
        with nogil:
            _drive(&call)
        return 0


cdef class BitBody:
    """A network's binary convolutions and 2 x 2 poolings on packed bits (its body, between the first layer and
    the dense tail) run by one compiled call, bit for bit what the layers' own calls give: each layer's Python
    call costs 1.3 - 3 us at batch 1, a third of a small CNN's time.

    ops: in order, a Conv2d with thresholds (bits out) or a pooling's OR mask (uint64, one per input word: 1 bits
    take the OR, the min of +-1); shapes: each op's output (OH, OW, words); (h, w, cw): the body's input."""
    cdef list ops, shapes
    cdef int64_t h, w, cw

    def __init__(self, list ops, list shapes, int64_t h, int64_t w, int64_t cw):
        _check(len(ops) == len(shapes) and len(ops) > 0 and h > 0 and w > 0 and cw > 0, "BitBody: no ops")
        cdef Conv2d conv
        cdef const uint64_t[::1] mask
        cdef int64_t oh, ow, words
        self.h, self.w, self.cw = h, w, cw
        for op, shape in zip(ops, shapes):
            oh, ow, words = shape
            if isinstance(op, Conv2d):
                conv = op
                _check(conv.thresholds is not None and conv.cw == cw and words == (conv.o + 63) // 64
                       and 0 < oh <= h + conv.kh and 0 < ow <= w + conv.kw, "BitBody: a conv does not fit its input")
            else:
                mask = op
                _check(mask.shape[0] == cw and words == cw and oh == h // 2 and ow == w // 2 and oh > 0 and ow > 0,
                       "BitBody: a pooling does not fit its input")
            h, w, cw = oh, ow, words
        self.ops, self.shapes = list(ops), [tuple(shape) for shape in shapes]

    @property
    def input_shape(self):
        """(H, W, words) of one image's input."""
        return self.h, self.w, self.cw

    @property
    def output_shape(self):
        """(OH, OW, words) of one image's output."""
        return self.shapes[len(self.shapes) - 1]

    cdef list buffers(self, int64_t nb):
        """New arrays for a call of nb images: per op its output and, for a conv that needs one, its bordered
        input copy (or None)."""
        cdef list arrays = []
        cdef int64_t h = self.h, w = self.w
        for op, shape in zip(self.ops, self.shapes):
            border = (<Conv2d>op).bordered_buffer(nb, h, w, shape[0], shape[1]) if isinstance(op, Conv2d) else None
            arrays.append((np.empty((nb, *shape), dtype=np.uint64), border))
            h, w = shape[0], shape[1]
        return arrays

    cdef object run(self, const uint64_t[:, :, :, ::1] x, list buffers, int path, int threads):
        """Input bits x (N, h, w, cw) through the ops into buffers() of N images, or, with buffers None, into
        arrays made as it goes (each freed once the next op has read it); returns the last output."""
        cdef int64_t nb = x.shape[0], h = self.h, w = self.w, cw = self.cw
        cdef const uint64_t[:, :, :, ::1] current = x
        cdef uint64_t[:, :, :, ::1] view
        cdef const uint64_t[::1] mask
        cdef Py_ssize_t index
        out = border = None
        for index in range(len(self.ops)):
            op, shape = self.ops[index], self.shapes[index]
            if buffers is None:
                out = np.empty((nb, *shape), dtype=np.uint64)
            else:
                out, border = buffers[index]
            if isinstance(op, Conv2d):
                (<Conv2d>op).run(current, out, path, threads, border)
            elif nb:
                view, mask = out, op
                with nogil:
                    xnor_pool2x2(&current[0, 0, 0, 0], nb, h, w, cw, &mask[0], &view[0, 0, 0, 0])
            current = out
            h, w, cw = shape
        return out

    def __call__(self, const uint64_t[:, :, :, ::1] x, int path, int threads):
        """The body's output bits (N, OH, OW, words) for input bits x (N, h, w, cw)."""
        _check(x.shape[1] == self.h and x.shape[2] == self.w and x.shape[3] == self.cw,
               "BitBody: input shape does not match")
        return self.run(x, None, path, threads)


DEF KEEP_BYTES = 4 << 20  # KeptBuffers keeps the buffers of calls up to this size


cdef class KeptBuffers:
    """The buffers of a compiled network's last call, kept for its next call of the same size: a batch-1 call then
    allocates nothing. A call made while another runs without the GIL gets new ones (so two threads never share
    them), and so does a call whose buffers exceed KEEP_BYTES (its allocations are small beside its work, and
    keeping them would hold that memory after it)."""
    cdef object value
    cdef int64_t rows
    cdef int threads
    cdef bint busy

    cdef bint claim(self, int64_t nbytes):
        """Whether this call may use and keep the buffers; if so it calls release() when done."""
        if self.busy or nbytes > KEEP_BYTES:
            return False
        self.busy = True
        return True

    cdef object get(self, int64_t rows, int threads):
        """The kept buffers made for that many rows (or images) and threads, or None."""
        return self.value if self.rows == rows and self.threads == threads else None

    cdef int keep(self, int64_t rows, int threads, object value) except -1:
        self.rows, self.threads, self.value = rows, threads, value
        return 0

    cdef int release(self) except -1:
        self.busy = False
        return 0


cdef class ConvNet:
    """A whole convolutional network run by one compiled call: its uint8 first conv (InputConv), its body
    (BitBody) and its dense tail (a DenseChain on packed rows), bit for bit what their own calls give. Its
    buffers are KeptBuffers: a batch-1 call allocates nothing but its output."""
    cdef InputConv first
    cdef BitBody body
    cdef DenseChain tail
    cdef KeptBuffers kept  # (first's, first's output, body's) for (batch, threads)
    cdef int64_t image_bytes  # of those buffers, per image

    def __init__(self, InputConv first, BitBody body, DenseChain tail):
        oh, ow, words = body.output_shape
        _check(tuple(first.output_shape) == tuple(body.input_shape) and tail.packed_input
               and tail.layers[0].words == oh * ow * words, "ConvNet: the parts do not fit one another")
        self.first, self.body, self.tail = first, body, tail
        self.kept = KeptBuffers()
        cols = first.buffers(1, 1)[0]
        self.image_bytes = cols.nbytes + 8 * math.prod(first.output_shape) + sum(
            out.nbytes + (0 if border is None else border.nbytes) for out, border in body.buffers(1))

    @property
    def out_features(self):
        return self.tail.out_features

    def __call__(self, const uint8_t[:, :, :, ::1] x, float[:, ::1] out, int path, int threads):
        """Logits out (N, classes) float32 for uint8 images x (N, C, H, W)."""
        threads = _thread_count(threads)
        _check(x.shape[1] == self.first.c and x.shape[2] == self.first.h and x.shape[3] == self.first.w
               and out.shape[0] == x.shape[0] and out.shape[1] == self.tail.out_features,
               "ConvNet: shapes do not match")
        cdef int64_t nb = x.shape[0]
        cdef uint64_t[:, :, :, ::1] bits
        cdef uint64_t[:, :, :, ::1] last
        if nb == 0:
            return
        keep = self.kept.claim(nb * self.image_bytes)
        try:
            buffers = self.kept.get(nb, threads) if keep else None
            if buffers is None:  # a call that keeps nothing makes the body's buffers as it goes (each freed once read)
                buffers = (self.first.buffers(nb, threads), np.empty((nb, *self.first.output_shape), np.uint64),
                           self.body.buffers(nb) if keep else None)
                if keep:
                    self.kept.keep(nb, threads, buffers)
            first_buffers, first_out, body_buffers = buffers
            bits = first_out
            buffers = first_out = None
            self.first.run(&x[0, 0, 0, 0], nb, &bits[0, 0, 0, 0], first_buffers, path, threads)
            first_buffers = None
            last = self.body.run(bits, body_buffers, path, threads)
            self.tail._call(NULL, &last[0, 0, 0, 0], nb, out, path, threads)
        finally:
            if keep:
                self.kept.release()


def conv2d(x, weights, int32_t c, int64_t stride_h, int64_t stride_w, int64_t pad_top, int64_t pad_left,
           out, thresholds, flip, int path, int threads, panel=None):
    """One binary convolution call (Conv2d, made and run once): out is int32 (N, OH, OW, O) when thresholds is
    None, else packed uint64 (N, OH, OW, ceil(O/64))."""
    Conv2d(weights, c, stride_h, stride_w, pad_top, pad_left, thresholds, flip, panel)(x, out, path, threads)


def pool2x2(const uint64_t[:, :, :, ::1] x, const uint64_t[::1] or_mask, uint64_t[:, :, :, ::1] out):
    """2x2 stride-2 pooling of packed bits: AND of the four words (max of +-1), OR (min) where or_mask is 1."""
    _check(out.shape[0] == x.shape[0] and out.shape[1] == x.shape[1] // 2 and out.shape[2] == x.shape[2] // 2
           and out.shape[3] == x.shape[3] and or_mask.shape[0] == x.shape[3], "pool2x2: output shape does not match")
    if out.size == 0:
        return
    with nogil:
        xnor_pool2x2(&x[0, 0, 0, 0], x.shape[0], x.shape[1], x.shape[2], x.shape[3], &or_mask[0], &out[0, 0, 0, 0])


def im2col_uint8(const uint8_t[:, :, :, ::1] x, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                 int64_t pt, int64_t pl, int64_t oh, int64_t ow, uint8_t[:, ::1] out):
    """Patches of NCHW uint8 images as rows (N*OH*OW, KH*KW*C), each in (KH, KW, C) order like OHWI weights;
    taps outside the image (padding) are 0, so they add nothing to an exact integer dot product."""
    cdef int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    _check(out.shape[0] == n * oh * ow and out.shape[1] == kh * kw * c and kh > 0 and kw > 0 and sh > 0 and sw > 0
           and pt >= 0 and pl >= 0, "im2col_uint8: output shape does not match")
    if out.shape[0] == 0 or out.shape[1] == 0:
        return
    # the padded channels-last image holds every window: rows up to (oh - 1) * sh + kh, and the image itself
    cdef int64_t hp = max((oh - 1) * sh + kh, pt + h), wp = max((ow - 1) * sw + kw, pl + w)
    pad = np.empty(hp * wp * c + 16, dtype=np.uint8)  # 16 bytes past the image: xnor_im2col_u8's 16-byte copies
    cdef uint8_t[::1] pad_view = pad
    with nogil:
        xnor_im2col_u8(&x[0, 0, 0, 0], n, c, h, w, kh, kw, sh, sw, pt, pl, oh, ow, &pad_view[0], hp, wp,
                       &out[0, 0])


# ---------------------------------------------------------------------------------------------- dense chains

DEF CHAIN_MAX = 32  # layers of one DenseChain


cdef struct ChainLayer:
    # One layer of a DenseChain: weights B (n x words, and its panel or NULL) over k bits (or uint8 values),
    # then either thresholds + flip into packed bits, or (the last layer) float32 dot * scale + shift.
    int64_t n
    int64_t words
    int32_t k
    const uint64_t *b
    const uint64_t *panel
    const int32_t *thresholds
    const uint8_t *flip
    const double *scale
    const double *shift
    const int8_t *u8_dwords  # a uint8 first layer: make_u8_dwords' layout of B, or NULL
    int64_t u8_npad
    const uint8_t *u8_luts[3]  # and make_u8_lut's layouts by format (U8Lookup.data)


cdef class DenseChain:
    """A stack of dense layers run by one call without the GIL: a uint8 first layer (thresholds into bits) or
    none (the chain then starts on packed rows: a network's dense tail after its convolutions), binary
    layers (thresholds into bits) and a last binary layer whose dots become float32
    ``dot * scale + shift`` (float64 arithmetic rounded once to float32, as NumPy's int32 * float32 + float32
    then ``astype(float32)``). The engine builds one at load for a network of that shape (the binary MLP), so
    a batch costs one Python call instead of one per layer. Its buffers are KeptBuffers."""

    cdef ChainLayer layers[CHAIN_MAX]
    cdef int count
    cdef bint packed_input    # no uint8 first layer: run_bits takes packed rows
    cdef object keep          # the arrays the layers point into
    cdef KeptBuffers kept     # ([bits arrays], dots, scratch) for (m, threads)

    def __init__(self, first, middle, last):
        """first: (w_bits (N, words), k, thresholds int32 (N,), flip uint8 (N,), make_u8_dwords' layout or None,
        make_u8_lut's layout or None) over uint8 rows of k values, or None; middle: a list of (w_bits, k, thresholds, flip, panel or None); last: (w_bits, k, scale
        float64 (N,), shift float64 (N,), panel or None). Shapes are checked here; the caller has checked the
        values."""
        cdef const uint64_t[:, ::1] w
        cdef const int32_t[::1] thr
        cdef const uint8_t[::1] fl
        cdef const double[::1] sc
        cdef const double[::1] sh
        cdef const int8_t[::1] dw
        cdef U8Lookup lut
        cdef ChainLayer *layer
        cdef int64_t width
        self.packed_input = first is None
        specs = ([] if first is None else [("u8",) + tuple(first)]) + [("bits",) + tuple(s) for s in middle]
        specs.append(("last",) + tuple(last))
        _check(len(specs) <= CHAIN_MAX, "DenseChain: too many layers")
        self.keep = []
        self.count = 0
        self.kept = KeptBuffers()
        width = -1
        for spec in specs:
            layer = &self.layers[self.count]
            memset(layer, 0, sizeof(ChainLayer))
            w = spec[1]
            layer.n = w.shape[0]
            layer.words = w.shape[1]
            layer.k = <int32_t>spec[2]
            _check(layer.n > 0 and layer.words == (layer.k + 63) // 64 and layer.k > 0,
                   "DenseChain: weights do not match k")
            _check(width < 0 or width == layer.k, "DenseChain: a layer's k is not the previous layer's width")
            if spec[0] == "u8":
                _check(255 * <int64_t>layer.k < 2 ** 31, "DenseChain: 255 * k must fit in int32")
            layer.b = &w[0, 0]
            self.keep.append(w)
            if spec[0] == "last":
                sc = spec[3]
                sh = spec[4]
                _check(sc.shape[0] == layer.n and sh.shape[0] == layer.n, "DenseChain: scale/shift length")
                layer.scale = &sc[0]
                layer.shift = &sh[0]
                self.keep += [sc, sh]
            else:
                thr = spec[3]
                fl = spec[4]
                _check(thr.shape[0] == layer.n and fl.shape[0] == layer.n, "DenseChain: thresholds/flip length")
                layer.thresholds = &thr[0]
                layer.flip = &fl[0]
                self.keep += [thr, fl]
            if spec[0] == "u8" and len(spec) > 5 and spec[5] is not None:
                dw = spec[5]
                _check(dw.shape[0] == xnor_u8_dwords_size(layer.n, layer.k), "DenseChain: dwords length")
                layer.u8_dwords = &dw[0]
                layer.u8_npad = (layer.n + 15) // 16 * 16
                self.keep.append(spec[5])
            if spec[0] == "u8" and len(spec) > 6 and spec[6] is not None:
                lut = spec[6]
                _check(lut.n == layer.n and lut.k == layer.k, "DenseChain: lut made for other weights")
                for f in range(3):
                    layer.u8_luts[f] = lut.data[f]
                self.keep.append(lut)
            panel = spec[5] if spec[0] != "u8" else None
            layer.panel = _panel_of(panel, layer.n, layer.words)
            self.keep.append(panel)
            width = layer.n
            self.count += 1

    @property
    def in_features(self):
        return self.layers[0].k

    @property
    def out_features(self):
        return self.layers[self.count - 1].n

    cdef int64_t _row_bytes(self):
        """Bytes of a call's buffers per row: every layer's output but the logits."""
        cdef int64_t total = 4 * self.layers[self.count - 1].n
        cdef int i
        for i in range(self.count - 1):
            total += 8 * ((self.layers[i].n + 63) // 64)
        return total

    cdef object _buffers(self, int64_t m, int threads):
        """New ([bits arrays], dots, scratch) for m rows and `threads`."""
        bits = [np.empty((m, (self.layers[i].n + 63) // 64), dtype=np.uint64) for i in range(self.count - 1)]
        dots = np.empty((m, self.layers[self.count - 1].n), dtype=np.int32)
        scratch = np.empty((threads, MT * NT), dtype=np.int32)
        return (bits, dots, scratch)

    def run(self, const uint8_t[:, ::1] u, float[:, ::1] out, int path, int threads):
        """out (M, N_last) float32 from uint8 rows u (M, k of the first layer)."""
        _check(not self.packed_input, "DenseChain.run: this chain starts on packed rows (run_bits)")
        _check(u.shape[1] == self.layers[0].k and out.shape[0] == u.shape[0]
               and out.shape[1] == self.layers[self.count - 1].n, "DenseChain.run: shapes do not match")
        if u.shape[0]:
            self._call(&u[0, 0], NULL, u.shape[0], out, path, threads)

    def run_bits(self, const uint64_t[:, ::1] a, float[:, ::1] out, int path, int threads):
        """out (M, N_last) float32 from packed rows a (M, words of the first layer)."""
        _check(self.packed_input, "DenseChain.run_bits: this chain starts with a uint8 layer (run)")
        _check(a.shape[1] == self.layers[0].words and out.shape[0] == a.shape[0]
               and out.shape[1] == self.layers[self.count - 1].n, "DenseChain.run_bits: shapes do not match")
        if a.shape[0]:
            self._call(NULL, &a[0, 0], a.shape[0], out, path, threads)

    cdef _call(self, const uint8_t *u, const uint64_t *a, int64_t m, float[:, ::1] out, int path, int threads):
        threads = _thread_count(threads)
        cdef list bits
        cdef int32_t[:, ::1] dots
        cdef int32_t[:, ::1] scratch
        cdef uint64_t *pointers[CHAIN_MAX]
        cdef uint64_t[:, ::1] view
        cdef int i
        keep = self.kept.claim(m * self._row_bytes() + threads * MT * NT * 4)
        try:
            buffers = self.kept.get(m, threads) if keep else None
            if buffers is None:
                buffers = self._buffers(m, threads)
                if keep:
                    self.kept.keep(m, threads, buffers)
            bits, dots, scratch = buffers
            for i in range(self.count - 1):
                view = bits[i]
                pointers[i] = &view[0, 0]
            with nogil:
                self._run(u, a, m, pointers, &dots[0, 0], &scratch[0, 0], &out[0, 0], path, threads)
        finally:
            if keep:
                self.kept.release()

    cdef void _run(self, const uint8_t *u, const uint64_t *a, int64_t m, uint64_t **bits, int32_t *dots,
                   int32_t *scratch, float *out, int path, int threads) noexcept nogil:
        cdef KernelCall call
        cdef const ChainLayer *layer
        cdef int i
        cdef int64_t r, j, n
        cdef double d
        for i in range(self.count):
            layer = &self.layers[i]
            call = _new_call(path, threads, m, layer.n, layer.words, layer.k)
            if i == 0 and u != NULL:
                call.u = u
                if layer.u8_dwords != NULL and xnor_u8_dwords_path(path, layer.k):
                    call.u8_dwords = layer.u8_dwords
                    call.u8_npad = layer.u8_npad
                call.u8_lut = layer.u8_luts[xnor_u8_lut_format(path)]
            elif i == 0:
                call.a = a
            else:
                call.a = bits[i - 1]
            call.b = layer.b
            call.panel = layer.panel if path == XNOR_AVX512 or path == XNOR_AVX2 else NULL
            if i < self.count - 1:
                call.thresholds = layer.thresholds
                call.flip = layer.flip
                call.bits = bits[i]
                call.bit_words = (layer.n + 63) // 64
                call.scratch = scratch
            else:
                call.dots = dots
            _drive(&call)
        layer = &self.layers[self.count - 1]
        n = layer.n
        for r in range(m):
            for j in range(n):
                d = <double>dots[r * n + j] * layer.scale[j]
                out[r * n + j] = <float>(d + layer.shift[j])
