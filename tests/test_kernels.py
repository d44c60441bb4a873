"""XNOR kernels against a plain NumPy -1/+1 reference, on awkward shapes, every SIMD path and 1/2 threads."""

import numpy as np
import pytest

from workbench.deploy import kernels

BACKENDS = kernels.available_backends()
KS = [1, 63, 64, 65, 784, 4097]


@pytest.fixture(params=BACKENDS)
def simd(request):
    """Force each SIMD path this CPU supports in turn, and restore the automatic choice afterwards."""
    kernels.set_backend(request.param)
    yield request.param
    kernels.set_backend("auto")


def signs(rng, *shape):
    return rng.choice(np.array([-1, 1], dtype=np.int8), size=shape)


def reference_conv(x, w, stride, pads):
    """x: (N, H, W, C) of -1/+1, w: (O, KH, KW, C); padding with +1; int64 (N, OH, OW, O)."""
    top, bottom, left, right = pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=1).astype(np.int64)
    n, h, wd, c = xp.shape
    o, kh, kw, _ = w.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, oh, ow, o), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride, :]
            out += (patch.astype(np.float64) @ w[:, i, j, :].T.astype(np.float64)).astype(np.int64)  # exact
    return out


def reference_threshold(dots, thresholds, flip):
    """-1/+1 after comparing with per-channel thresholds (last axis)."""
    plus = np.where(flip, dots <= thresholds, dots >= thresholds)
    return np.where(plus, 1, -1).astype(np.int8)


