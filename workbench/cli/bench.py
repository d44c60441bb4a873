"""``bnn-workbench bench kernels|training|MODEL.bnn|PRESET``: measured ratios printed, never asserted in tests."""

from __future__ import annotations

import argparse
import ctypes
import os
import pathlib
import tempfile
import time
from dataclasses import replace

import numpy as np

from workbench.cli.export import load_model
from workbench.core.data import load_dataset, load_run_data
from workbench.core.presets import PRESETS, preset
from workbench.core.spec import float_twin
from workbench.deploy import bnnfile, kernels
from workbench.deploy.c_export import cmsis_int8
from workbench.deploy.reports import format_reports, memory_report, speed_report
from workbench.runs.store import RunStore


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "bench", help="measure: 'bench kernels', 'bench training', 'bench MODEL.bnn' or 'bench PRESET'"
    )
    parser.add_argument("target", help="'kernels', 'training', a .bnn file, or a preset name (random weights)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to measure")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64], help="batch sizes (bench MODEL.bnn)")
    parser.add_argument("--mnist", help="folder with the MNIST IDX files (bench training; default $BNN_MNIST_DIR)")
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per model (bench training)")
    parser.add_argument("--quick", action="store_true", help="smaller shapes / fewer repeats, for a smoke run")
    device = parser.add_argument_group("bench MODEL --target cortex-m4: the BNN against its int8 CMSIS-NN twin")
    device.add_argument("--target", dest="device_target", choices=cmsis_int8.BOARDS, help="an emulated board")
    device.add_argument(
        "--cmsis-nn",
        help=f"the CMSIS-NN checkout (default ${cmsis_int8.CMSIS_ENV}, else "
        "../shared/third_party/cmsis-nn beside the repository)",
    )
    device.add_argument("--images", type=int, default=20, help="test images run on the board (default 20)")
    device.add_argument("--twin", help="a run id of the trained float twin (default: train it now)")
    device.add_argument("--twin-epochs", type=int, default=3, help="epochs when training the twin now (default 3)")
    device.add_argument("--keep", help="build in this folder and keep it")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "device_target", None):
        return bench_device(args)
    if args.target == "kernels":
        return bench_kernels(args)
    if args.target == "training":
        return bench_training(args)
    return bench_model(args)


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


def bench_kernels(args: argparse.Namespace) -> int:
    """`bnn-workbench bench kernels`: xnor_gemm vs numpy float32 matmul, binary 3x3 conv vs torch conv2d."""
    # lazy: the torch baseline loads only for the command that measures it
    import torch

    quick = bool(getattr(args, "quick", False))
    threads_list = list(getattr(args, "threads", None) or [1, 2])
    if any(t < 1 for t in threads_list):
        raise ValueError(f"--threads: expected positive thread counts, got {threads_list}")
    repeats = 2 if quick else 7
    rng = np.random.default_rng(0)
    set_blas_threads = _blas_thread_setter()
    blas_note = "numpy/OpenBLAS threads set to match" if set_blas_threads else "numpy at its default BLAS threads"
    print(
        f"SIMD path: {kernels.backend()} (available: {', '.join(kernels.available_backends())}); "
        f"{blas_note}; torch threads set to match; best of {repeats}"
    )

    print(f"\n{'xnor_gemm (M, N, K)':<24}{'threads':>8}{'binary MAC/s':>15}{'float32 MAC/s':>15}{'ratio':>9}")
    for m, n, k in _GEMM_SHAPES_QUICK if quick else _GEMM_SHAPES:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((n, k), dtype=np.float32)
        b_t = np.ascontiguousarray(b.T)
        a_bits, b_bits = kernels.pack_signs(a), kernels.pack_signs(b)
        # Each library's thread pool spins for a while after a call: measure one library at a time.
        binary = {
            t: _best_seconds(lambda: kernels.xnor_gemm(a_bits, b_bits, k, threads=t), repeats) for t in threads_list
        }
        time.sleep(0.2)
        floating = {}
        for threads in threads_list:
            if set_blas_threads:
                set_blas_threads(threads)
            floating[threads] = _best_seconds(lambda: np.matmul(a, b_t), repeats)
        time.sleep(0.2)
        macs = m * n * k
        for threads in threads_list:
            print(
                f"{str((m, n, k)):<24}{threads:>8}{macs / binary[threads]:>15.3e}"
                f"{macs / floating[threads]:>15.3e}{floating[threads] / binary[threads]:>8.1f}x"
            )

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
    binary = {
        t: _best_seconds(lambda: kernels.xnor_conv2d(x_bits, w_bits, channels, padding="same", threads=t), repeats)
        for t in threads_list
    }
    fused = {
        t: _best_seconds(
            lambda: kernels.xnor_conv2d_threshold(
                x_bits, w_bits, channels, thresholds, flip, padding="same", threads=t
            ),
            repeats,
        )
        for t in threads_list
    }
    time.sleep(0.2)
    floating = {}
    torch_threads = torch.get_num_threads()
    try:
        with torch.inference_mode():
            for threads in threads_list:
                torch.set_num_threads(threads)
                floating[threads] = _best_seconds(
                    lambda: torch.nn.functional.conv2d(x_torch, w_torch, padding=1), repeats
                )
    finally:
        torch.set_num_threads(torch_threads)
    for threads in threads_list:
        print(
            f"{'batch 1':<24}{threads:>8}{macs / binary[threads]:>15.3e}{macs / floating[threads]:>15.3e}"
            f"{floating[threads] / binary[threads]:>8.1f}x{floating[threads] / fused[threads]:>12.1f}x"
        )

    k = 4096
    acts = rng.standard_normal((64, k), dtype=np.float32)
    pack = _best_seconds(lambda: kernels.pack_signs(acts), repeats)
    print(f"\npack_signs float32 (64, {k}): {acts.size / pack:.3e} values/s")
    return 0


