"""summary() against numbers worked out by hand from the counting rules in workbench/core/summary.py, and its
packed bytes against what pack_model stores, exactly."""

import math

import pytest
import torch

from workbench.core.presets import PRESETS, preset
from workbench.core.summary import summary
from workbench.train.model import build_model
from workbench.train.packing import pack_model

SIGN = "ste_sign"


def words(k):
    """Bytes of one packed row of k bits: ceil(k / 64) uint64 words."""
    return math.ceil(k / 64) * 8


def test_small_cnn_by_hand():
    spec = {
        "input_shape": [3, 6, 6],
        "num_classes": 3,
        "layers": [
            {
                "type": "conv2d",
                "filters": 5,
                "kernel_size": 3,
                "padding": "valid",
                "kernel_quantizer": SIGN,
                "scaling": "xnor",
            },  # -> [5, 4, 4], input_conv2d
            {"type": "max_pool"},  # -> [5, 2, 2], pools bits
            {"type": "batch_norm"},  # folds into a float64 affine
            {"type": "flatten"},  # -> [20]
            {"type": "dense", "units": 70, "input_quantizer": SIGN, "kernel_quantizer": SIGN, "use_bias": True},
            {"type": "batch_norm", "affine": False},  # float output: next is float
            {"type": "dense", "units": 3},  # full precision, bias
        ],
    }
    s = summary(spec)
    rows = {r["name"]: r for r in s.rows}
    conv_weights = 5 * 3 * 3 * 3
    assert rows["0_conv2d"]["params_1bit"] == conv_weights
    assert rows["0_conv2d"]["memory_packed_bytes"] == 5 * 3 * 3 * words(3)  # xnor scale folds into the affine
    assert rows["0_conv2d"]["macs_float"] == conv_weights * 4 * 4 and rows["0_conv2d"]["macs_binary"] == 0
    assert rows["1_max_pool"]["memory_packed_bytes"] == 5 and rows["1_max_pool"]["stored"] == "uint8 AND/OR flags"
    assert rows["2_batch_norm"]["params_32bit"] == 4 * 5
    assert rows["2_batch_norm"]["memory_packed_bytes"] == 5 * (8 + 8)  # the first layer's float64 scale + shift
    assert rows["4_dense"]["params_by_bits"] == {1: 70 * 20, 32: 70}
    # flattened bits keep one word per pixel (4 pixels of 5 channels); the bias folds into the next batch norm
    assert rows["4_dense"]["memory_packed_bytes"] == 70 * 4 * 8
    assert rows["4_dense"]["macs_binary"] == 70 * 20
    assert rows["5_batch_norm"]["params_32bit"] == 2 * 70
    assert rows["5_batch_norm"]["memory_packed_bytes"] == 70 * 8
    assert rows["5_batch_norm"]["stored"] == "float32 scale + float32 shift"
    assert rows["6_dense"]["params_32bit"] == 70 * 3 + 3
    assert rows["6_dense"]["memory_packed_bytes"] == 4 * (70 * 3 + 3)
    assert rows["1_max_pool"]["params"] == 0 and rows["1_max_pool"]["output_shape"] == [5, 2, 2]

    t = s.totals
    ones, floats = conv_weights + 1400, 20 + 70 + 140 + 213
    assert t["params_by_bits"] == {1: ones, 32: floats}
    assert t["params"] == ones + floats
    assert t["memory_fp32_bytes"] == 4 * (ones + floats)
    packed = 360 + 5 + 80 + 2240 + 560 + 852
    assert t["memory_packed_bytes"] == packed
    assert t["macs_binary"] == 1400 and t["macs_float"] == conv_weights * 16 + 210
    assert t["compression_ratio"] == pytest.approx(4 * (ones + floats) / packed)


def test_multi_bit_rsign_and_learnable_scale_by_hand():
    spec = {
        "input_shape": [10],
        "num_classes": 3,
        "layers": [
            {"type": "dense", "units": 8, "kernel_quantizer": "ste_tern"},  # 2-bit weights
            {"type": "batch_norm"},  # float: kernel not a sign
            {"type": "dense", "units": 4, "input_quantizer": "rsign", "kernel_quantizer": SIGN, "scaling": "learnable"},
            {"type": "batch_norm"},  # threshold BN
            {"type": "dense", "units": 3, "input_quantizer": SIGN, "kernel_quantizer": {"name": "dorefa", "bits": 3}},
        ],
    }
    s = summary(spec)
    rows = [r["memory_packed_bytes"] for r in s.rows]
    # ternary weights run in float32; float BN 8 * 8; the sign op's rsign thresholds + 1-bit rows (scale folds);
    # no XNOR layer follows, so the BN is a float32 scale + shift; dorefa weights in float32
    assert rows == [4 * 80, 64, 8 * 4 + 4 * words(8), 4 * 8, 4 * 12]
    assert s.rows[2]["stored"] == "float32 thresholds + packed bits"
    assert s.totals["params_by_bits"] == {1: 32, 2: 80, 3: 12, 32: 32 + (8 + 4) + 16}
    assert s.totals["macs_binary"] == 32 and s.totals["macs_float"] == 80 + 12


