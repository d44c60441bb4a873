"""Quantized dense and convolution layers, built from one normalised spec layer dict.

A layer quantizes its input (``input_quantizer``) and its latent float weights (``kernel_quantizer``),
scales the binarized weights per output channel (``scaling``) and applies the plain float op. With
both quantizers null it is an ordinary full-precision layer. Parameter names are stable, since packing
reads checkpoints by name: ``weight``, ``bias``, ``scale``, ``input_quantizer.threshold`` (rsign).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from workbench.core.quantizer_catalog import quantizer_label
from workbench.core.shapes import padding_pair
from workbench.core.spec import is_sign_quantizer
from workbench.train.quantizers import make_quantizer


class QuantLayer(nn.Module):
    """Shared parts of QuantDense and QuantConv2d: quantizers, scaling, the binarized weight.

    Like torch's _ConvNd, the base creates the parameters (weight of ``weight_shape``, then bias and the
    learnable scale when the spec asks for them) and initialises them with ``reset_parameters``.
    """

    def __init__(self, spec: dict, in_channels: int, weight_shape: tuple[int, ...]):
        super().__init__()
        self.spec = dict(spec)
        out_channels = weight_shape[0]
        self.input_quantizer = make_quantizer(spec["input_quantizer"], in_channels)
        self.kernel_quantizer = make_quantizer(spec["kernel_quantizer"], out_channels)
        self.weight = nn.Parameter(torch.empty(weight_shape))
        self.bias = nn.Parameter(torch.empty(out_channels)) if spec["use_bias"] else None
        self.scale = nn.Parameter(torch.empty(out_channels)) if spec["scaling"] == "learnable" else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Fresh latent weights, zero bias, and the learnable scale at the weights' mean |W| per channel.

        Full precision: torch's Linear/Conv2d default, kaiming uniform with a = sqrt(5). Quantized kernels:
        Glorot uniform, as Larq's quantized layers: small latent weights, well inside the STE clip.
        """
        if self.kernel_quantizer is None:
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        else:
            shape = self.weight.shape
            receptive = math.prod(shape[2:])
            fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        if self.scale is not None:
            with torch.no_grad():
                self.scale.copy_(self._mean_abs_weight().flatten())

    def _mean_abs_weight(self) -> torch.Tensor:
        """Per-output-channel mean |W| of the latent weights, shaped to broadcast against the weight."""
        return self.weight.abs().mean(dim=tuple(range(1, self.weight.dim())), keepdim=True)

    @property
    def quantizes_weights(self) -> bool:
        return self.kernel_quantizer is not None and self.kernel_quantizer.enabled

    def binarized_weight(self) -> torch.Tensor:
        """The weights the forward uses: quantized latent weights times the per-channel scale (if any).

        With the kernel quantizer switched off (two-stage training) the latent weights are used unscaled.
        """
        if not self.quantizes_weights:
            return self.weight
        w = self.kernel_quantizer(self.weight)
        if self.spec["scaling"] == "xnor":
            w = w * self._mean_abs_weight()
        elif self.spec["scaling"] == "learnable":
            w = w * self.scale.view([-1] + [1] * (w.dim() - 1))
        return w

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        return self.input_quantizer(x) if self.input_quantizer is not None else x

    def _quantization_repr(self) -> str:
        """The spec's quantization fields, for the subclasses' extra_repr."""
        return (
            f"input_quantizer={quantizer_label(self.spec['input_quantizer'])}, "
            f"kernel_quantizer={quantizer_label(self.spec['kernel_quantizer'])}, "
            f"scaling={self.spec['scaling']}, bias={self.bias is not None}"
        )


class QuantDense(QuantLayer):
    """y = q_in(x) @ (q_k(W) * s)^T + b, W of shape (units, in_features)."""

    def __init__(self, in_features: int, spec: dict):
        super().__init__(spec, in_features, (spec["units"], in_features))
        self.in_features, self.units = in_features, spec["units"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.quantize_input(x), self.binarized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, units={self.units}, " + self._quantization_repr()


class QuantConv2d(QuantLayer):
    """conv2d(pad(q_in(x)), q_k(W) * s) + b, W of shape (filters, in_channels, k, k).

    "same" padding adds (k - 1) / 2 on every side. When the input quantizer is a sign, the binarized input
    is padded with +1 explicitly (then the conv runs with padding 0), which is what the XNOR engine's
    all-zero padding words mean, so training and engine agree bit for bit. Other inputs pad with 0.
    """

    def __init__(self, in_channels: int, spec: dict):
        k = spec["kernel_size"]
        super().__init__(spec, in_channels, (spec["filters"], in_channels, k, k))
        self.in_channels, self.filters, self.kernel_size = in_channels, spec["filters"], k
        self.stride, self.padding = spec["stride"], spec["padding"]
        self.pad = padding_pair(spec["padding"], k)[0]  # odd kernels only (spec validation): before == after

    @property
    def pads_with_plus_one(self) -> bool:
        q = self.input_quantizer
        return q is not None and q.enabled and is_sign_quantizer(q.spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quantize_input(x)
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, value=1.0 if self.pads_with_plus_one else 0.0)
        return F.conv2d(x, self.binarized_weight(), self.bias, stride=self.stride)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, filters={self.filters}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, " + self._quantization_repr()
        )
