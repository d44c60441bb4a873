"""Plausibility warnings: valid training settings that are probably not meant, one sentence each."""

import numpy as np
import pytest

from workbench.core import limits
from workbench.core.data import split_indices
from workbench.core.presets import preset
from workbench.core.spec import SpecError, default_training_spec, training_warnings


def test_the_defaults_raise_no_warning():
    assert training_warnings(default_training_spec(), n_train=60000, network_spec=preset("vgg-small")) == []
    assert training_warnings({}) == []


@pytest.mark.parametrize(
    "optimizer, words",
    [
        ({"name": "adam", "lr": 1e6}, ["optimizer.lr 1e+06 is above 1: Adam", "the default is 0.001"]),
        ({"name": "sgd", "lr": 2}, ["optimizer.lr 2 is above 1: SGD", "the default is 0.01"]),
        ({"name": "bop", "lr": 5}, ["Adam (Bop's optimizer of the real-valued parameters)"]),
        ({"name": "sgd", "momentum": 1.0}, ["optimizer.momentum 1 never lets a gradient fade"]),
    ],
)
def test_optimizer_warnings(optimizer, words):
    (warning,) = training_warnings({"optimizer": optimizer})
    for word in words:
        assert word in warning
    assert (
        training_warnings(
            {
                "optimizer": dict(optimizer, lr=1.0, momentum=0.9)
                if optimizer["name"] == "sgd"
                else dict(optimizer, lr=1.0)
            }
        )
        == []
    )  # 1 itself is allowed quietly


def test_a_batch_larger_than_the_training_samples():
    # 600 samples, 10% validation: training steps on 540
    (warning,) = training_warnings({"batch_size": 1000}, n_train=600)
    assert warning == (
        "batch_size 1,000 is larger than the 540 samples training steps on (600 minus the validation "
        "split): every epoch is one step on all 540"
    )
    (warning,) = training_warnings({"batch_size": 1000, "validation_split": 0.0}, n_train=600)
    assert "than the 600 samples training steps on: every epoch" in warning
    assert training_warnings({"batch_size": 540}, n_train=600) == []
    assert training_warnings({"batch_size": 10**6}) == []  # without the data size there is nothing to compare


def test_absurd_epochs_and_schedules():
    (warning,) = training_warnings({"epochs": 100000}, n_train=60000)
    assert warning == "epochs 100,000 is more than 1,000 (42,100,000 steps): is a zero too many?"  # 54000 // 128
    assert training_warnings({"epochs": 1000}) == []
    (grows,) = training_warnings({"lr_schedule": {"name": "exponential", "gamma": 1.5}})
    assert grows.startswith("lr_schedule.gamma 1.5 is above 1: the learning rate grows")
    (never,) = training_warnings({"epochs": 5, "lr_schedule": {"name": "step", "step_size": 5}})
    assert never.startswith("lr_schedule.step_size 5 is at least epochs (5): the learning rate never steps down")
    (bop,) = training_warnings({"epochs": 5, "optimizer": "bop", "bop_schedule": {"every": 8}})
    assert bop.startswith("bop_schedule.every 8 is at least epochs (5)")


def test_memory_at_the_training_batch_size(monkeypatch):
    vgg = preset("vgg-small")  # about 3 MiB of activations per sample
    (warning,) = training_warnings({"batch_size": 8192}, n_train=60000, network_spec=vgg)
    assert warning == (
        "batch_size 8,192: training this network needs an estimated 24.9 GiB, more than the 16.0 GiB "
        "budget (core/limits.py); a smaller batch needs less"
    )
    (only,) = training_warnings({"batch_size": 8192}, n_train=1000, network_spec=vgg)  # a batch of 900 fits
    assert only.startswith("batch_size 8,192 is larger than the 900 samples")
    monkeypatch.setattr(limits, "MEMORY_BUDGET_BYTES", 10**12)
    assert training_warnings({"batch_size": 8192}, network_spec=vgg) == []


def test_an_invalid_spec_is_an_error_not_a_warning():
    with pytest.raises(SpecError, match="optimizer.lr"):
        training_warnings({"optimizer": {"name": "adam", "lr": float("inf")}})


@pytest.mark.parametrize("n, share", [(2, 0.5), (3, 0.9), (10, 0.1), (600, 0.1), (601, 0.25), (1000, 0.0)])
def test_fit_count_is_what_the_trainer_keeps(n, share):
    """limits.fit_count restates the trainer's validation hold-out (training.Trainer._split): pinned here."""
    fit, _ = split_indices(np.arange(n) % 3, share, seed=0, at_most=n - 2)
    assert limits.fit_count(n, share) == len(fit)


def test_format_bytes():
    assert [limits.format_bytes(n) for n in (0, 1023, 1536, 16 * 2**30, 1.2 * 2**40, 2**60)] == [
        "0 B",
        "1,023 B",
        "1.5 KiB",
        "16.0 GiB",
        "1.2 TiB",
        "1,024.0 PiB",
    ]
