"""`bnn-workbench app`: the Streamlit command it hands over to (the server itself runs in the browser tests)."""

import sys

from streamlit.runtime.pages_manager import PagesManager
from streamlit.web import cli as streamlit_cli

from workbench.cli import main


def test_app_serves_on_localhost_without_a_file_watcher_from_any_directory(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(streamlit_cli, "main", lambda prog_name: seen.setdefault("argv", list(sys.argv)) and 0)
    monkeypatch.chdir(tmp_path)  # no .streamlit/config.toml here: the settings must come from the command
    monkeypatch.setattr(sys, "argv", sys.argv)
    monkeypatch.setattr(PagesManager, "uses_pages_directory", PagesManager.uses_pages_directory)
    assert main(["--runs-dir", str(tmp_path / "runs"), "app", "--port", "8765"]) == 0
    options = dict(zip(seen["argv"][3::2], seen["argv"][4::2]))
    assert seen["argv"][:2] == ["streamlit", "run"] and seen["argv"][2].endswith("app.py")
    assert options["--server.address"] == "127.0.0.1" and options["--server.port"] == "8765"
    assert options["--server.fileWatcherType"] == "none" and options["--server.maxUploadSize"] == "200"