# ----------------------------------------------------------------------------------------- bench training


def bench_training(args: argparse.Namespace) -> int:
    """`bnn-workbench bench training`: the MNIST presets trained within a time budget each, side by side.

    Trains the binary CNN, the binary MLP, the MLP's float twin and the binary MLP distilled from that twin on
    full MNIST, choosing the epochs from a measured step time so each run fits ``--minutes``; prints their test
    accuracy and each binary preset's training step time against its float twin's on the same batch size.
    """
    # lazy: torch loads only for the command that trains
    from workbench.train import benchmark

    folder = getattr(args, "mnist", None) or os.environ.get("BNN_MNIST_DIR")
    if not folder:
        raise ValueError(
            "bench training: needs full MNIST: pass --mnist DIR or set BNN_MNIST_DIR "
            "(a folder with the four MNIST IDX files)"
        )
    quick = bool(getattr(args, "quick", False))
    budget = 60.0 * float(getattr(args, "minutes", 10.0))
    dataset = load_dataset("mnist:" + folder)
    if quick:
        dataset = replace(
            dataset,
            x_train=dataset.x_train[:6000],
            y_train=dataset.y_train[:6000],
            x_test=dataset.x_test[:1000],
            y_test=dataset.y_test[:1000],
        )
    print(
        f"MNIST: {len(dataset.x_train)} training images (10% held out for validation), "
        f"{len(dataset.x_test)} test images; budget {budget / 60:.1f} min per model",
        flush=True,
    )

    # Binary and float twin measured alternately, best of two each: other load on the machine hits both alike.
    steps = 8 if quick else 30
    step_seconds = {name: float("inf") for name in benchmark.TRAINING_RECIPES}
    for _ in range(2):
        for name in benchmark.TRAINING_RECIPES:
            step_seconds[name] = min(
                step_seconds[name], benchmark.step_seconds(name, dataset, benchmark.TRAINING_RECIPES[name][0], steps)
            )

    runs = [
        ("binary-cnn", "binary-cnn", None),
        ("binary-mlp", "binary-mlp", None),
        ("binary-mlp-float", "binary-mlp-float", None),
        ("binary-mlp + KD", "binary-mlp", "binary-mlp-float"),
    ]
    trained, rows = {}, []
    fit = int(round(len(dataset.x_train) * 0.9))
    for label, name, teacher_name in runs:
        batch, lr, most = benchmark.TRAINING_RECIPES[name]
        # Re-measured just before training: other load on a shared machine changes over the run.
        step = benchmark.step_seconds(name, dataset, batch, steps) if not quick else 0.0
        per_epoch = (fit // batch) * step * (1.4 if teacher_name else 1.0) + 3.0
        epochs = 1 if quick else max(1, min(most, int(0.8 * budget / per_epoch)))
        training = {
            "epochs": epochs,
            "batch_size": batch,
            "seed": 0,
            "optimizer": {"name": "adam", "lr": lr},
            "lr_schedule": {"name": "cosine"},
            "weight_clip": 1.0,
            "validation_split": 0.1,
        }
        if teacher_name:
            training["distillation"] = {"teacher": "float_twin", "alpha": 0.9, "temperature": 4.0}
        print(f"training {label}: {epochs} epochs, batch {batch}, Adam lr {lr:g} cosine", flush=True)
        result, seconds, _ = benchmark.train_timed(
            preset(name), training, dataset, budget, teacher=trained.get(teacher_name), verbose=True
        )
        accuracy = (
            result.test_accuracy
            if result.test_accuracy is not None
            else benchmark.test_accuracy_of(result.model, dataset.x_test, dataset.y_test)
        )
        trained[name] = result.model
        rows.append((label, result.epochs_done, batch, seconds, accuracy, benchmark.TRAINING_TARGETS.get(label)))

    print(f"\n{'model':<20}{'epochs':>7}{'batch':>7}{'minutes':>9}{'test accuracy':>15}  target")
    for label, epochs, batch, seconds, accuracy, target in rows:
        verdict = "" if target is None else f"{'met' if accuracy >= target else 'MISSED'} (>= {target:.1%})"
        print(f"{label:<20}{epochs:>7}{batch:>7}{seconds / 60:>9.2f}{accuracy:>15.2%}  {verdict}")
    print("\ntraining step time inside train(), binary preset vs its float twin on the same batch size:")
    for name in ("binary-cnn", "binary-mlp"):
        binary, floating = step_seconds[name], step_seconds[name + "-float"]
        print(
            f"  {name:<12} batch {benchmark.TRAINING_RECIPES[name][0]:>4}: {binary * 1e3:7.1f} ms vs "
            f"{floating * 1e3:7.1f} ms float: {binary / floating:.2f}x"
        )
    return 0


# ------------------------------------------------------------------------------------ bench MODEL / PRESET


def bench_model(args: argparse.Namespace) -> int:
    """``bnn-workbench bench MODEL.bnn|PRESET [--batch 1 64] [--threads 1 2]``.

    A preset name (vgg-small, binary-mlp, ...) is measured with random weights, packed into a temporary file.
    """
    # lazy: torch loads only for the command that measures its baseline
    from workbench.train import benchmark

    if args.target in PRESETS and not pathlib.Path(args.target).exists():
        with tempfile.TemporaryDirectory() as folder:
            path = pathlib.Path(folder) / f"{args.target}.bnn"
            benchmark.random_preset_file(args.target, path)
            print(f"{args.target}: random weights and batch-norm statistics (timing and size do not depend on them)")
            return _bench_file(path, args, benchmark)
    return _bench_file(args.target, args, benchmark)


def _bench_file(path, args: argparse.Namespace, benchmark) -> int:
    packed = bnnfile.load(path)
    memory = memory_report(packed, path)
    spec = packed.meta.get("network_spec")
    runner = benchmark.torch_float_twin_runner(spec) if spec else None
    speed = speed_report(packed, args.batch, args.threads, torch_runner=runner, budget=0.1 if args.quick else 0.5)
    print(format_reports(memory, speed))
    return 0


# ---------------------------------------------------------------------------- bench MODEL --target cortex-m4


def bench_device(args: argparse.Namespace) -> int:
    """``bnn-workbench bench MODEL --target cortex-m4 [--cmsis-nn DIR]``: one table, BNN against its int8 twin."""
    # lazy: torch loads only for the command that trains and quantizes the float twin
    from workbench.runs.trained import load_trained_model
    from workbench.train.device_bench import bench

    if args.images < 1:
        raise ValueError(f"--images must be at least 1, got {args.images}")
    cmsis_int8.cmsis_nn_dir(args.cmsis_nn)  # before packing or training: say how to get CMSIS-NN
    packed, source = load_model(args.target, args.runs_dir)
    training = (packed.meta.get("training") or {}).get("training_spec")
    data_ref = (packed.meta.get("training") or {}).get("data_ref")
    if not training or not data_ref:
        raise ValueError(f"{source}: names no training data; the int8 twin is trained and calibrated on it")
    dataset = load_run_data(data_ref, training)
    twin = None
    if args.twin:
        twin, twin_spec = load_trained_model(args.twin, store=RunStore(args.runs_dir))
        if twin_spec != float_twin(packed.meta["network_spec"]):
            raise ValueError(
                f"--twin {args.twin}: its network {twin_spec['name']!r} is not the float twin of "
                f"{packed.meta['network_spec']['name']!r} (train it with 'train SPEC --float-twin')"
            )
    twin_training = dict(training, epochs=min(int(training.get("epochs", 1)), args.twin_epochs))
    result = bench(
        packed,
        dataset,
        twin=twin,
        training=twin_training,
        target=args.device_target,
        cmsis=args.cmsis_nn,
        images=args.images,
        folder=args.keep,
        log=lambda line: print(line, flush=True),
    )
    print(result.to_text())
    return 0
