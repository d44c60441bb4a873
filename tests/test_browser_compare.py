"""Binary vs float in a real browser, counting clicks and seconds from a cold start (the server process spawned):

1. an empty store: Home, "Binary vs float" in the sidebar, "Train binary + float twin" (2 clicks), until both
   runs' accuracy curves are drawn and growing, live; then "Stop both".
2. a pair trained before class (by the library, before the app starts): Home, "Binary vs float" (1 click),
   until the whole view is there (sizes, latency, weight maps); then a digit drawn with the mouse is
   classified by both networks.

The numbers are printed (pytest -s) and the screenshots land in screenshots/; nothing asserts a timing.
"""

import dataclasses
import re
import time

import pytest
from app_server import app_process
from test_app_deploy_export import small_mlp
from test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENSHOTS,
    TRAIN_WAIT_S,
    WAIT_MS,
    main,
    no_exception,
    open_page,
    require_browser,
    shot,
    until,
    wait_idle,
)

from workbench.core.data import load_dataset
from workbench.core.spec import default_training_spec, float_twin
from workbench.runs.store import ACTIVE, RunStore
from workbench.runs.worker import run_worker

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

TITLE = "Binary vs float"
# (trace name, points) of the compare chart, as Plotly holds it in the browser
_CURVES = """() => {
    const plot = [...document.querySelectorAll('.js-plotly-plot')]
        .find(p => (p.layout?.title?.text || '').replace(/<[^>]+>/g, '').startsWith('Accuracy: binary vs float'));
    return plot ? plot.data.map(trace => [trace.name, trace.x.length]) : null;
}"""


def batch_points(page) -> dict[str, int]:
    """Points of each side's batch-accuracy curve now drawn in the browser."""
    traces = page.evaluate(_CURVES) or []
    return {name.split(" · ")[0]: count for name, count in traces if name.endswith("batch accuracy")}


def browse(runs_dir, steps) -> dict:
    """Spawn the app on ``runs_dir`` (the cold start), open Home in Chromium and run ``steps(page, t0)``."""
    SCREENSHOTS.mkdir(exist_ok=True)
    started = time.monotonic()
    with app_process(runs_dir) as (url, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2600})
        page.set_default_timeout(WAIT_MS)
        try:
            page.goto(url)
            expect(page.get_by_role("heading", name="BNN Workbench", level=1)).to_be_visible()  # Home
            return steps(page, started)
        except BaseException:
            page.screenshot(path=str(SCREENSHOTS / "failed_compare.png"))
            raise
        finally:
            browser.close()


def test_one_click_trains_both_live_from_a_cold_start(tmp_path):
    require_browser()

    def steps(page, started):
        open_page(page, TITLE)  # click 1
        main(page).get_by_role("button", name="Train binary + float twin").click()  # click 2
        first = until(
            lambda: (
                (points := batch_points(page))
                and min(points.get(s, 0) for s in ("binary", "float twin")) >= 2
                and points
            ),
            TRAIN_WAIT_S,
            "both batch-accuracy curves drawn",
        )
        live_after = time.monotonic() - started
        later = until(
            lambda: (points := batch_points(page)) and all(points[s] > first[s] for s in first) and points,
            TRAIN_WAIT_S,
            "both curves growing",
        )
        no_exception(page)
        shot(page, "31_compare_live")
        runs = store.list_runs()
        assert {r.network_spec["name"] for r in runs} == {"binary-mlp", "binary-mlp (float twin)"}
        main(page).get_by_role("button", name="Stop both").click()
        until(lambda: not any(store.get_run(r.id).status in ACTIVE for r in runs), 120, "both runs stopped")
        return {"clicks": 2, "seconds_to_live": round(live_after, 1), "points": (first, later)}

    store = RunStore(tmp_path)
    flow = browse(tmp_path, steps)
    print(f"cold start to both curves live: {flow['clicks']} clicks, {flow['seconds_to_live']} s", flush=True)
    assert {r.status for r in store.list_runs()} <= {"stopped", "completed"}


@pytest.fixture
def trained_before_class(tmp_path):
    """A small binary MLP and its float twin, 1 epoch on a slice of the MNIST sample, as if from the CLI."""
    sample = load_dataset("mnist-sample")
    subset = dataclasses.replace(sample, x_train=sample.x_train[:1280], y_train=sample.y_train[:1280])
    training = dict(default_training_spec(), epochs=1, batch_size=64)
    store = RunStore(tmp_path)
    ids = [store.create_run(None, spec, training, "mnist-sample") for spec in (small_mlp(), float_twin(small_mlp()))]
    for run_id in ids:
        assert run_worker(run_id, tmp_path, dataset=subset) == "completed"
    return tmp_path, ids


def draw_seven(page) -> None:
    """A '7' with the mouse: a bar along the top, then a stroke down to the bottom left."""
    canvas = main(page).locator("canvas.upper-canvas")  # Fabric's drawing surface, not a dataframe's canvas
    expect(canvas).to_be_visible()
    canvas.scroll_into_view_if_needed()
    wait_idle(page)
    box = canvas.bounding_box()
    at = [(0.25, 0.2), (0.75, 0.2), (0.62, 0.45), (0.5, 0.65), (0.42, 0.85)]
    page.mouse.move(box["x"] + box["width"] * at[0][0], box["y"] + box["height"] * at[0][1])
    page.mouse.down()
    for fx, fy in at[1:]:
        page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy, steps=8)
    page.mouse.up()


def test_a_pair_trained_before_class_opens_with_one_click(trained_before_class):
    require_browser()
    runs_dir, (binary_id, twin_id) = trained_before_class

    def steps(page, started):
        open_page(page, TITLE)  # click 1
        expect(main(page).get_by_text(re.compile(r"File size: the \.bnn is [\d.]+x smaller"))).to_be_visible()
        expect(main(page).get_by_text(re.compile(r"Latency, batch 1, 1 thread"))).to_be_visible()
        expect(main(page).get_by_text("First layer, neuron by neuron", exact=False)).to_be_visible()
        shown_after = time.monotonic() - started
        assert binary_id in page.url and twin_id in page.url
        no_exception(page)
        shot(page, "32_compare_pair")
        draw_seven(page)
        for side in ("binary \\(XNOR engine\\)", "float twin \\(torch\\)"):
            expect(main(page).get_by_text(re.compile(rf"{side}: Prediction: \d \("))).to_be_visible()
        no_exception(page)
        main(page).get_by_text("what both networks see").scroll_into_view_if_needed()
        shot(page, "33_compare_drawn")
        return {"clicks": 1, "seconds_to_view": round(shown_after, 1)}

    flow = browse(runs_dir, steps)
    print(f"cold start to a trained pair's full view: {flow['clicks']} click, {flow['seconds_to_view']} s", flush=True)
