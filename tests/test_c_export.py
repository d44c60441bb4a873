"""The C export against the engine: bit-exact scores and logits with gcc and clang on this machine, under
qemu-aarch64 (static AArch64, NEON popcount) and on QEMU's Cortex-M boards (mps2-an386 M4F, mps2-an385 M3, the
micro:bit's M0), for models trained briefly on the bundled MNIST sample; every op on random models; the CLI.

One model per preset is trained per session (the tests marked slow) and exported once; each target builds once and
runs all its inputs in one process (one emulator start). A test whose compiler or emulator is missing skips and says
which.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import platform
import subprocess

import numpy as np
import pytest
import torch
from random_models import FLOATS_SPEC, MIXED_SPEC, random_packed

from workbench.cli import footprint as footprint_command
from workbench.cli.main import main
from workbench.core.data import load_dataset
from workbench.core.presets import preset
from workbench.core.spec import default_training_spec, validate_spec
from workbench.deploy import bnnfile
from workbench.deploy.c_export import CExportError, export_c, generate, reference_scores, targets
from workbench.deploy.c_export.arena import Arena
from workbench.deploy.c_export.generator import pack32, repack
from workbench.deploy.c_export.measure import agreement
from workbench.deploy.engine import raw_inputs
from workbench.deploy.kernels import pack_signs
from workbench.deploy.packed import OPS, PackedLayer, PackedModel
from workbench.train.model import build_model
from workbench.train.packing import pack_model
from workbench.train.training import train

BOARD_IMAGES = 200

BIREAL = {
    "name": "bireal-mini",
    "input_shape": [1, 28, 28],
    "num_classes": 10,
    "layers": [
        {
            "type": "conv2d",
            "filters": 16,
            "kernel_size": 3,
            "stride": 2,
            "padding": "same",
            "kernel_quantizer": "ste_sign",
        },
        {"type": "batch_norm"},
        *[
            {
                "type": "shortcut",
                "layers": [
                    {
                        "type": "conv2d",
                        "filters": 16,
                        "kernel_size": 3,
                        "padding": "same",
                        "input_quantizer": "approx_sign",
                        "kernel_quantizer": "ste_sign",
                    },
                    {"type": "batch_norm"},
                ],
            }
            for _ in range(2)
        ],
        {"type": "max_pool", "pool_size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 10, "input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign"},
        {"type": "batch_norm"},
    ],
}


def _narrow(spec: dict, width: int) -> dict:
    """binary-mlp(-float) with narrower hidden layers: the float twin's 5.8M float32 weights are 70 MB of C."""
    for layer in spec["layers"]:
        if layer["type"] == "dense" and layer["units"] == 2048:
            layer["units"] = width
    return spec


SPECS = {
    "binary-mlp": lambda: preset("binary-mlp"),
    "binary-cnn": lambda: preset("binary-cnn"),
    "binary-mlp-float": lambda: _narrow(preset("binary-mlp-float"), 256),
    "binary-cnn-float": lambda: preset("binary-cnn-float"),
    "bireal": lambda: validate_spec(copy.deepcopy(BIREAL)),
}


def need(target: str) -> targets.Target:
    t = targets.TARGETS[target]
    missing = t.missing()
    if missing:
        pytest.skip(
            f"target {target}: {', '.join(missing)} not installed (apt-get install gcc-arm-none-eabi "
            "libnewlib-arm-none-eabi qemu-system-arm qemu-user gcc-aarch64-linux-gnu clang)"
        )
    return t


@pytest.fixture(scope="session")
def mnist():
    dataset = load_dataset("mnist-sample")
    u = raw_inputs(dataset.x_test, dataset.preprocessing)
    assert u.dtype == np.uint8 and len(u) == 1000
    return dataset, u


@pytest.fixture(scope="session")
def trained(mnist):
    """name -> packed model, trained once per session: one epoch on 1500 training images."""
    dataset, _ = mnist
    small = dataclasses.replace(
        dataset,
        x_train=dataset.x_train[:1500],
        y_train=dataset.y_train[:1500],
        x_test=dataset.x_test[:100],
        y_test=dataset.y_test[:100],
    )
    cache = {}

    def get(name):
        if name not in cache:
            spec = SPECS[name]()
            training = dict(default_training_spec(), epochs=1, batch_size=100, validation_split=0.0, seed=0)
            torch.manual_seed(0)
            model = train(spec, training, small).model.eval()
            cache[name] = pack_model(model, spec, preprocessing=dataset.preprocessing)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def exported(trained, mnist, tmp_path_factory):
    """name -> (packed, library, folder, reference (scores, logits) on the 1000 test images), exported once."""
    _, u = mnist
    cache = {}

    def get(name):
        if name not in cache:
            packed = trained(name)
            folder = tmp_path_factory.mktemp(name)
            library = export_c(packed, folder, selftest_input=u[0])
            cache[name] = (packed, library, folder, reference_scores(packed, u))
        return cache[name]

    return get


