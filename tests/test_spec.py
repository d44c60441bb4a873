"""Spec validation: normalisation, shape inference of the presets, and error messages that name the mistake."""

import json

import pytest

from workbench.core import limits, quantizer_catalog
from workbench.core.presets import PRESETS, preset
from workbench.core.spec import (
    QUANTIZERS,
    SpecError,
    default_training_spec,
    float_twin,
    infer_shapes,
    is_sign_quantizer,
    layer_name,
    quantizer_bits,
    training_memory,
    validate_spec,
    validate_training_spec,
)
from workbench.core.summary import summary


def net(*layers, input_shape=(1, 8, 8), num_classes=10):
    return {"input_shape": list(input_shape), "num_classes": num_classes, "layers": list(layers)}


FLAT_END = [{"type": "flatten"}, {"type": "dense", "units": 10}]


def error_of(spec) -> SpecError:
    with pytest.raises(SpecError) as info:
        validate_spec(spec)
    return info.value


def test_normalisation_fills_every_field():
    spec = validate_spec(net({"type": "conv2d", "filters": 4, "kernel_quantizer": "ste_sign"}, *FLAT_END))
    conv = spec["layers"][0]
    assert conv == {
        "type": "conv2d",
        "filters": 4,
        "kernel_size": 3,
        "stride": 1,
        "padding": "same",
        "input_quantizer": None,
        "kernel_quantizer": {"name": "ste_sign", "clip": 1.0},
        "scaling": "none",
        "use_bias": False,
    }
    assert spec["layers"][2]["use_bias"] is True  # full precision: bias on by default
    assert spec["name"] == "network"
    assert json.loads(json.dumps(spec)) == spec  # JSON-serialisable
    assert validate_spec(spec) == spec  # idempotent


def test_validate_does_not_modify_its_input():
    raw = net({"type": "max_pool"}, *FLAT_END)
    before = json.dumps(raw)
    validate_spec(raw)
    assert json.dumps(raw) == before


@pytest.mark.parametrize(
    "layer, field, words",
    [
        ({"type": "conv2d", "filters": -4}, "filters", ["layer 0 (conv2d)", "positive integer", "got -4"]),
        ({"type": "conv2d", "filters": 4, "kernel_size": 2}, "padding", ["odd kernel_size", "got kernel_size 2"]),
        ({"type": "conv2d", "filters": 4, "padding": "full"}, "padding", ["'same'", "'valid'", '"full"']),
        ({"type": "conv2d", "filter": 4}, "filter", ["not a field of conv2d", "did you mean 'filters'"]),
        (
            {"type": "conv2d", "filters": 4, "kernel_quantizer": "ste_sgn"},
            "kernel_quantizer",
            ["known quantizer", "did you mean 'ste_sign'", '"ste_sgn"'],
        ),
        (
            {"type": "conv2d", "filters": 4, "kernel_quantizer": {"name": "ste_sign", "clp": 1}},
            "kernel_quantizer",
            ["only the parameters of ste_sign (clip)", "'clp'"],
        ),
        (
            {"type": "conv2d", "filters": 4, "kernel_quantizer": {"name": "swish_sign", "beta": 0}},
            "kernel_quantizer",
            ["'beta'", "positive number"],
        ),
        (
            {"type": "conv2d", "filters": 4, "kernel_quantizer": {"name": "dorefa", "bits": 12}},
            "kernel_quantizer",
            ["1 to 8"],
        ),
        ({"type": "conv2d", "filters": 4, "kernel_quantizer": "rsign"}, "kernel_quantizer", ["inputs only"]),
        (
            {"type": "conv2d", "filters": 4, "input_quantizer": "magnitude_aware_sign"},
            "input_quantizer",
            ["kernels only"],
        ),
        ({"type": "conv2d", "filters": 4, "scaling": "xnor"}, "scaling", ["kernel_quantizer is null", "'xnor'"]),
        ({"type": "conv2d", "filters": 4, "scaling": "mean"}, "scaling", ["'learnable'", '"mean"']),
        ({"type": "conv2d", "filters": 4, "kernel_size": 9, "padding": "valid"}, "kernel_size", ["fit the input"]),
        ({"type": "max_pool", "pool_size": 9}, "pool_size", ["at most", "[8, 8]", "got 9"]),
        ({"type": "dropout", "rate": 1.0}, "rate", ["[0, 1)", "got 1.0"]),
        ({"type": "batch_norm", "affine": "yes"}, "affine", ["true or false", '"yes"']),
        ({"type": "activation", "fn": "gelu"}, "fn", ["'relu'", '"gelu"']),
        ({"type": "activation"}, "fn", ["is required"]),
        ({"type": "convolution", "filters": 4}, "type", ["conv2d", '"convolution"']),
    ],
)
def test_layer_errors_name_layer_field_expected_and_got(layer, field, words):
    error = error_of(net(layer, *FLAT_END))
    assert error.layer_index == 0 and error.field == field
    assert str(error).startswith(f"layer 0 ({layer['type']}): field '{field}'")
    for word in words:
        assert word in str(error)


