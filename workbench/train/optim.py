"""Optimizers and schedules for binary networks.

``Bop`` (Helwegen et al. 2019, "Latent Weights Do Not Exist") treats binary weights as bits to flip rather than
real numbers to nudge: it keeps an exponential moving average of each weight's gradient and flips the weight
when that average is both strong (``|m| > threshold``) and pushing against the weight's current sign.

The schedules are pure functions of the (possibly fractional) epoch, so a resumed run recomputes exactly the
values an uninterrupted run would have used and needs no scheduler state in its checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

LR_SCHEDULES = ("constant", "cosine", "step", "exponential")


class Bop(torch.optim.Optimizer):
    """Binary optimizer: flips +-1 weights where the gradient momentum exceeds ``threshold`` and agrees in sign.

    ``m <- (1 - gamma) * m + gamma * grad``; ``w <- -w`` where ``|m| > threshold`` and ``sign(m) == sign(w)``.
    The parameters must hold +-1 values (the trainer sets them with ``sign`` before the first step, sign(0) = +1);
    every step writes exact +-1 values back, so the latent weights never drift from the binary ones.
    """

    def __init__(self, params: Iterable[torch.Tensor], threshold: float = 1e-8, gamma: float = 1e-4):
        if not threshold >= 0.0:
            raise ValueError(f"Bop: 'threshold' must be >= 0, got {threshold}")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"Bop: 'gamma' must be in (0, 1], got {gamma}")
        super().__init__(params, {"threshold": threshold, "gamma": gamma})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            threshold, gamma = group["threshold"], group["gamma"]
            for weight in group["params"]:
                if weight.grad is None:
                    continue
                state = self.state[weight]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(weight, memory_format=torch.preserve_format)
                momentum = state["momentum"]
                momentum.mul_(1.0 - gamma).add_(weight.grad, alpha=gamma)
                negative = weight < 0
                flip = (momentum.abs() > threshold) & ((momentum < 0) == negative)
                # New sign bit = old sign bit XOR flip; writing +-1 keeps the weights exactly binary.
                weight.copy_(torch.where(negative ^ flip, -1.0, 1.0))
        return loss


def lr_at(schedule: dict, base_lr: float, epoch: float, epochs: int) -> float:
    """Learning rate at ``epoch`` (0-based, may be fractional: epoch + batch / batches) of ``epochs``.

    ``schedule`` is the training spec's ``lr_schedule``: constant; cosine (base * (1 + cos(pi * e / E)) / 2);
    step (base * gamma ** floor(e / step_size)); exponential (base * gamma ** e).
    """
    name = schedule.get("name", "constant")
    if name == "constant":
        return base_lr
    if name == "cosine":
        progress = min(max(epoch / max(epochs, 1), 0.0), 1.0)
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    if name == "step":
        return base_lr * schedule.get("gamma", 0.1) ** math.floor(epoch / schedule.get("step_size", 1))
    if name == "exponential":
        return base_lr * schedule.get("gamma", 0.9) ** epoch
    raise ValueError(f"training spec field 'lr_schedule.name' must be one of {', '.join(LR_SCHEDULES)}, got {name!r}")


def bop_at(bop_schedule: dict | None, threshold: float, gamma: float, epoch: int) -> tuple[float, float]:
    """Bop's (threshold, gamma) for ``epoch`` (0-based): both multiplied by their decay every ``every`` epochs."""
    if not bop_schedule:
        return threshold, gamma
    decays = epoch // max(int(bop_schedule.get("every", 1)), 1)
    return (
        threshold * bop_schedule.get("threshold_decay", 1.0) ** decays,
        gamma * bop_schedule.get("gamma_decay", 1.0) ** decays,
    )


def set_hyperparameter(optimizer: torch.optim.Optimizer, key: str, value: float) -> None:
    """Write one hyperparameter into every parameter group (how the schedules reach the optimizers)."""
    for group in optimizer.param_groups:
        group[key] = value