@pytest.fixture(scope="session")
def ran(exported, mnist):
    """(name, target) -> (RunResult, Footprint): built once, all inputs in one process."""
    _, u = mnist
    cache = {}

    def get(name, target):
        if (name, target) not in cache:
            t = need(target)
            packed, library, folder, _ = exported(name)
            inputs = u[:BOARD_IMAGES] if t.bare_metal else u
            targets.build(folder, library.name, t)
            result = targets.run(folder, library.name, t, inputs, library.num_classes, library.scores_are_dots)
            cache[name, target] = (result, targets.footprint(folder, library.name, t, result))
        return cache[name, target]

    return get


def assert_bit_exact(result, reference, count):
    scores, logits = reference
    assert len(result.classes) == count
    np.testing.assert_array_equal(result.scores, scores[:count])
    np.testing.assert_array_equal(result.logits.view(np.uint32), logits[:count].view(np.uint32))
    np.testing.assert_array_equal(result.classes, logits[:count].argmax(axis=1))


# ---------------------------------------------------------------------------------------------- trained models


@pytest.mark.slow
@pytest.mark.parametrize("target", ["host", "host-clang", "aarch64"])
@pytest.mark.parametrize("name", ["binary-mlp", "binary-cnn", "bireal"])
def test_binary_models_bit_exact_on_the_whole_test_set(exported, ran, mnist, name, target):
    """Integer scores (the last layer's dot products), float32 logits and classes equal the engine's bit for bit on
    all 1000 test images, built with -std=c99 -Wall -Wextra -Werror -pedantic."""
    packed, library, _, reference = exported(name)
    result, _ = ran(name, target)
    assert library.scores_are_dots and result.scores.dtype == np.int32
    assert_bit_exact(result, reference, 1000)
    if name != "bireal":  # one epoch leaves the shortcut network near chance; it is there for its ops
        assert (result.classes == mnist[0].y_test).mean() > 0.3  # trained (chance: 0.1)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["binary-mlp-float", "binary-cnn-float"])
def test_float_presets_agree_with_the_engine(exported, ran, name):
    """Float layers: float32 in the engine's precision, summed in index order where NumPy's BLAS has its own order,
    so the logits agree to float rounding and the classes wherever the engine's top two are not a near tie."""
    packed, library, _, (scores, logits) = exported(name)
    result, _ = ran(name, "host")
    assert not library.scores_are_dots
    np.testing.assert_allclose(result.logits, logits, rtol=1e-4, atol=1e-4)
    top2 = np.sort(logits, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-3
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(result.classes[clear], logits.argmax(axis=1)[clear])
    np.testing.assert_array_equal(result.scores.view(np.uint32), result.logits.view(np.uint32))


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, target",
    [
        ("binary-mlp", "cortex-m4"),
        ("binary-cnn", "cortex-m4"),
        ("bireal", "cortex-m4"),
        ("binary-cnn", "cortex-m3"),
        ("binary-cnn", "cortex-m0"),
    ],
)
def test_bit_exact_on_emulated_microcontrollers(exported, ran, name, target):
    """200 test images on QEMU's board, read and written through semihosting in one run; the exported self-test
    passes there; the run measures the stack and the emulated instructions per inference."""
    packed, library, _, reference = exported(name)
    result, report = ran(name, target)
    assert_bit_exact(result, reference, BOARD_IMAGES)
    assert result.selftest.endswith(": PASS"), result.selftest
    assert result.stats["images"] == BOARD_IMAGES
    assert 0 < report.stack_bytes < 4096
    assert report.instructions["min"] > 1000
    # the integer work does not depend on the input; software double arithmetic (bireal's) a little
    assert report.instructions["max"] <= 1.05 * report.instructions["min"]
    assert report.model["bss"] >= library.arena_bytes
    assert report.model["rodata"] >= library.weight_bytes