def test_dense_on_an_image_needs_a_flatten():
    error = error_of(net({"type": "conv2d", "filters": 2}, {"type": "dense", "units": 10}))
    assert (error.layer_index, error.layer_type, error.field) == (1, "dense", "input")
    assert "flat [F] input, got [2, 8, 8]" in str(error) and "flatten" in str(error)


def test_conv_on_a_flat_input():
    error = error_of(net({"type": "conv2d", "filters": 2}, {"type": "dense", "units": 10}, input_shape=[16]))
    assert error.layer_index == 0 and "[C, H, W] image input, got [16]" in str(error)


def test_last_layer_width_must_be_num_classes():
    error = error_of(net({"type": "flatten"}, {"type": "dense", "units": 64}, {"type": "batch_norm"}))
    assert (error.layer_index, error.layer_type) == (2, "batch_norm")
    assert "[10] (num_classes)" in str(error) and "got [64]" in str(error)
    error = error_of(net({"type": "flatten"}, {"type": "dense", "units": 7}))
    assert error.field == "units" and "got [7]" in str(error)


def test_shortcut_must_keep_the_shape_and_nested_errors_name_the_path():
    error = error_of(
        net(
            {"type": "flatten"},
            {"type": "shortcut", "layers": [{"type": "dense", "units": 5}]},
            {"type": "dense", "units": 10},
        )
    )
    assert error.layer_index == 1 and error.field == "layers" and "keep the shape [64]" in str(error)
    error = error_of(
        net(
            {"type": "flatten"},
            {"type": "shortcut", "layers": [{"type": "dense", "units": 0}]},
            {"type": "dense", "units": 10},
        )
    )
    assert error.layer_index == 1 and error.path == "1.0" and str(error).startswith("layer 1.0 (dense)")


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"num_classes": 1}, "num_classes", ["integer >= 2", "got 1"]),
        ({"input_shape": [1, 28]}, "input_shape", ["[F] or [C, H, W]", "[1, 28]"]),
        ({"layers": []}, "layers", ["non-empty"]),
        ({"num_clases": 10}, "num_clases", ["not a network spec field", "did you mean 'num_classes'"]),
    ],
)
def test_network_level_errors(change, field, words):
    spec = net(*FLAT_END)
    spec.update(change)
    error = error_of(spec)
    assert error.layer_index is None and error.field == field and str(error).startswith("network spec:")
    for word in words:
        assert word in str(error)


def test_non_object_layer():
    error = error_of(net("flatten", {"type": "dense", "units": 10}))
    assert error.layer_index == 0 and "must be an object" in str(error)


EXPECTED_OUTPUTS = {
    "binary-mlp": [(784,), (2048,), (2048,), (2048,), (2048,), (10,), (10,)],
    "binary-cnn": [
        (32, 26, 26),
        (32, 13, 13),
        (32, 13, 13),
        (64, 11, 11),
        (64, 5, 5),
        (64, 5, 5),
        (64, 3, 3),
        (64, 3, 3),
        (576,),
        (64,),
        (64,),
        (10,),
        (10,),
    ],
    "toy-mlp": [(64,), (64,), (64,), (64,), (2,), (2,)],
}


@pytest.mark.parametrize("name", sorted(EXPECTED_OUTPUTS))
def test_preset_shapes(name):
    shapes = infer_shapes(preset(name))
    assert [out for _, out in shapes] == EXPECTED_OUTPUTS[name]
    assert all(shapes[i][1] == shapes[i + 1][0] for i in range(len(shapes) - 1))


