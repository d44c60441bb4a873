"""Pack a trained torch model into a PackedModel: binary weights to bits, BN + scaling + sign to thresholds.

What the network becomes (the ops, their attrs, what folds into what, every array's shape and dtype) is
planned from the spec alone by ``workbench.core.pack_plan``, which the summary counts too; this module only
fills the planned arrays with values from the torch modules, and checks they have the planned shapes. A
quantizer switched off (two-stage training) counts as none: the plan is of what the model computes now.

A binary layer's output z = A_c * dot + B_c (weight scale, bias, the batch norms folded into it, minus the
next layer's rsign threshold) only matters through sign(z), so it becomes one integer threshold per output
channel: +1 iff dot >= ceil(-B/A) when A > 0 (flip 0), iff dot <= floor(-B/A) when A < 0 (flip 1), a
constant when A = 0. A max pool in that chain pools the thresholded bits: AND, or OR for the channels whose
batch norms after the pool have a negative product of gamma signs (the chain is monotone per channel).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from workbench.core.pack_plan import PlannedOp, is_xnor, pack_plan
from workbench.core.shapes import WORD_BITS
from workbench.core.spec import is_sign_quantizer, layer_name, validate_spec
from workbench.deploy.kernels import pack_signs
from workbench.deploy.packed import PackedLayer, PackedModel
from workbench.train.layers import QuantLayer

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _f64(tensor) -> np.ndarray:
    return tensor.detach().to(torch.float64).cpu().numpy()


def binary_factors(layer: QuantLayer) -> tuple[np.ndarray, np.ndarray] | None:
    """(signs (+1/-1, torch layout), per-channel scale) when the quantized weights are +-scale_c, else None."""
    if not layer.quantizes_weights or not is_sign_quantizer(layer.kernel_quantizer.spec):
        return None
    w = layer.binarized_weight().detach().to(torch.float32).cpu().numpy()
    flat = w.reshape(w.shape[0], -1)
    scale = np.abs(flat).max(axis=1) if flat.size else np.zeros(w.shape[0], np.float32)
    if not np.all(np.abs(flat) == scale[:, None]):
        return None
    return np.where(w >= 0, 1, -1).astype(np.int8), scale.astype(np.float64)


def takes_bits(layer: nn.Module) -> bool:
    """An XNOR layer: sign weights (+-scale) and a sign input quantizer, both switched on."""
    return (
        isinstance(layer, QuantLayer) and is_xnor(_as_computed(layer.spec, layer)) and binary_factors(layer) is not None
    )


def _as_computed(layer: dict, module: QuantLayer) -> dict:
    """The spec layer as the module computes it now: a quantizer switched off (two-stage training) is none."""
    layer = dict(layer)
    if not module.quantizes_weights:
        layer.update(kernel_quantizer=None, scaling="none")
    if module.input_quantizer is not None and not module.input_quantizer.enabled:
        layer["input_quantizer"] = None
    return layer


def input_threshold(layer: QuantLayer, channels: int) -> np.ndarray:
    """t_c of sign(x - t_c) for the layer's input quantizer (rsign), zeros for the plain signs."""
    q = layer.input_quantizer
    if q.spec["name"] == "rsign":
        return _f64(q.threshold)
    return np.zeros(channels)


def fold_thresholds(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int32 thresholds, uint8 flip) such that the kernel's rule on the dot equals sign(a * dot + b)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        boundary = -b / a
    thresholds = np.where(a > 0, np.ceil(boundary), np.floor(boundary))
    # a == 0: the output is the constant sign(b): a threshold that always (or never) fires
    thresholds = np.where(a == 0, np.where(b >= 0, INT32_MIN, INT32_MAX), thresholds)
    thresholds = np.nan_to_num(thresholds, nan=INT32_MAX, posinf=INT32_MAX, neginf=INT32_MIN)
    flip = (a < 0).astype(np.uint8)
    return np.clip(thresholds, INT32_MIN, INT32_MAX).astype(np.int32), flip


