"""Pack a trained torch model into a PackedModel: binary weights to bits, BN + scaling + sign to thresholds.

The network is compiled into the engine's flat list of ops (docs/FORMAT.md, "Ops"). A binary layer's
output z = A_c * dot + B_c (weight scale, bias, the batch norms after it, minus the next layer's rsign
threshold) only matters through sign(z), so it becomes one integer threshold per output channel: +1 iff
dot >= ceil(-B/A) when A > 0 (flip 0), iff dot <= floor(-B/A) when A < 0 (flip 1), a constant when A = 0.
Max pooling in that chain pools the thresholded bits (AND, or OR where the maps after the pool decrease),
exact because the chain is monotone per channel. Everything that is not XNOR-able runs as float32 ops.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from workbench.deploy.kernels import pack_signs
from workbench.train.layers import QuantLayer
from workbench.deploy.packed import PackedLayer, PackedModel
from workbench.core.spec import layer_name, validate_spec

INT32_MIN, INT32_MAX = -2**31, 2**31 - 1
# Input quantizers whose eval output is sign(x - t): their layer can take packed bits.
_BIT_INPUTS = ("ste_sign", "approx_sign", "swish_sign", "rsign", "stochastic_sign", "soft_sign")
_SIGN_PRESERVING = ("identity", "hardtanh", "tanh")


def _f64(tensor) -> np.ndarray:
    return tensor.detach().to(torch.float64).cpu().numpy()


def binary_factors(layer: QuantLayer) -> tuple[np.ndarray, np.ndarray] | None:
    """(signs (+1/-1, torch layout), per-channel scale) when the quantized weights are +-scale_c, else None."""
    if not layer.quantizes_weights or not _is_sign(layer.kernel_quantizer.spec):
        return None
    w = layer.binarized_weight().detach().to(torch.float32).cpu().numpy()
    flat = w.reshape(w.shape[0], -1)
    scale = np.abs(flat).max(axis=1) if flat.size else np.zeros(w.shape[0], np.float32)
    if not np.all(np.abs(flat) == scale[:, None]):
        return None
    return np.where(w >= 0, 1, -1).astype(np.int8), scale.astype(np.float64)


def _is_sign(q: dict | None) -> bool:
    return q is not None and q["name"] in _BIT_INPUTS + ("magnitude_aware_sign",)


def takes_bits(layer: nn.Module) -> bool:
    """An XNOR layer: sign weights (+-scale) and a sign input quantizer, both switched on."""
    q = getattr(layer, "input_quantizer", None)
    return (isinstance(layer, QuantLayer) and q is not None and q.enabled and q.spec["name"] in _BIT_INPUTS
            and binary_factors(layer) is not None)


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


class _Compiler:
    """Walks the spec and its modules, emitting ops; ``state`` is "input", "real" or "bits"."""

    def __init__(self, model, spec: dict):
        self.model, self.spec = model, spec
        self.ops: list[PackedLayer] = []
        self.state = "input"

    def emit(self, name, op, attrs=None, **arrays):
        self.ops.append(PackedLayer(name, op, attrs or {}, {k: v for k, v in arrays.items() if v is not None}))

    def compile_list(self, specs, modules, shape, prefix="", top=False):
        index = 0
        while index < len(specs):
            layer, module = specs[index], modules[index]
            name = layer_name(f"{prefix}{index}", layer)
            kind = layer["type"]
            if kind in ("dense", "conv2d"):
                index, shape = self.compile_quant(specs, modules, index, shape, prefix, top)
                continue
            if kind == "flatten":
                self.emit(name, "flatten", {"in_shape": list(shape)})
                shape = (math.prod(shape),)
            elif kind == "dropout":
                pass
            elif kind == "shortcut":
                self.to_real(name, shape)
                self.emit(name, "residual_begin", {"shape": list(shape)})
                self.compile_list(layer["layers"], module.layers, shape, f"{prefix}{index}.")
                self.to_real(name, shape)
                self.emit(name, "residual_add", {"shape": list(shape)})
            else:
                self.to_real(name, shape)
                shape = self.compile_float(name, layer, module, shape)
            index += 1
        return shape

    def to_real(self, name, shape):
        if self.state == "bits":
            raise ValueError(f"layer {name}: a float layer after packed bits is not supported by packing")
        self.state = "real"

    def compile_float(self, name, layer, module, shape):
        kind = layer["type"]
        if kind == "batch_norm":
            a, b = _bn_affine(module)
            self.emit(name, "float_affine", {}, scale=a.astype(np.float32), shift=b.astype(np.float32))
            return shape
        if kind in ("max_pool", "avg_pool"):
            attrs = {"pool_size": layer["pool_size"], "stride": layer["stride"]}
            self.emit(name, kind, attrs)
            return (shape[0], (shape[1] - layer["pool_size"]) // layer["stride"] + 1,
                    (shape[2] - layer["pool_size"]) // layer["stride"] + 1)
        if kind == "activation":
            alpha = _f64(module.weight).astype(np.float32) if layer["fn"] == "prelu" else None
            if alpha is not None and alpha.size == 1:
                alpha = np.full(shape[0], alpha[0], np.float32)
            self.emit(name, "activation", {"fn": layer["fn"]}, alpha=alpha)
            return shape
        raise ValueError(f"layer {name}: type {kind!r} is not supported by packing")

    # --------------------------------------------------------------------------- dense / conv2d

    def compile_quant(self, specs, modules, index, shape, prefix, top):
        layer, module = specs[index], modules[index]
        name = layer_name(f"{prefix}{index}", layer)
        out_shape = _quant_output_shape(layer, shape)
        factors = binary_factors(module)
        conv = layer["type"] == "conv2d"
        if self.state == "bits" and not takes_bits(module):
            raise ValueError(f"layer {name}: packed bits feed a layer that is not XNOR-able")
        if factors is not None and (self.state == "bits" or (self.state == "real" and takes_bits(module))):
            if self.state == "real":
                self.emit(name, "sign", {"channels": shape[0]},
                          thresholds=input_threshold(module, shape[0]).astype(np.float32))
                self.state = "bits"
            signs, scale = factors
            k, weight_bits, pad_count = _pack_weights(signs, conv, self.flat_from)
            attrs = {"k": k, "in_shape": list(shape), "out_shape": list(out_shape)}
            if conv:
                attrs.update(kernel_size=layer["kernel_size"], stride=layer["stride"], padding=layer["padding"])
            bias = _f64(module.bias) if module.bias is not None else np.zeros(len(scale))
            # the kernel's dot over the padded flatten counts pad_count extra +1*+1 products
            return self.finish(name, "binary_" + layer["type"], attrs, weight_bits, scale, bias - scale * pad_count,
                               specs, modules, index, out_shape, prefix, top)
        if factors is not None and self.state == "input" and module.input_quantizer is None:
            signs, scale = factors
            k = signs.shape[1] if conv else signs[0].size
            attrs = {"k": k, "in_shape": list(shape), "out_shape": list(out_shape)}
            weight = signs.transpose(0, 2, 3, 1) if conv else signs
            if conv:
                attrs.update(kernel_size=layer["kernel_size"], stride=layer["stride"], padding=layer["padding"])
            bias = _f64(module.bias) if module.bias is not None else np.zeros(len(scale))
            return self.finish(name, "input_" + layer["type"], attrs, pack_signs(weight), scale, bias,
                               specs, modules, index, out_shape, prefix, top)
        self.to_real(name, shape)
        self.compile_float_quant(name, layer, module)
        return index + 1, out_shape

    @property
    def flat_from(self):
        """(C, H, W) when the current bits are a flattened NHWC map (the dense weights must follow)."""
        last = self.ops[-1] if self.ops else None
        if last is not None and last.op == "flatten" and len(last.attrs["in_shape"]) == 3:
            return tuple(last.attrs["in_shape"])
        return None

    def compile_float_quant(self, name, layer, module):
        q = module.input_quantizer
        if q is not None and q.enabled:
            thresholds = _f64(q.threshold).astype(np.float32) if q.spec["name"] == "rsign" else None
            self.emit(name, "quantize", {"quantizer": q.spec}, thresholds=thresholds)
        weight = module.binarized_weight().detach().to(torch.float32).cpu().numpy()
        bias = module.bias.detach().to(torch.float32).cpu().numpy() if module.bias is not None else None
        if layer["type"] == "dense":
            self.emit(name, "float_dense", {}, weight=weight, bias=bias)
        else:
            pad_value = 1.0 if module.pads_with_plus_one else 0.0
            self.emit(name, "float_conv2d", {"stride": layer["stride"], "padding": layer["padding"],
                                             "pad_value": pad_value}, weight=weight, bias=bias)

    def finish(self, name, op, attrs, weight_bits, scale, bias, specs, modules, index, shape, prefix, top):
        """Fold what follows a binary layer into thresholds (next layer XNOR-able) or a float affine."""
        a, b = scale.copy(), bias.copy()
        pools = []  # (position in chain, spec, slope sign product after it)
        nonlinear = False
        j = index + 1
        flattened = None
        while j < len(specs):
            layer, module = specs[j], modules[j]
            kind = layer["type"]
            if kind == "batch_norm" and not nonlinear and flattened is None:
                g, h = _bn_affine(module)
                a, b = g * a, g * b + h
                for pool in pools:
                    pool[1] = pool[1] * np.sign(g)
            elif kind == "dropout":
                pass
            elif kind == "activation" and layer["fn"] in _SIGN_PRESERVING and flattened is None:
                nonlinear = nonlinear or layer["fn"] != "identity"
            elif kind == "max_pool" and len(shape) == 3 and flattened is None:
                pools.append([layer, np.ones(len(a)), layer_name(f"{prefix}{j}", layer)])
            elif kind == "flatten" and flattened is None:
                flattened = j
            elif kind in ("dense", "conv2d") and takes_bits(module):
                break
            else:
                j = None
                break
            j += 1
        if j is not None and j < len(specs):
            # sign(z - t) of the next layer's input quantizer
            a_out, b_out = a, b - input_threshold(modules[j], len(a))
            thresholds, flip = fold_thresholds(a_out, b_out)
            if op.startswith("input_"):
                self.emit(name, op, dict(attrs, output="bits"), weight_bits=weight_bits,
                          scale=a_out, shift=b_out)
            else:
                self.emit(name, op, dict(attrs, output="bits"), weight_bits=weight_bits,
                          thresholds=thresholds, flip=flip)
            self.state = "bits"
            for pool_layer, slope, pool_name in pools:
                shape = (shape[0], (shape[1] - pool_layer["pool_size"]) // pool_layer["stride"] + 1,
                         (shape[2] - pool_layer["pool_size"]) // pool_layer["stride"] + 1)
                self.emit(pool_name, "max_pool_bits", {"pool_size": pool_layer["pool_size"],
                                                  "stride": pool_layer["stride"], "out_shape": list(shape)},
                          use_or=(slope < 0).astype(np.uint8))
            if flattened is not None:
                self.emit(layer_name(f"{prefix}{flattened}", specs[flattened]), "flatten", {"in_shape": list(shape)})
                shape = (math.prod(shape),)
            return j, shape
        # no sign follows: a float output, with the batch norms right after it folded in
        a, b = scale.copy(), bias.copy()
        j = index + 1
        while j < len(specs) and specs[j]["type"] in ("batch_norm", "dropout"):
            if specs[j]["type"] == "batch_norm":
                g, h = _bn_affine(modules[j])
                a, b = g * a, g * b + h
            j += 1
        self.emit(name, op, dict(attrs, output="float"), weight_bits=weight_bits,
                  scale=a.astype(np.float64 if op.startswith("input_") else np.float32),
                  shift=b.astype(np.float64 if op.startswith("input_") else np.float32))
        self.state = "real"
        return j, shape


def _bn_affine(module: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode batch norm as y = g * x + h per channel, in float64."""
    inv = 1.0 / np.sqrt(_f64(module.running_var) + module.eps)
    gamma = _f64(module.weight) if module.weight is not None else np.ones_like(inv)
    beta = _f64(module.bias) if module.bias is not None else np.zeros_like(inv)
    g = gamma * inv
    return g, beta - _f64(module.running_mean) * g


