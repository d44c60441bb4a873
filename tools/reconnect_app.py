"""Browser sessions that come and go on a live run: what the server logs (README, "Two kinds of server-log noise").

Not a test (it takes minutes and depends on timing): `python tools/reconnect_app.py --sessions 6 --closes 25`.
Opens --sessions tabs on Train's live panel of a running run, then closes one tab abruptly and opens a new one
--closes times. Prints the 404 paths the tabs saw (Streamlit's frontend probing the page path as a base URL),
the WebSocket frames received, the tracebacks in the server's log and the server's memory before and after.
Needs /usr/bin/chromium and playwright.
"""

import argparse
import collections
import pathlib
import random
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from app_server import app_process  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from soak_app import CHROMIUM_ARGS, resident_mib  # noqa: E402

from workbench.core.presets import preset  # noqa: E402
from workbench.core.spec import default_training_spec  # noqa: E402
from workbench.runs.launch import start_run  # noqa: E402
from workbench.runs.store import RunStore  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--closes", type=int, default=25)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    missing, frames = collections.Counter(), collections.Counter()
    with tempfile.TemporaryDirectory() as folder:
        runs_dir = pathlib.Path(folder)
        training = dict(default_training_spec(), epochs=400, batch_size=16)
        run_id = start_run(preset("toy-mlp"), training, "moons", name="reconnects", runs_dir=runs_dir)
        with app_process(runs_dir) as (url, server), sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)

            def open_tab():
                context = browser.new_context()
                context.set_default_timeout(180_000)  # a loaded machine
                page = context.new_page()
                page.on("response", lambda r: r.status == 404 and missing.update([r.url.removeprefix(url)]))
                page.on("websocket", lambda ws: ws.on("framereceived", lambda _: frames.update(["received"])))
                page.goto(f"{url}/train?run={run_id}", wait_until="commit")
                return context

            tabs = [open_tab() for _ in range(args.sessions)]
            before = resident_mib(server.pid)
            rng = random.Random(args.seed)
            for _ in range(args.closes):
                time.sleep(rng.uniform(1.0, 3.0))
                index = rng.randrange(len(tabs))
                tabs[index].close()  # abruptly, while the live panel sends every second
                tabs[index] = open_tab()
            after = resident_mib(server.pid)
            for tab in tabs:
                tab.close()
            browser.close()
            time.sleep(2)
            store = RunStore(runs_dir)
            store.request(run_id, "stop")
            deadline = time.monotonic() + 60
            while store.get_run(run_id).active and time.monotonic() < deadline:
                time.sleep(0.5)
        log = (runs_dir / "streamlit.log").read_text(errors="replace")
    print(f"404s: {dict(missing)}")
    print(f"WebSocket frames received: {frames['received']}")
    events = log.split("Exception in ASGI application")[1:]  # one logged traceback (chained: two parts) each
    not_connected = sum("WebSocket is not connected" in text for text in events)
    print(f"errors logged with a traceback: {len(events)}, {not_connected} of them 'WebSocket is not connected'")
    print(f"server RSS: {before:.0f} MiB with {args.sessions} tabs open, {after:.0f} MiB after {args.closes} closes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
