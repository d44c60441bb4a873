"""The packed model: what a trained network becomes for the XNOR engine, and what a .bnn file holds.

A ``PackedModel`` is a flat program of layers (ops) over NumPy arrays plus JSON metadata. It is produced
by ``workbench.train.packing.pack`` (which needs torch), written and read by ``workbench.deploy.bnnfile`` and run by
``workbench.deploy.engine.Engine`` (neither of which imports torch). The ops and their arrays are documented in
docs/FORMAT.md ("Ops"); this module knows their names and the arrays each one needs, so that every reader
checks a layer the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# op name -> (required array names, optional array names)
OPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # binary (XNOR) layers on packed input bits; output bits (thresholds) or float32 (affine)
    "binary_dense": (("weight_bits",), ("thresholds", "flip", "scale", "shift")),
    "binary_conv2d": (("weight_bits",), ("thresholds", "flip", "scale", "shift")),
    # binary-weight layers on real-valued input (the first layer): exact on uint8 input via bit-planes
    "input_dense": (("weight_bits", "scale", "shift"), ()),
    "input_conv2d": (("weight_bits", "scale", "shift"), ()),
    # real input -> packed bits: +1 where x >= threshold (rsign) or x >= 0
    "sign": ((), ("thresholds",)),
    "max_pool_bits": ((), ("use_or",)),
    "flatten": ((), ()),
    # float32 layers (full precision or not XNOR-able), weights dequantized
    "float_dense": (("weight",), ("bias",)),
    "float_conv2d": (("weight",), ("bias",)),
    "float_affine": (("scale", "shift"), ()),
    "max_pool": ((), ()),
    "avg_pool": ((), ()),
    "activation": ((), ("alpha",)),
    "quantize": ((), ()),
    # real-valued shortcut: save the input, run the block, add it back
    "residual_begin": ((), ()),
    "residual_add": ((), ()),
}

ALLOWED_DTYPES = ("<u8", "<i4", "<f4", "<f8", "|u1", "|i1")


class PackedModelError(ValueError):
    """A packed model whose layers do not fit together (names the layer and what is wrong)."""


@dataclass
class PackedLayer:
    """One op of the engine's program: its name (spec layer name), kind, JSON attributes and arrays."""

    name: str
    op: str
    attrs: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def check(self, index: int) -> None:
        """Raise PackedModelError when the op is unknown or an array is missing, unknown or of a bad dtype."""
        where = f"layer {index} ({self.name!r}, op {self.op!r})"
        if self.op not in OPS:
            raise PackedModelError(f"{where}: unknown op, expected one of {sorted(OPS)}")
        required, optional = OPS[self.op]
        missing = [key for key in required if key not in self.arrays]
        if missing:
            raise PackedModelError(f"{where}: missing array(s) {missing}")
        unknown = [key for key in self.arrays if key not in required + optional]
        if unknown:
            raise PackedModelError(f"{where}: unexpected array(s) {unknown}, expected {list(required + optional)}")
        for key, array in self.arrays.items():
            if not isinstance(array, np.ndarray) or array.dtype.str not in ALLOWED_DTYPES:
                got = getattr(array, "dtype", type(array).__name__)
                raise PackedModelError(f"{where}: array {key!r} must be a NumPy array of {ALLOWED_DTYPES}, got {got}")


@dataclass
class PackedModel:
    """A network ready for the engine: ``meta`` (JSON: spec, preprocessing, class names, training) and ops."""

    meta: dict
    layers: list[PackedLayer]

    def check(self) -> None:
        for index, layer in enumerate(self.layers):
            layer.check(index)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.meta["input_shape"])

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    @property
    def class_names(self) -> list[str]:
        return list(self.meta.get("class_names") or [str(i) for i in range(self.num_classes)])

    @property
    def nbytes(self) -> int:
        """Bytes of all arrays (what the engine holds in memory, without metadata)."""
        return sum(array.nbytes for layer in self.layers for array in layer.arrays.values())
