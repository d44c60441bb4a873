"""The GPU check of docs/DISTRIBUTED.md: train the binary CNN on full MNIST on a GPU, and export it on the CPU.

    python tools/gpu_check.py --mnist /path/to/mnist [--device cuda] [--epochs 2]

Under 5 minutes on one GPU. It trains through the run store like any run (``device`` in the training spec),
prints the training throughput from the run's own per-batch samples/s (median over the run, the first batches
of each epoch left out as warm-up) beside the same training measured the same way on 2 CPU threads (what a
2-core machine has), the
test accuracy of the exported checkpoint, and whether the CPU engine's predictions and hidden bits for the whole
test set equal torch's on the CPU (the checkpoint was trained on the GPU and loads on any device). Exits 1 if
the export is not bit-exact.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time

import torch

from workbench.core.data import load_run_data
from workbench.core.presets import preset
from workbench.core.spec import default_training_spec
from workbench.runs.store import RunStore
from workbench.runs.trained import load_trained_model, pack_run
from workbench.runs.worker import run_worker
from workbench.train.agreement import compare
from workbench.train.training import TrainingReporter, train

WARM_UP_BATCHES = 20
CPU_BATCHES = 120  # the 2-core CPU baseline: this many batches of the same training, on 2 CPU threads


class _Rates(TrainingReporter):
    def __init__(self):
        self.rates = []

    def on_batch(self, epoch, step, metrics):
        self.rates.append(metrics["samples_per_s"])


def cpu_samples_per_s(dataset, training: dict, batches: int = CPU_BATCHES) -> list[float]:
    """Per-batch samples/s of the same training on 2 CPU threads (a 2-core machine's figure), warm-up left out."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        count = (batches + WARM_UP_BATCHES) * training["batch_size"]
        subset = dataclasses.replace(dataset, x_train=dataset.x_train[:count], y_train=dataset.y_train[:count])
        rates = _Rates()
        train(preset("binary-cnn"), dict(training, epochs=1, device="cpu", validation_split=0.0), subset, rates)
    finally:
        torch.set_num_threads(threads)
    return rates.rates[WARM_UP_BATCHES:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--mnist", help="folder with the four MNIST IDX files")
    data.add_argument("--data", help="another dataset reference (e.g. mnist-sample, for a quick try)")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, mps or cpu (default cuda)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--cpu-batches", type=int, default=CPU_BATCHES, help="batches timed for the CPU figure")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}; cuda available: {torch.cuda.is_available()}", flush=True)
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name(0)}", flush=True)

    store = RunStore(tempfile.mkdtemp(prefix="gpu-check-"))
    training = dict(default_training_spec(), epochs=args.epochs, batch_size=args.batch_size, device=args.device)
    run_id = store.create_run("gpu check", preset("binary-cnn"), training, args.data or f"mnist:{args.mnist}")
    started = time.perf_counter()
    status = run_worker(run_id, store.runs_dir)
    seconds = time.perf_counter() - started
    record = store.get_run(run_id)
    if status != "completed":
        print(f"run {status}: {record.error}", file=sys.stderr)
        return 1
    steps = store.metrics(run_id, "step")
    per_epoch = len(steps["step"]) // args.epochs
    rates = [r for i, r in enumerate(steps["samples_per_s"]) if i % per_epoch >= WARM_UP_BATCHES]
    rate = statistics.median(rates)
    print(f"trained {args.epochs} epochs on {args.device} in {seconds:.1f} s (data loading included)")
    dataset = load_run_data(record.data_ref, record.training_spec)
    cpu = statistics.median(cpu_samples_per_s(dataset, record.training_spec, args.cpu_batches))
    print(
        f"training throughput: {rate:,.0f} samples/s (median per batch; min {min(rates):,.0f}, max {max(rates):,.0f}) "
        f"vs {cpu:,.0f} on 2 CPU threads of this machine ({args.cpu_batches} batches): {rate / cpu:.1f}x"
    )
    print(f"test accuracy of the exported checkpoint ({record.best_checkpoint_label}): {record.test_accuracy:.4f}")

    packed = pack_run(run_id, store=store)
    model, _ = load_trained_model(run_id, store=store)  # on the CPU
    result = compare(model, packed, dataset.x_test, dataset.y_test)
    bits = sum(layer["bits"] for layer in result["layers"])
    differing = sum(layer["differing"] for layer in result["layers"])
    print(
        f"CPU export vs torch on the CPU, {result['samples']:,} test images: {result['disagreements']} predictions "
        f"and {differing:,} of {bits:,} hidden bits differ; engine accuracy {result['engine_accuracy']:.4f}"
    )
    exact = result["disagreements"] == 0 and differing == 0
    print("bit-exact: yes" if exact else "bit-exact: NO")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
