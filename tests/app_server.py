"""Start the real app for browser tests: `bnn-workbench app` on a free port with its own run store."""

import contextlib
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Debian's Chromium, as every browser test launches it (playwright install does not work offline)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with {process.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url}/_stcore/health did not say ok within {seconds} s")


@contextlib.contextmanager
def app_process(runs_dir: pathlib.Path):
    """Yield (base URL, server process) of `bnn-workbench app` on a free port; the server stops afterwards."""
    port = free_port()
    log = open(runs_dir / "streamlit.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "--runs-dir", str(runs_dir), "app", "--port", str(port)],
        cwd=ROOT,
        env=dict(os.environ, BNN_WORKBENCH_RUNS=str(runs_dir)),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@contextlib.contextmanager
def running_app(runs_dir: pathlib.Path):
    """Yield the app's base URL (the same command as `make app`)."""
    with app_process(runs_dir) as (url, _):
        yield url
