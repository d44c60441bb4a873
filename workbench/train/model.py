"""Build a torch model from a network spec: ``build_model(spec) -> BNNModel``.

``model.layers[i]`` is spec layer i, so state dict keys are ``layers.{i}.<param>`` (and
``layers.{i}.layers.{j}.<param>`` inside a shortcut): packing can read a checkpoint with the spec alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from workbench.core.spec import layer_name, layer_shapes, validate_spec
from workbench.train.layers import QuantConv2d, QuantDense, QuantLayer
from workbench.train.quantizers import SoftSignQuantizer

__all__ = ["BNNModel", "Shortcut", "build_model", "build_layer"]

_ACTIVATIONS = {"relu": nn.ReLU, "hardtanh": nn.Hardtanh, "tanh": nn.Tanh, "identity": nn.Identity}


class Shortcut(nn.Module):
    """Bi-Real Net's real-valued shortcut: output = layers(x) + x."""

    def __init__(self, layers: nn.ModuleList):
        super().__init__()
        self.layers = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for layer in self.layers:
            y = layer(y)
        return y + x

    def extra_repr(self) -> str:
        return "output = layers(x) + x"


def build_layer(layer: dict, input_shape: tuple) -> nn.Module:
    """The module for one normalised spec layer, given its input shape (channels-first, no batch)."""
    kind = layer["type"]
    channels = input_shape[0]
    if kind == "dense":
        return QuantDense(channels, layer)
    if kind == "conv2d":
        return QuantConv2d(channels, layer)
    if kind == "max_pool":
        return nn.MaxPool2d(layer["pool_size"], layer["stride"])
    if kind == "avg_pool":
        return nn.AvgPool2d(layer["pool_size"], layer["stride"])
    if kind == "batch_norm":
        norm = nn.BatchNorm2d if len(input_shape) == 3 else nn.BatchNorm1d
        return norm(channels, eps=layer["eps"], momentum=layer["momentum"], affine=layer["affine"])
    if kind == "flatten":
        return nn.Flatten()
    if kind == "dropout":
        return nn.Dropout(layer["rate"])
    if kind == "activation":
        return nn.PReLU(channels) if layer["fn"] == "prelu" else _ACTIVATIONS[layer["fn"]]()
    if kind == "shortcut":
        return Shortcut(_build_layers(layer["layers"], input_shape))
    raise AssertionError(kind)


def _build_layers(layers: list[dict], input_shape: tuple) -> nn.ModuleList:
    shapes = layer_shapes(layers, input_shape)
    return nn.ModuleList(build_layer(layer, shape_in) for layer, (shape_in, _) in zip(layers, shapes))


class BNNModel(nn.Module):
    """A network spec as a torch module: float32 (B, *input_shape) -> logits (B, num_classes)."""

    def __init__(self, spec: dict):
        super().__init__()
        self.spec = validate_spec(spec)
        self.layers = _build_layers(self.spec["layers"], tuple(self.spec["input_shape"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def extra_repr(self) -> str:
        spec = self.spec
        return f"name={spec['name']!r}, input_shape={spec['input_shape']}, num_classes={spec['num_classes']}"

    def named_spec_layers(self) -> Iterator[tuple[str, dict, nn.Module]]:
        """(layer name, spec dict, module) for every layer, shortcut contents included (after the shortcut)."""

        def walk(specs, modules, prefix):
            for index, (layer, module) in enumerate(zip(specs, modules)):
                yield layer_name(f"{prefix}{index}", layer), layer, module
                if layer["type"] == "shortcut":
                    yield from walk(layer["layers"], module.layers, f"{prefix}{index}.")

        yield from walk(self.spec["layers"], self.layers, "")

    def quantized_layers(self) -> list[tuple[str, QuantLayer]]:
        """Every dense/conv2d layer with an input or kernel quantizer, by spec layer name."""
        return [
            (name, module)
            for name, _, module in self.named_spec_layers()
            if isinstance(module, QuantLayer)
            and (module.kernel_quantizer is not None or module.input_quantizer is not None)
        ]

    def set_soft_temperature(self, t: float) -> None:
        """Set T of every soft_sign quantizer (tanh(x / T) in training); the trainer anneals it."""
        if not t > 0:
            raise ValueError(f"soft binarization temperature must be positive, got {t}")
        for module in self.modules():
            if isinstance(module, SoftSignQuantizer):
                module.temperature = float(t)

    def set_quantization(self, weights: bool = True, activations: bool = True) -> None:
        """Switch kernel / input quantizers on or off (two-stage training: binary activations first)."""
        for _, layer in self.quantized_layers():
            if layer.kernel_quantizer is not None:
                layer.kernel_quantizer.enabled = bool(weights)
            if layer.input_quantizer is not None:
                layer.input_quantizer.enabled = bool(activations)

    @contextlib.contextmanager
    def capture_preactivations(self) -> Iterator[dict[str, torch.Tensor]]:
        """Within the block, each forward fills name -> the (detached) tensor entering each input quantizer."""
        captured: dict[str, torch.Tensor] = {}
        handles = []
        for name, layer in self.quantized_layers():
            if layer.input_quantizer is not None:

                def hook(module, inputs, name=name):
                    captured[name] = inputs[0].detach()

                handles.append(layer.input_quantizer.register_forward_pre_hook(hook))
        try:
            yield captured
        finally:
            for handle in handles:
                handle.remove()


def build_model(spec: dict) -> BNNModel:
    """Validate a network spec and build its torch model (parameters freshly initialised)."""
    return BNNModel(spec)
