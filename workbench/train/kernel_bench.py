"""``bnn-workbench bench kernels``: the kernels against float32 baselines and this core's own ceiling.

Every figure comes from interleaved rounds (workbench.deploy.timing): the in-L1 XOR + popcount ceiling, the
XNOR kernel and its baselines are timed one after another in each round, and ratios are per-round ratios
printed as min / median / max. Each row sets every library's thread count: the kernels' ``threads``,
OpenBLAS's (numpy) and torch's (which also sets its OpenMP pool). The float baseline of a convolution is the
faster of torch NCHW and channels_last in each round. Printed, never asserted.
"""

from __future__ import annotations

import contextlib
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import torch

from workbench.deploy import _xnor, kernels, timing
from workbench.deploy.engine import Engine
from workbench.train import benchmark

GEMM_SHAPES = [(64, 4096, 4096), (1, 4096, 4096), (256, 1024, 1024)]
GEMM_SHAPES_QUICK = [(16, 512, 512), (1, 512, 512)]
# pinned to one CPU, spinning until its parent (the benchmark) is gone, however that ends
_BUSY_LOOP = (
    "import os, sys\nparent = os.getppid()\nos.sched_setaffinity(0, {int(sys.argv[1])})\n"
    "while os.getppid() == parent:\n    for _ in range(100000):\n        pass\n"
)


@contextlib.contextmanager
def busy_core(cpu: int | None):
    """Another process spinning on one CPU (pinned there) for the duration, or nothing for None."""
    if cpu is None:
        yield
        return
    process = subprocess.Popen([sys.executable, "-c", _BUSY_LOOP, str(cpu)])
    try:
        yield
    finally:
        process.kill()
        process.wait()


def _label(threads) -> str:
    return "auto" if threads is None else str(threads)


def _blas(setter, threads):
    count = kernels.default_threads() if threads is None else threads
    return (lambda: setter(count)) if setter else None


def _torch(threads):
    count = kernels.default_threads() if threads is None else threads
    return lambda: torch.set_num_threads(count)


def run(threads_list, quick: bool = False, busy: int | None = None) -> int:
    rounds, sample = (3, 0.005) if quick else (9, 0.03)
    path = kernels._PATHS[kernels.backend()]
    ceiling, ceiling_macs = timing.ceiling_call(path, sample / 4)
    set_blas = timing.blas_thread_setter()
    torch_threads = torch.get_num_threads()
    rng = np.random.default_rng(0)
    settings = list(threads_list) + [None]  # None: the kernels' default (ThreadChoice), all CPUs for the others
    with busy_core(busy):
        print(
            f"SIMD path: {kernels.backend()} (available: {', '.join(kernels.available_backends())}); "
            f"OpenMP {'on' if _xnor.OPENMP else 'off (one thread per call)'}; "
            f"{'OpenBLAS threads set per row' if set_blas else 'OpenBLAS thread setter not found'}; "
            f"torch threads set per row; {rounds} interleaved rounds, ratios min / median / max of per-round ratios"
        )
        if busy is not None:
            print(f"another process keeps CPU {busy} busy (a pinned busy loop) during every measurement")
        print(timing.load_average())
        try:
            _gemm_rows(settings, quick, rounds, sample, ceiling, ceiling_macs, set_blas, rng)
            _conv_rows(settings, quick, rounds, sample, ceiling, ceiling_macs, rng)
            _uint8_rows(quick, rounds, sample, rng)
            _paths_against_each_other(quick, rounds, sample, rng)
            _default_vs_one(quick, rounds, sample, rng)
            print(timing.load_average())
        finally:
            torch.set_num_threads(torch_threads)
            kernels.set_backend("auto")
    return 0


def _share(ceiling_times, kernel_times, macs, ceiling_macs, threads) -> str:
    """The kernel's binary MAC/s as a share of the ceiling (times the threads used), per round."""
    cores = kernels.default_threads() if threads is None else threads
    shares = [100 * (macs / k) / (cores * ceiling_macs / c) for c, k in zip(ceiling_times, kernel_times, strict=True)]
    return timing.format_spread(timing.spread(shares), ".0f", "%")


def _gemm_rows(settings, quick, rounds, sample, ceiling, ceiling_macs, set_blas, rng) -> None:
    print(
        f"\n{'xnor_gemm (M, N, K)':<22}{'threads':>8}{'binary MAC/s':>14}{'of ceiling':>18}"
        f"{'numpy MAC/s':>13}{'x numpy (min/med/max)':>26}"
    )
    for m, n, k in GEMM_SHAPES_QUICK if quick else GEMM_SHAPES:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((n, k), dtype=np.float32)
        b_t = np.ascontiguousarray(b.T)
        a_bits, b_bits = kernels.pack_signs(a), kernels.pack_signs(b)
        macs = m * n * k
        for threads in settings:
            gemm = kernels.bind_gemm(b_bits, k, threads=threads)
            times = timing.interleaved(
                {
                    "ceiling": ceiling,
                    "xnor": lambda gemm=gemm, a_bits=a_bits: gemm(a_bits),
                    "numpy": (_blas(set_blas, threads), lambda a=a, b_t=b_t: np.matmul(a, b_t)),
                },
                rounds,
                sample,
            )
            note = "  (numpy: weights from DRAM)" if m == 1 else ""
            print(
                f"{str((m, n, k)):<22}{_label(threads):>8}{macs / np.median(times['xnor']):>14.3e}"
                f"{_share(times['ceiling'], times['xnor'], macs, ceiling_macs, threads):>18}"
                f"{macs / np.median(times['numpy']):>13.3e}"
                f"{timing.format_spread(timing.ratios(times['numpy'], times['xnor']), '.1f', 'x'):>26}{note}"
            )
    print(
        f"ceiling ({kernels.backend()} XOR + popcount, in L1, 1 core): {ceiling_macs / np.median(times['ceiling']):.3e}"
    )


