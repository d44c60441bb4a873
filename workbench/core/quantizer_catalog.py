"""The quantizer catalogue: every quantizer a spec may name, registered once.

Spec validation (names, parameters, roles), the summary and packing (bit widths, which outputs are +-1
signs), the trainer (``implementation``) and the XNOR engine (``eval_formula``) all read this table, so a new
quantizer is one entry here plus its torch class (and, for a new eval-mode behaviour, one engine formula);
tests/test_quantizers.py checks that the three agree. Torch-free: the implementation is named, not imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class QuantizerInfo:
    """One quantizer: what the spec accepts, what its output is, and where its code lives."""

    name: str
    implementation: str  # class name in workbench.train.quantizers (resolved there, so core needs no torch)
    eval_formula: str  # key of workbench.deploy.engine.EVAL_FORMULAS: the NumPy formula of its eval-mode output
    params: dict = field(default_factory=dict)  # default values; also the only parameters a spec may give
    bits: int = 1  # output bit width (a quantizer with a "bits" parameter: that parameter)
    is_sign: bool = True  # eval output is +-1 (times a scale): the engine can pack it for XNOR-popcount
    description: str = ""
    role: str = "any"  # "any", "kernel" (weights only) or "input" (activations only)
    twin_activation: str = "hardtanh"  # replaces it as an input quantizer in the float twin (its smooth stand-in)
    choices: dict = field(default_factory=dict)  # the allowed values of a parameter that is not a number or bool
    kernel_defaults: dict = field(default_factory=dict)  # defaults that differ when it quantizes a kernel
    # Parameter values for kernels only: they normalise over the whole tensor, which for activations would make
    # one sample's output depend on the rest of its batch.
    kernel_only: dict = field(default_factory=dict)

    def defaults(self, role: str | None = None) -> dict:
        """Its default parameters where it is used as "kernel" or "input" quantizer (None: the plain ones)."""
        return {**self.params, **(self.kernel_defaults if role == "kernel" else {})}


QUANTIZERS: dict[str, QuantizerInfo] = {
    q.name: q
    for q in [
        QuantizerInfo(
            "ste_sign",
            "SteSignQuantizer",
            "sign",
            {"clip": 1.0},
            description="sign(x); straight-through gradient where |x| <= clip",
        ),
        QuantizerInfo(
            "approx_sign",
            "ApproxSignQuantizer",
            "sign",
            description="sign(x); Bi-Real's piecewise-polynomial gradient 2 - 2|x| on |x| <= 1",
        ),
        QuantizerInfo(
            "swish_sign",
            "SwishSignQuantizer",
            "sign",
            {"beta": 5.0},
            description="sign(x); gradient of the sign-swish 2*sigmoid(beta*x)*(1 + beta*x*(1 - sigmoid(beta*x))) - 1",
        ),
        QuantizerInfo(
            "magnitude_aware_sign",
            "MagnitudeAwareSignQuantizer",
            "scaled_sign",
            {"clip": 1.0},
            description="sign(x) * mean|x| per output channel (Bi-Real weights); straight-through gradient",
            role="kernel",
        ),
        QuantizerInfo(
            "ste_heaviside",
            "SteHeavisideQuantizer",
            "heaviside",
            {"clip": 1.0},
            is_sign=False,
            description="1 where x >= 0 else 0; straight-through gradient where |x| <= clip",
            twin_activation="relu",
        ),
        QuantizerInfo(
            "ste_tern",
            "SteTernQuantizer",
            "ternary",
            {"threshold": 0.05, "clip": 1.0, "ternary_weight_networks": False},
            bits=2,
            is_sign=False,
            description="+1 above threshold t, -1 below -t, else 0; with ternary_weight_networks (kernels "
            "only) t = 0.7 * mean|w| over the tensor (TWN); straight-through gradient",
            kernel_only={"ternary_weight_networks": True},
        ),
        QuantizerInfo(
            "dorefa",
            "DoReFaQuantizer",
            "dorefa",
            {"bits": 2, "mode": "activations"},
            bits=2,
            is_sign=False,
            description="k = bits; mode activations: round((2^k - 1) * clip(x, 0, 1)) / (2^k - 1), "
            "straight-through on [0, 1]; mode weights (the default on kernels): "
            "2 * that of tanh(w) / (2 max|tanh(w)|) + 1/2, minus 1: 2^k levels in [-1, 1]",
            twin_activation="relu",
            choices={"mode": ("activations", "weights")},
            kernel_defaults={"mode": "weights"},
            kernel_only={"mode": "weights"},
        ),
        QuantizerInfo(
            "rsign",
            "RSignQuantizer",
            "sign",
            {"clip": 1.0},
            description="sign(x - t_c) with a learnable per-channel threshold t_c (ReActNet)",
            role="input",
        ),
        QuantizerInfo(
            "stochastic_sign",
            "StochasticSignQuantizer",
            "sign",
            {"clip": 1.0},
            description="training: +1 with probability clip((x + 1) / 2, 0, 1); eval: sign(x)",
        ),
        QuantizerInfo(
            "soft_sign",
            "SoftSignQuantizer",
            "sign",
            {"temperature": 1.0},
            description="training: tanh(x / T), T annealed towards 0 by the trainer; eval: sign(x)",
        ),
    ]
}


def quantizer_label(q: dict | None) -> str:
    """A normalised quantizer as one short string for reprs: "ste_sign(clip=1.0)", "approx_sign", "None"."""
    if q is None:
        return "None"
    params = ", ".join(f"{key}={value}" for key, value in q.items() if key != "name")
    return f"{q['name']}({params})" if params else q["name"]
