"""The main flow in a real browser: design a small MLP, train it on bundled data while the live chart grows,
pause and resume it, reload the tab and find the run again, inspect it.

Starts the app with `bnn-workbench app` on a free port and a temporary run store, and drives Debian's
Chromium through Playwright's sync API. Each step is a function taking the page, and saves a screenshot
to screenshots/ (gitignored); later steps (Deploy, Export) append to STEPS.
"""
import os
import re
import time

import pytest
from app_server import ROOT, running_app

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "screenshots"
WAIT_MS = 60_000
EPOCHS = 10  # about 3,400 batches of 16: the run must still be going when the test looks, pauses and resumes

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None


def require_browser() -> None:
    """Skip, saying what is missing, where the real browser cannot run."""
    if sync_playwright is None:
        pytest.skip("playwright is not installed")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium package)")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    require_browser()
    runs_dir = tmp_path_factory.mktemp("browser_runs")
    with running_app(runs_dir) as url:
        yield url


@pytest.fixture(scope="module")
def page(app_url):
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_page(viewport={"width": 1400, "height": 1800})
        context.set_default_timeout(WAIT_MS)
        context.app_url = app_url
        yield context
        browser.close()


# ------------------------------------------------------------------ helpers


def shot(page, name: str) -> None:
    page.wait_for_timeout(500)  # let charts finish drawing
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def main(page):
    return page.get_by_test_id("stMain")


def no_exception(page) -> None:
    assert page.get_by_test_id("stException").count() == 0, page.get_by_test_id("stException").first.inner_text()


def set_number(page, label: str, value, nth: int = 0) -> None:
    field = main(page).get_by_label(label, exact=True).nth(nth)
    field.fill(str(value))
    field.press("Enter")
    page.wait_for_timeout(400)


def open_page(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", name=title, level=1)).to_be_visible()


def recorded(page) -> tuple[int, int]:
    """(batches, epochs) from the live panel's caption."""
    text = main(page).get_by_text(re.compile(r"\d+ batches and \d+ epochs recorded")).first.inner_text()
    batches, epochs = re.findall(r"\d+", text)[:2]
    return int(batches), int(epochs)


def loss_last_step(page) -> int:
    """The newest step drawn in the first trace of the live loss chart, as Plotly holds it in the browser.

    (Not the number of points: long curves are averaged down to a bounded number of points.)"""
    return page.evaluate("() => { const plots = [...document.querySelectorAll('.js-plotly-plot')];"
                         " const title = p => ((p.layout && p.layout.title && p.layout.title.text) || '').replace(/<[^>]+>/g, '');"
                         " const loss = plots.find(p => title(p) === 'Loss');"
                         " const x = loss ? loss.data[0].x : [];"
                         " return x.length ? x[x.length - 1] : -1; }")


# ------------------------------------------------------------------ steps


def step_home(page, flow):
    started = time.monotonic()
    page.goto(page.app_url)
    expect(page.get_by_role("heading", name="BNN Workbench", level=1)).to_be_visible()
    expect(main(page).locator(".js-plotly-plot").first).to_be_visible()
    flow["home_seconds"] = time.monotonic() - started
    no_exception(page)
    shot(page, "01_home")


def step_design(page, flow):
    """From Home's preset button to Design; narrow the MLP to 64 units, see the summary follow."""
    main(page).get_by_role("button", name="Design").first.click()  # binary-mlp is the first preset
    expect(page.get_by_role("heading", name="Design", level=1)).to_be_visible()
    for nth in (0, 1):
        set_number(page, "units", 64, nth)
    expect(main(page).get_by_text("Valid: 7 layers")).to_be_visible()
    expect(main(page).get_by_text("→ [64]").first).to_be_visible()
    set_number(page, "units", -4, 0)
    expect(main(page).get_by_text("layer 1 (dense): field 'units' must be a positive integer, got -4")).to_be_visible()
    set_number(page, "units", 64, 0)
    expect(main(page).get_by_text("Valid: 7 layers")).to_be_visible()
    no_exception(page)
    shot(page, "02_design")


def look_until_grown(page, looks: list) -> None:
    """Append (batches recorded, last step drawn) once both are past the previous look (or positive, at first)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        batches, drawn = recorded(page)[0], loss_last_step(page)
        if batches > 0 and drawn > 0 and (not looks or batches > looks[-1][0] and drawn > looks[-1][1]):
            looks.append((batches, drawn))
            return
        page.wait_for_timeout(1200)
    raise AssertionError(f"the live chart did not grow while training: {looks}")


def pause_and_resume(page, run: str) -> tuple[int, int]:
    """Pause holds the run (no batches recorded while paused), Resume carries it on; returns the paused look."""
    main(page).get_by_role("button", name="Pause").click()
    expect(main(page).get_by_text(re.compile(rf"run {run} · paused"))).to_be_visible()
    page.wait_for_timeout(1500)  # the worker writes its buffered rows as it pauses; the panel shows them
    paused_at = (recorded(page)[0], loss_last_step(page))
    shot(page, "03b_train_paused")
    page.wait_for_timeout(2500)
    assert (recorded(page)[0], loss_last_step(page)) == paused_at, "the run went on while paused"
    main(page).get_by_role("button", name="Resume").click()
    expect(main(page).get_by_text(re.compile(rf"run {run} · (running|completed)"))).to_be_visible()
    return paused_at


def step_train(page, flow):
    """Train on the bundled MNIST sample: the live chart grows, stands still while paused, grows again."""
    open_page(page, "Train")
    expect(main(page).get_by_text("Network binary-mlp from Design")).to_be_visible()
    set_number(page, "epochs", EPOCHS)
    set_number(page, "batch size", 16)
    main(page).get_by_role("button", name="Start training").click()
    expect(main(page).get_by_text(re.compile(r"run \S+ · running"))).to_be_visible()
    flow["run_id"] = re.search(r"run=([\w-]+)", page.url).group(1)
    looks = []
    look_until_grown(page, looks)
    shot(page, "03_train_running")
    looks.append(pause_and_resume(page, flow["run_id"]))
    look_until_grown(page, looks)  # past the paused look: training went on after Resume
    flow["looks"] = looks
    no_exception(page)


def step_reload(page, flow):
    """A reloaded tab re-attaches to the run in the URL and follows it to the end."""
    page.reload()
    expect(main(page).get_by_text(re.compile(rf"run {flow['run_id']} · "))).to_be_visible()
    expect(main(page).get_by_text(re.compile(rf"run {flow['run_id']} · completed"))).to_be_visible(timeout=300_000)
    expect(main(page).get_by_text(re.compile(rf"\d+ batches and {EPOCHS} epochs recorded"))).to_be_visible()
    expect(main(page).get_by_label("epochs", exact=True)).to_have_value(str(EPOCHS))  # the settings' draft
    no_exception(page)
    shot(page, "04_train_completed")


def step_inspect(page, flow):
    open_page(page, "Inspect")
    expect(main(page).get_by_text("test accuracy")).to_be_visible()
    expect(main(page).get_by_text(re.compile(r"Misclassified: \d+ of 1000"))).to_be_visible()
    assert main(page).locator(".js-plotly-plot").count() >= 4
    no_exception(page)
    shot(page, "05_inspect")


STEPS = [step_home, step_design, step_train, step_reload, step_inspect]


def test_main_flow(page):
    flow = {}
    for step in STEPS:
        try:
            step(page, flow)
        except BaseException:
            page.screenshot(path=str(SCREENSHOTS / f"failed_{step.__name__}.png"))
            raise
    assert flow["looks"][2][0] > flow["looks"][1][0] >= flow["looks"][0][0]