# ---------------------------------------------------------------------------------------------- packing


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8, np.int16, np.int32, np.int64])
def test_pack_unpack_round_trip(simd, k, dtype):
    rng = np.random.default_rng(k)
    x = (rng.standard_normal((3, 2, k)) * 3).astype(dtype)
    x[0, 0, : k // 2] = 0  # zeros pack as +1
    bits = kernels.pack_signs(x)
    assert bits.dtype == np.uint64 and bits.shape == (3, 2, (k + 63) // 64)
    expected = np.where(x < 0, -1, 1).astype(np.int8)
    np.testing.assert_array_equal(kernels.unpack_signs(bits, k), expected)
    # padding bits of the last word stay 0
    if k % 64:
        assert not (bits[..., -1] >> np.uint64(k % 64)).any()


def test_pack_bit_order_and_signed_zero(simd):
    x = np.ones(130, dtype=np.float32)
    x[[0, 5, 64, 129]] = -2.0
    x[7] = -0.0  # sign(0) = +1, also for negative zero
    bits = kernels.pack_signs(x)
    assert bits.tolist() == [(1 << 0) | (1 << 5), 1 << 0, 1 << 1]


def test_pack_tiny_negative_double_is_negative(simd):
    bits = kernels.pack_signs(np.array([-1e-300, 1e-300, 0.0]))
    assert bits.tolist() == [1]


def test_pack_other_dtypes():
    np.testing.assert_array_equal(kernels.pack_signs(np.array([[1, 0, 3]], dtype=np.uint8)), [[0]])
    np.testing.assert_array_equal(kernels.pack_signs(np.array([True, False])), [0])
    np.testing.assert_array_equal(kernels.pack_signs(np.array([-1.0, 2.0], dtype=np.float16)), [1])
    np.testing.assert_array_equal(kernels.pack_signs([[-3, 4], [5, -6]]), [[1], [2]])
    assert kernels.pack_signs(np.zeros((0, 5), np.float32)).shape == (0, 1)
    assert kernels.pack_signs(np.zeros((3, 0), np.float32)).shape == (3, 0)
    assert kernels.unpack_signs(np.zeros((3, 0), np.uint64), 0).shape == (3, 0)
    # strided input is copied, not misread
    x = np.array([[-1.0, 1.0], [1.0, -1.0]], dtype=np.float32)
    np.testing.assert_array_equal(kernels.pack_signs(x.T), [[1], [2]])


def test_pack_rejects_nan_and_bad_input(simd):
    x = np.ones(100, dtype=np.float32)
    x[70] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        kernels.pack_signs(x)
    with pytest.raises(ValueError, match="NaN"):
        kernels.pack_signs(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="complex128"):
        kernels.pack_signs(np.ones(3, dtype=complex))
    with pytest.raises(ValueError, match="scalar"):
        kernels.pack_signs(np.float32(1.0))


def test_unpack_rejects_bad_input():
    with pytest.raises(ValueError, match="2 words.*got 1"):
        kernels.unpack_signs(np.zeros(1, np.uint64), 65)
    with pytest.raises(ValueError, match="uint64.*int64"):
        kernels.unpack_signs(np.zeros(1, np.int64), 3)


# ---------------------------------------------------------------------------------------------- GEMM


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("m, n", [(1, 1), (5, 3), (9, 70), (40, 13), (67, 260)])
def test_gemm_matches_reference(simd, k, m, n):
    rng = np.random.default_rng(1000 * k + m)
    a, b = signs(rng, m, k), signs(rng, n, k)
    expected = a.astype(np.int64) @ b.T.astype(np.int64)
    for threads in (1, 2):
        got = kernels.xnor_gemm(kernels.pack_signs(a), kernels.pack_signs(b), k, threads=threads)
        assert got.dtype == np.int32 and got.shape == (m, n)
        np.testing.assert_array_equal(got, expected)


def test_gemm_empty_batch_and_zero_k(simd):
    b = kernels.pack_signs(np.ones((4, 65), np.float32))
    assert kernels.xnor_gemm(np.zeros((0, 2), np.uint64), b, 65).shape == (0, 4)
    assert kernels.xnor_gemm_threshold(
        np.zeros((0, 2), np.uint64), b, 65, np.zeros(4, np.int32), np.zeros(4, bool)
    ).shape == (0, 1)
    np.testing.assert_array_equal(
        kernels.xnor_gemm(np.zeros((2, 0), np.uint64), np.zeros((3, 0), np.uint64), 0), np.zeros((2, 3))
    )


@pytest.mark.parametrize("k", [1, 65, 784])
@pytest.mark.parametrize("n", [1, 63, 64, 65, 300])
def test_gemm_threshold_matches_reference(simd, k, n):
    rng = np.random.default_rng(k + n)
    m = 13
    a, b = signs(rng, m, k), signs(rng, n, k)
    dots = a.astype(np.int64) @ b.T.astype(np.int64)
    # thresholds equal to actual dot values exercise the >= / <= equality cases in both directions
    thresholds = dots[rng.integers(0, m, n), np.arange(n)].astype(np.int32)
    thresholds[::3] += rng.integers(-3, 4, size=thresholds[::3].shape).astype(np.int32)
    flip = rng.random(n) < 0.5
    expected = reference_threshold(dots, thresholds, flip)
    for threads in (1, 2):
        bits = kernels.xnor_gemm_threshold(
            kernels.pack_signs(a), kernels.pack_signs(b), k, thresholds, flip, threads=threads
        )
        assert bits.shape == (m, (n + 63) // 64)
        np.testing.assert_array_equal(kernels.unpack_signs(bits, n), expected)
        if n % 64:
            assert not (bits[:, -1] >> np.uint64(n % 64)).any()


def test_threshold_equality_both_directions():
    a = kernels.pack_signs(np.ones((1, 10), np.float32))
    b = kernels.pack_signs(np.ones((2, 10), np.float32))  # both dots are 10
    bits = kernels.xnor_gemm_threshold(a, b, 10, [10, 10], [False, True])
    assert bits.tolist() == [[0]]  # 10 >= 10 and 10 <= 10: both +1
    bits = kernels.xnor_gemm_threshold(a, b, 10, [11, 9], [0, 1])
    assert bits.tolist() == [[3]]  # 10 >= 11 false, 10 <= 9 false: both -1


def test_gemm_error_messages():
    a = np.zeros((3, 2), np.uint64)
    with pytest.raises(ValueError, match="a_bits: expected dtype uint64.*int32"):
        kernels.xnor_gemm(a.astype(np.int32), a, 100)
    with pytest.raises(ValueError, match="b_bits: expected 2 dimensions.*\\(3, 2, 1\\)"):
        kernels.xnor_gemm(a, a[..., None], 100)
    with pytest.raises(ValueError, match="C-contiguous"):
        kernels.xnor_gemm(np.zeros((3, 4), np.uint64)[:, ::2], a, 100)
    with pytest.raises(ValueError, match="ceil\\(k/64\\) = 1 words.*k=64, got 2"):
        kernels.xnor_gemm(a, a, 64)
    with pytest.raises(ValueError, match="b_bits.*got 3"):
        kernels.xnor_gemm(a, np.zeros((3, 3), np.uint64), 100)
    with pytest.raises(ValueError, match="k: expected a non-negative integer"):
        kernels.xnor_gemm(a, a, -1)
    with pytest.raises(ValueError, match="thresholds: expected shape \\(3,\\).*\\(2,\\)"):
        kernels.xnor_gemm_threshold(a, a, 100, [1, 2], [0, 0, 0])
    with pytest.raises(ValueError, match="thresholds: expected integers.*float64"):
        kernels.xnor_gemm_threshold(a, a, 100, [1.5, 2, 3], [0, 0, 0])
    with pytest.raises(ValueError, match="flip: expected booleans or 0/1"):
        kernels.xnor_gemm_threshold(a, a, 100, [1, 2, 3], [0, 2, 0])
    with pytest.raises(ValueError, match="threads: expected None or a positive integer, got 0"):
        kernels.xnor_gemm(a, a, 100, threads=0)


# ---------------------------------------------------------------------------------------------- uint8 rows


@pytest.mark.parametrize("k", [0, *KS])
@pytest.mark.parametrize("m, n", [(0, 3), (1, 1), (1, 17), (2, 9), (5, 70), (67, 260)])
def test_gemm_uint8_matches_reference(simd, k, m, n):
    rng = np.random.default_rng(10 * k + m + n)
    u = rng.integers(0, 256, size=(m, k), dtype=np.uint8)
    u[: m // 2, : k // 2] = 255  # extreme values
    u[m // 2 :, k // 2 :] = 0
    w = signs(rng, n, k)
    expected = u.astype(np.int64) @ w.T.astype(np.int64)
    w_bits = kernels.pack_signs(w)
    thresholds = rng.integers(-40 * k - 1, 40 * k + 2, size=n).astype(np.int32)
    if expected.size:
        thresholds[0] = expected[0, 0]  # an equality case
    flip = rng.random(n) < 0.5
    for threads in (1, 2):
        got = kernels.xnor_gemm_uint8(u, w_bits, k, threads=threads)
        assert got.dtype == np.int32 and got.shape == (m, n)
        np.testing.assert_array_equal(got, expected)
        bits = kernels.xnor_gemm_uint8_threshold(u, w_bits, k, thresholds, flip, threads=threads)
        assert bits.shape == (m, (n + 63) // 64)
        np.testing.assert_array_equal(kernels.unpack_signs(bits, n), reference_threshold(expected, thresholds, flip))


@pytest.mark.parametrize("period", [1, 3, 64, 130])
def test_gemm_uint8_thresholds_per_row_position(simd, period):
    """Thresholds (P, N): row i meets thresholds[i % P], across tile edges (64 rows) and thread counts."""
    rng = np.random.default_rng(period)
    m, n, k = 2 * period + 5, 70, 27
    u = rng.integers(0, 256, size=(m, k), dtype=np.uint8)
    w = signs(rng, n, k)
    expected = u.astype(np.int64) @ w.T.astype(np.int64)
    thresholds = rng.integers(-300, 300, size=(period, n)).astype(np.int32)
    thresholds[0, 0] = expected[0, 0]
    flip = rng.random(n) < 0.5
    rows = thresholds[np.arange(m) % period]
    want = np.where(flip, expected > rows, expected < rows)  # bit 1 = -1
    for threads in (1, 2):
        bits = kernels.xnor_gemm_uint8_threshold(u, kernels.pack_signs(w), k, thresholds, flip, threads=threads)
        np.testing.assert_array_equal(kernels.unpack_signs(bits, n) == -1, want)
    with pytest.raises(ValueError, match=r"thresholds: expected \(70,\) or, per row position, \(P, 70\)"):
        kernels.xnor_gemm_uint8_threshold(u, kernels.pack_signs(w), k, thresholds[:, :5], flip)


def test_gemm_uint8_all_255_is_the_largest_dot(simd):
    u = np.full((3, 4097), 255, np.uint8)
    w = np.ones((2, 4097), np.int8)
    w[1] = -1
    got = kernels.xnor_gemm_uint8(u, kernels.pack_signs(w), 4097)
    np.testing.assert_array_equal(got, [[255 * 4097, -255 * 4097]] * 3)


def test_gemm_uint8_error_messages():
    w = np.zeros((3, 2), np.uint64)
    with pytest.raises(ValueError, match="u: expected a 2-D numpy uint8 array.*float32"):
        kernels.xnor_gemm_uint8(np.zeros((1, 100), np.float32), w, 100)
    with pytest.raises(ValueError, match="u: expected k=100 values per row, got 99"):
        kernels.xnor_gemm_uint8(np.zeros((1, 99), np.uint8), w, 100)
    with pytest.raises(ValueError, match="w_bits: expected ceil\\(k/64\\) = 1 words"):
        kernels.xnor_gemm_uint8(np.zeros((1, 60), np.uint8), w, 60)
    with pytest.raises(ValueError, match="255 \\* k must fit in int32"):
        kernels.xnor_gemm_uint8(np.zeros((0, 2**24), np.uint8), np.zeros((3, 2**18), np.uint64), 2**24)
    with pytest.raises(ValueError, match="flip: expected shape \\(3,\\)"):
        kernels.xnor_gemm_uint8_threshold(np.zeros((1, 100), np.uint8), w, 100, [0, 0, 0], [0])


# ---------------------------------------------------------------------------------------------- bound calls


def test_bound_calls_match_the_checked_functions(simd):
    rng = np.random.default_rng(3)
    a, w = kernels.pack_signs(signs(rng, 7, 130)), kernels.pack_signs(signs(rng, 70, 130))
    u = rng.integers(0, 256, size=(7, 130), dtype=np.uint8)
    thresholds, flip = rng.integers(-20, 21, size=70).astype(np.int32), rng.random(70) < 0.5
    np.testing.assert_array_equal(kernels.bind_gemm(w, 130, threads=2)(a), kernels.xnor_gemm(a, w, 130))
    np.testing.assert_array_equal(
        kernels.bind_gemm(w, 130, thresholds, flip)(a), kernels.xnor_gemm_threshold(a, w, 130, thresholds, flip)
    )
    np.testing.assert_array_equal(kernels.bind_gemm(w, 130, uint8=True)(u), kernels.xnor_gemm_uint8(u, w, 130))
    np.testing.assert_array_equal(
        kernels.bind_gemm(w, 130, thresholds, flip, uint8=True)(u),
        kernels.xnor_gemm_uint8_threshold(u, w, 130, thresholds, flip),
    )
    x, wc = kernels.pack_signs(signs(rng, 2, 9, 8, 65)), kernels.pack_signs(signs(rng, 70, 3, 3, 65))
    for stride, padding in ((1, "same"), (2, "valid"), (2, (1, 0, 2, 1))):
        np.testing.assert_array_equal(
            kernels.bind_conv2d(wc, 65, stride=stride, padding=padding)(x),
            kernels.xnor_conv2d(x, wc, 65, stride, padding),
        )
        np.testing.assert_array_equal(
            kernels.bind_conv2d(wc, 65, thresholds, flip, stride=stride, padding=padding, threads=2)(x),
            kernels.xnor_conv2d_threshold(x, wc, 65, thresholds, flip, stride, padding),
        )


@pytest.mark.parametrize("path", sorted(set(kernels.available_backends()) | {"scalar"}))
def test_panel_layout_on_every_path(path):
    """B laid out for the broadcast kernel gives the same dots; other paths read it with a portable loop."""
    from workbench.deploy import _xnor

    rng = np.random.default_rng(5)
    a, b = signs(rng, 6, 200), signs(rng, 45, 200)
    a_bits, b_bits = kernels.pack_signs(a), kernels.pack_signs(b)
    panel = _xnor.make_panel(b_bits)
    assert panel.shape == (48 * 4,) and panel[8 * 4 + 1] == b_bits[9, 0] and not panel[-1]
    out = np.empty((6, 45), np.int32)
    _xnor.gemm(a_bits, b_bits, 200, out, kernels._PATHS[path], 1, panel)
    np.testing.assert_array_equal(out, a.astype(np.int64) @ b.T.astype(np.int64))
    with pytest.raises(ValueError, match="panel: length does not match"):
        _xnor.gemm(a_bits, b_bits, 200, out, kernels._PATHS[path], 1, panel[:-8])


def test_panel_made_by_two_threads_is_the_same():
    from workbench.deploy import _xnor

    b = np.random.default_rng(6).integers(0, 2**63, size=(1027, 64), dtype=np.uint64)  # 129 groups, 65,728 words
    one, two = _xnor.make_panel(b, 1), _xnor.make_panel(b, 2)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one.reshape(129, 64, 8).transpose(0, 2, 1).reshape(-1, 64)[:1027], b)


def test_weight_layouts_start_on_a_cache_line():
    """Panels and dword layouts start on a 64-byte line (NumPy gives 16-byte alignment): a 512-bit load that
    splits two lines made the batch-1 GEMV ~40% slower."""
    from workbench.deploy import _xnor

    rng = np.random.default_rng(7)
    for n, words in ((1, 1), (9, 3), (2048, 32), (1024, 128)):
        b = rng.integers(0, 2**63, size=(n, words), dtype=np.uint64)
        panel = _xnor.make_panel(b)
        assert panel.ctypes.data % 64 == 0 and panel.shape == (-(-n // 8) * 8 * words,) and panel.dtype == np.uint64
        np.testing.assert_array_equal(panel.reshape(-1, words, 8).transpose(0, 2, 1).reshape(-1, words)[:n], b)
    for k in (27, 256):
        dwords = _xnor.make_u8_dwords(kernels.pack_signs(signs(rng, 40, k)), k)
        assert dwords.ctypes.data % 64 == 0 and dwords.dtype == np.int8
    assert _xnor.aligned_zeros(5, np.int32).ctypes.data % 64 == 0 and not _xnor.aligned_zeros(5, np.int32).any()


def test_bound_calls_reject_mismatched_activations():
    w = np.zeros((3, 2), np.uint64)
    with pytest.raises(ValueError, match="thresholds: expected shape \\(3,\\)"):
        kernels.bind_gemm(w, 100, [0], [0])
    with pytest.raises(ValueError, match="shapes do not match"):
        kernels.bind_gemm(w, 100)(np.zeros((1, 1), np.uint64))
    with pytest.raises(ValueError, match="dtype mismatch"):
        kernels.bind_gemm(w, 100)(np.zeros((1, 2), np.int64))
    with pytest.raises(ValueError, match="k=100 values, got shape \\(1, 99\\)"):
        kernels.bind_gemm(w, 100, uint8=True)(np.zeros((1, 99), np.uint8))
    with pytest.raises(ValueError, match="x_bits: expected \\(N, H, W, words\\)"):
        kernels.bind_conv2d(np.zeros((2, 3, 3, 1), np.uint64), 10)(np.zeros((4, 4, 1), np.uint64))


def test_plain_functions_are_bound_calls_with_large_batches(simd):
    """From 32 rows the compiled function makes a panel for a plain call, a bound call keeps its own."""
    rng = np.random.default_rng(4)
    a, w = kernels.pack_signs(signs(rng, 40, 200)), kernels.pack_signs(signs(rng, 70, 200))
    thresholds, flip = rng.integers(-20, 21, size=70).astype(np.int32), rng.random(70) < 0.5
    dots = kernels.unpack_signs(a, 200).astype(np.int64) @ kernels.unpack_signs(w, 200).T.astype(np.int64)
    for threads in (1, 2):
        np.testing.assert_array_equal(kernels.bind_gemm(w, 200, threads=threads)(a), dots)
        np.testing.assert_array_equal(kernels.xnor_gemm(a, w, 200, threads=threads), dots)
        bits = kernels.bind_gemm(w, 200, thresholds, flip, threads=threads)(a)
        np.testing.assert_array_equal(bits, kernels.xnor_gemm_threshold(a, w, 200, thresholds, flip, threads=threads))
        np.testing.assert_array_equal(kernels.unpack_signs(bits, 70), reference_threshold(dots, thresholds, flip))


def test_plain_and_bound_functions_share_one_validation():
    """Each kernel's weights, thresholds, geometry and threads are checked in one place: the same error from
    the plain function and from the bound one, each naming itself."""
    a, w = np.zeros((1, 2), np.uint64), np.zeros((3, 2), np.uint64)
    u = np.zeros((1, 100), np.uint8)
    for name, call in (
        ("xnor_gemm_threshold", lambda thr: kernels.xnor_gemm_threshold(a, w, 100, thr, [0, 0, 0])),
        ("xnor_gemm_uint8_threshold", lambda thr: kernels.xnor_gemm_uint8_threshold(u, w, 100, thr, [0, 0, 0])),
        ("bind_gemm", lambda thr: kernels.bind_gemm(w, 100, thr, [0, 0, 0])),
        ("bind_gemm", lambda thr: kernels.bind_gemm(w, 100, thr, [0, 0, 0], uint8=True)),
    ):
        with pytest.raises(ValueError, match=f"^{name}: thresholds: expected shape \\(3,\\)"):
            call([1, 2])
        with pytest.raises(ValueError, match=f"^{name}: thresholds: expected integers.*bool"):
            call(np.array([True, False, True]))
        with pytest.raises(ValueError, match=f"^{name}: thresholds: values do not fit in int32"):
            call(np.array([0, 2**31, 0]))
    for name, call in (
        ("xnor_gemm", lambda k: kernels.xnor_gemm(a, w, k)),
        ("xnor_gemm_uint8", lambda k: kernels.xnor_gemm_uint8(u, w, k)),
        ("bind_gemm", lambda k: kernels.bind_gemm(w, k)),
    ):
        with pytest.raises(ValueError, match=f"^{name}: k: expected a non-negative integer bit count, got True"):
            call(True)
    x = np.zeros((1, 4, 4, 1), np.uint64)
    flat = np.zeros((0, 2**16, 2**16, 1), np.uint64)  # no weights, but KH*KW*C = 2^32
    for name, bind in (
        ("xnor_conv2d", lambda wc, **kw: lambda x: kernels.xnor_conv2d(x, wc, 10, **kw)),
        (
            "xnor_conv2d_threshold",
            lambda wc, **kw: (
                lambda x: kernels.xnor_conv2d_threshold(
                    x, wc, 10, np.zeros(len(wc), np.int32), np.zeros(len(wc), bool), **kw
                )
            ),
        ),
        ("bind_conv2d", lambda wc, **kw: kernels.bind_conv2d(wc, 10, **kw)),
    ):
        with pytest.raises(ValueError, match=f"^{name}: w_bits: expected a kernel of at least 1x1, got 0x3"):
            bind(np.zeros((2, 0, 3, 1), np.uint64))(x)
        with pytest.raises(ValueError, match=f"^{name}: KH\\*KW\\*C = 42949672960 does not fit in int32"):
            bind(flat)(x)
        with pytest.raises(ValueError, match="^threads: expected None or a positive integer, got 0"):
            bind(np.zeros((2, 3, 3, 1), np.uint64), threads=0)(x)
    for name, bind in (
        ("max_pool2d_bits", lambda f: lambda x: kernels.max_pool2d_bits(x, f)),
        ("bind_max_pool2d_bits", kernels.bind_max_pool2d_bits),
    ):
        with pytest.raises(ValueError, match=f"^{name}: flipped: expected a bool or a 1-D bool array"):
            bind(1)(x)
        words_for_flags = f"^{name}: x_bits: expected 2 words for 65 channels, got 1.*len\\(flipped\\)"
        with pytest.raises(ValueError, match=words_for_flags):
            bind(np.zeros(65, bool))(x)


def test_plain_functions_check_activations_bound_ones_leave_them_to_the_compiled_code():
    w, x = np.zeros((2, 3, 3, 1), np.uint64), np.zeros((1, 4, 4, 2), np.uint64)  # x: 2 words for c = 10
    with pytest.raises(ValueError, match="^xnor_conv2d: x_bits: expected ceil\\(c/64\\) = 1 words.*got 2"):
        kernels.xnor_conv2d(x, w, 10)
    with pytest.raises(ValueError, match="conv2d: shapes do not match"):
        kernels.bind_conv2d(w, 10)(x)
    strided = np.zeros((1, 4, 8, 1), np.uint64)[:, :, ::2]
    with pytest.raises(ValueError, match="^max_pool2d_bits: x_bits: expected a C-contiguous array"):
        kernels.max_pool2d_bits(strided)
    with pytest.raises(ValueError, match="contiguous"):
        kernels.bind_max_pool2d_bits()(strided)
    with pytest.raises(ValueError, match="^xnor_gemm: a_bits: expected a numpy uint64 array"):
        kernels.xnor_gemm([[0, 0]], np.zeros((3, 2), np.uint64), 100)


def test_plain_uint8_rows_may_be_strided_and_integer_types_may_be_numpy(simd):
    rng = np.random.default_rng(8)
    wide = rng.integers(0, 256, size=(5, 260), dtype=np.uint8)
    u, w = wide[:, ::2], signs(rng, 9, 130)
    w_bits, expected = kernels.pack_signs(w), u.astype(np.int64) @ w.T.astype(np.int64)
    np.testing.assert_array_equal(kernels.xnor_gemm_uint8(u, w_bits, np.int64(130), threads=np.int32(2)), expected)
    thresholds = expected[0].astype(np.int16)  # equality cases, any integer dtype
    bits = kernels.xnor_gemm_uint8_threshold(u, w_bits, 130, thresholds, True)  # one flag for every channel
    np.testing.assert_array_equal(
        kernels.unpack_signs(bits, 9), reference_threshold(expected, thresholds, np.ones(9, bool))
    )
    with pytest.raises(ValueError, match="threads: expected None or a positive integer, got True"):
        kernels.xnor_gemm_uint8(u, w_bits, 130, threads=True)
    for flags in (np.array([0, 2] * 4 + [0], np.uint8), np.array([0, -1] * 4 + [0], np.int8)):
        with pytest.raises(ValueError, match="flip: expected booleans or 0/1"):
            kernels.xnor_gemm_uint8_threshold(u, w_bits, 130, thresholds, flags)


def test_conv2d_with_no_channels_gives_zero_dots(simd):
    x, w = np.zeros((2, 4, 5, 0), np.uint64), np.zeros((3, 3, 3, 0), np.uint64)
    np.testing.assert_array_equal(kernels.xnor_conv2d(x, w, 0, padding="same"), np.zeros((2, 4, 5, 3)))
    bits = kernels.bind_conv2d(w, 0, [0, 1, -1], [0, 0, 1], padding="same")(x)  # 0 >= 0, 0 >= 1, 0 <= -1
    np.testing.assert_array_equal(kernels.unpack_signs(bits, 3), np.broadcast_to([1, -1, -1], (2, 4, 5, 3)))


def test_compiled_threshold_calls_reject_missing_flags():
    """The compiled functions are memory-safe on their own: no thresholds or flags is an error, not a crash."""
    from workbench.deploy import _xnor

    a, thr = np.zeros((3, 2), np.uint64), np.zeros(3, np.int32)
    out = np.zeros((3, 1), np.uint64)
    with pytest.raises(ValueError, match="gemm_threshold: shapes do not match"):
        _xnor.gemm_threshold(a, a, 100, thr, None, out, _xnor.SCALAR, 1)
    with pytest.raises(ValueError, match="gemm_uint8_threshold: shapes do not match"):
        _xnor.gemm_uint8_threshold(np.zeros((3, 100), np.uint8), a, None, np.zeros(3, np.uint8), out, _xnor.SCALAR, 1)
    with pytest.raises(ValueError, match="conv2d: thresholds or output words do not match"):
        _xnor.conv2d(
            np.zeros((1, 3, 3, 1), np.uint64),
            np.zeros((3, 1, 1, 1), np.uint64),
            10,
            1,
            1,
            0,
            0,
            np.zeros((1, 3, 3, 1), np.uint64),
            thr,
            None,
            _xnor.SCALAR,
            1,
        )


# ---------------------------------------------------------------------------------------------- conv

CONV_CASES = [
    # n, h, w, c, o, kh, kw, stride, padding
    (1, 7, 5, 3, 4, 3, 3, 1, "same"),
    (2, 9, 8, 65, 70, 3, 3, 2, "same"),
    (2, 9, 7, 64, 5, 3, 3, 2, "valid"),
    (1, 6, 6, 130, 3, 1, 1, 1, "valid"),
    (3, 5, 6, 1, 2, 2, 3, 1, (1, 0, 2, 1)),
    (1, 4, 4, 8, 3, 5, 5, 1, "same"),
    (0, 5, 5, 3, 2, 3, 3, 1, "same"),
    # stride 1 with enough output pixels for a panel: AVX-512 reads the windows in place (a bordered copy for
    # padding; the input itself for 'valid'), odd widths split 4-row blocks, 300 channels make 2 column tiles
    (2, 11, 13, 130, 300, 3, 3, 1, "same"),
    (1, 12, 10, 64, 20, 3, 3, 1, "valid"),
    (2, 9, 10, 70, 9, 2, 3, 1, (1, 0, 2, 1)),
]


@pytest.mark.parametrize("n, h, w, c, o, kh, kw, stride, padding", CONV_CASES)
def test_conv2d_matches_reference(simd, n, h, w, c, o, kh, kw, stride, padding):
    rng = np.random.default_rng(h * 100 + c)
    x, wt = signs(rng, n, h, w, c), signs(rng, o, kh, kw, c)
    same = ((kh - 1) // 2, kh - 1 - (kh - 1) // 2, (kw - 1) // 2, kw - 1 - (kw - 1) // 2)
    pads = {"valid": (0, 0, 0, 0), "same": same}.get(padding, padding)
    expected = reference_conv(x, wt, stride, pads)
    xb, wb = kernels.pack_signs(x), kernels.pack_signs(wt)
    thresholds = rng.integers(-kh * kw * c, kh * kw * c + 1, size=o).astype(np.int32)
    if expected.size:
        thresholds[0] = expected[..., 0].flat[0]  # an equality case
    flip = rng.random(o) < 0.5
    for threads in (1, 2):
        got = kernels.xnor_conv2d(xb, wb, c, stride=stride, padding=padding, threads=threads)
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
        bits = kernels.xnor_conv2d_threshold(
            xb, wb, c, thresholds, flip, stride=stride, padding=padding, threads=threads
        )
        assert bits.shape == (*expected.shape[:3], (o + 63) // 64)
        np.testing.assert_array_equal(kernels.unpack_signs(bits, o), reference_threshold(expected, thresholds, flip))


@pytest.mark.parametrize("n, h, w, c, o, kh, kw, stride, padding", CONV_CASES)
def test_uint8_patches_against_packed_weights_are_an_exact_pixel_convolution(
    simd, n, h, w, c, o, kh, kw, stride, padding
):
    """im2col_uint8 + xnor_gemm_uint8: the first layer of an image network, padded with pixel value 0."""
    rng = np.random.default_rng(h * 10 + c)
    x, wt = rng.integers(0, 256, (n, c, h, w), dtype=np.uint8), signs(rng, o, kh, kw, c)
    top, bottom, left, right = {
        "valid": (0, 0, 0, 0),
        "same": ((kh - 1) // 2, kh - 1 - (kh - 1) // 2, (kw - 1) // 2, kw - 1 - (kw - 1) // 2),
    }.get(padding, padding)
    padded = np.pad(x.transpose(0, 2, 3, 1).astype(np.int64), ((0, 0), (top, bottom), (left, right), (0, 0)))
    oh, ow = kernels.conv_output_shape(h, w, kh, kw, stride, padding)
    expected = np.zeros((n, oh, ow, o), np.int64)
    for r in range(oh):
        for q in range(ow):
            patch = padded[:, r * stride : r * stride + kh, q * stride : q * stride + kw, :]
            expected[:, r, q] = np.einsum("nijc,oijc->no", patch, wt.astype(np.int64))
    rows = kernels.im2col_uint8(x, kh, kw, stride, padding)
    assert rows.shape == (n * oh * ow, kh * kw * c) and rows.dtype == np.uint8
    got = kernels.xnor_gemm_uint8(rows, kernels.pack_signs(wt.reshape(o, -1)), kh * kw * c)
    np.testing.assert_array_equal(got.reshape(expected.shape), expected)


def test_im2col_uint8_error_messages():
    with pytest.raises(ValueError, match="x: expected a 4-D numpy uint8 array \\(N, C, H, W\\), got ndarray float32"):
        kernels.im2col_uint8(np.zeros((1, 1, 4, 4), np.float32), 3, 3)
    with pytest.raises(ValueError, match="kh: expected a positive int, got 0"):
        kernels.im2col_uint8(np.zeros((1, 1, 4, 4), np.uint8), 0, 3)
    with pytest.raises(ValueError, match="padding: expected 'same', 'valid'"):
        kernels.im2col_uint8(np.zeros((1, 1, 4, 4), np.uint8), 3, 3, padding="full")


def test_two_threads_on_work_big_enough_to_split(simd):
    """Small problems run on one thread; these are large enough that both threads take tiles."""
    from workbench.deploy import _xnor

    rng = np.random.default_rng(7)
    x, wt = signs(rng, 2, 16, 16, 130), signs(rng, 300, 3, 3, 130)
    assert _xnor.team_size(2 * 16 * 16, 300, 9 * 3, 2) == 2
    expected = reference_conv(x, wt, 1, (1, 1, 1, 1))
    thresholds = rng.integers(-60, 61, size=300).astype(np.int32)
    flip = rng.random(300) < 0.5
    xb, wb = kernels.pack_signs(x), kernels.pack_signs(wt)
    np.testing.assert_array_equal(kernels.xnor_conv2d(xb, wb, 130, padding="same", threads=2), expected)
    bits = kernels.xnor_conv2d_threshold(xb, wb, 130, thresholds, flip, padding="same", threads=2)
    np.testing.assert_array_equal(kernels.unpack_signs(bits, 300), reference_threshold(expected, thresholds, flip))

    a, b = signs(rng, 130, 784), signs(rng, 300, 784)
    assert _xnor.team_size(130, 300, 13, 2) == 2
    dots = a.astype(np.float64) @ b.T.astype(np.float64)
    bits = kernels.xnor_gemm_threshold(kernels.pack_signs(a), kernels.pack_signs(b), 784, thresholds, flip, threads=2)
    np.testing.assert_array_equal(kernels.unpack_signs(bits, 300), reference_threshold(dots, thresholds, flip))


def test_team_size_never_exceeds_tiles_or_request():
    from workbench.deploy import _xnor

    assert _xnor.team_size(1, 512, 8, 2) == 1  # too little work to split
    assert _xnor.team_size(1, 4096, 64, 2) == 2
    assert _xnor.team_size(64, 256, 4096, 8) == 1  # a single tile
    assert _xnor.team_size(4096, 4096, 64, 3) == 3


def test_conv_same_keeps_size_and_strided_size():
    assert kernels.conv_output_shape(7, 5, 3, 3, 1, "same") == (7, 5)
    assert kernels.conv_output_shape(9, 8, 3, 3, 2, "same") == (5, 4)
    assert kernels.conv_output_shape(9, 8, 3, 3, 2, "valid") == (4, 3)


def test_conv_error_messages():
    x = np.zeros((1, 4, 4, 1), np.uint64)
    w = np.zeros((2, 3, 3, 1), np.uint64)
    with pytest.raises(ValueError, match="x_bits: expected 4 dimensions.*NHWC"):
        kernels.xnor_conv2d(x[0], w, 10)
    with pytest.raises(ValueError, match="w_bits: expected ceil\\(c/64\\) = 2 words.*got 1"):
        kernels.xnor_conv2d(np.zeros((1, 4, 4, 2), np.uint64), w, 100)
    with pytest.raises(ValueError, match="padding: expected 'same', 'valid'"):
        kernels.xnor_conv2d(x, w, 10, padding="full")
    with pytest.raises(ValueError, match="stride: expected a positive int"):
        kernels.xnor_conv2d(x, w, 10, stride=0)
    with pytest.raises(ValueError, match="thresholds: expected shape \\(2,\\)"):
        kernels.xnor_conv2d_threshold(x, w, 10, [0], [0, 0])
    with pytest.raises(ValueError, match="C-contiguous"):
        kernels.xnor_conv2d(np.zeros((1, 4, 8, 1), np.uint64)[:, :, ::2], w, 10)


# ---------------------------------------------------------------------------------------------- pooling


@pytest.mark.parametrize("h, w", [(4, 4), (5, 7), (1, 3)])
def test_max_pool_bits(h, w):
    rng = np.random.default_rng(h * w)
    c = 70
    x = signs(rng, 2, h, w, c)
    xb = kernels.pack_signs(x)
    oh, ow = h // 2, w // 2
    windows = x[:, : 2 * oh, : 2 * ow].reshape(2, oh, 2, ow, 2, c)
    np.testing.assert_array_equal(kernels.unpack_signs(kernels.max_pool2d_bits(xb), c), windows.max(axis=(2, 4)))
    np.testing.assert_array_equal(
        kernels.unpack_signs(kernels.max_pool2d_bits(xb, flipped=True), c), windows.min(axis=(2, 4))
    )
    per_channel = rng.random(c) < 0.5
    expected = np.where(per_channel, windows.min(axis=(2, 4)), windows.max(axis=(2, 4)))
    np.testing.assert_array_equal(kernels.unpack_signs(kernels.max_pool2d_bits(xb, per_channel), c), expected)
    for flipped in (False, True, per_channel):
        np.testing.assert_array_equal(kernels.bind_max_pool2d_bits(flipped)(xb), kernels.max_pool2d_bits(xb, flipped))


def test_bound_max_pool_error_messages():
    with pytest.raises(ValueError, match="flipped: expected a bool or a 1-D bool array"):
        kernels.bind_max_pool2d_bits(np.zeros(3, np.int8))
    with pytest.raises(ValueError, match="expected 2 words for 70 channels, got 1"):
        kernels.bind_max_pool2d_bits(np.zeros(70, bool))(np.zeros((1, 2, 2, 1), np.uint64))
    with pytest.raises(ValueError, match="x_bits: expected \\(N, H, W, words\\)"):
        kernels.bind_max_pool2d_bits(False)(np.zeros((2, 2, 1), np.uint64))


def test_max_pool_error_messages():
    with pytest.raises(ValueError, match="expected 4 dimensions"):
        kernels.max_pool2d_bits(np.zeros((2, 2, 1), np.uint64))
    with pytest.raises(ValueError, match="len\\(flipped\\)"):
        kernels.max_pool2d_bits(np.zeros((1, 2, 2, 1), np.uint64), np.zeros(65, bool))


# ---------------------------------------------------------------------------------------------- dispatch


def test_backends_and_forcing():
    assert kernels.available_backends()[-1] == "scalar"
    assert kernels.backend() in kernels.available_backends()
    try:
        for name in kernels.available_backends():
            assert kernels.set_backend(name) == name and kernels.backend() == name
        with pytest.raises(ValueError, match="expected one of avx512, avx2, neon, scalar"):
            kernels.set_backend("sse2")
        missing = [name for name in ("avx512", "avx2", "neon") if name not in kernels.available_backends()]
        for name in missing:
            with pytest.raises(ValueError, match="not supported by this CPU"):
                kernels.set_backend(name)
    finally:
        kernels.set_backend("auto")


def test_simd_environment_variable_is_read_at_import():
    import subprocess
    import sys

    code = "from workbench.deploy import kernels; print(kernels.backend())"

    def env_run(value):
        return subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**__import__("os").environ, "BNN_WORKBENCH_SIMD": value},
        )

    result = env_run("scalar")
    assert result.returncode == 0 and result.stdout.strip() == "scalar"
    result = env_run("sse9")
    assert result.returncode != 0 and "BNN_WORKBENCH_SIMD" in result.stderr


def test_default_threads(monkeypatch):
    monkeypatch.setenv("BNN_WORKBENCH_THREADS", "3")
    assert kernels.default_threads() == 3
    monkeypatch.setenv("BNN_WORKBENCH_THREADS", "many")
    with pytest.raises(ValueError, match="BNN_WORKBENCH_THREADS"):
        kernels.default_threads()


@pytest.mark.parametrize("threads", [0, -1, -(2**31)])
def test_compiled_kernels_refuse_thread_counts_below_one(threads):
    """Called directly (docs/KERNELS.md allows it), threads=0 once corrupted the heap and -1 ended the process."""
    from workbench.deploy import _xnor

    a = np.zeros((4, 1), np.uint64)
    out = np.zeros((4, 4), np.int32)
    with pytest.raises(ValueError, match="threads: expected a positive thread count"):
        _xnor.gemm(a, a, 64, out, kernels._PATHS["scalar"], threads)
    with pytest.raises(ValueError, match="threads: expected a positive thread count"):
        _xnor.make_panel(a, threads)


def test_compiled_kernels_clamp_huge_thread_counts():
    """threads=10**6 once sized a 61 GiB scratch buffer: the count is clamped to MAX_THREADS."""
    from workbench.deploy import _xnor

    rng = np.random.default_rng(0)
    a_bits = kernels.pack_signs(rng.standard_normal((8, 200)).astype(np.float32))
    out = np.zeros((8, 1), np.uint64)
    _xnor.gemm_threshold(
        a_bits, a_bits, 200, np.zeros(8, np.int32), np.zeros(8, np.uint8), out, kernels._PATHS["scalar"], 10**6
    )
    expected = kernels.xnor_gemm_threshold(a_bits, a_bits, 200, np.zeros(8, np.int32), np.zeros(8, bool), threads=1)
    np.testing.assert_array_equal(out, expected)
    assert _xnor.team_size(1 << 20, 1 << 20, 1 << 10, 10**6) <= _xnor.MAX_THREADS


# ------------------------------------------------------------------------------ short uint8 rows (dword kernel)


@pytest.mark.parametrize("k", [1, 3, 4, 5, 27, 63, 64, 65, 100, 256])
@pytest.mark.parametrize("n", [1, 15, 16, 17, 64, 130, 300])
def test_bound_uint8_short_rows_exact_on_every_path(simd, k, n):
    """bind_gemm(uint8=True) with k <= U8_DWORD_MAX_K lays the weights out as signed bytes once and runs the
    dword kernel (AVX-512 and AVX2; other paths: the packed-weight kernels): exact dots, thresholds plain and per
    row position, for row counts past the 2- and 4-row blocks (their tails), channel tails (8- and 16-channel
    blocks) and tap tails."""
    rng = np.random.default_rng(k * 1000 + n)
    for m in (1, 2, 3, 5, 6, 64, 67):
        u = rng.integers(0, 256, (m, k), dtype=np.uint8)
        u[0] = 255  # the largest dot
        w = kernels.pack_signs(signs(rng, n, k))
        expected = u.astype(np.int64) @ kernels.unpack_signs(w, k).astype(np.int64).T
        np.testing.assert_array_equal(kernels.bind_gemm(w, k, uint8=True, threads=1)(u), expected)
        thresholds = rng.integers(-255 * k, 255 * k + 1, n).astype(np.int32)
        flip = rng.integers(0, 2, n).astype(np.uint8)
        for threads in (1, 2):
            got = kernels.bind_gemm(w, k, thresholds, flip, uint8=True, threads=threads)(u)
            np.testing.assert_array_equal(
                kernels.unpack_signs(got, n), reference_threshold(expected, thresholds, flip.astype(bool))
            )
        period = 3
        per_row = rng.integers(-255 * k, 255 * k + 1, (period, n)).astype(np.int32)
        got = kernels.bind_gemm(w, k, per_row, flip, uint8=True, threads=1)(u)
        rows = per_row[np.arange(m) % period]
        np.testing.assert_array_equal(
            kernels.unpack_signs(got, n), reference_threshold(expected, rows, flip.astype(bool))
        )


@pytest.mark.parametrize("geometry", [(3, 1, "same"), (3, 2, "same"), (3, 1, "valid"), (5, 2, (1, 2, 0, 1))])
@pytest.mark.parametrize("c", [1, 3])
def test_bound_input_conv2d_is_im2col_then_the_uint8_gemm(simd, geometry, c):
    """bind_input_conv2d (InputConv: im2col and the thresholded uint8 GEMM in one compiled call) gives the bits of
    im2col_uint8 then xnor_gemm_uint8_threshold, with thresholds per channel and per output position, for strides,
    paddings, batch sizes (empty, one, past a 64-row tile) and thread counts."""
    kh, stride, padding = geometry
    rng = np.random.default_rng(kh * 10 + stride + c)
    h, w, o = 9, 7, 70
    k = kh * kh * c
    w_bits = kernels.pack_signs(signs(rng, o, k))
    oh, ow = kernels.conv_output_shape(h, w, kh, kh, stride, padding)
    flip = rng.integers(0, 2, o).astype(np.uint8)
    for thresholds in (rng.integers(-200 * k, 200 * k, o), rng.integers(-200 * k, 200 * k, (oh * ow, o))):
        thresholds = thresholds.astype(np.int32)
        for threads in (1, 2):
            conv = kernels.bind_input_conv2d(
                w_bits, (kh, kh), c, (h, w), thresholds, flip, stride, padding, threads=threads
            )
            for n in (0, 1, 3):
                x = rng.integers(0, 256, (n, c, h, w), dtype=np.uint8)
                cols = kernels.im2col_uint8(x, kh, kh, stride, padding)
                expected = kernels.xnor_gemm_uint8_threshold(cols, w_bits, k, thresholds, flip, threads=1)
                got = conv(x)
                assert got.shape == (n, oh, ow, 2)
                np.testing.assert_array_equal(got.reshape(n * oh * ow, 2), expected)


def test_bound_input_conv2d_error_messages():
    w_bits = kernels.pack_signs(np.ones((4, 27)))
    thresholds, flip = np.zeros(4, np.int32), np.zeros(4, np.uint8)
    conv = kernels.bind_input_conv2d(w_bits, (3, 3), 3, (5, 5), thresholds, flip, padding="same", threads=1)
    with pytest.raises(ValueError, match=r"bind_input_conv2d: x: expected uint8 images \(N, 3, 5, 5\), got int64"):
        conv(np.zeros((1, 3, 5, 5), np.int64))
    with pytest.raises(ValueError, match="does not fit"):
        kernels.bind_input_conv2d(w_bits, (3, 3), 3, (2, 2), thresholds, flip, threads=1)  # 'valid': no output
    with pytest.raises(ValueError, match="bind_input_conv2d: thresholds and flip: expected arrays"):
        kernels.bind_input_conv2d(w_bits, (3, 3), 3, (5, 5), None, flip, threads=1)
    with pytest.raises(ValueError, match="bind_input_conv2d: w_bits: .*k=360"):
        kernels.bind_input_conv2d(w_bits, (3, 3), 40, (5, 5), thresholds, flip, threads=1)  # 6 words, not 1


@pytest.mark.parametrize("layout", [True, False, None])
@pytest.mark.parametrize("k", [257, 784, 1000])
@pytest.mark.parametrize("n", [100, 200])
def test_bound_uint8_long_rows_exact_for_every_batch(simd, k, n, monkeypatch, layout):
    """Longer rows: with fewer than U8_LUT_MIN_COLS columns (100: six 16-channel blocks and a 4-channel tail) the
    dword layout on AVX-512 too (always, never, or where it measures faster), used by tiles of 8 rows or more (a
    single row keeps the packed-weight kernel); with more (200: blocks of 8, 4 and 1) the table lookup on AVX-512
    with VBMI, its tables made for 128 rows at a time of 784 pixels (300 rows: three chunks). Exact dots and
    thresholds (per column, and per row position across the chunks) for 1, 7, 8, 9 rows, past a 64-row tile (67),
    on 1 and 2 threads, every pixel 255 in the first row."""
    monkeypatch.setattr(kernels, "U8_DWORD_LONG_ROWS", layout)
    rng = np.random.default_rng(k)
    w = kernels.pack_signs(signs(rng, n, k))
    exact = kernels.bind_gemm(w, k, uint8=True, threads=1)
    thresholds = rng.integers(-255 * k // 8, 255 * k // 8 + 1, n).astype(np.int32)
    flip = rng.integers(0, 2, n).astype(np.uint8)
    per_row = rng.integers(-255 * k // 8, 255 * k // 8 + 1, (5, n)).astype(np.int32)
    for m in (1, 7, 8, 9, 67, 300):
        u = rng.integers(0, 256, (m, k), dtype=np.uint8)
        u[0] = 255
        expected = u.astype(np.int64) @ kernels.unpack_signs(w, k).astype(np.int64).T
        np.testing.assert_array_equal(exact(u), expected)
        for threads in (1, 2):
            got = kernels.bind_gemm(w, k, thresholds, flip, uint8=True, threads=threads)(u)
            np.testing.assert_array_equal(
                kernels.unpack_signs(got, n), reference_threshold(expected, thresholds, flip.astype(bool))
            )
        got = kernels.bind_gemm(w, k, per_row, flip, uint8=True, threads=1)(u)
        np.testing.assert_array_equal(
            kernels.unpack_signs(got, n), reference_threshold(expected, per_row[np.arange(m) % 5], flip.astype(bool))
        )


@pytest.mark.parametrize("sign", [1, -1])
def test_bound_uint8_short_rows_largest_dots(simd, sign):
    """The largest dots the dword kernel takes (k = U8_DWORD_MAX_K, every pixel 255, every weight alike): AVX2
    sums them in int16 pairs, exact only up to this k (64 * 2 * 255 < 2^15)."""
    k = kernels.U8_DWORD_MAX_K
    u = np.full((3, k), 255, np.uint8)
    w = kernels.pack_signs(np.full((40, k), sign, np.float32))
    np.testing.assert_array_equal(kernels.bind_gemm(w, k, uint8=True, threads=1)(u), np.full((3, 40), sign * 255 * k))
    thresholds = np.full(40, sign * 255 * k, np.int32)
    thresholds[::2] += 1  # dot < t there
    bound = kernels.bind_gemm(w, k, thresholds, np.zeros(40, np.uint8), uint8=True, threads=1)
    got = kernels.unpack_signs(bound(u), 40)
    np.testing.assert_array_equal(got, np.tile(np.where(np.arange(40) % 2 == 0, -1, 1), (3, 1)))


def test_u8_dwords_layout():
    """make_u8_dwords: +1 / -1 bytes, 4 taps of 16 channels per 64 bytes, 0 past k and past n."""
    from workbench.deploy import _xnor

    rng = np.random.default_rng(5)
    k, n = 27, 20
    s = signs(rng, n, k)
    d = _xnor.make_u8_dwords(kernels.pack_signs(s), k)
    groups, npad = (k + 3) // 4, 32
    assert d.shape == (groups * npad * 4,) and d.dtype == np.int8
    laid = d.reshape(groups, npad, 4).transpose(1, 0, 2).reshape(npad, groups * 4)
    np.testing.assert_array_equal(laid[:n, :k], s)
    assert not laid[n:].any() and not laid[:, k:].any()


@pytest.mark.parametrize("format", [1, 2])
def test_u8_lut_layout(format):
    """make_u8_lut: per 16 weight rows and 16 pixels 64 bytes, the 4 bits of row d over pixels 4p .. 4p + 3 of the
    16 at byte 4d + p plus 16p (TABLE64, for VPERMB: which table) or at byte 16p + d (TABLE16); 0 bits past k and
    past n."""
    from workbench.deploy import _xnor

    rng = np.random.default_rng(6)
    k, n = 300, 20  # 19 quads of pixels (the last one 12 pixels), 2 blocks of rows (the last one 4 rows)
    s = signs(rng, n, k)
    layout = _xnor.make_u8_lut(kernels.pack_signs(s), k, [format]).layouts[format]
    assert layout.shape == (2 * 19 * 64,) and layout.dtype == np.uint8 and layout.ctypes.data % 64 == 0
    if format == _xnor.U8_LUT_TABLE64:
        laid = layout.reshape(2, 19, 16, 4)  # block, quad, row in block, group in quad
        np.testing.assert_array_equal(laid >> 4, np.broadcast_to(np.arange(4), laid.shape))
    else:
        laid = layout.reshape(2, 19, 4, 16).transpose(0, 1, 3, 2)
        assert not (laid >> 4).any()
    bits = (laid & 15)[..., None] >> np.arange(4) & 1  # block, quad, row, group, pixel in group
    per_row = bits.transpose(0, 2, 1, 3, 4).reshape(32, 19 * 16)
    np.testing.assert_array_equal(per_row[:n, :k], (s == -1).astype(np.uint8))
    assert not per_row[n:].any() and not per_row[:, k:].any()


def test_long_uint8_rows_with_many_columns_keep_the_lookup_layouts():
    """Where the table lookup runs (a path of this CPU runs a format, rows past U8_DWORD_MAX_K, U8_LUT_MIN_COLS columns
    or more) its layouts are kept, one per format, and the long rows' dword layout is not where AVX-512 runs the
    lookup (it would run for no batch); elsewhere no lookup layout."""
    from workbench.deploy import _xnor

    rng = np.random.default_rng(7)
    wide, narrow = kernels.pack_signs(signs(rng, 128, 784)), kernels.pack_signs(signs(rng, 127, 784))
    short = kernels.pack_signs(signs(rng, 128, 27))
    lookup = kernels._u8_lut(wide, 784)
    assert (lookup is not None) is bool(_xnor.U8_LUT_FORMATS)
    if lookup is not None:
        assert sorted(lookup.layouts) == sorted(_xnor.U8_LUT_FORMATS)
    if _xnor.U8_LUT_TABLE64 in _xnor.U8_LUT_FORMATS:
        assert kernels._u8_dwords(wide, 784) is None
    assert kernels._u8_lut(narrow, 784) is None and kernels._u8_lut(short, 27) is None
    with pytest.raises(ValueError, match="make_u8_lut: unknown format 3"):
        _xnor.make_u8_lut(wide, 784, [3])
    with pytest.raises(ValueError, match="lut: made for other weights"):
        kernels._xnor.gemm_uint8(
            np.zeros((1, 784), np.uint8),
            narrow,
            np.zeros((1, 127), np.int32),
            _xnor.AVX2,
            1,
            None,
            _xnor.make_u8_lut(wide, 784),
        )


@pytest.mark.skipif("avx512" not in kernels.available_backends(), reason="long rows' dword layout: AVX-512 only")
def test_long_uint8_rows_keep_the_dword_layout_as_set_or_as_measured(monkeypatch):
    """U8_DWORD_LONG_ROWS True / False keep or drop the layout whatever the measurement would say; None follows
    _dwords_pay (a measurement, forced either way here); short rows keep it always."""
    rng = np.random.default_rng(5)
    w, short = kernels.pack_signs(signs(rng, 64, 784)), kernels.pack_signs(signs(rng, 64, 27))
    for setting, measured in [(True, False), (False, True), (None, True), (None, False)]:
        probes = []
        monkeypatch.setattr(kernels, "U8_DWORD_LONG_ROWS", setting)
        monkeypatch.setattr(kernels, "_DWORDS_PAY", {})
        monkeypatch.setattr(
            kernels, "_dwords_pay", lambda *args, measured=measured, probes=probes: probes.append(1) or measured
        )
        for _ in range(2):  # measured once per shape, not once per bind
            assert (kernels._u8_dwords(w, 784) is not None) is (measured if setting is None else setting)
        assert len(probes) == (1 if setting is None else 0)
        assert kernels._u8_dwords(short, 27) is not None
    monkeypatch.undo()
    assert isinstance(kernels._dwords_pay(w, 784, kernels._xnor.make_u8_dwords(w, 784)), bool)


@pytest.mark.parametrize("bad", [-1, 3, 2**31 - 1])
def test_uint8_threshold_rows_index_is_checked_before_it_is_read(bad):
    """thr_index picks a thresholds row per position: an entry outside the rows is refused, never read."""
    from workbench.deploy import _xnor

    rng = np.random.default_rng(2)
    n, k, period = 70, 27, 4
    w = kernels.pack_signs(signs(rng, n, k))
    u = rng.integers(0, 256, (8, k), dtype=np.uint8)
    thr, flip = np.zeros(3 * n, np.int32), np.zeros(n, np.uint8)  # 3 distinct rows
    out = np.zeros((8, 2), np.uint64)
    path = kernels._PATHS[kernels.backend()]
    index = np.array([0, 1, 2, 1], np.int32)
    _xnor.gemm_uint8_threshold(u, w, thr, flip, out, path, 1, period, None, index)
    index[period - 1] = bad
    with pytest.raises(ValueError, match="thr_index out of range"):
        _xnor.gemm_uint8_threshold(u, w, thr, flip, out, path, 1, period, None, index)