@pytest.mark.slow
def test_binary_cnn_fits_a_micro_bit(exported, ran):
    """The micro:bit v1 (nRF51822: 256 KB flash, 16 KB RAM): the whole program fits with its measured stack."""
    _, library, _, _ = exported("binary-cnn")
    _, report = ran("binary-cnn", "cortex-m0")
    assert report.program["flash"] <= 256 * 1024
    assert report.program["ram"] + report.stack_bytes <= 16 * 1024
    assert report.ram_bytes == report.model["data"] + report.model["bss"] + report.stack_bytes


# ---------------------------------------------------------------------------------------------- every op


OP_SPECS = {
    # uint8 first conv with "same" padding (thresholds per position class), 70 channels (a partial word)
    "odd": {
        "name": "odd",
        "input_shape": [3, 9, 7],
        "num_classes": 4,
        "layers": [
            {"type": "conv2d", "filters": 70, "kernel_size": 3, "padding": "same", "kernel_quantizer": "ste_sign"},
            {"type": "batch_norm"},
            {
                "type": "conv2d",
                "filters": 5,
                "kernel_size": 3,
                "stride": 2,
                "input_quantizer": "ste_sign",
                "kernel_quantizer": "ste_sign",
            },
            {"type": "batch_norm"},
            {"type": "flatten"},
            {"type": "dense", "units": 4, "input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign"},
            {"type": "batch_norm"},
        ],
    },
    # 3x3 stride-2 pooling on bits with mixed AND/OR channels
    "pool3": {
        "name": "pool3",
        "input_shape": [1, 12, 12],
        "num_classes": 3,
        "layers": [
            {"type": "conv2d", "filters": 6, "kernel_size": 3, "padding": "same", "kernel_quantizer": "ste_sign"},
            {"type": "max_pool", "pool_size": 3, "stride": 2},
            {"type": "batch_norm"},
            {
                "type": "conv2d",
                "filters": 7,
                "kernel_size": 3,
                "input_quantizer": "ste_sign",
                "kernel_quantizer": "ste_sign",
            },
            {"type": "batch_norm"},
            {"type": "flatten"},
            {"type": "dense", "units": 3, "input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign"},
            {"type": "batch_norm"},
        ],
    },
    "mixed": MIXED_SPEC,
    "floats": FLOATS_SPEC,
    # a feature vector; the first (and only) layer gives the float logits
    "one-layer": {
        "name": "one-layer",
        "input_shape": [20],
        "num_classes": 4,
        "layers": [{"type": "dense", "units": 4, "kernel_quantizer": "ste_sign"}],
    },
    # a float batch norm before the binary layers: float_dense, then a sign op into XNOR
    "affine-first": {
        "name": "affine-first",
        "input_shape": [1, 6, 6],
        "num_classes": 3,
        "layers": [
            {"type": "batch_norm"},
            {"type": "flatten"},
            {"type": "dense", "units": 40, "kernel_quantizer": "ste_sign"},
            {"type": "batch_norm"},
            {"type": "dense", "units": 3, "input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign"},
            {"type": "batch_norm"},
        ],
    },
    # a binary layer's float64 output into a float dense layer: float64 logits, rounded at the end
    "float64-tail": {
        "name": "float64-tail",
        "input_shape": [1, 6, 6],
        "num_classes": 3,
        "layers": [
            {"type": "flatten"},
            {"type": "dense", "units": 40, "kernel_quantizer": "ste_sign"},
            {"type": "batch_norm"},
            {"type": "dense", "units": 16, "input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign"},
            {"type": "dense", "units": 3},
        ],
    },
    # rsign thresholds on a float (dorefa-weight) conv, a float batch norm on a map
    "rsign-float": {
        "name": "rsign-float",
        "input_shape": [2, 6, 6],
        "num_classes": 3,
        "layers": [
            {
                "type": "conv2d",
                "filters": 4,
                "kernel_size": 3,
                "padding": "same",
                "input_quantizer": "rsign",
                "kernel_quantizer": "dorefa",
            },
            {"type": "batch_norm"},
            {"type": "flatten"},
            {"type": "dense", "units": 5, "input_quantizer": "rsign", "kernel_quantizer": "ste_tern"},
            {"type": "dense", "units": 3},
        ],
    },
}
FLOAT_MATRIX_PRODUCTS = {"floats", "rsign-float"}  # NumPy's BLAS order: agreement to float rounding