def _quant_output_shape(layer: dict, shape: tuple) -> tuple:
    if layer["type"] == "dense":
        return (layer["units"],)
    k, s = layer["kernel_size"], layer["stride"]
    pad = (k - 1) // 2 if layer["padding"] == "same" else 0
    return (layer["filters"], (shape[1] + 2 * pad - k) // s + 1, (shape[2] + 2 * pad - k) // s + 1)


def _pack_weights(signs: np.ndarray, conv: bool, flat_from) -> tuple[int, np.ndarray, int]:
    """(k for the kernel, packed weights, padding bits counted as +1*+1 by the kernel's dot)."""
    if conv:  # OIHW -> OHWI, packed along I
        return signs.shape[1], pack_signs(signs.transpose(0, 2, 3, 1)), 0
    if flat_from is None:
        return signs.shape[1], pack_signs(signs), 0
    c, h, w = flat_from
    per_pixel = pack_signs(signs.reshape(-1, c, h, w).transpose(0, 2, 3, 1))  # (O, H, W, words) like the bits
    bits = per_pixel.reshape(signs.shape[0], -1)
    k = bits.shape[1] * 64
    return k, bits, k - c * h * w


def pack_model(model, spec: dict | None = None, *, preprocessing: dict | None = None,
               class_names: list[str] | None = None, training: dict | None = None,
               test_accuracy: float | None = None) -> PackedModel:
    """Compile a model (in eval mode; its spec by default) into a PackedModel with metadata."""
    spec = validate_spec(spec if spec is not None else model.spec)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            compiler = _Compiler(model, spec)
            compiler.compile_list(spec["layers"], model.layers, tuple(spec["input_shape"]), top=True)
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
    packed = PackedModel(meta=meta, layers=compiler.ops)
    packed.check()
    return packed
