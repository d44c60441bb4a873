"""Random packed models for the engine, fuzz and C export tests: one mixed network and one way to randomize
batch norms, so that every suite checks the same ops on the same kind of weights."""

import copy

import torch

from workbench.core.spec import validate_spec
from workbench.train.model import build_model
from workbench.train.packing import pack_model

PIXELS = {"kind": "affine", "scale": 2 / 255, "offset": -1.0}

# a shortcut with rsign, prelu, binary pooling, a flattened 70-channel map (a partial word), xnor and learnable
# scaling, a biased XNOR dense, ternary / dorefa / heaviside inputs: most ops the engine runs, on a 2x8x8 input
MIXED_SPEC = {
    "name": "mixed",
    "input_shape": [2, 8, 8],
    "num_classes": 3,
    "layers": [
        {
            "type": "conv2d",
            "filters": 8,
            "kernel_size": 3,
            "padding": "same",
            "kernel_quantizer": "ste_sign",
            "scaling": "xnor",
        },
        {"type": "batch_norm"},
        {
            "type": "shortcut",
            "layers": [
                {
                    "type": "conv2d",
                    "filters": 8,
                    "kernel_size": 3,
                    "padding": "same",
                    "input_quantizer": "rsign",
                    "kernel_quantizer": "magnitude_aware_sign",
                },
                {"type": "batch_norm"},
            ],
        },
        {"type": "activation", "fn": "prelu"},
        {
            "type": "conv2d",
            "filters": 70,
            "kernel_size": 3,
            "stride": 2,
            "input_quantizer": "approx_sign",
            "kernel_quantizer": "ste_sign",
            "scaling": "learnable",
        },
        {"type": "max_pool", "pool_size": 2},
        {"type": "batch_norm"},
        {"type": "flatten"},
        {"type": "dense", "units": 16, "input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign", "use_bias": True},
        {"type": "batch_norm"},
        {"type": "dense", "units": 12, "input_quantizer": "ste_tern", "kernel_quantizer": "dorefa"},
        {"type": "activation", "fn": "relu"},
        {"type": "dense", "units": 3, "input_quantizer": "ste_heaviside", "kernel_quantizer": "ste_sign"},
    ],
}

# float layers throughout: batch norm on the input, tanh, avg_pool, hardtanh, dorefa and sign inputs
FLOATS_SPEC = {
    "name": "floats",
    "input_shape": [3, 8, 8],
    "num_classes": 4,
    "layers": [
        {"type": "batch_norm"},
        {"type": "conv2d", "filters": 6, "kernel_size": 3, "padding": "same", "kernel_quantizer": "ste_sign"},
        {"type": "batch_norm"},
        {"type": "activation", "fn": "tanh"},
        {"type": "avg_pool", "pool_size": 2},
        {
            "type": "conv2d",
            "filters": 5,
            "kernel_size": 3,
            "padding": "same",
            "input_quantizer": "ste_sign",
            "kernel_quantizer": "dorefa",
        },
        {"type": "activation", "fn": "relu"},
        {"type": "flatten"},
        {"type": "dense", "units": 8, "input_quantizer": "ste_heaviside", "kernel_quantizer": "ste_sign"},
        {"type": "activation", "fn": "hardtanh"},
        {"type": "dense", "units": 6, "kernel_quantizer": "ste_sign"},
        {"type": "dense", "units": 4, "input_quantizer": "dorefa", "kernel_quantizer": "ste_tern"},
    ],
}


def randomize_batch_norms(model, seed=1, zero_gamma=2, thresholds=0.0):
    """Random running stats and affine parameters, gamma of both signs, the first ``zero_gamma`` gammas exactly
    0, and, where ``thresholds`` > 0, rsign thresholds drawn with that standard deviation: the cases where a
    folded threshold or a sign flip could go wrong."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 4)
            m.running_var.copy_(torch.rand(n, generator=g) * 30 + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.weight.data[:zero_gamma] = 0.0
            m.bias.data.copy_(torch.randn(n, generator=g))
        if thresholds and isinstance(getattr(m, "threshold", None), torch.nn.Parameter):
            m.threshold.data.normal_(0, thresholds, generator=g)
    return model.eval()


def random_packed(spec: dict, seed: int = 3, zero_gamma: int = 1, thresholds: float = 0.3):
    """``spec`` built with random weights (torch seeded with ``seed``) and random batch norms, packed for uint8
    pixels."""
    spec = validate_spec(copy.deepcopy(spec))
    torch.manual_seed(seed)
    model = randomize_batch_norms(build_model(spec), seed, zero_gamma=zero_gamma, thresholds=thresholds)
    return pack_model(model, spec, preprocessing=PIXELS)
