"""What the benchmarks need from the torch side: timed training, the torch float32 twin, random-weight presets.

The commands that print these figures are in ``workbench.cli.bench``; nothing here is asserted on timing.
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace

import numpy as np
import torch

from workbench.core.presets import preset
from workbench.core.spec import float_twin
from workbench.deploy import bnnfile
from workbench.train.model import build_model
from workbench.train.packing import pack_model
from workbench.train.training import TrainingReporter, train

# (preset, batch size, learning rate, most epochs): Adam with cosine decay, latent weights clipped to [-1, 1].
TRAINING_RECIPES = {
    "binary-cnn": (128, 2e-3, 15),
    "binary-cnn-float": (128, 1e-3, 15),
    "binary-mlp": (256, 3e-3, 15),
    "binary-mlp-float": (256, 1e-3, 15),
}
TRAINING_TARGETS = {"binary-cnn": 0.985, "binary-mlp": 0.975}


def train_timed(network_spec: dict, training_spec: dict, dataset, seconds: float, teacher=None, verbose=False):
    """train() with a deadline (stops between batches once it passes); returns (result, seconds, batch times)."""

    class Deadline(TrainingReporter):
        """Stops mid-epoch past the deadline, or at an epoch's end when another epoch would not fit."""

        def __init__(self):
            self.started = self.epoch_ended = time.perf_counter()
            self.ticks: list[float] = []
            self.last_epoch = 0.0
            self.at_epoch_start = False

        def on_batch(self, epoch, step, metrics):
            self.ticks.append(time.perf_counter())

        def on_epoch(self, epoch, metrics, histograms, checkpoint, is_best):
            now = time.perf_counter()
            self.last_epoch, self.epoch_ended, self.at_epoch_start = now - self.epoch_ended, now, True
            if verbose:
                print(
                    f"    epoch {epoch}: val accuracy {metrics['val_accuracy']:.4f}, {now - self.started:.0f} s",
                    flush=True,
                )

        def control(self):
            elapsed = time.perf_counter() - self.started
            next_epoch = self.last_epoch if self.at_epoch_start else 0.0
            self.at_epoch_start = False
            return "stop" if elapsed + next_epoch > seconds else "continue"

    reporter = Deadline()
    result = train(network_spec, training_spec, dataset, reporter, teacher=teacher)
    return result, time.perf_counter() - reporter.started, np.diff(reporter.ticks)


def test_accuracy_of(model, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(torch.from_numpy(x[i : i + 1000])).argmax(1) for i in range(0, len(x), 1000)])
    return float((predicted.numpy() == y).mean())


def step_seconds(name: str, dataset, batch: int, steps: int) -> float:
    """Median wall time of one training step of preset ``name`` inside train() (metrics and clipping included)."""
    warmup = 10  # the first batches of a process pay for allocator and oneDNN set-up
    n = batch * (steps + warmup + 1)
    probe = replace(
        dataset,
        x_train=dataset.x_train[:n],
        y_train=dataset.y_train[:n],
        x_test=dataset.x_test[:batch],
        y_test=dataset.y_test[:batch],
    )
    training = {
        "epochs": 1,
        "batch_size": batch,
        "validation_split": 0.0,
        "weight_clip": 1.0,
        "optimizer": {"name": "adam", "lr": 1e-3},
        "lr_schedule": {"name": "constant"},
    }
    _, _, ticks = train_timed(preset(name), training, probe, float("inf"))
    return float(np.median(ticks[warmup:]))


def torch_float_twin_runner(spec: dict):
    """``runner(x, threads, channels_last=False)`` -> ``(setup, call)``: ``call`` runs the spec's float twin (random
    weights) once on ``x`` (NCHW), in channels_last memory format if asked (images only); ``setup`` sets torch's
    thread count (its OpenMP pool too) and runs before each timed sample.

    The float32 baseline of ``workbench.deploy.reports.speed_report``, which itself never imports torch.
    """
    torch.manual_seed(0)
    model = build_model(float_twin(spec)).eval()
    models = {}

    def runner(x: np.ndarray, threads: int, channels_last: bool = False):
        tensor = torch.from_numpy(x)
        net = model
        if channels_last and tensor.ndim == 4:
            if "last" not in models:
                models["last"] = copy.deepcopy(model).to(memory_format=torch.channels_last)
            net, tensor = models["last"], tensor.contiguous(memory_format=torch.channels_last)

        def call():
            with torch.inference_mode():
                return net(tensor)

        return (lambda: torch.set_num_threads(threads)), call

    return runner


def random_preset_file(name: str, path, seed: int = 0) -> None:
    """Write a preset with random weights and random batch-norm statistics to a .bnn file.

    Memory and latency do not depend on the values, so this measures a network (VGG-small, say) that has
    no trained run at hand. Uses torch: for the benchmark only.
    """
    torch.manual_seed(seed)
    model = build_model(preset(name))
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.normal_(0.0, 4.0)
            module.running_var.uniform_(0.5, 30.0)
            module.weight.data.normal_()
            module.bias.data.normal_()
    pixels = {"kind": "affine", "scale": 2 / 255, "offset": -1.0}
    bnnfile.save(pack_model(model.eval(), preprocessing=pixels), path)
