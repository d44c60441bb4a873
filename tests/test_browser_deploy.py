"""Deploy and Export in a real browser: a small MLP trained by the library on the MNIST sample (1 epoch) is
packed and run by the engine (agreement with torch, measured speed, a digit drawn with the mouse), then
downloaded from Export and run again here from the downloaded .bnn file.

Reuses the app engineer's helpers in tests/test_browser.py (Chromium path and flags, waiting for the app,
screenshots); starts its own app on a run store that holds the trained run.
"""
import re

import numpy as np
import pytest
from app_server import running_app

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

from test_browser import (CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, WAIT_MS, main,
                          no_exception, open_page, require_browser, shot)

from workbench.deploy import bnnfile
from workbench.core.data import load_dataset
from workbench.deploy.engine import Engine, raw_inputs
from workbench.runs.trained import pack_run
from workbench.core.presets import preset
from workbench.core.spec import default_training_spec
from workbench.runs.store import RunStore
from workbench.runs.worker import run_worker


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(runs dir, run id): a 64-64 binary MLP, 1 epoch on the MNIST sample."""
    require_browser()
    runs_dir = tmp_path_factory.mktemp("browser_deploy_runs")
    spec = preset("binary-mlp")
    spec["name"] = "small-mlp"
    spec["layers"][1]["units"] = spec["layers"][3]["units"] = 64
    store = RunStore(runs_dir)
    run_id = store.create_run("small MLP", spec, dict(default_training_spec(), epochs=1, batch_size=64), "mnist-sample")
    assert run_worker(run_id, runs_dir) == "completed"
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
    page.goto(f"{page.app_url}/deploy")
    navigation = page.get_by_test_id("stSidebarNav")
    expect(navigation.get_by_role("link", name="Home")).to_be_visible()
    assert navigation.get_by_role("link", name="app").count() == 0
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
    canvas = main(page).locator("canvas").last
    expect(canvas).to_be_visible()
    page.wait_for_timeout(1500)  # let Fabric.js attach its mouse handlers
    box = canvas.bounding_box()
    x = box["x"] + box["width"] / 2
    page.mouse.move(x, box["y"] + box["height"] * 0.15)
    page.mouse.down()
    for step in range(1, 21):
        page.mouse.move(x + 2 * step % 3, box["y"] + box["height"] * (0.15 + 0.7 * step / 20), steps=2)
        page.wait_for_timeout(20)
    page.mouse.up()
    expect(main(page).get_by_text(re.compile(r"Prediction: \d \("))).to_be_visible()
    expect(main(page).get_by_text("what the engine sees")).to_be_visible()
    flow["drawn_prediction"] = main(page).get_by_text(re.compile(r"Prediction: \d \(")).first.text_content()
    no_exception(page)
    canvas.scroll_into_view_if_needed()
    shot(page, "13_deploy_draw")


def step_export(page, flow):
    open_page(page, "Export")
    expect(main(page).get_by_text(re.compile(r"Round trip OK"))).to_be_visible()
    with page.expect_download() as download:
        main(page).get_by_role("button", name=re.compile(r"\.bnn file \(")).click()
    flow["bnn_path"] = download.value.path()
    flow["bnn_name"] = download.value.suggested_filename
    no_exception(page)
    shot(page, "14_export")


def test_deploy_and_export(page, trained):
    runs_dir, run_id = trained
    flow = {}
    for step in (step_deploy, step_speed, step_draw, step_export):
        try:
            step(page, flow)
        except BaseException:
            page.screenshot(path=str(SCREENSHOTS / f"failed_{step.__name__}.png"))
            raise
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
