"""The playground in a real browser: open a prepared link, play, see both boundaries move, pause, step one epoch,
reload and find the same run at the same epoch.

Screenshots go to screenshots/ (gitignored).
"""

import os
import re
import time

import pytest
from app_server import CHROMIUM, CHROMIUM_ARGS, ROOT, running_app

pytestmark = pytest.mark.browser

SCREENSHOTS = ROOT / "screenshots"
WAIT_MS = 90_000
LINK = "/playground?dataset=moons&layers=6,6&points=300&seed=7&noise=10&epoch=0"

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    if sync_playwright is None:
        pytest.skip("playwright is not installed")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium package)")
    SCREENSHOTS.mkdir(exist_ok=True)
    with running_app(tmp_path_factory.mktemp("playground_runs")) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 2000})
        tab.set_default_timeout(WAIT_MS)
        tab.app_url = url
        yield tab
        browser.close()


# The live view's root inside its component's shadow root (playground_live.js draws everything there).
LIVE_ROOT_JS = """() => {
  for (const host of document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')) {
    const root = host.shadowRoot && host.shadowRoot.querySelector('.pg-live');
    if (root) return root;
  }
  return null;
}"""

# How many new boundaries each network's canvas has painted (its counter), without reading pixels: cheap enough
# to poll every few milliseconds.
DRAWN_JS = f"""() => {{
  const root = ({LIVE_ROOT_JS})();
  if (!root) return {{}};
  return {{bnn: Number(root.dataset.drawnBnn || 0), float: Number(root.dataset.drawnFloat || 0)}};
}}"""

# The two boundary maps as the page shows them: network -> the canvas's pixels as a PNG data URL (other pixels:
# another picture), for the networks painted at least once.
BOUNDARIES_JS = f"""() => {{
  const root = ({LIVE_ROOT_JS})();
  const out = {{}};
  if (!root) return out;
  for (const kind of ['bnn', 'float']) {{
    const canvas = root.querySelector('.pg-net[data-net="' + kind + '"] canvas');
    if (canvas && Number(root.dataset['drawn' + kind[0].toUpperCase() + kind.slice(1)] || 0) > 0) {{
      out[kind] = canvas.toDataURL();
    }}
  }}
  return out;
}}"""


def boundaries(page) -> dict:
    return page.evaluate(BOUNDARIES_JS)


def epoch(page) -> int:
    text = page.get_by_role("heading", name=re.compile(r"^Epoch \d+")).first.inner_text()
    return int(re.search(r"\d+", text).group())


def shot(page, name: str) -> None:
    page.wait_for_timeout(500)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def button(page, key: str):
    return page.locator(f".st-key-{key} button").first  # a button with a help tooltip nests a second one


def no_exception(page) -> None:
    assert page.get_by_test_id("stException").count() == 0, page.get_by_test_id("stException").first.inner_text()


def wait_for_boundaries(page) -> dict:
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        found = boundaries(page)
        if set(found) == {"bnn", "float"}:
            return found
        page.wait_for_timeout(200)
    raise AssertionError("the two decision boundaries were not drawn")


def settled(page) -> tuple[int, dict]:
    """(epoch, boundaries) once two looks a second apart agree (no frame in flight)."""
    previous = None
    for _ in range(30):
        now = (epoch(page), wait_for_boundaries(page))
        if now == previous:
            return now
        previous = now
        page.wait_for_timeout(1000)
    raise AssertionError(f"the page did not settle: {previous}")


