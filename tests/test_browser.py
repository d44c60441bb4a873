"""The main flow in a real browser: design a small MLP, train it on bundled data while the live chart grows,
pause and resume it, reload the tab and find the run again, inspect it.

Starts the app with `bnn-workbench app` on a free port and a temporary run store, and drives Debian's
Chromium through Playwright's sync API. Each step is a function taking the page, and saves a screenshot
to screenshots/ (gitignored); later steps (Deploy, Export) append to STEPS.

Every wait follows the page's state (the app's script state, charts drawn, a text shown, the run store), never
a fixed pause, with limits generous enough for a machine whose cores are all busy: a minute for the app to
answer, several for anything that trains.
"""

import os
import re
import time

import pytest
from app_server import CHROMIUM, CHROMIUM_ARGS, ROOT, running_app

from workbench.runs.store import RunStore

pytestmark = pytest.mark.browser

SCREENSHOTS = ROOT / "screenshots"
WAIT_MS = 60_000  # the app answering a click or a rerun, on a loaded machine
TRAIN_WAIT_S = 180  # a training run showing progress (a worker process starting, importing torch, batches)
FINISH_WAIT_MS = 600_000  # the whole run of EPOCHS epochs
# About 670 batches of 32: the run must still be going when the test pauses it, right after its first batches
# show (seconds, even on a fast machine), yet end well within FINISH_WAIT_MS on a machine whose cores are all
# busy (1,350 batches of 16 took 10 minutes with two CPU burners and a second test suite beside it).
EPOCHS = 4
BATCH = 32

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None
else:
    # expect() has its own timeout (5 s), which page.set_default_timeout does not change
    expect.set_options(timeout=WAIT_MS)


def require_browser() -> None:
    """Skip, saying what is missing, where the real browser cannot run."""
    if sync_playwright is None:
        pytest.skip("playwright is not installed")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium package)")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(base URL, run store folder) of the app under test."""
    require_browser()
    runs_dir = tmp_path_factory.mktemp("browser_runs")
    with running_app(runs_dir) as url:
        yield url, runs_dir


@pytest.fixture(scope="module")
def page(app):
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_page(viewport={"width": 1400, "height": 1800})
        context.set_default_timeout(WAIT_MS)
        context.app_url, context.runs_dir = app
        yield context
        browser.close()


# ------------------------------------------------------------------ helpers

_IDLE = "() => document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState === 'notRunning'"
_DRAWN = (
    '() => !document.querySelector(\'[data-testid="stSkeleton"], [data-testid="stSpinner"]\')'
    " && [...document.querySelectorAll('.js-plotly-plot')]"
    ".every(p => p._fullLayout && p.querySelector('.main-svg'))"
)


def wait_idle(page, timeout: float = WAIT_MS) -> None:
    """Until the app's script run has ended (on a page with a timed fragment: between two of its runs)."""
    page.wait_for_function(_IDLE, timeout=timeout)


def settle(page, timeout: float = WAIT_MS) -> None:
    """Until the script run has ended, nothing is loading and every Plotly chart has drawn, then two frames."""
    wait_idle(page, timeout)
    page.wait_for_function(_DRAWN, timeout=timeout)
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


