"""Measure the playground in a real browser (a command, not a test): the first boundary on a cold app, and the
boundary frames per second per network while playing, in 1 and in N tabs.

    .venv/bin/python tests/measure_playground.py [--tabs 1 4] [--seconds 20]

Prints one line per measurement. Serves the app as tests/test_browser_playground.py does.
"""

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from app_server import running_app  # noqa: E402
from test_browser_playground import BOUNDARIES_JS, CHROMIUM, CHROMIUM_ARGS, epoch  # noqa: E402

LINK = "/playground?dataset=spiral&layers=8,8&seed=3"

COUNT_JS = (
    """() => {
  const look = """
    + BOUNDARIES_JS
    + """;
  window.__frames = {bnn: 0, float: 0};
  let last = look();
  window.__counter = setInterval(() => {
    const now = look();
    for (const k of ['bnn', 'float']) if (now[k] !== undefined && now[k] !== last[k]) window.__frames[k] += 1;
    last = now;
  }, 20);
}"""
)


def first_boundary_seconds(browser, url: str, link: str) -> float:
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    started = time.monotonic()
    page.goto(url + link)
    while set(page.evaluate(BOUNDARIES_JS)) != {"bnn", "float"}:
        page.wait_for_timeout(20)
    seconds = time.monotonic() - started
    page.close()
    return seconds


def frames_per_second(browser, url: str, link: str, tabs: int, seconds: float) -> list[dict]:
    pages = []
    for _ in range(tabs):
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.goto(url + link + "&play=1")
        page.get_by_role("heading", name="Epoch").first.wait_for()
        pages.append(page)
    for page in pages:
        while set(page.evaluate(BOUNDARIES_JS)) != {"bnn", "float"}:
            page.wait_for_timeout(50)
    time.sleep(3)  # let the first frames settle
    epochs = [epoch(page) for page in pages]
    for page in pages:
        page.evaluate(COUNT_JS)
    time.sleep(seconds)
    out = []
    for page, start in zip(pages, epochs, strict=True):
        frames = page.evaluate("() => window.__frames")
        out.append(
            {
                "bnn_fps": frames["bnn"] / seconds,
                "float_fps": frames["float"] / seconds,
                "epochs_per_s": (epoch(page) - start) / seconds,
            }
        )
    for page in pages:
        page.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tabs", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--link", default=LINK, help="the page and query string to open (play=1 is added)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as runs, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        started = time.monotonic()
        with running_app(pathlib.Path(runs)) as url:
            print(f"server healthy after {time.monotonic() - started:.1f} s")
            print(f"first boundary, cold app: {first_boundary_seconds(browser, url, args.link):.2f} s")
            warm = [first_boundary_seconds(browser, url, args.link) for _ in range(3)]
            print(f"first boundary, warm app (3 new tabs): {', '.join(f'{s:.2f}' for s in warm)} s")
            for tabs in args.tabs:
                rows = frames_per_second(browser, url, args.link, tabs, args.seconds)
                mean = {k: statistics.mean(r[k] for r in rows) for k in rows[0]}
                print(
                    f"{tabs} tab(s): "
                    + json.dumps({k: round(v, 2) for k, v in mean.items()})
                    + " per tab; tabs: "
                    + json.dumps([{k: round(v, 2) for k, v in r.items()} for r in rows])
                )
        browser.close()


if __name__ == "__main__":
    main()
