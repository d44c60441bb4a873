"""Bop against a flip worked by hand, the learning-rate and Bop schedules per epoch, and the KD loss formula."""

import math

import pytest
import torch
import torch.nn.functional as F

from workbench.train.distillation import distillation_loss
from workbench.train.optim import Bop, bop_at, lr_at


def test_bop_flips_by_hand():
    weight = torch.nn.Parameter(torch.tensor([1.0, 1.0, -1.0, -1.0, 1.0]))
    optimizer = Bop([weight], threshold=0.05, gamma=0.5)
    # m = 0.5 * g: |m| = [0.1, 0.1, 0.1, 0.1, 0.02]; flip where |m| > 0.05 and sign(m) == sign(w).
    weight.grad = torch.tensor([0.2, -0.2, -0.2, 0.2, 0.04])
    optimizer.step()
    assert weight.tolist() == [-1.0, 1.0, 1.0, -1.0, 1.0]
    assert torch.allclose(optimizer.state[weight]["momentum"], torch.tensor([0.1, -0.1, -0.1, 0.1, 0.02]))
    # Second step: m = 0.5 * m + 0.5 * g. Entry 4 accumulates to 0.01 + 0.06 = 0.07 > 0.05, w = +1: flips.
    # Entry 0 is now -1 with m = 0.05 + 0 = 0.05: not > threshold, stays.
    weight.grad = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.12])
    optimizer.step()
    assert weight.tolist() == [-1.0, 1.0, 1.0, -1.0, -1.0]


def test_bop_keeps_weights_binary_and_treats_zero_as_plus():
    weight = torch.nn.Parameter(torch.tensor([0.0, 0.3, -0.7]))
    optimizer = Bop([weight], threshold=10.0, gamma=0.1)
    weight.grad = torch.ones(3)
    optimizer.step()
    assert weight.tolist() == [1.0, 1.0, -1.0]


def test_bop_rejects_bad_hyperparameters():
    with pytest.raises(ValueError, match="gamma"):
        Bop([torch.nn.Parameter(torch.ones(2))], gamma=0.0)


@pytest.mark.parametrize(
    "schedule, expected",
    [
        ({"name": "constant"}, [0.1, 0.1, 0.1, 0.1]),
        (
            {"name": "cosine"},
            [0.1, 0.1 * (1 + math.cos(math.pi / 4)) / 2, 0.05, 0.1 * (1 + math.cos(3 * math.pi / 4)) / 2],
        ),
        ({"name": "step", "step_size": 2, "gamma": 0.5}, [0.1, 0.1, 0.05, 0.05]),
        ({"name": "exponential", "gamma": 0.5}, [0.1, 0.05, 0.025, 0.0125]),
    ],
)
def test_lr_schedules_per_epoch(schedule, expected):
    values = [lr_at(schedule, 0.1, epoch, 4) for epoch in range(4)]
    assert values == pytest.approx(expected)


def test_cosine_reaches_zero_at_the_end_and_is_smooth_within_an_epoch():
    schedule = {"name": "cosine"}
    assert lr_at(schedule, 0.1, 4, 4) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(schedule, 0.1, 0.0, 4) > lr_at(schedule, 0.1, 0.5, 4) > lr_at(schedule, 0.1, 1.0, 4)


def test_unknown_lr_schedule_names_the_field():
    with pytest.raises(ValueError, match="lr_schedule.name"):
        lr_at({"name": "warp"}, 0.1, 0, 3)


def test_bop_schedule_decays_every_n_epochs():
    schedule = {"threshold_decay": 0.1, "gamma_decay": 0.5, "every": 2}
    values = [bop_at(schedule, 1e-6, 1e-3, epoch) for epoch in range(5)]
    assert [v[0] for v in values] == pytest.approx([1e-6, 1e-6, 1e-7, 1e-7, 1e-8])
    assert [v[1] for v in values] == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4])
    assert bop_at(None, 1e-6, 1e-3, 7) == (1e-6, 1e-3)


def test_distillation_loss_matches_the_formula_by_hand():
    student = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    teacher = torch.tensor([[3.0, -1.0, 0.0], [1.0, 0.0, -2.0]])
    targets = torch.tensor([0, 2])
    alpha, temperature = 0.7, 2.5
    total_kl = 0.0
    for s_row, t_row in zip(student.tolist(), teacher.tolist()):
        s_exp = [math.exp(v / temperature) for v in s_row]
        t_exp = [math.exp(v / temperature) for v in t_row]
        p_s = [v / sum(s_exp) for v in s_exp]
        p_t = [v / sum(t_exp) for v in t_exp]
        total_kl += sum(pt * math.log(pt / ps) for pt, ps in zip(p_t, p_s))
    cross_entropy = 0.0
    for row, target in zip(student.tolist(), targets.tolist()):
        cross_entropy += -(row[target] - math.log(sum(math.exp(v) for v in row)))
    expected = alpha * temperature**2 * total_kl / 2 + (1 - alpha) * cross_entropy / 2
    assert distillation_loss(student, teacher, targets, alpha, temperature).item() == pytest.approx(expected, rel=1e-6)


def test_distillation_gradient_does_not_reach_the_teacher():
    student = torch.randn(4, 3, requires_grad=True)
    teacher = torch.randn(4, 3, requires_grad=True)
    distillation_loss(student, teacher, torch.tensor([0, 1, 2, 0])).backward()
    assert teacher.grad is None and student.grad is not None


def test_distillation_with_alpha_zero_is_cross_entropy():
    student, teacher, targets = torch.randn(5, 4), torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 0])
    assert torch.allclose(distillation_loss(student, teacher, targets, alpha=0.0), F.cross_entropy(student, targets))