def _spec_as_computed(layers: list[dict], modules, prefix: str = "") -> tuple[list[dict], dict[str, nn.Module]]:
    """The layer list as its modules compute it now (see ``_as_computed``), and each module by layer name."""
    computed, by_name = [], {}
    for index, (layer, module) in enumerate(zip(layers, modules, strict=True)):
        by_name[layer_name(f"{prefix}{index}", layer)] = module
        if layer["type"] == "shortcut":
            inner, inner_modules = _spec_as_computed(layer["layers"], module.layers, f"{prefix}{index}.")
            layer = dict(layer, layers=inner)
            by_name.update(inner_modules)
        elif isinstance(module, QuantLayer):
            layer = _as_computed(layer, module)
        computed.append(layer)
    return computed, by_name


def _emit(op: PlannedOp, modules: dict[str, nn.Module]) -> PackedLayer:
    """The planned op with its arrays filled from the modules; raises ValueError where they are not as planned."""
    arrays = _FILL[op.op](op, modules) if op.op in _FILL else {}
    got = {name: (array.shape, array.dtype.str) for name, array in arrays.items()}
    planned = {a.name: (a.shape, a.dtype) for a in op.arrays}
    if got != planned:
        raise ValueError(f"layer {op.name} (op {op.op}): the model gives arrays {got}, the spec plans {planned}")
    return PackedLayer(op.name, op.op, op.attrs, {a.name: arrays[a.name] for a in op.arrays})


def _fill_binary(op: PlannedOp, modules) -> dict[str, np.ndarray]:
    """Packed weights, then the folded batch norms (and the next sign) as thresholds or a scale and shift."""
    module = modules[op.name]
    factors = binary_factors(module)
    if factors is None:  # sign weights are always +-scale_c, unless a weight or scale is NaN
        raise ValueError(
            f"layer {op.name}: its binarized weights are not +-scale per output channel "
            "(a NaN weight or scaling factor?)"
        )
    signs, scale = factors
    conv = op.op.endswith("conv2d")
    bias = _f64(module.bias) if module.bias is not None else np.zeros(len(scale))
    if op.op.startswith("input_"):
        weight_bits, shift = pack_signs(signs.transpose(0, 2, 3, 1) if conv else signs), bias
    else:
        weight_bits, pad = _pack_weights(signs, conv, op.flat_from)
        shift = bias - scale * pad  # the kernel's dot over a padded flatten counts pad extra +1 * +1 products
    a, b = scale.copy(), shift
    for name in op.batch_norms:
        g, h = _bn_affine(modules[name])
        a, b = g * a, g * b + h
    if op.attrs["output"] == "float":
        dtype = np.float64 if op.op.startswith("input_") else np.float32
        return {"weight_bits": weight_bits, "scale": a.astype(dtype), "shift": b.astype(dtype)}
    b = b - input_threshold(modules[op.sign_of], len(a))  # sign(z - t) of the next layer's input quantizer
    if op.op.startswith("input_"):
        return {"weight_bits": weight_bits, "scale": a, "shift": b}
    thresholds, flip = fold_thresholds(a, b)
    return {"weight_bits": weight_bits, "thresholds": thresholds, "flip": flip}


def _fill_max_pool_bits(op: PlannedOp, modules) -> dict[str, np.ndarray]:
    """OR (max before a decreasing map is min after it) where the batch norms after the pool flip the slope."""
    slope = np.ones(op.attrs["out_shape"][0])
    for name in op.batch_norms:
        slope = slope * np.sign(_bn_affine(modules[name])[0])
    return {"use_or": (slope < 0).astype(np.uint8)}


def _fill_sign(op: PlannedOp, modules) -> dict[str, np.ndarray]:
    return {"thresholds": input_threshold(modules[op.name], op.attrs["channels"]).astype(np.float32)}


