"""Packing: the threshold folding rule, the plan's fold decisions, layer choices, metadata, export/predict."""

import re

import numpy as np
import pytest
import torch

from workbench.cli import main
from workbench.core.pack_plan import Fold, fold_after, pack_plan
from workbench.core.presets import preset
from workbench.deploy import bnnfile
from workbench.deploy.engine import Engine, raw_inputs
from workbench.train.model import build_model
from workbench.train.packing import INT32_MAX, INT32_MIN, fold_thresholds, pack_model


def test_fold_thresholds_reproduces_the_sign_of_the_affine_map():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.normal(size=50), [0.0, 0.0, -0.0, 2.0, -2.0]])
    b = np.concatenate([rng.normal(size=50) * 20, [1.0, -1.0, 0.0, -3.0, -3.0]])  # -3/2: a tie at d = 1.5
    thresholds, flip = fold_thresholds(a, b)
    d = np.arange(-60, 61)[:, None]
    expected = a * d + b >= 0
    rule = np.where(flip == 1, d <= thresholds, d >= thresholds)
    assert (rule == expected).all()
    assert thresholds[50] == INT32_MIN and thresholds[51] == INT32_MAX  # gamma = 0: always / never


def test_binary_layers_become_xnor_ops_and_meta_is_kept():
    spec = preset("binary-cnn")
    packed = pack_model(
        build_model(spec).eval(),
        spec,
        class_names=list("0123456789"),
        preprocessing={"kind": "affine", "scale": 2 / 255, "offset": -1.0},
        training={"run_id": "r1"},
        test_accuracy=0.9,
    )
    ops = [layer.op for layer in packed.layers]
    assert ops[0] == "input_conv2d" and ops.count("binary_conv2d") == 2 and ops.count("max_pool_bits") == 2
    assert packed.layers[-1].op == "binary_dense" and packed.layers[-1].attrs["output"] == "float"
    assert packed.meta["training"] == {"run_id": "r1"} and packed.meta["test_accuracy"] == 0.9
    assert packed.meta["network_spec"]["name"] == "binary-cnn"


def test_a_model_in_training_mode_is_packed_in_eval_mode_and_left_as_it_was():
    model = build_model(preset("toy-mlp"))
    model.train()
    packed = pack_model(model)
    assert model.training
    x = np.random.default_rng(0).normal(size=(32, 2)).astype(np.float32)
    model.eval()
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(Engine(packed).logits(x), reference, rtol=1e-5, atol=1e-5)


def test_raw_inputs_only_when_they_reproduce_the_floats():
    pixels = {"kind": "affine", "scale": 2 / 255, "offset": -1.0}
    u = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)
    x = u.astype(np.float32) * np.float32(2 / 255) + np.float32(-1.0)
    assert raw_inputs(x, pixels).dtype == np.uint8 and np.array_equal(raw_inputs(x, pixels), u)
    assert raw_inputs(x + 1e-3, pixels).dtype == np.float32
    assert raw_inputs(x, {"kind": "none"}) is x


def test_predict_command_reports_accuracy(tmp_path, capsys):
    spec = preset("binary-mlp")
    pixels = {"kind": "affine", "scale": 2 / 255, "offset": -1.0}
    bnnfile.save(pack_model(build_model(spec).eval(), preprocessing=pixels), tmp_path / "m.bnn")
    assert main(["predict", str(tmp_path / "m.bnn"), "--data", "mnist-sample", "--threads", "1"]) == 0
    assert "1000 test samples of mnist-sample, accuracy" in capsys.readouterr().out


def test_export_of_an_unknown_run_is_a_clear_error(capsys):
    assert main(["export", "no-such-run", "-o", "x.bnn"]) == 2
    assert "no-such-run" in capsys.readouterr().err


def test_train_export_predict_round_trip(tmp_path, capsys):
    from workbench.runs.store import RunStore

    assert main(["train", "toy-mlp", "--data", "moons", "--epochs", "1"]) == 0
    run_id = RunStore().list_runs()[0].id
    capsys.readouterr()
    assert main(["export", run_id, "-o", str(tmp_path / "toy.bnn")]) == 0
    packed = bnnfile.load(tmp_path / "toy.bnn")
    assert packed.meta["training"]["run_id"] == run_id and packed.meta["training"]["data_ref"] == "moons"
    assert main(["predict", str(tmp_path / "toy.bnn"), "--data", "moons", "--run", run_id]) == 0
    out = capsys.readouterr().out
    assert "agreement with the torch model" in out and "(0 of" in out
    hidden = re.findall(r"hidden bits into (\S+): (\d+) of (\d+) differ", out)
    assert hidden and all(differ == "0" and int(total) > 0 for _, differ, total in hidden), out


def test_fold_decisions_come_from_the_spec_alone():
    layers = preset("binary-cnn")["layers"]
    # conv, max_pool, batch_norm, then an XNOR conv: the pool runs on bits, the batch norm folds into thresholds
    assert fold_after(layers, 0) == Fold("bits", end=3, batch_norms=(2,), consumed=(2,), pools=(1,))
    assert fold_after(layers, 6) == Fold("bits", end=9, batch_norms=(7,), consumed=(7,), flatten=8)
    assert fold_after(layers, 11) == Fold("float", end=13, batch_norms=(12,), consumed=(12,))  # no sign follows
    relu = [layers[0], {"type": "activation", "fn": "relu"}, layers[3]]
    assert fold_after(relu, 0) == Fold("float", end=1)  # relu breaks the chain
    ops = pack_plan(preset("binary-cnn"))
    assert ops[0].layers == ("0_conv2d", "2_batch_norm") and ops[0].sign_of == "3_conv2d"
    assert [a.layer for a in ops[0].arrays] == ["0_conv2d", "2_batch_norm", "2_batch_norm"]
    packed = pack_model(build_model(preset("binary-cnn")).eval())
    assert [(op.name, op.op, op.attrs) for op in ops] == [(lay.name, lay.op, lay.attrs) for lay in packed.layers]
    assert [[(a.name, a.shape, a.dtype) for a in op.arrays] for op in ops] == [
        [(name, array.shape, array.dtype.str) for name, array in layer.arrays.items()] for layer in packed.layers
    ]


def test_switched_off_quantizers_pack_as_what_the_model_computes():
    x = np.random.default_rng(0).normal(size=(16, 2)).astype(np.float32)
    for switch in ({"weights": False}, {"activations": False}):
        model = build_model(preset("toy-mlp")).eval()
        model.set_quantization(**switch)
        packed = pack_model(model)
        assert not any(layer.op.startswith("binary_") for layer in packed.layers), switch
        with torch.no_grad():
            reference = model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(Engine(packed).logits(x), reference, rtol=1e-5, atol=1e-5)


def test_a_nan_weight_is_a_clear_error_not_a_silent_float_layer():
    spec = preset("toy-mlp")
    spec["layers"][2]["scaling"] = "xnor"
    model = build_model(spec).eval()
    with torch.no_grad():
        model.layers[2].weight[0, 0] = float("nan")  # its mean |W| scales the row: NaN, not +-scale
    with pytest.raises(ValueError, match="2_dense"):
        pack_model(model)