def test_link_play_pause_step_reload(page):
    page.goto(page.app_url + LINK)
    expect(page.get_by_role("heading", name="Playground", level=1)).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_role("heading", name="Epoch 0")).to_be_visible(timeout=WAIT_MS)
    first = wait_for_boundaries(page)
    no_exception(page)
    shot(page, "21_playground_opened")

    button(page, "pg_play").click()
    expect(button(page, "pg_play")).to_contain_text("Pause", timeout=WAIT_MS)
    deadline = time.monotonic() + 120
    while epoch(page) < 20 and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    playing = wait_for_boundaries(page)
    shot(page, "22_playground_playing")
    assert playing["bnn"] != first["bnn"] and playing["float"] != first["float"], (first, playing)
    assert "play=1" in page.url

    button(page, "pg_play").click()  # pause
    expect(button(page, "pg_play")).to_contain_text("Play", timeout=WAIT_MS)
    paused_epoch, paused = settled(page)
    page.wait_for_timeout(2000)
    assert (epoch(page), wait_for_boundaries(page)) == (paused_epoch, paused), "the run went on while paused"

    button(page, "pg_step").click()
    expect(page.get_by_role("heading", name=f"Epoch {paused_epoch + 1}")).to_be_visible(timeout=WAIT_MS)
    stepped_epoch, stepped = settled(page)
    assert stepped_epoch == paused_epoch + 1 and stepped != paused
    assert f"epoch={stepped_epoch}" in page.url and "play=" not in page.url
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=page.app_url)
    page.get_by_role("button", name="Copy link").click()
    expect(page.locator(".pg-copied")).to_have_text("copied", timeout=WAIT_MS)
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied.startswith(page.app_url + "/playground?") and f"epoch={stepped_epoch}" in copied, copied
    assert "play=" not in copied  # a shared link opens paused
    no_exception(page)
    shot(page, "23_playground_stepped")

    page.reload()
    expect(page.get_by_role("heading", name=f"Epoch {stepped_epoch}")).to_be_visible(timeout=WAIT_MS)
    wait_for_boundaries(page)
    assert settled(page) == (stepped_epoch, stepped), "the reloaded tab shows another run"
    no_exception(page)
    shot(page, "24_playground_reloaded")


def test_lecture_link(page):
    page.goto(
        page.app_url + "/playground?lecture=1&hide=optimizer,lr&scenario=widened&"
        "dataset=moons&layers=16,16&quantizer=approx_sign"
    )
    expect(page.get_by_role("heading", name="Epoch 0")).to_be_visible(timeout=WAIT_MS)
    wait_for_boundaries(page)
    expect(page.get_by_test_id("stSidebar")).to_be_hidden(timeout=WAIT_MS)
    expect(page.get_by_text("Sixteen neurons per layer", exact=False).first).to_be_visible(timeout=WAIT_MS)
    no_exception(page)
    shot(page, "25_playground_lecture")


def test_click_a_neuron_while_playing_shows_its_map(page):
    page.goto(page.app_url + "/playground?dataset=moons&layers=6,6&points=300&epoch=5&play=1")
    expect(button(page, "pg_play")).to_contain_text("Pause", timeout=WAIT_MS)
    wait_for_boundaries(page)
    target = page.locator('[data-neuron="1,3"]')  # layer 1, neuron 4: a button over its map in the diagram
    expect(target).to_have_attribute("title", "layer 1, neuron 4", timeout=WAIT_MS)
    target.scroll_into_view_if_needed()
    clicked_at = epoch(page)
    target.click()
    title = page.locator(".pg-map-title")
    expect(title).to_have_text("BNN: layer 1, neuron 4", timeout=WAIT_MS)
    deadline = time.monotonic() + WAIT_MS / 1000
    while epoch(page) <= clicked_at + 2 and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert epoch(page) > clicked_at + 2, "the run stopped playing at the click"
    assert "play=1" in page.url
    expect(title).to_have_text("BNN: layer 1, neuron 4")  # still the clicked neuron's map
    page.locator('.pg-switch button[data-net="float"]').click()  # the diagram's network switch, while playing
    expect(title).to_have_text("float twin: layer 1, neuron 4", timeout=WAIT_MS)
    expect(page.locator('[data-neuron="1,3"]')).to_have_attribute("aria-pressed", "true")
    no_exception(page)
    shot(page, "26_playground_neuron")
    button(page, "pg_play").click()  # pause: leave the server idle
    expect(button(page, "pg_play")).to_contain_text("Play", timeout=WAIT_MS)
