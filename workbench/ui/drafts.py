"""Drafts: what a page is editing, kept as a JSON file in the run store folder.

A reloaded tab starts a new Streamlit session with empty session state; without a draft the network
being designed and the training settings chosen would fall back to defaults. A draft that cannot be
read back is moved aside (never overwritten) and named in a note the page shows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from workbench.runs.store import default_runs_dir

NOTES_KEY = "draft_notes"


class Draft:
    """One draft file: ``check(value)`` returns the value to use, or raises ValueError/TypeError/KeyError."""

    def __init__(self, file_name: str, what: str, check: Callable[[object], dict]):
        self.file_name, self.what, self.check = file_name, what, check
        self._saved_key = f"draft_saved_{file_name}"

    @property
    def path(self) -> Path:
        return default_runs_dir() / self.file_name

    def load(self) -> dict | None:
        """The saved value, or None: no draft, or one that failed ``check`` (moved aside, with a note)."""
        path = self.path
        if not path.is_file():
            return None
        try:
            value = self.check(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as error:
            self._set_aside(path, error)
            return None
        self.mark_saved(value)
        return value

    def mark_saved(self, value) -> None:
        """Record ``value`` as what the file holds (a default just shown needs no writing)."""
        st.session_state[self._saved_key] = json.dumps(value, indent=2)

    def save(self, value) -> str | None:
        """Write ``value`` when it changed since the last save; a message when the file could not be written."""
        text = json.dumps(value, indent=2)
        if st.session_state.get(self._saved_key) == text:
            return None
        path = self.path
        partial = path.with_name(path.name + ".partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(text, encoding="utf-8")
            os.replace(partial, path)
        except OSError as error:
            return (
                f"The {self.what} could not be saved to {path} ({error.strerror or error}); "
                "it is kept in this tab only."
            )
        st.session_state[self._saved_key] = text
        return None

    def _set_aside(self, path: Path, error: BaseException) -> None:
        kept = path.with_name(self.file_name.replace(".json", ".unreadable.json"))
        try:
            os.replace(path, kept)
            where = f"it was moved to {kept.name}"
        except OSError as move_error:
            where = f"it could not be moved aside ({move_error.strerror or move_error})"
        st.session_state.setdefault(NOTES_KEY, []).append(
            f"The saved {self.what} {path} could not be read back ({error}); {where}, and the defaults are used."
        )


def pop_notes() -> list[str]:
    """Notes about drafts that could not be read back, once each."""
    return st.session_state.pop(NOTES_KEY, [])