def check_on_host(packed, folder, inputs, exact=True, compilers=("host", "host-clang"), extra=()):
    library = export_c(packed, folder)
    reference = reference_scores(packed, inputs)
    for name in compilers:
        t = need(name)
        targets.build(folder, library.name, t, extra=extra)
        result = targets.run(folder, library.name, t, inputs, library.num_classes, library.scores_are_dots)
        match = agreement(packed, result, inputs, reference)
        if exact:
            assert match.exact, match.line()
        else:
            assert match.max_relative < 1e-4 and match.classes_equal >= 0.95 * len(inputs), match.line()
    return library, result


@pytest.mark.parametrize("name", list(OP_SPECS))
def test_every_op_on_random_models(tmp_path, name):
    packed = random_packed(OP_SPECS[name])
    inputs = np.random.default_rng(1).integers(0, 256, (100, *packed.input_shape), dtype=np.uint8)
    inputs[0], inputs[1] = 0, 255
    check_on_host(packed, tmp_path, inputs, exact=name not in FLOAT_MATRIX_PRODUCTS)


def test_ops_covered():
    """The op tests above reach every op the engine runs."""
    ops = {layer.op for spec in OP_SPECS.values() for layer in random_packed(spec).layers}
    ops |= {layer.op for layer in random_packed(BIREAL).layers}
    assert set(OPS) <= ops, set(OPS) - ops


def _with_affine_first(packed: PackedModel) -> PackedModel:
    """The packed model with a float_affine op before its first layer: input_* then runs on real activations."""
    channels = packed.input_shape[0]
    affine = PackedLayer(
        "pre",
        "float_affine",
        {},
        {
            "scale": np.linspace(0.5, 1.5, channels).astype(np.float32),
            "shift": np.linspace(-0.2, 0.3, channels).astype(np.float32),
        },
    )
    return PackedModel(packed.meta, [affine, *packed.layers])


@pytest.mark.parametrize("name", ["odd", "one-layer"])
def test_first_layer_on_real_activations(tmp_path, name):
    """input_conv2d / input_dense reached by float activations: the engine's float path (bits or float output)."""
    packed = _with_affine_first(random_packed(OP_SPECS[name]))
    packed.check()
    assert packed.layers[1].op in ("input_conv2d", "input_dense")
    inputs = np.random.default_rng(2).integers(0, 256, (60, *packed.input_shape), dtype=np.uint8)
    check_on_host(packed, tmp_path, inputs, exact=False, compilers=("host",))


@pytest.mark.parametrize("method", [1, 2, 3, 4, 5])
def test_every_popcount_agrees(tmp_path, method):
    """SWAR, Harley-Seal, table, __builtin_popcount (32 and 64-bit words) give the same bits (NEON: aarch64)."""
    packed = random_packed(OP_SPECS["odd"])
    inputs = np.random.default_rng(4).integers(0, 256, (40, *packed.input_shape), dtype=np.uint8)
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i686")
    extra = (f"-DBNN_POPCOUNT={method}",) + (("-mpopcnt",) if method in (4, 5) and x86 else ())
    check_on_host(packed, tmp_path, inputs, compilers=("host",), extra=extra)


# ---------------------------------------------------------------------------------------------- pieces


def test_words_are_repacked_in_the_file_bit_order():
    rng = np.random.default_rng(0)
    for k in (1, 31, 32, 33, 64, 70, 130):
        mask = rng.random((5, k)) < 0.5
        w64 = pack_signs(np.where(mask, -1.0, 1.0))
        np.testing.assert_array_equal(repack(w64, k, "test"), pack32(mask))
    bad = pack_signs(-np.ones((1, 10)))
    bad[0, 0] |= np.uint64(1) << np.uint64(40)  # a padding bit in the upper half-word, dropped by the repacking
    with pytest.raises(CExportError, match="padding bits"):
        repack(bad, 10, "layer 3 ('x', op binary_dense)")


def test_arena_never_overlaps_live_buffers():
    rng = np.random.default_rng(1)
    arena = Arena()
    for step in range(60):
        index = arena.new(int(rng.integers(1, 5000)), step, "b")
        arena.use(index, step + int(rng.integers(0, 6)))
    size = arena.place()
    assert arena.peak_live() <= size <= sum(b.nbytes for b in arena.buffers)
    for a in arena.buffers:
        assert a.offset % 8 == 0
        for b in arena.buffers:
            if a is not b and a.first <= b.last and b.first <= a.last:
                assert a.offset + a.nbytes <= b.offset or b.offset + b.nbytes <= a.offset