def test_rsign_threshold_folds_into_a_preceding_threshold_bn():
    spec = {
        "input_shape": [10],
        "num_classes": 3,
        "layers": [
            {"type": "dense", "units": 8, "kernel_quantizer": SIGN},
            {"type": "batch_norm"},
            {"type": "dense", "units": 3, "input_quantizer": "rsign", "kernel_quantizer": SIGN},
        ],
    }
    rows = summary(spec).rows
    # the first layer's float64 scale + shift take the threshold; the last layer's output is float32
    assert [r["memory_packed_bytes"] for r in rows] == [8 * words(10), 8 * 16, 3 * words(8) + 3 * 8]
    assert rows[2]["params_32bit"] == 8  # the threshold still counts as a parameter


def test_summary_params_match_the_torch_model():
    for name in ("binary-cnn", "toy-mlp", "binary-cnn-float"):
        model = build_model(preset(name))
        torch_params = sum(p.numel() for p in model.parameters()) + sum(
            b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked")
        )
        assert summary(preset(name)).totals["params"] == torch_params, name


def test_binary_mlp_preset_numbers():
    t = summary(preset("binary-mlp")).totals
    assert t["params_1bit"] == 784 * 2048 + 2048 * 2048 + 2048 * 10
    # the first layer keeps a float64 scale + shift, the hidden one int32 thresholds + flips, the last float32
    assert (
        t["memory_packed_bytes"]
        == (2048 * words(784) + 2048 * words(2048) + 10 * words(2048) + 2048 * 16 + 2048 * 5 + 10 * 8)
        == 782_928
    )
    assert t["macs_binary"] == 2048 * 2048 + 2048 * 10 and t["macs_float"] == 784 * 2048


def test_shortcut_rows_and_text():
    spec = {
        "input_shape": [16],
        "num_classes": 2,
        "layers": [
            {
                "type": "shortcut",
                "layers": [
                    {"type": "dense", "units": 16, "input_quantizer": SIGN, "kernel_quantizer": SIGN},
                    {"type": "batch_norm"},
                ],
            },
            {"type": "dense", "units": 2},
        ],
    }
    s = summary(spec)
    assert [r["name"] for r in s.rows] == ["0_shortcut", "0.0_dense", "0.1_batch_norm", "1_dense"]
    assert s.rows[2]["memory_packed_bytes"] == 16 * 8  # added to the real shortcut: not a threshold
    text = s.to_text()
    assert "0.0_dense" in text and "1-bit params" in text and f"{s.totals['memory_packed_bytes']:,}" in text


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_summarises(name):
    s = summary(preset(name))
    assert s.totals["memory_packed_bytes"] > 0
    if name.endswith("-float"):
        assert s.totals["params_1bit"] == 0 and s.totals["macs_binary"] == 0
    else:  # toy-mlp is the least: its 64 first-layer float64 scales and shifts weigh as much as its weights
        assert s.totals["compression_ratio"] > 8


