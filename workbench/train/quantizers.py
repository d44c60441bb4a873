"""Quantizers: torch.autograd.Functions with hand-written gradients, wrapped in small nn.Modules.

sign(0) = +1 everywhere (``torch.sign`` maps 0 to 0, so it is never used here). Each Function's
docstring gives its forward and backward formula; tests/test_quantizers.py checks both against them.
Each catalogue entry (workbench.core.quantizer_catalog) names its module class here; ``IMPLEMENTATIONS``
resolves those names and ``make_quantizer(spec, channels)`` builds the module for a quantizer spec.
Every module has ``enabled`` (two-stage training switches it off: the module then passes its input
through unchanged) and ``spec`` (its normalised dict).
"""

from __future__ import annotations

import torch
from torch import nn

from workbench.core.quantizer_catalog import QUANTIZERS
from workbench.core.spec import SpecError, normalize_quantizer

__all__ = [
    "binary_sign",
    "SteSign",
    "ApproxSign",
    "SwishSign",
    "MagnitudeAwareSign",
    "SteHeaviside",
    "SteTern",
    "twn_threshold",
    "DoReFa",
    "DoReFaWeights",
    "SoftTanh",
    "Quantizer",
    "SteSignQuantizer",
    "ApproxSignQuantizer",
    "SwishSignQuantizer",
    "MagnitudeAwareSignQuantizer",
    "SteHeavisideQuantizer",
    "SteTernQuantizer",
    "DoReFaQuantizer",
    "RSignQuantizer",
    "StochasticSignQuantizer",
    "SoftSignQuantizer",
    "IMPLEMENTATIONS",
    "make_quantizer",
]


def binary_sign(x: torch.Tensor) -> torch.Tensor:
    """+1 where x >= 0, -1 elsewhere (sign(0) = +1, also for -0.0), in x's dtype.

    2 * [x >= 0] - 1 rather than torch.where(x >= 0, 1.0, -1.0): the same values at less than half the cost
    on the CPU, and this runs on every latent weight at every step.
    """
    return (x >= 0).to(x.dtype).mul_(2).sub_(1)


def _ste_grad(grad: torch.Tensor, x: torch.Tensor, clip: float) -> torch.Tensor:
    """grad * 1[|x| <= clip], in one fused pass (hardtanh's backward, which keeps grad where -b < x < b).

    b is the next value above clip in x's dtype, so the strict bounds keep |x| == clip: a latent weight
    clipped to the bound still gets its gradient and can come back, as in Larq's ste_sign.
    """
    bound = torch.nextafter(torch.tensor(float(clip), dtype=x.dtype), torch.tensor(float("inf"), dtype=x.dtype))
    return torch.ops.aten.hardtanh_backward(grad, x, -bound.item(), bound.item())


class _ClippedSte(torch.autograd.Function):
    """Shared backward of the straight-through quantizers: grad * 1[|x| <= clip] to x, None to the params."""

    @staticmethod
    def save(ctx, x, clip, n_params):
        ctx.save_for_backward(x)
        ctx.clip, ctx.n_params = clip, n_params

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return (_ste_grad(grad, x, ctx.clip),) + (None,) * ctx.n_params


class SteSign(_ClippedSte):
    """forward: sign(x) (+1 at 0); backward: grad * 1[|x| <= clip] (straight-through estimator)."""

    @staticmethod
    def forward(ctx, x, clip):
        _ClippedSte.save(ctx, x, clip, 1)
        return binary_sign(x)