def test_a_padding_bit_in_a_flattened_dense_is_an_error_naming_the_layer():
    packed = random_packed(OP_SPECS["odd"])
    dense = next(layer for layer in packed.layers if layer.op == "binary_dense")
    dense.arrays["weight_bits"] = dense.arrays["weight_bits"].copy()
    dense.arrays["weight_bits"][0, 0] |= np.uint64(1) << np.uint64(40)  # 5 channels per position: bits 5..63 pad
    with pytest.raises(CExportError, match=r"layer \d+ \('\d+_dense', op binary_dense\): .*padding bits"):
        generate(packed)


def test_bad_names_are_refused():
    packed = random_packed(OP_SPECS["one-layer"])
    for name in ("int", "9lives", "my-model", ""):
        with pytest.raises(CExportError, match="C identifier"):
            generate(packed, name=name or " ")
    assert generate(packed).name == "one_layer"


# ---------------------------------------------------------------------------------------------- commands


@pytest.mark.slow
def test_export_command_from_a_bnn_file_then_make_and_classify_an_image(trained, mnist, tmp_path, capsys):
    need("host")
    packed = trained("binary-cnn")
    bnnfile.save(packed, tmp_path / "cnn.bnn")
    out = tmp_path / "c"
    assert main(["export", str(tmp_path / "cnn.bnn"), "--target", "c", "-o", str(out), "--name", "digits"]) == 0
    assert "digits.c" in capsys.readouterr().out
    subprocess.run(["make", "-s", "-C", str(out)], check=True, capture_output=True, timeout=300)
    selftest = subprocess.run([str(out / "classify"), "--selftest"], capture_output=True, text=True, cwd=out)
    assert selftest.returncode == 0 and selftest.stdout.startswith("digits selftest: class")
    _, u = mnist
    (tmp_path / "digit.pgm").write_bytes(b"P5\n28 28\n255\n" + u[7].tobytes())
    shown = subprocess.run([str(out / "classify"), str(tmp_path / "digit.pgm")], capture_output=True, text=True)
    expected = int(reference_scores(packed, u[7:8])[1].argmax())
    assert shown.returncode == 0 and f"class {expected} ({expected})" in shown.stdout


@pytest.mark.slow
def test_export_command_from_a_run(tmp_path, capsys):
    need("host")
    assert main(["train", "toy-mlp", "--data", "moons", "--epochs", "1"]) == 0
    from workbench.runs.store import RunStore

    run_id = RunStore().list_runs()[0].id
    assert main(["export", run_id, "--target", "c", "-o", str(tmp_path / "toy")]) == 0
    assert "toy_mlp.h" in capsys.readouterr().out
    program = targets.build(tmp_path / "toy", "toy_mlp", "host")
    assert subprocess.run([str(program), "--selftest"], cwd=tmp_path / "toy").returncode == 0
    assert main(["export", str(tmp_path / "toy" / "toy_mlp.h"), "-o", str(tmp_path / "x.bnn")]) == 2
    assert "not a run id" in capsys.readouterr().err


def footprint(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs-dir")
    footprint_command.add_parser(parser.add_subparsers())
    args = parser.parse_args(["footprint", *argv])
    return args.handler(args)


@pytest.mark.slow
def test_footprint_command_measures_flash_ram_and_instructions(trained, tmp_path, capsys):
    need("cortex-m4")
    bnnfile.save(trained("binary-cnn"), tmp_path / "cnn.bnn")
    assert footprint([str(tmp_path / "cnn.bnn"), "--target", "cortex-m4", "--images", "3"]) == 0
    out = capsys.readouterr().out
    assert "model flash" in out and "stack peak" in out and "emulated instructions per inference" in out, out
    assert "bit-exact with the engine on 3 inputs" in out, out


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m0", "host"])
def test_one_hidden_layer_mlp_compiles_warning_free(tmp_path, target):
    """784-2048-10: gcc -O2 -Werror once failed the Harley-Seal popcount's tail loop on the M4 after inlining a
    constant word count ("iteration 1073741823 invokes undefined behavior")."""
    t = need(target)
    spec = preset("binary-mlp")
    spec["layers"] = [spec["layers"][i] for i in (0, 1, 2, 5, 6)]
    packed = pack_model(build_model(validate_spec(spec)).eval(), validate_spec(spec))
    library = export_c(packed, tmp_path, name="mlp1")
    built = subprocess.run(targets.object_command(t, library.name), cwd=tmp_path, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
