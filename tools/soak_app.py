"""Soak the app as a user would watch a long run: does the server's memory stay flat while the Train page
updates live? Also times the first render of Home in a real browser.

Not a test (it takes minutes): `python tools/soak_app.py --minutes 10`. Needs /usr/bin/chromium and
playwright. Prints the server's resident memory every --every seconds and the growth over the soak.
"""

import argparse
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from app_server import CHROMIUM, CHROMIUM_ARGS, app_process  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from workbench.core.presets import preset  # noqa: E402
from workbench.core.spec import default_training_spec  # noqa: E402
from workbench.runs.launch import start_run  # noqa: E402
from workbench.runs.store import RunStore  # noqa: E402


def resident_mib(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between memory samples")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        runs_dir = pathlib.Path(folder)
        with app_process(runs_dir) as (url, server), sync_playwright() as playwright:
            server_pid = server.pid
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.set_default_timeout(60_000)
            start = time.perf_counter()
            page.goto(url)
            page.get_by_role("heading", name="BNN Workbench", level=1).wait_for()
            page.get_by_test_id("stPlotlyChart").first.wait_for()
            print(f"first render of Home (heading and figure): {time.perf_counter() - start:.2f} s")

            training = dict(default_training_spec(), epochs=500, batch_size=64)
            run_id = start_run(preset("binary-mlp"), training, "mnist-sample", name="soak", runs_dir=runs_dir)
            page.goto(f"{url}/train?run={run_id}")
            page.get_by_text("Loss", exact=True).first.wait_for()
            samples = []
            deadline = time.monotonic() + args.minutes * 60
            while True:
                steps = RunStore(runs_dir).last_step(run_id)
                samples.append((time.monotonic(), resident_mib(server_pid), steps))
                print(
                    f"t={samples[-1][0] - samples[0][0]:6.0f} s  server RSS {samples[-1][1]:7.1f} MiB  "
                    f"training steps {steps}",
                    flush=True,
                )
                if time.monotonic() >= deadline:
                    break
                time.sleep(args.every)
            # Stop the worker and wait for it before the run store's folder goes away with it.
            store = RunStore(runs_dir)
            store.request(run_id, "stop")
            stop_deadline = time.monotonic() + 60
            while store.get_run(run_id).active and time.monotonic() < stop_deadline:
                time.sleep(0.5)
            browser.close()
    first, last = samples[0][1], samples[-1][1]
    peak = max(s[1] for s in samples)
    print(
        f"server RSS: {first:.1f} MiB at the start of training, {last:.1f} MiB after {args.minutes:g} min "
        f"(peak {peak:.1f}); growth {last - first:+.1f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
