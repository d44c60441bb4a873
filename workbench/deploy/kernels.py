"""XNOR-popcount kernels on packed sign bits: the validating front of the compiled ``workbench._xnor``.

Layouts and bit order are those of docs/FORMAT.md ("Bit packing and layouts"): uint64 words, element
64*w + j in bit j of word w, bit 1 for -1, padding bits 0, so a dot product of -1/+1 vectors is
``k - 2 * popcount(a XOR b)``. Every argument is checked here, with the GIL held, before any compiled
loop runs: a wrong dtype, shape or memory layout raises ValueError and is never read out of bounds.

The SIMD path ("avx512", "avx2", "neon" on AArch64, or "scalar") is chosen from the CPU at import; the
environment variable ``BNN_WORKBENCH_SIMD`` (read at import) or :func:`set_backend` forces one.
``threads=None`` runs each call site on one thread or on all CPUs this process may use, whichever its measured
calls show faster (ThreadChoice), and on one thread while other processes keep the other CPUs busy
(free_cpus); ``BNN_WORKBENCH_THREADS`` or an explicit count fixes it. The engine decides once per network
call, for all its layers (ThreadCount).
Results are identical for any count.
"""

from __future__ import annotations

import os
import time

import numpy as np

from workbench.core.shapes import conv_output_size, same_padding, words
from workbench.deploy import _xnor
from workbench.deploy.free_cpus import affinity, free_cpus

__all__ = [
    "available_backends",
    "backend",
    "set_backend",
    "default_threads",
    "pack_signs",
    "unpack_signs",
    "xnor_gemm",
    "xnor_gemm_threshold",
    "xnor_gemm_uint8",
    "xnor_gemm_uint8_threshold",
    "conv_output_shape",
    "im2col_uint8",
    "xnor_conv2d",
    "xnor_conv2d_threshold",
    "max_pool2d_bits",
    "bind_gemm",
    "bind_conv2d",
    "bind_max_pool2d_bits",
    "bind_dense_chain",
    "bind_bit_body",
    "bind_input_conv2d",
    "bind_conv_net",
    "ThreadCount",
    "thread_policy",
]

_PATHS = {"avx512": _xnor.AVX512, "avx2": _xnor.AVX2, "neon": _xnor.NEON, "scalar": _xnor.SCALAR}
# The paths whose GEMM and convolution run on a panel of the weights (make_panel's layout).
_PANEL_PATHS = ("avx512", "avx2")
_PACK_DTYPES = (np.float32, np.float64, np.int8, np.int16, np.int32, np.int64)
_INT32_MAX = 2**31 - 1
# Bound uint8 calls with rows up to this long run the dword kernel (weights as signed bytes: k / 4 VPDPBUSD per 16
# dots on AVX-512, VPMADDUBSW per 8 on AVX2, exact in int16 up to here). Longer rows on AVX-512 get the layout too
# when it is at most U8_DWORD_MAX_BYTES (8x the packed weights) and U8_DWORD_LONG_ROWS says so: tiles of 8 rows or
# more (a batch) run the dword kernel, a single row keeps the packed-weight kernel, which reads 8x fewer bytes.
U8_DWORD_MAX_K = 256
U8_DWORD_MAX_BYTES = 32 << 20
# Long rows on the dword layout: None = where it measures faster at bind time (_dwords_pay), True / False = always /
# never. The two kernels trade places between CPUs of one family: 0.69x the time on one Xeon host, 1.14x on another.
U8_DWORD_LONG_ROWS: bool | None = None
# Longer rows with U8_LUT_MIN_COLS columns or more get make_u8_lut's layouts instead (half a byte per weight and
# format) where the CPU runs them: every batch then runs by table lookup on AVX2, and on AVX-512 with VBMI
# (docs/KERNELS.md, round 8).


def available_backends() -> list[str]:
    """The SIMD paths this CPU can run, fastest first."""
    return [name for name, path in _PATHS.items() if _xnor.cpu_supports(path)]


def _resolve(name: str, source: str) -> str:
    if not isinstance(name, str) or name not in (*_PATHS, "auto"):
        raise ValueError(f"{source}: expected one of {', '.join((*_PATHS, 'auto'))}, got {name!r}")
    if name == "auto":
        return available_backends()[0]
    if not _xnor.cpu_supports(_PATHS[name]):
        raise ValueError(
            f"{source}: SIMD path {name!r} is not supported by this CPU (available: {', '.join(available_backends())})"
        )
    return name


_backend = _resolve(
    os.environ.get("BNN_WORKBENCH_SIMD", "auto").strip().lower() or "auto", "environment variable BNN_WORKBENCH_SIMD"
)


def backend() -> str:
    """The SIMD path in use: "avx512", "avx2", "neon" or "scalar"."""
    return _backend


def set_backend(name: str) -> str:
    """Force a SIMD path ("auto" picks the fastest again); returns the path now in use."""
    global _backend
    _backend = _resolve(name, "set_backend")
    return _backend


def default_threads() -> int:
    """$BNN_WORKBENCH_THREADS, else the number of CPUs this process may run on."""
    value = os.environ.get("BNN_WORKBENCH_THREADS")
    if value:
        try:
            count = int(value)
        except ValueError:
            count = 0
        if count < 1:
            raise ValueError(f"environment variable BNN_WORKBENCH_THREADS: expected a positive integer, got {value!r}")
        return count
    return len(affinity())


def _threads(threads: int | None) -> int:
    if type(threads) is int and 1 <= threads <= _xnor.MAX_THREADS:  # the common case, first: checked every call
        return threads
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads: expected None or a positive integer, got {threads!r}")
    return min(int(threads), _xnor.MAX_THREADS)  # as the compiled functions clamp (2**63 would not fit a C int)