def test_vgg_small_shapes():
    spec = preset("vgg-small")
    shapes = infer_shapes(spec)
    convs = [out for layer, (_, out) in zip(spec["layers"], shapes) if layer["type"] == "conv2d"]
    assert convs == [(128, 32, 32), (128, 32, 32), (256, 16, 16), (256, 16, 16), (512, 8, 8), (512, 8, 8)]
    dense = [out for layer, (_, out) in zip(spec["layers"], shapes) if layer["type"] == "dense"]
    assert dense == [(1024,), (1024,), (10,)]
    assert shapes[0][0] == (3, 32, 32)


@pytest.mark.parametrize("name", [n for n in PRESETS if not n.endswith("-float")])
def test_presets_are_binary_and_their_twins_are_not(name):
    spec = preset(name)
    quantized = [layer for layer in spec["layers"] if layer["type"] in ("dense", "conv2d")]
    assert all(is_sign_quantizer(layer["kernel_quantizer"]) for layer in quantized)
    assert quantized[0]["input_quantizer"] is None
    assert all(is_sign_quantizer(layer["input_quantizer"]) for layer in quantized[1:])
    twin = preset(name + "-float")
    assert twin == float_twin(spec) and twin["name"] == spec["name"] + " (float twin)"
    twin_quantized = [layer for layer in twin["layers"] if layer["type"] in ("dense", "conv2d")]
    assert [layer.get("units", layer.get("filters")) for layer in twin_quantized] == [
        layer.get("units", layer.get("filters")) for layer in quantized
    ]
    assert all(
        layer["input_quantizer"] is None and layer["kernel_quantizer"] is None and layer["scaling"] == "none"
        for layer in twin_quantized
    )
    # Each removed sign becomes a hardtanh in front of its layer, so the twin is not a linear model.
    assert (
        sum(layer["type"] == "activation" and layer["fn"] == "hardtanh" for layer in twin["layers"])
        == len(quantized) - 1
    )
    assert infer_shapes(twin)[-1][1] == (spec["num_classes"],)


def test_float_twin_reaches_into_shortcuts():
    spec = net(
        {"type": "flatten"},
        {
            "type": "shortcut",
            "layers": [
                {
                    "type": "dense",
                    "units": 64,
                    "input_quantizer": "ste_heaviside",
                    "kernel_quantizer": "ste_sign",
                    "scaling": "learnable",
                }
            ],
        },
        {"type": "dense", "units": 10},
    )
    inner = float_twin(spec)["layers"][1]["layers"]
    assert [layer["type"] for layer in inner] == ["activation", "dense"] and inner[0]["fn"] == "relu"
    assert inner[1]["kernel_quantizer"] is None and inner[1]["scaling"] == "none"


def test_quantizer_catalogue_and_is_sign():
    assert QUANTIZERS["ste_tern"].bits == 2 and not QUANTIZERS["ste_tern"].is_sign
    assert QUANTIZERS["swish_sign"].params == {"beta": 5.0}
    assert is_sign_quantizer("rsign") and is_sign_quantizer({"name": "soft_sign", "temperature": 0.5})
    assert not is_sign_quantizer("ste_heaviside") and not is_sign_quantizer(None)
    assert not is_sign_quantizer({"name": "dorefa", "bits": 1})
    assert QUANTIZERS is quantizer_catalog.QUANTIZERS  # spec re-exports the one catalogue


def test_quantizer_bits_and_labels():
    assert quantizer_bits(None) == 32 and quantizer_bits("ste_sign") == 1 and quantizer_bits("ste_tern") == 2
    assert quantizer_bits("dorefa") == 2 and quantizer_bits({"name": "dorefa", "bits": 5}) == 5
    label = quantizer_catalog.quantizer_label
    assert label(None) == "None" and label({"name": "approx_sign"}) == "approx_sign"
    assert label({"name": "ste_tern", "threshold": 0.05, "clip": 1.0}) == "ste_tern(threshold=0.05, clip=1.0)"


def test_layer_name():
    assert layer_name(3, {"type": "conv2d"}) == "3_conv2d"
    assert layer_name("3.1", {"type": "dense"}) == "3.1_dense"