def _conv_rows(settings, quick, rounds, sample, ceiling, ceiling_macs, rng) -> None:
    size, channels = (16, 64) if quick else (32, 128)
    x = rng.standard_normal((1, size, size, channels), dtype=np.float32)
    w = rng.standard_normal((channels, 3, 3, channels), dtype=np.float32)
    x_bits, w_bits = kernels.pack_signs(x), kernels.pack_signs(w)
    thresholds, flip = np.zeros(channels, dtype=np.int32), np.zeros(channels, dtype=bool)
    x_nchw = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    x_last = x_nchw.contiguous(memory_format=torch.channels_last)
    w_nchw = torch.from_numpy(np.ascontiguousarray(w.transpose(0, 3, 1, 2)))
    w_last = w_nchw.contiguous(memory_format=torch.channels_last)
    macs = size * size * channels * 9 * channels
    title = f"3x3 conv {channels}->{channels} {size}x{size}"
    print(
        f"\n{title:<22}{'threads':>8}{'binary MAC/s':>14}{'of ceiling':>18}{'torch MAC/s':>13}"
        f"{'x torch (min/med/max)':>26}{'fused x torch':>22}"
    )
    for threads in settings:
        conv = kernels.bind_conv2d(w_bits, channels, padding="same", threads=threads)
        fused = kernels.bind_conv2d(w_bits, channels, thresholds, flip, padding="same", threads=threads)

        def torch_conv(xt, wt):
            with torch.inference_mode():
                return torch.nn.functional.conv2d(xt, wt, padding=1)

        times = timing.interleaved(
            {
                "ceiling": ceiling,
                "xnor": lambda conv=conv: conv(x_bits),
                "fused": lambda fused=fused: fused(x_bits),
                "nchw": (_torch(threads), lambda: torch_conv(x_nchw, w_nchw)),
                "last": (_torch(threads), lambda: torch_conv(x_last, w_last)),
            },
            rounds,
            sample,
        )
        best = timing.fastest(times["nchw"], times["last"])
        print(
            f"{'batch 1':<22}{_label(threads):>8}{macs / np.median(times['xnor']):>14.3e}"
            f"{_share(times['ceiling'], times['xnor'], macs, ceiling_macs, threads):>18}"
            f"{macs / np.median(best):>13.3e}"
            f"{timing.format_spread(timing.ratios(best, times['xnor']), '.1f', 'x'):>26}"
            f"{timing.format_spread(timing.ratios(best, times['fused']), '.1f', 'x'):>22}"
        )


def _uint8_rows(quick, rounds, sample, rng) -> None:
    """The uint8 first layer (the binary MLP's 784 -> 2048) on one thread: 8-bit MACs per second, and on the
    AVX-512 path their share of this core's VPDPBUSD ceiling (``_xnor.vnni_peak_loop``) in the same rounds."""
    k, n = 784, 512 if quick else 2048
    w_bits = kernels.pack_signs(rng.standard_normal((n, k), dtype=np.float32))
    vnni = kernels.backend() == "avx512"
    print(
        f"\n{'xnor_gemm_uint8 (M, N, K)':<28}{'8-bit MAC/s (min/med/max)':>34}{'of VNNI ceiling' if vnni else '':>22}"
    )
    for m in (1, 64):
        u = rng.integers(0, 256, (m, k), dtype=np.uint8)
        gemm = kernels.bind_gemm(w_bits, k, uint8=True, threads=1)
        contenders = {"uint8": lambda gemm=gemm, u=u: gemm(u)}
        if vnni:
            passes = 64
            contenders["vnni"] = lambda passes=passes: _xnor.vnni_peak_loop(passes)
        times = timing.interleaved(contenders, rounds, sample)
        rates = [m * n * k / t for t in times["uint8"]]
        share = ""
        if vnni:
            peak = _xnor.vnni_peak_loop(passes)
            shares = [100 * r / (peak / t) for r, t in zip(rates, times["vnni"], strict=True)]
            share = timing.format_spread(timing.spread(shares), ".0f", "%")
        print(f"{str((m, n, k)):<28}{timing.format_spread(timing.spread(rates), '.2e'):>34}{share:>22}")
    if vnni:
        print(f"VNNI ceiling (VPDPBUSD in L1, 1 core): {peak / np.median(times['vnni']):.3e} 8-bit MAC/s")