class ApproxSign(torch.autograd.Function):
    """forward: sign(x); backward: grad * (2 - 2|x|) for |x| <= 1, else 0 (Bi-Real Net)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return binary_sign(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.clamp(2.0 - 2.0 * x.abs(), min=0.0)


class SwishSign(torch.autograd.Function):
    """forward: sign(x); backward: grad * beta * (2 - beta*x*tanh(beta*x/2)) / (1 + cosh(beta*x)) (BNN+)."""

    @staticmethod
    def forward(ctx, x, beta):
        ctx.save_for_backward(x)
        ctx.beta = beta
        return binary_sign(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        bx = ctx.beta * x
        # cosh overflows to inf for |bx| > ~89 in float32, where the true gradient is 0: inf in the
        # denominator gives exactly that.
        return grad * ctx.beta * (2.0 - bx * torch.tanh(bx / 2.0)) / (1.0 + torch.cosh(bx)), None


class MagnitudeAwareSign(torch.autograd.Function):
    """forward: sign(x) * s_o with s_o = mean |x| over all but dim 0 (one scale per output channel);
    backward: grad * s_o * 1[|x| <= clip] (straight-through, the scale treated as a constant; Bi-Real Net).
    The mean is taken in float64 and rounded once, so NumPy (the engine) gets the same scale bit for bit.
    """

    @staticmethod
    def forward(ctx, x, clip):
        scale = x.detach().abs().to(torch.float64).mean(dim=tuple(range(1, x.dim())), keepdim=True).to(x.dtype)
        ctx.save_for_backward(x, scale)
        ctx.clip = clip
        return binary_sign(x) * scale

    @staticmethod
    def backward(ctx, grad):
        x, scale = ctx.saved_tensors
        return _ste_grad(grad * scale, x, ctx.clip), None


class SteHeaviside(_ClippedSte):
    """forward: 1 where x >= 0 else 0; backward: grad * 1[|x| <= clip]."""

    @staticmethod
    def forward(ctx, x, clip):
        _ClippedSte.save(ctx, x, clip, 1)
        return (x >= 0).to(x.dtype)


def twn_threshold(w: torch.Tensor) -> torch.Tensor:
    """0.7 * mean |w| over the whole tensor (Ternary Weight Networks), as a 0-dim tensor in w's dtype.

    The mean is taken in float64 and rounded once, so NumPy (the engine) gets the same threshold bit for bit
    whatever order either library sums in.
    """
    return (0.7 * w.detach().abs().to(torch.float64).mean()).to(w.dtype)


class SteTern(_ClippedSte):
    """forward: +1 where x > t, -1 where x < -t, 0 where |x| <= t; backward: grad * 1[|x| <= clip]."""

    @staticmethod
    def forward(ctx, x, threshold, clip):
        _ClippedSte.save(ctx, x, clip, 2)
        return (x > threshold).to(x.dtype) - (x < -threshold).to(x.dtype)


class DoReFa(torch.autograd.Function):
    """forward: round((2^k - 1) * clip(x, 0, 1)) / (2^k - 1) (round half to even);
    backward: grad * 1[0 <= x <= 1] (straight-through through the clip).
    """

    @staticmethod
    def forward(ctx, x, bits):
        ctx.save_for_backward(x)
        levels = 2.0**bits - 1.0
        return torch.round(torch.clamp(x, 0.0, 1.0) * levels) / levels

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ((x >= 0) & (x <= 1)).to(x.dtype), None


class DoReFaWeights(torch.autograd.Function):
    """DoReFa's weight quantizer (Larq's mode="weights"): with t = tanh(w), m = max |t| over the tensor and
    q_k(v) = round((2^k - 1) v) / (2^k - 1), forward: 2 * q_k(t / (2m) + 1/2) - 1, 2^k levels in [-1, 1]
    symmetric about 0 (all-zero weights: t / (2m) taken as 0); backward: grad * 2 * (1 - t^2) / (2m)
    (straight-through the rounding, m held constant; 0 where m = 0).

    tanh runs in float64 and is rounded once to w's dtype, so NumPy's tanh (the engine) gives the same bits.
    """

    @staticmethod
    def forward(ctx, w, bits):
        t = torch.tanh(w.detach().to(torch.float64)).to(w.dtype)
        m = t.abs().max()
        ctx.save_for_backward(t, m)
        levels = 2.0**bits - 1.0
        normed = torch.where(m > 0, t / (2 * m), torch.zeros_like(t)) + 0.5
        return 2 * (torch.round(normed * levels) / levels) - 1

    @staticmethod
    def backward(ctx, grad):
        t, m = ctx.saved_tensors
        return torch.where(m > 0, grad * 2 * (1 - t * t) / (2 * m), torch.zeros_like(grad)), None


class SoftTanh(torch.autograd.Function):
    """forward: tanh(x / T); backward: grad * (1 - tanh(x / T)^2) / T (the exact derivative)."""

    @staticmethod
    def forward(ctx, x, temperature):
        y = torch.tanh(x / temperature)
        ctx.save_for_backward(y)
        ctx.temperature = temperature
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1.0 - y * y) / ctx.temperature, None


class Quantizer(nn.Module):
    """Base of the quantizer modules: ``enabled = False`` passes the input through (two-stage training).

    Subclasses implement ``quantize``; ``channels`` sizes per-channel parameters (only rsign has any).
    """

    def __init__(self, spec: dict, channels: int):
        super().__init__()
        self.spec = dict(spec)
        self.enabled = True

    @property
    def name(self) -> str:
        return self.spec["name"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quantize(x) if self.enabled else x

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        parts = [f"{key}={value}" for key, value in self.spec.items() if key != "name"]
        return ", ".join(parts + ([] if self.enabled else ["enabled=False"]))


# One module per catalogue entry; each formula and its gradient is in its autograd Function above.


class SteSignQuantizer(Quantizer):
    def quantize(self, x):
        return SteSign.apply(x, self.spec["clip"])


class ApproxSignQuantizer(Quantizer):
    def quantize(self, x):
        return ApproxSign.apply(x)


class SwishSignQuantizer(Quantizer):
    def quantize(self, x):
        return SwishSign.apply(x, self.spec["beta"])


class MagnitudeAwareSignQuantizer(Quantizer):
    def quantize(self, x):
        return MagnitudeAwareSign.apply(x, self.spec["clip"])


class SteHeavisideQuantizer(Quantizer):
    def quantize(self, x):
        return SteHeaviside.apply(x, self.spec["clip"])


class SteTernQuantizer(Quantizer):
    """A fixed threshold, or with ternary_weight_networks TWN's 0.7 * mean |w| of the current weights."""

    def quantize(self, x):
        threshold = twn_threshold(x) if self.spec["ternary_weight_networks"] else self.spec["threshold"]
        return SteTern.apply(x, threshold, self.spec["clip"])


