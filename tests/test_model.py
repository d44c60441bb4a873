"""build_model on every preset, layer behaviour (scaling, +1 padding), the BNNModel methods, state dict keys."""

import pytest
import torch

from workbench.core.presets import PRESETS, preset
from workbench.core.spec import validate_spec
from workbench.train.layers import QuantConv2d, QuantDense
from workbench.train.model import build_model


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_and_runs(name):
    torch.manual_seed(0)
    spec = preset(name)
    model = build_model(spec)
    x = torch.randn(2, *spec["input_shape"])
    logits = model(x)
    assert logits.shape == (2, spec["num_classes"])
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    grads = [p.grad for _, layer in model.quantized_layers() for p in [layer.weight]]
    assert all(g is not None for g in grads)


def _net(layers, input_shape=(4,), num_classes=3):
    return {"input_shape": list(input_shape), "num_classes": num_classes, "layers": layers}


def test_binarized_weight_scaling():
    torch.manual_seed(0)
    for scaling in ("none", "xnor", "learnable"):
        model = build_model(_net([{"type": "dense", "units": 3, "kernel_quantizer": "ste_sign", "scaling": scaling}]))
        layer = model.layers[0]
        w = layer.weight.detach()
        signs = torch.where(w >= 0, 1.0, -1.0)
        mean_abs = w.abs().mean(dim=1, keepdim=True)
        expected = signs if scaling == "none" else signs * mean_abs
        assert torch.allclose(layer.binarized_weight(), expected)
        x = torch.randn(5, 4)
        assert torch.allclose(model(x), x @ expected.T, atol=1e-6)
    assert [k for k in model.state_dict()] == ["layers.0.weight", "layers.0.scale"]


def test_xnor_scale_gradient_flows_through_the_mean():
    model = build_model(_net([{"type": "dense", "units": 3, "kernel_quantizer": "ste_sign", "scaling": "xnor"}]))
    layer = model.layers[0]
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -0.25, 0.0, 2.0]] * 3))
    layer.binarized_weight().sum().backward()
    # d/dw of sum_j sign(w_j) * mean|w|: STE part mean|w| * 1[|w| <= 1], plus sum_j sign(w_j) * d|w|/dw / K,
    # where d|w|/dw is autograd's subgradient (0 at w = 0).
    w = torch.tensor([0.5, -0.25, 0.0, 2.0])
    s = torch.where(w >= 0, 1.0, -1.0)
    abs_grad = torch.tensor([1.0, -1.0, 0.0, 1.0])
    expected = w.abs().mean() * (w.abs() <= 1).float() + s.sum() * abs_grad / 4
    assert torch.allclose(layer.weight.grad[0], expected)


def test_binary_conv_pads_with_plus_one():
    spec = {
        "type": "conv2d",
        "filters": 2,
        "kernel_size": 3,
        "padding": "same",
        "input_quantizer": "ste_sign",
        "kernel_quantizer": "ste_sign",
    }
    model = build_model(_net([spec, {"type": "flatten"}, {"type": "dense", "units": 3}], input_shape=(3, 5, 5)))
    conv = model.layers[0]
    assert isinstance(conv, QuantConv2d) and conv.pads_with_plus_one
    x = torch.rand(1, 3, 5, 5) + 0.1  # binarizes to all +1
    y = conv(x)
    assert y.shape == (1, 2, 5, 5)
    # Padded with +1, every output position sees 27 ones: border == middle == sum of the binarized kernel.
    expected = conv.binarized_weight().sum(dim=(1, 2, 3))
    assert torch.allclose(y, expected.view(1, 2, 1, 1).expand_as(y))


def test_real_input_conv_pads_with_zero():
    spec = {"type": "conv2d", "filters": 1, "kernel_size": 3, "kernel_quantizer": "ste_sign"}
    model = build_model(_net([spec, {"type": "flatten"}, {"type": "dense", "units": 3}], input_shape=(1, 4, 4)))
    conv = model.layers[0]
    assert not conv.pads_with_plus_one
    x = torch.randn(1, 1, 4, 4)
    reference = torch.nn.functional.conv2d(x, conv.binarized_weight(), padding=1)
    assert torch.allclose(conv(x), reference)


def test_quantized_layers_names_and_contract():
    model = build_model(preset("binary-cnn"))
    names = [name for name, _ in model.quantized_layers()]
    assert names == ["0_conv2d", "3_conv2d", "6_conv2d", "9_dense", "11_dense"]
    for name, layer in model.quantized_layers():
        assert isinstance(layer, (QuantConv2d, QuantDense))
        assert layer.spec == model.spec["layers"][int(name.split("_")[0])]
        assert layer.kernel_quantizer is not None
    assert model.layers[0].input_quantizer is None and model.layers[3].input_quantizer is not None


