"""The int8 baseline of a binary network: its float twin, trained, then post-training quantized to the int8 program
that ``workbench.deploy.c_export.cmsis_int8`` emits as CMSIS-NN C (what TensorFlow Lite Micro would run).

Quantization follows TFLite's int8 scheme: batch norms folded into the dense/conv before them, weights symmetric
per output channel (scale max|w| / 127), activations asymmetric per tensor with ranges calibrated on training
images (a hardtanh or relu after a layer clips its range, so int8 saturation is the activation), int32 biases, and
the input's preprocessing x = u * scale + offset folded in: the int8 input is u - 128 with the pixel scale, the
offset goes into the first layer's bias.

Where the int8 network is not the float twin's exact image it says so in ``Int8Program.notes``: a batch norm after a
max pool folds into the conv before the pool, exact only where its scale is positive; "same" padding of the first
conv pads the input with x = offset instead of 0.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from workbench.core.shapes import conv_output_size, padding_pair
from workbench.core.spec import float_twin, layer_name
from workbench.deploy.c_export.cmsis_int8 import (
    Int8Error,
    Int8Layer,
    Int8Program,
    max_pool,
    patches,
    quantize_multiplier,
)
from workbench.train.training import train

CALIBRATION_IMAGES = 1000


def train_twin(spec: dict, training: dict, dataset):
    """The float twin of a binary spec, trained with the binary network's training spec on the same data."""
    return train(float_twin(spec), training, dataset).model.eval()


def _array(tensor) -> np.ndarray:
    return tensor.detach().to(torch.float64).cpu().numpy()


def _stages(model, input_shape: tuple[int, ...]) -> tuple[list[dict], list[str]]:
    """The float network as CMSIS-NN-shaped stages (float64, NHWC): conv/dense with folded batch norms and a clip
    range from the activation after them, and max pools."""
    stages, notes = [], []
    shape = tuple(input_shape) if len(input_shape) == 3 else (input_shape[0], 1, 1)  # C, H, W
    flat_from = None  # the (C, H, W) map a dense reads flattened, for NHWC column order
    since_linear: list[str] = []  # what came after the last conv/dense: pools may separate a batch norm from it
    for index, (layer, module) in enumerate(zip(model.spec["layers"], model.layers, strict=True)):
        name, kind = layer_name(str(index), layer), layer["type"]
        where = f"layer {index} ({name!r}, {kind})"
        if kind in ("dense", "conv2d"):
            if layer["input_quantizer"] is not None or layer["kernel_quantizer"] is not None:
                raise Int8Error(f"{where}: quantized; the int8 baseline starts from the float twin")
            w = _array(module.binarized_weight())
            b = _array(module.bias) if module.bias is not None else np.zeros(len(w))
            c, h, wd = shape
            if kind == "dense":
                if flat_from is not None:
                    fc, fh, fw = flat_from
                    w = w.reshape(len(w), fc, fh, fw).transpose(0, 2, 3, 1).reshape(len(w), -1)
                stage = dict(kind="dense", name=name, w=w, b=b, in_shape=(h, wd, c), out_shape=(1, 1, len(w)))
                shape = (len(w), 1, 1)
            else:
                k, s = layer["kernel_size"], layer["stride"]
                (top, bottom), (left, right) = padding_pair(layer["padding"], k), padding_pair(layer["padding"], k)
                oh, ow = conv_output_size(h, k, s, top, bottom), conv_output_size(wd, k, s, left, right)
                stage = dict(
                    kind="conv",
                    name=name,
                    w=w.transpose(0, 2, 3, 1),
                    b=b,
                    in_shape=(h, wd, c),
                    out_shape=(oh, ow, len(w)),
                    kernel=k,
                    stride=s,
                    padding=(top, left),
                )
                shape = (len(w), oh, ow)
            stage["clip"] = None
            stages.append(stage)
            since_linear, flat_from = [], None
        elif kind == "batch_norm":
            linear = next((s for s in reversed(stages) if s["kind"] != "pool"), None)
            if linear is None or any(what != "max_pool" for what in since_linear):
                raise Int8Error(f"{where}: only a batch norm after a dense/conv (and max pools) folds into int8")
            inv = 1.0 / np.sqrt(_array(module.running_var) + module.eps)
            g = (_array(module.weight) if module.weight is not None else 1.0) * inv
            beta = _array(module.bias) if module.bias is not None else 0.0
            h_shift = beta - _array(module.running_mean) * g
            if "max_pool" in since_linear and (g < 0).any():
                notes.append(
                    f"{name}: {int((g < 0).sum())} of {len(g)} channels have a negative batch-norm scale after a max "
                    "pool; folded before the pool, they pool the minimum's image (the float twin pools the maximum)"
                )
            linear["w"] = linear["w"] * g.reshape(-1, *[1] * (linear["w"].ndim - 1))
            linear["b"] = linear["b"] * g + h_shift
            since_linear.append(kind)
        elif kind == "activation":
            linear = next((s for s in reversed(stages) if s["kind"] != "pool"), None)
            clip = {"hardtanh": (-1.0, 1.0), "relu": (0.0, math.inf), "identity": None}.get(layer["fn"], "none")
            if clip == "none" or linear is None or linear["clip"] is not None:
                raise Int8Error(f"{where}: {layer['fn']} has no int8 form here (hardtanh or relu after a dense/conv)")
            linear["clip"] = clip
            since_linear.append(kind)
        elif kind == "max_pool":
            c, h, wd = shape
            size, stride = layer["pool_size"], layer["stride"]
            oh, ow = conv_output_size(h, size, stride), conv_output_size(wd, size, stride)
            stages.append(
                dict(kind="pool", name=name, in_shape=(h, wd, c), out_shape=(oh, ow, c), kernel=size, stride=stride)
            )
            shape = (c, oh, ow)
            since_linear.append(kind)
        elif kind == "flatten":
            flat_from = shape if shape[1:] != (1, 1) else None
            shape = (math.prod(shape), 1, 1)
        elif kind != "dropout":
            raise Int8Error(
                f"{where}: no int8 CMSIS-NN counterpart in the baseline (dense, conv2d, batch_norm, "
                "hardtanh/relu, max_pool, flatten, dropout)"
            )
    if stages and stages[0]["kind"] == "conv" and stages[0]["padding"] != (0, 0):
        notes.append(f"{stages[0]['name']}: 'same' padding pads the raw input with x = offset, not 0")
    return stages, notes


