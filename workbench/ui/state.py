"""What the pages share through st.session_state: the network spec being designed and the training spec.

The Design page edits the spec, Home's preset buttons replace it, Train starts runs from it. Widgets
that show a spec field are keyed with the spec's *version*, so replacing or restructuring the spec
(a preset, an upload, a moved layer) gives fresh widgets that show the new values.
"""
from __future__ import annotations

import copy

import streamlit as st

SPEC_KEY = "network_spec"
SPEC_VERSION_KEY = "network_spec_version"
TRAINING_KEY = "training_spec"
DEFAULT_PRESET = "binary-mlp"


def get_spec() -> dict:
    """The spec being edited (raw, possibly invalid); a preset the first time."""
    if SPEC_KEY not in st.session_state:
        from workbench.presets import preset

        set_spec(preset(DEFAULT_PRESET))
    return st.session_state[SPEC_KEY]


def set_spec(spec: dict) -> None:
    """Replace the spec; widgets showing the old one are dropped."""
    st.session_state[SPEC_KEY] = copy.deepcopy(spec)
    bump_version()


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
