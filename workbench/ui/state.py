"""What the pages share through st.session_state: the network spec being designed and the training spec.

The Design page edits the spec, Home's preset buttons replace it, Train starts runs from it. Widgets
that show a spec field are keyed with the spec's *version*, so replacing or restructuring the spec
(a preset, an upload, a moved layer) gives fresh widgets that show the new values.

Both specs are also kept as drafts (workbench.ui.drafts), so a reloaded tab or a restarted app carries
on with the network being built and the training settings chosen instead of falling back to defaults.
"""

from __future__ import annotations

import copy
import json

import streamlit as st

from workbench.core.presets import preset
from workbench.core.spec import (
    LAYER_TYPES,
    default_training_spec,
    validate_training_spec,
)
from workbench.ui.drafts import Draft

SPEC_KEY = "network_spec"
SPEC_VERSION_KEY = "network_spec_version"
TRAINING_KEY = "training_spec"
UPLOAD_ERROR_KEY = "design_upload_error"  # why the last spec upload was refused, shown on Design
DEFAULT_PRESET = "binary-mlp"


def _editable_spec(value) -> dict:
    """A spec the layer editor can show; it may still fail validation (it is whatever was on screen)."""
    if not isinstance(value, dict) or not isinstance(value.get("layers"), list):
        raise ValueError("expected a JSON object with a 'layers' list")
    for index, layer in enumerate(value["layers"]):
        if not isinstance(layer, dict) or layer.get("type") not in LAYER_TYPES:
            raise ValueError(f"layer {index}: expected an object with a known 'type', got {json.dumps(layer)[:60]}")
    if not isinstance(value.get("input_shape", []), list):
        raise ValueError("field 'input_shape' must be a list")
    if not isinstance(value.get("num_classes", 10), int):
        raise ValueError("field 'num_classes' must be an integer")
    return value


DESIGN_DRAFT = Draft("design-draft.json", "design", _editable_spec)
TRAINING_DRAFT = Draft("training-draft.json", "training settings", validate_training_spec)


def get_spec() -> dict:
    """The spec being edited (raw, possibly invalid): the saved draft, or a preset the first time."""
    if SPEC_KEY not in st.session_state:
        draft = DESIGN_DRAFT.load()
        if draft is None:
            draft = preset(DEFAULT_PRESET)
            DESIGN_DRAFT.mark_saved(draft)
        st.session_state[SPEC_KEY] = draft
        bump_version()
    return st.session_state[SPEC_KEY]


def set_spec(spec: dict) -> None:
    """Replace the spec (and its draft); widgets showing the old one are dropped, and so is the error of an
    upload refused earlier: it no longer concerns the spec shown."""
    st.session_state.pop(UPLOAD_ERROR_KEY, None)
    st.session_state[SPEC_KEY] = copy.deepcopy(spec)
    bump_version()
    DESIGN_DRAFT.save(st.session_state[SPEC_KEY])


def save_spec_draft() -> str | None:
    """Keep the spec as edited so far; a message when it could not be written."""
    return DESIGN_DRAFT.save(get_spec())


def bump_version() -> None:
    st.session_state[SPEC_VERSION_KEY] = st.session_state.get(SPEC_VERSION_KEY, 0) + 1


def spec_version() -> int:
    return st.session_state.get(SPEC_VERSION_KEY, 0)


def widget_key(*parts) -> str:
    """A widget key tied to the current spec version."""
    return f"spec{spec_version()}_" + "_".join(str(part) for part in parts)


def get_training_spec() -> dict:
    """The training spec last chosen on the Train page: its saved draft, or the library default the first time."""
    if TRAINING_KEY not in st.session_state:
        draft = TRAINING_DRAFT.load()
        if draft is None:
            draft = default_training_spec()
            TRAINING_DRAFT.mark_saved(draft)
        st.session_state[TRAINING_KEY] = draft
    return st.session_state[TRAINING_KEY]


def set_training_spec(training_spec: dict) -> str | None:
    """Keep a valid training spec (and its draft); a message when the draft could not be written."""
    st.session_state[TRAINING_KEY] = training_spec
    return TRAINING_DRAFT.save(training_spec)