def test_training_spec_defaults_and_normalisation():
    assert validate_training_spec({}) == default_training_spec()
    ts = validate_training_spec(
        {
            "optimizer": {"name": "sgd"},
            "lr_schedule": "step",
            "distillation": {"teacher": "float_twin"},
            "two_stage": {},
            "soft_binarization": {"end_temperature": 0.1},
        }
    )
    assert ts["optimizer"] == {"name": "sgd", "lr": 0.01, "momentum": 0.9}
    assert ts["lr_schedule"] == {"name": "step", "step_size": 1, "gamma": 0.1}
    assert ts["distillation"] == {"teacher_run": None, "teacher": "float_twin", "alpha": 0.9, "temperature": 4.0}
    assert ts["two_stage"] == {"first_epochs": 2}
    assert ts["soft_binarization"] == {"start_temperature": 1.0, "end_temperature": 0.1}
    bop = validate_training_spec({"optimizer": {"name": "bop"}, "bop_schedule": {"every": 3}})
    assert bop["optimizer"] == {"name": "bop", "threshold": 1e-8, "gamma": 1e-4, "lr": 0.001}
    assert bop["bop_schedule"] == {"threshold_decay": 0.1, "gamma_decay": 0.1, "every": 3}


@pytest.mark.parametrize(
    "ts, field, words",
    [
        ({"epochs": 0}, "epochs", ["positive integer", "got 0"]),
        ({"epoch": 3}, "epoch", ["not a training spec field", "did you mean 'epochs'"]),
        ({"optimizer": {"name": "adamw"}}, "optimizer.name", ["adam, sgd, bop", '"adamw"']),
        ({"optimizer": {"name": "adam", "lr": -1}}, "optimizer.lr", ["positive number", "got -1"]),
        ({"optimizer": {"name": "adam", "momentum": 0.9}}, "optimizer.momentum", ["one of the fields name, lr"]),
        ({"bop_schedule": {"every": 2}}, "bop_schedule", ["optimizer.name is 'bop'"]),
        ({"lr_schedule": {"name": "exponential", "gamma": 0}}, "lr_schedule.gamma", ["positive number"]),
        ({"weight_clip": -1}, "weight_clip", ["or null"]),
        ({"distillation": {"alpha": 0.5}}, "distillation", ["exactly one of 'teacher_run' or 'teacher'"]),
        ({"distillation": {"teacher": "resnet"}}, "distillation.teacher", ["'float_twin'"]),
        (
            {"soft_binarization": {"start_temperature": 0.1, "end_temperature": 1.0}},
            "soft_binarization.end_temperature",
            ["at most start_temperature"],
        ),
        ({"two_stage": {"first_epochs": 5}}, "two_stage.first_epochs", ["less than epochs (5)"]),
        ({"validation_split": 1.0}, "validation_split", ["[0, 1)"]),
        ({"seed": -1}, "seed", ["an integer from 0 to"]),
    ],
)
def test_training_spec_errors_name_the_field(ts, field, words):
    with pytest.raises(SpecError) as info:
        validate_training_spec(ts)
    assert info.value.field == field
    assert str(info.value).startswith(f"training spec: field '{field}'")
    for word in words:
        assert word in str(info.value)


def test_normalised_training_spec_validates_again_unchanged():
    """Stored runs keep the normalised form; reading it back must not fail (distillation fills the unset teacher
    with None)."""
    for distillation in ({"teacher": "float_twin"}, {"teacher_run": "run-1", "alpha": 0.5}):
        once = validate_training_spec({"distillation": distillation})
        assert validate_training_spec(once) == once


# ---------------------------------------------------------------------------------------- plausibility limits


def test_a_network_too_large_to_train_is_refused_naming_the_layer_and_the_sizes():
    error = error_of(net({"type": "flatten"}, {"type": "dense", "units": 10**9}, {"type": "dense", "units": 10}))
    assert (error.layer_index, error.layer_type, error.field) == (1, "dense", "units")
    message = str(error)
    assert message.startswith("layer 1 (dense): field 'units' must keep the estimated training memory within 16.0 GiB")
    assert "got 1.2 TiB" in message and "64,000,000,000 weights x 16 bytes" in message
    assert "output [1000000000] x 4 bytes x a batch of 32" in message


