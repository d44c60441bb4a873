"""Deploy and Export in a real browser: a small MLP trained by the library on the MNIST sample (1 epoch) is
packed and run by the engine (agreement with torch, measured speed, a digit drawn with the mouse), then
downloaded from Export and run again here from the downloaded .bnn file. The run chosen on Deploy stays
chosen on Export and Inspect, although two small CNNs (binary and float) are newer; Inspect then shows
their conv filters.

Reuses the app engineer's helpers in tests/test_browser.py (Chromium path and flags, waiting for the app,
screenshots); starts its own app on a run store that holds the trained run.
"""

import dataclasses
import re

import numpy as np
import pytest
from app_server import running_app

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

from test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENSHOTS,
    WAIT_MS,
    expect_selected,
    main,
    no_exception,
    open_page,
    require_browser,
    run_steps,
    settle,
    shot,
    wait_idle,
)

from workbench.core.data import load_dataset
from workbench.core.presets import preset
from workbench.core.spec import default_training_spec, float_twin
from workbench.deploy import bnnfile
from workbench.deploy.engine import Engine, raw_inputs
from workbench.runs.store import RunStore
from workbench.runs.trained import pack_run
from workbench.runs.worker import run_worker


def small_cnn() -> dict:
    """Two 3 x 3 binary convs (8 and 16 filters) and a binary dense layer: quick to train on a slice of MNIST."""
    sign = {"name": "ste_sign", "clip": 1.0}
    conv = {"type": "conv2d", "kernel_size": 3, "padding": "valid", "kernel_quantizer": sign, "use_bias": False}
    return {
        "name": "small-cnn",
        "input_shape": [1, 28, 28],
        "num_classes": 10,
        "layers": [
            dict(conv, filters=8, input_quantizer=None),
            {"type": "max_pool", "pool_size": 2},
            {"type": "batch_norm"},
            dict(conv, filters=16, input_quantizer=sign),
            {"type": "max_pool", "pool_size": 2},
            {"type": "batch_norm"},
            {"type": "flatten"},
            {"type": "dense", "units": 10, "input_quantizer": sign, "kernel_quantizer": sign, "use_bias": False},
            {"type": "batch_norm"},
        ],
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(runs dir, run id): a 64-64 binary MLP, 1 epoch on the MNIST sample; then (newer) a small binary CNN
    and its float twin, 1 epoch on 640 of its images."""
    require_browser()
    runs_dir = tmp_path_factory.mktemp("browser_deploy_runs")
    spec = preset("binary-mlp")
    spec["name"] = "small-mlp"
    spec["layers"][1]["units"] = spec["layers"][3]["units"] = 64
    store = RunStore(runs_dir)
    training = dict(default_training_spec(), epochs=1, batch_size=64)
    run_id = store.create_run("small MLP", spec, training, "mnist-sample")
    assert run_worker(run_id, runs_dir) == "completed"
    full = load_dataset("mnist-sample")
    subset = dataclasses.replace(full, x_train=full.x_train[:640], y_train=full.y_train[:640])
    for name, network in (("binary CNN", small_cnn()), ("float CNN", float_twin(small_cnn()))):
        cnn = store.create_run(name, network, training, "mnist-sample")
        assert run_worker(cnn, runs_dir, dataset=subset) == "completed"
    return runs_dir, run_id


@pytest.fixture(scope="module")
def page(trained):
    runs_dir, run_id = trained
    SCREENSHOTS.mkdir(exist_ok=True)
    with running_app(runs_dir) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 2400}, accept_downloads=True)
        tab.set_default_timeout(WAIT_MS)
        tab.app_url, tab.run_id = url, run_id
        yield tab
        browser.close()


def metric(page, label: str) -> str:
    """The value of the st.metric with this label."""
    box = main(page).get_by_test_id("stMetric").filter(has=page.get_by_text(label, exact=True)).first
    return box.get_by_test_id("stMetricValue").inner_text()


def step_deploy(page, flow):
    # A deep link as the server's first request must still get the app's navigation (titled pages),
    # not Streamlit's automatic pages/ menu (file names, no entry script).
    # The run in the URL wins over the newest (a CNN); opened again from the sidebar, Deploy keeps it.
    page.goto(f"{page.app_url}/deploy?run={page.run_id}")
    navigation = page.get_by_test_id("stSidebarNav")
    expect(navigation.get_by_role("link", name="Home")).to_be_visible()
    assert navigation.get_by_role("link", name="app").count() == 0
    expect(main(page).get_by_text(re.compile(rf"Packed run {page.run_id}"))).to_be_visible()
    open_page(page, "Deploy")
    expect(main(page).get_by_text(re.compile(rf"Packed run {page.run_id}"))).to_be_visible()
    expect(main(page).get_by_text("engine accuracy", exact=True)).to_be_visible()
    flow["disagreements"] = metric(page, "disagreements")
    flow["engine_accuracy"] = metric(page, "engine accuracy")
    expect(main(page).get_by_test_id("stDataFrame").first).to_be_visible()  # per-layer bit agreement
    expect(main(page).get_by_text(re.compile(r"Bytes per layer: float32 vs packed"))).to_be_visible()
    no_exception(page)
    shot(page, "11_deploy")


def step_speed(page, flow):
    main(page).get_by_role("button", name="Measure").click()
    expect(main(page).get_by_text(re.compile(r"Latency per batch of 64, 1 thread"))).to_be_visible()
    expect(main(page).get_by_test_id("stDataFrame").last).to_be_visible()
    no_exception(page)
    main(page).get_by_role("heading", name="Speed").scroll_into_view_if_needed()
    shot(page, "12_deploy_speed")


def step_draw(page, flow):
    """Draw a '1' with the mouse on the canvas and see the engine's prediction."""
    main(page).get_by_text("Draw", exact=True).click()
    # Fabric.js adds its upper canvas when it attaches its mouse handlers; any other canvas on the page (a
    # dataframe's) is not the drawing surface
    canvas = main(page).locator("canvas.upper-canvas")
    expect(canvas).to_be_visible(timeout=WAIT_MS)
    wait_idle(page)  # the page no longer moves: the box below is where the canvas stays
    box = canvas.bounding_box()
    x = box["x"] + box["width"] / 2
    page.mouse.move(x, box["y"] + box["height"] * 0.15)
    page.mouse.down()
    for step in range(1, 21):
        page.mouse.move(x + 2 * step % 3, box["y"] + box["height"] * (0.15 + 0.7 * step / 20), steps=2)
    page.mouse.up()
    prediction = main(page).get_by_text(re.compile(r"Prediction: \d \("))
    expect(prediction).to_be_visible(timeout=2 * WAIT_MS)
    expect(main(page).get_by_text("what the engine sees")).to_be_visible()
    flow["drawn_prediction"] = prediction.first.text_content()
    no_exception(page)
    canvas.scroll_into_view_if_needed()
    shot(page, "13_deploy_draw")


def step_export(page, flow):
    open_page(page, "Export")  # still the run chosen on Deploy, not the newest
    expect_selected(page, 0, page.run_id)
    expect(main(page).get_by_text(re.compile(r"Round trip OK"))).to_be_visible()
    with page.expect_download() as download:
        main(page).get_by_role("button", name=re.compile(r"\.bnn file \(")).click()
    flow["bnn_path"] = download.value.path()
    flow["bnn_name"] = download.value.suggested_filename
    no_exception(page)
    shot(page, "14_export")


def choose(page, nth: int, option) -> None:
    """Pick ``option`` (a label or pattern) in the nth selectbox of the page and wait for the rerun."""
    main(page).get_by_test_id("stSelectbox").nth(nth).click()
    page.get_by_role("option", name=option).click()
    expect_selected(page, nth, option)
    settle(page)


def step_inspect_cnns(page, flow):
    """Inspect opens on the run chosen before; a binary conv filter is drawn as k x k tiles with their signs,
    and a float run shows its weights, confusions and mistakes."""
    open_page(page, "Inspect")
    expect_selected(page, 0, page.run_id)
    choose(page, 0, re.compile("binary CNN"))
    choose(page, 2, "3_conv2d")
    expect(main(page).get_by_text("one 3 x 3 tile per input channel (8)", exact=False)).to_be_visible()
    main(page).get_by_role("heading", name="One neuron or filter").scroll_into_view_if_needed()
    no_exception(page)
    shot(page, "15_inspect_binary_filter")
    choose(page, 0, re.compile("float CNN"))
    expect(main(page).get_by_text(re.compile(r"Weights of 0_conv2d, epoch 1"))).to_be_visible()
    expect(main(page).get_by_text(re.compile(r"Misclassified: \d+ of 1000"))).to_be_visible()
    no_exception(page)
    shot(page, "16_inspect_float")
    choose(page, 2, "4_conv2d")
    main(page).get_by_role("heading", name="One neuron or filter").scroll_into_view_if_needed()
    shot(page, "17_inspect_float_filter")


def test_deploy_and_export(page, trained):
    runs_dir, run_id = trained
    flow = {}
    run_steps(page, (step_deploy, step_speed, step_draw, step_export, step_inspect_cnns), flow)
    assert re.fullmatch(r"\d+ of 200", flow["disagreements"]), flow["disagreements"]
    assert int(flow["disagreements"].split()[0]) <= 2  # near-ties in float32 may flip a prediction, no more
    assert flow["bnn_name"] == f"small-mlp-{run_id}.bnn"
    downloaded = bnnfile.load(flow["bnn_path"])  # checks magic, layout and SHA-256
    dataset = load_dataset("mnist-sample")
    u = raw_inputs(dataset.x_test[:200], dataset.preprocessing)
    packed_here = pack_run(run_id, store=RunStore(runs_dir))
    logits = Engine(downloaded).logits(u)
    assert np.array_equal(logits, Engine(packed_here).logits(u))
    assert flow["engine_accuracy"] == f"{(logits.argmax(axis=1) == dataset.y_test[:200]).mean():.2%}"