class ThreadChoice:
    """The thread count of one kernel call site and batch size under ``threads=None``: one thread or all.

    A fork-join call on more threads than the OS has free cores waits for a thread that is not scheduled (9-28x
    slower than one thread with one of two cores busy), so the choice is measured, not assumed, and leans to one
    thread: it starts there, tries all CPUs on the next call, then keeps, for one thread, a moving average of
    seconds per call (a slow one-thread call, say preempted, moves it by at most 4x), and for all CPUs the mean
    of their calls with a slow forgetting (weight 0.99 per call, so about the last 100): with one core busy a
    many-thread call is usually faster but now and then waits a whole time slice (milliseconds against tens of
    microseconds), and only a mean carries those stalls. It moves to all CPUs only while that mean is at least
    20% below one thread's, and back to one thread as soon as it is not at least 5% below, or at once after a
    many-thread call slower than 4 one-thread calls. The count not in use is tried again after 16 calls, that
    interval doubling (up to 4096) each time the trial loses; a trial that stalled so (it waited for a core)
    sets it to at least 1024 calls and lets it double up to 65536, so trials cost little once the right count
    is known. Its caller (_AutoThreads) asks it nothing while the OS says other processes hold the other CPUs
    (free_cpus), and runs "all CPUs" on the free ones (docs/KERNELS.md, "Threading").
    """

    __slots__ = ("many", "current", "seconds", "calls", "probe_at", "interval", "many_sum", "many_weight")

    def __init__(self, many: int):
        self.many = many
        self.current = 1
        self.seconds = {1: 0.0, many: 0.0}  # one: moving average; many: the forgetting mean; 0 until measured
        self.calls = 0
        self.probe_at = 2
        self.interval = 16
        self.many_sum = 0.0
        self.many_weight = 0.0

    def pick(self) -> int:
        self.calls += 1
        if self.calls == self.probe_at:
            return self.many if self.current == 1 else 1
        return self.current

    def record(self, used: int, seconds: float) -> None:
        one = self.seconds[1]
        if used == 1:
            if one:
                seconds = min(seconds, 4 * one)
            self.seconds[1] = one = seconds if one == 0.0 else one + 0.3 * (seconds - one)
            stalled = False
        else:
            self.many_sum = 0.99 * self.many_sum + seconds
            self.many_weight = 0.99 * self.many_weight + 1.0
            self.seconds[self.many] = self.many_sum / self.many_weight
            stalled = bool(one) and seconds > 4 * one
        many = self.seconds[self.many]
        better = (many < 0.8 * one) if self.current == 1 else (many < 0.95 * one)
        chosen = self.many if (one and many and better and not stalled) else 1
        if used != self.current:  # a trial of the other count
            if chosen == used:
                self.interval = 16
            elif stalled:  # it waited for a core: strong evidence, so the next trial comes much later
                self.interval = min(max(2 * self.interval, 1024), 65536)
            else:
                self.interval = min(2 * self.interval, max(self.interval, 4096))
            self.probe_at = self.calls + self.interval
        elif chosen != self.current:
            self.interval = 16
            self.probe_at = self.calls + self.interval
        self.current = chosen


class ThreadCount:
    """A thread count that bound kernels read at every call: fixed (an explicit count, $BNN_WORKBENCH_THREADS),
    or set before each call by an owner that decides for many kernels at once. Pass one as ``threads`` to the
    bind_* functions: the engine times whole network calls with one ThreadChoice and sets the count its
    layers run on, so that 13 layers do not each try (and each wait for) a busy core."""

    __slots__ = ("count",)

    def __init__(self, count: int = 1):
        self.count = count

    def run(self, rows: int, kernel):
        return kernel(self.count)


class _AutoThreads:
    """``threads=None`` with several CPUs: a ThreadChoice per batch size (rows), shared by the plain calls of
    one kernel and weight shape through ``_SHARED_CHOICES`` (a plain function binds anew on every call)."""

    __slots__ = ("many", "choices")

    def __init__(self, many: int, shared_key=None):
        self.many = many
        if shared_key is None:
            self.choices = {}
        else:
            if len(_SHARED_CHOICES) > 4096:
                _SHARED_CHOICES.clear()
            self.choices = _SHARED_CHOICES.setdefault(shared_key, {})

    def run(self, rows: int, kernel):
        free = free_cpus()
        if free == 1:  # other processes keep the other CPUs busy: a fork onto them would wait for a time slice
            return kernel(1)
        choice = self.choices.get(rows)
        if choice is None:
            choice = self.choices[rows] = ThreadChoice(self.many)
        picked = choice.pick()  # 1 or all CPUs; all the free ones where others use some (recorded as "all")
        start = time.perf_counter()
        result = kernel(picked if free is None else min(picked, free))
        choice.record(picked, time.perf_counter() - start)
        return result


_SHARED_CHOICES: dict = {}


def thread_policy(threads, shared_key=None):
    """How a call site picks its thread count (``policy.run(rows, kernel)`` returns ``kernel(count)``): a given
    ThreadCount as it is; fixed when a count is given (or set in the environment, or in a build without
    OpenMP, where every call runs on one thread); else measured (ThreadChoice)."""
    if isinstance(threads, ThreadCount):
        return threads
    if threads is not None or os.environ.get("BNN_WORKBENCH_THREADS") or not _xnor.OPENMP:
        return ThreadCount(_threads(threads))
    many = default_threads()
    return ThreadCount(1) if many == 1 else _AutoThreads(many, shared_key)


# The checks below take the function's name and the argument's apart and join them only in an error
# message: the plain kernels run them on every call, where formatting labels would cost more than the checks.


def _check_k(k, name: str, arg: str) -> int:
    if type(k) is int and 0 <= k <= _INT32_MAX:  # the common case, first
        return k
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0 or k > _INT32_MAX:
        raise ValueError(f"{name}: {arg}: expected a non-negative integer bit count, got {k!r}")
    return int(k)


