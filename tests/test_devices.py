"""Device budgets: the device table, fits, the energy estimate, and the flash/RAM predictor of the C export against
what ``footprint`` measures on the emulated boards (slow; needs arm-none-eabi-gcc and qemu-system-arm)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from workbench.core.devices import DEVICES, device, energy_per_inference_j, fits
from workbench.core.presets import preset
from workbench.deploy import bnnfile
from workbench.deploy.c_export import export_c, generate, targets
from workbench.deploy.c_export.budget import RUNTIME, predict
from workbench.deploy.c_export.measure import measure
from workbench.train.benchmark import random_preset_file

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def test_every_device_states_its_budget_and_source():
    assert {"microbit-v1", "stm32f103", "stm32f401", "stm32f746", "esp32", "pi-zero-2"} <= set(DEVICES)
    for d in DEVICES.values():
        assert d.flash_bytes > 0 and d.ram_bytes > 0 and d.clock_hz > 0 and d.source
        assert d.c_target is None or d.c_target in RUNTIME
    assert (device("microbit-v1").flash_bytes, device("microbit-v1").ram_bytes) == (256 * 1024, 16 * 1024)
    assert (device("stm32f103").flash_bytes, device("stm32f103").ram_bytes) == (64 * 1024, 20 * 1024)
    with pytest.raises(ValueError, match="unknown device 'nano'"):
        device("nano")


def test_fits_says_by_how_much():
    flash, ram = fits(device("microbit-v1"), 300 * 1024, 4000)
    assert not flash.fits and flash.left == -44 * 1024 and "over by 45,056 B" in flash.line()
    assert ram.fits and ram.left == 16 * 1024 - 4000 and "fits" in ram.line()


def test_energy_is_instructions_times_the_datasheet_energy_per_cycle():
    f401 = device("stm32f401")
    per_cycle = 3.3 * 146e-6  # DS10086: 146 uA/MHz at 3.3 V, i.e. per cycle
    assert f401.energy_per_cycle_j == pytest.approx(per_cycle * 1e-6)
    assert energy_per_inference_j(f401, 4e6) == pytest.approx(4e6 * per_cycle * 1e-6)
    assert energy_per_inference_j(f401, 4e6, cycles_per_instruction=1.5) == pytest.approx(6e6 * per_cycle * 1e-6)
    assert energy_per_inference_j(device("esp32"), 4e6) is None  # Xtensa: no Thumb-2 count stands for it


@pytest.mark.parametrize("name", ["binary-cnn", "toy-mlp", "binary-cnn-float"])
def test_sizes_do_not_depend_on_the_weights(tmp_path, name):
    """The placeholder of a spec exports the same arrays and arena as the same network with real (random) weights."""
    path = tmp_path / f"{name}.bnn"
    random_preset_file(name, path)
    real = generate(bnnfile.load(path))
    prediction = predict(preset(name))
    assert prediction.arena_bytes == real.arena_bytes
    # the same but for the pools' AND/OR masks, which the placeholder always has (random batch norms flip some)
    assert prediction.weight_bytes == real.weight_bytes
    assert prediction.flash_bytes == real.weight_bytes + RUNTIME["cortex-m4"][0]


def test_predictor_refuses_an_unknown_target():
    with pytest.raises(ValueError, match="no size estimate for target 'z80'"):
        predict(preset("binary-cnn"), "z80")


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, target",
    [
        ("binary-mlp", "cortex-m4"),
        ("binary-cnn", "cortex-m4"),
        ("binary-cnn", "cortex-m3"),
        ("binary-cnn", "cortex-m0"),
        ("binary-cnn-float", "cortex-m4"),
        ("vgg-small", "cortex-m4"),
    ],
)
def test_prediction_within_5_percent_of_the_measured_elf(tmp_path, name, target):
    """The preset with random weights, exported, built, run on QEMU: model flash and RAM (data + bss + the stack
    peak the harness measured) against the prediction from the spec alone. (toy-mlp's 2 KB are mostly runtime
    code, which the predictor estimates; binary-mlp-float's 80 MB of C take minutes to compile.)"""
    t = targets.TARGETS[target]
    missing = t.missing()
    if missing:
        pytest.skip(f"target {target}: {', '.join(missing)} not installed (see docs/DEPLOY.md for the packages)")
    path = tmp_path / f"{name}.bnn"
    random_preset_file(name, path)
    packed = bnnfile.load(path)
    library = export_c(packed, tmp_path / "c")
    inputs = np.random.default_rng(0).integers(0, 256, (3, *packed.input_shape), dtype=np.uint8)
    measured = measure(packed, library, tmp_path / "c", target, inputs).footprint
    predicted = predict(preset(name), target)
    assert predicted.flash_bytes == pytest.approx(measured.flash_bytes, rel=0.05)
    assert predicted.ram_bytes == pytest.approx(measured.ram_bytes, rel=0.05)
    assert predicted.flash_range[0] <= measured.flash_bytes <= predicted.flash_range[1]
    assert predicted.ram_range[0] <= measured.ram_bytes <= predicted.ram_range[1]


def test_design_page_shows_the_budget_against_the_chosen_device(tmp_path, monkeypatch):
    monkeypatch.setenv("BNN_WORKBENCH_RUNS", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/design.py").run()
    at.selectbox(key="design_preset").set_value("binary-mlp").run()
    at.sidebar.button[0].click().run()
    at.selectbox(key="design_device").set_value("microbit-v1").run()
    assert not at.exception, [e.value for e in at.exception]
    flash = predict(preset("binary-mlp"), "cortex-m0").flash_bytes
    over = flash - 256 * 1024
    message = f"flash does not fit BBC micro:bit v1 (nRF51822): over by {over / 1024:,.1f} KB"
    assert any(message in w.value for w in at.warning), [w.value for w in at.warning]
    at.selectbox(key="design_device").set_value("stm32f746").run()
    assert not at.error and not at.warning, [e.value for e in [*at.error, *at.warning]]
    line = f"flash: {predict(preset('binary-mlp')).flash_bytes:,} of 1,048,576 B"
    assert any(line in bar.proto.text for bar in at.get("progress"))


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A small binary MLP (784-64-64-10) trained one epoch on 640 images of the MNIST sample, in its own store."""
    import dataclasses

    from workbench.core.data import load_dataset
    from workbench.core.spec import default_training_spec
    from workbench.runs.store import RunStore
    from workbench.runs.worker import run_worker

    spec = preset("binary-mlp")
    spec["name"] = "small-mlp"
    spec["layers"][1]["units"] = spec["layers"][3]["units"] = 64
    runs_dir = tmp_path_factory.mktemp("export_runs")
    store = RunStore(runs_dir)
    run_id = store.create_run("digits", spec, dict(default_training_spec(), epochs=1, batch_size=64), "mnist-sample")
    full = load_dataset("mnist-sample")
    subset = dataclasses.replace(full, x_train=full.x_train[:640], y_train=full.y_train[:640])
    assert run_worker(run_id, runs_dir, dataset=subset) == "completed"
    return runs_dir, run_id, spec


@pytest.mark.slow
def test_export_page_measures_the_elf_beside_the_prediction(digits_run, monkeypatch):
    runs_dir, run_id, spec = digits_run
    missing = targets.TARGETS["cortex-m4"].missing()
    if missing:
        pytest.skip(f"target cortex-m4: {', '.join(missing)} not installed (see docs/DEPLOY.md for the packages)")
    monkeypatch.setenv("BNN_WORKBENCH_RUNS", str(runs_dir))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/export.py")
    at.query_params["run"] = run_id
    at.run()
    at.button(key="export_build_elf").click().run(timeout=300)
    assert not at.exception, [e.value for e in at.exception]
    table = next(frame.value for frame in at.dataframe if "predicted (B)" in frame.value.columns)
    flash = table.set_index("").loc["model flash"]
    predicted = int(flash["predicted (B)"].replace(",", ""))
    measured = int(flash["measured (B)"].replace(",", ""))
    prediction = predict(spec)
    assert predicted == prediction.flash_bytes
    # 7.7 KB of weights: the runtime's code (estimated) weighs, so the measured ELF is held to the stated range
    assert prediction.flash_range[0] <= measured <= prediction.flash_range[1]
    ram = table.set_index("").loc["model RAM"]
    assert prediction.ram_range[0] <= int(ram["measured (B)"].replace(",", "")) <= prediction.ram_range[1]


def test_export_page_says_how_to_get_cmsis_nn_when_it_is_absent(digits_run, monkeypatch, tmp_path):
    runs_dir, run_id, _ = digits_run
    monkeypatch.setenv("BNN_WORKBENCH_RUNS", str(runs_dir))
    monkeypatch.setenv("BNN_WORKBENCH_CMSIS_NN", str(tmp_path / "no-cmsis"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/export.py")
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    assert any("git clone https://github.com/ARM-software/CMSIS-NN" in info.value for info in at.info)
    assert not [b for b in at.button if b.key == "export_int8_bench"]