def _fill_quantize(op: PlannedOp, modules) -> dict[str, np.ndarray]:
    q = modules[op.name].input_quantizer
    return {"thresholds": _f64(q.threshold).astype(np.float32)} if q.spec["name"] == "rsign" else {}


def _fill_float_weights(op: PlannedOp, modules) -> dict[str, np.ndarray]:
    module = modules[op.name]
    arrays = {"weight": module.binarized_weight().detach().to(torch.float32).cpu().numpy()}
    if module.bias is not None:
        arrays["bias"] = module.bias.detach().to(torch.float32).cpu().numpy()
    return arrays


def _fill_float_affine(op: PlannedOp, modules) -> dict[str, np.ndarray]:
    a, b = _bn_affine(modules[op.name])
    return {"scale": a.astype(np.float32), "shift": b.astype(np.float32)}


def _fill_activation(op: PlannedOp, modules) -> dict[str, np.ndarray]:
    return {"alpha": _f64(modules[op.name].weight).astype(np.float32)} if op.attrs["fn"] == "prelu" else {}


# ops with arrays; the others (flatten, pools, residual_*) store none
_FILL = {
    "binary_dense": _fill_binary,
    "binary_conv2d": _fill_binary,
    "input_dense": _fill_binary,
    "input_conv2d": _fill_binary,
    "max_pool_bits": _fill_max_pool_bits,
    "sign": _fill_sign,
    "quantize": _fill_quantize,
    "float_dense": _fill_float_weights,
    "float_conv2d": _fill_float_weights,
    "float_affine": _fill_float_affine,
    "activation": _fill_activation,
}


def _bn_affine(module: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode batch norm as y = g * x + h per channel, in float64."""
    inv = 1.0 / np.sqrt(_f64(module.running_var) + module.eps)
    gamma = _f64(module.weight) if module.weight is not None else np.ones_like(inv)
    beta = _f64(module.bias) if module.bias is not None else np.zeros_like(inv)
    g = gamma * inv
    return g, beta - _f64(module.running_mean) * g


def _pack_weights(signs: np.ndarray, conv: bool, flat_from) -> tuple[np.ndarray, int]:
    """(packed weights, padding bits counted as +1*+1 by the kernel's dot) of a binary layer on bits."""
    if conv:  # OIHW -> OHWI, packed along I
        return pack_signs(signs.transpose(0, 2, 3, 1)), 0
    if flat_from is None:
        return pack_signs(signs), 0
    c, h, w = flat_from
    per_pixel = pack_signs(signs.reshape(-1, c, h, w).transpose(0, 2, 3, 1))  # (O, H, W, words) like the bits
    bits = per_pixel.reshape(signs.shape[0], -1)
    return bits, bits.shape[1] * WORD_BITS - c * h * w


def pack_model(
    model,
    spec: dict | None = None,
    *,
    preprocessing: dict | None = None,
    class_names: list[str] | None = None,
    training: dict | None = None,
    test_accuracy: float | None = None,
) -> PackedModel:
    """Pack a model (in eval mode; its spec by default) into a PackedModel with metadata: the spec's plan, filled."""
    spec = validate_spec(spec if spec is not None else model.spec)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            layers, modules = _spec_as_computed(spec["layers"], model.layers)
            ops = [_emit(op, modules) for op in pack_plan(dict(spec, layers=layers))]
    finally:
        model.train(was_training)
    meta = {
        "format": "bnn-workbench",
        "network_spec": spec,
        "input_shape": list(spec["input_shape"]),
        "num_classes": spec["num_classes"],
        "class_names": list(class_names) if class_names else [str(i) for i in range(spec["num_classes"])],
        "preprocessing": preprocessing or {"kind": "none"},
        "training": training or {},
        "test_accuracy": test_accuracy,
    }
    packed = PackedModel(meta=meta, layers=ops)
    packed.check()
    return packed
