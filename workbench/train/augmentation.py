"""Training-set augmentation for image inputs: random crops of a zero-padded image and horizontal flips.

The random draws are made for the whole global batch from a generator seeded by (seed, epoch), and each
process of a distributed run applies the draws of its own share, so a run resumed mid-training, or trained on
N processes, sees exactly the images a single uninterrupted process sees. Padding is 0 in the model's input
space (the middle of [-1, 1]), as in the usual CIFAR recipe's normalised inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Draws:
    """One batch's random choices: crop offsets in the padded image and which samples are mirrored."""

    top: torch.Tensor
    left: torch.Tensor
    flip: torch.Tensor

    def take(self, positions: torch.Tensor) -> Draws:
        return Draws(self.top[positions], self.left[positions], self.flip[positions])


def draw(count: int, config: dict, generator: torch.Generator) -> Draws:
    span = 2 * int(config["random_crop"]) + 1
    top = torch.randint(0, span, (count,), generator=generator)
    left = torch.randint(0, span, (count,), generator=generator)
    flip = (
        torch.rand(count, generator=generator) < 0.5
        if config["horizontal_flip"]
        else torch.zeros(count, dtype=torch.bool)
    )
    return Draws(top, left, flip)


def apply(x: torch.Tensor, config: dict, draws: Draws) -> torch.Tensor:
    """The batch ``x`` (N, C, H, W) cropped and flipped as ``draws`` say (one draw per sample)."""
    pad = int(config["random_crop"])
    if pad:
        height, width = x.shape[-2:]
        padded = F.pad(x, (pad, pad, pad, pad))
        x = torch.stack(
            [
                padded[i, :, t : t + height, s : s + width]
                for i, (t, s) in enumerate(zip(draws.top.tolist(), draws.left.tolist()))
            ]
        )
    if bool(draws.flip.any()):
        x = torch.where(draws.flip[:, None, None, None], x.flip(-1), x)
    return x
