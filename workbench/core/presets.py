"""Ready-made network specs and their full-precision twins.

A binary layer is followed by batch_norm; the next binary layer's input_quantizer applies the sign.
The first layer sees real-valued pixels (binary weights only), as in BinaryNet and Larq's MNIST tutorial.
"""

from __future__ import annotations

import copy

from workbench.core.spec import float_twin, validate_spec, validate_training_spec

SIGN = {"name": "ste_sign", "clip": 1.0}


def _binary_weights(kind: str, width: int, **fields) -> dict:
    """A layer with 1-bit weights and a real-valued input (the network's first layer)."""
    key = "units" if kind == "dense" else "filters"
    return {"type": kind, key: width, "input_quantizer": None, "kernel_quantizer": SIGN, "use_bias": False, **fields}


def _xnor(kind: str, width: int, **fields) -> dict:
    """A layer with 1-bit weights and 1-bit (sign) inputs: XNOR-popcount at inference."""
    return dict(_binary_weights(kind, width, **fields), input_quantizer=SIGN)


BN = {"type": "batch_norm"}
MAX_POOL = {"type": "max_pool", "pool_size": 2}


def binary_mlp() -> dict:
    """BinaryNet-style MLP for 28x28 digits: 784-2048-2048-10."""
    return {
        "name": "binary-mlp",
        "input_shape": [1, 28, 28],
        "num_classes": 10,
        "layers": [
            {"type": "flatten"},
            _binary_weights("dense", 2048),
            BN,
            _xnor("dense", 2048),
            BN,
            _xnor("dense", 10),
            BN,
        ],
    }


def binary_cnn() -> dict:
    """The small binary CNN of Larq's MNIST tutorial: 3 binary convs (valid padding), 2 binary dense."""
    return {
        "name": "binary-cnn",
        "input_shape": [1, 28, 28],
        "num_classes": 10,
        "layers": [
            _binary_weights("conv2d", 32, kernel_size=3, padding="valid"),
            MAX_POOL,
            BN,
            _xnor("conv2d", 64, kernel_size=3, padding="valid"),
            MAX_POOL,
            BN,
            _xnor("conv2d", 64, kernel_size=3, padding="valid"),
            BN,
            {"type": "flatten"},
            _xnor("dense", 64),
            BN,
            _xnor("dense", 10),
            BN,
        ],
    }


def vgg_small() -> dict:
    """BinaryNet's CIFAR-10 network 2x128C3-MP2-2x256C3-MP2-2x512C3-MP2-2x1024FC-10 for 3x32x32 inputs."""
    layers = [_binary_weights("conv2d", 128, kernel_size=3, padding="same"), BN]
    for filters, first in ((128, False), (256, True), (512, True)):
        if first:
            layers += [_xnor("conv2d", filters, kernel_size=3, padding="same"), BN]
        layers += [_xnor("conv2d", filters, kernel_size=3, padding="same"), MAX_POOL, BN]
    layers += [{"type": "flatten"}, _xnor("dense", 1024), BN, _xnor("dense", 1024), BN, _xnor("dense", 10), BN]
    return {"name": "vgg-small", "input_shape": [3, 32, 32], "num_classes": 10, "layers": layers}


def toy_mlp() -> dict:
    """A tiny binary MLP for 2-D synthetic data (moons, circles, spirals, xor): 2-64-64-2."""
    return {
        "name": "toy-mlp",
        "input_shape": [2],
        "num_classes": 2,
        "layers": [
            _binary_weights("dense", 64),
            BN,
            _xnor("dense", 64),
            BN,
            _xnor("dense", 2),
            BN,
        ],
    }


_BINARY = {"binary-mlp": binary_mlp, "binary-cnn": binary_cnn, "vgg-small": vgg_small, "toy-mlp": toy_mlp}


def _twin_of(builder):
    def build() -> dict:
        return float_twin(builder())

    build.__doc__ = f"Full-precision twin of {builder.__name__}."
    return build


PRESETS: dict[str, callable] = {**_BINARY, **{f"{name}-float": _twin_of(b) for name, b in _BINARY.items()}}


def preset(name: str) -> dict:
    """A preset's normalised network spec (a fresh copy each call)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of " + ", ".join(PRESETS))
    return validate_spec(PRESETS[name]())


# ------------------------------------------------------------------ training recipes

TRAINING_PRESETS = {
    # VGG-small on CIFAR-10 (`train vgg-small --data cifar10:PATH --training vgg-small-cifar10`): Adam with a
    # cosine schedule, latent clipping, the usual crop-with-padding and flip augmentation. For reference only,
    # not a claim: BinaryNet (Courbariaux, Hubara et al. 2016, table 1) reports 10.15% test error (89.85%
    # accuracy) for this network with its own, longer schedule; this recipe has not been run to the end here.
    "vgg-small-cifar10": {
        "epochs": 200,
        "batch_size": 128,
        "optimizer": {"name": "adam", "lr": 0.001},
        "lr_schedule": {"name": "cosine"},
        "weight_clip": 1.0,
        "validation_split": 0.1,
        "augmentation": {"random_crop": 4, "horizontal_flip": True},
    },
}
REFERENCE_ACCURACY = {"vgg-small-cifar10": (0.8985, "BinaryNet (Courbariaux, Hubara et al. 2016), its own schedule")}


def training_preset(name: str) -> dict:
    """A training recipe's normalised training spec (a fresh copy each call)."""
    if name not in TRAINING_PRESETS:
        raise ValueError(f"unknown training preset {name!r}; expected one of " + ", ".join(TRAINING_PRESETS))
    return validate_training_spec(copy.deepcopy(TRAINING_PRESETS[name]))
