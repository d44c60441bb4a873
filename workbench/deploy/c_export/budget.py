"""Flash and RAM of a network's C export predicted from its spec alone, before any training: the model's planned
op list (``workbench.core.pack_plan``) is filled with neutral arrays and lowered by the C exporter itself, so the
weight bytes and the arena are the exporter's own numbers, not a second count of them. Only the runtime's code and
the stack of one ``predict()`` are estimates: per target, from the measurements below.

The sizes do not depend on the weights' values (but for a pool's AND/OR mask, counted as present): a trained model
and its placeholder export the same arrays, the same arena and the same code (the tests compare with ``footprint``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.core.pack_plan import pack_plan
from workbench.core.spec import validate_spec
from workbench.deploy.c_export.generator import generate
from workbench.deploy.packed import PackedLayer, PackedModel

# The runtime's code plus its small constants (geometry and output structs, class names), and the stack peak of
# predict(), per target: what the model object and the QEMU harness measured for the presets with gcc 12.2 -O2
# (binary-mlp 2.1 KB / 180 B, binary-cnn 3.1 KB / 228 B, binary-cnn-float 1.9 KB / 128 B, vgg-small 3.9 KB / 252 B
# on the M4; the M0 a little more code). The compiler specialises each kernel for its one call, so the code varies
# with the shapes: over the 18 networks of the C export's tests it measured RUNTIME_RANGE on the M4. A middle value
# puts the presets within 5% (their weights dominate); a network of a few KB of weights is off by up to 2.5 KB.
RUNTIME = {
    "cortex-m4": (2_800, 210),
    "cortex-m3": (2_850, 205),
    "cortex-m0": (3_000, 235),
}
RUNTIME_RANGE = ((350, 4_100), (120, 260))  # code and constants, stack: the least and most measured, with margin
SIZE_PROXY = "cortex-m4"  # the estimate for a device no target emulates (ESP32, Cortex-A): weights dominate there


def placeholder(spec: dict, preprocessing: dict | None = None) -> PackedModel:
    """The packed model of a spec with neutral arrays (zero weights and thresholds, unit scales): what a trained
    one exports to, byte for byte in size. Every pool gets its AND/OR mask (a trained model whose pools all AND
    leaves it out: 4 bytes per 32 channels less)."""
    spec = validate_spec(spec)
    layers = []
    for op in pack_plan(spec):
        ones = ("scale", "use_or")
        arrays = {a.name: np.full(a.shape, int(a.name in ones), dtype=np.dtype(a.dtype)) for a in op.arrays}
        layers.append(PackedLayer(op.name, op.op, dict(op.attrs), arrays))
    meta = {
        "format": "bnn-workbench",
        "network_spec": spec,
        "input_shape": list(spec["input_shape"]),
        "num_classes": spec["num_classes"],
        "class_names": [str(i) for i in range(spec["num_classes"])],
        "preprocessing": preprocessing or {"kind": "affine", "scale": 2 / 255, "offset": -1.0},
    }
    return PackedModel(meta, layers)


@dataclass(frozen=True)
class Prediction:
    """The model's own flash and RAM on a target (``footprint``'s "model flash" and "RAM"), predicted."""

    target: str
    weight_bytes: int  # const arrays: packed weights, thresholds, float weights (exact, from the exporter)
    runtime_bytes: int  # the kernels' code and small constants (estimated per target)
    arena_bytes: int  # the static arena (exact, from the exporter's planner)
    stack_bytes: int  # predict()'s stack peak (estimated per target)

    @property
    def flash_bytes(self) -> int:
        return self.weight_bytes + self.runtime_bytes

    @property
    def ram_bytes(self) -> int:
        return self.arena_bytes + self.stack_bytes

    @property
    def flash_range(self) -> tuple[int, int]:
        """The model flash the runtime's measured spread allows: weights + (least, most) runtime code."""
        low, high = RUNTIME_RANGE[0]
        return self.weight_bytes + low, self.weight_bytes + high

    @property
    def ram_range(self) -> tuple[int, int]:
        low, high = RUNTIME_RANGE[1]
        return self.arena_bytes + low, self.arena_bytes + high


def predict(spec_or_model: dict | PackedModel, target: str | None = "cortex-m4") -> Prediction:
    """Predicted model flash and RAM of the C export on a target (None: the Cortex-M4's estimate), from a network
    spec or a packed model."""
    target = target or SIZE_PROXY
    if target not in RUNTIME:
        raise ValueError(f"no size estimate for target {target!r}; expected one of {', '.join(RUNTIME)}")
    model = spec_or_model if isinstance(spec_or_model, PackedModel) else placeholder(spec_or_model)
    library = generate(model, selftest_input=np.zeros(model.input_shape, dtype=np.uint8))
    code, stack = RUNTIME[target]
    return Prediction(target, library.weight_bytes, code, library.arena_bytes, stack)
