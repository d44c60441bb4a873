"""Knowledge distillation loss (Hinton et al. 2015), as used to train binary students from float teachers.

The soft term is scaled by T^2 so that its gradients keep the same magnitude as the hard term's when the
temperature changes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float = 0.9,
    temperature: float = 4.0,
) -> torch.Tensor:
    """alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * cross-entropy(student, y).

    The KL divergence is summed over classes and averaged over the batch, like the cross-entropy.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"training spec field 'distillation.alpha' must be in [0, 1], got {alpha}")
    if not temperature > 0.0:
        raise ValueError(f"training spec field 'distillation.temperature' must be > 0, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"distillation: teacher logits of shape {tuple(teacher_logits.shape)} do not match the "
            f"student's {tuple(student_logits.shape)}"
        )
    student_log_p = F.log_softmax(student_logits / temperature, dim=1)
    teacher_log_p = F.log_softmax(teacher_logits.detach() / temperature, dim=1)
    soft = F.kl_div(student_log_p, teacher_log_p, reduction="batchmean", log_target=True)
    hard = F.cross_entropy(student_logits, targets)
    return alpha * temperature**2 * soft + (1.0 - alpha) * hard