def test_the_memory_budget_counts_activations_and_nested_layers():
    wide = {"type": "conv2d", "filters": 512, "kernel_size": 1}
    spec = net(
        {"type": "shortcut", "layers": [dict(wide, filters=1)]},
        wide,
        {"type": "avg_pool", "pool_size": 1024},
        {"type": "flatten"},
        {"type": "dense", "units": 10},
        input_shape=(1, 1024, 1024),
    )
    error = error_of(spec)  # 512 x 1024 x 1024 outputs x 4 bytes x 32 = 64 GiB, in a layer of 512 weights
    assert (error.layer_index, error.field) == (1, "filters") and "output [512, 1024, 1024]" in str(error)
    rows = training_memory(
        net(
            {"type": "flatten"},
            {"type": "shortcut", "layers": [{"type": "dense", "units": 64}]},
            {"type": "dense", "units": 10},
        ),
        batch_size=2,
    )
    assert [row["path"] for row in rows] == [None, "0", "1", "1.0", "2"]
    assert rows[3]["bytes"] == 64 * 64 * 16 + 64 * 2 * 4 and rows[1]["bytes"] == 0  # flatten is a view


def test_the_memory_budget_is_a_module_constant(monkeypatch):
    spec = net({"type": "flatten"}, {"type": "dense", "units": 10})
    total = sum(row["bytes"] for row in training_memory(spec))
    monkeypatch.setattr(limits, "MEMORY_BUDGET_BYTES", total - 1)
    assert f"within {limits.format_bytes(total - 1)} (core/limits.py" in str(error_of(spec))
    monkeypatch.setattr(limits, "MEMORY_BUDGET_BYTES", total)
    validate_spec(spec)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_fit_the_budget_many_times_over(name):
    assert sum(row["bytes"] for row in training_memory(preset(name))) < limits.MEMORY_BUDGET_BYTES / 40


@pytest.mark.parametrize(
    "layer, words",
    [
        (
            {"type": "dense", "units": 10, "kernel_quantizer": {"name": "ste_sign", "clip": float("inf")}},
            ["'clip'", "positive number at most 1,000", "Infinity"],
        ),
        (
            {"type": "dense", "units": 10, "kernel_quantizer": {"name": "swish_sign", "beta": float("nan")}},
            ["'beta'", "NaN"],
        ),
        (
            {"type": "dense", "units": 10, "kernel_quantizer": {"name": "ste_tern", "threshold": 1e308}},
            ["'threshold'", "from 0 to 1,000", "1e+308"],
        ),
        (
            {"type": "dense", "units": 10, "input_quantizer": {"name": "soft_sign", "temperature": 10**400}},
            ["'temperature'"],
        ),
        ({"type": "batch_norm", "eps": float("inf")}, ["'eps'", "at most 1", "Infinity"]),
    ],
)
def test_network_numbers_must_be_finite_and_sane(layer, words):
    layers = (
        [{"type": "flatten"}, {"type": "dense", "units": 10}, layer]
        if layer["type"] == "batch_norm"
        else [{"type": "flatten"}, layer]
    )
    message = str(error_of(net(*layers)))
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    "ts, field, words",
    [
        ({"optimizer": {"name": "adam", "lr": float("inf")}}, "optimizer.lr", ["at most 1,000,000", "Infinity"]),
        ({"optimizer": {"name": "sgd", "lr": 1e308}}, "optimizer.lr", ["1e+308"]),
        ({"optimizer": {"name": "adam", "lr": float("nan")}}, "optimizer.lr", ["NaN"]),
        ({"optimizer": {"name": "bop", "gamma": 2}}, "optimizer.gamma", ["at most 1,", "got 2"]),
        ({"optimizer": {"name": "bop", "threshold": float("inf")}}, "optimizer.threshold", ["at most 1,000"]),
        ({"lr_schedule": {"name": "exponential", "gamma": 1e308}}, "lr_schedule.gamma", ["at most 10"]),
        ({"optimizer": "bop", "bop_schedule": {"gamma_decay": 1.5}}, "bop_schedule.gamma_decay", ["at most 1,"]),
        ({"weight_clip": float("inf")}, "weight_clip", ["at most 1,000 or null"]),
        (
            {"distillation": {"teacher": "float_twin", "temperature": float("inf")}},
            "distillation.temperature",
            ["1,000"],
        ),
        ({"soft_binarization": {"start_temperature": 1e308}}, "soft_binarization.start_temperature", ["1,000"]),
        ({"epochs": 10**7}, "epochs", ["at most 1,000,000"]),
        ({"batch_size": 10**12}, "batch_size", ["at most 10,000,000"]),
        ({"seed": 2**64}, "seed", ["from 0 to 4,294,967,295"]),
    ],
)
def test_training_numbers_must_be_finite_and_sane(ts, field, words):
    with pytest.raises(SpecError) as info:
        validate_training_spec(ts)
    assert info.value.field == field and str(info.value).startswith(f"training spec: field '{field}'")
    for word in words:
        assert word in str(info.value)


