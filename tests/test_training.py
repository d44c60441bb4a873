"""The training loop on a tiny binary MLP and generated 2-D data: each trick, metrics, checkpoints, resume, stop."""

import math

import numpy as np
import pytest
import torch

from workbench.core.data import Dataset
from workbench.train.checkpoint import Checkpoint
from workbench.train.optim import lr_at
from workbench.train.training import TrainingReporter, train

SPEC = {
    "name": "tiny",
    "input_shape": [2],
    "num_classes": 2,
    "layers": [
        {"type": "dense", "units": 24},
        {"type": "batch_norm"},
        {"type": "dense", "units": 16, "input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign"},
        {"type": "batch_norm"},
        {"type": "dense", "units": 2, "input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign"},
        {"type": "batch_norm"},
    ],
}
QUANTIZED = ("2_dense", "4_dense")
TIMING = ("samples_per_s", "epoch_seconds")


def _dataset(n=320, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + 100, 2)).astype(np.float32)
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)
    return Dataset(
        name="quadrants",
        x_train=x[:n],
        y_train=y[:n],
        x_test=x[n:],
        y_test=y[n:],
        input_shape=(2,),
        num_classes=2,
        class_names=["a", "b"],
    )


def _training(**changes):
    spec = {
        "epochs": 2,
        "batch_size": 32,
        "seed": 3,
        "optimizer": {"name": "adam", "lr": 0.01},
        "lr_schedule": {"name": "cosine"},
        "weight_clip": 1.0,
        "validation_split": 0.2,
    }
    spec.update(changes)
    return spec


class Recorder(TrainingReporter):
    """Keeps everything it is told; optionally stops after a number of batches."""

    def __init__(self, stop_after=None):
        self.batches, self.epochs, self.stop_after = [], [], stop_after

    def on_batch(self, epoch, step, metrics):
        self.batches.append((epoch, step, metrics))

    def on_epoch(self, epoch, metrics, histograms, checkpoint, is_best):
        self.epochs.append(
            {"epoch": epoch, "metrics": metrics, "histograms": histograms, "checkpoint": checkpoint, "is_best": is_best}
        )

    def control(self):
        return "stop" if self.stop_after is not None and len(self.batches) >= self.stop_after else "continue"


def _untimed(recorder):
    batches = [(e, s, {k: v for k, v in m.items() if k not in TIMING}) for e, s, m in recorder.batches]
    epochs = [{k: v for k, v in r["metrics"].items() if k not in TIMING} for r in recorder.epochs]
    return batches, epochs


def _assert_same_weights(a, b):
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