def _check_bits(array, name: str, arg: str, ndim: int, layout: str) -> np.ndarray:
    """A packed operand: a C-contiguous uint64 ndarray of the given rank."""
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{name}: {arg}: expected a numpy uint64 array {layout}, got {type(array).__name__}")
    if array.dtype != np.uint64:
        raise ValueError(f"{name}: {arg}: expected dtype uint64 (packed sign bits), got {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"{name}: {arg}: expected {ndim} dimensions {layout}, got shape {array.shape}")
    if not array.flags.c_contiguous:
        raise ValueError(f"{name}: {arg}: expected a C-contiguous array, got a strided view (use np.ascontiguousarray)")
    return array


def _check_words(array: np.ndarray, name: str, arg: str, k: int, what: str) -> None:
    if array.shape[-1] != words(k):
        raise ValueError(
            f"{name}: {arg}: expected ceil({what}/64) = {words(k)} words in the last axis for "
            f"{what}={k}, got {array.shape[-1]}"
        )


def _check_thresholds(thresholds, flip, n: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """int32 thresholds and uint8 flip flags, one per output channel."""
    thr = np.asarray(thresholds)
    if thr.ndim != 1 or thr.shape[0] != n:
        raise ValueError(f"{name}: thresholds: expected shape ({n},), one per output channel, got {thr.shape}")
    if thr.dtype.kind not in "iu":  # np.issubdtype(dtype, np.integer), at a tenth of its cost
        raise ValueError(f"{name}: thresholds: expected integers (int32), got dtype {thr.dtype}")
    if thr.dtype != np.int32 and thr.size and (thr.min() < -_INT32_MAX - 1 or thr.max() > _INT32_MAX):
        raise ValueError(f"{name}: thresholds: values do not fit in int32")
    flips = np.asarray(flip)
    if flips.ndim == 0:
        flips = np.full(n, flips)
    if flips.ndim != 1 or flips.shape[0] != n:
        raise ValueError(f"{name}: flip: expected shape ({n},), one flag per output channel, got {flips.shape}")
    # The plain kernels run this on every call: cheap passes only (no np.isin; no minimum of unsigned flags).
    kind = flips.dtype.kind
    if kind != "b" and not (
        kind in "iu" and (flips.size == 0 or ((kind == "u" or flips.min() >= 0) and flips.max() <= 1))
    ):
        raise ValueError(f"{name}: flip: expected booleans or 0/1, got dtype {flips.dtype} with values outside 0/1")
    return np.ascontiguousarray(thr, dtype=np.int32), np.ascontiguousarray(flips, dtype=np.uint8)


def _given(thresholds, name: str):
    """The *_threshold functions need thresholds: None would silently give the plain function's int32 dots."""
    if thresholds is None:
        raise ValueError(f"{name}: thresholds: expected one integer per output channel, got None")
    return thresholds


def pack_signs(x) -> np.ndarray:
    """Sign bits of the last axis of a float or integer array: shape (..., ceil(K/64)) uint64.

    sign(0) = +1 (also for -0.0): a bit is 1 only where the value is < 0. NaN raises ValueError.
    """
    array = np.asarray(x)
    if array.ndim == 0:
        raise ValueError("pack_signs: expected an array with at least one axis (the one to pack), got a scalar")
    if array.dtype == np.bool_ or np.issubdtype(array.dtype, np.unsignedinteger):
        k = array.shape[-1]
        return np.zeros((*array.shape[:-1], words(k)), dtype=np.uint64)  # never negative
    if array.dtype == np.float16:
        array = array.astype(np.float32)  # exact
    if array.dtype.type not in _PACK_DTYPES:
        raise ValueError(f"pack_signs: expected a float or integer array, got dtype {array.dtype}")
    array = np.ascontiguousarray(array)
    k = array.shape[-1]
    rows = array.reshape(-1, k) if array.size else np.empty((int(np.prod(array.shape[:-1])), k), array.dtype)
    out = np.empty((rows.shape[0], words(k)), dtype=np.uint64)
    if _xnor.pack_rows(rows, out, _PATHS[_backend]):
        raise ValueError("pack_signs: the input contains NaN, which has no sign")
    return out.reshape(*array.shape[:-1], words(k))


def unpack_signs(bits, k: int) -> np.ndarray:
    """Inverse of pack_signs: (..., ceil(k/64)) uint64 -> (..., k) int8 of -1/+1."""
    k = _check_k(k, "unpack_signs", "k")
    if isinstance(bits, np.ndarray) and bits.ndim == 0:
        raise ValueError("unpack_signs: bits: expected an array of words (..., ceil(k/64)), got a scalar")
    bits = _check_bits(bits, "unpack_signs", "bits", getattr(bits, "ndim", 1), "(..., words)")
    _check_words(bits, "unpack_signs", "bits", k, "k")
    rows = bits.reshape(int(np.prod(bits.shape[:-1])), bits.shape[-1])
    out = np.empty((rows.shape[0], k), dtype=np.int8)
    _xnor.unpack_rows(rows, k, out)
    return out.reshape(*bits.shape[:-1], k)


# ---------------------------------------------------------------------------------------------- GEMM


def xnor_gemm(a_bits, b_bits, k: int, threads: int | None = None) -> np.ndarray:
    """-1/+1 dot products A.B^T as int32 (M, N); A (M, words) and B (N, words) packed along K."""
    return _bind_gemm("xnor_gemm", "b_bits", b_bits, k, threads=threads, plain=True)(a_bits)


def xnor_gemm_threshold(a_bits, b_bits, k: int, thresholds, flip, threads: int | None = None) -> np.ndarray:
    """A.B^T compared per output channel n: packed uint64 (M, ceil(N/64)), bit 1 = -1.

    flip[n] = 0: +1 iff dot >= thresholds[n]; flip[n] = 1: +1 iff dot <= thresholds[n].
    """
    thresholds = _given(thresholds, "xnor_gemm_threshold")
    return _bind_gemm("xnor_gemm_threshold", "b_bits", b_bits, k, thresholds, flip, threads=threads, plain=True)(a_bits)


def xnor_gemm_uint8(u, w_bits, k: int, threads: int | None = None) -> np.ndarray:
    """Exact dot products of uint8 rows u (M, k) with -1/+1 rows packed in w_bits (N, ceil(k/64)): int32 (M, N).

    The first layer on raw pixels: sum_t u[t] * w[t] = sum(u) - 2 * (sum of u[t] where w[t] = -1), computed
    in integers (no bit planes, no float rounding); 255 * k must fit in int32.
    """
    return _bind_gemm("xnor_gemm_uint8", "w_bits", w_bits, k, uint8=True, threads=threads, plain=True)(u)


def xnor_gemm_uint8_threshold(u, w_bits, k: int, thresholds, flip, threads: int | None = None) -> np.ndarray:
    """xnor_gemm_uint8 compared per output channel n: packed uint64 (M, ceil(N/64)), bit 1 = -1.

    flip[n] = 0: +1 iff dot >= thresholds[n]; flip[n] = 1: +1 iff dot <= thresholds[n]. thresholds may also be
    (P, N): row i is compared with thresholds[i % P] (the im2col rows of P output positions of each image, for a
    'same'-padded first layer whose thresholds depend on how many taps fall inside the image).
    """
    thresholds = _given(thresholds, "xnor_gemm_uint8_threshold")
    return _bind_gemm(
        "xnor_gemm_uint8_threshold", "w_bits", w_bits, k, thresholds, flip, uint8=True, threads=threads, plain=True
    )(u)


def bind_gemm(w_bits, k: int, thresholds=None, flip=None, *, uint8: bool = False, threads: int | None = None):
    """A dense layer's kernel call with its weights (and thresholds) validated once: returns ``f(a)``.

    ``f(a)`` is xnor_gemm (or xnor_gemm_threshold when thresholds are given; xnor_gemm_uint8[_threshold]
    with ``uint8=True``) on the activations ``a``. For the engine's hot path: only ``a`` is checked per call,
    by the compiled function (dtype, shape agreement; a mismatch raises ValueError), which saves the
    few microseconds the full checks cost at batch 1. The thread count is resolved now, the SIMD path per call.
    On AVX-512 the weights are also laid out once as a panel for the broadcast kernel (docs/KERNELS.md).
    """
    return _bind_gemm("bind_gemm", "w_bits", w_bits, k, thresholds, flip, uint8=uint8, threads=threads)


def _bind_gemm(
    name: str,
    w_name: str,
    w_bits,
    k,
    thresholds=None,
    flip=None,
    *,
    uint8: bool = False,
    threads=None,
    plain: bool = False,
):
    """The one validation of a GEMM, for bind_gemm and the xnor_gemm* functions: returns ``f(a)``.

    Errors start with ``name``; the weights are called ``w_name``. ``plain``: for one call of a plain
    function, so ``f`` checks its activations fully (dtype, rank, layout, length), and no panel is kept
    (the compiled function makes one when enough rows amortise it); else ``f`` leaves the activations to
    the compiled function's memory-safety checks and the weights' panel is made now, once.
    """
    k = _check_k(k, name, "k")
    w = _check_bits(w_bits, name, w_name, 2, "(N, words)")
    _check_words(w, name, w_name, k, "k")
    if uint8 and 255 * k > _INT32_MAX:
        raise ValueError(f"{name}: k: 255 * k must fit in int32, got k={k}")
    n = w.shape[0]
    policy = thread_policy(threads, (name, w.shape, k) if plain else None)
    period = 0  # uint8 rows: thresholds (P, N) compare row i with thresholds[i % P] (or [thr_index[i % P]])
    thr_index = None
    if thresholds is not None:
        if uint8 and np.ndim(thresholds) == 2:
            thr = np.asarray(thresholds)
            period = thr.shape[0]
            if period == 0 or thr.shape[1] != n:
                raise ValueError(
                    f"{name}: thresholds: expected ({n},) or, per row position, (P, {n}) with P >= 1, got {thr.shape}"
                )
            thr, _ = _check_thresholds(thr.reshape(-1), False, n * period, name)
            _, flips = _check_thresholds(np.zeros(n, np.int32), flip, n, name)
            if not plain and n:  # keep the distinct rows only (a 3x3 'same' conv: 9 of OH*OW), and an index
                rows, index = np.unique(thr.reshape(period, n), axis=0, return_inverse=True)
                thr, thr_index = np.ascontiguousarray(rows.reshape(-1)), index.reshape(-1).astype(np.int32)
        else:
            thr, flips = _check_thresholds(thresholds, flip, n, name)
        out_words = words(n)
    if uint8:
        # The compiled function takes k from the rows, which might still fit in the weights' words: checked
        # on every call.
        dwords = None if plain else _u8_dwords(w, k)
        lut = None if plain else _u8_lut(w, k)
        if thresholds is None:

            def call(u):
                u = _check_uint8_rows(u, k, name) if plain else _check_row_length(u, k, name)
                out = np.empty((len(u), n), dtype=np.int32)
                policy.run(len(u), lambda t: _xnor.gemm_uint8(u, w, out, _PATHS[_backend], t, dwords, lut))
                return out

            return call

        gemm = _xnor.U8Gemm(w, k, thr, flips, period, dwords, thr_index, lut)

        def call(u):
            u = _check_uint8_rows(u, k, name) if plain else _check_row_length(u, k, name)
            out = np.empty((len(u), out_words), dtype=np.uint64)
            policy.run(len(u), lambda t: gemm(u, out, _PATHS[_backend], t))
            return out

        call.compiled = gemm  # for bind_input_conv2d
        return call
    panel = None if plain else _panel(w)
    if thresholds is None:

        def call(a):
            if plain:
                _check_packed_rows(a, k, name)
            elif type(a) is not np.ndarray:  # the compiled function would raise TypeError
                raise ValueError(f"{name}: a_bits: expected a numpy uint64 array (M, words), got {type(a).__name__}")
            out = np.empty((len(a), n), dtype=np.int32)
            use = panel if _backend in _PANEL_PATHS else None
            policy.run(len(a), lambda t: _xnor.gemm(a, w, k, out, _PATHS[_backend], t, use))
            return out

        return call

    def call(a):
        if plain:
            _check_packed_rows(a, k, name)
        elif type(a) is not np.ndarray:
            raise ValueError(f"{name}: a_bits: expected a numpy uint64 array (M, words), got {type(a).__name__}")
        out = np.empty((len(a), out_words), dtype=np.uint64)
        use = panel if _backend in _PANEL_PATHS else None
        policy.run(len(a), lambda t: _xnor.gemm_threshold(a, w, k, thr, flips, out, _PATHS[_backend], t, use))
        return out

    return call


def _u8_dwords(w: np.ndarray, k: int):
    """The dword layout of uint8 weights where this CPU's kernels use it, made once at bind time, else None: short
    rows (a first convolution's patches) on AVX-512 and AVX2, longer rows on AVX-512 up to U8_DWORD_MAX_BYTES."""
    if k <= 0 or not _xnor.cpu_supports(_xnor.AVX2):
        return None
    if k <= U8_DWORD_MAX_K:
        return _xnor.make_u8_dwords(w, k)
    fits = -(-k // 4) * 4 * -(-w.shape[0] // 16) * 16 <= U8_DWORD_MAX_BYTES
    if not _xnor.cpu_supports(_xnor.AVX512) or not fits or U8_DWORD_LONG_ROWS is False:
        return None
    if _u8_lut_kept(w, k) and _xnor.U8_LUT_TABLE64 in _xnor.U8_LUT_FORMATS:
        return None  # the AVX-512 path runs every batch of these rows by table lookup
    shape = (w.shape[0], k)
    if U8_DWORD_LONG_ROWS is None and _DWORDS_PAY.get(shape) is False:
        return None  # measured slower for this shape already: no layout to make
    dwords = _xnor.make_u8_dwords(w, k)
    if U8_DWORD_LONG_ROWS:
        return dwords
    if shape not in _DWORDS_PAY:  # the speed depends on the CPU and the shape, not on the weights
        _DWORDS_PAY[shape] = _dwords_pay(w, k, dwords)
    return dwords if _DWORDS_PAY[shape] else None


_DWORDS_PAY: dict[tuple[int, int], bool] = {}  # (N, k) -> _dwords_pay's answer, measured once per process


def _u8_lut_kept(w: np.ndarray, k: int) -> bool:
    """Whether uint8 weights get the table-lookup layouts: on a CPU whose AVX2 or AVX-512 path runs them, rows longer
    than the dword kernel's short rows, and enough columns (xnor_u8_lut_call)."""
    return bool(_xnor.U8_LUT_FORMATS) and k > U8_DWORD_MAX_K and w.shape[0] >= _xnor.U8_LUT_MIN_COLS


def _u8_lut(w: np.ndarray, k: int):
    """The table-lookup layout of uint8 weights where this CPU's kernels use it (_u8_lut_kept), made once at bind
    time, else None."""
    return _xnor.make_u8_lut(w, k) if _u8_lut_kept(w, k) else None


def _dwords_pay(w: np.ndarray, k: int, dwords: np.ndarray) -> bool:
    """Whether a batch of long uint8 rows runs faster on the dword layout than on the packed weights on this CPU:
    16 rows timed on each, alternating, best of 5 (a few ms, once per shape and process; the dots are the same
    either way)."""
    rows = np.random.default_rng(0).integers(0, 256, (16, k), dtype=np.uint8)
    out = np.empty((len(rows), w.shape[0]), dtype=np.int32)
    best = {True: float("inf"), False: float("inf")}
    for _ in range(5):
        for use in best:
            start = time.perf_counter()
            _xnor.gemm_uint8(rows, w, out, _xnor.AVX512, 1, dwords if use else None)
            best[use] = min(best[use], time.perf_counter() - start)
    return best[True] < best[False]


def bind_dense_chain(first, middle, last, *, threads: int | None = None):
    """A stack of dense layers as one compiled call: ``f(u)`` float32 (M, N_last) from uint8 rows u (M, k),
    or, with ``first=None``, ``f(a_bits)`` from packed rows (M, words) (a network's dense tail).

    first: ``(w_bits, k, thresholds, flip)``, the uint8 layer (xnor_gemm_uint8_threshold), or None; middle: a list of
    ``(w_bits, k, thresholds, flip)``, binary layers into bits (xnor_gemm_threshold); last: ``(w_bits, k,
    scale, shift)``, a binary layer whose dots become ``float32(dot * float64(scale) + float64(shift))``, as
    ``xnor_gemm(...) * scale + shift`` in NumPy with float32 scale and shift, then ``astype(float32)``.
    Each layer's k must be the previous layer's N. Results are those of the layer-by-layer calls, bit for bit;
    the whole stack runs without the GIL in one call (the binary MLP at batch 1 spends more time in per-call
    Python than in its kernels otherwise). ``threads`` as for bind_gemm, one choice for the whole stack.
    """
    name = "bind_dense_chain"
    if first is not None:
        w0, k0, thr0, flip0 = first
        k0 = _check_k(k0, name, "k")
        w0 = _check_bits(w0, name, "first w_bits", 2, "(N, words)")
        _check_words(w0, name, "first w_bits", k0, "k")
        if 255 * k0 > _INT32_MAX:
            raise ValueError(f"{name}: k: 255 * k must fit in int32, got k={k0}")
        thr0, flip0 = _check_thresholds(thr0, flip0, w0.shape[0], name)
        width = w0.shape[0]
    else:
        width = None  # the first binary layer takes packed rows of its own k
    layers = []
    for index, (w, k, *rest) in enumerate([*middle, last]):
        arg = "last w_bits" if index == len(middle) else f"middle[{index}] w_bits"
        k = _check_k(k, name, "k")
        w = _check_bits(w, name, arg, 2, "(N, words)")
        _check_words(w, name, arg, k, "k")
        if width is not None and k != width:
            raise ValueError(f"{name}: {arg}: k={k} is not the previous layer's {width} outputs")
        width = w.shape[0]
        if index < len(middle):
            thr, flips = _check_thresholds(rest[0], rest[1], width, name)
            layers.append((w, k, thr, flips, _panel(w)))
        else:
            scale, shift = (np.asarray(v, dtype=np.float32).astype(np.float64) for v in rest)
            if scale.shape != (width,) or shift.shape != (width,):
                raise ValueError(f"{name}: last: scale and shift: expected shape ({width},)")
            layers.append((w, k, scale, shift, _panel(w)))
    if (
        min(layer[0].shape[0] for layer in layers) < 1
        or min(layer[1] for layer in layers) < 1
        or (first is not None and (w0.shape[0] < 1 or k0 < 1))
    ):
        raise ValueError(f"{name}: every layer needs at least one input and one output")
    chain = _xnor.DenseChain(
        None if first is None else (w0, k0, thr0, flip0, _u8_dwords(w0, k0), _u8_lut(w0, k0)), layers[:-1], layers[-1]
    )
    policy = thread_policy(threads)
    if first is None:  # packed rows of the first binary layer's words
        arg, in_dtype, in_width, run = "a_bits", np.uint64, layers[0][0].shape[1], chain.run_bits
    else:
        arg, in_dtype, in_width, run = "u", np.uint8, k0, chain.run

    def call(rows):
        if type(rows) is not np.ndarray or rows.dtype != in_dtype or rows.ndim != 2 or rows.shape[1] != in_width:
            raise ValueError(
                f"{name}: {arg}: expected {np.dtype(in_dtype).name} rows (M, {in_width}), got "
                f"{getattr(rows, 'dtype', type(rows).__name__)} with shape {getattr(rows, 'shape', None)}"
            )
        rows = np.ascontiguousarray(rows)
        out = np.empty((len(rows), width), dtype=np.float32)
        policy.run(len(rows), lambda t: run(rows, out, _PATHS[_backend], t))
        return out

    call.compiled = chain  # for bind_conv_net
    return call


def _panel(rows: np.ndarray):
    """The weights in the broadcast kernels' layout (made once, as large as the weights), or None where the
    CPU has no path that uses it (AVX-512, AVX2)."""
    usable = any(_xnor.cpu_supports(_PATHS[name]) for name in _PANEL_PATHS)
    return _xnor.make_panel(rows) if usable and rows.shape[1] else None


def _check_packed_rows(a, k: int, name: str) -> None:
    """The full check of packed activations A (M, ceil(k/64))."""
    _check_bits(a, name, "a_bits", 2, "(M, words)")
    _check_words(a, name, "a_bits", k, "k")


def _check_row_length(u, k: int, name: str):
    """The per-call check of a bound uint8 call: rows of k values (the compiled function checks the rest)."""
    if getattr(u, "ndim", 0) != 2 or u.shape[1] != k:
        raise ValueError(f"{name}: u: expected uint8 rows of k={k} values, got shape {getattr(u, 'shape', None)}")
    return u


def _check_uint8_rows(u, k: int, name: str) -> np.ndarray:
    """The full check of uint8 rows (M, k); a strided array is copied."""
    if not isinstance(u, np.ndarray) or u.dtype != np.uint8 or u.ndim != 2:
        raise ValueError(
            f"{name}: u: expected a 2-D numpy uint8 array (M, k), got "
            f"{getattr(u, 'dtype', type(u).__name__)} with shape {getattr(u, 'shape', None)}"
        )
    if u.shape[1] != k:
        raise ValueError(f"{name}: u: expected k={k} values per row, got {u.shape[1]}")
    return np.ascontiguousarray(u)


# ---------------------------------------------------------------------------------------------- convolution


def xnor_conv2d(x_bits, w_bits, c: int, stride=1, padding="valid", threads: int | None = None) -> np.ndarray:
    """Binary 2-D convolution: int32 (N, OH, OW, O) of -1/+1 dot products over KH*KW*C.

    x_bits: (N, H, W, ceil(C/64)) packed NHWC; w_bits: (O, KH, KW, ceil(C/64)) packed OHWI.
    stride: int or (sh, sw). padding: "valid"; "same" = (K-1)//2 before and the rest after (the output is
    ceil(H/stride) for odd K, as torch's padding=K//2); an int; (ph, pw); or (top, bottom, left, right).
    Padded positions hold +1, so they add +w to the dot; K = KH*KW*C everywhere.
    """
    return _bind_conv2d("xnor_conv2d", w_bits, c, None, None, stride, padding, threads, plain=True)(x_bits)


def xnor_conv2d_threshold(
    x_bits, w_bits, c: int, thresholds, flip, stride=1, padding="valid", threads: int | None = None
) -> np.ndarray:
    """xnor_conv2d fused with per-output-channel thresholds: packed (N, OH, OW, ceil(O/64)), bit 1 = -1.

    flip[o] = 0: +1 iff dot >= thresholds[o]; flip[o] = 1: +1 iff dot <= thresholds[o].
    """
    thresholds = _given(thresholds, "xnor_conv2d_threshold")
    return _bind_conv2d("xnor_conv2d_threshold", w_bits, c, thresholds, flip, stride, padding, threads, plain=True)(
        x_bits
    )


def bind_conv2d(w_bits, c: int, thresholds=None, flip=None, stride=1, padding="valid", threads: int | None = None):
    """xnor_conv2d (or xnor_conv2d_threshold) with weights, geometry and thresholds validated once:
    returns ``f(x_bits)``, checked per call only by the compiled function (see bind_gemm); ``f.compiled`` is the
    compiled convolution it runs (for bind_bit_body)."""
    return _bind_conv2d("bind_conv2d", w_bits, c, thresholds, flip, stride, padding, threads)


def _bind_conv2d(name: str, w_bits, c, thresholds, flip, stride, padding, threads, *, plain: bool = False):
    """The one validation of a convolution, for bind_conv2d and the xnor_conv2d* functions: returns
    ``f(x_bits)``; ``name`` and ``plain`` as in _bind_gemm."""
    c = _check_k(c, name, "c")
    w = _check_bits(w_bits, name, "w_bits", 4, "(O, KH, KW, words), OHWI packed along I")
    _check_words(w, name, "w_bits", c, "c")
    o, kh, kw = w.shape[:3]
    if kh < 1 or kw < 1:
        raise ValueError(f"{name}: w_bits: expected a kernel of at least 1x1, got {kh}x{kw}")
    if kh * kw * c > _INT32_MAX:
        raise ValueError(f"{name}: KH*KW*C = {kh * kw * c} does not fit in int32")
    sh, sw = _stride(stride)
    top, bottom, left, right = _padding(padding, kh, kw)
    policy = thread_policy(threads, (name, w.shape, c, sh, sw, top, bottom, left, right) if plain else None)
    thr, flips = _check_thresholds(thresholds, flip, o, name) if thresholds is not None else (None, None)
    channels, dtype = (o, np.int32) if thresholds is None else (words(o), np.uint64)
    # bound: weights, panel and thresholds checked and held by one compiled Conv2d, so a call pays for x and out only
    kernel = _xnor.Conv2d(w, c, sh, sw, top, left, thr, flips, None if plain else _panel(w.reshape(o, -1)))

    def output_shape(h: int, w: int, _words: int = 0) -> tuple[int, int, int]:
        """(OH, OW, last axis) of the output for an (H, W) input."""
        return max((h + top + bottom - kh) // sh + 1, 0), max((w + left + right - kw) // sw + 1, 0), channels

    def conv(x):
        if plain:
            _check_bits(x, name, "x_bits", 4, "(N, H, W, words), NHWC packed along C")
            _check_words(x, name, "x_bits", c, "c")
        elif getattr(x, "ndim", 0) != 4:
            raise ValueError(f"{name}: x_bits: expected (N, H, W, words), got {getattr(x, 'shape', x)!r}")
        out = np.empty((x.shape[0], *output_shape(x.shape[1], x.shape[2])), dtype=dtype)
        policy.run(x.shape[0] * x.shape[1] * x.shape[2], lambda t: kernel(x, out, _PATHS[_backend], t))
        return out

    conv.compiled, conv.output_shape = kernel, output_shape
    return conv


def _padding(padding, kh: int, kw: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) from "valid", "same" or explicit ints."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            return (*same_padding(kh), *same_padding(kw))
        raise ValueError(f"padding: expected 'same', 'valid', an int or (top, bottom, left, right), got {padding!r}")
    try:
        values = (padding,) * 4 if isinstance(padding, (int, np.integer)) else tuple(padding)
    except TypeError:  # None, a float: not a sequence
        values = ()
    if len(values) == 2:  # (vertical, horizontal), as torch
        values = (values[0], values[0], values[1], values[1])
    if len(values) != 4 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0 for v in values):
        raise ValueError(f"padding: expected 'same', 'valid', an int or (top, bottom, left, right), got {padding!r}")
    return tuple(int(v) for v in values)


def _stride(stride) -> tuple[int, int]:
    try:
        values = (stride, stride) if isinstance(stride, (int, np.integer)) else tuple(stride)
    except TypeError:
        values = ()
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in values):
        raise ValueError(f"stride: expected a positive int or (vertical, horizontal), got {stride!r}")
    return int(values[0]), int(values[1])


def conv_output_shape(h: int, w: int, kh: int, kw: int, stride=1, padding="valid") -> tuple[int, int]:
    """(OH, OW) of a convolution, floor mode as torch: (H + pad_top + pad_bottom - KH) // stride + 1."""
    sh, sw = _stride(stride)
    top, bottom, left, right = _padding(padding, kh, kw)
    return max(conv_output_size(h, kh, sh, top, bottom), 0), max(conv_output_size(w, kw, sw, left, right), 0)


def im2col_uint8(x, kh: int, kw: int, stride=1, padding="valid") -> np.ndarray:
    """The patches of NCHW uint8 images as rows (N*OH*OW, KH*KW*C), each in (KH, KW, C) order, padded with 0.

    With OHWI weights packed along the whole patch (pack_signs of w.reshape(O, KH*KW*C)), xnor_gemm_uint8
    on these rows is an exact convolution of the pixels: the first layer of an image network.
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4:
        raise ValueError(
            f"im2col_uint8: x: expected a 4-D numpy uint8 array (N, C, H, W), got "
            f"{type(x).__name__} {getattr(x, 'dtype', '')} {getattr(x, 'shape', '')}".rstrip()
        )
    for value, name in ((kh, "kh"), (kw, "kw")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"im2col_uint8: {name}: expected a positive int, got {value!r}")
    sh, sw = _stride(stride)
    top, bottom, left, right = _padding(padding, kh, kw)
    if kh > x.shape[2] + top + bottom or kw > x.shape[3] + left + right:
        raise ValueError(
            f"im2col_uint8: a {kh}x{kw} kernel does not fit in {x.shape[2]}x{x.shape[3]} images padded by {padding!r}"
        )
    oh, ow = conv_output_shape(x.shape[2], x.shape[3], kh, kw, stride, padding)
    out = np.empty((x.shape[0] * oh * ow, kh * kw * x.shape[1]), dtype=np.uint8)
    _xnor.im2col_uint8(np.ascontiguousarray(x), kh, kw, sh, sw, top, left, oh, ow, out)
    return out


# ---------------------------------------------------------------------------------------------- pooling


def max_pool2d_bits(x_bits, flipped=False) -> np.ndarray:
    """2x2 stride-2 max pooling of packed NHWC bits (N, H, W, words) -> (N, H//2, W//2, words).

    The max of +-1 values is -1 only if all four are -1: a bitwise AND of the sign bits. When the pooling
    sits between a binary layer and a flipped (decreasing) threshold, max before the threshold is min
    after it, a bitwise OR: pass flipped=True, or one bool per channel (length C) for mixed directions.
    Odd H/W drop the last row/column (floor, as torch).
    """
    return _bind_max_pool2d_bits("max_pool2d_bits", flipped, plain=True)(x_bits)


def bind_max_pool2d_bits(flipped=False):
    """max_pool2d_bits with its AND/OR choice (a bool, or one bool per channel) prepared once: returns
    ``f(x_bits)``, checked per call only by the compiled function (see bind_gemm)."""
    return _bind_max_pool2d_bits("bind_max_pool2d_bits", flipped)


def _bind_max_pool2d_bits(name: str, flipped, *, plain: bool = False):
    """The one validation of a pooling, for bind_max_pool2d_bits and max_pool2d_bits: returns ``f(x_bits)``;
    ``name`` and ``plain`` as in _bind_gemm."""
    flips = np.asarray(flipped)
    if flips.dtype != np.bool_ or flips.ndim > 1:
        raise ValueError(
            f"{name}: flipped: expected a bool or a 1-D bool array, got dtype {flips.dtype} shape {flips.shape}"
        )
    masks = {}  # words -> or_mask
    if flips.ndim == 1:
        masks[words(flips.shape[0])] = pack_signs(np.where(flips, -1, 1).astype(np.int8))

    def pool(x):
        if plain:
            _check_bits(x, name, "x_bits", 4, "(N, H, W, words), NHWC packed along C")
        elif getattr(x, "ndim", 0) != 4:
            raise ValueError(f"{name}: x_bits: expected (N, H, W, words), got {getattr(x, 'shape', x)!r}")
        mask = or_mask(x.shape[3])
        out = np.empty((x.shape[0], *output_shape(*x.shape[1:])), dtype=np.uint64)
        _xnor.pool2x2(x, mask, out)
        return out

    def output_shape(h: int, w: int, count: int) -> tuple[int, int, int]:
        """(OH, OW, words) of the output for an (H, W, words) input: floor on odd sizes."""
        return h // 2, w // 2, count

    def or_mask(count: int) -> np.ndarray:
        """The OR mask (1 bits: OR, the min of +-1) for inputs of ``count`` words, made once per count."""
        mask = masks.get(count)
        if mask is None:
            if flips.ndim:
                raise ValueError(
                    f"{name}: x_bits: expected {words(flips.shape[0])} words for "
                    f"{flips.shape[0]} channels, got {count} (one flag per channel: "
                    f"len(flipped) = {flips.shape[0]})"
                )
            mask = np.zeros(count, dtype=np.uint64)  # AND everywhere (np.full costs ~1 us more)
            masks[count] = mask = ~mask if flips else mask
        return mask

    pool.or_mask, pool.output_shape = or_mask, output_shape
    return pool


def bind_bit_body(layers, in_shape, *, threads: int | None = None):
    """Binary convolutions (bind_conv2d, with thresholds) and 2x2 poolings (bind_max_pool2d_bits) run one after
    another by one compiled call, as a network's body between its first layer and its dense tail: returns
    ``f(x_bits)``, (N, H, W, words) -> the last layer's bits. ``layers``: the bound layers in order; ``in_shape``:
    (H, W, words) of the input, from which each layer's output shape follows. Bit for bit the bound layers' own
    calls; saves their Python call each (1.3 - 3 us at batch 1, a third of a small CNN's time). ``threads`` as for
    bind_gemm."""
    name = "bind_bit_body"
    ops, shapes, shape = [], [], tuple(int(v) for v in in_shape)
    for layer in layers:
        if getattr(layer, "compiled", None) is not None:
            ops.append(layer.compiled)
        elif getattr(layer, "or_mask", None) is not None:
            ops.append(layer.or_mask(shape[2]))
        else:
            raise ValueError(f"{name}: layers: expected bind_conv2d or bind_max_pool2d_bits layers, got {layer!r}")
        shape = layer.output_shape(*shape)
        shapes.append(shape)
    body = _xnor.BitBody(ops, shapes, *(int(v) for v in in_shape))
    policy = thread_policy(threads)

    def call(x):
        if type(x) is not np.ndarray or x.dtype != np.uint64 or x.ndim != 4:
            raise ValueError(
                f"{name}: x_bits: expected uint64 (N, H, W, words), got "
                f"{getattr(x, 'dtype', type(x).__name__)} with shape {getattr(x, 'shape', None)}"
            )
        return policy.run(x.shape[0] * x.shape[1] * x.shape[2], lambda t: body(x, _PATHS[_backend], t))

    call.compiled = body  # for bind_conv_net
    return call


def bind_input_conv2d(w_bits, kernel, c: int, in_hw, thresholds, flip, stride=1, padding="valid", *, threads=None):
    """A first convolution on uint8 images (N, C, H, W) into packed bits, as one compiled call: returns ``f(x)``
    -> uint64 (N, OH, OW, ceil(O/64)). ``w_bits``: (O, words) packed along the whole patch of KH*KW*C taps in
    (KH, KW, C) order (pack_signs of OHWI weights reshaped to (O, KH*KW*C)); ``kernel``: (KH, KW); ``in_hw``:
    (H, W); thresholds and flip as for bind_gemm(uint8=True) over the patches: (O,), or per output position
    (OH*OW, O). Bit for bit im2col_uint8 then that GEMM, without the patches array and the Python between them."""
    name = "bind_input_conv2d"
    if thresholds is None or flip is None:
        raise ValueError(f"{name}: thresholds and flip: expected arrays (the output is bits), got None")
    kh, kw = (int(v) for v in kernel)
    h, width, c = int(in_hw[0]), int(in_hw[1]), int(c)
    sh, sw = _stride(stride)
    im2col_uint8(np.zeros((0, c, h, width), np.uint8), kh, kw, (sh, sw), padding)  # the geometry, checked
    oh, ow = conv_output_shape(h, width, kh, kw, (sh, sw), padding)
    top, _, left, _ = _padding(padding, kh, kw)
    gemm = _bind_gemm(name, "w_bits", w_bits, kh * kw * c, thresholds, flip, uint8=True, threads=threads).compiled
    conv = _xnor.InputConv(gemm, c, h, width, kh, kw, sh, sw, top, left, oh, ow)
    policy = thread_policy(threads)

    def call(x):
        x = _uint8_images(x, name, conv.input_shape)
        out = np.empty((len(x), *conv.output_shape), dtype=np.uint64)
        policy.run(len(x) * oh * ow, lambda t: conv(x, out, _PATHS[_backend], t))
        return out

    call.compiled = conv  # for bind_conv_net
    return call


def bind_conv_net(first, body, tail, *, threads=None):
    """A convolutional network as one compiled call: ``first`` from bind_input_conv2d, ``body`` from bind_bit_body
    (its input the first's output), ``tail`` from bind_dense_chain(None, ...) (packed rows: the body's output
    flattened); returns ``f(x)`` -> float32 logits (N, classes) for uint8 images (N, C, H, W). Bit for bit the
    three calls; a batch-1 call allocates only its output and runs no Python between the layers."""
    name = "bind_conv_net"
    parts = [getattr(part, "compiled", None) for part in (first, body, tail)]
    kinds = (_xnor.InputConv, _xnor.BitBody, _xnor.DenseChain)
    if not all(isinstance(part, kind) for part, kind in zip(parts, kinds)):
        raise ValueError(f"{name}: expected bind_input_conv2d, bind_bit_body and bind_dense_chain(None, ...) calls")
    net = _xnor.ConvNet(*parts)
    policy = thread_policy(threads)
    positions = parts[0].output_shape[0] * parts[0].output_shape[1]

    def call(x):
        x = _uint8_images(x, name, parts[0].input_shape)
        out = np.empty((len(x), net.out_features), dtype=np.float32)
        policy.run(len(x) * positions, lambda t: net(x, out, _PATHS[_backend], t))
        return out

    return call


def _uint8_images(x, name: str, shape) -> np.ndarray:
    """x as C-contiguous uint8 images (N, *shape), or a ValueError naming what it is instead."""
    if type(x) is not np.ndarray or x.dtype != np.uint8 or x.shape[1:] != tuple(shape):
        raise ValueError(
            f"{name}: x: expected uint8 images (N, {', '.join(str(v) for v in shape)}), got "
            f"{getattr(x, 'dtype', type(x).__name__)} with shape {getattr(x, 'shape', None)}"
        )
    return np.ascontiguousarray(x)