# ---------------------------------------------------------------------------------------- role-dependent quantizers


def test_dorefa_quantizes_kernels_in_weights_mode_and_inputs_in_activations_mode():
    layer = validate_spec(
        net(
            {"type": "flatten"},
            {
                "type": "dense",
                "units": 10,
                "input_quantizer": "dorefa",
                "kernel_quantizer": {"name": "dorefa", "bits": 3},
            },
        )
    )["layers"][1]
    assert layer["kernel_quantizer"] == {"name": "dorefa", "bits": 3, "mode": "weights"}
    assert layer["input_quantizer"] == {"name": "dorefa", "bits": 2, "mode": "activations"}
    explicit = {"name": "dorefa", "bits": 2, "mode": "activations"}
    kept = validate_spec(net({"type": "flatten"}, {"type": "dense", "units": 10, "kernel_quantizer": explicit}))
    assert kept["layers"][1]["kernel_quantizer"] == explicit  # a stated mode is kept, so normalising is idempotent
    assert validate_spec(kept) == kept
    assert quantizer_bits(layer["kernel_quantizer"]) == 3
    assert summary(net({"type": "flatten"}, layer)).rows[1]["params_by_bits"] == {3: 640}  # the bits parameter


@pytest.mark.parametrize(
    "q, words",
    [
        ({"name": "dorefa", "mode": "weights"}, ['dorefa with mode "weights" quantizes kernels only', "its batch"]),
        (
            {"name": "ste_tern", "ternary_weight_networks": True},
            ["ternary_weight_networks true quantizes kernels only"],
        ),
        ({"name": "dorefa", "mode": "weight"}, ["'mode'", "'activations', 'weights'", '"weight"']),
        ({"name": "ste_tern", "ternary_weight_networks": 1}, ["true or false"]),
    ],
)
def test_kernel_only_quantizer_settings_are_refused_on_inputs(q, words):
    error = error_of(net({"type": "flatten"}, {"type": "dense", "units": 10, "input_quantizer": q}))
    assert error.field == "input_quantizer"
    for word in words:
        assert word in str(error)
    if q.get("mode") == "weights" or q.get("ternary_weight_networks") is True:
        validate_spec(net({"type": "flatten"}, {"type": "dense", "units": 10, "kernel_quantizer": q}))


def _nested(depth: int) -> dict:
    inner = [{"type": "dense", "units": 4}]
    for _ in range(depth):
        inner = [{"type": "shortcut", "layers": inner}]
    return {"name": "deep", "input_shape": [4], "num_classes": 2, "layers": inner + [{"type": "dense", "units": 2}]}


def test_validation_is_linear_in_the_spec_and_deep_nesting_is_a_spec_error(monkeypatch):
    """Each shortcut's layers were walked twice per level (2^depth work: depth 18 took 2.7 s); depth 300
    raised RecursionError."""
    from workbench.core import spec as spec_module

    calls = []
    original = spec_module._normalise_layer
    monkeypatch.setattr(
        spec_module, "_normalise_layer", lambda path, layer: calls.append(path) or original(path, layer)
    )
    validate_spec(_nested(20))
    assert len(calls) == 22  # every layer normalised once
    with pytest.raises(SpecError, match="must nest shortcuts at most 32 deep"):
        validate_spec(_nested(300))
