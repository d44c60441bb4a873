"""``bnn-workbench app``: serve the Streamlit app on 127.0.0.1 from this process."""

from __future__ import annotations

import argparse
import gc
import os
import pathlib
import sys
import threading
import time

# Streamlit collects all garbage after every script run (runner.postScriptGC): 29 ms of every playground frame,
# even with the warm-up frozen. The app turns that off and collects on a clock instead. tools/soak_app.py, the
# server's growth over 4 minutes of a live Train page: +5.4 MiB after every run, +21.5 MiB with no full
# collection, +15.0 every 10 s, +6.0 every 2 s (one 29 ms collection per 2 s: 1.5% of a core).
FULL_COLLECTION_SECONDS = 2.0


def add_parser(commands) -> None:
    parser = commands.add_parser("app", help="start the Streamlit app on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8501)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve app.py with this Python's installed workbench.

    Streamlit treats a ``pages/`` folder beside the entry script as old-style pages until the first
    ``st.navigation`` call of the server's life: a deep link as the first request (a reloaded
    ``/train?run=...`` after a restart) would run ``pages/train.py`` on its own, without the app's
    navigation. Declaring up front that the app navigates with ``st.navigation`` closes that gap.
    """
    # lazy: Streamlit loads only for the command that serves the app; Home's figure modules are imported
    # here, while the server starts, so that the first visitor does not wait for them
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli as streamlit_cli

    import workbench.ui.figures  # noqa: F401
    import workbench.ui.widgets  # noqa: F401

    _warm_playground()  # before the server listens: a link opened on a just-started app is never cold
    threading.Thread(target=_collect_garbage, name="garbage-collector", daemon=True).start()
    if args.runs_dir:
        os.environ["BNN_WORKBENCH_RUNS"] = str(pathlib.Path(args.runs_dir).resolve())
    entry = pathlib.Path(__file__).resolve().parents[2] / "app.py"
    PagesManager.uses_pages_directory = False
    # The settings of .streamlit/config.toml, given here so that they hold from any working directory; and no
    # file watcher: it would watch the whole checkout (.venv included) for edits a user never makes.
    sys.argv = [
        "streamlit",
        "run",
        str(entry),
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(args.port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--server.maxUploadSize",
        "200",
        "--client.toolbarMode",
        "minimal",
        "--runner.postScriptGC",
        "false",
    ]
    return streamlit_cli.main(prog_name="streamlit")


def _warm_playground() -> None:
    """Load torch and train and draw one tiny playground frame before the server starts (about 3 s on a quiet
    2-core machine, 5 on a busy one), so that the first playground link opened on this app draws its boundaries
    at once. Done beside the starting server instead, the first boundary of a link opened the moment the app
    answered took 4.1 s (it waited for the warm-up) against 1.4 to 2.0 s once warmed; before the server, the
    app answers about 3 s later and every link it answers is warm.

    Then freeze what is loaded by now out of the garbage collector's sight: with torch, pandas and Plotly loaded
    a full collection walks some 370,000 objects, 60 to 150 ms of CPU: more than a playground frame's training.
    Frozen, the modules' objects are skipped and a collection only walks what the pages made since.
    """
    started = time.monotonic()
    from workbench.ui import playground_view  # lazy: torch loads only for the command that serves the app

    playground_view.warm_up()
    gc.collect()  # the warm-up's own garbage goes first: frozen objects are never freed
    gc.freeze()
    print(f"  Playground warmed up in {time.monotonic() - started:.1f} s.", file=sys.stderr, flush=True)


def _collect_garbage(seconds: float = FULL_COLLECTION_SECONDS) -> None:
    """A full collection every ``seconds``, in place of Streamlit's after every script run (see the top)."""
    while True:
        time.sleep(seconds)
        gc.collect()