def _random_network(name: str) -> Engine:
    with tempfile.TemporaryDirectory() as folder:
        model = pathlib.Path(folder) / f"{name}.bnn"
        benchmark.random_preset_file(name, model)
        return Engine(str(model), threads=1)


def _paths_against_each_other(quick, rounds, sample, rng) -> None:
    """Every SIMD path this CPU has, one thread, the same bound calls: time per call relative to the fastest
    path and to scalar, per round (the path is switched by each contender's setup)."""
    paths = kernels.available_backends()
    if len(paths) < 2:
        return
    print(f"\n{'SIMD paths, 1 thread':<32}" + "".join(f"{p + ' / ' + paths[0]:>26}" for p in paths[1:]))
    workloads = []
    for m, n, k in GEMM_SHAPES_QUICK if quick else GEMM_SHAPES:
        a_bits = kernels.pack_signs(rng.standard_normal((m, k), dtype=np.float32))
        gemm = kernels.bind_gemm(kernels.pack_signs(rng.standard_normal((n, k), dtype=np.float32)), k, threads=1)
        workloads.append((f"xnor_gemm {(m, n, k)}", lambda gemm=gemm, a=a_bits: gemm(a)))
    channels = 64 if quick else 128
    x_bits = kernels.pack_signs(rng.standard_normal((1, 32, 32, channels), dtype=np.float32))
    conv = kernels.bind_conv2d(
        kernels.pack_signs(rng.standard_normal((channels, 3, 3, channels), dtype=np.float32)),
        channels,
        padding="same",
        threads=1,
    )
    workloads.append((f"3x3 conv {channels}->{channels} 32x32", lambda: conv(x_bits)))
    k, n = 784, 512 if quick else 2048
    u8 = kernels.bind_gemm(kernels.pack_signs(rng.standard_normal((n, k), dtype=np.float32)), k, uint8=True, threads=1)
    pixels = rng.integers(0, 256, (1, k), dtype=np.uint8)
    workloads.append((f"xnor_gemm_uint8 {(1, n, k)}", lambda: u8(pixels)))
    name = "binary-mlp" if quick else "vgg-small"
    network = _random_network(name)
    u = rng.integers(0, 256, (1, *network.input_shape), dtype=np.uint8)
    workloads.append((f"{name} batch 1 (engine)", lambda: network.logits(u)))
    for label, call in workloads:
        contenders = {p: ((lambda p=p: kernels.set_backend(p)), call) for p in paths}
        times = timing.interleaved(contenders, rounds, sample)
        cells = "".join(
            f"{timing.format_spread(timing.ratios(times[p], times[paths[0]]), '.2f', 'x'):>26}" for p in paths[1:]
        )
        print(f"{label:<32}{cells}")
    kernels.set_backend("auto")


def _default_vs_one(quick, rounds, sample, rng) -> None:
    """threads=None (ThreadChoice) against one thread on the GEMM shapes and VGG-small, interleaved."""
    print(f"\n{'threads=None vs 1 thread':<32}{'time ratio (min/med/max)':>28}   (> 1: the default is slower)")
    for m, n, k in GEMM_SHAPES_QUICK if quick else GEMM_SHAPES:
        a_bits = kernels.pack_signs(rng.standard_normal((m, k), dtype=np.float32))
        b_bits = kernels.pack_signs(rng.standard_normal((n, k), dtype=np.float32))
        auto, one = kernels.bind_gemm(b_bits, k), kernels.bind_gemm(b_bits, k, threads=1)
        times = timing.interleaved(
            {"auto": lambda auto=auto, a=a_bits: auto(a), "one": lambda one=one, a=a_bits: one(a)}, rounds, sample
        )
        spread = timing.format_spread(timing.ratios(times["auto"], times["one"]), ".2f")
        print(f"{'xnor_gemm ' + str((m, n, k)):<32}{spread:>28}")
    with tempfile.TemporaryDirectory() as folder:
        model = pathlib.Path(folder) / "vgg-small.bnn"
        benchmark.random_preset_file("binary-mlp" if quick else "vgg-small", model)
        auto, one, other = Engine(str(model)), Engine(str(model), threads=1), Engine(str(model), threads=1)
    u = rng.integers(0, 256, (1, *auto.input_shape), dtype=np.uint8)
    times = timing.interleaved(
        {"auto": lambda: auto.logits(u), "one": lambda: one.logits(u), "other": lambda: other.logits(u)},
        rounds,
        sample,
    )
    name = "binary-mlp" if quick else "vgg-small"
    for label, first in ((" batch 1 (engine)", "auto"), (": control, 1 vs 1", "other")):
        spread = timing.format_spread(timing.ratios(times[first], times["one"]), ".2f")
        print(f"{name + label:<32}{spread:>28}")
    print("(the control row is two identical one-thread engines: the spread this measurement has without any choice)")