BI_REAL_BLOCK = {
    "type": "shortcut",
    "layers": [
        {"type": "conv2d", "filters": 16, "input_quantizer": "approx_sign", "kernel_quantizer": "magnitude_aware_sign"},
        {"type": "batch_norm"},
    ],
}
ODD_SPECS = {
    "bi-real": {
        "input_shape": [3, 8, 8],
        "num_classes": 3,
        "layers": [
            {"type": "conv2d", "filters": 16, "kernel_quantizer": SIGN},
            {"type": "batch_norm"},
            BI_REAL_BLOCK,
            BI_REAL_BLOCK,
            {"type": "avg_pool", "pool_size": 2},
            {"type": "flatten"},
            {"type": "dense", "units": 3},
        ],
    },
    "rsign-inputs": {
        "input_shape": [10],
        "num_classes": 3,
        "layers": [
            {"type": "dense", "units": 8, "kernel_quantizer": SIGN},
            {"type": "batch_norm"},
            {"type": "dense", "units": 9, "input_quantizer": "rsign", "kernel_quantizer": SIGN, "scaling": "xnor"},
            {"type": "batch_norm"},
            {"type": "dropout"},
            {"type": "dense", "units": 7, "input_quantizer": "rsign", "kernel_quantizer": SIGN},
            {"type": "activation", "fn": "relu"},
            {"type": "dense", "units": 3, "input_quantizer": "rsign", "kernel_quantizer": SIGN, "use_bias": True},
        ],
    },
    "float-layers": {
        "input_shape": [1, 9, 9],
        "num_classes": 4,
        "layers": [
            {"type": "conv2d", "filters": 6},
            {"type": "activation", "fn": "prelu"},
            {"type": "batch_norm"},
            {"type": "max_pool", "pool_size": 2},
            {"type": "conv2d", "filters": 70, "input_quantizer": SIGN, "kernel_quantizer": SIGN},
            {"type": "batch_norm"},
            {"type": "activation", "fn": "hardtanh"},
            {"type": "batch_norm"},
            {"type": "conv2d", "filters": 5, "input_quantizer": SIGN, "kernel_quantizer": SIGN},
            {"type": "activation", "fn": "tanh"},
            {"type": "max_pool", "pool_size": 2},
            {"type": "batch_norm", "affine": False},
            {"type": "flatten"},
            {"type": "dense", "units": 20, "input_quantizer": "ste_tern", "kernel_quantizer": "ste_tern"},
            {"type": "dense", "units": 4, "kernel_quantizer": {"name": "dorefa", "bits": 3}},
        ],
    },
    "dense-after-conv-flatten": {
        "input_shape": [3, 9, 7],
        "num_classes": 4,
        "layers": [
            {"type": "conv2d", "filters": 70, "kernel_quantizer": SIGN},
            {"type": "batch_norm"},
            {"type": "conv2d", "filters": 5, "stride": 2, "input_quantizer": SIGN, "kernel_quantizer": SIGN},
            {"type": "max_pool", "pool_size": 3, "stride": 2},
            {"type": "batch_norm"},
            {"type": "activation", "fn": "identity"},
            {"type": "flatten"},
            {"type": "dropout"},
            {"type": "dense", "units": 4, "input_quantizer": SIGN, "kernel_quantizer": SIGN},
            {"type": "batch_norm"},
        ],
    },
    "xnor-first-layer": {
        "input_shape": [12],
        "num_classes": 2,
        "layers": [
            {"type": "dense", "units": 16, "input_quantizer": SIGN, "kernel_quantizer": SIGN},
            {"type": "batch_norm"},
            {"type": "dense", "units": 8, "input_quantizer": SIGN, "kernel_quantizer": SIGN},
            {"type": "batch_norm"},
            {"type": "dense", "units": 8, "kernel_quantizer": SIGN},
            {"type": "batch_norm"},
            {"type": "dense", "units": 2, "input_quantizer": "swish_sign", "kernel_quantizer": SIGN},
        ],
    },
    "ternary-first-layer": {
        "input_shape": [1, 8, 8],
        "num_classes": 2,
        "layers": [
            {"type": "conv2d", "filters": 8, "kernel_quantizer": "ste_tern", "padding": "valid"},
            {"type": "batch_norm"},
            {"type": "conv2d", "filters": 8, "input_quantizer": SIGN, "kernel_quantizer": SIGN},
            {"type": "batch_norm"},
            {"type": "flatten"},
            {"type": "flatten"},
            {"type": "dense", "units": 2, "input_quantizer": SIGN, "kernel_quantizer": SIGN},
        ],
    },
    "bits-ending-a-shortcut": {
        "input_shape": [16],
        "num_classes": 2,
        "layers": [
            {"type": "dense", "units": 16, "kernel_quantizer": SIGN},
            {"type": "batch_norm"},
            {
                "type": "shortcut",
                "layers": [
                    {"type": "dense", "units": 16, "input_quantizer": SIGN, "kernel_quantizer": SIGN},
                    {"type": "batch_norm"},
                    {"type": "dense", "units": 16, "input_quantizer": "rsign", "kernel_quantizer": SIGN},
                ],
            },
            {"type": "batch_norm"},
            {"type": "dense", "units": 2, "input_quantizer": SIGN, "kernel_quantizer": SIGN},
        ],
    },
}
SPECS = {**{name: preset(name) for name in PRESETS}, **{name: dict(s, name=name) for name, s in ODD_SPECS.items()}}


@pytest.mark.parametrize("name", list(SPECS))
def test_packed_bytes_are_what_pack_stores(name):
    torch.manual_seed(0)
    packed = pack_model(build_model(SPECS[name]).eval())
    stored = sum(array.nbytes for layer in packed.layers for array in layer.arrays.values())
    assert summary(SPECS[name]).totals["memory_packed_bytes"] == stored
