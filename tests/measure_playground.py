"""Measure the playground in a real browser (a command, not a test): the first boundary on a cold app, and the
boundary frames per second per network while playing, in 1 and in N tabs. A frame is a new boundary the
live view painted on its canvas (its counters, playground_live.js), not a payload that arrived.

    .venv/bin/python tests/measure_playground.py [--tabs 1 4] [--seconds 10] [--repeats 3]

Prints min / median / max over the repeats (and the tabs) with the load average at the time: other processes on
the machine slow every figure, so each line says how busy it was. Beside the wall-clock rates it prints the CPU
time the server and the browser spent per boundary frame, which depends far less on the load: on an idle machine
with a core for each, the frame rate a tab can reach is about 1000 / (the larger of the two) frames per second.
Serves the app as tests/test_browser_playground.py does (`bnn-workbench app`, its warm-up thread included).
"""

import argparse
import os
import pathlib
import re
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from app_server import app_process  # noqa: E402
from test_browser_playground import CHROMIUM, CHROMIUM_ARGS, DRAWN_JS, epoch  # noqa: E402

LINK = "/playground?dataset=spiral&layers=8,8&seed=3"
WARM_LINE = re.compile(r"Playground warmed up in ([\d.]+) s")
VIEWPORT = {"width": 1400, "height": 1600}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """The live processes below ``pid`` (the browser's, below this script's Playwright driver)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def browser_cpu_seconds(server_pid: int) -> float:
    """CPU seconds of this script's other descendants: the browser's processes (and Playwright's driver), not
    the app server's, which is this script's child too (counting it made the browser look twice as costly)."""
    total = 0.0
    server = {server_pid, *descendants(server_pid)}
    for pid in set(descendants(os.getpid())) - server:
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue
    return total


def load() -> str:
    return "load average " + " / ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


def spread(values: list[float], unit: str = "") -> str:
    return f"min {min(values):.2f} / median {statistics.median(values):.2f} / max {max(values):.2f}{unit}"


def drawn(page) -> dict:
    """New boundaries each network's canvas has painted so far (the live view's own counters)."""
    return page.evaluate(DRAWN_JS)


def wait_boundaries(page, poll_ms: int = 10) -> None:
    while min(drawn(page).values(), default=0) < 1:
        page.wait_for_timeout(poll_ms)


def first_boundary_seconds(browser, url: str, link: str) -> float:
    page = browser.new_page(viewport=VIEWPORT)  # a new context: nothing cached from an earlier visit
    started = time.monotonic()
    page.goto(url + link, wait_until="commit")
    wait_boundaries(page)
    seconds = time.monotonic() - started
    page.close()
    return seconds


def warmed_up(log: pathlib.Path, seconds: float = 120.0) -> float:
    """Wait for the app's warm-up line in its log; the seconds it says the warm-up took."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = WARM_LINE.search(log.read_text(errors="replace")) if log.exists() else None
        if found:
            return float(found.group(1))
        time.sleep(0.1)
    raise RuntimeError(f"no warm-up line in {log} within {seconds} s")


def cold_starts(browser, link: str, repeats: int) -> None:
    """Each repeat starts a fresh app twice: a link opened the moment it is healthy, and once it has warmed up."""
    at_health, after_warm, warm_times, health_times = [], [], [], []
    loads = [load()]
    for _ in range(repeats):
        for wait_for_warm in (False, True):
            with tempfile.TemporaryDirectory() as runs:
                started = time.monotonic()
                with app_process(pathlib.Path(runs)) as (url, _):
                    health_times.append(time.monotonic() - started)
                    if wait_for_warm:
                        warm_times.append(warmed_up(pathlib.Path(runs) / "streamlit.log"))
                        after_warm.append(first_boundary_seconds(browser, url, link))
                    else:
                        at_health.append(first_boundary_seconds(browser, url, link))
        loads.append(load())
    print(f"server healthy after: {spread(health_times, ' s')}; its warm-up took {spread(warm_times, ' s')}")
    print(f"first boundary, link opened once the fresh app has warmed up: {spread(after_warm, ' s')}")
    print(f"first boundary, link opened the moment the fresh app is healthy: {spread(at_health, ' s')}")
    print(f"  ({'; '.join(dict.fromkeys(loads))})")


def play(browser, url: str, link: str, tabs: int, seconds: float, server_pid: int) -> dict:
    """One round: ``tabs`` tabs play the link; boundary frames per second per network and tab, epochs per
    second, and the server's and the browser's CPU milliseconds per boundary frame (all tabs together)."""
    pages = []
    for _ in range(tabs):
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(url + link + "&play=1")
        pages.append(page)
    for page in pages:
        wait_boundaries(page, 50)
    time.sleep(2)  # past the first frames
    epochs = [epoch(page) for page in pages]
    server, browser_cpu, loads = cpu_seconds(server_pid), browser_cpu_seconds(server_pid), os.getloadavg()[0]
    before = [drawn(page) for page in pages]
    time.sleep(seconds)
    counts = [{name: end[name] - start[name] for name in end} for start, end in zip(before, map(drawn, pages))]
    server, browser_cpu = cpu_seconds(server_pid) - server, browser_cpu_seconds(server_pid) - browser_cpu
    ends = [epoch(page) for page in pages]
    for page in pages:
        page.close()
    frames = sum(count["bnn"] for count in counts) or 1
    return {
        "fps": [count[name] / seconds for count in counts for name in ("bnn", "float")],
        "epochs_per_s": [(end - start) / seconds for start, end in zip(epochs, ends, strict=True)],
        "server_ms": 1000 * server / frames,
        "browser_ms": 1000 * browser_cpu / frames,
        "load": (loads + os.getloadavg()[0]) / 2,
    }


def frame_rates(browser, link: str, tab_counts: list[int], seconds: float, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as runs, app_process(pathlib.Path(runs)) as (url, process):
        warmed_up(pathlib.Path(runs) / "streamlit.log")
        rounds = {tabs: [] for tabs in tab_counts}
        for _ in range(repeats):  # interleaved: each repeat plays every tab count once
            for tabs in tab_counts:
                rounds[tabs].append(play(browser, url, link, tabs, seconds, process.pid))
        for tabs, results in rounds.items():
            fps = [value for result in results for value in result["fps"]]
            print(
                f"{tabs} tab(s) playing, boundary frames/s per network (each tab, each network, {repeats} rounds of "
                f"{seconds:g} s): {spread(fps)}"
            )
            print(f"  epochs/s per tab: {spread([v for r in results for v in r['epochs_per_s']])}")
            print(
                f"  CPU ms per boundary frame: server {spread([r['server_ms'] for r in results])}, "
                f"browser {spread([r['browser_ms'] for r in results])}"
            )
            print(f"  (1-minute load average during the rounds: {spread([r['load'] for r in results])})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tabs", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--link", default=LINK, help="the page and query string to open (play=1 is added)")
    parser.add_argument("--only", choices=("cold", "frames"), help="only the cold starts, or only the frame rates")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        print(f"link {args.link}; {load()}")
        if args.only != "frames":
            cold_starts(browser, args.link, args.repeats)
        if args.only != "cold":
            frame_rates(browser, args.link, args.tabs, args.seconds, args.repeats)
        browser.close()


if __name__ == "__main__":
    main()