class DoReFaQuantizer(Quantizer):
    """mode "activations": DoReFa (inputs in [0, 1]); mode "weights": DoReFaWeights (kernels in [-1, 1])."""

    def quantize(self, x):
        if self.spec["mode"] == "weights":
            return DoReFaWeights.apply(x, self.spec["bits"])
        return DoReFa.apply(x, self.spec["bits"])


class RSignQuantizer(Quantizer):
    """sign(x - t_c), t_c a learnable threshold per channel (dim 1), initialised to 0 (ReActNet's RSign).

    Gradients: d/dx = 1[|x - t_c| <= clip] (straight-through), d/dt_c = -sum of the same over the
    batch and spatial positions of channel c; both come from autograd through x - t.
    """

    def __init__(self, spec: dict, channels: int):
        super().__init__(spec, channels)
        self.threshold = nn.Parameter(torch.empty(channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.threshold)

    def quantize(self, x):
        shape = [1, -1] + [1] * (x.dim() - 2)
        return SteSign.apply(x - self.threshold.view(shape), self.spec["clip"])

    def extra_repr(self) -> str:
        return f"channels={self.threshold.numel()}, " + super().extra_repr()


class StochasticSignQuantizer(Quantizer):
    """Training: +1 with probability p = hard_sigmoid(x) = clip((x + 1) / 2, 0, 1), else -1; gradient
    grad * 1[|x| <= clip] (straight-through). Eval: the deterministic sign(x).
    """

    def quantize(self, x):
        if not self.training:
            return SteSign.apply(x, self.spec["clip"])
        return _StochasticSign.apply(x, self.spec["clip"])


class _StochasticSign(_ClippedSte):
    """forward: +1 with probability clip((x + 1) / 2, 0, 1), else -1; backward: grad * 1[|x| <= clip]."""

    @staticmethod
    def forward(ctx, x, clip):
        _ClippedSte.save(ctx, x, clip, 1)
        p = torch.clamp((x + 1.0) / 2.0, 0.0, 1.0)
        return torch.where(torch.rand_like(p) < p, 1.0, -1.0).to(x.dtype)


class SoftSignQuantizer(Quantizer):
    """Training: tanh(x / T) with its exact gradient, T set by ``model.set_soft_temperature`` (annealed
    towards 0 over training, which approaches the sign). Eval: the hard sign(x) the engine computes
    (with a straight-through gradient on |x| <= 1, should anything backpropagate in eval mode).
    """

    def __init__(self, spec: dict, channels: int):
        super().__init__(spec, channels)
        self.temperature = float(spec["temperature"])

    def quantize(self, x):
        if not self.training:
            return SteSign.apply(x, 1.0)
        return SoftTanh.apply(x, self.temperature)

    def extra_repr(self) -> str:
        """The current (annealed) temperature, not the spec's starting one."""
        return f"temperature={self.temperature}" + ("" if self.enabled else ", enabled=False")


# The registry: catalogue name -> module class, by the class name each catalogue entry gives (a missing
# class fails here, at import).
IMPLEMENTATIONS: dict[str, type[Quantizer]] = {
    name: globals()[info.implementation] for name, info in QUANTIZERS.items()
}


def make_quantizer(spec, channels: int, role: str | None = None) -> Quantizer | None:
    """The module for a quantizer spec (None, a name or a dict); ``channels`` sizes per-channel parameters.

    ``role`` ("kernel" or "input") fills role-dependent defaults for a bare name, as spec validation does.
    """
    try:
        q = normalize_quantizer(spec, role=role)
    except Exception as error:  # spec._Bad: report as a SpecError for direct callers
        raise SpecError(f"quantizer: must be {error}, got {spec!r}") from None
    if q is None:
        return None
    return IMPLEMENTATIONS[q["name"]](q, channels)
