"""Benchmark commands: measured ratios printed to the terminal, never asserted in tests."""
from __future__ import annotations

import argparse
import ctypes
import os
import time

import numpy as np

# ------------------------------------------------------------------------------------------ bench kernels

_GEMM_SHAPES = [(64, 4096, 4096), (1, 4096, 4096), (256, 1024, 1024)]
_GEMM_SHAPES_QUICK = [(16, 512, 512), (1, 512, 512)]


def _best_seconds(fn, repeats: int, min_seconds: float = 0.02) -> float:
    """Best-of-`repeats` time per call, each repeat looping long enough to be above timer noise."""
    fn()  # warm up caches, page in buffers, start the thread pools
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    number = max(1, int(min_seconds / max(once, 1e-9)))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def _blas_thread_setter():
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
        for symbol in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                       "openblas_set_num_threads64_", "openblas_set_num_threads"):
            setter = getattr(library, symbol, None)
            if setter is not None:
                return lambda count, setter=setter: setter(ctypes.c_int(count))
    return None


def cli_bench_kernels(args: argparse.Namespace) -> int:
    """`bnn-workbench bench kernels`: xnor_gemm vs numpy float32 matmul, binary 3x3 conv vs torch conv2d."""
    import torch

    from workbench import kernels

    quick = bool(getattr(args, "quick", False))
    threads_list = list(getattr(args, "threads", None) or [1, 2])
    if any(t < 1 for t in threads_list):
        raise ValueError(f"--threads: expected positive thread counts, got {threads_list}")
    repeats = 2 if quick else 7
    rng = np.random.default_rng(0)
    set_blas_threads = _blas_thread_setter()
    blas_note = "numpy/OpenBLAS threads set to match" if set_blas_threads else "numpy at its default BLAS threads"
    print(f"SIMD path: {kernels.backend()} (available: {', '.join(kernels.available_backends())}); "
          f"{blas_note}; torch threads set to match; best of {repeats}")

    print(f"\n{'xnor_gemm (M, N, K)':<24}{'threads':>8}{'binary MAC/s':>15}{'float32 MAC/s':>15}{'ratio':>9}")
    for m, n, k in _GEMM_SHAPES_QUICK if quick else _GEMM_SHAPES:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((n, k), dtype=np.float32)
        b_t = np.ascontiguousarray(b.T)
        a_bits, b_bits = kernels.pack_signs(a), kernels.pack_signs(b)
        # Each library's thread pool spins for a while after a call: measure one library at a time.
        binary = {t: _best_seconds(lambda: kernels.xnor_gemm(a_bits, b_bits, k, threads=t), repeats)
                  for t in threads_list}
        time.sleep(0.2)
        floating = {}
        for threads in threads_list:
            if set_blas_threads:
                set_blas_threads(threads)
            floating[threads] = _best_seconds(lambda: np.matmul(a, b_t), repeats)
        time.sleep(0.2)
        macs = m * n * k
        for threads in threads_list:
            print(f"{str((m, n, k)):<24}{threads:>8}{macs / binary[threads]:>15.3e}"
                  f"{macs / floating[threads]:>15.3e}{floating[threads] / binary[threads]:>8.1f}x")

    size, channels = (16, 64) if quick else (32, 128)
    x = rng.standard_normal((1, size, size, channels), dtype=np.float32)
    w = rng.standard_normal((channels, 3, 3, channels), dtype=np.float32)
    x_bits, w_bits = kernels.pack_signs(x), kernels.pack_signs(w)
    thresholds = np.zeros(channels, dtype=np.int32)
    flip = np.zeros(channels, dtype=bool)
    x_torch = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    w_torch = torch.from_numpy(np.ascontiguousarray(w.transpose(0, 3, 1, 2)))
    macs = size * size * channels * 9 * channels
    title = f"3x3 conv {channels}->{channels} {size}x{size}"
    print(f"\n{title:<24}{'threads':>8}{'binary MAC/s':>15}{'torch MAC/s':>15}{'ratio':>9}{'fused ratio':>13}")
    binary = {t: _best_seconds(lambda: kernels.xnor_conv2d(x_bits, w_bits, channels, padding="same", threads=t),
                               repeats) for t in threads_list}
    fused = {t: _best_seconds(lambda: kernels.xnor_conv2d_threshold(x_bits, w_bits, channels, thresholds, flip,
                                                                     padding="same", threads=t), repeats)
             for t in threads_list}
    time.sleep(0.2)
    floating = {}
    torch_threads = torch.get_num_threads()
    try:
        with torch.inference_mode():
            for threads in threads_list:
                torch.set_num_threads(threads)
                floating[threads] = _best_seconds(lambda: torch.nn.functional.conv2d(x_torch, w_torch, padding=1),
                                                  repeats)
    finally:
        torch.set_num_threads(torch_threads)
    for threads in threads_list:
        print(f"{'batch 1':<24}{threads:>8}{macs / binary[threads]:>15.3e}{macs / floating[threads]:>15.3e}"
              f"{floating[threads] / binary[threads]:>8.1f}x{floating[threads] / fused[threads]:>12.1f}x")

    k = 4096
    acts = rng.standard_normal((64, k), dtype=np.float32)
    pack = _best_seconds(lambda: kernels.pack_signs(acts), repeats)
    print(f"\npack_signs float32 (64, {k}): {acts.size / pack:.3e} values/s")
    return 0
