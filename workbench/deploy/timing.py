"""Interleaved timing: how every benchmark here turns wall-clock time on a shared machine into ratios.

A round times each contender once (one sample: the call looped long enough to be above timer noise), one
after another, in reverse order every other round, so that a burst of load from another process hits both
sides of a ratio within the same round. Each sample starts with one untimed call: the other contenders have
just evicted its weights from the caches, and a sample measures the call as a loop calling it back to back
(a server, a device's main loop) sees it, not the refill. Ratios are taken per round and reported as min /
median / max of those per-round ratios, never as the ratio of two separately taken best times. Thread counts are set by
each contender's ``setup`` before each of its samples (outside the timed loop): OpenBLAS through
:func:`blas_thread_setter`, torch by its caller, the XNOR kernels by their ``threads`` argument.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable

import numpy as np

from workbench.deploy import _xnor

Call = Callable[[], object]


def calls_per_sample(function: Call, min_seconds: float) -> int:
    """How many back-to-back calls make one sample of at least ``min_seconds``.

    After one warm-up call (caches, buffers, thread pools), up to 5 calls are timed (fewer when they already
    take ``min_seconds``) and the median sizes the sample: a single slow call, say a thread-count trial that
    waited for a busy core, would otherwise make every sample of this contender a fraction of the others'
    length and each of its rounds that much more exposed to load.
    """
    function()
    seconds: list[float] = []
    while not seconds or (len(seconds) < 5 and sum(seconds) < min_seconds):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return max(1, int(min_seconds / max(float(np.median(seconds)), 1e-9)))


def interleaved(
    contenders: dict[str, Call | tuple[Callable[[], None] | None, Call]],
    rounds: int = 7,
    min_seconds: float = 0.02,
) -> dict[str, list[float]]:
    """Seconds per call of every contender in each of ``rounds`` rounds: {name: [round 0, round 1, ...]}.

    A contender is a call, or (setup, call) where setup (say, setting a library's thread count) runs before
    each of its samples, untimed.
    """
    prepared = {}
    for name, contender in contenders.items():
        setup, call = contender if isinstance(contender, tuple) else (None, contender)
        if setup is not None:
            setup()
        prepared[name] = (setup, call, calls_per_sample(call, min_seconds))
    times: dict[str, list[float]] = {name: [] for name in prepared}
    names = list(prepared)
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            setup, call, number = prepared[name]
            if setup is not None:
                setup()
            call()  # untimed: the caches refilled after the other contenders
            start = time.perf_counter()
            for _ in range(number):
                call()
            times[name].append((time.perf_counter() - start) / number)
    return times


def spread(values) -> tuple[float, float, float]:
    """(min, median, max) of a list of per-round values."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.min()), float(np.median(array)), float(array.max())


def ratios(numerator: list[float], denominator: list[float]) -> tuple[float, float, float]:
    """(min, median, max) of numerator[r] / denominator[r] over the rounds r: per-round ratios."""
    return spread(np.asarray(numerator, dtype=np.float64) / np.asarray(denominator, dtype=np.float64))


def fastest(*series: list[float]) -> list[float]:
    """Per round, the fastest of several contenders (say, torch NCHW and channels_last)."""
    return [float(v) for v in np.min(np.asarray(series, dtype=np.float64), axis=0)]


def format_spread(values: tuple[float, float, float], spec: str = ".1f", unit: str = "") -> str:
    """'min / median / max' with one format for all three."""
    return " / ".join(f"{v:{spec}}{unit}" for v in values)


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages and its CPU count, printed beside every figure."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:  # not available on this platform
        return f"load average unknown, {os.cpu_count()} CPUs"
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def ceiling_call(path: int, seconds: float = 0.005) -> tuple[Call, int]:
    """(call, binary MACs per call) of the path's in-L1 XOR + popcount loop (``_xnor.peak_loop``), sized to
    take about ``seconds``: the instruction-throughput ceiling of one core, timed in the rounds with the
    kernels so that both see the same load."""
    passes = 2
    while True:
        start = time.perf_counter()
        macs = _xnor.peak_loop(path, passes)
        if time.perf_counter() - start >= seconds / 4 or passes >= 2**30:
            break
        passes *= 2
    passes *= 4
    return (lambda: _xnor.peak_loop(path, passes)), macs * 4


def blas_thread_setter() -> Callable[[int], None] | None:
    """numpy's OpenBLAS set_num_threads through ctypes (what threadpoolctl does), or None if not found."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in (
            "scipy_openblas_set_num_threads64_",
            "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_",
            "openblas_set_num_threads",
        ):
            setter = getattr(library, symbol, None)
            if setter is not None:
                return lambda count, setter=setter: setter(ctypes.c_int(count))
    return None