def _float_run(stages: list[dict], x: np.ndarray) -> list[np.ndarray]:
    """Every stage's output (float64, NHWC) of the folded float network: what calibration reads."""
    outputs = []
    for stage in stages:
        if stage["kind"] == "pool":
            x = max_pool(x, stage["out_shape"][:2], stage["kernel"], stage["stride"])
        else:
            if stage["kind"] == "conv":
                cols = patches(x, stage["out_shape"][:2], stage["kernel"], stage["stride"], stage["padding"], 0.0)
            else:
                cols = x.reshape(len(x), 1, 1, -1)
            x = cols @ stage["w"].reshape(len(stage["w"]), -1).T + stage["b"]
            if stage["clip"] is not None:
                x = np.clip(x, *stage["clip"])
        outputs.append(x)
    return outputs


def folded_logits(model, u: np.ndarray, preprocessing: dict) -> np.ndarray:
    """The float twin's logits computed through the folded stages (a check of the folding against torch)."""
    stages, _ = _stages(model, model.spec["input_shape"])
    return _float_run(stages, _nhwc(u, preprocessing, stages))[-1].reshape(len(u), -1)


def _nhwc(u: np.ndarray, preprocessing: dict, stages: list[dict]) -> np.ndarray:
    scale, offset = _pixels(preprocessing)
    x = np.asarray(u, dtype=np.float64) * scale + offset
    if x.ndim == 4:
        x = x.transpose(0, 2, 3, 1)
    return x.reshape(len(x), *stages[0]["in_shape"])


def _pixels(preprocessing: dict) -> tuple[float, float]:
    if (preprocessing or {}).get("kind", "none") == "none":
        return 1.0, 0.0
    return float(preprocessing["scale"]), float(preprocessing["offset"])


def _range(values: np.ndarray, clip) -> tuple[float, float]:
    low, high = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    if clip is not None:
        low, high = max(low, clip[0]), min(high, clip[1])
    return low, max(high, low + 1e-6)


def quantize(model, calibration_u: np.ndarray, preprocessing: dict, class_names=None) -> Int8Program:
    """Post-training int8 quantization of a trained float model (see the module docstring); ``calibration_u``:
    uint8 training inputs (N, *input_shape), of which the first CALIBRATION_IMAGES calibrate the activations."""
    spec = model.spec
    stages, notes = _stages(model.eval(), spec["input_shape"])
    if not stages or stages[-1]["kind"] != "dense":
        raise Int8Error("the int8 baseline needs a dense layer last (its outputs are the scores)")
    u = np.asarray(calibration_u)[:CALIBRATION_IMAGES]
    outputs = _float_run(stages, _nhwc(u, preprocessing, stages))
    pixel_scale, pixel_offset = _pixels(preprocessing)
    in_scale, in_zero = pixel_scale, -128  # q = u - 128 holds u * scale; the offset goes into the first bias
    layers = []
    for i, (stage, out) in enumerate(zip(stages, outputs, strict=True)):
        if stage["kind"] == "pool":
            layers.append(
                Int8Layer(
                    stage["name"],
                    "max_pool",
                    stage["in_shape"],
                    stage["out_shape"],
                    kernel=stage["kernel"],
                    stride=stage["stride"],
                )
            )
            continue
        w, b = stage["w"], stage["b"]
        if i == 0:
            b = b + pixel_offset * w.reshape(len(w), -1).sum(axis=1)
        low, high = _range(out, stage["clip"])
        out_scale = (high - low) / 255.0
        out_zero = int(np.clip(np.round(-128 - low / out_scale), -128, 127))
        w_scale = np.abs(w.reshape(len(w), -1)).max(axis=1) / 127.0
        w_scale[w_scale == 0] = 1.0
        wq = np.clip(np.round(w / w_scale.reshape(-1, *[1] * (w.ndim - 1))), -127, 127).astype(np.int8)
        bias = np.round(b / (in_scale * w_scale)).astype(np.int64)
        if np.abs(bias).max(initial=0) >= 2**31:
            raise Int8Error(f"{stage['name']}: an int32 bias overflows (input scale {in_scale:g})")
        multiplier, shift = quantize_multiplier(in_scale * w_scale / out_scale)
        layers.append(
            Int8Layer(
                stage["name"],
                stage["kind"],
                stage["in_shape"],
                stage["out_shape"],
                weight=wq,
                bias=bias.astype(np.int32),
                multiplier=multiplier,
                shift=shift,
                kernel=stage.get("kernel", 1),
                stride=stage.get("stride", 1),
                padding=stage.get("padding", (0, 0)),
                input_offset=-in_zero,
                output_offset=out_zero,
            )
        )
        in_scale, in_zero = out_scale, out_zero
    return Int8Program(
        name=spec["name"],
        input_shape=tuple(spec["input_shape"]),
        num_classes=spec["num_classes"],
        layers=layers,
        output_scale=in_scale,
        output_zero_point=in_zero,
        class_names=list(class_names or []),
        notes=notes,
    )
