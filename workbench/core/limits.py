"""Plausibility limits, every number in one place: the hard bounds spec validation enforces (a SpecError) and
the soft ones ``spec.training_warnings`` reports (a warning the user may ignore). docs/SPEC.md states them.

Hard bounds catch typos and values no training can use (inf, NaN, 1e308, a billion-unit layer) before torch
sees them. They are fixed numbers, never read from the machine: a spec embedded in a run or a .bnn file must
validate the same wherever it is read. Change a constant here to move a bound (tests override them too).
Pure Python, no imports of the workbench, so spec.py can read it.
"""

from __future__ import annotations

GIB = 2**30

# ---------------------------------------------------------------------------------------- memory budget

# A network must train within this many bytes, as estimated by ``spec.training_memory``: each kernel weight
# costs BYTES_PER_WEIGHT (float32 value, gradient and Adam's two moments), each activation BYTES_PER_ACTIVATION
# for every sample of a REFERENCE_BATCH-sample batch (the input batch and every layer's output, kept for the
# backward pass). Torch needs more (saved quantized copies, workspaces), so the estimate errs low and a spec
# is refused only when training surely cannot fit. 16 GiB: a laptop's RAM, and 50 times what the largest
# preset (vgg-small, 0.3 GiB) needs.
MEMORY_BUDGET_BYTES = 16 * GIB
REFERENCE_BATCH = 32
BYTES_PER_WEIGHT = 16
BYTES_PER_ACTIVATION = 4

# ---------------------------------------------------------------------------------------- hard bounds

# The largest accepted value of each real-valued field without a natural bound (every value must be finite;
# fractions keep their [0, 1] ranges). Quantizer parameters act on batch-normalised activations and on latent
# weights clipped to weight_clip, both of order 1, so 1e3 is far past any useful value.
QUANTIZER_PARAM_MAX = {"clip": 1e3, "beta": 1e3, "temperature": 1e3, "threshold": 1e3}
BATCH_NORM_EPS_MAX = 1.0
# Training spec fields by their path. lr may go to 1e6 (above 1 it is only warned about); Bop's gamma is an
# average's weight, (0, 1] as Bop itself requires, and gamma_decay keeps it there.
TRAINING_FIELD_MAX = {
    "epochs": 10**6,
    "batch_size": 10**7,
    "seed": 2**32 - 1,
    "optimizer.lr": 1e6,
    "optimizer.threshold": 1e3,
    "optimizer.gamma": 1.0,
    "lr_schedule.step_size": 10**6,
    "lr_schedule.gamma": 10.0,
    "bop_schedule.threshold_decay": 10.0,
    "bop_schedule.gamma_decay": 1.0,
    "bop_schedule.every": 10**6,
    "weight_clip": 1e3,
    "distillation.temperature": 1e3,
    "soft_binarization.start_temperature": 1e3,
    "soft_binarization.end_temperature": 1e3,
    "processes": 64,
    "augmentation.random_crop": 16,
}

# ---------------------------------------------------------------------------------------- soft limits (warnings)

WARN_LR_ABOVE = 1.0  # Adam and SGD (and Bop's Adam) diverge with steps this large
WARN_EPOCHS_ABOVE = 1000


def format_bytes(count: float) -> str:
    """1536 -> "1.5 KiB": sizes in messages."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    step = 0
    while count >= 1024 and step < len(units) - 1:
        count, step = count / 1024, step + 1
    return f"{count:,.0f} B" if step == 0 else f"{count:,.1f} {units[step]}"


def fit_count(n_train: int, validation_split: float) -> int:
    """Samples training steps on: the training set minus the validation share, held out as
    ``core.data.split_indices`` holds it out for the trainer (rounded, at least 2 kept)."""
    return n_train - min(int(round(n_train * validation_split)), max(n_train - 2, 0))