def test_reports_every_batch_and_epoch_with_the_contract_keys():
    recorder = Recorder()
    result = train(SPEC, _training(), _dataset(), recorder)
    assert not result.stopped and result.epochs_done == 2
    assert 0.0 <= result.test_accuracy <= 1.0
    assert len(recorder.batches) == 2 * (256 // 32)
    assert [s for _, s, _ in recorder.batches] == list(range(1, 17))
    for _, _, metrics in recorder.batches:
        assert {"loss", "accuracy", "lr", "grad_norm", "samples_per_s", "flip/2_dense", "flip/4_dense"} <= set(metrics)
        assert all(0.0 <= metrics[f"flip/{name}"] <= 1.0 for name in QUANTIZED)
        assert metrics["grad_norm"] > 0 and math.isfinite(metrics["loss"])
    assert [r["epoch"] for r in recorder.epochs] == [1, 2]
    for record in recorder.epochs:
        keys = {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "epoch_seconds"}
        keys |= {f"{kind}/{name}" for kind in ("flip", "saturated") for name in QUANTIZED}
        assert keys <= set(record["metrics"])
        assert record["checkpoint"].epoch == record["epoch"]
    best = max(r["metrics"]["val_accuracy"] for r in recorder.epochs)
    assert result.best_val_accuracy == best
    assert recorder.epochs[0]["is_best"]
    assert recorder.epochs[1]["is_best"] == (
        recorder.epochs[1]["metrics"]["val_accuracy"] > recorder.epochs[0]["metrics"]["val_accuracy"]
    )


def test_learns_the_quadrant_problem():
    result = train(SPEC, _training(epochs=6, optimizer={"name": "adam", "lr": 0.02}), _dataset(n=640))
    assert result.test_accuracy >= 0.8


def test_same_seed_same_run_and_another_seed_differs():
    first, second, third = Recorder(), Recorder(), Recorder()
    a = train(SPEC, _training(), _dataset(), first)
    b = train(SPEC, _training(), _dataset(), second)
    c = train(SPEC, _training(seed=4), _dataset(), third)
    assert _untimed(first) == _untimed(second)
    _assert_same_weights(a.model, b.model)
    assert not torch.equal(a.model.state_dict()["layers.2.weight"], c.model.state_dict()["layers.2.weight"])


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}, "lr_schedule": {"name": "step", "step_size": 1}},
        {
            "epochs": 3,
            "optimizer": {"name": "bop", "threshold": 1e-4, "gamma": 1e-2, "lr": 0.01},
            "bop_schedule": {"threshold_decay": 0.5, "gamma_decay": 0.5, "every": 1},
            "two_stage": {"first_epochs": 1},
        },
    ],
)
def test_resume_after_epoch_one_matches_an_uninterrupted_run(tmp_path, changes):
    epochs = changes.get("epochs", 2)
    full = Recorder()
    uninterrupted = train(SPEC, _training(**changes), _dataset(), full)
    path = full.epochs[0]["checkpoint"].save(tmp_path / "epoch1.safetensors")
    resumed_recorder = Recorder()
    resumed = train(SPEC, _training(**changes), _dataset(), resumed_recorder, resume=Checkpoint.load(path))
    assert resumed.epochs_done == epochs
    _assert_same_weights(uninterrupted.model, resumed.model)
    assert _untimed(resumed_recorder)[1] == _untimed(full)[1][1:]
    assert resumed.test_accuracy == uninterrupted.test_accuracy
    assert resumed_recorder.batches[0][1] == full.batches[len(full.batches) // epochs][1]


def test_weight_clip_bounds_latent_weights_of_quantized_layers_only():
    recorder = Recorder()
    result = train(SPEC, _training(weight_clip=0.05, optimizer={"name": "adam", "lr": 0.3}), _dataset(), recorder)
    for name, layer in result.model.quantized_layers():
        assert layer.weight.abs().max() <= 0.05
        assert recorder.epochs[-1]["metrics"][f"saturated/{name}"] > 0.5
    assert result.model.state_dict()["layers.0.weight"].abs().max() > 0.05  # full precision: not clipped


def test_bop_flips_binary_weights_and_adam_trains_the_rest():
    recorder = Recorder()
    optimizer = {"name": "bop", "threshold": 1e-5, "gamma": 0.05, "lr": 0.01}
    schedule = {"threshold_decay": 0.5, "gamma_decay": 0.1, "every": 1}
    result = train(SPEC, _training(optimizer=optimizer, bop_schedule=schedule), _dataset(), recorder)
    for _, layer in result.model.quantized_layers():
        assert set(layer.weight.unique().tolist()) <= {-1.0, 1.0}
    assert sum(m["flip/2_dense"] for _, _, m in recorder.batches) > 0
    assert recorder.epochs[-1]["metrics"]["saturated/2_dense"] == 1.0
    assert [r["metrics"]["bop_threshold"] for r in recorder.epochs] == pytest.approx([1e-5, 5e-6])
    assert [r["metrics"]["bop_gamma"] for r in recorder.epochs] == pytest.approx([0.05, 0.005])
    initial_bn_weight = torch.ones(24)
    assert not torch.equal(result.model.state_dict()["layers.1.weight"], initial_bn_weight)


def test_epoch_flip_share_matches_the_checkpointed_weights():
    recorder = Recorder()
    train(SPEC, _training(optimizer={"name": "adam", "lr": 0.05}), _dataset(), recorder)
    before = recorder.epochs[0]["checkpoint"].model["layers.2.weight"]
    after = recorder.epochs[1]["checkpoint"].model["layers.2.weight"]
    expected = ((before < 0) != (after < 0)).float().mean().item()
    assert expected > 0
    assert recorder.epochs[1]["metrics"]["flip/2_dense"] == pytest.approx(expected)


@pytest.mark.parametrize(
    "schedule",
    [{"name": "cosine"}, {"name": "exponential", "gamma": 0.5}, {"name": "step", "step_size": 1, "gamma": 0.1}],
)
def test_learning_rate_follows_the_schedule(schedule):
    recorder = Recorder()
    train(SPEC, _training(lr_schedule=schedule), _dataset(), recorder)
    per_epoch = len(recorder.batches) // 2
    for index, (_, _, metrics) in enumerate(recorder.batches):
        assert metrics["lr"] == pytest.approx(lr_at(schedule, 0.01, index / per_epoch, 2))


def test_histograms_describe_weights_and_preactivations():
    recorder = Recorder()
    train(SPEC, _training(weight_clip=0.5), _dataset(), recorder)
    histograms = recorder.epochs[-1]["histograms"]
    for name, size in (("2_dense", 16 * 24), ("4_dense", 2 * 16)):
        entry = histograms[name]
        assert len(entry["latent"]["edges"]) == len(entry["latent"]["counts"]) + 1 == 42
        assert sum(entry["latent"]["counts"]) == size
        assert entry["clip"] == 0.5 and 0.0 <= entry["saturated_share"] <= 1.0
        assert entry["plus_share"] + entry["minus_share"] == pytest.approx(1.0)
        assert sum(entry["preact"]["counts"]) == 64 * (24 if name == "2_dense" else 16)


def test_stop_ends_cleanly_without_an_epoch():
    recorder = Recorder(stop_after=3)
    result = train(SPEC, _training(), _dataset(), recorder)
    assert result.stopped and result.epochs_done == 0 and result.test_accuracy is None
    assert len(recorder.batches) == 3 and recorder.epochs == []


def test_soft_binarization_lowers_the_temperature_geometrically(monkeypatch):
    from workbench.train.model import BNNModel

    temperatures = []
    original = BNNModel.set_soft_temperature
    monkeypatch.setattr(
        BNNModel, "set_soft_temperature", lambda self, t: (temperatures.append(t), original(self, t))[1]
    )
    spec = dict(SPEC, layers=[dict(layer) for layer in SPEC["layers"]])
    spec["layers"][2]["input_quantizer"] = "soft_sign"
    soft = {"start_temperature": 1.0, "end_temperature": 0.01}
    result = train(spec, _training(soft_binarization=soft), _dataset())
    assert len(temperatures) == 16
    assert temperatures[0] == pytest.approx(1.0) and temperatures[-1] == pytest.approx(0.01)
    ratios = [b / a for a, b in zip(temperatures, temperatures[1:])]
    assert ratios == pytest.approx([0.01 ** (1 / 15)] * 15)
    assert result.test_accuracy is not None


def test_two_stage_trains_real_weights_first(monkeypatch):
    from workbench.train.model import BNNModel

    calls = []
    original = BNNModel.set_quantization
    monkeypatch.setattr(
        BNNModel,
        "set_quantization",
        lambda self, weights=True, activations=True: (
            calls.append((weights, activations)),
            original(self, weights, activations),
        )[1],
    )
    train(SPEC, _training(epochs=3, two_stage={"first_epochs": 2}), _dataset())
    assert calls == [(False, True), (False, True), (True, True)]


def test_distillation_uses_the_teacher():
    teacher = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with torch.no_grad():
        teacher[0].weight.copy_(torch.tensor([[4.0, 0.0], [-4.0, 0.0]]))
        teacher[0].bias.zero_()
    plain, distilled = Recorder(), Recorder()
    train(SPEC, _training(), _dataset(), plain)
    config = {"teacher": "float_twin", "alpha": 0.5, "temperature": 2.0}
    train(SPEC, _training(distillation=config), _dataset(), distilled, teacher=teacher)
    assert plain.batches[0][2]["loss"] != distilled.batches[0][2]["loss"]
    assert all(math.isfinite(m["loss"]) for _, _, m in distilled.batches)
    with pytest.raises(ValueError, match="distillation"):
        train(SPEC, _training(distillation=config), _dataset())
    with pytest.raises(ValueError, match="distillation"):
        train(SPEC, _training(), _dataset(), teacher=teacher)


def test_dataset_that_does_not_fit_the_network_is_named():
    data = _dataset()
    data.input_shape = (3,)
    with pytest.raises(ValueError, match="quadrants"):
        train(SPEC, _training(), data)
