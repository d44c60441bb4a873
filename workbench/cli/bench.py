"""``bnn-workbench bench kernels|training|MODEL.bnn|PRESET``: measured ratios printed, never asserted in tests."""

from __future__ import annotations

import argparse
import os
import pathlib
import tempfile
from dataclasses import replace

from workbench.cli.export import load_model
from workbench.core.data import load_dataset, load_run_data
from workbench.core.presets import PRESETS, preset
from workbench.core.spec import float_twin
from workbench.deploy import bnnfile
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
    parser.add_argument("--busy-core", type=int, help="bench kernels: keep this CPU busy with a pinned busy loop")
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


def bench_kernels(args: argparse.Namespace) -> int:
    """`bnn-workbench bench kernels`: the kernels against numpy / torch float32 and this core's ceiling."""
    # lazy: the torch baselines load only for the command that measures them
    from workbench.train import kernel_bench

    threads_list = list(getattr(args, "threads", None) or [1, 2])
    if any(t < 1 for t in threads_list):
        raise ValueError(f"--threads: expected positive thread counts, got {threads_list}")
    return kernel_bench.run(threads_list, bool(getattr(args, "quick", False)), getattr(args, "busy_core", None))


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
