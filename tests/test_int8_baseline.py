"""The int8 baseline: the float twin, post-training quantized (workbench.train.int8_twin), its NumPy reference
(CMSIS-NN's arithmetic), and its C on CMSIS-NN kernels on the emulated Cortex-M4 against that reference; the device
bench table (BNN against int8) and its command. Twins are trained here, briefly, on the bundled MNIST sample.

Board tests need arm-none-eabi-gcc, newlib and qemu-system-arm, and a CMSIS-NN checkout ($BNN_WORKBENCH_CMSIS_NN or
../shared/third_party/cmsis-nn); they skip naming what is missing.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from workbench.cli.main import main
from workbench.core.data import load_dataset
from workbench.core.spec import default_training_spec, float_twin, validate_spec
from workbench.deploy.c_export import cmsis_int8, targets
from workbench.deploy.engine import raw_inputs
from workbench.train import int8_twin
from workbench.train.device_bench import bench
from workbench.train.model import build_model
from workbench.train.packing import pack_model
from workbench.train.training import train

SIGN = "ste_sign"
TINY = {
    "name": "tiny-cnn",
    "input_shape": [1, 28, 28],
    "num_classes": 10,
    "layers": [
        {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "valid", "kernel_quantizer": SIGN},
        {"type": "max_pool", "pool_size": 2},
        {"type": "batch_norm"},
        {"type": "conv2d", "filters": 16, "kernel_size": 3, "input_quantizer": SIGN, "kernel_quantizer": SIGN},
        {"type": "max_pool", "pool_size": 2},
        {"type": "batch_norm"},
        {"type": "flatten"},
        {"type": "dense", "units": 10, "input_quantizer": SIGN, "kernel_quantizer": SIGN},
        {"type": "batch_norm"},
    ],
}
TRAINING = dict(default_training_spec(), epochs=1, batch_size=100, validation_split=0.0, seed=0)


def board():
    t = targets.TARGETS["cortex-m4"]
    missing = t.missing()
    if missing:
        pytest.skip(f"target cortex-m4: {', '.join(missing)} not installed (see docs/DEPLOY.md for the packages)")
    try:
        return cmsis_int8.cmsis_nn_dir()
    except cmsis_int8.Int8Error as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def data():
    dataset = load_dataset("mnist-sample")
    small = dataclasses.replace(dataset, x_train=dataset.x_train[:1500], y_train=dataset.y_train[:1500])
    return small, raw_inputs(small.x_train, small.preprocessing), raw_inputs(small.x_test, small.preprocessing)


@pytest.fixture(scope="module")
def twin(data):
    dataset, _, _ = data
    torch.manual_seed(0)
    return int8_twin.train_twin(validate_spec(TINY), TRAINING, dataset)


@pytest.fixture(scope="module")
def program(twin, data):
    dataset, u_train, _ = data
    return int8_twin.quantize(twin, u_train, dataset.preprocessing)


def test_quantize_multiplier_is_a_q31_mantissa_and_a_shift():
    real = np.array([0.75, 1e-3, 0.5, 3.0, 2.0**-20 * 0.99999999])
    q, shift = cmsis_int8.quantize_multiplier(real)
    assert ((q >= 2**30) & (q < 2**31)).all()
    np.testing.assert_allclose(q * 2.0 ** (shift.astype(np.float64) - 31), real, rtol=1e-9)


def test_requantize_rounds_as_cmsis_nn():
    """acc * real rounded twice as TFLite and CMSIS-NN do (the doubling high multiply rounds to 2^-right, then the
    shift rounds half away from zero): never more than 0.5 + 2^-(right + 1) <= 0.75 off. (The board runs check the
    C kernels against this reference bit for bit.)"""
    rng = np.random.default_rng(0)
    acc = rng.integers(-(2**20), 2**20, 5000)
    real = rng.uniform(1e-5, 0.9, 5000)
    q, shift = cmsis_int8.quantize_multiplier(real)
    got = cmsis_int8._requantize(acc, q, shift)
    right = np.maximum(-shift, 0)
    assert (np.abs(got - acc * real) <= 0.5 + 0.5 ** (right + 1) + 1e-9).all()
    assert np.abs(got - acc * real).max() > 0.5  # the double rounding shows
    assert cmsis_int8._requantize(np.array([-6]), *cmsis_int8.quantize_multiplier(np.array([0.25])))[0] == -2  # away


def test_folded_float_twin_gives_torch_s_logits(twin, data):
    dataset, _, u_test = data
    with torch.no_grad():
        expected = twin(torch.from_numpy(dataset.x_test[:64])).numpy()
    np.testing.assert_allclose(int8_twin.folded_logits(twin, u_test[:64], dataset.preprocessing), expected, atol=1e-4)


def test_int8_twin_keeps_the_float_twin_s_accuracy(twin, program, data):
    dataset, _, u_test = data
    with torch.no_grad():
        float_accuracy = (twin(torch.from_numpy(dataset.x_test)).argmax(1).numpy() == dataset.y_test).mean()
    scores = cmsis_int8.reference(program, u_test)
    int8_accuracy = (scores.argmax(axis=1) == dataset.y_test).mean()
    assert float_accuracy > 0.6  # it learned something in one short epoch
    assert abs(int8_accuracy - float_accuracy) < 0.02
    assert [layer.kind for layer in program.layers] == ["conv", "max_pool", "conv", "max_pool", "dense"]
    assert all(layer.weight.dtype == np.int8 and np.abs(layer.weight).max() == 127 for layer in program.layers[::2])
    # the logits are the last layer's dequantized outputs; the int8 argmax is the class
    logits = cmsis_int8.logits(program, scores[:5])
    np.testing.assert_array_equal(logits.argmax(axis=1), scores[:5].argmax(axis=1))


def test_a_layer_without_an_int8_form_is_named():
    spec = validate_spec(dict(TINY, layers=[{"type": "avg_pool", "pool_size": 2}, *TINY["layers"]]))
    model = build_model(float_twin(spec)).eval()
    with pytest.raises(cmsis_int8.Int8Error, match=r"layer 0 \('0_avg_pool', avg_pool\): no int8 CMSIS-NN"):
        int8_twin.quantize(model, np.zeros((2, 1, 28, 28), np.uint8), {"kind": "none"})


def test_missing_cmsis_nn_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv(cmsis_int8.CMSIS_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(cmsis_int8.Int8Error, match="git clone https://github.com/ARM-software/CMSIS-NN"):
        cmsis_int8.cmsis_nn_dir()
    code = main(["bench", "binary-cnn", "--target", "cortex-m4"])
    assert code == 2


@pytest.mark.slow
def test_int8_c_on_cmsis_nn_equals_the_reference_on_the_m4(program, data, tmp_path):
    cmsis = board()
    _, _, u_test = data
    library = cmsis_int8.generate_int8(program, selftest_input=u_test[0])
    run = cmsis_int8.build_and_measure(program, library, tmp_path, "cortex-m4", u_test[:50], cmsis)
    assert run.matches_reference == 50
    np.testing.assert_array_equal(run.result.scores, cmsis_int8.reference(program, u_test[:50]))
    assert run.result.selftest.endswith("PASS")
    fp = run.footprint
    assert fp.model["rodata"] >= program.weight_bytes and fp.model["text"] > 1000  # weights and CMSIS-NN code
    assert fp.model["bss"] == library.arena_bytes and fp.stack_bytes > 0
    assert fp.instructions["min"] == pytest.approx(fp.instructions["max"], rel=1e-3)  # no data-dependent work


@pytest.mark.slow
def test_device_bench_table(twin, data, tmp_path):
    board()
    dataset, _, _ = data
    torch.manual_seed(0)
    model = train(validate_spec(TINY), dict(TRAINING, epochs=4), dataset).model.eval()
    packed = pack_model(model, preprocessing=dataset.preprocessing)
    result = bench(packed, dataset, twin=twin, images=10, folder=tmp_path, log=lambda line: None)
    assert result.binary.checked == result.int8.checked == 10
    ratios = result.ratios()
    # a tiny network: its int8 twin's per-channel int32 biases, multipliers and shifts weigh as much as its weights
    assert ratios["weight flash"] < 1 / 2 and ratios["RAM"] < 1 / 2
    text = result.to_text()
    for measure in ("accuracy (test set)", "weight flash", "RAM", "emulated instructions / inference", "ESTIMATE"):
        assert measure in text
    assert "STM32F401RE" in text and "uJ" in text
    assert result.binary.accuracy > 0.3 and result.int8.accuracy > 0.6


@pytest.mark.slow
def test_bench_command_prints_one_table(tmp_path, capsys):
    board()
    from workbench.core.data import load_run_data
    from workbench.deploy import bnnfile

    dataset = load_run_data("mnist-sample", TRAINING)
    small = dataclasses.replace(dataset, x_train=dataset.x_train[:1500], y_train=dataset.y_train[:1500])
    torch.manual_seed(0)
    model = train(validate_spec(TINY), TRAINING, small).model.eval()
    meta = {"data_ref": "mnist-sample", "training_spec": TRAINING}
    bnnfile.save(pack_model(model, preprocessing=dataset.preprocessing, training=meta), tmp_path / "tiny.bnn")
    code = main(["bench", str(tmp_path / "tiny.bnn"), "--target", "cortex-m4", "--images", "5", "--twin-epochs", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "tiny-cnn on cortex-m4" in out and "BNN (XNOR C)" in out and "int8 (CMSIS-NN)" in out
    assert "binary: 5 bit-exact with the engine; int8: 5 equal to its NumPy reference" in out