def shot(page, name: str) -> None:
    settle(page)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def until(condition, seconds: float, what: str, poll_ms: int = 500):
    """Poll ``condition()`` (the page or the store) until it returns something true; fails saying ``what``."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:.0f} s")
        time.sleep(poll_ms / 1000)


def main(page):
    return page.get_by_test_id("stMain")


def no_exception(page) -> None:
    assert page.get_by_test_id("stException").count() == 0, page.get_by_test_id("stException").first.inner_text()


def set_number(page, label: str, value, nth: int = 0) -> None:
    """Type a number and submit it; returns once the app has rerun with it.

    Typed only once the page's script run has ended: a run still rendering the page (a loaded machine) rebuilds
    the field with its old value. If a late rerun replaced the field anyway, it is typed again (three tries)."""
    field = main(page).get_by_label(label, exact=True).nth(nth)
    for attempt in range(3):
        wait_idle(page)
        field.fill(str(value))
        field.press("Enter")
        wait_idle(page)
        if field.input_value() == str(value) or attempt == 2:
            break
    expect(field).to_have_value(str(value))
    wait_idle(page)


def expect_selected(page, nth: int, text) -> None:
    """The nth selectbox of the page shows an option containing ``text`` (a string or a pattern)."""
    pattern = text if isinstance(text, re.Pattern) else re.compile(re.escape(text))
    expect(main(page).get_by_role("combobox").nth(nth)).to_have_value(pattern)


def table_fits(page, table) -> list[int]:
    """Assert that an st.dataframe shows all its columns without a sideways scrollbar; [content, shown] px."""
    expect(table).to_be_visible()
    settle(page)
    widths = table.locator(".dvn-scroller").first.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert widths[0] <= widths[1], f"the table scrolls sideways: {widths[0]} px of columns in {widths[1]} px"
    return widths


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
    return page.evaluate(
        "() => { const plots = [...document.querySelectorAll('.js-plotly-plot')];"
        " const title = p => ((p.layout && p.layout.title && p.layout.title.text) || '')"
        ".replace(/<[^>]+>/g, '');"
        " const loss = plots.find(p => title(p) === 'Loss');"
        " const x = loss ? loss.data[0].x : [];"
        " return x.length ? x[x.length - 1] : -1; }"
    )


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
    summary = main(page).get_by_role("heading", name="Summary")
    summary.scroll_into_view_if_needed()
    flow["summary_table_widths"] = table_fits(page, main(page).get_by_test_id("stDataFrame").first)
    shot(page, "02b_design_summary")


def look_until_grown(page, looks: list) -> None:
    """Append (batches recorded, last step drawn) once both are past the previous look (or positive, at first)."""

    def grown():
        batches, drawn = recorded(page)[0], loss_last_step(page)
        if batches > 0 and drawn > 0 and (not looks or batches > looks[-1][0] and drawn > looks[-1][1]):
            return batches, drawn
        return None

    looks.append(until(grown, TRAIN_WAIT_S, f"the live chart growing past {looks[-1:] or 'nothing'}", 1000))


def pause_and_resume(page, run: str) -> tuple[int, int]:
    """Pause holds the run (no batches recorded while paused), Resume carries it on; returns the paused look."""
    store = RunStore(page.runs_dir)
    main(page).get_by_role("button", name="Pause").click()
    expect(main(page).get_by_text(re.compile(rf"run {run} · paused"))).to_be_visible()
    final = store.last_step(run)  # the worker writes its buffered rows before it says it is paused
    until(lambda: recorded(page)[0] == final, 60, f"the panel showing the {final} batches written before the pause")
    # batches are counted from the run's first one, in the first epoch too
    expect(main(page).get_by_text(re.compile(rf"epoch \d+ of {EPOCHS}, batch \d+ of \d+"))).to_be_visible()
    # the chart of that tick may still be drawing: its last step must hold over two of the panel's ticks
    drawn = [loss_last_step(page)]
    until(lambda: drawn.append(loss_last_step(page)) or drawn[-1] == drawn[-2], 60, "the paused chart settling", 1500)
    paused_at = (final, drawn[-1])
    shot(page, "03b_train_paused")
    time.sleep(2.5)  # a window in which a running worker would have written more batches
    assert store.last_step(run) == final, "the worker went on while paused"
    assert (recorded(page)[0], loss_last_step(page)) == paused_at, "the panel went on while paused"
    main(page).get_by_role("button", name="Resume").click()
    expect(main(page).get_by_text(re.compile(rf"run {run} · (running|completed)"))).to_be_visible()
    return paused_at


def step_train(page, flow):
    """Train on the bundled MNIST sample: the page scrolls up to the new run, the live chart grows, stands
    still while paused, grows again; batches are counted from the first epoch on."""
    open_page(page, "Train")
    expect(main(page).get_by_text("Network binary-mlp from Design")).to_be_visible()
    set_number(page, "epochs", EPOCHS)
    set_number(page, "batch size", BATCH)
    page.set_viewport_size({"width": 1400, "height": 900})  # a laptop screen: Start is below the fold
    start = main(page).get_by_role("button", name="Start training")
    start.scroll_into_view_if_needed()
    expect(page.get_by_role("heading", name="Train", level=1)).not_to_be_in_viewport()  # the top is out of sight
    start.click()
    expect(main(page).get_by_text(re.compile(r"run \S+ · (running|queued)"))).to_be_visible()
    expect(page.locator(".st-key-train_live h3").first).to_be_in_viewport()  # scrolled up to the live panel
    page.set_viewport_size({"width": 1400, "height": 1800})
    flow["run_id"] = re.search(r"run=([\w-]+)", page.url).group(1)
    looks = []
    look_until_grown(page, looks)
    looks.append(pause_and_resume(page, flow["run_id"]))  # at once: a short run must not end first
    look_until_grown(page, looks)  # past the paused look: training went on after Resume
    shot(page, "03_train_running")
    flow["looks"] = looks
    no_exception(page)


def step_reload(page, flow):
    """A reloaded tab re-attaches to the run in the URL and follows it to the end; then it links to Inspect
    and Deploy."""
    page.reload()
    expect(main(page).get_by_text(re.compile(rf"run {flow['run_id']} · "))).to_be_visible()
    expect(main(page).get_by_text(re.compile(rf"run {flow['run_id']} · completed"))).to_be_visible(
        timeout=FINISH_WAIT_MS
    )
    expect(main(page).get_by_text(re.compile(rf"\d+ batches and {EPOCHS} epochs recorded"))).to_be_visible()
    expect(main(page).get_by_label("epochs", exact=True)).to_have_value(str(EPOCHS))  # the settings' draft
    expect(main(page).get_by_role("link", name="Deploy this run")).to_be_visible()
    no_exception(page)
    shot(page, "04_train_completed")


def step_inspect(page, flow):
    """Train's link opens Inspect on the run just trained."""
    main(page).get_by_role("link", name="Inspect this run").click()
    expect(page.get_by_role("heading", name="Inspect", level=1)).to_be_visible()
    expect_selected(page, 0, flow["run_id"])
    expect(main(page).get_by_text("test accuracy")).to_be_visible()
    expect(main(page).get_by_text(re.compile(r"Misclassified: \d+ of 1000"))).to_be_visible()
    settle(page)
    assert main(page).locator(".js-plotly-plot").count() >= 4
    no_exception(page)
    shot(page, "05_inspect")


def step_runs(page, flow):
    """The runs table fits the page beside the sidebar: no sideways scrolling, accuracies right after status."""
    open_page(page, "Runs")
    flow["runs_table_widths"] = table_fits(page, main(page).get_by_test_id("stDataFrame").first)
    no_exception(page)
    shot(page, "06_runs")


STEPS = [step_home, step_design, step_train, step_reload, step_inspect, step_runs]


def run_steps(page, steps, flow: dict) -> None:
    """Each step in turn, a screenshot of the page where one fails; prints how long each took (pytest -s)."""
    seconds = flow.setdefault("seconds", {})
    for step in steps:
        started = time.monotonic()
        try:
            step(page, flow)
        except BaseException:
            page.screenshot(path=str(SCREENSHOTS / f"failed_{step.__name__}.png"))
            raise
        finally:
            seconds[step.__name__] = round(time.monotonic() - started, 1)
            print(f"{step.__name__}: {seconds[step.__name__]} s", flush=True)


def test_main_flow(page):
    flow = {}
    run_steps(page, STEPS, flow)
    assert flow["looks"][2][0] > flow["looks"][1][0] >= flow["looks"][0][0]