def test_state_dict_keys_are_stable():
    spec = _net(
        [
            {"type": "dense", "units": 6, "kernel_quantizer": "ste_sign", "scaling": "learnable"},
            {"type": "batch_norm"},
            {
                "type": "shortcut",
                "layers": [
                    {"type": "dense", "units": 6, "input_quantizer": "rsign", "kernel_quantizer": "ste_sign"},
                    {"type": "batch_norm", "affine": False},
                ],
            },
            {"type": "activation", "fn": "prelu"},
            {"type": "dense", "units": 3, "input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign"},
        ]
    )
    keys = list(build_model(spec).state_dict())
    assert keys == [
        "layers.0.weight",
        "layers.0.scale",
        "layers.1.weight",
        "layers.1.bias",
        "layers.1.running_mean",
        "layers.1.running_var",
        "layers.1.num_batches_tracked",
        "layers.2.layers.0.weight",
        "layers.2.layers.0.input_quantizer.threshold",
        "layers.2.layers.1.running_mean",
        "layers.2.layers.1.running_var",
        "layers.2.layers.1.num_batches_tracked",
        "layers.3.weight",
        "layers.4.weight",
    ]
    # A second build with another seed has the same keys and shapes: packing can rely on the spec alone.
    torch.manual_seed(1)
    other = build_model(spec).state_dict()
    assert {k: v.shape for k, v in other.items()} == {k: v.shape for k, v in build_model(spec).state_dict().items()}


def test_shortcut_adds_the_input_and_names_nested_layers():
    spec = _net(
        [
            {
                "type": "shortcut",
                "layers": [
                    {"type": "dense", "units": 4, "input_quantizer": "approx_sign", "kernel_quantizer": "ste_sign"}
                ],
            },
            {"type": "dense", "units": 3},
        ]
    )
    model = build_model(spec)
    x = torch.randn(2, 4)
    inner = model.layers[0].layers[0]
    assert torch.allclose(model.layers[0](x), inner(x) + x)
    assert [n for n, _ in model.quantized_layers()] == ["0.0_dense"]


def test_set_quantization_turns_quantizers_off_and_on():
    torch.manual_seed(0)
    model = build_model(preset("toy-mlp"))
    model.eval()
    x = torch.randn(8, 2)
    binary = model(x)
    model.set_quantization(weights=False, activations=True)
    layer = model.layers[2]
    assert torch.equal(layer.binarized_weight(), layer.weight)
    assert layer.input_quantizer.enabled and not layer.kernel_quantizer.enabled
    assert not torch.allclose(model(x), binary)
    model.set_quantization()
    assert torch.equal(model(x), binary)


def test_set_soft_temperature_reaches_every_soft_sign():
    spec = _net(
        [
            {"type": "dense", "units": 4, "kernel_quantizer": "soft_sign"},
            {"type": "dense", "units": 3, "input_quantizer": "soft_sign", "kernel_quantizer": "soft_sign"},
        ]
    )
    model = build_model(spec)
    model.set_soft_temperature(0.05)
    temps = [layer.kernel_quantizer.temperature for _, layer in model.quantized_layers()]
    assert temps == [0.05, 0.05] and model.layers[1].input_quantizer.temperature == 0.05
    x = torch.tensor([[0.01]])
    assert model.layers[1].input_quantizer(x).item() == pytest.approx(float(torch.tanh(torch.tensor(0.2))))
    with pytest.raises(ValueError):
        model.set_soft_temperature(0.0)


def test_capture_preactivations():
    torch.manual_seed(0)
    model = build_model(preset("toy-mlp"))
    x = torch.randn(5, 2)
    with model.capture_preactivations() as captured:
        model(x)
    assert list(captured) == ["2_dense", "4_dense"]
    expected = model.layers[1](model.layers[0](x))
    assert torch.allclose(captured["2_dense"], expected) and not captured["2_dense"].requires_grad
    captured.clear()
    model(x)
    assert captured == {}  # hooks removed on exit


def test_build_model_normalises_the_spec():
    model = build_model(_net([{"type": "dense", "units": 3, "kernel_quantizer": "ste_sign"}]))
    assert model.spec == validate_spec(model.spec)
    assert model.spec["layers"][0]["kernel_quantizer"] == {"name": "ste_sign", "clip": 1.0}


def test_reset_parameters_gives_the_seeded_build_again():
    spec = _net(
        [
            {"type": "conv2d", "filters": 4, "kernel_quantizer": "ste_sign", "scaling": "learnable"},
            {"type": "batch_norm"},
            {
                "type": "shortcut",
                "layers": [
                    {
                        "type": "conv2d",
                        "filters": 4,
                        "input_quantizer": "rsign",
                        "kernel_quantizer": "ste_sign",
                        "use_bias": True,
                    }
                ],
            },
            {"type": "flatten"},
            {"type": "dense", "units": 3},
        ],
        input_shape=(2, 5, 5),
    )
    torch.manual_seed(0)
    model = build_model(spec)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(7.0)
    torch.manual_seed(0)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    assert all(torch.equal(v, fresh[k]) for k, v in model.state_dict().items())


def test_print_model_shows_widths_and_quantizers():
    text = str(build_model(preset("binary-cnn")))
    assert "name='binary-cnn', input_shape=[1, 28, 28], num_classes=10" in text
    assert (
        "in_channels=1, filters=32, kernel_size=3, stride=1, padding=valid, input_quantizer=None, "
        "kernel_quantizer=ste_sign(clip=1.0), scaling=none, bias=False"
    ) in text
    assert (
        "in_features=576, units=64, input_quantizer=ste_sign(clip=1.0), kernel_quantizer=ste_sign(clip=1.0), "
        "scaling=none, bias=False"
    ) in text
    assert "(kernel_quantizer): SteSignQuantizer(clip=1.0)" in text
    shortcut = build_model(
        _net([{"type": "shortcut", "layers": [{"type": "dense", "units": 4}]}, {"type": "dense", "units": 3}])
    )
    assert "output = layers(x) + x" in str(shortcut.layers[0])
