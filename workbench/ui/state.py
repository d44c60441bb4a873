"""What the pages share through st.session_state: the network spec being designed and the training spec.

The Design page edits the spec, Home's preset buttons replace it, Train starts runs from it. Widgets
that show a spec field are keyed with the spec's *version*, so replacing or restructuring the spec
(a preset, an upload, a moved layer) gives fresh widgets that show the new values.

The spec is also kept as a draft file in the run store's folder, so a reloaded tab or a restarted app
carries on with the network the user was building instead of falling back to a preset.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import streamlit as st

from workbench.spec import LAYER_TYPES
from workbench.store import default_runs_dir

SPEC_KEY = "network_spec"
SPEC_VERSION_KEY = "network_spec_version"
DRAFT_SAVED_KEY = "network_spec_draft_saved"
DRAFT_NOTE_KEY = "network_spec_draft_note"
DRAFT_NAME = "design-draft.json"
TRAINING_KEY = "training_spec"
DEFAULT_PRESET = "binary-mlp"


def get_spec() -> dict:
    """The spec being edited (raw, possibly invalid): the saved draft, or a preset the first time."""
    if SPEC_KEY not in st.session_state:
        draft = load_draft()
        if draft is None:
            from workbench.presets import preset

            draft = preset(DEFAULT_PRESET)
        st.session_state[SPEC_KEY] = draft
        st.session_state[DRAFT_SAVED_KEY] = json.dumps(draft, indent=2)
        bump_version()
    return st.session_state[SPEC_KEY]


def set_spec(spec: dict) -> None:
    """Replace the spec (and its draft); widgets showing the old one are dropped."""
    st.session_state[SPEC_KEY] = copy.deepcopy(spec)
    bump_version()
    save_draft()


def draft_path() -> Path:
    return default_runs_dir() / DRAFT_NAME


def load_draft() -> dict | None:
    """The spec last saved by save_draft, or None (no draft, or one the layer editor could not show).

    The draft may fail validation (it is whatever was on screen), but each layer must be a dict with a
    known type. A draft that is not usable is moved aside (never overwritten) and named in a note.
    """
    path = draft_path()
    if not path.is_file():
        return None
    try:
        draft = json.loads(path.read_text(encoding="utf-8"))
        layers = draft["layers"]
        usable = (isinstance(layers, list) and all(
            isinstance(layer, dict) and layer.get("type") in LAYER_TYPES for layer in layers)
            and isinstance(draft.get("input_shape", []), list) and isinstance(draft.get("num_classes", 10), int))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError):
        usable = False
    if not usable:
        kept = path.with_name(DRAFT_NAME.replace(".json", ".unreadable.json"))
        try:
            os.replace(path, kept)
            where = f"It was moved to {kept.name}"
        except OSError as error:
            where = f"It could not be moved aside ({error.strerror or error})"
        st.session_state[DRAFT_NOTE_KEY] = (
            f"The saved design {path} could not be read back as a network spec (expected JSON with a 'layers' "
            f"list of known layer types, an 'input_shape' list and an integer 'num_classes'). {where}; "
            f"starting from the {DEFAULT_PRESET} preset.")
        return None
    return draft


def save_draft() -> str | None:
    """Write the spec to the draft file when it changed; returns an error message if it could not be written."""
    text = json.dumps(st.session_state[SPEC_KEY], indent=2)
    if st.session_state.get(DRAFT_SAVED_KEY) == text:
        return None
    path = draft_path()
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except OSError as error:
        return f"The design could not be saved to {path} ({error.strerror or error}); it is kept in this tab only."
    st.session_state[DRAFT_SAVED_KEY] = text
    return None


def bump_version() -> None:
    st.session_state[SPEC_VERSION_KEY] = st.session_state.get(SPEC_VERSION_KEY, 0) + 1


def spec_version() -> int:
    return st.session_state.get(SPEC_VERSION_KEY, 0)


def widget_key(*parts) -> str:
    """A widget key tied to the current spec version."""
    return "spec{}_".format(spec_version()) + "_".join(str(part) for part in parts)


def get_training_spec() -> dict:
    """The training spec last used on the Train page (the library default the first time)."""
    if TRAINING_KEY not in st.session_state:
        from workbench.spec import default_training_spec

        st.session_state[TRAINING_KEY] = default_training_spec()
    return st.session_state[TRAINING_KEY]
